/* test_checkpoint.c — checkpoints: a run stopped mid-epoch and resumed ends bit-identical to one
 * never stopped (dense with the fused Adam, conv with batch norm, dropout, augmentation, SGD
 * momentum, a schedule and the callbacks); damaged, truncated and foreign files are refused
 * with a message saying what is wrong; a resume that does not match is refused; a failed write
 * leaves the previous checkpoint intact. */
#define _GNU_SOURCE /* memmem */
#include "harness.h"

#include "internal.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

/* The band images (harness.h) at this file's noise, lift and bands. */
static fm_dataset ck_data(uint32_t n, uint64_t seed) { return test_band_data(n, seed, 120, 120, 6); }

static fm_model *ck_model(test_ctx *t, const char *spec) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("a,b,c", &mp.classes, &err) == FM_OK, "%s", err.msg);
    mp.seed = 3;
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, 8, 8, &mp, &m, &err) == FM_OK, "%s: %s", spec, err.msg);
    return m;
}

/* Sets *flag when the run reaches (epoch, batch), as a signal handler would. */
typedef struct {
    volatile sig_atomic_t *flag;
    int epoch, batch;
} stop_at;

static void stop_at_batch(int epoch, int batch, int batches, double loss, double acc, void *user) {
    stop_at *s = user;
    if (epoch == s->epoch && batch == s->batch) *s->flag = 1;
}

/* Trains spec with p straight through, then again stopped at (epoch, batch) and resumed from the
 * checkpoint; the weights, statistics and history must match bit for bit. */
static void check_resume(test_ctx *t, const char *spec, fm_train_params p, int epoch, int batch,
                         int threads) {
    fm_dataset ds = ck_data(500, 11);
    fm_error err = {0};
    char path[512];
    test_path(path, sizeof path, "resume.fmck");
    p.threads = threads;
    fm_model *a = ck_model(t, spec), *b = ck_model(t, spec);
    if (!a || !b) goto done;
    fm_history ha, hb;
    CHECK(t, fm_fit(a, &ds, &p, &ha, &err) == FM_OK, "%s", err.msg);

    volatile sig_atomic_t flag = 0;
    stop_at sa = {&flag, epoch, batch};
    fm_train_params ps = p;
    ps.checkpoint = path, ps.checkpoint_note = "note text", ps.stop = &flag;
    ps.on_batch = stop_at_batch, ps.user = &sa;
    CHECK_FAILS(t, fm_fit(b, &ds, &ps, &hb, &err), FM_ERR_CANCELLED, err, "checkpoint saved to", "resume.fmck");
    fm_history_free(&hb);
    fm_model_free(b);
    b = NULL;

    fm_checkpoint *ck = NULL;
    CHECK(t, fm_checkpoint_load(path, &ck, &err) == FM_OK, "%s", err.msg);
    if (!ck) goto done;
    int done_e, done_b, batches, stopped;
    fm_checkpoint_position(ck, &done_e, &done_b, &batches, &stopped);
    /* Stopped after an epoch's last batch, the epoch is finished first. */
    int want_e = batch == batches ? epoch : epoch - 1, want_b = batch == batches ? 0 : batch;
    CHECK(t, done_e == want_e && done_b == want_b && !stopped, "position %d, %d of %d; wanted %d, %d",
          done_e, done_b, batches, want_e, want_b);
    CHECK(t, strcmp(fm_checkpoint_note(ck), "note text") == 0, "note \"%s\"", fm_checkpoint_note(ck));
    fm_train_params pr = fm_checkpoint_train_params(ck);
    CHECK(t, pr.lr == p.lr && pr.epochs == p.epochs && pr.augment.flip == p.augment.flip, "settings differ");
    CHECK(t, fm_checkpoint_model(ck, &b, &err) == FM_OK, "%s", err.msg);
    if (b) {
        pr.resume = ck, pr.checkpoint = path;
        CHECK(t, fm_fit(b, &ds, &pr, &hb, &err) == FM_OK, "%s", err.msg);
        CHECK(t, memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0,
              "%s: resumed weights differ from the uninterrupted run's", spec);
        CHECK(t, a->n_state == 0 || memcmp(a->state, b->state, a->n_state * sizeof(float)) == 0,
              "%s: batch norm statistics differ", spec);
        CHECK(t, ha.n == hb.n && ha.best_epoch == hb.best_epoch && ha.restored_best == hb.restored_best,
              "history %d/%d epochs, best %d/%d", ha.n, hb.n, ha.best_epoch, hb.best_epoch);
        CHECK(t, ha.swa_first == hb.swa_first &&
                     memcmp(&ha.swa_val_accuracy, &hb.swa_val_accuracy, sizeof(double)) == 0 &&
                     memcmp(&ha.swa_val_loss, &hb.swa_val_loss, sizeof(double)) == 0,
              "%s: weight averaging's figures differ", spec);
        for (int i = 0; i < ha.n && i < hb.n; i++) {
            CHECK(t, ha.epochs[i].loss == hb.epochs[i].loss && ha.epochs[i].accuracy == hb.epochs[i].accuracy &&
                         memcmp(&ha.epochs[i].val_loss, &hb.epochs[i].val_loss, sizeof(double)) == 0 &&
                         ha.epochs[i].lr == hb.epochs[i].lr,
                  "%s: epoch %d's figures differ", spec, i + 1);
        }
        fm_history_free(&hb);
    }
    fm_history_free(&ha);
    fm_checkpoint_free(ck);
done:
    fm_model_free(a);
    fm_model_free(b);
    fm_dataset_free(&ds);
}

