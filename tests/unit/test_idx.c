/* test_idx.c — the IDX reader against valid files (raw, gzip, hand-written) and every malformed
 * file we can think of; dataset loading and data-folder discovery. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC_LABELS 0x00000801u
#define MAGIC_IMAGES 0x00000803u

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX file built byte by byte: header (magic then big-endian dims) and payload. The writer in
 * the library is not used, so reader and writer cannot agree on the same mistake. */
static unsigned char *idx_bytes(uint32_t magic, int ndims, const uint32_t *dims,
                                const uint8_t *payload, size_t plen, size_t *len) {
    size_t hlen = 4 + 4 * (size_t)ndims;
    unsigned char *buf = malloc(hlen + plen + 1);
    put_be32(buf, magic);
    for (int i = 0; i < ndims; i++) put_be32(buf + 4 + 4 * i, dims[i]);
    if (plen) memcpy(buf + hlen, payload, plen);
    *len = hlen + plen;
    return buf;
}

static int write_gz(const char *path, const void *data, size_t len) {
    gzFile f = gzopen(path, "wb9");
    if (!f) return 0;
    int ok = len == 0 || gzwrite(f, data, (unsigned)len) == (int)len;
    if (gzclose(f) != Z_OK) ok = 0;
    return ok;
}

/* Writes images n x h x w with the given header values but payload_n images of data. */
static void write_raw_images(test_ctx *t, const char *path, uint32_t n, uint32_t h, uint32_t w,
                             size_t payload_bytes) {
    uint32_t dims[3] = {n, h, w};
    uint8_t *payload = malloc(payload_bytes + 1);
    for (size_t i = 0; i < payload_bytes; i++) payload[i] = (uint8_t)(i * 7);
    size_t len;
    unsigned char *buf = idx_bytes(MAGIC_IMAGES, 3, dims, payload, payload_bytes, &len);
    CHECK(t, test_write_file(path, buf, len), "cannot write %s", path);
    free(buf);
    free(payload);
}

static void fill(uint8_t *p, size_t n, uint64_t seed) {
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)fm_rng_below(&rng, 256);
}

/* Reads path as images expecting failure with the given status and phrase; the path must be in
 * the message too. */
#define EXPECT_IMAGES_FAIL(t, path, want, phrase)                                           \
    do {                                                                                    \
        fm_error err_ = {0};                                                                \
        uint8_t *px_ = NULL;                                                                \
        uint32_t n_ = 0, h_ = 0, w_ = 0;                                                    \
        fm_status s_ = fm_idx_read_images(path, &px_, &n_, &h_, &w_, &err_);                \
        CHECK_FAILS(t, s_, want, err_, path, phrase);                                       \
        CHECK(t, px_ == NULL, "pixels set on failure");                                     \
        free(px_);                                                                          \
    } while (0)

#define EXPECT_LABELS_FAIL(t, path, want, phrase)                                           \
    do {                                                                                    \
        fm_error err_ = {0};                                                                \
        uint8_t *lb_ = NULL;                                                                \
        uint32_t n_ = 0;                                                                    \
        fm_status s_ = fm_idx_read_labels(path, &lb_, &n_, &err_);                          \
        CHECK_FAILS(t, s_, want, err_, path, phrase);                                       \
        CHECK(t, lb_ == NULL, "labels set on failure");                                     \
        free(lb_);                                                                          \
    } while (0)

