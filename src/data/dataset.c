/* dataset.c — finding the Fashion-MNIST files, loading a split, slicing off the validation part,
 * scaling pixels into model inputs, and class-name tables. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const SPLIT_PREFIX[2] = {"train", "t10k"};

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The file for one split and kind, preferring the .gz name; returns 0 when neither exists. */
static int split_file(const char *dir, fm_split split, const char *kind, char *out, size_t cap) {
    const char *suffix = strcmp(kind, "images") == 0 ? "images-idx3-ubyte" : "labels-idx1-ubyte";
    snprintf(out, cap, "%s/%s-%s.gz", dir, SPLIT_PREFIX[split], suffix);
    if (file_exists(out)) return 1;
    snprintf(out, cap, "%s/%s-%s", dir, SPLIT_PREFIX[split], suffix);
    return file_exists(out);
}

static int dir_has_data(const char *dir) {
    char path[FM_PATH_MAX];
    return split_file(dir, FM_SPLIT_TRAIN, "images", path, sizeof path) &&
           split_file(dir, FM_SPLIT_TRAIN, "labels", path, sizeof path) &&
           split_file(dir, FM_SPLIT_TEST, "images", path, sizeof path) &&
           split_file(dir, FM_SPLIT_TEST, "labels", path, sizeof path);
}

fm_status fm_data_find(const char *flag_dir, char *out_dir, size_t cap, fm_error *err) {
    if (flag_dir) {
        /* An explicit folder is never second-guessed: if it lacks the files, say so. */
        struct stat st;
        if (stat(flag_dir, &st) != 0) {
            return fm_fail(err, FM_ERR_IO, "--data %s: %s", flag_dir, strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) return fm_fail(err, FM_ERR_IO, "--data %s: not a folder", flag_dir);
        if (!dir_has_data(flag_dir)) {
            return fm_fail(err, FM_ERR_IO,
                           "--data %s: no Fashion-MNIST files there (need "
                           "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                           "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz)",
                           flag_dir);
        }
        snprintf(out_dir, cap, "%s", flag_dir);
        return FM_OK;
    }
    const char *env = getenv("FMNIST_DATA");
    if (env && *env) {
        /* A set $FMNIST_DATA is as explicit as --data: quietly using another copy would hide
         * the mistake. */
        if (!dir_has_data(env)) {
            return fm_fail(err, FM_ERR_IO,
                           "no Fashion-MNIST data found: looked in $FMNIST_DATA=%s (need "
                           "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                           "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz), "
                           "and nowhere else while it is set (unset it to search ./data and "
                           "/usr/share/datasets/fashion-mnist). Install the data with `apt-get "
                           "install dataset-fashion-mnist`, or fetch it with "
                           "`scripts/fetch-data.sh DIR`",
                           env);
        }
        snprintf(out_dir, cap, "%s", env);
        return FM_OK;
    }
    const char *places[2] = {"./data", "/usr/share/datasets/fashion-mnist"};
    for (int i = 0; i < 2; i++) {
        if (dir_has_data(places[i])) {
            snprintf(out_dir, cap, "%s", places[i]);
            return FM_OK;
        }
    }
    return fm_fail(err, FM_ERR_IO,
                   "no Fashion-MNIST data found; looked in ./data and "
                   "/usr/share/datasets/fashion-mnist ($FMNIST_DATA unset). Install it with "
                   "`apt-get install dataset-fashion-mnist`, or fetch it with "
                   "`scripts/fetch-data.sh data` and pass --data DIR or set FMNIST_DATA");
}

fm_status fm_dataset_load(const char *dir, fm_split split, int n_classes, fm_dataset *out,
                          fm_error *err) {
    memset(out, 0, sizeof *out);
    if (n_classes < 2 || n_classes > FM_MAX_CLASSES) {
        return fm_fail(err, FM_ERR_ARG, "number of classes %d is outside 2..%d", n_classes,
                       FM_MAX_CLASSES);
    }
    char ipath[FM_PATH_MAX], lpath[FM_PATH_MAX];
    if (!split_file(dir, split, "images", ipath, sizeof ipath)) {
        return fm_fail(err, FM_ERR_IO, "%s: missing %s-images-idx3-ubyte[.gz]", dir,
                       SPLIT_PREFIX[split]);
    }
    if (!split_file(dir, split, "labels", lpath, sizeof lpath)) {
        return fm_fail(err, FM_ERR_IO, "%s: missing %s-labels-idx1-ubyte[.gz]", dir,
                       SPLIT_PREFIX[split]);
    }
    fm_dataset ds = {0};
    uint32_t nl = 0;
    fm_status s = fm_idx_read_images(ipath, &ds.images, &ds.n, &ds.h, &ds.w, err);
    if (!s) s = fm_idx_read_labels(lpath, &ds.labels, &nl, err);
    if (!s && nl != ds.n) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s holds %u labels but %s holds %u images", lpath, nl,
                    ipath, ds.n);
    }
    for (uint32_t i = 0; !s && i < nl; i++) {
        if (ds.labels[i] >= n_classes) {
            s = fm_fail(err, FM_ERR_FORMAT, "%s: label %u of item %u is out of range 0..%d",
                        lpath, ds.labels[i], i, n_classes - 1);
        }
    }
    if (s) {
        fm_dataset_free(&ds);
        return s;
    }
    ds.n_classes = n_classes;
    *out = ds;
    return FM_OK;
}

