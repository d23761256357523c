/* batchnorm.c — batch normalisation (Ioffe & Szegedy) for dense outputs (B,C) and convolution
 * outputs (B,C,H,W), with PyTorch's conventions: biased batch variance to normalise, unbiased
 * variance in the running estimate, running = (1-momentum)*running + momentum*batch; and with
 * the ReLU that usually follows fused into its passes. */
#include "internal.h"

#include <math.h>

/* Sums over a row of n values in double, as four chains (element i in chain i % 4) added in a
 * fixed order: the same bits every run, and four independent additions in flight instead of one
 * latency-bound chain (4 cycles per element; 10% of a cnn-best epoch went to these sums).
 * ROWS rows are summed side by side, each with its own four chains, since one row's four still
 * waited on the adds' latency (14% of a float epoch in batch norm); each row's chains, and so its
 * bits, are those of a row summed alone. sum_shifted_rows adds (x - mu)^2; sum_dot_rows adds
 * dy * (x - mu) * is. */
#define ROWS 8

/* Four floats, widened lane by lane to four doubles: one row's four chains in one vector. */
typedef float v4f __attribute__((vector_size(16), aligned(4), may_alias));
typedef double v4d __attribute__((vector_size(32)));
static inline v4d widen4(const float *p) { return __builtin_convertvector(*(const v4f *)p, v4d); }

static inline double chains_total(v4d a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* With the rows of a following ReLU's output (keep; NULL: none), x[r][i] counts only where
 * keep[r][i] > 0, as relu_backward passes a gradient back; the bits are those of the masked
 * gradient summed alone. Inlined, so that the NULL case compiles without the mask. */
typedef int32_t v4i __attribute__((vector_size(16)));
static inline v4f keep4(const float *x, const float *keep) {
    v4f v = *(const v4f *)x;
    if (!keep) return v;
    return (v4f)((v4i)v & (*(const v4f *)keep > 0.0f));
}
static inline float keep1(const float *x, const float *keep) {
    return !keep || *keep > 0.0f ? *x : 0.0f;
}

static inline __attribute__((always_inline)) void sum_rows(double out[ROWS], const float *const x[ROWS],
                                                          const float *const keep[ROWS], int n) {
    v4d a[ROWS] = {{0.0}};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int r = 0; r < ROWS; r++) a[r] += __builtin_convertvector(keep4(x[r] + i, keep ? keep[r] + i : NULL), v4d);
    for (; i < n; i++)
        for (int r = 0; r < ROWS; r++) a[r][0] += keep1(x[r] + i, keep ? keep[r] + i : NULL);
    for (int r = 0; r < ROWS; r++) out[r] = chains_total(a[r]);
}

static void sum_shifted_rows(double out[ROWS], const float *const x[ROWS], int n, double mu) {
    v4d a[ROWS] = {{0.0}};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int r = 0; r < ROWS; r++) {
            v4d d = widen4(x[r] + i) - mu;
            a[r] += d * d;
        }
    for (; i < n; i++)
        for (int r = 0; r < ROWS; r++) a[r][0] += ((double)x[r][i] - mu) * ((double)x[r][i] - mu);
    for (int r = 0; r < ROWS; r++) out[r] = chains_total(a[r]);
}

static inline __attribute__((always_inline)) void sum_dot_rows(double out[ROWS], const float *const dy[ROWS],
                                                              const float *const keep[ROWS],
                                                              const float *const x[ROWS], int n,
                                                              float mean, float is) {
    v4d a[ROWS] = {{0.0}};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int r = 0; r < ROWS; r++) {
            v4f xhat = (*(const v4f *)(x[r] + i) - mean) * is;
            a[r] += __builtin_convertvector(keep4(dy[r] + i, keep ? keep[r] + i : NULL), v4d) *
                    __builtin_convertvector(xhat, v4d);
        }
    for (; i < n; i++)
        for (int r = 0; r < ROWS; r++)
            a[r][0] += (double)keep1(dy[r] + i, keep ? keep[r] + i : NULL) * ((x[r][i] - mean) * is);
    for (int r = 0; r < ROWS; r++) out[r] = chains_total(a[r]);
}

