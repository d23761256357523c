/* html.c — text buffers for the CSV and HTML files (escaping, base64), whole-file writes through
 * a temporary name, and the frame of a self-contained HTML page: style, embedded PNGs, and the
 * small script that marks each image loaded or broken. */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EMBEDDED_FILE (64u << 20) /* a PNG larger than this is not a picture of ours */

static int text_reserve(text_buf *t, size_t extra) {
    if (t->failed) return 0;
    if (t->len + extra + 1 <= t->cap) return 1;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + extra + 1) cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) {
        t->failed = 1;
        return 0;
    }
    t->data = d;
    t->cap = cap;
    return 1;
}

void text_append(text_buf *t, const char *s, size_t n) {
    if (!text_reserve(t, n)) return;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

void text_printf(text_buf *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !text_reserve(t, (size_t)need)) return;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

void text_html(text_buf *t, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': text_append(t, "&amp;", 5); break;
        case '<': text_append(t, "&lt;", 4); break;
        case '>': text_append(t, "&gt;", 4); break;
        case '"': text_append(t, "&quot;", 6); break;
        case '\'': text_append(t, "&#39;", 5); break;
        default: text_append(t, s, 1);
        }
    }
}

void text_csv(text_buf *t, const char *s) {
    text_append(t, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') text_append(t, "\"", 1);
        text_append(t, s, 1);
    }
    text_append(t, "\"", 1);
}

void text_base64(text_buf *t, const unsigned char *data, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!text_reserve(t, (n + 2) / 3 * 4)) return;
    char *o = t->data + t->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = digits[v >> 18], *o++ = digits[(v >> 12) & 63], *o++ = digits[(v >> 6) & 63], *o++ = digits[v & 63];
    }
    if (i < n) { /* one or two bytes left: pad with '=' */
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = digits[v >> 18], *o++ = digits[(v >> 12) & 63];
        *o++ = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    t->len = (size_t)(o - t->data);
    t->data[t->len] = '\0';
}

void text_free(text_buf *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}

fm_status text_save(const text_buf *t, const char *path, fm_error *err) {
    if (t->failed) return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory composing the file", path);
    char tmp[FM_PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return fm_fail(err, FM_ERR_ARG, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(t->data ? t->data : "", 1, t->len, f) == t->len && fflush(f) == 0;
    int e = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return FM_OK;
}

fm_status read_whole_file(const char *path, unsigned char **data, size_t *n, fm_error *err) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_EMBEDDED_FILE) {
        fclose(f);
        return fm_fail(err, FM_ERR_IO, "%s: not a regular file of at most %u bytes", path, MAX_EMBEDDED_FILE);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size) {
        free(buf);
        return fm_fail(err, FM_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    *data = buf;
    *n = size;
    return FM_OK;
}

void html_begin(text_buf *t, const char *title) {
    text_printf(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    text_html(t, title);
    text_printf(t, "</title>\n<style>\n"
                   "body { font-family: 'DejaVu Sans', system-ui, sans-serif; color: #222; max-width: 1240px;\n"
                   "       margin: 24px auto; padding: 0 16px; line-height: 1.45; }\n"
                   "h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }\n"
                   "table { border-collapse: collapse; margin: 0.5em 0; }\n"
                   "th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }\n"
                   "td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }\n"
                   "#results td { white-space: nowrap; }\n"
                   "pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 0.85em; }\n"
                   "img { max-width: 100%%; height: auto; display: block; margin: 0.5em 0; }\n"
                   ".figures { display: flex; gap: 28px; flex-wrap: wrap; margin: 0.8em 0; }\n"
                   ".figure .value { font-size: 1.6em; font-weight: bold; }\n"
                   ".figure .label { color: #666; font-size: 0.9em; }\n"
                   ".muted { color: #666; }\n"
                   "</style>\n</head>\n<body>\n");
}

fm_status html_image(text_buf *t, const char *png_path, const char *alt, fm_error *err) {
    unsigned char *png;
    size_t n;
    fm_status s = read_whole_file(png_path, &png, &n, err);
    if (s) return s;
    text_printf(t, "<img alt=\"");
    text_html(t, alt);
    text_printf(t, "\" src=\"data:image/png;base64,");
    text_base64(t, png, n);
    text_printf(t, "\">\n");
    free(png);
    return FM_OK;
}

void html_end(text_buf *t) {
    text_printf(t, "<script>\n"
                   "/* Marks each picture for headless checks: loaded when it decoded to a real size. */\n"
                   "window.addEventListener('load', function () {\n"
                   "  var images = document.images, broken = 0;\n"
                   "  for (var i = 0; i < images.length; i++) {\n"
                   "    var ok = images[i].complete && images[i].naturalWidth > 0;\n"
                   "    images[i].setAttribute('data-state', ok ? 'loaded' : 'broken');\n"
                   "    images[i].setAttribute('data-natural-width', images[i].naturalWidth);\n"
                   "    images[i].setAttribute('data-natural-height', images[i].naturalHeight);\n"
                   "    if (!ok) broken++;\n"
                   "  }\n"
                   "  document.body.setAttribute('data-images', images.length);\n"
                   "  document.body.setAttribute('data-broken-images', broken);\n"
                   "});\n"
                   "</script>\n</body>\n</html>\n");
}
