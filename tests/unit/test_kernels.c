/* test_kernels.c — fm_gemm against the plain triple loop for every layout, size, padding and
 * kernel level this CPU runs (AVX-512, AVX2, portable), with and without the fused epilogue, and
 * bit-identical results whatever the thread count; the thread pool runs every task once. */
#include "harness.h"
#include "internal.h"

#include <float.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Uniform in [-1, 1), with roughly `zeros` of the values exactly 0 (the NN and TN kernels skip
 * zero multipliers, a path dense inputs never take). */
static void fill(float *p, size_t n, fm_rng *rng, float zeros) {
    for (size_t i = 0; i < n; i++) {
        p[i] = fm_rng_uniform(rng) < zeros ? 0.0f : 2.0f * fm_rng_uniform(rng) - 1.0f;
    }
}

typedef struct {
    int ta, tb, M, N, K, pad, acc;
    float zeros;
} gemm_case;

/* Which epilogue a case runs with: none, bias + ReLU (dense forward), a ReLU mask (dense
 * backward through a ReLU), or bias + ReLU on a product split in two halves of K (what a dense
 * layer's forward pass asks for; the other layouts ignore the split). */
enum { EP_NONE, EP_BIAS_RELU, EP_MASK, EP_SPLIT_K };

/* Every level this CPU runs, the portable one first. */
static int levels(fm_simd *out) {
    int n = 0;
    for (int l = FM_SIMD_GENERIC; l <= (int)fm_simd_best(); l++) out[n++] = (fm_simd)l;
    return n;
}

/* Runs one case through fm_gemm_ex (at the given level, on the given pool) and fm_gemm_ref plus a
 * scalar epilogue, and compares them. Both sum K float products, each within K*u*sum|a*b| of the
 * exact value (u = 2^-24, any summation order), so they may differ by up to 2*K*u*sum|a*b|: the
 * tolerance is that bound plus one rounding for the accumulate and one for the bias (ReLU and the
 * mask only shrink differences). Dropping or repeating one of K similar terms is ~sum|a*b|/K off,
 * far above it at every K tested. Padding columns must come back untouched. */
static void run_case_at(test_ctx *t, gemm_case c, fm_simd level, fm_pool *pool, int ep_kind,
                        uint64_t seed) {
    int arows = c.ta ? c.K : c.M, acols = c.ta ? c.M : c.K;
    int brows = c.tb ? c.N : c.K, bcols = c.tb ? c.K : c.N;
    int lda = acols + c.pad, ldb = bcols + c.pad, ldc = c.N + c.pad;
    size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)c.M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float));
    float *C0 = malloc(nc * sizeof(float)), *mask = malloc(nc * sizeof(float));
    float *bias = malloc((size_t)c.N * sizeof(float));
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    fill(A, na, &rng, c.zeros);
    fill(B, nb, &rng, c.zeros);
    fill(C0, nc, &rng, 0.0f);
    fill(mask, nc, &rng, 0.3f);
    fill(bias, (size_t)c.N, &rng, 0.0f);
    /* Poison the padding of A and B: a kernel that reads it gets NaN, which no tolerance hides. */
    for (int r = 0; r < arows; r++)
        for (int k = acols; k < lda; k++) A[(size_t)r * lda + k] = NAN;
    for (int r = 0; r < brows; r++)
        for (int k = bcols; k < ldb; k++) B[(size_t)r * ldb + k] = NAN;
    memcpy(C, C0, nc * sizeof(float));
    memcpy(R, C0, nc * sizeof(float));
    fm_epilogue ep = {NULL, 0, NULL, 0, NULL, 0};
    if (ep_kind == EP_BIAS_RELU || ep_kind == EP_SPLIT_K) ep.bias = bias, ep.relu = 1;
    ep.split_k = ep_kind == EP_SPLIT_K;
    if (ep_kind == EP_MASK) ep.mask = mask, ep.ldm = ldc;
    fm_gemm_ex(level, c.ta, c.tb, c.M, c.N, c.K, A, lda, B, ldb, c.acc, C, ldc,
               ep_kind == EP_NONE ? NULL : &ep, pool);
    fm_gemm_ref(c.ta, c.tb, c.M, c.N, c.K, A, lda, B, ldb, c.acc, R, ldc);
    int bad = 0;
    for (int i = 0; i < c.M && bad < 5; i++) {
        for (int j = 0; j < ldc && bad < 5; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= c.N) {
                if (memcmp(&C[at], &C0[at], sizeof(float)) != 0) {
                    bad++;
                    CHECK(t, 0, "%s ta=%d tb=%d %dx%dx%d pad=%d: padding C[%d,%d] written",
                          fm_simd_name(level), c.ta, c.tb, c.M, c.N, c.K, c.pad, i, j);
                }
                continue;
            }
            double mag = c.acc ? fabs((double)C0[at]) : 0.0;
            for (int k = 0; k < c.K; k++) {
                double a = c.ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = c.tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                mag += fabs(a * b);
            }
            double want = R[at];
            if (ep_kind == EP_BIAS_RELU || ep_kind == EP_SPLIT_K) {
                want = (float)(R[at] + bias[j]);
                want = want > 0.0 ? want : 0.0;
                mag += fabs(bias[j]);
            }
            if (ep_kind == EP_MASK && !(mask[at] > 0.0f)) want = 0.0;
            double tol = 2.0 * (c.K + 2) * (FLT_EPSILON / 2) * mag;
            double diff = fabs((double)C[at] - want);
            if (!(diff <= tol)) {
                bad++;
                CHECK(t, 0, "%s ta=%d tb=%d %dx%dx%d pad=%d acc=%d zeros=%.1f ep=%d threads=%d: "
                      "C[%d,%d] = %.9g, reference %.9g (tol %.3g)", fm_simd_name(level), c.ta, c.tb,
                      c.M, c.N, c.K, c.pad, c.acc, (double)c.zeros, ep_kind, fm_pool_threads(pool),
                      i, j, (double)C[at], want, tol);
            }
        }
    }
    free(A), free(B), free(C), free(R), free(C0), free(mask), free(bias);
}

