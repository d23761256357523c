/* test_layers.c — the dense layer's and the activations' backward passes against central finite
 * differences of their forward passes, the softmax cross-entropy against hand-computed values,
 * and a whole-model gradient check. The convolutional layers are in test_cnn_layers.c. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void fill(float *p, size_t n, fm_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fm_rng_uniform(rng);
}

/* The scalar the checks differentiate: L = sum(out * R), so dL/dout = R. */
static double dot_loss(const float *out, const float *R, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

/* Tolerance for a finite-difference estimate: float forward passes round at ~1e-7 of the loss,
 * which the division by 2h magnifies, plus a relative part for large gradients. */
#define FD_OK(analytic, numeric, abs_tol) \
    (fabs((double)(analytic) - (numeric)) <= (abs_tol) + 1e-3 * fabs(numeric))

/* ---------------------------------------------------------------- dense */

enum { DB = 3, DI = 5, DO = 4 };

static double dense_loss(const float *inp, const float *weight, const float *bias, const float *R) {
    float out[DB * DO];
    dense_forward(out, inp, weight, bias, DB, DI, DO, 0, NULL);
    return dot_loss(out, R, DB * DO);
}

void test_dense_forward_values(test_ctx *t) {
    float inp[DB * DI], weight[DI * DO], bias[DO], out[DB * DO], out_relu[DB * DO];
    fm_rng rng;
    fm_rng_seed(&rng, 11);
    fill(inp, DB * DI, &rng, -1, 1);
    fill(weight, DI * DO, &rng, -1, 1);
    fill(bias, DO, &rng, -1, 1);
    dense_forward(out, inp, weight, bias, DB, DI, DO, 0, NULL);
    dense_forward(out_relu, inp, weight, bias, DB, DI, DO, 1, NULL);
    int negative = 0;
    for (int b = 0; b < DB; b++) {
        for (int o = 0; o < DO; o++) {
            /* weight is [in, out]: column o holds the weights into unit o. */
            double want = bias[o];
            for (int i = 0; i < DI; i++) want += (double)inp[b * DI + i] * weight[i * DO + o];
            CHECK_NEAR(t, out[b * DO + o], want, 1e-6);
            /* The fused ReLU is the same pass followed by max(0, .), bit for bit. */
            float relu = out[b * DO + o] > 0.0f ? out[b * DO + o] : 0.0f;
            CHECK(t, memcmp(&out_relu[b * DO + o], &relu, sizeof relu) == 0,
                  "fused ReLU out[%d,%d] = %g, want %g", b, o, (double)out_relu[b * DO + o],
                  (double)relu);
            negative += want < 0;
        }
    }
    CHECK(t, negative > 0, "the ReLU case needs some negative pre-activations");
}

void test_dense_gradients(test_ctx *t) {
    float inp[DB * DI], weight[DI * DO], bias[DO], R[DB * DO];
    fm_rng rng;
    fm_rng_seed(&rng, 12);
    fill(inp, DB * DI, &rng, -1, 1);
    fill(weight, DI * DO, &rng, -1, 1);
    fill(bias, DO, &rng, -1, 1);
    fill(R, DB * DO, &rng, -1, 1);

    /* Without accumulate every gradient is overwritten, not added to. */
    float dinp[DB * DI], dweight[DI * DO], dbias[DO];
    for (int i = 0; i < DB * DI; i++) dinp[i] = 1234.5f;
    for (int i = 0; i < DI * DO; i++) dweight[i] = 1234.5f;
    for (int i = 0; i < DO; i++) dbias[i] = 1234.5f;
    dense_backward(dinp, dweight, dbias, R, inp, weight, DB, DI, DO, 0, 0, NULL, NULL, NULL);

    /* The loss is linear in each argument, so a large step costs no truncation error. */
    const float h = 0.125f;
    struct { float *x, *g; int n; const char *name; } parts[] = {
        {inp, dinp, DB * DI, "dinp"}, {weight, dweight, DI * DO, "dweight"}, {bias, dbias, DO, "dbias"}};
    for (int p = 0; p < 3; p++) {
        for (int i = 0; i < parts[p].n; i++) {
            float keep = parts[p].x[i];
            parts[p].x[i] = keep + h;
            double up = dense_loss(inp, weight, bias, R);
            parts[p].x[i] = keep - h;
            double down = dense_loss(inp, weight, bias, R);
            parts[p].x[i] = keep;
            double fd = (up - down) / (2.0 * h);
            CHECK(t, FD_OK(parts[p].g[i], fd, 1e-5), "%s[%d] = %.7g, finite difference %.7g",
                  parts[p].name, i, (double)parts[p].g[i], fd);
        }
    }

    /* With accumulate a second call adds the same amounts again and rewrites dinp; without dinp
     * only the parameter gradients move. The kernel adds each product into the running total, so
     * twice the first result holds up to rounding, not bit for bit. */
    float dw1[DI * DO], db1[DO], dinp1[DB * DI];
    memcpy(dw1, dweight, sizeof dw1);
    memcpy(db1, dbias, sizeof db1);
    memcpy(dinp1, dinp, sizeof dinp1);
    dense_backward(dinp, dweight, dbias, R, inp, weight, DB, DI, DO, 1, 0, NULL, NULL, NULL);
    for (int i = 0; i < DI * DO; i++) CHECK_NEAR(t, dweight[i], 2.0f * dw1[i], 1e-6);
    for (int i = 0; i < DO; i++) CHECK_NEAR(t, dbias[i], 2.0f * db1[i], 1e-6);
    CHECK(t, memcmp(dinp, dinp1, sizeof dinp) == 0, "dinp accumulated instead of being overwritten");
    dense_backward(NULL, dweight, dbias, R, inp, weight, DB, DI, DO, 1, 0, NULL, NULL, NULL);
    for (int i = 0; i < DI * DO; i++) CHECK_NEAR(t, dweight[i], 3.0f * dw1[i], 1e-6);
    for (int i = 0; i < DO; i++) CHECK_NEAR(t, dbias[i], 3.0f * db1[i], 1e-6);

    /* relu_inp folds the backward pass of the ReLU that made inp: dinp is zero where inp <= 0
     * and otherwise the same bits. */
    int masked = 0;
    for (int i = 0; i < DB * DI; i++) masked += !(inp[i] > 0.0f);
    dense_backward(dinp, dweight, dbias, R, inp, weight, DB, DI, DO, 0, 1, NULL, NULL, NULL);
    for (int i = 0; i < DB * DI; i++) {
        float want = inp[i] > 0.0f ? dinp1[i] : 0.0f;
        CHECK(t, memcmp(&dinp[i], &want, sizeof want) == 0, "masked dinp[%d] = %g, want %g", i,
              (double)dinp[i], (double)want);
    }
    CHECK(t, masked > 0 && masked < DB * DI, "the mask case needs inputs of both signs");
}

/* ---------------------------------------------------------------- activations */

enum { AN = 40 };
typedef void (*act_fwd)(float *, const float *, size_t);
typedef void (*act_bwd)(float *, const float *, const float *, size_t);

static void check_activation(test_ctx *t, const char *name, act_fwd fwd, act_bwd bwd, uint64_t seed) {
    float x[AN], y[AN], R[AN], dx[AN], dxin[AN];
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    fill(R, AN, &rng, -1, 1);
    /* Values in [-4, 4] but never within 0.05 of ReLU's kink, which a step of h would cross. */
    for (int i = 0; i < AN; i++) {
        float v = 0.05f + 3.95f * fm_rng_uniform(&rng);
        x[i] = i % 2 ? v : -v;
    }
    fwd(y, x, AN);
    bwd(dx, R, y, AN);
    const float h = 1e-3f;
    for (int i = 0; i < AN; i++) {
        float keep = x[i], yi;
        x[i] = keep + h;
        fwd(&yi, &x[i], 1);
        double up = (double)yi * R[i];
        x[i] = keep - h;
        fwd(&yi, &x[i], 1);
        double down = (double)yi * R[i];
        x[i] = keep;
        double fd = (up - down) / (2.0 * h);
        CHECK(t, FD_OK(dx[i], fd, 2e-4), "%s: x = %.4g: d = %.7g, finite difference %.7g", name,
              (double)x[i], (double)dx[i], fd);
    }
    /* In place (dinp == dout), as the model runs it. */
    memcpy(dxin, R, sizeof R);
    bwd(dxin, dxin, y, AN);
    CHECK(t, memcmp(dxin, dx, sizeof dx) == 0, "%s: in-place backward differs", name);
}

void test_relu_gradients(test_ctx *t) {
    check_activation(t, "relu", relu_forward, relu_backward, 21);
    float x[4] = {-2.0f, -0.0f, 0.0f, 3.5f}, y[4];
    relu_forward(y, x, 4);
    CHECK(t, y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f && y[3] == 3.5f, "relu %g %g %g %g",
          (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
}

void test_tanh_gradients(test_ctx *t) {
    check_activation(t, "tanh", tanh_forward, tanh_backward, 22);
}

void test_sigmoid_gradients(test_ctx *t) {
    check_activation(t, "sigmoid", sigmoid_forward, sigmoid_backward, 23);
    /* Both branches stay finite and saturate the right way far from zero. */
    float x[4] = {-200.0f, -30.0f, 30.0f, 200.0f}, y[4];
    sigmoid_forward(y, x, 4);
    CHECK(t, y[0] >= 0.0f && y[0] < 1e-30f, "sigmoid(-200) = %g", (double)y[0]);
    CHECK(t, y[1] > 0.0f && y[1] < 1e-12f, "sigmoid(-30) = %g", (double)y[1]);
    CHECK(t, y[2] == 1.0f && y[3] == 1.0f, "sigmoid(30), (200) = %g, %g", (double)y[2], (double)y[3]);
}

/* LeakyReLU at the two slopes people use: PyTorch's default 0.01 and Keras's 0.3. */
static void lrelu01_forward(float *out, const float *inp, size_t n) { leakyrelu_forward(out, inp, n, 0.01f); }
static void lrelu01_backward(float *dinp, const float *dout, const float *out, size_t n) {
    leakyrelu_backward(dinp, dout, out, n, 0.01f);
}
static void lrelu3_forward(float *out, const float *inp, size_t n) { leakyrelu_forward(out, inp, n, 0.3f); }
static void lrelu3_backward(float *dinp, const float *dout, const float *out, size_t n) {
    leakyrelu_backward(dinp, dout, out, n, 0.3f);
}

void test_leakyrelu_gradients(test_ctx *t) {
    check_activation(t, "leakyrelu 0.01", lrelu01_forward, lrelu01_backward, 24);
    check_activation(t, "leakyrelu 0.3", lrelu3_forward, lrelu3_backward, 25);
    float x[3] = {-2.0f, 0.0f, 3.5f}, y[3];
    leakyrelu_forward(y, x, 3, 0.3f);
    CHECK(t, y[0] == -0.6f && y[1] == 0.0f && y[2] == 3.5f, "leakyrelu %g %g %g", (double)y[0],
          (double)y[1], (double)y[2]);
}

/* ---------------------------------------------------------------- softmax cross-entropy */

void test_softmax_xent_hand_values(test_ctx *t) {
    /* Row 0: logsumexp(1,2,3) = 3 + log(1 + e^-1 + e^-2) = 3.4076059644, label 2: loss 0.4076059644.
     * Row 1: logsumexp(3,1,0.5) = 3 + log(1 + e^-2 + e^-2.5) = 3.1967340969, label 1: loss
     * 2.1967340969. Softmax of row 0 = (0.0900306, 0.2447285, 0.6652410); of row 1 = (0.8214090,
     * 0.1111656, 0.0674254). Argmax 2 (right) and 0 (wrong): 1 correct. */
    const float logits[6] = {1, 2, 3, 3, 1, 0.5f};
    const uint8_t labels[2] = {2, 1};
    const double want_p[6] = {0.09003057317038046, 0.24472847105479764, 0.6652409557748218,
                              0.8214090194651259,  0.11116562230242114, 0.06742535823245292};
    float probs[6], dl[6];
    int correct = -1;
    double total = softmax_xent_forward(probs, logits, labels, 2, 3, &correct);
    CHECK_NEAR(t, total, 0.4076059644443806 + 2.196734096919617, 1e-6);
    CHECK(t, correct == 1, "correct %d", correct);
    for (int i = 0; i < 6; i++) CHECK_NEAR(t, probs[i], want_p[i], 1e-6);
    /* dlogits = (p - onehot) / B */
    softmax_xent_backward(dl, probs, labels, 2, 3);
    const double want_d[6] = {want_p[0] / 2, want_p[1] / 2, (want_p[2] - 1) / 2,
                              want_p[3] / 2, (want_p[4] - 1) / 2, want_p[5] / 2};
    for (int i = 0; i < 6; i++) CHECK_NEAR(t, dl[i], want_d[i], 1e-6);
    /* Plain softmax gives the same probabilities. */
    float p2[6];
    softmax_forward(p2, logits, 2, 3);
    for (int i = 0; i < 6; i++) CHECK_NEAR(t, p2[i], want_p[i], 1e-6);
    /* Every label right: both count; NULL correct is allowed. */
    const uint8_t right[2] = {2, 0};
    softmax_xent_forward(probs, logits, right, 2, 3, &correct);
    CHECK(t, correct == 2, "correct %d", correct);
    softmax_xent_forward(probs, logits, right, 2, 3, NULL);
}

void test_softmax_xent_extreme_logits(test_ctx *t) {
    /* exp(1000) overflows a float and exp(-1000) underflows: only the log-sum-exp form survives.
     * Row 0 label 0: loss log(1 + e^-1000 + e^-2000) = 0. Row 1 label 1: 1000 - (-1000) = 2000.
     * Row 2, all equal at -1000: log 3. Row 3 label 2 (the middle value): 1000 - 0 = 1000. */
    const float logits[12] = {1000, -1000, 0, 1000, -1000, 0, -1000, -1000, -1000, 1000, -1000, 0};
    const uint8_t labels[4] = {0, 1, 2, 2};
    float probs[12], dl[12];
    int correct = 0;
    double total = softmax_xent_forward(probs, logits, labels, 4, 3, &correct);
    CHECK(t, isfinite(total), "loss %g", total);
    CHECK_NEAR(t, total, 0.0 + 2000.0 + log(3.0) + 1000.0, 1e-6 * 3000);
    double row0 = softmax_xent_forward(probs, logits, labels, 1, 3, NULL);
    CHECK_NEAR(t, row0, 0.0, 1e-9);
    /* Row 2's argmax is the first of three equal values, label 2: wrong; row 0 right. */
    CHECK(t, correct == 1, "correct %d", correct);
    softmax_xent_forward(probs, logits, labels, 4, 3, NULL);
    for (int i = 0; i < 12; i++) CHECK(t, isfinite(probs[i]), "probs[%d] = %g", i, (double)probs[i]);
    CHECK_NEAR(t, probs[0], 1.0, 1e-7);
    CHECK_NEAR(t, probs[1], 0.0, 1e-7);
    CHECK_NEAR(t, probs[7], 1.0 / 3.0, 1e-6);
    softmax_xent_backward(dl, probs, labels, 4, 3);
    for (int i = 0; i < 12; i++) CHECK(t, isfinite(dl[i]), "dlogits[%d] = %g", i, (double)dl[i]);
    CHECK_NEAR(t, dl[4], -0.25, 1e-7); /* (0 - 1) / 4: the wrong class took all the mass */
}

void test_softmax_rows_sum_to_one(test_ctx *t) {
    enum { B = 16, C = 10 };
    float logits[B * C], p1[B * C], p2[B * C];
    uint8_t labels[B];
    fm_rng rng;
    fm_rng_seed(&rng, 31);
    for (int b = 0; b < B; b++) {
        float scale = b < 4 ? 1.0f : (b < 8 ? 30.0f : 300.0f);
        fill(logits + b * C, C, &rng, -scale, scale);
        labels[b] = (uint8_t)(b % C);
    }
    softmax_forward(p1, logits, B, C);
    int correct = 0, want_correct = 0;
    softmax_xent_forward(p2, logits, labels, B, C, &correct);
    for (int b = 0; b < B; b++) {
        double s1 = 0, s2 = 0;
        for (int c = 0; c < C; c++) {
            CHECK(t, p1[b * C + c] >= 0.0f && p1[b * C + c] <= 1.0f, "p[%d,%d] = %g", b, c, (double)p1[b * C + c]);
            s1 += p1[b * C + c];
            s2 += p2[b * C + c];
        }
        CHECK_NEAR(t, s1, 1.0, 1e-5);
        CHECK_NEAR(t, s2, 1.0, 1e-5);
        int best = 0;
        for (int c = 1; c < C; c++) best = logits[b * C + c] > logits[b * C + best] ? c : best;
        CHECK(t, fm_argmax(logits + b * C, C) == best, "argmax row %d", b);
        want_correct += best == labels[b];
    }
    CHECK(t, correct == want_correct, "correct %d, want %d", correct, want_correct);
}

void test_softmax_xent_gradients(test_ctx *t) {
    enum { B = 4, C = 5 };
    float logits[B * C], probs[B * C], dl[B * C];
    uint8_t labels[B] = {0, 3, 4, 3};
    fm_rng rng;
    fm_rng_seed(&rng, 41);
    fill(logits, B * C, &rng, -3, 3);
    softmax_xent_forward(probs, logits, labels, B, C, NULL);
    softmax_xent_backward(dl, probs, labels, B, C);
    const float h = 1e-2f;
    for (int i = 0; i < B * C; i++) {
        float keep = logits[i];
        logits[i] = keep + h;
        double up = softmax_xent_forward(probs, logits, labels, B, C, NULL) / B;
        logits[i] = keep - h;
        double down = softmax_xent_forward(probs, logits, labels, B, C, NULL) / B;
        logits[i] = keep;
        double fd = (up - down) / (2.0 * h);
        CHECK(t, FD_OK(dl[i], fd, 1e-4), "dlogits[%d] = %.7g, finite difference of the mean %.7g",
              i, (double)dl[i], fd);
    }
}

/* ---------------------------------------------------------------- the whole model */

enum { MB = 4 };

static double model_loss(fm_model *m, const float *x, const uint8_t *labels, float *probs) {
    memcpy(fm_model_input(m), x, (size_t)MB * fm_model_in_size(m) * sizeof(float));
    const float *logits = fm_model_forward(m, MB, 1);
    return softmax_xent_forward(probs, logits, labels, MB, m->classes.n, NULL) / MB;
}

void test_model_gradients(test_ctx *t) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("a,b,c", &mp.classes, &err) == FM_OK, "%s", err.msg);
    mp.seed = 5;
    fm_model *m = NULL;
    fm_status s = fm_model_create("dense:5:tanh,dense:4:relu,dense:3", 3, 4, &mp, &m, &err);
    CHECK(t, s == FM_OK, "%s", err.msg);
    if (s) return;
    CHECK(t, m->n_params == (12 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3), "params %zu", m->n_params);
    CHECK(t, fm_model_reserve(m, MB, &err) == FM_OK, "%s", err.msg);
    fm_rng rng;
    fm_rng_seed(&rng, 51);
    /* Non-zero biases, so that their gradients are not checked only at zero. */
    for (int l = 0; l < m->n_layers; l++) {
        if (m->layers[l].kind == FM_LAYER_DENSE) fill(m->params + m->layers[l].b_off, m->layers[l].out_size, &rng, -0.5f, 0.5f);
    }
    float x[MB * 12], probs[MB * 3], dlogits[MB * 3];
    fill(x, MB * 12, &rng, -1, 1);
    const uint8_t labels[MB] = {0, 2, 1, 2};

    size_t P = m->n_params;
    float *grads = calloc(P, sizeof(float)), *grads2 = calloc(P, sizeof(float));
    model_loss(m, x, labels, probs);
    softmax_xent_backward(dlogits, probs, labels, MB, 3);
    fm_model_backward(m, dlogits, grads, MB, 1, NULL);
    /* The trainer passes dbuf[0] itself as dlogits; the ping-pong must not overwrite it early. */
    memcpy(m->dbuf[0], dlogits, sizeof dlogits);
    fm_model_backward(m, m->dbuf[0], grads2, MB, 1, NULL);
    CHECK(t, memcmp(grads, grads2, P * sizeof(float)) == 0, "gradients differ with dlogits in dbuf[0]");

    int nonzero = 0;
    const float h = 1e-2f;
    for (size_t i = 0; i < P; i++) {
        float keep = m->params[i];
        m->params[i] = keep + h;
        double up = model_loss(m, x, labels, probs);
        m->params[i] = keep - h;
        double down = model_loss(m, x, labels, probs);
        m->params[i] = keep;
        double fd = (up - down) / (2.0 * h);
        nonzero += fabs(fd) > 1e-3;
        CHECK(t, FD_OK(grads[i], fd, 5e-5),
              "param %zu: gradient %.7g, finite difference %.7g", i, (double)grads[i], fd);
    }
    /* A check where every gradient is zero would prove nothing. */
    CHECK(t, nonzero > (int)P / 2, "only %d of %zu gradients are non-zero", nonzero, P);
    free(grads);
    free(grads2);
    fm_model_free(m);
}

void test_label_smoothing(test_ctx *t) {
    /* logits (1, 2, 3), label 2, s = 0.1, C = 3: logsumexp 3.4076059644, target (1/30, 1/30,
     * 0.9 + 1/30): loss = 3.4076059644 - 0.9*3 - 0.1/3*6 = 0.5076059644; dlogits = p - target =
     * (0.0900306 - 0.0333333, 0.2447285 - 0.0333333, 0.6652410 - 0.9333333). */
    const float logits[3] = {1, 2, 3};
    const uint8_t label[1] = {2};
    float probs[3], d[3];
    int right = 0;
    double loss = softmax_xent_smooth_forward(probs, logits, label, 1, 3, 0.1f, &right);
    CHECK_NEAR(t, loss, 0.5076059644443804, 1e-6);
    CHECK(t, right == 1, "correct %d", right);
    softmax_xent_smooth_backward(d, probs, label, 1, 3, 0.1f);
    const double want[3] = {0.0566972398370471, 0.21139513772146426, -0.2680923775585117};
    for (int i = 0; i < 3; i++) CHECK_NEAR(t, d[i], want[i], 1e-6);

    /* s = 0 is the plain loss, bit for bit; and the smoothed gradient is the derivative of the
     * smoothed mean loss. */
    enum { B = 4, C = 5 };
    float z[B * C], p1[B * C], p2[B * C], d1[B * C], d2[B * C];
    const uint8_t labels[B] = {0, 3, 4, 1};
    fm_rng rng;
    fm_rng_seed(&rng, 61);
    fill(z, B * C, &rng, -3, 3);
    double a = softmax_xent_forward(p1, z, labels, B, C, NULL);
    double b = softmax_xent_smooth_forward(p2, z, labels, B, C, 0.0f, NULL);
    softmax_xent_backward(d1, p1, labels, B, C);
    softmax_xent_smooth_backward(d2, p2, labels, B, C, 0.0f);
    CHECK(t, a == b && memcmp(d1, d2, sizeof d1) == 0, "smoothing 0 differs from the plain loss");
    softmax_xent_smooth_forward(p2, z, labels, B, C, 0.2f, NULL);
    softmax_xent_smooth_backward(d2, p2, labels, B, C, 0.2f);
    const float h = 1e-2f;
    for (int i = 0; i < B * C; i++) {
        float keep = z[i];
        z[i] = keep + h;
        double up = softmax_xent_smooth_forward(p2, z, labels, B, C, 0.2f, NULL) / B;
        z[i] = keep - h;
        double down = softmax_xent_smooth_forward(p2, z, labels, B, C, 0.2f, NULL) / B;
        z[i] = keep;
        double fd = (up - down) / (2.0 * h);
        CHECK(t, FD_OK(d2[i], fd, 1e-4), "dlogits[%d] = %.7g, finite difference %.7g", i, (double)d2[i], fd);
    }
}
