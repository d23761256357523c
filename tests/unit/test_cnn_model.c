/* test_cnn_model.c — convolutional models: the spec grammar (forms, canonical specs, shapes, every
 * kind of bad item), the summary, whole-model gradient checks through conv, batch norm, pooling
 * and dropout, training versus inference mode, and model files with PyTorch's names. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static fm_model *make(test_ctx *t, const char *spec, uint32_t h, uint32_t w, const char *classes,
                      uint64_t seed) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    mp.seed = seed;
    if (classes) CHECK(t, fm_classes_parse(classes, &mp.classes, &err) == FM_OK, "%s", err.msg);
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, h, w, &mp, &m, &err) == FM_OK, "%s: %s", spec, err.msg);
    return m;
}

static void fill(float *p, size_t n, fm_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fm_rng_uniform(rng);
}

/* ---------------------------------------------------------------- specs */

void test_cnn_spec_forms(test_ctx *t) {
    static const struct { const char *spec, *canonical; size_t params, state; } forms[] = {
        /* The example; flatten is implied before the dense layer and made explicit.
         * conv 32*1*9+32 = 320, bn 2*32 (+ 64 running), dense 32*14*14*128+128 = 802,944,
         * dense 128*10+10 = 1,290. */
        {"conv:32:3:same,bn,relu,maxpool:2,dropout:0.25,dense:128,relu,dense:10",
         "conv:32:3:same,bn,relu,maxpool:2,dropout:0.25,flatten,dense:128,relu,dense:10",
         320 + 64 + 802944 + 1290, 64},
        /* Options in any order, an activation on the conv item, stride, overlapping pool. */
        {"conv:8:3:s2:relu:same, maxpool:3:2, dense:10:leakyrelu, dense:10",
         "conv:8:3:same:s2,relu,maxpool:3:2,flatten,dense:10,leakyrelu:0.01,dense:10",
         80 + (8 * 6 * 6 * 10 + 10) + 110, 0},
        /* valid is the default; pools with their stride spelled out equal to the size. */
        {"conv:4:5,avgpool:2:2,leakyrelu:0.3,flatten,dense:10",
         "conv:4:5:valid,avgpool:2,leakyrelu:0.3,flatten,dense:10", 104 + (4 * 12 * 12 * 10 + 10), 0},
        /* An all-convolutional net: global average pooling gives the logits. */
        {"conv:16:3:same:relu,batchnorm,conv:10:1:linear,gap", "conv:16:3:same,relu,bn,conv:10:1:valid,gap",
         160 + 32 + 170, 32},
        /* Batch norm after a dense layer (BatchNorm1d), dropout 0 is allowed. */
        {"dense:32,bn,relu,dropout:0,dense:10", "dense:32,bn,relu,dropout:0,dense:10",
         784 * 32 + 32 + 64 + 330, 64},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        fm_model *m = make(t, forms[i].spec, 28, 28, NULL, 3);
        if (!m) continue;
        CHECK(t, strcmp(fm_model_spec(m), forms[i].canonical) == 0, "\"%s\" -> \"%s\"", forms[i].spec,
              fm_model_spec(m));
        CHECK(t, m->n_params == forms[i].params && m->n_state == forms[i].state,
              "%s: %zu parameters, %zu state; want %zu, %zu", forms[i].spec, m->n_params, m->n_state,
              forms[i].params, forms[i].state);
        /* The canonical spec rebuilds the same model, bit for bit. */
        fm_model *again = make(t, fm_model_spec(m), 28, 28, NULL, 3);
        if (again) {
            CHECK(t, strcmp(fm_model_spec(again), fm_model_spec(m)) == 0 && again->n_params == m->n_params &&
                         memcmp(again->params, m->params, m->n_params * sizeof(float)) == 0,
                  "%s: canonical spec builds another model", forms[i].spec);
        }
        fm_model_free(again);
        fm_model_free(m);
    }
    /* Shapes: 28 -> same s2 conv 14 -> maxpool 3 s2 (14-3)/2+1 = 6 -> avgpool 2 -> 3. */
    fm_model *m = make(t, "conv:6:3:same:s2,maxpool:3:2,avgpool:2,conv:5:3,gap,dense:10", 28, 28, NULL, 1);
    if (m) {
        const uint32_t want[][3] = {{6, 14, 14}, {6, 6, 6}, {6, 3, 3}, {5, 1, 1}, {5, 1, 1}, {10, 1, 1}};
        CHECK(t, m->n_layers == 6, "%d layers", m->n_layers);
        for (int l = 0; l < m->n_layers && l < 6; l++) {
            const fm_layer *L = &m->layers[l];
            CHECK(t, L->out_c == want[l][0] && L->out_h == want[l][1] && L->out_w == want[l][2],
                  "layer %d: %ux%ux%u", l, L->out_c, L->out_h, L->out_w);
        }
        /* Glorot for a kernel uses fans C*K*K and OC*K*K: layer 3's limit is sqrt(6/(54+45)). */
        float limit = (float)sqrt(6.0 / (6 * 9 + 5 * 9)), mx = 0;
        const fm_layer *L = &m->layers[3];
        for (size_t i = 0; i < fm_layer_weight_count(L); i++) {
            float a = fabsf(m->params[L->w_off + i]);
            mx = a > mx ? a : mx;
        }
        CHECK(t, mx <= limit && mx > 0.8f * limit, "largest conv weight %g, limit %g", (double)mx, (double)limit);
        for (int i = 0; i < 5; i++) CHECK(t, m->params[L->b_off + i] == 0.0f, "bias not zero");
    }
    fm_model_free(m);
    /* Batch norm starts as the identity: gamma 1, beta 0, running mean 0, variance 1. */
    m = make(t, "conv:3:3,bn,dense:10", 8, 8, NULL, 1);
    if (m) {
        const fm_layer *L = &m->layers[1];
        for (int c = 0; c < 3; c++) {
            CHECK(t, m->params[L->w_off + c] == 1.0f && m->params[L->b_off + c] == 0.0f, "gamma/beta");
            CHECK(t, m->state[L->s_off + c] == 0.0f && m->state[L->s_off + 3 + c] == 1.0f, "running stats");
        }
    }
    fm_model_free(m);
}

