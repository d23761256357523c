/* pool.c — max pooling, average pooling and global average pooling over NCHW batches, each
 * forward pass with its backward pass below it. Windows never pad: an edge that does not fill a
 * whole window is dropped, as in PyTorch's and Keras's defaults. */
#include "internal.h"

#include <string.h>

/* The common 2x2 window, stride 2, with the same comparisons in the same order as the general
 * loop below, written as selects over row pointers so that the compiler vectorises them: the
 * branches there are a coin toss on real activations, and made pooling 4% of cnn's training. */
static void maxpool2x2_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H,
                               int W, int OH, int OW) {
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = inp + (size_t)bc * H * W;
        float *o = out + (size_t)bc * OH * OW;
        int32_t *a = argmax + (size_t)bc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *restrict r0 = plane + (size_t)(2 * oh) * W, *restrict r1 = r0 + W;
            float *restrict orow = o + (size_t)oh * OW;
            int32_t *restrict arow = a + (size_t)oh * OW;
            const int row_at = 2 * oh * W;
            for (int ow = 0; ow < OW; ow++) {
                float x0 = r0[2 * ow], x1 = r0[2 * ow + 1], x2 = r1[2 * ow], x3 = r1[2 * ow + 1];
                int best = row_at + 2 * ow;
                float mx = x0;
                best = x1 > mx ? row_at + 2 * ow + 1 : best, mx = x1 > mx ? x1 : mx;
                best = x2 > mx ? row_at + W + 2 * ow : best, mx = x2 > mx ? x2 : mx;
                best = x3 > mx ? row_at + W + 2 * ow + 1 : best, mx = x3 > mx ? x3 : mx;
                orow[ow] = mx;
                arow[ow] = best;
            }
        }
    }
}

/* inp is (B,C,H,W), out and argmax are (B,C,OH,OW). argmax holds the index (ih*W + iw) of each
 * window's maximum within its channel plane, the first one on ties, so backward needs no
 * comparisons. NaN inputs never win a comparison, so a window of NaNs reports its first pixel. */
static void maxpool_forward_planes(float *out, int32_t *argmax, const float *inp, int B, int C,
                                   int H, int W, int K, int S, int OH, int OW) {
    if (K == 2 && S == 2) {
        maxpool2x2_forward(out, argmax, inp, B, C, H, W, OH, OW);
        return;
    }
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = inp + (size_t)bc * H * W;
        float *o = out + (size_t)bc * OH * OW;
        int32_t *a = argmax + (size_t)bc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int best = oh * S * W + ow * S;
                float mx = plane[best];
                for (int kh = 0; kh < K; kh++) {
                    const float *row = plane + (size_t)(oh * S + kh) * W + ow * S;
                    for (int kw = 0; kw < K; kw++) {
                        if (row[kw] > mx) {
                            mx = row[kw];
                            best = (oh * S + kh) * W + ow * S + kw;
                        }
                    }
                }
                o[oh * OW + ow] = mx;
                a[oh * OW + ow] = best;
            }
        }
    }
}

/* dout is (B,C,OH,OW); dinp (B,C,H,W) is overwritten: zero except where a window's maximum was,
 * which receives that window's gradient (summed when overlapping windows share a maximum). */
static void maxpool_backward_planes(float *dinp, const float *dout, const int32_t *argmax, int B,
                                    int C, int H, int W, int OH, int OW) {
    memset(dinp, 0, sizeof(float) * (size_t)B * C * H * W);
    for (int bc = 0; bc < B * C; bc++) {
        float *plane = dinp + (size_t)bc * H * W;
        const float *d = dout + (size_t)bc * OH * OW;
        const int32_t *a = argmax + (size_t)bc * OH * OW;
        for (int i = 0; i < OH * OW; i++) plane[a[i]] += d[i];
    }
}

/* Both passes on the pool: every channel plane is independent, so task t takes planes
 * [BC*t/tasks, BC*(t+1)/tasks) and the result is the same whatever the split. */
typedef struct {
    float *out, *dinp;
    int32_t *argmax;
    const float *inp, *dout;
    const int32_t *arg;
    int BC, H, W, K, S, OH, OW, tasks;
} maxpool_job;

