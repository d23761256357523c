/* gemm_avx512.c — fm_gemm's tiles for AVX-512 (16 float lanes, 32 registers), compiled for that
 * instruction set whatever the build's -march; fm_gemm calls them only when the CPU has it. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#include "internal.h"

#include <immintrin.h>

#define VEC __m512
#define V 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p))
#define VMASK __mmask16
#define VMASK_FIRST(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTOREN(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VDIV(a, b) _mm512_div_ps((a), (b))
#define VSQRT(a) _mm512_sqrt_ps(a)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
/* vmaxps returns its second operand when either is NaN or both are zero: +0, as v > 0 ? v : 0. */
#define VMAX0(v) _mm512_max_ps((v), _mm512_setzero_ps())
#define VKEEP_GT0(v, m) \
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask((m), _mm512_setzero_ps(), _CMP_GT_OQ), (v))
/* lanes l and l+8, then l and l+4, then neighbours twice: the same tree for every sum. */
static inline __m128 fold512(__m512 x) {
    __m256 y = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
    return _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
}
#define VHSUM4(a, b, c, d, out) \
    _mm_storeu_ps((out), _mm_hadd_ps(_mm_hadd_ps(fold512(a), fold512(b)), \
                                     _mm_hadd_ps(fold512(c), fold512(d))))
#define BMR 6
#define BNR 4
#define DMR 4
#define FN(name) name##_avx512

#include "gemm_simd.h"
