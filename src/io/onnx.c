/* onnx.c — ONNX export: the model as an opset-13 graph (input pixel/255, output probabilities),
 * every layer kind included, built with the protobuf-c code that the Makefile generates from
 * Debian's onnx.proto. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx/onnx.pb-c.h"

#define ONNX_OPSET 13
/* IR version 7 came with ONNX 1.8, the release that defined opset 13; runtimes check the pair. */
#define ONNX_IR_VERSION 7

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian and is written straight from the parameters"
#endif

/* The graph's size is bounded by the layer count: per layer at most a Flatten and one operator
 * node and four initializers (batch norm), plus the scaling (Sub, Div and their constants), the
 * test-time flip (Gather, Concat, Reshape, ReduceMean and two constants), the last Flatten and
 * the Softmax. */
#define MAX_NODES (2 * FM_MAX_LAYERS + 8)
#define MAX_INITS (4 * FM_MAX_LAYERS + 4)
#define MAX_ATTRS 4

/* Builds the graph out of protobuf-c structs. Every allocation is recorded so that one call frees
 * them all; an allocation failure sets oom and later calls become no-ops returning NULL. */
typedef struct {
    void **owned;
    size_t n_owned, cap_owned;
    int oom;
    Onnx__NodeProto *nodes[MAX_NODES];
    size_t n_nodes;
    Onnx__TensorProto *inits[MAX_INITS];
    size_t n_inits;
    const char *value; /* the value the next node consumes */
    int rank;          /* its rank: 4 for [N, C, H, W], 2 for [N, features] */
    const char *net_input;                /* the value the first layer consumes */
    const char *outputs[FM_MAX_LAYERS];  /* each layer's output value, for residual adds */
} onnx_builder;

static void *ob_alloc(onnx_builder *b, size_t size) {
    if (b->oom) return NULL;
    if (b->n_owned == b->cap_owned) {
        size_t cap = b->cap_owned ? 2 * b->cap_owned : 64;
        void **grown = realloc(b->owned, cap * sizeof *grown);
        if (!grown) {
            b->oom = 1;
            return NULL;
        }
        b->owned = grown, b->cap_owned = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        b->oom = 1;
        return NULL;
    }
    b->owned[b->n_owned++] = p;
    return p;
}

static void ob_free(onnx_builder *b) {
    for (size_t i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->owned);
}

static char *ob_printf(onnx_builder *b, const char *fmt, ...) FM_PRINTF(2, 3);
static char *ob_printf(onnx_builder *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? ob_alloc(b, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---------------------------------------------------------------- graph pieces */

/* A tensor constant of the given ONNX element type (FLOAT or INT64): dims as given (none for a
 * scalar), count elements of elem_size bytes used in place (not copied), so they must outlive the
 * packing. */
static void add_tensor(onnx_builder *b, const char *name, int32_t type, size_t elem_size,
                       const int64_t *dims, size_t ndim, const void *data, size_t count) {
    Onnx__TensorProto *t = ob_alloc(b, sizeof *t);
    int64_t *d = ob_alloc(b, (ndim ? ndim : 1) * sizeof *d);
    char *nm = ob_printf(b, "%s", name);
    if (!t || !d || !nm || b->n_inits == MAX_INITS) {
        b->oom = 1;
        return;
    }
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, ndim * sizeof *d);
    t->n_dims = ndim, t->dims = d;
    t->has_data_type = 1, t->data_type = type;
    t->name = nm;
    t->has_raw_data = 1;
    t->raw_data.len = count * elem_size;
    t->raw_data.data = (uint8_t *)(uintptr_t)data; /* read only by the packer */
    b->inits[b->n_inits++] = t;
}

static void add_initializer(onnx_builder *b, const char *name, const int64_t *dims, size_t ndim,
                            const float *data, size_t count) {
    add_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sizeof(float), dims, ndim, data, count);
}

/* An int64 vector constant (indices, shapes) of count values in the builder's memory. */
static int64_t *add_int64_initializer(onnx_builder *b, const char *name, size_t count) {
    int64_t *values = ob_alloc(b, count * sizeof *values);
    if (!values) return NULL;
    int64_t dims[1] = {(int64_t)count};
    add_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, sizeof(int64_t), dims, 1, values, count);
    return values;
}

