/* internal.h — what the library's files share and the public header does not show: error
 * helpers, the layer table, the model's layout and the kernels' entry points. */
#ifndef FMNIST_INTERNAL_H
#define FMNIST_INTERNAL_H

#include "fmnist.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(__GNUC__)
#define FM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FM_PRINTF(a, b)
#endif

/* For element-wise loops that the compiler vectorises: GCC compiles them for AVX-512, AVX2 and
 * the baseline and picks the best when the program starts, so a build without -march loses
 * nothing. Each element sees the same operations in every clone (no contraction under -std=c11),
 * so all clones give the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_VECTOR_CLONES
#endif

/* Fills err (when not NULL) and returns s, so that `return fm_fail(err, ...)` reads naturally. */
fm_status fm_fail(fm_error *err, fm_status s, const char *fmt, ...) FM_PRINTF(3, 4);

/* n floats (zeroed when zero is set) at a 64-byte boundary, released with free(); NULL when out
 * of memory. For the arrays the kernels stream through with full vectors (parameters, their
 * gradients and optimizer moments, activations): unaligned, every AVX-512 load and store there
 * spans two cache lines, which made Adam's pass ~2x slower, and two threads writing neighbouring
 * halves of a row would share the line at the seam. */
void *fm_alloc_floats(size_t n, int zero);

/* out (n) = n draws of fm_rng_uniform, the same values in the same order, the generator left
 * where they leave it. */
void fm_rng_uniform_fill(fm_rng *rng, float *out, size_t n);

/* Asks the CPU to start loading the pixels of count images at the given rows, so that
 * fm_scale_images finds them in cache a step later: a shuffled batch is 32 scattered images of
 * a 47 MB set, and waiting for them from memory took ~7 us of a ~200 us training step. */
void fm_prefetch_images(const fm_dataset *ds, const int32_t *rows, size_t count);

/* fm_scale_images for pixels [p0, p1) of each image only (the rest of out is left alone). */
void fm_scale_pixels(float *out, const fm_dataset *ds, const int32_t *rows, size_t count,
                     fm_scaling sc, size_t p0, size_t p1);

/* ---------------------------------------------------------------- floating-point mode */

/* Subnormal numbers flushed to zero, as TensorFlow does on CPUs: Adam's moments for weights
 * that never get a gradient (the pixels that are always 0) decay through the subnormal range,
 * where every multiply and square root of the fused update took microcode assists, and mlp's
 * backward pass took 127 us a step instead of 87 on one thread. Entry points that compute
 * (fm_fit, fm_evaluate, fm_predict*) and fm_pool_run set the mode on the calling thread and
 * restore it before they return; pool workers keep it set, so every thread computes alike and
 * results do not depend on the thread count. No-ops where there is no SSE. */
typedef unsigned fm_fpenv;
fm_fpenv fm_fpenv_enter(void);
void fm_fpenv_leave(fm_fpenv saved);
int fm_fpenv_flushing(void); /* whether this thread flushes now (for tests) */

/* ---------------------------------------------------------------- threads */

/* A pool of threads-1 workers plus the calling thread (pool.c). fm_pool_run calls fn(ctx, task)
 * once for every task in [0, n_tasks), spread over the threads, and returns when all are done;
 * with a NULL pool it runs them in order on the caller. Which thread runs a task is left to
 * chance (the caller takes them from the front, workers from the back, so that a thread keeps
 * the same tasks from job to job when all keep up), so tasks must write disjoint data and
 * compute the same whoever runs them. A job of more than 65534 tasks runs on the caller. */
typedef struct fm_pool fm_pool;
typedef void (*fm_task_fn)(void *ctx, int task);
fm_pool *fm_pool_create(int threads);
void fm_pool_free(fm_pool *p);
int fm_pool_threads(const fm_pool *p);
void fm_pool_run(fm_pool *p, int n_tasks, fm_task_fn fn, void *ctx);

/* An element-wise pass over n floats on the pool: two slices per thread once n reaches min_n
 * (a few microseconds of work), else one; fm_slice gives task's slice [lo, hi), starting on a
 * multiple of 16 floats (whole cache lines and vectors), the last one ending at n. Element-wise
 * work gives the same bits whatever the split. */
