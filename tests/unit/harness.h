/* harness.h — a minimal test harness: CHECK records failures without stopping, each test is a
 * function registered in the table in harness.c. */
#ifndef FMNIST_TEST_HARNESS_H
#define FMNIST_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>

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

/* Where the tests write scratch files; created by the harness. */
const char *test_tmpdir(void);

#endif