void test_cnn_bad_specs(test_ctx *t) {
    static const struct { const char *spec, *needle1, *needle2; } bad[] = {
        {"conv", "\"conv\"", "filters and a kernel size"},
        {"conv:8", "\"conv:8\"", "kernel size"},
        {"conv:0:3,dense:10", "\"conv:0:3\"", "filters must be an integer in 1..4096"},
        {"conv:4097:3,dense:10", "\"conv:4097:3\"", "filters"},
        {"conv:8:0,dense:10", "\"conv:8:0\"", "kernel size must be an integer in 1..64"},
        {"conv:8:x,dense:10", "\"conv:8:x\"", "kernel size"},
        {"conv:8:3:full,dense:10", "\"conv:8:3:full\"", "unknown or repeated option \"full\""},
        {"conv:8:3:same:valid,dense:10", "\"conv:8:3:same:valid\"", "repeated option \"valid\""},
        {"conv:8:3:s2:s2,dense:10", "\"conv:8:3:s2:s2\"", "repeated option \"s2\""},
        {"conv:8:3:s0,dense:10", "\"conv:8:3:s0\"", "stride \"s0\""},
        {"conv:8:3:s2x,dense:10", "\"conv:8:3:s2x\"", "stride"},
        {"conv:8:3:relu:tanh,dense:10", "\"conv:8:3:relu:tanh\"", "\"tanh\""},
        {"conv:8:30,dense:10", "\"conv:8:30\"", "30x30 kernel does not fit its 28x28 input"},
        {"conv:8:3,conv:8:3,conv:8:25,dense:10", "\"conv:8:25\"", "its 24x24 input"},
        {"maxpool,dense:10", "\"maxpool\"", "needs a pool size"},
        {"maxpool:0,dense:10", "\"maxpool:0\"", "pool size must be an integer in 1..64"},
        {"maxpool:2:0,dense:10", "\"maxpool:2:0\"", "stride must be"},
        {"avgpool:2:2:2,dense:10", "\"avgpool:2:2:2\"", "needs a pool size"},
        {"conv:8:3,maxpool:27,dense:10", "\"maxpool:27\"", "27x27 pool is larger than its 26x26 input"},
        {"dropout,dense:10", "\"dropout\"", "probability in [0, 1)"},
        {"dense:10,dropout:1", "\"dropout:1\"", "probability"},
        {"dense:10,dropout:-0.1", "\"dropout:-0.1\"", "probability"},
        {"dense:10,dropout:nan", "\"dropout:nan\"", "probability"},
        {"dense:10,dropout:0.5x", "\"dropout:0.5x\"", "probability"},
        {"dense:10,leakyrelu:1.5", "\"leakyrelu:1.5\"", "slope"},
        {"dense:10,leakyrelu:0.1:3", "\"leakyrelu:0.1:3\"", "unknown layer"},
        {"gap:2,dense:10", "\"gap:2\"", "unknown layer"},
        {"bn:0.9,dense:10", "\"bn:0.9\"", "unknown layer"},
        {"pool:2,dense:10", "\"pool:2\"", "conv:FILTERS:KERNEL"},
        {"dense:128,conv:8:3,dense:10", "\"conv:8:3\"", "follows a flat layer of 128 values"},
        {"conv:8:3,flatten,maxpool:2,dense:10", "\"maxpool:2\"", "flat layer"},
        {"gap,gap,dense:10", "\"gap\"", "needs an image"},
        {"dense:64:relu:extra,dense:10", "\"dense:64:relu:extra\"", "at most an activation"},
        {"conv:8:3,gap", "ends with 8 outputs", "10 classes"},
        {"maxpool:2,bn,dropout:0.5", "no dense or conv layer", NULL},
        /* Residual blocks. */
        {"res(conv:8:3:same),dense:10", "block opened at item 1 turns its input of (1, 28, 28) into (8, 28, 28)",
         "\"res(conv:8:3:same)\""},
        {"conv:4:3,res(maxpool:2),dense:10", "into (4, 13, 13)", "keep the shape"},
        {"conv:4:3,res(relu,res(relu)),dense:10", "\"res(relu))\" (item 3) opens a residual block inside the one opened at item 2",
         "do not nest"},
        {"conv:4:3,relu),dense:10", "\"relu)\" (item 2) closes a residual block that no \"res(\" opened", NULL},
        {"conv:4:3,res(relu,dense:10", "block opened at item 2 is never closed", NULL},
        {"conv:1:28,res(dense:1),dense:10", "block opened at item 2 flattens its image input", "flatten before"},
        {"res(),dense:10", "empty layer at position 1", NULL},
        {"conv:4:3,res(),dense:10", "empty layer at position 2", NULL},
        {"conv:4:3,res(relu)),dense:10", "\"relu)\"", "unknown layer"},
        {"conv:4:3,res,dense:10", "\"res\"", "res(...)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fm_error err = {0};
        fm_model *m = (fm_model *)&err; /* must be reset to NULL */
        fm_status s = fm_model_create(bad[i].spec, 28, 28, NULL, &m, &err);
        CHECK_FAILS(t, s, FM_ERR_ARG, err, bad[i].needle1, bad[i].needle2);
        CHECK(t, m == NULL, "spec \"%s\": model not NULL", bad[i].spec);
        if (s == FM_OK) fm_model_free(m);
    }
    /* Size limits, on the largest images an IDX file may declare. */
    fm_error err = {0};
    fm_model *m = NULL;
    /* A spec that fits but whose spelt-out form would not: 50 slopes of 7 digits become 9. */
    char longer[FM_SPEC_MAX] = "";
    for (int i = 0; i < 50; i++) strcat(longer, "leakyrelu:0.1234567,");
    strcat(longer, "dense:10");
    CHECK_FAILS(t, fm_model_create(longer, 28, 28, NULL, &m, &err), FM_ERR_ARG, err, "canonical form", "1023");
    CHECK_FAILS(t, fm_model_create("conv:2:3:same,dense:10", 4096, 4096, NULL, &m, &err), FM_ERR_ARG, err,
                "\"conv:2:3:same\"", "over the limit");
    CHECK_FAILS(t, fm_model_create("conv:64:64:same,dense:10", 1024, 1024, NULL, &m, &err), FM_ERR_ARG, err,
                "im2col buffer", NULL);
}

void test_cnn_summary(test_ctx *t) {
    fm_model *m = make(t, "conv:32:3:same,bn,relu,maxpool:2,dropout:0.25,dense:128,relu,dense:10", 28, 28,
                       NULL, 1);
    if (!m) return;
    char buf[8192];
    fm_model_summary(m, "example", buf, sizeof buf);
    CHECK_MSG(t, buf, "layers.0 (Conv2D)          (None, 32, 28, 28)        320\n");
    CHECK_MSG(t, buf, "layers.1 (BatchNorm)       (None, 32, 28, 28)        128\n");
    CHECK_MSG(t, buf, "layers.3 (MaxPool2D)       (None, 32, 14, 14)        0\n");
    CHECK_MSG(t, buf, "layers.4 (Dropout)         (None, 32, 14, 14)        0\n");
    CHECK_MSG(t, buf, "layers.5 (Flatten)         (None, 6272)              0\n");
    CHECK_MSG(t, buf, "layers.6 (Dense)           (None, 128)               802,944\n");
    CHECK_MSG(t, buf, "Total params: 804,682");
    CHECK_MSG(t, buf, "Trainable params: 804,618\n");
    CHECK_MSG(t, buf, "Non-trainable params: 64\n");
    fm_model_free(m);
    m = make(t, "conv:10:3:same,gap", 28, 28, NULL, 1);
    if (m) {
        fm_model_summary(m, "gap", buf, sizeof buf);
        CHECK_MSG(t, buf, "layers.1 (GlobalAvgPool)   (None, 10)");
    }
    fm_model_free(m);
}

/* ---------------------------------------------------------------- gradients and modes */

enum { GB = 4 };

/* The mean loss of the batch in training mode; the dropout masks repeat because the generator
 * is reseeded before every pass. */
static double train_loss(fm_model *m, const float *x, const uint8_t *labels, float *probs, fm_rng *rng) {
    fm_rng_seed(rng, 99);
    memcpy(fm_model_input(m), x, (size_t)GB * fm_model_in_size(m) * sizeof(float));
    const float *logits = fm_model_forward(m, GB, 1);
    return softmax_xent_forward(probs, logits, labels, GB, m->classes.n, NULL) / GB;
}

static void check_model_gradients(test_ctx *t, const char *spec, uint32_t h, uint32_t w, uint64_t seed) {
    fm_model *m = make(t, spec, h, w, "a,b,c", seed);
    if (!m) return;
    fm_error err = {0};
    CHECK(t, fm_model_reserve(m, GB, &err) == FM_OK, "%s", err.msg);
    fm_rng rng, init;
    fm_rng_seed(&init, seed + 1);
    /* Biases and batch norm shifts away from their starting values. */
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        if (L->kind == FM_LAYER_DENSE || L->kind == FM_LAYER_CONV || L->kind == FM_LAYER_BATCHNORM) {
            size_t nb = L->kind == FM_LAYER_BATCHNORM ? L->in_c : L->n_params - fm_layer_weight_count(L);
            fill(m->params + L->b_off, nb, &init, -0.3f, 0.3f);
        }
    }
    size_t D = fm_model_in_size(m), P = m->n_params;
    float *x = malloc(GB * D * sizeof(float)), probs[GB * 3], dlogits[GB * 3];
    fill(x, GB * D, &init, -1, 1);
    const uint8_t labels[GB] = {0, 2, 1, 2};
    float *grads = calloc(P, sizeof(float));
    m->training = 1;
    m->rng = &rng;
    train_loss(m, x, labels, probs, &rng);
    softmax_xent_backward(dlogits, probs, labels, GB, 3);
    fm_model_backward(m, dlogits, grads, GB, 1, NULL);
    int nonzero = 0, bad = 0;
    const float step = 1e-3f;
    for (size_t i = 0; i < P; i++) {
        float keep = m->params[i];
        m->params[i] = keep + step;
        double up = train_loss(m, x, labels, probs, &rng);
        m->params[i] = keep - step;
        double down = train_loss(m, x, labels, probs, &rng);
        m->params[i] = keep;
        double fd = (up - down) / (2.0 * step);
        nonzero += fabs(fd) > 1e-4;
        /* ReLU and max pooling have kinks a step can cross; allow one parameter in a hundred. */
        if (!(fabs(grads[i] - fd) <= 2e-4 + 2e-2 * fabs(fd))) {
            bad++;
            if (bad > (int)P / 100) {
                CHECK(t, 0, "%s: param %zu: gradient %.7g, finite difference %.7g", spec, i, (double)grads[i], fd);
            }
        }
    }
    CHECK(t, nonzero > (int)P / 2, "%s: only %d of %zu gradients are non-zero", spec, nonzero, P);
    m->training = 0;
    m->rng = NULL;
    free(x), free(grads);
    fm_model_free(m);
}