void test_checkpoint_resume_bit_identical(test_ctx *t) {
    fm_train_params p = fm_train_default_params();
    p.epochs = 3, p.batch = 16, p.val = 100, p.seed = 5;
    /* Plain Adam on dense layers: the step fused into the backward pass; dropout draws. */
    check_resume(t, "dense:16:relu,dropout:0.3,dense:3", p, 2, 7, 1);
    check_resume(t, "dense:16:relu,dropout:0.3,dense:3", p, 1, 25, 2); /* the epoch's last batch */
    /* Conv, batch norm, dropout, augmentation, SGD with Nesterov momentum, a cosine schedule
     * with warm-up, early stopping with restore and plateau reduction. */
    fm_train_params q = p;
    q.optimizer = FM_OPT_SGD, q.lr = 0.05f, q.momentum = 0.9f, q.nesterov = 1;
    q.schedule = FM_SCHED_COSINE, q.warmup = 0.5f, q.label_smoothing = 0.1f;
    q.augment.shift = 1, q.augment.flip = 1, q.augment.erase = 0.3f;
    q.patience = 2, q.reduce_lr_patience = 1, q.epochs = 4;
    check_resume(t, "conv:4:3:same,bn,relu,maxpool:2,dropout:0.25,dense:3", q, 3, 4, 1);
    /* AdamW with weight decay, one-cycle. */
    fm_train_params w = p;
    w.optimizer = FM_OPT_ADAMW, w.weight_decay = 0.01f, w.schedule = FM_SCHED_ONECYCLE;
    check_resume(t, "conv:4:3,relu,gap,dense:3", w, 2, 1, 2);
    /* Weight averaging over the last 2 of 4 epochs (batch norm's statistics recomputed at the
     * end), stopped inside the averaged epochs and before them. */
    fm_train_params a = q;
    a.patience = 0, a.swa = 2, a.swa_lr = 0.01f;
    check_resume(t, "conv:4:3:same,bn,relu,maxpool:2,dense:3", a, 4, 3, 1);
    a.swa_lr = 0.0f;
    check_resume(t, "conv:4:3:same,bn,relu,maxpool:2,dense:3", a, 2, 5, 2);
    /* Mixed precision, through a convolution that takes the Winograd path (8 input channels):
     * the checkpoint keeps the precision, so the resumed run's products are bf16 too. */
    fm_train_params b = p;
    b.precision = FM_PRECISION_BF16, b.epochs = 2;
    check_resume(t, "conv:8:3:same,relu,conv:8:3:same,bn,relu,maxpool:2,dense:3", b, 1, 3, 2);
}

/* Replaces the CRC-32 trailer after an edit, so that only the edited field is wrong. */
static void fix_crc(unsigned char *buf, size_t n) {
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(n - 12));
    memcpy(buf + n - 4, &crc, 4);
}