static inline int fm_slice_tasks(const fm_pool *pool, size_t n, size_t min_n) {
    return pool && n >= min_n ? 2 * fm_pool_threads(pool) : 1;
}
static inline void fm_slice(size_t n, int task, int tasks, size_t *lo, size_t *hi) {
    *lo = (n * (size_t)task / (size_t)tasks) & ~(size_t)15;
    *hi = task + 1 == tasks ? n : (n * (size_t)(task + 1) / (size_t)tasks) & ~(size_t)15;
}

/* ---------------------------------------------------------------- kernels */

/* C[M,N] = op(A)[M,K] · op(B)[K,N] (+ C when accumulate), all row-major; op transposes when the
 * flag is set, so A is [K,M] with trans_a and B is [N,K] with trans_b. The one place where matrix
 * products happen. fm_gemm_ref is the plain triple loop the fast versions are tested against. */
void fm_gemm_ref(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, int accumulate, float *C, int ldc);
void fm_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, int accumulate, float *C, int ldc, int threads);

/* out (width floats, a multiple of 16) = (accumulate ? out : 0) + sum over t < n of
 * val[t] * src[idx[t] * ld + 0 .. width): the rows a sparse vector picks, scaled and summed in
 * t order (the convolution's sparse backward pass); fm_gather_axpy_ref is its plain loop. */
void fm_gather_axpy(float *out, int width, int accumulate, const float *src, size_t ld,
                    const int32_t *idx, const float *val, int n);
void fm_gather_axpy_ref(float *out, int width, int accumulate, const float *src, size_t ld,
                        const int32_t *idx, const float *val, int n);

/* dst (cols x rows, rows ldd apart) = src (rows x cols, rows lds apart) transposed, 16x16 blocks
 * at a time in registers; fm_transpose_ref is the element-by-element loop. */
