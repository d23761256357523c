/* test_cnn_layers.c — the convolutional network's layers: Conv2D's im2col path against the direct
 * reference (forward, backward, threads), and every layer's backward pass against central finite
 * differences of its forward pass; hand-computed values for pooling, dropout and batch norm. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void fill(float *p, size_t n, fm_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fm_rng_uniform(rng);
}

/* The scalar the checks differentiate: L = sum(out * R), so dL/dout = R. */
static double dot_loss(const float *out, const float *R, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

/* Finite differences on float forward passes: an absolute part for rounding (magnified by the
 * division by 2h) and a relative part for large gradients. */
#define FD_OK(analytic, numeric, abs_tol) \
    (fabs((double)(analytic) - (numeric)) <= (abs_tol) + 1e-3 * fabs(numeric))

static float *alloc_floats(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* Checks got[i] against want[i] for i < n to a relative tol, reporting only the first few that
 * are too far: bad counts those reported so far (shared between calls), the new count returned. */
static int check_close(test_ctx *t, const char *what, size_t ci, const float *got, const float *want,
                       size_t n, double tol, int bad) {
    for (size_t i = 0; i < n && bad < 5; i++) {
        if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
            CHECK(t, 0, "case %zu: %s[%zu] %.7g vs %.7g", ci, what, i, (double)got[i], (double)want[i]);
            bad++;
        }
    }
    return bad;
}

/* ---------------------------------------------------------------- conv2d */

typedef struct { int B, C, H, W, OC, K, stride, same; } conv_case;

static const conv_case CONV_CASES[] = {
    {2, 1, 6, 5, 3, 3, 1, 0},  /* valid, single input channel (a first layer) */
    {2, 2, 5, 6, 3, 3, 1, 1},  /* same, stride 1: one pixel of padding all round */
    {3, 3, 7, 7, 4, 3, 2, 1},  /* same, stride 2: output 4x4 */
    {2, 2, 6, 6, 2, 2, 2, 1},  /* same, even kernel: padding only after the input */
    {1, 2, 8, 7, 3, 4, 2, 1},  /* same, even kernel, stride 2, odd width */
    {2, 3, 5, 5, 5, 1, 1, 0},  /* 1x1 kernel: a per-pixel dense layer */
    {2, 2, 3, 4, 2, 5, 1, 1},  /* kernel larger than the input, same padding */
    {2, 2, 9, 9, 3, 3, 3, 0},  /* valid, stride 3 */
    {2, 4, 4, 4, 6, 4, 1, 0},  /* valid, the kernel covers the input: output 1x1 */
};

void test_conv2d_shapes(test_ctx *t) {
    fm_conv_shape s;
    /* same: ceil(H/stride); padding total (OH-1)*stride + K - H, the smaller half first. */
    CHECK(t, fm_conv_shape_make(&s, 1, 28, 28, 32, 3, 1, 1) && s.OH == 28 && s.OW == 28 &&
             s.pad_t == 1 && s.pad_l == 1, "same 28/3/1: %dx%d pad %d,%d", s.OH, s.OW, s.pad_t, s.pad_l);
    CHECK(t, fm_conv_shape_make(&s, 1, 28, 28, 8, 3, 2, 1) && s.OH == 14 && s.pad_t == 0,
          "same 28/3/2: %d pad %d", s.OH, s.pad_t); /* total 13*2+3-28 = 1: 0 before, 1 after */
    CHECK(t, fm_conv_shape_make(&s, 1, 7, 7, 8, 3, 2, 1) && s.OH == 4 && s.pad_t == 1,
          "same 7/3/2: %d pad %d", s.OH, s.pad_t); /* total 3*2+3-7 = 2 */
    CHECK(t, fm_conv_shape_make(&s, 1, 6, 6, 8, 2, 1, 1) && s.OH == 6 && s.pad_t == 0,
          "same 6/2/1: %d pad %d", s.OH, s.pad_t);
    CHECK(t, fm_conv_shape_make(&s, 1, 3, 3, 8, 5, 1, 1) && s.OH == 3 && s.pad_t == 2,
          "same 3/5/1: %d pad %d", s.OH, s.pad_t);
    /* valid: (H-K)/stride + 1, and nothing when the kernel does not fit. */
    CHECK(t, fm_conv_shape_make(&s, 1, 28, 28, 32, 3, 1, 0) && s.OH == 26 && s.pad_t == 0, "valid 28/3");
    CHECK(t, fm_conv_shape_make(&s, 1, 28, 28, 32, 5, 2, 0) && s.OH == 12, "valid 28/5/2: %d", s.OH);
    CHECK(t, fm_conv_shape_make(&s, 1, 9, 10, 3, 3, 3, 0) && s.OH == 3 && s.OW == 3, "valid 9x10/3/3");
    CHECK(t, !fm_conv_shape_make(&s, 1, 2, 5, 3, 3, 1, 0), "valid 3x3 on 2x5 accepted");
    CHECK(t, !fm_conv_shape_make(&s, 1, 5, 5, 3, 0, 1, 0), "kernel 0 accepted");
    CHECK(t, !fm_conv_shape_make(&s, 1, 5, 5, 3, 3, 0, 1), "stride 0 accepted");
    /* The dense path's columns, transposed output gradient and transposed weight, or the sparse
     * path's columns (rows padded to 32), input, weight, one row, and the non-zero lists by
     * channel and by position, whichever is larger. */
    size_t dense = (2 * 9 + 3) * 25 + 2 * 9 * 3;
    size_t sparse = 25 * 32 + 2 * 25 + 3 * 32 + 32 + (3 + 1 + 2 * 3 * 25) + (25 + 1 + 2 * 3 * 25);
    CHECK(t, fm_conv_shape_make(&s, 2, 5, 5, 3, 3, 1, 1) && fm_conv_col_size(&s) == (dense > sparse ? dense : sparse),
          "col size %zu, want max(%zu, %zu)", fm_conv_col_size(&s), dense, sparse);
}

void test_conv2d_hand_values(test_ctx *t) {
    /* One 3x3 input, kernel [[1,0],[0,-1]] (x[i][j] - x[i+1][j+1]), bias 0.5, valid: 2x2 output.
     * x = 1 2 3 / 4 5 6 / 7 8 10: out = (1-5, 2-6, 4-8, 5-10) + 0.5 = (-3.5, -3.5, -3.5, -4.5). */
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 10}, w[4] = {1, 0, 0, -1}, bias[1] = {0.5f};
    fm_conv_shape s;
    fm_conv_shape_make(&s, 1, 3, 3, 1, 2, 1, 0);
    float out[4], ref[4], col[16];
    conv2d_forward(out, x, w, bias, col, 1, 1, &s, NULL);
    conv2d_forward_ref(ref, x, w, bias, 1, &s);
    const float want[4] = {-3.5f, -3.5f, -3.5f, -4.5f};
    for (int i = 0; i < 4; i++) {
        CHECK(t, out[i] == want[i] && ref[i] == want[i], "out[%d] = %g, ref %g, want %g", i,
              (double)out[i], (double)ref[i], (double)want[i]);
    }
    /* Same padding, 2x2 kernel: one zero column and row after the input; out[2][2] = 10*1 - 0. */
    fm_conv_shape_make(&s, 1, 3, 3, 1, 2, 1, 1);
    float out9[9], col9[36];
    conv2d_forward(out9, x, w, bias, col9, 1, 1, &s, NULL);
    CHECK(t, out9[0] == -3.5f && out9[2] == 3.5f && out9[8] == 10.5f && out9[6] == 7.5f,
          "same: %g %g %g %g", (double)out9[0], (double)out9[2], (double)out9[6], (double)out9[8]);
}

