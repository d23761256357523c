/* test_augment.c — training-time augmentation (each transformation with explicit amounts, the
 * seeded batch function, parsing) and test-time flip averaging in prediction, evaluation and
 * model files. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void test_augment_parse(test_ctx *t) {
    fm_error err = {0};
    fm_augment a;
    CHECK(t, fm_augment_parse("shift=2,flip,rotate=10,erase=0.5", &a, &err) == FM_OK, "%s", err.msg);
    CHECK(t, a.shift == 2 && a.flip == 1 && a.rotate == 10.0f && a.erase == 0.5f, "parsed wrong");
    char text[128];
    fm_augment_format(&a, text, sizeof text);
    CHECK(t, strcmp(text, "shift=2,flip,rotate=10,erase=0.5") == 0, "formatted \"%s\"", text);
    CHECK(t, fm_augment_parse("erase=0.25,flip", &a, &err) == FM_OK && a.shift == 0 && a.flip &&
                 a.rotate == 0.0f && a.erase == 0.25f, "order does not matter");
    fm_augment_format(&a, text, sizeof text);
    CHECK(t, strcmp(text, "flip,erase=0.25") == 0, "formatted \"%s\"", text);
    CHECK(t, fm_augment_parse("none", &a, &err) == FM_OK && !fm_augment_active(&a), "none");
    fm_augment_format(&a, text, sizeof text);
    CHECK(t, strcmp(text, "none") == 0, "formatted \"%s\"", text);
    static const struct { const char *text, *needle; } bad[] = {
        {"", "empty"},
        {"shift", "\"shift\": shift needs a whole number of pixels in 1..16"},
        {"shift=0", "\"shift=0\": shift needs"},
        {"shift=2.5", "\"shift=2.5\""},
        {"shift=17", "\"shift=17\""},
        {"shift= 2", "\"shift= 2\""},
        {"flip=1", "\"flip=1\": flip takes no value"},
        {"rotate=0", "\"rotate=0\": rotate needs degrees in (0, 180]"},
        {"rotate=200", "\"rotate=200\""},
        {"rotate=nan", "\"rotate=nan\""},
        {"erase=1.5", "\"erase=1.5\": erase needs a probability in (0, 1]"},
        {"erase=x", "\"erase=x\""},
        {"crop=4", "\"crop=4\": unknown (expected shift=N, flip, rotate=DEGREES or erase=P)"},
        {"flip,flip", "\"flip\": flip given twice"},
        {"flip,,shift=1", "\"\": unknown"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(t, fm_augment_parse(bad[i].text, &a, &err), FM_ERR_ARG, err, bad[i].needle, NULL);
    }
}

/* A 4x5 image holding 1..20 in reading order. */
static void counting(float *img) {
    for (int i = 0; i < 20; i++) img[i] = (float)(i + 1);
}