void fm_transpose(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
void fm_transpose_ref(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);

/* An Adam step applied to a weight matrix as its gradient comes out of the product (see
 * fm_epilogue): params, m and v are laid out like C with leading dimension ld. The arithmetic is
 * adam_step's, operation for operation, with g = gradient + l2x2 * w first when l2x2 is not 0
 * (the L2 term, as the trainer adds it). */
typedef struct {
    float *params, *m, *v;
    int ld;
    float alpha, beta1, beta2, eps, l2x2;
} fm_adam_update;

/* What is done to each output after the product, in this order: + bias[j] (when not NULL), ReLU
 * (when relu), zeroing where mask[i*ldm + j] <= 0 (when mask is not NULL: ReLU's backward pass,
 * mask being the ReLU's output), and, when adam is not NULL, an Adam step with the result as the
 * gradient; C's contents are then left unspecified (scratch), since the gradient is used while
 * it is still in registers and never stored. Fusing these saves passes over memory. */
typedef struct {
    const float *bias;
    int relu;
    const float *mask;
    int ldm;
    const fm_adam_update *adam;
    /* When set (and the product is NN, not accumulating, with no mask or Adam): computed as two
     * products over the halves of K, added before the epilogue. A dense layer's forward pass
     * sets it, so that each of two threads reads only the rows of the weights it updates in the
     * backward pass (fm_gemm_ex splits that one by rows): the weights, 400 KB for mlp's first
     * layer, then stay in one core's cache instead of crossing twice a step. The halves are
     * fixed, whatever the thread count, so results still do not depend on it. */
    int split_k;
} fm_epilogue;

/* The instruction sets fm_gemm has kernels for, slowest first; fm_simd_best() is the best this
 * CPU runs (checked at run time, so the build needs no -march). */
typedef enum { FM_SIMD_GENERIC = 0, FM_SIMD_AVX2 = 1, FM_SIMD_AVX512 = 2 } fm_simd;
fm_simd fm_simd_best(void);
const char *fm_simd_name(fm_simd level);

/* fm_gemm with an epilogue (may be NULL), an explicit kernel level, which tests use to reach
 * every path on one machine (a level above fm_simd_best() runs as fm_simd_best()), and the pool
 * to run on (NULL: the calling thread alone). Any pool size gives bit-identical results for a
 * given level. fm_gemm itself makes a pool of `threads` for the call: for tests and tools. */
void fm_gemm_ex(fm_simd level, int trans_a, int trans_b, int M, int N, int K, const float *A,
                int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                const fm_epilogue *ep, fm_pool *pool);

/* Mixed precision (src/kernels/gemm_bf16.c): bfloat16, a float's top 16 bits, for the operands
 * of a product whose sums stay float. fm_bf16_round rounds to nearest even (NaN stays NaN);
 * fm_bf16_fast says whether this CPU has vdpbf16ps (AVX-512 BF16), without which
 * fm_gemm_bf16 runs its plain reference, the same arithmetic, slowly. */
typedef uint16_t fm_bf16;
fm_bf16 fm_bf16_round(float x);
float fm_bf16_float(fm_bf16 h);
int fm_bf16_fast(void);
/* The operands hold k in pairs, element 2kk + h of a pair run being half h of a 32-bit unit.
 * pack_rows: dst (rows, cols rounded up to even) from src (rows, cols; row stride ld), pairs
 * along each row, an odd last column padded with 0. pack_pairs: dst (ceil(rows/2), cols, 2)
 * from src (rows, cols), rows 2r and 2r+1 interleaved, an odd last row padded with 0. */
void fm_bf16_pack_rows(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld);
void fm_bf16_pack_pairs(fm_bf16 *dst, const float *src, int rows, int cols, size_t ld);
/* C (M, N) = (accumulate ? C + s : s), s the sum over K2 pairs kk of A's pair (i, kk) times B's (kk, j):
 * A's pair (i, kk) is the 32-bit unit i*a_row + kk*a_pair of A (pack_rows gives a_row = the
 * padded row length / 2, a_pair = 1; pack_pairs a_row = 1, a_pair = its cols), B's (kk, j) the
 * unit kk*ldb + j (pack_pairs, ldb = its cols). fast: vdpbf16ps where the CPU has it. Each sum
 * adds a pair's odd product, then its even one, each with one rounding (the instruction's
 * order), so both paths give the same bits. */
void fm_gemm_bf16(int fast, int M, int N, int K2, const fm_bf16 *A, size_t a_row, size_t a_pair,
                  const fm_bf16 *B, int ldb, int accumulate, float *C, int ldc);
void fm_gemm_bf16_ref(int M, int N, int K2, const fm_bf16 *A, size_t a_row, size_t a_pair,
                      const fm_bf16 *B, int ldb, int accumulate, float *C, int ldc);

/* Where a split-K product (fm_epilogue.split_k) of depth K splits it, and where a two-thread
 * weight gradient with K rows puts its middle: the trainer scales each half of a batch's pixels
 * on the thread that then reads them. */
int fm_gemm_split_k_at(int K);

/* The per-instruction-set tiles: rows [i0,i1) x columns [j0,j1) of C; return 0 for a layout they
 * do not handle. Defined in gemm_avx512.c and gemm_avx2.c from the template gemm_simd.h. */
int fm_gemm_block_avx512(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                         int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                         const fm_epilogue *ep);
int fm_gemm_block_avx2(int ta, int tb, int i0, int i1, int j0, int j1, int K, const float *A,
                       int lda, const float *B, int ldb, int accumulate, float *C, int ldc,
                       const fm_epilogue *ep);

/* ---------------------------------------------------------------- layers */

/* The geometry of one 2-D convolution over NCHW tensors: C input channels of HxW, OC output
 * channels of OHxOW, a KHxKW kernel moved by stride, and pad_t/pad_l zero rows/columns before
 * the input (the padding after it follows from the output size); and how to compute it: bf16
 * puts the Winograd path's products (forward, input and weight gradients) on bfloat16 operands
 * with float sums (mixed precision, fm_train_params.precision), 0 keeps them float. */
typedef struct {
    int C, H, W;
    int OC, OH, OW;
    int KH, KW, stride, pad_t, pad_l;
    int bf16;
} fm_conv_shape;

typedef enum {
    FM_LAYER_DENSE = 0,
    FM_LAYER_RELU,
    FM_LAYER_TANH,
    FM_LAYER_SIGMOID,
    FM_LAYER_FLATTEN,
    FM_LAYER_CONV,
    FM_LAYER_MAXPOOL,
    FM_LAYER_AVGPOOL,
    FM_LAYER_GAP,
    FM_LAYER_BATCHNORM,
    FM_LAYER_DROPOUT,
    FM_LAYER_LEAKYRELU,
    FM_LAYER_ADD, /* the close of a residual block: its output plus the block's input */
} fm_layer_kind;

/* Batch norm's constants, PyTorch's defaults (nn.BatchNorm1d/2d). */
#define FM_BN_MOMENTUM 0.1f
#define FM_BN_EPS 1e-5f

typedef struct {
    fm_layer_kind kind;
    uint32_t in_c, in_h, in_w;    /* input shape of one sample */
    uint32_t out_c, out_h, out_w; /* output shape of one sample */
    uint32_t in_size, out_size;   /* flat sizes: c*h*w */
    size_t w_off, b_off;          /* into the flat parameter array (dense): weight [in, out], bias */
    size_t n_params;
    size_t act_off;               /* this layer's output in the activation arena, per batch row */
    /* Convolutional networks. */
    int kernel, stride, same;     /* conv (same: padding) and pools */
    fm_conv_shape conv;           /* conv: the whole geometry */
    float rate;                   /* dropout: probability; leakyrelu: negative slope */
    int spatial;                  /* the output is an image (C,H,W) made by a conv or pool, so a
                                   * dense layer after it needs a flatten (PyTorch's nn.Flatten) */
    size_t s_off, n_state;        /* batch norm: running mean and variance in fm_model.state */
    size_t work_off;              /* batch norm: the batch's mean and invstd in fm_model.bn_work */
    int from;                     /* add: the layer whose output (the block's input) is added,
                                   * -1 for the model's input */
    int read_by_add;              /* the add that reads this output again, as its block's input
                                   * (so a dense layer cannot fold it into a following ReLU);
                                   * 0 for none: an add is never layer 0, and blocks neither
                                   * nest nor share an input, so there is at most one */
    size_t aux_off;               /* per batch row: dropout's mask and an add's output gradient
                                   * (kept for its block's input) in fm_model.aux, max pooling's
                                   * argmax in fm_model.pool_idx */
} fm_layer;

/* The number of kernel weights (dense [O,I], conv [OC,C,KH,KW]) at w_off: what L2 and weight
 * decay act on. Biases and batch norm's scale and shift are not decayed. */
size_t fm_layer_weight_count(const fm_layer *L);

const char *fm_layer_kind_name(fm_layer_kind k);   /* "Dense", "ReLU", ... for summaries */
const char *fm_layer_spec_name(fm_layer_kind k);   /* "dense", "relu", ... for specs */

/* Dense: out[B,O] = inp[B,I] · weight[I,O] + bias[O], weight stored [in, out] (the transpose of
 * the file's PyTorch layout), optionally followed by ReLU in the same pass. Backward overwrites
 * (or with accumulate adds to) dweight and dbias, and overwrites dinp when it is not NULL (the
 * first layer needs no input gradient); relu_inp says inp came out of a ReLU whose backward pass
 * is to be folded into dinp; adam_w/adam_b (may be NULL) apply Adam to the weight and bias in the
 * same pass, dweight then being scratch. */
void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int I, int O, int relu, fm_pool *pool);
void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int I, int O, int accumulate, int relu_inp,
                    const fm_adam_update *adam_w, const fm_adam_update *adam_b, fm_pool *pool);