/* Runs one case through both paths and compares; dweight and dbias start non-zero to show that
 * both accumulate. About `zeros` of the output gradient is 0: at 0.9 the backward pass takes its
 * sparse path (under SPARSE_MAX_DENSITY of non-zeros), at 0 the dense one. */
static void check_conv_case(test_ctx *t, const conv_case *c, uint64_t seed, float zeros) {
    fm_conv_shape s;
    if (!fm_conv_shape_make(&s, c->C, c->H, c->W, c->OC, c->K, c->stride, c->same)) {
        CHECK(t, 0, "case %dx%d k%d s%d does not fit", c->H, c->W, c->K, c->stride);
        return;
    }
    size_t n_in = (size_t)c->B * c->C * c->H * c->W, n_out = (size_t)c->B * c->OC * s.OH * s.OW;
    size_t n_w = (size_t)c->OC * c->C * c->K * c->K;
    float *x = alloc_floats(n_in), *w = alloc_floats(n_w), *bias = alloc_floats(c->OC);
    float *out = alloc_floats(n_out), *ref = alloc_floats(n_out), *dout = alloc_floats(n_out);
    float *col = alloc_floats(2 * fm_conv_col_size(&s)), *dwork = alloc_floats(fm_conv_dwork_size(&s, c->B));
    float *dx = alloc_floats(n_in), *dx_ref = alloc_floats(n_in);
    float *dw = alloc_floats(n_w), *dw_ref = alloc_floats(n_w);
    float *db = alloc_floats(c->OC), *db_ref = alloc_floats(c->OC);
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    fill(x, n_in, &rng, -1, 1);
    fill(w, n_w, &rng, -1, 1);
    fill(bias, c->OC, &rng, -1, 1);
    fill(dout, n_out, &rng, -1, 1);
    for (size_t i = 0; i < n_out; i++) dout[i] = fm_rng_uniform(&rng) < zeros ? 0.0f : dout[i];
    fill(dw, n_w, &rng, -1, 1);
    memcpy(dw_ref, dw, n_w * sizeof(float));
    fill(db, c->OC, &rng, -1, 1);
    memcpy(db_ref, db, c->OC * sizeof(float));
    for (size_t i = 0; i < n_in; i++) dx[i] = 99.0f; /* overwritten, not added to */

    conv2d_forward(out, x, w, bias, col, 1, c->B, &s, NULL);
    conv2d_forward_ref(ref, x, w, bias, c->B, &s);
    for (size_t i = 0; i < n_out; i++) {
        CHECK(t, fabs(out[i] - ref[i]) <= 1e-5 * (1 + fabs(ref[i])), "case %dx%dx%d k%d s%d %s: out[%zu] %g vs %g",
              c->C, c->H, c->W, c->K, c->stride, c->same ? "same" : "valid", i, (double)out[i], (double)ref[i]);
    }
    conv2d_backward(dx, dw, db, dout, x, w, col, 1, dwork, c->B, &s, NULL);
    conv2d_backward_ref(dx_ref, dw_ref, db_ref, dout, x, w, c->B, &s);
    /* The reference sums in float in another order; rounding grows with the number of terms
     * (B*OH*OW of them in each weight gradient), roughly as its square root. */
    double grow = sqrt((double)c->B * s.OH * s.OW / 64.0);
    grow = grow > 1.0 ? grow : 1.0;
    /* Each input gradient sums OC*K*K terms (576 in the big case, where both float paths are
     * about 8e-6 from the exact double sum). */
    double grow_dx = sqrt((double)c->OC * c->K * c->K / 64.0);
    grow_dx = grow_dx > 1.0 ? grow_dx : 1.0;
    /* (the sparse path sums a subset of the same terms: the same bounds hold) */
    for (size_t i = 0; i < n_in; i++) CHECK_NEAR(t, dx[i], dx_ref[i], 1e-5 * grow_dx * (1 + fabs(dx_ref[i])));
    for (size_t i = 0; i < n_w; i++) CHECK_NEAR(t, dw[i], dw_ref[i], 1e-5 * grow * (1 + fabs(dw_ref[i])));
    for (int i = 0; i < c->OC; i++) CHECK_NEAR(t, db[i], db_ref[i], 1e-5 * grow * (1 + fabs(db_ref[i])));

    /* Two threads give the same bits as one: they split samples, and the gradients are summed
     * in sample order whoever computed them. */
    float *out2 = alloc_floats(n_out), *dx2 = alloc_floats(n_in), *dw2 = alloc_floats(n_w);
    float *db2 = alloc_floats(c->OC), *dw1 = alloc_floats(n_w), *db1 = alloc_floats(c->OC);
    fm_pool *pool2 = fm_pool_create(2);
    conv2d_forward(out2, x, w, bias, col, 2, c->B, &s, pool2);
    CHECK(t, memcmp(out, out2, n_out * sizeof(float)) == 0, "forward differs with 2 threads");
    conv2d_backward(dx, dw1, db1, dout, x, w, col, 1, dwork, c->B, &s, NULL);
    conv2d_backward(dx2, dw2, db2, dout, x, w, col, 2, dwork, c->B, &s, pool2);
    CHECK(t, memcmp(dx, dx2, n_in * sizeof(float)) == 0 && memcmp(dw1, dw2, n_w * sizeof(float)) == 0 &&
                 memcmp(db1, db2, c->OC * sizeof(float)) == 0,
          "backward differs with 2 threads");
    /* Without dinp (a first layer) the parameter gradients are unchanged. */
    memset(dw2, 0, n_w * sizeof(float)), memset(db2, 0, c->OC * sizeof(float));
    conv2d_backward(NULL, dw2, db2, dout, x, w, col, 1, dwork, c->B, &s, NULL);
    CHECK(t, memcmp(dw1, dw2, n_w * sizeof(float)) == 0 && memcmp(db1, db2, c->OC * sizeof(float)) == 0,
          "dinp NULL changes the parameter gradients");
    free(out2), free(dx2), free(dw2), free(db2), free(dw1), free(db1);
    fm_pool_free(pool2);
    free(x), free(w), free(bias), free(out), free(ref), free(dout), free(col), free(dwork);
    free(dx), free(dx_ref), free(dw), free(dw_ref), free(db), free(db_ref);
}

void test_conv2d_matches_reference(test_ctx *t) {
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        check_conv_case(t, &CONV_CASES[i], 100 + i, 0.0f);
        check_conv_case(t, &CONV_CASES[i], 300 + i, 0.9f);
    }
    /* A layer of the cnn preset's size, where fm_gemm splits the work between threads; sparse
     * with two groups of samples (one per thread) and the last one short. */
    const conv_case big = {2, 32, 26, 26, 64, 3, 1, 0}, big6 = {6, 32, 26, 26, 64, 3, 1, 0};
    check_conv_case(t, &big, 7, 0.0f);
    check_conv_case(t, &big6, 8, 0.9f);
    /* no padding and kernel rows of whole vectors (KW*C = 48): the sparse path reads the input
     * itself instead of columns, here with stride 2 */
    const conv_case runs = {2, 16, 9, 9, 5, 3, 2, 0};
    check_conv_case(t, &runs, 9, 0.9f);
    /* stride 2 by columns, three groups of samples (the last short), each group's gradient
     * 16*9*24 + 24 values: the reduction over groups in several blocks, dense and sparse */
    const conv_case groups = {9, 16, 9, 9, 24, 3, 2, 1};
    check_conv_case(t, &groups, 10, 0.0f);
    check_conv_case(t, &groups, 11, 0.9f);
}

