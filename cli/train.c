/* train.c — `fmnist train`: parse flags, load data, build the model, fit with a progress bar or
 * plain per-epoch lines, then save the model, history and settings and report test figures. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void help(void) {
    printf("usage: fmnist train [options]\n"
           "\n"
           "Trains a classifier on the training set (holding out --val images for validation),\n"
           "saves it with its history to --out, and reports loss and accuracy on the test set.\n"
           "\n"
           "  --model SPEC       preset (mlp, mlp64, mlp256, mlp2, mlp300-100, cnn, cnn-best;\n"
           "                     cnn and cnn-best bring training settings, which flags\n"
           "                     override: see the README) or layers, e.g.\n"
           "                     \"dense:128:relu,dense:10\"                       [mlp]\n"
           "                     or \"conv:32:3:same,bn,relu,maxpool:2,dropout:0.25,dense:128,\n"
           "                     relu,dense:10\" (conv:FILTERS:KERNEL[:same|valid][:sSTRIDE],\n"
           "                     maxpool:K[:S], avgpool:K[:S], gap, bn, dropout:P, leakyrelu[:A])\n"
           "  --epochs N         passes over the training set                  [10]\n"
           "  --batch N          images per step                                [32]\n"
           "  --optimizer NAME   adam, adamw or sgd                             [adam]\n"
           "  --lr X             learning rate (the peak with a schedule)\n"
           "                                                 [adam(w) 0.001, sgd 0.01]\n"
           "  --momentum X       SGD momentum                                   [0]\n"
           "  --nesterov         Nesterov momentum (SGD)\n"
           "  --beta1 X --beta2 X --eps X   Adam settings        [0.9, 0.999, 1e-7]\n"
           "  --weight-decay X   decoupled: kernels *= 1 - lr*X each step (adamw, sgd)\n"
           "                                                 [adamw 0.01, sgd 0]\n"
           "  --schedule NAME    constant, step, cosine or onecycle            [constant]\n"
           "  --warmup E         epochs of linear warm-up (onecycle: of the rise,\n"
           "                     default 30%% of the run); may be fractional    [0]\n"
           "  --step-epochs N --step-gamma X   step schedule: lr *= X every N epochs [10, 0.1]\n"
           "  --label-smoothing X  train towards (1-X)*onehot + X/classes        [0]\n"
           "  --augment LIST     on-the-fly, seeded: shift=N (pixels), flip, rotate=DEGREES,\n"
           "                     erase=P (random erasing), e.g. shift=2,flip    [none]\n"
           "  --tta, --no-tta    test-time augmentation: average each image with its mirror\n"
           "                     (stored in the model, used by evaluate and predict)\n"
           "  --monitor NAME     val_accuracy or val_loss: what the callbacks watch [val_accuracy]\n"
           "  --patience N       early stopping: stop after N epochs without improvement and\n"
           "                     restore the best epoch's weights; 0 turns it off (e.g. a\n"
           "                     preset's, to train with --val 0)                [off]\n"
           "  --reduce-lr-patience N  multiply the rate by --reduce-lr-factor [0.1] after N\n"
           "                     epochs without improvement, not below --min-lr [0]; 0: off [off]\n"
           "  --swa N            stochastic weight averaging: hold the rate at --swa-lr over\n"
           "                     the last N epochs, average their weights at each epoch's end,\n"
           "                     and keep the mean (batch norm statistics recomputed)  [off]\n"
           "  --swa-lr X         the rate of those epochs [the schedule's where they begin]\n"
           "  --precision NAME   float32, or bf16: mixed precision, the 3x3 convolutions'\n"
           "                     products on bfloat16 operands with float sums in training\n"
           "                     (fast with AVX-512 BF16; evaluation stays float32) [float32]\n"
           "  --l2 X             add X * sum(w^2) over dense and conv kernels to the loss [0]\n"
           "  --init NAME        glorot (Keras's default) or he                 [glorot]\n"
           "  --scale NAME       unit (x/255) or standard (mean/std of the training part) [unit]\n"
           "  --val N            images held out from the start of the training set [5000]\n"
           "  --seed N           seeds initialisation and shuffling             [1]\n"
           "  --threads N        0 = all cores                                  [0]\n"
           "  --data DIR         folder with the IDX files (else $FMNIST_DATA, ./data,\n"
           "                     /usr/share/datasets/fashion-mnist)\n"
           "  --classes LIST     fashion, digits, or comma-separated names      [fashion]\n"
           "  --out DIR          run folder                      [runs/YYYYmmdd-HHMMSS]\n"
           "  --name NAME        shorthand for --out runs/NAME\n"
           "  --no-test          skip the final test-set evaluation\n"
           "  --no-report        skip the pictures and report.html\n"
           "  --quiet            print only the final lines\n"
           "  --json             print the final figures as one JSON object\n"
           "  --resume DIR       continue the run in DIR from its checkpoint, with its settings;\n"
           "                     only --epochs (to train further), --data, --quiet and --json\n"
           "                     may be given with it\n"
           "\n"
           "Each epoch ends with DIR/checkpoint.fmck (weights, optimizer, generator, history,\n"
           "callbacks). Ctrl-C or SIGTERM stops after the current batch, saves the exact position\n"
           "there and exits 130 or 143; a second Ctrl-C aborts at once. A resumed run ends with\n"
           "the same weights, bit for bit, as one never interrupted.\n"
           "Writes DIR/model.safetensors, DIR/history.csv, DIR/history.json, DIR/run.json, and\n"
           "the report: DIR/report.html (one self-contained page), curves.png, confusion.png,\n"
           "predictions.png, mistakes.png and the CSV files they were drawn from.\n"
           "The same seed, machine and thread count give bit-identical results.\n");
}

typedef struct {
    int tty, quiet;
    double epoch_start, last_draw;
    int show_lr; /* the rate moves (schedule, warm-up, plateaus): print it each epoch */
    const fm_model *model;   /* saved to best_path whenever an epoch improves */
    const char *best_path;
    fm_error save_err;       /* why saving it failed, which stops the run */
    int save_failed;
} progress;

