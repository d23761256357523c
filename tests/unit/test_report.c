/* test_report.c — the pictures and reports: confusion counts, worst mistakes, CSV and HTML text,
 * base64, picture sizes and colours read back from the PNGs, failures on unwritable paths, the
 * run report and the experiment comparison written end to end on a small synthetic problem. */
#include "harness.h"
#include "report/report.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Count of needle in a whole file. */
static int count_in_file(const char *path, const char *needle) {
    size_t n;
    unsigned char *data = test_read_file(path, &n);
    if (!data) return -1;
    char *text = realloc(data, n + 1);
    if (!text) {
        free(data);
        return -1;
    }
    text[n] = '\0';
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) count++;
    free(text);
    return count;
}

/* The PNG's size, decoded by cairo (0 x 0 when it does not read). */
static void png_size(const char *path, int *w, int *h) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    *w = *h = 0;
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
        *w = cairo_image_surface_get_width(s);
        *h = cairo_image_surface_get_height(s);
    }
    cairo_surface_destroy(s);
}

/* One pixel of a PNG as 0..255 r, g, b. */
static int png_pixel(const char *path, int x, int y, int rgb_out[3]) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    int ok = cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && x >= 0 && y >= 0 &&
             x < cairo_image_surface_get_width(s) && y < cairo_image_surface_get_height(s);
    if (ok) {
        cairo_surface_flush(s);
        const unsigned char *row = cairo_image_surface_get_data(s) + (size_t)y * cairo_image_surface_get_stride(s);
        uint32_t v;
        memcpy(&v, row + 4 * x, 4); /* native-endian 0xAARRGGBB */
        rgb_out[0] = (int)(v >> 16 & 255), rgb_out[1] = (int)(v >> 8 & 255), rgb_out[2] = (int)(v & 255);
    }
    cairo_surface_destroy(s);
    return ok;
}

static int same_color(const int px[3], rgb c) {
    int want[3] = {(int)(c.r * 255 + 0.5), (int)(c.g * 255 + 0.5), (int)(c.b * 255 + 0.5)};
    for (int k = 0; k < 3; k++) {
        if (abs(px[k] - want[k]) > 1) return 0;
    }
    return 1;
}

/* The band images (harness.h) at this file's noise, lift and bands. */
static fm_dataset make_bands(uint32_t n, uint64_t seed) { return test_band_data(n, seed, 120, 120, 6); }

void test_confusion_matrix_counts(test_ctx *t) {
    /* 5 images, 3 classes; predictions are the argmax (first on ties, as fm_evaluate counts). */
    const float probs[5 * 3] = {0.7f, 0.2f, 0.1f,  0.1f, 0.8f, 0.1f,  0.5f, 0.5f, 0.0f,
                                0.2f, 0.3f, 0.5f,  0.3f, 0.6f, 0.1f};
    const uint8_t labels[5] = {0, 1, 1, 2, 2};
    uint32_t counts[9];
    fm_error err = {0};
    CHECK(t, fm_confusion_matrix(probs, labels, 5, 3, counts, &err) == FM_OK, "%s", err.msg);
    const uint32_t want[9] = {1, 0, 0,  1, 1, 0,  0, 1, 1};
    for (int k = 0; k < 9; k++) CHECK(t, counts[k] == want[k], "cell %d: %u, want %u", k, counts[k], want[k]);
    CHECK(t, fm_predicted_class(probs + 6, 3) == 0, "tie goes to the first class");
    const uint8_t bad[5] = {0, 1, 3, 2, 2};
    CHECK_FAILS(t, fm_confusion_matrix(probs, bad, 5, 3, counts, &err), FM_ERR_ARG, err, "label 3 of image 2", NULL);
    CHECK_FAILS(t, fm_confusion_matrix(probs, labels, 5, 0, counts, &err), FM_ERR_ARG, err, "0 classes", NULL);
}

