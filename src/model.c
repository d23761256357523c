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
    /* Keras's mnist_cnn: the network the issue's PyTorch timing is for. */
    {"cnn", "conv:32:3,relu,conv:64:3,relu,maxpool:2,dropout:0.25,dense:128,relu,dropout:0.5,dense:10"},
    /* Batch norm after every convolution, a residual block (ResNet's basic one) closing the
     * second and third stages, global average pooling; its training settings are in
     * presets.c. The blocks' skips raised validation from 95.20% to 95.54% (loss 0.2183 to
     * 0.2152) at the same cost; the same convolutions without them are the previous preset.
     * With two convolutions in those stages, 95.12% in 31 minutes instead of 44. (No dropout
     * before the classifier: the first recipe's 0.3, with more erasing, under-fitted;
     * docs/cnn.md.) */
    {"cnn-best", "conv:32:3:same,bn,relu,conv:32:3:same,bn,relu,maxpool:2,"
                 "conv:64:3:same,bn,relu,res(conv:64:3:same,bn,relu,conv:64:3:same,bn),relu,maxpool:2,"
                 "conv:128:3:same,bn,relu,res(conv:128:3:same,bn,relu,conv:128:3:same,bn),relu,gap,dense:10"},
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
                                                     "mlp300-100", "cnn", "cnn-best", NULL};
    return names;
}

const char *fm_layer_kind_name(fm_layer_kind k) {
    static const char *const n[] = {"Dense",     "ReLU",      "Tanh",          "Sigmoid",
                                    "Flatten",   "Conv2D",    "MaxPool2D",     "AvgPool2D",
                                    "GlobalAvgPool", "BatchNorm", "Dropout", "LeakyReLU", "Add"};
    return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}

const char *fm_layer_spec_name(fm_layer_kind k) {
    static const char *const n[] = {"dense", "relu",    "tanh", "sigmoid", "flatten",  "conv",
                                    "maxpool", "avgpool", "gap",  "bn",      "dropout", "leakyrelu",
                                    "add"};
    return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}

size_t fm_layer_weight_count(const fm_layer *L) {
    if (L->kind == FM_LAYER_DENSE) return (size_t)L->out_size * L->in_size;
    if (L->kind == FM_LAYER_CONV) return (size_t)L->conv.OC * L->conv.C * L->conv.KH * L->conv.KW;
    return 0;
}

/* LeakyReLU's slope when the spec gives none: PyTorch's default. */
#define FM_LEAKY_ALPHA 0.01f
/* Per-image limits that keep every size computation far from overflow. */
#define FM_MAX_FILTERS 4096
#define FM_MAX_KERNEL 64
#define FM_MAX_LAYER_VALUES (1u << 24) /* one layer's output for one image: 64 MiB */
#define FM_MAX_COL_VALUES (1u << 26)   /* one image's im2col buffer: 256 MiB */

static int parse_activation(const char *s, size_t len, fm_layer_kind *out) {
    static const struct { const char *name; fm_layer_kind kind; } acts[] = {
        {"relu", FM_LAYER_RELU}, {"tanh", FM_LAYER_TANH}, {"sigmoid", FM_LAYER_SIGMOID},
        {"leakyrelu", FM_LAYER_LEAKYRELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strlen(acts[i].name) == len && strncmp(acts[i].name, s, len) == 0) {
            *out = acts[i].kind;
            return 1;
        }
    }
    return 0;
}

/* A whole token as an integer in [lo, hi]. */
static int tok_long(const char *tok, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(tok, &end, 10);
    if (end == tok || *end || errno || v < lo || v > hi || !isdigit((unsigned char)tok[0])) return 0;
    *out = v;
    return 1;
}

/* A whole token as a number in [0, 1). */
static int tok_fraction(const char *tok, float *out) {
    char *end;
    errno = 0;
    float v = strtof(tok, &end);
    if (end == tok || *end || errno || !(v >= 0.0f && v < 1.0f)) return 0;
    *out = v;
    return 1;
}

/* The shortest decimal that reads back as the same float, so canonical specs round-trip. */
static void format_float(char *out, size_t cap, float v) {
    snprintf(out, cap, "%g", (double)v);
    if (strtof(out, NULL) != v) snprintf(out, cap, "%.9g", (double)v);
}

/* Appends a layer of the kind and settings in L after the others: its input is the previous
 * layer's output (or the 1xHxW model input), its output follows from the settings. Checks that
 * the layer fits its input and stays within the size limits, naming the spec item otherwise. */
