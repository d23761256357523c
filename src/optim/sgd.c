/* sgd.c — stochastic gradient descent with optional (Nesterov) momentum, as Keras defines it. */
#include "internal.h"

FM_VECTOR_CLONES void sgd_step(float *params, const float *grads, float *velocity, size_t n, float lr,
              float momentum, int nesterov) {
    if (momentum == 0.0f) {
        for (size_t i = 0; i < n; i++) params[i] -= lr * grads[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = momentum * velocity[i] - lr * grads[i];
        velocity[i] = v;
        params[i] += nesterov ? momentum * v - lr * grads[i] : v;
    }
}
