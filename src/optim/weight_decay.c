/* weight_decay.c — decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
 * Regularization"): weights shrink by lr*wd each step outside the gradient, so Adam's per-weight
 * scaling does not weaken it as it weakens an L2 term in the loss. AdamW and SGDW are this step
 * followed by the plain optimizer's. */
#include "internal.h"

void weight_decay_step(float *params, size_t n, float lr, float weight_decay) {
    const float keep = 1.0f - lr * weight_decay;
    for (size_t i = 0; i < n; i++) params[i] *= keep;
}
