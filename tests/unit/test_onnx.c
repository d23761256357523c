/* test_onnx.c — the ONNX export read back with the same generated protobuf-c code: structure
 * (opset, IR version, names, shapes, attributes, weights bit for bit, metadata), and the graph
 * evaluated by a small interpreter written here, which must agree with fm_predict. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx/onnx.pb-c.h"

static fm_model *make(test_ctx *t, const char *spec, uint32_t h, uint32_t w, fm_scaling sc, uint64_t seed) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    mp.seed = seed;
    mp.scaling = sc;
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, h, w, &mp, &m, &err) == FM_OK, "%s: %s", spec, err.msg);
    if (!m) return NULL;
    /* Non-zero biases, so a bias read from the wrong place shows. */
    fm_rng rng;
    fm_rng_seed(&rng, seed + 100);
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        if (L->kind != FM_LAYER_DENSE) continue;
        for (uint32_t i = 0; i < L->out_size; i++) m->params[L->b_off + i] = fm_rng_uniform(&rng) - 0.5f;
    }
    return m;
}

static Onnx__ModelProto *export_and_read(test_ctx *t, fm_model *m, const char *name) {
    fm_error err = {0};
    char path[512];
    test_path(path, sizeof path, name);
    CHECK(t, fm_model_export_onnx(m, path, &err) == FM_OK, "%s", err.msg);
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    CHECK(t, bytes != NULL, "cannot read %s back", path);
    if (!bytes) return NULL;
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, len, bytes);
    free(bytes);
    CHECK(t, model != NULL, "%s does not parse as an ONNX ModelProto", path);
    return model;
}

static const char *meta(const Onnx__ModelProto *model, const char *key) {
    for (size_t i = 0; i < model->n_metadata_props; i++) {
        if (strcmp(model->metadata_props[i]->key, key) == 0) return model->metadata_props[i]->value;
    }
    return NULL;
}

static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++) {
        if (strcmp(g->initializer[i]->name, name) == 0) return g->initializer[i];
    }
    return NULL;
}

static int64_t attribute(const Onnx__NodeProto *n, const char *name, int64_t missing) {
    for (size_t i = 0; i < n->n_attribute; i++) {
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->i;
    }
    return missing;
}