void test_cnn_model_gradients(test_ctx *t) {
    check_model_gradients(t, "conv:3:3:same,bn,leakyrelu:0.1,maxpool:2,conv:4:2,tanh,dropout:0.3,dense:5,bn,sigmoid,dense:3",
                          6, 6, 1);
    check_model_gradients(t, "conv:4:3:same:s2,relu,avgpool:1,conv:3:3:same,gap", 7, 7, 2);
    /* batch norm with the ReLU after it fused into its passes: as the first layer (no input
     * gradient), after a dense layer, and before a dense layer that folds the ReLU in itself */
    check_model_gradients(t, "bn,relu,conv:3:3:same,bn,relu,dense:6,bn,relu,dense:3", 5, 5, 5);
}

/* Residual blocks: two in a row (the second's input is the first's add), one whose input is the
 * network's, and the dense cases where a ReLU is folded into a dense layer's passes: a ReLU that
 * is a block's input (its gradient gets the block's added before the mask), a dense layer that
 * is one (its output must be kept, not folded into the ReLU after it). */
void test_residual_gradients(test_ctx *t) {
    check_model_gradients(t, "conv:3:3:same,bn,relu,res(conv:3:3:same,bn,relu,conv:3:3:same,bn),relu,"
                             "res(conv:3:3:same,leakyrelu:0.1),maxpool:2,dense:3", 6, 6, 3);
    check_model_gradients(t, "res(conv:1:3:same,tanh),conv:2:3,res(bn),gap,dense:4,relu,res(dense:4,relu),"
                             "dense:5,res(relu,dense:5),sigmoid,dense:3", 6, 6, 4);
}