/* The one piece of global mutable state in fmnist: a signal handler can reach nothing else. The
 * first SIGINT or SIGTERM stores its number here, which fm_fit reads after every batch through
 * fm_train_params.stop; the handler is installed with SA_RESETHAND, so a second signal takes the
 * default action and ends the program at once. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
    static const char msg[] = "\nStopping after this batch to save a checkpoint (again to abort now)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1); /* async-signal-safe */
    (void)w;
}


/* The index of s in names[n], the flags' spellings of an enum in its order; -1 when absent. */
static int name_index(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) return i;
    }
    return -1;
}

static const char *const OPTIMIZERS[] = {"adam", "sgd", "adamw"}; /* fm_optimizer order */
static const char *const SCHEDULES[] = {"constant", "step", "cosine", "onecycle"}; /* fm_schedule order */
static const char *const PRECISIONS[] = {"float32", "bf16"}; /* fm_precision order */

const char *train_optimizer_name(fm_optimizer o) {
    return (unsigned)o < 3 ? OPTIMIZERS[o] : "adam";
}

const char *train_schedule_name(fm_schedule s) {
    return (unsigned)s < 4 ? SCHEDULES[s] : "?";
}

const char *train_precision_name(fm_precision p) {
    return (unsigned)p < 2 ? PRECISIONS[p] : "?";
}

/* Appends to buf[cap] at *len, keeping the text terminated and *len at most cap - 1. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

/* The optimizer, then ", cosine schedule (1 warm-up epochs), weight decay 0.05, label smoothing
 * 0.1, augment flip" and so on for whatever differs from the defaults. */
const char *train_settings_text(const fm_train_params *tp, int tta, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    float lr = fm_train_lr(tp);
    append(buf, cap, &len, "%s lr %g", train_optimizer_name(tp->optimizer), (double)lr);
    if (tp->optimizer == FM_OPT_SGD && tp->momentum > 0) {
        append(buf, cap, &len, " %s %g", tp->nesterov ? "nesterov" : "momentum", (double)tp->momentum);
    }
    if (tp->schedule != FM_SCHED_CONSTANT || tp->warmup > 0) {
        append(buf, cap, &len, ", %s schedule", train_schedule_name(tp->schedule));
        if (tp->warmup > 0) append(buf, cap, &len, " (%g warm-up epochs)", (double)tp->warmup);
        if (tp->schedule == FM_SCHED_STEP) {
            append(buf, cap, &len, " (x%g every %d epochs)", (double)tp->step_gamma, tp->step_epochs);
        }
    }
    if (tp->weight_decay > 0) append(buf, cap, &len, ", weight decay %g", (double)tp->weight_decay);
    if (tp->l2 > 0) append(buf, cap, &len, ", l2 %g", (double)tp->l2);
    if (tp->label_smoothing > 0) append(buf, cap, &len, ", label smoothing %g", (double)tp->label_smoothing);
    if (fm_augment_active(&tp->augment)) {
        char aug[128];
        fm_augment_format(&tp->augment, aug, sizeof aug);
        append(buf, cap, &len, ", augment %s", aug);
    }
    if (tta) append(buf, cap, &len, ", test-time flips");
    if (tp->patience) append(buf, cap, &len, ", early stopping after %d", tp->patience);
    if (tp->reduce_lr_patience) {
        append(buf, cap, &len, ", lr x%g after %d on a plateau", (double)tp->reduce_lr_factor, tp->reduce_lr_patience);
    }
    if (tp->swa) {
        append(buf, cap, &len, ", weights averaged over the last %d epochs", tp->swa);
        if (tp->swa_lr > 0) append(buf, cap, &len, " at lr %g", (double)tp->swa_lr);
    }
    if (tp->precision != FM_PRECISION_FLOAT32) {
        append(buf, cap, &len, ", %s products", train_precision_name(tp->precision));
    }
    return buf;
}

static void on_batch(int epoch, int batch, int batches, double loss, double acc, void *user) {
    progress *pr = user;
    if (!pr->tty || pr->quiet) return;
    double now = fm_now_seconds();
    if (batch == 1) pr->epoch_start = now;
    if (batch != batches && now - pr->last_draw < 0.1) return;
    pr->last_draw = now;
    double el = now - pr->epoch_start;
    double eta = batch ? el / batch * (batches - batch) : 0.0;
    int width = 24, fill = (int)((long long)width * batch / batches);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
    bar[width] = '\0';
    printf("\r%5d/%-5d [%s] ETA %4.1fs - loss: %.4f - accuracy: %.4f ", batch, batches, bar, eta, loss, acc);
    (void)epoch;
    fflush(stdout);
}