static fm_status add_layer(fm_layer *layers, int *n, fm_layer L, uint32_t in_h, uint32_t in_w,
                           const char *item, fm_error *err) {
    if (*n >= FM_MAX_LAYERS) {
        return fm_fail(err, FM_ERR_ARG, "model spec: more than %d layers at \"%s\"", FM_MAX_LAYERS,
                       item);
    }
    int in_spatial = 0, in_flat = 0;
    if (*n == 0) {
        L.in_c = 1, L.in_h = in_h, L.in_w = in_w;
    } else {
        const fm_layer *p = &layers[*n - 1];
        L.in_c = p->out_c, L.in_h = p->out_h, L.in_w = p->out_w;
        in_spatial = p->spatial;
        in_flat = !p->spatial && p->out_h == 1 && p->out_w == 1;
    }
    L.in_size = L.in_c * L.in_h * L.in_w;
    L.spatial = in_spatial;
    uint64_t out_c = L.in_c, out_h = L.in_h, out_w = L.in_w;
    int image_op = L.kind == FM_LAYER_CONV || L.kind == FM_LAYER_MAXPOOL ||
                   L.kind == FM_LAYER_AVGPOOL || L.kind == FM_LAYER_GAP;
    if (image_op && in_flat) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec: \"%s\" needs an image (channels x height x width) but follows "
                       "a flat layer of %u values",
                       item, L.in_size);
    }
    switch (L.kind) {
    case FM_LAYER_DENSE:
        out_c = L.out_c, out_h = 1, out_w = 1;
        L.n_params = (size_t)L.out_c * L.in_size + L.out_c;
        L.spatial = 0;
        break;
    case FM_LAYER_FLATTEN:
        out_c = L.in_size, out_h = 1, out_w = 1;
        L.spatial = 0;
        break;
    case FM_LAYER_CONV:
        if (!fm_conv_shape_make(&L.conv, (int)L.in_c, (int)L.in_h, (int)L.in_w, (int)L.out_c,
                                L.kernel, L.stride, L.same)) {
            return fm_fail(err, FM_ERR_ARG,
                           "model spec: \"%s\": a %dx%d kernel does not fit its %ux%u input "
                           "without padding (use same)",
                           item, L.kernel, L.kernel, L.in_h, L.in_w);
        }
        if (fm_conv_col_size(&L.conv) > FM_MAX_COL_VALUES) {
            return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": its im2col buffer of %zu values "
                           "per image is over the limit of %u", item, fm_conv_col_size(&L.conv),
                           FM_MAX_COL_VALUES);
        }
        out_c = (uint64_t)L.conv.OC, out_h = (uint64_t)L.conv.OH, out_w = (uint64_t)L.conv.OW;
        L.n_params = fm_layer_weight_count(&L) + (size_t)L.conv.OC;
        L.spatial = 1;
        break;
    case FM_LAYER_MAXPOOL:
    case FM_LAYER_AVGPOOL:
        if ((uint32_t)L.kernel > L.in_h || (uint32_t)L.kernel > L.in_w) {
            return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": a %dx%d pool is larger than its "
                           "%ux%u input", item, L.kernel, L.kernel, L.in_h, L.in_w);
        }
        out_h = (L.in_h - (uint32_t)L.kernel) / (uint32_t)L.stride + 1;
        out_w = (L.in_w - (uint32_t)L.kernel) / (uint32_t)L.stride + 1;
        L.spatial = 1;
        break;
    case FM_LAYER_GAP:
        out_h = 1, out_w = 1;
        L.spatial = 0;
        break;
    case FM_LAYER_BATCHNORM:
        L.n_params = 2 * (size_t)L.in_c; /* gamma, beta */
        L.n_state = 2 * (size_t)L.in_c;  /* running mean, running variance */
        break;
    default: /* activations and dropout keep the shape */
        break;
    }
    if (out_c * out_h * out_w > FM_MAX_LAYER_VALUES) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": its output of %llu values per image "
                       "is over the limit of %u", item,
                       (unsigned long long)(out_c * out_h * out_w), FM_MAX_LAYER_VALUES);
    }
    L.out_c = (uint32_t)out_c, L.out_h = (uint32_t)out_h, L.out_w = (uint32_t)out_w;
    L.out_size = L.out_c * L.out_h * L.out_w;
    layers[(*n)++] = L;
    return FM_OK;
}

/* For the activations and layers without settings: a layer of that kind alone. */
static fm_status push_layer(fm_layer *layers, int *n, fm_layer_kind kind, uint32_t units,
                            uint32_t in_h, uint32_t in_w, const char *item, fm_error *err) {
    fm_layer L = {0};
    L.kind = kind;
    L.out_c = units;
    if (kind == FM_LAYER_LEAKYRELU) L.rate = FM_LEAKY_ALPHA;
    return add_layer(layers, n, L, in_h, in_w, item, err);
}

/* Splits item (a writable copy) at ':' into at most cap tokens; returns the count, or cap + 1
 * when there are more. */
static int split_tokens(char *item, char **tok, int cap) {
    int n = 0;
    for (char *p = item;; n++) {
        if (n == cap) return cap + 1;
        tok[n] = p;
        char *colon = strchr(p, ':');
        if (!colon) return n + 1;
        *colon = '\0';
        p = colon + 1;
    }
}

/* conv:FILTERS:KERNEL[:same|valid][:sSTRIDE][:ACT], the options in any order, each once. */
static fm_status parse_conv(fm_layer *layers, int *n, char **tok, int nt, uint32_t in_h,
                            uint32_t in_w, const char *item, fm_error *err) {
    if (nt < 3) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" needs filters and a kernel size, e.g. "
                       "conv:32:3 or conv:32:3:same", item);
    }
    long filters, kernel;
    if (!tok_long(tok[1], 1, FM_MAX_FILTERS, &filters)) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": filters must be an integer in 1..%d",
                       item, FM_MAX_FILTERS);
    }
    if (!tok_long(tok[2], 1, FM_MAX_KERNEL, &kernel)) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": kernel size must be an integer in "
                       "1..%d", item, FM_MAX_KERNEL);
    }
    fm_layer L = {0};
    L.kind = FM_LAYER_CONV;
    L.out_c = (uint32_t)filters, L.kernel = (int)kernel, L.stride = 1, L.same = 0;
    int have_pad = 0, have_stride = 0, have_act = 0;
    fm_layer_kind act = FM_LAYER_RELU;
    for (int i = 3; i < nt; i++) {
        const char *o = tok[i];
        long stride;
        if ((strcmp(o, "same") == 0 || strcmp(o, "valid") == 0) && !have_pad) {
            L.same = o[0] == 's', have_pad = 1;
        } else if (o[0] == 's' && isdigit((unsigned char)o[1]) && !have_stride) {
            if (!tok_long(o + 1, 1, FM_MAX_KERNEL, &stride)) {
                return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": stride \"%s\" must be s1..s%d",
                               item, o, FM_MAX_KERNEL);
            }
            L.stride = (int)stride, have_stride = 1;
        } else if (!have_act && (strcmp(o, "linear") == 0 || strcmp(o, "none") == 0)) {
            have_act = 1; /* explicitly none */
        } else if (!have_act && parse_activation(o, strlen(o), &act)) {
            have_act = 2;
        } else {
            return fm_fail(err, FM_ERR_ARG,
                           "model spec: \"%s\": unknown or repeated option \"%s\" (expected same, "
                           "valid, sSTRIDE such as s2, or an activation)",
                           item, o);
        }
    }
    fm_status s = add_layer(layers, n, L, in_h, in_w, item, err);
    if (!s && have_act == 2) s = push_layer(layers, n, act, 0, in_h, in_w, item, err);
    return s;
}

/* maxpool:K[:S] and avgpool:K[:S]; the stride defaults to the pool size. */
static fm_status parse_pool(fm_layer *layers, int *n, fm_layer_kind kind, char **tok, int nt,
                            uint32_t in_h, uint32_t in_w, const char *item, fm_error *err) {
    long k, stride;
    if (nt < 2 || nt > 3) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" needs a pool size and optionally a "
                       "stride, e.g. %s:2 or %s:3:2", item, tok[0], tok[0]);
    }
    if (!tok_long(tok[1], 1, FM_MAX_KERNEL, &k)) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": pool size must be an integer in 1..%d",
                       item, FM_MAX_KERNEL);
    }
    stride = k;
    if (nt == 3 && !tok_long(tok[2], 1, FM_MAX_KERNEL, &stride)) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": stride must be an integer in 1..%d",
                       item, FM_MAX_KERNEL);
    }
    fm_layer L = {0};
    L.kind = kind;
    L.kernel = (int)k, L.stride = (int)stride;
    return add_layer(layers, n, L, in_h, in_w, item, err);
}