void test_augment_transformations(test_ctx *t) {
    float img[20], out[20];
    counting(img);
    /* Right by 1, up by 1: out[y][x] = img[y+1][x-1]; column 0 and the last row are background. */
    augment_shift(out, img, 4, 5, 1, -1, -7.0f);
    const float shifted[20] = {-7, 6, 7, 8, 9, -7, 11, 12, 13, 14, -7, 16, 17, 18, 19, -7, -7, -7, -7, -7};
    CHECK(t, memcmp(out, shifted, sizeof out) == 0, "shift: %g %g %g ... %g", (double)out[0], (double)out[1],
          (double)out[2], (double)out[19]);
    augment_shift(out, img, 4, 5, 0, 0, -7.0f);
    CHECK(t, memcmp(out, img, sizeof out) == 0, "shift by 0 changed the image");
    augment_shift(out, img, 4, 5, 5, 0, -7.0f);
    for (int i = 0; i < 20; i++) CHECK(t, out[i] == -7.0f, "shifted out entirely: out[%d] = %g", i, (double)out[i]);

    memcpy(out, img, sizeof out);
    augment_flip(out, 4, 5);
    CHECK(t, out[0] == 5 && out[4] == 1 && out[2] == 3 && out[5] == 10 && out[19] == 16, "flip");
    augment_flip(out, 4, 5);
    CHECK(t, memcmp(out, img, sizeof out) == 0, "two flips are not the identity");

    memcpy(out, img, sizeof out);
    augment_erase(out, 4, 5, 1, 2, 2, 3, 0.0f); /* rows 1-2, columns 2-4 */
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 5; x++) {
            float want = y >= 1 && y <= 2 && x >= 2 ? 0.0f : img[y * 5 + x];
            CHECK(t, out[y * 5 + x] == want, "erase (%d,%d) = %g", y, x, (double)out[y * 5 + x]);
        }
    }

    /* Rotation by 0 is exact; by 90 degrees on a 5x5 image (centre (2,2)) the pixel above the
     * centre goes to its right, the one on its right below it, and a corner to the next corner. */
    float sq[25], rot[25];
    for (int i = 0; i < 25; i++) sq[i] = (float)(i + 1);
    augment_rotate(rot, sq, 5, 5, 0.0f, -1.0f);
    CHECK(t, memcmp(rot, sq, sizeof sq) == 0, "rotation by 0 changed the image");
    augment_rotate(rot, sq, 5, 5, 90.0f, -1.0f);
    CHECK(t, fabsf(rot[2 * 5 + 3] - sq[1 * 5 + 2]) < 1e-5f, "above the centre -> right: %g", (double)rot[13]);
    CHECK(t, fabsf(rot[3 * 5 + 2] - sq[2 * 5 + 3]) < 1e-5f, "right -> below: %g", (double)rot[17]);
    CHECK(t, fabsf(rot[0 * 5 + 4] - sq[0]) < 1e-5f, "top-left corner -> top-right: %g", (double)rot[4]);
    CHECK(t, fabsf(rot[12] - sq[12]) < 1e-6f, "the centre stays");
    augment_rotate(rot, sq, 5, 5, 180.0f, -1.0f);
    for (int i = 0; i < 25; i++) CHECK(t, fabsf(rot[i] - sq[24 - i]) < 1e-4f, "180 degrees: [%d] %g", i, (double)rot[i]);
    /* Bilinear: at 45 degrees the pixel right of the centre samples (2 + 0.7071, 2 - 0.7071)
     * between four pixels; a constant image stays constant where every sample is inside. */
    for (int i = 0; i < 25; i++) sq[i] = 3.0f;
    augment_rotate(rot, sq, 5, 5, 45.0f, 0.0f);
    CHECK(t, fabsf(rot[12] - 3.0f) < 1e-6f && fabsf(rot[13] - 3.0f) < 1e-5f, "constant image");
    CHECK(t, rot[0] < 3.0f && rot[0] >= 0.0f, "a corner mixes in the background: %g", (double)rot[0]);
}

