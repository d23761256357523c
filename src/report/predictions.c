/* predictions.c — a set's predictions as data: the predicted class of a row of probabilities,
 * the most confident mistakes, and the predictions CSV that `fmnist predict --all` and the run
 * report both write. */
#include "report.h"

#include <stdlib.h>

int fm_predicted_class(const float *probs, int n_classes) { return fm_argmax(probs, n_classes); }

typedef struct {
    float confidence;
    uint32_t index;
} scored_row;

/* Highest confidence first; equal confidences keep the lower index first, so the order is total. */
static int by_confidence_desc(const void *a, const void *b) {
    const scored_row *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence > y->confidence ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

uint32_t fm_worst_mistakes(const float *probs, const uint8_t *labels, uint32_t n, int n_classes,
                           uint32_t *rows, uint32_t max) {
    if (max == 0 || n == 0) return 0;
    scored_row *wrong = malloc((size_t)n * sizeof *wrong);
    if (!wrong) return 0;
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * n_classes;
        int pred = fm_argmax(p, n_classes);
        if (pred != labels[i]) wrong[count++] = (scored_row){p[pred], i};
    }
    qsort(wrong, count, sizeof *wrong, by_confidence_desc);
    if (count > max) count = max;
    for (uint32_t k = 0; k < count; k++) rows[k] = wrong[k].index;
    free(wrong);
    return count;
}

fm_status fm_predictions_write_csv(const char *path, const fm_dataset *ds, const float *probs,
                                   const fm_classes *classes, fm_error *err) {
    int C = classes->n;
    for (uint32_t i = 0; i < ds->n; i++) {
        if (ds->labels[i] >= C) {
            return fm_fail(err, FM_ERR_ARG, "%s: label %d of image %u has no name among %d classes",
                           path, ds->labels[i], i, C);
        }
    }
    text_buf t = {0};
    text_printf(&t, "index,label,predicted,label_name,predicted_name,confidence");
    for (int k = 0; k < C; k++) text_printf(&t, ",p%d", k);
    text_append(&t, "\n", 1);
    for (uint32_t i = 0; i < ds->n; i++) {
        const float *p = probs + (size_t)i * C;
        int pred = fm_argmax(p, C);
        text_printf(&t, "%u,%d,%d,", i, ds->labels[i], pred);
        text_csv(&t, classes->names[ds->labels[i]]);
        text_append(&t, ",", 1);
        text_csv(&t, classes->names[pred]);
        text_printf(&t, ",%.9g", (double)p[pred]);
        for (int k = 0; k < C; k++) text_printf(&t, ",%.9g", (double)p[k]);
        text_append(&t, "\n", 1);
    }
    fm_status s = text_save(&t, path, err);
    text_free(&t);
    return s;
}
