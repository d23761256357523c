/* conv2d.c — 2-D convolution over NCHW batches, weights in PyTorch's [OC, C, KH, KW] layout: the
 * fast paths (im2col + fm_gemm, or Winograd for 3x3 stride-1 layers in both passes, one sample
 * at a time; a sparse backward pass for mostly-zero gradients) and the direct-loop reference
 * beside them. */
#include "internal.h"

#include <string.h>

int fm_conv_shape_make(fm_conv_shape *s, int C, int H, int W, int OC, int K, int stride, int same) {
    memset(s, 0, sizeof *s);
    s->C = C, s->H = H, s->W = W, s->OC = OC, s->KH = K, s->KW = K, s->stride = stride;
    if (K < 1 || stride < 1) return 0;
    if (same) {
        s->OH = (H + stride - 1) / stride;
        s->OW = (W + stride - 1) / stride;
        int pad_h = (s->OH - 1) * stride + K - H, pad_w = (s->OW - 1) * stride + K - W;
        s->pad_t = pad_h > 0 ? pad_h / 2 : 0;
        s->pad_l = pad_w > 0 ? pad_w / 2 : 0;
    } else {
        if (K > H || K > W) return 0;
        s->OH = (H - K) / stride + 1;
        s->OW = (W - K) / stride + 1;
    }
    return 1;
}

/* C*KH*KW rounded up to whole 16-float vectors: the row length of the sparse backward pass's
 * columns and weights (see sparse_layout). */
static int padded_ckk(const fm_conv_shape *s) { return (s->C * s->KH * s->KW + 15) / 16 * 16; }

/* The sparse backward pass's share of a task's work space, in floats from its start: the columns
 * transposed, one row of C*KH*KW per output position, taps in (kh, kw, c) order (P, CKKp); the
 * input, then its gradient, channels last (H*W, C); the weight in the same tap order (OC, CKKp);
 * one row of input gradient columns (CKKp); then the output gradient's non-zeros listed by
 * channel (ptr OC+1, positions and values OC*P each) and by position (ptr P+1, channels and
 * values OC*P each), the int32 lists stored in the float buffer. */
typedef struct {
    size_t colT, xh, wp, tmp, oc_ptr, oc_p, oc_g, p_ptr, p_oc, p_g, end;
} sparse_layout;

static sparse_layout sparse_layout_of(const fm_conv_shape *s) {
    const size_t P = (size_t)s->OH * s->OW, OC = (size_t)s->OC, CKKp = (size_t)padded_ckk(s);
    sparse_layout l;
    l.colT = 0;
    l.xh = l.colT + P * CKKp;
    l.wp = l.xh + (size_t)s->C * s->H * s->W;
    l.tmp = l.wp + OC * CKKp;
    l.oc_ptr = l.tmp + CKKp;
    l.oc_p = l.oc_ptr + OC + 1;
    l.oc_g = l.oc_p + OC * P;
    l.p_ptr = l.oc_g + OC * P;
    l.p_oc = l.p_ptr + P + 1;
    l.p_g = l.p_oc + OC * P;
    l.end = l.p_g + OC * P;
    return l;
}

/* Whether the dense backward pass computes the input gradient by Winograd, as the convolution
 * of shape *t (3x3, stride 1, at least 8 output channels); the alternative is the product
 * weight^T · dy and col2im. */
static int input_grad_by_winograd(const fm_conv_shape *s, fm_conv_shape *t) {
    return fm_conv_shape_input_grad(t, s) && fm_winograd_fits(t);
}

/* Whether the dense backward pass computes the weight gradient by Winograd (in the slots as
 * dU (16, C, OC), turned into kernels by the reduction) rather than as col · dy^T. */
static int weight_grad_by_winograd(const fm_conv_shape *s) { return fm_winograd_fits(s); }

/* One task's work space, for the dense path: the columns (C*KH*KW, OH*OW), or the Winograd
 * weight gradient's work space, whichever is larger; then room for one sample's output gradient
 * transposed (OH*OW, OC), then for the weight transposed (C*KH*KW, OC), then, when the input
 * gradient goes by Winograd, its work space (which keeps its transformed weights for all the
 * task's samples); or the sparse path's (sparse_layout), whichever is larger. */
static size_t cols_size(const fm_conv_shape *s) {
    size_t cols = (size_t)s->C * s->KH * s->KW * s->OH * s->OW;
    size_t dw = weight_grad_by_winograd(s) ? fm_winograd_dw_ws_size(s) : 0;
    return cols > dw ? cols : dw;
}

