/* test_image.c — pictures as inputs: the preprocessing on pictures whose right answer is known
 * (exact shapes, inversion, noise, specks, alpha), decoding of every format, and bad files. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

/* A w x h picture of background level bg with a rectangle [x0, x0+rw) x [y0, y0+rh) of level fg. */
static uint8_t *picture(uint32_t w, uint32_t h, int bg, uint32_t x0, uint32_t y0, uint32_t rw,
                        uint32_t rh, int fg) {
    uint8_t *p = malloc((size_t)w * h);
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            int inside = x >= x0 && x < x0 + rw && y >= y0 && y < y0 + rh;
            p[(size_t)y * w + x] = (uint8_t)(inside ? fg : bg);
        }
    }
    return p;
}

/* Rows and columns of out holding non-zero pixels: the item's box in the 28x28 result. */
static void out_box(const uint8_t *out, int *r0, int *r1, int *c0, int *c1) {
    *r0 = *c0 = 28, *r1 = *c1 = -1;
    for (int y = 0; y < 28; y++) {
        for (int x = 0; x < 28; x++) {
            if (!out[y * 28 + x]) continue;
            *r0 = y < *r0 ? y : *r0, *r1 = y > *r1 ? y : *r1;
            *c0 = x < *c0 ? x : *c0, *c1 = x > *c1 ? x : *c1;
        }
    }
}

void test_image_crop_pad_shrink(test_ctx *t) {
    /* A dark 112x56 bar on a light 300x200 picture, off-centre: after inversion a bright bar, the
     * longer side fills 28 pixels and the shorter one 14, centred (rows 7..20), all else black. */
    uint8_t *p = picture(300, 200, 220, 150, 30, 112, 56, 30);
    uint8_t out[28 * 28];
    fm_image_info info;
    fm_error err = {0};
    CHECK(t, fm_image_to_input(p, 200, 300, NULL, out, 28, 28, &info, &err) == FM_OK, "%s", err.msg);
    CHECK(t, info.inverted == 1 && info.background == 35.0f, "inverted %d, background %g", info.inverted, (double)info.background);
    CHECK(t, info.box_x == 150 && info.box_y == 30 && info.box_w == 112 && info.box_h == 56, "box %u,%u %ux%u",
          info.box_x, info.box_y, info.box_w, info.box_h);
    int wrong = 0;
    for (int y = 0; y < 28; y++) {
        for (int x = 0; x < 28; x++) wrong += out[y * 28 + x] != (y >= 7 && y < 21 ? 255 : 0);
    }
    CHECK(t, wrong == 0, "%d pixels differ from the expected bar", wrong);

    /* The same bar light on dark is not inverted and gives the same input. */
    uint8_t out2[28 * 28];
    for (size_t i = 0; i < 300 * 200; i++) p[i] = (uint8_t)(255 - p[i]);
    CHECK(t, fm_image_to_input(p, 200, 300, NULL, out2, 28, 28, &info, &err) == FM_OK, "%s", err.msg);
    CHECK(t, info.inverted == 0 && memcmp(out, out2, sizeof out) == 0, "light-on-dark differs");
    /* Forcing the inversion makes the background the item: nothing stands out from a bright
     * border, so it is refused rather than guessed. */
    fm_image_params ip = fm_image_default_params();
    ip.invert = FM_INVERT_NEVER;
    for (size_t i = 0; i < 300 * 200; i++) p[i] = (uint8_t)(255 - p[i]);
    CHECK(t, fm_image_to_input(p, 200, 300, &ip, out2, 28, 28, &info, &err) != FM_OK,
          "a dark item on a light background with inversion off should find nothing");
    free(p);
}

