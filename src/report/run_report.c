/* run_report.c — everything a run folder shows besides the model: the pictures, the CSV files
 * they were drawn from, and report.html, one self-contained page that puts them together with the
 * settings, the model summary and the test figures. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_report_params fm_report_default_params(void) {
    fm_report_params p;
    memset(&p, 0, sizeof p);
    p.grid_count = 24;
    p.mistakes_count = 24;
    return p;
}

/* Paths of the files in the run folder, built once. */
typedef struct {
    char curves[FM_PATH_MAX + 32], confusion_png[FM_PATH_MAX + 32], confusion_csv[FM_PATH_MAX + 32],
        predictions_png[FM_PATH_MAX + 32], predictions_csv[FM_PATH_MAX + 32],
        predictions_grid[FM_PATH_MAX + 32], mistakes_png[FM_PATH_MAX + 32],
        mistakes_grid[FM_PATH_MAX + 32], html[FM_PATH_MAX + 32];
} run_paths;

static void make_paths(run_paths *rp, const char *dir) {
    snprintf(rp->curves, sizeof rp->curves, "%s/curves.png", dir);
    snprintf(rp->confusion_png, sizeof rp->confusion_png, "%s/confusion.png", dir);
    snprintf(rp->confusion_csv, sizeof rp->confusion_csv, "%s/confusion.csv", dir);
    snprintf(rp->predictions_png, sizeof rp->predictions_png, "%s/predictions.png", dir);
    snprintf(rp->predictions_csv, sizeof rp->predictions_csv, "%s/predictions.csv", dir);
    snprintf(rp->predictions_grid, sizeof rp->predictions_grid, "%s/predictions-grid.csv", dir);
    snprintf(rp->mistakes_png, sizeof rp->mistakes_png, "%s/mistakes.png", dir);
    snprintf(rp->mistakes_grid, sizeof rp->mistakes_grid, "%s/mistakes-grid.csv", dir);
    snprintf(rp->html, sizeof rp->html, "%s/report.html", dir);
}

/* What the test set said, kept for the page. */
typedef struct {
    fm_eval_result ev;
    uint32_t *confusion;  /* [C, C] */
    uint32_t grid_count, mistakes;
} test_figures;

/* Predicts the whole test set once; every test picture and CSV is drawn from those numbers. */
static fm_status write_test_files(const run_paths *rp, fm_model *m, const fm_report_params *p,
                                  test_figures *tf, fm_error *err) {
    const fm_dataset *test = p->test;
    const fm_classes *cl = fm_model_classes(m);
    int C = cl->n;
    float *probs = malloc((size_t)test->n * C * sizeof *probs);
    uint32_t *rows = malloc((size_t)(test->n > 0 ? test->n : 1) * sizeof *rows);
    fm_grid_tile *tiles = NULL;
    tf->confusion = malloc((size_t)C * C * sizeof *tf->confusion);
    uint32_t most = p->grid_count > p->mistakes_count ? p->grid_count : p->mistakes_count;
    if (most > test->n) most = test->n;
    if (most) tiles = malloc((size_t)most * sizeof *tiles);
    fm_status s = FM_OK;
    if (!probs || !rows || !tf->confusion || (most && !tiles)) {
        s = fm_fail(err, FM_ERR_NOMEM, "out of memory for the predictions of %u test images", test->n);
        goto done;
    }
    if ((s = fm_evaluate(m, test, 1000, p->threads, &tf->ev, err)) ||
        (s = fm_predict(m, test, 0, test->n, probs, p->threads, err)) ||
        (s = fm_confusion_matrix(probs, test->labels, test->n, C, tf->confusion, err)) ||
        (s = fm_confusion_write_csv(rp->confusion_csv, tf->confusion, cl, err)) ||
        (s = fm_draw_confusion(rp->confusion_png, tf->confusion, cl, "Confusion matrix (test set)", err)) ||
        (s = fm_predictions_write_csv(rp->predictions_csv, test, probs, cl, err))) {
        goto done;
    }
    tf->grid_count = p->grid_count < test->n ? p->grid_count : test->n;
    if (tf->grid_count) {
        for (uint32_t i = 0; i < tf->grid_count; i++) rows[i] = i;
        fm_grid_params gp = fm_grid_default_params();
        char title[96];
        snprintf(title, sizeof title, "Predictions: the first %u test images", tf->grid_count);
        gp.title = title;
        if ((s = fm_draw_prediction_grid(rp->predictions_png, test, probs, rows, tf->grid_count, cl, &gp, tiles, err)) ||
            (s = fm_grid_tiles_write_csv(rp->predictions_grid, tiles, tf->grid_count, cl, err))) {
            goto done;
        }
    }
    tf->mistakes = fm_worst_mistakes(probs, test->labels, test->n, C, rows, p->mistakes_count);
    if (tf->mistakes) {
        fm_grid_params gp = fm_grid_default_params();
        char title[96];
        snprintf(title, sizeof title, "The %u most confident mistakes on the test set", tf->mistakes);
        gp.title = title;
        if ((s = fm_draw_prediction_grid(rp->mistakes_png, test, probs, rows, tf->mistakes, cl, &gp, tiles, err)) ||
            (s = fm_grid_tiles_write_csv(rp->mistakes_grid, tiles, tf->mistakes, cl, err))) {
            goto done;
        }
    }
done:
    free(probs);
    free(rows);
    free(tiles);
    return s;
}

