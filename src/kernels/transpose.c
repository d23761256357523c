/* transpose.c — matrix transposes, 16x16 blocks at a time in vector registers (fm_transpose), and
 * the element-by-element loop it is tested against (fm_transpose_ref). The convolutions move
 * every sample between channels-first and channels-last with them. */
#include "internal.h"

/* 16 floats, loaded and stored unaligned, aliasing plain floats; lane indices for shuffles. */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t i16 __attribute__((vector_size(64)));

/* dst (16 rows, ldd apart) = src (16 rows, lds apart) transposed. Four rounds: in round s (8, 4,
 * 2, 1) every 2s x 2s block [[A, B], [C, D]] of s x s blocks becomes [[A, C], [B, D]], rows i and
 * i+s trading halves of each 2s-column segment; after the four the whole block is transposed.
 * Lanes 16..31 of a shuffle's mask pick from its second operand. */
#if defined(__clang__)
/* clang (the fuzz build) has no __builtin_shuffle with a mask in a variable: the plain loop. */
static void block16(float *dst, size_t ldd, const float *src, size_t lds) {
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
    }
}
#else
static void block16(float *dst, size_t ldd, const float *src, size_t lds) {
    v16 r[16];
    for (int i = 0; i < 16; i++) r[i] = *(const v16 *)(src + (size_t)i * lds);
    const i16 lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const i16 hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    const i16 lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    const i16 hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    const i16 lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    const i16 hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    const i16 lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    const i16 hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
#define ROUND(s, lo, hi)                                               \
    for (int i = 0; i < 16; i++) {                                     \
        if (i % (2 * s) >= s) continue;                                \
        v16 a = r[i], b = r[i + s];                                    \
        r[i] = __builtin_shuffle(a, b, lo);                            \
        r[i + s] = __builtin_shuffle(a, b, hi);                        \
    }
    ROUND(8, lo8, hi8)
    ROUND(4, lo4, hi4)
    ROUND(2, lo2, hi2)
    ROUND(1, lo1, hi1)
#undef ROUND
    for (int i = 0; i < 16; i++) *(v16 *)(dst + (size_t)i * ldd) = r[i];
}
#endif

void fm_transpose(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    const int rows16 = rows / 16 * 16, cols16 = cols / 16 * 16;
    for (int i0 = 0; i0 < rows16; i0 += 16) {
        for (int j0 = 0; j0 < cols16; j0 += 16) {
            block16(dst + (size_t)j0 * ldd + i0, ldd, src + (size_t)i0 * lds + j0, lds);
        }
        /* the last columns: 16 rows read in step, as many cache lines in flight */
        for (int j = cols16; j < cols; j++) {
            for (int i = i0; i < i0 + 16; i++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
        }
    }
    for (int i = rows16; i < rows; i++) {
        for (int j = 0; j < cols; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
    }
}

void fm_transpose_ref(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
    }
}