static Onnx__AttributeProto *int_attribute(onnx_builder *b, const char *name, int64_t value) {
    Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
    char *nm = ob_printf(b, "%s", name);
    if (!a || !nm) return NULL;
    onnx__attribute_proto__init(a);
    a->name = nm;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1, a->i = value;
    return a;
}

static Onnx__AttributeProto *ints_attribute(onnx_builder *b, const char *name, const int64_t *values,
                                           size_t n) {
    Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
    int64_t *v = ob_alloc(b, n * sizeof *v);
    char *nm = ob_printf(b, "%s", name);
    if (!a || !v || !nm) return NULL;
    onnx__attribute_proto__init(a);
    memcpy(v, values, n * sizeof *v);
    a->name = nm;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = n, a->ints = v;
    return a;
}

static Onnx__AttributeProto *float_attribute(onnx_builder *b, const char *name, float value) {
    Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
    char *nm = ob_printf(b, "%s", name);
    if (!a || !nm) return NULL;
    onnx__attribute_proto__init(a);
    a->name = nm;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1, a->f = value;
    return a;
}

/* Appends node NAME: OP(the current value, extra inputs...) -> OUTPUT, which becomes the current
 * value, with n_attrs attributes (at most MAX_ATTRS; one that failed to allocate is NULL). */
static void add_node(onnx_builder *b, const char *op, const char *name, const char *output,
                     const char *const *extra, size_t n_extra, Onnx__AttributeProto *const *attrs,
                     size_t n_attrs) {
    if (!output || b->oom || n_attrs > MAX_ATTRS) { /* a name that failed to allocate */
        b->oom = 1;
        return;
    }
    Onnx__NodeProto *n = ob_alloc(b, sizeof *n);
    char **in = ob_alloc(b, (1 + n_extra) * sizeof *in);
    char **out = ob_alloc(b, sizeof *out);
    Onnx__AttributeProto **attr_list = ob_alloc(b, MAX_ATTRS * sizeof *attr_list);
    char *op_s = ob_printf(b, "%s", op), *name_s = ob_printf(b, "%s", name);
    char *in0 = ob_printf(b, "%s", b->value ? b->value : ""), *out0 = ob_printf(b, "%s", output);
    if (!n || !in || !out || !attr_list || !op_s || !name_s || !in0 || !out0 || b->n_nodes == MAX_NODES) {
        b->oom = 1;
        return;
    }
    onnx__node_proto__init(n);
    in[0] = in0;
    for (size_t i = 0; i < n_extra; i++) {
        if (!(in[1 + i] = ob_printf(b, "%s", extra[i]))) return;
    }
    for (size_t i = 0; i < n_attrs; i++) {
        if (!(attr_list[i] = attrs[i])) {
            b->oom = 1;
            return;
        }
    }
    out[0] = out0;
    n->n_input = 1 + n_extra, n->input = in;
    n->n_output = 1, n->output = out;
    n->op_type = op_s;
    n->name = name_s;
    n->n_attribute = n_attrs, n->attribute = attr_list;
    b->nodes[b->n_nodes++] = n;
    b->value = out0;
}

/* A node with at most one attribute (NULL: none). */
static void add_node1(onnx_builder *b, const char *op, const char *name, const char *output,
                      const char *const *extra, size_t n_extra, Onnx__AttributeProto *attr) {
    if (!attr) {
        add_node(b, op, name, output, extra, n_extra, NULL, 0);
        return;
    }
    add_node(b, op, name, output, extra, n_extra, &attr, 1);
}

/* Gemm wants [N, features]: a 4-D value ([N, C, H, W]: the input, or what a conv, a pool or
 * global pooling gave) is flattened first, as fmnist does implicitly before a dense layer. */
static void flatten_to_2d(onnx_builder *b, const char *name) {
    if (b->rank == 2) return;
    add_node1(b, "Flatten", name, ob_printf(b, "%s.output", name), NULL, 0, int_attribute(b, "axis", 1));
    b->rank = 2;
}

/* Dense: Y = X · W^T + b, W stored [out, in] exactly as in the safetensors file (PyTorch's
 * layout), hence transB=1. The initializers carry PyTorch's names (layers.K.weight). */
