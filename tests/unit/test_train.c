/* test_train.c — training parameters; fm_fit on a small separable problem (learning, determinism,
 * divergence, callbacks, history); evaluation and input scaling. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void test_train_params_check(test_ctx *t) {
    fm_error err = {0};
    fm_train_params p = fm_train_default_params();
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "defaults rejected: %s", err.msg);
    static const struct { const char *field, *needle; } cases[] = {
        {"epochs 0", "epochs"},          {"batch 0", "batch"},      {"lr -0.1", "learning rate"},
        {"lr nan", "learning rate"},     {"momentum 1", "momentum"}, {"nesterov", "Nesterov"},
        {"eps 0", "epsilon"},            {"l2 -0.01", "L2"},         {"beta1 1", "beta1"},
        {"optimizer 7", "optimizer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p = fm_train_default_params();
        switch (i) {
        case 0: p.epochs = 0; break;
        case 1: p.batch = 0; break;
        case 2: p.lr = -0.1f; break;
        case 3: p.lr = NAN; break;
        case 4: p.optimizer = FM_OPT_SGD, p.momentum = 1.0f; break;
        case 5: p.optimizer = FM_OPT_SGD, p.nesterov = 1; break;
        case 6: p.eps = 0.0f; break;
        case 7: p.l2 = -0.01f; break;
        case 8: p.beta1 = 1.0f; break;
        case 9: p.optimizer = (fm_optimizer)7; break;
        }
        CHECK(t, fm_train_params_check(&p, &err) == FM_ERR_ARG, "%s accepted", cases[i].field);
        CHECK_MSG(t, err.msg, cases[i].needle);
    }
    /* Nesterov is fine once there is momentum. */
    p = fm_train_default_params();
    p.optimizer = FM_OPT_SGD, p.momentum = 0.9f, p.nesterov = 1;
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "%s", err.msg);
    /* The rate a run uses: the given one, else the optimizer's default. */
    CHECK(t, fm_train_lr(&p) == 0.01f, "sgd default %g", (double)fm_train_lr(&p));
    p.optimizer = FM_OPT_ADAMW;
    CHECK(t, fm_train_lr(&p) == 0.001f, "adamw default %g", (double)fm_train_lr(&p));
    p.lr = 0.25f;
    CHECK(t, fm_train_lr(&p) == 0.25f, "given rate %g", (double)fm_train_lr(&p));
}

/* The band images (harness.h) at this file's noise, lift and bands. */
static fm_dataset make_data(uint32_t n, uint64_t seed) { return test_band_data(n, seed, 90, 150, 6); }

static fm_model *make_model(test_ctx *t, const char *spec, fm_scale_kind scaling) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("a,b,c", &mp.classes, &err) == FM_OK, "%s", err.msg);
    mp.scaling.kind = scaling;
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, 8, 8, &mp, &m, &err) == FM_OK, "%s", err.msg);
    return m;
}

static double train_accuracy(test_ctx *t, fm_model *m, const fm_dataset *ds) {
    fm_error err = {0};
    fm_eval_result ev;
    CHECK(t, fm_evaluate(m, ds, 100, 1, &ev, &err) == FM_OK, "%s", err.msg);
    return ev.accuracy;
}

void test_fit_learns(test_ctx *t) {
    fm_dataset ds = make_data(600, 1);
    for (int opt = 0; opt < 2; opt++) {
        fm_model *m = make_model(t, "dense:16:relu,dense:3", FM_SCALE_UNIT);
        if (!m) continue;
        double before = train_accuracy(t, m, &ds);
        fm_train_params p = fm_train_default_params();
        p.epochs = 5, p.val = 0, p.threads = 1;
        if (opt == 1) p.optimizer = FM_OPT_SGD, p.lr = 0.05f, p.momentum = 0.9f;
        fm_error err = {0};
        fm_history hist;
        CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
        double after = train_accuracy(t, m, &ds);
        CHECK(t, after > 0.9, "%s: training accuracy %.3f (%.3f before)", opt ? "SGD" : "Adam", after,
              before);
        CHECK(t, hist.n == 5, "history of %d epochs", hist.n);
        if (hist.n == 5) {
            CHECK(t, hist.epochs[4].loss < hist.epochs[0].loss, "loss %g -> %g", hist.epochs[0].loss,
                  hist.epochs[4].loss);
            CHECK(t, hist.epochs[4].accuracy > 0.9, "last epoch accuracy %g", hist.epochs[4].accuracy);
            for (int e = 0; e < 5; e++) {
                CHECK(t, hist.epochs[e].epoch == e + 1 && hist.epochs[e].epochs == 5, "epoch numbers");
                CHECK(t, isnan(hist.epochs[e].val_loss) && isnan(hist.epochs[e].val_accuracy),
                      "val_loss %g without a validation set", hist.epochs[e].val_loss);
            }
        }
        fm_history_free(&hist);
        fm_model_free(m);
    }
    fm_dataset_free(&ds);
}