/* The case at every level, on one thread, plain. */
static void run_case(test_ctx *t, gemm_case c, uint64_t seed) {
    fm_simd lv[3];
    int n = levels(lv);
    for (int l = 0; l < n; l++) run_case_at(t, c, lv[l], NULL, EP_NONE, seed);
}

static const int SHAPES[][3] = {
    {1, 1, 1},    {1, 3, 17},   {3, 1, 33},   {17, 33, 3},   {33, 17, 100}, {100, 33, 1},
    {3, 100, 17}, {32, 128, 784}, {128, 784, 32}, {32, 784, 128}, {1, 17, 16},  {5, 300, 40},
    /* every tile height and ragged column panels of the SIMD kernels */
    {2, 64, 5},   {4, 65, 9},   {6, 130, 20}, {7, 63, 31},   {13, 129, 12},
    /* the weight-gradient path's 256-row chunks, with a ragged last one */
    {300, 70, 29},
};

void test_gemm_matches_reference(test_ctx *t) {
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int acc = 0; acc < 2; acc++) {
                    for (int pad = 0; pad <= 5; pad += 5) {
                        gemm_case c = {ta, tb, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], pad, acc, 0.0f};
                        run_case(t, c, seed++);
                    }
                }
            }
        }
    }
}

void test_gemm_sparse_inputs(test_ctx *t) {
    uint64_t seed = 100;
    const float zeros[] = {0.5f, 0.9f, 1.0f};
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
                    gemm_case c = {ta, tb, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 3, 1, zeros[z]};
                    run_case(t, c, seed++);
                    c.acc = 0;
                    run_case(t, c, seed++);
                }
            }
        }
    }
}

/* The fused epilogues (bias + ReLU as in the dense forward pass, a ReLU mask as in its backward
 * pass) at every level. */
void test_gemm_epilogues(test_ctx *t) {
    static const int shapes[][3] = {{1, 17, 16},   {7, 63, 31},   {13, 129, 12}, {32, 128, 784},
                                    {32, 10, 128}, {33, 17, 100}, {1, 128, 784}, {3, 100, 97}};
    fm_simd lv[3];
    int n = levels(lv);
    fm_pool *pool2 = fm_pool_create(2);
    uint64_t seed = 300;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int ep = EP_BIAS_RELU; ep <= EP_SPLIT_K; ep++) {
                    gemm_case c = {ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 3, 0, 0.3f};
                    for (int l = 0; l < n; l++) {
                        run_case_at(t, c, lv[l], NULL, ep, seed);
                        if (ep == EP_SPLIT_K) run_case_at(t, c, lv[l], pool2, ep, seed);
                    }
                    seed++;
                }
            }
        }
    }
    fm_pool_free(pool2);
}

/* An Adam step fused into the product (how the trainer updates weight matrices) gives the same
 * bits as the product stored and then adam_apply, at every level, with and without the L2 term,
 * on one thread and on three. */