static void emit_dense(onnx_builder *b, const fm_model *m, int l) {
    const fm_layer *L = &m->layers[l];
    char w_name[64], b_name[64], node[32];
    snprintf(w_name, sizeof w_name, "layers.%d.weight", l);
    snprintf(b_name, sizeof b_name, "layers.%d.bias", l);
    snprintf(node, sizeof node, "layers.%d", l);
    int64_t wdims[2] = {L->out_size, L->in_size}, bdims[1] = {L->out_size};
    /* The model keeps dense weights [in, out] for its kernels; the graph gets PyTorch's [out, in]
     * (Gemm with transB), the layout of the model file, from a transposed copy. */
    size_t I = L->in_size, O = L->out_size;
    const float *w = m->params + L->w_off;
    float *w_out_in = ob_alloc(b, I * O * sizeof(float));
    if (!w_out_in) return;
    for (size_t o = 0; o < O; o++) {
        for (size_t i = 0; i < I; i++) w_out_in[o * I + i] = w[i * O + o];
    }
    add_initializer(b, w_name, wdims, 2, w_out_in, I * O);
    add_initializer(b, b_name, bdims, 1, m->params + L->b_off, L->out_size);
    const char *extra[2] = {w_name, b_name};
    add_node1(b, "Gemm", node, ob_printf(b, "%s.output", node), extra, 2, int_attribute(b, "transB", 1));
}

/* Conv: weights [OC, C, KH, KW] and bias [OC] straight from the parameters (PyTorch's layout, the
 * file's too). The padding before the input is the layer's; the padding after it is what the
 * output size needs, so "same" with an even kernel or a stride gets its odd row or column after
 * the input, as fmnist (and TensorFlow) put it; "valid" needs none, and ONNX's floor division
 * drops the rows a stride does not reach, as fmnist does. */
static void emit_conv(onnx_builder *b, const fm_model *m, int l) {
    const fm_layer *L = &m->layers[l];
    const fm_conv_shape *s = &L->conv;
    char w_name[64], b_name[64], node[32];
    snprintf(w_name, sizeof w_name, "layers.%d.weight", l);
    snprintf(b_name, sizeof b_name, "layers.%d.bias", l);
    snprintf(node, sizeof node, "layers.%d", l);
    int64_t wdims[4] = {s->OC, s->C, s->KH, s->KW}, bdims[1] = {s->OC};
    add_initializer(b, w_name, wdims, 4, m->params + L->w_off, fm_layer_weight_count(L));
    add_initializer(b, b_name, bdims, 1, m->params + L->b_off, (size_t)s->OC);
    int pad_b = (s->OH - 1) * s->stride + s->KH - s->H - s->pad_t;
    int pad_r = (s->OW - 1) * s->stride + s->KW - s->W - s->pad_l;
    int64_t kernel[2] = {s->KH, s->KW}, strides[2] = {s->stride, s->stride};
    int64_t pads[4] = {s->pad_t, s->pad_l, pad_b > 0 ? pad_b : 0, pad_r > 0 ? pad_r : 0};
    Onnx__AttributeProto *attrs[3] = {ints_attribute(b, "kernel_shape", kernel, 2),
                                      ints_attribute(b, "strides", strides, 2),
                                      ints_attribute(b, "pads", pads, 4)};
    const char *extra[2] = {w_name, b_name};
    add_node(b, "Conv", node, ob_printf(b, "%s.output", node), extra, 2, attrs, 3);
}

/* MaxPool and AveragePool: KxK windows moved by the stride, no padding (so AveragePool's
 * count_include_pad never matters), floor of the output size as in fmnist. */
static void emit_pool(onnx_builder *b, const char *op, const fm_layer *L, int l) {
    char node[32];
    snprintf(node, sizeof node, "layers.%d", l);
    int64_t kernel[2] = {L->kernel, L->kernel}, strides[2] = {L->stride, L->stride};
    Onnx__AttributeProto *attrs[2] = {ints_attribute(b, "kernel_shape", kernel, 2),
                                      ints_attribute(b, "strides", strides, 2)};
    add_node(b, op, node, ob_printf(b, "%s.output", node), NULL, 0, attrs, 2);
}

/* BatchNormalization in its inference form (opset 9's: no training outputs), with the running
 * statistics under PyTorch's names. Over [N, C, H, W] after a convolution or on an image, over
 * [N, C] after a dense layer: the operator takes any rank from 2, channels on axis 1, which is
 * fmnist's (B, C, HW) with HW = 1. fmnist's eps and the file's statistics give the same
 * y = (x - mean) / sqrt(var + eps) * gamma + beta. */
