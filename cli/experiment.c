/* experiment.c — `fmnist experiment`: trains a set of configurations one after another (by
 * default the notebooks' tasks), each into its own run folder with its report, then compares them
 * in a table, a chart of validation accuracy and a page. Configurations with identical settings
 * share one run; finished runs are found again and skipped and an interrupted one continues from
 * its checkpoint, so the same command resumes an interrupted experiment. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CONFIGS 100
#define CONFIG_TEXT_MAX 1024
#define CONFIG_NAME_MAX 48
#define MAX_TOKENS 64
#define DONE_MARKER "experiment-config.txt"

/* The notebooks' tasks: hidden units 64/128/256, epochs 5/10/20/30, one or two hidden layers,
 * and the 300-100 network trained with plain SGD. */
static const char *const NOTEBOOK_CONFIGS[] = {
    "name=hidden-64 model=mlp64 epochs=10",
    "name=hidden-128 model=mlp epochs=10",
    "name=hidden-256 model=mlp256 epochs=10",
    "name=epochs-5 model=mlp epochs=5",
    "name=epochs-10 model=mlp epochs=10",
    "name=epochs-20 model=mlp epochs=20",
    "name=epochs-30 model=mlp epochs=30",
    "name=one-hidden model=mlp epochs=10",
    "name=two-hidden model=mlp2 epochs=10",
    "name=sgd-300-100 model=mlp300-100 optimizer=sgd lr=0.01 epochs=30",
};

/* Keys a configuration may set: train's flags without the dashes. The experiment itself decides
 * the data, threads, output folders and what is printed. */
static const char *const VALUE_KEYS[] = {
    "model", "epochs", "batch", "optimizer", "lr", "momentum", "beta1", "beta2", "eps", "weight-decay",
    "schedule", "warmup", "step-epochs", "step-gamma", "label-smoothing", "augment", "monitor", "patience",
    "reduce-lr-patience", "reduce-lr-factor", "min-lr", "swa", "swa-lr", "precision", "l2", "init", "scale",
    "val", "seed", "classes"};
static const char *const SWITCH_KEYS[] = {"nesterov", "tta", "no-tta"};
#define KEYS_HELP                                                                                       \
    "name, model, epochs, batch, optimizer, lr, momentum, nesterov, beta1, beta2, eps, weight-decay, "  \
    "schedule, warmup, step-epochs, step-gamma, label-smoothing, augment, tta, no-tta, monitor, "       \
    "patience, reduce-lr-patience, reduce-lr-factor, min-lr, swa, swa-lr, precision, l2, init, scale, " \
    "val, seed, classes"

static void help(void) {
    printf("usage: fmnist experiment [options] [CONFIG...]\n"
           "\n"
           "Trains several configurations one after another and compares them: results.md and\n"
           "results.csv (model, parameters, epochs, training settings, best validation accuracy,\n"
           "test accuracy, time), val_accuracy.png (validation accuracy per epoch of every run)\n"
           "and index.html, in --out.\n"
           "Each run gets its own folder with its model and report.html.\n"
           "\n"
           "A CONFIG is one argument of KEY=VALUE words (a switch such as nesterov or tta stands\n"
           "alone), the keys being train's flags without the dashes:\n");
    /* The key list, wrapped: written once, in KEYS_HELP, which the unknown-key error prints too. */
    int col = 0;
    for (const char *p = KEYS_HELP; *p;) {
        size_t word = strcspn(p, " ");
        if (col + (int)word > 86) printf("\n"), col = 0;
        col += printf("%s%.*s", col ? " " : "  ", (int)word, p);
        p += word + (p[word] == ' ');
    }
    printf("\n"
           "e.g. fmnist experiment \"name=h64 model=mlp64 epochs=10\" \"name=h256 model=mlp256 epochs=10\"\n"
           "     fmnist experiment \"name=plain epochs=20\" \"name=flips epochs=20 augment=flip\" \\\n"
           "       \"name=early-stop epochs=20 patience=3\" \"name=bn model=dense:128,bn,relu,dense:10 epochs=20\"\n"
           "Unset keys keep train's defaults (mlp, adam, batch 32, 10 epochs, val 5000, seed 1), or\n"
           "the training settings of a preset that brings them (model=cnn, model=cnn-best).\n"
           "Without CONFIG or --file it runs the notebooks' tasks (see --list): hidden units 64,\n"
           "128, 256; epochs 5, 10, 20, 30; one or two hidden layers; the 300-100 network with SGD.\n"
           "\n"
           "  --out DIR          experiment folder                         [runs/experiment]\n"
           "  --file FILE        configurations, one per line (# starts a comment)\n"
           "  --epochs-scale X   multiply every configuration's epochs by X (at least 1),\n"
           "                     for a quick try, in (0, 10]                [1]\n"
           "  --data DIR         folder with the IDX files\n"
           "  --threads N        threads per run, 0 = all cores             [0]\n"
           "  --list             print the configurations and what is done, train nothing\n"
           "  --quiet            one line per configuration instead of train's epoch lines\n"
           "\n"
           "Configurations with identical settings share one run (trained once). A run is done\n"
           "when its folder holds " DONE_MARKER " with its settings, written after its report;\n"
           "run the same command again after an interruption and it skips what is done and\n"
           "continues the interrupted run from its checkpoint.\n");
}