/* Element-wise activations on n values; backward uses the saved output, and may run in place
 * (dinp == dout). */
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);
void tanh_forward(float *out, const float *inp, size_t n);
void tanh_backward(float *dinp, const float *dout, const float *out, size_t n);
void sigmoid_forward(float *out, const float *inp, size_t n);
void sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n);

/* LeakyReLU: x for x > 0, alpha*x otherwise (0 <= alpha < 1, so the output's sign is the input's
 * and backward can use the saved output). May run in place. */
void leakyrelu_forward(float *out, const float *inp, size_t n, float alpha);
void leakyrelu_backward(float *dinp, const float *dout, const float *out, size_t n, float alpha);

/* Fills s for a KxK kernel with the given stride. same: the output is ceil(H/stride) (TensorFlow's
 * rule; the odd padding row or column goes after the input, as PyTorch's padding='same' does);
 * valid: no padding, (H-K)/stride + 1. Returns 0 when the kernel does not fit (valid, K > H). */
int fm_conv_shape_make(fm_conv_shape *s, int C, int H, int W, int OC, int K, int stride, int same);

/* Conv2D, weights in PyTorch's layout [OC, C, KH, KW]: out (B,OC,OH,OW) = inp (B,C,H,W) * weight
 * + bias (OC). The fast path unrolls each sample into a column buffer (C*KH*KW, OH*OW) and
 * multiplies with fm_gemm, threads taking whole samples; col is caller-owned scratch of n_col
 * buffers of fm_conv_col_size floats (at most n_col threads run; each also holds a transposed
 * output gradient). Backward accumulates (+=) into
 * dweight and dbias through dwork (fm_conv_dwork_size floats: the gradients of fixed groups of
 * samples, summed in order, so the thread count changes no bit) and overwrites dinp when it is not NULL. The
 * _ref pair is the direct 7-loop convolution the tests hold the fast path to. */
