/* gemm_simd.h — the SIMD matrix-multiply tiles behind fm_gemm, written once over a few vector
 * macros and compiled once per instruction set (gemm_avx512.c, gemm_avx2.c); include nowhere else.
 *
 * The includer defines: VEC (the vector type), V (its lanes), VZERO(), VSET1(x), VLOAD(p),
 * VLOADN(p, n) (first n lanes, the rest 0, reading nothing beyond them), VMASK, VMASK_FIRST(n)
 * and VLOADM(p, mask) (the same with the mask made once), VSTORE(p, v),
 * VSTOREN(p, v, n), VADD, VSUB, VMUL, VDIV, VSQRT, VFMA(a, b, c) = a*b + c with one rounding,
 * VMAX0(v) (max(v, 0), +0 for NaN as `v > 0 ? v : 0`), VKEEP_GT0(v, m) (`m > 0 ? v : 0` lane by
 * lane), VHSUM4(a, b, c, d, out) (four horizontal sums, each by the same tree), the tile sizes
 * BMR, BNR (broadcast kernel: rows x vectors) and DMR (dot kernel rows; it always does 4
 * columns), and FN(name) (a suffix).
 *
 * Why every element comes out the same whatever the tiling and thread split: each output is one
 * fixed chain of fused multiply-adds over k (broadcast kernel) or a fixed lane pattern over k
 * followed by a fixed reduction tree (dot kernel), whichever tile it falls in; a dot tile at the
 * edge of C reuses its last row or column for the missing ones and stores only the real ones. */

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Rows per tile of the weight-gradient path (see FN(fm_gemm_block)): 1 to 6 measured on mlp's
 * 784x128x32 + Adam, 98 / 89 / 88 / 85 / 90 us for 1 / 2 / 3 / 4 / 6 (AVX-512). */
#define WGRAD_MR 4

/* Keeps a loaded vector in a register: without it GCC folds the load into every FMA that uses it,
 * repeating it DMR or BMR times, and the tile becomes load-bound. */
#if defined(__GNUC__)
#define IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define IN_REGISTER(v) (void)0
#endif

/* Adam on n (<= V) elements of row i from column j, g being their gradient: adam_apply's
 * operations in adam_apply's order, so the fused and the separate step give the same bits. */
static inline void FN(adam_vec)(const fm_adam_update *a, int i, int j, int n, VEC g) {
    size_t at = (size_t)i * (size_t)a->ld + (size_t)j;
    float *p = a->params + at, *m = a->m + at, *v = a->v + at;
    VEC w = n == V ? VLOAD(p) : VLOADN(p, n);
    VEC mv = n == V ? VLOAD(m) : VLOADN(m, n);
    VEC vv = n == V ? VLOAD(v) : VLOADN(v, n);
    if (a->l2x2 != 0.0f) g = VADD(g, VMUL(VSET1(a->l2x2), w));
    mv = VADD(VMUL(VSET1(a->beta1), mv), VMUL(VSET1(1.0f - a->beta1), g));
    vv = VADD(VMUL(VSET1(a->beta2), vv), VMUL(VMUL(VSET1(1.0f - a->beta2), g), g));
    w = VSUB(w, VDIV(VMUL(VSET1(a->alpha), mv), VADD(VSQRT(vv), VSET1(a->eps))));
    if (n == V) {
        VSTORE(p, w), VSTORE(m, mv), VSTORE(v, vv);
    } else {
        VSTOREN(p, w, n), VSTOREN(m, mv, n), VSTOREN(v, vv, n);
    }
}

static inline void FN(adam_scalar)(const fm_adam_update *a, int i, int j, float g) {
    size_t at = (size_t)i * (size_t)a->ld + (size_t)j;
    if (a->l2x2 != 0.0f) g = g + a->l2x2 * a->params[at];
    a->m[at] = a->beta1 * a->m[at] + (1.0f - a->beta1) * g;
    a->v[at] = a->beta2 * a->v[at] + (1.0f - a->beta2) * g * g;
    a->params[at] -= a->alpha * a->m[at] / (sqrtf(a->v[at]) + a->eps);
}

