/* train.c — `fmnist train`: parse flags, load data, build the model, fit with a progress bar or
 * plain per-epoch lines, then save the model, history and settings, report test figures and
 * write the run's pictures and report.html. `fmnist experiment` runs its configurations through
 * the same train_parse and train_run. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
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
           "  --model SPEC       preset (mlp, mlp64, mlp256, mlp2, mlp300-100) or layers, e.g.\n"
           "                     \"dense:128:relu,dense:10\"                       [mlp]\n"
           "  --epochs N         passes over the training set                  [10]\n"
           "  --batch N          images per step                                [32]\n"
           "  --optimizer NAME   adam or sgd                                    [adam]\n"
           "  --lr X             learning rate                  [adam 0.001, sgd 0.01]\n"
           "  --momentum X       SGD momentum                                   [0]\n"
           "  --nesterov         Nesterov momentum (SGD)\n"
           "  --beta1 X --beta2 X --eps X   Adam settings        [0.9, 0.999, 1e-7]\n"
           "  --l2 X             add X * sum(w^2) over weight matrices to the loss [0]\n"
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
           "  --quiet            print only the final lines\n"
           "  --json             print the final figures as one JSON object\n"
           "  --no-report        skip the pictures and report.html\n"
           "\n"
           "Writes DIR/model.safetensors, DIR/history.csv, DIR/history.json, DIR/run.json, and\n"
           "the report: DIR/report.html (one self-contained page), curves.png, confusion.png,\n"
           "predictions.png, mistakes.png and the CSV files they were drawn from.\n"
           "The same seed, machine and thread count give bit-identical results.\n");
}

typedef struct {
    int tty, quiet;
    double epoch_start, last_draw;
} progress;

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
    if (pr->quiet) return 0;
    if (pr->tty) printf("\r\033[K");
    printf("Epoch %d/%d - %.1fs - loss: %.4f - accuracy: %.4f", st->epoch, st->epochs, st->seconds,
           st->loss, st->accuracy);
    if (!isnan(st->val_loss)) printf(" - val_loss: %.4f - val_accuracy: %.4f", st->val_loss, st->val_accuracy);
    printf("\n");
    fflush(stdout);
    return 0;
}

static char *history_csv(const fm_history *h) {
    size_t cap = 128 + (size_t)h->n * 160;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t len = (size_t)snprintf(buf, cap, "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
    for (int i = 0; i < h->n; i++) {
        const fm_epoch_stats *e = &h->epochs[i];
        if (isnan(e->val_loss)) {
            len += (size_t)snprintf(buf + len, cap - len, "%d,%.9g,%.9g,,,%.3f\n", e->epoch, e->loss, e->accuracy, e->seconds);
        } else {
            len += (size_t)snprintf(buf + len, cap - len, "%d,%.9g,%.9g,%.9g,%.9g,%.3f\n", e->epoch, e->loss,
                                    e->accuracy, e->val_loss, e->val_accuracy, e->seconds);
        }
    }
    return buf;
}

/* Keras's History.history: one list per metric. */
static cJSON *history_json(const fm_history *h) {
    cJSON *o = cJSON_CreateObject();
    const char *keys[] = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"};
    int has_val = h->n > 0 && !isnan(h->epochs[0].val_loss);
    for (int k = 0; k < 6; k++) {
        if (!has_val && (k == 3 || k == 4)) continue;
        cJSON *arr = cJSON_AddArrayToObject(o, keys[k]);
        for (int i = 0; i < h->n; i++) {
            const fm_epoch_stats *e = &h->epochs[i];
            double v[] = {e->epoch, e->loss, e->accuracy, e->val_loss, e->val_accuracy, e->seconds};
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[k]));
        }
    }
    return o;
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
           O_NOREPORT };
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
        {"json", no_argument, 0, O_JSON},           {"no-report", no_argument, 0, O_NOREPORT},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->tp = fm_train_default_params();
    o->mp = fm_model_default_params();
    o->spec = "mlp";
    o->classes = "fashion";
    int c;
    long lv;
    double dv;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_MODEL: o->spec = optarg; break;
        case O_EPOCHS: if (!cli_int(cmd, "--epochs", optarg, 1, 100000, &lv)) return 1; o->tp.epochs = (int)lv; break;
        case O_BATCH: if (!cli_int(cmd, "--batch", optarg, 1, 65536, &lv)) return 1; o->tp.batch = (int)lv; break;
        case O_OPT:
            if (strcmp(optarg, "adam") == 0) o->tp.optimizer = FM_OPT_ADAM;
            else if (strcmp(optarg, "sgd") == 0) o->tp.optimizer = FM_OPT_SGD;
            else return cli_error(cmd, "--optimizer must be adam or sgd, got \"%s\"", optarg);
            break;
        case O_LR:
            if (!cli_float(cmd, "--lr", optarg, 0, 10, &dv)) return 1;
            if (dv <= 0) return cli_error(cmd, "--lr must be above 0, got \"%s\"", optarg);
            o->tp.lr = (float)dv;
            break;
        case O_MOM: if (!cli_float(cmd, "--momentum", optarg, 0, 0.999999, &dv)) return 1; o->tp.momentum = (float)dv; break;
        case O_NEST: o->tp.nesterov = 1; break;
        case O_B1: if (!cli_float(cmd, "--beta1", optarg, 0, 0.999999, &dv)) return 1; o->tp.beta1 = (float)dv; break;
        case O_B2: if (!cli_float(cmd, "--beta2", optarg, 0, 0.999999, &dv)) return 1; o->tp.beta2 = (float)dv; break;
        case O_EPS:
            if (!cli_float(cmd, "--eps", optarg, 0, 1, &dv)) return 1;
            if (dv <= 0) return cli_error(cmd, "--eps must be above 0, got \"%s\"", optarg);
            o->tp.eps = (float)dv;
            break;
        case O_L2: if (!cli_float(cmd, "--l2", optarg, 0, 1, &dv)) return 1; o->tp.l2 = (float)dv; break;
        case O_INIT:
            if (strcmp(optarg, "glorot") == 0) o->mp.init = FM_INIT_GLOROT_UNIFORM;
            else if (strcmp(optarg, "he") == 0) o->mp.init = FM_INIT_HE_UNIFORM;
            else return cli_error(cmd, "--init must be glorot or he, got \"%s\"", optarg);
            break;
        case O_SCALE:
            if (strcmp(optarg, "unit") == 0) o->mp.scaling.kind = FM_SCALE_UNIT;
            else if (strcmp(optarg, "standard") == 0) o->mp.scaling.kind = FM_SCALE_STANDARD;
            else return cli_error(cmd, "--scale must be unit or standard, got \"%s\"", optarg);
            break;
        case O_VAL: if (!cli_int(cmd, "--val", optarg, 0, 10000000, &lv)) return 1; o->tp.val = (uint32_t)lv; break;
        case O_SEED:
            if (!cli_int(cmd, "--seed", optarg, 0, 2147483647L, &lv)) return 1;
            o->tp.seed = (uint64_t)lv;
            break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &lv)) return 1; o->tp.threads = (int)lv; break;
        case O_DATA: o->data = optarg; break;
        case O_CLASSES: o->classes = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_NAME:
            if (!*optarg || strchr(optarg, '/') || strcmp(optarg, ".") == 0 || strcmp(optarg, "..") == 0) {
                return cli_error(cmd, "--name must be a plain folder name (no '/'), got \"%s\"", optarg);
            }
            o->name = optarg;
            break;
        case O_NOTEST: o->no_test = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_JSON: o->json = 1; o->quiet = 1; break;
        case O_NOREPORT: o->no_report = 1; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (o->out && o->name) return cli_error(cmd, "give --out or --name, not both");
    if (optind < argc) return cli_error(cmd, "unexpected argument \"%s\" (see fmnist train --help)", argv[optind]);
    if (o->tp.nesterov && o->tp.momentum == 0.0f) return cli_error(cmd, "--nesterov needs --momentum above 0");
    if (o->tp.nesterov && o->tp.optimizer != FM_OPT_SGD) return cli_error(cmd, "--nesterov applies to --optimizer sgd only");
    fm_error err = {0};
    if (fm_classes_parse(o->classes, &o->mp.classes, &err)) return cli_error(cmd, "--classes: %s", err.msg);
    o->mp.seed = o->tp.seed;

    /* Check the model spec before spending seconds loading data. */
    fm_model *model = NULL;
    if (fm_model_create(o->spec, 28, 28, &o->mp, &model, &err)) return cli_error(cmd, "--model: %s", err.msg);
    fm_model_free(model);
    return 0;
}

