/* batchnorm.c — batch normalisation (Ioffe & Szegedy) for dense outputs (B,C) and convolution
 * outputs (B,C,H,W), with PyTorch's conventions: biased batch variance to normalise, unbiased
 * variance in the running estimate, running = (1-momentum)*running + momentum*batch. */
#include "internal.h"

#include <math.h>

/* Sums over a row of n values in double, as four chains (element i in chain i % 4) added in a
 * fixed order: the same bits every run, and four independent additions in flight instead of one
 * latency-bound chain (4 cycles per element; 10% of a cnn-best epoch went to these sums).
 * sum_shifted adds (x - mu)^2; sum_dot adds dy * (x - mu) * is. */
static double sum_row(const float *x, int n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) a0 += x[i], a1 += x[i + 1], a2 += x[i + 2], a3 += x[i + 3];
    for (; i < n; i++) a0 += x[i];
    return (a0 + a1) + (a2 + a3);
}

static double sum_shifted(const float *x, int n, double mu) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        double d0 = (double)x[i] - mu, d1 = (double)x[i + 1] - mu;
        double d2 = (double)x[i + 2] - mu, d3 = (double)x[i + 3] - mu;
        a0 += d0 * d0, a1 += d1 * d1, a2 += d2 * d2, a3 += d3 * d3;
    }
    for (; i < n; i++) a0 += ((double)x[i] - mu) * ((double)x[i] - mu);
    return (a0 + a1) + (a2 + a3);
}

static double sum_dot(const float *dy, const float *x, int n, float mean, float is) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += (double)dy[i] * ((x[i] - mean) * is);
        a1 += (double)dy[i + 1] * ((x[i + 1] - mean) * is);
        a2 += (double)dy[i + 2] * ((x[i + 2] - mean) * is);
        a3 += (double)dy[i + 3] * ((x[i + 3] - mean) * is);
    }
    for (; i < n; i++) a0 += (double)dy[i] * ((x[i] - mean) * is);
    return (a0 + a1) + (a2 + a3);
}

/* Channels are independent: the three passes run on the pool in slices of channels, each
 * channel summed by one thread in the same order as on one, so the same bits whatever the
 * thread count. One thread did all of it, 8% of a cnn-best step, while the other waited. */
typedef struct {
    float *out, *mean, *invstd, *running_mean, *running_var, *dgamma, *dbeta;
    const float *inp, *dout, *gamma, *beta, *cmean, *cinvstd, *running_mean_in, *running_var_in;
    int B, C, HW, tasks;
    float momentum, eps;
} bn_job;

/* The pool's split: at most two slices per thread, none for under ~64k values (a few
 * microseconds). */
static int bn_tasks(fm_pool *pool, int B, int C, int HW) {
    if (!pool || (size_t)B * C * HW < 65536) return 1;
    int t = 2 * fm_pool_threads(pool);
    return t < C ? t : C;
}

static void bn_slice(const bn_job *j, int task, int *c0, int *c1) {
    *c0 = (int)((long long)j->C * task / j->tasks);
    *c1 = (int)((long long)j->C * (task + 1) / j->tasks);
}

/* inp and out are (B,C,HW); gamma, beta, mean, invstd, running_mean, running_var are (C).
 * Statistics are summed in double, two passes, so a large mean does not swallow the variance. */
