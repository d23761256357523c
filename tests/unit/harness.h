/* harness.h — a minimal test harness: CHECK records failures without stopping, each test is a
 * function registered in the table in harness.c. */
#ifndef FMNIST_TEST_HARNESS_H
#define FMNIST_TEST_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fmnist.h"

typedef struct {
    int failures;
    const char *name;
} test_ctx;

#define CHECK(t, cond, ...)                                                          \
    do {                                                                             \
        if (!(cond)) {                                                               \
            (t)->failures++;                                                         \
            fprintf(stderr, "  %s:%d: %s: check failed: %s: ", __FILE__, __LINE__, (t)->name, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

#define CHECK_NEAR(t, a, b, tol)                                                     \
    CHECK(t, fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

#define CHECK_MSG(t, msg, needle) \
    CHECK(t, strstr((msg), (needle)) != NULL, "message lacks \"%s\": %s", (needle), (msg))

/* A call that must fail: its status, and a message holding each given phrase (NULL to skip), so
 * that a rejection for the wrong reason does not pass. */
#define CHECK_FAILS(t, got, want, err, needle1, needle2)                                         \
    do {                                                                                         \
        fm_status got_ = (got);                                                                  \
        const char *n1_ = (needle1), *n2_ = (needle2);                                           \
        CHECK(t, got_ == (want), "status \"%s\", wanted \"%s\"; message: %s",                   \
              fm_status_name(got_), fm_status_name(want), (err).msg);                            \
        if (n1_) CHECK_MSG(t, (err).msg, n1_);                                                   \
        if (n2_) CHECK_MSG(t, (err).msg, n2_);                                                   \
    } while (0)

/* Where the tests write scratch files; created by the harness. */
const char *test_tmpdir(void);
/* out = tmpdir/name; test_mkdir creates a folder there (0 when it fails or already exists). */
void test_path(char *out, size_t cap, const char *name);
int test_mkdir(const char *path);
/* Whole-file helpers for building malformed inputs; return 0 on failure. */
int test_write_file(const char *path, const void *data, size_t len);

/* n images of 8x8 in 3 classes with shuffled labels: class c is bright in its own band of
 * columns (0-2, 3 to mid_end-1, mid_end-7) on a noisy background, so a small model separates
 * them. Pixel = uniform noise below `noise`, plus `lift` inside the class's band, capped at 255.
 * The tests that train on it tune noise, lift and the bands to how hard they want the task. */
fm_dataset test_band_data(uint32_t n, uint64_t seed, int noise, int lift, int mid_end);
unsigned char *test_read_file(const char *path, size_t *len);

#endif
