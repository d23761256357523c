/* model.c — the sequential model: spec parsing, the flat parameter array, weight initialisation,
 * forward and backward through the layer list, the Keras-style summary, and inference. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FM_MAX_UNITS 65536
#define FM_MAX_PARAMS (1u << 28) /* 1 GiB of float32 weights */

static const struct { const char *name, *spec; } PRESETS[] = {
    {"mlp", "dense:128:relu,dense:10"},
    {"mlp64", "dense:64:relu,dense:10"},
    {"mlp256", "dense:256:relu,dense:10"},
    {"mlp2", "dense:128:relu,dense:128:relu,dense:10"},
    {"mlp300-100", "dense:300:relu,dense:100:relu,dense:10"},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

const char *fm_preset_spec(const char *name) {
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (strcmp(PRESETS[i].name, name) == 0) return PRESETS[i].spec;
    }
    return NULL;
}

const char *const *fm_preset_names(void) {
    static const char *const names[N_PRESETS + 1] = {"mlp", "mlp64", "mlp256", "mlp2",
                                                     "mlp300-100", NULL};
    return names;
}

const char *fm_layer_kind_name(fm_layer_kind k) {
    static const char *const n[] = {"Dense", "ReLU", "Tanh", "Sigmoid", "Flatten"};
    return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}

const char *fm_layer_spec_name(fm_layer_kind k) {
    static const char *const n[] = {"dense", "relu", "tanh", "sigmoid", "flatten"};
    return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}

static int parse_activation(const char *s, size_t len, fm_layer_kind *out) {
    static const struct { const char *name; fm_layer_kind kind; } acts[] = {
        {"relu", FM_LAYER_RELU}, {"tanh", FM_LAYER_TANH}, {"sigmoid", FM_LAYER_SIGMOID}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strlen(acts[i].name) == len && strncmp(acts[i].name, s, len) == 0) {
            *out = acts[i].kind;
            return 1;
        }
    }
    return 0;
}

/* Appends a layer with the given output width to the list, shapes derived from the previous. */
static fm_status push_layer(fm_layer *layers, int *n, fm_layer_kind kind, uint32_t units,
                            uint32_t in_h, uint32_t in_w, const char *item, fm_error *err) {
    if (*n >= FM_MAX_LAYERS) {
        return fm_fail(err, FM_ERR_ARG, "model spec: more than %d layers at \"%s\"", FM_MAX_LAYERS,
                       item);
    }
    fm_layer L = {0};
    L.kind = kind;
    if (*n == 0) {
        L.in_c = 1, L.in_h = in_h, L.in_w = in_w;
    } else {
        const fm_layer *p = &layers[*n - 1];
        L.in_c = p->out_c, L.in_h = p->out_h, L.in_w = p->out_w;
    }
    L.in_size = L.in_c * L.in_h * L.in_w;
    switch (kind) {
    case FM_LAYER_DENSE:
        L.out_c = units, L.out_h = 1, L.out_w = 1;
        L.n_params = (size_t)units * L.in_size + units;
        break;
    case FM_LAYER_FLATTEN:
        L.out_c = L.in_size, L.out_h = 1, L.out_w = 1;
        break;
    default:
        L.out_c = L.in_c, L.out_h = L.in_h, L.out_w = L.in_w;
    }
    L.out_size = L.out_c * L.out_h * L.out_w;
    layers[(*n)++] = L;
    return FM_OK;
}

