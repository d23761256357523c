/* draw.c — the canvas every picture is drawn on: cairo image surfaces, DejaVu Sans text, sharp
 * scaled images, the house colours, and PNG files written through a temporary name. */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

const rgb COLOR_RIGHT = {0.122, 0.467, 0.706}; /* #1f77b4 */
const rgb COLOR_WRONG = {0.839, 0.153, 0.157}; /* #d62728 */
const rgb COLOR_TEXT = {0.13, 0.13, 0.13};
const rgb COLOR_MUTED = {0.42, 0.42, 0.42};
const rgb COLOR_GRID = {0.90, 0.90, 0.90};
const rgb COLOR_AXIS = {0.35, 0.35, 0.35};
const rgb COLOR_BAR = {0.72, 0.72, 0.72};

rgb series_color(int i) {
    static const rgb tab10[10] = {
        {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
        {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
        {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};
    return tab10[(i % 10 + 10) % 10];
}

fm_status canvas_open(canvas *c, int w, int h, const char *path, fm_error *err) {
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || w > CANVAS_MAX_SIDE || h > CANVAS_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "%s: a %dx%d picture is outside 1..%d pixels per side", path,
                       w, h, CANVAS_MAX_SIDE);
    }
    c->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(c->surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(c->surface);
        c->surface = NULL;
        return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for a %dx%d picture", path, w, h);
    }
    c->cr = cairo_create(c->surface);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
        canvas_close(c);
        return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for a %dx%d picture", path, w, h);
    }
    c->w = w, c->h = h;
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    return FM_OK;
}

void canvas_close(canvas *c) {
    if (c->cr) cairo_destroy(c->cr);
    if (c->surface) cairo_surface_destroy(c->surface);
    c->cr = NULL;
    c->surface = NULL;
}

typedef struct {
    FILE *f;
    int errno_value;
} png_sink;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length) {
    png_sink *sink = closure;
    if (fwrite(data, 1, length, sink->f) != length) {
        sink->errno_value = errno ? errno : EIO;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

fm_status canvas_save_png(canvas *c, const char *path, fm_error *err) {
    cairo_status_t drawn = cairo_status(c->cr);
    if (drawn != CAIRO_STATUS_SUCCESS) {
        canvas_close(c);
        return fm_fail(err, FM_ERR_NOMEM, "%s: drawing failed: %s", path, cairo_status_to_string(drawn));
    }
    cairo_surface_flush(c->surface);
    char tmp[FM_PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        canvas_close(c);
        return fm_fail(err, FM_ERR_ARG, "%s: path too long", path);
    }
    png_sink sink = {fopen(tmp, "wb"), 0};
    if (!sink.f) {
        int e = errno;
        canvas_close(c);
        return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    cairo_status_t st = cairo_surface_write_to_png_stream(c->surface, png_write, &sink);
    canvas_close(c);
    int ok = st == CAIRO_STATUS_SUCCESS && fflush(sink.f) == 0;
    int e = sink.errno_value ? sink.errno_value : errno;
    if (fclose(sink.f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path,
                       st != CAIRO_STATUS_SUCCESS && !sink.errno_value ? cairo_status_to_string(st)
                                                                        : strerror(e ? e : EIO));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return FM_OK;
}

static void set_font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double text_width(cairo_t *cr, double size, int bold, const char *text) {
    set_font(cr, size, bold);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    return te.x_advance;
}

/* Where the baseline goes for a vertical alignment: y names the capitals' top, middle or base. */
static double baseline_for(cairo_t *cr, double y, align valign) {
    cairo_text_extents_t cap;
    cairo_text_extents(cr, "H", &cap);
    double cap_height = -cap.y_bearing;
    return valign == ALIGN_START ? y + cap_height : valign == ALIGN_CENTER ? y + cap_height / 2 : y;
}

void draw_text(cairo_t *cr, double x, double y, double size, int bold, align halign, align valign,
               rgb color, const char *text) {
    set_font(cr, size, bold);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    double left = halign == ALIGN_START ? x : halign == ALIGN_CENTER ? x - te.x_advance / 2 : x - te.x_advance;
    cairo_set_source_rgb(cr, color.r, color.g, color.b);
    cairo_move_to(cr, left, baseline_for(cr, y, valign));
    cairo_show_text(cr, text);
    cairo_new_path(cr);
}

void draw_text_rotated(cairo_t *cr, double x, double y, double angle, double size, int bold,
                       align halign, align valign, rgb color, const char *text) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    draw_text(cr, 0, 0, size, bold, halign, valign, color, text);
    cairo_restore(cr);
}

void fill_rect(cairo_t *cr, double x, double y, double w, double h, rgb color) {
    cairo_set_source_rgb(cr, color.r, color.g, color.b);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill(cr);
}

void frame_rect(cairo_t *cr, int x, int y, int w, int h, int thickness, rgb color) {
    fill_rect(cr, x, y, w, thickness, color);
    fill_rect(cr, x, y + h - thickness, w, thickness, color);
    fill_rect(cr, x, y, thickness, h, color);
    fill_rect(cr, x + w - thickness, y, thickness, h, color);
}

void draw_gray_image(cairo_t *cr, const uint8_t *pixels, uint32_t h, uint32_t w, int x, int y,
                     int scale) {
    for (uint32_t r = 0; r < h; r++) {
        for (uint32_t col = 0; col < w; col++) {
            double v = 1.0 - pixels[(size_t)r * w + col] / 255.0;
            cairo_set_source_rgb(cr, v, v, v);
            cairo_rectangle(cr, x + (double)col * scale, y + (double)r * scale, scale, scale);
            cairo_fill(cr);
        }
    }
}

void format_percent(char *out, size_t cap, double fraction) {
    if (isnan(fraction)) snprintf(out, cap, "\xe2\x80\x94"); /* an em dash for NaN */
    else snprintf(out, cap, "%.2f%%", 100.0 * fraction);
}

void fm_release_caches(void) {
    cairo_debug_reset_static_data();
    FcFini();
}
