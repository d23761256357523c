/* gemm.c — the single matrix-multiply entry point, fm_gemm: run-time choice of the SIMD tiles
 * (gemm_avx512.c, gemm_avx2.c) or the portable loops below, the split of C between threads, and the
 * plain reference everything is tested against. Threads own disjoint blocks of C and each element's
 * arithmetic does not depend on the block it falls in, so any thread count gives the same bits. */
#include "internal.h"

#include <math.h>
#include <string.h>

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

fm_simd fm_simd_best(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
        return FM_SIMD_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FM_SIMD_AVX2;
#endif
    return FM_SIMD_GENERIC;
}

const char *fm_simd_name(fm_simd level) {
    switch (level) {
    case FM_SIMD_AVX512: return "avx512";
    case FM_SIMD_AVX2: return "avx2";
    default: return "generic";
    }
}

/* One element of a fused Adam step (fm_adam_update), g being its gradient. */
static void adam_one(const fm_adam_update *a, int i, int j, float g) {
    size_t at = (size_t)i * (size_t)a->ld + (size_t)j;
    if (a->l2x2 != 0.0f) g = g + a->l2x2 * a->params[at];
    a->m[at] = a->beta1 * a->m[at] + (1.0f - a->beta1) * g;
    a->v[at] = a->beta2 * a->v[at] + (1.0f - a->beta2) * g * g;
    a->params[at] -= a->alpha * a->m[at] / (sqrtf(a->v[at]) + a->eps);
}

/* The portable path: the loops above, then the epilogue as a second pass over the block (C is
 * the scratch the gradient goes through when the epilogue is an Adam step). */
static void block_generic(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                          int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                          const fm_epilogue *ep) {
    block_fn fn = ta ? (tb ? block_tt : block_tn) : (tb ? block_nt : block_nn);
    fn(i0, i1, j0, j1, K, A, lda, B, ldb, accumulate, C, ldc);
    if (!ep) return;
    for (int i = i0; i < i1; i++) {
        float *c = &AT(C, ldc, i, 0);
        const float *m = ep->mask ? &AT(ep->mask, ep->ldm, i, 0) : NULL;
        for (int j = j0; j < j1; j++) {
            float v = c[j];
            if (ep->bias) v = v + ep->bias[j];
            if (ep->relu) v = v > 0.0f ? v : 0.0f;
            if (m && !(m[j] > 0.0f)) v = 0.0f;
            if (ep->adam) adam_one(ep->adam, i, j, v);
            else c[j] = v;
        }
    }
}

static void run_block(fm_simd level, int ta, int tb, int i0, int i1, int j0, int j1, int K,
                      const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                      int ldc, const fm_epilogue *ep) {
    if (level == FM_SIMD_AVX512 &&
        fm_gemm_block_avx512(ta, tb, i0, i1, j0, j1, K, A, lda, B, ldb, accumulate, C, ldc, ep)) {
        return;
    }
    if (level == FM_SIMD_AVX2 &&
        fm_gemm_block_avx2(ta, tb, i0, i1, j0, j1, K, A, lda, B, ldb, accumulate, C, ldc, ep)) {
        return;
    }
    block_generic(ta, tb, i0, i1, j0, j1, K, A, lda, B, ldb, accumulate, C, ldc, ep);
}

static fm_simd clamp_level(fm_simd level) {
    fm_simd best = fm_simd_best();
    return level > best ? best : level;
}

/* Slices of C for the pool: whole 64-column panels (four AVX-512 vectors) so that only the last
 * is ragged, or runs of 12 rows (a multiple of every tile height). */
#define COL_UNIT 64
#define ROW_UNIT 12

/* fm_gemm_ex's short-K NT case (see there): K at most this, B at most this many floats. */
#define SHORT_K 16
#define SHORT_K_FLOATS 4096

typedef struct {
    fm_simd level;
    int ta, tb, M, N, K, lda, ldb, ldc, accumulate;
    const float *A, *B;
    float *C;
    const fm_epilogue *ep;
    int split_cols, units, tasks;
} gemm_job;

static void gemm_task(void *ctx, int task) {
    const gemm_job *g = ctx;
    int u0 = (int)((long long)g->units * task / g->tasks);
    int u1 = (int)((long long)g->units * (task + 1) / g->tasks);
    int i0 = 0, i1 = g->M, j0 = 0, j1 = g->N;
    if (g->tasks == 1) {
        /* the whole of C */
    } else if (g->split_cols) {
        j0 = u0 * COL_UNIT, j1 = u1 * COL_UNIT < g->N ? u1 * COL_UNIT : g->N;
    } else {
        i0 = u0 * ROW_UNIT, i1 = u1 * ROW_UNIT < g->M ? u1 * ROW_UNIT : g->M;
    }
    if (i0 < i1 && j0 < j1) {
        run_block(g->level, g->ta, g->tb, i0, i1, j0, j1, g->K, g->A, g->lda, g->B, g->ldb,
                  g->accumulate, g->C, g->ldc, g->ep);
    }
}

/* The split-K product (fm_epilogue.split_k), for blocks of rows that fit the buffer: task 0
 * computes the first half of K into C, task 1 the second into part, and the halves are added
 * before the epilogue. The split falls on a multiple of ROW_UNIT, where a two-thread row split of
 * the weight gradient puts its middle, so the same thread owns the same rows of the weights in
 * both passes. A row's result depends on that row alone, whatever the block and thread count: a
 * server's single image gets the bits it gets in a batch of 1,000. */
#define SPLIT_K_FLOATS 16384

/* Handing work to another thread costs a microsecond or two: not worth it for a product of
 * fewer multiply-adds than this (~5 us on one core). */