fm_status fm_spec_parse(const char *spec, uint32_t in_h, uint32_t in_w, int n_classes,
                        fm_layer *layers, int *n_layers, char *canonical, size_t cap,
                        fm_error *err) {
    if (!spec || !*spec) return fm_fail(err, FM_ERR_ARG, "model spec is empty");
    const char *preset = fm_preset_spec(spec);
    if (preset) spec = preset;
    if (strlen(spec) >= FM_SPEC_MAX) {
        return fm_fail(err, FM_ERR_ARG, "model spec is longer than %d characters", FM_SPEC_MAX - 1);
    }
    char buf[FM_SPEC_MAX];
    snprintf(buf, sizeof buf, "%s", spec);
    int n = 0;
    size_t params = 0;
    fm_status s = FM_OK;
    char *save = NULL;
    int items = 0;
    for (char *p = buf;; p = NULL) {
        /* strtok would skip empty items; they are errors here, so split by hand. */
        char *item = p ? p : save;
        if (!item) break;
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        save = comma ? comma + 1 : NULL;
        while (isspace((unsigned char)*item)) item++;
        char *end = item + strlen(item);
        while (end > item && isspace((unsigned char)end[-1])) *--end = '\0';
        items++;
        if (!*item) return fm_fail(err, FM_ERR_ARG, "model spec \"%s\": empty layer at position %d", spec, items);

        char *colon = strchr(item, ':');
        size_t head = colon ? (size_t)(colon - item) : strlen(item);
        fm_layer_kind act;
        if (head == 5 && strncmp(item, "dense", 5) == 0) {
            if (!colon) {
                return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" needs a width, e.g. dense:128", item);
            }
            char *arg = colon + 1, *num_end;
            errno = 0;
            long units = strtol(arg, &num_end, 10);
            if (num_end == arg || (*num_end && *num_end != ':') || errno || units < 1 ||
                units > FM_MAX_UNITS) {
                return fm_fail(err, FM_ERR_ARG,
                               "model spec: \"%s\": width must be an integer in 1..%d", item,
                               FM_MAX_UNITS);
            }
            s = push_layer(layers, &n, FM_LAYER_DENSE, (uint32_t)units, in_h, in_w, item, err);
            if (s) return s;
            if (*num_end == ':') {
                const char *a = num_end + 1;
                if (strcmp(a, "linear") == 0 || strcmp(a, "none") == 0) {
                    /* no activation */
                } else if (strcmp(a, "softmax") == 0) {
                    return fm_fail(err, FM_ERR_ARG,
                                   "model spec: \"%s\": the last layer gives logits and the loss "
                                   "applies softmax itself; write dense:%ld",
                                   item, units);
                } else if (parse_activation(a, strlen(a), &act)) {
                    s = push_layer(layers, &n, act, 0, in_h, in_w, item, err);
                    if (s) return s;
                } else {
                    return fm_fail(err, FM_ERR_ARG,
                                   "model spec: \"%s\": unknown activation \"%s\" (relu, tanh, "
                                   "sigmoid, linear)",
                                   item, a);
                }
            }
        } else if (!colon && parse_activation(item, head, &act)) {
            s = push_layer(layers, &n, act, 0, in_h, in_w, item, err);
            if (s) return s;
        } else if (!colon && strcmp(item, "flatten") == 0) {
            s = push_layer(layers, &n, FM_LAYER_FLATTEN, 0, in_h, in_w, item, err);
            if (s) return s;
        } else {
            return fm_fail(err, FM_ERR_ARG,
                           "model spec: unknown layer \"%s\" (expected dense:UNITS[:ACT], relu, "
                           "tanh, sigmoid or flatten; presets: mlp, mlp64, mlp256, mlp2, "
                           "mlp300-100)",
                           item);
        }
        params += layers[n - 1].n_params;
        if (params > FM_MAX_PARAMS) {
            return fm_fail(err, FM_ERR_ARG, "model spec: more than %u parameters at \"%s\"",
                           FM_MAX_PARAMS, item);
        }
    }
    int dense = 0;
    for (int i = 0; i < n; i++) dense += layers[i].kind == FM_LAYER_DENSE;
    if (!dense) return fm_fail(err, FM_ERR_ARG, "model spec \"%s\" has no dense layer to learn with", spec);
    if (layers[n - 1].out_size != (uint32_t)n_classes) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec \"%s\" ends with %u outputs but there are %d classes (end with "
                       "dense:%d)",
                       spec, layers[n - 1].out_size, n_classes, n_classes);
    }
    *n_layers = n;
    if (canonical) {
        size_t len = 0;
        canonical[0] = '\0';
        for (int i = 0; i < n && len < cap; i++) {
            const fm_layer *L = &layers[i];
            if (L->kind == FM_LAYER_DENSE) {
                len += (size_t)snprintf(canonical + len, cap - len, "%sdense:%u", i ? "," : "", L->out_size);
            } else {
                len += (size_t)snprintf(canonical + len, cap - len, "%s%s", i ? "," : "",
                                        fm_layer_spec_name(L->kind));
            }
        }
    }
    return FM_OK;
}

