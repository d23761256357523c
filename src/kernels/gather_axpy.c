/* gather_axpy.c — sums of scaled rows picked by index, out = sum_t val[t] * src[idx[t], :]: the
 * sparse products behind the convolution's backward pass when its output gradient is mostly zeros
 * (fm_gather_axpy), and the plain loop they are tested against (fm_gather_axpy_ref). */
#include "internal.h"

/* 16 floats, loaded and stored unaligned, aliasing plain floats. This file is built with
 * -ffp-contract=fast (Makefile) so that `acc += g * row` is one fused multiply-add: ISO C mode
 * turns contraction off, and a separate multiply and add would halve the rate. */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

/* Rows of at most this many vectors stay in registers for the whole sum (AVX-512 has 32). */
#define MAX_NV 24

/* out[0, nv*16) = (accumulate ? out : 0) + the sum over t of val[t] * src[idx[t]*ld ...], each
 * output one chain of multiply-adds in t order; nv is a constant at every call (the switch below),
 * so the accumulators live in registers and every row is read once, straight into the FMAs. */
static inline __attribute__((always_inline)) void gather_rows(const int nv, float *out, int accumulate,
                                                              const float *src, size_t ld,
                                                              const int32_t *idx, const float *val,
                                                              int n) {
    v16 acc[MAX_NV];
#pragma GCC unroll 24
    for (int q = 0; q < nv; q++) acc[q] = accumulate ? ((const v16 *)out)[q] : (v16){0};
    for (int t = 0; t < n; t++) {
        const v16 *row = (const v16 *)(src + (size_t)idx[t] * ld);
        const float g = val[t];
#pragma GCC unroll 24
        for (int q = 0; q < nv; q++) acc[q] += g * row[q];
    }
#pragma GCC unroll 24
    for (int q = 0; q < nv; q++) ((v16 *)out)[q] = acc[q];
}

void fm_gather_axpy(float *out, int width, int accumulate, const float *src, size_t ld,
                    const int32_t *idx, const float *val, int n) {
    /* width is a multiple of 16: split it into the fewest chunks of at most MAX_NV vectors, as
     * even as they come (288 = 18 vectors is one chunk, 512 = 32 two of 16) */
    int nv_all = width / 16, chunks = (nv_all + MAX_NV - 1) / MAX_NV;
    for (int c = 0, v0 = 0; c < chunks; c++) {
        int v1 = nv_all * (c + 1) / chunks, off = v0 * 16;
        switch (v1 - v0) {
#define NV_CASE(k) \
    case k: gather_rows(k, out + off, accumulate, src + off, ld, idx, val, n); break;
            NV_CASE(1) NV_CASE(2) NV_CASE(3) NV_CASE(4) NV_CASE(5) NV_CASE(6) NV_CASE(7) NV_CASE(8)
            NV_CASE(9) NV_CASE(10) NV_CASE(11) NV_CASE(12) NV_CASE(13) NV_CASE(14) NV_CASE(15)
            NV_CASE(16) NV_CASE(17) NV_CASE(18) NV_CASE(19) NV_CASE(20) NV_CASE(21) NV_CASE(22)
            NV_CASE(23) NV_CASE(24)
#undef NV_CASE
        default: break;
        }
        v0 = v1;
    }
}

/* The definition, element by element, in the same t order (so only the fused roundings differ). */
void fm_gather_axpy_ref(float *out, int width, int accumulate, const float *src, size_t ld,
                        const int32_t *idx, const float *val, int n) {
    for (int j = 0; j < width; j++) {
        float sum = accumulate ? out[j] : 0.0f;
        for (int t = 0; t < n; t++) sum += val[t] * src[(size_t)idx[t] * ld + (size_t)j];
        out[j] = sum;
    }
}
