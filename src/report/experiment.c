/* experiment.c — the comparison of an experiment's configurations: the table as CSV and Markdown,
 * every run's validation accuracy on one chart, and a page with both and links to each run's own
 * report. Configurations that share a run (identical settings) are drawn once. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 266610 -> "266,610" */
static void thousands(char *out, size_t cap, size_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static void best_val_text(char *out, size_t cap, const fm_experiment_row *r) {
    if (!isfinite(r->best_val_accuracy)) {
        snprintf(out, cap, "\xe2\x80\x94");
        return;
    }
    char pct[32];
    format_percent(pct, sizeof pct, r->best_val_accuracy);
    snprintf(out, cap, "%s (epoch %d)", pct, r->best_val_epoch);
}

static fm_status write_csv(const char *path, const fm_experiment_row *rows, int n, fm_error *err) {
    text_buf t = {0};
    text_printf(&t, "name,model,params,epochs,training,best_val_accuracy,best_val_epoch,test_accuracy,seconds,run\n");
    for (int i = 0; i < n; i++) {
        const fm_experiment_row *r = &rows[i];
        text_csv(&t, r->name);
        text_append(&t, ",", 1);
        text_csv(&t, r->model);
        text_printf(&t, ",%zu,%d,", r->params, r->epochs);
        text_csv(&t, r->training);
        if (isfinite(r->best_val_accuracy)) text_printf(&t, ",%.9g,%d", r->best_val_accuracy, r->best_val_epoch);
        else text_printf(&t, ",,");
        if (isfinite(r->test_accuracy)) text_printf(&t, ",%.9g", r->test_accuracy);
        else text_printf(&t, ",");
        text_printf(&t, ",%.1f,", r->seconds);
        text_csv(&t, r->run);
        text_append(&t, "\n", 1);
    }
    fm_status s = text_save(&t, path, err);
    text_free(&t);
    return s;
}

/* Markdown cells must not break the table: '|' is escaped. */
static void md_cell(text_buf *t, const char *s) {
    text_append(t, " ", 1);
    for (; *s; s++) {
        if (*s == '|') text_append(t, "\\", 1);
        text_append(t, s, 1);
    }
    text_append(t, " |", 2);
}

static fm_status write_markdown(const char *path, const char *title, const fm_experiment_row *rows,
                                int n, fm_error *err) {
    text_buf t = {0};
    if (title) text_printf(&t, "# %s\n\n", title);
    text_printf(&t, "| config | model | parameters | epochs | training | best validation accuracy | "
                    "test accuracy | time | run |\n"
                    "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |\n");
    for (int i = 0; i < n; i++) {
        const fm_experiment_row *r = &rows[i];
        char buf[128];
        text_append(&t, "|", 1);
        md_cell(&t, r->name);
        snprintf(buf, sizeof buf, "`%s`", r->model);
        md_cell(&t, buf);
        thousands(buf, sizeof buf, r->params);
        md_cell(&t, buf);
        snprintf(buf, sizeof buf, "%d", r->epochs);
        md_cell(&t, buf);
        md_cell(&t, r->training);
        best_val_text(buf, sizeof buf, r);
        md_cell(&t, buf);
        format_percent(buf, sizeof buf, r->test_accuracy);
        md_cell(&t, buf);
        snprintf(buf, sizeof buf, "%.1f s", r->seconds);
        md_cell(&t, buf);
        md_cell(&t, r->run);
        text_append(&t, "\n", 1);
    }
    fm_status s = text_save(&t, path, err);
    text_free(&t);
    return s;
}

/* The index of the first row of each distinct run, and its label: the names sharing it. */
typedef struct {
    int n;
    int *first;
    char **labels;
    fm_history *histories;
} run_groups;

static void groups_free(run_groups *g) {
    for (int i = 0; g->labels && i < g->n; i++) free(g->labels[i]);
    free(g->first), free(g->labels), free(g->histories);
    memset(g, 0, sizeof *g);
}

static fm_status group_runs(const fm_experiment_row *rows, int n, run_groups *g, fm_error *err) {
    memset(g, 0, sizeof *g);
    g->first = calloc((size_t)n, sizeof *g->first);
    g->labels = calloc((size_t)n, sizeof *g->labels);
    g->histories = calloc((size_t)n, sizeof *g->histories);
    if (!g->first || !g->labels || !g->histories) return fm_fail(err, FM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < g->n && strcmp(rows[g->first[k]].run, rows[i].run) != 0) k++;
        if (k == g->n) {
            g->first[g->n] = i;
            g->histories[g->n] = *rows[i].history;
            g->labels[g->n] = NULL;
            g->n++;
        }
        text_buf label = {0};
        if (g->labels[k]) text_printf(&label, "%s = %s", g->labels[k], rows[i].name);
        else text_printf(&label, "%s", rows[i].name);
        free(g->labels[k]);
        g->labels[k] = label.data;
        if (label.failed || !label.data) return fm_fail(err, FM_ERR_NOMEM, "out of memory");
    }
    return FM_OK;
}