fm_model_params fm_model_default_params(void) {
    fm_model_params p;
    memset(&p, 0, sizeof p);
    p.init = FM_INIT_GLOROT_UNIFORM;
    p.seed = 1;
    fm_classes_parse("fashion", &p.classes, NULL);
    p.scaling.kind = FM_SCALE_UNIT;
    p.scaling.mean = 0.0f;
    p.scaling.std = 1.0f;
    return p;
}

void fm_model_init_weights(fm_model *m, fm_init init, uint64_t seed) {
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    memset(m->params, 0, m->n_params * sizeof(float)); /* biases start at zero, as in Keras */
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        if (L->kind != FM_LAYER_DENSE) continue;
        double fan_in = L->in_size, fan_out = L->out_size;
        /* Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); He: a = sqrt(6 / fan_in). */
        float limit = (float)(init == FM_INIT_HE_UNIFORM ? sqrt(6.0 / fan_in)
                                                          : sqrt(6.0 / (fan_in + fan_out)));
        /* Drawn in the file's [out, in] order, stored [in, out]: the layout is ours, the
         * initial weights are those of every earlier version with the same seed. */
        float *w = m->params + L->w_off;
        size_t I = L->in_size, O = L->out_size;
        for (size_t o = 0; o < O; o++) {
            for (size_t i = 0; i < I; i++) w[i * O + o] = (2.0f * fm_rng_uniform(&rng) - 1.0f) * limit;
        }
    }
}

fm_status fm_model_create(const char *spec, uint32_t in_h, uint32_t in_w, const fm_model_params *p,
                          fm_model **out, fm_error *err) {
    *out = NULL;
    fm_model_params def = fm_model_default_params();
    if (!p) p = &def;
    if (in_h == 0 || in_w == 0 || in_h > FM_IDX_MAX_SIDE || in_w > FM_IDX_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "input size %ux%u is outside 1..%u per side", in_h, in_w,
                       FM_IDX_MAX_SIDE);
    }
    if (p->classes.n < 2 || p->classes.n > FM_MAX_CLASSES) {
        return fm_fail(err, FM_ERR_ARG, "number of classes %d is outside 2..%d", p->classes.n,
                       FM_MAX_CLASSES);
    }
    if (!(p->scaling.std > 0.0f) || !isfinite(p->scaling.std) || !isfinite(p->scaling.mean)) {
        return fm_fail(err, FM_ERR_ARG, "input scaling needs a finite mean and a positive std");
    }
    fm_model *m = calloc(1, sizeof *m);
    if (!m) return fm_fail(err, FM_ERR_NOMEM, "out of memory creating the model");
    fm_status s = fm_spec_parse(spec, in_h, in_w, p->classes.n, m->layers, &m->n_layers, m->spec,
                                sizeof m->spec, err);
    if (s) {
        free(m);
        return s;
    }
    m->in_h = in_h;
    m->in_w = in_w;
    m->classes = p->classes;
    m->scaling = p->scaling;
    size_t off = 0, act = in_h * in_w, width = act;
    for (int l = 0; l < m->n_layers; l++) {
        fm_layer *L = &m->layers[l];
        if (L->kind == FM_LAYER_DENSE) {
            L->w_off = off;
            L->b_off = off + (size_t)L->out_size * L->in_size;
            off += L->n_params;
        }
        L->act_off = act;
        act += L->out_size;
        if (L->out_size > width) width = L->out_size;
    }
    m->n_params = off;
    m->act_per_row = act;
    m->max_width = width;
    m->params = malloc(off * sizeof(float));
    if (!m->params) {
        free(m);
        return fm_fail(err, FM_ERR_NOMEM, "out of memory for %zu parameters", off);
    }
    fm_model_init_weights(m, p->init, p->seed);
    *out = m;
    return FM_OK;
}