void test_augment_batch_seeded(test_ctx *t) {
    enum { B = 16, H = 8, W = 8, D = H * W };
    float x[B * D], a[B * D], b[B * D], scratch[D];
    fm_rng rng;
    fm_rng_seed(&rng, 1);
    for (int i = 0; i < B * D; i++) x[i] = fm_rng_uniform(&rng);
    fm_augment aug = {2, 1, 10.0f, 0.5f};
    fm_rng r1, r2;
    memcpy(a, x, sizeof x), memcpy(b, x, sizeof x);
    fm_rng_seed(&r1, 9), fm_rng_seed(&r2, 9);
    fm_augment_batch(a, B, H, W, &aug, -0.5f, scratch, &r1);
    fm_augment_batch(b, B, H, W, &aug, -0.5f, scratch, &r2);
    CHECK(t, memcmp(a, b, sizeof a) == 0, "same seed, different batches");
    CHECK(t, fm_rng_next(&r1) == fm_rng_next(&r2), "different numbers of draws");
    int changed = 0;
    for (int i = 0; i < B; i++) changed += memcmp(a + i * D, x + i * D, D * sizeof(float)) != 0;
    CHECK(t, changed == B, "%d of %d images changed", changed, B);
    memcpy(b, x, sizeof x);
    fm_rng_seed(&r2, 10);
    fm_augment_batch(b, B, H, W, &aug, -0.5f, scratch, &r2);
    CHECK(t, memcmp(a, b, sizeof a) != 0, "seeds 9 and 10 give the same batch");
    /* Flips alone: each image is itself or its mirror, about half of each. */
    fm_augment flips = {0, 1, 0.0f, 0.0f};
    memcpy(a, x, sizeof x);
    fm_augment_batch(a, B, H, W, &flips, 0.0f, scratch, &r1);
    int mirrored = 0;
    for (int i = 0; i < B; i++) {
        memcpy(b, x + i * D, D * sizeof(float));
        augment_flip(b, H, W);
        int same = memcmp(a + i * D, x + i * D, D * sizeof(float)) == 0;
        int flipped = memcmp(a + i * D, b, D * sizeof(float)) == 0;
        CHECK(t, same || flipped, "image %d is neither itself nor its mirror", i);
        mirrored += flipped;
    }
    CHECK(t, mirrored >= 3 && mirrored <= 13, "%d of %d mirrored", mirrored, B);
    /* Nothing enabled: no change and no draws. */
    fm_augment none = {0, 0, 0.0f, 0.0f};
    memcpy(a, x, sizeof x);
    r2 = r1;
    fm_augment_batch(a, B, H, W, &none, 0.0f, scratch, &r1);
    CHECK(t, memcmp(a, x, sizeof x) == 0 && fm_rng_next(&r1) == fm_rng_next(&r2), "none did something");
}

/* The band images (harness.h) at this file's noise, lift and bands. */
static fm_dataset bands(uint32_t n, uint64_t seed) { return test_band_data(n, seed, 90, 150, 5); }

static fm_model *small_model(test_ctx *t, const char *spec) {
    fm_error err = {0};
    fm_model_params mp = fm_model_default_params();
    CHECK(t, fm_classes_parse("l,m,r", &mp.classes, &err) == FM_OK, "%s", err.msg);
    fm_model *m = NULL;
    CHECK(t, fm_model_create(spec, 8, 8, &mp, &m, &err) == FM_OK, "%s", err.msg);
    return m;
}

void test_fit_augmented(test_ctx *t) {
    fm_dataset ds = bands(400, 2);
    float *params[2] = {NULL, NULL};
    size_t P = 0;
    for (int k = 0; k < 2; k++) {
        fm_model *m = small_model(t, "conv:4:3:same,relu,dense:3");
        if (!m) return;
        fm_train_params p = fm_train_default_params();
        p.epochs = 2, p.val = 100, p.threads = 1, p.lr = 0.01f;
        if (k) p.augment = (fm_augment){1, 1, 5.0f, 0.3f};
        fm_error err = {0};
        fm_history hist;
        CHECK(t, fm_fit(m, &ds, &p, &hist, &err) == FM_OK, "%s", err.msg);
        /* Validation sees the images as they are: its figures are fm_evaluate's on the head. */
        fm_eval_result ev;
        fm_dataset head = fm_dataset_slice(&ds, 0, 100);
        CHECK(t, fm_evaluate(m, &head, 1000, 1, &ev, &err) == FM_OK, "%s", err.msg);
        if (hist.n == 2) {
            CHECK(t, hist.epochs[1].val_accuracy == ev.accuracy, "validation %g, evaluate %g",
                  hist.epochs[1].val_accuracy, ev.accuracy);
            CHECK_NEAR(t, hist.epochs[1].val_loss, ev.loss, 1e-9);
        }
        fm_history_free(&hist);
        P = m->n_params;
        params[k] = malloc(P * sizeof(float));
        memcpy(params[k], m->params, P * sizeof(float));
        fm_model_free(m);
    }
    if (params[0] && params[1]) CHECK(t, memcmp(params[0], params[1], P * sizeof(float)) != 0, "augmentation changed nothing");
    free(params[0]), free(params[1]);
    fm_dataset_free(&ds);
}

