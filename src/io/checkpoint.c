/* checkpoint.c — training checkpoints: everything fm_fit needs to continue a run bit for bit, in
 * a versioned, checksummed file of fmnist's own, written atomically and validated field by field.
 *
 * Why not safetensors with metadata: half of the state is not tensors but exact integers and
 * doubles (the generator's 256 bits, step counts, running sums, the history), which safetensors
 * could only carry as JSON strings; and a checkpoint needs a checksum, which safetensors lacks,
 * to tell a damaged file from a good one. The weights stay readable elsewhere: model.safetensors
 * and best.safetensors sit beside the checkpoint.
 *
 * Layout, all little-endian: "FMNISTCK", u32 version, u32 0, then the fields in the order
 * ck_write_body writes them, then a trailer: u64 the byte count before it, u32 the CRC-32 of
 * those bytes. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint I/O assumes a little-endian host"
#endif

#define CK_MAGIC "FMNISTCK"
#define CK_VERSION 3u /* 2: weight averaging (its settings and mean); 3: the precision */
#define CK_TRAILER 12
#define CK_MAX_NOTE (1u << 20)
#define CK_MAX_FILE (8ull << 30)
#define HIST_ENTRY (4 + 4 + 6 * 8 + 4) /* bytes of one history entry */

uint32_t fm_dataset_crc(const fm_dataset *ds) {
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t n = (size_t)ds->n * ds->h * ds->w;
    /* zlib takes uInt lengths: feed it in 1 GiB pieces. */
    for (size_t i = 0; i < n; i += 1u << 30) {
        size_t k = n - i < (1u << 30) ? n - i : (1u << 30);
        crc = crc32(crc, ds->images + i, (uInt)k);
    }
    crc = crc32(crc, ds->labels, (uInt)ds->n);
    return (uint32_t)crc;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    FILE *f;
    uLong crc;
    uint64_t len;
    int ok;
} ck_writer;

static void w_bytes(ck_writer *w, const void *p, size_t n) {
    if (!w->ok || n == 0) return;
    if (fwrite(p, 1, n, w->f) != n) {
        w->ok = 0;
        return;
    }
    /* zlib takes uInt lengths; arrays here stay far below 4 GiB per call but split anyway. */
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i += 1u << 30) {
        size_t k = n - i < (1u << 30) ? n - i : (1u << 30);
        w->crc = crc32(w->crc, b + i, (uInt)k);
    }
    w->len += n;
}
static void w_u32(ck_writer *w, uint32_t v) { w_bytes(w, &v, 4); }
static void w_u64(ck_writer *w, uint64_t v) { w_bytes(w, &v, 8); }
static void w_f32(ck_writer *w, float v) { w_bytes(w, &v, 4); }  /* the exact bits */
static void w_f64(ck_writer *w, double v) { w_bytes(w, &v, 8); }
static void w_str(ck_writer *w, const char *s) {
    size_t n = strlen(s);
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n);
}

/* The settings, field by field (the struct's padding and pointers are not written). The reader
 * repeats this list in the same order. */
#define CK_SETTINGS(X)                                                                          \
    X(i, epochs) X(i, batch) X(i, optimizer) X(f, lr) X(f, momentum) X(i, nesterov) X(f, beta1)   \
    X(f, beta2) X(f, eps) X(f, l2) X(u64, seed) X(i, threads) X(u, val) X(f, weight_decay)        \
    X(i, schedule) X(f, warmup) X(i, step_epochs) X(f, step_gamma) X(f, label_smoothing)          \
    X(i, augment.shift) X(i, augment.flip) X(f, augment.rotate) X(f, augment.erase) X(i, monitor) \
    X(i, patience) X(i, reduce_lr_patience) X(f, reduce_lr_factor) X(f, min_lr) X(i, swa)           \
    X(f, swa_lr) X(i, precision)

