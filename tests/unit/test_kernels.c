/* test_kernels.c — fm_gemm against the plain triple loop for every layout, size and padding, and
 * bit-identical results whatever the thread count. */
#include "harness.h"
#include "internal.h"

#include <float.h>
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

/* Runs one case through fm_gemm (with the given threads) and fm_gemm_ref and compares them.
 * Both sum K float products, each within K*u*sum|a*b| of the exact value (u = 2^-24, any
 * summation order), so they may differ by up to 2*K*u*sum|a*b|: the tolerance is that bound plus
 * one rounding for the accumulate. Dropping or repeating one of K similar terms is ~sum|a*b|/K
 * off, far above it at every K tested. Padding columns must come back untouched. */
static void run_case(test_ctx *t, gemm_case c, int threads, uint64_t seed) {
    int arows = c.ta ? c.K : c.M, acols = c.ta ? c.M : c.K;
    int brows = c.tb ? c.N : c.K, bcols = c.tb ? c.K : c.N;
    int lda = acols + c.pad, ldb = bcols + c.pad, ldc = c.N + c.pad;
    size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)c.M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float));
    float *C0 = malloc(nc * sizeof(float));
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    fill(A, na, &rng, c.zeros);
    fill(B, nb, &rng, c.zeros);
    fill(C0, nc, &rng, 0.0f);
    /* Poison the padding of A and B: a kernel that reads it gets NaN, which no tolerance hides. */
    for (int r = 0; r < arows; r++)
        for (int k = acols; k < lda; k++) A[(size_t)r * lda + k] = NAN;
    for (int r = 0; r < brows; r++)
        for (int k = bcols; k < ldb; k++) B[(size_t)r * ldb + k] = NAN;
    memcpy(C, C0, nc * sizeof(float));
    memcpy(R, C0, nc * sizeof(float));
    fm_gemm(c.ta, c.tb, c.M, c.N, c.K, A, lda, B, ldb, c.acc, C, ldc, threads);
    fm_gemm_ref(c.ta, c.tb, c.M, c.N, c.K, A, lda, B, ldb, c.acc, R, ldc);
    int bad = 0;
    for (int i = 0; i < c.M && bad < 5; i++) {
        for (int j = 0; j < ldc && bad < 5; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= c.N) {
                if (memcmp(&C[at], &C0[at], sizeof(float)) != 0) {
                    bad++;
                    CHECK(t, 0, "ta=%d tb=%d %dx%dx%d pad=%d: padding C[%d,%d] written", c.ta, c.tb,
                          c.M, c.N, c.K, c.pad, i, j);
                }
                continue;
            }
            double mag = c.acc ? fabs((double)C0[at]) : 0.0;
            for (int k = 0; k < c.K; k++) {
                double a = c.ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = c.tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                mag += fabs(a * b);
            }
            double tol = 2.0 * (c.K + 1) * (FLT_EPSILON / 2) * mag;
            double diff = fabs((double)C[at] - (double)R[at]);
            if (!(diff <= tol)) {
                bad++;
                CHECK(t, 0, "ta=%d tb=%d %dx%dx%d pad=%d acc=%d zeros=%.1f threads=%d: C[%d,%d] = "
                      "%.9g, reference %.9g (tol %.3g)", c.ta, c.tb, c.M, c.N, c.K, c.pad, c.acc,
                      (double)c.zeros, threads, i, j, (double)C[at], (double)R[at], tol);
            }
        }
    }
    free(A), free(B), free(C), free(R), free(C0);
}

static const int SHAPES[][3] = {
    {1, 1, 1},    {1, 3, 17},   {3, 1, 33},   {17, 33, 3},   {33, 17, 100}, {100, 33, 1},
    {3, 100, 17}, {32, 128, 784}, {128, 784, 32}, {32, 784, 128}, {1, 17, 16},  {5, 300, 40},
};

void test_gemm_matches_reference(test_ctx *t) {
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int acc = 0; acc < 2; acc++) {
                    for (int pad = 0; pad <= 5; pad += 5) {
                        gemm_case c = {ta, tb, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], pad, acc, 0.0f};
                        run_case(t, c, 1, seed++);
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
                    run_case(t, c, 1, seed++);
                    c.acc = 0;
                    run_case(t, c, 1, seed++);
                }
            }
        }
    }
}

/* The threaded paths, split by rows and (for short wide outputs) by columns, still agree with
 * the reference. */
void test_gemm_threaded_matches_reference(test_ctx *t) {
    static const int shapes[][3] = {{32, 128, 784}, {128, 784, 32}, {3, 1000, 50}, {7, 333, 100}};
    uint64_t seed = 500;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int threads = 2; threads <= 4; threads++) {
                    for (int acc = 0; acc < 2; acc++) {
                        gemm_case c = {ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 2, acc, 0.3f};
                        run_case(t, c, threads, seed++);
                    }
                }
            }
        }
    }
}

void test_gemm_threads_bit_identical(test_ctx *t) {
    /* Shapes large enough to be split (the kernel runs small ones on one thread), both by rows
     * and, where M is small against N, by columns, including ragged last blocks. */
    static const int shapes[][3] = {{32, 128, 784}, {128, 784, 32}, {32, 784, 128},
                                    {3, 1000, 50},  {7, 333, 100},  {101, 67, 97}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
        float *C0 = malloc((size_t)M * N * sizeof(float)), *C[4];
        fm_rng rng;
        fm_rng_seed(&rng, 1000 + s);
        fill(A, (size_t)M * K, &rng, 0.3f);
        fill(B, (size_t)K * N, &rng, 0.0f);
        fill(C0, (size_t)M * N, &rng, 0.0f);
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int acc = 0; acc < 2; acc++) {
                    int lda = ta ? M : K, ldb = tb ? K : N;
                    for (int th = 0; th < 4; th++) {
                        C[th] = malloc((size_t)M * N * sizeof(float));
                        memcpy(C[th], C0, (size_t)M * N * sizeof(float));
                        fm_gemm(ta, tb, M, N, K, A, lda, B, ldb, acc, C[th], N, th + 1);
                    }
                    for (int th = 1; th < 4; th++) {
                        CHECK(t, memcmp(C[0], C[th], (size_t)M * N * sizeof(float)) == 0,
                              "ta=%d tb=%d acc=%d %dx%dx%d: %d threads differ from 1", ta, tb, acc,
                              M, N, K, th + 1);
                    }
                    for (int th = 0; th < 4; th++) free(C[th]);
                }
            }
        }
        free(A), free(B), free(C0);
    }
}