/* The Winograd forward pass (3x3, stride 1, at least 8 input channels) against the definition:
 * same padding with odd sizes (half tiles at the edges), valid with several blocks of tile rows,
 * channel counts with and without a vector's worth, a single tile row. Its transforms add up to
 * 4 inputs, and up to 9 weights over 4, before the products, and 9 sums of them after: each
 * output's rounding is that of a sum of C*16 terms up to ~9x the direct products (about 1e-6 here,
 * measured), well inside a relative 1e-5 * sqrt(C*9/8). */
void test_conv2d_winograd(test_ctx *t) {
    const conv_case cases[] = {
        {2, 8, 7, 9, 3, 3, 1, 1},    /* same, odd height and width, no full vector of channels */
        {1, 20, 9, 30, 5, 3, 1, 0},  /* valid 7x28: odd height, 14 tiles across, a block per row */
        {2, 17, 31, 6, 4, 3, 1, 1},  /* same, tall and narrow: 3 tiles across, 16 rows in blocks of 5 */
        {1, 32, 4, 26, 3, 3, 1, 0},  /* valid, a single row of tiles (2x24) */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_case *c = &cases[ci];
        fm_conv_shape s;
        fm_conv_shape_make(&s, c->C, c->H, c->W, c->OC, c->K, c->stride, c->same);
        CHECK(t, fm_winograd_fits(&s), "case %zu does not take the Winograd path", ci);
        size_t n_in = (size_t)c->B * c->C * c->H * c->W, n_out = (size_t)c->B * c->OC * s.OH * s.OW;
        size_t n_w = (size_t)c->OC * c->C * 9;
        float *x = alloc_floats(n_in), *w = alloc_floats(n_w), *bias = alloc_floats(c->OC);
        float *out = alloc_floats(n_out + 1), *ref = alloc_floats(n_out);
        float *col = alloc_floats(2 * fm_conv_col_size(&s));
        fm_rng rng;
        fm_rng_seed(&rng, 500 + ci);
        fill(x, n_in, &rng, -1, 1);
        fill(w, n_w, &rng, -1, 1);
        fill(bias, c->OC, &rng, -1, 1);
        out[n_out] = 12345.0f; /* nothing written past the output */
        conv2d_forward(out, x, w, bias, col, 1, c->B, &s, NULL);
        conv2d_forward_ref(ref, x, w, bias, c->B, &s);
        double tol = 1e-5 * sqrt(c->C * 9.0 / 8.0);
        check_close(t, "out", ci, out, ref, n_out, tol, 0);
        CHECK(t, out[n_out] == 12345.0f, "case %zu wrote past its output", ci);
        /* two threads, the same bits */
        float *out2 = alloc_floats(n_out);
        fm_pool *pool2 = fm_pool_create(2);
        conv2d_forward(out2, x, w, bias, col, 2, c->B, &s, pool2);
        CHECK(t, memcmp(out, out2, n_out * sizeof(float)) == 0, "case %zu: 2 threads differ", ci);
        fm_pool_free(pool2);
        free(x), free(w), free(bias), free(out), free(ref), free(col), free(out2);
    }
}

/* The backward pass by Winograd on the dense path against the definition: the input gradient
 * (3x3 stride-1 layers with at least 8 output channels) and the weight gradient (at least 8
 * input channels): same padding with odd sizes, valid (the input gradient is then a full
 * convolution, padded 2), channel counts with and without a vector's worth, blocks of tile rows.
 * Each input gradient sums OC*9 terms through the transforms: the forward test's bound with OC
 * for C; each weight gradient B*OH*OW, through transforms of up to 4 output gradients. */
void test_conv2d_winograd_backward(test_ctx *t) {
    const conv_case cases[] = {
        {2, 3, 7, 9, 8, 3, 1, 1},    /* same, odd height and width, 8 output channels; 3 input
                                        channels: the weight gradient by columns */
        {1, 9, 9, 30, 20, 3, 1, 0},  /* valid 9x30: a full 9x30 gradient from 7x28 */
        {3, 16, 6, 5, 33, 3, 1, 1},  /* same, 33 channels: two vectors and one more */
        {2, 8, 28, 28, 16, 3, 1, 1}, /* cnn-best's first stage: 196 tiles in blocks of 56 */
        {9, 16, 6, 6, 24, 3, 1, 1},  /* three groups of samples, the last short, summed over
                                        384 channel pairs: several blocks of the reduction */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_case *c = &cases[ci];
        fm_conv_shape s, tr;
        fm_conv_shape_make(&s, c->C, c->H, c->W, c->OC, c->K, c->stride, c->same);
        CHECK(t, fm_conv_shape_input_grad(&tr, &s) && fm_winograd_fits(&tr) && tr.OH == c->H && tr.OW == c->W,
              "case %zu does not take the Winograd path", ci);
        size_t n_in = (size_t)c->B * c->C * c->H * c->W, n_out = (size_t)c->B * c->OC * s.OH * s.OW;
        size_t n_w = (size_t)c->OC * c->C * 9;
        float *x = alloc_floats(n_in), *w = alloc_floats(n_w), *dout = alloc_floats(n_out);
        float *dx = alloc_floats(n_in + 1), *dx_ref = alloc_floats(n_in), *dx2 = alloc_floats(n_in);
        float *dw = alloc_floats(n_w), *db = alloc_floats(c->OC), *dw_ref = alloc_floats(n_w);
        float *db_ref = alloc_floats(c->OC), *dw2 = alloc_floats(n_w), *db2 = alloc_floats(c->OC);
        float *col = alloc_floats(2 * fm_conv_col_size(&s)), *dwork = alloc_floats(fm_conv_dwork_size(&s, c->B));
        fm_rng rng;
        fm_rng_seed(&rng, 700 + ci);
        fill(x, n_in, &rng, -1, 1);
        fill(w, n_w, &rng, -1, 1);
        fill(dout, n_out, &rng, -1, 1);
        for (size_t i = 0; i < n_in; i++) dx[i] = 99.0f; /* overwritten, not added to */
        dx[n_in] = 12345.0f;                                /* nothing written past it */
        conv2d_backward(dx, dw, db, dout, x, w, col, 1, dwork, c->B, &s, NULL);
        conv2d_backward_ref(dx_ref, dw_ref, db_ref, dout, x, w, c->B, &s);
        double tol = 1e-5 * sqrt(c->OC * 9.0 / 8.0);
        int bad = check_close(t, "dx", ci, dx, dx_ref, n_in, tol, 0);
        CHECK(t, dx[n_in] == 12345.0f, "case %zu wrote past its input gradient", ci);
        double tol_w = 1e-5 * sqrt(c->B * s.OH * s.OW * 4.0 / 8.0);
        check_close(t, "dw", ci, dw, dw_ref, n_w, tol_w, bad);
        for (int i = 0; i < c->OC; i++) CHECK_NEAR(t, db[i], db_ref[i], tol_w * (1 + fabs(db_ref[i])));
        fm_pool *pool2 = fm_pool_create(2);
        conv2d_backward(dx2, dw2, db2, dout, x, w, col, 2, dwork, c->B, &s, pool2);
        CHECK(t, memcmp(dx, dx2, n_in * sizeof(float)) == 0 && memcmp(dw, dw2, n_w * sizeof(float)) == 0 &&
                     memcmp(db, db2, c->OC * sizeof(float)) == 0,
              "case %zu: 2 threads differ", ci);
        fm_pool_free(pool2);
        free(x), free(w), free(dout), free(dx), free(dx_ref), free(dx2), free(dw), free(db), free(col), free(dwork);
        free(dw_ref), free(db_ref), free(dw2), free(db2);
    }
}