static void bn_train_task(void *ctx, int task) {
    const bn_job *j = ctx;
    const int B = j->B, C = j->C, HW = j->HW;
    const double N = (double)B * HW;
    int c0, c1;
    bn_slice(j, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        double sum = 0.0;
        for (int b = 0; b < B; b++) sum += sum_row(j->inp + ((size_t)b * C + c) * HW, HW);
        double mu = sum / N, sq = 0.0;
        for (int b = 0; b < B; b++) sq += sum_shifted(j->inp + ((size_t)b * C + c) * HW, HW, mu);
        double var = sq / N;
        float is = (float)(1.0 / sqrt(var + j->eps));
        j->mean[c] = (float)mu;
        j->invstd[c] = is;
        /* One value per channel has no spread to estimate: keep the biased 0 then. */
        double unbiased = N > 1.0 ? sq / (N - 1.0) : var;
        j->running_mean[c] = (float)((1.0 - j->momentum) * j->running_mean[c] + j->momentum * mu);
        j->running_var[c] = (float)((1.0 - j->momentum) * j->running_var[c] + j->momentum * unbiased);
        float scale = j->gamma[c] * is, shift = j->beta[c] - (float)mu * scale;
        for (int b = 0; b < B; b++) {
            const float *x = j->inp + ((size_t)b * C + c) * HW;
            float *y = j->out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
    }
}

void batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                             float *running_var, const float *inp, const float *gamma,
                             const float *beta, int B, int C, int HW, float momentum, float eps,
                             fm_pool *pool) {
    bn_job j = {.out = out, .mean = mean, .invstd = invstd, .running_mean = running_mean,
                .running_var = running_var, .inp = inp, .gamma = gamma, .beta = beta, .B = B,
                .C = C, .HW = HW, .tasks = bn_tasks(pool, B, C, HW), .momentum = momentum,
                .eps = eps};
    fm_pool_run(pool, j.tasks, bn_train_task, &j);
}

/* The same affine map with the running statistics in place of the batch's. */
static void bn_infer_task(void *ctx, int task) {
    const bn_job *j = ctx;
    const int B = j->B, C = j->C, HW = j->HW;
    int c0, c1;
    bn_slice(j, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        float scale = j->gamma[c] / sqrtf(j->running_var_in[c] + j->eps);
        float shift = j->beta[c] - j->running_mean_in[c] * scale;
        for (int b = 0; b < B; b++) {
            const float *x = j->inp + ((size_t)b * C + c) * HW;
            float *y = j->out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
    }
}

void batchnorm_forward_infer(float *out, const float *inp, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var, int B, int C,
                             int HW, float eps, fm_pool *pool) {
    bn_job j = {.out = out, .inp = inp, .gamma = gamma, .beta = beta,
                .running_mean_in = running_mean, .running_var_in = running_var, .B = B, .C = C,
                .HW = HW, .tasks = bn_tasks(pool, B, C, HW), .eps = eps};
    fm_pool_run(pool, j.tasks, bn_infer_task, &j);
}

/* dout is (B,C,HW); mean and invstd are the training forward pass's. With xhat = (x-mean)*invstd
 * and N = B*HW values per channel:
 *   dbeta += sum(dout), dgamma += sum(dout*xhat),
 *   dinp = gamma*invstd * (dout - sum(dout)/N - xhat*sum(dout*xhat)/N)
 * (the last two terms are the batch statistics' own dependence on x). dinp is overwritten. */
static void bn_backward_task(void *ctx, int task) {
    const bn_job *j = ctx;
    const int B = j->B, C = j->C, HW = j->HW;
    const double N = (double)B * HW;
    const float *mean = j->cmean, *invstd = j->cinvstd;
    int c0, c1;
    bn_slice(j, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = j->inp + ((size_t)b * C + c) * HW;
            const float *dy = j->dout + ((size_t)b * C + c) * HW;
            sum_dy += sum_row(dy, HW);
            sum_dy_xhat += sum_dot(dy, x, HW, mean[c], invstd[c]);
        }
        j->dbeta[c] += (float)sum_dy;
        j->dgamma[c] += (float)sum_dy_xhat;
        float k = j->gamma[c] * invstd[c];
        float mean_dy = (float)(sum_dy / N), mean_dy_xhat = (float)(sum_dy_xhat / N);
        if (!j->out) continue;
        for (int b = 0; b < B; b++) {
            const float *x = j->inp + ((size_t)b * C + c) * HW;
            const float *dy = j->dout + ((size_t)b * C + c) * HW;
            float *dx = j->out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                float xhat = (x[i] - mean[c]) * invstd[c];
                dx[i] = k * (dy[i] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
}

void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *invstd,
                        const float *gamma, int B, int C, int HW, fm_pool *pool) {
    bn_job j = {.out = dinp, .dgamma = dgamma, .dbeta = dbeta, .inp = inp, .dout = dout,
                .gamma = gamma, .cmean = mean, .cinvstd = invstd, .B = B, .C = C, .HW = HW,
                .tasks = bn_tasks(pool, B, C, HW)};
    fm_pool_run(pool, j.tasks, bn_backward_task, &j);
}
