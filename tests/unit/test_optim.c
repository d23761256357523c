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

/* ---------------------------------------------------------------- decoupled weight decay */

void test_weight_decay_step(test_ctx *t) {
    /* w *= 1 - lr*wd: 1 - 0.1*0.5 = 0.95. */
    float w[N];
    memcpy(w, W0, sizeof w);
    weight_decay_step(w, N, 0.1f, 0.5f);
    check_all(t, "decayed", w, (const double[]){0.95, -1.9, 0.475}, N);
    /* SGD-W: the decay, then plain SGD: 0.95*w - 0.1*g1 = (0.9, -1.8, 0.475). */
    sgd_step(w, G1, NULL, N, LR, 0.0f, 0);
    check_all(t, "sgd-w step", w, (const double[]){0.9, -1.8, 0.475}, N);
}

void test_adamw_two_steps(test_ctx *t) {
    /* AdamW as PyTorch orders it: w *= 1 - lr*wd, then Adam's step (which depends on the
     * gradients only, so its moves are those of test_adam_two_steps: (-0.009999936755, 0.009999968377,
     * 0) then (-0.002663355324, -0.003661030093, -0.007441344704)). lr 0.01, wd 0.1: keep 0.999.
     *   w1 = 0.999*(1, -2, 0.5) + move1 = (0.989000063245, -1.988000031623, 0.4995)
     *   w2 = 0.999*w1 + move2 = (0.985347707858, -1.989673061683, 0.491559155296) */
    float w[N], m[N] = {0}, v[N] = {0};
    memcpy(w, W0, sizeof w);
    weight_decay_step(w, N, 0.01f, 0.1f);
    adam_step(w, G1, m, v, N, 0.01f, 0.9f, 0.999f, 1e-7f, 1);
    check_all(t, "step 1 w", w, (const double[]){0.9890000632451532, -1.9880000316226767, 0.4995}, N);
    weight_decay_step(w, N, 0.01f, 0.1f);
    adam_step(w, G2, m, v, N, 0.01f, 0.9f, 0.999f, 1e-7f, 2);
    check_all(t, "step 2 w", w, (const double[]){0.985347707857547, -1.9896730616834164, 0.4915591552959283}, N);
}

/* ---------------------------------------------------------------- schedules */

static void check_lr(test_ctx *t, const char *what, const fm_schedule_params *s, float base, long step,
                     long total, double want) {
    float got = fm_schedule_lr(s, base, step, total);
    CHECK(t, fabs(got - want) <= 1e-6 * (fabs(want) + 1e-3), "%s: step %ld: %.9g, want %.9g", what, step,
          (double)got, want);
}

void test_schedules(test_ctx *t) {
    /* Constant with 4 warm-up steps: base*(t+1)/4, then base. */
    fm_schedule_params s = {FM_SCHED_CONSTANT, 4, 0, 0.1f};
    check_lr(t, "constant", &s, 0.2f, 0, 100, 0.05);
    check_lr(t, "constant", &s, 0.2f, 2, 100, 0.15);
    check_lr(t, "constant", &s, 0.2f, 3, 100, 0.2);
    check_lr(t, "constant", &s, 0.2f, 99, 100, 0.2);
    s.warmup_steps = 0;
    check_lr(t, "constant, no warm-up", &s, 0.2f, 0, 100, 0.2);
    /* Step: 0.1 * 0.5^(t / 10). */
    s = (fm_schedule_params){FM_SCHED_STEP, 0, 10, 0.5f};
    check_lr(t, "step", &s, 0.1f, 9, 100, 0.1);
    check_lr(t, "step", &s, 0.1f, 10, 100, 0.05);
    check_lr(t, "step", &s, 0.1f, 25, 100, 0.025);
    /* Cosine over 100 steps: 0.5*(1 + cos(pi*t/100)): t 25 -> 0.853553390593, 50 -> 0.5,
     * 99 -> 0.000246719817. With 10 warm-up steps the cosine spans the other 90: t 55 -> 0.5. */
    s = (fm_schedule_params){FM_SCHED_COSINE, 0, 0, 0.1f};
    check_lr(t, "cosine", &s, 1.0f, 0, 100, 1.0);
    check_lr(t, "cosine", &s, 1.0f, 25, 100, 0.8535533905932737);
    check_lr(t, "cosine", &s, 1.0f, 50, 100, 0.5);
    check_lr(t, "cosine", &s, 1.0f, 99, 100, 0.0002467198171342);
    s.warmup_steps = 10;
    check_lr(t, "cosine, warm-up", &s, 1.0f, 4, 100, 0.5);
    check_lr(t, "cosine, warm-up", &s, 1.0f, 10, 100, 1.0);
    check_lr(t, "cosine, warm-up", &s, 1.0f, 55, 100, 0.5);
    /* One-cycle over 100 steps, rising over the default 30: from 1/25 = 0.04, halfway (t 15)
     * at 1 + (0.04 - 1)/2 = 0.52, the peak 1 at t 30, then down to 0.04/1e4 = 4e-6 at t 99;
     * t 65 is 35/69 of the way: 4e-6 + (1 - 4e-6)/2*(1 + cos(pi*35/69)) = 0.488620446598. */
    s = (fm_schedule_params){FM_SCHED_ONECYCLE, 0, 0, 0.1f};
    check_lr(t, "onecycle", &s, 1.0f, 0, 100, 0.04);
    check_lr(t, "onecycle", &s, 1.0f, 15, 100, 0.52);
    check_lr(t, "onecycle", &s, 1.0f, 30, 100, 1.0);
    check_lr(t, "onecycle", &s, 1.0f, 65, 100, 0.4886204465983428);
    check_lr(t, "onecycle", &s, 1.0f, 99, 100, 4e-6);
    /* An explicit rise of 50 steps: the peak moves there. */
    s.warmup_steps = 50;
    check_lr(t, "onecycle, rise 50", &s, 1.0f, 25, 100, 0.52);
    check_lr(t, "onecycle, rise 50", &s, 1.0f, 50, 100, 1.0);
}
