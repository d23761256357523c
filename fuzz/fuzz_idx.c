/* fuzz_idx.c — libFuzzer target for the IDX reader, raw and gzip. The first byte picks how the
 * rest is stored: as is (zlib reads raw and gzip files alike), or gzip-compressed by the target so
 * the fuzzer reaches the IDX header checks behind a valid gzip stream. */
#include "fuzz_common.h"
#include "fmnist.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

static const char *store(const uint8_t *data, size_t len) {
    if (len == 0 || !(data[0] & 1)) return fuzz_scratch("", data + (len ? 1 : 0), len ? len - 1 : 0);
    const char *path = fuzz_scratch(".gz", "", 0);
    if (!path) return NULL;
    gzFile f = gzopen(path, "wb1");
    if (!f) return NULL;
    if (len > 1) gzwrite(f, data + 1, (unsigned)(len - 1));
    gzclose(f);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    const char *path = store(data, len);
    if (!path) return 0;
    fm_error err = {0};
    uint8_t *pixels = NULL, *labels = NULL;
    uint32_t n = 0, h = 0, w = 0;
    if (fm_idx_read_images(path, &pixels, &n, &h, &w, &err) == FM_OK) {
        /* A success must describe exactly the bytes it returned. */
        if (n == 0 || h == 0 || w == 0) abort();
        volatile uint8_t sink = pixels[(size_t)n * h * w - 1];
        (void)sink;
        free(pixels);
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    memset(&err, 0, sizeof err);
    if (fm_idx_read_labels(path, &labels, &n, &err) == FM_OK) {
        if (n == 0) abort();
        volatile uint8_t sink = labels[n - 1];
        (void)sink;
        free(labels);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    unlink(path);
    return 0;
}