/* dense:UNITS[:ACT], with the messages the MLP specs have always had. */
static fm_status parse_dense(fm_layer *layers, int *n, char **tok, int nt, uint32_t in_h,
                             uint32_t in_w, const char *item, fm_error *err) {
    if (nt < 2) return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" needs a width, e.g. dense:128", item);
    long units;
    if (!tok_long(tok[1], 1, FM_MAX_UNITS, &units) || nt > 3) {
        return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": width must be an integer in 1..%d%s",
                       item, FM_MAX_UNITS, nt > 3 ? ", then at most an activation" : "");
    }
    /* A dense layer after a convolution or pooling flattens its image first, as nn.Flatten
     * does in PyTorch; the flatten becomes a layer of its own so indices match nn.Sequential. */
    fm_status s = FM_OK;
    if (*n > 0 && layers[*n - 1].spatial) s = push_layer(layers, n, FM_LAYER_FLATTEN, 0, in_h, in_w, item, err);
    if (!s) s = push_layer(layers, n, FM_LAYER_DENSE, (uint32_t)units, in_h, in_w, item, err);
    if (s || nt < 3) return s;
    const char *a = tok[2];
    fm_layer_kind act;
    if (strcmp(a, "linear") == 0 || strcmp(a, "none") == 0) return FM_OK;
    if (strcmp(a, "softmax") == 0) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec: \"%s\": the last layer gives logits and the loss applies "
                       "softmax itself; write dense:%ld",
                       item, units);
    }
    if (parse_activation(a, strlen(a), &act)) return push_layer(layers, n, act, 0, in_h, in_w, item, err);
    return fm_fail(err, FM_ERR_ARG,
                   "model spec: \"%s\": unknown activation \"%s\" (relu, leakyrelu, tanh, sigmoid, "
                   "linear)",
                   item, a);
}

/* Whether layers [0, upto] include a dense layer or a flatten: from there on a value is flat
 * ([N, F] in PyTorch and ONNX) rather than [N, C, H, W], even when its shape is (C, 1, 1). */
static int flattened_by(const fm_layer *layers, int upto) {
    for (int i = 0; i <= upto; i++) {
        if (layers[i].kind == FM_LAYER_DENSE || layers[i].kind == FM_LAYER_FLATTEN) return 1;
    }
    return 0;
}

/* The ")" of res(...): an add layer whose output is the block's output plus the block's input
 * (the output of layer from, -1 for the model's input). Both must have the same shape, and the
 * same rank in PyTorch and ONNX, so that the sum is element by element everywhere. */
static fm_status close_block(fm_layer *layers, int *n, int from, int opened_at, uint32_t in_h,
                             uint32_t in_w, const char *item, fm_error *err) {
    uint32_t c = 1, h = in_h, w = in_w;
    if (from >= 0) c = layers[from].out_c, h = layers[from].out_h, w = layers[from].out_w;
    const fm_layer *last = &layers[*n - 1];
    if (last->out_c != c || last->out_h != h || last->out_w != w) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec: the residual block opened at item %d turns its input of "
                       "(%u, %u, %u) into (%u, %u, %u) by \"%s\"; the block's output is added to "
                       "its input, so it must keep the shape",
                       opened_at, c, h, w, last->out_c, last->out_h, last->out_w, item);
    }
    if (flattened_by(layers, *n - 1) != (from >= 0 && flattened_by(layers, from))) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec: the residual block opened at item %d flattens its image "
                       "input (a dense layer or flatten inside it); flatten before \"res(\"",
                       opened_at);
    }
    fm_layer L = {0};
    L.kind = FM_LAYER_ADD;
    L.from = from;
    fm_status s = add_layer(layers, n, L, in_h, in_w, item, err);
    if (!s && from >= 0) layers[from].read_by_add = *n - 1;
    return s;
}

/* Writes the canonical form of the layers: every setting explicit, so that it rebuilds the same
 * model whatever defaults a later version has. Returns the length it needed, which may be cap or
 * more when the text did not fit. */