void test_idx_round_trip(test_ctx *t) {
    enum { N = 7, H = 5, W = 3 };
    uint8_t px[N * H * W], lb[N];
    fill(px, sizeof px, 1);
    fill(lb, sizeof lb, 2);
    const char *names[2][2] = {{"rt-images", "rt-labels"}, {"rt-images.gz", "rt-labels.gz"}};
    for (int gz = 0; gz < 2; gz++) {
        char ip[512], lp[512];
        test_path(ip, sizeof ip, names[gz][0]);
        test_path(lp, sizeof lp, names[gz][1]);
        fm_error err = {0};
        CHECK(t, fm_idx_write_images(ip, px, N, H, W, &err) == FM_OK, "%s", err.msg);
        CHECK(t, fm_idx_write_labels(lp, lb, N, &err) == FM_OK, "%s", err.msg);
        /* The .gz name must really be compressed and the other really raw, or the two halves of
         * this test would exercise the same path. */
        size_t len = 0;
        unsigned char *bytes = test_read_file(ip, &len);
        CHECK(t, bytes && len >= 4, "cannot read back %s", ip);
        if (bytes && len >= 4) {
            if (gz) {
                CHECK(t, bytes[0] == 0x1f && bytes[1] == 0x8b, "%s is not gzip", ip);
            } else {
                CHECK(t, len == 16 + sizeof px, "raw size %zu", len);
                CHECK(t, bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 8 && bytes[3] == 3,
                      "raw magic %02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
            }
        }
        free(bytes);

        uint8_t *rpx = NULL, *rlb = NULL;
        uint32_t n = 0, h = 0, w = 0, nl = 0;
        CHECK(t, fm_idx_read_images(ip, &rpx, &n, &h, &w, &err) == FM_OK, "%s", err.msg);
        CHECK(t, fm_idx_read_labels(lp, &rlb, &nl, &err) == FM_OK, "%s", err.msg);
        CHECK(t, n == N && h == H && w == W, "dims %ux%ux%u", n, h, w);
        CHECK(t, nl == N, "labels %u", nl);
        CHECK(t, rpx && memcmp(rpx, px, sizeof px) == 0, "pixels differ (gz=%d)", gz);
        CHECK(t, rlb && memcmp(rlb, lb, sizeof lb) == 0, "labels differ (gz=%d)", gz);
        free(rpx);
        free(rlb);
    }
}

/* Files written by hand, as other tools write them, read back exactly. */
void test_idx_hand_written(test_ctx *t) {
    enum { N = 3, H = 2, W = 4 };
    uint8_t px[N * H * W], lb[N] = {9, 0, 4};
    for (int i = 0; i < N * H * W; i++) px[i] = (uint8_t)(255 - 10 * i);
    uint32_t idims[3] = {N, H, W}, ldims[1] = {N};
    size_t ilen, llen;
    unsigned char *ib = idx_bytes(MAGIC_IMAGES, 3, idims, px, sizeof px, &ilen);
    unsigned char *lbb = idx_bytes(MAGIC_LABELS, 1, ldims, lb, sizeof lb, &llen);
    char paths[4][512];
    test_path(paths[0], sizeof paths[0], "hand-images");
    test_path(paths[1], sizeof paths[1], "hand-labels");
    test_path(paths[2], sizeof paths[2], "hand-images.gz");
    test_path(paths[3], sizeof paths[3], "hand-labels.gz");
    CHECK(t, test_write_file(paths[0], ib, ilen) && test_write_file(paths[1], lbb, llen) &&
                 write_gz(paths[2], ib, ilen) && write_gz(paths[3], lbb, llen),
          "cannot write fixtures");
    for (int gz = 0; gz < 2; gz++) {
        fm_error err = {0};
        uint8_t *rpx = NULL, *rlb = NULL;
        uint32_t n = 0, h = 0, w = 0, nl = 0;
        CHECK(t, fm_idx_read_images(paths[2 * gz], &rpx, &n, &h, &w, &err) == FM_OK, "%s", err.msg);
        CHECK(t, fm_idx_read_labels(paths[2 * gz + 1], &rlb, &nl, &err) == FM_OK, "%s", err.msg);
        CHECK(t, n == N && h == H && w == W && nl == N, "dims %ux%ux%u, %u labels", n, h, w, nl);
        CHECK(t, rpx && memcmp(rpx, px, sizeof px) == 0, "pixels differ (gz=%d)", gz);
        CHECK(t, rlb && memcmp(rlb, lb, sizeof lb) == 0, "labels differ (gz=%d)", gz);
        free(rpx);
        free(rlb);
    }
    free(ib);
    free(lbb);
}

void test_idx_missing_or_not_a_file(test_ctx *t) {
    char path[512];
    test_path(path, sizeof path, "no-such-file");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_IO, "cannot open");
    EXPECT_LABELS_FAIL(t, path, FM_ERR_IO, "cannot open");
    test_path(path, sizeof path, "a-directory");
    CHECK(t, test_mkdir(path), "mkdir %s", path);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_IO, "not a regular file");
    EXPECT_LABELS_FAIL(t, path, FM_ERR_IO, "not a regular file");
}

