/* test_model.c — model specs (presets, canonical form, every kind of bad spec), the summary, and
 * model files: an exact save/load round trip and a catalogue of broken files. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static fm_model *make_model(test_ctx *t, const char *spec, uint32_t h, uint32_t w,
                            const char *classes, uint64_t seed) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    mp.seed = seed;
    if (classes) CHECK(t, fm_classes_parse(classes, &mp.classes, &err) == FM_OK, "%s", err.msg);
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, h, w, &mp, &m, &err) == FM_OK, "%s: %s", spec, err.msg);
    return m;
}

/* ---------------------------------------------------------------- specs */

void test_model_presets(test_ctx *t) {
    /* 784*128+128 + 128*10+10 = 101,770; 784*300+300 + 300*100+100 + 100*10+10 = 266,610;
     * 784*64+64 + 64*10+10 = 50,890; 784*256+256 + 256*10+10 = 203,530;
     * 784*128+128 + 128*128+128 + 128*10+10 = 118,282. */
    static const struct { const char *name; size_t params; } presets[] = {
        {"mlp", 101770}, {"mlp300-100", 266610}, {"mlp64", 50890}, {"mlp256", 203530}, {"mlp2", 118282},
        /* cnn: 32*9+32 + 64*32*9+64 + 64*12*12*128+128 + 128*10+10 = 320 + 18,496 + 1,179,776 + 1,290;
         * cnn-best: 320+64 + 9,248+64 + 18,496+128 + 2*(36,928+128) + 73,856+256 + 2*(147,584+256)
         * + 1,290 trainable (its residual blocks' adds have none; batch norm's running statistics,
         * 1,280, are not counted here). */
        {"cnn", 1199882}, {"cnn-best", 473514}};
    const char *const *names = fm_preset_names();
    int listed = 0;
    while (names[listed]) listed++;
    CHECK(t, listed == 7, "%d presets listed", listed);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        fm_model *m = make_model(t, presets[i].name, 28, 28, NULL, 1);
        if (!m) continue;
        CHECK(t, fm_model_param_count(m) == presets[i].params, "%s: %zu parameters", presets[i].name,
              fm_model_param_count(m));
        fm_model_free(m);
        int found = 0;
        for (int k = 0; k < listed; k++) found |= strcmp(names[k], presets[i].name) == 0;
        CHECK(t, found, "%s not in fm_preset_names", presets[i].name);
        CHECK(t, fm_preset_spec(presets[i].name) != NULL, "%s has no spec", presets[i].name);
    }
    CHECK(t, fm_preset_spec("mlp3") == NULL && fm_preset_spec("dense:10") == NULL, "not presets");
}

/* Same layers, same canonical spec, and (same seed) the same initial weights, bit for bit. */
static void check_same_model(test_ctx *t, fm_model *a, fm_model *b, const char *what) {
    if (!a || !b) return;
    CHECK(t, strcmp(fm_model_spec(a), fm_model_spec(b)) == 0, "%s: \"%s\" vs \"%s\"", what,
          fm_model_spec(a), fm_model_spec(b));
    CHECK(t, a->n_layers == b->n_layers, "%s: %d vs %d layers", what, a->n_layers, b->n_layers);
    CHECK(t, a->n_params == b->n_params, "%s: %zu vs %zu parameters", what, a->n_params, b->n_params);
    for (int l = 0; l < a->n_layers && l < b->n_layers; l++) {
        CHECK(t, a->layers[l].kind == b->layers[l].kind && a->layers[l].out_size == b->layers[l].out_size,
              "%s: layer %d differs", what, l);
    }
    CHECK(t, a->n_params == b->n_params && memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0,
          "%s: initial weights differ", what);
}