static size_t canonical_spec(const fm_layer *layers, int n, char *out, size_t cap) {
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len < cap; i++) {
        const fm_layer *L = &layers[i];
        char num[32];
        const char *sep = i ? "," : "";
        int k = 0;
        /* A residual block's first layer carries its "res(", the add its ")". */
        for (int j = i + 1; j < n; j++) {
            if (layers[j].kind == FM_LAYER_ADD && layers[j].from == i - 1) {
                k = snprintf(out + len, cap - len, "%sres(", sep);
                if (k > 0) len += (size_t)k;
                sep = "";
                break;
            }
        }
        if (len >= cap) break;
        switch (L->kind) {
        case FM_LAYER_ADD: k = snprintf(out + len, cap - len, ")"); break;
        case FM_LAYER_DENSE: k = snprintf(out + len, cap - len, "%sdense:%u", sep, L->out_size); break;
        case FM_LAYER_CONV:
            k = snprintf(out + len, cap - len, "%sconv:%u:%d:%s", sep, L->out_c, L->kernel,
                         L->same ? "same" : "valid");
            if (k > 0 && L->stride != 1 && len + (size_t)k < cap) {
                k += snprintf(out + len + k, cap - len - (size_t)k, ":s%d", L->stride);
            }
            break;
        case FM_LAYER_MAXPOOL:
        case FM_LAYER_AVGPOOL:
            if (L->stride == L->kernel) {
                k = snprintf(out + len, cap - len, "%s%s:%d", sep, fm_layer_spec_name(L->kind), L->kernel);
            } else {
                k = snprintf(out + len, cap - len, "%s%s:%d:%d", sep, fm_layer_spec_name(L->kind),
                             L->kernel, L->stride);
            }
            break;
        case FM_LAYER_DROPOUT:
        case FM_LAYER_LEAKYRELU:
            format_float(num, sizeof num, L->rate);
            k = snprintf(out + len, cap - len, "%s%s:%s", sep, fm_layer_spec_name(L->kind), num);
            break;
        default: k = snprintf(out + len, cap - len, "%s%s", sep, fm_layer_spec_name(L->kind)); break;
        }
        if (k > 0) len += (size_t)k;
    }
    return len;
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
    /* The open residual block: the layer whose output is its input (-1: the model's input). */
    enum { NO_BLOCK = -2 };
    int block_from = NO_BLOCK, block_item = 0;
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
        /* res( before an item opens a residual block, ) after one closes it. */
        char whole[FM_SPEC_MAX];
        snprintf(whole, sizeof whole, "%s", item);
        int opens = strncmp(item, "res(", 4) == 0;
        if (opens) {
            item += 4;
            while (isspace((unsigned char)*item)) item++;
        }
        end = item + strlen(item);
        int closes = end > item && end[-1] == ')';
        if (closes) {
            *--end = '\0';
            while (end > item && isspace((unsigned char)end[-1])) *--end = '\0';
        }
        if (!*item) return fm_fail(err, FM_ERR_ARG, "model spec \"%s\": empty layer at position %d", spec, items);
        if (opens && block_from >= -1) {
            return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" (item %d) opens a residual block inside "
                           "the one opened at item %d; blocks do not nest", whole, items, block_item);
        }
        if (closes && !opens && block_from < -1) {
            return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\" (item %d) closes a residual block "
                           "that no \"res(\" opened", whole, items);
        }
        if (opens) block_from = n - 1, block_item = items;

        char work[FM_SPEC_MAX];
        snprintf(work, sizeof work, "%s", item);
        char *tok[8];
        int nt = split_tokens(work, tok, 8);
        const char *head = tok[0];
        fm_layer_kind act;
        int before = n;
        float rate;
        if (strcmp(head, "dense") == 0) {
            s = parse_dense(layers, &n, tok, nt, in_h, in_w, item, err);
        } else if (strcmp(head, "conv") == 0) {
            s = parse_conv(layers, &n, tok, nt, in_h, in_w, item, err);
        } else if (strcmp(head, "maxpool") == 0 || strcmp(head, "avgpool") == 0) {
            s = parse_pool(layers, &n, head[0] == 'm' ? FM_LAYER_MAXPOOL : FM_LAYER_AVGPOOL, tok,
                           nt, in_h, in_w, item, err);
        } else if (strcmp(head, "dropout") == 0) {
            if (nt != 2 || !tok_fraction(tok[1], &rate)) {
                return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": dropout needs a probability "
                               "in [0, 1), e.g. dropout:0.25", item);
            }
            fm_layer L = {0};
            L.kind = FM_LAYER_DROPOUT, L.rate = rate;
            s = add_layer(layers, &n, L, in_h, in_w, item, err);
        } else if (strcmp(head, "leakyrelu") == 0 && nt <= 2) {
            fm_layer L = {0};
            L.kind = FM_LAYER_LEAKYRELU, L.rate = FM_LEAKY_ALPHA;
            if (nt == 2 && !tok_fraction(tok[1], &L.rate)) {
                return fm_fail(err, FM_ERR_ARG, "model spec: \"%s\": the slope must be a number in "
                               "[0, 1), e.g. leakyrelu:0.1", item);
            }
            s = add_layer(layers, &n, L, in_h, in_w, item, err);
        } else if (nt == 1 && parse_activation(head, strlen(head), &act)) {
            s = push_layer(layers, &n, act, 0, in_h, in_w, item, err);
        } else if (nt == 1 && strcmp(head, "flatten") == 0) {
            s = push_layer(layers, &n, FM_LAYER_FLATTEN, 0, in_h, in_w, item, err);
        } else if (nt == 1 && strcmp(head, "gap") == 0) {
            s = push_layer(layers, &n, FM_LAYER_GAP, 0, in_h, in_w, item, err);
        } else if (nt == 1 && (strcmp(head, "bn") == 0 || strcmp(head, "batchnorm") == 0)) {
            s = push_layer(layers, &n, FM_LAYER_BATCHNORM, 0, in_h, in_w, item, err);
        } else {
            return fm_fail(err, FM_ERR_ARG,
                           "model spec: unknown layer \"%s\" (expected dense:UNITS[:ACT], "
                           "conv:FILTERS:KERNEL[:same|valid][:sSTRIDE], maxpool:K[:S], "
                           "avgpool:K[:S], gap, bn, dropout:P, flatten, relu, leakyrelu[:ALPHA], "
                           "tanh or sigmoid, res(...) around some of them; presets: %s)",
                           item, "mlp, mlp64, mlp256, mlp2, mlp300-100, cnn, cnn-best");
        }
        if (!s && closes) {
            s = close_block(layers, &n, block_from, block_item, in_h, in_w, whole, err);
            block_from = NO_BLOCK;
        }
        if (s) return s;
        for (int i = before; i < n; i++) params += layers[i].n_params;
        if (params > FM_MAX_PARAMS) {
            return fm_fail(err, FM_ERR_ARG, "model spec: more than %u parameters at \"%s\"",
                           FM_MAX_PARAMS, item);
        }
    }
    if (block_from >= -1) {
        return fm_fail(err, FM_ERR_ARG, "model spec: the residual block opened at item %d is never "
                       "closed (end its last layer with \")\")", block_item);
    }
    int learns = 0;
    for (int i = 0; i < n; i++) learns += layers[i].kind == FM_LAYER_DENSE || layers[i].kind == FM_LAYER_CONV;
    if (!learns) {
        return fm_fail(err, FM_ERR_ARG, "model spec \"%s\" has no dense or conv layer to learn with", spec);
    }
    if (layers[n - 1].out_size != (uint32_t)n_classes) {
        return fm_fail(err, FM_ERR_ARG,
                       "model spec \"%s\" ends with %u outputs but there are %d classes (end with "
                       "dense:%d)",
                       spec, layers[n - 1].out_size, n_classes, n_classes);
    }
    /* Spelling every setting out can lengthen a spec; one that no longer fits would be stored
     * cut short and could not be read back. */
    char full[FM_SPEC_MAX];
    if (canonical_spec(layers, n, full, sizeof full) >= sizeof full) {
        return fm_fail(err, FM_ERR_ARG, "model spec: its canonical form (every setting spelt out) is "
                       "longer than %d characters", FM_SPEC_MAX - 1);
    }
    *n_layers = n;
    if (canonical) snprintf(canonical, cap, "%s", full);
    return FM_OK;
}

