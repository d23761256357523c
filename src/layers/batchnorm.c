/* batchnorm.c — batch normalisation (Ioffe & Szegedy) for dense outputs (B,C) and convolution
 * outputs (B,C,H,W), with PyTorch's conventions: biased batch variance to normalise, unbiased
 * variance in the running estimate, running = (1-momentum)*running + momentum*batch. */
#include "internal.h"

#include <math.h>

/* inp and out are (B,C,HW); gamma, beta, mean, invstd, running_mean, running_var are (C).
 * Statistics are summed in double, two passes, so a large mean does not swallow the variance. */
void batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                             float *running_var, const float *inp, const float *gamma,
                             const float *beta, int B, int C, int HW, float momentum, float eps) {
    const double N = (double)B * HW;
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) sum += x[i];
        }
        double mu = sum / N, sq = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) sq += ((double)x[i] - mu) * ((double)x[i] - mu);
        }
        double var = sq / N;
        float is = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu;
        invstd[c] = is;
        /* One value per channel has no spread to estimate: keep the biased 0 then. */
        double unbiased = N > 1.0 ? sq / (N - 1.0) : var;
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        float scale = gamma[c] * is, shift = beta[c] - (float)mu * scale;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            float *y = out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
    }
}

/* The same affine map with the running statistics in place of the batch's. */
void batchnorm_forward_infer(float *out, const float *inp, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var, int B, int C,
                             int HW, float eps) {
    for (int c = 0; c < C; c++) {
        float scale = gamma[c] / sqrtf(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            float *y = out + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
    }
}

/* dout is (B,C,HW); mean and invstd are the training forward pass's. With xhat = (x-mean)*invstd
 * and N = B*HW values per channel:
 *   dbeta += sum(dout), dgamma += sum(dout*xhat),
 *   dinp = gamma*invstd * (dout - sum(dout)/N - xhat*sum(dout*xhat)/N)
 * (the last two terms are the batch statistics' own dependence on x). dinp is overwritten. */
void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *invstd,
                        const float *gamma, int B, int C, int HW) {
    const double N = (double)B * HW;
    for (int c = 0; c < C; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            const float *dy = dout + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sum_dy += dy[i];
                sum_dy_xhat += (double)dy[i] * ((x[i] - mean[c]) * invstd[c]);
            }
        }
        dbeta[c] += (float)sum_dy;
        dgamma[c] += (float)sum_dy_xhat;
        float k = gamma[c] * invstd[c];
        float mean_dy = (float)(sum_dy / N), mean_dy_xhat = (float)(sum_dy_xhat / N);
        if (!dinp) continue;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            const float *dy = dout + ((size_t)b * C + c) * HW;
            float *dx = dinp + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                float xhat = (x[i] - mean[c]) * invstd[c];
                dx[i] = k * (dy[i] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
}