static void emit_batchnorm(onnx_builder *b, const fm_model *m, int l) {
    const fm_layer *L = &m->layers[l];
    static const char *const what[4] = {"weight", "bias", "running_mean", "running_var"};
    const float *data[4] = {m->params + L->w_off, m->params + L->b_off, m->state + L->s_off,
                            m->state + L->s_off + L->in_c};
    char names[4][64], node[32];
    const char *extra[4];
    int64_t dims[1] = {L->in_c};
    for (int i = 0; i < 4; i++) {
        snprintf(names[i], sizeof names[i], "layers.%d.%s", l, what[i]);
        add_initializer(b, names[i], dims, 1, data[i], L->in_c);
        extra[i] = names[i];
    }
    snprintf(node, sizeof node, "layers.%d", l);
    Onnx__AttributeProto *attrs[2] = {float_attribute(b, "epsilon", FM_BN_EPS),
                                      float_attribute(b, "momentum", 1.0f - FM_BN_MOMENTUM)};
    add_node(b, "BatchNormalization", node, ob_printf(b, "%s.output", node), extra, 4, attrs, 2);
}

static void emit_elementwise(onnx_builder *b, const char *op, int l, Onnx__AttributeProto *attr) {
    char node[32];
    snprintf(node, sizeof node, "layers.%d", l);
    add_node1(b, op, node, ob_printf(b, "%s.output", node), NULL, 0, attr);
}

/* x = (input - mean) / std with input = pixel/255, exactly what fm_scale_images computes. Unit
 * scaling (mean 0, std 1) needs no node. */
static void emit_scaling(onnx_builder *b, const fm_model *m) {
    if (m->scaling.mean == 0.0f && m->scaling.std == 1.0f) return;
    add_initializer(b, "scaling.mean", NULL, 0, &m->scaling.mean, 1);
    add_initializer(b, "scaling.std", NULL, 0, &m->scaling.std, 1);
    const char *mean = "scaling.mean", *std = "scaling.std";
    add_node1(b, "Sub", "scaling.sub", "scaling.centred", &mean, 1, NULL);
    add_node1(b, "Div", "scaling.div", "scaling.output", &std, 1, NULL);
}

/* Test-time flips (a model trained with --tta): the batch [N, 1, H, W] and its mirror images
 * (Gather of the columns in reverse order) go through the network together as [2N, 1, H, W];
 * every layer treats samples independently at inference, so this is the two passes fmnist makes. */
static void emit_tta_flip(onnx_builder *b, const fm_model *m) {
    int64_t *reversed = add_int64_initializer(b, "tta.columns", m->in_w);
    for (uint32_t x = 0; reversed && x < m->in_w; x++) reversed[x] = (int64_t)(m->in_w - 1 - x);
    const char *scaled = b->value, *columns = "tta.columns", *flipped = "tta.flipped";
    add_node1(b, "Gather", "tta.flip", flipped, &columns, 1, int_attribute(b, "axis", 3));
    b->value = scaled;
    add_node1(b, "Concat", "tta.concat", "tta.both", &flipped, 1, int_attribute(b, "axis", 0));
}

/* ... and the two halves of the [2N, C] probabilities averaged: [2, N, C], mean over axis 0, which
 * is (p + p') / 2, the same bits as fmnist's 0.5 * (p + p'). */
static void emit_tta_mean(onnx_builder *b, const fm_model *m) {
    int64_t *shape = add_int64_initializer(b, "tta.shape", 3);
    if (shape) shape[0] = 2, shape[1] = -1, shape[2] = m->classes.n;
    const char *shape_name = "tta.shape";
    add_node1(b, "Reshape", "tta.reshape", "tta.pairs", &shape_name, 1, NULL);
    int64_t axes[1] = {0};
    Onnx__AttributeProto *attrs[2] = {ints_attribute(b, "axes", axes, 1), int_attribute(b, "keepdims", 0)};
    add_node(b, "ReduceMean", "tta.mean", "probabilities", NULL, 0, attrs, 2);
}

/* One layer, with PyTorch's name (layers.K) so that nodes and initializers match the safetensors
 * file and nn.Sequential; dropout, the identity at inference, has no node. A new layer kind gets
 * its case here; without one, -Wswitch names the missing case, and the export fails with a clear
 * message rather than writing a wrong graph. Returns 0 for a kind it does not know. */