void test_onnx_export_structure(test_ctx *t) {
    fm_model *m = make(t, "mlp", 28, 28, (fm_scaling){FM_SCALE_STANDARD, 0.2860402f, 0.3530239f}, 5);
    if (!m) return;
    Onnx__ModelProto *model = export_and_read(t, m, "structure.onnx");
    if (!model) {
        fm_model_free(m);
        return;
    }
    CHECK(t, model->has_ir_version && model->ir_version == 7, "ir_version %lld", (long long)model->ir_version);
    CHECK(t, model->n_opset_import == 1 && model->opset_import[0]->version == 13 &&
                 (!model->opset_import[0]->domain || !*model->opset_import[0]->domain),
          "opset import");
    CHECK(t, model->producer_name && strcmp(model->producer_name, "fmnist") == 0, "producer");
    const Onnx__GraphProto *g = model->graph;

    /* input [N, 1, 28, 28] with N symbolic; output [N, 10] */
    CHECK(t, g->n_input == 1 && strcmp(g->input[0]->name, "input") == 0, "input name");
    const Onnx__TensorShapeProto *is = g->input[0]->type->tensor_type->shape;
    CHECK(t, g->input[0]->type->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, "input type");
    CHECK(t, is->n_dim == 4 && is->dim[0]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                 strcmp(is->dim[0]->dim_param, "N") == 0 && is->dim[1]->dim_value == 1 &&
                 is->dim[2]->dim_value == 28 && is->dim[3]->dim_value == 28,
          "input shape");
    CHECK(t, g->n_output == 1 && strcmp(g->output[0]->name, "probabilities") == 0, "output name");
    const Onnx__TensorShapeProto *os = g->output[0]->type->tensor_type->shape;
    CHECK(t, os->n_dim == 2 && os->dim[1]->dim_value == 10, "output shape");

    /* Sub, Div (standard scaling), Flatten, Gemm, Relu, Gemm, Softmax */
    static const char *const ops[] = {"Sub", "Div", "Flatten", "Gemm", "Relu", "Gemm", "Softmax"};
    CHECK(t, g->n_node == 7, "%zu nodes", g->n_node);
    for (size_t i = 0; i < g->n_node && i < 7; i++) {
        CHECK(t, strcmp(g->node[i]->op_type, ops[i]) == 0, "node %zu is %s, expected %s", i, g->node[i]->op_type, ops[i]);
        if (strcmp(ops[i], "Gemm") == 0) CHECK(t, attribute(g->node[i], "transB", 0) == 1, "Gemm %zu transB", i);
        if (strcmp(ops[i], "Softmax") == 0 || strcmp(ops[i], "Flatten") == 0) {
            CHECK(t, attribute(g->node[i], "axis", -99) == 1, "%s axis", ops[i]);
        }
    }
    CHECK(t, g->n_node == 7 && strcmp(g->node[6]->output[0], "probabilities") == 0, "softmax output");

    /* Weights under PyTorch's names, [out, in] (the model keeps [in, out]), identical bits. */
    const Onnx__TensorProto *w0 = initializer(g, "layers.0.weight"), *b2 = initializer(g, "layers.2.bias");
    float *w_out_in = malloc(128 * 784 * sizeof(float));
    const float *w_mem = m->params + m->layers[0].w_off;
    for (int o = 0; w_out_in && o < 128; o++) {
        for (int i = 0; i < 784; i++) w_out_in[o * 784 + i] = w_mem[i * 128 + o];
    }
    CHECK(t, w0 && w_out_in && w0->n_dims == 2 && w0->dims[0] == 128 && w0->dims[1] == 784 &&
                 w0->raw_data.len == 128 * 784 * 4 &&
                 memcmp(w0->raw_data.data, w_out_in, w0->raw_data.len) == 0,
          "layers.0.weight");
    free(w_out_in);
    CHECK(t, b2 && b2->n_dims == 1 && b2->dims[0] == 10 &&
                 memcmp(b2->raw_data.data, m->params + m->layers[2].b_off, 40) == 0,
          "layers.2.bias");
    const Onnx__TensorProto *mean = initializer(g, "scaling.mean");
    CHECK(t, mean && mean->n_dims == 0 && mean->raw_data.len == 4 &&
                 memcmp(mean->raw_data.data, &m->scaling.mean, 4) == 0,
          "scaling.mean");

    const char *classes = meta(model, "classes"), *input = meta(model, "input");
    CHECK(t, classes && strstr(classes, "\"Ankle boot\"") && classes[0] == '[', "classes %s", classes ? classes : "(none)");
    CHECK(t, input && strstr(input, "pixel/255"), "input description %s", input ? input : "(none)");
    CHECK(t, meta(model, "spec") && strcmp(meta(model, "spec"), "dense:128,relu,dense:10") == 0, "spec");
    CHECK(t, meta(model, "scaling") && strcmp(meta(model, "scaling"), "standard") == 0, "scaling");
    onnx__model_proto__free_unpacked(model, NULL);
    fm_model_free(m);

    /* Unit scaling needs no Sub/Div: the graph starts with the Flatten. */
    m = make(t, "mlp64", 28, 28, (fm_scaling){FM_SCALE_UNIT, 0.0f, 1.0f}, 6);
    model = m ? export_and_read(t, m, "unit.onnx") : NULL;
    if (model) {
        CHECK(t, model->graph->n_node == 5 && strcmp(model->graph->node[0]->op_type, "Flatten") == 0 &&
                     strcmp(model->graph->node[0]->input[0], "input") == 0,
              "unit scaling graph starts with %s", model->graph->node[0]->op_type);
        onnx__model_proto__free_unpacked(model, NULL);
    }
    fm_model_free(m);
}

static const Onnx__NodeProto *node_named(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_node; i++) {
        if (strcmp(g->node[i]->name, name) == 0) return g->node[i];
    }
    return NULL;
}

static const Onnx__AttributeProto *attr_of(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; n && i < n->n_attribute; i++) {
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    }
    return NULL;
}