static void ck_write_body(ck_writer *w, const fm_checkpoint *ck) {
    const fm_train_params *p = &ck->p;
    w_bytes(w, CK_MAGIC, 8);
    w_u32(w, CK_VERSION);
    w_u32(w, 0);
    w_str(w, ck->note);
    /* The model. */
    w_str(w, ck->spec);
    w_u32(w, ck->in_h), w_u32(w, ck->in_w);
    w_u32(w, (uint32_t)ck->classes.n);
    for (int c = 0; c < ck->classes.n; c++) w_str(w, ck->classes.names[c]);
    w_u32(w, (uint32_t)ck->scaling.kind), w_f32(w, ck->scaling.mean), w_f32(w, ck->scaling.std);
    w_u32(w, (uint32_t)ck->tta);
    w_u32(w, (uint32_t)ck->n_layers), w_u64(w, ck->n_params), w_u64(w, ck->n_state);
    /* The settings. */
#define X_WRITE(kind, field) w_##kind(w, p->field);
#define w_i(w, v) w_u32(w, (uint32_t)(v))
#define w_u(w, v) w_u32(w, (uint32_t)(v))
#define w_f(w, v) w_f32(w, v)
    CK_SETTINGS(X_WRITE)
#undef w_i
#undef w_u
#undef w_f
#undef X_WRITE
    /* Position, optimizer scalars, callbacks. */
    w_u32(w, (uint32_t)ck->epochs_done), w_u32(w, (uint32_t)ck->batches_done), w_u32(w, (uint32_t)ck->batches);
    w_u32(w, (uint32_t)ck->stopped_early);
    w_u64(w, (uint64_t)ck->step);
    for (int i = 0; i < 4; i++) w_u64(w, ck->rng.s[i]);
    w_f64(w, ck->loss_sum), w_f64(w, ck->epoch_seconds), w_u64(w, ck->seen), w_u64(w, ck->right_sum);
    w_f32(w, ck->lr_now), w_f32(w, ck->lr_scale);
    w_f64(w, ck->best_score);
    w_u32(w, (uint32_t)ck->best_epoch), w_u32(w, (uint32_t)ck->plateau_wait);
    w_u32(w, ck->n_train), w_u32(w, ck->data_crc);
    w_u32(w, (uint32_t)ck->n_history);
    for (int i = 0; i < ck->n_history; i++) {
        const fm_epoch_stats *e = &ck->history[i];
        w_u32(w, (uint32_t)e->epoch), w_u32(w, (uint32_t)e->epochs);
        w_f64(w, e->loss), w_f64(w, e->accuracy), w_f64(w, e->val_loss), w_f64(w, e->val_accuracy);
        w_f64(w, e->seconds), w_f64(w, e->lr);
        w_u32(w, (uint32_t)e->improved);
    }
    /* The arrays. */
    w_bytes(w, ck->params, ck->n_params * sizeof(float));
    w_bytes(w, ck->state, ck->n_state * sizeof(float));
    w_bytes(w, ck->batches_tracked, (size_t)ck->n_layers * sizeof(int64_t));
    w_u32(w, ck->m1 != NULL);
    if (ck->m1) w_bytes(w, ck->m1, ck->n_params * sizeof(float));
    w_u32(w, ck->m2 != NULL);
    if (ck->m2) w_bytes(w, ck->m2, ck->n_params * sizeof(float));
    w_u32(w, ck->best != NULL);
    if (ck->best) {
        w_bytes(w, ck->best, (ck->n_params + ck->n_state) * sizeof(float));
        w_bytes(w, ck->best_tracked, (size_t)ck->n_layers * sizeof(int64_t));
    }
    w_u32(w, ck->swa != NULL);
    if (ck->swa) w_bytes(w, ck->swa, ck->n_params * sizeof(float));
    w_bytes(w, ck->order, (size_t)ck->n_train * sizeof(int32_t));
}