size_t fm_conv_col_size(const fm_conv_shape *s);
size_t fm_conv_dwork_size(const fm_conv_shape *s, int B);
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    float *col, int n_col, int B, const fm_conv_shape *s, fm_pool *pool);
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, float *col, int n_col, float *dwork,
                     int B, const fm_conv_shape *s, fm_pool *pool);
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                        int B, const fm_conv_shape *s);
void conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, const fm_conv_shape *s);

/* A 3x3, stride-1 convolution (fm_winograd_fits) by Winograd's F(2x2, 3x3)
 * (src/kernels/winograd.c), one sample at a time in a work space of fm_winograd_ws_size floats:
 * fm_winograd_prepare transforms the weights into it once, then each fm_winograd_sample writes
 * out (OC, OH, OW) = the convolution of x (C, H, W), or of x (H, W, C) when x_cl, plus bias
 * (NULL: none). The input gradient of such a convolution s is one too, of shape
 * t = fm_conv_shape_input_grad(s) (0 when s is not 3x3 stride 1):
 * fm_winograd_prepare_flipped(ws, s's weight, t), then fm_winograd_sample(dx, dy, ..., NULL, ws, t). */
int fm_winograd_fits(const fm_conv_shape *s);
size_t fm_winograd_ws_size(const fm_conv_shape *s);
void fm_winograd_prepare(float *ws, const float *weight, const fm_conv_shape *s);
int fm_conv_shape_input_grad(fm_conv_shape *t, const fm_conv_shape *s);
void fm_winograd_prepare_flipped(float *ws, const float *weight, const fm_conv_shape *t);
void fm_winograd_sample(float *out, const float *x, int x_cl, const float *bias, float *ws,
                        const fm_conv_shape *s);
/* The weight gradient of such a convolution s, in Winograd's domain: each
 * fm_winograd_dw_sample writes (accumulate: adds) into dU (16, C, OC) the gradient of the
 * transformed weights for one sample x (C, H, W) and its output gradient channels last,
 * dyT (OH*OW, OC), in a work space of fm_winograd_dw_ws_size floats; fm_winograd_kernel_grad
 * turns a channel pair's 16 values dU[xi][c][oc] into the gradient of kernel weight[oc][c]. */
size_t fm_winograd_dw_ws_size(const fm_conv_shape *s);
void fm_winograd_dw_sample(float *dU, int accumulate, const float *x, const float *dyT, float *ws,
                           const fm_conv_shape *s);
void fm_winograd_kernel_grad(float dg[9], const float du[16]);

/* Pooling over KxK windows moved by stride S, no padding: (B,C,H,W) -> (B,C,OH,OW) with
 * OH = (H-K)/S + 1. Max pooling records, per output, the index of its maximum within the
 * channel's HxW plane (the first one on ties); backward sends each gradient there. Backward
 * passes overwrite dinp. Global average pooling is (B,C,H,W) -> (B,C). Max pooling splits its
 * channel planes over pool's threads (NULL: the calling thread), the same bits either way. */
void maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W,
                       int K, int S, int OH, int OW, fm_pool *pool);
void maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C,
                        int H, int W, int OH, int OW, fm_pool *pool);
void avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int K, int S,
                       int OH, int OW);
void avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int K, int S,
                        int OH, int OW);
void global_avgpool_forward(float *out, const float *inp, int B, int C, int HW);
void global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW);

/* Inverted dropout on n values: each is kept with probability 1-p and scaled by 1/(1-p), so that
 * inference is the identity and needs no rescaling. The draws come from the caller's rng, one
 * per value in order; mask receives the factor applied to each value (0 or 1/(1-p)), which is
 * all backward needs. */
void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, fm_rng *rng);
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* A residual block's add: out (n) = a + b (may run in place); backward copies dout to dinp (when
 * not NULL) and to saved, the gradient the block's input gets added when backward reaches it. */
void add_forward(float *out, const float *a, const float *b, size_t n);
void add_backward(float *dinp, float *saved, const float *dout, size_t n);