void test_gemm_fused_adam(test_ctx *t) {
    static const int shapes[][3] = {{1, 17, 16}, {7, 63, 31}, {13, 129, 12}, {784, 128, 32},
                                    {128, 10, 32}, {33, 17, 100}};
    fm_simd lv[3];
    int n_levels = levels(lv);
    fm_pool *pool3 = fm_pool_create(3);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        size_t nc = (size_t)M * N;
        float *A = malloc((size_t)K * M * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
        float *G = malloc(nc * sizeof(float)), *scratch = malloc(nc * sizeof(float));
        float *w0 = malloc(nc * sizeof(float)), *m0 = malloc(nc * sizeof(float)), *v0 = malloc(nc * sizeof(float));
        float *w[2], *m[2], *v[2];
        for (int k = 0; k < 2; k++) {
            w[k] = malloc(nc * sizeof(float)), m[k] = malloc(nc * sizeof(float)), v[k] = malloc(nc * sizeof(float));
        }
        fm_rng rng;
        fm_rng_seed(&rng, 2000 + s);
        fill(A, (size_t)K * M, &rng, 0.5f);
        fill(B, (size_t)K * N, &rng, 0.0f);
        fill(w0, nc, &rng, 0.0f);
        fill(m0, nc, &rng, 0.0f);
        for (size_t i = 0; i < nc; i++) v0[i] = fm_rng_uniform(&rng) * 0.01f;
        for (int l = 0; l < n_levels; l++) {
            for (int variant = 0; variant < 2; variant++) {
                float l2 = variant ? 0.01f : 0.0f;
                fm_pool *pool = variant ? pool3 : NULL;
                for (int k = 0; k < 2; k++) {
                    memcpy(w[k], w0, nc * sizeof(float));
                    memcpy(m[k], m0, nc * sizeof(float));
                    memcpy(v[k], v0, nc * sizeof(float));
                }
                /* Separate: the gradient (A^T·B, the dense layer's dW) stored, then the step. */
                fm_gemm_ex(lv[l], 1, 0, M, N, K, A, M, B, N, 0, G, N, NULL, pool);
                for (size_t i = 0; i < nc; i++) G[i] += 2.0f * l2 * w[0][i];
                adam_apply(w[0], G, m[0], v[0], nc, 1e-3f, 0.9f, 0.999f, 1e-7f);
                /* Fused. */
                fm_adam_update up = {w[1], m[1], v[1], N, 1e-3f, 0.9f, 0.999f, 1e-7f, 2.0f * l2};
                fm_epilogue ep = {NULL, 0, NULL, 0, &up, 0};
                fm_gemm_ex(lv[l], 1, 0, M, N, K, A, M, B, N, 0, scratch, N, &ep, pool);
                int same = memcmp(w[0], w[1], nc * sizeof(float)) == 0 &&
                           memcmp(m[0], m[1], nc * sizeof(float)) == 0 &&
                           memcmp(v[0], v[1], nc * sizeof(float)) == 0;
                CHECK(t, same, "%s %dx%dx%d l2=%g threads=%d: fused Adam differs from the separate step",
                      fm_simd_name(lv[l]), M, N, K, (double)l2, fm_pool_threads(pool));
                CHECK(t, memcmp(w[1], w0, nc * sizeof(float)) != 0, "the weights did not move");
            }
        }
        free(A), free(B), free(G), free(scratch), free(w0), free(m0), free(v0);
        for (int k = 0; k < 2; k++) free(w[k]), free(m[k]), free(v[k]);
    }
    fm_pool_free(pool3);
}

/* The threaded paths, split by rows and (for short wide outputs) by columns, still agree with
 * the reference at every level. */
void test_gemm_threaded_matches_reference(test_ctx *t) {
    static const int shapes[][3] = {{32, 128, 784}, {128, 784, 32}, {3, 1000, 50}, {7, 333, 100}};
    fm_simd lv[3];
    int n = levels(lv);
    uint64_t seed = 500;
    for (int threads = 2; threads <= 4; threads++) {
        fm_pool *pool = fm_pool_create(threads);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            for (int ta = 0; ta < 2; ta++) {
                for (int tb = 0; tb < 2; tb++) {
                    for (int acc = 0; acc < 2; acc++) {
                        gemm_case c = {ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 2, acc, 0.3f};
                        for (int l = 0; l < n; l++) {
                            run_case_at(t, c, lv[l], pool, acc ? EP_NONE : EP_BIAS_RELU, seed);
                        }
                        seed++;
                    }
                }
            }
        }
        fm_pool_free(pool);
    }
}

/* For each level, 1 to 4 threads give the same bits, with and without an epilogue. */
void test_gemm_threads_bit_identical(test_ctx *t) {
    /* Shapes large enough to be split (the kernel runs small ones on one thread), both by rows
     * and, where there are enough column panels, by columns, including ragged last blocks. */
    static const int shapes[][3] = {{32, 128, 784}, {128, 784, 32}, {32, 784, 128},
                                    {3, 1000, 50},  {7, 333, 100},  {101, 67, 97},
                                    {1000, 300, 10} /* NT: B transposed on the stack */};
    fm_pool *pools[4] = {NULL, fm_pool_create(2), fm_pool_create(3), fm_pool_create(4)};
    fm_simd lv[3];
    int n_levels = levels(lv);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
        float *C0 = malloc((size_t)M * N * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
        float *C[4];
        fm_rng rng;
        fm_rng_seed(&rng, 1000 + s);
        fill(A, (size_t)M * K, &rng, 0.3f);
        fill(B, (size_t)K * N, &rng, 0.0f);
        fill(C0, (size_t)M * N, &rng, 0.0f);
        fill(bias, (size_t)N, &rng, 0.0f);
        fm_epilogue ep = {bias, 1, C0, N, NULL, 0};
        for (int l = 0; l < n_levels; l++) {
            for (int ta = 0; ta < 2; ta++) {
                for (int tb = 0; tb < 2; tb++) {
                    for (int acc = 0; acc < 4; acc++) {
                        int lda = ta ? M : K, ldb = tb ? K : N;
                        ep.split_k = acc == 3; /* acc 3: bias + ReLU on two halves of K */
                        ep.mask = acc == 3 ? NULL : C0;
                        for (int th = 0; th < 4; th++) {
                            C[th] = malloc((size_t)M * N * sizeof(float));
                            memcpy(C[th], C0, (size_t)M * N * sizeof(float));
                            /* acc 2: overwrite, with bias, ReLU and a mask */
                            fm_gemm_ex(lv[l], ta, tb, M, N, K, A, lda, B, ldb, acc == 1, C[th], N,
                                       acc >= 2 ? &ep : NULL, pools[th]);
                        }
                        for (int th = 1; th < 4; th++) {
                            CHECK(t, memcmp(C[0], C[th], (size_t)M * N * sizeof(float)) == 0,
                                  "%s ta=%d tb=%d acc=%d %dx%dx%d: %d threads differ from 1",
                                  fm_simd_name(lv[l]), ta, tb, acc, M, N, K, th + 1);
                        }
                        for (int th = 0; th < 4; th++) free(C[th]);
                    }
                }
            }
        }
        free(A), free(B), free(C0), free(bias);
    }
    for (int th = 0; th < 4; th++) fm_pool_free(pools[th]);
}