void test_model_spec_forms(test_ctx *t) {
    fm_model *mlp = make_model(t, "mlp", 28, 28, NULL, 3);
    fm_model *longhand = make_model(t, "dense:128:relu,dense:10", 28, 28, NULL, 3);
    fm_model *spaced = make_model(t, "  dense:128:relu ,\tdense:10  ", 28, 28, NULL, 3);
    fm_model *split = make_model(t, "dense:128, relu, dense:10:linear", 28, 28, NULL, 3);
    if (mlp) {
        CHECK(t, strcmp(fm_model_spec(mlp), "dense:128,relu,dense:10") == 0, "canonical \"%s\"",
              fm_model_spec(mlp));
    }
    check_same_model(t, mlp, longhand, "mlp vs longhand");
    check_same_model(t, mlp, spaced, "mlp vs spaced");
    check_same_model(t, mlp, split, "mlp vs split activation");
    fm_model *canon = mlp ? make_model(t, fm_model_spec(mlp), 28, 28, NULL, 3) : NULL;
    check_same_model(t, mlp, canon, "mlp vs its canonical spec");
    fm_model_free(mlp), fm_model_free(longhand), fm_model_free(spaced), fm_model_free(split);
    fm_model_free(canon);

    /* Every layer kind, with activations attached and standing alone. */
    const char *mixed = "flatten, dense:7:tanh, sigmoid, dense:5:sigmoid, dense:6:none, relu, dense:3";
    fm_model *a = make_model(t, mixed, 4, 5, "x,y,z", 8);
    if (a) {
        CHECK(t, strcmp(fm_model_spec(a),
                        "flatten,dense:7,tanh,sigmoid,dense:5,sigmoid,dense:6,relu,dense:3") == 0,
              "canonical \"%s\"", fm_model_spec(a));
        /* (20*7+7) + (7*5+5) + (5*6+6) + (6*3+3) = 147 + 40 + 36 + 21 */
        CHECK(t, fm_model_param_count(a) == 244, "%zu parameters", fm_model_param_count(a));
        fm_model *b = make_model(t, fm_model_spec(a), 4, 5, "x,y,z", 8);
        check_same_model(t, a, b, "mixed vs its canonical spec");
        fm_model_free(b);
    }
    fm_model_free(a);
}