int train_run(const char *cmd, const train_options *o, const fm_dataset *given_train,
              const fm_dataset *given_test, const char *given_dir) {
    fm_train_params tp = o->tp;
    fm_model_params mp = o->mp;
    const char *spec = o->spec;
    int quiet = o->quiet, no_test = o->no_test;
    fm_error err = {0};
    fm_model *model = NULL;
    char dir[FM_PATH_MAX];
    fm_dataset loaded_train = {0}, loaded_test = {0};
    const fm_dataset *train_set = given_train, *test_set = given_test;
    if (given_train) {
        snprintf(dir, sizeof dir, "%s", given_dir);
    } else {
        if (!cli_load_split(cmd, o->data, FM_SPLIT_TRAIN, mp.classes.n, &loaded_train, dir, sizeof dir)) return 1;
        train_set = &loaded_train;
    }
    fm_dataset train = *train_set; /* a view; only the loaded copy is freed */
    if (tp.val >= train.n) {
        fm_dataset_free(&loaded_train);
        return cli_error(cmd, "--val %u leaves no training images (the training set has %u)", tp.val, train.n);
    }
    int rc = 1;
    /* A test set that cannot be used should stop the run before the training, not after it. */
    if (!no_test && !given_test) {
        if (!cli_load_split(cmd, dir, FM_SPLIT_TEST, mp.classes.n, &loaded_test, NULL, 0)) goto cleanup;
        test_set = &loaded_test;
    }
    if (!no_test && (test_set->h != train.h || test_set->w != train.w)) {
        cli_error(cmd, "the test set in %s has %ux%u images but the training set %ux%u", dir,
                  test_set->h, test_set->w, train.h, train.w);
        goto cleanup;
    }
    char outdir[FM_PATH_MAX], path[FM_PATH_MAX + 32];
    if (o->out) {
        snprintf(outdir, sizeof outdir, "%s", o->out);
    } else if (o->name) {
        snprintf(outdir, sizeof outdir, "runs/%s", o->name);
    } else {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        snprintf(outdir, sizeof outdir, "runs/%s", stamp);
    }
    if (cli_mkdirs(cmd, outdir)) goto cleanup;
    if (fm_model_create(spec, train.h, train.w, &mp, &model, &err)) {
        cli_error(cmd, "--model: %s", err.msg);
        goto cleanup;
    }
    progress pr = {isatty(STDOUT_FILENO), quiet, 0, 0};
    tp.on_batch = on_batch;
    tp.on_epoch = on_epoch;
    tp.user = &pr;
    int threads = fm_threads_resolve(tp.threads);
    float lr = tp.lr > 0 ? tp.lr : (tp.optimizer == FM_OPT_ADAM ? 1e-3f : 1e-2f);
    if (!quiet) {
        printf("Data: %s (%u training images of %ux%u; %u held out for validation)\n", dir,
               train.n - tp.val, train.h, train.w, tp.val);
        printf("Model: %s (%s), %zu parameters\n", spec, fm_model_spec(model), fm_model_param_count(model));
        printf("Training: %s lr %g%s, batch %d, %d epochs, seed %llu, %d thread%s -> %s\n",
               tp.optimizer == FM_OPT_ADAM ? "adam" : "sgd", (double)lr,
               tp.optimizer == FM_OPT_SGD && tp.momentum > 0 ? (tp.nesterov ? " nesterov" : " momentum") : "",
               tp.batch, tp.epochs, (unsigned long long)tp.seed, threads, threads == 1 ? "" : "s", outdir);
        fflush(stdout);
    }
    fm_history hist = {0};
    double t0 = fm_now_seconds();
    fm_status st = fm_fit(model, &train, &tp, &hist, &err);
    double train_seconds = fm_now_seconds() - t0;
    if (st) {
        if (pr.tty && !quiet) printf("\n");
        cli_fail(cmd, &err);
        fm_history_free(&hist);
        goto cleanup;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    if (fm_model_save(model, path, &err)) {
        cli_fail(cmd, &err);
        fm_history_free(&hist);
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
    if (wrc) {
        fm_history_free(&hist);
        goto cleanup;
    }

    cJSON *run = cJSON_CreateObject();
    cJSON_AddStringToObject(run, "model", spec);
    cJSON_AddStringToObject(run, "spec", fm_model_spec(model));
    cJSON_AddNumberToObject(run, "params", (double)fm_model_param_count(model));
    cJSON_AddStringToObject(run, "optimizer", tp.optimizer == FM_OPT_ADAM ? "adam" : "sgd");
    cJSON_AddNumberToObject(run, "lr", lr);
    cJSON_AddNumberToObject(run, "momentum", tp.momentum);
    cJSON_AddBoolToObject(run, "nesterov", tp.nesterov);
    cJSON_AddNumberToObject(run, "l2", tp.l2);
    cJSON_AddNumberToObject(run, "batch", tp.batch);
    cJSON_AddNumberToObject(run, "epochs", tp.epochs);
    cJSON_AddNumberToObject(run, "seed", (double)tp.seed);
    cJSON_AddNumberToObject(run, "threads", threads);
    cJSON_AddNumberToObject(run, "val", tp.val);
    cJSON_AddStringToObject(run, "init", mp.init == FM_INIT_HE_UNIFORM ? "he" : "glorot");
    cJSON_AddStringToObject(run, "scale", fm_model_scaling(model).kind == FM_SCALE_STANDARD ? "standard" : "unit");
    cJSON_AddStringToObject(run, "data", dir);
    cJSON_AddNumberToObject(run, "train_seconds", train_seconds);
    if (!no_test) {
        fm_eval_result ev;
        if (fm_evaluate(model, test_set, 1000, tp.threads, &ev, &err)) {
            cJSON_Delete(run);
            fm_history_free(&hist);
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
    if (!wrc && o->json) {
        char *text = cJSON_PrintUnformatted(run);
        if (text) printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(run);
    fm_history_free(&hist);
    if (wrc) goto cleanup;
    if (!quiet) {
        printf("Saved %s/model.safetensors (history.csv, history.json, run.json) in %.1fs\n", outdir, train_seconds);
        if (!o->no_report) printf("Report: %s/report.html (pictures: curves.png%s)\n", outdir,
                                  no_test ? "" : ", confusion.png, predictions.png, mistakes.png");
        printf("Next: fmnist evaluate %s/model.safetensors; fmnist predict %s/model.safetensors --index 0\n", outdir, outdir);
    }
    rc = 0;
cleanup:
    fm_model_free(model);
    fm_dataset_free(&loaded_train);
    fm_dataset_free(&loaded_test);
    return rc;
}

int cmd_train(int argc, char **argv) {
    train_options o;
    int rc = train_parse("train", argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    return train_run("train", &o, NULL, NULL, NULL);
}