/* The add's output is its block's output plus its block's input, element by element, and the
 * canonical spec says so; the summary names what is added. */
void test_residual_forward(test_ctx *t) {
    fm_model *m = make(t, "res(conv:1:3:same,tanh),conv:2:3:same:relu,res( bn,relu ),gap,dense:10", 5, 5, NULL, 7);
    if (!m) return;
    CHECK(t, strcmp(fm_model_spec(m), "res(conv:1:3:same,tanh),conv:2:3:same,relu,res(bn,relu),gap,dense:10") == 0,
          "canonical %s", fm_model_spec(m));
    CHECK(t, m->n_layers == 10 && m->layers[2].kind == FM_LAYER_ADD && m->layers[2].from == -1 &&
                 m->layers[7].kind == FM_LAYER_ADD && m->layers[7].from == 4 && m->layers[4].read_by_add == 7 &&
                 m->layers[1].read_by_add == 0,
          "layer list");
    fm_error err = {0};
    enum { B = 3 };
    CHECK(t, fm_model_reserve(m, B, &err) == FM_OK, "%s", err.msg);
    fm_rng rng;
    fm_rng_seed(&rng, 8);
    float x[B * 25];
    fill(x, B * 25, &rng, -1, 1);
    memcpy(fm_model_input(m), x, sizeof x);
    m->training = 1, m->rng = &rng; /* batch statistics, so the block changes its input */
    fm_model_forward(m, B, 1);
    m->training = 0, m->rng = NULL;
    const float *a1 = m->acts + m->layers[1].act_off * m->cap_batch, *y2 = m->acts + m->layers[2].act_off * m->cap_batch;
    const float *a4 = m->acts + m->layers[4].act_off * m->cap_batch, *a6 = m->acts + m->layers[6].act_off * m->cap_batch;
    const float *y7 = m->acts + m->layers[7].act_off * m->cap_batch;
    int bad = 0;
    for (int i = 0; i < B * 25; i++) bad += y2[i] != a1[i] + x[i];
    for (int i = 0; i < B * 50; i++) bad += y7[i] != a6[i] + a4[i];
    CHECK(t, bad == 0, "%d sums differ", bad);
    char buf[4096];
    fm_model_summary(m, "res", buf, sizeof buf);
    CHECK_MSG(t, buf, "layers.2 (Add)             (None, 1, 5, 5)           0         + input\n");
    CHECK_MSG(t, buf, "layers.7 (Add)             (None, 2, 5, 5)           0         + layers.4\n");
    /* The rows summary --json lays out say the same. */
    fm_summary_row row;
    CHECK(t, fm_model_summary_rows(m) == 10, "%d rows", fm_model_summary_rows(m));
    fm_model_summary_row(m, 2, &row);
    CHECK(t, strcmp(row.name, "layers.2") == 0 && strcmp(row.type, "Add") == 0 && strcmp(row.adds, "input") == 0 && row.rank == 3 &&
                 row.shape[0] == 1 && row.shape[1] == 5 && row.shape[2] == 5 && row.params == 0,
          "row 2: %s %s adds %s", row.name, row.type, row.adds);
    fm_model_summary_row(m, 7, &row);
    CHECK(t, strcmp(row.adds, "layers.4") == 0 && row.shape[0] == 2, "row 7 adds %s", row.adds);
    fm_model_summary_row(m, 9, &row);
    CHECK(t, strcmp(row.type, "Dense") == 0 && row.rank == 1 && row.shape[0] == 10 && row.params == 30 &&
                 row.adds[0] == '\0',
          "row 9: %s rank %d params %zu", row.type, row.rank, row.params);
    fm_model_summary_row(m, 3, &row);
    CHECK(t, strcmp(row.type, "Conv2D") == 0 && row.params == 2 * 9 + 2 && row.state == 0, "row 3 params %zu", row.params);
    fm_model_free(m);
    /* The canonical form of consecutive blocks and of a one-layer block rebuilds the same layers. */
    m = make(t, "conv:4:3:same,res(relu),res(conv:4:1,bn),gap,dense:10", 6, 6, NULL, 1);
    if (m) {
        CHECK(t, strcmp(fm_model_spec(m), "conv:4:3:same,res(relu),res(conv:4:1:valid,bn),gap,dense:10") == 0,
              "canonical %s", fm_model_spec(m));
        CHECK(t, m->layers[2].from == 0 && m->layers[5].from == 2, "sources %d %d", m->layers[2].from, m->layers[5].from);
    }
    fm_model_free(m);
}

