/* gemm_bf16.c — matrix products on bfloat16 operands with float sums (mixed precision): the
 * packing that rounds float matrices to bf16 pairs, the AVX-512 BF16 tile (vdpbf16ps, twice the
 * multiplies per instruction of a float FMA) and the plain reference it is tested against. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* The vector code is compiled for AVX-512 BF16 whatever the build's -march, with GCC's target
 * pragma (clang, which builds only the fuzz targets, ignores it: there the plain code runs). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_AVX512BF16 1
#endif

/* bf16 is a float's top 16 bits; rounding to nearest, ties to even, as vcvtne2ps2bf16 does,
 * and like it reading subnormal inputs as zero. NaN stays a (quiet) NaN rather than rounding
 * into infinity. */
fm_bf16 fm_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (fm_bf16)((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0) return (fm_bf16)((u >> 16) & 0x8000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (fm_bf16)(u >> 16);
}

float fm_bf16_float(fm_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

int fm_bf16_fast(void) {
#ifdef HAVE_AVX512BF16
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- packing
 * Both operands of fm_gemm_bf16 hold their k index in pairs: element (i, 2kk + h) of A and
 * (2kk + h, j) of B are the half h of a 32-bit pair, the unit vdpbf16ps multiplies. */

/* Columns [c0, cols) of each: the whole of it in plain code, the tail after the vectors. */
static void pack_rows_from(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld, int c0) {
    const int cp = (cols + 1) & ~1;
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        fm_bf16 *d = dst + (size_t)r * (size_t)cp;
        for (int c = c0; c < cols; c++) d[c] = fm_bf16_round(s[c]);
        if (cp > cols) d[cols] = 0;
    }
}

static void pack_pairs_from(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld, int c0) {
    for (int r = 0; r < rows; r += 2) {
        const float *s0 = src + (size_t)r * ld, *s1 = r + 1 < rows ? s0 + ld : NULL;
        fm_bf16 *d = dst + (size_t)(r / 2) * (size_t)cols * 2;
        for (int c = c0; c < cols; c++) {
            d[2 * c] = fm_bf16_round(s0[c]);
            d[2 * c + 1] = s1 ? fm_bf16_round(s1[c]) : 0;
        }
    }
}

/* ---------------------------------------------------------------- reference
 * vdpbf16ps's arithmetic, lane by lane: the pair's odd product first, then the even one, each
 * added with one rounding (a product of two bf16 values is exact in float), under the flush to
 * zero the library computes in (fm_fpenv_enter), which the instruction always applies; the sum
 * starts at zero and is added to C after, as fm_gemm's are. */
void fm_gemm_bf16_ref(int M, int N, int K2, const fm_bf16 *A, size_t a_row, size_t a_pair,
                      const fm_bf16 *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int kk = 0; kk < K2; kk++) {
                const fm_bf16 *a = A + 2 * ((size_t)i * a_row + (size_t)kk * a_pair);
                const fm_bf16 *b = B + 2 * ((size_t)kk * ldb + (size_t)j);
                s = fmaf(fm_bf16_float(a[1]), fm_bf16_float(b[1]), s);
                s = fmaf(fm_bf16_float(a[0]), fm_bf16_float(b[0]), s);
            }
            C[(size_t)i * ldc + j] = accumulate ? C[(size_t)i * ldc + j] + s : s;
        }
    }
}

/* ---------------------------------------------------------------- AVX-512 BF16 */
#ifdef HAVE_AVX512BF16
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#include <immintrin.h>

#define MR 6 /* rows of C per tile: 6 x 4 accumulators, 4 B vectors and a broadcast in 32 registers */
#define NV 4 /* vectors of 16 columns per tile */

/* C[i..i+mr, j..j+cols) (cols <= nv*16): each pair step broadcasts A's pair (i+r, kk) and
 * multiplies it into nv vectors of 16 column pairs of B's pair row kk. */
static inline __attribute__((always_inline)) void tile(const int mr, const int nv, int i, int j,
                                                      int cols, int K2, const uint32_t *A,
                                                      size_t a_row, size_t a_pair, const uint32_t *B,
                                                      int ldb, int accumulate, float *C, int ldc) {
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int q = 0; q < nv; q++) acc[r][q] = _mm512_setzero_ps();
    const int last = cols - (nv - 1) * 16;
    const __mmask16 last_mask = (__mmask16)((1u << last) - 1u);
    const uint32_t *b = B + j;
    const uint32_t *a[MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) a[r] = A + (size_t)(i + r) * a_row;
    for (int kk = 0; kk < K2; kk++, b += ldb) {
        __m512bh bv[NV];
#pragma GCC unroll 8
        for (int q = 0; q < nv; q++) {
            __m512i v = q < nv - 1 ? _mm512_loadu_si512(b + 16 * q)
                                   : _mm512_maskz_loadu_epi32(last_mask, b + 16 * q);
            bv[q] = (__m512bh)v;
        }
        const size_t ak = (size_t)kk * a_pair;
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r][ak]);
#pragma GCC unroll 8
            for (int q = 0; q < nv; q++) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], av, bv[q]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)(i + r) * ldc + j;
