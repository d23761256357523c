/* conv2d.c — 2-D convolution over NCHW batches, weights in PyTorch's [OC, C, KH, KW] layout: the
 * fast path (im2col + fm_gemm, one sample at a time) and the direct-loop reference beside it. */
#include "internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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

size_t fm_conv_col_size(const fm_conv_shape *s) {
    return (size_t)s->C * s->KH * s->KW * s->OH * s->OW;
}

/* One sample: inp is (C,H,W), col is (C*KH*KW, OH*OW). Row (c,kh,kw) of col holds, for every
 * output position, the input pixel that kernel tap sees there, 0 where it falls in the padding,
 * so that the convolution becomes weight (OC, C*KH*KW) · col. */
static void im2col(float *col, const float *inp, const fm_conv_shape *s) {
    const int P = s->OH * s->OW;
    for (int c = 0; c < s->C; c++) {
        const float *plane = inp + (size_t)c * s->H * s->W;
        for (int kh = 0; kh < s->KH; kh++) {
            for (int kw = 0; kw < s->KW; kw++) {
                float *row = col + ((size_t)(c * s->KH + kh) * s->KW + kw) * P;
                for (int oh = 0; oh < s->OH; oh++) {
                    float *dst = row + (size_t)oh * s->OW;
                    int ih = oh * s->stride - s->pad_t + kh;
                    if (ih < 0 || ih >= s->H) {
                        memset(dst, 0, sizeof(float) * (size_t)s->OW);
                        continue;
                    }
                    const float *src = plane + (size_t)ih * s->W;
                    for (int ow = 0; ow < s->OW; ow++) {
                        int iw = ow * s->stride - s->pad_l + kw;
                        dst[ow] = iw >= 0 && iw < s->W ? src[iw] : 0.0f;
                    }
                }
            }
        }
    }
}

/* The adjoint of im2col: adds every entry of col back onto the input pixel it was copied from
 * (padding taps are dropped). dinp (C,H,W) must be zeroed first; pixels that several taps saw
 * receive the sum. The loop order is fixed, so the sums are reproducible. */
static void col2im_add(float *dinp, const float *col, const fm_conv_shape *s) {
    const int P = s->OH * s->OW;
    for (int c = 0; c < s->C; c++) {
        float *plane = dinp + (size_t)c * s->H * s->W;
        for (int kh = 0; kh < s->KH; kh++) {
            for (int kw = 0; kw < s->KW; kw++) {
                const float *row = col + ((size_t)(c * s->KH + kh) * s->KW + kw) * P;
                for (int oh = 0; oh < s->OH; oh++) {
                    int ih = oh * s->stride - s->pad_t + kh;
                    if (ih < 0 || ih >= s->H) continue;
                    const float *src = row + (size_t)oh * s->OW;
                    float *dst = plane + (size_t)ih * s->W;
                    for (int ow = 0; ow < s->OW; ow++) {
                        int iw = ow * s->stride - s->pad_l + kw;
                        if (iw >= 0 && iw < s->W) dst[iw] += src[ow];
                    }
                }
            }
        }
    }
}

#ifdef _OPENMP
/* The threads to use for B samples, at most one per column buffer. */
static int team_size(int threads, int n_col, int B) {
    int nth = fm_threads_resolve(threads);
    if (nth > n_col) nth = n_col;
    if (nth > B) nth = B;
    return nth > 0 ? nth : 1;
}
#endif

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* inp is (B,C,H,W), weight (OC, C*KH*KW), bias (OC), out (B,OC,OH,OW). Samples are independent,
 * so threads take whole samples, each with its own column buffer (col holds n_col of them) and a
 * single-threaded product out_b (OC, OH*OW) = weight · col_b, which writes NCHW directly. One
 * parallel region per layer rather than one per product keeps a busy machine from stalling at
 * every barrier, and any thread count gives the same bits. */
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    float *col, int n_col, int B, const fm_conv_shape *s, int threads) {
    const int P = s->OH * s->OW, CKK = s->C * s->KH * s->KW;
    const size_t col_size = fm_conv_col_size(s);
#ifdef _OPENMP
    int nth = team_size(threads, n_col, B);
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
#endif
    for (int b = 0; b < B; b++) {
        float *my_col = col + (size_t)thread_id() * col_size;
        const float *x = inp + (size_t)b * s->C * s->H * s->W;
        float *y = out + (size_t)b * s->OC * P;
        im2col(my_col, x, s);
        fm_gemm(0, 0, s->OC, P, CKK, weight, CKK, my_col, P, 0, y, P, 1);
        for (int oc = 0; oc < s->OC; oc++) {
            float *row = y + (size_t)oc * P;
            for (int p = 0; p < P; p++) row[p] += bias[oc];
        }
    }
}

size_t fm_conv_dwork_size(const fm_conv_shape *s, int B) {
    return (size_t)B * ((size_t)s->OC * s->C * s->KH * s->KW + (size_t)s->OC);
}

/* dout is (B,OC,OH,OW). Each sample's weight gradient dout_b · col_b^T and bias gradient (the
 * sums of dout_b over positions) go to its own slot of dwork (fm_conv_dwork_size floats); they
 * are then added into dweight and dbias in sample order (+=; callers zero them once per step),
 * so the sums do not depend on which thread did which sample. dinp (B,C,H,W) is overwritten with
 * col2im(weight^T · dout_b). The column buffer is rebuilt from inp rather than kept from the
 * forward pass, and reused for the input gradient once the weight gradient no longer needs it. */
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, float *col, int n_col, float *dwork,
                     int B, const fm_conv_shape *s, int threads) {
    const int P = s->OH * s->OW, CKK = s->C * s->KH * s->KW;
    const size_t in_size = (size_t)s->C * s->H * s->W, col_size = fm_conv_col_size(s);
    const size_t nw = (size_t)s->OC * CKK, slot = nw + (size_t)s->OC;
#ifdef _OPENMP
    int nth = team_size(threads, n_col, B);
#pragma omp parallel num_threads(nth) if (nth > 1)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int b = 0; b < B; b++) {
            float *my_col = col + (size_t)thread_id() * col_size;
            const float *dy = dout + (size_t)b * s->OC * P;
            float *dw = dwork + (size_t)b * slot, *db = dw + nw;
            for (int oc = 0; oc < s->OC; oc++) {
                const float *row = dy + (size_t)oc * P;
                float sum = 0.0f;
                for (int p = 0; p < P; p++) sum += row[p];
                db[oc] = sum;
            }
            im2col(my_col, inp + (size_t)b * in_size, s);
            fm_gemm(0, 1, s->OC, CKK, P, dy, P, my_col, P, 0, dw, CKK, 1);
            if (dinp) {
                fm_gemm(1, 0, CKK, P, s->OC, weight, CKK, dy, P, 0, my_col, P, 1);
                float *dx = dinp + (size_t)b * in_size;
                memset(dx, 0, sizeof(float) * in_size);
                col2im_add(dx, my_col, s);
            }
        }
        /* The sample-order reduction, split over the weights. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t i = 0; i < slot; i++) {
            float sum = 0.0f;
            for (int b = 0; b < B; b++) sum += dwork[(size_t)b * slot + i];
            if (i < nw) dweight[i] += sum;
            else dbias[i - nw] += sum;
        }
    }
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
