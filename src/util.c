/* util.c — errors, the random number generator, threads and clocks: small things every file uses. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "internal.h"

#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

fm_status fm_fail(fm_error *err, fm_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
    return s;
}

const char *fm_status_name(fm_status s) {
    switch (s) {
    case FM_OK: return "ok";
    case FM_ERR_ARG: return "invalid argument";
    case FM_ERR_IO: return "input/output error";
    case FM_ERR_FORMAT: return "malformed file";
    case FM_ERR_NOMEM: return "out of memory or over a size limit";
    case FM_ERR_DIVERGED: return "training diverged";
    case FM_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

/* "All cores" means the cores this process may run on (taskset, container limits), not all the
 * machine has. */
int fm_threads_resolve(int threads) {
    if (threads > 0) return threads;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void *fm_alloc_floats(size_t n, int zero) {
    if (n > (SIZE_MAX - 63) / sizeof(float)) return NULL;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63; /* aligned_alloc wants a multiple */
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p && zero) memset(p, 0, bytes);
    return p;
}

double fm_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- xoshiro256** */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void fm_rng_seed(fm_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next(fm_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t fm_rng_next(fm_rng *rng) { return next(rng); }

float fm_rng_uniform(fm_rng *rng) {
    return (float)(next(rng) >> 40) * (1.0f / 16777216.0f); /* 24 random bits */
}

/* n calls of fm_rng_uniform in one loop, with the state in registers rather than behind a call
 * per draw (dropout's masks: 9,344 draws per image for the cnn preset). */
void fm_rng_uniform_fill(fm_rng *rng, float *out, size_t n) {
    fm_rng r = *rng;
    for (size_t i = 0; i < n; i++) out[i] = (float)(next(&r) >> 40) * (1.0f / 16777216.0f);
    *rng = r;
}

uint32_t fm_rng_below(fm_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: no modulo bias. */
    uint64_t m = (uint64_t)(uint32_t)(fm_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(fm_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void fm_rng_shuffle(fm_rng *rng, int32_t *items, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = fm_rng_below(rng, (uint32_t)i);
        int32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}