void test_idx_short_header(test_ctx *t) {
    char path[512];
    test_path(path, sizeof path, "empty");
    CHECK(t, test_write_file(path, "", 0), "write");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "too short");
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "too short");

    /* Magic, count, and half of the height. */
    unsigned char hdr[10] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0};
    test_path(path, sizeof path, "cut-mid-dims");
    CHECK(t, test_write_file(path, hdr, sizeof hdr), "write");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated IDX header");
    /* A labels header cut inside its count. */
    unsigned char lhdr[6] = {0, 0, 8, 1, 0, 0};
    test_path(path, sizeof path, "labels-cut-mid-dims");
    CHECK(t, test_write_file(path, lhdr, sizeof lhdr), "write");
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "truncated IDX header");
    /* The same cut inside a gzip stream. */
    test_path(path, sizeof path, "cut-mid-dims.gz");
    CHECK(t, write_gz(path, hdr, sizeof hdr), "write");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated IDX header");
}

void test_idx_wrong_magic(test_ctx *t) {
    char path[512];
    /* Bytes that are neither IDX nor gzip (the first two are not 1f 8b). */
    unsigned char junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (unsigned char)(0x41 + (i * 37) % 50);
    test_path(path, sizeof path, "junk");
    CHECK(t, test_write_file(path, junk, sizeof junk), "write");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "wrong magic number");
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "wrong magic number");

    /* A valid labels file is not an images file (magic 0x801), and the reverse. */
    uint8_t lb[4] = {1, 2, 3, 4}, px[4 * 2 * 2] = {0};
    char lp[512], ip[512];
    test_path(lp, sizeof lp, "magic-labels.gz");
    test_path(ip, sizeof ip, "magic-images");
    fm_error err = {0};
    CHECK(t, fm_idx_write_labels(lp, lb, 4, &err) == FM_OK, "%s", err.msg);
    CHECK(t, fm_idx_write_images(ip, px, 4, 2, 2, &err) == FM_OK, "%s", err.msg);
    EXPECT_IMAGES_FAIL(t, lp, FM_ERR_FORMAT, "magic 0x00000803");
    EXPECT_IMAGES_FAIL(t, lp, FM_ERR_FORMAT, "1 dimension and");
    EXPECT_LABELS_FAIL(t, ip, FM_ERR_FORMAT, "magic 0x00000801");
    EXPECT_LABELS_FAIL(t, ip, FM_ERR_FORMAT, "3 dimensions");
    /* An IDX file of floats (type 0x0d) is not one of ours, whatever its shape. */
    uint32_t dims[3] = {1, 1, 1};
    size_t len;
    uint8_t four[4] = {0};
    unsigned char *fb = idx_bytes(0x00000d03u, 3, dims, four, 4, &len);
    test_path(path, sizeof path, "float-images");
    CHECK(t, test_write_file(path, fb, len), "write");
    free(fb);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "wrong magic number 0x00000d03");
}

void test_idx_truncated_payload(test_ctx *t) {
    char path[512];
    /* Raw: the header declares 10 images of 4x4, the file holds 9 and a half. */
    test_path(path, sizeof path, "trunc-raw");
    write_raw_images(t, path, 10, 4, 4, 9 * 16 + 8);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "declares 10 images");
    /* Raw header with no payload at all. */
    test_path(path, sizeof path, "trunc-raw-empty");
    write_raw_images(t, path, 2, 3, 3, 0);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    /* Raw labels: 5 declared, 3 present. */
    uint32_t ld[1] = {5};
    uint8_t three[3] = {0, 1, 2};
    size_t len;
    unsigned char *lb = idx_bytes(MAGIC_LABELS, 1, ld, three, 3, &len);
    test_path(path, sizeof path, "trunc-labels");
    CHECK(t, test_write_file(path, lb, len), "write");
    free(lb);
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "declares 5 labels");
}

/* Writes a valid gzip IDX file with the library, then cuts it: to half its length, or by cut_tail
 * bytes at the end. */