void fm_model_free(fm_model *m) {
    if (!m) return;
    free(m->params);
    free(m->acts);
    free(m->dbuf[0]);
    free(m->dbuf[1]);
    free(m->probs);
    fm_pool_free(m->pool);
    free(m);
}

fm_pool *fm_model_pool(fm_model *m, int threads) {
    int n = fm_threads_resolve(threads);
    if (n <= 1) return NULL;
    if (m->pool && fm_pool_threads(m->pool) != n) {
        fm_pool_free(m->pool);
        m->pool = NULL;
    }
    if (!m->pool) m->pool = fm_pool_create(n);
    return m->pool;
}

fm_status fm_model_reserve(fm_model *m, uint32_t batch, fm_error *err) {
    if (batch <= m->cap_batch) return FM_OK;
    float *acts = malloc((size_t)batch * m->act_per_row * sizeof(float));
    float *d0 = malloc((size_t)batch * m->max_width * sizeof(float));
    float *d1 = malloc((size_t)batch * m->max_width * sizeof(float));
    float *probs = malloc((size_t)batch * m->classes.n * sizeof(float));
    if (!acts || !d0 || !d1 || !probs) {
        free(acts), free(d0), free(d1), free(probs);
        return fm_fail(err, FM_ERR_NOMEM, "out of memory for a batch of %u", batch);
    }
    free(m->acts), free(m->dbuf[0]), free(m->dbuf[1]), free(m->probs);
    m->acts = acts, m->dbuf[0] = d0, m->dbuf[1] = d1, m->probs = probs;
    m->cap_batch = batch;
    return FM_OK;
}

/* The arena is laid out layer-major: the input block [cap, in] then each layer's [cap, out], so
 * a layer's output for the batch is one contiguous (B, out) matrix. */
static float *act_at(const fm_model *m, int layer) {
    size_t off = layer < 0 ? 0 : m->layers[layer].act_off;
    return m->acts + off * m->cap_batch;
}

/* A dense layer followed by a ReLU runs as one pass that writes the ReLU's output; the dense
 * layer's own slot is then left unused. */
static int relu_follows(const fm_model *m, int l) {
    return l + 1 < m->n_layers && m->layers[l + 1].kind == FM_LAYER_RELU;
}

float *fm_model_forward(fm_model *m, int B, int threads) {
    return fm_model_forward_from(m, act_at(m, -1), B, threads);
}

float *fm_model_forward_from(fm_model *m, const float *x, int B, int threads) {
    fm_pool *pool = fm_model_pool(m, threads);
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        float *y = act_at(m, l);
        size_t n = (size_t)B * L->out_size;
        switch (L->kind) {
        case FM_LAYER_DENSE: {
            int relu = relu_follows(m, l);
            if (relu) y = act_at(m, ++l);
            dense_forward(y, x, m->params + L->w_off, m->params + L->b_off, B, (int)L->in_size,
                          (int)L->out_size, relu, pool);
            break;
        }
        case FM_LAYER_RELU: relu_forward(y, x, n); break;
        case FM_LAYER_TANH: tanh_forward(y, x, n); break;
        case FM_LAYER_SIGMOID: sigmoid_forward(y, x, n); break;
        case FM_LAYER_FLATTEN: memcpy(y, x, n * sizeof(float)); break;
        }
        x = y;
    }
    return (float *)x;
}