/* C = (accumulate ? C + s : s), then + bias[j], then ReLU, then zeroed where mask <= 0. */
static inline VEC FN(epilogue_vec)(VEC s, const float *c, int n, int j, int i, int accumulate,
                                   const fm_epilogue *ep) {
    if (accumulate) s = VADD(n == V ? VLOAD(c) : VLOADN(c, n), s);
    if (ep) {
        if (ep->bias) s = VADD(s, n == V ? VLOAD(ep->bias + j) : VLOADN(ep->bias + j, n));
        if (ep->relu) s = VMAX0(s);
        if (ep->mask) {
            const float *m = ep->mask + (size_t)i * (size_t)ep->ldm + (size_t)j;
            s = VKEEP_GT0(s, n == V ? VLOAD(m) : VLOADN(m, n));
        }
    }
    return s;
}

static inline float FN(epilogue_scalar)(float s, float c, int j, int i, int accumulate,
                                        const fm_epilogue *ep) {
    if (accumulate) s = c + s;
    if (ep) {
        if (ep->bias) s = s + ep->bias[j];
        if (ep->relu) s = s > 0.0f ? s : 0.0f;
        if (ep->mask && !(ep->mask[(size_t)i * (size_t)ep->ldm + (size_t)j] > 0.0f)) s = 0.0f;
    }
    return s;
}

/* ---------------------------------------------------------------- broadcast kernel (NN, TN)
 * C[i..i+mr, j..j+cols), cols <= nv*V, B pointing at column j: each step over k broadcasts
 * op(A)[i+r, k] and multiplies it into nv vectors of B's row k (the last one partial when cols is not a multiple of V), so B
 * is read along its rows and A one element at a time. With nonzero_k, only the listed steps
 * run, those where the tile's elements of A are not all zero: inputs (background pixels) and ReLU
 * outputs often are. Skipping changes no bit: an accumulator that starts at +0 never becomes -0, and adding a
 * zero product to anything else leaves it as it is. mr and nv are constants at every call, so
 * the loops over them unroll and the accumulators live in registers. */

static inline __attribute__((always_inline)) void FN(bcast_tile)(
    const int mr, const int nv, int ta, int i, int j, int cols, int K, const int *nonzero_k,
    int n_nonzero, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
    int ldc, const fm_epilogue *ep) {
    const float *a[BMR];
    size_t a_step = ta ? (size_t)lda : 1; /* op(A)[i+r, k] = a[r][k * a_step] */
    for (int r = 0; r < mr; r++) a[r] = ta ? A + i + r : A + (size_t)(i + r) * (size_t)lda;
    VEC acc[BMR][BNR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int q = 0; q < nv; q++) acc[r][q] = VZERO();
    const float *b = B; /* the caller passes B at column j */
    int last = cols - (nv - 1) * V; /* lanes of the last vector, 1..V */
    VMASK last_mask = VMASK_FIRST(last); /* a masked load of all lanes costs what a load does */
    /* One step: acc[r][q] += op(A)[i+r, k] * B[k, j + q*V ...], with ak = k * a_step and bk
     * pointing at B[k, j]. */
#define BCAST_STEP(ak, bk)                                                                      \
    do {                                                                                        \
        VEC bv[BNR];                                                                            \
        _Pragma("GCC unroll 8") for (int q = 0; q < nv; q++) {                                   \
            bv[q] = q < nv - 1 ? VLOAD((bk) + q * V) : VLOADM((bk) + q * V, last_mask);        \
            IN_REGISTER(bv[q]);                                                                 \
        }                                                                                       \
        _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {                                   \
            VEC av = VSET1(a[r][ak]);                                                           \
            IN_REGISTER(av); /* one broadcast, not one folded into each FMA */                  \
            _Pragma("GCC unroll 8") for (int q = 0; q < nv; q++) acc[r][q] =                      \
                VFMA(av, bv[q], acc[r][q]);                                                     \
        }                                                                                       \
    } while (0)
    if (nonzero_k) {
        for (int t = 0; t < n_nonzero; t++) {
            size_t k = (size_t)nonzero_k[t];
            BCAST_STEP(k * a_step, b + k * (size_t)ldb);
        }
    } else {
        /* offsets advanced by addition: no multiply in the loop */
        size_t ak = 0;
        for (int k = 0; k < K; k++, b += ldb, ak += a_step) BCAST_STEP(ak, b);
    }
#undef BCAST_STEP
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)(i + r) * (size_t)ldc + j;
#pragma GCC unroll 8
        for (int q = 0; q < nv; q++) {
            int n = q < nv - 1 ? V : last;
            VEC s = FN(epilogue_vec)(acc[r][q], c + q * V, n, j + q * V, i + r, accumulate, ep);
            if (ep && ep->adam) FN(adam_vec)(ep->adam, i + r, j + q * V, n, s);
            else if (n == V) VSTORE(c + q * V, s);
            else VSTOREN(c + q * V, s, n);
        }
    }
}