/* Trains a fresh model and returns a copy of its parameters. */
static float *fit_params(test_ctx *t, const fm_dataset *ds, uint64_t seed, int threads, size_t *n) {
    fm_model *m = make_model(t, "dense:64:relu,dense:3", FM_SCALE_STANDARD);
    if (!m) return NULL;
    fm_train_params p = fm_train_default_params();
    /* Batch 64 into 64 units makes every product large enough for fm_gemm to use the threads. */
    p.epochs = 2, p.batch = 64, p.val = 100, p.seed = seed, p.threads = threads;
    fm_error err = {0};
    CHECK(t, fm_fit(m, ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    *n = m->n_params;
    float *copy = malloc(*n * sizeof(float));
    memcpy(copy, m->params, *n * sizeof(float));
    fm_model_free(m);
    return copy;
}

void test_fit_deterministic(test_ctx *t) {
    fm_dataset ds = make_data(600, 2);
    size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
    float *a = fit_params(t, &ds, 7, 1, &n1);
    float *b = fit_params(t, &ds, 7, 1, &n2);
    float *c = fit_params(t, &ds, 7, 2, &n3);
    float *d = fit_params(t, &ds, 8, 1, &n4);
    if (a && b && c && d) {
        CHECK(t, memcmp(a, b, n1 * sizeof(float)) == 0, "same seed, different parameters");
        CHECK(t, memcmp(a, c, n1 * sizeof(float)) == 0, "1 and 2 threads give different parameters");
        CHECK(t, memcmp(a, d, n1 * sizeof(float)) != 0, "seeds 7 and 8 give the same parameters");
    }
    free(a), free(b), free(c), free(d);
    fm_dataset_free(&ds);
}

void test_fit_bad_input(test_ctx *t) {
    fm_dataset ds = make_data(50, 3);
    fm_model *m = make_model(t, "dense:3", FM_SCALE_UNIT);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    fm_error err = {0};
    fm_history hist;
    p.val = 50;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, &hist, &err), FM_ERR_ARG, err, "validation", "50");
    CHECK(t, hist.n == 0 && hist.epochs == NULL, "history set on failure");
    p.val = 51;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, NULL, &err), FM_ERR_ARG, err, "validation", NULL);
    p.val = 0, p.batch = 0;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, NULL, &err), FM_ERR_ARG, err, "batch", NULL);
    p = fm_train_default_params();
    p.val = 0;
    fm_dataset wide = ds;
    wide.h = 4, wide.w = 16;
    CHECK_FAILS(t, fm_fit(m, &wide, &p, NULL, &err), FM_ERR_ARG, err, "8x8", "4x16");
    fm_dataset more = ds;
    more.n_classes = 4;
    CHECK_FAILS(t, fm_fit(m, &more, &p, NULL, &err), FM_ERR_ARG, err, "4 classes", NULL);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

void test_fit_diverges(test_ctx *t) {
    /* ReLU networks at a huge rate mostly die (all units off, finite loss) instead of blowing up,
     * so this uses stacked linear layers, whose updates grow each other's weights geometrically,
     * on inputs scaled up 100-fold (std 0.01): at lr 10 the logits overflow within a few steps. */
    fm_dataset ds = make_data(600, 4);
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("a,b,c", &mp.classes, &err) == FM_OK, "%s", err.msg);
    mp.scaling = (fm_scaling){FM_SCALE_UNIT, 0.0f, 0.01f};
    fm_model *m = NULL;
    CHECK(t, fm_model_create("dense:64,dense:64,dense:3", 8, 8, &mp, &m, &err) == FM_OK, "%s",
          err.msg);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.optimizer = FM_OPT_SGD, p.lr = 10.0f, p.epochs = 3, p.val = 0, p.threads = 1;
    fm_history hist;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, &hist, &err), FM_ERR_DIVERGED, err, "learning rate", "(10)");
    CHECK(t, hist.n == 0, "history of %d epochs after diverging in the first", hist.n);
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

typedef struct {
    int epochs_seen, batches_seen, last_batches;
} counts;

static int stop_after_first(const fm_epoch_stats *st, void *user) {
    ((counts *)user)->epochs_seen++;
    return st->epoch >= 1;
}

static void count_batch(int epoch, int batch, int batches, double loss, double acc, void *user) {
    counts *c = user;
    c->batches_seen++;
    c->last_batches = batches;
}

