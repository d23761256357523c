/* activation.c — element-wise activations: ReLU, LeakyReLU, tanh, sigmoid. Backward passes use
 * the saved output, which is all each of them needs, and may run in place. */
#include "internal.h"

#include <math.h>

void relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void tanh_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void sigmoid_forward(float *out, const float *inp, size_t n) {
    /* Two branches keep exp() from overflowing for large |x|. */
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        if (x >= 0.0f) {
            out[i] = 1.0f / (1.0f + expf(-x));
        } else {
            float e = expf(x);
            out[i] = e / (1.0f + e);
        }
    }
}

void sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
}

/* alpha in [0, 1) keeps the output's sign equal to the input's, so backward can read the slope
 * off the saved output like ReLU does. */
void leakyrelu_forward(float *out, const float *inp, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : alpha * inp[i];
}

void leakyrelu_backward(float *dinp, const float *dout, const float *out, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : alpha * dout[i];
}
