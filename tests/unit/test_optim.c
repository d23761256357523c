/* test_optim.c — two steps of SGD (plain, momentum, Nesterov) and Adam against values worked out
 * by hand from Keras's formulas, so that hyper-parameters mean what they mean in tf.keras. */
#include "harness.h"
#include "internal.h"

#include <string.h>

enum { N = 3 };
static const float W0[N] = {1.0f, -2.0f, 0.5f};
static const float G1[N] = {0.5f, -1.0f, 0.0f};
static const float G2[N] = {-0.25f, 2.0f, 1.0f};
#define LR 0.1f

static void check_all(test_ctx *t, const char *what, const float *got, const double *want, int n) {
    for (int i = 0; i < n; i++) {
        CHECK(t, fabs((double)got[i] - want[i]) <= 1e-6, "%s[%d] = %.9g, want %.9g", what, i,
              (double)got[i], want[i]);
    }
}

void test_sgd_plain(test_ctx *t) {
    float w[N];
    memcpy(w, W0, sizeof w);
    /* w -= lr*g: 1 - 0.1*0.5 = 0.95; -2 - 0.1*(-1) = -1.9; 0.5 - 0 = 0.5.
     * Then 0.95 - 0.1*(-0.25) = 0.975; -1.9 - 0.1*2 = -2.1; 0.5 - 0.1*1 = 0.4. */
    sgd_step(w, G1, NULL, N, LR, 0.0f, 0);
    check_all(t, "step 1 w", w, (const double[]){0.95, -1.9, 0.5}, N);
    sgd_step(w, G2, NULL, N, LR, 0.0f, 0);
    check_all(t, "step 2 w", w, (const double[]){0.975, -2.1, 0.4}, N);
}

void test_sgd_momentum(test_ctx *t) {
    float w[N], v[N] = {0};
    memcpy(w, W0, sizeof w);
    /* v = 0.9*v - lr*g; w += v.
     * Step 1: v = -0.1*(0.5, -1, 0) = (-0.05, 0.1, 0); w = (0.95, -1.9, 0.5).
     * Step 2: v = 0.9*(-0.05, 0.1, 0) - 0.1*(-0.25, 2, 1) = (-0.045 + 0.025, 0.09 - 0.2, -0.1)
     *           = (-0.02, -0.11, -0.1); w = (0.93, -2.01, 0.4). */
    sgd_step(w, G1, v, N, LR, 0.9f, 0);
    check_all(t, "step 1 v", v, (const double[]){-0.05, 0.1, 0.0}, N);
    check_all(t, "step 1 w", w, (const double[]){0.95, -1.9, 0.5}, N);
    sgd_step(w, G2, v, N, LR, 0.9f, 0);
    check_all(t, "step 2 v", v, (const double[]){-0.02, -0.11, -0.1}, N);
    check_all(t, "step 2 w", w, (const double[]){0.93, -2.01, 0.4}, N);
}

void test_sgd_nesterov(test_ctx *t) {
    float w[N], v[N] = {0};
    memcpy(w, W0, sizeof w);
    /* v = 0.9*v - lr*g; w += 0.9*v - lr*g (velocities as for plain momentum).
     * Step 1: v = (-0.05, 0.1, 0); w += 0.9*v - 0.1*(0.5, -1, 0) = (-0.045 - 0.05, 0.09 + 0.1, 0)
     *         = (-0.095, 0.19, 0); w = (0.905, -1.81, 0.5).
     * Step 2: v = (-0.02, -0.11, -0.1); w += 0.9*v - 0.1*(-0.25, 2, 1)
     *         = (-0.018 + 0.025, -0.099 - 0.2, -0.09 - 0.1) = (0.007, -0.299, -0.19);
     *         w = (0.912, -2.109, 0.31). */
    sgd_step(w, G1, v, N, LR, 0.9f, 1);
    check_all(t, "step 1 v", v, (const double[]){-0.05, 0.1, 0.0}, N);
    check_all(t, "step 1 w", w, (const double[]){0.905, -1.81, 0.5}, N);
    sgd_step(w, G2, v, N, LR, 0.9f, 1);
    check_all(t, "step 2 v", v, (const double[]){-0.02, -0.11, -0.1}, N);
    check_all(t, "step 2 w", w, (const double[]){0.912, -2.109, 0.31}, N);
}