void fm_model_backward(fm_model *m, const float *dlogits, float *grads, int B, int threads,
                       const fm_adam_fused *adam) {
    fm_pool *pool = fm_model_pool(m, threads);
    const float *dout = dlogits;
    int which = dlogits == m->dbuf[0] ? 1 : 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const fm_layer *L = &m->layers[l];
        size_t n = (size_t)B * L->out_size;
        const float *y = act_at(m, l);
        float *dinp = m->dbuf[which];
        if (L->kind == FM_LAYER_DENSE) {
            /* A ReLU in front (one that a dense layer fed, so fused in forward, or any other):
             * its backward pass is a mask on our input gradient, applied in the same pass. */
            int relu_before = l > 0 && m->layers[l - 1].kind == FM_LAYER_RELU;
            int input_layer = relu_before ? l - 1 : l;
            if (input_layer == 0) dinp = NULL;
            fm_adam_update aw, ab;
            if (adam) {
                aw = (fm_adam_update){m->params + L->w_off, adam->m + L->w_off, adam->v + L->w_off,
                                      (int)L->out_size, adam->alpha, adam->beta1, adam->beta2,
                                      adam->eps, 2.0f * adam->l2};
                ab = aw;
                ab.params = m->params + L->b_off, ab.m = adam->m + L->b_off;
                ab.v = adam->v + L->b_off, ab.l2x2 = 0.0f; /* biases are not regularised */
            }
            dense_backward(dinp, grads + L->w_off, grads + L->b_off, dout, act_at(m, l - 1),
                           m->params + L->w_off, B, (int)L->in_size, (int)L->out_size, 0,
                           relu_before, adam ? &aw : NULL, adam ? &ab : NULL, pool);
            l = input_layer;
        } else {
            if (l == 0) break;
            switch (L->kind) {
            case FM_LAYER_RELU: relu_backward(dinp, dout, y, n); break;
            case FM_LAYER_TANH: tanh_backward(dinp, dout, y, n); break;
            case FM_LAYER_SIGMOID: sigmoid_backward(dinp, dout, y, n); break;
            default: memcpy(dinp, dout, n * sizeof(float)); break;
            }
        }
        if (!dinp) break;
        dout = dinp;
        which ^= 1;
    }
}

const char *fm_model_spec(const fm_model *m) { return m->spec; }
size_t fm_model_param_count(const fm_model *m) { return m->n_params; }
const fm_classes *fm_model_classes(const fm_model *m) { return &m->classes; }
fm_scaling fm_model_scaling(const fm_model *m) { return m->scaling; }
void fm_model_set_scaling(fm_model *m, fm_scaling sc) { m->scaling = sc; }
void fm_model_input_shape(const fm_model *m, uint32_t *h, uint32_t *w) {
    *h = m->in_h;
    *w = m->in_w;
}

/* 1234567 -> "1,234,567" as Keras prints parameter counts. */
static void thousands(char *out, size_t cap, size_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

#define SUMMARY_APPEND(...)                                                                    \
    do {                                                                                       \
        int k_ = snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__); \
        if (k_ > 0) len += (size_t)k_;                                                         \
    } while (0)

