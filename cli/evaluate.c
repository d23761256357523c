/* evaluate.c — `fmnist evaluate MODEL`: loss, accuracy and per-class accuracy on a split. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: fmnist evaluate MODEL.safetensors [options]\n"
           "\n"
           "Reports loss, accuracy and per-class accuracy on the test set.\n"
           "\n"
           "  --split NAME   test or train                   [test]\n"
           "  --data DIR     folder with the IDX files\n"
           "  --threads N    0 = all cores                   [0]\n"
           "  --tta, --no-tta  average each image with its mirror, or not [as the model file says]\n"
           "  --json         print {\"accuracy\", \"loss\", \"n\", \"per_class\": [...]}\n");
}

int evaluate_parse(const char *cmd, int argc, char **argv, evaluate_options *o) {
    enum { O_SPLIT = 256, O_DATA, O_THREADS, O_JSON, O_TTA, O_NO_TTA };
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"split", required_argument, 0, O_SPLIT},
                                         {"data", required_argument, 0, O_DATA}, {"threads", required_argument, 0, O_THREADS},
                                         {"json", no_argument, 0, O_JSON}, {"tta", no_argument, 0, O_TTA},
                                         {"no-tta", no_argument, 0, O_NO_TTA}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->split = FM_SPLIT_TEST;
    o->tta = -1;
    int c;
    long lv;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_SPLIT: if (!cli_parse_split(cmd, optarg, &o->split)) return 1; break;
        case O_DATA: o->data = optarg; break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &lv)) return 1; o->threads = (int)lv; break;
        case O_JSON: o->json = 1; break;
        case O_TTA: o->tta = 1; break;
        case O_NO_TTA: o->tta = 0; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind != argc - 1) return cli_error(cmd, "expected one MODEL file (see fmnist evaluate --help)");
    o->model = argv[optind];
    return 0;
}

int cmd_evaluate(int argc, char **argv) {
    const char *cmd = "evaluate";
    evaluate_options opt;
    int prc = evaluate_parse(cmd, argc, argv, &opt);
    if (prc) return prc < 0 ? 0 : prc;
    const char *data = opt.data;
    const fm_split split = opt.split;
    const int threads = opt.threads, json = opt.json, tta = opt.tta;
    fm_error err = {0};
    fm_model *m = NULL;
    if (fm_model_load(opt.model, &m, &err)) return cli_fail(cmd, &err);
    if (tta >= 0) fm_model_set_tta(m, tta);
    const fm_classes *cl = fm_model_classes(m);
    fm_dataset ds = {0};
    if (!cli_load_split_for(cmd, data, split, m, opt.model, &ds)) {
        fm_model_free(m);
        return 1;
    }
    fm_eval_result ev;
    int rc = 0;
    if (fm_evaluate(m, &ds, 1000, threads, &ev, &err)) {
        rc = cli_fail(cmd, &err);
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "accuracy", ev.accuracy);
        cJSON_AddNumberToObject(o, "loss", ev.loss);
        cJSON_AddNumberToObject(o, "n", ev.n);
        cJSON_AddStringToObject(o, "split", split == FM_SPLIT_TEST ? "test" : "train");
        cJSON_AddBoolToObject(o, "tta", fm_model_tta(m));
        cJSON *pc = cJSON_AddArrayToObject(o, "per_class");
        for (int k = 0; k < cl->n; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "class", cl->names[k]);
            if (ev.per_class_n[k]) cJSON_AddNumberToObject(e, "accuracy", ev.per_class[k]);
            else cJSON_AddNullToObject(e, "accuracy");
            cJSON_AddNumberToObject(e, "n", ev.per_class_n[k]);
            cJSON_AddItemToArray(pc, e);
        }
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
    } else {
        printf("%s set: %u images%s\n", split == FM_SPLIT_TEST ? "Test" : "Training", ev.n,
               fm_model_tta(m) ? " (each averaged with its mirror image)" : "");
        printf("loss: %.4f - accuracy: %.4f (%.2f%%)\n\n", ev.loss, ev.accuracy, 100.0 * ev.accuracy);
        printf("  %-14s %8s %7s\n", "class", "accuracy", "images");
        for (int k = 0; k < cl->n; k++) {
            if (ev.per_class_n[k]) printf("  %-14s %7.2f%% %7u\n", cl->names[k], 100.0 * ev.per_class[k], ev.per_class_n[k]);
            else printf("  %-14s %8s %7u\n", cl->names[k], "-", 0u);
        }
    }
    fm_dataset_free(&ds);
    fm_model_free(m);
    return rc;
}