static int on_epoch(const fm_epoch_stats *st, void *user) {
    progress *pr = user;
    /* Keep the best checkpoint: the model holds this epoch's weights right now. */
    if (st->improved && pr->best_path && fm_model_save(pr->model, pr->best_path, &pr->save_err)) {
        pr->save_failed = 1;
        return 1;
    }
    if (pr->quiet) return 0;
    if (pr->tty) printf("\r\033[K");
    printf("Epoch %d/%d - %.1fs - loss: %.4f - accuracy: %.4f", st->epoch, st->epochs, st->seconds,
           st->loss, st->accuracy);
    if (!isnan(st->val_loss)) printf(" - val_loss: %.4f - val_accuracy: %.4f", st->val_loss, st->val_accuracy);
    if (pr->show_lr) printf(" - lr: %.3g", st->lr);
    printf("\n");
    fflush(stdout);
    return 0;
}

static char *history_csv(const fm_history *h) {
    size_t cap = 128 + (size_t)h->n * 200;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t len = (size_t)snprintf(buf, cap, "epoch,loss,accuracy,val_loss,val_accuracy,seconds,lr\n");
    for (int i = 0; i < h->n; i++) {
        const fm_epoch_stats *e = &h->epochs[i];
        if (isnan(e->val_loss)) {
            len += (size_t)snprintf(buf + len, cap - len, "%d,%.9g,%.9g,,,%.3f,%.9g\n", e->epoch, e->loss,
                                    e->accuracy, e->seconds, e->lr);
        } else {
            len += (size_t)snprintf(buf + len, cap - len, "%d,%.9g,%.9g,%.9g,%.9g,%.3f,%.9g\n", e->epoch, e->loss,
                                    e->accuracy, e->val_loss, e->val_accuracy, e->seconds, e->lr);
        }
    }
    return buf;
}

/* Keras's History.history: one list per metric. */
static cJSON *history_json(const fm_history *h) {
    cJSON *o = cJSON_CreateObject();
    const char *keys[] = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "lr"};
    int has_val = h->n > 0 && !isnan(h->epochs[0].val_loss);
    for (int k = 0; k < 7; k++) {
        if (!has_val && (k == 3 || k == 4)) continue;
        cJSON *arr = cJSON_AddArrayToObject(o, keys[k]);
        for (int i = 0; i < h->n; i++) {
            const fm_epoch_stats *e = &h->epochs[i];
            double v[] = {e->epoch, e->loss, e->accuracy, e->val_loss, e->val_accuracy, e->seconds, e->lr};
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[k]));
        }
    }
    return o;
}

/* A float setting as the decimal it was written as (0.01, not 0.00999999977648258). */
static void json_setting(cJSON *o, const char *key, float v) {
    char text[32];
    snprintf(text, sizeof text, "%.7g", (double)v);
    cJSON_AddNumberToObject(o, key, strtod(text, NULL));
}

static int write_json(const char *cmd, const char *path, cJSON *o) {
    char *text = cJSON_Print(o);
    if (!text) return cli_error(cmd, "out of memory");
    size_t n = strlen(text);
    char *withnl = malloc(n + 2);
    if (!withnl) {
        free(text);
        return cli_error(cmd, "out of memory");
    }
    memcpy(withnl, text, n);
    withnl[n] = '\n', withnl[n + 1] = '\0';
    int rc = cli_write_file(cmd, path, withnl);
    free(text);
    free(withnl);
    return rc;
}

