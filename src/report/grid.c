/* grid.c — grids of images: plain ones captioned with their class (`fmnist show`), and prediction
 * grids where each tile names the predicted and the true class, shows a bar of the class
 * probabilities, and is framed blue when right and red when wrong; plus the tiles as CSV. */
#include "report.h"

#include <math.h>
#include <string.h>

#define GRID_MARGIN 20
#define GRID_GAP 10
#define TITLE_SIZE 17.0
#define CAPTION_SIZE 13.0
#define LEGEND_SIZE 12.5
#define GRID_MAX_TILES 10000u

fm_grid_params fm_grid_default_params(void) {
    fm_grid_params p = {0};
    return p; /* zeros mean "pick": up to 8 columns, scale 4 (plain) or 3 (predictions) */
}

static fm_status check_grid_input(const char *path, const fm_dataset *ds, const uint32_t *rows,
                                  uint32_t count, const fm_classes *classes, fm_error *err) {
    if (count == 0) return fm_fail(err, FM_ERR_ARG, "%s: no images to draw", path);
    if (count > GRID_MAX_TILES) {
        return fm_fail(err, FM_ERR_ARG, "%s: %u images is more than a grid of %u", path, count, GRID_MAX_TILES);
    }
    for (uint32_t i = 0; i < count; i++) {
        if (rows[i] >= ds->n) {
            return fm_fail(err, FM_ERR_ARG, "%s: image %u is outside the %u in the set", path, rows[i], ds->n);
        }
        if (ds->labels[rows[i]] >= classes->n) {
            return fm_fail(err, FM_ERR_ARG, "%s: label %d of image %u has no class name", path,
                           ds->labels[rows[i]], rows[i]);
        }
    }
    return FM_OK;
}

/* Columns, rows and the canvas size for count tiles of tile_w x tile_h below a header band. */
typedef struct {
    int columns, rows, header_h, width, height;
} grid_layout;

static grid_layout layout_grid(uint32_t count, int columns, int tile_w, int tile_h, int header_h,
                               double header_w) {
    grid_layout g;
    g.columns = columns > 0 ? columns : 8;
    if ((uint32_t)g.columns > count) g.columns = (int)count;
    g.rows = (int)((count + (uint32_t)g.columns - 1) / (uint32_t)g.columns);
    g.header_h = header_h;
    int grid_w = g.columns * tile_w + (g.columns - 1) * GRID_GAP;
    g.width = 2 * GRID_MARGIN + (grid_w > header_w ? grid_w : (int)ceil(header_w));
    g.height = GRID_MARGIN + header_h + g.rows * tile_h + (g.rows - 1) * GRID_GAP + GRID_MARGIN;
    return g;
}

static void tile_origin(const grid_layout *g, uint32_t i, int tile_w, int tile_h, int *x, int *y) {
    *x = GRID_MARGIN + (int)(i % (uint32_t)g->columns) * (tile_w + GRID_GAP);
    *y = GRID_MARGIN + g->header_h + (int)(i / (uint32_t)g->columns) * (tile_h + GRID_GAP);
}

fm_status fm_draw_image_grid(const char *path, const fm_dataset *ds, const uint32_t *rows,
                             uint32_t count, const fm_classes *classes, const fm_grid_params *p,
                             fm_error *err) {
    fm_grid_params def = fm_grid_default_params();
    if (!p) p = &def;
    fm_status s = check_grid_input(path, ds, rows, count, classes, err);
    if (s) return s;
    int scale = p->scale > 0 ? p->scale : 4;
    if ((uint64_t)scale * (ds->w > ds->h ? ds->w : ds->h) > CANVAS_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "%s: images of %ux%u scaled %d times exceed %d pixels", path,
                       ds->h, ds->w, scale, CANVAS_MAX_SIDE);
    }
    int img_w = (int)ds->w * scale, img_h = (int)ds->h * scale;

    canvas c;
    if ((s = canvas_open(&c, 1, 1, path, err))) return s;
    double caption_w = 0, title_w = p->title ? text_width(c.cr, TITLE_SIZE, 1, p->title) : 0;
    for (int k = 0; k < classes->n; k++) {
        double w = text_width(c.cr, CAPTION_SIZE, 0, classes->names[k]);
        if (w > caption_w) caption_w = w;
    }
    canvas_close(&c);

    int tile_w = (img_w > caption_w + 4 ? img_w : (int)ceil(caption_w) + 4) + 8;
    int tile_h = 4 + img_h + 8 + (int)CAPTION_SIZE + 6;
    int header_h = p->title ? (int)TITLE_SIZE + 16 : 0;
    grid_layout g = layout_grid(count, p->columns, tile_w, tile_h, header_h, title_w);
    if ((s = canvas_open(&c, g.width, g.height, path, err))) return s;
    cairo_t *cr = c.cr;
    if (p->title) draw_text(cr, GRID_MARGIN, GRID_MARGIN, TITLE_SIZE, 1, ALIGN_START, ALIGN_START, COLOR_TEXT, p->title);
    for (uint32_t i = 0; i < count; i++) {
        int x, y;
        tile_origin(&g, i, tile_w, tile_h, &x, &y);
        int ix = x + (tile_w - img_w) / 2, iy = y + 4;
        draw_gray_image(cr, ds->images + (size_t)rows[i] * ds->h * ds->w, ds->h, ds->w, ix, iy, scale);
        frame_rect(cr, ix - 1, iy - 1, img_w + 2, img_h + 2, 1, COLOR_GRID);
        draw_text(cr, x + tile_w / 2.0, iy + img_h + 8, CAPTION_SIZE, 0, ALIGN_CENTER, ALIGN_START,
                  COLOR_TEXT, classes->names[ds->labels[rows[i]]]);
    }
    return canvas_save_png(&c, path, err);
}