void test_adam_two_steps(test_ctx *t) {
    /* lr 0.01, beta1 0.9, beta2 0.999, eps 1e-7 (Keras's defaults but lr). Parameter 2 sees a
     * zero gradient first; parameter 3 a gradient of 1e-6, where sqrt(v) ~ 3e-8 is below eps, so
     * adding eps to sqrt(v) (Keras) rather than to sqrt(v_hat) (PyTorch, the paper) changes the
     * step from 0.0091 to 0.0024 — the test tells the two apart.
     *
     * Step 1: lr_t = 0.01*sqrt(1 - 0.999)/(1 - 0.9) = 0.01*0.0316227766/0.1 = 0.00316227766.
     *   m = 0.1*g = (0.05, -0.1, 0, 1e-7); v = 0.001*g^2 = (2.5e-4, 1e-3, 0, 1e-15).
     *   w0 = 1 - 0.00316227766*0.05/(0.0158113883 + 1e-7) = 0.990000063245
     *   w1 = -2 + 0.00316227766*0.1/(0.0316227766 + 1e-7) = -1.990000031623
     *   w2 = 0.5 - 0/(0 + 1e-7) = 0.5
     *   w3 = 0.3 - 0.00316227766*1e-7/(3.16227766e-8 + 1e-7) = 0.297597469266
     * Step 2: lr_t = 0.01*sqrt(1 - 0.999^2)/(1 - 0.9^2) = 0.01*0.0447101778/0.19 = 0.00235316725.
     *   m = 0.9*m + 0.1*g = (0.045 - 0.025, -0.09 + 0.2, 0.1, 0.9e-7 + 1e-7) = (0.02, 0.11, 0.1, 1.9e-7)
     *   v = 0.999*v + 0.001*g^2 = (2.4975e-4 + 6.25e-5, 9.99e-4 + 4e-3, 1e-3, 1.999e-15)
     *     = (3.1225e-4, 4.999e-3, 1e-3, 1.999e-15)
     *   w0 = 0.990000063245 - 0.00235316725*0.02/(0.0176706536 + 1e-7) = 0.987336707921
     *   w1 = -1.990000031623 - 0.00235316725*0.11/(0.0707036067 + 1e-7) = -1.993661061715
     *   w2 = 0.5 - 0.00235316725*0.1/(0.0316227766 + 1e-7) = 0.492558655296
     *   w3 = 0.297597469266 - 0.00235316725*1.9e-7/(4.47101778e-8 + 1e-7) = 0.294507833244 */
    float w[4] = {1.0f, -2.0f, 0.5f, 0.3f}, m[4] = {0}, v[4] = {0};
    const float g1[4] = {0.5f, -1.0f, 0.0f, 1e-6f}, g2[4] = {-0.25f, 2.0f, 1.0f, 1e-6f};
    adam_step(w, g1, m, v, 4, 0.01f, 0.9f, 0.999f, 1e-7f, 1);
    check_all(t, "step 1 w", w, (const double[]){0.9900000632451532, -1.9900000316226767, 0.5,
                                                  0.29759746926647956}, 4);
    check_all(t, "step 1 m", m, (const double[]){0.05, -0.1, 0.0, 1e-7}, 4);
    /* v is checked relative to its size, and loosely: 1 - 0.999f is 0.00099998713 in float, as in
     * tf.keras, 1.3e-5 away from 0.001. */
    for (int i = 0; i < 4; i++) {
        const double want_v[4] = {2.5e-4, 1e-3, 0.0, 1e-15};
        CHECK(t, fabs(v[i] - want_v[i]) <= 2e-5 * want_v[i], "step 1 v[%d] = %.9g", i, (double)v[i]);
    }
    adam_step(w, g2, m, v, 4, 0.01f, 0.9f, 0.999f, 1e-7f, 2);
    check_all(t, "step 2 w", w, (const double[]){0.9873367079207922, -1.993661061715039,
                                                  0.4925586552959283, 0.2945078332444553}, 4);
    check_all(t, "step 2 m", m, (const double[]){0.02, 0.11, 0.1, 1.9e-7}, 4);
    for (int i = 0; i < 4; i++) {
        const double want_v[4] = {3.1225e-4, 4.999e-3, 1e-3, 1.999e-15};
        CHECK(t, fabs(v[i] - want_v[i]) <= 2e-5 * want_v[i], "step 2 v[%d] = %.9g", i, (double)v[i]);
    }
}