/* Mixed precision (fm_conv_shape.bf16): the Winograd path's three products on bf16 operands
 * against the float definition. Rounding an operand costs up to 2^-9 of it, a product 2^-8; the
 * transforms' sums make the Winograd operands up to a few times the inputs they combine, so each
 * output is held to BF16_TOL times the sum of its direct products' magnitudes (the definition run
 * on |x|, |w|, |dy|), which the ratios measured on these cases (at most 0.0025 forward, 0.0026
 * input and 0.0033 weight gradient; FMNIST_TEST_VERBOSE=1 prints them) leave room under, while
 * one of C*9 terms lost, at C = 8, would be about 1/72 = 0.014 of it. Two threads give the same
 * bits, and the shape's bf16 flag is what switches the path (the float result differs). */
#define BF16_TOL 0.008
static double bf16_worst(const float *got, const float *want, const float *abs_sum, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (abs_sum[i] + 1e-30);
        if (!(r <= worst)) worst = r; /* (NaN sticks) */
    }
    return worst;
}

void test_conv2d_winograd_bf16(test_ctx *t) {
    const conv_case cases[] = {
        {2, 8, 7, 9, 8, 3, 1, 1},     /* same, odd sizes: half tiles, odd tile count per block */
        {1, 9, 9, 30, 20, 3, 1, 0},   /* valid, odd channel count: a zero half pair */
        {3, 16, 6, 5, 33, 3, 1, 1},   /* 33 output channels: a partial vector */
        {2, 32, 14, 14, 64, 3, 1, 1}, /* cnn-best's second stage */
    };
    fm_fpenv env = fm_fpenv_enter();
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_case *c = &cases[ci];
        fm_conv_shape s;
        fm_conv_shape_make(&s, c->C, c->H, c->W, c->OC, c->K, c->stride, c->same);
        s.bf16 = 1;
        size_t n_in = (size_t)c->B * c->C * c->H * c->W, n_out = (size_t)c->B * c->OC * s.OH * s.OW;
        size_t n_w = (size_t)c->OC * c->C * 9;
        float *x = alloc_floats(n_in), *w = alloc_floats(n_w), *bias = alloc_floats(c->OC), *dy = alloc_floats(n_out);
        float *ax = alloc_floats(n_in), *aw = alloc_floats(n_w), *ady = alloc_floats(n_out);
        float *out = alloc_floats(n_out), *out2 = alloc_floats(n_out), *ref = alloc_floats(n_out), *aref = alloc_floats(n_out);
        float *dx = alloc_floats(n_in), *dx2 = alloc_floats(n_in), *dx_ref = alloc_floats(n_in), *adx = alloc_floats(n_in);
        float *dw = alloc_floats(n_w), *dw2 = alloc_floats(n_w), *dw_ref = alloc_floats(n_w), *adw = alloc_floats(n_w);
        float *db = alloc_floats(c->OC), *db2 = alloc_floats(c->OC), *db_ref = alloc_floats(c->OC), *scratch = alloc_floats(c->OC);
        float *col = alloc_floats(2 * fm_conv_col_size(&s)), *dwork = alloc_floats(fm_conv_dwork_size(&s, c->B));
        fm_rng rng;
        fm_rng_seed(&rng, 1100 + ci);
        fill(x, n_in, &rng, -1, 1);
        fill(w, n_w, &rng, -1, 1);
        fill(dy, n_out, &rng, -1, 1);
        for (size_t i = 0; i < n_in; i++) ax[i] = fabsf(x[i]);
        for (size_t i = 0; i < n_w; i++) aw[i] = fabsf(w[i]);
        for (size_t i = 0; i < n_out; i++) ady[i] = fabsf(dy[i]);
        conv2d_forward(out, x, w, bias, col, 1, c->B, &s, NULL);
        conv2d_forward_ref(ref, x, w, bias, c->B, &s);
        conv2d_forward_ref(aref, ax, aw, bias, c->B, &s); /* bias 0: only the products */
        double fwd = bf16_worst(out, ref, aref, n_out);
        conv2d_backward(dx, dw, db, dy, x, w, col, 1, dwork, c->B, &s, NULL);
        conv2d_backward_ref(dx_ref, dw_ref, db_ref, dy, x, w, c->B, &s);
        conv2d_backward_ref(adx, adw, scratch, ady, ax, aw, c->B, &s);
        double bdx = bf16_worst(dx, dx_ref, adx, n_in), bdw = bf16_worst(dw, dw_ref, adw, n_w);
        CHECK(t, fwd <= BF16_TOL && bdx <= BF16_TOL && bdw <= BF16_TOL,
              "case %zu: worst error / sum|products|: forward %.4g, dx %.4g, dw %.4g", ci, fwd, bdx, bdw);
        if (getenv("FMNIST_TEST_VERBOSE")) {
            fprintf(stderr, "  case %zu: forward %.4g, dx %.4g, dw %.4g\n", ci, fwd, bdx, bdw);
        }
        fm_pool *pool2 = fm_pool_create(2);
        conv2d_forward(out2, x, w, bias, col, 2, c->B, &s, pool2);
        conv2d_backward(dx2, dw2, db2, dy, x, w, col, 2, dwork, c->B, &s, pool2);
        CHECK(t, memcmp(out, out2, n_out * sizeof(float)) == 0 && memcmp(dx, dx2, n_in * sizeof(float)) == 0 &&
                     memcmp(dw, dw2, n_w * sizeof(float)) == 0,
              "case %zu: 2 threads differ", ci);
        fm_pool_free(pool2);
        s.bf16 = 0; /* the flag is what switched the path */
        conv2d_forward(out2, x, w, bias, col, 1, c->B, &s, NULL);
        CHECK(t, memcmp(out, out2, n_out * sizeof(float)) != 0, "case %zu: bf16 gave the float bits", ci);
        free(x), free(w), free(bias), free(dy), free(ax), free(aw), free(ady), free(out), free(out2), free(ref);
        free(aref), free(dx), free(dx2), free(dx_ref), free(adx), free(dw), free(dw2), free(dw_ref), free(adw);
        free(db), free(db2), free(db_ref), free(scratch), free(col), free(dwork);
    }
    fm_fpenv_leave(env);
}