size_t fm_model_summary(const fm_model *m, const char *title, char *buf, size_t cap) {
    size_t len = 0;
    char line[66];
    memset(line, '_', 65), line[65] = '\0';
    char dline[66];
    memset(dline, '=', 65), dline[65] = '\0';
    if (cap) buf[0] = '\0';
    SUMMARY_APPEND("Model: \"%s\"\n", title ? title : m->spec);
    SUMMARY_APPEND("Spec: %s\n", m->spec);
    SUMMARY_APPEND("Input: (None, %u, %u), scaling %s", m->in_h, m->in_w,
                   m->scaling.kind == FM_SCALE_STANDARD ? "standard" : "x/255");
    if (m->scaling.kind == FM_SCALE_STANDARD) {
        SUMMARY_APPEND(" (mean %.4f, std %.4f)", m->scaling.mean, m->scaling.std);
    }
    SUMMARY_APPEND("\n%s\n %-27s%-26s%s\n%s\n", line, "Layer (type)", "Output Shape", "Param #", dline);
    int implicit_flatten = m->n_layers > 0 && m->layers[0].kind == FM_LAYER_DENSE;
    if (implicit_flatten) {
        char shape[32];
        snprintf(shape, sizeof shape, "(None, %u)", m->in_h * m->in_w);
        SUMMARY_APPEND(" %-27s%-26s%s\n", "flatten (Flatten)", shape, "0");
    }
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        char name[64], shape[48], count[32];
        snprintf(name, sizeof name, "layers.%d (%s)", l, fm_layer_kind_name(L->kind));
        if (L->out_h == 1 && L->out_w == 1) {
            snprintf(shape, sizeof shape, "(None, %u)", L->out_c);
        } else {
            snprintf(shape, sizeof shape, "(None, %u, %u, %u)", L->out_c, L->out_h, L->out_w);
        }
        thousands(count, sizeof count, L->n_params);
        SUMMARY_APPEND(" %-27s%-26s%s\n", name, shape, count);
    }
    char total[32];
    thousands(total, sizeof total, m->n_params);
    SUMMARY_APPEND("%s\nTotal params: %s (%.2f KB)\nTrainable params: %s\nNon-trainable params: 0\n%s\n",
                   dline, total, (double)m->n_params * 4.0 / 1024.0, total, line);
    return len;
}

/* Inference runs in chunks of at most 1000 rows, the size the arena is reserved for once. */
#define PREDICT_CHUNK 1000u

fm_status fm_predict_inputs(fm_model *m, const float *x, uint32_t count, float *probs,
                            int threads, fm_error *err) {
    uint32_t chunk = count < PREDICT_CHUNK ? (count ? count : 1) : PREDICT_CHUNK;
    fm_status s = fm_model_reserve(m, chunk, err);
    if (s) return s;
    size_t D = fm_model_in_size(m);
    int C = m->classes.n;
    for (uint32_t i = 0; i < count; i += chunk) {
        uint32_t B = count - i < chunk ? count - i : chunk;
        /* The caller's rows are the first layer's input as they are: no copy. */
        const float *logits = fm_model_forward_from(m, x + (size_t)i * D, (int)B, threads);
        softmax_forward(probs + (size_t)i * C, logits, (int)B, C);
    }
    return FM_OK;
}

fm_status fm_predict_pixels(fm_model *m, const uint8_t *pixels, uint32_t count, float *probs,
                            int threads, fm_error *err) {
    fm_dataset images = {count, m->in_h, m->in_w, (uint8_t *)pixels, NULL, m->classes.n};
    uint32_t chunk = count < PREDICT_CHUNK ? (count ? count : 1) : PREDICT_CHUNK;
    fm_status s = fm_model_reserve(m, chunk, err);
    if (s) return s;
    int C = m->classes.n;
    for (uint32_t i = 0; i < count; i += chunk) {
        uint32_t B = count - i < chunk ? count - i : chunk;
        fm_dataset part = fm_dataset_slice(&images, i, B);
        fm_scale_images(fm_model_input(m), &part, NULL, B, m->scaling);
        const float *logits = fm_model_forward(m, (int)B, threads);
        softmax_forward(probs + (size_t)i * C, logits, (int)B, C);
    }
    return FM_OK;
}

fm_status fm_predict(fm_model *m, const fm_dataset *ds, uint32_t start, uint32_t count,
                     float *probs, int threads, fm_error *err) {
    if (ds->h != m->in_h || ds->w != m->in_w) {
        return fm_fail(err, FM_ERR_ARG, "the model takes %ux%u images but the data has %ux%u",
                       m->in_h, m->in_w, ds->h, ds->w);
    }
    if (start > ds->n || count > ds->n - start) {
        return fm_fail(err, FM_ERR_ARG, "images %u..%u are outside the %u in the set", start,
                       start + count, ds->n);
    }
    return fm_predict_pixels(m, ds->images + (size_t)start * ds->h * ds->w, count, probs, threads,
                             err);
}