/* fm_gemm itself (the entry point that makes its own threads) agrees with fm_gemm_ex. */
void test_gemm_entry_point(test_ctx *t) {
    enum { M = 32, N = 128, K = 300 };
    static float A[M * K], B[K * N], C1[M * N], C2[M * N];
    fm_rng rng;
    fm_rng_seed(&rng, 77);
    fill(A, M * K, &rng, 0.5f);
    fill(B, K * N, &rng, 0.0f);
    fm_gemm(0, 0, M, N, K, A, K, B, N, 0, C1, N, 2);
    fm_gemm_ex(fm_simd_best(), 0, 0, M, N, K, A, K, B, N, 0, C2, N, NULL, NULL);
    CHECK(t, memcmp(C1, C2, sizeof C1) == 0, "fm_gemm on 2 threads differs from fm_gemm_ex on 1");
}

/* Every task of every job runs exactly once, whatever the pool size and however many jobs follow
 * each other (workers that oversleep a job must not run a later one's tasks twice). */
typedef struct {
    int *counts;
    int job;
} pool_probe;

static void count_task(void *ctx, int task) {
    pool_probe *p = ctx;
    __atomic_fetch_add(&p->counts[task], 1, __ATOMIC_RELAXED);
    if (task % 7 == 0) {
        for (volatile int i = 0; i < 200 * (p->job % 5); i++) {
        }
    }
}

void test_pool_runs_every_task_once(test_ctx *t) {
    enum { MAX_TASKS = 64 };
    int counts[MAX_TASKS];
    for (int threads = 1; threads <= 4; threads++) {
        fm_pool *pool = fm_pool_create(threads);
        CHECK(t, pool != NULL && fm_pool_threads(pool) == threads, "pool of %d", threads);
        if (!pool) continue;
        int bad = 0;
        for (int job = 0; job < 3000 && !bad; job++) {
            int n = 1 + job % MAX_TASKS;
            memset(counts, 0, sizeof counts);
            pool_probe probe = {counts, job};
            fm_pool_run(pool, n, count_task, &probe);
            for (int i = 0; i < MAX_TASKS; i++) {
                if (counts[i] != (i < n)) {
                    bad = 1;
                    CHECK(t, 0, "%d threads, job %d of %d tasks: task %d ran %d times", threads,
                          job, n, i, counts[i]);
                    break;
                }
            }
        }
        fm_pool_free(pool);
    }
    /* More tasks than the pool's claim counters hold: still each exactly once. */
    enum { HUGE_TASKS = 70000 };
    int *many = calloc(HUGE_TASKS, sizeof *many);
    fm_pool *pool = fm_pool_create(2);
    if (many && pool) {
        pool_probe probe = {many, 0};
        fm_pool_run(pool, HUGE_TASKS, count_task, &probe);
        int once = 1;
        for (int i = 0; i < HUGE_TASKS; i++) once &= many[i] == 1;
        CHECK(t, once, "a job of %d tasks did not run each exactly once", HUGE_TASKS);
    }
    fm_pool_free(pool);
    free(many);
}

/* NT with K <= 16 (a dense layer's input gradient through a 10-class output) runs as NN on a
 * copy of B transposed on the stack: it must give exactly what NN gives on B^T written out,
 * with and without accumulation and the ReLU mask, on 1 and 3 threads. */