void test_conv2d_gradients(test_ctx *t) {
    for (size_t ci = 0; ci < sizeof CONV_CASES / sizeof CONV_CASES[0]; ci++) {
        const conv_case *c = &CONV_CASES[ci];
        fm_conv_shape s;
        fm_conv_shape_make(&s, c->C, c->H, c->W, c->OC, c->K, c->stride, c->same);
        size_t n_in = (size_t)c->B * c->C * c->H * c->W, n_out = (size_t)c->B * c->OC * s.OH * s.OW;
        size_t n_w = (size_t)c->OC * c->C * c->K * c->K;
        float *x = alloc_floats(n_in), *w = alloc_floats(n_w), *bias = alloc_floats(c->OC);
        float *out = alloc_floats(n_out), *R = alloc_floats(n_out), *col = alloc_floats(fm_conv_col_size(&s));
        float *dwork = alloc_floats(fm_conv_dwork_size(&s, c->B));
        float *dx = alloc_floats(n_in), *dw = alloc_floats(n_w), *db = alloc_floats(c->OC);
        fm_rng rng;
        fm_rng_seed(&rng, 200 + ci);
        fill(x, n_in, &rng, -1, 1);
        fill(w, n_w, &rng, -1, 1);
        fill(bias, c->OC, &rng, -1, 1);
        fill(R, n_out, &rng, -1, 1);
        /* every other case with 90% of dL/dout zero, through the sparse backward path */
        for (size_t i = 0; i < n_out && ci % 2 == 1; i++) R[i] = fm_rng_uniform(&rng) < 0.9f ? 0.0f : R[i];
        conv2d_backward(dx, dw, db, R, x, w, col, 1, dwork, c->B, &s, NULL);
        /* The loss is linear in each argument: a large step costs no truncation error. */
        const float h = 0.125f;
        struct { float *v, *g; size_t n; const char *name; } parts[] = {
            {x, dx, n_in, "dinp"}, {w, dw, n_w, "dweight"}, {bias, db, (size_t)c->OC, "dbias"}};
        for (int p = 0; p < 3; p++) {
            for (size_t i = 0; i < parts[p].n; i++) {
                float keep = parts[p].v[i];
                parts[p].v[i] = keep + h;
                conv2d_forward(out, x, w, bias, col, 1, c->B, &s, NULL);
                double up = dot_loss(out, R, n_out);
                parts[p].v[i] = keep - h;
                conv2d_forward(out, x, w, bias, col, 1, c->B, &s, NULL);
                double down = dot_loss(out, R, n_out);
                parts[p].v[i] = keep;
                double fd = (up - down) / (2.0 * h);
                CHECK(t, FD_OK(parts[p].g[i], fd, 1e-4), "case %zu %s[%zu] = %.7g, finite difference %.7g",
                      ci, parts[p].name, i, (double)parts[p].g[i], fd);
            }
        }
        free(x), free(w), free(bias), free(out), free(R), free(col), free(dwork), free(dx), free(dw), free(db);
    }
}

/* ---------------------------------------------------------------- pooling */

/* Distinct values at least 0.05 apart in random order, so that a step of h = 1e-3 never changes
 * which pixel is a window's maximum. */
static void fill_distinct(float *p, int n, fm_rng *rng) {
    int32_t *order = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) order[i] = i;
    fm_rng_shuffle(rng, order, (size_t)n);
    for (int i = 0; i < n; i++) p[i] = 0.05f * (float)(order[i] - n / 2);
    free(order);
}

void test_maxpool_values(test_ctx *t) {
    /* 1 channel of 4x5, pool 2 stride 2: output 2x2 from columns 0..3 (column 4 is dropped). */
    const float x[20] = {1, 5, 2, 0, 99,  //
                         3, 4, 7, 7, 99,  //
                         -1, -2, 0, 0, 99, //
                         -3, -4, 0, 1, 99};
    float out[4];
    int32_t arg[4];
    maxpool2d_forward(out, arg, x, 1, 1, 4, 5, 2, 2, 2, 2, NULL);
    CHECK(t, out[0] == 5 && out[1] == 7 && out[2] == -1 && out[3] == 1, "%g %g %g %g", (double)out[0],
          (double)out[1], (double)out[2], (double)out[3]);
    /* Ties go to the first maximum in reading order: the 7 at (1,2), not (1,3). */
    CHECK(t, arg[0] == 1 && arg[1] == 7 && arg[2] == 10 && arg[3] == 18, "argmax %d %d %d %d",
          arg[0], arg[1], arg[2], arg[3]);
    const float d[4] = {1, 2, 3, 4};
    float dx[20];
    maxpool2d_backward(dx, d, arg, 1, 1, 4, 5, 2, 2, NULL);
    float sum = 0;
    for (int i = 0; i < 20; i++) sum += dx[i];
    CHECK(t, dx[1] == 1 && dx[7] == 2 && dx[10] == 3 && dx[18] == 4 && sum == 10, "scatter");

    /* 2x2 windows have their own loop (vectorised 16 windows at a time, then 8, then one by
     * one): against the definition on 2 planes of 5x51 (an odd row and column dropped) of few
     * distinct values (many ties), a NaN first in one window and later in another. */
    enum { P = 2, H = 5, W = 51, OH = 2, OW = 25 };
    float xs[P * H * W], o[P * OH * OW];
    int32_t a[P * OH * OW];
    fm_rng rng;
    fm_rng_seed(&rng, 5);
    for (int i = 0; i < P * H * W; i++) xs[i] = (float)fm_rng_below(&rng, 3);
    xs[0] = NAN, xs[W + 3] = NAN;
    maxpool2d_forward(o, a, xs, 1, P, H, W, 2, 2, OH, OW, NULL);
    for (int p = 0; p < P; p++) {
        for (int i = 0; i < OH * OW; i++) {
            int oh = i / OW, ow = i % OW, best = 2 * oh * W + 2 * ow;
            for (int k = 1; k < 4; k++) {
                int at = (2 * oh + k / 2) * W + 2 * ow + k % 2;
                if (xs[p * H * W + at] > xs[p * H * W + best]) best = at;
            }
            float want = xs[p * H * W + best], got = o[p * OH * OW + i];
            CHECK(t, a[p * OH * OW + i] == best && memcmp(&got, &want, sizeof got) == 0,
                  "plane %d window %d: %g at %d, want %g at %d", p, i, (double)got, a[p * OH * OW + i],
                  (double)want, best);
        }
    }
    /* Two threads split the planes: the same outputs, argmaxes and gradients. */
    float o2[P * OH * OW], g[P * OH * OW], dx1[P * H * W], dx2[P * H * W];
    int32_t a2[P * OH * OW];
    for (int i = 0; i < P * OH * OW; i++) g[i] = (float)i;
    fm_pool *pool2 = fm_pool_create(2);
    maxpool2d_forward(o2, a2, xs, 1, P, H, W, 2, 2, OH, OW, pool2);
    maxpool2d_backward(dx1, g, a, 1, P, H, W, OH, OW, NULL);
    maxpool2d_backward(dx2, g, a2, 1, P, H, W, OH, OW, pool2);
    CHECK(t, memcmp(o, o2, sizeof o) == 0 && memcmp(a, a2, sizeof a) == 0 && memcmp(dx1, dx2, sizeof dx1) == 0,
          "max pooling differs with 2 threads");
    fm_pool_free(pool2);
}

