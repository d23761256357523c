/* fuzz_onnx.c — libFuzzer target for ONNX export. The first byte picks where the model comes
 * from: a fuzzed safetensors file (loaded as `fmnist export` loads it), or a fuzzed spec with
 * fuzzed input size, classes, scaling and weights. Every model that exists either exports to a
 * file that protobuf-c reads back as a well-formed graph (each node's inputs defined before it,
 * initializers the size their dims say, "input" in and "probabilities" out), or fails with a
 * message and leaves no file behind. */
#include "fuzz_common.h"
#include "internal.h"

#include "onnx/onnx.pb-c.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

/* Reads b little-endian bytes from the cursor, 0 past the end. */
static uint32_t take(const uint8_t **p, const uint8_t *end, int b) {
    uint32_t v = 0;
    for (int i = 0; i < b; i++) v |= (uint32_t)(*p < end ? *(*p)++ : 0) << (8 * i);
    return v;
}

static fm_model *model_from_spec(const uint8_t *p, const uint8_t *end) {
    const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
    if (!nul) return NULL;
    const char *spec = (const char *)p;
    p = nul + 1;
    fm_model_params mp = fm_model_default_params();
    uint32_t h = 1 + take(&p, end, 1) % 40, w = 1 + take(&p, end, 1) % 40;
    int classes = 2 + (int)(take(&p, end, 1) % 15);
    char names[16 * 4] = "";
    for (int k = 0; k < classes; k++) snprintf(names + strlen(names), sizeof names - strlen(names), "%sc%d", k ? "," : "", k);
    fm_error err = {0};
    if (fm_classes_parse(names, &mp.classes, &err)) abort();
    uint32_t flags = take(&p, end, 1);
    mp.scaling.kind = flags & 1 ? FM_SCALE_STANDARD : FM_SCALE_UNIT;
    if (flags & 1) mp.scaling.mean = 0.25f, mp.scaling.std = 0.5f;
    mp.seed = take(&p, end, 2);
    fm_model *m = NULL;
    if (fm_model_create(spec, h, w, &mp, &m, &err)) {
        if (err.msg[0] == '\0') abort();
        return NULL;
    }
    fm_model_set_tta(m, (flags >> 1) & 1);
    /* Whatever bytes are left become the first weights, NaN and infinity included: export copies
     * them as they are. */
    size_t n = (size_t)(end - p) / sizeof(float);
    if (n > m->n_params) n = m->n_params;
    memcpy(m->params, p, n * sizeof(float));
    return m;
}

static int defined(char **names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) return 1;
    }
    return 0;
}

/* Reads the exported file back and checks the graph's shape. */
static void check_onnx(const char *path, const fm_model *m) {
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) abort();
    fclose(f);
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, (size_t)len, buf);
    free(buf);
    if (!model || !model->graph) abort();
    const Onnx__GraphProto *g = model->graph;
    if (g->n_input != 1 || strcmp(g->input[0]->name, "input") != 0) abort();
    if (g->n_output != 1 || strcmp(g->output[0]->name, "probabilities") != 0) abort();
    if (g->n_node == 0 || g->node[g->n_node - 1]->n_output != 1 ||
        strcmp(g->node[g->n_node - 1]->output[0], "probabilities") != 0) {
        abort();
    }
    size_t cap = 1 + g->n_initializer + g->n_node, n = 0, weights = 0;
    char **known = malloc(cap * sizeof *known);
    if (!known) abort();
    known[n++] = "input";
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        uint64_t count = 1;
        for (size_t d = 0; d < t->n_dims; d++) {
            if (t->dims[d] <= 0) abort();
            count *= (uint64_t)t->dims[d];
        }
        /* Weights are FLOAT; shapes and axes (Reshape, Unsqueeze, the flips) are INT64. */
        size_t elem = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? sizeof(float)
                      : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? sizeof(int64_t)
                                                                              : 0;
        if (!elem || !t->has_raw_data || t->raw_data.len != count * elem) abort();
        if (elem == sizeof(float)) weights += count;
        known[n++] = t->name;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *node = g->node[i];
        for (size_t k = 0; k < node->n_input; k++) {
            if (!defined(known, n, node->input[k])) abort(); /* used before it is made */
        }
        for (size_t k = 0; k < node->n_output; k++) {
            if (defined(known, n, node->output[k])) abort(); /* made twice */
        }
        if (node->n_output != 1) abort();
        known[n++] = node->output[0];
    }
    /* Every trainable parameter is in the graph (plus the scaling's two constants). */
    if (weights < m->n_params) abort();
    free(known);
    onnx__model_proto__free_unpacked(model, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len < 1) return 0;
    fm_error err = {0};
    fm_model *m = NULL;
    if (data[0] & 1) {
        m = model_from_spec(data + 1, data + len);
    } else {
        const char *st = fuzz_scratch(".safetensors", data + 1, len - 1);
        if (!st) return 0;
        if (fm_model_load(st, &m, &err) != FM_OK && err.msg[0] == '\0') abort();
        unlink(st);
    }
    /* Models the fuzzer makes are small; skip the rare large one to keep runs fast. */
    if (!m || fm_model_param_count(m) > (1u << 20)) {
        fm_model_free(m);
        return 0;
    }
    char base[256], path[272], tmp[288];
    const char *scratch = fuzz_scratch("", "", 0);
    if (!scratch) {
        fm_model_free(m);
        return 0;
    }
    snprintf(base, sizeof base, "%s", scratch);
    unlink(base);
    snprintf(path, sizeof path, "%s.onnx", base);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    memset(&err, 0, sizeof err);
    struct stat sb;
    if (fm_model_export_onnx(m, path, &err) == FM_OK) {
        check_onnx(path, m);
    } else if (err.msg[0] == '\0' || stat(path, &sb) == 0) {
        abort();
    }
    if (stat(tmp, &sb) == 0) abort(); /* the temporary file never stays */
    unlink(path);
    fm_model_free(m);
    return 0;
}
