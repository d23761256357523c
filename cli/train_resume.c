/* train_resume.c — `fmnist train --resume DIR`: reads DIR's checkpoint and turns it back into the
 * run's options, so train_run continues the run where it stopped. Settings come from the
 * checkpoint; only --epochs (to go further), --data (the same images, moved), --quiet and --json
 * may be given. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* The note train_run stores in each checkpoint: what the library does not keep about a run. */
char *train_checkpoint_note(const train_options *o, const char *data_dir) {
    cJSON *n = cJSON_CreateObject();
    if (!n) return NULL;
    cJSON_AddStringToObject(n, "model", o->spec);
    cJSON_AddStringToObject(n, "data", data_dir);
    cJSON_AddStringToObject(n, "init", o->mp.init == FM_INIT_HE_UNIFORM ? "he" : "glorot");
    cJSON_AddBoolToObject(n, "no_test", o->no_test);
    cJSON_AddBoolToObject(n, "no_report", o->no_report);
    if (o->run_key) cJSON_AddStringToObject(n, "experiment_key", o->run_key);
    char *text = cJSON_PrintUnformatted(n);
    cJSON_Delete(n);
    return text;
}

/* A string of the note, copied into the options' own storage. */
static const char *note_string(const cJSON *note, const char *key, char *buf, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(note, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return NULL;
    memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
    return buf;
}

int train_resume_parse(const char *cmd, int argc, char **argv, train_options *o) {
    enum { O_RESUME = 256, O_EPOCHS, O_DATA, O_QUIET, O_JSON };
    static const struct option opts[] = {
        {"resume", required_argument, 0, O_RESUME}, {"epochs", required_argument, 0, O_EPOCHS},
        {"data", required_argument, 0, O_DATA},     {"quiet", no_argument, 0, O_QUIET},
        {"json", no_argument, 0, O_JSON},           {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    const char *dir = NULL, *data = NULL;
    long epochs = 0, lv;
    int quiet = 0, json = 0, c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case O_RESUME: dir = optarg; break;
        case O_EPOCHS: if (!cli_int(cmd, "--epochs", optarg, 1, 100000, &lv)) return 1; epochs = lv; break;
        case O_DATA: data = optarg; break;
        case O_QUIET: quiet = 1; break;
        case O_JSON: json = 1, quiet = 1; break;
        case '?':
            /* A flag train knows but a resumed run may not change, or one nobody knows. */
            return cli_error(cmd, "--resume continues with the checkpoint's settings: only --epochs, "
                             "--data, --quiet and --json may go with it, not %s", argv[optind - 1]);
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind < argc) return cli_error(cmd, "unexpected argument \"%s\" (see fmnist train --help)", argv[optind]);
    if (!dir || !*dir) return cli_error(cmd, "--resume needs a run folder");
    fm_error err = {0};
    char path[FM_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.fmck", dir);
    fm_checkpoint *ck = NULL;
    if (fm_checkpoint_load(path, &ck, &err)) return cli_error(cmd, "--resume: %s", err.msg);
    cJSON *note = cJSON_Parse(fm_checkpoint_note(ck));
    const char *spec = NULL, *ndata = NULL, *init = NULL;
    if (note) {
        spec = note_string(note, "model", o->spec_buf, sizeof o->spec_buf);
        ndata = note_string(note, "data", o->data_buf, sizeof o->data_buf);
        init = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(note, "init"));
        o->no_test = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(note, "no_test"));
        o->no_report = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(note, "no_report"));
    }
    if (!spec || !ndata) {
        cJSON_Delete(note);
        fm_checkpoint_free(ck);
        return cli_error(cmd, "--resume: checkpoint %s: its note lacks the run's model and data "
                         "(not written by fmnist train)", path);
    }
    o->mp.init = init && strcmp(init, "he") == 0 ? FM_INIT_HE_UNIFORM : FM_INIT_GLOROT_UNIFORM;
    cJSON_Delete(note);
    int done, batches_done, batches, stopped;
    fm_checkpoint_position(ck, &done, &batches_done, &batches, &stopped);
    o->tp = fm_checkpoint_train_params(ck);
    if (stopped) {
        fm_checkpoint_free(ck);
        return cli_error(cmd, "--resume: run %s stopped early at epoch %d (no better validation "
                         "figure for %d epochs): nothing to resume", dir, done, o->tp.patience);
    }
    if (epochs) {
        if (epochs < done + (batches_done > 0)) {
            fm_checkpoint_free(ck);
            return cli_error(cmd, "--epochs %ld: run %s has already trained %d epochs%s", epochs, dir, done, batches_done ? " and part of the next" : "");
        }
        o->tp.epochs = (int)epochs;
    }
    if (batches_done == 0 && done == o->tp.epochs) {
        fm_checkpoint_free(ck);
        return cli_error(cmd, "--resume: run %s has finished its %d epochs; add --epochs N (above "
                         "%d) to train further", dir, done, done);
    }
    /* The classes (train_run loads the data for them) and flips, from the model it holds. */
    fm_model *m = NULL;
    if (fm_checkpoint_model(ck, &m, &err)) {
        fm_checkpoint_free(ck);
        return cli_error(cmd, "--resume: %s", err.msg);
    }
    o->mp.classes = *fm_model_classes(m);
    o->mp.scaling = fm_model_scaling(m);
    o->tta = fm_model_tta(m);
    fm_model_free(m);
    o->mp.seed = o->tp.seed;
    o->spec = spec;
    o->data = data ? data : ndata;
    o->out = dir;
    o->quiet = quiet, o->json = json;
    o->ck = ck;
    return 0;
}