void test_maxpool_gradients(test_ctx *t) {
    /* (K, S) = (2, 2) plain, (3, 2) overlapping windows, (3, 1); on 7x6 so edges are dropped. */
    static const int KS[3][2] = {{2, 2}, {3, 2}, {3, 1}};
    enum { B = 2, C = 2, H = 7, W = 6, N = B * C * H * W };
    for (int k = 0; k < 3; k++) {
        int K = KS[k][0], S = KS[k][1], OH = (H - K) / S + 1, OW = (W - K) / S + 1;
        int n_out = B * C * OH * OW;
        float x[N], dx[N], out[N], R[N];
        int32_t arg[N];
        fm_rng rng;
        fm_rng_seed(&rng, 300 + k);
        fill_distinct(x, N, &rng);
        fill(R, (size_t)n_out, &rng, -1, 1);
        maxpool2d_forward(out, arg, x, B, C, H, W, K, S, OH, OW, NULL);
        maxpool2d_backward(dx, R, arg, B, C, H, W, OH, OW, NULL);
        const float h = 1e-3f;
        for (int i = 0; i < N; i++) {
            float keep = x[i];
            x[i] = keep + h;
            maxpool2d_forward(out, arg, x, B, C, H, W, K, S, OH, OW, NULL);
            double up = dot_loss(out, R, (size_t)n_out);
            x[i] = keep - h;
            maxpool2d_forward(out, arg, x, B, C, H, W, K, S, OH, OW, NULL);
            double down = dot_loss(out, R, (size_t)n_out);
            x[i] = keep;
            double fd = (up - down) / (2.0 * h);
            CHECK(t, FD_OK(dx[i], fd, 1e-3), "K%d S%d: dinp[%d] = %.7g, finite difference %.7g", K, S, i,
                  (double)dx[i], fd);
        }
    }
}

void test_avgpool_gradients(test_ctx *t) {
    /* Hand values: 4x4 of 0..15, pool 2: means of (0,1,4,5), (2,3,6,7), ... */
    float x16[16], o4[4];
    for (int i = 0; i < 16; i++) x16[i] = (float)i;
    avgpool2d_forward(o4, x16, 1, 1, 4, 4, 2, 2, 2, 2);
    CHECK(t, o4[0] == 2.5f && o4[1] == 4.5f && o4[2] == 10.5f && o4[3] == 12.5f, "%g %g %g %g",
          (double)o4[0], (double)o4[1], (double)o4[2], (double)o4[3]);
    static const int KS[3][2] = {{2, 2}, {3, 2}, {2, 1}};
    enum { B = 2, C = 2, H = 7, W = 6, N = B * C * H * W };
    for (int k = 0; k < 3; k++) {
        int K = KS[k][0], S = KS[k][1], OH = (H - K) / S + 1, OW = (W - K) / S + 1;
        int n_out = B * C * OH * OW;
        float x[N], dx[N], out[N], R[N];
        fm_rng rng;
        fm_rng_seed(&rng, 310 + k);
        fill(x, N, &rng, -1, 1);
        fill(R, (size_t)n_out, &rng, -1, 1);
        avgpool2d_backward(dx, R, B, C, H, W, K, S, OH, OW);
        const float h = 0.125f;
        for (int i = 0; i < N; i++) {
            float keep = x[i];
            x[i] = keep + h;
            avgpool2d_forward(out, x, B, C, H, W, K, S, OH, OW);
            double up = dot_loss(out, R, (size_t)n_out);
            x[i] = keep - h;
            avgpool2d_forward(out, x, B, C, H, W, K, S, OH, OW);
            double down = dot_loss(out, R, (size_t)n_out);
            x[i] = keep;
            double fd = (up - down) / (2.0 * h);
            CHECK(t, FD_OK(dx[i], fd, 1e-5), "K%d S%d: dinp[%d] = %.7g, finite difference %.7g", K, S, i,
                  (double)dx[i], fd);
        }
    }
    /* Global average pooling: the mean of each plane, and 1/HW of the gradient to each pixel. */
    enum { GB = 2, GC = 3, HW = 5 };
    float gx[GB * GC * HW], gdx[GB * GC * HW], go[GB * GC], gR[GB * GC];
    fm_rng rng;
    fm_rng_seed(&rng, 320);
    fill(gx, GB * GC * HW, &rng, -1, 1);
    fill(gR, GB * GC, &rng, -1, 1);
    global_avgpool_forward(go, gx, GB, GC, HW);
    for (int bc = 0; bc < GB * GC; bc++) {
        double mean = 0;
        for (int i = 0; i < HW; i++) mean += gx[bc * HW + i] / (double)HW;
        CHECK_NEAR(t, go[bc], mean, 1e-6);
    }
    global_avgpool_backward(gdx, gR, GB, GC, HW);
    for (int i = 0; i < GB * GC * HW; i++) CHECK_NEAR(t, gdx[i], gR[i / HW] / HW, 1e-7);
}

/* ---------------------------------------------------------------- dropout */

void test_dropout(test_ctx *t) {
    enum { N = 20000 };
    float *x = alloc_floats(N), *y = alloc_floats(N), *mask = alloc_floats(N);
    float *y2 = alloc_floats(N), *mask2 = alloc_floats(N), *dx = alloc_floats(N);
    fm_rng rng, rng2;
    fm_rng_seed(&rng, 400);
    fill(x, N, &rng, 0.5f, 1.5f);
    fm_rng_seed(&rng, 41), fm_rng_seed(&rng2, 41);
    dropout_forward(y, mask, x, N, 0.25f, &rng);
    dropout_forward(y2, mask2, x, N, 0.25f, &rng2);
    CHECK(t, memcmp(y, y2, N * sizeof(float)) == 0 && memcmp(mask, mask2, N * sizeof(float)) == 0,
          "same seed, different masks");
    /* One draw per value: both generators end in the same state. */
    CHECK(t, fm_rng_next(&rng) == fm_rng_next(&rng2), "draw count differs");
    int kept = 0;
    double sum_x = 0, sum_y = 0;
    for (int i = 0; i < N; i++) {
        CHECK(t, mask[i] == 0.0f || mask[i] == 1.0f / 0.75f, "mask[%d] = %g", i, (double)mask[i]);
        CHECK(t, y[i] == x[i] * mask[i], "out[%d]", i);
        kept += mask[i] != 0.0f;
        sum_x += x[i], sum_y += y[i];
    }
    /* 15000 expected, binomial sd 61: 5 sd either way. */
    CHECK(t, kept > 15000 - 310 && kept < 15000 + 310, "kept %d of %d at p 0.25", kept, N);
    CHECK(t, fabs(sum_y / sum_x - 1.0) < 0.03, "inverted dropout keeps the mean: %g", sum_y / sum_x);
    /* Another seed drops other values. */
    fm_rng_seed(&rng2, 42);
    dropout_forward(y2, mask2, x, N, 0.25f, &rng2);
    CHECK(t, memcmp(mask, mask2, N * sizeof(float)) != 0, "seeds 41 and 42 give the same mask");
    /* Backward multiplies by the mask, in place too. */
    dropout_backward(dx, x, mask, N);
    for (int i = 0; i < N; i++) CHECK(t, dx[i] == x[i] * mask[i], "dinp[%d]", i);
    memcpy(y2, x, N * sizeof(float));
    dropout_backward(y2, y2, mask, N);
    CHECK(t, memcmp(y2, dx, N * sizeof(float)) == 0, "in-place backward differs");
    /* p = 0 keeps everything unscaled. */
    dropout_forward(y, mask, x, N, 0.0f, &rng);
    CHECK(t, memcmp(y, x, N * sizeof(float)) == 0, "p 0 changed the input");
    free(x), free(y), free(mask), free(y2), free(mask2), free(dx);
}

/* ---------------------------------------------------------------- batch norm */

