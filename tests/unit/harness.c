/* harness.c — runs every unit test (or those named on the command line) and ends with the
 * "N passed, N failed" line that people and CI read. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

fm_dataset test_band_data(uint32_t n, uint64_t seed, int noise, int lift, int mid_end) {
    fm_dataset ds = {0};
    ds.n = n, ds.h = 8, ds.w = 8, ds.n_classes = 3;
    ds.images = malloc((size_t)n * 64);
    ds.labels = malloc(n);
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (uint32_t i = 0; i < n; i++) {
        int c = (int)fm_rng_below(&rng, 3);
        ds.labels[i] = (uint8_t)c;
        for (int p = 0; p < 64; p++) {
            int x = p % 8, band = x < 3 ? 0 : (x < mid_end ? 1 : 2);
            int v = (int)fm_rng_below(&rng, (uint32_t)noise) + (band == c ? lift : 0);
            ds.images[(size_t)i * 64 + p] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    return ds;
}

#define TEST(name) void name(test_ctx *t);
#include "tests.def"
#undef TEST

static const struct { const char *name; void (*fn)(test_ctx *); } TESTS[] = {
#define TEST(name) {#name, name},
#include "tests.def"
#undef TEST
};

static char tmpdir[256];

const char *test_tmpdir(void) { return tmpdir; }

void test_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

int test_mkdir(const char *path) { return mkdir(path, 0700) == 0; }

int test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0) ok = 0;
    return ok;
}

unsigned char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fmnist-unit-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++) wanted |= strstr(TESTS[i].name, argv[a]) != NULL;
            if (!wanted) continue;
        }
        test_ctx t = {0, TESTS[i].name};
        TESTS[i].fn(&t);
        if (t.failures) {
            failed++;
            printf("FAIL %s\n", TESTS[i].name);
        } else {
            passed++;
            printf("ok   %s\n", TESTS[i].name);
        }
        fflush(stdout);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    fm_release_caches(); /* cairo's and fontconfig's, so the leak checker sees only ours */
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