void test_model_bad_specs(test_ctx *t) {
    char too_deep[1024] = "";
    for (int i = 0; i <= FM_MAX_LAYERS; i++) strcat(too_deep, i ? ",relu" : "dense:10");
    static const struct { const char *spec, *needle1, *needle2; } bad[] = {
        {"", "empty", NULL},
        {"dense", "\"dense\"", "width"},
        {"dense:0", "\"dense:0\"", "1..65536"},
        {"dense:-3", "\"dense:-3\"", "1..65536"},
        {"dense:abc", "\"dense:abc\"", "integer"},
        {"dense:65537,dense:10", "\"dense:65537\"", "1..65536"},
        {"dense:12x", "\"dense:12x\"", "integer"},
        {"dense:128:foo", "\"dense:128:foo\"", "unknown activation \"foo\""},
        {"dense:10:softmax", "\"dense:10:softmax\"", "softmax"},
        {"conv:3", "\"conv:3\"", "kernel size"},
        {"relu:3,dense:10", "\"relu:3\"", "unknown layer"},
        {"dense:128,,dense:10", "empty layer at position 2", NULL},
        {"dense:128,dense:10,", "empty layer at position 3", NULL},
        {"dense:128", "ends with 128 outputs", "10 classes"},
        {"dense:10,relu,dense:128", "ends with 128 outputs", NULL},
        {"relu", "\"relu\"", "no dense or conv layer"},
        {"flatten,tanh", "no dense or conv layer", NULL},
        {"dense:65536,dense:65536,dense:10", "\"dense:65536\"", "parameters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] + 1; i++) {
        const char *spec = i < sizeof bad / sizeof bad[0] ? bad[i].spec : too_deep;
        const char *n1 = i < sizeof bad / sizeof bad[0] ? bad[i].needle1 : "more than 128 layers";
        const char *n2 = i < sizeof bad / sizeof bad[0] ? bad[i].needle2 : "\"relu\"";
        fm_error err = {0};
        fm_model_params mp = fm_model_default_params();
        fm_model *m = (fm_model *)&err; /* must be reset to NULL */
        fm_status s = fm_model_create(spec, 28, 28, &mp, &m, &err);
        CHECK_FAILS(t, s, FM_ERR_ARG, err, n1, n2);
        CHECK(t, m == NULL, "spec \"%s\": model not NULL", spec);
        if (s == FM_OK) fm_model_free(m);
    }
    fm_error err = {0};
    fm_model *m = NULL;
    CHECK_FAILS(t, fm_model_create(NULL, 28, 28, NULL, &m, &err), FM_ERR_ARG, err, "empty", NULL);
    CHECK_FAILS(t, fm_model_create("mlp", 0, 28, NULL, &m, &err), FM_ERR_ARG, err, "input size", NULL);
}

void test_model_summary(test_ctx *t) {
    fm_model *m = make_model(t, "mlp", 28, 28, NULL, 1);
    if (!m) return;
    char buf[4096];
    size_t need = fm_model_summary(m, "mlp", buf, sizeof buf);
    CHECK(t, need == strlen(buf), "returned %zu, wrote %zu", need, strlen(buf));
    CHECK_MSG(t, buf, "Total params: 101,770");
    CHECK_MSG(t, buf, "layers.0 (Dense)");
    CHECK_MSG(t, buf, "layers.1 (ReLU)");
    CHECK_MSG(t, buf, "layers.2 (Dense)");
    CHECK_MSG(t, buf, "100,480"); /* 784*128 + 128 */
    CHECK_MSG(t, buf, "(None, 10)");
    /* A short buffer gets a terminated prefix and the length it would have needed. */
    char small[32];
    memset(small, 'x', sizeof small);
    size_t need2 = fm_model_summary(m, "mlp", small, 20);
    CHECK(t, need2 == need, "short buffer: %zu vs %zu", need2, need);
    CHECK(t, strlen(small) == 19 && strncmp(small, buf, 19) == 0, "short buffer holds \"%s\"", small);
    CHECK(t, small[20] == 'x', "wrote past the cap");
    CHECK(t, fm_model_summary(m, "mlp", NULL, 0) == need, "length query");
    /* A dense-first network's rows start with the implicit Flatten, as the table does. */
    fm_summary_row row;
    CHECK(t, fm_model_summary_rows(m) == 4, "%d rows", fm_model_summary_rows(m));
    fm_model_summary_row(m, 0, &row);
    CHECK(t, strcmp(row.name, "flatten") == 0 && strcmp(row.type, "Flatten") == 0 && row.rank == 1 &&
                 row.shape[0] == 784 && row.params == 0 && row.adds[0] == '\0',
          "row 0: %s %s", row.name, row.type);
    fm_model_summary_row(m, 1, &row);
    CHECK(t, strcmp(row.name, "layers.0") == 0 && row.params == 100480 && row.shape[0] == 128, "row 1: %s %zu",
          row.name, row.params);
    fm_model_free(m);
}

/* ---------------------------------------------------------------- save and load */

static void randomize(fm_model *m, uint64_t seed) {
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 2.0f * fm_rng_uniform(&rng) - 1.0f;
}

void test_model_save_load(test_ctx *t) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("alpha,beta,gamma", &mp.classes, &err) == FM_OK, "%s", err.msg);
    mp.scaling = (fm_scaling){FM_SCALE_STANDARD, 0.2860402f, 0.3530239f};
    fm_model *m = NULL;
    CHECK(t, fm_model_create("dense:16:relu,dense:8:tanh,dense:3", 5, 6, &mp, &m, &err) == FM_OK,
          "%s", err.msg);
    if (!m) return;
    randomize(m, 4); /* non-zero biases too */
    char path[512];
    test_path(path, sizeof path, "roundtrip.safetensors");
    CHECK(t, fm_model_save(m, path, &err) == FM_OK, "%s", err.msg);

    /* The data section starts 8-byte aligned after the little-endian header length. */
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    CHECK(t, bytes && len > 8, "cannot read back");
    if (bytes && len > 8) {
        uint64_t hlen = 0;
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
        CHECK(t, hlen % 8 == 0 && 8 + hlen + m->n_params * 4 == len, "header %llu, file %zu",
              (unsigned long long)hlen, len);
        CHECK(t, bytes[8] == '{', "header starts with %c", bytes[8]);
    }
    free(bytes);

    fm_model *l = NULL;
    CHECK(t, fm_model_load(path, &l, &err) == FM_OK, "%s", err.msg);
    if (l) {
        CHECK(t, strcmp(fm_model_spec(l), fm_model_spec(m)) == 0, "spec \"%s\"", fm_model_spec(l));
        uint32_t h = 0, w = 0;
        fm_model_input_shape(l, &h, &w);
        CHECK(t, h == 5 && w == 6, "input %ux%u", h, w);
        const fm_classes *c = fm_model_classes(l);
        CHECK(t, c->n == 3 && strcmp(c->names[0], "alpha") == 0 && strcmp(c->names[2], "gamma") == 0,
              "classes %d", c->n);
        fm_scaling sc = fm_model_scaling(l);
        CHECK(t, sc.kind == FM_SCALE_STANDARD && sc.mean == 0.2860402f && sc.std == 0.3530239f,
              "scaling %d %.9g %.9g", sc.kind, (double)sc.mean, (double)sc.std);
        CHECK(t, l->n_params == m->n_params &&
                     memcmp(l->params, m->params, m->n_params * sizeof(float)) == 0,
              "parameters differ");
        enum { R = 7 };
        float x[R * 30], p1[R * 3], p2[R * 3];
        fm_rng rng;
        fm_rng_seed(&rng, 5);
        for (int i = 0; i < R * 30; i++) x[i] = 3.0f * fm_rng_uniform(&rng) - 1.0f;
        CHECK(t, fm_predict_inputs(m, x, R, p1, 1, &err) == FM_OK, "%s", err.msg);
        CHECK(t, fm_predict_inputs(l, x, R, p2, 1, &err) == FM_OK, "%s", err.msg);
        CHECK(t, memcmp(p1, p2, sizeof p1) == 0, "predictions differ");
        fm_model_free(l);
    }
    fm_model_free(m);

    /* A preset with unit scaling and the fashion names. */
    m = make_model(t, "mlp", 28, 28, NULL, 6);
    if (!m) return;
    test_path(path, sizeof path, "mlp.safetensors");
    CHECK(t, fm_model_save(m, path, &err) == FM_OK, "%s", err.msg);
    CHECK(t, fm_model_load(path, &l, &err) == FM_OK, "%s", err.msg);
    if (l) {
        CHECK(t, fm_model_scaling(l).kind == FM_SCALE_UNIT && fm_model_scaling(l).std == 1.0f, "scaling");
        CHECK(t, strcmp(fm_model_classes(l)->names[9], "Ankle boot") == 0, "class 9 \"%s\"",
              fm_model_classes(l)->names[9]);
        CHECK(t, memcmp(l->params, m->params, m->n_params * sizeof(float)) == 0, "parameters differ");
        fm_model_free(l);
    }
    fm_model_free(m);
}