fm_status fm_checkpoint_write(const char *path, const fm_checkpoint *ck, fm_error *err) {
    char tmp[FM_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return fm_fail(err, FM_ERR_ARG, "checkpoint path too long: %s", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        return fm_fail(err, FM_ERR_IO, "checkpoint %s: cannot create: %s (the previous checkpoint "
                       "is kept)", tmp, strerror(errno));
    }
    ck_writer w = {f, crc32(0L, Z_NULL, 0), 0, 1};
    ck_write_body(&w, ck);
    uint64_t len = w.len;
    uint32_t crc = (uint32_t)w.crc;
    int ok = w.ok && fwrite(&len, 8, 1, f) == 1 && fwrite(&crc, 4, 1, f) == 1;
    /* Data on disk before the rename makes it visible: a crash leaves the old file or the new. */
    if (ok) ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved_errno = errno;
    if (fclose(f) != 0 && ok) ok = 0, saved_errno = errno;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "checkpoint %s: write failed: %s (the previous checkpoint "
                       "is kept)", path, strerror(saved_errno ? saved_errno : EIO));
    }
    if (rename(tmp, path) != 0) {
        saved_errno = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "checkpoint %s: cannot replace: %s", path, strerror(saved_errno));
    }
    /* And the rename itself on disk: fsync the folder. */
    char dir[FM_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) {
        saved_errno = errno;
        if (fd >= 0) close(fd);
        return fm_fail(err, FM_ERR_IO, "checkpoint %s: cannot sync its folder %s: %s", path, dir,
                       strerror(saved_errno));
    }
    close(fd);
    return FM_OK;
}

/* ---------------------------------------------------------------- reading */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    int short_read;
} ck_reader;

static int r_bytes(ck_reader *r, void *out, size_t n) {
    if (r->short_read || n > r->len - r->pos) return r->short_read = 1, 0;
    if (n) memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 1;
}
static uint32_t r_u32(ck_reader *r) { uint32_t v = 0; r_bytes(r, &v, 4); return v; }
static uint64_t r_u64(ck_reader *r) { uint64_t v = 0; r_bytes(r, &v, 8); return v; }
static float r_f32(ck_reader *r) { float v = 0; r_bytes(r, &v, 4); return v; }
static double r_f64(ck_reader *r) { double v = 0; r_bytes(r, &v, 8); return v; }
/* A length-prefixed string into a buffer of cap bytes (NUL included); 0 when it does not fit. */
static int r_str(ck_reader *r, char *out, size_t cap) {
    uint32_t n = r_u32(r);
    if (r->short_read || n >= cap) return 0;
    if (!r_bytes(r, out, n)) return 0;
    out[n] = '\0';
    return memchr(out, '\0', n) == NULL;
}
/* An array of n elements of size each, allocated. */
static void *r_array(ck_reader *r, size_t n, size_t size) {
    if (n == 0) return calloc(1, 1);
    if (n > (r->len - r->pos) / size) return r->short_read = 1, NULL;
    void *a = malloc(n * size);
    if (a) r_bytes(r, a, n * size);
    return a;
}

void fm_checkpoint_free(fm_checkpoint *ck) {
    if (!ck) return;
    if (ck->owned) {
        free(ck->note), free(ck->params), free(ck->state), free(ck->m1), free(ck->m2);
        free(ck->order), free(ck->best), free(ck->swa), free(ck->history);
    }
    free(ck);
}

static fm_status bad(fm_error *err, const char *path, const char *what) {
    return fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: %s", path, what);
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return 0;
    }
    return 1;
}

