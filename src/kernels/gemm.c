/* gemm.c — the single matrix-multiply entry point, fm_gemm, and the plain reference it is tested
 * against. Threads split the output into disjoint blocks and every element is summed in k order,
 * so results are identical for any thread count and any scheduling. */
#include "internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AT(P, ld, r, c) ((P)[(size_t)(r) * (size_t)(ld) + (size_t)(c)])

void fm_gemm_ref(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? AT(A, lda, k, i) : AT(A, lda, i, k);
                float b = trans_b ? AT(B, ldb, j, k) : AT(B, ldb, k, j);
                sum += a * b;
            }
            AT(C, ldc, i, j) = accumulate ? AT(C, ldc, i, j) + sum : sum;
        }
    }
}

/* Rows [i0,i1) x columns [j0,j1) of C for each layout. The inner loops run over contiguous
 * memory so the compiler vectorises them; NT keeps 16 independent partial sums per output so its
 * dot products vectorise too, in an order fixed at compile time. */
static void block_nn(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                     const float *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = i0; i < i1; i++) {
        float *c = &AT(C, ldc, i, 0);
        if (!accumulate) memset(c + j0, 0, sizeof(float) * (size_t)(j1 - j0));
        for (int k = 0; k < K; k++) {
            float a = AT(A, lda, i, k);
            if (a == 0.0f) continue; /* ReLU outputs and background pixels are mostly zero */
            const float *b = &AT(B, ldb, k, 0);
            for (int j = j0; j < j1; j++) c[j] += a * b[j];
        }
    }
}

static void block_tn(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                     const float *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = i0; i < i1; i++) {
        float *c = &AT(C, ldc, i, 0);
        if (!accumulate) memset(c + j0, 0, sizeof(float) * (size_t)(j1 - j0));
        for (int k = 0; k < K; k++) {
            float a = AT(A, lda, k, i);
            if (a == 0.0f) continue;
            const float *b = &AT(B, ldb, k, 0);
            for (int j = j0; j < j1; j++) c[j] += a * b[j];
        }
    }
}

#define LANES 16
static float dot(const float *a, const float *b, int K) {
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= K; k += LANES) {
        for (int l = 0; l < LANES; l++) acc[l] += a[k + l] * b[k + l];
    }
    for (int l = 0; k + l < K; l++) acc[l] += a[k + l] * b[k + l];
    /* Pairwise reduction in a fixed order. */
    for (int w = LANES / 2; w > 0; w /= 2) {
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    }
    return acc[0];
}

static void block_nt(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                     const float *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = i0; i < i1; i++) {
        const float *a = &AT(A, lda, i, 0);
        for (int j = j0; j < j1; j++) {
            float s = dot(a, &AT(B, ldb, j, 0), K);
            AT(C, ldc, i, j) = accumulate ? AT(C, ldc, i, j) + s : s;
        }
    }
}

static void block_tt(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                     const float *B, int ldb, int accumulate, float *C, int ldc) {
    for (int i = i0; i < i1; i++) {
        for (int j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += AT(A, lda, k, i) * AT(B, ldb, j, k);
            AT(C, ldc, i, j) = accumulate ? AT(C, ldc, i, j) + s : s;
        }
    }
}

typedef void (*block_fn)(int, int, int, int, int, const float *, int, const float *, int, int,
                         float *, int);

void fm_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, int accumulate, float *C, int ldc, int threads) {
    if (M <= 0 || N <= 0) return;
    block_fn fn = trans_a ? (trans_b ? block_tt : block_tn) : (trans_b ? block_nt : block_nn);
    int nth = fm_threads_resolve(threads);
    /* Small products are not worth waking threads for. */
    if ((double)M * N * (K > 0 ? K : 1) < 32768.0) nth = 1;
    /* Split the longer side of C into nth contiguous slices (columns in multiples of 16). */
    int split_rows = M >= 4 * nth || M >= N;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) if (nth > 1)
#endif
    {
#ifdef _OPENMP
        int ith = omp_get_thread_num(), n = omp_get_num_threads();
#else
        int ith = 0, n = 1;
#endif
        if (split_rows) {
            int i0 = (int)((long long)M * ith / n), i1 = (int)((long long)M * (ith + 1) / n);
            if (i0 < i1) fn(i0, i1, 0, N, K, A, lda, B, ldb, accumulate, C, ldc);
        } else {
            int blocks = (N + 15) / 16;
            int j0 = 16 * (int)((long long)blocks * ith / n);
            int j1 = 16 * (int)((long long)blocks * (ith + 1) / n);
            if (j1 > N) j1 = N;
            if (j0 < j1) fn(0, M, j0, j1, K, A, lda, B, ldb, accumulate, C, ldc);
        }
    }
}