void fm_dataset_free(fm_dataset *ds) {
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

fm_dataset fm_dataset_slice(const fm_dataset *ds, uint32_t start, uint32_t count) {
    fm_dataset v = *ds;
    if (start > ds->n) start = ds->n;
    if (count > ds->n - start) count = ds->n - start;
    v.n = count;
    v.images = ds->images + (size_t)start * ds->h * ds->w;
    v.labels = ds->labels + start;
    return v;
}

fm_scaling fm_scaling_fit(const fm_dataset *ds, fm_scale_kind kind) {
    fm_scaling sc = {FM_SCALE_UNIT, 0.0f, 1.0f};
    if (kind != FM_SCALE_STANDARD) return sc;
    /* Integer histogram: exact and order-independent, so the statistics do not depend on how
     * the sum is split. */
    uint64_t hist[256] = {0};
    size_t total = (size_t)ds->n * ds->h * ds->w;
    for (size_t i = 0; i < total; i++) hist[ds->images[i]]++;
    double sum = 0, sq = 0;
    for (int v = 0; v < 256; v++) {
        double x = v / 255.0;
        sum += x * (double)hist[v];
        sq += x * x * (double)hist[v];
    }
    double mean = total ? sum / (double)total : 0.0;
    double var = total ? sq / (double)total - mean * mean : 1.0;
    sc.kind = FM_SCALE_STANDARD;
    sc.mean = (float)mean;
    sc.std = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    return sc;
}

/* One image's pixels to inputs. The arithmetic is the same everywhere (training, evaluation,
 * prediction), so a pixel value always maps to the same float; written without a table so that
 * it vectorises (convert, divide, subtract, divide: 16 pixels at a time with AVX-512). */
FM_VECTOR_CLONES static void scale_row(float *dst, const uint8_t *src, size_t D, float mean,
                                       float std) {
    if (mean == 0.0f && std == 1.0f) {
        /* Unit scaling: subtracting 0 and dividing by 1 are exact, so one divide gives the
         * same bits at half the cost. */
        for (size_t i = 0; i < D; i++) dst[i] = (float)src[i] / 255.0f;
        return;
    }
    for (size_t i = 0; i < D; i++) dst[i] = ((float)src[i] / 255.0f - mean) / std;
}

void fm_scale_images(float *out, const fm_dataset *ds, const int32_t *rows, size_t count,
                     fm_scaling sc) {
    size_t D = (size_t)ds->h * ds->w;
    fm_scale_pixels(out, ds, rows, count, sc, 0, D);
}

void fm_scale_pixels(float *out, const fm_dataset *ds, const int32_t *rows, size_t count,
                     fm_scaling sc, size_t p0, size_t p1) {
    size_t D = (size_t)ds->h * ds->w;
    for (size_t r = 0; r < count; r++) {
        const uint8_t *src = ds->images + (size_t)(rows ? (size_t)rows[r] : r) * D;
        scale_row(out + r * D + p0, src + p0, p1 - p0, sc.mean, sc.std);
    }
}

void fm_prefetch_images(const fm_dataset *ds, const int32_t *rows, size_t count) {
#if defined(__GNUC__)
    size_t D = (size_t)ds->h * ds->w;
    for (size_t r = 0; r < count; r++) {
        const uint8_t *src = ds->images + (size_t)rows[r] * D;
        for (size_t at = 0; at < D; at += 64) __builtin_prefetch(src + at, 0, 1);
        __builtin_prefetch(src + D - 1, 0, 1);
    }
#else
    (void)ds, (void)rows, (void)count;
#endif
}

static const char *const FASHION[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

fm_status fm_classes_parse(const char *text, fm_classes *out, fm_error *err) {
    memset(out, 0, sizeof *out);
    if (!text || strcmp(text, "fashion") == 0) {
        out->n = 10;
        for (int i = 0; i < 10; i++) snprintf(out->names[i], FM_CLASS_NAME_MAX, "%s", FASHION[i]);
        return FM_OK;
    }
    if (strcmp(text, "digits") == 0) {
        out->n = 10;
        for (int i = 0; i < 10; i++) snprintf(out->names[i], FM_CLASS_NAME_MAX, "%d", i);
        return FM_OK;
    }
    const char *p = text;
    while (1) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) return fm_fail(err, FM_ERR_ARG, "class list \"%s\": empty class name", text);
        if (len >= FM_CLASS_NAME_MAX) {
            return fm_fail(err, FM_ERR_ARG, "class list: name \"%.*s\" is longer than %d characters",
                           (int)len, p, FM_CLASS_NAME_MAX - 1);
        }
        if (out->n >= FM_MAX_CLASSES) {
            return fm_fail(err, FM_ERR_ARG, "class list: more than %d classes", FM_MAX_CLASSES);
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == '"' || c == '\\') {
                return fm_fail(err, FM_ERR_ARG,
                               "class list: name \"%.*s\" holds a control, quote or backslash "
                               "character",
                               (int)len, p);
            }
        }
        memcpy(out->names[out->n], p, len);
        out->names[out->n][len] = '\0';
        out->n++;
        if (!end) break;
        p = end + 1;
    }
    if (out->n < 2) return fm_fail(err, FM_ERR_ARG, "class list \"%s\": need at least 2 classes", text);
    return FM_OK;
}