/* One headline figure; data-value holds the exact number for checks, the text is for people. */
static void html_figure(text_buf *t, const char *id, double value, const char *shown, const char *label) {
    text_printf(t, "<div class=\"figure\"><div class=\"value\" id=\"%s\" data-value=\"%.17g\">", id, value);
    text_html(t, shown);
    text_printf(t, "</div><div class=\"label\">");
    text_html(t, label);
    text_printf(t, "</div></div>\n");
}

static void html_figures(text_buf *t, const fm_report_params *p, const test_figures *tf) {
    char shown[64], label[128];
    text_printf(t, "<div class=\"figures\">\n");
    if (p->test) {
        format_percent(shown, sizeof shown, tf->ev.accuracy);
        snprintf(label, sizeof label, "test accuracy (%u images)", tf->ev.n);
        html_figure(t, "test-accuracy", tf->ev.accuracy, shown, label);
        snprintf(shown, sizeof shown, "%.4f", tf->ev.loss);
        html_figure(t, "test-loss", tf->ev.loss, shown, "test loss");
        text_printf(t, "<span id=\"test-n\" data-value=\"%u\" hidden></span>\n", tf->ev.n);
    }
    const fm_history *h = p->history;
    if (h && h->n > 0) {
        int best = -1;
        for (int i = 0; i < h->n; i++) {
            if (isfinite(h->epochs[i].val_accuracy) &&
                (best < 0 || h->epochs[i].val_accuracy > h->epochs[best].val_accuracy)) {
                best = i;
            }
        }
        if (best >= 0) {
            format_percent(shown, sizeof shown, h->epochs[best].val_accuracy);
            snprintf(label, sizeof label, "best validation accuracy (epoch %d of %d)", best + 1, h->n);
            html_figure(t, "best-val-accuracy", h->epochs[best].val_accuracy, shown, label);
        }
        const fm_epoch_stats *last = &h->epochs[h->n - 1];
        format_percent(shown, sizeof shown, last->accuracy);
        snprintf(label, sizeof label, "training accuracy, epoch %d", h->n);
        html_figure(t, "train-accuracy", last->accuracy, shown, label);
    }
    text_printf(t, "</div>\n");
}

