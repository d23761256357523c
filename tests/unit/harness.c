/* harness.c — runs every unit test (or those named on the command line) and ends with the
 * "N passed, N failed" line that people and CI read. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
