/* chart.c — line charts per epoch: a run's training curves (accuracy and loss, two panels) and
 * several runs' validation accuracy on one set of axes. One panel drawer does the axes, ticks,
 * grid, lines, points and legend for both. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHART_MARGIN 20
#define TITLE_SIZE 17.0
#define TICK_SIZE 12.0
#define LABEL_SIZE 13.0
#define LEGEND_SIZE 12.5

typedef struct {
    const double *y;   /* y[0..n): the value at epoch i+1; NaN values are skipped */
    int n;
    rgb color;
    int dashed;
    const char *label;
} series;

typedef enum { LEGEND_LOWER_RIGHT, LEGEND_UPPER_RIGHT, LEGEND_OUTSIDE_RIGHT } legend_place;

typedef struct {
    double x, y, w, h;  /* the whole panel, labels included */
    const char *title, *ylabel;
    int percent;        /* y values are fractions shown as percentages */
    legend_place legend;
} panel;

/* A step of 1, 2, 2.5 or 5 times a power of ten giving about `want` intervals over span. */
static double nice_step(double span, int want) {
    double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return nice * mag;
}

/* Digits after the point that a tick step needs. */
static int step_decimals(double step) {
    int d = 0;
    while (d < 8 && fabs(step * pow(10, d) - floor(step * pow(10, d) + 0.5)) > 1e-9) d++;
    return d;
}

static double legend_width(cairo_t *cr, const series *s, int ns) {
    double w = 0;
    for (int i = 0; i < ns; i++) {
        double lw = text_width(cr, LEGEND_SIZE, 0, s[i].label);
        if (lw > w) w = lw;
    }
    return w + 44; /* swatch, gaps and padding */
}

static void draw_legend(cairo_t *cr, double x, double y, const series *s, int ns, double w) {
    double row = LEGEND_SIZE + 8, h = ns * row + 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < ns; i++) {
        double cy = y + 5 + row * i + row / 2;
        cairo_set_source_rgb(cr, s[i].color.r, s[i].color.g, s[i].color.b);
        cairo_set_line_width(cr, 2.2);
        if (s[i].dashed) {
            double dash[] = {5, 3};
            cairo_set_dash(cr, dash, 2, 0);
        }
        cairo_move_to(cr, x + 8, cy);
        cairo_line_to(cr, x + 30, cy);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        draw_text(cr, x + 36, cy, LEGEND_SIZE, 0, ALIGN_START, ALIGN_CENTER, COLOR_TEXT, s[i].label);
    }
}

static void draw_panel(cairo_t *cr, const panel *pn, const series *s, int ns) {
    int epochs = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < ns; i++) {
        if (s[i].n > epochs) epochs = s[i].n;
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].y[k])) continue;
            if (s[i].y[k] < lo) lo = s[i].y[k];
            if (s[i].y[k] > hi) hi = s[i].y[k];
        }
    }
    if (!(lo <= hi)) lo = 0, hi = 1; /* nothing finite to draw: still draw the axes */
    double scale = pn->percent ? 100.0 : 1.0;
    lo *= scale, hi *= scale;
    if (hi - lo < 1e-9 * (fabs(hi) + 1)) { /* one value: give it room */
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.02 : 0.5;
        lo -= pad, hi += pad;
    }
    double ystep = nice_step(hi - lo, 5);
    double ylo = floor(lo / ystep) * ystep, yhi = ceil(hi / ystep) * ystep;
    if (pn->percent && yhi > 100) yhi = 100;
    int ydec = step_decimals(ystep);

    /* The x axis: epochs 1..N; a single epoch gets a half epoch either side. */
    double xlo = epochs > 1 ? 1 : 0.5, xhi = epochs > 1 ? epochs : 1.5;
    int xstep = epochs <= 10 ? 1 : (int)nice_step(epochs, 6);
    if (xstep < 1) xstep = 1;

    char buf[64];
    double ylab_w = 0;
    for (double v = ylo; v <= yhi + ystep / 2; v += ystep) {
        snprintf(buf, sizeof buf, pn->percent ? "%.*f%%" : "%.*f", ydec, v);
        double w = text_width(cr, TICK_SIZE, 0, buf);
        if (w > ylab_w) ylab_w = w;
    }
    double leg_w = legend_width(cr, s, ns);
    double px = pn->x + LABEL_SIZE + 10 + ylab_w + 8;
    double pw = pn->x + pn->w - px - (pn->legend == LEGEND_OUTSIDE_RIGHT ? leg_w + 16 : 4);
    double py = pn->y + (pn->title ? LABEL_SIZE + 14 : 4);
    double ph = pn->y + pn->h - py - (TICK_SIZE + 8) - (LABEL_SIZE + 10);
    double pad = pw * 0.02; /* points at the ends stay off the frame */
