/* show.c — `fmnist show`: a PNG grid of images from the training or test set, scaled up and
 * captioned with their class names, optionally of one class only. */
#include "cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: fmnist show --out FILE.png [options]\n"
           "\n"
           "Draws images of the data set in a grid, each captioned with its class name.\n"
           "\n"
           "  --out FILE.png    where to write the picture (required)\n"
           "  --split NAME      train or test                                  [train]\n"
           "  --count N         how many images, 1..1000                       [24]\n"
           "  --class NAME      only images of this class (a name such as Sandal, any case,\n"
           "                    or its number 0..9)\n"
           "  --columns N       images per row, 1..100                         [up to 8]\n"
           "  --scale N         screen pixels per image pixel, 1..16           [4]\n"
           "  --data DIR        folder with the IDX files\n"
           "  --classes LIST    fashion, digits, or comma-separated names      [fashion]\n"
           "\n"
           "The images are the first of the split (of the class, with --class).\n");
}

/* The class a --class value names: a name (any case) or a number; -1 when none. */
static int find_class(const fm_classes *cl, const char *text) {
    for (int k = 0; k < cl->n; k++) {
        const char *a = cl->names[k], *b = text;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return k;
    }
    char *end;
    long v = strtol(text, &end, 10);
    if (end != text && !*end && v >= 0 && v < cl->n) return (int)v;
    return -1;
}

static int ends_with_png(const char *path) {
    size_t n = strlen(path);
    if (n < 5 || path[n - 5] == '/') return 0;
    const char *ext = path + n - 4;
    return ext[0] == '.' && tolower((unsigned char)ext[1]) == 'p' && tolower((unsigned char)ext[2]) == 'n' &&
           tolower((unsigned char)ext[3]) == 'g';
}

int show_parse(const char *cmd, int argc, char **argv, show_options *o) {
    enum { O_OUT = 256, O_SPLIT, O_COUNT, O_CLASS, O_COLUMNS, O_SCALE, O_DATA, O_CLASSES };
    static const struct option opts[] = {
        {"help", no_argument, 0, 'h'}, {"out", required_argument, 0, O_OUT}, {"split", required_argument, 0, O_SPLIT},
        {"count", required_argument, 0, O_COUNT}, {"class", required_argument, 0, O_CLASS},
        {"columns", required_argument, 0, O_COLUMNS}, {"scale", required_argument, 0, O_SCALE},
        {"data", required_argument, 0, O_DATA}, {"classes", required_argument, 0, O_CLASSES}, {0, 0, 0, 0}};
    const char *class_name = NULL, *classes_text = "fashion";
    memset(o, 0, sizeof *o);
    o->split = FM_SPLIT_TRAIN;
    o->count = 24, o->columns = 0, o->scale = 4;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); return -1;
        case O_OUT: o->out = optarg; break;
        case O_SPLIT: if (!cli_parse_split(cmd, optarg, &o->split)) return 1; break;
        case O_COUNT: if (!cli_int(cmd, "--count", optarg, 1, 1000, &o->count)) return 1; break;
        case O_CLASS: class_name = optarg; break;
        case O_COLUMNS: if (!cli_int(cmd, "--columns", optarg, 1, 100, &o->columns)) return 1; break;
        case O_SCALE: if (!cli_int(cmd, "--scale", optarg, 1, 16, &o->scale)) return 1; break;
        case O_DATA: o->data = optarg; break;
        case O_CLASSES: classes_text = optarg; break;
        default: return cli_bad_option(cmd, argv, c);
        }
    }
    if (optind < argc) return cli_error(cmd, "unexpected argument \"%s\" (see fmnist show --help)", argv[optind]);
    if (!o->out) return cli_error(cmd, "--out FILE.png is required (see fmnist show --help)");
    if (!ends_with_png(o->out)) return cli_error(cmd, "--out must name a .png file, got \"%s\"", o->out);
    fm_error err = {0};
    if (fm_classes_parse(classes_text, &o->classes, &err)) return cli_error(cmd, "--classes: %s", err.msg);
    o->only = -1;
    if (class_name) {
        o->only = find_class(&o->classes, class_name);
        if (o->only < 0) {
            char names[FM_MAX_CLASSES * (FM_CLASS_NAME_MAX + 2)] = "";
            size_t len = 0;
            for (int k = 0; k < o->classes.n && len < sizeof names; k++) {
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "", o->classes.names[k]);
            }
            return cli_error(cmd, "--class \"%s\" is no class name; the classes are: %s (or a number 0..%d)",
                             class_name, names, o->classes.n - 1);
        }
    }
    return 0;
}

int cmd_show(int argc, char **argv) {
    const char *cmd = "show";
    show_options o;
    int prc = show_parse(cmd, argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    const char *out = o.out, *data = o.data;
    const fm_split split = o.split;
    const long count = o.count, columns = o.columns, scale = o.scale;
    const fm_classes *classes = &o.classes;
    const int only = o.only;
    fm_error err = {0};
    fm_dataset ds = {0};
    if (!cli_load_split(cmd, data, split, classes->n, &ds, NULL, 0)) return 1;
    const char *split_name = split == FM_SPLIT_TEST ? "test" : "training";
    uint32_t *rows = malloc((size_t)count * sizeof *rows);
    if (!rows) {
        fm_dataset_free(&ds);
        return cli_error(cmd, "out of memory");
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < ds.n && n < (uint32_t)count; i++) {
        if (only < 0 || ds.labels[i] == only) rows[n++] = i;
    }
    int rc = 0;
    char title[256];
    if (n == 0) {
        rc = cli_error(cmd, "the %s set has no images of class %s", split_name, classes->names[only]);
    } else {
        if (only >= 0) snprintf(title, sizeof title, "%s set: the first %u images of class %s", split_name, n, classes->names[only]);
        else snprintf(title, sizeof title, "%s set: images 0 to %u", split_name, n - 1);
        title[0] = (char)toupper((unsigned char)title[0]);
        fm_grid_params gp = fm_grid_default_params();
        gp.columns = (int)columns;
        gp.scale = (int)scale;
        gp.title = title;
        if (fm_draw_image_grid(out, &ds, rows, n, classes, &gp, &err)) {
            rc = cli_error(cmd, "--out %s", err.msg);
        } else {
            printf("Wrote %s: %u %s image%s%s%s\n", out, n, split_name, n == 1 ? "" : "s",
                   only >= 0 ? " of class " : "", only >= 0 ? classes->names[only] : "");
        }
    }
    free(rows);
    fm_dataset_free(&ds);
    return rc;
}
