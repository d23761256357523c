/* predict_images.c — `fmnist predict MODEL IMAGE|FOLDER...`: pictures through the library's
 * preprocessing, the top three classes of each, --json, --csv and --save-input. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char **items;
    size_t n, cap;
} name_list;

static int list_push(name_list *l, const char *text) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return 0;
        l->items = grown, l->cap = cap;
    }
    char *copy = strdup(text);
    if (!copy) return 0;
    l->items[l->n++] = copy;
    return 1;
}

static void list_free(name_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pictures in a folder (not its subfolders or hidden files), sorted by name so that the
 * output order does not depend on the file system. Returns how many, or -1 after an error. */
static int add_folder(const char *cmd, const char *dir, name_list *files) {
    DIR *d = opendir(dir);
    if (!d) {
        cli_error(cmd, "%s: cannot read the folder: %s", dir, strerror(errno));
        return -1;
    }
    name_list found = {0};
    struct dirent *e;
    char path[FM_PATH_MAX];
    int ok = 1;
    while (ok && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !fm_image_name_supported(e->d_name)) continue;
        size_t len = strlen(dir);
        int n = snprintf(path, sizeof path, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (n >= (int)sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        ok = list_push(&found, path);
    }
    closedir(d);
    if (!ok) {
        list_free(&found);
        cli_error(cmd, "out of memory listing %s", dir);
        return -1;
    }
    if (found.n) qsort(found.items, found.n, sizeof *found.items, by_name);
    int count = (int)found.n;
    for (size_t i = 0; ok && i < found.n; i++) ok = list_push(files, found.items[i]);
    list_free(&found);
    if (!ok) {
        cli_error(cmd, "out of memory listing %s", dir);
        return -1;
    }
    if (count == 0) {
        cli_error(cmd, "%s: no pictures in this folder (.png .jpg .jpeg .bmp .pgm .ppm .pnm .gif .tga)", dir);
        return -1;
    }
    return count;
}

static int ends_with_png(const char *s) {
    size_t n = strlen(s);
    return n > 4 && strcasecmp(s + n - 4, ".png") == 0;
}

/* mkdir -p without messages: when it fails, each picture's save names the problem. */
static void mkdirs_quiet(const char *path) {
    char buf[FM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            mkdir(buf, 0777);
            *p = saved;
            if (!saved) break;
        }
    }
}

/* FOLDER/STEM.png for a picture, STEM its name without folder and extension; a stem already used
 * (shoe.jpg and shoe.png) gets -2, -3, ... so that no saved input overwrites another. */
static void save_name(char *out, size_t cap, const char *folder, const char *file, name_list *used) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    size_t len = strlen(folder);
    const char *sep = len && folder[len - 1] == '/' ? "" : "/";
    for (int k = 1;; k++) {
        if (k == 1) snprintf(out, cap, "%s%s%s.png", folder, sep, stem);
        else snprintf(out, cap, "%s%s%s-%d.png", folder, sep, stem, k);
        int taken = 0;
        for (size_t i = 0; i < used->n && !taken; i++) taken = strcmp(used->items[i], out) == 0;
        if (!taken) break;
    }
    list_push(used, out);
}

static void csv_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The three most probable classes (fewer when the model has fewer), best first. */
static int top_classes(const float *probs, int C, int *top) {
    int n = C < 3 ? C : 3;
    for (int r = 0; r < n; r++) {
        int best = -1;
        for (int k = 0; k < C; k++) {
            int seen = 0;
            for (int q = 0; q < r; q++) seen |= top[q] == k;
            if (!seen && (best < 0 || probs[k] > probs[best])) best = k;
        }
        top[r] = best;
    }
    return n;
}

