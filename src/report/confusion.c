/* confusion.c — the confusion matrix: counting it from predictions, its CSV file, and its picture
 * (class names, a count in every cell, cells shaded by their share of the true class, and each
 * class's accuracy beside its row). */
#include "report.h"

#include <math.h>
#include <string.h>

fm_status fm_confusion_matrix(const float *probs, const uint8_t *labels, uint32_t n, int n_classes,
                              uint32_t *counts, fm_error *err) {
    if (n_classes < 1 || n_classes > FM_MAX_CLASSES) {
        return fm_fail(err, FM_ERR_ARG, "confusion matrix: %d classes is outside 1..%d", n_classes,
                       FM_MAX_CLASSES);
    }
    int C = n_classes;
    memset(counts, 0, (size_t)C * C * sizeof *counts);
    for (uint32_t i = 0; i < n; i++) {
        if (labels[i] >= C) {
            return fm_fail(err, FM_ERR_ARG, "confusion matrix: label %d of image %u is not below %d",
                           labels[i], i, C);
        }
        counts[(size_t)labels[i] * C + fm_argmax(probs + (size_t)i * C, C)]++;
    }
    return FM_OK;
}

fm_status fm_confusion_write_csv(const char *path, const uint32_t *counts, const fm_classes *classes,
                                 fm_error *err) {
    int C = classes->n;
    text_buf t = {0};
    text_printf(&t, "true_class");
    for (int p = 0; p < C; p++) {
        text_append(&t, ",", 1);
        text_csv(&t, classes->names[p]);
    }
    text_printf(&t, ",total,accuracy\n");
    for (int r = 0; r < C; r++) {
        text_csv(&t, classes->names[r]);
        uint64_t total = 0;
        for (int p = 0; p < C; p++) {
            text_printf(&t, ",%u", counts[(size_t)r * C + p]);
            total += counts[(size_t)r * C + p];
        }
        if (total) text_printf(&t, ",%llu,%.9g\n", (unsigned long long)total, (double)counts[(size_t)r * C + r] / (double)total);
        else text_printf(&t, ",0,\n");
    }
    fm_status s = text_save(&t, path, err);
    text_free(&t);
    return s;
}

/* White to dark blue (matplotlib's Blues, end points) by share 0..1. */
static rgb shade(double share) {
    const rgb lo = {0.969, 0.984, 1.000}, hi = {0.031, 0.188, 0.420};
    double s = share < 0 ? 0 : share > 1 ? 1 : share;
    s = sqrt(s); /* off-diagonal cells hold a few percent: a square root makes them visible */
    return (rgb){lo.r + (hi.r - lo.r) * s, lo.g + (hi.g - lo.g) * s, lo.b + (hi.b - lo.b) * s};
}

fm_status fm_draw_confusion(const char *path, const uint32_t *counts, const fm_classes *classes,
                            const char *title, fm_error *err) {
    int C = classes->n;
    if (C < 1) return fm_fail(err, FM_ERR_ARG, "%s: no classes to draw", path);
    const int cell = C <= 12 ? 54 : C <= 40 ? 640 / C : 16;
    const int show_counts = cell >= 30;
    const double label_size = cell >= 30 ? 13 : 9, count_size = 13, title_size = 17;
    const int margin = 20, gap = 8;

    /* Measure the names on a scratch canvas so the matrix sits where they leave room. */
    canvas c;
    fm_status s = canvas_open(&c, 1, 1, path, err);
    if (s) return s;
    double names_w = 0;
    for (int k = 0; k < C; k++) {
        double w = text_width(c.cr, label_size, 0, classes->names[k]);
        if (w > names_w) names_w = w;
    }
    double acc_w = text_width(c.cr, label_size, 1, "accuracy");
    canvas_close(&c);

    int axis_title = 22; /* "True class" / "Predicted class" band */
    int left = margin + axis_title + (int)ceil(names_w) + gap;
    int top = margin + (title ? (int)title_size + 14 : 0) + axis_title + (int)ceil(names_w) + gap;
    int matrix = cell * C;
    int width = left + matrix + gap + 12 + (int)ceil(acc_w) + margin;
    int height = top + matrix + margin + 4;
    s = canvas_open(&c, width, height, path, err);
    if (s) return s;
    cairo_t *cr = c.cr;

    if (title) draw_text(cr, margin, margin, title_size, 1, ALIGN_START, ALIGN_START, COLOR_TEXT, title);
    draw_text(cr, left + matrix / 2.0, top - gap - names_w - axis_title / 2.0, 14, 1, ALIGN_CENTER,
              ALIGN_CENTER, COLOR_TEXT, "Predicted class");
    draw_text_rotated(cr, margin + axis_title / 2.0, top + matrix / 2.0, -QUARTER_TURN, 14, 1,
                      ALIGN_CENTER, ALIGN_CENTER, COLOR_TEXT, "True class");

    for (int r = 0; r < C; r++) {
        uint64_t total = 0;
        for (int p = 0; p < C; p++) total += counts[(size_t)r * C + p];
        double y = top + (double)r * cell;
        draw_text(cr, left - gap, y + cell / 2.0, label_size, 0, ALIGN_END, ALIGN_CENTER, COLOR_TEXT,
                  classes->names[r]);
        for (int p = 0; p < C; p++) {
            uint32_t v = counts[(size_t)r * C + p];
            double share = total ? (double)v / (double)total : 0.0;
            double x = left + (double)p * cell;
            fill_rect(cr, x, y, cell, cell, shade(share));
            if (show_counts) {
                char num[16];
                snprintf(num, sizeof num, "%u", v);
                rgb ink = sqrt(share) > 0.55 ? (rgb){1, 1, 1} : v ? COLOR_TEXT : COLOR_GRID;
                draw_text(cr, x + cell / 2.0, y + cell / 2.0, count_size, p == r, ALIGN_CENTER,
                          ALIGN_CENTER, ink, num);
            }
        }
        char pct[32];
        format_percent(pct, sizeof pct, total ? (double)counts[(size_t)r * C + r] / (double)total : NAN);
        draw_text(cr, left + matrix + gap + 12 + acc_w, y + cell / 2.0, label_size, 0, ALIGN_END,
                  ALIGN_CENTER, COLOR_TEXT, pct);
    }
    for (int p = 0; p < C; p++) {
        draw_text_rotated(cr, left + (p + 0.5) * cell, top - gap, -QUARTER_TURN, label_size, 0,
                          ALIGN_START, ALIGN_CENTER, COLOR_TEXT, classes->names[p]);
    }
    draw_text(cr, left + matrix + gap + 12 + acc_w, top - gap, label_size, 1, ALIGN_END, ALIGN_END,
              COLOR_TEXT, "accuracy");
    /* Thin white lines between cells keep neighbouring dark cells apart. */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1);
    for (int k = 1; k < C; k++) {
        cairo_move_to(cr, left + k * cell + 0.5, top);
        cairo_line_to(cr, left + k * cell + 0.5, top + matrix);
        cairo_move_to(cr, left, top + k * cell + 0.5);
        cairo_line_to(cr, left + matrix, top + k * cell + 0.5);
    }
    cairo_stroke(cr);
    return canvas_save_png(&c, path, err);
}