void test_fit_callbacks_and_history(test_ctx *t) {
    fm_dataset ds = make_data(300, 5);
    fm_model *m = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    counts c = {0, 0, 0};
    fm_train_params p = fm_train_default_params();
    p.epochs = 4, p.batch = 32, p.val = 44, p.threads = 1;
    p.on_epoch = stop_after_first, p.on_batch = count_batch, p.user = &c;
    fm_error err = {0};
    fm_history hist;
    CHECK_FAILS(t, fm_fit(m, &ds, &p, &hist, &err), FM_ERR_CANCELLED, err, "after epoch 1", NULL);
    CHECK(t, c.epochs_seen == 1, "on_epoch called %d times", c.epochs_seen);
    /* 256 training images in batches of 32. */
    CHECK(t, c.batches_seen == 8 && c.last_batches == 8, "%d batches of %d", c.batches_seen,
          c.last_batches);
    CHECK(t, hist.n == 1, "history of %d epochs", hist.n);
    if (hist.n == 1) {
        CHECK(t, isfinite(hist.epochs[0].val_loss) && hist.epochs[0].val_loss > 0,
              "val_loss %g with 44 held out", hist.epochs[0].val_loss);
        CHECK(t, hist.epochs[0].val_accuracy >= 0 && hist.epochs[0].val_accuracy <= 1, "val_accuracy");
        /* The validation numbers are those of the first 44 images. */
        fm_eval_result ev;
        fm_dataset head = fm_dataset_slice(&ds, 0, 44);
        CHECK(t, fm_evaluate(m, &head, 1000, 1, &ev, &err) == FM_OK, "%s", err.msg);
        CHECK_NEAR(t, hist.epochs[0].val_loss, ev.loss, 1e-9);
        CHECK_NEAR(t, hist.epochs[0].val_accuracy, ev.accuracy, 1e-12);
    }
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

void test_fit_l2_shrinks_weights(test_ctx *t) {
    fm_dataset ds = make_data(300, 6);
    double norm[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        fm_model *m = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
        if (!m) return;
        fm_train_params p = fm_train_default_params();
        p.optimizer = FM_OPT_SGD, p.lr = 0.1f;
        p.epochs = 3, p.val = 0, p.threads = 1, p.l2 = k ? 0.1f : 0.0f;
        fm_error err = {0};
        CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
        for (int l = 0; l < m->n_layers; l++) {
            const fm_layer *L = &m->layers[l];
            if (L->kind != FM_LAYER_DENSE) continue;
            for (size_t i = 0; i < (size_t)L->out_size * L->in_size; i++) {
                norm[k] += (double)m->params[L->w_off + i] * m->params[L->w_off + i];
            }
        }
        fm_model_free(m);
    }
    CHECK(t, norm[1] < 0.5 * norm[0], "sum of squared weights %g with L2, %g without", norm[1], norm[0]);
    fm_dataset_free(&ds);
}

void test_evaluate_per_class(test_ctx *t) {
    fm_dataset ds = make_data(257, 7);
    fm_model *m = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    /* Half trained, so that the classes are neither all right nor all wrong. */
    fm_train_params p = fm_train_default_params();
    p.epochs = 1, p.val = 0, p.threads = 1, p.lr = 3e-4f;
    fm_error err = {0};
    CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    fm_eval_result ev;
    CHECK(t, fm_evaluate(m, &ds, 50, 1, &ev, &err) == FM_OK, "%s", err.msg);
    CHECK(t, ev.n == 257 && ev.n_classes == 3, "n %u, %d classes", ev.n, ev.n_classes);
    uint32_t total = 0, want_n[3] = {0};
    double weighted = 0.0;
    for (uint32_t i = 0; i < ds.n; i++) want_n[ds.labels[i]]++;
    for (int c = 0; c < 3; c++) {
        CHECK(t, ev.per_class_n[c] == want_n[c], "class %d: %u images, want %u", c, ev.per_class_n[c],
              want_n[c]);
        total += ev.per_class_n[c];
        weighted += ev.per_class[c] * ev.per_class_n[c];
    }
    CHECK(t, total == ds.n, "per-class counts sum to %u", total);
    CHECK_NEAR(t, weighted / ds.n, ev.accuracy, 1e-12);
    /* Loss and accuracy from the batch size-independent definition: one batch gives the same. */
    fm_eval_result one;
    CHECK(t, fm_evaluate(m, &ds, 1000, 1, &one, &err) == FM_OK, "%s", err.msg);
    CHECK(t, one.accuracy == ev.accuracy, "accuracy depends on the batch");
    CHECK_NEAR(t, one.loss, ev.loss, 1e-6);
    /* And the same as counting argmax of fm_predict by hand. */
    float *probs = malloc((size_t)ds.n * 3 * sizeof(float));
    CHECK(t, fm_predict(m, &ds, 0, ds.n, probs, 1, &err) == FM_OK, "%s", err.msg);
    uint32_t right = 0;
    for (uint32_t i = 0; i < ds.n; i++) right += fm_argmax(probs + (size_t)i * 3, 3) == ds.labels[i];
    CHECK_NEAR(t, (double)right / ds.n, ev.accuracy, 1e-12);
    free(probs);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

void test_scaling(test_ctx *t) {
    fm_dataset ds = make_data(100, 8);
    fm_scaling unit = fm_scaling_fit(&ds, FM_SCALE_UNIT);
    CHECK(t, unit.kind == FM_SCALE_UNIT && unit.mean == 0.0f && unit.std == 1.0f, "unit scaling");
    fm_scaling sc = fm_scaling_fit(&ds, FM_SCALE_STANDARD);
    /* Population mean and standard deviation of p/255, two-pass in double. */
    size_t total = (size_t)ds.n * 64;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < total; i++) sum += ds.images[i] / 255.0;
    double mean = sum / total;
    for (size_t i = 0; i < total; i++) sq += (ds.images[i] / 255.0 - mean) * (ds.images[i] / 255.0 - mean);
    double std = sqrt(sq / total);
    CHECK(t, sc.kind == FM_SCALE_STANDARD, "kind %d", sc.kind);
    CHECK_NEAR(t, sc.mean, mean, 1e-6);
    CHECK_NEAR(t, sc.std, std, 1e-6);

    /* Scaled inputs use those statistics, for chosen rows and for the first rows. */
    int32_t rows[3] = {17, 0, 99};
    float out[3 * 64], head[2 * 64];
    fm_scale_images(out, &ds, rows, 3, sc);
    fm_scale_images(head, &ds, NULL, 2, sc);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 64; i++) {
            double want = (ds.images[(size_t)rows[r] * 64 + i] / 255.0 - sc.mean) / sc.std;
            CHECK_NEAR(t, out[r * 64 + i], want, 1e-5 * (1 + fabs(want)));
        }
    }
    for (int i = 0; i < 128; i++) {
        double want = (ds.images[i] / 255.0 - sc.mean) / sc.std;
        CHECK_NEAR(t, head[i], want, 1e-5 * (1 + fabs(want)));
    }
    /* A constant image set has no spread: std falls back to 1 rather than dividing by zero. */
    memset(ds.images, 77, total);
    fm_scaling flat = fm_scaling_fit(&ds, FM_SCALE_STANDARD);
    CHECK_NEAR(t, flat.mean, 77 / 255.0, 1e-7);
    CHECK(t, flat.std == 1.0f, "std %g", (double)flat.std);
    fm_dataset_free(&ds);
}