static void cut_gz(test_ctx *t, const char *path, int labels, size_t cut_tail, int half) {
    enum { N = 50, H = 10, W = 10 };
    static uint8_t px[N * H * W];
    fill(px, sizeof px, 3);
    fm_error err = {0};
    fm_status s = labels ? fm_idx_write_labels(path, px, N, &err)
                         : fm_idx_write_images(path, px, N, H, W, &err);
    CHECK(t, s == FM_OK, "%s", err.msg);
    size_t len = 0;
    unsigned char *buf = test_read_file(path, &len);
    CHECK(t, buf && len > 40, "cannot read back %s", path);
    if (!buf || len <= 40) return;
    size_t keep = half ? len / 2 : len - cut_tail;
    CHECK(t, test_write_file(path, buf, keep), "rewrite");
    free(buf);
}

void test_idx_truncated_gzip(test_ctx *t) {
    char path[512];
    /* Half of the compressed stream: the payload ends early. */
    test_path(path, sizeof path, "half.gz");
    cut_gz(t, path, 0, 0, 1);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    test_path(path, sizeof path, "half-labels.gz");
    cut_gz(t, path, 1, 0, 1);
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    /* Cuts into the 8-byte trailer (CRC-32 and length) and just past it into the deflate data:
     * every pixel may decode, yet the stream is incomplete and unverified. */
    const size_t cuts[] = {1, 4, 8, 9, 12, 30};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.gz", cuts[i]);
        test_path(path, sizeof path, name);
        cut_gz(t, path, 0, cuts[i], 0);
        EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated");
        snprintf(name, sizeof name, "cut%zu-labels.gz", cuts[i]);
        test_path(path, sizeof path, name);
        cut_gz(t, path, 1, cuts[i], 0);
        EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    }
}

void test_idx_corrupt_gzip(test_ctx *t) {
    enum { N = 50, H = 10, W = 10 };
    static uint8_t px[N * H * W];
    fill(px, sizeof px, 4);
    char path[512];
    test_path(path, sizeof path, "corrupt.gz");
    fm_error err = {0};
    CHECK(t, fm_idx_write_images(path, px, N, H, W, &err) == FM_OK, "%s", err.msg);
    size_t len = 0;
    unsigned char *buf = test_read_file(path, &len);
    CHECK(t, buf && len > 100, "cannot read back");
    if (!buf || len <= 100) return;
    /* Flip a run of bytes in the middle of the deflate data, away from the gzip header and the
     * trailer, so the damage is the stream's and not a cut. */
    for (size_t i = len / 2; i < len / 2 + 8; i++) buf[i] ^= 0xff;
    CHECK(t, test_write_file(path, buf, len), "rewrite");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "corrupt data");

    /* One flipped bit that leaves the deflate stream decodable: only the CRC catches it. The
     * stored (level 0) stream holds the bytes verbatim, so flipping one changes a pixel. */
    gzFile f = gzopen(path, "wb0");
    unsigned char hdr[16];
    put_be32(hdr, MAGIC_IMAGES), put_be32(hdr + 4, N), put_be32(hdr + 8, H), put_be32(hdr + 12, W);
    CHECK(t, f && gzwrite(f, hdr, 16) == 16 && gzwrite(f, px, sizeof px) == (int)sizeof px,
          "gzwrite");
    if (f) gzclose(f);
    free(buf);
    buf = test_read_file(path, &len);
    CHECK(t, buf && len > sizeof px, "cannot read back");
    if (!buf || len <= sizeof px) return;
    buf[len / 2] ^= 0x10;
    CHECK(t, test_write_file(path, buf, len), "rewrite");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "corrupt data");
    free(buf);
}