static fm_status write_page(const char *path, const char *png, const char *title,
                            const fm_experiment_row *rows, int n, fm_error *err) {
    text_buf t = {0};
    const char *heading = title ? title : "fmnist experiment";
    html_begin(&t, heading);
    text_printf(&t, "<h1>");
    text_html(&t, heading);
    text_printf(&t, "</h1>\n<p class=\"muted\">%d configurations. Configurations with identical settings "
                    "share one run. Each run folder holds its model and its own report.html.</p>\n", n);
    text_printf(&t, "<table id=\"results\">\n<tr><th>config</th><th>model</th><th class=\"num\">parameters</th>"
                    "<th class=\"num\">epochs</th><th>training</th><th class=\"num\">best validation accuracy</th>"
                    "<th class=\"num\">test accuracy</th><th class=\"num\">time</th><th>run</th></tr>\n");
    for (int i = 0; i < n; i++) {
        const fm_experiment_row *r = &rows[i];
        char params[32], best[96], test[32];
        thousands(params, sizeof params, r->params);
        best_val_text(best, sizeof best, r);
        format_percent(test, sizeof test, r->test_accuracy);
        text_printf(&t, "<tr data-name=\"");
        text_html(&t, r->name);
        text_printf(&t, "\" data-test-accuracy=\"%.17g\"><td>", r->test_accuracy);
        text_html(&t, r->name);
        text_printf(&t, "</td><td><code>");
        text_html(&t, r->model);
        text_printf(&t, "</code></td><td class=\"num\">%s</td><td class=\"num\">%d</td><td>", params, r->epochs);
        text_html(&t, r->training);
        text_printf(&t, "</td><td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%.1f s</td>"
                        "<td><a href=\"", best, test, r->seconds);
        text_html(&t, r->run);
        text_printf(&t, "/report.html\">");
        text_html(&t, r->run);
        text_printf(&t, "</a></td></tr>\n");
    }
    text_printf(&t, "</table>\n<h2>Validation accuracy per epoch</h2>\n");
    fm_status s = html_image(&t, png, "Validation accuracy per epoch of every run", err);
    if (!s) {
        html_end(&t);
        s = text_save(&t, path, err);
    }
    text_free(&t);
    return s;
}

fm_status fm_experiment_write(const char *dir, const char *title, const fm_experiment_row *rows,
                              int n, fm_error *err) {
    if (n < 1) return fm_fail(err, FM_ERR_ARG, "experiment: no configurations to compare");
    if (!dir || strlen(dir) >= FM_PATH_MAX) return fm_fail(err, FM_ERR_ARG, "experiment: bad folder");
    for (int i = 0; i < n; i++) {
        if (!rows[i].name || !rows[i].model || !rows[i].training || !rows[i].run || !rows[i].history) {
            return fm_fail(err, FM_ERR_ARG, "experiment: row %d lacks a name, model, training settings, run or history", i + 1);
        }
    }
    char csv[FM_PATH_MAX + 32], md[FM_PATH_MAX + 32], png[FM_PATH_MAX + 32], html[FM_PATH_MAX + 32];
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    snprintf(md, sizeof md, "%s/results.md", dir);
    snprintf(png, sizeof png, "%s/val_accuracy.png", dir);
    snprintf(html, sizeof html, "%s/index.html", dir);
    run_groups g;
    fm_status s = group_runs(rows, n, &g, err);
    if (!s) s = write_csv(csv, rows, n, err);
    if (!s) s = write_markdown(md, title, rows, n, err);
    if (!s) {
        s = fm_draw_val_accuracy(png, "Validation accuracy per epoch", g.histories,
                                 (const char *const *)g.labels, g.n, err);
    }
    if (!s) s = write_page(html, png, title, rows, n, err);
    groups_free(&g);
    return s;
}