void test_cnn_training_and_inference_modes(test_ctx *t) {
    fm_model *m = make(t, "conv:4:3:same,bn,relu,dropout:0.5,dense:3", 5, 5, "a,b,c", 4);
    if (!m) return;
    fm_error err = {0};
    enum { B = 6 };
    CHECK(t, fm_model_reserve(m, B, &err) == FM_OK, "%s", err.msg);
    float x[B * 25], a[B * 3], b[B * 3];
    fm_rng rng;
    fm_rng_seed(&rng, 5);
    fill(x, B * 25, &rng, 0, 2);
    /* Inference: no generator needed, the same answer twice, running statistics untouched. */
    const fm_layer *bn = &m->layers[1];
    memcpy(fm_model_input(m), x, sizeof x);
    memcpy(a, fm_model_forward(m, B, 1), sizeof a);
    memcpy(fm_model_input(m), x, sizeof x);
    memcpy(b, fm_model_forward(m, B, 1), sizeof b);
    CHECK(t, memcmp(a, b, sizeof a) == 0, "inference is not repeatable");
    CHECK(t, m->state[bn->s_off] == 0.0f && m->batches_tracked[1] == 0, "inference moved the running mean");
    /* Training: batch statistics (the running ones move), and dropout changes the outputs. */
    m->training = 1, m->rng = &rng;
    memcpy(fm_model_input(m), x, sizeof x);
    memcpy(b, fm_model_forward(m, B, 1), sizeof b);
    CHECK(t, m->state[bn->s_off] != 0.0f && m->batches_tracked[1] == 1, "training left the running mean");
    CHECK(t, memcmp(a, b, sizeof a) != 0, "training gives the inference outputs");
    /* Dropout's masks come from the generator: the same seed, the same outputs. */
    float c[B * 3];
    fm_rng_seed(&rng, 77);
    memcpy(fm_model_input(m), x, sizeof x);
    memcpy(b, fm_model_forward(m, B, 1), sizeof b);
    fm_rng_seed(&rng, 77);
    memcpy(fm_model_input(m), x, sizeof x);
    memcpy(c, fm_model_forward(m, B, 1), sizeof c);
    CHECK(t, memcmp(b, c, sizeof b) == 0, "same seed, different dropout");
    m->training = 0, m->rng = NULL;
    fm_model_free(m);
}