void test_idx_bad_dims(test_ctx *t) {
    char path[512];
    test_path(path, sizeof path, "zero-count");
    write_raw_images(t, path, 0, 4, 4, 0);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "image count 0");
    test_path(path, sizeof path, "zero-height");
    write_raw_images(t, path, 2, 0, 4, 0);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "image size 0x4");
    test_path(path, sizeof path, "zero-width");
    write_raw_images(t, path, 2, 4, 0, 0);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "image size 4x0");
    test_path(path, sizeof path, "too-tall");
    write_raw_images(t, path, 1, FM_IDX_MAX_SIDE + 1, 1, FM_IDX_MAX_SIDE + 1);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "4097x1");
    test_path(path, sizeof path, "too-wide");
    write_raw_images(t, path, 1, 1, 0xffffffffu, 16);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "1x4294967295");
    test_path(path, sizeof path, "too-many");
    write_raw_images(t, path, FM_IDX_MAX_ITEMS + 1, 1, 1, 16);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "image count 10000001");

    uint32_t zero[1] = {0}, huge[1] = {FM_IDX_MAX_ITEMS + 1};
    size_t len;
    unsigned char *lb = idx_bytes(MAGIC_LABELS, 1, zero, NULL, 0, &len);
    test_path(path, sizeof path, "zero-labels");
    CHECK(t, test_write_file(path, lb, len), "write");
    free(lb);
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "label count 0");
    lb = idx_bytes(MAGIC_LABELS, 1, huge, NULL, 0, &len);
    test_path(path, sizeof path, "many-labels");
    CHECK(t, test_write_file(path, lb, len), "write");
    free(lb);
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "label count 10000001");
}

void test_idx_size_limits(test_ctx *t) {
    char path[512];
    /* 10^7 images of 4096x4096 is 1.6e14 bytes: every field is in range, the product is not.
     * It must be refused from the header alone (the file holds 16 bytes of pixels). */
    test_path(path, sizeof path, "huge");
    write_raw_images(t, path, FM_IDX_MAX_ITEMS, FM_IDX_MAX_SIDE, FM_IDX_MAX_SIDE, 16);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_NOMEM, "limit");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_NOMEM, "10000000 images of 4096x4096");
    /* A header that promises 784 MB over 10 images: the reader must run out of data, not ask
     * for the memory first. */
    test_path(path, sizeof path, "liar");
    write_raw_images(t, path, 1000000, 28, 28, 10 * 784);
    double t0 = fm_now_seconds();
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "truncated");
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "holds 10");
    CHECK(t, fm_now_seconds() - t0 < 5.0, "took %.1f s", fm_now_seconds() - t0);
}

void test_idx_trailing_bytes(test_ctx *t) {
    char path[512];
    test_path(path, sizeof path, "trailing");
    write_raw_images(t, path, 2, 3, 3, 2 * 9 + 1);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "trailing bytes");

    uint32_t dims[3] = {2, 3, 3};
    uint8_t payload[2 * 9 + 100] = {0};
    size_t len;
    unsigned char *ib = idx_bytes(MAGIC_IMAGES, 3, dims, payload, sizeof payload, &len);
    test_path(path, sizeof path, "trailing.gz");
    CHECK(t, write_gz(path, ib, len), "write");
    free(ib);
    EXPECT_IMAGES_FAIL(t, path, FM_ERR_FORMAT, "trailing bytes");

    uint32_t ld[1] = {3};
    uint8_t four[4] = {0, 1, 2, 3};
    unsigned char *lb = idx_bytes(MAGIC_LABELS, 1, ld, four, 4, &len);
    test_path(path, sizeof path, "trailing-labels");
    CHECK(t, test_write_file(path, lb, len), "write");
    free(lb);
    EXPECT_LABELS_FAIL(t, path, FM_ERR_FORMAT, "trailing bytes");
}

/* ---------------------------------------------------------------- datasets */

/* A folder with one split: n images of 2x2 and nl labels, label i = i % 3 unless bad_item >= 0,
 * which gets label bad_value. */
static void make_split(test_ctx *t, const char *dir, const char *prefix, uint32_t n, uint32_t nl,
                       int bad_item, uint8_t bad_value) {
    uint8_t px[64 * 4], lb[64];
    fill(px, sizeof px, 5);
    for (uint32_t i = 0; i < 64; i++) lb[i] = (uint8_t)(i % 3);
    if (bad_item >= 0) lb[bad_item] = bad_value;
    char ip[600], lp[600];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte", dir, prefix);
    fm_error err = {0};
    CHECK(t, fm_idx_write_images(ip, px, n, 2, 2, &err) == FM_OK, "%s", err.msg);
    if (nl) CHECK(t, fm_idx_write_labels(lp, lb, nl, &err) == FM_OK, "%s", err.msg);
}