void test_gemm_short_nt_as_nn(test_ctx *t) {
    static const int shapes[][3] = {{32, 128, 10}, {7, 33, 1}, {5, 17, 8}, {13, 100, 16}, {300, 130, 15}};
    fm_simd lv[3];
    int n_levels = levels(lv);
    fm_pool *pools[2] = {NULL, fm_pool_create(3)};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        size_t nc = (size_t)M * N;
        float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)N * K * sizeof(float));
        float *BT = malloc((size_t)N * K * sizeof(float));
        float *C0 = malloc(nc * sizeof(float)), *mask = malloc(nc * sizeof(float));
        float *C1 = malloc(nc * sizeof(float)), *C2 = malloc(nc * sizeof(float));
        fm_rng rng;
        fm_rng_seed(&rng, 3000 + s);
        fill(A, (size_t)M * K, &rng, 0.3f);
        fill(B, (size_t)N * K, &rng, 0.0f);
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) BT[(size_t)k * N + j] = B[(size_t)j * K + k];
        fill(C0, nc, &rng, 0.0f);
        fill(mask, nc, &rng, 0.3f);
        for (int l = 0; l < n_levels; l++) {
            if (lv[l] == FM_SIMD_GENERIC) continue; /* the portable code keeps its dot products */
            for (int variant = 0; variant < 6; variant++) {
                fm_epilogue ep = {NULL, 0, mask, N, NULL, 0};
                int acc = variant % 3 == 1;
                const fm_epilogue *e = variant % 3 == 2 ? &ep : NULL;
                fm_pool *pool = pools[variant / 3];
                memcpy(C1, C0, nc * sizeof(float));
                memcpy(C2, C0, nc * sizeof(float));
                fm_gemm_ex(lv[l], 0, 1, M, N, K, A, K, B, K, acc, C1, N, e, pool);
                fm_gemm_ex(lv[l], 0, 0, M, N, K, A, K, BT, N, acc, C2, N, e, pool);
                CHECK(t, memcmp(C1, C2, nc * sizeof(float)) == 0,
                      "%s NT %dx%dx%d variant %d: differs from NN on the transposed B",
                      fm_simd_name(lv[l]), M, N, K, variant);
            }
        }
        free(A), free(B), free(BT), free(C0), free(mask), free(C1), free(C2);
    }
    fm_pool_free(pools[1]);
}

/* The kernels' big arrays start on a cache line (see fm_alloc_floats), zeroed when asked. */
void test_alloc_floats_aligned(test_ctx *t) {
    for (size_t n = 1; n < 5000; n = n * 3 + 1) {
        float *p = fm_alloc_floats(n, 1);
        CHECK(t, p != NULL && (uintptr_t)p % 64 == 0, "fm_alloc_floats(%zu) not 64-byte aligned", n);
        if (!p) continue;
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= p[i] == 0.0f;
        CHECK(t, zero, "fm_alloc_floats(%zu, 1) not zeroed", n);
        free(p);
    }
    CHECK(t, fm_alloc_floats(SIZE_MAX / 2, 0) == NULL, "an impossible size must fail, not wrap");
    fm_model *m;
    fm_error err;
    CHECK(t, fm_model_create("mlp", 28, 28, NULL, &m, &err) == FM_OK, "%s", err.msg);
    CHECK(t, (uintptr_t)m->params % 64 == 0, "model parameters not 64-byte aligned");
    fm_model_free(m);
}

/* The level names the benchmark prints, and the order of levels the dispatch relies on. */
void test_simd_levels(test_ctx *t) {
    CHECK(t, strcmp(fm_simd_name(FM_SIMD_GENERIC), "generic") == 0, "generic name");
    CHECK(t, strcmp(fm_simd_name(FM_SIMD_AVX2), "avx2") == 0, "avx2 name");
    CHECK(t, strcmp(fm_simd_name(FM_SIMD_AVX512), "avx512") == 0, "avx512 name");
    CHECK(t, FM_SIMD_GENERIC < FM_SIMD_AVX2 && FM_SIMD_AVX2 < FM_SIMD_AVX512, "level order");
    printf("     kernels: %s (every level up to it is tested)\n", fm_simd_name(fm_simd_best()));
}

/* A dense layer's forward pass (bias + ReLU on two halves of K) gives each image the same bits
 * alone as in a batch, on one thread and on two: a server answering one image at a time agrees
 * with `evaluate`. 300 rows of 128 outputs take three blocks of the split's buffer. */
void test_gemm_split_k_rows_independent(test_ctx *t) {
    enum { M = 300, N = 128, K = 784 };
    float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
    float *bias = malloc(N * sizeof(float)), *C = malloc((size_t)M * N * sizeof(float));
    float row[N];
    fm_rng rng;
    fm_rng_seed(&rng, 4242);
    fill(A, (size_t)M * K, &rng, 0.5f);
    fill(B, (size_t)K * N, &rng, 0.0f);
    fill(bias, N, &rng, 0.0f);
    fm_epilogue ep = {bias, 1, NULL, 0, NULL, 1};
    fm_pool *pools[2] = {NULL, fm_pool_create(2)};
    fm_simd lv[3];
    int n_levels = levels(lv);
    for (int l = 0; l < n_levels; l++) {
        for (int p = 0; p < 2; p++) {
            fm_gemm_ex(lv[l], 0, 0, M, N, K, A, K, B, N, 0, C, N, &ep, pools[p]);
            int same = 1;
            for (int i = 0; i < M; i++) {
                fm_gemm_ex(lv[l], 0, 0, 1, N, K, A + (size_t)i * K, K, B, N, 0, row, N, &ep, pools[p]);
                same &= memcmp(row, C + (size_t)i * N, sizeof row) == 0;
            }
            CHECK(t, same, "%s, %d thread(s): a row alone differs from the same row in a batch",
                  fm_simd_name(lv[l]), p + 1);
        }
    }
    fm_pool_free(pools[1]);
    free(A), free(B), free(bias), free(C);
}