#define XPOS(e) (px + pad + ((e)-xlo) / (xhi - xlo) * (pw - 2 * pad))
#define YPOS(v) (py + ph - ((v)-ylo) / (yhi - ylo) * ph)

    if (pn->title) draw_text(cr, px + pw / 2, pn->y, LABEL_SIZE + 1, 1, ALIGN_CENTER, ALIGN_START, COLOR_TEXT, pn->title);
    cairo_set_line_width(cr, 1);
    for (double v = ylo; v <= yhi + ystep / 2; v += ystep) {
        double yy = floor(YPOS(v)) + 0.5;
        cairo_set_source_rgb(cr, COLOR_GRID.r, COLOR_GRID.g, COLOR_GRID.b);
        cairo_move_to(cr, px, yy);
        cairo_line_to(cr, px + pw, yy);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, pn->percent ? "%.*f%%" : "%.*f", ydec, v);
        draw_text(cr, px - 8, yy, TICK_SIZE, 0, ALIGN_END, ALIGN_CENTER, COLOR_AXIS, buf);
    }
    for (int e = 1; e <= (epochs > 0 ? epochs : 1); e++) {
        if (e != 1 && e % xstep != 0) continue;
        /* With a large step, 1 and the first multiple may sit too close to label both. */
        if (e == 1 && xstep > 2 && epochs >= xstep && XPOS(xstep) - XPOS(1) < 28) continue;
        double xx = floor(XPOS(e)) + 0.5;
        cairo_set_source_rgb(cr, COLOR_AXIS.r, COLOR_AXIS.g, COLOR_AXIS.b);
        cairo_move_to(cr, xx, py + ph);
        cairo_line_to(cr, xx, py + ph + 5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d", e);
        draw_text(cr, xx, py + ph + 8, TICK_SIZE, 0, ALIGN_CENTER, ALIGN_START, COLOR_AXIS, buf);
    }
    cairo_set_source_rgb(cr, COLOR_AXIS.r, COLOR_AXIS.g, COLOR_AXIS.b);
    cairo_move_to(cr, floor(px) + 0.5, py);
    cairo_line_to(cr, floor(px) + 0.5, floor(py + ph) + 0.5);
    cairo_line_to(cr, px + pw, floor(py + ph) + 0.5);
    cairo_stroke(cr);
    draw_text(cr, px + pw / 2, pn->y + pn->h, LABEL_SIZE, 0, ALIGN_CENTER, ALIGN_END, COLOR_TEXT, "epoch");
    draw_text_rotated(cr, pn->x + LABEL_SIZE / 2 + 2, py + ph / 2, -QUARTER_TURN, LABEL_SIZE, 0,
                      ALIGN_CENTER, ALIGN_CENTER, COLOR_TEXT, pn->ylabel);

    cairo_save(cr);
    cairo_rectangle(cr, px, py - 6, pw + 6, ph + 12);
    cairo_clip(cr);
    /* Longer series first: runs that repeat a shorter run's first epochs (same seed, more epochs)
     * would otherwise hide it under their own line. */
    int drawn[64], order_n = ns < 64 ? ns : 64;
    for (int i = 0; i < order_n; i++) drawn[i] = i;
    for (int i = 1; i < order_n; i++) {
        for (int j = i; j > 0 && s[drawn[j]].n > s[drawn[j - 1]].n; j--) {
            int tmp = drawn[j];
            drawn[j] = drawn[j - 1], drawn[j - 1] = tmp;
        }
    }
    for (int oi = 0; oi < ns; oi++) {
        const series *se = &s[oi < order_n ? drawn[oi] : oi];
        cairo_set_source_rgb(cr, se->color.r, se->color.g, se->color.b);
        cairo_set_line_width(cr, 2.2);
        if (se->dashed) {
            double dash[] = {6, 4};
            cairo_set_dash(cr, dash, 2, 0);
        }
        int pen = 0;
        for (int k = 0; k < se->n; k++) {
            if (!isfinite(se->y[k])) {
                pen = 0;
                continue;
            }
            double xx = XPOS(k + 1), yy = YPOS(se->y[k] * scale);
            if (pen) cairo_line_to(cr, xx, yy);
            else cairo_move_to(cr, xx, yy);
            pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        double r = se->n <= 12 ? 3.5 : se->n <= 40 ? 2.5 : 0; /* points while they stay apart */
        for (int k = 0; r > 0 && k < se->n; k++) {
            if (!isfinite(se->y[k])) continue;
            cairo_arc(cr, XPOS(k + 1), YPOS(se->y[k] * scale), r, 0, 4 * QUARTER_TURN);
            cairo_fill(cr);
        }
    }
    cairo_restore(cr);
#undef XPOS
#undef YPOS

    if (ns == 0) return;
    double lh = ns * (LEGEND_SIZE + 8) + 10;
    if (pn->legend == LEGEND_OUTSIDE_RIGHT) draw_legend(cr, px + pw + 16, py, s, ns, leg_w);
    else if (pn->legend == LEGEND_UPPER_RIGHT) draw_legend(cr, px + pw - leg_w - 10, py + 10, s, ns, leg_w);
    else draw_legend(cr, px + pw - leg_w - 10, py + ph - lh - 10, s, ns, leg_w);
}

/* The columns of a history as arrays: loss, accuracy, val_loss, val_accuracy. */
static double *history_column(const fm_history *h, int which) {
    double *v = malloc((size_t)(h->n > 0 ? h->n : 1) * sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < h->n; i++) {
        const fm_epoch_stats *e = &h->epochs[i];
        v[i] = which == 0 ? e->loss : which == 1 ? e->accuracy : which == 2 ? e->val_loss : e->val_accuracy;
    }
    return v;
}

static int history_has_val(const fm_history *h) {
    for (int i = 0; i < h->n; i++) {
        if (isfinite(h->epochs[i].val_accuracy)) return 1;
    }
    return 0;
}

fm_status fm_draw_curves(const char *path, const fm_history *h, const char *title, fm_error *err) {
    if (!h || h->n < 1) return fm_fail(err, FM_ERR_ARG, "%s: the history has no epochs to draw", path);
    double *col[4] = {0};
    for (int k = 0; k < 4; k++) {
        if (!(col[k] = history_column(h, k))) {
            for (int j = 0; j < k; j++) free(col[j]);
            return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    int val = history_has_val(h);
    const int width = 1100, height = 460;
    canvas c;
    fm_status s = canvas_open(&c, width, height, path, err);
    if (!s) {
        cairo_t *cr = c.cr;
        double top = CHART_MARGIN;
        if (title) {
            draw_text(cr, CHART_MARGIN, top, TITLE_SIZE, 1, ALIGN_START, ALIGN_START, COLOR_TEXT, title);
            top += TITLE_SIZE + 16;
        }
        series acc[2] = {{col[1], h->n, series_color(0), 0, "training"},
                         {col[3], h->n, series_color(1), 1, "validation"}};
        series loss[2] = {{col[0], h->n, series_color(0), 0, "training"},
                          {col[2], h->n, series_color(1), 1, "validation"}};
        double pw = (width - 2 * CHART_MARGIN - 40) / 2.0, ph = height - top - CHART_MARGIN;
        panel left = {CHART_MARGIN, top, pw, ph, "Accuracy", "accuracy", 1, LEGEND_LOWER_RIGHT};
        panel right = {CHART_MARGIN + pw + 40, top, pw, ph, "Loss", "loss (cross-entropy)", 0, LEGEND_UPPER_RIGHT};
        draw_panel(cr, &left, acc, val ? 2 : 1);
        draw_panel(cr, &right, loss, val ? 2 : 1);
        s = canvas_save_png(&c, path, err);
    }
    for (int k = 0; k < 4; k++) free(col[k]);
    return s;
}

fm_status fm_draw_val_accuracy(const char *path, const char *title, const fm_history *histories,
                               const char *const *labels, int n, fm_error *err) {
    if (n < 1) return fm_fail(err, FM_ERR_ARG, "%s: no runs to draw", path);
    series *s = calloc((size_t)n, sizeof *s);
    double **cols = calloc((size_t)n, sizeof *cols);
    fm_status st = FM_OK;
    if (!s || !cols) st = fm_fail(err, FM_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; !st && i < n; i++) {
        if (!history_has_val(&histories[i])) {
            st = fm_fail(err, FM_ERR_ARG, "%s: run \"%s\" has no validation accuracy to draw", path, labels[i]);
        } else if (!(cols[i] = history_column(&histories[i], 3))) {
            st = fm_fail(err, FM_ERR_NOMEM, "%s: out of memory", path);
        } else {
            s[i] = (series){cols[i], histories[i].n, series_color(i), i >= 10, labels[i]};
        }
    }
    canvas c;
    if (!st && !(st = canvas_open(&c, 1, 1, path, err))) {
        double leg_w = legend_width(c.cr, s, n);
        canvas_close(&c);
        int width = 760 + (int)ceil(leg_w), height = 520;
        if (n > 16) height += (n - 16) * (int)(LEGEND_SIZE + 8);
        if (!(st = canvas_open(&c, width, height, path, err))) {
            double top = CHART_MARGIN;
            if (title) {
                draw_text(c.cr, CHART_MARGIN, top, TITLE_SIZE, 1, ALIGN_START, ALIGN_START, COLOR_TEXT, title);
                top += TITLE_SIZE + 16;
            }
            panel pn = {CHART_MARGIN, top, width - 2 * CHART_MARGIN, height - top - CHART_MARGIN, NULL,
                        "validation accuracy", 1, LEGEND_OUTSIDE_RIGHT};
            draw_panel(c.cr, &pn, s, n);
            st = canvas_save_png(&c, path, err);
        }
    }
    for (int i = 0; cols && i < n; i++) free(cols[i]);
    free(cols);
    free(s);
    return st;
}
