/* common.c — helpers every subcommand uses: errors, strict flag parsing, data loading, files. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "fmnist %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_fail(const char *cmd, const fm_error *err) {
    return cli_error(cmd, "%s", err->msg[0] ? err->msg : fm_status_name(err->status));
}

int cli_int(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        cli_error(cmd, "%s must be an integer in %ld..%ld, got \"%s\"", flag, lo, hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < lo || v > hi) {
        cli_error(cmd, "%s must be a number in [%g, %g], got \"%s\"", flag, lo, hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float_positive(const char *cmd, const char *flag, const char *text, double hi, double *out) {
    if (!cli_float(cmd, flag, text, 0, hi, out)) return 0;
    if (*out <= 0) {
        cli_error(cmd, "%s must be above 0, got \"%s\"", flag, text);
        return 0;
    }
    return 1;
}

int cli_bad_option(const char *cmd, char **argv, int c) {
    /* An unknown short option sets optopt to its letter ('h' is the only short one and never
     * fails); a long option's error always leaves optind just past its element. */
    if (c == '?' && optopt > 0 && optopt < 256 && optopt != 'h') {
        return cli_error(cmd, "unknown option -%c (see fmnist %s --help)", optopt, cmd);
    }
    const char *arg = optind > 1 ? argv[optind - 1] : "?";
    if (c == ':') return cli_error(cmd, "%s needs a value (see fmnist %s --help)", arg, cmd);
    const char *eq = strchr(arg, '=');
    if (optopt != 0 && eq) {
        return cli_error(cmd, "%.*s takes no value (see fmnist %s --help)", (int)(eq - arg), arg, cmd);
    }
    return cli_error(cmd, "unknown option %s (see fmnist %s --help)", arg, cmd);
}

int cli_parse_split(const char *cmd, const char *text, fm_split *out) {
    if (strcmp(text, "test") == 0) *out = FM_SPLIT_TEST;
    else if (strcmp(text, "train") == 0) *out = FM_SPLIT_TRAIN;
    else return !cli_error(cmd, "--split must be train or test, got \"%s\"", text);
    return 1;
}

int cli_load_split(const char *cmd, const char *data_flag, fm_split split, int n_classes,
                   fm_dataset *out, char *dir_out, size_t dir_cap) {
    fm_error err = {0};
    char dir[FM_PATH_MAX];
    if (fm_data_find(data_flag, dir, sizeof dir, &err) ||
        fm_dataset_load(dir, split, n_classes, out, &err)) {
        cli_fail(cmd, &err);
        return 0;
    }
    if (dir_out) snprintf(dir_out, dir_cap, "%s", dir);
    return 1;
}

int cli_load_split_for(const char *cmd, const char *data_flag, fm_split split, const fm_model *m,
                       const char *model_name, fm_dataset *out) {
    char dir[FM_PATH_MAX];
    if (!cli_load_split(cmd, data_flag, split, fm_model_classes(m)->n, out, dir, sizeof dir)) return 0;
    uint32_t h, w;
    fm_model_input_shape(m, &h, &w);
    if (out->h != h || out->w != w) {
        cli_error(cmd, "%s takes %ux%u images but the %s set in %s has %ux%u", model_name, h, w,
                  split == FM_SPLIT_TEST ? "test" : "training", dir, out->h, out->w);
        fm_dataset_free(out);
        return 0;
    }
    return 1;
}

void cli_print_image(FILE *f, const uint8_t *pixels, uint32_t h, uint32_t w) {
    static const char ramp[] = " .:-=+*#%@";
    for (uint32_t y = 0; y < h; y++) {
        fputs("  ", f);
        for (uint32_t x = 0; x < w; x++) {
            char ch = ramp[pixels[(size_t)y * w + x] * 9 / 255];
            fputc(ch, f), fputc(ch, f); /* characters are about twice as tall as wide */
        }
        fputc('\n', f);
    }
}

int cli_write_file(const char *cmd, const char *path, const char *text) {
    char tmp[FM_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return cli_error(cmd, "%s: cannot create: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cli_error(cmd, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

int cli_mkdirs(const char *cmd, const char *path) {
    char buf[FM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return cli_error(cmd, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        char saved = *p;
        if (saved == '/' || saved == '\0') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                return cli_error(cmd, "%s: cannot create folder: %s", buf, strerror(errno));
            }
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                return cli_error(cmd, "%s: exists and is not a folder", buf);
            }
            *p = saved;
        }
        if (saved == '\0') break;
    }
    if (access(path, W_OK) != 0) return cli_error(cmd, "%s: folder is not writable: %s", path, strerror(errno));
    return 0;
}