static void html_per_class(text_buf *t, const fm_classes *cl, const test_figures *tf) {
    text_printf(t, "<h2>Per-class accuracy (test set)</h2>\n<table id=\"per-class\">\n"
                   "<tr><th>class</th><th class=\"num\">images</th><th class=\"num\">right</th>"
                   "<th class=\"num\">accuracy</th><th>most often mistaken for</th></tr>\n");
    int C = cl->n;
    for (int k = 0; k < C; k++) {
        uint32_t n = tf->ev.per_class_n[k], right = tf->confusion[(size_t)k * C + k];
        int worst = -1;
        for (int j = 0; j < C; j++) {
            if (j != k && tf->confusion[(size_t)k * C + j] > 0 &&
                (worst < 0 || tf->confusion[(size_t)k * C + j] > tf->confusion[(size_t)k * C + worst])) {
                worst = j;
            }
        }
        char pct[32];
        format_percent(pct, sizeof pct, n ? tf->ev.per_class[k] : NAN);
        text_printf(t, "<tr data-class=\"");
        text_html(t, cl->names[k]);
        text_printf(t, "\" data-n=\"%u\" data-accuracy=\"%.17g\"><td>", n, n ? tf->ev.per_class[k] : -1.0);
        text_html(t, cl->names[k]);
        text_printf(t, "</td><td class=\"num\">%u</td><td class=\"num\">%u</td><td class=\"num\">%s</td><td>", n, right, pct);
        if (worst >= 0) {
            text_html(t, cl->names[worst]);
            text_printf(t, " (%u)", tf->confusion[(size_t)k * C + worst]);
        }
        text_printf(t, "</td></tr>\n");
    }
    text_printf(t, "</table>\n");
}

static void html_epochs(text_buf *t, const fm_history *h) {
    int val = 0;
    for (int i = 0; i < h->n; i++) val |= isfinite(h->epochs[i].val_loss);
    text_printf(t, "<h2>Epochs</h2>\n<table id=\"epochs\">\n<tr><th class=\"num\">epoch</th>"
                   "<th class=\"num\">loss</th><th class=\"num\">accuracy</th>");
    if (val) text_printf(t, "<th class=\"num\">val_loss</th><th class=\"num\">val_accuracy</th>");
    text_printf(t, "<th class=\"num\">seconds</th></tr>\n");
    for (int i = 0; i < h->n; i++) {
        const fm_epoch_stats *e = &h->epochs[i];
        text_printf(t, "<tr><td class=\"num\">%d</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>",
                    i + 1, e->loss, e->accuracy);
        if (val) text_printf(t, "<td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>", e->val_loss, e->val_accuracy);
        text_printf(t, "<td class=\"num\">%.1f</td></tr>\n", e->seconds);
    }
    text_printf(t, "</table>\n");
}