/* ---------------------------------------------------------------- prediction grids */

#define BAR_W 10
#define BAR_GAP 2
#define BARS_H 30

static void tile_captions(fm_grid_tile *t, const fm_classes *classes) {
    snprintf(t->caption[0], sizeof t->caption[0], "%s %.1f%%", classes->names[t->predicted],
             100.0 * (double)t->confidence);
    snprintf(t->caption[1], sizeof t->caption[1], "true: %s", classes->names[t->label]);
}

fm_status fm_draw_prediction_grid(const char *path, const fm_dataset *ds, const float *probs,
                                  const uint32_t *rows, uint32_t count, const fm_classes *classes,
                                  const fm_grid_params *p, fm_grid_tile *tiles, fm_error *err) {
    fm_grid_params def = fm_grid_default_params();
    if (!p) p = &def;
    fm_status s = check_grid_input(path, ds, rows, count, classes, err);
    if (s) return s;
    int C = classes->n;
    int scale = p->scale > 0 ? p->scale : 3;
    if ((uint64_t)scale * (ds->w > ds->h ? ds->w : ds->h) > CANVAS_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "%s: images of %ux%u scaled %d times exceed %d pixels", path,
                       ds->h, ds->w, scale, CANVAS_MAX_SIDE);
    }
    int img_w = (int)ds->w * scale, img_h = (int)ds->h * scale;
    int bars_w = C * BAR_W + (C - 1) * BAR_GAP;

    char legend[2][512];
    snprintf(legend[0], sizeof legend[0],
             "Caption: predicted class and its probability, then the true class. Blue frame: right; red: wrong.");
    snprintf(legend[1], sizeof legend[1],
             "Bars: the probability of each class, %s (left) to %s (right); the true class in blue, a wrong guess in red.",
             classes->names[0], classes->names[C - 1]);

    fm_grid_tile one;
    canvas c;
    if ((s = canvas_open(&c, 1, 1, path, err))) return s;
    double caption_w = 0;
    for (uint32_t i = 0; i < count; i++) {
        const float *pr = probs + (size_t)rows[i] * C;
        one.predicted = fm_argmax(pr, C);
        one.label = ds->labels[rows[i]];
        one.confidence = pr[one.predicted];
        tile_captions(&one, classes);
        double w0 = text_width(c.cr, CAPTION_SIZE - 1, 1, one.caption[0]);
        double w1 = text_width(c.cr, CAPTION_SIZE - 1, 0, one.caption[1]);
        if (w0 > caption_w) caption_w = w0;
        if (w1 > caption_w) caption_w = w1;
    }
    double header_w = p->title ? text_width(c.cr, TITLE_SIZE, 1, p->title) : 0;
    for (int k = 0; k < 2; k++) {
        double w = text_width(c.cr, LEGEND_SIZE, 0, legend[k]);
        if (w > header_w) header_w = w;
    }
    canvas_close(&c);

    int inner = img_w;
    if (bars_w > inner) inner = bars_w;
    if (caption_w + 2 > inner) inner = (int)ceil(caption_w) + 2;
    int tile_w = inner + 16;
    int tile_h = 8 + img_h + 8 + 2 * ((int)CAPTION_SIZE + 4) + 6 + BARS_H + 10;
    int header_h = (p->title ? (int)TITLE_SIZE + 12 : 0) + 2 * ((int)LEGEND_SIZE + 7) + 10;
    grid_layout g = layout_grid(count, p->columns, tile_w, tile_h, header_h, header_w);
    if ((s = canvas_open(&c, g.width, g.height, path, err))) return s;
    cairo_t *cr = c.cr;

    int hy = GRID_MARGIN;
    if (p->title) {
        draw_text(cr, GRID_MARGIN, hy, TITLE_SIZE, 1, ALIGN_START, ALIGN_START, COLOR_TEXT, p->title);
        hy += (int)TITLE_SIZE + 12;
    }
    for (int k = 0; k < 2; k++) {
        draw_text(cr, GRID_MARGIN, hy, LEGEND_SIZE, 0, ALIGN_START, ALIGN_START, COLOR_MUTED, legend[k]);
        hy += (int)LEGEND_SIZE + 7;
    }

    for (uint32_t i = 0; i < count; i++) {
        fm_grid_tile t;
        memset(&t, 0, sizeof t);
        const float *pr = probs + (size_t)rows[i] * C;
        t.index = rows[i];
        t.label = ds->labels[rows[i]];
        t.predicted = fm_argmax(pr, C);
        t.confidence = pr[t.predicted];
        t.correct = t.predicted == t.label;
        tile_captions(&t, classes);
        tile_origin(&g, i, tile_w, tile_h, &t.x, &t.y);
        t.w = tile_w, t.h = tile_h;
        rgb outcome = t.correct ? COLOR_RIGHT : COLOR_WRONG;

        frame_rect(cr, t.x, t.y, t.w, t.h, 2, outcome);
        int ix = t.x + (tile_w - img_w) / 2, iy = t.y + 8;
        draw_gray_image(cr, ds->images + (size_t)rows[i] * ds->h * ds->w, ds->h, ds->w, ix, iy, scale);
        double cx = t.x + tile_w / 2.0, cy = iy + img_h + 8;
        draw_text(cr, cx, cy, CAPTION_SIZE - 1, 1, ALIGN_CENTER, ALIGN_START, outcome, t.caption[0]);
        cy += CAPTION_SIZE + 4;
        draw_text(cr, cx, cy, CAPTION_SIZE - 1, 0, ALIGN_CENTER, ALIGN_START, COLOR_MUTED, t.caption[1]);
        cy += CAPTION_SIZE + 4 + 6;

        /* The probability bar: one column per class over a base line, as the notebook's
         * plot_value_array draws it. */
        double bx = t.x + (tile_w - bars_w) / 2.0, base = cy + BARS_H;
        for (int k = 0; k < C; k++) {
            rgb col = k == t.label ? COLOR_RIGHT : k == t.predicted ? COLOR_WRONG : COLOR_BAR;
            double hgt = BARS_H * (double)pr[k];
            fill_rect(cr, bx + k * (BAR_W + BAR_GAP), base - hgt, BAR_W, hgt, col);
        }
        fill_rect(cr, bx - 2, base, bars_w + 4, 1, COLOR_AXIS);
        if (tiles) tiles[i] = t;
    }
    return canvas_save_png(&c, path, err);
}