/* Checks the fields against each other and against the model the spec builds. */
static fm_status ck_validate(const fm_checkpoint *ck, const char *path, fm_error *err) {
    fm_error e2 = {0};
    if (fm_train_params_check(&ck->p, &e2)) {
        return fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: bad settings: %s", path, e2.msg);
    }
    fm_model_params mp = fm_model_default_params();
    mp.classes = ck->classes;
    mp.scaling = ck->scaling;
    fm_model *m = NULL;
    if (fm_model_create(ck->spec, ck->in_h, ck->in_w, &mp, &m, &e2)) {
        return fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: its model does not build: %s", path, e2.msg);
    }
    int same = m->n_params == ck->n_params && m->n_state == ck->n_state && m->n_layers == ck->n_layers;
    fm_status s = FM_OK;
    if (!same) {
        s = fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: model \"%s\" has %zu parameters, %zu "
                    "statistics and %d layers, the checkpoint holds %zu, %zu and %d", path, ck->spec,
                    m->n_params, m->n_state, m->n_layers, ck->n_params, ck->n_state, ck->n_layers);
    }
    fm_model_free(m);
    if (s) return s;
    const fm_train_params *p = &ck->p;
    int adam = p->optimizer == FM_OPT_ADAM || p->optimizer == FM_OPT_ADAMW;
    if ((ck->m1 != NULL) != (adam || p->momentum > 0.0f) || (ck->m2 != NULL) != adam) {
        return bad(err, path, "optimizer state does not match the optimizer's settings");
    }
    if ((ck->best != NULL) != (p->patience > 0)) {
        return bad(err, path, "early-stopping weights do not match the patience setting");
    }
    if ((ck->swa != NULL) != (p->swa > 0)) {
        return bad(err, path, "averaged weights do not match the weight-averaging setting");
    }
    if (ck->n_train == 0 || ck->n_train > FM_IDX_MAX_ITEMS) return bad(err, path, "training image count out of range");
    long batches = ((long)ck->n_train + p->batch - 1) / p->batch;
    if (ck->batches != batches) return bad(err, path, "batches per epoch do not match the image count and batch size");
    if (ck->epochs_done < 0 || ck->epochs_done > p->epochs || ck->batches_done < 0 ||
        ck->batches_done >= ck->batches || (ck->batches_done && ck->epochs_done == p->epochs)) {
        return bad(err, path, "position (epoch, batch) out of range");
    }
    if (ck->step != (long)ck->epochs_done * ck->batches + ck->batches_done) {
        return bad(err, path, "step count does not match the position");
    }
    if (ck->n_history != ck->epochs_done) return bad(err, path, "history length does not match the epochs done");
    for (int i = 0; i < ck->n_history; i++) {
        if (ck->history[i].epoch != i + 1) return bad(err, path, "history epochs out of order");
    }
    if (ck->best_epoch < 0 || ck->best_epoch > ck->epochs_done || ck->plateau_wait < 0 ||
        ck->stopped_early < 0 || ck->stopped_early > 1 || ck->tta < 0 || ck->tta > 1) {
        return bad(err, path, "callback state out of range");
    }
    if (ck->seen > ck->n_train || ck->right_sum > ck->seen) return bad(err, path, "running sums out of range");
    if (!(ck->lr_scale > 0.0f) || !isfinite(ck->lr_scale)) return bad(err, path, "plateau factor out of range");
    if ((ck->rng.s[0] | ck->rng.s[1] | ck->rng.s[2] | ck->rng.s[3]) == 0) {
        return bad(err, path, "random generator state is all zeros");
    }
    if (!all_finite(ck->params, ck->n_params) || !all_finite(ck->state, ck->n_state) ||
        (ck->swa && !all_finite(ck->swa, ck->n_params))) {
        return bad(err, path, "weights are not all finite");
    }
    /* The order must be a permutation: each row once. */
    unsigned char *seen = calloc(ck->n_train, 1);
    if (!seen) return fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    int perm = 1;
    for (uint32_t i = 0; i < ck->n_train && perm; i++) {
        int32_t v = ck->order[i];
        if (v < 0 || (uint32_t)v >= ck->n_train || seen[v]) perm = 0;
        else seen[v] = 1;
    }
    free(seen);
    if (!perm) return bad(err, path, "shuffled order is not a permutation of the training images");
    return FM_OK;
}

