/* summary.c — `fmnist summary MODEL|SPEC`: the Keras-style layer table. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help(void) {
    printf("usage: fmnist summary MODEL.safetensors|SPEC [--json]\n"
           "\n"
           "Prints each layer with its output shape and parameter count.\n"
           "SPEC is a preset (mlp, mlp64, mlp256, mlp2, mlp300-100, cnn, cnn-best) or a layer\n"
           "list such as \"dense:300:relu,dense:100:relu,dense:10\" or\n"
           "\"conv:32:3:same,bn,relu,maxpool:2,dropout:0.25,dense:128,relu,dense:10\"\n"
           "(layers: dense, conv, maxpool, avgpool, gap, bn, dropout, flatten, relu, leakyrelu,\n"
           "tanh, sigmoid; res(...) around layers that keep the shape adds their input to their\n"
           "output, a residual block; see the README for the grammar).\n"
           "\n"
           "  --json   print {\"spec\", \"params\", \"non_trainable\", \"input_shape\", \"layers\": [{\"name\",\n"
           "           \"type\", \"output_shape\", \"params\", \"non_trainable\", and \"adds\" for a block's Add}]}\n");
}

int summary_parse(const char *cmd, int argc, char **argv, summary_options *o) {
    enum { O_JSON = 256 };
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"json", no_argument, 0, O_JSON}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_JSON: o->json = 1; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind != argc - 1) return cli_error(cmd, "expected one MODEL file or SPEC (see fmnist summary --help)");
    o->what = argv[optind];
    return 0;
}

/* The table as JSON: shapes in Keras's form, the batch dimension null. */
static void print_summary_json(const fm_model *m) {
    uint32_t h, w;
    fm_model_input_shape(m, &h, &w);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "spec", fm_model_spec(m));
    cJSON_AddNumberToObject(o, "params", (double)fm_model_param_count(m));
    size_t state = 0;
    cJSON *in = cJSON_AddArrayToObject(o, "input_shape");
    cJSON_AddItemToArray(in, cJSON_CreateNull());
    cJSON_AddItemToArray(in, cJSON_CreateNumber(h));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(w));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int r = 0; r < fm_model_summary_rows(m); r++) {
        fm_summary_row row;
        fm_model_summary_row(m, r, &row);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", row.name);
        cJSON_AddStringToObject(e, "type", row.type);
        cJSON *shape = cJSON_AddArrayToObject(e, "output_shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNull());
        for (int d = 0; d < row.rank; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber(row.shape[d]));
        cJSON_AddNumberToObject(e, "params", (double)row.params);
        cJSON_AddNumberToObject(e, "non_trainable", (double)row.state);
        if (*row.adds) cJSON_AddStringToObject(e, "adds", row.adds);
        cJSON_AddItemToArray(layers, e);
        state += row.state;
    }
    cJSON_AddNumberToObject(o, "non_trainable", (double)state);
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text ? text : "{}");
    free(text);
    cJSON_Delete(o);
}

int cmd_summary(int argc, char **argv) {
    const char *cmd = "summary";
    summary_options o;
    int prc = summary_parse(cmd, argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    const char *what = o.what;
    const int json = o.json;
    fm_error err = {0};
    fm_model *m = NULL;
    struct stat st;
    int is_file = stat(what, &st) == 0;
    size_t len = strlen(what);
    int looks_like_file = strchr(what, '/') || (len > 12 && strcmp(what + len - 12, ".safetensors") == 0);
    if (!is_file && looks_like_file) return cli_error(cmd, "%s: no such model file", what);
    fm_status s = is_file ? fm_model_load(what, &m, &err) : fm_model_create(what, 28, 28, NULL, &m, &err);
    if (s) return cli_fail(cmd, &err);
    if (json) {
        print_summary_json(m);
    } else {
        size_t need = fm_model_summary(m, what, NULL, 0) + 1;
        char *buf = malloc(need);
        if (!buf) {
            fm_model_free(m);
            return cli_error(cmd, "out of memory");
        }
        fm_model_summary(m, what, buf, need);
        fputs(buf, stdout);
        free(buf);
    }
    fm_model_free(m);
    return 0;
}