/* A valid model file for the corruption tests: 4x4 inputs, "dense:8:relu,dense:3", classes
 * a,b,c, unit scaling. Its tensors: layers.0.weight [8,16] at [0,512], layers.0.bias [8] at
 * [512,544], layers.2.weight [3,8] at [544,640], layers.2.bias [3] at [640,652]. */
static void write_small_model(test_ctx *t, const char *path) {
    fm_model *m = make_model(t, "dense:8:relu,dense:3", 4, 4, "a,b,c", 7);
    if (!m) return;
    fm_error err = {0};
    CHECK(t, fm_model_save(m, path, &err) == FM_OK, "%s", err.msg);
    fm_model_free(m);
}

/* Writes dst as an 8-byte little-endian length, header text and data bytes. */
static int write_parts(const char *dst, const char *header, size_t hlen, const unsigned char *data,
                       size_t dlen) {
    size_t len = 8 + hlen + dlen;
    unsigned char *buf = malloc(len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (dlen) memcpy(buf + 8 + hlen, data, dlen);
    int ok = test_write_file(dst, buf, len);
    free(buf);
    return ok;
}

/* Copies the model file src to dst with the first `find` in its JSON header replaced by `repl`
 * and the header length rewritten; the data section is kept as it is. */
static int edit_header(test_ctx *t, const char *src, const char *dst, const char *find,
                       const char *repl) {
    size_t len = 0;
    unsigned char *bytes = test_read_file(src, &len);
    if (!bytes || len < 8) {
        CHECK(t, 0, "cannot read %s", src);
        free(bytes);
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    char *header = malloc(hlen + 1);
    memcpy(header, bytes + 8, hlen);
    header[hlen] = '\0';
    char *at = strstr(header, find);
    CHECK(t, at != NULL, "\"%s\" not in the header %s", find, header);
    int ok = 0;
    if (at) {
        size_t flen = strlen(find), rlen = strlen(repl);
        char *edited = malloc(hlen + rlen + 1);
        size_t pre = (size_t)(at - header);
        memcpy(edited, header, pre);
        memcpy(edited + pre, repl, rlen);
        memcpy(edited + pre + rlen, at + flen, hlen - pre - flen);
        size_t elen = hlen - flen + rlen;
        ok = write_parts(dst, edited, elen, bytes + 8 + hlen, len - 8 - hlen);
        free(edited);
    }
    free(header);
    free(bytes);
    return ok;
}

#define EXPECT_LOAD_FAIL(t, path, want, phrase)                                 \
    do {                                                                        \
        fm_error err_ = {0};                                                    \
        fm_model *m_ = (fm_model *)&err_;                                       \
        fm_status s_ = fm_model_load(path, &m_, &err_);                         \
        CHECK_FAILS(t, s_, want, err_, path, phrase);                           \
        CHECK(t, m_ == NULL, "model not NULL after a failed load");             \
        if (s_ == FM_OK) fm_model_free(m_);                                     \
    } while (0)

void test_model_load_bad_files(test_ctx *t) {
    char good[512], path[512];
    test_path(good, sizeof good, "small.safetensors");
    write_small_model(t, good);
    /* The base file loads, so every failure below is the edit's doing. */
    fm_error err = {0};
    fm_model *m = NULL;
    CHECK(t, fm_model_load(good, &m, &err) == FM_OK, "%s", err.msg);
    fm_model_free(m);

    test_path(path, sizeof path, "missing.safetensors");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_IO, "cannot open");
    EXPECT_LOAD_FAIL(t, test_tmpdir(), FM_ERR_IO, "not a regular file");
    test_path(path, sizeof path, "empty.safetensors");
    CHECK(t, test_write_file(path, "", 0), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "too short");
    test_path(path, sizeof path, "seven.safetensors");
    CHECK(t, test_write_file(path, "\x10\0\0\0\0\0\0", 7), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "7 bytes");

    size_t len = 0;
    unsigned char *bytes = test_read_file(good, &len);
    CHECK(t, bytes && len > 200, "cannot read back");
    if (!bytes || len <= 200) return;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    const unsigned char *data = bytes + 8 + hlen;
    size_t dlen = len - 8 - hlen;
    CHECK(t, dlen == 652, "data section of %zu bytes", dlen);

    /* Header lengths the file cannot hold. */
    test_path(path, sizeof path, "hlen-big.safetensors");
    unsigned char *copy = malloc(len);
    memcpy(copy, bytes, len);
    uint64_t big = len - 7;
    for (int i = 0; i < 8; i++) copy[i] = (unsigned char)(big >> (8 * i));
    CHECK(t, test_write_file(path, copy, len), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "header length");
    for (int i = 0; i < 8; i++) copy[i] = 0xff;
    CHECK(t, test_write_file(path, copy, len), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "header length");
    free(copy);

    test_path(path, sizeof path, "not-json.safetensors");
    CHECK(t, write_parts(path, "{\"__metadata__\": nope", 21, data, dlen), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "not valid JSON");
    CHECK(t, write_parts(path, "[1, 2, 3]", 9, data, dlen), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "does not start with '{'");
    CHECK(t, write_parts(path, "{}", 2, data, dlen), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "__metadata__");

    /* Cut the data section: the last tensors point past the end. */
    test_path(path, sizeof path, "cut.safetensors");
    CHECK(t, test_write_file(path, bytes, len - 100), "write");
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "outside the 552 data bytes");
    /* Bytes after the last tensor are not allowed either. */
    test_path(path, sizeof path, "extra-bytes.safetensors");
    unsigned char *longer = malloc(len + 4);
    memcpy(longer, bytes, len);
    memset(longer + len, 0, 4);
    CHECK(t, test_write_file(path, longer, len + 4), "write");
    free(longer);
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "cover 652 of the 656 data bytes");

    /* NaN and infinity in the weights. */
    for (int k = 0; k < 2; k++) {
        unsigned char *nan_file = malloc(len);
        memcpy(nan_file, bytes, len);
        float bad = k ? INFINITY : NAN;
        memcpy(nan_file + 8 + hlen + 4 * 37, &bad, 4); /* layers.0.weight index 37 */
        test_path(path, sizeof path, k ? "inf.safetensors" : "nan.safetensors");
        CHECK(t, test_write_file(path, nan_file, len), "write");
        free(nan_file);
        EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "layers.0.weight holds a non-finite value at index 37");
    }
    free(bytes);

    static const struct { const char *find, *repl, *needle; } edits[] = {
        {"\"__metadata__\"", "\"__metadatx__\"", "no __metadata__"},
        {"\"format\":\"fmnist\"", "\"format\":\"keras\"", "format is \"keras\""},
        {"\"format\":\"fmnist\",", "", "format is \"(none)\""},
        {"\"format_version\":\"1\"", "\"format_version\":\"2\"", "format_version \"2\""},
        {"\"format_version\":\"1\"", "\"format_version\":1", "format_version \"(none)\""},
        {"\"spec\":", "\"spex\":", "no \"spec\""},
        {"\"spec\":\"dense:8,relu,dense:3\"", "\"spec\":\"dense:8,relu,dense:7\"", "7 outputs"},
        {"\"spec\":\"dense:8,relu,dense:3\"", "\"spec\":\"dense:8,conv,dense:3\"", "\"conv\""},
        {"\"input_shape\":\"1,4,4\"", "\"input_shape\":\"3,4,4\"", "input_shape"},
        {"\"input_shape\":\"1,4,4\"", "\"input_shape\":\"1,4\"", "\"1,4\""},
        {"\"input_shape\":\"1,4,4\"", "\"input_shape\":\"1,4,4,4\"", "\"1,4,4,4\""},
        {"\"input_shape\":\"1,4,4\"", "\"input_shape\":\"1,0,4\"", "input size 0x4"},
        {"\"input_shape\":\"1,4,4\"", "\"input_shape\":\"1,4,5\"", "the spec needs [8, 20]"},
        {"\"scaling\":\"unit\"", "\"scaling\":\"minmax\"", "\"minmax\""},
        {"\"scaling_std\":\"1\"", "\"scaling_std\":\"0\"", "scaling_std"},
        {"\"scaling_mean\":\"0\"", "\"scaling_mean\":\"nan\"", "scaling_mean"},
        {"\"classes\":\"[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"", "\"classes\":\"[\\\"a\\\"]\"", "\"classes\" holds 1 names"},
        {"\"classes\":\"[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"", "\"classes\":\"nope\"", "\"classes\" is not a JSON list"},
        {"\"classes\":\"[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"", "\"classes\":\"[\\\"a\\\",2,\\\"c\\\"]\"", "entry 1"},
        {"\"classes\":\"[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"", "\"classes\":\"[\\\"a\\\",\\\"b\\\",\\\"c\\\",\\\"d\\\"]\"", "4 classes"},
        {"\"shape\":[8,16]", "\"shape\":[16,8]", "layers.0.weight has shape [16,8], the spec needs [8, 16]"},
        {"\"shape\":[8,16]", "\"shape\":[128]", "layers.0.weight has shape"},
        {"\"shape\":[3]", "\"shape\":[3.5]", "layers.2.bias has shape"},
        {"\"layers.2.bias\"", "\"layers.3.bias\"", "tensor layers.2.bias is missing"},
        {"\"layers.0.weight\":", "\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"layers.0.weight\":", "holds 5 tensors"},
        {"\"dtype\":\"F32\"", "\"dtype\":\"F16\"", "layers.0.weight has dtype F16"},
        {"[640,652]", "[640,99999]", "layers.2.bias: data_offsets [640, 99999] fall outside"},
        {"[640,652]", "[652,640]", "layers.2.bias: data_offsets"},
        {"[640,652]", "[640,-652]", "data_offsets must be two integers"},
        {"[640,652]", "[640,648]", "layers.2.bias spans 8 bytes, its shape needs 12"},
        /* Sizes that add up, but bias over the weights' first bytes and a hole at the end. */
        {"[640,652]", "[0,12]", "overlaps at byte 0"},
        {"\"data_offsets\":[0,512]", "\"data_offsets\":[12,524]", "leaves a hole at byte 0"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "edit%zu.safetensors", i);
        test_path(path, sizeof path, name);
        if (!edit_header(t, good, path, edits[i].find, edits[i].repl)) continue;
        EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, edits[i].needle);
    }
    /* The editor itself leaves a loadable file when the edit changes nothing. */
    test_path(path, sizeof path, "edit-none.safetensors");
    if (edit_header(t, good, path, "\"F32\"", "\"F32\"")) {
        CHECK(t, fm_model_load(path, &m, &err) == FM_OK, "%s", err.msg);
        fm_model_free(m);
    }
}

