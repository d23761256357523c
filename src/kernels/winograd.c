/* winograd.c — 3x3, stride-1 convolutions by Winograd's F(2x2, 3x3): the forward pass, the
 * input gradient (itself such a convolution, fm_conv_shape_input_grad) and the weight gradient
 * (the algorithm read backwards). Each
 * 2x2 block of outputs from a 4x4 block of input with 16 multiplies per channel pair instead of
 * 36, the sums over input channels as 16 matrix products (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2015). conv2d_forward_ref is the reference it is tested against. */
#include "internal.h"

#include <string.h>

/* 16 floats, loaded and stored unaligned, aliasing plain floats (as in gather_axpy.c). */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

/* Loads and stores of channel c (and the 15 after it, for v16) of a run of channels: the
 * transforms' vector loops and their scalar tails share one body. */
#define LDV(p) (*(const v16 *)((p) + c))
#define STV(p, x) (*(v16 *)((p) + c) = (x))
#define LDS(p) ((p)[c])
#define STS(p, x) ((p)[c] = (x))

/* Tiles per block of matrix products: whole rows of tiles, about this many (at least one row),
 * so that a block's transformed input and products (16*(C+OC) floats a tile) stay close to L1
 * between the transforms and the products. cnn's second layer, forward per sample on one core:
 * 127 us with blocks of one tile row (12 tiles, 72 KB), 133 with 24 tiles, 150 with 48. */
#define BLOCK_TILES 16

/* Everything runs channels last, so that each transform is a loop over contiguous channels (the
 * compiler vectorises it) and the 16 products are plain ones with the output channels across. */
typedef struct {
    int TH, TW;   /* tiles down and across: ceil(OH/2), ceil(OW/2) */
    int HP, WP;   /* the input the tiles read: 2*TH+2 x 2*TW+2, past the image's edges zero */
    int RB;       /* tile rows per block */
    /* the work space: U (16, C, OC), the input (HP*WP, C), V (16, nt, C) and M (16, nt, OC) of
     * one block, the output (OH*OW, OC); then, for bf16 products, U as bf16 pairs of input
     * channels (16, ceil(C/2), OC, 2) and V rounded to bf16 (16, nt, C rounded up to even) */
    size_t u, xh, v, m, yh, ub, vb, end;
} wg_geom;

/* The weight gradient's blocks are larger: their products sum over the block's tiles (K = nt),
 * and each block adds its (C, OC) products into the gradient, which longer sums pay for. */
#define DW_BLOCK_TILES 64

static wg_geom geom_blocks(const fm_conv_shape *s, int block_tiles) {
    wg_geom g;
    g.TH = (s->OH + 1) / 2, g.TW = (s->OW + 1) / 2;
    g.HP = 2 * g.TH + 2, g.WP = 2 * g.TW + 2;
    g.RB = block_tiles / g.TW > 0 ? block_tiles / g.TW : 1;
    if (g.RB > g.TH) g.RB = g.TH;
    const size_t C = (size_t)s->C, OC = (size_t)s->OC, nt = (size_t)g.RB * g.TW;
    g.u = 0;
    g.xh = g.u + 16 * C * OC;
    g.v = g.xh + (size_t)g.HP * g.WP * C;
    g.m = g.v + 16 * nt * C;
    g.yh = g.m + 16 * nt * OC;
    g.ub = g.yh + (size_t)s->OH * s->OW * OC;
    const size_t Cp = (C + 1) & ~(size_t)1; /* bf16 halves, two to a float */
    /* (reserved whether or not s->bf16: the buffers are sized before a step says which) */
    g.vb = g.ub + 8 * Cp * OC;
    g.end = g.vb + 8 * nt * Cp;
    return g;
}

static wg_geom geom_of(const fm_conv_shape *s) { return geom_blocks(s, BLOCK_TILES); }

/* Few input channels make the 16 products too short (K = C) to pay for the transforms. */
int fm_winograd_fits(const fm_conv_shape *s) {
    return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->C >= 8;
}

size_t fm_winograd_ws_size(const fm_conv_shape *s) { return geom_of(s).end; }