static size_t dense_size(const fm_conv_shape *s) {
    size_t CKK = (size_t)s->C * s->KH * s->KW;
    return cols_size(s) + (size_t)s->OC * s->OH * s->OW + CKK * (size_t)s->OC;
}

size_t fm_conv_col_size(const fm_conv_shape *s) {
    fm_conv_shape t;
    size_t dense = dense_size(s) + (input_grad_by_winograd(s, &t) ? fm_winograd_ws_size(&t) : 0);
    size_t sparse = sparse_layout_of(s).end;
    size_t winograd = fm_winograd_fits(s) ? fm_winograd_ws_size(s) : 0;
    size_t most = dense > sparse ? dense : sparse;
    return most > winograd ? most : winograd;
}

/* The output columns [*ow0, *ow1) whose input column ow*stride - pad_l + kw falls inside the
 * image (the rest see padding). */
static void valid_cols(const fm_conv_shape *s, int kw, int *ow0, int *ow1) {
    int lo = s->pad_l - kw, hi = s->W + s->pad_l - kw; /* ow*stride must be in [lo, hi) */
    int a = lo > 0 ? (lo + s->stride - 1) / s->stride : 0;
    int b = hi > 0 ? (hi + s->stride - 1) / s->stride : 0;
    *ow0 = a < s->OW ? a : s->OW;
    *ow1 = b < s->OW ? b : s->OW;
    if (*ow1 < *ow0) *ow1 = *ow0;
}

/* One sample: inp is (C,H,W), col is (C*KH*KW, OH*OW). Row (c,kh,kw) of col holds, for every
 * output position, the input pixel that kernel tap sees there, 0 where it falls in the padding,
 * so that the convolution becomes weight (OC, C*KH*KW) · col. The valid span of each row is
 * found once per tap, so the inner loop is a plain (strided) copy. */
