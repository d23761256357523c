/* add.c — the close of a residual block: the block's output plus its input, element by element.
 * The input's gradient is the output's, both ways round, so backward is two copies. */
#include "internal.h"

#include <string.h>

/* out (n) = a + b; may run in place (out == a). */
FM_VECTOR_CLONES
void add_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Both addends' gradients are dout: dinp gets it for the block's last layer, saved keeps it
 * until backward reaches the block's input. dinp may be NULL (nothing before the block needs it). */
void add_backward(float *dinp, float *saved, const float *dout, size_t n) {
    memcpy(saved, dout, n * sizeof(float));
    if (dinp && dinp != dout) memcpy(dinp, dout, n * sizeof(float));
}