/* The ints of attribute name equal want[0..n). */
static int ints_are(const Onnx__NodeProto *node, const char *name, const int64_t *want, size_t n) {
    const Onnx__AttributeProto *a = attr_of(node, name);
    return a && a->n_ints == n && memcmp(a->ints, want, n * sizeof *want) == 0;
}

/* A tensor initializer holding exactly the count floats at data, with dimension dim0 first. */
static int floats_are(const Onnx__GraphProto *g, const char *name, int64_t dim0, const float *data, size_t count) {
    const Onnx__TensorProto *t = initializer(g, name);
    return t && t->n_dims >= 1 && t->dims[0] == dim0 && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
           t->raw_data.len == count * 4 && memcmp(t->raw_data.data, data, count * 4) == 0;
}

void test_onnx_export_cnn(test_ctx *t) {
    /* Every layer kind: asymmetric "same" padding (stride 2 on 28 pads 0 before and 1 after; an
     * even kernel pads 1 and 2), batch norm on an image and after a dense layer, dropout (no
     * node), LeakyReLU's slope, both pools, global average pooling, test-time flips. */
    fm_model *m = make(t, "conv:4:3:same:s2:leakyrelu,bn,conv:6:4:same,leakyrelu:0.2,avgpool:2,"
                          "conv:8:3:valid:s2,relu,maxpool:2:1,dense:12,bn,relu,dropout:0.3,dense:10",
                       28, 28, (fm_scaling){FM_SCALE_UNIT, 0.0f, 1.0f}, 21);
    if (!m) return;
    /* Running statistics and batch-norm parameters away from their initial values, so that one
     * read from the wrong place shows. */
    for (size_t i = 0; i < m->n_state; i++) m->state[i] = 0.25f + 0.01f * (float)i;
    m->batches_tracked[1] = 7;
    fm_model_set_tta(m, 1);
    Onnx__ModelProto *model = export_and_read(t, m, "cnn.onnx");
    if (!model) {
        fm_model_free(m);
        return;
    }
    const Onnx__GraphProto *g = model->graph;
    static const char *const ops[] = {"Gather", "Concat", "Conv", "LeakyRelu", "BatchNormalization", "Conv",
                                      "LeakyRelu", "AveragePool", "Conv", "Relu", "MaxPool", "Flatten",
                                      "Gemm", "BatchNormalization", "Relu", "Gemm", "Softmax", "Reshape",
                                      "ReduceMean"};
    size_t n_ops = sizeof ops / sizeof ops[0];
    CHECK(t, g->n_node == n_ops, "%zu nodes, expected %zu", g->n_node, n_ops);
    for (size_t i = 0; i < g->n_node && i < n_ops; i++) {
        CHECK(t, strcmp(g->node[i]->op_type, ops[i]) == 0, "node %zu is %s, expected %s", i, g->node[i]->op_type, ops[i]);
    }
    /* Conv layers.0: [4, 1, 3, 3], stride 2, pads top/left 0 and bottom/right 1. */
    const Onnx__NodeProto *c0 = node_named(g, "layers.0"), *c3 = node_named(g, "layers.3"), *c6 = node_named(g, "layers.6");
    static const int64_t k3[2] = {3, 3}, k4[2] = {4, 4}, s1[2] = {1, 1}, s2[2] = {2, 2};
    static const int64_t pads0[4] = {0, 0, 1, 1}, pads3[4] = {1, 1, 2, 2}, none[4] = {0, 0, 0, 0};
    CHECK(t, c0 && ints_are(c0, "kernel_shape", k3, 2) && ints_are(c0, "strides", s2, 2) && ints_are(c0, "pads", pads0, 4),
          "layers.0 Conv attributes");
    CHECK(t, c3 && ints_are(c3, "kernel_shape", k4, 2) && ints_are(c3, "strides", s1, 2) && ints_are(c3, "pads", pads3, 4),
          "layers.3 Conv attributes");
    CHECK(t, c6 && ints_are(c6, "strides", s2, 2) && ints_are(c6, "pads", none, 4), "layers.6 Conv (valid) attributes");
    CHECK(t, c0 && c0->n_input == 3 && strcmp(c0->input[1], "layers.0.weight") == 0 && strcmp(c0->input[2], "layers.0.bias") == 0,
          "layers.0 inputs");
    const fm_layer *L0 = &m->layers[0];
    CHECK(t, floats_are(g, "layers.0.weight", 4, m->params + L0->w_off, 4 * 9) && initializer(g, "layers.0.weight")->n_dims == 4,
          "layers.0.weight [4, 1, 3, 3] bit for bit");
    CHECK(t, floats_are(g, "layers.0.bias", 4, m->params + L0->b_off, 4), "layers.0.bias");
    /* LeakyReLU slopes: the default 0.01 and the spec's 0.2. */
    const Onnx__AttributeProto *a1 = attr_of(node_named(g, "layers.1"), "alpha"), *a4 = attr_of(node_named(g, "layers.4"), "alpha");
    CHECK(t, a1 && a1->f == 0.01f && a4 && a4->f == 0.2f, "LeakyRelu alpha");
    /* Pools: avgpool 2 (stride 2), maxpool 2 stride 1. */
    CHECK(t, ints_are(node_named(g, "layers.5"), "kernel_shape", (const int64_t[]){2, 2}, 2) &&
                 ints_are(node_named(g, "layers.5"), "strides", s2, 2),
          "AveragePool attributes");
    CHECK(t, ints_are(node_named(g, "layers.8"), "strides", s1, 2), "MaxPool attributes");
    /* Batch norm on the image (4 channels) and after the dense layer (12 features): gamma,
     * beta, running mean and variance under PyTorch's names, eps 1e-5. */
    int bn_layers[2] = {2, 11};
    for (int k = 0; k < 2; k++) {
        const fm_layer *L = &m->layers[bn_layers[k]];
        char names[4][64], node[32];
        static const char *const what[4] = {"weight", "bias", "running_mean", "running_var"};
        const float *want[4] = {m->params + L->w_off, m->params + L->b_off, m->state + L->s_off, m->state + L->s_off + L->in_c};
        snprintf(node, sizeof node, "layers.%d", bn_layers[k]);
        const Onnx__NodeProto *bn = node_named(g, node);
        CHECK(t, L->kind == FM_LAYER_BATCHNORM && bn && bn->n_input == 5, "%s is a BatchNormalization with 5 inputs", node);
        for (int i = 0; bn && i < 4; i++) {
            snprintf(names[i], sizeof names[i], "layers.%d.%s", bn_layers[k], what[i]);
            CHECK(t, strcmp(bn->input[1 + i], names[i]) == 0 && floats_are(g, names[i], L->in_c, want[i], L->in_c),
                  "%s", names[i]);
        }
        const Onnx__AttributeProto *eps = attr_of(bn, "epsilon");
        CHECK(t, eps && eps->f == FM_BN_EPS, "%s epsilon", node);
    }
    /* Test-time flips: columns reversed on axis 3, the pair averaged. */
    const Onnx__TensorProto *cols = initializer(g, "tta.columns");
    int64_t first = -1, last = -1;
    if (cols && cols->raw_data.len == 28 * 8) {
        memcpy(&first, cols->raw_data.data, 8);
        memcpy(&last, cols->raw_data.data + 27 * 8, 8);
    }
    CHECK(t, cols && cols->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && first == 27 && last == 0,
          "tta.columns 27..0");
    CHECK(t, attribute(node_named(g, "tta.flip"), "axis", -1) == 3 && attribute(node_named(g, "tta.concat"), "axis", -1) == 0,
          "flip on the columns, pair on the batch");
    CHECK(t, strcmp(g->node[g->n_node - 1]->output[0], "probabilities") == 0, "the mean is the output");
    CHECK(t, meta(model, "tta") && strcmp(meta(model, "tta"), "flip") == 0, "tta metadata");
    onnx__model_proto__free_unpacked(model, NULL);

    /* Without flips: no Gather, the Softmax is the output. */
    fm_model_set_tta(m, 0);
    model = export_and_read(t, m, "cnn-no-tta.onnx");
    if (model) {
        g = model->graph;
        CHECK(t, g->n_node == n_ops - 4 && strcmp(g->node[0]->op_type, "Conv") == 0 &&
                     strcmp(g->node[g->n_node - 1]->op_type, "Softmax") == 0 &&
                     strcmp(g->node[g->n_node - 1]->output[0], "probabilities") == 0,
              "graph without test-time flips");
        onnx__model_proto__free_unpacked(model, NULL);
    }
    fm_model_free(m);
}

