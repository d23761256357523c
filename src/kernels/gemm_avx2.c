/* gemm_avx2.c — fm_gemm's tiles for AVX2 + FMA (8 float lanes, 16 registers), compiled for that
 * instruction set whatever the build's -march; fm_gemm calls them only when the CPU has it. */
#pragma GCC target("avx2,fma")
#include "internal.h"

#include <immintrin.h>

static inline __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define VEC __m256
#define V 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADN(p, n) _mm256_maskload_ps((p), first_lanes(n))
#define VMASK __m256i
#define VMASK_FIRST(n) first_lanes(n)
#define VLOADM(p, m) _mm256_maskload_ps((p), (m))
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSTOREN(p, v, n) _mm256_maskstore_ps((p), first_lanes(n), (v))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VDIV(a, b) _mm256_div_ps((a), (b))
#define VSQRT(a) _mm256_sqrt_ps(a)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
/* vmaxps returns its second operand when either is NaN or both are zero: +0, as v > 0 ? v : 0. */
#define VMAX0(v) _mm256_max_ps((v), _mm256_setzero_ps())
#define VKEEP_GT0(v, m) _mm256_and_ps((v), _mm256_cmp_ps((m), _mm256_setzero_ps(), _CMP_GT_OQ))
/* lanes l and l+4, then neighbours twice: the same tree for every sum. */
static inline __m128 fold256(__m256 x) {
    return _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
}
#define VHSUM4(a, b, c, d, out) \
    _mm_storeu_ps((out), _mm_hadd_ps(_mm_hadd_ps(fold256(a), fold256(b)), \
                                     _mm_hadd_ps(fold256(c), fold256(d))))
#define BMR 6
#define BNR 2
#define DMR 2
#define FN(name) name##_avx2

#include "gemm_simd.h"
