/* safetensors.c — model files in the safetensors format: an 8-byte little-endian header length,
 * a JSON header naming each tensor's dtype, shape and byte range, then raw little-endian data.
 * Tensor names and layouts follow PyTorch's nn.Sequential (layers.K.weight is [out, in] for a
 * dense layer, [out, in, kh, kw] for a convolution; batch norm adds running_mean, running_var
 * and an int64 num_batches_tracked) so other tools can read the weights; __metadata__ carries
 * what fmnist needs to rebuild the model. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_FORMAT "fmnist"
#define ST_VERSION "1"
#define ST_MAX_HEADER (16u << 20)
#define ST_MAX_FILE (2ull << 30)
#define ST_PRECHECK_BYTES (16u << 20) /* a spec needing more is checked against the file first */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

static void tensor_name(char *out, size_t cap, int layer, const char *what) {
    snprintf(out, cap, "layers.%d.%s", layer, what);
}

/* The tensors of one layer, in file order: name, shape, and where the values live. Dense and
 * conv layers have weight and bias; batch norm has weight (gamma), bias (beta), running_mean,
 * running_var (from the state) and num_batches_tracked (one int64, shape []). */
typedef struct {
    const char *what;
    uint32_t shape[4];
    int ndim;
    float *values; /* NULL for num_batches_tracked */
    size_t count;
} layer_tensor;

static int layer_tensors(const fm_model *m, int l, layer_tensor *t) {
    const fm_layer *L = &m->layers[l];
    float *params = m->params;
    switch (L->kind) {
    case FM_LAYER_DENSE:
        t[0] = (layer_tensor){"weight", {L->out_size, L->in_size}, 2, params + L->w_off, fm_layer_weight_count(L)};
        t[1] = (layer_tensor){"bias", {L->out_size}, 1, params + L->b_off, L->out_size};
        return 2;
    case FM_LAYER_CONV: {
        const fm_conv_shape *c = &L->conv;
        t[0] = (layer_tensor){"weight", {(uint32_t)c->OC, (uint32_t)c->C, (uint32_t)c->KH, (uint32_t)c->KW}, 4,
                              params + L->w_off, fm_layer_weight_count(L)};
        t[1] = (layer_tensor){"bias", {(uint32_t)c->OC}, 1, params + L->b_off, (size_t)c->OC};
        return 2;
    }
    case FM_LAYER_BATCHNORM:
        t[0] = (layer_tensor){"weight", {L->in_c}, 1, params + L->w_off, L->in_c};
        t[1] = (layer_tensor){"bias", {L->in_c}, 1, params + L->b_off, L->in_c};
        t[2] = (layer_tensor){"running_mean", {L->in_c}, 1, m->state + L->s_off, L->in_c};
        t[3] = (layer_tensor){"running_var", {L->in_c}, 1, m->state + L->s_off + L->in_c, L->in_c};
        t[4] = (layer_tensor){"num_batches_tracked", {0}, 0, NULL, 1};
        return 5;
    default: return 0;
    }
}
#define MAX_LAYER_TENSORS 5

static cJSON *tensor_entry(const char *dtype, const uint32_t *shape, int ndim, size_t begin, size_t end) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "dtype", dtype);
    cJSON *sh = cJSON_AddArrayToObject(t, "shape");
    for (int i = 0; i < ndim; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber(shape[i]));
    cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)begin));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)end));
    return t;
}