void test_dataset_load(test_ctx *t) {
    char dir[512];
    test_path(dir, sizeof dir, "ds-ok");
    CHECK(t, test_mkdir(dir), "mkdir");
    make_split(t, dir, "train", 12, 12, -1, 0);
    make_split(t, dir, "t10k", 5, 5, -1, 0);
    fm_error err = {0};
    fm_dataset ds;
    CHECK(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 3, &ds, &err) == FM_OK, "%s", err.msg);
    CHECK(t, ds.n == 12 && ds.h == 2 && ds.w == 2 && ds.n_classes == 3, "train %ux%ux%u, %d classes",
          ds.n, ds.h, ds.w, ds.n_classes);
    for (uint32_t i = 0; i < ds.n; i++) CHECK(t, ds.labels[i] == i % 3, "label %u", i);
    fm_dataset_free(&ds);
    CHECK(t, fm_dataset_load(dir, FM_SPLIT_TEST, 3, &ds, &err) == FM_OK, "%s", err.msg);
    CHECK(t, ds.n == 5, "test n %u", ds.n);
    fm_dataset_free(&ds);
}

void test_dataset_load_bad(test_ctx *t) {
    fm_error err = {0};
    fm_dataset ds;
    char dir[512];

    test_path(dir, sizeof dir, "ds-mismatch");
    CHECK(t, test_mkdir(dir), "mkdir");
    make_split(t, dir, "train", 12, 11, -1, 0);
    CHECK_FAILS(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 3, &ds, &err), FM_ERR_FORMAT, err,
                "holds 11 labels", "holds 12 images");
    CHECK_MSG(t, err.msg, dir);
    CHECK(t, ds.images == NULL && ds.labels == NULL && ds.n == 0, "output not cleared");

    test_path(dir, sizeof dir, "ds-bad-label");
    CHECK(t, test_mkdir(dir), "mkdir");
    make_split(t, dir, "train", 12, 12, 7, 3);
    CHECK_FAILS(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 3, &ds, &err), FM_ERR_FORMAT, err,
                "label 3 of item 7", "train-labels-idx1-ubyte");
    /* The same file is fine with more classes. */
    CHECK(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 4, &ds, &err) == FM_OK, "%s", err.msg);
    fm_dataset_free(&ds);

    test_path(dir, sizeof dir, "ds-no-labels");
    CHECK(t, test_mkdir(dir), "mkdir");
    make_split(t, dir, "train", 12, 0, -1, 0);
    CHECK_FAILS(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 3, &ds, &err), FM_ERR_IO, err, dir,
                "missing train-labels-idx1-ubyte");
    CHECK_FAILS(t, fm_dataset_load(dir, FM_SPLIT_TEST, 3, &ds, &err), FM_ERR_IO, err, dir,
                "missing t10k-images-idx3-ubyte");
    CHECK_FAILS(t, fm_dataset_load(dir, FM_SPLIT_TRAIN, 1, &ds, &err), FM_ERR_ARG, err,
                "number of classes 1", NULL);
}

/* Restores the working folder and $FMNIST_DATA whatever the test did. */
typedef struct {
    char cwd[FM_PATH_MAX];
    char env[FM_PATH_MAX];
    int had_env;
} saved_env;

static int save_env(saved_env *s) {
    const char *e = getenv("FMNIST_DATA");
    s->had_env = e != NULL;
    snprintf(s->env, sizeof s->env, "%s", e ? e : "");
    return getcwd(s->cwd, sizeof s->cwd) != NULL;
}

static void restore_env(test_ctx *t, const saved_env *s) {
    if (s->had_env) setenv("FMNIST_DATA", s->env, 1);
    else unsetenv("FMNIST_DATA");
    CHECK(t, chdir(s->cwd) == 0, "cannot return to %s", s->cwd);
}

