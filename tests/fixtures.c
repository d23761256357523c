/* fixtures.c — writes the small and the malformed files the command-line tests feed to fmnist:
 * subsets of the real data, IDX and model files broken in one specific way each, and test images
 * turned into photos. */
#include "fmnist.h"
#include "internal.h" /* fm_image_orient */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

static int fail(const fm_error *err) {
    fprintf(stderr, "fixtures: %s\n", err->msg);
    return 1;
}

/* subset SRC_DIR DST_DIR NTRAIN NTEST: the first N images of each split, gzip-compressed. */
static int subset(const char *src, const char *dst, uint32_t ntrain, uint32_t ntest) {
    fm_error err = {0};
    for (int split = 0; split < 2; split++) {
        fm_dataset ds;
        if (fm_dataset_load(src, (fm_split)split, 10, &ds, &err)) return fail(&err);
        uint32_t n = split == 0 ? ntrain : ntest;
        if (n > ds.n) n = ds.n;
        char ip[4096], lp[4096];
        const char *pre = split == 0 ? "train" : "t10k";
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dst, pre);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dst, pre);
        if (fm_idx_write_images(ip, ds.images, n, ds.h, ds.w, &err) ||
            fm_idx_write_labels(lp, ds.labels, n, &err)) {
            fm_dataset_free(&ds);
            return fail(&err);
        }
        fm_dataset_free(&ds);
    }
    return 0;
}

/* labels FILE N VALUE: N labels all equal to VALUE (to test label range checks). */
static int labels(const char *path, uint32_t n, int value) {
    fm_error err = {0};
    uint8_t *l = malloc(n);
    if (!l) return 1;
    memset(l, value, n);
    int rc = fm_idx_write_labels(path, l, n, &err) ? fail(&err) : 0;
    free(l);
    return rc;
}

/* images FILE N H W: N images of H x W, a simple gradient. */
static int images(const char *path, uint32_t n, uint32_t h, uint32_t w) {
    fm_error err = {0};
    size_t total = (size_t)n * h * w;
    uint8_t *px = malloc(total ? total : 1);
    if (!px) return 1;
    for (size_t i = 0; i < total; i++) px[i] = (uint8_t)(i * 7);
    int rc = fm_idx_write_images(path, px, n, h, w, &err) ? fail(&err) : 0;
    free(px);
    return rc;
}

/* photos DATA_DIR OUT_DIR N SEED: the first N test images as photos, OUT_DIR/photo-IIII.png (grey)
 * and .jpg (colour, quality 90): each item enlarged to 200..299 pixels, made dark on a light,
 * slightly tinted and unevenly lit background, placed off-centre on a canvas 60..259 pixels
 * larger, with grain (roughly Gaussian, sigma 6 levels). The same seed gives the same files. */
static int photos(const char *data, const char *out, uint32_t n, uint64_t seed) {
    fm_error err = {0};
    fm_dataset ds;
    if (fm_dataset_load(data, FM_SPLIT_TEST, 10, &ds, &err)) return fail(&err);
    if (n > ds.n) n = ds.n;
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        int S = 200 + (int)fm_rng_below(&rng, 100);
        int W = S + 60 + (int)fm_rng_below(&rng, 200), H = S + 60 + (int)fm_rng_below(&rng, 200);
        int ox = (int)fm_rng_below(&rng, (uint32_t)(W - S + 1)), oy = (int)fm_rng_below(&rng, (uint32_t)(H - S + 1));
        float paper = 200.0f + (float)fm_rng_below(&rng, 46), ink = 10.0f + (float)fm_rng_below(&rng, 40);
        float tint[3] = {1.0f, 0.97f + 0.03f * fm_rng_uniform(&rng), 0.92f + 0.08f * fm_rng_uniform(&rng)};
        float light = 12.0f * fm_rng_uniform(&rng); /* brighter on the left by up to this */
        unsigned char *big = malloc((size_t)S * S), *rgb = malloc((size_t)W * H * 3), *grey = malloc((size_t)W * H);
        if (!big || !rgb || !grey) {
            free(big), free(rgb), free(grey);
            rc = 1;
            break;
        }
        stbir_resize_uint8(ds.images + (size_t)i * 784, 28, 28, 0, big, S, S, 0, 1);
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                float v = paper + light * (1.0f - (float)x / (float)W);
                if (x >= ox && x < ox + S && y >= oy && y < oy + S) {
                    float item = big[(size_t)(y - oy) * S + (x - ox)] / 255.0f;
                    v += (ink - paper) * item;
                }
                /* One grain value per pixel, shared by the channels as in a real sensor's luma. */
                float grain = 0.0f;
                for (int k = 0; k < 4; k++) grain += fm_rng_uniform(&rng);
                grain = (grain - 2.0f) * 6.0f * 1.7320508f;
                for (int c = 0; c < 3; c++) {
                    float p = v * tint[c] + grain;
                    rgb[((size_t)y * W + x) * 3 + c] = (unsigned char)(p < 0 ? 0 : p > 255 ? 255 : lrintf(p));
                }
                float g = v + grain;
                grey[(size_t)y * W + x] = (unsigned char)(g < 0 ? 0 : g > 255 ? 255 : lrintf(g));
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/photo-%04u.png", out, i);
        if (!stbi_write_png(path, W, H, 1, grey, W)) rc = 1;
        snprintf(path, sizeof path, "%s/photo-%04u.jpg", out, i);
        if (!rc && !stbi_write_jpg(path, W, H, 3, rgb, 90)) rc = 1;
        if (rc) fprintf(stderr, "fixtures: cannot write %s\n", path);
        free(big), free(rgb), free(grey);
    }
    fm_dataset_free(&ds);
    return rc;
}