void test_image_area_filter_values(test_ctx *t) {
    /* A 56x28 item on a black border, its left half 200 and its right half 100: shrunk by two
     * (rows 7..20), stretched so that 200 becomes 255 and 100 becomes (100-1)*255/(200-1) = 127
     * (the background, 0, plus one level of margin maps to 0). Away from the edges, which the
     * sharpening touches, the values are exact. */
    uint8_t *p = picture(60, 32, 0, 2, 2, 56, 28, 0);
    for (int y = 2; y < 30; y++) {
        for (int x = 2; x < 58; x++) p[y * 60 + x] = (uint8_t)(x < 30 ? 200 : 100);
    }
    uint8_t out[28 * 28];
    fm_error err = {0};
    CHECK(t, fm_image_to_input(p, 32, 60, NULL, out, 28, 28, NULL, &err) == FM_OK, "%s", err.msg);
    int r0, r1, c0, c1, wrong = 0;
    out_box(out, &r0, &r1, &c0, &c1);
    CHECK(t, r0 == 7 && r1 == 20 && c0 == 0 && c1 == 27, "box rows %d..%d cols %d..%d", r0, r1, c0, c1);
    for (int y = 8; y <= 19; y++) {
        for (int x = 0; x < 28; x++) {
            if (x == 13 || x == 14) continue;
            wrong += out[y * 28 + x] != (x < 14 ? 255 : 127);
        }
    }
    CHECK(t, wrong == 0, "%d pixels differ (e.g. %d, %d)", wrong, out[10 * 28 + 5], out[10 * 28 + 20]);
    free(p);

    /* A Fashion-MNIST-like 28x28 image: the item spans all rows and 12 columns starting at 8
     * (ceil((28-12)/2)), values 0 or 255: the preprocessing must give it back as it is. */
    uint8_t *q = picture(28, 28, 0, 8, 0, 12, 28, 255);
    for (int y = 0; y < 28; y += 3) q[y * 28 + 10] = 0; /* some texture inside */
    CHECK(t, fm_image_to_input(q, 28, 28, NULL, out, 28, 28, NULL, &err) == FM_OK, "%s", err.msg);
    CHECK(t, memcmp(q, out, sizeof out) == 0, "a 28x28 training-like image is changed");
    free(q);
}