/* Batch normalisation over (B,C,HW): HW = 1 after a dense layer, H*W after a convolution.
 * Training normalises with the batch's mean and (biased) variance per channel, saves them as
 * mean and invstd = 1/sqrt(var + eps) for backward, and moves the running statistics towards
 * them by momentum (PyTorch's convention: running = (1-momentum)*running + momentum*batch, the
 * variance unbiased). Inference normalises with the running statistics. Backward accumulates
 * (+=) into dgamma and dbeta and overwrites dinp. Channels are split between the pool's threads
 * (NULL: the caller alone), with the same bits whatever the split.
 * A ReLU that follows runs in the same passes (two fewer over the activations each way): with
 * relu set, out = relu(batch norm(inp)); with relu_out (the ReLU's output; else NULL), dout is
 * the ReLU's output gradient. Either gives the bits of the two layers run one after the other. */
void batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                             float *running_var, const float *inp, const float *gamma,
                             const float *beta, int B, int C, int HW, float momentum, float eps,
                             int relu, fm_pool *pool);
void batchnorm_forward_infer(float *out, const float *inp, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var, int B, int C,
                             int HW, float eps, int relu, fm_pool *pool);
void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *relu_out, const float *inp, const float *mean,
                        const float *invstd, const float *gamma, int B, int C, int HW,
                        fm_pool *pool);

/* Softmax cross-entropy from logits [B,C], numerically stable (log-sum-exp around the max).
 * Forward writes probabilities, returns the summed loss over the batch and counts correct argmax
 * predictions; backward writes dlogits = (probs - onehot(labels)) / B, the gradient of the mean. */
double softmax_xent_forward(float *probs, const float *logits, const uint8_t *labels, int B, int C,
                            int *correct);
void softmax_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int B, int C);
/* The same with label smoothing s (Szegedy et al.): the target is (1-s)*onehot + s/C, so the loss
 * is logsumexp(z) - (1-s)*z[y] - s/C*sum(z) and dlogits = (probs - target) / B. s = 0 gives the
 * functions above bit for bit. */
double softmax_xent_smooth_forward(float *probs, const float *logits, const uint8_t *labels, int B,
                                   int C, float smoothing, int *correct);
void softmax_xent_smooth_backward(float *dlogits, const float *probs, const uint8_t *labels, int B,
                                  int C, float smoothing);
void softmax_forward(float *probs, const float *logits, int B, int C);
int fm_argmax(const float *v, int n);

/* ---------------------------------------------------------------- optimizers */

/* Keras's SGD: velocity = momentum*velocity - lr*g; w += velocity (Nesterov: w += momentum*velocity
 * - lr*g). With momentum 0 the velocity array is not touched and may be NULL. */
void sgd_step(float *params, const float *grads, float *velocity, size_t n, float lr,
              float momentum, int nesterov);
/* Keras's Adam: step t (1-based) uses lr_t = lr*sqrt(1-beta2^t)/(1-beta1^t) and eps added to
 * sqrt(v), exactly as tf.keras does. */
void adam_step(float *params, const float *grads, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, long t);
/* The step size adam_step uses at step t: lr*sqrt(1-beta2^t)/(1-beta1^t), computed in double. */
float adam_alpha(float lr, float beta1, float beta2, long t);
/* adam_step with that step size given: the update of one element, in the order every fused path
 * (fm_adam_update) repeats. */
void adam_apply(float *params, const float *grads, float *m, float *v, size_t n, float alpha,
                float beta1, float beta2, float eps);

/* Decoupled weight decay: params *= 1 - lr*weight_decay (PyTorch's AdamW and SGD-W order: the
 * trainer applies it to the kernel weights before the optimizer's step). */
void weight_decay_step(float *params, size_t n, float lr, float weight_decay);

/* A learning-rate schedule in steps: warm-up length, the step schedule's period and factor. */
typedef struct {
    fm_schedule kind;
    long warmup_steps;
    long step_steps;
    float gamma;
} fm_schedule_params;

/* The learning rate of step t (0-based) of a run of total steps whose peak rate is base:
 * constant, step (base * gamma^(t / step_steps)), cosine (down to 0 at the end) or one-cycle
 * (PyTorch's OneCycleLR: base/25 up to base over the warm-up, default 30% of the run, then down
 * to base/25/1e4). Every kind but one-cycle warms up linearly: step t < warmup uses
 * base*(t+1)/warmup. */
float fm_schedule_lr(const fm_schedule_params *s, float base, long t, long total);

/* ---------------------------------------------------------------- augmentation */

/* The transformations on one (H,W) image of scaled inputs, with explicit amounts (what the tests
 * drive); background is the scaled value of a 0 pixel. */
