/* dropout.c — inverted dropout, used only while training (the model copies its input through at
 * inference). The random draws come from the caller's fm_rng, so a seeded run repeats exactly. */
#include "internal.h"

/* inp, out and mask are (n). Each value survives with probability 1-p and is scaled by 1/(1-p)
 * so that the expected output equals the input; mask keeps that factor (0 or 1/(1-p)). */
void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, fm_rng *rng) {
    const float scale = 1.0f / (1.0f - p);
    fm_rng_uniform_fill(rng, mask, n); /* the draws first, then a loop that vectorises */
    for (size_t i = 0; i < n; i++) {
        mask[i] = mask[i] >= p ? scale : 0.0f;
        out[i] = inp[i] * mask[i];
    }
}

/* dinp (n) is overwritten with dout * mask; may run in place (dinp == dout). */
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * mask[i];
}