void test_image_noise_and_specks(test_ctx *t) {
    /* Grain (sigma about 10), a gentle light gradient and a few dark specks far from the item:
     * the box still fits the item within two pixels. */
    uint32_t w = 420, h = 360;
    uint8_t *p = picture(w, h, 210, 40, 150, 180, 120, 40);
    fm_rng rng;
    fm_rng_seed(&rng, 3);
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            float g = 0;
            for (int k = 0; k < 4; k++) g += fm_rng_uniform(&rng);
            float v = p[y * w + x] + (g - 2.0f) * 17.0f + 10.0f * (float)x / (float)w;
            p[y * w + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    static const uint32_t specks[][2] = {{400, 20}, {10, 10}, {300, 340}, {380, 200}};
    for (size_t i = 0; i < 4; i++) p[specks[i][1] * w + specks[i][0]] = 0;
    fm_image_info info;
    fm_error err = {0};
    uint8_t out[28 * 28];
    CHECK(t, fm_image_to_input(p, h, w, NULL, out, 28, 28, &info, &err) == FM_OK, "%s", err.msg);
    CHECK(t, abs((int)info.box_x - 40) <= 2 && abs((int)info.box_y - 150) <= 2 &&
                 abs((int)info.box_w - 180) <= 4 && abs((int)info.box_h - 120) <= 4,
          "box %u,%u %ux%u, expected 40,150 180x120", info.box_x, info.box_y, info.box_w, info.box_h);
    /* Background black, the item near 255: rows 5..23 (18.67 rows centred, ceil on top). */
    int r0, r1, c0, c1;
    out_box(out, &r0, &r1, &c0, &c1);
    CHECK(t, r0 >= 4 && r0 <= 5 && r1 >= 22 && r1 <= 23 && c0 <= 1 && c1 >= 26, "box rows %d..%d cols %d..%d",
          r0, r1, c0, c1);
    CHECK(t, out[0] == 0 && out[27 * 28 + 27] == 0 && out[14 * 28 + 14] >= 200, "corner %d, centre %d", out[0],
          out[14 * 28 + 14]);
    free(p);
}

void test_image_blank_is_refused(test_ctx *t) {
    uint8_t *p = picture(50, 40, 128, 0, 0, 0, 0, 0);
    uint8_t out[28 * 28];
    fm_error err = {0};
    CHECK_FAILS(t, fm_image_to_input(p, 40, 50, NULL, out, 28, 28, NULL, &err), FM_ERR_FORMAT, err,
                "nothing stands out", NULL);
    p[20 * 50 + 25] = 0; /* one dark pixel is a speck, not an item */
    CHECK_FAILS(t, fm_image_to_input(p, 40, 50, NULL, out, 28, 28, NULL, &err), FM_ERR_FORMAT, err,
                "nothing stands out", NULL);
    CHECK_FAILS(t, fm_image_to_input(p, 0, 50, NULL, out, 28, 28, NULL, &err), FM_ERR_ARG, err, "empty", NULL);
    free(p);
}

/* ---------------------------------------------------------------- files */

static int write_file(const char *path, const void *data, size_t len) { return test_write_file(path, data, len); }

void test_image_formats(test_ctx *t) {
    uint8_t *p = picture(64, 48, 230, 20, 10, 30, 25, 20);
    char path[512];
    fm_error err = {0};
    uint8_t *g = NULL;
    uint32_t h = 0, w = 0;
    int ch = 0;

    /* PNG written by the library and read back: identical. */
    test_path(path, sizeof path, "grey.png");
    CHECK(t, fm_image_write_png(path, p, 48, 64, &err) == FM_OK, "%s", err.msg);
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err) == FM_OK, "%s", err.msg);
    CHECK(t, g && h == 48 && w == 64 && ch == 1 && memcmp(g, p, 64 * 48) == 0, "PNG round trip");
    free(g), g = NULL;

    /* Binary PGM by hand. */
    char header[32];
    int n = snprintf(header, sizeof header, "P5\n64 48\n255\n");
    unsigned char *pgm = malloc((size_t)n + 64 * 48);
    memcpy(pgm, header, (size_t)n), memcpy(pgm + n, p, 64 * 48);
    test_path(path, sizeof path, "grey.pgm");
    CHECK(t, write_file(path, pgm, (size_t)n + 64 * 48), "write pgm");
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err) == FM_OK, "%s", err.msg);
    CHECK(t, g && h == 48 && w == 64 && memcmp(g, p, 64 * 48) == 0, "PGM");
    free(g), g = NULL, free(pgm);

    /* Colour BMP and JPEG: grey by luma (pure colours give known levels), JPEG within its loss. */
    uint8_t *rgb = malloc(64 * 48 * 3);
    for (size_t i = 0; i < 64 * 48; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = p[i];
    test_path(path, sizeof path, "colour.bmp");
    CHECK(t, stbi_write_bmp(path, 64, 48, 3, rgb), "write bmp");
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err) == FM_OK, "%s", err.msg);
    int worst = 0;
    for (size_t i = 0; g && i < 64 * 48; i++) worst = abs(g[i] - p[i]) > worst ? abs(g[i] - p[i]) : worst;
    CHECK(t, g && ch == 3 && worst <= 1, "BMP differs by %d", worst);
    free(g), g = NULL;
    test_path(path, sizeof path, "colour.jpg");
    CHECK(t, stbi_write_jpg(path, 64, 48, 3, rgb, 95), "write jpg");
    uint8_t out_png[28 * 28], out_jpg[28 * 28];
    fm_image_info info;
    CHECK(t, fm_image_load_input(path, NULL, out_jpg, 28, 28, &info, &err) == FM_OK, "%s", err.msg);
    test_path(path, sizeof path, "grey.png");
    CHECK(t, fm_image_load_input(path, NULL, out_png, 28, 28, NULL, &err) == FM_OK, "%s", err.msg);
    worst = 0;
    for (size_t i = 0; i < 28 * 28; i++) worst = abs(out_png[i] - out_jpg[i]) > worst ? abs(out_png[i] - out_jpg[i]) : worst;
    CHECK(t, info.width == 64 && info.height == 48 && info.inverted && worst <= 40, "JPEG input differs by %d", worst);

    /* Transparent parts count as white: a dark item on a fully transparent black background. */
    uint8_t *rgba = calloc(64 * 48, 4);
    for (size_t i = 0; i < 64 * 48; i++) {
        if (p[i] < 128) rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = 20, rgba[4 * i + 3] = 255;
    }
    test_path(path, sizeof path, "alpha.png");
    CHECK(t, stbi_write_png(path, 64, 48, 4, rgba, 64 * 4), "write rgba");
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err) == FM_OK, "%s", err.msg);
    CHECK(t, g && ch == 4 && g[0] == 255 && g[12 * 64 + 25] == 20, "alpha: corner %d, item %d", g ? g[0] : -1,
          g ? g[12 * 64 + 25] : -1);
    free(g), free(rgba), free(rgb), free(p);

    CHECK(t, fm_image_name_supported("a.PNG") && fm_image_name_supported("b.jpeg") &&
                 fm_image_name_supported("c.pgm") && !fm_image_name_supported("d.txt") &&
                 !fm_image_name_supported(".png") && !fm_image_name_supported("png"),
          "extensions");
}