static int emit_layer(onnx_builder *b, const fm_model *m, int l) {
    const fm_layer *L = &m->layers[l];
    char name[32];
    switch (L->kind) {
    case FM_LAYER_DENSE:
        snprintf(name, sizeof name, "layers.%d.flatten", l);
        flatten_to_2d(b, name);
        emit_dense(b, m, l);
        return 1;
    case FM_LAYER_RELU: emit_elementwise(b, "Relu", l, NULL); return 1;
    case FM_LAYER_TANH: emit_elementwise(b, "Tanh", l, NULL); return 1;
    case FM_LAYER_SIGMOID: emit_elementwise(b, "Sigmoid", l, NULL); return 1;
    case FM_LAYER_LEAKYRELU: emit_elementwise(b, "LeakyRelu", l, float_attribute(b, "alpha", L->rate)); return 1;
    case FM_LAYER_CONV: emit_conv(b, m, l); return 1;
    case FM_LAYER_MAXPOOL: emit_pool(b, "MaxPool", L, l); return 1;
    case FM_LAYER_AVGPOOL: emit_pool(b, "AveragePool", L, l); return 1;
    case FM_LAYER_GAP:
        /* [N, C, H, W] -> [N, C, 1, 1]: fmnist's (B, C) with the unit dimensions kept; a dense
         * layer after it flattens, a batch norm reads C channels either way. */
        emit_elementwise(b, "GlobalAveragePool", l, NULL);
        return 1;
    case FM_LAYER_BATCHNORM: emit_batchnorm(b, m, l); return 1;
    case FM_LAYER_DROPOUT: return 1;
    case FM_LAYER_ADD: {
        /* The block's output plus its input; the spec parser made sure both have one rank. */
        const char *skip = L->from < 0 ? b->net_input : b->outputs[L->from];
        snprintf(name, sizeof name, "layers.%d", l);
        add_node1(b, "Add", name, ob_printf(b, "%s.output", name), &skip, 1, NULL);
        return 1;
    }
    case FM_LAYER_FLATTEN:
        /* An explicit flatten of an already flat value is still a node, so the graph's node
         * names follow the spec. NCHW flattened from axis 1 is fmnist's (C, H, W) order. */
        snprintf(name, sizeof name, "layers.%d", l);
        add_node1(b, "Flatten", name, ob_printf(b, "%s.output", name), NULL, 0, int_attribute(b, "axis", 1));
        b->rank = 2;
        return 1;
    }
    return 0;
}