void test_fit_standard_scaling_from_training_part(test_ctx *t) {
    fm_dataset ds = make_data(300, 9);
    fm_model *m = make_model(t, "dense:3", FM_SCALE_STANDARD);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.epochs = 1, p.val = 100, p.threads = 1;
    fm_error err = {0};
    CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    /* The held-out images must not leak into the statistics. */
    fm_dataset train = fm_dataset_slice(&ds, 100, 200);
    fm_scaling want = fm_scaling_fit(&train, FM_SCALE_STANDARD), got = fm_model_scaling(m);
    CHECK(t, got.kind == FM_SCALE_STANDARD && got.mean == want.mean && got.std == want.std,
          "model scaling %g/%g, training part %g/%g", (double)got.mean, (double)got.std,
          (double)want.mean, (double)want.std);
    fm_scaling all = fm_scaling_fit(&ds, FM_SCALE_STANDARD);
    CHECK(t, all.mean != want.mean, "test cannot tell the parts apart");
    fm_model_free(m);
    fm_dataset_free(&ds);
}

/* Every inference path gives the same bits: a whole set or one image at a time, raw pixels or
 * already-scaled inputs, one thread or several (a server's single image runs the same arithmetic
 * as an evaluation batch). */
void test_predict_paths_agree(test_ctx *t) {
    fm_dataset ds = make_data(257, 9);
    fm_model *m = make_model(t, "dense:40:relu,dense:3", FM_SCALE_STANDARD);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.epochs = 1, p.val = 0, p.threads = 1;
    fm_error err = {0};
    CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    size_t D = (size_t)ds.h * ds.w, n = ds.n;
    float *all = malloc(n * 3 * sizeof(float)), *one = malloc(n * 3 * sizeof(float));
    float *x = malloc(n * D * sizeof(float));
    CHECK(t, fm_predict(m, &ds, 0, ds.n, all, 2, &err) == FM_OK, "%s", err.msg);
    for (uint32_t i = 0; i < ds.n; i++) {
        CHECK(t, fm_predict_pixels(m, ds.images + i * D, 1, one + i * 3, 1, &err) == FM_OK, "%s",
              err.msg);
    }
    CHECK(t, memcmp(all, one, n * 3 * sizeof(float)) == 0, "one image at a time differs");
    fm_scale_images(x, &ds, NULL, n, fm_model_scaling(m));
    memset(one, 0, n * 3 * sizeof(float));
    CHECK(t, fm_predict_inputs(m, x, ds.n, one, 3, &err) == FM_OK, "%s", err.msg);
    CHECK(t, memcmp(all, one, n * 3 * sizeof(float)) == 0, "scaled inputs on 3 threads differ");
    CHECK(t, fm_predict_inputs(m, x + 5 * D, 1, one, 1, &err) == FM_OK, "%s", err.msg);
    CHECK(t, memcmp(all + 5 * 3, one, 3 * sizeof(float)) == 0, "scaled single input differs");
    free(all), free(one), free(x);
    fm_model_free(m);
    fm_dataset_free(&ds);
}
/* ---------------------------------------------------------------- schedules, decay, smoothing */