void test_worst_mistakes_order(test_ctx *t) {
    const float probs[6 * 2] = {0.9f, 0.1f,  0.2f, 0.8f,  0.4f, 0.6f,  0.8f, 0.2f,  0.2f, 0.8f,  0.7f, 0.3f};
    const uint8_t labels[6] = {0, 0, 0, 1, 0, 0};
    uint32_t rows[6];
    /* Wrong: 1 (0.8), 2 (0.6), 3 (0.8), 4 (0.8): by confidence, ties by index. */
    uint32_t n = fm_worst_mistakes(probs, labels, 6, 2, rows, 6);
    CHECK(t, n == 4, "%u mistakes", n);
    const uint32_t want[4] = {1, 3, 4, 2};
    for (uint32_t k = 0; k < n && k < 4; k++) CHECK(t, rows[k] == want[k], "rank %u: %u, want %u", k, rows[k], want[k]);
    CHECK(t, fm_worst_mistakes(probs, labels, 6, 2, rows, 2) == 2 && rows[0] == 1 && rows[1] == 3, "max 2");
    CHECK(t, fm_worst_mistakes(probs, labels, 1, 2, rows, 6) == 0, "no mistakes among the first image");
}

void test_text_escaping_and_base64(test_ctx *t) {
    text_buf b = {0};
    text_html(&b, "<a href=\"x\">&'");
    CHECK(t, b.data && strcmp(b.data, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;") == 0, "html: %s", b.data);
    text_free(&b);
    text_csv(&b, "T-shirt, \"top\"");
    CHECK(t, b.data && strcmp(b.data, "\"T-shirt, \"\"top\"\"\"") == 0, "csv: %s", b.data);
    text_free(&b);
    /* RFC 4648's test vectors. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        text_base64(&b, (const unsigned char *)in[i], strlen(in[i]));
        CHECK(t, strcmp(b.data ? b.data : "", out[i]) == 0, "base64(\"%s\") = %s", in[i], b.data ? b.data : "");
        text_free(&b);
    }
    text_printf(&b, "%d-%s", 42, "x");
    text_printf(&b, "%s", "");
    CHECK(t, b.data && strcmp(b.data, "42-x") == 0 && b.len == 4, "printf: %s", b.data);
    text_free(&b);
}

void test_predictions_csv_format(test_ctx *t) {
    fm_dataset ds = make_bands(3, 1);
    ds.labels[0] = 0, ds.labels[1] = 1, ds.labels[2] = 2;
    fm_classes cl;
    fm_error err = {0};
    CHECK(t, fm_classes_parse("plain,with space,last", &cl, &err) == FM_OK, "%s", err.msg);
    const float probs[9] = {0.5f, 0.25f, 0.25f, 0.1f, 0.2f, 0.7f, 0.0f, 0.0f, 1.0f};
    char path[512];
    test_path(path, sizeof path, "pred.csv");
    CHECK(t, fm_predictions_write_csv(path, &ds, probs, &cl, &err) == FM_OK, "%s", err.msg);
    size_t n;
    unsigned char *text = test_read_file(path, &n);
    const char *want = "index,label,predicted,label_name,predicted_name,confidence,p0,p1,p2\n"
                       "0,0,0,\"plain\",\"plain\",0.5,0.5,0.25,0.25\n"
                       "1,1,2,\"with space\",\"last\",0.699999988,0.100000001,0.200000003,0.699999988\n"
                       "2,2,2,\"last\",\"last\",1,0,0,1\n";
    CHECK(t, text && n == strlen(want) && memcmp(text, want, n) == 0, "got:\n%.*s", (int)n, text ? (char *)text : "");
    free(text);
    fm_dataset_free(&ds);
}

void test_image_grid_picture(test_ctx *t) {
    fm_dataset ds = make_bands(6, 2);
    fm_classes cl;
    fm_error err = {0};
    fm_classes_parse("left,middle,right", &cl, &err);
    const uint32_t rows[5] = {0, 1, 2, 3, 5};
    char path[512];
    test_path(path, sizeof path, "grid.png");
    fm_grid_params gp = fm_grid_default_params();
    gp.columns = 2, gp.scale = 16; /* 128-pixel images: wider than any caption */
    CHECK(t, fm_draw_image_grid(path, &ds, rows, 5, &cl, &gp, &err) == FM_OK, "%s", err.msg);
    /* 2 columns of 128+8 pixels with a 10-pixel gap, 3 rows of 4+128+8+13+6, 20-pixel margins. */
    int w, h;
    png_size(path, &w, &h);
    CHECK(t, w == 40 + 2 * 136 + 10 && h == 40 + 3 * 159 + 2 * 10, "grid is %dx%d", w, h);
    /* The first image's top-left pixel, drawn dark for bright pixels (0 white, 255 black). */
    int px[3];
    int ix = 20 + (136 - 128) / 2, iy = 20 + 4;
    double v = 1.0 - ds.images[0] / 255.0;
    CHECK(t, png_pixel(path, ix + 3, iy + 3, px) && same_color(px, (rgb){v, v, v}), "pixel %d,%d,%d vs %g",
          px[0], px[1], px[2], v);

    const uint32_t outside[1] = {6};
    CHECK_FAILS(t, fm_draw_image_grid(path, &ds, outside, 1, &cl, &gp, &err), FM_ERR_ARG, err, "image 6 is outside", NULL);
    CHECK_FAILS(t, fm_draw_image_grid(path, &ds, rows, 0, &cl, &gp, &err), FM_ERR_ARG, err, "no images", NULL);
    char bad[600];
    test_path(bad, sizeof bad, "no-such-folder/grid.png");
    CHECK_FAILS(t, fm_draw_image_grid(bad, &ds, rows, 5, &cl, &gp, &err), FM_ERR_IO, err, "no-such-folder/grid.png: cannot create", NULL);
    gp.scale = 1000;
    CHECK_FAILS(t, fm_draw_image_grid(path, &ds, rows, 5, &cl, &gp, &err), FM_ERR_ARG, err, "is outside 1..16384 pixels", NULL);
    fm_dataset_free(&ds);
}

void test_prediction_grid_picture(test_ctx *t) {
    fm_dataset ds = make_bands(4, 3);
    ds.labels[0] = 0, ds.labels[1] = 1, ds.labels[2] = 2, ds.labels[3] = 2;
    fm_classes cl;
    fm_error err = {0};
    fm_classes_parse("A,B,C", &cl, &err);
    /* Image 1 and 3 are predicted wrong. */
    const float probs[12] = {0.9f, 0.05f, 0.05f,  0.7f, 0.2f, 0.1f,  0.1f, 0.1f, 0.8f,  0.25f, 0.5f, 0.25f};
    const uint32_t rows[4] = {0, 1, 2, 3};
    fm_grid_tile tiles[4];
    char path[512];
    test_path(path, sizeof path, "pred.png");
    fm_grid_params gp = fm_grid_default_params();
    gp.title = "Predictions";
    CHECK(t, fm_draw_prediction_grid(path, &ds, probs, rows, 4, &cl, &gp, tiles, &err) == FM_OK, "%s", err.msg);
    const int right[4] = {1, 0, 1, 0}, predicted[4] = {0, 0, 2, 1};
    int w, h;
    png_size(path, &w, &h);
    CHECK(t, w > 0 && h > 0, "unreadable PNG");
    for (int i = 0; i < 4; i++) {
        CHECK(t, tiles[i].index == rows[i] && tiles[i].correct == right[i] && tiles[i].predicted == predicted[i],
              "tile %d: index %u correct %d predicted %d", i, tiles[i].index, tiles[i].correct, tiles[i].predicted);
        CHECK(t, tiles[i].x >= 0 && tiles[i].y >= 0 && tiles[i].x + tiles[i].w <= w && tiles[i].y + tiles[i].h <= h,
              "tile %d outside the picture", i);
        /* The frame's colour says right (blue) or wrong (red), at the middle of its top edge. */
        int px[3];
        CHECK(t, png_pixel(path, tiles[i].x + tiles[i].w / 2, tiles[i].y, px) &&
                     same_color(px, right[i] ? COLOR_RIGHT : COLOR_WRONG),
              "tile %d frame is %d,%d,%d", i, px[0], px[1], px[2]);
    }
    CHECK(t, strcmp(tiles[1].caption[0], "A 70.0%") == 0 && strcmp(tiles[1].caption[1], "true: B") == 0,
          "captions \"%s\" / \"%s\"", tiles[1].caption[0], tiles[1].caption[1]);
    CHECK(t, tiles[1].x > tiles[0].x && tiles[1].y == tiles[0].y, "tiles run left to right");

    char csv[512];
    test_path(csv, sizeof csv, "pred-grid.csv");
    CHECK(t, fm_grid_tiles_write_csv(csv, tiles, 4, &cl, &err) == FM_OK, "%s", err.msg);
    CHECK(t, count_in_file(csv, "\n") == 5, "header and 4 rows");
    CHECK(t, count_in_file(csv, ",\"A 70.0%\",\"true: B\"\n") == 1, "tile 1's captions in the CSV");
    fm_dataset_free(&ds);
}

void test_curves_picture(test_ctx *t) {
    fm_epoch_stats e[3] = {{.epoch = 1, .epochs = 3, .loss = 0.9, .accuracy = 0.70, .val_loss = 0.8, .val_accuracy = 0.72, .seconds = 1.0}, {.epoch = 2, .epochs = 3, .loss = 0.6, .accuracy = 0.80, .val_loss = 0.65, .val_accuracy = 0.79, .seconds = 1.0},
                           {.epoch = 3, .epochs = 3, .loss = 0.5, .accuracy = 0.84, .val_loss = 0.6, .val_accuracy = 0.81, .seconds = 1.0}};
    fm_history h = {.n = 3, .epochs = e};
    char path[512];
    fm_error err = {0};
    test_path(path, sizeof path, "curves.png");
    CHECK(t, fm_draw_curves(path, &h, "Curves", &err) == FM_OK, "%s", err.msg);
    int w, hgt;
    png_size(path, &w, &hgt);
    CHECK(t, w == 1100 && hgt == 460, "curves are %dx%d", w, hgt);
    /* One epoch, no validation (--val 0): points, one legend entry. */
    fm_epoch_stats one = {.epoch = 1, .epochs = 1, .loss = 0.7, .accuracy = 0.75, .val_loss = NAN, .val_accuracy = NAN, .seconds = 1.0};
    fm_history h1 = {.n = 1, .epochs = &one};
    CHECK(t, fm_draw_curves(path, &h1, NULL, &err) == FM_OK, "one epoch: %s", err.msg);
    /* All the same value: the axis still has a range. */
    for (int i = 0; i < 3; i++) e[i].loss = e[i].val_loss = 0.5, e[i].accuracy = e[i].val_accuracy = 1.0;
    CHECK(t, fm_draw_curves(path, &h, NULL, &err) == FM_OK, "flat curves: %s", err.msg);
    fm_history empty = {.n = 0, .epochs = NULL};
    CHECK_FAILS(t, fm_draw_curves(path, &empty, NULL, &err), FM_ERR_ARG, err, "no epochs", NULL);

    const char *labels[2] = {"three", "one"};
    fm_history both[2] = {h, h1};
    test_path(path, sizeof path, "overlay.png");
    CHECK_FAILS(t, fm_draw_val_accuracy(path, NULL, both, labels, 2, &err), FM_ERR_ARG, err,
                "run \"one\" has no validation accuracy", NULL);
    one.val_accuracy = 0.7;
    CHECK(t, fm_draw_val_accuracy(path, "Overlay", both, labels, 2, &err) == FM_OK, "%s", err.msg);
    png_size(path, &w, &hgt);
    CHECK(t, w > 760 && hgt == 520, "overlay is %dx%d", w, hgt);
}

void test_confusion_picture_and_csv(test_ctx *t) {
    fm_classes cl;
    fm_error err = {0};
    fm_classes_parse("fashion", &cl, &err);
    uint32_t counts[100];
    for (int k = 0; k < 100; k++) counts[k] = k / 10 == k % 10 ? 90 : (uint32_t)(k % 3);
    char png[512], csv[512];
    test_path(png, sizeof png, "confusion.png");
    test_path(csv, sizeof csv, "confusion.csv");
    CHECK(t, fm_draw_confusion(png, counts, &cl, "Confusion", &err) == FM_OK, "%s", err.msg);
    int w, h;
    png_size(png, &w, &h);
    CHECK(t, w > 10 * 54 && h > 10 * 54, "confusion is %dx%d", w, h);
    CHECK(t, fm_confusion_write_csv(csv, counts, &cl, &err) == FM_OK, "%s", err.msg);
    CHECK(t, count_in_file(csv, "\n") == 11, "header and 10 rows");
    /* Row 0: 90 on the diagonal, then 1,2,0,1,2,0,1,2,0 -> total 99. */
    CHECK(t, count_in_file(csv, "\"T-shirt/top\",90,1,2,0,1,2,0,1,2,0,99,0.909090909\n") == 1, "row 0");
    fm_classes two;
    fm_classes_parse("no,yes", &two, &err);
    const uint32_t zero[4] = {0, 0, 0, 0};
    CHECK(t, fm_draw_confusion(png, zero, &two, NULL, &err) == FM_OK, "an empty 2x2 matrix: %s", err.msg);
}

void test_report_write_run(test_ctx *t) {
    fm_dataset train = make_bands(600, 4), test = make_bands(150, 5);
    fm_model_params mp = fm_model_default_params();
    fm_error err = {0};
    fm_classes_parse("left,middle,right", &mp.classes, &err);
    fm_model *m = NULL;
    CHECK(t, fm_model_create("dense:16:relu,dense:3", 8, 8, &mp, &m, &err) == FM_OK, "%s", err.msg);
    if (!m) return;
    fm_train_params tp = fm_train_default_params();
    tp.epochs = 2, tp.val = 100, tp.threads = 1;
    fm_history hist;
    CHECK(t, fm_fit(m, &train, &tp, &hist, &err) == FM_OK, "%s", err.msg);

    char dir[512], path[600];
    test_path(dir, sizeof dir, "run");
    test_mkdir(dir);
    const fm_setting settings[2] = {{"model", "dense:16:relu,dense:3"}, {"note", "<b>escaped</b>"}};
    fm_report_params rp = fm_report_default_params();
    rp.title = "unit run";
    rp.settings = settings, rp.n_settings = 2;
    rp.history = &hist;
    rp.test = &test;
    rp.threads = 1;
    rp.grid_count = 10, rp.mistakes_count = 5;
    fm_eval_result shown, direct;
    CHECK(t, fm_report_write(dir, m, &rp, &shown, &err) == FM_OK, "%s", err.msg);
    CHECK(t, fm_evaluate(m, &test, 1000, 1, &direct, &err) == FM_OK, "%s", err.msg);
    CHECK(t, shown.accuracy == direct.accuracy && shown.n == 150, "page %g vs evaluate %g", shown.accuracy, direct.accuracy);
    static const char *const files[] = {"curves.png", "confusion.png", "confusion.csv", "predictions.png",
                                        "predictions.csv", "predictions-grid.csv", "report.html"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECK(t, file_exists(path), "%s missing", files[i]);
    }
    snprintf(path, sizeof path, "%s/predictions.csv", dir);
    CHECK(t, count_in_file(path, "\n") == 151, "a row per test image");
    snprintf(path, sizeof path, "%s/predictions-grid.csv", dir);
    CHECK(t, count_in_file(path, "\n") == 11, "10 tiles");
    snprintf(path, sizeof path, "%s/report.html", dir);
    int mistakes = shown.accuracy < 1.0;
    CHECK(t, count_in_file(path, "src=\"data:image/png;base64,") == 3 + mistakes, "embedded pictures");
    CHECK(t, count_in_file(path, "id=\"test-accuracy\"") == 1, "the test accuracy on the page");
    CHECK(t, count_in_file(path, "&lt;b&gt;escaped&lt;/b&gt;") == 1, "settings are escaped");
    CHECK(t, count_in_file(path, "<b>escaped") == 0, "no raw markup from settings");
    CHECK(t, count_in_file(path, "://") == 0, "the page links nothing on the network");

    /* Without a test set or history: just the page (and no stale references). */
    char bare[512];
    test_path(bare, sizeof bare, "bare");
    test_mkdir(bare);
    fm_report_params none = fm_report_default_params();
    CHECK(t, fm_report_write(bare, m, &none, NULL, &err) == FM_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/report.html", bare);
    CHECK(t, count_in_file(path, "<img") == 0 && count_in_file(path, "--no-test") == 1, "a page without pictures");
    snprintf(path, sizeof path, "%s/curves.png", bare);
    CHECK(t, !file_exists(path), "no curves without a history");

    test_path(path, sizeof path, "missing-folder");
    CHECK_FAILS(t, fm_report_write(path, m, &rp, NULL, &err), FM_ERR_IO, err, "missing-folder/curves.png: cannot create", NULL);
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&train);
    fm_dataset_free(&test);
}

void test_experiment_write_files(test_ctx *t) {
    fm_epoch_stats a[2] = {{.epoch = 1, .epochs = 2, .loss = 0.6, .accuracy = 0.8, .val_loss = 0.5, .val_accuracy = 0.82, .seconds = 1}, {.epoch = 2, .epochs = 2, .loss = 0.5, .accuracy = 0.85, .val_loss = 0.45, .val_accuracy = 0.84, .seconds = 1}};
    fm_epoch_stats b[1] = {{.epoch = 1, .epochs = 1, .loss = 0.7, .accuracy = 0.75, .val_loss = 0.6, .val_accuracy = 0.78, .seconds = 1}};
    fm_history ha = {.n = 2, .epochs = a}, hb = {.n = 1, .epochs = b};
    const fm_experiment_row rows[3] = {
        {"first", "mlp", 101770, 2, "adam lr 0.001", 0.84, 2, 0.83, 2.5, "first", &ha},
        {"same|as first", "mlp", 101770, 2, "adam lr 0.001", 0.84, 2, 0.83, 2.5, "first", &ha},
        {"other", "mlp64", 50890, 1, "sgd lr 0.01", 0.78, 1, 0.77, 1.0, "other", &hb},
    };
    char dir[512], path[600];
    fm_error err = {0};
    test_path(dir, sizeof dir, "experiment");
    test_mkdir(dir);
    CHECK(t, fm_experiment_write(dir, "Unit experiment", rows, 3, &err) == FM_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    CHECK(t, count_in_file(path, "\n") == 4, "header and 3 rows");
    CHECK(t, count_in_file(path, "\"other\",\"mlp64\",50890,1,\"sgd lr 0.01\",0.78,1,0.77,1.0,\"other\"\n") == 1, "row 3");
    snprintf(path, sizeof path, "%s/results.md", dir);
    CHECK(t, count_in_file(path, "| same\\|as first | `mlp` | 101,770 | 2 | adam lr 0.001 | 84.00% (epoch 2) | 83.00% |") == 1,
          "Markdown row with an escaped bar");
    snprintf(path, sizeof path, "%s/val_accuracy.png", dir);
    int w, h;
    png_size(path, &w, &h);
    CHECK(t, w > 0 && h > 0, "val_accuracy.png");
    snprintf(path, sizeof path, "%s/index.html", dir);
    CHECK(t, count_in_file(path, "<tr data-name=") == 3 && count_in_file(path, "data:image/png;base64,") == 1,
          "page rows and picture");
    CHECK_FAILS(t, fm_experiment_write(dir, NULL, rows, 0, &err), FM_ERR_ARG, err, "no configurations", NULL);
}