void test_data_find(test_ctx *t) {
    saved_env saved;
    CHECK(t, save_env(&saved), "getcwd");
    char root[512], full[600], empty[600], nodata[600], withdata[600], data[700], half[600];
    char missing[600], file[600];
    test_path(root, sizeof root, "find");
    CHECK(t, test_mkdir(root), "mkdir");
    snprintf(full, sizeof full, "%s/full", root);
    snprintf(empty, sizeof empty, "%s/empty", root);
    snprintf(half, sizeof half, "%s/half", root);
    snprintf(missing, sizeof missing, "%s/missing", root);
    snprintf(file, sizeof file, "%s/a-file", root);
    snprintf(nodata, sizeof nodata, "%s/cwd-without-data", root);
    snprintf(withdata, sizeof withdata, "%s/cwd-with-data", root);
    snprintf(data, sizeof data, "%s/data", withdata);
    CHECK(t, test_mkdir(full) && test_mkdir(empty) && test_mkdir(half) && test_mkdir(nodata) &&
                 test_mkdir(withdata) && test_mkdir(data) && test_write_file(file, "x", 1),
          "fixtures");
    make_split(t, full, "train", 4, 4, -1, 0);
    make_split(t, full, "t10k", 4, 4, -1, 0);
    make_split(t, data, "train", 4, 4, -1, 0);
    make_split(t, data, "t10k", 4, 4, -1, 0);
    make_split(t, half, "train", 4, 4, -1, 0);

    char out[FM_PATH_MAX];
    fm_error err = {0};
    /* An explicit folder wins, or fails naming itself; it never falls back. */
    CHECK(t, chdir(withdata) == 0, "chdir");
    CHECK(t, fm_data_find(full, out, sizeof out, &err) == FM_OK, "%s", err.msg);
    CHECK(t, strcmp(out, full) == 0, "found %s", out);
    CHECK_FAILS(t, fm_data_find(empty, out, sizeof out, &err), FM_ERR_IO, err, empty,
                "no Fashion-MNIST files");
    CHECK_FAILS(t, fm_data_find(half, out, sizeof out, &err), FM_ERR_IO, err, half,
                "t10k-images-idx3-ubyte");
    CHECK_FAILS(t, fm_data_find(missing, out, sizeof out, &err), FM_ERR_IO, err, missing, NULL);
    CHECK_FAILS(t, fm_data_find(file, out, sizeof out, &err), FM_ERR_IO, err, file, "not a folder");

    /* $FMNIST_DATA comes before ./data, and when set it is the only place looked at. */
    setenv("FMNIST_DATA", full, 1);
    CHECK(t, fm_data_find(NULL, out, sizeof out, &err) == FM_OK, "%s", err.msg);
    CHECK(t, strcmp(out, full) == 0, "found %s", out);
    setenv("FMNIST_DATA", empty, 1);
    CHECK_FAILS(t, fm_data_find(NULL, out, sizeof out, &err), FM_ERR_IO, err, empty,
                "apt-get install dataset-fashion-mnist");
    CHECK(t, chdir(nodata) == 0, "chdir");
    CHECK_FAILS(t, fm_data_find(NULL, out, sizeof out, &err), FM_ERR_IO, err, empty,
                "apt-get install dataset-fashion-mnist");

    /* Unset, or set to nothing: ./data, then the Debian package's folder. */
    CHECK(t, chdir(withdata) == 0, "chdir");
    unsetenv("FMNIST_DATA");
    CHECK(t, fm_data_find(NULL, out, sizeof out, &err) == FM_OK, "%s", err.msg);
    CHECK(t, strcmp(out, "./data") == 0, "found %s", out);
    setenv("FMNIST_DATA", "", 1);
    CHECK(t, fm_data_find(NULL, out, sizeof out, &err) == FM_OK, "%s", err.msg);
    CHECK(t, strcmp(out, "./data") == 0, "found %s", out);
    /* Without ./data the outcome depends on whether this machine has the package. */
    CHECK(t, chdir(nodata) == 0, "chdir");
    unsetenv("FMNIST_DATA");
    const char *debian = "/usr/share/datasets/fashion-mnist";
    char probe[FM_PATH_MAX];
    int have_debian = fm_data_find(debian, probe, sizeof probe, NULL) == FM_OK;
    out[0] = '\0';
    fm_status s = fm_data_find(NULL, out, sizeof out, &err);
    if (have_debian) {
        CHECK(t, s == FM_OK && strcmp(out, debian) == 0, "status %d, found %s", s, out);
    } else {
        CHECK_FAILS(t, s, FM_ERR_IO, err, "apt-get install dataset-fashion-mnist", "./data");
    }
    restore_env(t, &saved);
}