int train_parse(const char *cmd, int argc, char **argv, train_options *o) {
    enum { O_MODEL = 256, O_EPOCHS, O_BATCH, O_OPT, O_LR, O_MOM, O_NEST, O_B1, O_B2, O_EPS, O_L2, O_INIT,
           O_SCALE, O_VAL, O_SEED, O_THREADS, O_DATA, O_CLASSES, O_OUT, O_NAME, O_NOTEST, O_QUIET, O_JSON,
           O_WD, O_SCHED, O_WARMUP, O_STEP_EPOCHS, O_STEP_GAMMA, O_SMOOTH, O_AUGMENT, O_TTA, O_MONITOR,
           O_PATIENCE, O_RLR_PATIENCE, O_RLR_FACTOR, O_MIN_LR, O_NO_TTA, O_NOREPORT, O_SWA, O_SWA_LR,
           O_PRECISION };
    static const struct option opts[] = {
        {"help", no_argument, 0, 'h'},          {"model", required_argument, 0, O_MODEL},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"optimizer", required_argument, 0, O_OPT}, {"lr", required_argument, 0, O_LR},
        {"momentum", required_argument, 0, O_MOM},  {"nesterov", no_argument, 0, O_NEST},
        {"beta1", required_argument, 0, O_B1},      {"beta2", required_argument, 0, O_B2},
        {"eps", required_argument, 0, O_EPS},       {"l2", required_argument, 0, O_L2},
        {"init", required_argument, 0, O_INIT},     {"scale", required_argument, 0, O_SCALE},
        {"val", required_argument, 0, O_VAL},       {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"data", required_argument, 0, O_DATA},
        {"classes", required_argument, 0, O_CLASSES}, {"out", required_argument, 0, O_OUT},
        {"name", required_argument, 0, O_NAME},
        {"no-test", no_argument, 0, O_NOTEST},      {"quiet", no_argument, 0, O_QUIET},
        {"json", no_argument, 0, O_JSON},
        {"weight-decay", required_argument, 0, O_WD}, {"schedule", required_argument, 0, O_SCHED},
        {"warmup", required_argument, 0, O_WARMUP}, {"step-epochs", required_argument, 0, O_STEP_EPOCHS},
        {"step-gamma", required_argument, 0, O_STEP_GAMMA},
        {"label-smoothing", required_argument, 0, O_SMOOTH}, {"augment", required_argument, 0, O_AUGMENT},
        {"tta", no_argument, 0, O_TTA}, {"no-tta", no_argument, 0, O_NO_TTA},
        {"monitor", required_argument, 0, O_MONITOR},
        {"patience", required_argument, 0, O_PATIENCE}, {"reduce-lr-patience", required_argument, 0, O_RLR_PATIENCE},
        {"reduce-lr-factor", required_argument, 0, O_RLR_FACTOR}, {"min-lr", required_argument, 0, O_MIN_LR},
        {"no-report", no_argument, 0, O_NOREPORT},
        {"swa", required_argument, 0, O_SWA}, {"swa-lr", required_argument, 0, O_SWA_LR},
        {"precision", required_argument, 0, O_PRECISION},
        {0, 0, 0, 0}};
    fm_train_params tp = fm_train_default_params();
    fm_model_params mp = fm_model_default_params();
    const char *spec = "mlp", *data = NULL, *out = NULL, *name = NULL, *classes = "fashion";
    int no_test = 0, no_report = 0, quiet = 0, json = 0, c, wd_given = 0, tta = 0, i;
    fm_error err = {0};
    long lv;
    double dv;
    opterr = 0;
    /* A preset's training settings go in first so that every flag given overrides them: one
     * pass to find --model, then the real one (optind 0 restarts glibc's getopt afresh). */
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == O_MODEL) spec = optarg;
    }
    fm_preset_train_params(spec, &tp, &tta);
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_MODEL: spec = optarg; break;
        case O_EPOCHS: if (!cli_int(cmd, "--epochs", optarg, 1, 100000, &lv)) return 1; tp.epochs = (int)lv; break;
        case O_BATCH: if (!cli_int(cmd, "--batch", optarg, 1, 65536, &lv)) return 1; tp.batch = (int)lv; break;
        case O_OPT:
            if ((i = name_index(OPTIMIZERS, 3, optarg)) < 0) {
                return cli_error(cmd, "--optimizer must be adam, adamw or sgd, got \"%s\"", optarg);
            }
            tp.optimizer = (fm_optimizer)i;
            break;
        case O_LR:
            if (!cli_float_positive(cmd, "--lr", optarg, 10, &dv)) return 1;
            tp.lr = (float)dv;
            break;
        case O_MOM: if (!cli_float(cmd, "--momentum", optarg, 0, 0.999999, &dv)) return 1; tp.momentum = (float)dv; break;
        case O_NEST: tp.nesterov = 1; break;
        case O_B1: if (!cli_float(cmd, "--beta1", optarg, 0, 0.999999, &dv)) return 1; tp.beta1 = (float)dv; break;
        case O_B2: if (!cli_float(cmd, "--beta2", optarg, 0, 0.999999, &dv)) return 1; tp.beta2 = (float)dv; break;
        case O_EPS:
            if (!cli_float_positive(cmd, "--eps", optarg, 1, &dv)) return 1;
            tp.eps = (float)dv;
            break;
        case O_L2: if (!cli_float(cmd, "--l2", optarg, 0, 1, &dv)) return 1; tp.l2 = (float)dv; break;
        case O_INIT:
            if (strcmp(optarg, "glorot") == 0) mp.init = FM_INIT_GLOROT_UNIFORM;
            else if (strcmp(optarg, "he") == 0) mp.init = FM_INIT_HE_UNIFORM;
            else return cli_error(cmd, "--init must be glorot or he, got \"%s\"", optarg);
            break;
        case O_SCALE:
            if (strcmp(optarg, "unit") == 0) mp.scaling.kind = FM_SCALE_UNIT;
            else if (strcmp(optarg, "standard") == 0) mp.scaling.kind = FM_SCALE_STANDARD;
            else return cli_error(cmd, "--scale must be unit or standard, got \"%s\"", optarg);
            break;
        case O_VAL: if (!cli_int(cmd, "--val", optarg, 0, 10000000, &lv)) return 1; tp.val = (uint32_t)lv; break;
        case O_SEED:
            if (!cli_int(cmd, "--seed", optarg, 0, 2147483647L, &lv)) return 1;
            tp.seed = (uint64_t)lv;
            break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &lv)) return 1; tp.threads = (int)lv; break;
        case O_DATA: data = optarg; break;
        case O_CLASSES: classes = optarg; break;
        case O_OUT: out = optarg; break;
        case O_NAME:
            if (!*optarg || strchr(optarg, '/') || strcmp(optarg, ".") == 0 || strcmp(optarg, "..") == 0) {
                return cli_error(cmd, "--name must be a plain folder name (no '/'), got \"%s\"", optarg);
            }
            name = optarg;
            break;
        case O_NOTEST: no_test = 1; break;
        case O_QUIET: quiet = 1; break;
        case O_JSON: json = 1; quiet = 1; break;
        case O_WD:
            if (!cli_float(cmd, "--weight-decay", optarg, 0, 1, &dv)) return 1;
            tp.weight_decay = (float)dv, wd_given = 1;
            break;
        case O_SCHED:
            if ((i = name_index(SCHEDULES, 4, optarg)) < 0) {
                return cli_error(cmd, "--schedule must be constant, step, cosine or onecycle, got \"%s\"", optarg);
            }
            tp.schedule = (fm_schedule)i;
            break;
        case O_WARMUP: if (!cli_float(cmd, "--warmup", optarg, 0, 100000, &dv)) return 1; tp.warmup = (float)dv; break;
        case O_STEP_EPOCHS: if (!cli_int(cmd, "--step-epochs", optarg, 1, 100000, &lv)) return 1; tp.step_epochs = (int)lv; break;
        case O_STEP_GAMMA:
            if (!cli_float_positive(cmd, "--step-gamma", optarg, 1, &dv)) return 1;
            tp.step_gamma = (float)dv;
            break;
        case O_SMOOTH:
            if (!cli_float(cmd, "--label-smoothing", optarg, 0, 0.999999, &dv)) return 1;
            tp.label_smoothing = (float)dv;
            break;
        case O_AUGMENT:
            if (fm_augment_parse(optarg, &tp.augment, &err)) return cli_error(cmd, "--augment: %s", err.msg);
            break;
        case O_TTA: tta = 1; break;
        case O_NO_TTA: tta = 0; break;
        case O_MONITOR:
            if (strcmp(optarg, "val_accuracy") == 0) tp.monitor = FM_MONITOR_VAL_ACCURACY;
            else if (strcmp(optarg, "val_loss") == 0) tp.monitor = FM_MONITOR_VAL_LOSS;
            else return cli_error(cmd, "--monitor must be val_accuracy or val_loss, got \"%s\"", optarg);
            break;
        case O_PATIENCE: if (!cli_int(cmd, "--patience", optarg, 0, 100000, &lv)) return 1; tp.patience = (int)lv; break;
        case O_RLR_PATIENCE:
            if (!cli_int(cmd, "--reduce-lr-patience", optarg, 0, 100000, &lv)) return 1;
            tp.reduce_lr_patience = (int)lv;
            break;
        case O_RLR_FACTOR:
            if (!cli_float(cmd, "--reduce-lr-factor", optarg, 0, 1, &dv)) return 1;
            if (dv <= 0 || dv >= 1) return cli_error(cmd, "--reduce-lr-factor must be between 0 and 1, got \"%s\"", optarg);
            tp.reduce_lr_factor = (float)dv;
            break;
        case O_MIN_LR: if (!cli_float(cmd, "--min-lr", optarg, 0, 10, &dv)) return 1; tp.min_lr = (float)dv; break;
        case O_NOREPORT: no_report = 1; break;
        case O_SWA: if (!cli_int(cmd, "--swa", optarg, 0, 100000, &lv)) return 1; tp.swa = (int)lv; break;
        case O_SWA_LR:
            if (!cli_float_positive(cmd, "--swa-lr", optarg, 10, &dv)) return 1;
            tp.swa_lr = (float)dv;
            break;
        case O_PRECISION:
            if ((i = name_index(PRECISIONS, 2, optarg)) < 0) {
                return cli_error(cmd, "--precision must be float32 or bf16, got \"%s\"", optarg);
            }
            tp.precision = (fm_precision)i;
            break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (out && name) return cli_error(cmd, "give --out or --name, not both");
    if (optind < argc) return cli_error(cmd, "unexpected argument \"%s\" (see fmnist train --help)", argv[optind]);
    if (tp.nesterov && tp.momentum == 0.0f) return cli_error(cmd, "--nesterov needs --momentum above 0");
    if (tp.nesterov && tp.optimizer != FM_OPT_SGD) return cli_error(cmd, "--nesterov applies to --optimizer sgd only");
    /* PyTorch's AdamW default, unless a flag or the preset chose one. */
    if (tp.optimizer == FM_OPT_ADAMW && !wd_given && tp.weight_decay == 0.0f) tp.weight_decay = 0.01f;
    if (tp.weight_decay > 0 && tp.optimizer == FM_OPT_ADAM) {
        return cli_error(cmd, "--weight-decay is decoupled: use it with --optimizer adamw or sgd (or --l2 for adam)");
    }
    if ((tp.patience || tp.reduce_lr_patience) && tp.val == 0) {
        return cli_error(cmd, "--patience and --reduce-lr-patience watch the validation split: give --val above 0");
    }
    if (tp.swa > tp.epochs) return cli_error(cmd, "--swa %d averages more epochs than --epochs %d", tp.swa, tp.epochs);
    if (tp.swa && tp.patience) {
        return cli_error(cmd, "--swa and --patience exclude each other: one keeps the mean of the "
                         "last epochs' weights, the other one epoch's");
    }
    if (tp.swa_lr > 0 && !tp.swa) return cli_error(cmd, "--swa-lr needs --swa N (the epochs to average)");
    if (tp.warmup >= (float)tp.epochs) {
        return cli_error(cmd, "--warmup %g must be below --epochs %d", (double)tp.warmup, tp.epochs);
    }
    if (fm_classes_parse(classes, &mp.classes, &err)) return cli_error(cmd, "--classes: %s", err.msg);
    mp.seed = tp.seed;

    /* Check the model spec before spending seconds loading data (without building it). */
    if (fm_spec_check(spec, 28, 28, mp.classes.n, NULL, &err)) return cli_error(cmd, "--model: %s", err.msg);
    memset(o, 0, sizeof *o);
    o->tp = tp, o->mp = mp;
    o->spec = spec, o->data = data, o->out = out, o->name = name, o->classes = classes;
    o->no_test = no_test, o->no_report = no_report, o->quiet = quiet, o->json = json, o->tta = tta;
    return 0;
}