/* One specialisation per row count and vector count, so that short tiles (the last rows, a
 * single image, a 10-class output) do no wasted work. */
static void FN(bcast_rows)(int rows, int ta, int i, int j, int cols, int K, const int *nonzero_k,
                           int n_nonzero, const float *A, int lda, const float *B, int ldb,
                           int accumulate, float *C, int ldc, const fm_epilogue *ep) {
    int nv = (cols + V - 1) / V;
#define BCAST_NV(r, n)                                                                          \
    case n:                                                                                     \
        FN(bcast_tile)(r, n, ta, i, j, cols, K, nonzero_k, n_nonzero, A, lda, B, ldb, accumulate, \
                       C, ldc, ep);                                                             \
        break;
#if BNR == 4
#define BCAST_ROWS(r) \
    case r: switch (nv) { BCAST_NV(r, 1) BCAST_NV(r, 2) BCAST_NV(r, 3) BCAST_NV(r, 4) } break;
#else
#define BCAST_ROWS(r) case r: switch (nv) { BCAST_NV(r, 1) BCAST_NV(r, 2) } break;
#endif
    switch (rows) {
    BCAST_ROWS(1) BCAST_ROWS(2) BCAST_ROWS(3) BCAST_ROWS(4) BCAST_ROWS(5) BCAST_ROWS(6)
    default: break;
    }
#undef BCAST_ROWS
#undef BCAST_NV
}

/* ---------------------------------------------------------------- dot kernel (NT)
 * C[i..i+DMR, j..j+4) as dot products of A's rows with B's rows, both read along k, V lanes at a
 * time; lane l sums the k = l (mod V), then VHSUM4 adds the lanes. */