void test_cnn_batch_limit(test_ctx *t) {
    fm_model *m = make(t, "conv:64:3:same,relu,conv:64:3:same,relu,dense:10", 28, 28, NULL, 1);
    if (!m) return;
    /* ~ (784 + 4*50176 + 10 + 2*50176 + ...) floats a row: far fewer than 1000 rows in 256 MiB. */
    uint32_t lim = fm_model_batch_limit(m, 1000);
    size_t row = (m->act_per_row + 2 * m->max_width + m->aux_per_row + m->idx_per_row + 10) * 4;
    CHECK(t, lim >= 1 && lim < 1000 && (size_t)lim * row <= FM_INFER_BYTES, "limit %u, %zu bytes a row", lim, row);
    CHECK(t, fm_model_batch_limit(m, 3) == 3, "a small request is kept");
    fm_model_free(m);
    m = make(t, "mlp", 28, 28, NULL, 1);
    if (m) CHECK(t, fm_model_batch_limit(m, 1000) == 1000, "the MLP evaluates 1000 at a time");
    fm_model_free(m);
}

/* ---------------------------------------------------------------- model files */

static void randomize_model(fm_model *m, uint64_t seed) {
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    fill(m->params, m->n_params, &rng, -1, 1);
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        if (L->kind != FM_LAYER_BATCHNORM) continue;
        fill(m->state + L->s_off, L->in_c, &rng, -0.5f, 0.5f);
        fill(m->state + L->s_off + L->in_c, L->in_c, &rng, 0.5f, 2.0f);
        m->batches_tracked[l] = 1234567890123ll + l;
    }
}

static const char *CNN_SPEC = "conv:4:3:same,bn,relu,maxpool:2,conv:6:3:valid:s1,leakyrelu:0.2,"
                              "dropout:0.25,dense:8,bn,tanh,dense:3";

void test_cnn_save_load(test_ctx *t) {
    fm_model *m = make(t, CNN_SPEC, 10, 9, "a,b,c", 2);
    if (!m) return;
    randomize_model(m, 3);
    char path[512];
    test_path(path, sizeof path, "cnn.safetensors");
    fm_error err = {0};
    CHECK(t, fm_model_save(m, path, &err) == FM_OK, "%s", err.msg);
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    if (bytes) {
        uint64_t hlen = 0;
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
        /* Floats for parameters and running statistics, one int64 per batch norm. */
        CHECK(t, 8 + hlen + 4 * (m->n_params + m->n_state) + 2 * 8 == len, "file of %zu bytes", len);
        char *header = malloc(hlen + 1);
        memcpy(header, bytes + 8, hlen);
        header[hlen] = '\0';
        /* PyTorch's names and layouts for nn.Sequential: Conv2d weight [out, in, kh, kw], the
         * flatten inserted at index 7, BatchNorm1d at 9. */
        CHECK_MSG(t, header, "\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,3,3]");
        CHECK_MSG(t, header, "\"layers.4.weight\":{\"dtype\":\"F32\",\"shape\":[6,4,3,3]");
        CHECK_MSG(t, header, "\"layers.1.running_var\":{\"dtype\":\"F32\",\"shape\":[4]");
        CHECK_MSG(t, header, "\"layers.1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]");
        CHECK_MSG(t, header, "\"layers.8.weight\":{\"dtype\":\"F32\",\"shape\":[8,36]");
        CHECK_MSG(t, header, "\"layers.9.running_mean\":{\"dtype\":\"F32\",\"shape\":[8]");
        CHECK_MSG(t, header, "\"spec\":\"conv:4:3:same,bn,relu,maxpool:2,conv:6:3:valid,leakyrelu:0.2,dropout:0.25,flatten,dense:8,bn,tanh,dense:3\"");
        CHECK_MSG(t, header, "\"format_version\":\"1\"");
        free(header);
    }
    free(bytes);
    fm_model *l = NULL;
    CHECK(t, fm_model_load(path, &l, &err) == FM_OK, "%s", err.msg);
    if (l) {
        CHECK(t, memcmp(l->params, m->params, m->n_params * sizeof(float)) == 0, "parameters differ");
        CHECK(t, l->n_state == m->n_state && memcmp(l->state, m->state, m->n_state * sizeof(float)) == 0,
              "running statistics differ");
        CHECK(t, l->batches_tracked[1] == m->batches_tracked[1] && l->batches_tracked[9] == m->batches_tracked[9],
              "num_batches_tracked %lld", (long long)l->batches_tracked[1]);
        enum { R = 5 };
        float x[R * 90], p1[R * 3], p2[R * 3];
        fm_rng rng;
        fm_rng_seed(&rng, 4);
        fill(x, R * 90, &rng, -1, 2);
        CHECK(t, fm_predict_inputs(m, x, R, p1, 1, &err) == FM_OK, "%s", err.msg);
        CHECK(t, fm_predict_inputs(l, x, R, p2, 1, &err) == FM_OK, "%s", err.msg);
        CHECK(t, memcmp(p1, p2, sizeof p1) == 0, "predictions differ after loading");
        fm_model_free(l);
    }
    fm_model_free(m);
}