void test_tta_flip(test_ctx *t) {
    fm_dataset ds = bands(50, 3);
    fm_model *m = small_model(t, "conv:3:3:same,relu,maxpool:2,dense:3");
    if (!m) return;
    fm_error err = {0};
    /* Without TTA: the probabilities of the images and of their mirrors. */
    float plain[50 * 3], mirrored[50 * 3], tta[50 * 3];
    CHECK(t, fm_predict(m, &ds, 0, 50, plain, 1, &err) == FM_OK, "%s", err.msg);
    fm_dataset flipped = ds;
    flipped.images = malloc(50 * 64);
    memcpy(flipped.images, ds.images, 50 * 64);
    for (int i = 0; i < 50; i++) {
        uint8_t *img = flipped.images + i * 64;
        for (int y = 0; y < 8; y++) {
            for (int a = 0, b = 7; a < b; a++, b--) {
                uint8_t tmp = img[y * 8 + a];
                img[y * 8 + a] = img[y * 8 + b], img[y * 8 + b] = tmp;
            }
        }
    }
    CHECK(t, fm_predict(m, &flipped, 0, 50, mirrored, 1, &err) == FM_OK, "%s", err.msg);
    fm_model_set_tta(m, 1);
    CHECK(t, fm_model_tta(m) == 1, "tta not set");
    CHECK(t, fm_predict(m, &ds, 0, 50, tta, 1, &err) == FM_OK, "%s", err.msg);
    for (int i = 0; i < 150; i++) CHECK(t, tta[i] == 0.5f * (plain[i] + mirrored[i]), "prob %d", i);
    /* fm_evaluate agrees with counting the averaged predictions; its loss is -log of the mean
     * probability of the label. */
    fm_eval_result ev;
    CHECK(t, fm_evaluate(m, &ds, 16, 1, &ev, &err) == FM_OK, "%s", err.msg);
    int right = 0;
    double loss = 0;
    for (int i = 0; i < 50; i++) {
        right += fm_argmax(tta + i * 3, 3) == ds.labels[i];
        loss -= log(tta[i * 3 + ds.labels[i]]) / 50;
    }
    CHECK(t, ev.accuracy == right / 50.0, "accuracy %g, want %g", ev.accuracy, right / 50.0);
    CHECK_NEAR(t, ev.loss, loss, 1e-6);
    /* Model files keep it; a bad value is refused. */
    char path[512];
    test_path(path, sizeof path, "tta.safetensors");
    CHECK(t, fm_model_save(m, path, &err) == FM_OK, "%s", err.msg);
    fm_model *l = NULL;
    CHECK(t, fm_model_load(path, &l, &err) == FM_OK, "%s", err.msg);
    if (l) {
        CHECK(t, fm_model_tta(l) == 1, "tta lost in the file");
        float again[50 * 3];
        CHECK(t, fm_predict(l, &ds, 0, 50, again, 1, &err) == FM_OK, "%s", err.msg);
        CHECK(t, memcmp(again, tta, sizeof tta) == 0, "loaded model predicts differently");
    }
    fm_model_free(l);
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    if (bytes) {
        unsigned char *at = NULL;
        for (size_t i = 0; !at && i + 12 <= len; i++) {
            if (memcmp(bytes + i, "\"tta\":\"flip\"", 12) == 0) at = bytes + i;
        }
        CHECK(t, at != NULL, "no tta in the header");
        if (at) memcpy(at, "\"tta\":\"flap\"", 12);
        test_path(path, sizeof path, "tta-bad.safetensors");
        CHECK(t, test_write_file(path, bytes, len), "write");
        CHECK_FAILS(t, fm_model_load(path, &l, &err), FM_ERR_FORMAT, err, "metadata \"tta\" must be flip or none", "\"flap\"");
    }
    free(bytes);
    free(flipped.images);
    fm_model_free(m);
    fm_dataset_free(&ds);
}