/* U[xi][c][oc] (16, C, OC) = G g G^T for each 3x3 kernel g = weight[oc][c], with
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. flipped: g is instead weight[c][oc] turned by
 * 180 degrees, weight being (C, OC, 3, 3), the kernels of the convolution whose input gradient
 * this one computes (fm_conv_shape_input_grad). */
static void prepare(float *ws, const float *weight, const fm_conv_shape *s, int flipped) {
    const int OC = s->OC, C = s->C;
    const wg_geom geom = geom_of(s);
    float *U = ws + geom.u;
    const size_t plane = (size_t)C * OC;
    for (int oc = 0; oc < OC; oc++) {
        for (int c = 0; c < C; c++) {
            float g[9];
            if (flipped) {
                const float *w = weight + ((size_t)c * OC + oc) * 9;
                for (int k = 0; k < 9; k++) g[k] = w[8 - k];
            } else {
                memcpy(g, weight + ((size_t)oc * C + c) * 9, sizeof g);
            }
            float Gg[4][3];
            for (int j = 0; j < 3; j++) {
                Gg[0][j] = g[j];
                Gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                Gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                Gg[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float u[4] = {Gg[i][0], 0.5f * (Gg[i][0] + Gg[i][1] + Gg[i][2]),
                              0.5f * (Gg[i][0] - Gg[i][1] + Gg[i][2]), Gg[i][2]};
                for (int j = 0; j < 4; j++) U[(size_t)(i * 4 + j) * plane + (size_t)c * OC + oc] = u[j];
            }
        }
    }
    if (s->bf16) {
        const size_t pairs = (size_t)(C + 1) / 2 * OC * 2;
        for (int xi = 0; xi < 16; xi++) {
            fm_bf16_pack_pairs((fm_bf16 *)(ws + geom.ub) + xi * pairs, U + xi * plane, C, OC, (size_t)OC);
        }
    }
}

void fm_winograd_prepare(float *ws, const float *weight, const fm_conv_shape *s) {
    prepare(ws, weight, s, 0);
}

void fm_winograd_prepare_flipped(float *ws, const float *weight, const fm_conv_shape *t) {
    prepare(ws, weight, t, 1);
}

/* The input gradient of a 3x3 stride-1 convolution s: dx[c][i][j] = sum over oc, kh, kw of
 * dy[oc][i + pad_t - kh][j + pad_l - kw] * w[oc][c][kh][kw], which is the convolution of dy by
 * the kernels turned by 180 degrees with the channels swapped, padded 2 - pad (same stays same,
 * valid becomes full), an output of the input's size. */
int fm_conv_shape_input_grad(fm_conv_shape *t, const fm_conv_shape *s) {
    memset(t, 0, sizeof *t);
    if (s->KH != 3 || s->KW != 3 || s->stride != 1) return 0;
    t->C = s->OC, t->H = s->OH, t->W = s->OW, t->OC = s->C, t->OH = s->H, t->OW = s->W;
    t->KH = t->KW = 3, t->stride = 1, t->pad_t = 2 - s->pad_t, t->pad_l = 2 - s->pad_l;
    t->bf16 = s->bf16;
    return 1;
}

/* V[xi][t][c] = (B^T d B)[xi] for the 4x4 input block d of each tile t of tile rows [ty0, ty1),
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]; xh is (HP*WP, C). */
static void transform_input(float *restrict V, const float *xh, int C, int ty0, int ty1,
                            const wg_geom *g) {
    const int TW = g->TW, WP = g->WP;
    const size_t plane = (size_t)(ty1 - ty0) * TW * C, row = (size_t)WP * C;
    for (int ty = ty0; ty < ty1; ty++) {
        for (int tx = 0; tx < TW; tx++) {
            /* the block's 16 pixels and the tile's 16 outputs, each a run of C floats: named
             * one by one, so that the loop over channels has plain contiguous accesses */
            const float *d = xh + ((size_t)(2 * ty) * WP + 2 * tx) * C;
            const float *a0 = d, *a1 = d + C, *a2 = d + 2 * C, *a3 = d + 3 * C;
            const float *b0 = a0 + row, *b1 = a1 + row, *b2 = a2 + row, *b3 = a3 + row;
            const float *c0 = b0 + row, *c1 = b1 + row, *c2 = b2 + row, *c3 = b3 + row;
            const float *e0 = c0 + row, *e1 = c1 + row, *e2 = c2 + row, *e3 = c3 + row;
            float *v = V + ((size_t)(ty - ty0) * TW + tx) * C;
            float *v0 = v, *v1 = v0 + plane, *v2 = v1 + plane, *v3 = v2 + plane;
            float *v4 = v3 + plane, *v5 = v4 + plane, *v6 = v5 + plane, *v7 = v6 + plane;
            float *v8 = v7 + plane, *v9 = v8 + plane, *v10 = v9 + plane, *v11 = v10 + plane;
            float *v12 = v11 + plane, *v13 = v12 + plane, *v14 = v13 + plane, *v15 = v14 + plane;
            int c = 0;
            /* 16 channels at a time in vectors, the rest one by one, the same arithmetic */
#define INPUT_STEP(T, LD, ST)                                                                   \
    do {                                                                                        \
        T A0 = LD(a0), A1 = LD(a1), A2 = LD(a2), A3 = LD(a3), B0 = LD(b0), B1 = LD(b1);          \
        T B2 = LD(b2), B3 = LD(b3), C0 = LD(c0), C1 = LD(c1), C2 = LD(c2), C3 = LD(c3);          \
        T E0 = LD(e0), E1 = LD(e1), E2 = LD(e2), E3 = LD(e3);                                   \
        /* t = B^T d, row by row (a, b, c, e are the block's rows) */                           \
        T t00 = A0 - C0, t01 = A1 - C1, t02 = A2 - C2, t03 = A3 - C3;                           \
        T t10 = B0 + C0, t11 = B1 + C1, t12 = B2 + C2, t13 = B3 + C3;                           \
        T t20 = C0 - B0, t21 = C1 - B1, t22 = C2 - B2, t23 = C3 - B3;                           \
        T t30 = B0 - E0, t31 = B1 - E1, t32 = B2 - E2, t33 = B3 - E3;                           \
        /* then t B, column by column */                                                        \
        ST(v0, t00 - t02), ST(v1, t01 + t02), ST(v2, t02 - t01), ST(v3, t01 - t03);             \
        ST(v4, t10 - t12), ST(v5, t11 + t12), ST(v6, t12 - t11), ST(v7, t11 - t13);             \
        ST(v8, t20 - t22), ST(v9, t21 + t22), ST(v10, t22 - t21), ST(v11, t21 - t23);           \
        ST(v12, t30 - t32), ST(v13, t31 + t32), ST(v14, t32 - t31), ST(v15, t31 - t33);         \
    } while (0)
            for (; c + 16 <= C; c += 16) INPUT_STEP(v16, LDV, STV);
            for (; c < C; c++) INPUT_STEP(float, LDS, STS);
#undef INPUT_STEP
        }
    }
}

/* yh (OH*OW, OC) for tile rows [ty0, ty1) from M[xi][t][oc]: each tile's 2x2 outputs
 * A^T m A with A^T = [1 1 1 0; 0 1 -1 -1], plus the bias; a last half tile (odd OH or OW) keeps
 * only its outputs inside. */
static void transform_output(float *restrict yh, const float *M, const float *bias,
                             int OC, int ty0, int ty1, const fm_conv_shape *s, const wg_geom *g) {
    const int TW = g->TW;
    const size_t plane = (size_t)(ty1 - ty0) * TW * OC;
    for (int ty = ty0; ty < ty1; ty++) {
        for (int tx = 0; tx < TW; tx++) {
            const float *m = M + ((size_t)(ty - ty0) * TW + tx) * OC;
            const int oh = 2 * ty, ow = 2 * tx, down = oh + 1 < s->OH, right = ow + 1 < s->OW;
            float *y00 = yh + ((size_t)oh * s->OW + ow) * OC;
            float *y01 = right ? y00 + OC : y00;      /* outside: written over by y00 after */
            float *y10 = down ? y00 + (size_t)s->OW * OC : y00;
            float *y11 = down && right ? y10 + OC : y00;
            for (int oc = 0; oc < OC; oc++) {
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    float m0 = m[(size_t)j * plane + oc], m1 = m[(size_t)(4 + j) * plane + oc];
                    float m2 = m[(size_t)(8 + j) * plane + oc], m3 = m[(size_t)(12 + j) * plane + oc];
                    s0[j] = m0 + m1 + m2, s1[j] = m1 - m2 - m3;
                }
                float b = bias ? bias[oc] : 0.0f;
                float v11 = s1[1] - s1[2] - s1[3] + b, v10 = s1[0] + s1[1] + s1[2] + b;
                float v01 = s0[1] - s0[2] - s0[3] + b, v00 = s0[0] + s0[1] + s0[2] + b;
                y11[oc] = v11, y10[oc] = v10, y01[oc] = v01, y00[oc] = v00;
            }
        }
    }
}

