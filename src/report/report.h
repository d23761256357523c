/* report.h — what the picture and page files share: a cairo canvas with DejaVu Sans text and the
 * house colours, a growable text buffer for CSV and HTML, and whole-file writes through a
 * temporary name. Internal to src/report/. */
#ifndef FMNIST_REPORT_H
#define FMNIST_REPORT_H

#include "internal.h"

#include <cairo.h>

/* ---------------------------------------------------------------- colours */

typedef struct {
    double r, g, b;
} rgb;

/* The notebook's convention: blue for a right prediction, red for a wrong one. */
extern const rgb COLOR_RIGHT, COLOR_WRONG, COLOR_TEXT, COLOR_MUTED, COLOR_GRID, COLOR_AXIS,
    COLOR_BAR;
/* Ten well-separated series colours (matplotlib's tab10), cycled for more series. */
rgb series_color(int i);

/* ---------------------------------------------------------------- canvas */

#define FONT_FAMILY "DejaVu Sans"
#define QUARTER_TURN 1.5707963267948966 /* radians */
#define CANVAS_MAX_SIDE 16384 /* pixels; larger pictures are refused, not attempted */

typedef struct {
    cairo_surface_t *surface;
    cairo_t *cr;
    int w, h;
} canvas;

/* A white w x h RGB canvas; fails with FM_ERR_ARG for sizes outside 1..CANVAS_MAX_SIDE. */
fm_status canvas_open(canvas *c, int w, int h, const char *path, fm_error *err);
/* Writes the PNG to path (through path.tmp and a rename) and frees the canvas either way. */
fm_status canvas_save_png(canvas *c, const char *path, fm_error *err);
void canvas_close(canvas *c);

typedef enum { ALIGN_START, ALIGN_CENTER, ALIGN_END } align;

/* Text of the given pixel size. halign puts x at its left edge, centre or right edge; valign puts
 * y at the top of its capitals, their middle, or the baseline. */
void draw_text(cairo_t *cr, double x, double y, double size, int bold, align halign, align valign,
               rgb color, const char *text);
/* The same, turned by angle radians around (x, y) (-pi/2 reads bottom to top); the alignments
 * apply along and across the turned line. */
void draw_text_rotated(cairo_t *cr, double x, double y, double angle, double size, int bold,
                       align halign, align valign, rgb color, const char *text);
double text_width(cairo_t *cr, double size, int bold, const char *text);
void fill_rect(cairo_t *cr, double x, double y, double w, double h, rgb color);
/* A frame of the given thickness inside the rectangle, pixel-aligned so its colour is exact. */
void frame_rect(cairo_t *cr, int x, int y, int w, int h, int thickness, rgb color);
/* One grayscale image, drawn as the notebooks show Fashion-MNIST (0 white, 255 black), scaled by
 * an integer factor with sharp pixels, top-left at (x, y). */
void draw_gray_image(cairo_t *cr, const uint8_t *pixels, uint32_t h, uint32_t w, int x, int y,
                     int scale);

/* ---------------------------------------------------------------- text buffers */

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed; reported once, at the end */
} text_buf;

void text_printf(text_buf *t, const char *fmt, ...) FM_PRINTF(2, 3);
void text_append(text_buf *t, const char *s, size_t n);
/* HTML text: & < > " ' escaped. */
void text_html(text_buf *t, const char *s);
/* A CSV field: quoted, with quotes doubled, so names with commas or quotes stay one field. */
void text_csv(text_buf *t, const char *s);
void text_base64(text_buf *t, const unsigned char *data, size_t n);
void text_free(text_buf *t);

/* Writes the buffer to path through path.tmp and a rename; fails on an earlier allocation
 * failure too. The buffer is left as it is. */
fm_status text_save(const text_buf *t, const char *path, fm_error *err);
/* Reads a whole (small) file; the caller frees *data. */
fm_status read_whole_file(const char *path, unsigned char **data, size_t *n, fm_error *err);

/* ---------------------------------------------------------------- HTML pages */

/* Opens a page: doctype, title, the house style sheet. */
void html_begin(text_buf *t, const char *title);
/* An <img> whose source is the PNG file's bytes as a data: URI, so the page needs no other file. */
fm_status html_image(text_buf *t, const char *png_path, const char *alt, fm_error *err);
/* Closes the page with the small script that marks every <img> data-state="loaded" or "broken"
 * (from naturalWidth) once the page has loaded, for headless checks. */
void html_end(text_buf *t);

/* "12.34%" or "—" for NaN. */
void format_percent(char *out, size_t cap, double fraction);

#endif