void test_batchnorm_values(test_ctx *t) {
    /* Two samples, one channel of two pixels: x = (1, 3 | 5, 7), mean 4, biased variance 5,
     * unbiased 20/3. gamma 2, beta 0.5, eps 1e-5, momentum 0.1 from running (0, 1):
     * running_mean = 0.4, running_var = 0.9 + 0.1*20/3 = 1.5666667. */
    const float x[4] = {1, 3, 5, 7}, gamma[1] = {2}, beta[1] = {0.5f};
    float out[4], mean[1], invstd[1], rm[1] = {0}, rv[1] = {1};
    batchnorm_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, 2, 1, 2, 0.1f, 1e-5f, 0, NULL);
    CHECK_NEAR(t, mean[0], 4.0, 1e-6);
    CHECK_NEAR(t, invstd[0], 1.0 / sqrt(5.0 + 1e-5), 1e-7);
    CHECK_NEAR(t, rm[0], 0.4, 1e-7);
    CHECK_NEAR(t, rv[0], 0.9 + 0.1 * 20.0 / 3.0, 1e-6);
    for (int i = 0; i < 4; i++) CHECK_NEAR(t, out[i], 2.0 * (x[i] - 4.0) / sqrt(5.0 + 1e-5) + 0.5, 1e-5);
    /* Inference uses the running statistics. */
    batchnorm_forward_infer(out, x, gamma, beta, rm, rv, 2, 1, 2, 1e-5f, 0, NULL);
    for (int i = 0; i < 4; i++) CHECK_NEAR(t, out[i], 2.0 * (x[i] - rm[0]) / sqrt(rv[0] + 1e-5) + 0.5, 1e-5);

    /* Training output per channel: mean beta, standard deviation gamma (over B*HW values). */
    enum { B = 8, C = 3, HW = 10, N = B * C * HW };
    float xs[N], ys[N], g[C] = {0.5f, 1.0f, 3.0f}, be[C] = {-1.0f, 0.0f, 2.0f}, m[C], is[C];
    float rms[C] = {0}, rvs[C] = {1, 1, 1};
    fm_rng rng;
    fm_rng_seed(&rng, 500);
    fill(xs, N, &rng, 5, 9); /* far from zero mean */
    batchnorm_forward_train(ys, m, is, rms, rvs, xs, g, be, B, C, HW, 0.1f, 1e-5f, 0, NULL);
    for (int c = 0; c < C; c++) {
        double s = 0, sq = 0;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) s += ys[(b * C + c) * HW + i];
        }
        double mu = s / (B * HW);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) sq += pow(ys[(b * C + c) * HW + i] - mu, 2);
        }
        CHECK_NEAR(t, mu, be[c], 1e-5);
        CHECK_NEAR(t, sqrt(sq / (B * HW)), g[c], 1e-3 * g[c]);
    }
}

/* Training-mode forward as a function of x, gamma, beta: the loss the gradient check uses. */
static double bn_loss(const float *x, const float *gamma, const float *beta, const float *R, int B,
                      int C, int HW) {
    float out[256], mean[8], invstd[8], rm[8] = {0}, rv[8] = {0};
    batchnorm_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, B, C, HW, 0.1f, 1e-5f, 0, NULL);
    return dot_loss(out, R, (size_t)B * C * HW);
}

void test_batchnorm_gradients(test_ctx *t) {
    /* A convolution's output (B,C,H*W) and a dense layer's (B,C). */
    static const int shapes[2][3] = {{3, 2, 6}, {6, 4, 1}};
    for (int k = 0; k < 2; k++) {
        int B = shapes[k][0], C = shapes[k][1], HW = shapes[k][2], N = B * C * HW;
        float x[256], R[256], out[256], dx[256], gamma[8], beta[8], dgamma[8] = {0}, dbeta[8] = {0};
        float mean[8], invstd[8], rm[8] = {0}, rv[8] = {0};
        fm_rng rng;
        fm_rng_seed(&rng, 510 + k);
        fill(x, (size_t)N, &rng, -2, 2);
        fill(R, (size_t)N, &rng, -1, 1);
        fill(gamma, (size_t)C, &rng, 0.5f, 1.5f);
        fill(beta, (size_t)C, &rng, -0.5f, 0.5f);
        batchnorm_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, B, C, HW, 0.1f, 1e-5f, 0, NULL);
        batchnorm_backward(dx, dgamma, dbeta, R, NULL, x, mean, invstd, gamma, B, C, HW, NULL);
        const float h = 1e-2f;
        struct { float *v, *g; int n; const char *name; } parts[] = {
            {x, dx, N, "dinp"}, {gamma, dgamma, C, "dgamma"}, {beta, dbeta, C, "dbeta"}};
        for (int p = 0; p < 3; p++) {
            for (int i = 0; i < parts[p].n; i++) {
                float keep = parts[p].v[i];
                parts[p].v[i] = keep + h;
                double up = bn_loss(x, gamma, beta, R, B, C, HW);
                parts[p].v[i] = keep - h;
                double down = bn_loss(x, gamma, beta, R, B, C, HW);
                parts[p].v[i] = keep;
                double fd = (up - down) / (2.0 * h);
                CHECK(t, FD_OK(parts[p].g[i], fd, 2e-3), "shape %d %s[%d] = %.7g, finite difference %.7g",
                      k, parts[p].name, i, (double)parts[p].g[i], fd);
            }
        }
        /* The input gradient sums to zero per channel: shifting a channel changes nothing. */
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int b = 0; b < B; b++) {
                for (int i = 0; i < HW; i++) s += dx[(b * C + c) * HW + i];
            }
            CHECK_NEAR(t, s, 0.0, 1e-5);
        }
    }
}

/* The training forward and backward passes against the formulas summed plainly in double: a
 * batch that is not a whole number of the sums' blocks of rows (11) with rows that are not whole
 * vectors (13 values), and values far from zero mean. */
void test_batchnorm_matches_reference(test_ctx *t) {
    enum { B = 11, C = 3, HW = 13, N = B * C * HW };
    float x[N], R[N], out[N], dx[N], gamma[C], beta[C], mean[C], invstd[C], rm[C] = {0}, rv[C] = {0};
    float dgamma[C] = {0}, dbeta[C] = {0};
    fm_rng rng;
    fm_rng_seed(&rng, 540);
    fill(x, N, &rng, 3, 8);
    fill(R, N, &rng, -1, 1);
    fill(gamma, C, &rng, 0.5f, 1.5f);
    fill(beta, C, &rng, -0.5f, 0.5f);
    batchnorm_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, B, C, HW, 0.1f, 1e-5f, 0, NULL);
    batchnorm_backward(dx, dgamma, dbeta, R, NULL, x, mean, invstd, gamma, B, C, HW, NULL);
    const double n = (double)B * HW;
    for (int c = 0; c < C; c++) {
        double s = 0, sq = 0, sdy = 0, sdot = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) s += x[(b * C + c) * HW + i];
        const double mu = s / n;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) sq += pow(x[(b * C + c) * HW + i] - mu, 2);
        const double is = 1.0 / sqrt(sq / n + 1e-5);
        CHECK_NEAR(t, mean[c], mu, 1e-6 * fabs(mu));
        CHECK_NEAR(t, invstd[c], is, 1e-6 * is);
        CHECK_NEAR(t, rv[c], 0.1 * sq / (n - 1), 1e-6 * rv[c]);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) {
                const int k = (b * C + c) * HW + i;
                const double xhat = (x[k] - mu) * is;
                CHECK_NEAR(t, out[k], gamma[c] * xhat + beta[c], 1e-5);
                sdy += R[k], sdot += R[k] * xhat;
            }
        }
        CHECK_NEAR(t, dbeta[c], sdy, 1e-5);
        CHECK_NEAR(t, dgamma[c], sdot, 1e-5);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) {
                const int k = (b * C + c) * HW + i;
                const double xhat = (x[k] - mu) * is;
                CHECK_NEAR(t, dx[k], gamma[c] * is * (R[k] - sdy / n - xhat * sdot / n), 1e-5);
            }
        }
    }
}