fm_status fm_spec_check(const char *spec, uint32_t in_h, uint32_t in_w, int n_classes,
                        size_t *params, fm_error *err) {
    if (in_h == 0 || in_w == 0 || in_h > FM_IDX_MAX_SIDE || in_w > FM_IDX_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "input size %ux%u is outside 1..%u per side", in_h, in_w,
                       FM_IDX_MAX_SIDE);
    }
    if (n_classes < 2 || n_classes > FM_MAX_CLASSES) {
        return fm_fail(err, FM_ERR_ARG, "number of classes %d is outside 2..%d", n_classes,
                       FM_MAX_CLASSES);
    }
    fm_layer *layers = malloc(FM_MAX_LAYERS * sizeof *layers); /* too large for a caller's stack */
    if (!layers) return fm_fail(err, FM_ERR_NOMEM, "out of memory checking the model spec");
    int n = 0;
    fm_status s = fm_spec_parse(spec, in_h, in_w, n_classes, layers, &n, NULL, 0, err);
    size_t count = 0;
    for (int l = 0; !s && l < n; l++) count += layers[l].n_params;
    free(layers);
    if (!s && params) *params = count;
    return s;
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
        if (L->kind == FM_LAYER_BATCHNORM) {
            /* The identity to start with: scale 1, shift 0, running mean 0 and variance 1. */
            for (uint32_t c = 0; c < L->in_c; c++) {
                m->params[L->w_off + c] = 1.0f;
                m->state[L->s_off + L->in_c + c] = 1.0f;
            }
            memset(m->state + L->s_off, 0, L->in_c * sizeof(float));
            m->batches_tracked[l] = 0;
            continue;
        }
        if (L->kind != FM_LAYER_DENSE && L->kind != FM_LAYER_CONV) continue;
        double fan_in = L->in_size, fan_out = L->out_size;
        if (L->kind == FM_LAYER_CONV) {
            /* Keras's fans for a kernel: each output sees C*K*K inputs, each input OC*K*K outputs. */
            double taps = (double)L->conv.KH * L->conv.KW;
            fan_in = L->conv.C * taps, fan_out = L->conv.OC * taps;
        }
        /* Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); He: a = sqrt(6 / fan_in). */
        float limit = (float)(init == FM_INIT_HE_UNIFORM ? sqrt(6.0 / fan_in)
                                                          : sqrt(6.0 / (fan_in + fan_out)));
        /* Drawn in the file's [out, in] order, stored [in, out]: the layout is ours, the
         * initial weights are those of every earlier version with the same seed. */
        float *w = m->params + L->w_off;
        if (L->kind == FM_LAYER_DENSE) {
            size_t I = L->in_size, O = L->out_size;
            for (size_t o = 0; o < O; o++) {
                for (size_t i = 0; i < I; i++) w[i * O + o] = (2.0f * fm_rng_uniform(&rng) - 1.0f) * limit;
            }
        } else {
            size_t count = fm_layer_weight_count(L);
            for (size_t i = 0; i < count; i++) w[i] = (2.0f * fm_rng_uniform(&rng) - 1.0f) * limit;
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
    size_t state = 0, work = 0, aux = 0, idx = 0, col = 0, dwork = 0;
    for (int l = 0; l < m->n_layers; l++) {
        fm_layer *L = &m->layers[l];
        if (L->kind == FM_LAYER_DENSE || L->kind == FM_LAYER_CONV) {
            /* weight then bias, as PyTorch names them */
            L->w_off = off;
            L->b_off = off + fm_layer_weight_count(L);
            off += L->n_params;
        } else if (L->kind == FM_LAYER_BATCHNORM) {
            /* gamma then beta among the parameters; running mean then variance in the state */
            L->w_off = off;
            L->b_off = off + L->in_c;
            off += L->n_params;
            L->s_off = state;
            state += L->n_state;
            L->work_off = work;
            work += 2 * (size_t)L->in_c;
        } else if (L->kind == FM_LAYER_DROPOUT || L->kind == FM_LAYER_ADD) {
            L->aux_off = aux;
            aux += L->out_size;
        } else if (L->kind == FM_LAYER_MAXPOOL) {
            L->aux_off = idx;
            idx += L->out_size;
        }
        if (L->kind == FM_LAYER_CONV) {
            if (fm_conv_col_size(&L->conv) > col) col = fm_conv_col_size(&L->conv);
            if (fm_conv_dwork_size(&L->conv, 1) > dwork) dwork = fm_conv_dwork_size(&L->conv, 1);
        }
        L->act_off = act;
        act += L->out_size;
        if (L->out_size > width) width = L->out_size;
    }
    m->n_params = off;
    m->act_per_row = act;
    m->max_width = width;
    m->n_state = state;
    m->col_size = col;
    /* One column buffer per core (convolutions run at most that many threads), capped so that
     * a many-core machine does not pay for more than it can use on one image each. */
    m->n_col = fm_threads_resolve(0) < 16 ? fm_threads_resolve(0) : 16;
    m->dwork_per_row = dwork;
    m->aux_per_row = aux;
    m->idx_per_row = idx;
    m->params = fm_alloc_floats(off, 0);
    m->state = malloc((state ? state : 1) * sizeof(float));
    m->bn_work = malloc((work ? work : 1) * sizeof(float));
    if (!m->params || !m->state || !m->bn_work) {
        fm_model_free(m);
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
    free(m->state);
    free(m->bn_work);
    free(m->col);
    free(m->aux);
    free(m->pool_idx);
    free(m->dwork);
    free(m->tta_probs);
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
    /* The column buffers do not depend on the batch; they wait until the model runs so that
     * loading a file (or checking a spec) costs only its parameters. */
    if (!m->col) {
        m->col = malloc((m->col_size ? m->col_size * (size_t)m->n_col : 1) * sizeof(float));
        if (!m->col) return fm_fail(err, FM_ERR_NOMEM, "out of memory for the convolutions' work space");
    }
    float *acts = fm_alloc_floats((size_t)batch * m->act_per_row, 0);
    float *d0 = fm_alloc_floats((size_t)batch * m->max_width, 0);
    float *d1 = fm_alloc_floats((size_t)batch * m->max_width, 0);
    float *probs = malloc((size_t)batch * m->classes.n * sizeof(float));
    float *aux = malloc(((size_t)batch * m->aux_per_row + 1) * sizeof(float));
    int32_t *pool_idx = malloc(((size_t)batch * m->idx_per_row + 1) * sizeof(int32_t));
    float *dwork = malloc(((size_t)batch * m->dwork_per_row + 1) * sizeof(float));
    float *tta_probs = malloc((size_t)batch * m->classes.n * sizeof(float));
    if (!acts || !d0 || !d1 || !probs || !aux || !pool_idx || !dwork || !tta_probs) {
        free(acts), free(d0), free(d1), free(probs), free(aux), free(pool_idx), free(dwork);
        free(tta_probs);
        return fm_fail(err, FM_ERR_NOMEM, "out of memory for a batch of %u", batch);
    }
    free(m->acts), free(m->dbuf[0]), free(m->dbuf[1]), free(m->probs);
    free(m->aux), free(m->pool_idx), free(m->dwork), free(m->tta_probs);
    m->acts = acts, m->dbuf[0] = d0, m->dbuf[1] = d1, m->probs = probs;
    m->aux = aux, m->pool_idx = pool_idx, m->dwork = dwork, m->tta_probs = tta_probs;
    m->cap_batch = batch;
    return FM_OK;
}

uint32_t fm_model_batch_limit(const fm_model *m, uint32_t wanted) {
    size_t row = (m->act_per_row + 2 * m->max_width + m->aux_per_row + m->idx_per_row +
                  m->dwork_per_row + (size_t)m->classes.n) * sizeof(float);
    size_t fit = FM_INFER_BYTES / row;
    if (fit < 1) fit = 1;
    return wanted < fit ? wanted : (uint32_t)fit;
}

/* The arena is laid out layer-major: the input block [cap, in] then each layer's [cap, out], so
 * a layer's output for the batch is one contiguous (B, out) matrix. */
static float *act_at(const fm_model *m, int layer) {
    size_t off = layer < 0 ? 0 : m->layers[layer].act_off;
    return m->acts + off * m->cap_batch;
}

/* A dense layer or a batch norm followed by a ReLU runs as one layer that writes the ReLU's
 * output; its own slot is then left unused (not when a residual add reads that output). */
static int relu_follows(const fm_model *m, int l) {
    return l + 1 < m->n_layers && m->layers[l + 1].kind == FM_LAYER_RELU && !m->layers[l].read_by_add;
}

/* A layer's per-row scratch, laid out like the activations: dropout masks and pooling argmaxes. */
static float *aux_at(const fm_model *m, int layer) {
    return m->aux + m->layers[layer].aux_off * m->cap_batch;
}
static int32_t *idx_at(const fm_model *m, int layer) {
    return m->pool_idx + m->layers[layer].aux_off * m->cap_batch;
}

/* ReLU's passes over a convolution's output (a million values for cnn's second layer at batch
 * 32), split between the pool's threads in slices of whole vectors: element by element, so the
 * same bits whatever the split. On one thread they left the other waiting ~5% of a cnn step. */
typedef struct {
    int backward;
    float *out;
    const float *a, *b; /* forward: the input; backward: the output gradient and the output */
    size_t n;
    int tasks;
} relu_job;

static void relu_task(void *ctx, int task) {
    const relu_job *j = ctx;
    size_t lo, hi;
    fm_slice(j->n, task, j->tasks, &lo, &hi);
    if (lo >= hi) return;
    if (j->backward) relu_backward(j->out + lo, j->a + lo, j->b + lo, hi - lo);
    else relu_forward(j->out + lo, j->a + lo, hi - lo);
}

static void relu_pooled(fm_model *m, int threads, int backward, float *out, const float *a,
                        const float *b, size_t n) {
    fm_pool *pool = fm_model_pool(m, threads);
    relu_job j = {backward, out, a, b, n, fm_slice_tasks(pool, n, 65536)};
    fm_pool_run(pool, j.tasks, relu_task, &j);
}

/* Dropout acts only in training, and only with a generator for its draws. */
static int dropping(const fm_model *m, const fm_layer *L) {
    return m->training && m->rng && L->rate > 0.0f;
}

/* A convolution's shape as this pass computes it: with bf16 products while fm_fit says so
 * (m->bf16 is set only around training batches). */
static fm_conv_shape conv_shape_now(const fm_model *m, const fm_layer *L) {
    fm_conv_shape s = L->conv;
    s.bf16 = m->bf16;
    return s;
}

/* Batch norm on the B rows of x, followed by a ReLU when relu is set (y is then the ReLU's
 * slot, and the batch norm's own is left unused, as a dense layer's is). */
static void batchnorm_layer_forward(fm_model *m, int l, float *y, const float *x, int B, int relu,
                                    int threads) {
    const fm_layer *L = &m->layers[l];
    const int C = (int)L->in_c, HW = (int)(L->in_h * L->in_w);
    float *gamma = m->params + L->w_off, *beta = m->params + L->b_off;
    float *running_mean = m->state + L->s_off, *running_var = running_mean + C;
    fm_pool *pool = fm_model_pool(m, threads);
    if (m->training) {
        float *mean = m->bn_work + L->work_off;
        /* PyTorch's momentum=None: batch k of the pass weighs 1/k, so each counts the same. */
        float momentum = m->bn_cumulative ? 1.0f / (float)(m->batches_tracked[l] + 1) : FM_BN_MOMENTUM;
        batchnorm_forward_train(y, mean, mean + C, running_mean, running_var, x, gamma, beta, B, C, HW,
                                momentum, FM_BN_EPS, relu, pool);
        m->batches_tracked[l]++;
    } else {
        batchnorm_forward_infer(y, x, gamma, beta, running_mean, running_var, B, C, HW, FM_BN_EPS, relu, pool);
    }
}

/* Its backward pass, through the ReLU after it too when relu_out (that ReLU's output) is given,
 * dout then being the ReLU's output gradient. */
static void batchnorm_layer_backward(fm_model *m, int l, float *dinp, const float *dout,
                                     const float *relu_out, float *grads, int B, int threads) {
    const fm_layer *L = &m->layers[l];
    const int C = (int)L->in_c, HW = (int)(L->in_h * L->in_w);
    const float *mean = m->bn_work + L->work_off;
    batchnorm_backward(dinp, grads + L->w_off, grads + L->b_off, dout, relu_out, act_at(m, l - 1), mean,
                       mean + C, m->params + L->w_off, B, C, HW, fm_model_pool(m, threads));
}

/* The forward pass of the convolutional network's layers, one layer on the B rows of x. */
static void cnn_layer_forward(fm_model *m, int l, float *y, const float *x, int B, int threads) {
    const fm_layer *L = &m->layers[l];
    int C = (int)L->in_c, H = (int)L->in_h, W = (int)L->in_w;
    size_t n = (size_t)B * L->out_size;
    switch (L->kind) {
    case FM_LAYER_CONV: {
        const fm_conv_shape s = conv_shape_now(m, L);
        conv2d_forward(y, x, m->params + L->w_off, m->params + L->b_off, m->col, m->n_col, B, &s,
                       fm_model_pool(m, threads));
        break;
    }
    case FM_LAYER_MAXPOOL:
        maxpool2d_forward(y, idx_at(m, l), x, B, C, H, W, L->kernel, L->stride, (int)L->out_h, (int)L->out_w,
                          fm_model_pool(m, threads));
        break;
    case FM_LAYER_AVGPOOL:
        avgpool2d_forward(y, x, B, C, H, W, L->kernel, L->stride, (int)L->out_h, (int)L->out_w);
        break;
    case FM_LAYER_GAP: global_avgpool_forward(y, x, B, C, H * W); break;
    case FM_LAYER_DROPOUT:
        if (dropping(m, L)) dropout_forward(y, aux_at(m, l), x, n, L->rate, m->rng);
        else memcpy(y, x, n * sizeof(float));
        break;
    case FM_LAYER_LEAKYRELU: leakyrelu_forward(y, x, n, L->rate); break;
    default: break;
    }
}

/* Their backward passes: dinp may be NULL for the first layer, which then only needs its
 * parameter gradients. */
static void cnn_layer_backward(fm_model *m, int l, float *dinp, const float *dout, float *grads,
                               int B, int threads) {
    const fm_layer *L = &m->layers[l];
    int C = (int)L->in_c, H = (int)L->in_h, W = (int)L->in_w;
    size_t n = (size_t)B * L->out_size;
    const float *x = act_at(m, l - 1), *y = act_at(m, l);
    switch (L->kind) {
    case FM_LAYER_CONV: {
        const fm_conv_shape s = conv_shape_now(m, L);
        conv2d_backward(dinp, grads + L->w_off, grads + L->b_off, dout, x, m->params + L->w_off,
                        m->col, m->n_col, m->dwork, B, &s, fm_model_pool(m, threads));
        break;
    }
    case FM_LAYER_MAXPOOL:
        if (dinp) maxpool2d_backward(dinp, dout, idx_at(m, l), B, C, H, W, (int)L->out_h, (int)L->out_w,
                                     fm_model_pool(m, threads));
        break;
    case FM_LAYER_AVGPOOL:
        if (dinp) avgpool2d_backward(dinp, dout, B, C, H, W, L->kernel, L->stride, (int)L->out_h, (int)L->out_w);
        break;
    case FM_LAYER_GAP: if (dinp) global_avgpool_backward(dinp, dout, B, C, H * W); break;
    case FM_LAYER_BATCHNORM: batchnorm_layer_backward(m, l, dinp, dout, NULL, grads, B, threads); break;
    case FM_LAYER_DROPOUT:
        if (dinp && dropping(m, L)) dropout_backward(dinp, dout, aux_at(m, l), n);
        else if (dinp) memcpy(dinp, dout, n * sizeof(float));
        break;
    case FM_LAYER_LEAKYRELU: if (dinp) leakyrelu_backward(dinp, dout, y, n, L->rate); break;
    default: break;
    }
}

float *fm_model_forward(fm_model *m, int B, int threads) {
    return fm_model_forward_from(m, act_at(m, -1), B, threads);
}

float *fm_model_forward_from(fm_model *m, const float *x, int B, int threads) {
    fm_pool *pool = fm_model_pool(m, threads);
    const float *input = x;
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
        case FM_LAYER_BATCHNORM: {
            const int bn = l;
            if (relu_follows(m, l)) y = act_at(m, ++l);
            batchnorm_layer_forward(m, bn, y, x, B, l != bn, threads);
            break;
        }
        case FM_LAYER_RELU: relu_pooled(m, threads, 0, y, x, NULL, n); break;
        case FM_LAYER_TANH: tanh_forward(y, x, n); break;
        case FM_LAYER_SIGMOID: sigmoid_forward(y, x, n); break;
        case FM_LAYER_FLATTEN: memcpy(y, x, n * sizeof(float)); break;
        case FM_LAYER_ADD: add_forward(y, x, L->from < 0 ? input : act_at(m, L->from), n); break;
        default: cnn_layer_forward(m, l, y, x, B, threads); break;
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
        if (L->read_by_add) {
            /* This output is a residual block's input: its gradient is also the one the block's
             * add passed straight back, kept until now. The sum goes to the buffer that is not
             * dinp: dout's own, or a free one when dout is the caller's. */
            add_forward(m->dbuf[which ^ 1], dout, aux_at(m, L->read_by_add), n);
            dout = m->dbuf[which ^ 1];
        }
        if (L->kind == FM_LAYER_DENSE) {
            /* A ReLU in front (one that a dense layer fed, so fused in forward, or any other):
             * its backward pass is a mask on our input gradient, applied in the same pass; not
             * when the ReLU's output gets a block's gradient added first. */
            int relu_before = l > 0 && m->layers[l - 1].kind == FM_LAYER_RELU && !m->layers[l - 1].read_by_add;
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
            /* The first layer needs no input gradient, but one with parameters (conv, batch
             * norm) still needs its own. */
            if (l == 0 && L->n_params == 0) break;
            if (l == 0) dinp = NULL;
            switch (L->kind) {
            case FM_LAYER_RELU:
                if (l > 0 && m->layers[l - 1].kind == FM_LAYER_BATCHNORM && relu_follows(m, l - 1)) {
                    /* fused in forward, fused back: the mask applied inside batch norm's passes */
                    if (--l == 0) dinp = NULL;
                    batchnorm_layer_backward(m, l, dinp, dout, y, grads, B, threads);
                } else {
                    relu_pooled(m, threads, 1, dinp, dout, y, n);
                }
                break;
            case FM_LAYER_TANH: tanh_backward(dinp, dout, y, n); break;
            case FM_LAYER_SIGMOID: sigmoid_backward(dinp, dout, y, n); break;
            case FM_LAYER_FLATTEN: memcpy(dinp, dout, n * sizeof(float)); break;
            case FM_LAYER_ADD: add_backward(dinp, aux_at(m, l), dout, n); break;
            default: cnn_layer_backward(m, l, dinp, dout, grads, B, threads); break;
            }
        }
        if (!dinp) break;
        dout = dinp;
        which ^= 1;
    }
}

