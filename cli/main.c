/* main.c — the fmnist command: dispatches to one subcommand per file. */
#include "cli.h"

#include <signal.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "fmnist %s — train, evaluate and use Fashion-MNIST classifiers\n"
            "\n"
            "usage: fmnist COMMAND [options]    (fmnist COMMAND --help for its options)\n"
            "\n"
            "commands:\n"
            "  train      train a model          fmnist train --model mlp --epochs 10 --out runs/mlp\n"
            "  evaluate   test-set figures       fmnist evaluate runs/mlp/model.safetensors --json\n"
            "  predict    class probabilities    fmnist predict runs/mlp/model.safetensors --index 0\n"
            "  summary    layers and parameters  fmnist summary mlp300-100\n"
            "  show       a grid of images       fmnist show --class Sandal --out sandals.png\n"
            "  report     redraw a run's report  fmnist report runs/mlp\n"
            "  experiment compare settings       fmnist experiment \"name=h64 model=mlp64\" \"name=h256 model=mlp256\"\n"
            "  export     ONNX for runtimes      fmnist export runs/mlp/model.safetensors --onnx mlp.onnx\n"
            "\n"
            "data: --data DIR, else $FMNIST_DATA, else ./data, else /usr/share/datasets/fashion-mnist\n"
            "(apt-get install dataset-fashion-mnist, or scripts/fetch-data.sh DIR).\n",
            FM_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* Past a file-size limit (ulimit -f) a write should fail with EFBIG and a message naming the
     * file, not kill the program with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("fmnist %s\n", FM_VERSION);
        return 0;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"train", cmd_train},     {"evaluate", cmd_evaluate}, {"predict", cmd_predict},
        {"summary", cmd_summary}, {"show", cmd_show},         {"report", cmd_report},
        {"experiment", cmd_experiment}, {"export", cmd_export}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) == 0) {
            int rc = cmds[i].fn(argc - 1, argv + 1);
            fm_release_caches(); /* so that leak checkers see only fmnist's own memory */
            return rc;
        }
    }
    /* One line, like every other error; the full usage is a --help away. */
    fprintf(stderr, "fmnist: unknown command \"%s\" (commands: train, evaluate, predict, summary, show, report, experiment, export; see fmnist --help)\n", cmd);
    return 2;
}
