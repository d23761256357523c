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

/* The batch fill (dropout's masks) draws exactly what one call after another would, and leaves
 * the generator in the same state. */
void test_rng_uniform_fill(test_ctx *t) {
    fm_rng a, b;
    fm_rng_seed(&a, 11);
    fm_rng_seed(&b, 11);
    float got[1000];
    fm_rng_uniform_fill(&a, got, 1000);
    for (int i = 0; i < 1000; i++) {
        float want = fm_rng_uniform(&b);
        CHECK(t, memcmp(&got[i], &want, sizeof want) == 0, "draw %d: %g, one by one %g", i, (double)got[i], (double)want);
    }
    CHECK(t, fm_rng_next(&a) == fm_rng_next(&b), "the generator ends elsewhere");
    fm_rng_uniform_fill(&a, got, 0);
    CHECK(t, fm_rng_next(&a) == fm_rng_next(&b), "an empty fill moves the generator");
}
