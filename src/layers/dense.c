/* dense.c — the fully connected layer, weights in PyTorch's [out, in] layout. */
#include "internal.h"

/* inp is (B,I), weight is (O,I), bias is (O), out is (B,O). */
void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int I, int O, int threads) {
    fm_gemm(0, 1, B, O, I, inp, I, weight, I, 0, out, O, threads);
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * O;
        for (int j = 0; j < O; j++) o[j] += bias[j];
    }
}

/* dout is (B,O). dweight (O,I) and dbias (O) are accumulated (+=) so that callers zero them once
 * per step; dinp (B,I) is overwritten. */
void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int I, int O, int threads) {
    /* dweight += dout^T · inp */
    fm_gemm(1, 0, O, I, B, dout, O, inp, I, 1, dweight, I, threads);
    for (int b = 0; b < B; b++) {
        const float *d = dout + (size_t)b * O;
        for (int j = 0; j < O; j++) dbias[j] += d[j];
    }
    /* dinp = dout · weight */
    if (dinp) fm_gemm(0, 0, B, I, O, dout, O, weight, I, 0, dinp, I, threads);
}