/* xh (HP*WP, C) = the sample x (C, H, W) channels last, inside a zero border: every tile then
 * reads a whole 4x4 block. x_cl: x is already channels last, (H, W, C), and is only copied. */
static void load_sample(float *xh, const float *x, int x_cl, const fm_conv_shape *s, const wg_geom *g) {
    const int C = s->C;
    if (s->pad_t || s->pad_l || s->H != g->HP || s->W != g->WP) {
        memset(xh, 0, sizeof(float) * (size_t)g->HP * g->WP * C);
    }
    const int rows = s->H < g->HP - s->pad_t ? s->H : g->HP - s->pad_t;
    const int cols = s->W < g->WP - s->pad_l ? s->W : g->WP - s->pad_l;
    const size_t HW = (size_t)s->H * s->W;
    if (x_cl) {
        for (int h = 0; h < rows; h++) {
            memcpy(xh + ((size_t)(h + s->pad_t) * g->WP + s->pad_l) * C, x + (size_t)h * s->W * C,
                   sizeof(float) * (size_t)cols * C);
        }
    } else if (rows == s->H && cols == s->W && cols == g->WP) {
        fm_transpose(xh + (size_t)s->pad_t * g->WP * C, (size_t)C, x, HW, C, (int)HW);
    } else {
        for (int h = 0; h < rows; h++) {
            fm_transpose(xh + ((size_t)(h + s->pad_t) * g->WP + s->pad_l) * C, (size_t)C,
                         x + (size_t)h * s->W, HW, C, cols);
        }
    }
}