/* A float tensor type with the given dimensions; a dimension of 0 is the symbolic batch "N". */
static Onnx__ValueInfoProto *value_info(onnx_builder *b, const char *name, const char *doc,
                                        const int64_t *dims, size_t ndim) {
    Onnx__ValueInfoProto *v = ob_alloc(b, sizeof *v);
    Onnx__TypeProto *type = ob_alloc(b, sizeof *type);
    Onnx__TypeProto__Tensor *tt = ob_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *shape = ob_alloc(b, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **d = ob_alloc(b, ndim * sizeof *d);
    char *nm = ob_printf(b, "%s", name), *doc_s = ob_printf(b, "%s", doc);
    if (!v || !type || !tt || !shape || !d || !nm || !doc_s) return NULL;
    for (size_t i = 0; i < ndim; i++) {
        if (!(d[i] = ob_alloc(b, sizeof *d[i]))) return NULL;
        onnx__tensor_shape_proto__dimension__init(d[i]);
        if (dims[i] == 0) {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            if (!(d[i]->dim_param = ob_printf(b, "N"))) return NULL;
        } else {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[i]->dim_value = dims[i];
        }
    }
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = ndim, shape->dim = d;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1, tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = nm, v->type = type, v->doc_string = doc_s;
    return v;
}

static Onnx__StringStringEntryProto *meta_entry(onnx_builder *b, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = ob_alloc(b, sizeof *e);
    char *k = ob_printf(b, "%s", key), *v = ob_printf(b, "%s", value ? value : "");
    if (!e || !k || !v) return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = k, e->value = v;
    return e;
}

/* ---------------------------------------------------------------- the model */

static fm_status write_atomically(const char *path, const uint8_t *data, size_t len, fm_error *err) {
    char tmp[FM_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return fm_fail(err, FM_ERR_ARG, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(saved ? saved : EIO));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: cannot replace: %s", path, strerror(saved));
    }
    return FM_OK;
}

fm_status fm_model_export_onnx(const fm_model *m, const char *path, fm_error *err) {
    onnx_builder b = {0};
    b.value = "input";
    b.rank = 4;
    int C = m->classes.n;
    fm_status s = FM_OK;
    uint8_t *packed = NULL;

    emit_scaling(&b, m);
    if (m->tta_flip) emit_tta_flip(&b, m);
    b.net_input = b.value;
    for (int l = 0; l < m->n_layers; l++) {
        int ok = emit_layer(&b, m, l);
        b.outputs[l] = b.value;
        if (!ok) {
            s = fm_fail(err, FM_ERR_ARG, "ONNX export: layer %d (%s) has no ONNX form", l,
                        fm_layer_kind_name(m->layers[l].kind));
            goto done;
        }
    }
    flatten_to_2d(&b, "flatten"); /* only when no dense layer did it: the output is [N, C] */
    add_node1(&b, "Softmax", "softmax", m->tta_flip ? "tta.probabilities" : "probabilities", NULL, 0,
              int_attribute(&b, "axis", 1));
    if (m->tta_flip) emit_tta_mean(&b, m);

    char input_doc[256], output_doc[256];
    snprintf(input_doc, sizeof input_doc,
             "float32 [N,1,%u,%u]: pixel/255 in [0,1], the item light on a black background as in "
             "Fashion-MNIST; the graph applies the model's scaling itself",
             m->in_h, m->in_w);
    snprintf(output_doc, sizeof output_doc,
             "float32 [N,%d]: class probabilities (softmax of the logits%s), in the order of the "
             "\"classes\" metadata",
             C, m->tta_flip ? ", averaged with the mirror image's: test-time flips" : "");
    int64_t in_dims[4] = {0, 1, m->in_h, m->in_w}, out_dims[2] = {0, C};
    Onnx__ValueInfoProto *input = value_info(&b, "input", input_doc, in_dims, 4);
    Onnx__ValueInfoProto *output = value_info(&b, "probabilities", output_doc, out_dims, 2);

    cJSON *names = cJSON_CreateArray();
    for (int k = 0; names && k < C; k++) cJSON_AddItemToArray(names, cJSON_CreateString(m->classes.names[k]));
    char *classes_json = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(names);
    char mean[32], std[32];
    snprintf(mean, sizeof mean, "%.9g", (double)m->scaling.mean);
    snprintf(std, sizeof std, "%.9g", (double)m->scaling.std);
    Onnx__StringStringEntryProto *meta[] = {
        meta_entry(&b, "input", input_doc),
        meta_entry(&b, "output", output_doc),
        meta_entry(&b, "classes", classes_json),
        meta_entry(&b, "spec", m->spec),
        meta_entry(&b, "scaling", m->scaling.kind == FM_SCALE_STANDARD ? "standard" : "unit"),
        meta_entry(&b, "scaling_mean", mean),
        meta_entry(&b, "scaling_std", std),
        meta_entry(&b, "tta", m->tta_flip ? "flip" : "none"),
    };
    free(classes_json);
    if (!classes_json) b.oom = 1;

    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1, opset.version = ONNX_OPSET;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = "fmnist";
    graph.n_node = b.n_nodes, graph.node = b.nodes;
    graph.n_initializer = b.n_inits, graph.initializer = b.inits;
    graph.n_input = 1, graph.input = &input;
    graph.n_output = 1, graph.output = &output;

    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1, model.ir_version = ONNX_IR_VERSION;
    model.n_opset_import = 1, model.opset_import = opsets;
    model.producer_name = "fmnist";
    model.producer_version = FM_VERSION;
    model.has_model_version = 1, model.model_version = 1;
    model.doc_string = "A Fashion-MNIST classifier trained with fmnist. Input: pixel/255, item light "
                       "on black. Output: class probabilities; class names in metadata \"classes\".";
    model.graph = &graph;
    model.n_metadata_props = sizeof meta / sizeof meta[0];
    model.metadata_props = meta;
    for (size_t i = 0; i < model.n_metadata_props; i++) b.oom |= meta[i] == NULL;
    if (b.oom || !input || !output) {
        s = fm_fail(err, FM_ERR_NOMEM, "%s: out of memory building the ONNX graph", path);
        goto done;
    }
    size_t len = onnx__model_proto__get_packed_size(&model);
    packed = malloc(len ? len : 1);
    if (!packed) {
        s = fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for %zu bytes of ONNX", path, len);
        goto done;
    }
    onnx__model_proto__pack(&model, packed);
    s = write_atomically(path, packed, len, err);
done:
    free(packed);
    ob_free(&b);
    return s;
}