void fm_model_infer_probs(fm_model *m, float *probs, int B, int threads) {
    const int C = m->classes.n;
    softmax_forward(probs, fm_model_forward(m, B, threads), B, C);
    if (!m->tta_flip) return;
    /* The mirror images through the same network, then the mean of the two distributions. */
    for (int b = 0; b < B; b++) augment_flip(fm_model_input(m) + (size_t)b * fm_model_in_size(m), (int)m->in_h, (int)m->in_w);
    softmax_forward(m->tta_probs, fm_model_forward(m, B, threads), B, C);
    for (size_t i = 0; i < (size_t)B * C; i++) probs[i] = 0.5f * (probs[i] + m->tta_probs[i]);
}

void fm_model_set_tta(fm_model *m, int flip) { m->tta_flip = flip != 0; }
int fm_model_tta(const fm_model *m) { return m->tta_flip; }

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

int fm_model_summary_rows(const fm_model *m) {
    return m->n_layers + (m->n_layers > 0 && m->layers[0].kind == FM_LAYER_DENSE);
}

void fm_model_summary_row(const fm_model *m, int r, fm_summary_row *out) {
    memset(out, 0, sizeof *out);
    int implicit_flatten = fm_model_summary_rows(m) > m->n_layers;
    if (implicit_flatten && r == 0) {
        snprintf(out->name, sizeof out->name, "flatten");
        out->type = fm_layer_kind_name(FM_LAYER_FLATTEN);
        out->rank = 1, out->shape[0] = m->in_h * m->in_w;
        return;
    }
    int l = r - implicit_flatten;
    const fm_layer *L = &m->layers[l];
    snprintf(out->name, sizeof out->name, "layers.%d", l);
    out->type = fm_layer_kind_name(L->kind);
    out->rank = L->out_h == 1 && L->out_w == 1 && !L->spatial ? 1 : 3;
    out->shape[0] = L->out_c, out->shape[1] = L->out_h, out->shape[2] = L->out_w;
    out->params = L->n_params, out->state = L->n_state;
    if (L->kind == FM_LAYER_ADD && L->from < 0) snprintf(out->adds, sizeof out->adds, "input");
    if (L->kind == FM_LAYER_ADD && L->from >= 0) snprintf(out->adds, sizeof out->adds, "layers.%d", L->from);
}

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
    for (int r = 0; r < fm_model_summary_rows(m); r++) {
        fm_summary_row row;
        fm_model_summary_row(m, r, &row);
        char name[64], shape[48], count[32], adds[32] = "";
        snprintf(name, sizeof name, "%s (%s)", row.name, row.type);
        if (row.rank == 1) {
            snprintf(shape, sizeof shape, "(None, %u)", row.shape[0]);
        } else {
            snprintf(shape, sizeof shape, "(None, %u, %u, %u)", row.shape[0], row.shape[1], row.shape[2]);
        }
        /* Batch norm counts its running statistics too, as Keras does (4 per channel). */
        thousands(count, sizeof count, row.params + row.state);
        if (*row.adds) snprintf(adds, sizeof adds, " + %s", row.adds);
        SUMMARY_APPEND(" %-27s%-26s%-*s%s\n", name, shape, *adds ? 9 : 0, count, adds);
    }
    char total[32], trainable[32], frozen[32];
    size_t all = m->n_params + m->n_state;
    thousands(total, sizeof total, all);
    thousands(trainable, sizeof trainable, m->n_params);
    thousands(frozen, sizeof frozen, m->n_state);
    SUMMARY_APPEND("%s\nTotal params: %s (%.2f KB)\nTrainable params: %s\nNon-trainable params: %s\n%s\n",
                   dline, total, (double)all * 4.0 / 1024.0, trainable, frozen, line);
    return len;
}