void test_train_params_check_more(test_ctx *t) {
    fm_error err = {0};
    static const struct { const char *field, *needle; } cases[] = {
        {"weight decay with adam", "use it with adamw or sgd"},
        {"weight decay 2", "weight decay must be in [0, 1]"},
        {"schedule 9", "unknown schedule"},
        {"warm-up = epochs", "warm-up must be in [0, epochs) = [0, 10)"},
        {"warm-up -1", "warm-up"},
        {"step period 0", "step schedule period"},
        {"step factor 0", "step schedule factor"},
        {"label smoothing 1", "label smoothing must be in [0, 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fm_train_params p = fm_train_default_params();
        switch (i) {
        case 0: p.weight_decay = 0.01f; break;
        case 1: p.optimizer = FM_OPT_ADAMW, p.weight_decay = 2.0f; break;
        case 2: p.schedule = (fm_schedule)9; break;
        case 3: p.warmup = 10.0f; break;
        case 4: p.warmup = -1.0f; break;
        case 5: p.step_epochs = 0; break;
        case 6: p.step_gamma = 0.0f; break;
        case 7: p.label_smoothing = 1.0f; break;
        }
        CHECK(t, fm_train_params_check(&p, &err) == FM_ERR_ARG, "%s accepted", cases[i].field);
        CHECK_MSG(t, err.msg, cases[i].needle);
    }
    fm_train_params p = fm_train_default_params();
    p.optimizer = FM_OPT_ADAMW, p.weight_decay = 0.05f, p.schedule = FM_SCHED_ONECYCLE, p.warmup = 2.5f;
    p.label_smoothing = 0.1f;
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "%s", err.msg);
    p.optimizer = FM_OPT_SGD;
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "sgd with weight decay: %s", err.msg);
}

void test_fit_schedule_in_history(test_ctx *t) {
    fm_dataset ds = make_data(300, 10);
    fm_model *m = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    /* 256 training images in batches of 64: 4 steps an epoch, 20 in all, 1.5 epochs (6 steps)
     * of warm-up. */
    p.epochs = 5, p.batch = 64, p.val = 44, p.threads = 1, p.lr = 0.01f;
    p.schedule = FM_SCHED_COSINE, p.warmup = 1.5f;
    fm_error err = {0};
    fm_history hist;
    CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
    fm_schedule_params s = {FM_SCHED_COSINE, 6, 0, 0.1f};
    for (int e = 0; e < hist.n; e++) {
        double want = fm_schedule_lr(&s, 0.01f, 4 * (e + 1) - 1, 20);
        CHECK(t, hist.epochs[e].lr == want, "epoch %d: lr %.9g, want %.9g", e + 1, hist.epochs[e].lr, want);
    }
    CHECK(t, hist.n == 5 && hist.epochs[4].lr < 2e-4, "the cosine ends at %g", hist.n == 5 ? hist.epochs[4].lr : -1.0);
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

/* Sum of squared kernel weights, and the sum of |biases|. */
static void weight_norms(const fm_model *m, double *kernels, double *biases) {
    *kernels = *biases = 0.0;
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        size_t n = fm_layer_weight_count(L);
        for (size_t i = 0; i < n; i++) *kernels += (double)m->params[L->w_off + i] * m->params[L->w_off + i];
        for (size_t i = n; i < L->n_params; i++) *biases += fabs(m->params[L->w_off + i]);
    }
}

void test_fit_weight_decay_and_smoothing(test_ctx *t) {
    fm_dataset ds = make_data(300, 11);
    double kernels[2], biases[2], confidence[2];
    for (int k = 0; k < 2; k++) {
        fm_model *m = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
        if (!m) return;
        fm_train_params p = fm_train_default_params();
        p.optimizer = FM_OPT_ADAMW, p.lr = 0.01f, p.epochs = 4, p.val = 0, p.threads = 1;
        p.weight_decay = k ? 5.0e-1f : 0.0f;
        p.label_smoothing = k ? 0.3f : 0.0f;
        fm_error err = {0};
        CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
        weight_norms(m, &kernels[k], &biases[k]);
        /* Smoothed targets leave the model less sure of its answers. */
        float *probs = malloc((size_t)ds.n * 3 * sizeof(float));
        CHECK(t, fm_predict(m, &ds, 0, ds.n, probs, 1, &err) == FM_OK, "%s", err.msg);
        confidence[k] = 0;
        for (uint32_t i = 0; i < ds.n; i++) confidence[k] += probs[i * 3 + fm_argmax(probs + i * 3, 3)] / ds.n;
        free(probs);
        CHECK(t, train_accuracy(t, m, &ds) > 0.9, "accuracy with%s decay", k ? "" : "out");
        fm_model_free(m);
    }
    CHECK(t, kernels[1] < 0.7 * kernels[0], "squared kernels %g with decay, %g without", kernels[1], kernels[0]);
    CHECK(t, confidence[1] < confidence[0] - 0.05 && confidence[1] < 0.9, "mean confidence %g smoothed, %g not",
          confidence[1], confidence[0]);
    fm_dataset_free(&ds);
}

