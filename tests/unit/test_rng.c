/* test_rng.c — the random number generator: reproducible, in range, shuffles are permutations. */
#include "harness.h"
#include "internal.h"

#include <string.h>

void test_rng_deterministic(test_ctx *t) {
    fm_rng a, b;
    fm_rng_seed(&a, 7);
    fm_rng_seed(&b, 7);
    for (int i = 0; i < 1000; i++) CHECK(t, fm_rng_next(&a) == fm_rng_next(&b), "diverged at %d", i);
    int32_t items[100], seen[100] = {0};
    for (int i = 0; i < 100; i++) items[i] = i;
    fm_rng_shuffle(&a, items, 100);
    for (int i = 0; i < 100; i++) seen[items[i]]++;
    for (int i = 0; i < 100; i++) CHECK(t, seen[i] == 1, "item %d seen %d times", i, seen[i]);
    for (int i = 0; i < 10000; i++) {
        float u = fm_rng_uniform(&a);
        uint32_t k = fm_rng_below(&a, 7);
        CHECK(t, u >= 0.0f && u < 1.0f, "uniform %g", (double)u);
        CHECK(t, k < 7, "below %u", k);
    }
}