void test_image_bad_files(test_ctx *t) {
    char path[512], dir[512];
    fm_error err = {0};
    uint8_t *g = NULL;
    uint32_t h, w;
    uint8_t out[28 * 28];

    test_path(path, sizeof path, "missing.png");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_IO, err, "missing.png: cannot open", NULL);
    test_path(dir, sizeof dir, "a-folder.png");
    test_mkdir(dir);
    CHECK_FAILS(t, fm_image_load_grey(dir, NULL, &g, &h, &w, NULL, &err), FM_ERR_IO, err, "a-folder.png: is a folder", NULL);
    test_path(path, sizeof path, "empty.jpg");
    CHECK(t, write_file(path, "", 0), "setup");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "empty.jpg: empty file", NULL);
    test_path(path, sizeof path, "text.png");
    CHECK(t, write_file(path, "just some words\n", 16), "setup");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "text.png: not an image", NULL);
    test_path(path, sizeof path, "zero.pgm");
    CHECK(t, write_file(path, "P5\n0 0\n255\n", 11), "setup");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "zero.pgm: ", NULL);

    /* Enormous: refused from the header, before decoding (the file holds no pixels at all). */
    test_path(path, sizeof path, "huge.pgm");
    CHECK(t, write_file(path, "P5\n100000 90000\n255\n", 20), "setup");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_NOMEM, err,
                "100000x90000 is 9000000000 pixels, over the limit", NULL);
    /* A real picture over a lowered limit. */
    uint8_t *p = picture(100, 80, 200, 10, 10, 50, 40, 20);
    test_path(path, sizeof path, "ok.png");
    CHECK(t, fm_image_write_png(path, p, 80, 100, &err) == FM_OK, "%s", err.msg);
    fm_image_params ip = fm_image_default_params();
    ip.max_pixels = 7999;
    CHECK_FAILS(t, fm_image_load_input(path, &ip, out, 28, 28, NULL, &err), FM_ERR_NOMEM, err, "ok.png: 100x80", "7999");

    /* Truncated: a PNG cut after its header, and one cut mid-data. */
    size_t len = 0;
    unsigned char *bytes = test_read_file(path, &len);
    char cut[512];
    test_path(cut, sizeof cut, "cut-header.png");
    CHECK(t, bytes && write_file(cut, bytes, 40), "setup");
    CHECK_FAILS(t, fm_image_load_grey(cut, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "cut-header.png: ", NULL);
    test_path(cut, sizeof cut, "cut-data.png");
    CHECK(t, bytes && write_file(cut, bytes, len - 30), "setup");
    CHECK_FAILS(t, fm_image_load_grey(cut, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "cut-data.png: cannot decode", NULL);
    /* Corrupt: the compressed data overwritten. */
    test_path(cut, sizeof cut, "corrupt.png");
    for (size_t i = 60; bytes && i < len - 20; i++) bytes[i] = (unsigned char)(i * 37);
    CHECK(t, bytes && write_file(cut, bytes, len), "setup");
    CHECK_FAILS(t, fm_image_load_grey(cut, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "corrupt.png: ", NULL);
    free(bytes);

    /* An unwritable output: a missing folder, and nothing left behind. */
    char out_path[600];
    snprintf(out_path, sizeof out_path, "%s/missing-folder/x.png", test_tmpdir());
    CHECK_FAILS(t, fm_image_write_png(out_path, p, 80, 100, &err), FM_ERR_IO, err, "missing-folder/x.png: cannot create", NULL);
    CHECK_FAILS(t, fm_image_write_png(path, p, 0, 100, &err), FM_ERR_ARG, err, "0", NULL);
    free(p);
}

/* ---------------------------------------------------------------- EXIF orientation */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} byte_buf;

static void buf_append(void *context, void *data, int size) {
    byte_buf *b = context;
    if (size <= 0 || b->len + (size_t)size > b->cap) return;
    memcpy(b->data + b->len, data, (size_t)size);
    b->len += (size_t)size;
}

/* An APP1 EXIF segment whose IFD0 holds one Orientation entry (SHORT, value o), big-endian
 * ("MM") or little-endian ("II"); 34 bytes. */
static size_t exif_segment(uint8_t *seg, int o, int big) {
    static const uint8_t mm[] = {0xFF, 0xE1, 0, 32, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
                                 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    static const uint8_t ii[] = {0xFF, 0xE1, 0, 32, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0,
                                 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(seg, big ? mm : ii, sizeof mm);
    seg[big ? 29 : 28] = (uint8_t)o;
    return sizeof mm;
}

/* A 40x20 JPEG, black with a white 10x6 block in its top-left corner, with the segment seg (of
 * seg_len bytes, may be 0) right after the start marker. Returns the file's bytes (malloc'd). */
static uint8_t *jpeg_with(const uint8_t *seg, size_t seg_len, size_t *len) {
    uint8_t px[20 * 40] = {0};
    for (int y = 0; y < 6; y++) memset(px + y * 40, 255, 10);
    byte_buf plain = {malloc(1 << 16), 0, 1 << 16};
    stbi_write_jpg_to_func(buf_append, &plain, 40, 20, 1, px, 100);
    uint8_t *out = malloc(plain.len + seg_len);
    memcpy(out, plain.data, 2); /* FF D8 */
    if (seg_len) memcpy(out + 2, seg, seg_len);
    memcpy(out + 2 + seg_len, plain.data + 2, plain.len - 2);
    *len = plain.len + seg_len;
    free(plain.data);
    return out;
}

/* Where the bright block ended up: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. */
static int bright_corner(const uint8_t *g, uint32_t h, uint32_t w) {
    double sx = 0, sy = 0, n = 0;
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            if (g[(size_t)y * w + x] > 128) sx += x, sy += y, n++;
        }
    }
    if (n == 0) return -1;
    return (sy / n > h / 2.0) * 2 + (sx / n > w / 2.0);
}

void test_image_exif_orientation(test_ctx *t) {
    /* Each orientation: the displayed picture's size and the corner the block is shown in (a
     * quarter turn clockwise, 6, takes the stored top-left corner to the top right). */
    static const int corner[9] = {0, 0, 1, 3, 2, 0, 1, 3, 2};
    char path[512];
    test_path(path, sizeof path, "exif.jpg");
    for (int big = 0; big < 2; big++) {
        for (int o = 1; o <= 8; o++) {
            uint8_t seg[64];
            size_t seg_len = exif_segment(seg, o, big), len;
            uint8_t *file = jpeg_with(seg, seg_len, &len);
            CHECK(t, fm_jpeg_exif_orientation(file, len) == o, "orientation %d (%s) read as %d", o,
                  big ? "MM" : "II", fm_jpeg_exif_orientation(file, len));
            CHECK(t, test_write_file(path, file, len), "write %s", path);
            uint8_t *g = NULL;
            uint32_t h = 0, w = 0;
            fm_error err = {0};
            CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err) == FM_OK, "%s", err.msg);
            uint32_t want_w = o >= 5 ? 20 : 40, want_h = o >= 5 ? 40 : 20;
            CHECK(t, g && w == want_w && h == want_h && bright_corner(g, h, w) == corner[o],
                  "orientation %d: %ux%u, block in corner %d (expected %ux%u, corner %d)", o, w, h,
                  g ? bright_corner(g, h, w) : -1, want_w, want_h, corner[o]);
            free(g), free(file);
        }
    }
    /* fm_image_orient against the definitions, pixel by pixel, on a 3x2 picture 0..5. */
    static const uint8_t src[6] = {0, 1, 2, 3, 4, 5}; /* rows {0,1,2}, {3,4,5} */
    static const uint8_t want[9][6] = {{0}, {0, 1, 2, 3, 4, 5}, {2, 1, 0, 5, 4, 3}, {5, 4, 3, 2, 1, 0},
                                       {3, 4, 5, 0, 1, 2}, {0, 3, 1, 4, 2, 5}, {3, 0, 4, 1, 5, 2},
                                       {5, 2, 4, 1, 3, 0}, {2, 5, 1, 4, 0, 3}};
    for (int o = 1; o <= 8; o++) {
        uint8_t dst[6];
        fm_image_orient(dst, src, 2, 3, o);
        CHECK(t, memcmp(dst, want[o], 6) == 0, "fm_image_orient %d: %d %d %d %d %d %d", o, dst[0], dst[1],
              dst[2], dst[3], dst[4], dst[5]);
    }
}