static inline void FN(dot_tile)(int i, int rows, int j, int cols, int K, const float *A, int lda,
                                const float *B, int ldb, int accumulate, float *C, int ldc,
                                const fm_epilogue *ep) {
    const float *a[DMR], *b[4];
    for (int r = 0; r < DMR; r++) a[r] = A + (size_t)(i + (r < rows ? r : rows - 1)) * (size_t)lda;
    for (int q = 0; q < 4; q++) b[q] = B + (size_t)(j + (q < cols ? q : cols - 1)) * (size_t)ldb;
    VEC acc[DMR][4];
#pragma GCC unroll 8
    for (int r = 0; r < DMR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[r][q] = VZERO();
    int k = 0;
    for (; k + V <= K; k += V) {
        VEC av[DMR];
#pragma GCC unroll 8
        for (int r = 0; r < DMR; r++) {
            av[r] = VLOAD(a[r] + k);
            IN_REGISTER(av[r]);
        }
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            VEC bv = VLOAD(b[q] + k);
#pragma GCC unroll 8
            for (int r = 0; r < DMR; r++) acc[r][q] = VFMA(av[r], bv, acc[r][q]);
        }
    }
    if (k < K) {
        int n = K - k;
        VEC av[DMR];
#pragma GCC unroll 8
        for (int r = 0; r < DMR; r++) av[r] = VLOADN(a[r] + k, n);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            VEC bv = VLOADN(b[q] + k, n);
#pragma GCC unroll 8
            for (int r = 0; r < DMR; r++) acc[r][q] = VFMA(av[r], bv, acc[r][q]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < DMR; r++) {
        if (r >= rows) break;
        float s[4];
        VHSUM4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], s);
        float *c = C + (size_t)(i + r) * (size_t)ldc + j;
        for (int q = 0; q < cols && q < 4; q++) {
            float v = FN(epilogue_scalar)(s[q], accumulate ? c[q] : 0.0f, j + q, i + r, accumulate, ep);
            if (ep && ep->adam) FN(adam_scalar)(ep->adam, i + r, j + q, v);
            else c[q] = v;
        }
    }
}

/* Rows [i0,i1) x columns [j0,j1) of C. Returns 0 for the layout it does not handle (TT), which
 * the caller then computes with the portable code. */