void fm_winograd_sample(float *out, const float *x, int x_cl, const float *bias, float *ws,
                        const fm_conv_shape *s) {
    const wg_geom g = geom_of(s);
    const int C = s->C, OC = s->OC, P = s->OH * s->OW;
    const float *U = ws + g.u;
    float *xh = ws + g.xh, *V = ws + g.v, *M = ws + g.m, *yh = ws + g.yh;
    load_sample(xh, x, x_cl, s, &g);
    for (int ty0 = 0; ty0 < g.TH; ty0 += g.RB) {
        int ty1 = ty0 + g.RB < g.TH ? ty0 + g.RB : g.TH, nt = (ty1 - ty0) * g.TW;
        transform_input(V, xh, C, ty0, ty1, &g);
        if (s->bf16) {
            /* the same products on V and U rounded to bf16, K in pairs of input channels */
            const int C2 = (C + 1) / 2;
            fm_bf16 *Vb = (fm_bf16 *)(ws + g.vb);
            const fm_bf16 *Ub = (const fm_bf16 *)(ws + g.ub);
            fm_bf16_pack_rows(Vb, V, 16 * nt, C, (size_t)C);
            for (int xi = 0; xi < 16; xi++) {
                fm_gemm_bf16(1, nt, OC, C2, Vb + (size_t)xi * nt * C2 * 2, (size_t)C2, 1,
                             Ub + (size_t)xi * C2 * OC * 2, OC, 0, M + (size_t)xi * nt * OC, OC);
            }
        } else {
            /* M[xi] (nt, OC) = V[xi] (nt, C) · U[xi] (C, OC), for each of the 16 points */
            for (int xi = 0; xi < 16; xi++) {
                fm_gemm_ex(fm_simd_best(), 0, 0, nt, OC, C, V + (size_t)xi * nt * C, C,
                           U + (size_t)xi * C * OC, OC, 0, M + (size_t)xi * nt * OC, OC, NULL, NULL);
            }
        }
        transform_output(yh, M, bias, OC, ty0, ty1, s, &g);
    }
    fm_transpose(out, (size_t)P, yh, (size_t)OC, P, OC); /* back to (OC, OH*OW) */
}