/* Channel c's rows of samples b .. b+ROWS-1 in t (B,C,HW); past the batch's end the last row
 * again (summed, never used). Returns how many are real. */
static int channel_rows(const float *rows[ROWS], const float *t, int b, int B, int C, int c, int HW) {
    for (int r = 0; r < ROWS; r++) rows[r] = t + ((size_t)(b + r < B ? b + r : B - 1) * C + c) * HW;
    return B - b < ROWS ? B - b : ROWS;
}

/* Channels are independent: the three passes run on the pool in slices of channels, each
 * channel summed by one thread in the same order as on one, so the same bits whatever the
 * thread count. One thread did all of it, 8% of a cnn-best step, while the other waited. */
typedef struct {
    float *out, *mean, *invstd, *running_mean, *running_var, *dgamma, *dbeta;
    const float *inp, *dout, *gamma, *beta, *cmean, *cinvstd, *running_mean_in, *running_var_in;
    const float *relu_out; /* backward: the following ReLU's output, or NULL */
    int B, C, HW, tasks, relu; /* forward: a ReLU applied to the output */
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

/* out = inp * scale + shift on channel c's rows, then the ReLU if one follows (relu_forward's
 * expression, so the bits of the two passes it replaces). */
static void affine_rows(const bn_job *j, int c, float scale, float shift) {
    for (int b = 0; b < j->B; b++) {
        const float *x = j->inp + ((size_t)b * j->C + c) * j->HW;
        float *y = j->out + ((size_t)b * j->C + c) * j->HW;
        if (j->relu) {
            for (int i = 0; i < j->HW; i++) {
                float v = x[i] * scale + shift;
                y[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int i = 0; i < j->HW; i++) y[i] = x[i] * scale + shift;
        }
    }
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
        const float *rows[ROWS];
        double part[ROWS], sum = 0.0;
        for (int b = 0; b < B; b += ROWS) {
            const int n = channel_rows(rows, j->inp, b, B, C, c, HW);
            sum_rows(part, rows, NULL, HW);
            for (int r = 0; r < n; r++) sum += part[r];
        }
        double mu = sum / N, sq = 0.0;
        for (int b = 0; b < B; b += ROWS) {
            const int n = channel_rows(rows, j->inp, b, B, C, c, HW);
            sum_shifted_rows(part, rows, HW, mu);
            for (int r = 0; r < n; r++) sq += part[r];
        }
        double var = sq / N;
        float is = (float)(1.0 / sqrt(var + j->eps));
        j->mean[c] = (float)mu;
        j->invstd[c] = is;
        /* One value per channel has no spread to estimate: keep the biased 0 then. */
        double unbiased = N > 1.0 ? sq / (N - 1.0) : var;
        j->running_mean[c] = (float)((1.0 - j->momentum) * j->running_mean[c] + j->momentum * mu);
        j->running_var[c] = (float)((1.0 - j->momentum) * j->running_var[c] + j->momentum * unbiased);
        float scale = j->gamma[c] * is, shift = j->beta[c] - (float)mu * scale;
        affine_rows(j, c, scale, shift);
    }
}

void batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                             float *running_var, const float *inp, const float *gamma,
                             const float *beta, int B, int C, int HW, float momentum, float eps,
                             int relu, fm_pool *pool) {
    bn_job j = {.out = out, .mean = mean, .invstd = invstd, .running_mean = running_mean,
                .running_var = running_var, .inp = inp, .gamma = gamma, .beta = beta, .B = B,
                .C = C, .HW = HW, .tasks = bn_tasks(pool, B, C, HW), .momentum = momentum,
                .eps = eps, .relu = relu};
    fm_pool_run(pool, j.tasks, bn_train_task, &j);
}

/* The same affine map with the running statistics in place of the batch's. */
static void bn_infer_task(void *ctx, int task) {
    const bn_job *j = ctx;
    int c0, c1;
    bn_slice(j, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        float scale = j->gamma[c] / sqrtf(j->running_var_in[c] + j->eps);
        float shift = j->beta[c] - j->running_mean_in[c] * scale;
        affine_rows(j, c, scale, shift);
    }
}