/* Tasks run with subnormals flushed to zero on every thread (fpenv.c), and the caller's own mode
 * comes back after the job. Task 0 (the caller takes tasks from the front) waits up to two
 * seconds for a worker to finish one of the others, so that a worker's mode is checked too. */
typedef struct {
    volatile float tiny; /* volatile: computed when the task runs, not by the compiler */
    float out[8];
    int flushing[8];
    pthread_t caller;
    int wait_for_worker;
    _Atomic int worker_ran;
} fpenv_probe;

static void fpenv_task(void *ctx, int task) {
    fpenv_probe *p = ctx;
    if (task == 0 && p->wait_for_worker) {
        double until = fm_now_seconds() + 2.0;
        while (pthread_equal(pthread_self(), p->caller) && !atomic_load(&p->worker_ran) &&
               fm_now_seconds() < until) {
        }
    }
    p->out[task] = p->tiny * 0.5f;
    p->flushing[task] = fm_fpenv_flushing();
    if (!pthread_equal(pthread_self(), p->caller)) atomic_store(&p->worker_ran, 1);
}

void test_fpenv_pool_flushes(test_ctx *t) {
    fm_pool *pools[2] = {NULL, fm_pool_create(2)};
    for (int p = 0; p < 2; p++) {
        fpenv_probe probe = {FLT_MIN, {0}, {0}, pthread_self(), p == 1, 0};
        int before = fm_fpenv_flushing();
        fm_pool_run(pools[p], 8, fpenv_task, &probe);
        for (int i = 0; i < 8; i++) {
            CHECK(t, probe.flushing[i] && probe.out[i] == 0.0f,
                  "%d thread(s), task %d: FLT_MIN/2 gave %g (flushing %d)", p + 1, i,
                  (double)probe.out[i], probe.flushing[i]);
        }
        if (p == 1) CHECK(t, atomic_load(&probe.worker_ran), "no worker ran a task in 2 s");
        CHECK(t, fm_fpenv_flushing() == before, "the caller's floating-point mode changed");
    }
#if defined(__x86_64__)
    /* outside the library's entry points the caller keeps gradual underflow */
    volatile float tiny = FLT_MIN;
    CHECK(t, !fm_fpenv_flushing() && tiny * 0.5f > 0.0f, "the test itself runs flushing");
#endif
    fm_pool_free(pools[1]);
}

/* fm_gather_axpy against its plain loop: widths of one vector, of one register-resident chunk
 * (18 vectors, the cnn preset's 288 taps), of two uneven chunks (25 vectors), unaligned rows and
 * output, repeated and unsorted indices, no terms at all, with and without accumulating. Both sum
 * the same terms in the same order and differ only in the fused multiply-adds' roundings: at
 * most one rounding per term, so the difference stays under 2 * (n + 1) * u * (|out| + sum|terms|). */
void test_gather_axpy_matches_reference(test_ctx *t) {
    const int widths[] = {16, 288, 400};
    const int counts[] = {0, 1, 7, 150};
    fm_rng rng;
    fm_rng_seed(&rng, 41);
    const int rows = 60;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const int width = widths[wi];
        const size_t ld = (size_t)width + 3; /* rows start off the vector grid */
        float *src = malloc(sizeof(float) * (ld * rows + 1)), *out = malloc(sizeof(float) * (width + 1));
        float *ref = malloc(sizeof(float) * (width + 1)), *start = malloc(sizeof(float) * width);
        int32_t idx[150];
        float val[150];
        fill(src, ld * rows + 1, &rng, 0.0f);
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const int n = counts[ci];
            for (int k = 0; k < n; k++) {
                idx[k] = (int32_t)(fm_rng_uniform(&rng) * rows) % rows;
                val[k] = 2.0f * fm_rng_uniform(&rng) - 1.0f;
            }
            for (int acc = 0; acc <= 1; acc++) {
                fill(start, (size_t)width, &rng, 0.0f);
                memcpy(out + 1, start, sizeof(float) * width); /* out + 1: not vector-aligned */
                memcpy(ref, start, sizeof(float) * width);
                fm_gather_axpy(out + 1, width, acc, src + 1, ld, idx, val, n);
                fm_gather_axpy_ref(ref, width, acc, src + 1, ld, idx, val, n);
                int bad = 0;
                for (int j = 0; j < width && !bad; j++) {
                    double mag = acc ? fabs(start[j]) : 0.0;
                    for (int k = 0; k < n; k++) mag += fabs((double)val[k] * src[1 + (size_t)idx[k] * ld + j]);
                    double tol = 2.0 * (n + 1) * ldexp(mag, -24);
                    if (fabs((double)out[1 + j] - ref[j]) > tol) {
                        CHECK(t, 0, "width %d, %d terms, accumulate %d: out[%d] %.9g vs %.9g (tolerance %.3g)",
                              width, n, acc, j, (double)out[1 + j], (double)ref[j], tol);
                        bad = 1;
                    }
                }
            }
        }
        free(src), free(out), free(ref), free(start);
    }
}

/* fm_transpose against the element-by-element loop: whole 16x16 blocks, ragged edges in either
 * direction, fewer than 16 rows or columns, and leading dimensions wider than the matrix (the
 * padding left untouched). Exact: a transpose only moves values. */