static fm_status write_page(const run_paths *rp, fm_model *m, const fm_report_params *p,
                            const test_figures *tf, fm_error *err) {
    const char *title = p->title ? p->title : "run";
    text_buf t = {0};
    char heading[FM_PATH_MAX + 32];
    snprintf(heading, sizeof heading, "fmnist run: %s", title);
    html_begin(&t, heading);
    text_printf(&t, "<h1>");
    text_html(&t, heading);
    text_printf(&t, "</h1>\n<p class=\"muted\">Model ");
    text_html(&t, fm_model_spec(m));
    text_printf(&t, ", %zu parameters. Written by fmnist %s; this page needs no other file.</p>\n",
                fm_model_param_count(m), FM_VERSION);
    html_figures(&t, p, tf);

    fm_status s = FM_OK;
    int have_curves = p->history && p->history->n > 0;
    if (have_curves) {
        text_printf(&t, "<h2>Training curves</h2>\n");
        s = html_image(&t, rp->curves, "Accuracy and loss per epoch", err);
    }
    if (!s && p->test) {
        html_per_class(&t, fm_model_classes(m), tf);
        text_printf(&t, "<h2>Confusion matrix</h2>\n<p class=\"muted\">Rows: the true class; columns: the "
                        "predicted class; shading: the share of the row.</p>\n");
        s = html_image(&t, rp->confusion_png, "Confusion matrix of the test set", err);
        if (!s && tf->grid_count) {
            text_printf(&t, "<h2>Predictions</h2>\n");
            s = html_image(&t, rp->predictions_png, "Predictions on the first test images", err);
        }
        if (!s) {
            text_printf(&t, "<h2>Most confident mistakes</h2>\n");
            if (tf->mistakes) s = html_image(&t, rp->mistakes_png, "The most confident wrong predictions", err);
            else text_printf(&t, "<p>Every test image is predicted right.</p>\n");
        }
    } else if (!s) {
        text_printf(&t, "<p class=\"muted\">No test-set figures: the run was trained with --no-test.</p>\n");
    }
    if (s) {
        text_free(&t);
        return s;
    }

    if (p->n_settings > 0) {
        text_printf(&t, "<h2>Settings</h2>\n<table id=\"settings\">\n");
        for (int i = 0; i < p->n_settings; i++) {
            text_printf(&t, "<tr><th>");
            text_html(&t, p->settings[i].name);
            text_printf(&t, "</th><td>");
            text_html(&t, p->settings[i].value);
            text_printf(&t, "</td></tr>\n");
        }
        text_printf(&t, "</table>\n");
    }
    size_t need = fm_model_summary(m, title, NULL, 0) + 1;
    char *summary = malloc(need);
    if (summary) {
        fm_model_summary(m, title, summary, need);
        text_printf(&t, "<h2>Model</h2>\n<pre id=\"model-summary\">");
        text_html(&t, summary);
        text_printf(&t, "</pre>\n");
        free(summary);
    } else {
        t.failed = 1;
    }
    if (have_curves) html_epochs(&t, p->history);
    text_printf(&t, "<h2>Files</h2>\n<p class=\"muted\">Next to this page: model.safetensors, history.csv, "
                    "history.json, run.json%s%s.</p>\n",
                have_curves ? ", curves.png" : "",
                p->test ? ", confusion.png and .csv, predictions.png, predictions.csv (every test image), "
                          "predictions-grid.csv and mistakes-grid.csv (what each picture's tiles show), mistakes.png"
                        : "");
    html_end(&t);
    s = text_save(&t, rp->html, err);
    text_free(&t);
    return s;
}

fm_status fm_report_write(const char *dir, fm_model *m, const fm_report_params *p,
                          fm_eval_result *test_out, fm_error *err) {
    fm_report_params def = fm_report_default_params();
    if (!p) p = &def;
    if (!dir || !*dir) return fm_fail(err, FM_ERR_ARG, "report: no folder given");
    if (strlen(dir) >= FM_PATH_MAX) return fm_fail(err, FM_ERR_ARG, "report: folder path too long");
    if (p->n_settings < 0 || (p->n_settings > 0 && !p->settings)) {
        return fm_fail(err, FM_ERR_ARG, "report: %d settings but no list", p->n_settings);
    }
    if (p->test && p->test->n == 0) return fm_fail(err, FM_ERR_ARG, "report: the test set is empty");
    run_paths rp;
    make_paths(&rp, dir);
    test_figures tf;
    memset(&tf, 0, sizeof tf);
    fm_status s = FM_OK;
    if (p->history && p->history->n > 0) {
        char title[FM_PATH_MAX + 64];
        snprintf(title, sizeof title, "Training curves: %s", p->title ? p->title : fm_model_spec(m));
        s = fm_draw_curves(rp.curves, p->history, title, err);
    }
    if (!s && p->test) s = write_test_files(&rp, m, p, &tf, err);
    if (!s) s = write_page(&rp, m, p, &tf, err);
    if (!s && test_out) *test_out = tf.ev;
    free(tf.confusion);
    return s;
}