static char *header_json(const fm_model *m) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    char tmp[64];
    cJSON_AddStringToObject(meta, "format", ST_FORMAT);
    cJSON_AddStringToObject(meta, "format_version", ST_VERSION);
    cJSON_AddStringToObject(meta, "fmnist_version", FM_VERSION);
    cJSON_AddStringToObject(meta, "spec", m->spec);
    snprintf(tmp, sizeof tmp, "1,%u,%u", m->in_h, m->in_w);
    cJSON_AddStringToObject(meta, "input_shape", tmp);
    cJSON_AddStringToObject(meta, "scaling", m->scaling.kind == FM_SCALE_STANDARD ? "standard" : "unit");
    /* %.9g round-trips a float exactly. */
    snprintf(tmp, sizeof tmp, "%.9g", (double)m->scaling.mean);
    cJSON_AddStringToObject(meta, "scaling_mean", tmp);
    snprintf(tmp, sizeof tmp, "%.9g", (double)m->scaling.std);
    cJSON_AddStringToObject(meta, "scaling_std", tmp);
    cJSON *names = cJSON_CreateArray();
    for (int c = 0; c < m->classes.n; c++) cJSON_AddItemToArray(names, cJSON_CreateString(m->classes.names[c]));
    char *names_text = cJSON_PrintUnformatted(names);
    cJSON_Delete(names);
    cJSON_AddStringToObject(meta, "classes", names_text ? names_text : "[]");
    free(names_text);
    /* Written only when on, so files without it read as they always did. */
    if (m->tta_flip) cJSON_AddStringToObject(meta, "tta", "flip");
    size_t off = 0;
    for (int l = 0; l < m->n_layers; l++) {
        layer_tensor t[MAX_LAYER_TENSORS];
        int nt = layer_tensors(m, l, t);
        for (int i = 0; i < nt; i++) {
            char name[64];
            size_t bytes = t[i].values ? 4 * t[i].count : 8;
            tensor_name(name, sizeof name, l, t[i].what);
            cJSON_AddItemToObject(root, name, tensor_entry(t[i].values ? "F32" : "I64", t[i].shape,
                                                           t[i].ndim, off, off + bytes));
            off += bytes;
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

fm_status fm_model_save(const fm_model *m, const char *path, fm_error *err) {
    char *json = header_json(m);
    if (!json) return fm_fail(err, FM_ERR_NOMEM, "out of memory writing the model header");
    size_t jlen = strlen(json);
    /* Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does. */
    size_t padded = (jlen + 7) & ~(size_t)7;
    char tmp[FM_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(json);
        return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, jlen, f) == jlen;
    for (size_t i = jlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(json);
    /* Tensors are stored layer by layer in the same order as the header; dense weights go out in
     * PyTorch's [out, in], the transpose of the [in, out] kept in memory. */
    for (int l = 0; ok && l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        layer_tensor t[MAX_LAYER_TENSORS];
        int nt = layer_tensors(m, l, t);
        for (int i = 0; ok && i < nt; i++) {
            if (L->kind == FM_LAYER_DENSE && strcmp(t[i].what, "weight") == 0) {
                const float *w = t[i].values;
                size_t I = L->in_size, O = L->out_size;
                float row[4096];
                for (size_t o = 0; ok && o < O; o++) {
                    for (size_t i0 = 0; ok && i0 < I; i0 += 4096) {
                        size_t n = I - i0 < 4096 ? I - i0 : 4096;
                        for (size_t k = 0; k < n; k++) row[k] = w[(i0 + k) * O + o];
                        ok = fwrite(row, sizeof(float), n, f) == n;
                    }
                }
            } else if (t[i].values) {
                ok = fwrite(t[i].values, sizeof(float), t[i].count, f) == t[i].count;
            } else {
                unsigned char le[8];
                for (int b = 0; b < 8; b++) le[b] = (unsigned char)((uint64_t)m->batches_tracked[l] >> (8 * b));
                ok = fwrite(le, 1, 8, f) == 8;
            }
        }
    }
    if (ok) ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved_errno = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(saved_errno ? saved_errno : EIO));
    }
    if (rename(tmp, path) != 0) {
        saved_errno = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: cannot replace: %s", path, strerror(saved_errno));
    }
    return FM_OK;
}

/* ---------------------------------------------------------------- loading */

static const char *meta_string(const cJSON *meta, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int parse_float(const char *s, float *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

/* Reads a non-negative integer that JSON holds as a double, refusing fractions and huge values. */
static int json_size(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static fm_status parse_classes(const char *path, const char *text, fm_classes *out, fm_error *err) {
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    fm_status s = FM_OK;
    memset(out, 0, sizeof *out);
    if (!cJSON_IsArray(arr)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"classes\" is not a JSON list of names", path);
    } else {
        int n = cJSON_GetArraySize(arr);
        if (n < 2 || n > FM_MAX_CLASSES) {
            s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"classes\" holds %d names, need 2..%d", path, n, FM_MAX_CLASSES);
        }
        for (int i = 0; !s && i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(arr, i);
            if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= FM_CLASS_NAME_MAX) {
                s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"classes\" entry %d is not a name of 1..%d characters", path, i, FM_CLASS_NAME_MAX - 1);
            } else {
                snprintf(out->names[i], FM_CLASS_NAME_MAX, "%s", it->valuestring);
            }
        }
        out->n = n;
    }
    cJSON_Delete(arr);
    return s;
}