/* A small file whose spec declares a huge model is refused from the header, before the model's
 * memory (here 1 GiB of weights) is allocated and initialised. */
void test_model_load_huge_spec(test_ctx *t) {
    char path[512];
    test_path(path, sizeof path, "huge-spec.safetensors");
    const char *header = "{\"__metadata__\":{\"format\":\"fmnist\",\"format_version\":\"1\","
                         "\"spec\":\"dense:65000,relu,dense:2\",\"input_shape\":\"1,64,64\","
                         "\"scaling\":\"unit\",\"scaling_mean\":\"0\",\"scaling_std\":\"1\","
                         "\"classes\":\"[\\\"a\\\", \\\"b\\\"]\"},"
                         "\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[65000,4096],\"data_offsets\":[0,16]}}";
    const unsigned char data[16] = {0};
    CHECK(t, write_parts(path, header, strlen(header), data, sizeof data), "write");
    double t0 = fm_now_seconds();
    EXPECT_LOAD_FAIL(t, path, FM_ERR_FORMAT, "needs 1065740008 bytes of tensors but the file holds 16");
    /* Allocating and initialising the weights would take seconds; the refusal takes none. */
    CHECK(t, fm_now_seconds() - t0 < 1.0, "took %.2fs", fm_now_seconds() - t0);
}