/* Writes buf (n bytes) to name and checks that loading it fails with the given phrase. */
static void check_refused(test_ctx *t, const char *name, const unsigned char *buf, size_t n,
                          const char *phrase) {
    char path[512];
    test_path(path, sizeof path, name);
    CHECK(t, test_write_file(path, buf, n), "cannot write %s", path);
    fm_error err = {0};
    fm_checkpoint *ck = NULL;
    CHECK_FAILS(t, fm_checkpoint_load(path, &ck, &err), FM_ERR_FORMAT, err, phrase, name);
    CHECK(t, ck == NULL, "%s: a refused checkpoint was returned", name);
}

void test_checkpoint_rejects_damage(test_ctx *t) {
    fm_dataset ds = ck_data(300, 4);
    fm_model *m = ck_model(t, "dense:8:relu,dense:3");
    char path[512];
    test_path(path, sizeof path, "good.fmck");
    fm_train_params p = fm_train_default_params();
    p.epochs = 1, p.batch = 32, p.val = 50, p.checkpoint = path;
    fm_error err = {0};
    if (!m) goto done;
    CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    size_t n = 0;
    unsigned char *good = test_read_file(path, &n), *bad = malloc(n + 16);
    if (!good || !bad || n < 200) {
        CHECK(t, 0, "no checkpoint written at %s", path);
        free(good), free(bad);
        goto done;
    }
    fm_checkpoint *ck = NULL;
    CHECK(t, fm_checkpoint_load(path, &ck, &err) == FM_OK, "%s", err.msg);
    fm_checkpoint_free(ck);

    check_refused(t, "empty.fmck", good, 0, "not an fmnist checkpoint");
    memcpy(bad, good, n), memcpy(bad, "GGUFxxxx", 8);
    check_refused(t, "magic.fmck", bad, n, "not an fmnist checkpoint");
    check_refused(t, "short.fmck", good, 20, "truncated");
    check_refused(t, "cut.fmck", good, n - 100, "truncated");
    memcpy(bad, good, n), memset(bad + n, 0, 16);
    check_refused(t, "long.fmck", bad, n + 16, "truncated or extended");
    memcpy(bad, good, n), bad[8] = 1;
    check_refused(t, "version.fmck", bad, n, "version 1, this fmnist reads version 3");
    memcpy(bad, good, n), bad[n / 2] ^= 0x40;
    check_refused(t, "flipped.fmck", bad, n, "CRC-32");
    /* A valid file whose spec no longer matches its arrays: another model's checkpoint. */
    memcpy(bad, good, n);
    unsigned char *spec = memmem(bad, n, "dense:8,relu", 12);
    CHECK(t, spec != NULL, "spec not found in the checkpoint");
    if (spec) {
        spec[6] = '9';
        fix_crc(bad, n);
        check_refused(t, "model.fmck", bad, n, "has 615 parameters");
    }
    /* A shuffled order that repeats a row (the last 4 bytes before the trailer are its end). */
    memcpy(bad, good, n);
    memcpy(bad + n - 16, bad + n - 20, 4);
    fix_crc(bad, n);
    check_refused(t, "order.fmck", bad, n, "not a permutation");

    /* Resuming with something else than the checkpoint's run. */
    CHECK(t, fm_checkpoint_load(path, &ck, &err) == FM_OK, "%s", err.msg);
    if (ck) {
        fm_train_params r = p;
        r.resume = ck, r.checkpoint = NULL, r.epochs = 2;
        fm_model *other = ck_model(t, "dense:9:relu,dense:3");
        if (other) CHECK_FAILS(t, fm_fit(other, &ds, &r, NULL, &err), FM_ERR_ARG, err, "checkpoint is for model", "dense:8");
        fm_model_free(other);
        r.lr = 0.5f;
        CHECK_FAILS(t, fm_fit(m, &ds, &r, NULL, &err), FM_ERR_ARG, err, "setting lr differs", NULL);
        r.lr = p.lr, r.epochs = 1;
        CHECK_FAILS(t, fm_fit(m, &ds, &r, NULL, &err), FM_ERR_ARG, err, "finished its 1 epochs", NULL);
        r.epochs = 2;
        fm_dataset ds2 = ck_data(300, 5);
        CHECK_FAILS(t, fm_fit(m, &ds2, &r, NULL, &err), FM_ERR_ARG, err, "training data differs", NULL);
        fm_dataset_free(&ds2);
        fm_checkpoint_free(ck);
    }

    /* A write that fails keeps the previous checkpoint: here the temporary name is a folder. */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(t, mkdir(tmp, 0777) == 0, "cannot make %s", tmp);
    p.epochs = 2;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, NULL, &err), FM_ERR_IO, err, "good.fmck.tmp: cannot create", "previous checkpoint is kept");
    rmdir(tmp);
    size_t n2 = 0;
    unsigned char *after = test_read_file(path, &n2);
    CHECK(t, after && n2 == n && memcmp(after, good, n) == 0, "the previous checkpoint changed");
    free(after);
    /* A folder that does not exist. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nowhere/x.fmck", test_tmpdir());
    p.checkpoint = missing;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, NULL, &err), FM_ERR_IO, err, "nowhere/x.fmck.tmp: cannot create", NULL);
    free(good), free(bad);
done:
    fm_model_free(m);
    fm_dataset_free(&ds);
}

/* A run averaging its last epochs' weights cannot be extended once it has begun averaging (the
 * averaged epochs would move); before that it can, and the flag and the mean must agree. */