void augment_shift(float *dst, const float *src, int H, int W, int dx, int dy, float background);
void augment_flip(float *img, int H, int W);
void augment_rotate(float *dst, const float *src, int H, int W, float degrees, float background);
void augment_erase(float *img, int H, int W, int y0, int x0, int h, int w, float background);
/* Augments the B images of x (B,H,W) in place with amounts drawn from rng; scratch is H*W floats. */
void fm_augment_batch(float *x, int B, int H, int W, const fm_augment *a, float background,
                      float *scratch, fm_rng *rng);

/* ---------------------------------------------------------------- pictures */

/* The EXIF orientation (1..8; 1 upright, also for anything not a JPEG or without a valid tag) of
 * the JPEG whose first len bytes are buf; every offset is checked against len. */
int fm_jpeg_exif_orientation(const uint8_t *buf, size_t len);
/* dst = src [h, w] turned upright for EXIF orientation o (dst is [w, h] for o >= 5). */
void fm_image_orient(uint8_t *dst, const uint8_t *src, uint32_t h, uint32_t w, int o);

/* ---------------------------------------------------------------- model */

#define FM_MAX_LAYERS 128
#define FM_SPEC_MAX 1024

struct fm_model {
    char spec[FM_SPEC_MAX]; /* expanded, canonical */
    uint32_t in_h, in_w;
    int n_layers;
    fm_layer layers[FM_MAX_LAYERS];
    size_t n_params;
    float *params;          /* one allocation, layers point into it by offset */
    fm_classes classes;
    fm_scaling scaling;

    /* Work space, sized for cap_batch rows by fm_model_reserve and never resized in a loop. */
    uint32_t cap_batch;
    size_t act_per_row;     /* sum of every layer's output plus the input */
    float *acts;            /* [cap_batch * act_per_row]: input at 0, each layer at act_off */
    float *dbuf[2];         /* [cap_batch * max width] ping-pong gradients for backward */
    size_t max_width;
    float *probs;           /* [cap_batch, classes.n] */

    fm_pool *pool;          /* the threads of the last call that asked for more than one */
    /* Convolutional networks. */
    int training;           /* set by fm_fit around its batches: dropout drops and batch norm
                             * uses (and updates) batch statistics; 0 everywhere else */
    fm_rng *rng;            /* dropout's draws while training: the run's generator */
    int bf16;               /* set by fm_fit with training: the convolutions' Winograd products
                             * on bf16 operands (fm_train_params.precision) */
    size_t n_state;
    float *state;           /* non-trainable: batch norm's running mean and variance per layer */
    int64_t batches_tracked[FM_MAX_LAYERS]; /* batch norm's num_batches_tracked, per layer */
    int bn_cumulative;      /* training batch norm's running statistics are the plain mean of
                             * the batches' since batches_tracked was zeroed (weight averaging
                             * recomputes them so), not the exponential one */
    float *bn_work;         /* the last training batch's mean and invstd per batch norm channel */
    size_t col_size;        /* one sample of the largest convolution */
    int n_col;              /* column buffers, one per thread the convolutions may use */
    float *col;             /* [n_col * col_size] im2col scratch, from the first fm_model_reserve */
    size_t dwork_per_row;
    float *dwork;           /* [cap_batch * dwork_per_row]: per-sample conv weight gradients */
    size_t aux_per_row, idx_per_row;
    float *aux;             /* [cap_batch * aux_per_row]: dropout masks, layer-major like acts */
    int32_t *pool_idx;      /* [cap_batch * idx_per_row]: max pooling's argmax, layer-major */
    int tta_flip;           /* inference averages each image with its mirror image */
    float *tta_probs;       /* [cap_batch, classes.n]: the mirrored images' probabilities */
};

/* The model's pool for `threads` (<= 0: all cores), made on first use and kept while the count
 * stays the same; NULL means run on the calling thread (one thread, or no pool could be made). */
fm_pool *fm_model_pool(fm_model *m, int threads);

/* Class probabilities [B, classes.n] of the B rows in fm_model_input(), with test-time flips
 * averaged in when the model has them on (the input rows are left mirrored then). Writes probs. */
void fm_model_infer_probs(fm_model *m, float *probs, int B, int threads);

fm_status fm_model_reserve(fm_model *m, uint32_t batch, fm_error *err);
/* The largest batch, up to wanted, whose work space stays within FM_INFER_BYTES: evaluation and
 * prediction run in such chunks so a large convolutional network does not need gigabytes. */
