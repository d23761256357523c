/* dense.c — the fully connected layer. Its weight is kept as [in, out], the transpose of
 * PyTorch's [out, in] that model files hold (src/io/safetensors.c converts), so that the two large
 * products of a training step, out = inp·W and dW = inp^T·dout, both read rows of W and dout
 * contiguously and skip the zeros of inp (see the broadcast kernel in gemm_simd.h). */
#include "internal.h"

/* inp is (B,I), weight is (I,O), bias is (O), out is (B,O). With relu the output is max(0, .),
 * computed in the same pass (the model fuses a dense layer with the ReLU after it). */
void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int I, int O, int relu, fm_pool *pool) {
    fm_epilogue ep = {bias, relu, NULL, 0, NULL, 1};
    fm_gemm_ex(fm_simd_best(), 0, 0, B, O, I, inp, I, weight, O, 0, out, O, &ep, pool);
}

/* dout is (B,O). dweight (I,O) and dbias (O) are overwritten, or accumulated (+=) into when
 * accumulate is set; dinp (B,I) is overwritten when it is not NULL (the first layer needs no input
 * gradient). With relu_inp, inp is the output of a ReLU and dinp comes back already through that
 * ReLU's backward pass (zero where inp <= 0), so the model skips the ReLU layer. With adam_w and
 * adam_b (not accumulating), the weight and bias take their Adam step here, the weight's while
 * its gradient is still in registers; dweight is then only scratch. */
void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int I, int O, int accumulate, int relu_inp,
                    const fm_adam_update *adam_w, const fm_adam_update *adam_b, fm_pool *pool) {
    fm_simd level = fm_simd_best();
    /* dinp = dout · weight^T, masked by the ReLU's output when there is one; first, because the
     * weight may be updated below */
    if (dinp) {
        fm_epilogue ep = {NULL, 0, relu_inp ? inp : NULL, I, NULL, 0};
        fm_gemm_ex(level, 0, 1, B, I, O, dout, O, weight, O, 0, dinp, I, &ep, pool);
    }
    /* dweight (+)= inp^T · dout. With fewer outputs than a vector holds (a 10-class layer), each
     * row of the weight is a masked partial vector and a fused step does one per row: mlp's
     * 128x10 took 4.9 us so. The gradient is then stored and Adam runs once over the flat
     * array, with the same operations in the same order, so the same bits. */
    int fuse = adam_w && O >= 16;
    fm_epilogue ep = {NULL, 0, NULL, 0, adam_w, 0};
    fm_gemm_ex(level, 1, 0, I, O, B, inp, I, dout, O, accumulate, dweight, O, fuse ? &ep : NULL,
               pool);
    if (adam_w && !fuse) {
        size_t n = (size_t)I * (size_t)O;
        if (adam_w->l2x2 != 0.0f) {
            for (size_t i = 0; i < n; i++) dweight[i] = dweight[i] + adam_w->l2x2 * adam_w->params[i];
        }
        adam_apply(adam_w->params, dweight, adam_w->m, adam_w->v, n, adam_w->alpha, adam_w->beta1,
                   adam_w->beta2, adam_w->eps);
    }
    if (!accumulate) {
        for (int j = 0; j < O; j++) dbias[j] = 0.0f;
    }
    for (int b = 0; b < B; b++) {
        const float *d = dout + (size_t)b * O;
        for (int j = 0; j < O; j++) dbias[j] += d[j];
    }
    if (adam_b) {
        adam_apply(adam_b->params, dbias, adam_b->m, adam_b->v, (size_t)O, adam_b->alpha,
                   adam_b->beta1, adam_b->beta2, adam_b->eps);
    }
}