void test_transpose_matches_reference(test_ctx *t) {
    const int shapes[][2] = {{16, 16}, {32, 676}, {676, 32}, {17, 33}, {5, 40}, {40, 5}, {1, 1}, {48, 64}};
    fm_rng rng;
    fm_rng_seed(&rng, 43);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int rows = shapes[si][0], cols = shapes[si][1];
        const size_t lds = (size_t)cols + 3, ldd = (size_t)rows + 5;
        float *src = malloc(sizeof(float) * lds * rows), *got = malloc(sizeof(float) * ldd * cols);
        float *want = malloc(sizeof(float) * ldd * cols);
        fill(src, lds * rows, &rng, 0.0f);
        for (size_t i = 0; i < ldd * cols; i++) got[i] = want[i] = -7.0f;
        fm_transpose(got, ldd, src, lds, rows, cols);
        fm_transpose_ref(want, ldd, src, lds, rows, cols);
        CHECK(t, memcmp(got, want, sizeof(float) * ldd * cols) == 0, "%dx%d transposed differently", rows, cols);
        for (int i = 0; i < rows && i < 3; i++) {
            CHECK(t, got[(size_t)(cols - 1) * ldd + i] == src[(size_t)i * lds + cols - 1], "%dx%d: [%d][%d]",
                  rows, cols, i, cols - 1);
        }
        free(src), free(got), free(want);
    }
}

/* ---------------------------------------------------------------- bf16 products */

/* Rounding to bf16: nearest, ties to even, in both directions of a tie; infinities kept; NaN
 * stays NaN (a payload only in the low bits would otherwise truncate to infinity); values too
 * large round to infinity; the round trip is exact for a value already in bf16. */
void test_bf16_round(test_ctx *t) {
    const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + half a bf16 step: a tie, to the even 1 */
        {0x3f818000u, 0x3f82}, /* 1 + 1.5 steps: a tie, to the even 1 + 2 steps */
        {0x3f808001u, 0x3f81}, /* just over the tie: up */
        {0x3f807fffu, 0x3f80}, /* just under: down */
        {0xbf808001u, 0xbf81}, /* negative, by magnitude */
        {0x7f800000u, 0x7f80}, /* +inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7f7fffffu, 0x7f80}, /* the largest float rounds up to infinity */
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x;
        memcpy(&x, &cases[i].in, sizeof x);
        fm_bf16 h = fm_bf16_round(x);
        CHECK(t, h == cases[i].out, "%08x rounds to %04x, wanted %04x", cases[i].in, h, cases[i].out);
    }
    float nan_low;
    uint32_t bits = 0x7f800001u; /* a NaN whose payload is all in the dropped half */
    memcpy(&nan_low, &bits, sizeof nan_low);
    CHECK(t, isnan(fm_bf16_float(fm_bf16_round(nan_low))), "NaN became %g", (double)fm_bf16_float(fm_bf16_round(nan_low)));
    CHECK(t, fm_bf16_float(fm_bf16_round(-2.5f)) == -2.5f, "-2.5 did not survive the round trip");
}

/* fm_gemm_bf16 against its reference, bit for bit, on both layouts the Winograd path packs
 * (pairs along A's rows, K = a product's channels; pairs of rows of a transposed A, K = its
 * tiles) and on edge shapes: rows not a multiple of the 6-row tile, columns of partial vectors
 * and beyond one 64-column panel, odd K (a zero pair half), accumulate. Then against the float
 * product of the unrounded matrices: each operand is within 2^-9 of its value relatively, so
 * each term within about 2^-8, and the sum within 2^-8 * sum|a*b| plus float rounding. */