static void maxpool_forward_task(void *ctx, int t) {
    const maxpool_job *j = ctx;
    int p0 = j->BC * t / j->tasks, p1 = j->BC * (t + 1) / j->tasks;
    size_t in = (size_t)j->H * j->W, on = (size_t)j->OH * j->OW;
    maxpool_forward_planes(j->out + p0 * on, j->argmax + p0 * on, j->inp + p0 * in, 1, p1 - p0,
                           j->H, j->W, j->K, j->S, j->OH, j->OW);
}

static void maxpool_backward_task(void *ctx, int t) {
    const maxpool_job *j = ctx;
    int p0 = j->BC * t / j->tasks, p1 = j->BC * (t + 1) / j->tasks;
    size_t in = (size_t)j->H * j->W, on = (size_t)j->OH * j->OW;
    maxpool_backward_planes(j->dinp + p0 * in, j->dout + p0 * on, j->arg + p0 * on, 1, p1 - p0,
                            j->H, j->W, j->OH, j->OW);
}

static int plane_tasks(fm_pool *pool, int BC) {
    int n = pool ? fm_pool_threads(pool) : 1;
    return n < BC ? n : (BC > 0 ? BC : 1);
}

void maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W,
                       int K, int S, int OH, int OW, fm_pool *pool) {
    maxpool_job j = {.out = out, .argmax = argmax, .inp = inp, .BC = B * C, .H = H, .W = W,
                     .K = K, .S = S, .OH = OH, .OW = OW};
    j.tasks = plane_tasks(pool, B * C);
    fm_pool_run(j.tasks > 1 ? pool : NULL, j.tasks, maxpool_forward_task, &j);
}

void maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C,
                        int H, int W, int OH, int OW, fm_pool *pool) {
    maxpool_job j = {.dinp = dinp, .dout = dout, .arg = argmax, .BC = B * C, .H = H, .W = W,
                     .OH = OH, .OW = OW};
    j.tasks = plane_tasks(pool, B * C);
    fm_pool_run(j.tasks > 1 ? pool : NULL, j.tasks, maxpool_backward_task, &j);
}

/* inp is (B,C,H,W), out (B,C,OH,OW): the mean of each KxK window. */
void avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int K, int S,
                       int OH, int OW) {
    const float inv = 1.0f / (float)(K * K);
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = inp + (size_t)bc * H * W;
        float *o = out + (size_t)bc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                float sum = 0.0f;
                for (int kh = 0; kh < K; kh++) {
                    const float *row = plane + (size_t)(oh * S + kh) * W + ow * S;
                    for (int kw = 0; kw < K; kw++) sum += row[kw];
                }
                o[oh * OW + ow] = sum * inv;
            }
        }
    }
}

/* dinp (B,C,H,W) is overwritten: every pixel gets dout/(K*K) from each window that covers it. */
void avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int K, int S,
                        int OH, int OW) {
    const float inv = 1.0f / (float)(K * K);
    memset(dinp, 0, sizeof(float) * (size_t)B * C * H * W);
    for (int bc = 0; bc < B * C; bc++) {
        float *plane = dinp + (size_t)bc * H * W;
        const float *d = dout + (size_t)bc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                float g = d[oh * OW + ow] * inv;
                for (int kh = 0; kh < K; kh++) {
                    float *row = plane + (size_t)(oh * S + kh) * W + ow * S;
                    for (int kw = 0; kw < K; kw++) row[kw] += g;
                }
            }
        }
    }
}

/* inp is (B,C,HW), out (B,C): the mean of each channel plane. */
void global_avgpool_forward(float *out, const float *inp, int B, int C, int HW) {
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = inp + (size_t)bc * HW;
        double sum = 0.0;
        for (int i = 0; i < HW; i++) sum += plane[i];
        out[bc] = (float)(sum / HW);
    }
}

/* dinp (B,C,HW) is overwritten: each pixel gets its channel's gradient / HW. */
void global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW) {
    for (int bc = 0; bc < B * C; bc++) {
        float g = dout[bc] / (float)HW;
        float *plane = dinp + (size_t)bc * HW;
        for (int i = 0; i < HW; i++) plane[i] = g;
    }
}