/* The weight gradient, through the same algorithm read backwards: the forward pass computes
 * M[xi] = V[xi] · U[xi] and then each tile's outputs A^T m A, so the gradient of U[xi] is
 * V[xi]^T · dM[xi] with dM = A dy A^T for each tile's 2x2 output gradient (0 past the edges),
 * and that of each kernel g is G^T dU G. The same sums as the direct weight gradient in exact
 * arithmetic, with 16 multiplies per tile and channel pair instead of 36. */

/* The work space: the input (HP*WP, C), then V (16, nt, C) and dM (16, nt, OC) of one block,
 * then OC zeros; for bf16 products, then V and dM as bf16 pairs of tiles (16, ceil(nt/2), C, 2)
 * and (16, ceil(nt/2), OC, 2). */
size_t fm_winograd_dw_ws_size(const fm_conv_shape *s) {
    const wg_geom g = geom_blocks(s, DW_BLOCK_TILES);
    const size_t nt = (size_t)g.RB * g.TW, ntp = (nt + 1) & ~(size_t)1;
    const size_t bf16 = 8 * ntp * ((size_t)s->C + s->OC); /* (reserved either way, as above) */
    return (size_t)g.HP * g.WP * s->C + 16 * nt * ((size_t)s->C + s->OC) + (size_t)s->OC + bf16;
}

/* dM[xi][t][oc] = (A d A^T)[xi] for the 2x2 output gradient d of each tile t of tile rows
 * [ty0, ty1), A = [1 0; 1 1; 1 -1; 0 -1]; dyT is (OH*OW, OC), zeros OC zeros (read for the
 * outputs of half tiles past the edges). */
static void transform_output_grad(float *restrict dM, const float *dyT, const float *zeros, int OC,
                                  int ty0, int ty1, const fm_conv_shape *s, const wg_geom *g) {
    const int TW = g->TW;
    const size_t plane = (size_t)(ty1 - ty0) * TW * OC;
    for (int ty = ty0; ty < ty1; ty++) {
        for (int tx = 0; tx < TW; tx++) {
            float *m0 = dM + ((size_t)(ty - ty0) * TW + tx) * OC, *m1 = m0 + plane, *m2 = m1 + plane;
            float *m3 = m2 + plane, *m4 = m3 + plane, *m5 = m4 + plane, *m6 = m5 + plane;
            float *m7 = m6 + plane, *m8 = m7 + plane, *m9 = m8 + plane, *m10 = m9 + plane;
            float *m11 = m10 + plane, *m12 = m11 + plane, *m13 = m12 + plane, *m14 = m13 + plane;
            float *m15 = m14 + plane;
            const int oh = 2 * ty, ow = 2 * tx, down = oh + 1 < s->OH, right = ow + 1 < s->OW;
            const float *d00 = dyT + ((size_t)oh * s->OW + ow) * OC;
            const float *d01 = right ? d00 + OC : zeros, *d10 = down ? d00 + (size_t)s->OW * OC : zeros;
            const float *d11 = down && right ? d00 + (size_t)(s->OW + 1) * OC : zeros;
            int c = 0; /* (an output channel) */
            /* with d = (y0 y1; y2 y3): the rows of A d are (y0, y1), (y0+y2, y1+y3),
             * (y0-y2, y1-y3), (-y2, -y3), then each row (p, q) times A^T is (p, p+q, p-q, -q);
             * 16 channels at a time, the rest one by one */
#define GRAD_STEP(T, LD, ST)                                                                        \
    do {                                                                                            \
        T y0 = LD(d00), y1 = LD(d01), y2 = LD(d10), y3 = LD(d11);                                   \
        T p1 = y0 + y2, q1 = y1 + y3, p2 = y0 - y2, q2 = y1 - y3;                                   \
        ST(m0, y0), ST(m1, y0 + y1), ST(m2, y0 - y1), ST(m3, -y1);                                  \
        ST(m4, p1), ST(m5, p1 + q1), ST(m6, p1 - q1), ST(m7, -q1);                                  \
        ST(m8, p2), ST(m9, p2 + q2), ST(m10, p2 - q2), ST(m11, -q2);                                \
        ST(m12, -y2), ST(m13, -y2 - y3), ST(m14, y3 - y2), ST(m15, y3);                             \
    } while (0)
            for (; c + 16 <= OC; c += 16) GRAD_STEP(v16, LDV, STV);
            for (; c < OC; c++) GRAD_STEP(float, LDS, STS);
#undef GRAD_STEP
        }
    }
}

