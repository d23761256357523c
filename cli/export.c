/* export.c — `fmnist export MODEL --onnx FILE.onnx`: the model in a format other tools run. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: fmnist export MODEL.safetensors --onnx FILE.onnx\n"
           "\n"
           "Writes the model as ONNX (opset 13) for onnxruntime and other runtimes.\n"
           "Input \"input\": float [N,1,28,28], pixel/255 in [0,1], the item light on black\n"
           "(the graph applies the model's own scaling). Output \"probabilities\": [N,classes].\n"
           "Every layer kind exports (dense, conv, max/avg/global pooling, batch norm with its\n"
           "running statistics, LeakyReLU; dropout is left out), and test-time flips with it.\n"
           "Class names, spec, scaling and flips are in the model's metadata_props.\n"
           "\n"
           "  --onnx FILE    where to write the ONNX model\n"
           "\n"
           "example: fmnist export runs/mlp/model.safetensors --onnx mlp.onnx\n");
}

int export_parse(const char *cmd, int argc, char **argv, export_options *o) {
    enum { O_ONNX = 256 };
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"onnx", required_argument, 0, O_ONNX},
                                         {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_ONNX: o->onnx = optarg; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind != argc - 1) return cli_error(cmd, "expected one MODEL file (see fmnist export --help)");
    if (!o->onnx) return cli_error(cmd, "say which format: --onnx FILE.onnx (see fmnist export --help)");
    if (!*o->onnx) return cli_error(cmd, "--onnx needs a file name");
    o->model = argv[optind];
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *cmd = "export";
    export_options o;
    int prc = export_parse(cmd, argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    const char *onnx = o.onnx;
    fm_error err = {0};
    fm_model *m = NULL;
    if (fm_model_load(o.model, &m, &err)) return cli_fail(cmd, &err);
    int rc = 0;
    if (fm_model_export_onnx(m, onnx, &err)) {
        rc = cli_fail(cmd, &err);
    } else {
        uint32_t h, w;
        fm_model_input_shape(m, &h, &w);
        printf("Wrote %s (ONNX opset 13): input \"input\" [N,1,%u,%u] = pixel/255, output "
               "\"probabilities\" [N,%d]\n",
               onnx, h, w, fm_model_classes(m)->n);
    }
    fm_model_free(m);
    return rc;
}