static void im2col(float *col, const float *inp, const fm_conv_shape *s) {
    const int P = s->OH * s->OW, st = s->stride;
    for (int c = 0; c < s->C; c++) {
        const float *plane = inp + (size_t)c * s->H * s->W;
        for (int kh = 0; kh < s->KH; kh++) {
            for (int kw = 0; kw < s->KW; kw++) {
                float *row = col + ((size_t)(c * s->KH + kh) * s->KW + kw) * P;
                int ow0, ow1;
                valid_cols(s, kw, &ow0, &ow1);
                for (int oh = 0; oh < s->OH; oh++) {
                    float *dst = row + (size_t)oh * s->OW;
                    int ih = oh * st - s->pad_t + kh;
                    if (ih < 0 || ih >= s->H) {
                        memset(dst, 0, sizeof(float) * (size_t)s->OW);
                        continue;
                    }
                    const float *src = plane + (size_t)ih * s->W - s->pad_l + kw;
                    for (int ow = 0; ow < ow0; ow++) dst[ow] = 0.0f;
                    if (st == 1) memcpy(dst + ow0, src + ow0, sizeof(float) * (size_t)(ow1 - ow0));
                    else for (int ow = ow0; ow < ow1; ow++) dst[ow] = src[ow * st];
                    for (int ow = ow1; ow < s->OW; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

/* acc (n) += each of the n_rows rows of rows (n_rows, n), row after row: restrict lets the
 * compiler add n lanes at a time. */
static void add_rows(float *restrict acc, const float *restrict rows, int n_rows, int n) {
    for (int r = 0; r < n_rows; r++) {
        for (int i = 0; i < n; i++) acc[i] += rows[(size_t)r * n + i];
    }
}

/* The adjoint of im2col: adds every entry of col back onto the input pixel it was copied from
 * (padding taps are dropped). dinp (C,H,W) must be zeroed first; pixels that several taps saw
 * receive the sum. The loop order is fixed, so the sums are reproducible; the valid span of a
 * row is found once per tap, so the inner loop is a plain (vectorised) add. */
static void col2im_add(float *dinp, const float *col, const fm_conv_shape *s) {
    const int P = s->OH * s->OW, st = s->stride;
    for (int c = 0; c < s->C; c++) {
        float *plane = dinp + (size_t)c * s->H * s->W;
        for (int kh = 0; kh < s->KH; kh++) {
            for (int kw = 0; kw < s->KW; kw++) {
                const float *row = col + ((size_t)(c * s->KH + kh) * s->KW + kw) * P;
                int ow0, ow1;
                valid_cols(s, kw, &ow0, &ow1);
                for (int oh = 0; oh < s->OH; oh++) {
                    int ih = oh * st - s->pad_t + kh;
                    if (ih < 0 || ih >= s->H) continue;
                    const float *src = row + (size_t)oh * s->OW;
                    float *dst = plane + (size_t)ih * s->W - s->pad_l + kw;
                    if (st == 1) {
                        add_rows(dst + ow0, src + ow0, 1, ow1 - ow0);
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) dst[ow * st] += src[ow];
                    }
                }
            }
        }
    }
}

/* dyT (P, OC) = dy (OC, P)^T (also used for the weight and to move samples between channels
 * first and last), 16x16 blocks at a time in registers. */
static void transpose(float *dyT, const float *dy, int OC, int P) {
    fm_transpose(dyT, (size_t)OC, dy, (size_t)P, OC, P);
}

/* How many tasks a layer splits its batch into: one per thread, each with its own column
 * buffer (col holds n_col of them), never more tasks than samples. */
static int task_count(fm_pool *pool, int n_col, int B) {
    int n = pool ? fm_pool_threads(pool) : 1;
    if (n > n_col) n = n_col;
    if (n > B) n = B;
    return n > 0 ? n : 1;
}

typedef struct {
    float *out, *col, *dinp, *dweight, *dbias, *dwork;
    const float *inp, *weight, *bias, *dout;
    int B, tasks, sparse;
    const fm_conv_shape *s;
} conv_job;

/* Task t takes samples [B*t/tasks, B*(t+1)/tasks) with column buffer t: the buffer belongs to the
 * task, not to whichever thread claims it, and every sample's arithmetic is the same whatever the
 * split, so any thread count gives the same bits. */
static void conv_forward_task(void *ctx, int t) {
    const conv_job *j = ctx;
    const fm_conv_shape *s = j->s;
    const int P = s->OH * s->OW, CKK = s->C * s->KH * s->KW;
    float *my_col = j->col + (size_t)t * fm_conv_col_size(s);
    const int b0 = j->B * t / j->tasks, b1 = j->B * (t + 1) / j->tasks;
    if (fm_winograd_fits(s)) {
        /* 3x3, stride 1: 16 multiplies per 2x2 outputs and channel pair instead of 36 */
        if (b0 < b1) fm_winograd_prepare(my_col, j->weight, s);
        for (int b = b0; b < b1; b++) {
            fm_winograd_sample(j->out + (size_t)b * s->OC * P, j->inp + (size_t)b * s->C * s->H * s->W,
                               0, j->bias, my_col, s);
        }
        return;
    }
    for (int b = b0; b < b1; b++) {
        const float *x = j->inp + (size_t)b * s->C * s->H * s->W;
        float *y = j->out + (size_t)b * s->OC * P;
        im2col(my_col, x, s);
        fm_gemm_ex(fm_simd_best(), 0, 0, s->OC, P, CKK, j->weight, CKK, my_col, P, 0, y, P, NULL, NULL);
        for (int oc = 0; oc < s->OC; oc++) {
            float *row = y + (size_t)oc * P;
            for (int p = 0; p < P; p++) row[p] += j->bias[oc];
        }
    }
}

/* inp is (B,C,H,W), weight (OC, C*KH*KW), bias (OC), out (B,OC,OH,OW). Samples are independent,
 * so tasks take whole samples, each a single-threaded product out_b (OC, OH*OW) = weight · col_b
 * that writes NCHW directly: one pool job per layer rather than one per product. 3x3 stride-1
 * layers with 8 or more input channels go through Winograd's F(2x2, 3x3) instead
 * (src/kernels/winograd.c): on cnn's second layer 2.25x fewer multiplies, a tenth of the
 * training time. */
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    float *col, int n_col, int B, const fm_conv_shape *s, fm_pool *pool) {
    conv_job j = {.out = out, .col = col, .inp = inp, .weight = weight, .bias = bias, .B = B, .s = s};
    j.tasks = task_count(pool, n_col, B);
    fm_pool_run(pool, j.tasks, conv_forward_task, &j);
}

/* Samples are summed in fixed groups of GROUP consecutive ones, each group in its own slot of
 * dwork: the boundaries depend on the batch alone, never on the thread count. One slot per
 * sample (as before) made the final reduction read B slots, 75 MB per layer and step for
 * cnn-best's widest layer at batch 128; groups cut that by GROUP. */
#define GROUP 4

static int group_count(int B) { return (B + GROUP - 1) / GROUP; }

/* A group's slot: its weight gradient, as dw^T (CKK, OC) on the dense path (as dU (16, C, OC)
 * when it goes by Winograd) or as (OC, CKKp) in (kh, kw, c) tap order on the sparse one, then
 * its bias gradient (OC); as long as the longest of these the shape can take. */
static size_t slot_size(const fm_conv_shape *s) {
    size_t dense = (size_t)s->OC * s->C * s->KH * s->KW, sparse = (size_t)s->OC * padded_ckk(s);
    size_t wg = weight_grad_by_winograd(s) ? 16 * (size_t)s->OC * s->C : 0, most = dense > sparse ? dense : sparse;
    return (most > wg ? most : wg) + (size_t)s->OC;
}

size_t fm_conv_dwork_size(const fm_conv_shape *s, int B) {
    return (size_t)group_count(B) * slot_size(s);
}

/* The sparse path, for output gradients that are mostly zeros (a convolution followed by ReLU
 * and max pooling passes back at most a quarter of its outputs' gradients, fewer after dropout
 * and ReLU). Both backward products become sums over the non-zeros alone: for each output
 * channel, dw[oc, :] = sum over its non-zero positions p of dy[oc,p] * colT[p, :]; for each
 * position, dcol[p, :] = sum over its non-zero channels of dy[oc,p] * weight[oc, :], added onto
 * the input taps it came from. With channels last, every one of those rows is contiguous. On
 * the cnn preset's second layer (about 15% non-zeros) the two products take a fifth of the dense
 * ones' time. The dense path is kept for denser gradients: below about 1/3 of zeros each
 * non-zero costs more than its share of the dense kernel. */
#define SPARSE_MAX_DENSITY 0.35

/* colT (P, CKKp) of one sample from its input channels last, xh (H*W, C): row p holds the C
 * values under each tap (kh, kw) in turn, 0 for taps in the padding and for the row's tail. */
static void im2row(float *colT, const float *xh, const fm_conv_shape *s) {
    const int C = s->C, CKK = C * s->KH * s->KW, CKKp = padded_ckk(s);
    for (int oh = 0; oh < s->OH; oh++) {
        for (int ow = 0; ow < s->OW; ow++) {
            float *row = colT + ((size_t)oh * s->OW + ow) * CKKp;
            const int iw0 = ow * s->stride - s->pad_l, inside = iw0 >= 0 && iw0 + s->KW <= s->W;
            for (int kh = 0; kh < s->KH; kh++) {
                int ih = oh * s->stride - s->pad_t + kh;
                if (inside && ih >= 0 && ih < s->H) {
                    /* the KW taps of a kernel row are neighbouring pixels: KW*C floats in xh */
                    const float *src = xh + ((size_t)ih * s->W + iw0) * C;
                    float *dst = row + kh * s->KW * C;
                    for (int k = 0; k < s->KW * C; k++) dst[k] = src[k];
                    continue;
                }
                for (int kw = 0; kw < s->KW; kw++) {
                    int iw = iw0 + kw;
                    float *dst = row + (kh * s->KW + kw) * C;
                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) {
                        for (int c = 0; c < C; c++) dst[c] = 0.0f;
                    } else {
                        const float *src = xh + ((size_t)ih * s->W + iw) * C;
                        for (int c = 0; c < C; c++) dst[c] = src[c];
                    }
                }
            }
            for (int k = CKK; k < CKKp; k++) row[k] = 0.0f;
        }
    }
}

/* One sample's gradients on the sparse path: its weight gradient into dw (OC, CKKp) and bias
 * gradient into db (overwritten for a group's first sample, else added to), its input gradient
 * (when dx is not NULL) overwriting dx (C,H,W). ws is the task's work space (sparse_layout),
 * the weight already in it in tap order. */
static void sparse_sample(float *dx, float *dw, float *db, int first, const float *dy,
                          const float *x, float *ws, const fm_conv_shape *s) {
    const sparse_layout l = sparse_layout_of(s);
    const int P = s->OH * s->OW, OC = s->OC, C = s->C, HW = s->H * s->W, CKKp = padded_ckk(s);
    float *colT = ws + l.colT, *xh = ws + l.xh, *tmp = ws + l.tmp;
    const float *wp = ws + l.wp;
    int32_t *oc_ptr = (int32_t *)(ws + l.oc_ptr), *oc_p = (int32_t *)(ws + l.oc_p);
    float *oc_g = ws + l.oc_g;
    /* the non-zeros channel by channel, positions ascending: a bit mask of 32 positions at a
     * time (compares that vectorise), then one step per set bit rather than per position */
    int n = 0;
    for (int oc = 0; oc < OC; oc++) {
        const float *row = dy + (size_t)oc * P;
        oc_ptr[oc] = n;
        float sum = 0.0f;
        for (int p0 = 0; p0 < P; p0 += 32) {
            uint32_t bits = 0;
            if (P - p0 >= 32) {
                for (int i = 0; i < 32; i++) bits |= (uint32_t)(row[p0 + i] != 0.0f) << i;
            } else {
                for (int i = 0; i < P - p0; i++) bits |= (uint32_t)(row[p0 + i] != 0.0f) << i;
            }
            for (; bits; bits &= bits - 1) {
                int p = p0 + __builtin_ctz(bits);
                oc_p[n] = p, oc_g[n] = row[p], n++;
            }
        }
        for (int t = oc_ptr[oc]; t < n; t++) sum += oc_g[t];
        db[oc] = first ? sum : db[oc] + sum;
    }
    oc_ptr[OC] = n;
    transpose(xh, x, C, HW);
    /* Without padding, and with a kernel row's taps a whole number of vectors (KW*C floats, 96
     * on cnn's second layer), the columns need not be built: kernel row kh of position p's
     * column is a run of xh itself, at p's top-left input pixel plus kh rows, so the sums read
     * xh directly, one kernel row at a time. The same chains of multiply-adds either way. */
    const int direct = s->pad_t == 0 && s->pad_l == 0 && s->KW * C % 16 == 0; /* (then CKKp = CKK) */
    int32_t *p_ptr = (int32_t *)(ws + l.p_ptr), *p_oc = (int32_t *)(ws + l.p_oc);
    if (direct) {
        int32_t *pix = p_oc; /* free until the lists by position: the pixels of oc_p */
        for (int t = 0; t < n; t++) {
            int p = oc_p[t];
            pix[t] = (p / s->OW) * s->stride * s->W + p % s->OW * s->stride;
        }
        const int run = s->KW * C;
        for (int oc = 0; oc < OC; oc++) {
            for (int kh = 0; kh < s->KH; kh++) {
                fm_gather_axpy(dw + (size_t)oc * CKKp + kh * run, run, !first, xh + (size_t)kh * s->W * C,
                               (size_t)C, pix + oc_ptr[oc], oc_g + oc_ptr[oc], oc_ptr[oc + 1] - oc_ptr[oc]);
            }
        }
    } else {
        im2row(colT, xh, s);
        for (int oc = 0; oc < OC; oc++) {
            fm_gather_axpy(dw + (size_t)oc * CKKp, CKKp, !first, colT, (size_t)CKKp, oc_p + oc_ptr[oc],
                           oc_g + oc_ptr[oc], oc_ptr[oc + 1] - oc_ptr[oc]);
        }
    }
    if (!dx) return;
    /* the same non-zeros position by position, channels ascending (a counting sort) */
    float *p_g = ws + l.p_g;
    for (int p = 0; p <= P; p++) p_ptr[p] = 0;
    for (int t = 0; t < n; t++) p_ptr[oc_p[t] + 1]++;
    for (int p = 0; p < P; p++) p_ptr[p + 1] += p_ptr[p];
    for (int oc = 0; oc < OC; oc++) {
        for (int t = oc_ptr[oc]; t < oc_ptr[oc + 1]; t++) {
            int at = p_ptr[oc_p[t]]++;
            p_oc[at] = oc, p_g[at] = oc_g[t];
        }
    }
    for (int p = P; p > 0; p--) p_ptr[p] = p_ptr[p - 1]; /* the fill moved each start to the end */
    p_ptr[0] = 0;
    /* xh is free again: the input gradient channels last, then back to (C,H,W) */
    float *dxh = xh;
    memset(dxh, 0, sizeof(float) * (size_t)C * HW);
    for (int p = 0; p < P; p++) {
        int cnt = p_ptr[p + 1] - p_ptr[p];
        if (cnt == 0) continue;
        if (direct) {
            /* each kernel row's sum goes straight onto its run of the input gradient */
            const int run = s->KW * C;
            size_t pix = (size_t)(p / s->OW) * s->stride * s->W + (size_t)(p % s->OW) * s->stride;
            for (int kh = 0; kh < s->KH; kh++) {
                fm_gather_axpy(dxh + (pix + (size_t)kh * s->W) * C, run, 1, wp + kh * run, (size_t)CKKp,
                               p_oc + p_ptr[p], p_g + p_ptr[p], cnt);
            }
            continue;
        }
        fm_gather_axpy(tmp, CKKp, 0, wp, (size_t)CKKp, p_oc + p_ptr[p], p_g + p_ptr[p], cnt);
        int oh = p / s->OW, ow = p % s->OW;
        const int iw0 = ow * s->stride - s->pad_l, inside = iw0 >= 0 && iw0 + s->KW <= s->W;
        for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride - s->pad_t + kh;
            if (ih < 0 || ih >= s->H) continue;
            if (inside) { /* a kernel row's taps in one run, as in im2row */
                add_rows(dxh + ((size_t)ih * s->W + iw0) * C, tmp + kh * s->KW * C, 1, s->KW * C);
                continue;
            }
            for (int kw = 0; kw < s->KW; kw++) {
                int iw = ow * s->stride - s->pad_l + kw;
                if (iw < 0 || iw >= s->W) continue;
                add_rows(dxh + ((size_t)ih * s->W + iw) * C, tmp + (kh * s->KW + kw) * C, 1, C);
            }
        }
    }
    transpose(dx, dxh, HW, C);
}

static void conv_backward_task(void *ctx, int t) {
    const conv_job *j = ctx;
    const fm_conv_shape *s = j->s;
    const int P = s->OH * s->OW, CKK = s->C * s->KH * s->KW;
    const size_t in_size = (size_t)s->C * s->H * s->W;
    const size_t slot = slot_size(s), nw = slot - (size_t)s->OC;
    float *my_col = j->col + (size_t)t * fm_conv_col_size(s);
    const int n_groups = group_count(j->B);
    const int b0 = n_groups * t / j->tasks * GROUP, b1e = n_groups * (t + 1) / j->tasks * GROUP;
    const int b1 = b1e < j->B ? b1e : j->B;
    if (j->sparse) {
        /* the weight in tap order (OC, CKKp), once per task */
        float *wp = my_col + sparse_layout_of(s).wp;
        const int C = s->C, KK = s->KH * s->KW, CKKp = padded_ckk(s);
        if (j->dinp && b0 < b1) {
            for (int oc = 0; oc < s->OC; oc++) {
                float *row = wp + (size_t)oc * CKKp;
                for (int c = 0; c < C; c++) {
                    for (int k = 0; k < KK; k++) row[k * C + c] = j->weight[((size_t)oc * C + c) * KK + k];
                }
                for (int k = CKK; k < CKKp; k++) row[k] = 0.0f;
            }
        }
        for (int b = b0; b < b1; b++) {
            float *dw = j->dwork + (size_t)(b / GROUP) * slot;
            sparse_sample(j->dinp ? j->dinp + (size_t)b * in_size : NULL, dw, dw + nw, b % GROUP == 0,
                          j->dout + (size_t)b * s->OC * P, j->inp + (size_t)b * in_size, my_col, s);
        }
        return;
    }
    /* The input gradient by Winograd (2.25x fewer multiplies, no col2im), its weights
     * transformed once per task; or weight^T (CKK, OC), once per task: the input gradient
     * weight^T · dy is then a plain product; as a transposed one it went through the kernel's
     * zero listing (for batch-sized K), which never skips anything in a weight and cost 5% of
     * cnn-best's time. */
    fm_conv_shape t_dx;
    const int dx_winograd = input_grad_by_winograd(s, &t_dx);
    float *dyT = my_col + cols_size(s), *weightT = dyT + (size_t)s->OC * P, *ws_dx = my_col + dense_size(s);
    const int dw_winograd = weight_grad_by_winograd(s);
    if (j->dinp && b0 < b1) {
        if (dx_winograd) fm_winograd_prepare_flipped(ws_dx, j->weight, &t_dx);
        else transpose(weightT, j->weight, s->OC, CKK);
    }
    for (int b = b0; b < b1; b++) {
        const float *dy = j->dout + (size_t)b * s->OC * P;
        const int first = b % GROUP == 0; /* the group's first sample overwrites its slot */
        float *dw = j->dwork + (size_t)(b / GROUP) * slot, *db = dw + nw;
        transpose(dyT, dy, s->OC, P);
        /* the bias gradient from dyT's rows: one chain of adds per channel, as before, but the
         * channels side by side in vectors rather than one latency-bound chain after another */
        if (first) {
            for (int oc = 0; oc < s->OC; oc++) db[oc] = 0.0f;
        }
        add_rows(db, dyT, P, s->OC);
        if (dw_winograd) {
            fm_winograd_dw_sample(dw, !first, j->inp + (size_t)b * in_size, dyT, my_col, s);
        } else {
            /* dw^T (CKK, OC) = col (CKK, P) · dy^T (P, OC): the broadcast kernel's layout, twice
             * as fast as dy · col^T by dot products, for the price of transposing dy */
            im2col(my_col, j->inp + (size_t)b * in_size, s);
            fm_gemm_ex(fm_simd_best(), 0, 0, CKK, s->OC, P, my_col, P, dyT, s->OC, !first, dw, s->OC,
                       NULL, NULL);
        }
        if (j->dinp && dx_winograd) {
            /* from dyT, the output gradient already channels last */
            fm_winograd_sample(j->dinp + (size_t)b * in_size, dyT, 1, NULL, ws_dx, &t_dx);
        } else if (j->dinp) {
            /* dcol (CKK, P) = weight^T · dy, in the buffer col no longer needs */
            fm_gemm_ex(fm_simd_best(), 0, 0, CKK, P, s->OC, weightT, s->OC, dy, P, 0, my_col, P, NULL,
                       NULL);
            float *dx = j->dinp + (size_t)b * in_size;
            memset(dx, 0, sizeof(float) * in_size);
            col2im_add(dx, my_col, s);
        }
    }
}

/* sums[k] = the groups' entries at offset + k (k < n) added in group order, from zero: the
 * groups' rows side by side, so the adds run in vectors and read each slot's row as one stream
 * (one entry at a time read a float per group, each from its own page: 8% of cnn-best's time);
 * each entry's chain of adds is the same as before, so are the bits. */
#define REDUCE_BLOCK 128
static void sum_groups(float *sums, const float *dwork, size_t slot, int groups, size_t offset, int n) {
    for (int k = 0; k < n; k++) sums[k] = 0.0f;
    for (int g = 0; g < groups; g++) {
        const float *row = dwork + (size_t)g * slot + offset;
        for (int k = 0; k < n; k++) sums[k] += row[k];
    }
}

static int block_len(size_t from, size_t end) {
    return end - from < REDUCE_BLOCK ? (int)(end - from) : REDUCE_BLOCK;
}

/* The group-order reduction of the groups' gradients, split over the weights. */
static void conv_reduce_task(void *ctx, int t) {
    const conv_job *j = ctx;
    const fm_conv_shape *s = j->s;
    const size_t slot = slot_size(s), nw = slot - (size_t)s->OC;
    const size_t OC = (size_t)s->OC, CKK = (size_t)s->C * s->KH * s->KW, KK = (size_t)s->KH * s->KW;
    const size_t C = (size_t)s->C, CKKp = (size_t)padded_ckk(s);
    const int groups = group_count(j->B);
    float sums[16][REDUCE_BLOCK];
    if (!j->sparse && weight_grad_by_winograd(s)) {
        /* dU (16, C, OC): task t takes channel pairs (and then biases), each pair's 16 values
         * summed over groups, then turned into its kernel's gradient */
        const size_t pairs = C * OC, units = pairs + OC;
        const size_t lo = units * (size_t)t / (size_t)j->tasks, hi = units * (size_t)(t + 1) / (size_t)j->tasks;
        const size_t pairs_end = hi < pairs ? hi : pairs;
        for (size_t u0 = lo; u0 < pairs_end; u0 += REDUCE_BLOCK) {
            const int n = block_len(u0, pairs_end);
            for (int xi = 0; xi < 16; xi++) sum_groups(sums[xi], j->dwork, slot, groups, (size_t)xi * pairs + u0, n);
            for (int k = 0; k < n; k++) {
                const size_t u = u0 + (size_t)k; /* u = c * OC + oc */
                float du[16], dg[9];
                for (int xi = 0; xi < 16; xi++) du[xi] = sums[xi][k];
                fm_winograd_kernel_grad(dg, du);
                float *to = j->dweight + ((u % OC) * C + u / OC) * 9;
                for (int q = 0; q < 9; q++) to[q] += dg[q];
            }
        }
        for (size_t u0 = lo > pairs ? lo : pairs; u0 < hi; u0 += REDUCE_BLOCK) {
            const int n = block_len(u0, hi);
            sum_groups(sums[0], j->dwork, slot, groups, nw + (u0 - pairs), n);
            for (int k = 0; k < n; k++) j->dbias[u0 - pairs + (size_t)k] += sums[0][k];
        }
        return;
    }
    const size_t lo = slot * (size_t)t / (size_t)j->tasks, hi = slot * (size_t)(t + 1) / (size_t)j->tasks;
    for (size_t i0 = lo; i0 < hi; i0 += REDUCE_BLOCK) {
        const int n = block_len(i0, hi);
        sum_groups(sums[0], j->dwork, slot, groups, i0, n);
        for (int k = 0; k < n; k++) {
            const size_t i = i0 + (size_t)k;
            size_t to; /* where slot entry i goes in dweight (OC, C, KH, KW) */
            if (i >= nw) {
                j->dbias[i - nw] += sums[0][k];
                continue;
            }
            if (j->sparse) {
                size_t oc = i / CKKp, q = i % CKKp; /* (OC, CKKp), q = tap * C + c */
                if (oc >= OC || q >= CKK) continue; /* (slots may be longer, for Winograd's dU) */
                to = (oc * C + q % C) * KK + q / C;
            } else {
                if (i >= OC * CKK) continue;
                to = (i % OC) * CKK + i / OC; /* dw^T (CKK, OC) */
            }
            j->dweight[to] += sums[0][k];
        }
    }
}

/* dout is (B,OC,OH,OW). Each sample's weight gradient, transposed (col_b · dout_b^T, or in
 * Winograd's domain for 3x3 stride-1 layers, weight_grad_by_winograd), and bias
 * gradient (the sums of dout_b over positions) are added, in sample order, into its group's slot
 * of dwork (fm_conv_dwork_size floats); the slots are then added into dweight and dbias in group
 * order (+=; callers zero them once per step), so the sums do not depend on which thread did
 * which group. dinp (B,C,H,W) is
 * overwritten with col2im(weight^T · dout_b), or for 3x3 stride-1 layers with the same sums by
 * Winograd (input_grad_by_winograd). The column buffer is rebuilt from inp rather than kept from
 * the forward pass, and reused for the input gradient once the weight gradient no longer needs it.
 * Why per sample and not one product over the batch (K = B*OH*OW): on the cnn preset's second
 * layer a sample's products (64x576x288 and the like) already run at the kernel's peak, about
 * 110 GFLOP/s on one core, while the batch-wide ones measured 40-73 (their panels leave the
 * cache); the reduction over groups costs B/GROUP*OC*CKK adds (B/GROUP*16*OC*C by Winograd), a
 * few percent of the products, memory-bound (sum_groups). */
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, float *col, int n_col, float *dwork,
                     int B, const fm_conv_shape *s, fm_pool *pool) {
    conv_job j = {.col = col, .dinp = dinp, .dweight = dweight, .dbias = dbias, .dwork = dwork,
                  .inp = inp, .weight = weight, .dout = dout, .B = B, .s = s};
    /* The path hangs on the whole batch's gradient, so every sample of a step takes the same
     * one whatever the thread count (a vectorised count, about 1% of the dense products). */
    size_t n_out = (size_t)B * s->OC * s->OH * s->OW, nonzero = 0;
    for (size_t i = 0; i < n_out; i++) nonzero += dout[i] != 0.0f;
    j.sparse = (double)nonzero <= SPARSE_MAX_DENSITY * (double)n_out;
    j.tasks = task_count(pool, n_col, group_count(B)); /* tasks take whole groups */
    fm_pool_run(pool, j.tasks, conv_backward_task, &j);
    j.tasks = pool ? fm_pool_threads(pool) : 1;
    fm_pool_run(pool, j.tasks, conv_reduce_task, &j);
}

/* ---------------------------------------------------------------- reference */

/* The definition, loop by loop: out[b,oc,oh,ow] = bias[oc] + sum over c, kh, kw of
 * weight[oc,c,kh,kw] * inp[b,c, oh*stride - pad_t + kh, ow*stride - pad_l + kw] (0 outside). */
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                        int B, const fm_conv_shape *s) {
    for (int b = 0; b < B; b++) {
        for (int oc = 0; oc < s->OC; oc++) {
            for (int oh = 0; oh < s->OH; oh++) {
                for (int ow = 0; ow < s->OW; ow++) {
                    double sum = bias[oc];
                    for (int c = 0; c < s->C; c++) {
                        for (int kh = 0; kh < s->KH; kh++) {
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride - s->pad_t + kh;
                                int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                sum += (double)weight[((oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                       inp[((size_t)(b * s->C + c) * s->H + ih) * s->W + iw];
                            }
                        }
                    }
                    out[((size_t)(b * s->OC + oc) * s->OH + oh) * s->OW + ow] = (float)sum;
                }
            }
        }
    }
}

/* The same sums read backwards: every product weight*inp in the forward pass sends dout to both
 * factors' gradients. Accumulates into dweight and dbias, overwrites dinp (when not NULL). */
void conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, const fm_conv_shape *s) {
    if (dinp) memset(dinp, 0, sizeof(float) * (size_t)B * s->C * s->H * s->W);
    for (int b = 0; b < B; b++) {
        for (int oc = 0; oc < s->OC; oc++) {
            for (int oh = 0; oh < s->OH; oh++) {
                for (int ow = 0; ow < s->OW; ow++) {
                    float g = dout[((size_t)(b * s->OC + oc) * s->OH + oh) * s->OW + ow];
                    dbias[oc] += g;
                    for (int c = 0; c < s->C; c++) {
                        for (int kh = 0; kh < s->KH; kh++) {
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride - s->pad_t + kh;
                                int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                size_t wi = ((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw;
                                size_t xi = ((size_t)(b * s->C + c) * s->H + ih) * s->W + iw;
                                dweight[wi] += g * inp[xi];
                                if (dinp) dinp[xi] += g * weight[wi];
                            }
                        }
                    }
                }
            }
        }
    }
}