typedef struct {
    const char *path;
    const unsigned char *data; /* the byte buffer after the header */
    uint64_t data_len;
} st_file;

/* Checks one tensor's header entry against the expected shape, copies it into dst and records
 * its byte range [begin, end) in range. */
static fm_status load_tensor(const st_file *sf, const cJSON *root, const char *name,
                             const uint32_t *shape, int ndim, float *dst, int64_t *dst_i64,
                             uint64_t *range, fm_error *err) {
    const char *path = sf->path;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsObject(t)) return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    const char *dtype = meta_string(t, "dtype"), *want_dtype = dst ? "F32" : "I64";
    const uint64_t elem = dst ? 4 : 8;
    if (!dtype || strcmp(dtype, want_dtype) != 0) {
        return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s has dtype %s, expected %s", path, name,
                       dtype ? dtype : "(none)", want_dtype);
    }
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    int ok = cJSON_IsArray(sh) && cJSON_GetArraySize(sh) == ndim;
    uint64_t count = 1;
    for (int i = 0; ok && i < ndim; i++) {
        uint64_t d;
        ok = json_size(cJSON_GetArrayItem(sh, i), &d) && d == shape[i];
        count *= shape[i];
    }
    if (!ok) {
        char want[80] = "[";
        for (int i = 0; i < ndim; i++) {
            size_t len = strlen(want);
            snprintf(want + len, sizeof want - len, "%s%u", i ? ", " : "", shape[i]);
        }
        strcat(want, "]");
        char *got = cJSON_PrintUnformatted(sh);
        fm_status s = fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s has shape %s, the spec needs %s",
                              path, name, got ? got : "(none)", want);
        free(got);
        return s;
    }
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_size(cJSON_GetArrayItem(off, 0), &begin) || !json_size(cJSON_GetArrayItem(off, 1), &end)) {
        return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s: data_offsets must be two integers", path, name);
    }
    if (begin > end || end > sf->data_len) {
        return fm_fail(err, FM_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%llu, %llu] fall outside the %llu data bytes "
                       "(file truncated?)",
                       path, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)sf->data_len);
    }
    if (end - begin != count * elem) {
        return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s spans %llu bytes, its shape needs %llu",
                       path, name, (unsigned long long)(end - begin), (unsigned long long)(count * elem));
    }
    range[0] = begin;
    range[1] = end;
    if (dst_i64) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++) v |= (uint64_t)sf->data[begin + b] << (8 * b);
        if (v > (uint64_t)INT64_MAX) {
            return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s holds a negative count", path, name);
        }
        *dst_i64 = (int64_t)v;
        return FM_OK;
    }
    memcpy(dst, sf->data + begin, (size_t)(end - begin));
    for (uint64_t i = 0; i < count; i++) {
        if (!isfinite(dst[i])) {
            return fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s holds a non-finite value at index %llu",
                           path, name, (unsigned long long)i);
        }
    }
    return FM_OK;
}

/* [rows, cols] -> [cols, rows]: the file's [out, in] weight to the [in, out] kept in memory. */
static int transpose_in_place(float *a, size_t rows, size_t cols) {
    float *t = malloc(rows * cols * sizeof(float));
    if (!t) return 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
    }
    memcpy(a, t, rows * cols * sizeof(float));
    free(t);
    return 1;
}

static fm_status read_whole(const char *path, unsigned char **out, uint64_t *len, fm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fm_fail(err, FM_ERR_IO, "%s: not a regular file", path);
    if ((uint64_t)st.st_size > ST_MAX_FILE) {
        return fm_fail(err, FM_ERR_NOMEM, "%s: %lld bytes is over the %llu-byte model limit", path,
                       (long long)st.st_size, (unsigned long long)ST_MAX_FILE);
    }
    FILE *f = fopen(path, "rb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return fm_fail(err, FM_ERR_IO, "%s: read failed", path);
    }
    *out = buf;
    *len = n;
    return FM_OK;
}