#define FM_INFER_BYTES (256u << 20)
uint32_t fm_model_batch_limit(const fm_model *m, uint32_t wanted);
static inline float *fm_model_input(fm_model *m) { return m->acts; }
static inline uint32_t fm_model_in_size(const fm_model *m) { return m->in_h * m->in_w; }
/* Forward on the B rows already in fm_model_input(), or on B rows of inputs x [B, h*w] kept by
 * the caller; returns the logits [B, classes.n]. */
float *fm_model_forward(fm_model *m, int B, int threads);
float *fm_model_forward_from(fm_model *m, const float *x, int B, int threads);
/* Backward from dlogits [B, classes.n] (may be m->dbuf[0]); writes every gradient in grads (laid
 * out like the parameters), so grads need not be zeroed first. With adam (may be NULL), every
 * parameter also takes its Adam step on the way, the weight matrices' straight from the products
 * (grads then holds only scratch): one pass instead of a gradient pass and an optimizer pass. */
typedef struct {
    float *m, *v;            /* moments, laid out like the parameters */
    float alpha, beta1, beta2, eps;
    float l2;                /* the L2 factor: 2*l2*w joins each weight-matrix gradient */
} fm_adam_fused;
void fm_model_backward(fm_model *m, const float *dlogits, float *grads, int B, int threads,
                       const fm_adam_fused *adam);
/* Parses a spec (or preset) into layers without allocating; used by create and by load. */
fm_status fm_spec_parse(const char *spec, uint32_t in_h, uint32_t in_w, int n_classes,
                        fm_layer *layers, int *n_layers, char *canonical, size_t cap,
                        fm_error *err);
void fm_model_init_weights(fm_model *m, fm_init init, uint64_t seed);

/* ---------------------------------------------------------------- checkpoints */

/* What a checkpoint holds (checkpoint.c writes and reads it, fm_fit fills and restores it). When
 * fm_fit saves, the arrays point into the run's own buffers; when fm_checkpoint_load reads, they
 * are the checkpoint's (owned). */
struct fm_checkpoint {
    fm_train_params p;          /* the settings; callbacks and pointers NULL */
    char *note;                 /* the caller's text, never NULL */
    /* The model. */
    char spec[FM_SPEC_MAX];
    uint32_t in_h, in_w;
    fm_classes classes;
    fm_scaling scaling;
    int tta;
    int n_layers;
    size_t n_params, n_state;
    float *params, *state;
    int64_t batches_tracked[FM_MAX_LAYERS];
    /* The optimizer: step count and moments (Adam m and v, SGD's velocity in m1), NULL when
     * the optimizer has none. */
    long step;
    float *m1, *m2;
    float lr_now, lr_scale;     /* the last step's rate; the plateau callback's factor */
    /* The data and the position in it. */
    uint32_t n_train;           /* training images (after the validation hold-out) */
    uint32_t data_crc;          /* CRC-32 of the whole set's images then labels */
    int32_t *order;             /* [n_train] the current epoch's shuffled order */
    int epochs_done, batches_done, batches; /* batches_done of epoch epochs_done + 1 */
    fm_rng rng;                 /* shuffling, augmentation and dropout: one stream */
    double loss_sum, epoch_seconds; /* the unfinished epoch's running sums so far */
    uint64_t seen, right_sum;
    /* The callbacks. */
    double best_score;
    int best_epoch, plateau_wait, stopped_early;
    float *best;                /* early stopping: [n_params + n_state], or NULL */
    int64_t best_tracked[FM_MAX_LAYERS];
    float *swa;                 /* weight averaging: the running mean, [n_params], or NULL */
    int n_history;
    fm_epoch_stats *history;
    int owned;                  /* the arrays and note belong to this struct */
};

/* Writes ck to path atomically; errors name the file, and the previous file is left intact. */
fm_status fm_checkpoint_write(const char *path, const fm_checkpoint *ck, fm_error *err);
/* Checks that ck continues a run of model m on n_train images whose checksum is data_crc with
 * settings p (equal to the checkpoint's but epochs, which may grow). */
fm_status fm_checkpoint_check_resume(const fm_checkpoint *ck, const fm_model *m,
                                     const fm_train_params *p, uint32_t n_train,
                                     uint32_t data_crc, fm_error *err);
/* CRC-32 of a data set's images then labels: tells a checkpoint's data from other data. */
uint32_t fm_dataset_crc(const fm_dataset *ds);

#endif
