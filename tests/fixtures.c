/* fixtures.c — writes the small and the malformed files the command-line tests feed to fmnist:
 * subsets of the real data, and IDX and model files broken in one specific way each. */
#include "fmnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "subset") == 0) {
        return subset(argv[2], argv[3], (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "labels") == 0) return labels(argv[2], (uint32_t)atol(argv[3]), atoi(argv[4]));
    if (argc == 6 && strcmp(argv[1], "images") == 0) {
        return images(argv[2], (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5]));
    }
    fprintf(stderr, "usage: fixtures subset SRC DST NTRAIN NTEST | labels FILE N VALUE | images FILE N H W\n");
    return 2;
}