static fm_status ck_parse(fm_checkpoint *ck, const unsigned char *buf, size_t len, const char *path,
                          fm_error *err) {
    ck_reader rr = {buf, len, 16, 0}, *r = &rr; /* after magic, version and the reserved word */
    uint32_t note_len = r_u32(r);
    if (note_len > CK_MAX_NOTE || note_len > len - r->pos) return bad(err, path, "note length out of range");
    ck->note = malloc(note_len + 1);
    if (!ck->note) return fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    r_bytes(r, ck->note, note_len);
    ck->note[note_len] = '\0';
    if (!r_str(r, ck->spec, sizeof ck->spec)) return bad(err, path, "model spec missing or too long");
    ck->in_h = r_u32(r), ck->in_w = r_u32(r);
    uint32_t nc = r_u32(r);
    if (nc < 2 || nc > FM_MAX_CLASSES) return bad(err, path, "class count out of range 2..256");
    ck->classes.n = (int)nc;
    for (uint32_t c = 0; c < nc; c++) {
        if (!r_str(r, ck->classes.names[c], FM_CLASS_NAME_MAX)) return bad(err, path, "class name missing or too long");
    }
    uint32_t kind = r_u32(r);
    if (kind > FM_SCALE_STANDARD) return bad(err, path, "unknown scaling kind");
    ck->scaling.kind = (fm_scale_kind)kind;
    ck->scaling.mean = r_f32(r), ck->scaling.std = r_f32(r);
    ck->tta = (int)r_u32(r);
    uint32_t n_layers = r_u32(r);
    uint64_t n_params = r_u64(r), n_state = r_u64(r);
    if (n_layers < 1 || n_layers > FM_MAX_LAYERS || n_params > len / 4 || n_state > len / 4) {
        return bad(err, path, "model sizes out of range");
    }
    ck->n_layers = (int)n_layers, ck->n_params = (size_t)n_params, ck->n_state = (size_t)n_state;
    fm_train_params *p = &ck->p;
    *p = fm_train_default_params();
#define r_i(r) (int)r_u32(r)
#define r_u(r) r_u32(r)
#define r_f(r) r_f32(r)
#define X_READ(kind, field) p->field = r_##kind(r);
    /* Enums go through int; out-of-range values are refused by fm_train_params_check. */
    CK_SETTINGS(X_READ)
#undef X_READ
#undef r_i
#undef r_u
#undef r_f
    ck->epochs_done = (int)r_u32(r), ck->batches_done = (int)r_u32(r), ck->batches = (int)r_u32(r);
    ck->stopped_early = (int)r_u32(r);
    uint64_t step = r_u64(r);
    if (step > (uint64_t)1 << 50) return bad(err, path, "step count out of range");
    ck->step = (long)step;
    for (int i = 0; i < 4; i++) ck->rng.s[i] = r_u64(r);
    ck->loss_sum = r_f64(r), ck->epoch_seconds = r_f64(r), ck->seen = r_u64(r), ck->right_sum = r_u64(r);
    ck->lr_now = r_f32(r), ck->lr_scale = r_f32(r);
    ck->best_score = r_f64(r);
    ck->best_epoch = (int)r_u32(r), ck->plateau_wait = (int)r_u32(r);
    ck->n_train = r_u32(r), ck->data_crc = r_u32(r);
    uint32_t n_hist = r_u32(r);
    if (n_hist > 100000) return bad(err, path, "history length out of range");
    ck->n_history = (int)n_hist;
    if (r->short_read) return bad(err, path, "truncated inside its header fields");
    if ((size_t)n_hist * HIST_ENTRY > len - r->pos) return bad(err, path, "truncated inside its history");
    ck->history = calloc(n_hist ? n_hist : 1, sizeof *ck->history);
    if (!ck->history) return fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    for (uint32_t i = 0; i < n_hist; i++) {
        fm_epoch_stats *e = &ck->history[i];
        e->epoch = (int)r_u32(r), e->epochs = (int)r_u32(r);
        e->loss = r_f64(r), e->accuracy = r_f64(r), e->val_loss = r_f64(r), e->val_accuracy = r_f64(r);
        e->seconds = r_f64(r), e->lr = r_f64(r);
        e->improved = (int)r_u32(r);
    }
    ck->params = r_array(r, ck->n_params, sizeof(float));
    ck->state = r_array(r, ck->n_state, sizeof(float));
    r_bytes(r, ck->batches_tracked, (size_t)ck->n_layers * sizeof(int64_t));
    if (r_u32(r)) ck->m1 = r_array(r, ck->n_params, sizeof(float));
    if (r_u32(r)) ck->m2 = r_array(r, ck->n_params, sizeof(float));
    if (r_u32(r)) {
        ck->best = r_array(r, ck->n_params + ck->n_state, sizeof(float));
        r_bytes(r, ck->best_tracked, (size_t)ck->n_layers * sizeof(int64_t));
    }
    if (r_u32(r)) ck->swa = r_array(r, ck->n_params, sizeof(float));
    ck->order = r_array(r, ck->n_train, sizeof(int32_t));
    if (r->short_read) return bad(err, path, "truncated: its arrays are shorter than the model and data it describes");
    if (!ck->params || !ck->state || !ck->order) return fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    if (r->pos != len) return bad(err, path, "has bytes after its last field");
    return ck_validate(ck, path, err);
}