void batchnorm_forward_infer(float *out, const float *inp, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var, int B, int C,
                             int HW, float eps, int relu, fm_pool *pool) {
    bn_job j = {.out = out, .inp = inp, .gamma = gamma, .beta = beta,
                .running_mean_in = running_mean, .running_var_in = running_var, .B = B, .C = C,
                .HW = HW, .tasks = bn_tasks(pool, B, C, HW), .eps = eps, .relu = relu};
    fm_pool_run(pool, j.tasks, bn_infer_task, &j);
}

/* dout is (B,C,HW); mean and invstd are the training forward pass's. With xhat = (x-mean)*invstd
 * and N = B*HW values per channel:
 *   dbeta += sum(dout), dgamma += sum(dout*xhat),
 *   dinp = gamma*invstd * (dout - sum(dout)/N - xhat*sum(dout*xhat)/N)
 * (the last two terms are the batch statistics' own dependence on x). dinp is overwritten.
 * With relu_out, dout is the gradient of a ReLU that followed, masked on the way in. */
static void bn_backward_task(void *ctx, int task) {
    const bn_job *j = ctx;
    const int B = j->B, C = j->C, HW = j->HW;
    const double N = (double)B * HW;
    const float *mean = j->cmean, *invstd = j->cinvstd;
    int c0, c1;
    bn_slice(j, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < B; b += ROWS) {
            const float *x[ROWS], *dy[ROWS], *keep[ROWS];
            double part_dy[ROWS], part_dot[ROWS];
            const int n = channel_rows(x, j->inp, b, B, C, c, HW);
            channel_rows(dy, j->dout, b, B, C, c, HW);
            if (j->relu_out) {
                channel_rows(keep, j->relu_out, b, B, C, c, HW);
                sum_rows(part_dy, dy, keep, HW);
                sum_dot_rows(part_dot, dy, keep, x, HW, mean[c], invstd[c]);
            } else {
                sum_rows(part_dy, dy, NULL, HW);
                sum_dot_rows(part_dot, dy, NULL, x, HW, mean[c], invstd[c]);
            }
            /* in sample order, the dy sum then the dot, as one sample at a time added them */
            for (int r = 0; r < n; r++) sum_dy += part_dy[r], sum_dy_xhat += part_dot[r];
        }
        j->dbeta[c] += (float)sum_dy;
        j->dgamma[c] += (float)sum_dy_xhat;
        const float mu = mean[c], is = invstd[c], k = j->gamma[c] * is;
        const float mean_dy = (float)(sum_dy / N), mean_dy_xhat = (float)(sum_dy_xhat / N);
        if (!j->out) continue;
        for (int b = 0; b < B; b++) {
            const float *x = j->inp + ((size_t)b * C + c) * HW;
            const float *dy = j->dout + ((size_t)b * C + c) * HW;
            float *dx = j->out + ((size_t)b * C + c) * HW;
            if (j->relu_out) {
                const float *keep = j->relu_out + ((size_t)b * C + c) * HW;
                for (int i = 0; i < HW; i++) {
                    float xhat = (x[i] - mu) * is, d = keep[i] > 0.0f ? dy[i] : 0.0f;
                    dx[i] = k * (d - mean_dy - xhat * mean_dy_xhat);
                }
            } else {
                for (int i = 0; i < HW; i++) {
                    float xhat = (x[i] - mu) * is;
                    dx[i] = k * (dy[i] - mean_dy - xhat * mean_dy_xhat);
                }
            }
        }
    }
}

void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *relu_out, const float *inp, const float *mean,
                        const float *invstd, const float *gamma, int B, int C, int HW,
                        fm_pool *pool) {
    bn_job j = {.out = dinp, .dgamma = dgamma, .dbeta = dbeta, .inp = inp, .dout = dout,
                .relu_out = relu_out, .gamma = gamma, .cmean = mean, .cinvstd = invstd, .B = B,
                .C = C, .HW = HW, .tasks = bn_tasks(pool, B, C, HW)};
    fm_pool_run(pool, j.tasks, bn_backward_task, &j);
}
