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
int cmd_show(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_experiment(int argc, char **argv);

/* Each subcommand parses its flags in a *_parse function (argv[0] is the command name) that runs
 * nothing: it fills the options, and returns 0 to go ahead, 1 after printing an error, or -1 after
 * printing --help. cmd_* then runs the command. fuzz/fuzz_cli.c calls the parsers alone. */
typedef struct {
    const char *model, *data;
    fm_split split;
    int threads, json;
    int tta; /* -1: as the model file says */
} evaluate_options;
int evaluate_parse(const char *cmd, int argc, char **argv, evaluate_options *o);

typedef struct {
    const char *model, *data, *csv, *save_input;
    char **images; /* picture files or folders after MODEL (n_images of them, pointing into argv) */
    int n_images;
    fm_split split;
    long index;
    int all, threads, json, show;
    int tta;                 /* -1: as the model file says */
    int have_index, have_split; /* given at all, even at their defaults */
    fm_invert invert;        /* --invert auto|yes|no (pictures only) */
    int have_invert;
} predict_options;
int predict_parse(const char *cmd, int argc, char **argv, predict_options *o);

typedef struct {
    const char *what; /* a model file or a spec */
    int json;
} summary_options;
int summary_parse(const char *cmd, int argc, char **argv, summary_options *o);

typedef struct {
    const char *out, *data;
    fm_split split;
    long count, columns, scale;
    fm_classes classes;
    int only; /* the class --class names, or -1 */
} show_options;
int show_parse(const char *cmd, int argc, char **argv, show_options *o);

typedef struct {
    const char *dir, *data;
    int threads, quiet;
} report_options;
int report_parse(const char *cmd, int argc, char **argv, report_options *o);

typedef struct {
    const char *out, *file, *data;
    double epochs_scale;
    long threads;
    int list, quiet;
    char **configs; /* the configurations given as arguments (pointing into argv), each checked */
    int n_configs;
} experiment_options;
int experiment_parse(const char *cmd, int argc, char **argv, experiment_options *o);

typedef struct {
    const char *model, *onnx;
} export_options;
int export_parse(const char *cmd, int argc, char **argv, export_options *o);

/* `fmnist train`'s flags, parsed; `fmnist experiment` builds its configurations from them too. */
typedef struct {
    fm_train_params tp;
    fm_model_params mp;
    const char *spec, *data, *out, *name, *classes;
    int no_test, no_report, quiet, json;
    int tta; /* test-time flips, stored in the model */
    /* --resume: the checkpoint to continue (owned; train_run resumes it), and storage for the
     * settings read from its note. */
    fm_checkpoint *ck;
    /* Set by `fmnist experiment`: its key for the run, kept in the checkpoint's note so that the
     * same command resumes an interrupted run only when its settings are still the same. */
    const char *run_key;
    char spec_buf[2048], data_buf[FM_PATH_MAX];
} train_options;

/* Parses train's flags (argv[0] is the command name) after filling in the defaults, and checks
 * the model spec. Returns 0 to go ahead, 1 after printing an error, -1 after printing --help. */
int train_parse(const char *cmd, int argc, char **argv, train_options *o);
/* `fmnist train --resume DIR [--epochs N] [--data DIR] [--quiet] [--json]` (train_resume.c):
 * the options of the run DIR's checkpoint holds. Returns 0 or 1 after printing an error. */
int train_resume_parse(const char *cmd, int argc, char **argv, train_options *o);
/* Names as the flags spell them ("adamw", "onecycle"). */
const char *train_optimizer_name(fm_optimizer o);
const char *train_schedule_name(fm_schedule s);
const char *train_precision_name(fm_precision p);
/* "sgd lr 0.1 nesterov 0.9, onecycle schedule, weight decay 0.0005, augment flip, ...": the
 * optimizer with its rate (the default when tp->lr is 0), then every setting that differs from
 * train's defaults (schedule, decay, smoothing, augmentation, test-time flips, callbacks, swa).
 * Writes at most cap bytes and returns buf. */
const char *train_settings_text(const fm_train_params *tp, int tta, char *buf, size_t cap);
/* The text train_run keeps in each checkpoint (JSON: model as given, data folder, init, no_test,
 * no_report, and experiment_key when run_key is set); NULL when out of memory. Free with free(). */
char *train_checkpoint_note(const train_options *o, const char *data_dir);
/* Trains and writes the run folder: model, history, run.json, then the report unless
 * o->no_report. The data sets may be given already loaded (with the folder they came from), or
 * NULL to load them. Returns 0, or 1 after printing an error. */
int train_run(const char *cmd, const train_options *o, const fm_dataset *train,
              const fm_dataset *test, const char *data_dir);

/* The run report (fm_report_write) for a run folder, its settings taken from run.json's
 * top-level values. test may be NULL (a --no-test run). Returns 0, or 1 after an error. */
struct cJSON;
int cli_report(const char *cmd, const char *dir, fm_model *m, const fm_dataset *test,
               const fm_history *hist, const struct cJSON *run, int threads);
/* Reads a history.json that train wrote. Returns 0, or 1 after printing an error. */
int cli_load_history(const char *cmd, const char *path, fm_history *out);
/* Reads a JSON file (run.json); NULL after printing an error. Free with cJSON_Delete. */
struct cJSON *cli_load_json(const char *cmd, const char *path);
int cmd_export(int argc, char **argv);

/* predict_images.c: `fmnist predict MODEL IMAGE|FOLDER...`, after predict.c has parsed the flags. */
typedef struct {
    const char *csv;        /* NULL or the CSV file to write */
    const char *save_input; /* NULL, FILE.png (one picture) or a folder */
    int json, show, threads;
    fm_invert invert;       /* --invert auto|yes|no */
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
/* cli_float in (0, hi]: a 0 gets its own message ("FLAG must be above 0"). */
int cli_float_positive(const char *cmd, const char *flag, const char *text, double hi, double *out);

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
