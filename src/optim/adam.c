/* adam.c — Adam (Kingma & Ba) in the form tf.keras implements it, so that hyper-parameters from
 * the notebooks mean the same thing here. */
#include "internal.h"

#include <math.h>

float adam_alpha(float lr, float beta1, float beta2, long t) {
    /* Bias corrections folded into the step size; computed in double because beta^t for large t
     * loses precision in float. */
    double c1 = 1.0 - pow((double)beta1, (double)t);
    double c2 = 1.0 - pow((double)beta2, (double)t);
    return (float)((double)lr * sqrt(c2) / c1);
}

FM_VECTOR_CLONES void adam_apply(float *params, const float *grads, float *m, float *v, size_t n,
                                 float alpha, float beta1, float beta2, float eps) {
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        params[i] -= alpha * m[i] / (sqrtf(v[i]) + eps);
    }
}

void adam_step(float *params, const float *grads, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, long t) {
    adam_apply(params, grads, m, v, n, adam_alpha(lr, beta1, beta2, t), beta1, beta2, eps);
}