/* Hostile or broken EXIF: never read outside the bytes given (each case is an exact-size copy, so
 * the sanitizer build catches a stray read), always 1..8, and a picture that still decodes. */
void test_image_exif_hostile(test_ctx *t) {
    uint8_t seg[64];
    size_t seg_len = exif_segment(seg, 6, 1), len;
    uint8_t *file = jpeg_with(seg, seg_len, &len);
    /* Every prefix of the header, from nothing to the whole segment. */
    for (size_t n = 0; n <= 2 + seg_len + 4; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, file, n);
        int o = fm_jpeg_exif_orientation(cut, n);
        CHECK(t, o == (n >= 2 + seg_len ? 6 : 1), "prefix of %zu bytes gives %d", n, o);
        free(cut);
    }
    /* One field broken at a time (offsets into the segment). */
    static const struct { const char *what; size_t at; uint8_t value; } broken[] = {
        {"segment length below 2", 3, 1},         {"segment length past the end", 2, 0xFF},
        {"not Exif", 4, 'X'},                     {"Exif without its zeros", 8, 'x'},
        {"byte order", 10, 'X'},                  {"TIFF magic", 13, 43},
        {"IFD0 offset past the block", 17, 200},  {"IFD0 offset inside the header", 17, 2},
        {"entry count past the block", 19, 0xFF}, {"tag type LONG", 23, 4},
        {"value count 0", 27, 0},                 {"orientation 9", 29, 9},
        {"orientation 0", 29, 0},                 {"a marker without FF", 0, 0x00},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, file, len);
        bad[2 + broken[i].at] = broken[i].value;
        int o = fm_jpeg_exif_orientation(bad, len);
        /* A count past the block still reads the one entry that is there. */
        int want = strcmp(broken[i].what, "entry count past the block") == 0 ? 6 : 1;
        CHECK(t, o == want, "%s: orientation %d, expected %d", broken[i].what, o, want);
        free(bad);
    }
    /* Random damage to the segment: whatever it reads, it stays in bounds and in 1..8. */
    fm_rng rng;
    fm_rng_seed(&rng, 9);
    for (int k = 0; k < 2000; k++) {
        size_t n = 2 + seg_len;
        uint8_t *bad = malloc(n);
        memcpy(bad, file, n);
        for (int j = 0; j < 3; j++) bad[2 + fm_rng_below(&rng, (uint32_t)seg_len)] = (uint8_t)fm_rng_below(&rng, 256);
        int o = fm_jpeg_exif_orientation(bad, n);
        CHECK(t, o >= 1 && o <= 8, "damaged segment %d gives %d", k, o);
        free(bad);
    }
    /* Fill bytes and a JFIF APP0 before the EXIF segment are skipped; non-JPEG data gives 1. */
    static const uint8_t app0[] = {0xFF, 0xFF, 0xFF, 0xE0, 0, 6, 'J', 'F', 'I', 'F'};
    uint8_t both[sizeof app0 + 64];
    memcpy(both, app0, sizeof app0);
    memcpy(both + sizeof app0, seg, seg_len);
    size_t len2;
    uint8_t *file2 = jpeg_with(both, sizeof app0 + seg_len, &len2);
    CHECK(t, fm_jpeg_exif_orientation(file2, len2) == 6, "EXIF after APP0 and fill bytes");
    CHECK(t, fm_jpeg_exif_orientation((const uint8_t *)"\x89PNG\r\n\x1a\n", 8) == 1, "PNG");
    free(file2);

    /* A file with a broken EXIF segment decodes upright; one cut inside it fails cleanly. */
    char path[512];
    test_path(path, sizeof path, "exif-bad.jpg");
    file[2 + 17] = 200; /* IFD0 offset past the block */
    CHECK(t, test_write_file(path, file, len), "write");
    uint8_t *g = NULL;
    uint32_t h = 0, w = 0;
    fm_error err = {0};
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err) == FM_OK && w == 40 && h == 20,
          "broken EXIF: %s (%ux%u)", err.msg, w, h);
    free(g), g = NULL;
    CHECK(t, test_write_file(path, file, 2 + 20), "write");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, NULL, &err), FM_ERR_FORMAT, err, "exif-bad.jpg", "");
    free(g);
    free(file);
}