fm_status fm_grid_tiles_write_csv(const char *path, const fm_grid_tile *tiles, uint32_t count,
                                  const fm_classes *classes, fm_error *err) {
    text_buf t = {0};
    text_printf(&t, "tile,index,label,predicted,label_name,predicted_name,confidence,correct,x,y,w,h,"
                    "caption_1,caption_2\n");
    for (uint32_t i = 0; i < count; i++) {
        const fm_grid_tile *g = &tiles[i];
        if (g->label < 0 || g->label >= classes->n || g->predicted < 0 || g->predicted >= classes->n) {
            text_free(&t);
            return fm_fail(err, FM_ERR_ARG, "%s: tile %u names a class outside 0..%d", path, i, classes->n - 1);
        }
        text_printf(&t, "%u,%u,%d,%d,", i, g->index, g->label, g->predicted);
        text_csv(&t, classes->names[g->label]);
        text_append(&t, ",", 1);
        text_csv(&t, classes->names[g->predicted]);
        text_printf(&t, ",%.9g,%d,%d,%d,%d,%d,", (double)g->confidence, g->correct, g->x, g->y, g->w, g->h);
        text_csv(&t, g->caption[0]);
        text_append(&t, ",", 1);
        text_csv(&t, g->caption[1]);
        text_append(&t, "\n", 1);
    }
    fm_status s = text_save(&t, path, err);
    text_free(&t);
    return s;
}