/* Inference runs in chunks of at most 1000 rows, the size the arena is reserved for once. */
#define PREDICT_CHUNK 1000u

static fm_status predict_inputs(fm_model *m, const float *x, uint32_t count, float *probs,
                                int threads, fm_error *err) {
    uint32_t chunk = fm_model_batch_limit(m, count < PREDICT_CHUNK ? (count ? count : 1) : PREDICT_CHUNK);
    fm_status s = fm_model_reserve(m, chunk, err);
    if (s) return s;
    size_t D = fm_model_in_size(m);
    int C = m->classes.n;
    for (uint32_t i = 0; i < count; i += chunk) {
        uint32_t B = count - i < chunk ? count - i : chunk;
        if (m->tta_flip) {
            /* Test-time flips change the input, so the rows are copied into the arena first. */
            memcpy(fm_model_input(m), x + (size_t)i * D, (size_t)B * D * sizeof(float));
            fm_model_infer_probs(m, probs + (size_t)i * C, (int)B, threads);
            continue;
        }
        /* The caller's rows are the first layer's input as they are: no copy. */
        const float *logits = fm_model_forward_from(m, x + (size_t)i * D, (int)B, threads);
        softmax_forward(probs + (size_t)i * C, logits, (int)B, C);
    }
    return FM_OK;
}