void fm_winograd_dw_sample(float *dU, int accumulate, const float *x, const float *dyT, float *ws,
                           const fm_conv_shape *s) {
    const wg_geom g = geom_blocks(s, DW_BLOCK_TILES);
    const int C = s->C, OC = s->OC;
    const size_t nt_max = (size_t)g.RB * g.TW;
    float *xh = ws, *V = xh + (size_t)g.HP * g.WP * C, *dM = V + 16 * nt_max * C;
    float *zeros = dM + 16 * nt_max * OC;
    memset(zeros, 0, sizeof(float) * (size_t)OC);
    const size_t ntp_max = (nt_max + 1) & ~(size_t)1;
    fm_bf16 *Vp = (fm_bf16 *)(zeros + OC), *dMp = Vp + 16 * ntp_max * C;
    load_sample(xh, x, 0, s, &g);
    for (int ty0 = 0; ty0 < g.TH; ty0 += g.RB) {
        int ty1 = ty0 + g.RB < g.TH ? ty0 + g.RB : g.TH, nt = (ty1 - ty0) * g.TW;
        transform_input(V, xh, C, ty0, ty1, &g);
        transform_output_grad(dM, dyT, zeros, OC, ty0, ty1, s, &g);
        if (s->bf16) {
            /* the same products on bf16 operands, K (the tiles) in pairs */
            const int nt2 = (nt + 1) / 2;
            for (int xi = 0; xi < 16; xi++) {
                fm_bf16 *vp = Vp + (size_t)xi * nt2 * C * 2, *mp = dMp + (size_t)xi * nt2 * OC * 2;
                fm_bf16_pack_pairs(vp, V + (size_t)xi * nt * C, nt, C, (size_t)C);
                fm_bf16_pack_pairs(mp, dM + (size_t)xi * nt * OC, nt, OC, (size_t)OC);
                fm_gemm_bf16(1, C, OC, nt2, vp, 1, (size_t)C, mp, OC, accumulate || ty0 > 0,
                             dU + (size_t)xi * C * OC, OC);
            }
        } else {
            /* dU[xi] (C, OC) += V[xi]^T (C, nt) · dM[xi] (nt, OC) */
            for (int xi = 0; xi < 16; xi++) {
                fm_gemm_ex(fm_simd_best(), 1, 0, C, OC, nt, V + (size_t)xi * nt * C, C,
                           dM + (size_t)xi * nt * OC, OC, accumulate || ty0 > 0,
                           dU + (size_t)xi * C * OC, OC, NULL, NULL);
            }
        }
    }
}

/* dg (3x3) = G^T du G for one channel pair's 16 values du[xi] (xi = 4i + j),
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
void fm_winograd_kernel_grad(float dg[9], const float du[16]) {
    float t[3][4]; /* G^T du, column by column */
    for (int j = 0; j < 4; j++) {
        const float u0 = du[j], u1 = du[4 + j], u2 = du[8 + j], u3 = du[12 + j];
        t[0][j] = u0 + 0.5f * (u1 + u2);
        t[1][j] = 0.5f * (u1 - u2);
        t[2][j] = 0.5f * (u1 + u2) + u3;
    }
    for (int a = 0; a < 3; a++) {
        dg[3 * a] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);
        dg[3 * a + 1] = 0.5f * (t[a][1] - t[a][2]);
        dg[3 * a + 2] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];
    }
}