fm_status fm_checkpoint_load(const char *path, fm_checkpoint **out, fm_error *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return fm_fail(err, FM_ERR_IO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fm_fail(err, FM_ERR_IO, "checkpoint %s: not a regular file", path);
    if ((uint64_t)st.st_size > CK_MAX_FILE) return bad(err, path, "larger than the 8 GiB limit");
    size_t n = (size_t)st.st_size;
    FILE *f = fopen(path, "rb");
    if (!f) return fm_fail(err, FM_ERR_IO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    fm_status s = FM_OK;
    if (rerr || got != n) {
        s = fm_fail(err, FM_ERR_IO, "checkpoint %s: read failed", path);
    } else if (n < 8 || memcmp(buf, CK_MAGIC, 8) != 0) {
        s = bad(err, path, "not an fmnist checkpoint (no FMNISTCK magic)");
    } else if (n < 16 + CK_TRAILER) {
        s = bad(err, path, "truncated: shorter than a header");
    } else {
        uint32_t version, crc_file;
        uint64_t body;
        memcpy(&version, buf + 8, 4);
        memcpy(&body, buf + n - CK_TRAILER, 8);
        memcpy(&crc_file, buf + n - 4, 4);
        if (version != CK_VERSION) {
            s = fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: version %u, this fmnist reads version %u",
                        path, version, CK_VERSION);
        } else if (body != n - CK_TRAILER) {
            /* The trailer's count is whatever bytes now end the file: not worth printing. */
            s = fm_fail(err, FM_ERR_FORMAT, "checkpoint %s: truncated or extended: %zu bytes, "
                        "and its trailer does not give that length", path, n);
        } else if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)body) != crc_file) {
            s = bad(err, path, "corrupt: the CRC-32 of its contents does not match");
        }
    }
    fm_checkpoint *ck = NULL;
    if (!s) {
        ck = calloc(1, sizeof *ck);
        if (!ck) s = fm_fail(err, FM_ERR_NOMEM, "checkpoint %s: out of memory", path);
    }
    if (!s) {
        ck->owned = 1;
        s = ck_parse(ck, buf, n - CK_TRAILER, path, err);
    }
    free(buf);
    if (s) {
        fm_checkpoint_free(ck);
        return s;
    }
    *out = ck;
    return FM_OK;
}

/* ---------------------------------------------------------------- using one */

fm_train_params fm_checkpoint_train_params(const fm_checkpoint *ck) { return ck->p; }
const char *fm_checkpoint_note(const fm_checkpoint *ck) { return ck->note; }