typedef struct {
    char name[CONFIG_NAME_MAX + 1];
    char text[CONFIG_TEXT_MAX];      /* as given, for messages */
    char words[2 * CONFIG_TEXT_MAX]; /* the argv strings built from it */
    char *argv[MAX_TOKENS * 2 + 2];
    train_options o;
    char spec[1024];                 /* canonical */
    size_t params;
    char key[4096];                  /* every setting that changes the result */
    int run;                         /* index of the config whose folder it uses */
} config;

static int in_list(const char *const *list, size_t n, const char *word, size_t len) {
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i]) == len && strncmp(list[i], word, len) == 0) return 1;
    }
    return 0;
}

static int valid_name(const char *s) {
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > CONFIG_NAME_MAX) return 0;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return 0;
    }
    return 1;
}

/* Splits "name=h64 model=mlp64 epochs=10" into train's argv ("--model", "mlp64", ...) and the
 * name; a configuration without a name is named after its words. */
static int config_split(const char *cmd, const char *text, config *cf) {
    memset(cf, 0, sizeof *cf);
    if (strlen(text) >= CONFIG_TEXT_MAX) return cli_error(cmd, "configuration longer than %d characters: \"%.40s...\"", CONFIG_TEXT_MAX - 1, text);
    snprintf(cf->text, sizeof cf->text, "%s", text);
    char *w = cf->words;
    int argc = 0;
    cf->argv[argc++] = strcpy(w, "experiment");
    w += strlen(w) + 1;
    char auto_name[CONFIG_TEXT_MAX] = "";
    const char *p = text;
    int tokens = 0;
    while (*p) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        size_t len = (size_t)(p - start);
        if (++tokens > MAX_TOKENS) return cli_error(cmd, "configuration \"%s\": more than %d words", text, MAX_TOKENS);
        const char *eq = memchr(start, '=', len);
        size_t klen = eq ? (size_t)(eq - start) : len;
        const char *value = eq ? eq + 1 : NULL;
        size_t vlen = eq ? len - klen - 1 : 0;
        if (klen == 4 && strncmp(start, "name", 4) == 0 && value) {
            if (cf->name[0]) return cli_error(cmd, "configuration \"%s\": name given twice", text);
            if (vlen > CONFIG_NAME_MAX) return cli_error(cmd, "configuration \"%s\": name longer than %d characters", text, CONFIG_NAME_MAX);
            memcpy(cf->name, value, vlen);
            cf->name[vlen] = '\0';
            if (!valid_name(cf->name)) {
                return cli_error(cmd, "configuration \"%s\": name \"%s\" must be letters, digits, '-', '_' or '.'", text, cf->name);
            }
            continue;
        }
        if (in_list(SWITCH_KEYS, sizeof SWITCH_KEYS / sizeof *SWITCH_KEYS, start, klen)) {
            if (value && !(vlen == 1 && (*value == '1'))) {
                return cli_error(cmd, "configuration \"%s\": %.*s takes no value (write just %.*s)", text,
                                 (int)klen, start, (int)klen, start);
            }
        } else if (!in_list(VALUE_KEYS, sizeof VALUE_KEYS / sizeof *VALUE_KEYS, start, klen)) {
            return cli_error(cmd, "configuration \"%s\": unknown key \"%.*s\" (keys: " KEYS_HELP ")", text, (int)klen, start);
        } else if (!value) {
            return cli_error(cmd, "configuration \"%s\": %.*s needs a value (%.*s=...)", text, (int)klen, start, (int)klen, start);
        }
        cf->argv[argc++] = w;
        w += sprintf(w, "--%.*s", (int)klen, start) + 1;
        if (value && !in_list(SWITCH_KEYS, sizeof SWITCH_KEYS / sizeof *SWITCH_KEYS, start, klen)) {
            cf->argv[argc++] = w;
            memcpy(w, value, vlen);
            w[vlen] = '\0';
            w += vlen + 1;
        }
        size_t al = strlen(auto_name);
        snprintf(auto_name + al, sizeof auto_name - al, "%s%.*s", al ? "_" : "", (int)len, start);
    }
    cf->argv[argc] = NULL;
    if (!cf->name[0]) {
        /* Named after its words: "model=mlp64 epochs=10" -> "model-mlp64_epochs-10". */
        size_t n = 0;
        for (const char *s = auto_name; *s && n < CONFIG_NAME_MAX; s++) {
            cf->name[n++] = isalnum((unsigned char)*s) || *s == '_' || *s == '.' ? *s : '-';
        }
        cf->name[n] = '\0';
        if (!n) snprintf(cf->name, sizeof cf->name, "defaults");
    }
    char prefix[CONFIG_NAME_MAX + 32];
    snprintf(prefix, sizeof prefix, "experiment: config %s", cf->name);
    int rc = train_parse(prefix, argc, cf->argv, &cf->o);
    return rc ? 1 : 0;
}