fm_status fm_predict_inputs(fm_model *m, const float *x, uint32_t count, float *probs,
                            int threads, fm_error *err) {
    fm_fpenv saved = fm_fpenv_enter();
    fm_status s = predict_inputs(m, x, count, probs, threads, err);
    fm_fpenv_leave(saved);
    return s;
}

static fm_status predict_pixels(fm_model *m, const uint8_t *pixels, uint32_t count,
                                float *probs, int threads, fm_error *err) {
    fm_dataset images = {count, m->in_h, m->in_w, (uint8_t *)pixels, NULL, m->classes.n};
    uint32_t chunk = fm_model_batch_limit(m, count < PREDICT_CHUNK ? (count ? count : 1) : PREDICT_CHUNK);
    fm_status s = fm_model_reserve(m, chunk, err);
    if (s) return s;
    int C = m->classes.n;
    for (uint32_t i = 0; i < count; i += chunk) {
        uint32_t B = count - i < chunk ? count - i : chunk;
        fm_dataset part = fm_dataset_slice(&images, i, B);
        fm_scale_images(fm_model_input(m), &part, NULL, B, m->scaling);
        fm_model_infer_probs(m, probs + (size_t)i * C, (int)B, threads);
    }
    return FM_OK;
}

fm_status fm_predict_pixels(fm_model *m, const uint8_t *pixels, uint32_t count, float *probs,
                            int threads, fm_error *err) {
    fm_fpenv saved = fm_fpenv_enter();
    fm_status s = predict_pixels(m, pixels, count, probs, threads, err);
    fm_fpenv_leave(saved);
    return s;
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