void fm_checkpoint_position(const fm_checkpoint *ck, int *epochs_done, int *batches_done,
                            int *batches, int *stopped_early) {
    if (epochs_done) *epochs_done = ck->epochs_done;
    if (batches_done) *batches_done = ck->batches_done;
    if (batches) *batches = ck->batches;
    if (stopped_early) *stopped_early = ck->stopped_early;
}

fm_status fm_checkpoint_model(const fm_checkpoint *ck, fm_model **out, fm_error *err) {
    fm_model_params mp = fm_model_default_params();
    mp.classes = ck->classes;
    mp.scaling = ck->scaling;
    fm_status s = fm_model_create(ck->spec, ck->in_h, ck->in_w, &mp, out, err);
    if (s) return s;
    fm_model *m = *out;
    memcpy(m->params, ck->params, ck->n_params * sizeof(float));
    if (ck->n_state) memcpy(m->state, ck->state, ck->n_state * sizeof(float));
    memcpy(m->batches_tracked, ck->batches_tracked, sizeof m->batches_tracked);
    m->tta_flip = ck->tta;
    return FM_OK;
}

fm_status fm_checkpoint_check_resume(const fm_checkpoint *ck, const fm_model *m,
                                     const fm_train_params *p, uint32_t n_train,
                                     uint32_t data_crc, fm_error *err) {
    if (strcmp(ck->spec, m->spec) != 0 || ck->in_h != m->in_h || ck->in_w != m->in_w ||
        ck->n_params != m->n_params || ck->n_state != m->n_state) {
        return fm_fail(err, FM_ERR_ARG, "the checkpoint is for model \"%s\" on %ux%u images, not "
                       "\"%s\" on %ux%u", ck->spec, ck->in_h, ck->in_w, m->spec, m->in_h, m->in_w);
    }
    if (ck->n_train != n_train || ck->data_crc != data_crc) {
        return fm_fail(err, FM_ERR_ARG, "the training data differs from the checkpoint's (%u "
                       "training images, CRC-32 %08x; now %u, %08x)", ck->n_train, ck->data_crc,
                       n_train, data_crc);
    }
    /* Every setting but epochs as the checkpoint has it, bit for bit. */
#define X_SAME(kind, field)                                                                      \
    if (strcmp(#field, "epochs") != 0 && memcmp(&ck->p.field, &p->field, sizeof p->field) != 0) {  \
        return fm_fail(err, FM_ERR_ARG, "setting %s differs from the checkpoint's: a resumed run "  \
                       "keeps its settings (only epochs may grow)", #field);                       \
    }
    CK_SETTINGS(X_SAME)
#undef X_SAME
    if (ck->stopped_early) {
        return fm_fail(err, FM_ERR_ARG, "the run stopped early at epoch %d (patience %d): there "
                       "is nothing left to resume", ck->epochs_done, ck->p.patience);
    }
    if (p->epochs < ck->epochs_done + (ck->batches_done > 0)) {
        return fm_fail(err, FM_ERR_ARG, "the checkpoint is past epoch %d, more than the %d epochs "
                       "asked for", ck->epochs_done, p->epochs);
    }
    /* The averaged epochs are the last swa of the run: more epochs would move them. */
    long swa_step = (long)(ck->p.epochs - ck->p.swa) * ck->batches;
    if (ck->p.swa && p->epochs != ck->p.epochs && ck->step > swa_step) {
        return fm_fail(err, FM_ERR_ARG, "the run is averaging its last %d epochs' weights (from "
                       "epoch %d of %d): it cannot be given more epochs", ck->p.swa,
                       ck->p.epochs - ck->p.swa + 1, ck->p.epochs);
    }
    if (ck->batches_done == 0 && ck->epochs_done == p->epochs) {
        return fm_fail(err, FM_ERR_ARG, "the run has finished its %d epochs: ask for more epochs "
                       "to train further", p->epochs);
    }
    return FM_OK;
}