/* The stb_image 2.27 bugs that fuzz/fuzz_image.c found, fixed by src/data/stb_image-fixes.patch:
 * each file is refused with stb's own reason, or (16-bit PGM) decoded right. Under SAN=1 the
 * unfixed decoder is also caught by AddressSanitizer. */
void test_image_stb_fixes(test_ctx *t) {
    char path[512];
    fm_error err = {0};
    uint8_t *g = NULL;
    uint32_t h = 0, w = 0;
    int ch = 0;

    /* A JPEG whose first Huffman table declares 16 x 255 codes (at most 256 fit). */
    uint8_t *p = picture(16, 16, 20, 4, 4, 8, 8, 200);
    test_path(path, sizeof path, "dht.jpg");
    CHECK(t, stbi_write_jpg(path, 16, 16, 1, p, 90), "write jpg");
    size_t len = 0;
    unsigned char *jpg = test_read_file(path, &len);
    size_t at = 0;
    for (size_t i = 0; jpg && i + 21 < len && !at; i++) at = jpg[i] == 0xFF && jpg[i + 1] == 0xC4 ? i : 0;
    CHECK(t, at > 0, "no DHT marker in the JPEG");
    if (at) memset(jpg + at + 5, 0xFF, 16); /* FF C4, length (2), class/id, the 16 counts */
    CHECK(t, jpg && write_file(path, jpg, len), "write edited jpg");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err), FM_ERR_FORMAT, err, "dht.jpg: ",
                "bad DHT header");
    free(jpg), free(p);

    /* 16-bit PGM: samples are scaled to 8 bits by their high byte. */
    static const unsigned char pgm16[] = "P5\n2 2\n65535\n\x12\x34\xff\x00\x00\x00\x80\x80";
    test_path(path, sizeof path, "deep.pgm");
    CHECK(t, write_file(path, pgm16, sizeof pgm16 - 1), "write pgm");
    CHECK(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err) == FM_OK, "%s", err.msg);
    CHECK(t, g && h == 2 && w == 2 && g[0] == 0x12 && g[1] == 0xFF && g[2] == 0x00 && g[3] == 0x80,
          "16-bit PGM decodes to %d %d %d %d", g ? g[0] : -1, g ? g[1] : -1, g ? g[2] : -1, g ? g[3] : -1);
    free(g), g = NULL;

    /* A PGM cut short: an error, not pixels from uninitialised memory. */
    static const unsigned char cut[] = "P5\n4 4\n255\n\x01\x02\x03";
    test_path(path, sizeof path, "short.pgm");
    CHECK(t, write_file(path, cut, sizeof cut - 1), "write pgm");
    CHECK_FAILS(t, fm_image_load_grey(path, NULL, &g, &h, &w, &ch, &err), FM_ERR_FORMAT, err, "short.pgm: ",
                "truncated");
}