void test_gemm_bf16_matches_reference(test_ctx *t) {
    const struct { int M, N, K, pairs_of_rows, acc; } cases[] = {
        {1, 1, 1, 0, 0}, {7, 17, 9, 0, 0}, {14, 32, 32, 0, 0}, {13, 130, 64, 0, 1},
        {32, 64, 49, 1, 0}, {6, 16, 2, 1, 1}, {65, 100, 31, 1, 1}, {128, 128, 16, 1, 0},
    };
    fm_fpenv env = fm_fpenv_enter();
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int M = cases[ci].M, N = cases[ci].N, K = cases[ci].K, K2 = (K + 1) / 2;
        const int acc = cases[ci].acc, por = cases[ci].pairs_of_rows;
        /* A as given: (M, K) rows, or (K, M) when the product reads it transposed */
        float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
        float *C0 = malloc(sizeof(float) * (size_t)M * N), *C = malloc(sizeof(float) * (size_t)M * N);
        float *R = malloc(sizeof(float) * (size_t)M * N), *F = malloc(sizeof(float) * (size_t)M * N);
        fm_bf16 *Ab = malloc(sizeof(fm_bf16) * (size_t)M * K2 * 2), *Bb = malloc(sizeof(fm_bf16) * (size_t)K2 * N * 2);
        fm_rng rng;
        fm_rng_seed(&rng, 900 + ci);
        fill(A, (size_t)M * K, &rng, 0.1f);
        fill(B, (size_t)K * N, &rng, 0.1f);
        fill(C0, (size_t)M * N, &rng, 0.0f);
        size_t a_row, a_pair;
        if (por) {
            fm_bf16_pack_pairs(Ab, A, K, M, (size_t)M);
            a_row = 1, a_pair = (size_t)M;
        } else {
            fm_bf16_pack_rows(Ab, A, M, K, (size_t)K);
            a_row = (size_t)K2, a_pair = 1;
        }
        fm_bf16_pack_pairs(Bb, B, K, N, (size_t)N);
        memcpy(C, C0, sizeof(float) * (size_t)M * N), memcpy(R, C0, sizeof(float) * (size_t)M * N);
        fm_gemm_bf16(1, M, N, K2, Ab, a_row, a_pair, Bb, N, acc, C, N);
        fm_gemm_bf16_ref(M, N, K2, Ab, a_row, a_pair, Bb, N, acc, R, N);
        CHECK(t, memcmp(C, R, sizeof(float) * (size_t)M * N) == 0, "case %zu: fast and reference differ", ci);
        memcpy(F, C0, sizeof(float) * (size_t)M * N);
        fm_gemm_ref(por, 0, M, N, K, A, por ? M : K, B, N, acc, F, N);
        int bad = 0;
        for (int i = 0; i < M && bad < 3; i++) {
            for (int j = 0; j < N && bad < 3; j++) {
                double abs_sum = acc ? fabs(C0[(size_t)i * N + j]) : 0.0;
                for (int k = 0; k < K; k++) {
                    abs_sum += fabs((double)(por ? A[(size_t)k * M + i] : A[(size_t)i * K + k]) * B[(size_t)k * N + j]);
                }
                double err = fabs((double)C[(size_t)i * N + j] - F[(size_t)i * N + j]);
                if (!(err <= (1.0 / 256 + 1e-6) * abs_sum + 1e-30)) {
                    CHECK(t, 0, "case %zu: C[%d][%d] %.7g vs float %.7g (sum|ab| %.3g)", ci, i, j,
                          (double)C[(size_t)i * N + j], (double)F[(size_t)i * N + j], abs_sum);
                    bad++;
                }
            }
        }
        free(A), free(B), free(C0), free(C), free(R), free(F), free(Ab), free(Bb);
    }
    fm_fpenv_leave(env);
}

/* The packers (vectors where the CPU has AVX-512 BF16, plain code for the rest) put
 * fm_bf16_round of each element where fm_gemm_bf16 reads it, zeros in the padding, on widths
 * around the vector sizes, odd row counts, a row stride past the width, and the values rounding
 * is particular about: ties, NaN, infinities, subnormals (read as zero, as the instruction
 * does). */
void test_bf16_pack(test_ctx *t) {
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7fc00000u, 0x7f800001u, 0xff800000u,
                                0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x80000000u};
    const struct { int rows, cols; } shapes[] = {{1, 1}, {3, 15}, {4, 16}, {5, 33}, {2, 32}, {7, 64}, {49, 64}, {6, 47}};
    fm_rng rng;
    fm_rng_seed(&rng, 77);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int rows = shapes[si].rows, cols = shapes[si].cols, ld = cols + 3;
        const int cp = (cols + 1) & ~1, rp = (rows + 1) & ~1;
        float *src = malloc(sizeof(float) * (size_t)rows * ld);
        fm_bf16 *dr = malloc(sizeof(fm_bf16) * (size_t)rows * cp), *dp = malloc(sizeof(fm_bf16) * (size_t)rp * cols);
        for (int i = 0; i < rows * ld; i++) {
            src[i] = 8.0f * (fm_rng_uniform(&rng) - 0.5f);
            if (i % 5 == 0) memcpy(&src[i], &special[(i / 5) % 9], sizeof(float));
        }
        memset(dr, 0xff, sizeof(fm_bf16) * (size_t)rows * cp), memset(dp, 0xff, sizeof(fm_bf16) * (size_t)rp * cols);
        fm_bf16_pack_rows(dr, src, rows, cols, (size_t)ld);
        fm_bf16_pack_pairs(dp, src, rows, cols, (size_t)ld);
        int bad = 0;
        for (int r = 0; r < rp && bad < 3; r++) {
            for (int c = 0; c < cp && bad < 3; c++) {
                fm_bf16 want = r < rows && c < cols ? fm_bf16_round(src[(size_t)r * ld + c]) : 0;
                if (r < rows) {
                    fm_bf16 got = dr[(size_t)r * cp + c];
                    if (got != want) {
                        CHECK(t, 0, "%dx%d rows: [%d][%d] %04x, wanted %04x", rows, cols, r, c, got, want);
                        bad++;
                    }
                }
                if (c < cols) {
                    fm_bf16 got = dp[((size_t)(r / 2) * cols + c) * 2 + (r & 1)];
                    if (got != want) {
                        CHECK(t, 0, "%dx%d pairs: [%d][%d] %04x, wanted %04x", rows, cols, r, c, got, want);
                        bad++;
                    }
                }
            }
        }
        free(src), free(dr), free(dp);
    }
    CHECK(t, fm_bf16_round(1e-40f) == 0 && fm_bf16_round(-1e-40f) == 0x8000, "subnormals are not read as zero");
}