#define PARALLEL_MIN_MACS 262144.0

typedef struct {
    fm_simd level;
    int M, N, K, k0, lda, ldb, ldc;
    const float *A, *B;
    float *C, *part;
} split_k_job;

static void split_k_task(void *ctx, int task) {
    const split_k_job *s = ctx;
    if (task == 0) {
        run_block(s->level, 0, 0, 0, s->M, 0, s->N, s->k0, s->A, s->lda, s->B, s->ldb, 0, s->C,
                  s->ldc, NULL);
    } else {
        run_block(s->level, 0, 0, 0, s->M, 0, s->N, s->K - s->k0, s->A + s->k0, s->lda,
                  s->B + (size_t)s->k0 * (size_t)s->ldb, s->ldb, 0, s->part, s->N, NULL);
    }
}

int fm_gemm_split_k_at(int K) { return (K + ROW_UNIT - 1) / ROW_UNIT / 2 * ROW_UNIT; }

static void split_k_gemm(fm_simd level, int M, int N, int K, const float *A, int lda,
                         const float *B, int ldb, float *C, int ldc, const fm_epilogue *ep,
                         fm_pool *pool) {
    float part[SPLIT_K_FLOATS];
    int block = SPLIT_K_FLOATS / N;
    /* each half alone is worth a second thread from about 2.5 us of work */
    if ((double)(M < block ? M : block) * N * K < PARALLEL_MIN_MACS) pool = NULL;
    for (int i0 = 0; i0 < M; i0 += block) {
        int rows = M - i0 < block ? M - i0 : block;
        split_k_job s = {level, rows, N, K, fm_gemm_split_k_at(K), lda, ldb, ldc,
                         A + (size_t)i0 * (size_t)lda, B, C + (size_t)i0 * (size_t)ldc, part};
        fm_pool_run(pool, 2, split_k_task, &s);
        for (int i = 0; i < rows; i++) {
            float *c = s.C + (size_t)i * (size_t)ldc;
            const float *q = part + (size_t)i * (size_t)N;
            for (int j = 0; j < N; j++) {
                float v = c[j] + q[j];
                if (ep->bias) v = v + ep->bias[j];
                if (ep->relu) v = v > 0.0f ? v : 0.0f;
                c[j] = v;
            }
        }
    }
}

void fm_gemm_ex(fm_simd level, int trans_a, int trans_b, int M, int N, int K, const float *A,
                int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                const fm_epilogue *ep, fm_pool *pool) {
    if (M <= 0 || N <= 0) return;
    level = clamp_level(level);
    /* NT with a short K (a dense layer's input gradient when the layer has few outputs: dout
     * [B,10] times W^T): B is transposed into a buffer on the stack and the product runs as NN
     * on the broadcast kernel, which keeps whole rows of outputs in registers. The dot kernel
     * spent most of its time on horizontal sums, one per output, and a transposed dot (the
     * previous path) still took 5 us for mlp's 32x128x10 on one thread, 11 on two: 2.1 and
     * 2.5 us now. */
    float b_t[SHORT_K_FLOATS];
    if (level != FM_SIMD_GENERIC && trans_b && !trans_a && K > 0 && K <= SHORT_K &&
        (size_t)N * (size_t)K <= SHORT_K_FLOATS) {
        for (int k = 0; k < K; k++) {
            for (int j = 0; j < N; j++) b_t[(size_t)k * N + j] = AT(B, ldb, j, k);
        }
        B = b_t, ldb = N, trans_b = 0;
    }
    int nth = fm_pool_threads(pool);
    if (ep && ep->split_k && !trans_a && !trans_b && !accumulate && !ep->mask && !ep->adam &&
        K >= 4 * ROW_UNIT && N <= SPLIT_K_FLOATS) {
        split_k_gemm(level, M, N, K, A, lda, B, ldb, C, ldc, ep, pool);
        return;
    }
    if ((double)M * N * (K > 0 ? K : 1) < PARALLEL_MIN_MACS) nth = 1;
    gemm_job g = {level, trans_a, trans_b, M, N, K, lda, ldb, ldc, accumulate, A, B, C, ep, 0, 1, 1};
    if (nth > 1) {
        /* Split C's columns when there is a panel for every thread (each thread then reads only
         * its part of B, for a dense layer the weights), else its rows; two slices per thread, so
         * that a thread which starts late finds the other one's second slice done. */
        int col_units = (N + COL_UNIT - 1) / COL_UNIT, row_units = (M + ROW_UNIT - 1) / ROW_UNIT;
        g.split_cols = col_units >= nth;
        /* A transposed A with rows to spare (a weight gradient, dW = inp^T dout, whose K is the
         * batch) is split by rows: each thread then reads its own pixels of inp, lists their
         * non-zero images once rather than once per column slice, and writes (or, with Adam,
         * updates) whole rows of the weights; column slices of the same rows made the two cores
         * fight over neighbouring cache lines, and ran no faster than one thread. */
        if (trans_a && row_units >= 2 * nth) g.split_cols = 0;
        g.units = g.split_cols ? col_units : row_units;
        g.tasks = g.units < 2 * nth ? g.units : 2 * nth;
    }
    fm_pool_run(g.tasks > 1 ? pool : NULL, g.tasks, gemm_task, &g);
}

void fm_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, int accumulate, float *C, int ldc, int threads) {
    int nth = fm_threads_resolve(threads);
    fm_pool *pool = nth > 1 ? fm_pool_create(nth) : NULL;
    fm_gemm_ex(fm_simd_best(), trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc, NULL,
               pool);
    fm_pool_free(pool);
}