void test_checkpoint_swa_extension(test_ctx *t) {
    fm_dataset ds = ck_data(300, 6);
    fm_error err = {0};
    char path[512];
    test_path(path, sizeof path, "swa.fmck");
    fm_train_params p = fm_train_default_params();
    p.epochs = 3, p.batch = 50, p.val = 50, p.swa = 1, p.checkpoint = path;
    for (int k = 0; k < 2; k++) {
        fm_model *m = ck_model(t, "dense:8:relu,dense:3");
        if (!m) break;
        /* k = 0: stopped after epoch 2 (before the averaged epoch); k = 1: finished. */
        volatile sig_atomic_t flag = 0;
        stop_at sa = {&flag, 2, 5};
        fm_train_params ps = p;
        ps.stop = &flag, ps.on_batch = k ? NULL : stop_at_batch, ps.user = &sa;
        fm_status st = fm_fit(m, &ds, &ps, NULL, &err);
        CHECK(t, st == (k ? FM_OK : FM_ERR_CANCELLED), "run %d: %s", k, err.msg);
        fm_checkpoint *ck = NULL;
        CHECK(t, fm_checkpoint_load(path, &ck, &err) == FM_OK, "%s", err.msg);
        if (ck) {
            fm_train_params r = fm_checkpoint_train_params(ck);
            r.resume = ck, r.checkpoint = NULL, r.epochs = 4;
            if (k == 0) {
                fm_history h;
                CHECK(t, fm_fit(m, &ds, &r, &h, &err) == FM_OK, "extending before the averaging: %s", err.msg);
                CHECK(t, h.n == 4 && h.swa_first == 4, "extended run: %d epochs, averaging from %d", h.n, h.swa_first);
                fm_history_free(&h);
            } else {
                CHECK_FAILS(t, fm_fit(m, &ds, &r, NULL, &err), FM_ERR_ARG, err, "cannot be given more epochs",
                            "from epoch 3 of 3");
            }
            fm_checkpoint_free(ck);
        }
        fm_model_free(m);
    }
    /* The averaging flag without its mean: the setting says 1 epoch, the file holds none. */
    size_t n = 0;
    unsigned char *buf = test_read_file(path, &n);
    if (buf) {
        /* The swa setting sits just before the position fields; easier to find the mean's flag:
         * the order (250 rows) and the trailer end the file, the mean (8*64+8 + 8*3+3 floats)
         * and its flag come before. */
        size_t order = 250 * 4, mean = (8 * 64 + 8 + 8 * 3 + 3) * 4;
        size_t flag_at = n - 12 - order - mean - 4;
        uint32_t one;
        memcpy(&one, buf + flag_at, 4);
        CHECK(t, one == 1, "the mean's flag is not where expected (%u)", one);
        unsigned char *cut = malloc(n);
        if (cut) {
            memcpy(cut, buf, flag_at);
            memset(cut + flag_at, 0, 4);
            memcpy(cut + flag_at + 4, buf + flag_at + 4 + mean, n - flag_at - 4 - mean);
            size_t m = n - mean;
            uint64_t body = m - 12;
            memcpy(cut + m - 12, &body, 8);
            fix_crc(cut, m);
            check_refused(t, "swa-flag.fmck", cut, m, "averaged weights do not match");
            free(cut);
        }
        free(buf);
    }
    fm_dataset_free(&ds);
}