#pragma GCC unroll 8
        for (int q = 0; q < nv; q++) {
            const __mmask16 m = q < nv - 1 ? (__mmask16)0xffff : last_mask;
            __m512 s = acc[r][q];
            if (accumulate) s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + 16 * q), s);
            _mm512_mask_storeu_ps(c + 16 * q, m, s);
        }
    }
}

static void tile_rows(int rows, int i, int j, int cols, int K2, const uint32_t *A, size_t a_row,
                      size_t a_pair, const uint32_t *B, int ldb, int accumulate, float *C, int ldc) {
    const int nv = (cols + 15) / 16;
#define TILE_NV(r, n) \
    case n: tile(r, n, i, j, cols, K2, A, a_row, a_pair, B, ldb, accumulate, C, ldc); break;
#define TILE_ROWS(r) \
    case r: switch (nv) { TILE_NV(r, 1) TILE_NV(r, 2) TILE_NV(r, 3) TILE_NV(r, 4) } break;
    switch (rows) { TILE_ROWS(1) TILE_ROWS(2) TILE_ROWS(3) TILE_ROWS(4) TILE_ROWS(5) TILE_ROWS(6) default: break; }
#undef TILE_ROWS
#undef TILE_NV
}

/* vcvtne2ps2bf16 rounds 32 floats at once, as fm_bf16_round does one: whole vectors here, the
 * rest in plain code. pack_pairs then interleaves two rows' 16 values word by word. */
static int pack_rows_avx512bf16(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld) {
    const int cp = (cols + 1) & ~1, vec_cols = cols & ~31;
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        fm_bf16 *d = dst + (size_t)r * (size_t)cp;
        for (int c = 0; c < vec_cols; c += 32) {
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + c + 16), _mm512_loadu_ps(s + c));
            _mm512_storeu_si512(d + c, (__m512i)h);
        }
    }
    return vec_cols;
}

static int pack_pairs_avx512bf16(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld) {
    const int vec_cols = cols & ~15;
    /* word 2i from the first row's i, word 2i+1 from the second's (the upper half) */
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                                24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int r = 0; r < rows; r += 2) {
        const float *s0 = src + (size_t)r * ld, *s1 = s0 + ld;
        fm_bf16 *d = dst + (size_t)(r / 2) * (size_t)cols * 2;
        for (int c = 0; c < vec_cols; c += 16) {
            /* an odd last row is paired with zeros */
            __m512 hi = r + 1 < rows ? _mm512_loadu_ps(s1 + c) : _mm512_setzero_ps();
            __m512bh h = _mm512_cvtne2ps_pbh(hi, _mm512_loadu_ps(s0 + c));
            _mm512_storeu_si512(d + 2 * c, _mm512_permutexvar_epi16(interleave, (__m512i)h));
        }
    }
    return vec_cols;
}

static void gemm_avx512bf16(int M, int N, int K2, const fm_bf16 *A, size_t a_row, size_t a_pair,
                            const fm_bf16 *B, int ldb, int accumulate, float *C, int ldc) {
    const uint32_t *A32 = (const uint32_t *)(const void *)A, *B32 = (const uint32_t *)(const void *)B;
    for (int j = 0; j < N; j += NV * 16) {
        const int cols = N - j < NV * 16 ? N - j : NV * 16;
        for (int i = 0; i < M; i += MR) {
            const int rows = M - i < MR ? M - i : MR;
            tile_rows(rows, i, j, cols, K2, A32, a_row, a_pair, B32, ldb, accumulate, C, ldc);
        }
    }
}
#pragma GCC pop_options
#endif

void fm_bf16_pack_rows(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld) {
    int done = 0;
#ifdef HAVE_AVX512BF16
    if (fm_bf16_fast()) done = pack_rows_avx512bf16(dst, src, rows, cols, ld);
#endif
    pack_rows_from(dst, src, rows, cols, ld, done);
}

void fm_bf16_pack_pairs(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld) {
    int done = 0;
#ifdef HAVE_AVX512BF16
    if (fm_bf16_fast()) done = pack_pairs_avx512bf16(dst, src, rows, cols, ld);
#endif
    pack_pairs_from(dst, src, rows, cols, ld, done);
}

void fm_gemm_bf16(int fast, int M, int N, int K2, const fm_bf16 *A, size_t a_row, size_t a_pair,
                  const fm_bf16 *B, int ldb, int accumulate, float *C, int ldc) {
#ifdef HAVE_AVX512BF16
    if (fast && fm_bf16_fast()) {
        gemm_avx512bf16(M, N, K2, A, a_row, a_pair, B, ldb, accumulate, C, ldc);
        return;
    }
#endif
    (void)fast;
    fm_gemm_bf16_ref(M, N, K2, A, a_row, a_pair, B, ldb, accumulate, C, ldc);
}