/* fm_spec_check answers as fm_model_create does, without building anything. */
void test_spec_check(test_ctx *t) {
    fm_error err = {0}, err2 = {0};
    size_t params = 0;
    fm_model *m = NULL;
    CHECK(t, fm_spec_check("mlp", 28, 28, 10, &params, &err) == FM_OK, "%s", err.msg);
    CHECK(t, fm_model_create("mlp", 28, 28, NULL, &m, &err) == FM_OK, "%s", err.msg);
    CHECK(t, m && params == fm_model_param_count(m), "params %zu, the model has %zu", params, m ? fm_model_param_count(m) : 0);
    fm_model_free(m);
    CHECK(t, fm_spec_check("conv:8:3:same,bn,relu,gap,dense:10", 28, 28, 10, &params, &err) == FM_OK, "%s", err.msg);
    CHECK(t, params == 8 * 9 + 8 + 2 * 8 + 8 * 10 + 10, "conv params %zu", params);
    /* The same message as fm_model_create's. */
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_spec_check("dense:128:foo,dense:10", 28, 28, mp.classes.n, NULL, &err) == FM_ERR_ARG, "bad spec accepted");
    CHECK(t, fm_model_create("dense:128:foo,dense:10", 28, 28, &mp, &m, &err2) == FM_ERR_ARG && strcmp(err.msg, err2.msg) == 0,
          "messages differ: \"%s\" and \"%s\"", err.msg, err2.msg);
    CHECK(t, fm_spec_check("dense:10", 0, 28, 10, NULL, &err) == FM_ERR_ARG && strstr(err.msg, "input size"), "%s", err.msg);
    CHECK(t, fm_spec_check("dense:10", 28, 28, 1, NULL, &err) == FM_ERR_ARG && strstr(err.msg, "classes"), "%s", err.msg);
    /* A quarter of a billion weights: checked at once (building it would take a GiB and seconds). */
    double t0 = fm_now_seconds();
    CHECK(t, fm_spec_check("dense:65000,relu,dense:2", 64, 64, 2, &params, &err) == FM_OK, "%s", err.msg);
    CHECK(t, params == 4096u * 65000 + 65000 + 65000 * 2 + 2 && fm_now_seconds() - t0 < 0.5, "params %zu", params);
}
