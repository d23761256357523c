/* fuzz_common.h — what the libFuzzer targets share: the library's readers take paths, so each
 * input is written to a per-process scratch file in /dev/shm (or $TMPDIR) first. */
#ifndef FMNIST_FUZZ_COMMON_H
#define FMNIST_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes data to this process's scratch file (suffix tells gzip from raw for readers that care)
 * and returns its path, or NULL if the scratch area is unusable. */
static inline const char *fuzz_scratch(const char *suffix, const void *data, size_t len) {
    static char path[256]; /* one fuzzing process, one input at a time */
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(path, sizeof path, "%s/fmnist-fuzz-%d%s", dir, (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t n = len ? fwrite(data, 1, len, f) : 0;
    if (fclose(f) != 0 || n != len) return NULL;
    return path;
}

#endif
