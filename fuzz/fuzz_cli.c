/* fuzz_cli.c — libFuzzer target for the command line: the input, split at newlines and NULs, is
 * the argument list given to every subcommand's flag parser (cli/ *_parse), which must accept it
 * or reject it with a message, never crash, and give the same answer when asked twice (getopt's
 * hidden state is reset between parses). */
#include "cli.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

/* argv for one parse: the command name, then the arguments; a fresh copy each time, since getopt
 * permutes the array it is given. */
static char **fresh_argv(char **argv, const char *cmd, char **args, int n) {
    argv[0] = (char *)cmd;
    memcpy(argv + 1, args, (size_t)n * sizeof *args);
    argv[n + 1] = NULL;
    return argv;
}

/* Each parser twice: the same answer and, on success, the same options (the structs are zeroed
 * before they are filled, and their pointers point into the same strings). */
#define TWICE(fn, type, cmd, check)                                                                     \
    do {                                                                                               \
        type *a = calloc(1, sizeof(type)), *b = calloc(1, sizeof(type));                                 \
        char *argv[MAX_ARGS + 2];                                                                      \
        if (a && b) {                                                                                  \
            int ra = fn(cmd, n + 1, fresh_argv(argv, cmd, args, n), a);                                \
            int rb = fn(cmd, n + 1, fresh_argv(argv, cmd, args, n), b);                                \
            if (ra < -1 || ra > 1 || ra != rb || (ra == 0 && memcmp(a, b, sizeof(type)) != 0)) abort(); \
            if (ra == 0) {                                                                             \
                const type *o = a;                                                                     \
                check;                                                                                 \
            }                                                                                          \
        }                                                                                              \
        free(a), free(b);                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    char *text = malloc(len + 1);
    if (!text) return 0;
    memcpy(text, data, len);
    text[len] = '\0';
    char *args[MAX_ARGS];
    int n = 0;
    for (size_t i = 0, start = 0; i <= len && n < MAX_ARGS; i++) {
        if (i == len || text[i] == '\n' || text[i] == '\0') {
            text[i] = '\0';
            if (i < len || i > start) args[n++] = text + start;
            start = i + 1;
        }
    }
    fm_error err = {0};
    TWICE(train_parse, train_options, "train", {
        if (!o->spec || fm_train_params_check(&o->tp, &err) != FM_OK) abort();
        if (o->mp.classes.n < 2 || o->mp.classes.n > FM_MAX_CLASSES) abort();
    });
    TWICE(evaluate_parse, evaluate_options, "evaluate", {
        if (!o->model || o->threads < 0 || o->tta < -1 || o->tta > 1) abort();
    });
    TWICE(predict_parse, predict_options, "predict", {
        if (!o->model || o->n_images < 0 || o->index < 0 || (o->all && !o->csv)) abort();
        for (int i = 0; i < o->n_images; i++) {
            if (!o->images[i]) abort();
        }
    });
    TWICE(summary_parse, summary_options, "summary", {
        if (!o->what) abort();
    });
    TWICE(show_parse, show_options, "show", {
        if (!o->out || o->count < 1 || o->count > 1000 || o->scale < 1 || o->scale > 16) abort();
        if (o->classes.n < 2 || o->only < -1 || o->only >= o->classes.n) abort();
    });
    TWICE(report_parse, report_options, "report", {
        if (!o->dir || o->threads < 0) abort();
    });
    TWICE(experiment_parse, experiment_options, "experiment", {
        if (o->n_configs < 0 || o->n_configs > 100 || !(o->epochs_scale > 0)) abort();
        for (int i = 0; i < o->n_configs; i++) {
            if (!o->configs[i]) abort();
        }
    });
    TWICE(export_parse, export_options, "export", {
        if (!o->model || !o->onnx || !o->onnx[0]) abort();
    });
    free(text);
    return 0;
}
