/* report.c — `fmnist report RUN_DIR`: redraws a saved run's pictures and report.html from its
 * model, history.json and run.json; and the helpers train and experiment share to write a report
 * and to read a run folder back. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON_FILE (64u << 20)

static void help(void) {
    printf("usage: fmnist report RUN_DIR [options]\n"
           "\n"
           "Redraws a run folder's pictures and report.html from its model.safetensors,\n"
           "history.json and run.json (what `fmnist train` writes unless --no-report).\n"
           "\n"
           "  --data DIR     folder with the IDX files   [the run's own, else the usual places]\n"
           "  --threads N    0 = all cores               [0]\n"
           "  --quiet        print nothing on success\n"
           "\n"
           "Writes RUN_DIR/report.html, curves.png, confusion.png, predictions.png, mistakes.png,\n"
           "confusion.csv, predictions.csv, predictions-grid.csv and mistakes-grid.csv.\n");
}

struct cJSON *cli_load_json(const char *cmd, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error(cmd, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Grown as the bytes arrive (not MAX_JSON_FILE up front: history files are a few KiB), so
     * a device or a huge file stops at the limit without reserving it first. */
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    while (text && !ferror(f) && !feof(f) && n <= MAX_JSON_FILE) {
        if (n == cap) {
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                free(text), text = NULL;
                break;
            }
            text = grown, cap *= 2;
        }
        n += fread(text + n, 1, cap - n, f);
    }
    int bad = ferror(f);
    fclose(f);
    if (!text || bad || n > MAX_JSON_FILE) {
        free(text);
        cli_error(cmd, "%s: %s", path, !text ? "out of memory" : bad ? "read failed" : "larger than 64 MiB");
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        cli_error(cmd, "%s: not a JSON object", path);
        return NULL;
    }
    return o;
}

/* A numeric array of history.json, or NULL when absent (optional) or malformed (error printed). */
static const cJSON *history_array(const char *cmd, const char *path, const cJSON *o, const char *key,
                                  int optional, int *n, int *bad) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!a && optional) return NULL;
    if (!cJSON_IsArray(a)) {
        cli_error(cmd, "%s: \"%s\" is missing or not a list", path, key);
        *bad = 1;
        return NULL;
    }
    int len = cJSON_GetArraySize(a);
    if (*n >= 0 && len != *n) {
        cli_error(cmd, "%s: \"%s\" has %d entries, expected %d", path, key, len, *n);
        *bad = 1;
        return NULL;
    }
    *n = len;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v)) {
            cli_error(cmd, "%s: \"%s\" holds something other than numbers", path, key);
            *bad = 1;
            return NULL;
        }
    }
    return a;
}

int cli_load_history(const char *cmd, const char *path, fm_history *out) {
    memset(out, 0, sizeof *out);
    cJSON *o = cli_load_json(cmd, path);
    if (!o) return 1;
    int n = -1, bad = 0;
    const cJSON *loss = history_array(cmd, path, o, "loss", 0, &n, &bad);
    const cJSON *acc = bad ? NULL : history_array(cmd, path, o, "accuracy", 0, &n, &bad);
    const cJSON *vloss = bad ? NULL : history_array(cmd, path, o, "val_loss", 1, &n, &bad);
    const cJSON *vacc = bad ? NULL : history_array(cmd, path, o, "val_accuracy", 1, &n, &bad);
    const cJSON *secs = bad ? NULL : history_array(cmd, path, o, "seconds", 1, &n, &bad);
    if (!bad && (!vloss) != (!vacc)) {
        cli_error(cmd, "%s: has one of \"val_loss\" and \"val_accuracy\" without the other", path);
        bad = 1;
    }
    if (!bad && n < 1) {
        cli_error(cmd, "%s: no epochs", path);
        bad = 1;
    }
    if (!bad && !(out->epochs = calloc((size_t)n, sizeof *out->epochs))) {
        cli_error(cmd, "out of memory");
        bad = 1;
    }
    for (int i = 0; !bad && i < n; i++) {
        fm_epoch_stats *e = &out->epochs[i];
        e->epoch = i + 1;
        e->epochs = n;
        e->loss = cJSON_GetArrayItem(loss, i)->valuedouble;
        e->accuracy = cJSON_GetArrayItem(acc, i)->valuedouble;
        e->val_loss = vloss ? cJSON_GetArrayItem(vloss, i)->valuedouble : NAN;
        e->val_accuracy = vacc ? cJSON_GetArrayItem(vacc, i)->valuedouble : NAN;
        e->seconds = secs ? cJSON_GetArrayItem(secs, i)->valuedouble : 0.0;
    }
    cJSON_Delete(o);
    if (bad) {
        fm_history_free(out);
        return 1;
    }
    out->n = n;
    return 0;
}