fm_status fm_model_load(const char *path, fm_model **out, fm_error *err) {
    *out = NULL;
    unsigned char *buf = NULL;
    uint64_t len = 0;
    fm_status s = read_whole(path, &buf, &len, err);
    if (s) return s;
    cJSON *root = NULL;
    fm_model *m = NULL;
    uint64_t hlen = 0;
    if (len < 8) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file", path, (unsigned long long)len);
        goto done;
    }
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > len - 8) {
        s = fm_fail(err, FM_ERR_FORMAT,
                    "%s: header length %llu is impossible for a %llu-byte file (not a "
                    "safetensors file, or truncated)",
                    path, (unsigned long long)hlen, (unsigned long long)len);
        goto done;
    }
    if (buf[8] != '{') {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file)", path);
        goto done;
    }
    root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: header is not valid JSON", path);
        goto done;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (!cJSON_IsObject(meta)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: no __metadata__: not a model written by fmnist", path);
        goto done;
    }
    const char *format = meta_string(meta, "format"), *version = meta_string(meta, "format_version");
    if (!format || strcmp(format, ST_FORMAT) != 0) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata format is \"%s\", expected \"%s\"", path,
                    format ? format : "(none)", ST_FORMAT);
        goto done;
    }
    if (!version || strcmp(version, ST_VERSION) != 0) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: format_version \"%s\" is not supported (this build reads %s)",
                    path, version ? version : "(none)", ST_VERSION);
        goto done;
    }
    fm_model_params mp = fm_model_default_params();
    const char *spec = meta_string(meta, "spec"), *shape = meta_string(meta, "input_shape");
    const char *scaling = meta_string(meta, "scaling");
    unsigned c = 0, h = 0, w = 0;
    char trail;
    if (!spec) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata has no \"spec\"", path);
        goto done;
    }
    if (!shape || sscanf(shape, "%u,%u,%u%c", &c, &h, &w, &trail) != 3 || c != 1) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"input_shape\" must be \"1,H,W\", got \"%s\"",
                    path, shape ? shape : "(none)");
        goto done;
    }
    if (!scaling || (strcmp(scaling, "unit") != 0 && strcmp(scaling, "standard") != 0)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"scaling\" must be unit or standard, got \"%s\"",
                    path, scaling ? scaling : "(none)");
        goto done;
    }
    mp.scaling.kind = strcmp(scaling, "standard") == 0 ? FM_SCALE_STANDARD : FM_SCALE_UNIT;
    if (!parse_float(meta_string(meta, "scaling_mean"), &mp.scaling.mean) ||
        !parse_float(meta_string(meta, "scaling_std"), &mp.scaling.std) || !(mp.scaling.std > 0.0f)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata scaling_mean/scaling_std must be numbers, std > 0", path);
        goto done;
    }
    s = parse_classes(path, meta_string(meta, "classes"), &mp.classes, err);
    if (s) goto done;
    const cJSON *tta_item = cJSON_GetObjectItemCaseSensitive(meta, "tta");
    const char *tta = meta_string(meta, "tta");
    if (tta_item && (!tta || (strcmp(tta, "flip") != 0 && strcmp(tta, "none") != 0))) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata \"tta\" must be flip or none, got \"%s\"", path,
                    tta ? tta : "(not a string)");
        goto done;
    }
    /* A large spec must be in the file before anything is allocated for it: a short file naming
     * a spec of a quarter of a billion weights is refused here, not after a 1 GiB allocation
     * and its initialisation. Small ones go on to the per-tensor checks, whose messages name the
     * tensor at fault. */
    if (h >= 1 && w >= 1 && h <= FM_IDX_MAX_SIDE && w <= FM_IDX_MAX_SIDE) {
        fm_layer layers[FM_MAX_LAYERS];
        int n_layers = 0;
        char canonical[FM_SPEC_MAX];
        fm_error spec_err = {0};
        if (fm_spec_parse(spec, h, w, mp.classes.n, layers, &n_layers, canonical, sizeof canonical, &spec_err) == FM_OK) {
            uint64_t need = 0;
            for (int l = 0; l < n_layers; l++) {
                need += 4 * ((uint64_t)layers[l].n_params + layers[l].n_state);
                if (layers[l].kind == FM_LAYER_BATCHNORM) need += 8; /* num_batches_tracked */
            }
            uint64_t have = len - 8 - hlen;
            if (need > have && need > ST_PRECHECK_BYTES) {
                s = fm_fail(err, FM_ERR_FORMAT,
                            "%s: the spec \"%s\" needs %llu bytes of tensors but the file holds %llu "
                            "(truncated, or not this model's file)",
                            path, canonical, (unsigned long long)need, (unsigned long long)have);
                goto done;
            }
        }
    }
    s = fm_model_create(spec, h, w, &mp, &m, err);
    if (s) {
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err ? err->msg : "");
        s = fm_fail(err, FM_ERR_FORMAT, "%s: metadata: %s", path, inner);
        goto done;
    }
    fm_model_set_tta(m, tta && strcmp(tta, "flip") == 0);
    st_file sf = {path, buf + 8 + hlen, len - 8 - hlen};
    /* Byte ranges of every tensor, at most MAX_LAYER_TENSORS per layer. */
    uint64_t ranges[MAX_LAYER_TENSORS * FM_MAX_LAYERS][2];
    int n_ranges = 0;
    int expected = 1; /* __metadata__ */
    for (int l = 0; l < m->n_layers && !s; l++) {
        const fm_layer *L = &m->layers[l];
        layer_tensor t[MAX_LAYER_TENSORS];
        int nt = layer_tensors(m, l, t);
        for (int i = 0; i < nt && !s; i++) {
            char name[64];
            tensor_name(name, sizeof name, l, t[i].what);
            s = load_tensor(&sf, root, name, t[i].shape, t[i].ndim, t[i].values,
                            t[i].values ? NULL : &m->batches_tracked[l], ranges[n_ranges++], err);
            if (!s && L->kind == FM_LAYER_DENSE && strcmp(t[i].what, "weight") == 0 &&
                !transpose_in_place(t[i].values, L->out_size, L->in_size)) {
                s = fm_fail(err, FM_ERR_NOMEM, "%s: out of memory reading %s", path, name);
            }
            /* A variance below zero would make batch norm take the root of a negative number. */
            for (size_t k = 0; !s && t[i].values && strcmp(t[i].what, "running_var") == 0 && k < t[i].count; k++) {
                if (t[i].values[k] < 0.0f) {
                    s = fm_fail(err, FM_ERR_FORMAT, "%s: tensor %s holds a negative variance at index %zu",
                                path, name, k);
                }
            }
        }
        expected += nt;
    }
    if (s) goto done;
    if (cJSON_GetArraySize(root) != expected) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: holds %d tensors, the spec \"%s\" has %d", path,
                    cJSON_GetArraySize(root) - 1, m->spec, expected - 1);
        goto done;
    }
    /* The format wants the tensors to tile the data bytes exactly: no overlaps, holes or
     * trailing bytes. A sum of sizes misses an overlap paired with a hole of the same size, so
     * walk the ranges in order of their start (any order is allowed in the file). */
    for (int i = 1; i < n_ranges; i++) {
        for (int j = i; j > 0 && ranges[j][0] < ranges[j - 1][0]; j--) {
            uint64_t b = ranges[j][0], e = ranges[j][1];
            ranges[j][0] = ranges[j - 1][0], ranges[j][1] = ranges[j - 1][1];
            ranges[j - 1][0] = b, ranges[j - 1][1] = e;
        }
    }
    uint64_t covered = 0;
    for (int i = 0; i < n_ranges; i++) {
        if (ranges[i][0] != covered) {
            s = fm_fail(err, FM_ERR_FORMAT,
                        "%s: tensor data %s at byte %llu of the data section (tensors must "
                        "cover it exactly once)",
                        path, ranges[i][0] < covered ? "overlaps" : "leaves a hole",
                        (unsigned long long)(ranges[i][0] < covered ? ranges[i][0] : covered));
            goto done;
        }
        covered = ranges[i][1];
    }
    if (covered != sf.data_len) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: tensors cover %llu of the %llu data bytes", path,
                    (unsigned long long)covered, (unsigned long long)sf.data_len);
        goto done;
    }
done:
    cJSON_Delete(root);
    free(buf);
    if (s) {
        fm_model_free(m);
        return s;
    }
    *out = m;
    return FM_OK;
}