/* ---------------------------------------------------------------- callbacks */

/* make_data's images, but the first n_noise labels drawn at random: a validation part that can
 * not be learned, whose accuracy wanders, so plateaus come quickly and reproducibly. */
static fm_dataset noisy_head(uint32_t n, uint32_t n_noise, uint64_t seed) {
    fm_dataset ds = make_data(n, seed);
    fm_rng rng;
    fm_rng_seed(&rng, seed + 100);
    for (uint32_t i = 0; i < n_noise; i++) ds.labels[i] = (uint8_t)fm_rng_below(&rng, 3);
    return ds;
}

/* Each epoch is flagged improved exactly when its monitored figure beats every earlier one. */
static void check_improved_flags(test_ctx *t, const fm_history *h, fm_monitor monitor) {
    double best = 0;
    int best_epoch = 0;
    for (int e = 0; e < h->n; e++) {
        double score = monitor == FM_MONITOR_VAL_LOSS ? -h->epochs[e].val_loss : h->epochs[e].val_accuracy;
        int better = e == 0 || score > best;
        CHECK(t, h->epochs[e].improved == better, "epoch %d flagged %d", e + 1, h->epochs[e].improved);
        if (better) best = score, best_epoch = e + 1;
    }
    CHECK(t, h->best_epoch == best_epoch, "best epoch %d, want %d", h->best_epoch, best_epoch);
}

void test_fit_early_stopping(test_ctx *t) {
    fm_dataset ds = noisy_head(400, 150, 12);
    fm_model *m = make_model(t, "dense:16:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.epochs = 60, p.val = 150, p.threads = 1, p.lr = 0.01f, p.patience = 3;
    fm_error err = {0};
    fm_history hist;
    CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
    check_improved_flags(t, &hist, FM_MONITOR_VAL_ACCURACY);
    CHECK(t, hist.stopped_early && hist.n < 60, "ran %d of 60 epochs", hist.n);
    CHECK(t, hist.n == hist.best_epoch + 3, "stopped at %d, best %d, patience 3", hist.n, hist.best_epoch);
    CHECK(t, hist.restored_best, "best weights not restored");
    /* The model now is the best epoch's: the validation figures come back exactly. */
    if (hist.best_epoch > 0) {
        fm_eval_result ev;
        fm_dataset head = fm_dataset_slice(&ds, 0, 150);
        CHECK(t, fm_evaluate(m, &head, 1000, 1, &ev, &err) == FM_OK, "%s", err.msg);
        const fm_epoch_stats *b = &hist.epochs[hist.best_epoch - 1];
        CHECK(t, ev.accuracy == b->val_accuracy && ev.loss == b->val_loss, "restored model scores %g/%g, best epoch %g/%g",
              ev.accuracy, ev.loss, b->val_accuracy, b->val_loss);
    }
    fm_history_free(&hist);
    fm_model_free(m);

    /* Watching the loss instead: improvements are strict decreases. */
    m = make_model(t, "dense:16:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    p.monitor = FM_MONITOR_VAL_LOSS, p.patience = 2;
    CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
    check_improved_flags(t, &hist, FM_MONITOR_VAL_LOSS);
    CHECK(t, hist.stopped_early && hist.n == hist.best_epoch + 2, "loss: stopped at %d, best %d", hist.n, hist.best_epoch);
    fm_history_free(&hist);
    fm_model_free(m);

    /* Without early stopping the last weights stay, and nothing is restored. */
    m = make_model(t, "dense:16:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    p = fm_train_default_params();
    p.epochs = 5, p.val = 150, p.threads = 1, p.lr = 0.01f;
    CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
    CHECK(t, hist.n == 5 && !hist.stopped_early && !hist.restored_best && hist.best_epoch >= 1, "no callbacks");
    fm_history_free(&hist);
    fm_model_free(m);
    /* They need a validation split. */
    p.val = 0, p.patience = 2;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "val > 0", NULL);
    p.patience = 0, p.reduce_lr_patience = 1;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "val > 0", NULL);
    p.val = 10, p.reduce_lr_factor = 1.0f;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "reduction factor", NULL);
    fm_dataset_free(&ds);
}

