/* simd_stubs.c — the fuzz build compiles the library with clang, which does not take the GCC
 * target pragmas of the SIMD tiles; these stubs decline every block, so fm_gemm runs its portable
 * loops (the parsers under test never depend on which kernel multiplies). */
#include "internal.h"

int fm_gemm_block_avx512(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                         int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                         const fm_epilogue *ep) {
    return 0;
}

int fm_gemm_block_avx2(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                       int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                       const fm_epilogue *ep) {
    return 0;
}