/* Batch norm with the ReLU fused into its passes gives the bits of the two layers run one after
 * the other, in training, inference and backward, on one thread and on two (the larger shape,
 * split by channels); a quarter of the inputs sit at the mean, so some outputs are exactly 0. */
void test_batchnorm_relu_fused(test_ctx *t) {
    static const int shapes[2][3] = {{11, 3, 13}, {9, 12, 784}};
    fm_pool *pool2 = fm_pool_create(2);
    for (int k = 0; k < 2; k++) {
        const int B = shapes[k][0], C = shapes[k][1], HW = shapes[k][2];
        const size_t N = (size_t)B * C * HW;
        float *x = alloc_floats(N), *R = alloc_floats(N), *y = alloc_floats(N), *z = alloc_floats(N);
        float *zf = alloc_floats(N), *d = alloc_floats(N), *dx = alloc_floats(N), *dxf = alloc_floats(N);
        float gamma[12], beta[12], mean[2][12] = {{0}}, invstd[2][12] = {{0}}, rm[2][12] = {{0}};
        float rv[2][12] = {{0}};
        float dg[2][12] = {{0}}, db[2][12] = {{0}};
        fm_rng rng;
        fm_rng_seed(&rng, 550 + k);
        fill(x, N, &rng, -2, 2);
        for (size_t i = 0; i < N; i += 4) x[i] = 0.0f;
        fill(R, N, &rng, -1, 1);
        fill(gamma, C, &rng, 0.5f, 1.5f);
        fill(beta, C, &rng, -0.5f, 0.5f);
        fm_pool *pool = k ? pool2 : NULL;
        batchnorm_forward_train(y, mean[0], invstd[0], rm[0], rv[0], x, gamma, beta, B, C, HW, 0.1f, 1e-5f, 0, pool);
        relu_forward(z, y, N);
        batchnorm_forward_train(zf, mean[1], invstd[1], rm[1], rv[1], x, gamma, beta, B, C, HW, 0.1f,
                                1e-5f, 1, pool);
        CHECK(t, memcmp(z, zf, N * sizeof(float)) == 0 && memcmp(mean[0], mean[1], sizeof(float) * C) == 0 &&
                     memcmp(invstd[0], invstd[1], sizeof(float) * C) == 0 &&
                     memcmp(rm[0], rm[1], sizeof(float) * C) == 0 && memcmp(rv[0], rv[1], sizeof(float) * C) == 0,
              "shape %d: fused training forward differs", k);
        relu_backward(d, R, z, N);
        batchnorm_backward(dx, dg[0], db[0], d, NULL, x, mean[0], invstd[0], gamma, B, C, HW, pool);
        batchnorm_backward(dxf, dg[1], db[1], R, z, x, mean[0], invstd[0], gamma, B, C, HW, pool);
        CHECK(t, memcmp(dx, dxf, N * sizeof(float)) == 0 && memcmp(dg[0], dg[1], sizeof(float) * C) == 0 &&
                     memcmp(db[0], db[1], sizeof(float) * C) == 0,
              "shape %d: fused backward differs", k);
        batchnorm_forward_infer(y, x, gamma, beta, rm[0], rv[0], B, C, HW, 1e-5f, 0, pool);
        relu_forward(z, y, N);
        batchnorm_forward_infer(zf, x, gamma, beta, rm[0], rv[0], B, C, HW, 1e-5f, 1, pool);
        CHECK(t, memcmp(z, zf, N * sizeof(float)) == 0, "shape %d: fused inference differs", k);
        size_t zeros = 0;
        for (size_t i = 0; i < N; i++) zeros += zf[i] == 0.0f;
        CHECK(t, zeros > N / 4 && zeros < 3 * N / 4, "shape %d: %zu of %zu outputs cut", k, zeros, N);
        free(x), free(R), free(y), free(z), free(zf), free(d), free(dx), free(dxf);
    }
    fm_pool_free(pool2);
}

/* Batch norm's three passes split by channels on 2 and 3 threads (the split starts at 65,536
 * values: here 8 x 13 x 784) give the bits of one thread: statistics, running estimates, outputs
 * and all three gradients. */
void test_batchnorm_threads_bit_identical(test_ctx *t) {
    enum { B = 8, C = 13, HW = 784, N = B * C * HW };
    float *x = malloc(N * sizeof(float)), *R = malloc(N * sizeof(float));
    float *out[3], *dx[3], *inf[3];
    float gamma[C], beta[C], mean[3][C], invstd[3][C], rm[3][C], rv[3][C], dg[3][C], db[3][C];
    fm_rng rng;
    fm_rng_seed(&rng, 530);
    fill(x, N, &rng, -2, 3);
    fill(R, N, &rng, -1, 1);
    fill(gamma, C, &rng, 0.5f, 1.5f);
    fill(beta, C, &rng, -0.5f, 0.5f);
    fm_pool *pools[3] = {NULL, fm_pool_create(2), fm_pool_create(3)};
    for (int p = 0; p < 3; p++) {
        out[p] = malloc(N * sizeof(float)), dx[p] = malloc(N * sizeof(float));
        inf[p] = malloc(N * sizeof(float));
        for (int c = 0; c < C; c++) rm[p][c] = 0.1f * c, rv[p][c] = 1.0f + 0.05f * c, dg[p][c] = db[p][c] = 0.5f;
        batchnorm_forward_train(out[p], mean[p], invstd[p], rm[p], rv[p], x, gamma, beta, B, C, HW,
                                0.1f, 1e-5f, 0, pools[p]);
        batchnorm_backward(dx[p], dg[p], db[p], R, NULL, x, mean[p], invstd[p], gamma, B, C, HW, pools[p]);
        batchnorm_forward_infer(inf[p], x, gamma, beta, rm[p], rv[p], B, C, HW, 1e-5f, 0, pools[p]);
    }
    for (int p = 1; p < 3; p++) {
        int same = memcmp(out[0], out[p], N * sizeof(float)) == 0 &&
                   memcmp(dx[0], dx[p], N * sizeof(float)) == 0 &&
                   memcmp(inf[0], inf[p], N * sizeof(float)) == 0 &&
                   memcmp(mean[0], mean[p], sizeof mean[0]) == 0 &&
                   memcmp(invstd[0], invstd[p], sizeof invstd[0]) == 0 &&
                   memcmp(rm[0], rm[p], sizeof rm[0]) == 0 && memcmp(rv[0], rv[p], sizeof rv[0]) == 0 &&
                   memcmp(dg[0], dg[p], sizeof dg[0]) == 0 && memcmp(db[0], db[p], sizeof db[0]) == 0;
        CHECK(t, same, "batch norm on %d threads differs from one thread", p + 1);
    }
    for (int p = 0; p < 3; p++) free(out[p]), free(dx[p]), free(inf[p]);
    fm_pool_free(pools[1]), fm_pool_free(pools[2]);
    free(x), free(R);
}