/* ---------------------------------------------------------------- a small ONNX interpreter */

#define MAX_VALUES 256

typedef struct {
    const char *name;
    double *data; /* [rows, cols] */
    size_t rows, cols;
} value;

typedef struct {
    value v[MAX_VALUES];
    int n;
} value_table;

static value *find_value(value_table *vt, const char *name) {
    for (int i = 0; i < vt->n; i++) {
        if (strcmp(vt->v[i].name, name) == 0) return &vt->v[i];
    }
    return NULL;
}

static value *new_value(value_table *vt, const char *name, size_t rows, size_t cols) {
    if (vt->n == MAX_VALUES) return NULL;
    value *v = &vt->v[vt->n++];
    v->name = name, v->rows = rows, v->cols = cols;
    v->data = calloc((rows * cols) > 0 ? rows * cols : 1, sizeof *v->data);
    return v;
}

static float raw_float(const Onnx__TensorProto *t, size_t i) {
    float f;
    memcpy(&f, t->raw_data.data + 4 * i, 4);
    return f;
}

/* Runs the graph on x [N, D] (4-D inputs are held flat: every op here treats [N,1,H,W] as
 * [N, H*W]); returns the output [N, C] in out, or 0 on an op it does not know. */
static int interpret(test_ctx *t, const Onnx__GraphProto *g, const double *x, size_t N, size_t D,
                     double *out, size_t C) {
    value_table vt = {0};
    value *in = new_value(&vt, "input", N, D);
    memcpy(in->data, x, N * D * sizeof *x);
    int ok = 1;
    for (size_t k = 0; ok && k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        value *a = find_value(&vt, n->input[0]);
        CHECK(t, a != NULL, "node %s reads unknown value %s", n->name, n->input[0]);
        if (!a) return 0;
        const char *op = n->op_type;
        value *y;
        if (strcmp(op, "Gemm") == 0) {
            const Onnx__TensorProto *W = initializer(g, n->input[1]), *B = initializer(g, n->input[2]);
            size_t O = (size_t)W->dims[0], I = (size_t)W->dims[1];
            CHECK(t, I == a->cols && attribute(n, "transB", 0) == 1, "Gemm shapes");
            y = new_value(&vt, n->output[0], a->rows, O);
            for (size_t r = 0; r < a->rows; r++) {
                for (size_t o = 0; o < O; o++) {
                    double s = raw_float(B, o);
                    for (size_t i = 0; i < I; i++) s += a->data[r * I + i] * raw_float(W, o * I + i);
                    y->data[r * O + o] = s;
                }
            }
            continue;
        }
        y = new_value(&vt, n->output[0], a->rows, a->cols);
        size_t cnt = a->rows * a->cols;
        if (strcmp(op, "Sub") == 0 || strcmp(op, "Div") == 0) {
            double c = raw_float(initializer(g, n->input[1]), 0);
            for (size_t i = 0; i < cnt; i++) y->data[i] = op[0] == 'S' ? a->data[i] - c : a->data[i] / c;
        } else if (strcmp(op, "Flatten") == 0) {
            memcpy(y->data, a->data, cnt * sizeof *y->data);
        } else if (strcmp(op, "Relu") == 0) {
            for (size_t i = 0; i < cnt; i++) y->data[i] = a->data[i] > 0 ? a->data[i] : 0;
        } else if (strcmp(op, "Tanh") == 0) {
            for (size_t i = 0; i < cnt; i++) y->data[i] = tanh(a->data[i]);
        } else if (strcmp(op, "Sigmoid") == 0) {
            for (size_t i = 0; i < cnt; i++) y->data[i] = 1.0 / (1.0 + exp(-a->data[i]));
        } else if (strcmp(op, "Softmax") == 0) {
            for (size_t r = 0; r < a->rows; r++) {
                const double *z = a->data + r * a->cols;
                double mx = z[0], sum = 0;
                for (size_t c = 1; c < a->cols; c++) mx = z[c] > mx ? z[c] : mx;
                for (size_t c = 0; c < a->cols; c++) sum += exp(z[c] - mx);
                for (size_t c = 0; c < a->cols; c++) y->data[r * a->cols + c] = exp(z[c] - mx) / sum;
            }
        } else {
            CHECK(t, 0, "the test interpreter does not know op %s", op);
            ok = 0;
        }
    }
    value *res = ok ? find_value(&vt, "probabilities") : NULL;
    CHECK(t, !ok || (res && res->rows == N && res->cols == C), "no [N, C] probabilities");
    if (res && res->rows == N && res->cols == C) memcpy(out, res->data, N * C * sizeof *out);
    for (int i = 0; i < vt.n; i++) free(vt.v[i].data);
    return ok && res;
}