int train_run(const char *cmd, const train_options *o, const fm_dataset *given_train,
              const fm_dataset *given_test, const char *given_dir) {
    fm_train_params tp = o->tp;
    fm_model_params mp = o->mp;
    const char *spec = o->spec, *out = o->out, *name = o->name;
    const int no_test = o->no_test, quiet = o->quiet, json = o->json, tta = o->tta;
    fm_error err = {0};
    fm_model *model = NULL;
    char dir[FM_PATH_MAX];
    fm_dataset loaded_train = {0}, loaded_test = {0};
    const fm_dataset *test_set = given_test;
    if (given_train) {
        snprintf(dir, sizeof dir, "%s", given_dir);
    } else if (!cli_load_split(cmd, o->data, FM_SPLIT_TRAIN, mp.classes.n, &loaded_train, dir, sizeof dir)) {
        return 1;
    }
    const fm_dataset train = given_train ? *given_train : loaded_train; /* a view */
    if (tp.val >= train.n) {
        fm_dataset_free(&loaded_train);
        return cli_error(cmd, "--val %u leaves no training images (the training set has %u)", tp.val, train.n);
    }
    int rc = 1;
    fm_history hist = {0};
    char *note = NULL;
    /* A test set that cannot be used should stop the run before the training, not after it. */
    if (!no_test && !test_set) {
        if (!cli_load_split(cmd, dir, FM_SPLIT_TEST, mp.classes.n, &loaded_test, NULL, 0)) goto cleanup;
        test_set = &loaded_test;
    }
    if (!no_test && (test_set->h != train.h || test_set->w != train.w)) {
        cli_error(cmd, "the test set in %s has %ux%u images but the training set %ux%u", dir,
                  test_set->h, test_set->w, train.h, train.w);
        goto cleanup;
    }
    char outdir[FM_PATH_MAX], path[FM_PATH_MAX + 32];
    if (out) {
        snprintf(outdir, sizeof outdir, "%s", out);
    } else if (name) {
        snprintf(outdir, sizeof outdir, "runs/%s", name);
    } else {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        snprintf(outdir, sizeof outdir, "runs/%s", stamp);
    }
    if (cli_mkdirs(cmd, outdir)) goto cleanup;
    if (o->ck) {
        if (fm_checkpoint_model(o->ck, &model, &err)) {
            cli_error(cmd, "--resume: %s", err.msg);
            goto cleanup;
        }
        tp.resume = o->ck;
    } else if (fm_model_create(spec, train.h, train.w, &mp, &model, &err)) {
        cli_error(cmd, "--model: %s", err.msg);
        goto cleanup;
    } else {
        fm_model_set_tta(model, tta);
    }
    char ck_path[FM_PATH_MAX + 32];
    snprintf(ck_path, sizeof ck_path, "%s/checkpoint.fmck", outdir);
    note = train_checkpoint_note(o, dir);
    if (!note) {
        cli_error(cmd, "out of memory");
        goto cleanup;
    }
    tp.checkpoint = ck_path;
    tp.checkpoint_note = note;
    tp.stop = &stop_signal;
    progress pr = {isatty(STDOUT_FILENO), quiet, 0, 0, 0, NULL, NULL, {0}, 0};
    tp.on_batch = on_batch;
    tp.on_epoch = on_epoch;
    tp.user = &pr;
    int threads = fm_threads_resolve(tp.threads);
    float lr = fm_train_lr(&tp);
    pr.show_lr = tp.schedule != FM_SCHED_CONSTANT || tp.warmup > 0 || tp.reduce_lr_patience > 0 || tp.swa_lr > 0;
    char best_path[FM_PATH_MAX + 32];
    snprintf(best_path, sizeof best_path, "%s/best.safetensors", outdir);
    pr.model = model;
    pr.best_path = tp.val > 0 ? best_path : NULL;
    char regtext[384];
    if (!quiet) {
        printf("Data: %s (%u training images of %ux%u; %u held out for validation)\n", dir,
               train.n - tp.val, train.h, train.w, tp.val);
        printf("Model: %s (%s), %zu parameters\n", spec, fm_model_spec(model), fm_model_param_count(model));
        printf("Training: %s, batch %d, %d epochs, seed %llu, %d thread%s -> %s\n",
               train_settings_text(&tp, tta, regtext, sizeof regtext), tp.batch, tp.epochs, (unsigned long long)tp.seed, threads,
               threads == 1 ? "" : "s", outdir);
        if (!fm_precision_fast(tp.precision)) {
            printf("Note: this CPU has no AVX-512 BF16, so the %s products run in plain code, "
                   "slower than float32\n", train_precision_name(tp.precision));
        }
        if (o->ck) {
            int done, bdone, nb;
            fm_checkpoint_position(o->ck, &done, &bdone, &nb, NULL);
            if (bdone) printf("Resuming %s at epoch %d, batch %d of %d\n", ck_path, done + 1, bdone + 1, nb);
            else printf("Resuming %s after epoch %d\n", ck_path, done);
        }
        fflush(stdout);
    }
    /* Ctrl-C and SIGTERM stop at the next batch boundary with a checkpoint (see stop_signal).
     * A signal that arrived ignored stays ignored, as a shell wants for `fmnist train &` in a
     * script (its background jobs ignore SIGINT) and nohup-style launchers want. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    if (old_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    if (old_term.sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
    double t0 = fm_now_seconds();
    fm_status st = fm_fit(model, &train, &tp, &hist, &err);
    double train_seconds = fm_now_seconds() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st) {
        if (pr.tty && !quiet) printf("\n");
        if (st == FM_ERR_CANCELLED && stop_signal && !pr.save_failed) {
            if (o->run_key) {
                cli_error(cmd, "interrupted by %s: %s; the same fmnist experiment command resumes it",
                          stop_signal == SIGINT ? "SIGINT" : "SIGTERM", err.msg);
            } else {
                cli_error(cmd, "interrupted by %s: %s; resume with: fmnist train --resume %s",
                          stop_signal == SIGINT ? "SIGINT" : "SIGTERM", err.msg, outdir);
            }
            rc = 128 + stop_signal;
            goto cleanup;
        }
        cli_fail(cmd, pr.save_failed ? &pr.save_err : &err);
        goto cleanup;
    }
    const char *monitor = tp.monitor == FM_MONITOR_VAL_LOSS ? "val_loss" : "val_accuracy";
    if (!quiet && hist.stopped_early) {
        printf("Early stopping after epoch %d: no better %s for %d epochs\n", hist.n, monitor, tp.patience);
    }
    if (!quiet && hist.restored_best) {
        const fm_epoch_stats *b = &hist.epochs[hist.best_epoch - 1];
        printf("Restored the weights of epoch %d (val_loss: %.4f - val_accuracy: %.4f)\n", hist.best_epoch,
               b->val_loss, b->val_accuracy);
    }
    if (!quiet && hist.swa_first) {
        printf("Averaged the weights of epochs %d-%d and recomputed batch norm's statistics", hist.swa_first, hist.n);
        if (!isnan(hist.swa_val_loss)) {
            const fm_epoch_stats *l = &hist.epochs[hist.n - 1];
            printf(": val_loss: %.4f - val_accuracy: %.4f (epoch %d's own: %.4f - %.4f)", hist.swa_val_loss,
                   hist.swa_val_accuracy, hist.n, l->val_loss, l->val_accuracy);
        }
        printf("\n");
    }
    const int hist_n = hist.n, best_epoch = hist.best_epoch;
    const int stopped_early = hist.stopped_early, restored_best = hist.restored_best;
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    if (fm_model_save(model, path, &err)) {
        cli_fail(cmd, &err);
        goto cleanup;
    }
    char *csv = history_csv(&hist);
    snprintf(path, sizeof path, "%s/history.csv", outdir);
    int wrc = csv ? cli_write_file(cmd, path, csv) : cli_error(cmd, "out of memory");
    free(csv);
    cJSON *hj = history_json(&hist);
    snprintf(path, sizeof path, "%s/history.json", outdir);
    if (!wrc) wrc = write_json(cmd, path, hj);
    cJSON_Delete(hj);
    if (wrc) goto cleanup;

    cJSON *run = cJSON_CreateObject();
    cJSON_AddStringToObject(run, "model", spec);
    cJSON_AddStringToObject(run, "spec", fm_model_spec(model));
    cJSON_AddNumberToObject(run, "params", (double)fm_model_param_count(model));
    cJSON_AddStringToObject(run, "optimizer", train_optimizer_name(tp.optimizer));
    json_setting(run, "lr", lr);
    json_setting(run, "momentum", tp.momentum);
    cJSON_AddBoolToObject(run, "nesterov", tp.nesterov);
    json_setting(run, "l2", tp.l2);
    json_setting(run, "weight_decay", tp.weight_decay);
    cJSON_AddStringToObject(run, "schedule", train_schedule_name(tp.schedule));
    json_setting(run, "warmup", tp.warmup);
    if (tp.schedule == FM_SCHED_STEP) {
        cJSON_AddNumberToObject(run, "step_epochs", tp.step_epochs);
        json_setting(run, "step_gamma", tp.step_gamma);
    }
    json_setting(run, "label_smoothing", tp.label_smoothing);
    char augtext[128];
    fm_augment_format(&tp.augment, augtext, sizeof augtext);
    cJSON_AddStringToObject(run, "augment", augtext);
    cJSON_AddStringToObject(run, "tta", tta ? "flip" : "none");
    cJSON_AddStringToObject(run, "monitor", monitor);
    cJSON_AddNumberToObject(run, "patience", tp.patience);
    cJSON_AddNumberToObject(run, "reduce_lr_patience", tp.reduce_lr_patience);
    if (tp.reduce_lr_patience) {
        json_setting(run, "reduce_lr_factor", tp.reduce_lr_factor);
        json_setting(run, "min_lr", tp.min_lr);
    }
    cJSON_AddStringToObject(run, "precision", train_precision_name(tp.precision));
    cJSON_AddNumberToObject(run, "swa", tp.swa);
    if (tp.swa) {
        json_setting(run, "swa_lr", tp.swa_lr);
        cJSON_AddNumberToObject(run, "swa_first_epoch", hist.swa_first);
        if (!isnan(hist.swa_val_loss)) {
            cJSON_AddNumberToObject(run, "swa_val_loss", hist.swa_val_loss);
            cJSON_AddNumberToObject(run, "swa_val_accuracy", hist.swa_val_accuracy);
        }
    }
    cJSON_AddNumberToObject(run, "epochs_run", hist_n);
    if (best_epoch) cJSON_AddNumberToObject(run, "best_epoch", best_epoch);
    cJSON_AddBoolToObject(run, "stopped_early", stopped_early);
    cJSON_AddBoolToObject(run, "restored_best", restored_best);
    cJSON_AddNumberToObject(run, "batch", tp.batch);
    cJSON_AddNumberToObject(run, "epochs", tp.epochs);
    cJSON_AddNumberToObject(run, "seed", (double)tp.seed);
    cJSON_AddNumberToObject(run, "threads", threads);
    cJSON_AddNumberToObject(run, "val", tp.val);
    cJSON_AddStringToObject(run, "init", mp.init == FM_INIT_HE_UNIFORM ? "he" : "glorot");
    cJSON_AddStringToObject(run, "scale", fm_model_scaling(model).kind == FM_SCALE_STANDARD ? "standard" : "unit");
    cJSON_AddStringToObject(run, "data", dir);
    if (o->ck) {
        /* A resumed run's training time is its epochs' times, the ones before the interruption
         * included (their seconds come back from the checkpoint's history, and a broken epoch
         * counts the part before the stop); this session's own time is reported beside it. */
        double sum = 0.0;
        for (int e = 0; e < hist.n; e++) sum += hist.epochs[e].seconds;
        cJSON_AddBoolToObject(run, "resumed", 1);
        cJSON_AddNumberToObject(run, "seconds_since_resume", train_seconds);
        if (sum > train_seconds) train_seconds = sum;
    }
    cJSON_AddNumberToObject(run, "train_seconds", train_seconds);
    if (!no_test) {
        fm_eval_result ev;
        if (fm_evaluate(model, test_set, 1000, tp.threads, &ev, &err)) {
            cJSON_Delete(run);
            cli_fail(cmd, &err);
            goto cleanup;
        }
        cJSON *t = cJSON_AddObjectToObject(run, "test");
        cJSON_AddNumberToObject(t, "loss", ev.loss);
        cJSON_AddNumberToObject(t, "accuracy", ev.accuracy);
        cJSON_AddNumberToObject(t, "n", ev.n);
        if (!quiet) printf("Test: loss: %.4f - accuracy: %.4f (%u images)\n", ev.loss, ev.accuracy, ev.n);
    }
    snprintf(path, sizeof path, "%s/run.json", outdir);
    wrc = write_json(cmd, path, run);
    if (!wrc && !o->no_report) {
        wrc = cli_report(cmd, outdir, model, no_test ? NULL : test_set, &hist, run, tp.threads);
    }
    if (!wrc && json) {
        char *text = cJSON_PrintUnformatted(run);
        if (text) printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(run);
    if (wrc) goto cleanup;
    if (!quiet) {
        printf("Saved %s/model.safetensors (%shistory.csv, history.json, run.json) in %.1fs\n", outdir,
               best_epoch ? "best.safetensors, " : "", train_seconds);
        if (!o->no_report) printf("Report: %s/report.html (pictures: curves.png%s)\n", outdir,
                                  no_test ? "" : ", confusion.png, predictions.png, mistakes.png");
        printf("Next: fmnist evaluate %s/model.safetensors; fmnist predict %s/model.safetensors --index 0\n", outdir, outdir);
    }
    rc = 0;
cleanup:
    free(note);
    fm_history_free(&hist);
    fm_model_free(model);
    fm_dataset_free(&loaded_train);
    fm_dataset_free(&loaded_test);
    return rc;
}

int cmd_train(int argc, char **argv) {
    train_options o;
    int resume = 0, help_asked = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--resume") == 0 || strncmp(argv[i], "--resume=", 9) == 0) resume = 1;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) help_asked = 1;
    }
    int rc = resume && !help_asked ? train_resume_parse("train", argc, argv, &o) : train_parse("train", argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    rc = train_run("train", &o, NULL, NULL, NULL);
    fm_checkpoint_free(o.ck);
    return rc;
}