/* Everything that changes a run's result; configurations with equal keys share one run. Threads
 * are left out: results are bit-identical for any thread count. */
static int config_key(const char *cmd, config *cf, const char *data_dir) {
    const train_options *o = &cf->o;
    fm_error err = {0};
    fm_model *m = NULL;
    if (fm_model_create(o->spec, 28, 28, &o->mp, &m, &err)) return cli_error(cmd, "config %s: --model: %s", cf->name, err.msg);
    snprintf(cf->spec, sizeof cf->spec, "%s", fm_model_spec(m));
    cf->params = fm_model_param_count(m);
    fm_model_free(m);
    const fm_train_params *tp = &o->tp;
    const fm_augment *au = &tp->augment;
    float lr = fm_train_lr(tp);
    int n = snprintf(cf->key, sizeof cf->key,
                     "spec=%s epochs=%d batch=%d optimizer=%s lr=%.9g momentum=%.9g nesterov=%d beta1=%.9g "
                     "beta2=%.9g eps=%.9g weight_decay=%.9g schedule=%s warmup=%.9g step_epochs=%d "
                     "step_gamma=%.9g label_smoothing=%.9g augment=shift:%d,flip:%d,rotate:%.9g,erase:%.9g "
                     "tta=%d monitor=%d patience=%d reduce_lr_patience=%d reduce_lr_factor=%.9g min_lr=%.9g "
                     "swa=%d swa_lr=%.9g l2=%.9g init=%s scale=%s val=%u seed=%llu data=%s classes=",
                     cf->spec, tp->epochs, tp->batch, train_optimizer_name(tp->optimizer), (double)lr,
                     (double)tp->momentum, tp->nesterov, (double)tp->beta1, (double)tp->beta2, (double)tp->eps,
                     (double)tp->weight_decay, train_schedule_name(tp->schedule), (double)tp->warmup,
                     tp->step_epochs, (double)tp->step_gamma, (double)tp->label_smoothing, au->shift, au->flip,
                     (double)au->rotate, (double)au->erase, o->tta, (int)tp->monitor, tp->patience,
                     tp->reduce_lr_patience, (double)tp->reduce_lr_factor, (double)tp->min_lr, tp->swa,
                     (double)tp->swa_lr, (double)tp->l2, o->mp.init == FM_INIT_HE_UNIFORM ? "he" : "glorot",
                     o->mp.scaling.kind == FM_SCALE_STANDARD ? "standard" : "unit", tp->val,
                     (unsigned long long)tp->seed, data_dir);
    for (int k = 0; k < o->mp.classes.n && n > 0 && (size_t)n < sizeof cf->key; k++) {
        n += snprintf(cf->key + n, sizeof cf->key - (size_t)n, "%s%s", k ? "," : "", o->mp.classes.names[k]);
    }
    /* only when not float32, so that the keys of runs from before the setting still match */
    if (tp->precision != FM_PRECISION_FLOAT32 && n > 0 && (size_t)n < sizeof cf->key) {
        n += snprintf(cf->key + n, sizeof cf->key - (size_t)n, " precision=%s", train_precision_name(tp->precision));
    }
    if (n < 0 || (size_t)n >= sizeof cf->key) return cli_error(cmd, "config %s: settings too long", cf->name);
    return 0;
}