void test_onnx_graph_matches_model(test_ctx *t) {
    static const struct { const char *spec; uint32_t h, w; fm_scaling sc; } cases[] = {
        {"mlp", 28, 28, {FM_SCALE_STANDARD, 0.2860402f, 0.3530239f}},
        {"mlp2", 28, 28, {FM_SCALE_UNIT, 0.0f, 1.0f}},
        {"flatten,dense:16:tanh,sigmoid,dense:12:sigmoid,relu,flatten,dense:10", 7, 9, {FM_SCALE_UNIT, 0.0f, 1.0f}},
        {"dense:20:sigmoid,dense:10:tanh", 12, 10, {FM_SCALE_STANDARD, 0.5f, 0.25f}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fm_model *m = make(t, cases[c].spec, cases[c].h, cases[c].w, cases[c].sc, 11 + c);
        Onnx__ModelProto *model = m ? export_and_read(t, m, "graph.onnx") : NULL;
        if (!model) {
            fm_model_free(m);
            continue;
        }
        enum { N = 6 };
        size_t D = (size_t)cases[c].h * cases[c].w;
        uint8_t *pixels = malloc(N * D), labels[N] = {0};
        double *x = malloc(N * D * sizeof *x), ref[N * 10];
        float probs[N * 10];
        fm_rng rng;
        fm_rng_seed(&rng, 77 + c);
        for (size_t i = 0; i < N * D; i++) {
            pixels[i] = (uint8_t)fm_rng_below(&rng, 256);
            x[i] = (float)pixels[i] / 255.0f; /* the export's input contract: pixel / 255 */
        }
        fm_dataset ds = {N, cases[c].h, cases[c].w, pixels, labels, 10};
        fm_error err = {0};
        CHECK(t, fm_predict(m, &ds, 0, N, probs, 1, &err) == FM_OK, "%s", err.msg);
        if (interpret(t, model->graph, x, N, D, ref, 10)) {
            double worst = 0;
            for (size_t i = 0; i < N * 10; i++) worst = fabs(ref[i] - probs[i]) > worst ? fabs(ref[i] - probs[i]) : worst;
            CHECK(t, worst <= 1e-5, "%s: the ONNX graph is %.3g from fm_predict", cases[c].spec, worst);
        }
        free(pixels), free(x);
        onnx__model_proto__free_unpacked(model, NULL);
        fm_model_free(m);
    }
}

void test_onnx_export_bad_path(test_ctx *t) {
    fm_model *m = make(t, "mlp64", 28, 28, (fm_scaling){FM_SCALE_UNIT, 0.0f, 1.0f}, 1);
    if (!m) return;
    fm_error err = {0};
    char dir[512], path[600];
    test_path(dir, sizeof dir, "no-such-folder");
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    CHECK_FAILS(t, fm_model_export_onnx(m, path, &err), FM_ERR_IO, err, "no-such-folder/model.onnx", "cannot create");
    /* Over an existing file, a successful export replaces it whole. */
    test_path(path, sizeof path, "replace.onnx");
    CHECK(t, test_write_file(path, "old", 3), "setup");
    CHECK(t, fm_model_export_onnx(m, path, &err) == FM_OK, "%s", err.msg);
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    Onnx__ModelProto *model = bytes ? onnx__model_proto__unpack(NULL, len, bytes) : NULL;
    CHECK(t, model != NULL, "replaced file does not parse");
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(t, access(tmp, F_OK) != 0, "%s left behind", tmp);
    if (model) onnx__model_proto__free_unpacked(model, NULL);
    free(bytes);
    fm_model_free(m);
}