int cli_report(const char *cmd, const char *dir, fm_model *m, const fm_dataset *test,
               const fm_history *hist, const struct cJSON *run, int threads) {
    /* Settings: run.json's top-level values in file order (the test figures have their own
     * place on the page). */
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, run) n++;
    fm_setting *settings = calloc((size_t)(n ? n : 1), sizeof *settings);
    char (*values)[FM_PATH_MAX] = calloc((size_t)(n ? n : 1), sizeof *values);
    if (!settings || !values) {
        free(settings), free(values);
        return cli_error(cmd, "out of memory");
    }
    int k = 0;
    cJSON_ArrayForEach(item, run) {
        if (!item->string) continue;
        if (cJSON_IsString(item)) snprintf(values[k], FM_PATH_MAX, "%s", item->valuestring);
        else if (cJSON_IsBool(item)) snprintf(values[k], FM_PATH_MAX, "%s", cJSON_IsTrue(item) ? "yes" : "no");
        else if (cJSON_IsNumber(item) && item->valuedouble == floor(item->valuedouble) && fabs(item->valuedouble) < 1e15)
            snprintf(values[k], FM_PATH_MAX, "%.0f", item->valuedouble);
        else if (cJSON_IsNumber(item)) snprintf(values[k], FM_PATH_MAX, "%.6g", item->valuedouble);
        else continue;
        settings[k].name = item->string;
        settings[k].value = values[k];
        k++;
    }
    fm_report_params p = fm_report_default_params();
    p.title = dir;
    p.settings = settings;
    p.n_settings = k;
    p.history = hist;
    p.test = test;
    p.threads = threads;
    fm_error err = {0};
    int rc = fm_report_write(dir, m, &p, NULL, &err) ? cli_fail(cmd, &err) : 0;
    free(settings);
    free(values);
    return rc;
}

int report_parse(const char *cmd, int argc, char **argv, report_options *o) {
    enum { O_DATA = 256, O_THREADS, O_QUIET };
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"data", required_argument, 0, O_DATA},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"quiet", no_argument, 0, O_QUIET}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int c;
    long lv;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_DATA: o->data = optarg; break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &lv)) return 1; o->threads = (int)lv; break;
        case O_QUIET: o->quiet = 1; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind != argc - 1) return cli_error(cmd, "expected one RUN_DIR (see fmnist report --help)");
    o->dir = argv[optind];
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    report_options o;
    int prc = report_parse(cmd, argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    const char *data = o.data, *dir = o.dir;
    const int threads = o.threads, quiet = o.quiet;
    struct stat st;
    if (stat(dir, &st) != 0) return cli_error(cmd, "%s: no such run folder", dir);
    if (!S_ISDIR(st.st_mode)) return cli_error(cmd, "%s: not a folder (give the run folder that holds model.safetensors)", dir);
    char path[FM_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (stat(path, &st) != 0) {
        return cli_error(cmd, "%s: no run.json: not a finished run folder (train writes it after the model)", dir);
    }
    fm_error err = {0};
    fm_model *m = NULL;
    fm_history hist = {0};
    fm_dataset test = {0};
    cJSON *run = cli_load_json(cmd, path);
    if (!run) return 1;
    int rc = 1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (fm_model_load(path, &m, &err)) {
        cli_fail(cmd, &err);
        goto done;
    }
    snprintf(path, sizeof path, "%s/history.json", dir);
    if (cli_load_history(cmd, path, &hist)) goto done;
    int tested = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(run, "test"));
    if (tested) {
        /* The run's own data folder when it is still there, else --data or the usual places. */
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(run, "data");
        if (!data && cJSON_IsString(d) && stat(d->valuestring, &st) == 0 && S_ISDIR(st.st_mode)) data = d->valuestring;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!cli_load_split_for(cmd, data, FM_SPLIT_TEST, m, path, &test)) goto done;
    }
    if (cli_report(cmd, dir, m, tested ? &test : NULL, &hist, run, threads)) goto done;
    if (!quiet) {
        printf("Wrote %s/report.html (pictures: curves.png%s)\n", dir,
               tested ? ", confusion.png, predictions.png, mistakes.png" : "");
    }
    rc = 0;
done:
    cJSON_Delete(run);
    fm_history_free(&hist);
    fm_dataset_free(&test);
    fm_model_free(m);
    return rc;
}