int cli_predict_images(const char *cmd, fm_model *m, char **args, int n_args, const cli_image_opts *o) {
    const fm_classes *cl = fm_model_classes(m);
    int C = cl->n, failed = 0;
    uint32_t H, W;
    fm_model_input_shape(m, &H, &W);

    name_list files = {0}, used = {0};
    for (int i = 0; i < n_args; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (add_folder(cmd, args[i], &files) < 0) failed++;
        } else if (!list_push(&files, args[i])) {
            list_free(&files);
            return cli_error(cmd, "out of memory");
        }
    }
    int save_to_file = o->save_input && ends_with_png(o->save_input);
    if (save_to_file && files.n > 1) {
        list_free(&files);
        return cli_error(cmd, "--save-input %s names one PNG file but there are %zu pictures; give a folder",
                         o->save_input, files.n);
    }
    if (o->save_input && !save_to_file) mkdirs_quiet(o->save_input);

    /* The CSV goes through a temporary file renamed at the end; when it cannot be created, that is
     * reported once and the pictures are still classified on stdout. */
    FILE *csv = NULL;
    char csv_tmp[FM_PATH_MAX + 8];
    if (o->csv) {
        snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp", o->csv);
        csv = fopen(csv_tmp, "w");
        if (!csv) {
            cli_error(cmd, "--csv %s: cannot create: %s", o->csv, strerror(errno));
            failed++;
        } else {
            fprintf(csv, "file,predicted,predicted_name,confidence");
            for (int k = 0; k < C; k++) fprintf(csv, ",p%d", k);
            fprintf(csv, ",error\n");
        }
    }
    cJSON *doc = o->json ? cJSON_CreateObject() : NULL;
    cJSON *items = doc ? cJSON_AddArrayToObject(doc, "images") : NULL;

    fm_image_params ip = fm_image_default_params();
    ip.invert = o->invert;
    uint8_t *input = malloc((size_t)H * W);
    uint8_t label = 0;
    float probs[FM_MAX_CLASSES];
    for (size_t i = 0; input && i < files.n; i++) {
        const char *file = files.items[i];
        fm_error err = {0};
        fm_image_info info;
        fm_status st = fm_image_load_input(file, &ip, input, H, W, &info, &err);
        if (!st) {
            fm_dataset one = {1, H, W, input, &label, C};
            st = fm_predict(m, &one, 0, 1, probs, o->threads, &err);
        }
        if (st) {
            cli_error(cmd, "%s", err.msg); /* names the file */
            failed++;
            if (csv) {
                csv_text(csv, file);
                fputs(",,,", csv);
                for (int k = 0; k < C; k++) fputc(',', csv);
                fputc(',', csv);
                csv_text(csv, err.msg);
                fputc('\n', csv);
            }
            if (items) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "file", file);
                cJSON_AddStringToObject(e, "error", err.msg);
                cJSON_AddItemToArray(items, e);
            }
            continue;
        }
        int top[3], n_top = top_classes(probs, C, top);
        char saved[FM_PATH_MAX + 300] = "";
        if (o->save_input) {
            if (save_to_file) snprintf(saved, sizeof saved, "%s", o->save_input);
            else save_name(saved, sizeof saved, o->save_input, file, &used);
            if (fm_image_write_png(saved, input, H, W, &err)) {
                cli_error(cmd, "%s: --save-input %s", file, err.msg);
                failed++;
                saved[0] = '\0';
            }
        }
        if (!o->json) {
            printf("%s:", file);
            for (int r = 0; r < n_top; r++) {
                printf("%s %s %.1f%%", r ? "," : "", cl->names[top[r]], 100.0 * probs[top[r]]);
            }
            printf("\n");
            if (o->show) cli_print_image(stdout, input, H, W);
        }
        if (csv) {
            csv_text(csv, file);
            fprintf(csv, ",%d,", top[0]);
            csv_text(csv, cl->names[top[0]]);
            fprintf(csv, ",%.9g", (double)probs[top[0]]);
            for (int k = 0; k < C; k++) fprintf(csv, ",%.9g", (double)probs[k]);
            fprintf(csv, ",\n");
        }
        if (items) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "file", file);
            cJSON_AddNumberToObject(e, "predicted", top[0]);
            cJSON_AddStringToObject(e, "predicted_name", cl->names[top[0]]);
            cJSON_AddNumberToObject(e, "confidence", probs[top[0]]);
            cJSON *t = cJSON_AddArrayToObject(e, "top");
            for (int r = 0; r < n_top; r++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "class", top[r]);
                cJSON_AddStringToObject(c, "name", cl->names[top[r]]);
                cJSON_AddNumberToObject(c, "probability", probs[top[r]]);
                cJSON_AddItemToArray(t, c);
            }
            cJSON *pa = cJSON_AddArrayToObject(e, "probabilities");
            for (int k = 0; k < C; k++) cJSON_AddItemToArray(pa, cJSON_CreateNumber(probs[k]));
            cJSON_AddNumberToObject(e, "width", info.width);
            cJSON_AddNumberToObject(e, "height", info.height);
            cJSON_AddBoolToObject(e, "inverted", info.inverted);
            cJSON *box = cJSON_AddArrayToObject(e, "box"); /* x, y, w, h in the picture */
            uint32_t b[4] = {info.box_x, info.box_y, info.box_w, info.box_h};
            for (int k = 0; k < 4; k++) cJSON_AddItemToArray(box, cJSON_CreateNumber(b[k]));
            if (saved[0]) cJSON_AddStringToObject(e, "input", saved);
            cJSON_AddItemToArray(items, e);
        }
    }
    if (!input) failed += cli_error(cmd, "out of memory");
    if (csv) {
        int ok = !ferror(csv) && fflush(csv) == 0;
        if (fclose(csv) != 0) ok = 0;
        if (!ok || rename(csv_tmp, o->csv) != 0) {
            int e = errno;
            unlink(csv_tmp);
            failed += cli_error(cmd, "--csv %s: write failed: %s", o->csv, strerror(e ? e : EIO));
        }
    }
    if (doc) {
        cJSON_AddNumberToObject(doc, "n", (double)files.n);
        cJSON_AddNumberToObject(doc, "failed", failed);
        char *text = cJSON_PrintUnformatted(doc);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(doc);
    }
    free(input);
    list_free(&files);
    list_free(&used);
    return failed ? 1 : 0;
}