/* Copies src to dst with the first `find` in the JSON header replaced by `repl` (the header
 * length rewritten, the data kept), or with vlen data bytes at data_at overwritten by value. */
static int edit_file(test_ctx *t, const char *src, const char *dst, const char *find, const char *repl,
                     long data_at, const void *value, size_t vlen) {
    size_t len = 0;
    unsigned char *bytes = test_read_file(src, &len);
    if (!bytes) return 0;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    size_t dlen = len - 8 - hlen;
    char *header = malloc(hlen + (repl ? strlen(repl) : 0) + 1);
    memcpy(header, bytes + 8, hlen);
    header[hlen] = '\0';
    if (find) {
        char *at = strstr(header, find);
        CHECK(t, at != NULL, "\"%s\" not in the header", find);
        if (at) {
            size_t fl = strlen(find), rl = strlen(repl);
            memmove(at + rl, at + fl, strlen(at + fl) + 1);
            memcpy(at, repl, rl);
        }
    }
    if (value) memcpy(bytes + 8 + hlen + data_at, value, vlen);
    size_t nh = strlen(header), out_len = 8 + nh + dlen;
    unsigned char *out = malloc(out_len);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)nh >> (8 * i));
    memcpy(out + 8, header, nh);
    memcpy(out + 8 + nh, bytes + 8 + hlen, dlen);
    int ok = test_write_file(dst, out, out_len);
    free(out), free(header), free(bytes);
    return ok;
}

