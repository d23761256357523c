/* predict.c — `fmnist predict MODEL`: the class probabilities of one test image, or of every image
 * into a CSV file; with image files or folders after MODEL, hands over to predict_images.c. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: fmnist predict MODEL.safetensors [options]\n"
           "       fmnist predict MODEL.safetensors IMAGE|FOLDER... [--json] [--csv F] [--save-input P]\n"
           "\n"
           "Prints the class probabilities of one image with its predicted and true labels,\n"
           "or writes every prediction of the split to a CSV file.\n"
           "Given pictures (PNG, JPEG, BMP, PGM/PPM; a folder means every picture in it), prints\n"
           "the top three classes of each: the item is found, cropped, centred, shrunk to 28x28\n"
           "and made light on black like the training images.\n"
           "\n"
           "  --index N      which image                      [0]\n"
           "  --show         draw the image in the terminal\n"
           "  --all --csv F  write index,label,predicted,names,confidence and all probabilities\n"
           "  --split NAME   test or train                    [test]\n"
           "  --data DIR     folder with the IDX files\n"
           "  --threads N    0 = all cores                    [0]\n"
           "  --tta, --no-tta  average each image with its mirror, or not [as the model file says]\n"
           "  --json         print one JSON object\n"
           "  --csv F        (pictures) write file,predicted,names,confidence,p0.. to F\n"
           "  --save-input P (pictures) save the 28x28 image the model saw: P.png for one\n"
           "                 picture, else P is a folder\n"
           "  --invert WHEN  (pictures) make the item light on black by inverting: auto (when\n"
           "                 the picture's border is light), yes or no  [auto]\n"
           "example: fmnist predict runs/mlp/model.safetensors shoe.jpg photos/\n");
}

int predict_parse(const char *cmd, int argc, char **argv, predict_options *o) {
    enum { O_INDEX = 256, O_ALL, O_CSV, O_SPLIT, O_DATA, O_THREADS, O_JSON, O_SHOW, O_TTA, O_NO_TTA, O_SAVE_INPUT,
           O_INVERT };
    static const struct option opts[] = {
        {"help", no_argument, 0, 'h'}, {"index", required_argument, 0, O_INDEX}, {"all", no_argument, 0, O_ALL},
        {"csv", required_argument, 0, O_CSV}, {"split", required_argument, 0, O_SPLIT},
        {"data", required_argument, 0, O_DATA}, {"threads", required_argument, 0, O_THREADS},
        {"json", no_argument, 0, O_JSON}, {"show", no_argument, 0, O_SHOW}, {"tta", no_argument, 0, O_TTA},
        {"no-tta", no_argument, 0, O_NO_TTA}, {"save-input", required_argument, 0, O_SAVE_INPUT},
        {"invert", required_argument, 0, O_INVERT}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->split = FM_SPLIT_TEST;
    o->tta = -1;
    o->invert = FM_INVERT_AUTO;
    long lv;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_INDEX:
            if (!cli_int(cmd, "--index", optarg, 0, 2147483647L, &o->index)) return 1;
            o->have_index = 1;
            break;
        case O_ALL: o->all = 1; break;
        case O_CSV: o->csv = optarg; break;
        case O_SPLIT: if (!cli_parse_split(cmd, optarg, &o->split)) return 1; o->have_split = 1; break;
        case O_DATA: o->data = optarg; break;
        case O_SAVE_INPUT: o->save_input = optarg; break;
        case O_INVERT:
            if (strcmp(optarg, "yes") == 0) o->invert = FM_INVERT_ALWAYS;
            else if (strcmp(optarg, "no") == 0) o->invert = FM_INVERT_NEVER;
            else if (strcmp(optarg, "auto") == 0) o->invert = FM_INVERT_AUTO;
            else return cli_error(cmd, "--invert must be auto, yes or no, not \"%s\"", optarg);
            o->have_invert = 1;
            break;
        case O_THREADS: if (!cli_int(cmd, "--threads", optarg, 0, 1024, &lv)) return 1; o->threads = (int)lv; break;
        case O_JSON: o->json = 1; break;
        case O_TTA: o->tta = 1; break;
        case O_NO_TTA: o->tta = 0; break;
        case O_SHOW: o->show = 1; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind >= argc) return cli_error(cmd, "expected one MODEL file (see fmnist predict --help)");
    o->model = argv[optind];
    o->images = argv + optind + 1;
    o->n_images = argc - optind - 1;
    if (o->n_images > 0) {
        /* Flags that pick images from the IDX set make no sense with picture files; given, even
         * as --index 0 or --split test, they are an error rather than silently ignored. */
        if (o->have_index || o->all || o->have_split || o->data) {
            return cli_error(cmd, "--index, --all, --split and --data choose test-set images; they "
                                  "do not go with image files");
        }
        return 0;
    }
    if (o->save_input) return cli_error(cmd, "--save-input goes with image files (fmnist predict MODEL IMAGE --save-input F.png)");
    if (o->have_invert) return cli_error(cmd, "--invert goes with image files (fmnist predict MODEL IMAGE --invert no)");
    if (o->all && !o->csv) return cli_error(cmd, "--all needs --csv FILE");
    if (o->csv && !o->all) return cli_error(cmd, "--csv needs --all");
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict";
    predict_options opt;
    int prc = predict_parse(cmd, argc, argv, &opt);
    if (prc) return prc < 0 ? 0 : prc;
    const char *data = opt.data, *csv = opt.csv;
    const fm_split split = opt.split;
    const long index = opt.index;
    const int all = opt.all, threads = opt.threads, json = opt.json, show = opt.show, tta = opt.tta;
    if (opt.n_images > 0) {
        fm_error err = {0};
        fm_model *m = NULL;
        if (fm_model_load(opt.model, &m, &err)) return cli_fail(cmd, &err);
        if (tta >= 0) fm_model_set_tta(m, tta);
        cli_image_opts io = {csv, opt.save_input, json, show, threads, opt.invert};
        int rc = cli_predict_images(cmd, m, opt.images, opt.n_images, &io);
        fm_model_free(m);
        return rc;
    }
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
    int rc = 0;
    if (all) {
        float *probs = malloc((size_t)ds.n * cl->n * sizeof(float));
        if (!probs) rc = cli_error(cmd, "out of memory");
        else if (fm_predict(m, &ds, 0, ds.n, probs, threads, &err)) rc = cli_fail(cmd, &err);
        else {
            rc = fm_predictions_write_csv(csv, &ds, probs, cl, &err) ? cli_error(cmd, "--csv %s", err.msg) : 0;
            if (!rc) {
                uint32_t right = 0;
                for (uint32_t i = 0; i < ds.n; i++) {
                    const float *p = probs + (size_t)i * cl->n;
                    int pred = 0;
                    for (int k = 1; k < cl->n; k++) pred = p[k] > p[pred] ? k : pred;
                    right += pred == ds.labels[i];
                }
                if (json) {
                    printf("{\"csv\": \"%s\", \"n\": %u, \"accuracy\": %.9g}\n", csv, ds.n, (double)right / ds.n);
                } else {
                    printf("Wrote %u predictions to %s (accuracy %.4f)\n", ds.n, csv, (double)right / ds.n);
                }
            }
        }
        free(probs);
    } else if ((uint64_t)index >= ds.n) {
        rc = cli_error(cmd, "--index %ld is out of range: the %s set has %u images (0..%u)", index,
                       split == FM_SPLIT_TEST ? "test" : "training", ds.n, ds.n - 1);
    } else {
        float probs[FM_MAX_CLASSES];
        if (fm_predict(m, &ds, (uint32_t)index, 1, probs, threads, &err)) {
            rc = cli_fail(cmd, &err);
        } else {
            int label = ds.labels[index], pred = 0;
            for (int k = 1; k < cl->n; k++) pred = probs[k] > probs[pred] ? k : pred;
            if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "index", (double)index);
                cJSON_AddStringToObject(o, "split", split == FM_SPLIT_TEST ? "test" : "train");
                cJSON_AddNumberToObject(o, "predicted", pred);
                cJSON_AddStringToObject(o, "predicted_name", cl->names[pred]);
                cJSON_AddNumberToObject(o, "label", label);
                cJSON_AddStringToObject(o, "label_name", cl->names[label]);
                cJSON_AddBoolToObject(o, "correct", pred == label);
                cJSON *pa = cJSON_AddArrayToObject(o, "probabilities");
                for (int k = 0; k < cl->n; k++) cJSON_AddItemToArray(pa, cJSON_CreateNumber(probs[k]));
                char *text = cJSON_PrintUnformatted(o);
                printf("%s\n", text ? text : "{}");
                free(text);
                cJSON_Delete(o);
            } else {
                printf("%s image %ld\n", split == FM_SPLIT_TEST ? "Test" : "Training", index);
                if (show) cli_print_image(stdout, ds.images + (size_t)index * ds.h * ds.w, ds.h, ds.w);
                for (int k = 0; k < cl->n; k++) {
                    int bar = (int)(probs[k] * 30.0f + 0.5f);
                    printf("  %-14s %6.2f%% ", cl->names[k], 100.0 * probs[k]);
                    for (int i = 0; i < bar; i++) fputs("#", stdout);
                    printf("%s\n", k == pred ? "  <- predicted" : "");
                }
                printf("Predicted: %s (%.1f%%)   True: %s   %s\n", cl->names[pred], 100.0 * probs[pred],
                       cl->names[label], pred == label ? "correct" : "WRONG");
            }
        }
    }
    fm_dataset_free(&ds);
    fm_model_free(m);
    return rc;
}