/* Configurations from a file: one per line, '#' to the end of a line is a comment. The file is
 * read whole, at most CONFIG_FILE_MAX bytes, and must be text: a NUL byte (a binary file, or
 * /dev/zero, which would otherwise give empty lines forever) is an error. */
#define CONFIG_FILE_MAX (1 << 20)
static int read_config_file(const char *cmd, const char *path, char ***texts, int *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error(cmd, "--file %s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(CONFIG_FILE_MAX + 2); /* one byte past the limit tells an oversize file, one for the NUL */
    size_t size = buf ? fread(buf, 1, CONFIG_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) return cli_error(cmd, "out of memory");
    int rc = 0;
    if (bad) rc = cli_error(cmd, "--file %s: read failed", path);
    else if (size > CONFIG_FILE_MAX) rc = cli_error(cmd, "--file %s: larger than %d bytes", path, CONFIG_FILE_MAX);
    else if (memchr(buf, '\0', size)) {
        rc = cli_error(cmd, "--file %s: not a text file (NUL byte at offset %zu)", path,
                       (size_t)((char *)memchr(buf, '\0', size) - buf));
    }
    buf[size] = '\0';
    int lineno = 0;
    for (char *line = buf; !rc && line < buf + size;) {
        char *end = strchr(line, '\n'), *next = end ? end + 1 : buf + size;
        if (end) *end = '\0';
        lineno++;
        if (strlen(line) > CONFIG_TEXT_MAX - 1) {
            rc = cli_error(cmd, "--file %s: line %d is longer than %d characters", path, lineno, CONFIG_TEXT_MAX - 1);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = line, *e = line + strlen(line);
        while (isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
        line = next;
        if (!*s) continue;
        if (*n >= MAX_CONFIGS) {
            rc = cli_error(cmd, "--file %s: more than %d configurations", path, MAX_CONFIGS);
            break;
        }
        if (!((*texts)[(*n)++] = strdup(s))) {
            rc = cli_error(cmd, "out of memory");
            break;
        }
    }
    free(buf);
    return rc;
}

/* A run is done when its marker holds exactly its key (written after its report) and its run.json
 * and history.json are there to read back. */
static int run_is_done(const char *folder, const char *key) {
    char path[FM_PATH_MAX + 128], buf[4200];
    snprintf(path, sizeof path, "%s/%s", folder, DONE_MARKER);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    size_t klen = strlen(key);
    if (n != klen + 1 || strncmp(buf, key, klen) != 0 || buf[klen] != '\n') return 0;
    struct stat st;
    snprintf(path, sizeof path, "%s/run.json", folder);
    if (stat(path, &st) != 0) return 0;
    snprintf(path, sizeof path, "%s/history.json", folder);
    return stat(path, &st) == 0;
}

/* Whether folder holds the checkpoint of an interrupted run of this configuration (its note holds
 * the same key) with training left to do; a damaged or foreign one is trained over. */
static int run_is_resumable(const char *folder, const char *key) {
    char path[FM_PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/checkpoint.fmck", folder);
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    fm_checkpoint *ck = NULL;
    fm_error err = {0};
    if (fm_checkpoint_load(path, &ck, &err)) return 0;
    cJSON *note = cJSON_Parse(fm_checkpoint_note(ck));
    const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(note, "experiment_key"));
    int same = k && strcmp(k, key) == 0;
    cJSON_Delete(note);
    int done, batches_done, batches, stopped;
    fm_checkpoint_position(ck, &done, &batches_done, &batches, &stopped);
    int left = !stopped && (batches_done > 0 || done < fm_checkpoint_train_params(ck).epochs);
    fm_checkpoint_free(ck);
    return same && left;
}

/* Resumes the run in folder as `fmnist train --resume folder` would, on the loaded data. */
static int resume_run(const char *cmd, const config *cf, const char *folder, const char *dir,
                      const fm_dataset *train, const fm_dataset *test) {
    train_options r;
    char *argv[] = {"train", "--resume", (char *)folder, "--data", (char *)dir, NULL};
    if (train_resume_parse(cmd, 5, argv, &r)) return 1;
    r.run_key = cf->key;
    r.quiet = cf->o.quiet, r.json = cf->o.json;
    int rc = train_run(cmd, &r, train, test, dir);
    fm_checkpoint_free(r.ck);
    return rc;
}

/* What the table needs from a finished run folder. */
typedef struct {
    fm_history history;
    double test_accuracy, seconds;
    char training[384];
} run_result;

static int read_run(const char *cmd, const char *folder, run_result *r) {
    char path[FM_PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/history.json", folder);
    if (cli_load_history(cmd, path, &r->history)) return 1;
    snprintf(path, sizeof path, "%s/run.json", folder);
    cJSON *run = cli_load_json(cmd, path);
    if (!run) return 1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(run, "test");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(t, "accuracy");
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(run, "train_seconds");
    r->test_accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : NAN;
    r->seconds = cJSON_IsNumber(secs) ? secs->valuedouble : NAN;
    cJSON_Delete(run);
    return 0;
}

int experiment_parse(const char *cmd, int argc, char **argv, experiment_options *o) {
    enum { O_OUT = 256, O_FILE, O_SCALE, O_DATA, O_THREADS, O_LIST, O_QUIET };
    static const struct option opts[] = {
        {"help", no_argument, 0, 'h'}, {"out", required_argument, 0, O_OUT}, {"file", required_argument, 0, O_FILE},
        {"epochs-scale", required_argument, 0, O_SCALE}, {"data", required_argument, 0, O_DATA},
        {"threads", required_argument, 0, O_THREADS}, {"list", no_argument, 0, O_LIST},
        {"quiet", no_argument, 0, O_QUIET}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->out = "runs/experiment";
    o->epochs_scale = 1.0;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_OUT: o->out = optarg; break;
        case O_FILE: o->file = optarg; break;
        case O_SCALE:
            if (!cli_float_positive(cmd, "--epochs-scale", optarg, 10, &o->epochs_scale)) return 1;
            break;
        case O_DATA: o->data = optarg; break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &o->threads)) return 1; break;
        case O_LIST: o->list = 1; break;
        case O_QUIET: o->quiet = 1; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    /* The argv words getopt leaves are the configurations; they are checked (with getopt again,
     * through train_parse) only after this loop is done with argv. */
    o->configs = argv + optind;
    o->n_configs = argc - optind;
    if (o->n_configs > MAX_CONFIGS) return cli_error(cmd, "more than %d configurations", MAX_CONFIGS);
    config *scratch = malloc(sizeof *scratch);
    if (!scratch) return cli_error(cmd, "out of memory");
    int rc = 0;
    for (int i = 0; i < o->n_configs && !rc; i++) rc = config_split(cmd, o->configs[i], scratch);
    free(scratch);
    return rc;
}

int cmd_experiment(int argc, char **argv) {
    const char *cmd = "experiment";
    experiment_options eo;
    int prc = experiment_parse(cmd, argc, argv, &eo);
    if (prc) return prc < 0 ? 0 : prc;
    const char *out = eo.out, *file = eo.file, *data = eo.data;
    const double epochs_scale = eo.epochs_scale;
    const long threads = eo.threads;
    const int list = eo.list, quiet = eo.quiet;
    char **texts = calloc(2 * MAX_CONFIGS, sizeof *texts);
    config *cfs = NULL;
    run_result *results = NULL;
    fm_experiment_row *rows = NULL;
    fm_dataset train = {0}, test = {0};
    int n = 0, rc = 1, owned = 0;
    if (!texts) return cli_error(cmd, "out of memory");
    if (file && read_config_file(cmd, file, &texts, &n)) goto done;
    owned = n;
    if (file && n == 0) {
        cli_error(cmd, "--file %s holds no configurations", file);
        goto done;
    }
    if (eo.n_configs > MAX_CONFIGS - n) {
        cli_error(cmd, "more than %d configurations", MAX_CONFIGS);
        goto done;
    }
    for (int i = 0; i < eo.n_configs; i++) texts[n++] = eo.configs[i];
    int builtin = n == 0;
    if (builtin) {
        for (size_t i = 0; i < sizeof NOTEBOOK_CONFIGS / sizeof *NOTEBOOK_CONFIGS; i++) texts[n++] = (char *)NOTEBOOK_CONFIGS[i];
    }

    char dir[FM_PATH_MAX];
    fm_error err = {0};
    if (fm_data_find(data, dir, sizeof dir, &err)) {
        cli_fail(cmd, &err);
        goto done;
    }
    cfs = calloc((size_t)n, sizeof *cfs);
    results = calloc((size_t)n, sizeof *results);
    rows = calloc((size_t)n, sizeof *rows);
    if (!cfs || !results || !rows) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        config *cf = &cfs[i];
        if (config_split(cmd, texts[i], cf)) goto done;
        for (int j = 0; j < i; j++) {
            if (strcmp(cfs[j].name, cf->name) == 0) {
                cli_error(cmd, "two configurations are named \"%s\" (add name=... to tell them apart)", cf->name);
                goto done;
            }
        }
        train_options *o = &cf->o;
        if (epochs_scale != 1.0) {
            long e = lround(o->tp.epochs * epochs_scale);
            o->tp.epochs = e < 1 ? 1 : e > 100000 ? 100000 : (int)e;
        }
        if (o->tp.val == 0) {
            cli_error(cmd, "config %s: val=0 leaves no validation set, and the experiment compares validation accuracy", cf->name);
            goto done;
        }
        if (o->mp.classes.n != cfs[0].o.mp.classes.n) {
            cli_error(cmd, "config %s: %d classes, but config %s has %d: one experiment uses one data set", cf->name,
                      o->mp.classes.n, cfs[0].name, cfs[0].o.mp.classes.n);
            goto done;
        }
        o->tp.threads = (int)threads;
        o->quiet = quiet;
        if (config_key(cmd, cf, dir)) goto done;
        cf->run = i;
        for (int j = 0; j < i; j++) {
            if (strcmp(cfs[j].key, cf->key) == 0) {
                cf->run = cfs[j].run;
                break;
            }
        }
    }

    int runs = 0, todo = 0;
    char folder[FM_PATH_MAX + CONFIG_NAME_MAX + 2];
    for (int i = 0; i < n; i++) {
        if (cfs[i].run != i) continue;
        runs++;
        snprintf(folder, sizeof folder, "%s/%s", out, cfs[i].name);
        todo += !run_is_done(folder, cfs[i].key);
    }
    if (list || !quiet) {
        printf("Experiment: %d configurations%s, %d distinct runs (%d done, %d to train) -> %s\n", n,
               builtin ? " (the notebooks' tasks)" : "", runs, runs - todo, todo, out);
    }
    if (list) {
        for (int i = 0; i < n; i++) {
            const config *cf = &cfs[i];
            char opt[384];
            train_settings_text(&cf->o.tp, cf->o.tta, opt, sizeof opt);
            snprintf(folder, sizeof folder, "%s/%s", out, cfs[cf->run].name);
            const char *state = cf->run != i ? "shares the run of" : run_is_done(folder, cf->key) ? "done:" : "to train:";
            printf("  %-14s %-12s %6zu params, %3d epochs, %-16s %s %s\n", cf->name, cf->o.spec, cf->params,
                   cf->o.tp.epochs, opt, state, cf->run != i ? cfs[cf->run].name : folder);
        }
        rc = 0;
        goto done;
    }
    if (cli_mkdirs(cmd, out)) goto done;
    if (todo > 0) {
        if (!cli_load_split(cmd, dir, FM_SPLIT_TRAIN, cfs[0].o.mp.classes.n, &train, NULL, 0) ||
            !cli_load_split(cmd, dir, FM_SPLIT_TEST, cfs[0].o.mp.classes.n, &test, NULL, 0)) {
            goto done;
        }
        if (!quiet) printf("Interrupt at any time: the same command resumes, skipping the finished runs.\n");
    }
    for (int i = 0; i < n; i++) {
        config *cf = &cfs[i];
        const config *owner = &cfs[cf->run];
        snprintf(folder, sizeof folder, "%s/%s", out, owner->name);
        if (cf->run != i) {
            printf("[%d/%d] %s: same settings as %s, shares its run\n", i + 1, n, cf->name, owner->name);
        } else if (run_is_done(folder, cf->key)) {
            printf("[%d/%d] %s: done earlier, skipped (%s)\n", i + 1, n, cf->name, folder);
        } else {
            char marker[sizeof folder + 32], text[sizeof cf->key + 2];
            snprintf(marker, sizeof marker, "%s/%s", folder, DONE_MARKER);
            if (unlink(marker) != 0 && errno != ENOENT) {
                cli_error(cmd, "%s: cannot remove: %s", marker, strerror(errno));
                goto done;
            }
            int resume = run_is_resumable(folder, cf->key);
            printf("[%d/%d] %s: %s%s\n", i + 1, n, cf->name, cf->text,
                   resume ? " (resuming its checkpoint)" : "");
            fflush(stdout);
            cf->o.out = folder;
            cf->o.run_key = cf->key;
            double t0 = fm_now_seconds();
            int trc = resume ? resume_run(cmd, cf, folder, dir, &train, &test)
                             : train_run(cmd, &cf->o, &train, &test, dir);
            if (trc) {
                rc = trc; /* 130 or 143 when a signal stopped it */
                goto done;
            }
            snprintf(text, sizeof text, "%s\n", cf->key);
            if (cli_write_file(cmd, marker, text)) goto done;
            if (quiet) printf("        trained in %.1fs -> %s\n", fm_now_seconds() - t0, folder);
            if (!quiet) printf("\n");
        }
        if (cf->run == i && read_run(cmd, folder, &results[i])) goto done;
    }

    for (int i = 0; i < n; i++) {
        const config *cf = &cfs[i];
        const run_result *r = &results[cf->run];
        fm_experiment_row *row = &rows[i];
        train_settings_text(&cf->o.tp, cf->o.tta, results[i].training, sizeof results[i].training);
        row->name = cf->name;
        row->model = cf->o.spec;
        row->params = cf->params;
        row->epochs = cf->o.tp.epochs;
        row->training = results[i].training;
        row->best_val_accuracy = NAN;
        for (int e = 0; e < r->history.n; e++) {
            double v = r->history.epochs[e].val_accuracy;
            if (isfinite(v) && (row->best_val_epoch == 0 || v > row->best_val_accuracy)) {
                row->best_val_accuracy = v;
                row->best_val_epoch = e + 1;
            }
        }
        row->test_accuracy = r->test_accuracy;
        row->seconds = r->seconds;
        row->run = cfs[cf->run].name;
        row->history = &r->history;
    }
    char title[FM_PATH_MAX + 64];
    snprintf(title, sizeof title, "fmnist experiment: %s", builtin ? "the notebooks' tasks" : out);
    if (fm_experiment_write(out, title, rows, n, &err)) {
        cli_fail(cmd, &err);
        goto done;
    }
    char md[FM_PATH_MAX + 32];
    snprintf(md, sizeof md, "%s/results.md", out);
    FILE *f = fopen(md, "r");
    if (f) {
        char line[1024];
        while (fgets(line, sizeof line, f)) fputs(line, stdout);
        fclose(f);
    }
    printf("\nWrote %s/results.md, results.csv, val_accuracy.png and index.html\n", out);
    rc = 0;
done:
    for (int i = 0; i < owned; i++) free(texts[i]);
    free(texts);
    for (int i = 0; results && i < n; i++) fm_history_free(&results[i].history);
    free(results);
    free(rows);
    free(cfs);
    fm_dataset_free(&train);
    fm_dataset_free(&test);
    return rc;
}