void test_cnn_load_bad_files(test_ctx *t) {
    /* conv:2:3:same,bn,dense:3 on 4x4: layers.0.weight [2,1,3,3] at [0,72], layers.0.bias [2] at
     * [72,80], layers.1.weight/bias/running_mean/running_var [2] at 80, 88, 96, 104,
     * layers.1.num_batches_tracked at [112,120], then the dense layer. */
    fm_model *m = make(t, "conv:2:3:same,bn,dense:3", 4, 4, "a,b,c", 1);
    if (!m) return;
    char good[512], path[512];
    test_path(good, sizeof good, "cnn-small.safetensors");
    fm_error err = {0};
    CHECK(t, fm_model_save(m, good, &err) == FM_OK, "%s", err.msg);
    fm_model_free(m);
    static const struct { const char *find, *repl, *needle; } edits[] = {
        {"\"shape\":[2,1,3,3]", "\"shape\":[1,2,3,3]", "layers.0.weight has shape [1,2,3,3], the spec needs [2, 1, 3, 3]"},
        {"\"dtype\":\"I64\"", "\"dtype\":\"F64\"", "num_batches_tracked has dtype F64, expected I64"},
        {"\"layers.1.running_var\"", "\"layers.1.running_vaR\"", "tensor layers.1.running_var is missing"},
        {"\"shape\":[],\"data_offsets\":[112,120]", "\"shape\":[1],\"data_offsets\":[112,120]", "num_batches_tracked has shape"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        snprintf(path, sizeof path, "%s/cnn-edit%zu.safetensors", test_tmpdir(), i);
        if (!edit_file(t, good, path, edits[i].find, edits[i].repl, 0, NULL, 0)) continue;
        fm_model *l = NULL;
        CHECK_FAILS(t, fm_model_load(path, &l, &err), FM_ERR_FORMAT, err, path, edits[i].needle);
        fm_model_free(l);
    }
    const float negative = -0.5f, nan = NAN;
    const int64_t minus_one = -1;
    struct { long at; const void *v; size_t n; const char *needle; } data_edits[] = {
        {104 + 4, &negative, 4, "layers.1.running_var holds a negative variance at index 1"},
        {96, &nan, 4, "layers.1.running_mean holds a non-finite value at index 0"},
        {112, &minus_one, 8, "layers.1.num_batches_tracked holds a negative count"},
    };
    for (size_t i = 0; i < sizeof data_edits / sizeof data_edits[0]; i++) {
        snprintf(path, sizeof path, "%s/cnn-data%zu.safetensors", test_tmpdir(), i);
        if (!edit_file(t, good, path, NULL, NULL, data_edits[i].at, data_edits[i].v, data_edits[i].n)) continue;
        fm_model *l = NULL;
        CHECK_FAILS(t, fm_model_load(path, &l, &err), FM_ERR_FORMAT, err, path, data_edits[i].needle);
        fm_model_free(l);
    }
}

/* ---------------------------------------------------------------- training */

/* n images of 8x8 in 3 classes: class c is a bright bar (horizontal, vertical or diagonal) at a
 * random place on a noisy background, something a convolution finds wherever it is. */
static fm_dataset bars(uint32_t n, uint64_t seed) {
    fm_dataset ds = {0};
    ds.n = n, ds.h = 8, ds.w = 8, ds.n_classes = 3;
    ds.images = malloc((size_t)n * 64);
    ds.labels = malloc(n);
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (uint32_t i = 0; i < n; i++) {
        int c = (int)fm_rng_below(&rng, 3), at = 1 + (int)fm_rng_below(&rng, 5);
        uint8_t *img = ds.images + (size_t)i * 64;
        for (int p = 0; p < 64; p++) img[p] = (uint8_t)fm_rng_below(&rng, 80);
        for (int k = 1; k < 7; k++) {
            int y = c == 0 ? at : k, x = c == 1 ? at : k;
            img[y * 8 + x] = 230;
        }
        ds.labels[i] = (uint8_t)c;
    }
    return ds;
}

void test_cnn_fit(test_ctx *t) {
    fm_dataset ds = bars(400, 1);
    const char *spec = "conv:4:3:same,bn,relu,maxpool:2,dropout:0.1,dense:3";
    float *first = NULL;
    size_t P = 0;
    for (int threads = 1; threads <= 2; threads++) {
        fm_model *m = make(t, spec, 8, 8, "h,v,d", 1);
        if (!m) continue;
        fm_train_params p = fm_train_default_params();
        p.epochs = 4, p.val = 100, p.threads = threads, p.lr = 0.01f;
        fm_error err = {0};
        fm_history hist;
        CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
        CHECK(t, m->training == 0 && m->rng == NULL, "fm_fit left the model in training mode");
        if (hist.n == 4) {
            CHECK(t, hist.epochs[3].val_accuracy > 0.9, "validation accuracy %g", hist.epochs[3].val_accuracy);
        }
        CHECK(t, m->batches_tracked[1] == 4 * 10, "batch norm saw %lld batches", (long long)m->batches_tracked[1]);
        fm_history_free(&hist);
        if (threads == 1) {
            P = m->n_params;
            first = malloc(P * sizeof(float));
            memcpy(first, m->params, P * sizeof(float));
        } else if (first) {
            CHECK(t, memcmp(first, m->params, P * sizeof(float)) == 0, "1 and 2 threads train different models");
        }
        fm_model_free(m);
    }
    free(first);
    fm_dataset_free(&ds);
}

/* Mixed precision through fm_fit: a network whose second convolution takes the Winograd path
 * learns the task as the float one does, with the same bits on 1 and 2 threads, other bits than
 * the float run's (the products did change), and the model left in float mode; an unknown
 * precision is refused. */
void test_cnn_fit_bf16(test_ctx *t) {
    fm_dataset ds = bars(400, 1);
    const char *spec = "conv:8:3:same,relu,conv:8:3:same,bn,relu,maxpool:2,dense:3";
    float *runs[3] = {NULL, NULL, NULL};
    size_t P = 0;
    const struct { fm_precision precision; int threads; } configs[3] = {
        {FM_PRECISION_BF16, 1}, {FM_PRECISION_BF16, 2}, {FM_PRECISION_FLOAT32, 1}};
    for (int r = 0; r < 3; r++) {
        fm_model *m = make(t, spec, 8, 8, "h,v,d", 1);
        if (!m) continue;
        fm_train_params p = fm_train_default_params();
        p.epochs = 4, p.val = 100, p.threads = configs[r].threads, p.lr = 0.01f;
        p.precision = configs[r].precision;
        fm_error err = {0};
        fm_history hist;
        CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
        CHECK(t, m->training == 0 && m->bf16 == 0, "fm_fit left the model in training or bf16 mode");
        if (hist.n == 4) {
            CHECK(t, hist.epochs[3].val_accuracy > 0.9, "run %d: validation accuracy %g", r, hist.epochs[3].val_accuracy);
        }
        fm_history_free(&hist);
        P = m->n_params;
        runs[r] = malloc(P * sizeof(float));
        memcpy(runs[r], m->params, P * sizeof(float));
        fm_model_free(m);
    }
    if (runs[0] && runs[1] && runs[2]) {
        CHECK(t, memcmp(runs[0], runs[1], P * sizeof(float)) == 0, "bf16: 1 and 2 threads train different models");
        CHECK(t, memcmp(runs[0], runs[2], P * sizeof(float)) != 0, "bf16 trained the float model's bits");
    }
    for (int r = 0; r < 3; r++) free(runs[r]);
    fm_train_params p = fm_train_default_params();
    p.precision = (fm_precision)7;
    fm_error err = {0};
    CHECK_FAILS(t, fm_train_params_check(&p, &err), FM_ERR_ARG, err, "precision", NULL);
    fm_dataset_free(&ds);
}