void test_fit_reduce_lr_on_plateau(test_ctx *t) {
    fm_dataset ds = noisy_head(400, 150, 13);
    fm_model *m = make_model(t, "dense:16:relu,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.epochs = 16, p.val = 150, p.threads = 1, p.lr = 0.01f;
    p.reduce_lr_patience = 2, p.reduce_lr_factor = 0.5f, p.min_lr = 0.002f;
    fm_error err = {0};
    fm_history hist;
    CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
    CHECK(t, hist.n == 16 && !hist.stopped_early, "%d epochs", hist.n);
    check_improved_flags(t, &hist, FM_MONITOR_VAL_ACCURACY);
    /* Replay the rule: after 2 epochs without improvement halve the rate (not below 0.002). */
    float scale = 1.0f;
    int wait = 0, reductions = 0;
    for (int e = 0; e < hist.n; e++) {
        CHECK(t, hist.epochs[e].lr == (double)(0.01f * scale), "epoch %d: lr %g, want %g", e + 1,
              hist.epochs[e].lr, (double)(0.01f * scale));
        if (hist.epochs[e].improved) {
            wait = 0;
        } else if (++wait >= 2) {
            scale *= 0.5f;
            if (0.01f * scale < 0.002f) scale = 0.002f / 0.01f;
            wait = 0, reductions++;
        }
    }
    CHECK(t, reductions >= 2, "only %d reductions: the test needs plateaus", reductions);
    CHECK(t, hist.epochs[hist.n - 1].lr >= 0.002 - 1e-9, "below min_lr: %g", hist.epochs[hist.n - 1].lr);
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

void test_preset_train_params(test_ctx *t) {
    fm_train_params p = fm_train_default_params(), untouched = p;
    int tta = -1;
    /* Names without settings change nothing. */
    CHECK(t, fm_preset_train_params("mlp", &p, &tta) == 0 && tta == -1, "mlp has settings");
    CHECK(t, fm_preset_train_params("dense:10", &p, &tta) == 0 && fm_preset_train_params(NULL, &p, &tta) == 0,
          "a spec has settings");
    CHECK(t, memcmp(&p, &untouched, sizeof p) == 0, "parameters touched");
    fm_error err = {0};
    CHECK(t, fm_preset_train_params("cnn", &p, &tta) == 1, "cnn has no settings");
    CHECK(t, p.optimizer == FM_OPT_ADAM && p.batch == 32 && p.epochs == 15 && p.patience == 0 &&
                 p.schedule == FM_SCHED_COSINE && p.augment.flip &&
                 !p.augment.shift && tta == 0, "cnn settings");
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "cnn: %s", err.msg);
    p = fm_train_default_params();
    CHECK(t, fm_preset_train_params("cnn-best", &p, &tta) == 1, "cnn-best has no settings");
    CHECK(t, p.optimizer == FM_OPT_SGD && p.nesterov && p.momentum == 0.9f && p.lr == 0.1f && p.weight_decay == 5e-4f &&
                 p.schedule == FM_SCHED_ONECYCLE && p.label_smoothing == 0.1f && p.epochs == 40 && p.batch == 128 &&
                 p.augment.shift == 2 && p.augment.flip && p.augment.erase == 0.25f && tta == 1, "cnn-best settings");
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "cnn-best: %s", err.msg);
}

/* ---------------------------------------------------------------- weight averaging */

void test_fit_swa_averages(test_ctx *t) {
    fm_dataset ds = make_data(300, 14);
    fm_error err = {0};
    /* Three runs of one trajectory: 2 epochs, 3 epochs, and 3 epochs averaging the last 2 at the
     * schedule's (constant) rate. The averaged model holds the mean of the first two's weights,
     * by PyTorch's update. */
    fm_model *m2 = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    fm_model *m3 = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    fm_model *ma = make_model(t, "dense:8:relu,dense:3", FM_SCALE_UNIT);
    if (!m2 || !m3 || !ma) return;
    fm_train_params p = fm_train_default_params();
    p.optimizer = FM_OPT_SGD, p.lr = 0.05f, p.momentum = 0.9f, p.val = 60, p.threads = 1, p.epochs = 2;
    fm_history h2, h3, ha;
    CHECK(t, fm_fit(m2, &ds, &p, &h2, &err) == FM_OK, "%s", err.msg);
    p.epochs = 3;
    CHECK(t, fm_fit(m3, &ds, &p, &h3, &err) == FM_OK, "%s", err.msg);
    p.swa = 2;
    CHECK(t, fm_fit(ma, &ds, &p, &ha, &err) == FM_OK, "%s", err.msg);
    int same = 1;
    for (size_t i = 0; i < ma->n_params; i++) {
        float avg = m2->params[i];
        avg += (m3->params[i] - avg) / 2.0f;
        same &= ma->params[i] == avg;
    }
    CHECK(t, same, "the averaged weights are not the mean of epochs 2 and 3");
    CHECK(t, h2.swa_first == 0 && h3.swa_first == 0 && ha.swa_first == 2, "swa_first %d %d %d", h2.swa_first,
          h3.swa_first, ha.swa_first);
    CHECK(t, ha.n == 3 && h3.n == 3 && ha.epochs[2].val_accuracy == h3.epochs[2].val_accuracy &&
                 ha.epochs[2].lr == h3.epochs[2].lr, "the averaged run's epochs are not the plain run's");
    /* Its validation figures are the averaged model's. */
    fm_eval_result ev;
    fm_dataset head = fm_dataset_slice(&ds, 0, 60);
    CHECK(t, fm_evaluate(ma, &head, 1000, 1, &ev, &err) == FM_OK, "%s", err.msg);
    CHECK(t, ev.accuracy == ha.swa_val_accuracy && ev.loss == ha.swa_val_loss, "swa val %g/%g, evaluate %g/%g",
          ha.swa_val_accuracy, ha.swa_val_loss, ev.accuracy, ev.loss);
    CHECK(t, isnan(h3.swa_val_loss) && isnan(h3.swa_val_accuracy), "a plain run reports averaged figures");
    fm_history_free(&h2), fm_history_free(&h3), fm_history_free(&ha);
    fm_model_free(m2), fm_model_free(m3), fm_model_free(ma);
    fm_dataset_free(&ds);
}

