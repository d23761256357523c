/* cli.h — what the fmnist subcommands share: flag parsing that names the flag at fault, data and
 * model loading with one-line errors, and small output helpers. Only the CLI prints or exits. */
#ifndef FMNIST_CLI_H
#define FMNIST_CLI_H

#include "fmnist.h"

#include <stdio.h>

int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* predict_images.c: `fmnist predict MODEL IMAGE|FOLDER...`, after predict.c has parsed the flags. */
typedef struct {
    const char *csv;        /* NULL or the CSV file to write */
    const char *save_input; /* NULL, FILE.png (one picture) or a folder */
    int json, show, threads;
} cli_image_opts;
int cli_predict_images(const char *cmd, fm_model *m, char **args, int n_args, const cli_image_opts *o);

/* Prints "fmnist CMD: MESSAGE" to stderr and returns 1 (so `return cli_error(...)` exits 1). */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Reports a library error. */
int cli_fail(const char *cmd, const fm_error *err);

/* Strict number parsing: the whole text must be a number in [lo, hi]; otherwise prints an error
 * naming the flag and returns 0. */
int cli_int(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out);

/* Unknown option / missing argument handling for getopt_long loops (optstring ":h", every other
 * option long with a value of 256 or more, or 'h'): names the element at fault from optind and
 * optopt, which stay right when getopt has moved positional arguments aside. */
int cli_bad_option(const char *cmd, char **argv, int c);

/* Loads the split named by --split from the data folder found by --data and friends. */
int cli_load_split(const char *cmd, const char *data_flag, fm_split split, int n_classes,
                   fm_dataset *out, char *dir_out, size_t dir_cap);
/* The same for an existing model: its classes, and a check that the images have its input size. */
int cli_load_split_for(const char *cmd, const char *data_flag, fm_split split, const fm_model *m,
                       const char *model_name, fm_dataset *out);
int cli_parse_split(const char *cmd, const char *text, fm_split *out);

/* Renders a 28x28 (any HxW) image as text, two pixels per character column pair. */
void cli_print_image(FILE *f, const uint8_t *pixels, uint32_t h, uint32_t w);

/* Writes text to path through a temporary file and rename, so a failure never leaves half a file. */
int cli_write_file(const char *cmd, const char *path, const char *text);
int cli_mkdirs(const char *cmd, const char *path);

#endif