/* png DATA_DIR INDEX FILE: test image INDEX as it is, a 28x28 grey PNG. */
static int test_png(const char *data, uint32_t index, const char *path) {
    fm_error err = {0};
    fm_dataset ds;
    if (fm_dataset_load(data, FM_SPLIT_TEST, 10, &ds, &err)) return fail(&err);
    int rc = index < ds.n ? fm_image_write_png(path, ds.images + (size_t)index * ds.h * ds.w, ds.h, ds.w, &err) != FM_OK : 1;
    if (rc) fprintf(stderr, "fixtures: %s\n", index < ds.n ? err.msg : "index out of range");
    fm_dataset_free(&ds);
    return rc;
}

typedef struct {
    unsigned char *data;
    size_t len, cap;
} mem_sink;

static void mem_write(void *context, void *data, int size) {
    mem_sink *m = context;
    if (size > 0 && m->len + (size_t)size <= m->cap) memcpy(m->data + m->len, data, (size_t)size);
    m->len += size > 0 ? (size_t)size : 0;
}

/* exif DATA_DIR INDEX ORIENTATION FILE: test image INDEX as a camera would store it: enlarged 4x
 * on a 144x120 light canvas, dark on light, stored turned so that EXIF orientation ORIENTATION
 * (1..8, in an APP1 segment right after the start marker) shows it upright, as a grey JPEG. */
static int exif_jpeg(const char *data, uint32_t index, int o, const char *path) {
    static const int inverse[9] = {1, 1, 2, 3, 4, 5, 8, 7, 6};
    fm_error err = {0};
    fm_dataset ds;
    if (o < 1 || o > 8) return 2;
    if (fm_dataset_load(data, FM_SPLIT_TEST, 10, &ds, &err)) return fail(&err);
    enum { W = 144, H = 120 };
    static unsigned char upright[H * W], stored[H * W];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int ix = (x - 20) / 4, iy = (y - 4) / 4, inside = x >= 20 && y >= 4 && ix < 28 && iy < 28;
            unsigned v = inside ? ds.images[(size_t)index * 784 + (size_t)iy * 28 + ix] : 0;
            upright[y * W + x] = (unsigned char)(230 - v * 200 / 255);
        }
    }
    fm_dataset_free(&ds);
    fm_image_orient(stored, upright, H, W, inverse[o]);
    int sw = o >= 5 ? H : W, sh = o >= 5 ? W : H;
    mem_sink jpg = {malloc(1 << 20), 0, 1 << 20};
    if (!jpg.data || !stbi_write_jpg_to_func(mem_write, &jpg, sw, sh, 1, stored, 95) || jpg.len > jpg.cap) {
        free(jpg.data);
        return 1;
    }
    /* APP1: "Exif\0\0", a big-endian TIFF header and IFD0 with one entry, Orientation (SHORT). */
    unsigned char app1[] = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
                            0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (unsigned char)o, 0, 0, 0, 0, 0, 0};
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(jpg.data, 1, 2, f) == 2 && fwrite(app1, 1, sizeof app1, f) == sizeof app1 &&
             fwrite(jpg.data + 2, 1, jpg.len - 2, f) == jpg.len - 2;
    if (f && fclose(f) != 0) ok = 0;
    free(jpg.data);
    if (!ok) fprintf(stderr, "fixtures: cannot write %s\n", path);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "subset") == 0) {
        return subset(argv[2], argv[3], (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "labels") == 0) return labels(argv[2], (uint32_t)atol(argv[3]), atoi(argv[4]));
    if (argc == 6 && strcmp(argv[1], "images") == 0) {
        return images(argv[2], (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5]));
    }
    if (argc == 6 && strcmp(argv[1], "photos") == 0) {
        return photos(argv[2], argv[3], (uint32_t)atol(argv[4]), (uint64_t)atoll(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "png") == 0) return test_png(argv[2], (uint32_t)atol(argv[3]), argv[4]);
    if (argc == 6 && strcmp(argv[1], "exif") == 0) return exif_jpeg(argv[2], (uint32_t)atol(argv[3]), atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: fixtures subset SRC DST NTRAIN NTEST | labels FILE N VALUE | images FILE N H W\n"
                    "       | photos DATA OUT N SEED | png DATA INDEX FILE | exif DATA INDEX ORIENTATION FILE\n");
    return 2;
}