void test_fit_swa_rate_and_batchnorm(test_ctx *t) {
    fm_dataset ds = make_data(320, 15);
    fm_error err = {0};
    /* The rate: a cosine schedule until the averaged epochs, then held, at swa_lr or by default
     * where the schedule was when they began. 256 training images in batches of 64: 4 steps an
     * epoch, 24 in all; the last 2 epochs (steps 16..23) averaged. */
    for (int k = 0; k < 2; k++) {
        fm_model *m = make_model(t, "bn,dense:3", FM_SCALE_UNIT);
        if (!m) return;
        fm_train_params p = fm_train_default_params();
        p.optimizer = FM_OPT_SGD, p.lr = 0.1f, p.epochs = 6, p.batch = 64, p.val = 64, p.threads = 1;
        p.schedule = FM_SCHED_COSINE, p.swa = 2, p.swa_lr = k ? 0.02f : 0.0f;
        fm_history h;
        CHECK(t, fm_fit(m, &ds, &p, &h, &err) == FM_OK, "%s", err.msg);
        fm_schedule_params s = {FM_SCHED_COSINE, 0, 0, 0.1f};
        float held = k ? 0.02f : fm_schedule_lr(&s, 0.1f, 16, 24);
        for (int e = 0; e < h.n; e++) {
            double want = e < 4 ? fm_schedule_lr(&s, 0.1f, 4 * (e + 1) - 1, 24) : held;
            CHECK(t, h.epochs[e].lr == want, "swa_lr %g, epoch %d: lr %.9g, want %.9g", (double)p.swa_lr, e + 1,
                  h.epochs[e].lr, want);
        }
        /* Batch norm's statistics are recomputed for the mean weights: the plain mean of the 4
         * batches' means (equal batches, so the training part's mean in any order), and
         * batches_tracked counts that pass alone. The input layer normalises the pixels, one
         * channel. */
        double sum = 0.0;
        for (uint32_t i = 64 * 64; i < (size_t)ds.n * 64; i++) sum += ds.images[i] / 255.0;
        double mean = sum / (256.0 * 64);
        CHECK(t, fabs(m->state[0] - mean) < 1e-5 * (1 + mean), "running mean %.8g, pixels' mean %.8g",
              (double)m->state[0], mean);
        CHECK(t, m->batches_tracked[0] == 4, "batches tracked %lld, want 4", (long long)m->batches_tracked[0]);
        fm_history_free(&h);
        fm_model_free(m);
    }
    /* One batch of the whole part: the running variance is its unbiased variance. */
    fm_model *m = make_model(t, "bn,dense:3", FM_SCALE_UNIT);
    if (!m) return;
    fm_train_params p = fm_train_default_params();
    p.optimizer = FM_OPT_SGD, p.lr = 0.1f, p.epochs = 2, p.batch = 256, p.val = 64, p.threads = 1, p.swa = 1;
    CHECK(t, fm_fit(m, &ds, &p, NULL, &err) == FM_OK, "%s", err.msg);
    double sum = 0.0, sq = 0.0, n = 256.0 * 64;
    for (uint32_t i = 64 * 64; i < (size_t)ds.n * 64; i++) sum += ds.images[i] / 255.0;
    for (uint32_t i = 64 * 64; i < (size_t)ds.n * 64; i++) sq += pow(ds.images[i] / 255.0 - sum / n, 2);
    double var = sq / (n - 1);
    CHECK(t, fabs(m->state[1] - var) < 1e-5 * (1 + var), "running variance %.8g, pixels' %.8g", (double)m->state[1], var);
    fm_model_free(m);
    fm_dataset_free(&ds);
}

void test_fit_swa_bad_settings(test_ctx *t) {
    fm_error err = {0};
    fm_train_params p = fm_train_default_params();
    p.swa = 11;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "0..epochs = 0..10 epochs, got 11", NULL);
    p.swa = -1;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "got -1", NULL);
    p.swa = 3, p.swa_lr = -0.1f;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "learning rate must be in [0, 10]", NULL);
    p.swa_lr = NAN;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "learning rate must be in [0, 10]", NULL);
    p.swa_lr = 0.01f, p.patience = 2;
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "early stopping exclude each other", NULL);
    p.patience = 0;
    CHECK(t, fm_train_params_check(&p, &err) == FM_OK, "%s", err.msg);
}