int FN(fm_gemm_block)(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                      int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                      const fm_epilogue *ep) {
    if (ta && tb) return 0;
    /* B transposed with a short K (a dense layer's input gradient dout · W^T, K = its outputs):
     * each panel of BNR*V columns of op(B) is packed once into a K x BNR*V block, and the
     * broadcast kernel runs on it. The dot kernel below spends as long on its final horizontal
     * sums as on a K of 128, and reached under half the broadcast kernel's rate there. */
    enum { PACK_K = 256 };
    /* (fm_gemm_ex transposes the smallest of these whole, which gives the same bits.) */
    if (tb && K <= PACK_K) {
        float packed[PACK_K * BNR * V];
        for (int j = j0; j < j1; j += BNR * V) {
            int cols = j1 - j < BNR * V ? j1 - j : BNR * V;
            for (int q = 0; q < cols; q++) {
                const float *src = B + (size_t)(j + q) * (size_t)ldb;
                for (int k = 0; k < K; k++) packed[k * BNR * V + q] = src[k];
            }
            for (int i = i0; i < i1; i += BMR) {
                int rows = i1 - i < BMR ? i1 - i : BMR;
                FN(bcast_rows)(rows, 0, i, j, cols, K, NULL, 0, A, lda, packed, BNR * V, accumulate,
                               C, ldc, ep);
            }
        }
        return 1;
    }
    if (tb) {
        /* Column tiles inside row tiles: the DMR rows of A stay in L1 while B streams by. */
        for (int i = i0; i < i1; i += DMR) {
            int rows = i1 - i < DMR ? i1 - i : DMR;
            for (int j = j0; j < j1; j += 4) {
                int cols = j1 - j < 4 ? j1 - j : 4;
                FN(dot_tile)(i, rows, j, cols, K, A, lda, B, ldb, accumulate, C, ldc, ep);
            }
        }
        return 1;
    }
    /* A single row (one image: a server's case) lists the steps k where A is non-zero, without
     * a branch, and runs every column panel over just those: half the work on a typical image.
     * Taller tiles run every step: there a per-step zero test mispredicts often enough on real
     * images to cost more than it saves (1,000 test images through the first layer of mlp took
     * 1.9 ms with the test, 1.57 ms without), and listing per tile costs as much again. */
    enum { MAX_LISTED = 4096 };
    if (i1 - i0 == 1 && K <= MAX_LISTED) {
        int nonzero_k[MAX_LISTED], n = 0;
        size_t a_step = ta ? (size_t)lda : 1;
        const float *a = ta ? A + i0 : A + (size_t)i0 * (size_t)lda;
        for (int k = 0; k < K; k++) {
            nonzero_k[n] = k; /* kept when non-zero */
            n += a[(size_t)k * a_step] != 0.0f;
        }
        for (int j = j0; j < j1; j += BNR * V) {
            int cols = j1 - j < BNR * V ? j1 - j : BNR * V;
            FN(bcast_rows)(1, ta, i0, j, cols, K, nonzero_k, n, A, lda, B + j, ldb, accumulate, C,
                           ldc, ep);
        }
        return 1;
    }
    /* A weight gradient at a batch of up to 32 (A transposed, K the batch, C's rows the
     * layer's inputs): one bit per image saying which of a row's products are non-zero, built
     * for 256 rows at a time with vector compares, lets short tiles skip the images where their
     * rows are all zero: on Fashion-MNIST, half the steps for one row, 69% of them kept for six.
     * WGRAD_MR rows per tile balances that against reusing each load of B. */
    if (ta && K <= 32) {
        enum { CHUNK = 256 };
        uint32_t nz[CHUNK];
        int nonzero_k[32];
        for (int c0 = i0; c0 < i1; c0 += CHUNK) {
            int c1 = i1 - c0 < CHUNK ? i1 : c0 + CHUNK;
            for (int i = 0; i < c1 - c0; i++) nz[i] = 0;
            for (int k = 0; k < K; k++) {
                const float *ak = A + (size_t)k * (size_t)lda + c0;
                for (int i = 0; i < c1 - c0; i++) nz[i] |= (uint32_t)(ak[i] != 0.0f) << k;
            }
            for (int i = c0; i < c1; i += WGRAD_MR) {
                int rows = c1 - i < WGRAD_MR ? c1 - i : WGRAD_MR, n = 0;
                uint32_t any = 0;
                for (int r = 0; r < rows; r++) any |= nz[i - c0 + r];
                for (; any; any &= any - 1) nonzero_k[n++] = __builtin_ctz(any);
                for (int j = j0; j < j1; j += BNR * V) {
                    int cols = j1 - j < BNR * V ? j1 - j : BNR * V;
                    FN(bcast_rows)(rows, ta, i, j, cols, K, nonzero_k, n, A, lda, B + j, ldb, accumulate,
                                   C, ldc, ep);
                }
            }
        }
        return 1;
    }
    /* With A transposed and a short K (a weight gradient: K is the batch, a tile's rows are
     * neighbouring pixels, A[k, i..i+BMR) contiguous), listing the images where a tile's pixels
     * are not all zero is cheap and skips about a third of the steps on Fashion-MNIST. */
    if (ta && K <= 256) {
        int nonzero_k[256];
        for (int i = i0; i < i1; i += BMR) {
            int rows = i1 - i < BMR ? i1 - i : BMR, n = 0;
            for (int k = 0; k < K; k++) {
                const float *ak = A + (size_t)k * (size_t)lda + i;
                int nonzero = 0;
                for (int r = 0; r < rows; r++) nonzero |= ak[r] != 0.0f;
                nonzero_k[n] = k; /* kept when non-zero */
                n += nonzero;
            }
            for (int j = j0; j < j1; j += BNR * V) {
                int cols = j1 - j < BNR * V ? j1 - j : BNR * V;
                FN(bcast_rows)(rows, ta, i, j, cols, K, nonzero_k, n, A, lda, B + j, ldb,
                               accumulate, C, ldc, ep);
            }
        }
        return 1;
    }
    /* Row tiles inside column panels: a K x BNR*V panel of B is reused by every row tile. */
    for (int j = j0; j < j1; j += BNR * V) {
        int cols = j1 - j < BNR * V ? j1 - j : BNR * V;
        for (int i = i0; i < i1; i += BMR) {
            int rows = i1 - i < BMR ? i1 - i : BMR;
            FN(bcast_rows)(rows, ta, i, j, cols, K, NULL, 0, A, lda, B + j, ldb, accumulate, C, ldc,
                           ep);
        }
    }
    return 1;
}
