/* train.c — the fit loop (shuffle, augmentation, mini-batches, loss, backward, L2, schedule,
 * weight decay, optimizer step), validation on the held-out head of the training set with its
 * callbacks (best epoch, early stopping, plateaus), weight averaging over the last epochs, and
 * evaluation. All buffers are allocated before the first batch. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_train_params fm_train_default_params(void) {
    fm_train_params p;
    memset(&p, 0, sizeof p);
    p.epochs = 10;
    p.batch = 32;
    p.optimizer = FM_OPT_ADAM;
    p.lr = 0.0f; /* optimizer default */
    p.momentum = 0.0f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.eps = 1e-7f;
    p.seed = 1;
    p.threads = 0;
    p.val = 5000;
    p.schedule = FM_SCHED_CONSTANT;
    p.step_epochs = 10;
    p.step_gamma = 0.1f;
    p.monitor = FM_MONITOR_VAL_ACCURACY;
    p.reduce_lr_factor = 0.1f;
    return p;
}

/* The settings convolutional networks brought: weight decay, schedules, label smoothing,
 * augmentation. */
static fm_status train_params_check_more(const fm_train_params *p, fm_error *err) {
    if (!isfinite(p->weight_decay) || p->weight_decay < 0.0f || p->weight_decay > 1.0f) {
        return fm_fail(err, FM_ERR_ARG, "weight decay must be in [0, 1], got %g", (double)p->weight_decay);
    }
    if (p->weight_decay > 0.0f && p->optimizer == FM_OPT_ADAM) {
        return fm_fail(err, FM_ERR_ARG, "weight decay is decoupled: use it with adamw or sgd (for "
                       "a penalty in the loss use l2)");
    }
    if ((unsigned)p->schedule > FM_SCHED_ONECYCLE) {
        return fm_fail(err, FM_ERR_ARG, "unknown schedule %d", (int)p->schedule);
    }
    if (!isfinite(p->warmup) || p->warmup < 0.0f || p->warmup >= (float)p->epochs) {
        return fm_fail(err, FM_ERR_ARG, "warm-up must be in [0, epochs) = [0, %d), got %g",
                       p->epochs, (double)p->warmup);
    }
    if (p->step_epochs < 1 || p->step_epochs > 100000) {
        return fm_fail(err, FM_ERR_ARG, "step schedule period must be in 1..100000 epochs, got %d", p->step_epochs);
    }
    if (!(p->step_gamma > 0.0f && p->step_gamma <= 1.0f)) {
        return fm_fail(err, FM_ERR_ARG, "step schedule factor must be in (0, 1], got %g", (double)p->step_gamma);
    }
    if (!(p->label_smoothing >= 0.0f && p->label_smoothing < 1.0f)) {
        return fm_fail(err, FM_ERR_ARG, "label smoothing must be in [0, 1), got %g", (double)p->label_smoothing);
    }
    if ((unsigned)p->precision > FM_PRECISION_BF16) {
        return fm_fail(err, FM_ERR_ARG, "unknown precision %d", (int)p->precision);
    }
    const fm_augment *a = &p->augment;
    if (a->shift < 0 || a->shift > 16 || (a->flip != 0 && a->flip != 1) ||
        !(a->rotate >= 0.0f && a->rotate <= 180.0f) || !(a->erase >= 0.0f && a->erase <= 1.0f)) {
        return fm_fail(err, FM_ERR_ARG, "augmentation out of range: shift 0..16, flip 0 or 1, rotate "
                       "0..180 degrees, erase 0..1");
    }
    if ((unsigned)p->monitor > FM_MONITOR_VAL_LOSS) {
        return fm_fail(err, FM_ERR_ARG, "unknown monitor %d", (int)p->monitor);
    }
    if (p->patience < 0 || p->patience > 100000 || p->reduce_lr_patience < 0 || p->reduce_lr_patience > 100000) {
        return fm_fail(err, FM_ERR_ARG, "patience must be in 0..100000 epochs");
    }
    if ((p->patience || p->reduce_lr_patience) && p->val == 0) {
        return fm_fail(err, FM_ERR_ARG, "early stopping and plateau reduction watch the validation "
                       "split: hold some images out (val > 0)");
    }
    if (!(p->reduce_lr_factor > 0.0f && p->reduce_lr_factor < 1.0f)) {
        return fm_fail(err, FM_ERR_ARG, "plateau reduction factor must be in (0, 1), got %g", (double)p->reduce_lr_factor);
    }
    if (!isfinite(p->min_lr) || p->min_lr < 0.0f) {
        return fm_fail(err, FM_ERR_ARG, "minimum learning rate must be 0 or more, got %g", (double)p->min_lr);
    }
    if (p->swa < 0 || p->swa > p->epochs) {
        return fm_fail(err, FM_ERR_ARG, "weight averaging must cover 0..epochs = 0..%d epochs, got %d",
                       p->epochs, p->swa);
    }
    if (!isfinite(p->swa_lr) || p->swa_lr < 0.0f || p->swa_lr > 10.0f) {
        return fm_fail(err, FM_ERR_ARG, "weight averaging's learning rate must be in [0, 10], got %g",
                       (double)p->swa_lr);
    }
    if (p->swa && p->patience) {
        return fm_fail(err, FM_ERR_ARG, "weight averaging and early stopping exclude each other: "
                       "one keeps the mean of the last epochs' weights, the other one epoch's");
    }
    return FM_OK;
}

float fm_train_lr(const fm_train_params *p) {
    return p->lr > 0.0f ? p->lr : (p->optimizer == FM_OPT_SGD ? 1e-2f : 1e-3f);
}

int fm_precision_fast(fm_precision p) { return p == FM_PRECISION_FLOAT32 || fm_bf16_fast(); }

fm_status fm_train_params_check(const fm_train_params *p, fm_error *err) {
    if (p->epochs < 1 || p->epochs > 100000) {
        return fm_fail(err, FM_ERR_ARG, "epochs must be in 1..100000, got %d", p->epochs);
    }
    if (p->batch < 1 || p->batch > 65536) {
        return fm_fail(err, FM_ERR_ARG, "batch must be in 1..65536, got %d", p->batch);
    }
    if (p->optimizer != FM_OPT_ADAM && p->optimizer != FM_OPT_SGD && p->optimizer != FM_OPT_ADAMW) {
        return fm_fail(err, FM_ERR_ARG, "unknown optimizer %d", (int)p->optimizer);
    }
    if (!isfinite(p->lr) || p->lr < 0.0f || p->lr > 10.0f) {
        return fm_fail(err, FM_ERR_ARG, "learning rate must be in (0, 10], got %g", (double)p->lr);
    }
    if (!isfinite(p->momentum) || p->momentum < 0.0f || p->momentum >= 1.0f) {
        return fm_fail(err, FM_ERR_ARG, "momentum must be in [0, 1), got %g", (double)p->momentum);
    }
    if (p->nesterov && p->momentum == 0.0f) {
        return fm_fail(err, FM_ERR_ARG, "Nesterov momentum needs a momentum above 0");
    }
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f)) {
        return fm_fail(err, FM_ERR_ARG, "Adam's beta1 and beta2 must be in [0, 1)");
    }
    if (!(p->eps > 0.0f) || !isfinite(p->eps)) {
        return fm_fail(err, FM_ERR_ARG, "Adam's epsilon must be positive, got %g", (double)p->eps);
    }
    if (!isfinite(p->l2) || p->l2 < 0.0f || p->l2 > 1.0f) {
        return fm_fail(err, FM_ERR_ARG, "L2 factor must be in [0, 1], got %g", (double)p->l2);
    }
    if (p->threads > 1024) {
        return fm_fail(err, FM_ERR_ARG, "threads must be at most 1024, got %d", p->threads);
    }
    return train_params_check_more(p, err);
}

void fm_history_free(fm_history *h) {
    if (!h) return;
    free(h->epochs);
    h->epochs = NULL;
    h->n = 0;
}

/* Loss and accuracy over a whole set, in batches; per-class counts when wanted. */
static fm_status evaluate_into(fm_model *m, const fm_dataset *ds, uint32_t batch, int threads,
                               double *loss, uint32_t *correct_out, uint32_t *per_class_right,
                               uint32_t *per_class_n) {
    int C = m->classes.n;
    double total = 0.0;
    uint32_t correct = 0;
    for (uint32_t i = 0; i < ds->n; i += batch) {
        uint32_t B = ds->n - i < batch ? ds->n - i : batch;
        fm_dataset part = fm_dataset_slice(ds, i, B);
        fm_scale_images(fm_model_input(m), &part, NULL, B, m->scaling);
        const float *scores;
        if (m->tta_flip) {
            /* Averaged probabilities: the loss is -log of the mean probability of the label. */
            fm_model_infer_probs(m, m->probs, (int)B, threads);
            for (uint32_t b = 0; b < B; b++) {
                const float *p = m->probs + (size_t)b * C;
                total -= log(fmax((double)p[part.labels[b]], 1e-30));
                correct += fm_argmax(p, C) == part.labels[b];
            }
            scores = m->probs;
        } else {
            const float *logits = fm_model_forward(m, (int)B, threads);
            int right = 0;
            total += softmax_xent_forward(m->probs, logits, part.labels, (int)B, C, &right);
            correct += (uint32_t)right;
            scores = logits;
        }
        if (per_class_n) {
            for (uint32_t b = 0; b < B; b++) {
                int y = part.labels[b];
                per_class_n[y]++;
                if (fm_argmax(scores + (size_t)b * C, C) == y) per_class_right[y]++;
            }
        }
    }
    *loss = ds->n ? total / ds->n : NAN;
    *correct_out = correct;
    return FM_OK;
}

static fm_status evaluate(fm_model *m, const fm_dataset *ds, uint32_t batch, int threads,
                          fm_eval_result *out, fm_error *err) {
    memset(out, 0, sizeof *out);
    if (ds->h != m->in_h || ds->w != m->in_w) {
        return fm_fail(err, FM_ERR_ARG, "the model takes %ux%u images but the data has %ux%u",
                       m->in_h, m->in_w, ds->h, ds->w);
    }
    if (ds->n_classes > m->classes.n) {
        return fm_fail(err, FM_ERR_ARG, "the data has %d classes but the model only %d",
                       ds->n_classes, m->classes.n);
    }
    if (ds->n == 0) return fm_fail(err, FM_ERR_ARG, "nothing to evaluate: the set is empty");
    if (batch == 0) batch = 1000;
    batch = fm_model_batch_limit(m, batch);
    fm_status s = fm_model_reserve(m, batch, err);
    if (s) return s;
    uint32_t right[FM_MAX_CLASSES] = {0};
    uint32_t correct;
    evaluate_into(m, ds, batch, threads, &out->loss, &correct, right, out->per_class_n);
    out->n = ds->n;
    out->n_classes = m->classes.n;
    out->accuracy = (double)correct / ds->n;
    for (int c = 0; c < m->classes.n; c++) {
        out->per_class[c] = out->per_class_n[c] ? (double)right[c] / out->per_class_n[c] : NAN;
    }
    return FM_OK;
}

fm_status fm_evaluate(fm_model *m, const fm_dataset *ds, uint32_t batch, int threads,
                      fm_eval_result *out, fm_error *err) {
    fm_fpenv saved = fm_fpenv_enter();
    fm_status s = evaluate(m, ds, batch, threads, out, err);
    fm_fpenv_leave(saved);
    return s;
}

/* Everything a run owns besides the model, allocated once. */
typedef struct {
    float *grads, *m1, *m2; /* gradient and optimizer moments, laid out like the parameters */
    int32_t *order;         /* shuffled row indices of the training part */
    uint8_t *labels;        /* labels of the current batch */
    float *scratch;         /* one image, for augmentation */
    float *best;            /* early stopping: the best epoch's parameters then running statistics */
    int64_t best_tracked[FM_MAX_LAYERS];
    float *swa;             /* weight averaging: the mean of the averaged epochs' parameters */
} run_buffers;

/* The model's weights and batch norm statistics into or out of the early-stopping snapshot. */
static void snapshot(fm_model *m, run_buffers *rb, int restore) {
    float *state_copy = rb->best + m->n_params;
    if (restore) {
        memcpy(m->params, rb->best, m->n_params * sizeof(float));
        memcpy(m->state, state_copy, m->n_state * sizeof(float));
        memcpy(m->batches_tracked, rb->best_tracked, sizeof rb->best_tracked);
    } else {
        memcpy(rb->best, m->params, m->n_params * sizeof(float));
        memcpy(state_copy, m->state, m->n_state * sizeof(float));
        memcpy(rb->best_tracked, m->batches_tracked, sizeof rb->best_tracked);
    }
}

/* Decoupled weight decay on the dense and conv kernels (see weight_decay.c). */
static void decay_kernels(fm_model *m, float lr, float weight_decay) {
    for (int l = 0; l < m->n_layers; l++) {
        size_t n = fm_layer_weight_count(&m->layers[l]);
        if (n) weight_decay_step(m->params + m->layers[l].w_off, n, lr, weight_decay);
    }
}

static void run_buffers_free(run_buffers *rb) {
    free(rb->grads), free(rb->m1), free(rb->m2), free(rb->order), free(rb->labels), free(rb->scratch);
    free(rb->best), free(rb->swa);
}

/* Weight averaging, at the end of the n-th averaged epoch (1-based): PyTorch's AveragedModel
 * update, avg += (w - avg) / n, so the result is the plain mean of the n epochs' weights. */
static void swa_accumulate(float *avg, const float *w, size_t n_params, int n) {
    if (n == 1) {
        memcpy(avg, w, n_params * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n_params; i++) avg[i] += (w[i] - avg[i]) / (float)n;
}

/* The averaged weights into the model, then batch norm's running statistics for them: their
 * own, from one pass in training mode over the training part in the last epoch's order and
 * augmented as in training, each batch weighing the same (PyTorch's update_bn). The statistics
 * the run kept belong to the last epoch's weights, not to their mean. */
static void swa_apply(fm_model *m, const float *avg, const fm_dataset *train, const int32_t *order,
                      uint32_t batch, const fm_train_params *p, float background, float *scratch,
                      fm_rng *rng, int threads) {
    memcpy(m->params, avg, m->n_params * sizeof(float));
    if (m->n_state == 0) return;
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        if (L->kind != FM_LAYER_BATCHNORM) continue;
        float *running_mean = m->state + L->s_off, *running_var = running_mean + L->in_c;
        for (uint32_t c = 0; c < L->in_c; c++) running_mean[c] = 0.0f, running_var[c] = 1.0f;
        m->batches_tracked[l] = 0;
    }
    m->training = 1, m->rng = rng, m->bn_cumulative = 1;
    const int augment = fm_augment_active(&p->augment);
    for (uint32_t start = 0; start < train->n; start += batch) {
        int B = (int)(train->n - start < batch ? train->n - start : batch);
        fm_scale_images(fm_model_input(m), train, order + start, (size_t)B, m->scaling);
        if (augment) {
            fm_augment_batch(fm_model_input(m), B, (int)m->in_h, (int)m->in_w, &p->augment,
                             background, scratch, rng);
        }
        fm_model_forward(m, B, threads);
    }
    m->training = 0, m->rng = NULL, m->bn_cumulative = 0;
}

/* The L2 term on dense and conv kernels (biases and batch norm are not regularised, as with
 * Keras's kernel_regularizer): l2 * sum(w^2) for the loss, and 2 * l2 * w for each gradient,
 * which the fused Adam step adds itself and the other optimizers get from l2_add_gradients. */
static double l2_penalty(const fm_model *m, float l2) {
    double penalty = 0.0;
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        size_t n = fm_layer_weight_count(L); /* dense and conv kernels */
        if (n == 0) continue;
        const float *w = m->params + L->w_off;
        double sq = 0.0;
        for (size_t i = 0; i < n; i++) sq += (double)w[i] * w[i];
        penalty += l2 * sq;
    }
    return penalty;
}

static void l2_add_gradients(const fm_model *m, float *grads, float l2) {
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        size_t n = fm_layer_weight_count(L);
        if (n == 0) continue;
        const float *w = m->params + L->w_off;
        float *g = grads + L->w_off;
        for (size_t i = 0; i < n; i++) g[i] += 2.0f * l2 * w[i];
    }
}

/* An SGD step over the flat parameter array, split into slices for the pool: the update is
 * element by element, so the slicing changes no bit. (Plain Adam on dense models runs inside
 * the backward pass.) */
typedef struct {
    const fm_train_params *p;
    float *params, *grads, *velocity;
    size_t n;
    float lr;
    int tasks;
} sgd_job;

static void sgd_task(void *ctx, int task) {
    const sgd_job *o = ctx;
    size_t lo, hi;
    fm_slice(o->n, task, o->tasks, &lo, &hi);
    if (lo >= hi) return;
    sgd_step(o->params + lo, o->grads + lo, o->velocity ? o->velocity + lo : NULL, hi - lo, o->lr,
             o->p->momentum, o->p->nesterov);
}

/* Adam over the flat parameter array (the models whose steps are not fused into the backward
 * pass: convolutions, batch norm), in slices of whole vectors on the pool's threads: element by
 * element, so the slicing changes no bit. */
typedef struct {
    const fm_train_params *p;
    float *params, *grads, *m1, *m2;
    size_t n;
    float alpha;
    int tasks;
} adam_job;

static void adam_task(void *ctx, int task) {
    const adam_job *o = ctx;
    size_t lo, hi;
    fm_slice(o->n, task, o->tasks, &lo, &hi);
    if (lo >= hi) return;
    adam_apply(o->params + lo, o->grads + lo, o->m1 + lo, o->m2 + lo, hi - lo, o->alpha,
               o->p->beta1, o->p->beta2, o->p->eps);
}

/* A batch's pixels scaled in two halves, split where the first dense layer's products split
 * (fm_gemm_split_k_at): each thread writes the half it reads next, in its own cache. */
typedef struct {
    float *out;
    const fm_dataset *ds;
    const int32_t *rows;
    size_t count, split, D;
    fm_scaling sc;
} scale_job;

static void scale_task(void *ctx, int task) {
    const scale_job *j = ctx;
    fm_scale_pixels(j->out, j->ds, j->rows, j->count, j->sc, task ? j->split : 0,
                    task ? j->D : j->split);
}

/* The run's position and counters, as a checkpoint records them (the arrays are the run's). */
typedef struct {
    int epochs_done, batches_done, stopped_early;
    long step;
    fm_rng rng;
    float lr_now, lr_scale;
    double best_score;
    int best_epoch, plateau_wait;
    double loss_sum, epoch_seconds;
    uint64_t seen, right_sum;
} fit_position;

/* Writes the checkpoint at path: ck holds the run's fixed parts (filled once), pos where it
 * stands. */
static fm_status checkpoint_save(const char *path, fm_checkpoint *ck, const fm_model *m,
                                 const run_buffers *rb, const fit_position *pos, fm_error *err) {
    memcpy(ck->batches_tracked, m->batches_tracked, sizeof ck->batches_tracked);
    memcpy(ck->best_tracked, rb->best_tracked, sizeof ck->best_tracked);
    ck->epochs_done = pos->epochs_done, ck->batches_done = pos->batches_done;
    ck->stopped_early = pos->stopped_early;
    ck->step = pos->step, ck->rng = pos->rng, ck->lr_now = pos->lr_now, ck->lr_scale = pos->lr_scale;
    ck->best_score = pos->best_score, ck->best_epoch = pos->best_epoch, ck->plateau_wait = pos->plateau_wait;
    ck->loss_sum = pos->loss_sum, ck->epoch_seconds = pos->epoch_seconds;
    ck->seen = pos->seen, ck->right_sum = pos->right_sum;
    ck->n_history = pos->epochs_done;
    return fm_checkpoint_write(path, ck, err);
}

static fm_status fit(fm_model *m, const fm_dataset *ds, const fm_train_params *p,
                     fm_history *hist, fm_error *err) {
    if (hist) memset(hist, 0, sizeof *hist);
    fm_status s = fm_train_params_check(p, err);
    if (s) return s;
    if (ds->h != m->in_h || ds->w != m->in_w) {
        return fm_fail(err, FM_ERR_ARG, "the model takes %ux%u images but the data has %ux%u",
                       m->in_h, m->in_w, ds->h, ds->w);
    }
    if (ds->n_classes > m->classes.n) {
        return fm_fail(err, FM_ERR_ARG, "the data has %d classes but the model only %d",
                       ds->n_classes, m->classes.n);
    }
    if (p->val >= ds->n) {
        return fm_fail(err, FM_ERR_ARG,
                       "validation hold-out of %u images leaves nothing to train on (the set has "
                       "%u)",
                       p->val, ds->n);
    }
    fm_dataset val = fm_dataset_slice(ds, 0, p->val);
    fm_dataset train = fm_dataset_slice(ds, p->val, ds->n - p->val);
    if (m->scaling.kind == FM_SCALE_STANDARD) m->scaling = fm_scaling_fit(&train, FM_SCALE_STANDARD);
    const fm_checkpoint *from = p->resume;
    const uint32_t data_crc = p->checkpoint || from ? fm_dataset_crc(ds) : 0;
    if (from && (s = fm_checkpoint_check_resume(from, m, p, train.n, data_crc, err))) return s;

    const uint32_t eval_batch = fm_model_batch_limit(m, 1000);
    uint32_t batch = (uint32_t)p->batch;
    s = fm_model_reserve(m, batch > eval_batch ? batch : eval_batch, err);
    if (s) return s;
    int C = m->classes.n;
    int threads = fm_threads_resolve(p->threads);
    fm_model_pool(m, threads); /* the threads start here, not in the first batch */
    float lr = fm_train_lr(p);

    run_buffers rb = {0};
    size_t P = m->n_params;
    rb.grads = fm_alloc_floats(P, 0);
    int adam = p->optimizer == FM_OPT_ADAM || p->optimizer == FM_OPT_ADAMW;
    int need_m1 = adam || p->momentum > 0.0f;
    if (need_m1) rb.m1 = fm_alloc_floats(P, 1);
    if (adam) rb.m2 = fm_alloc_floats(P, 1);
    rb.order = malloc(train.n * sizeof(int32_t));
    rb.labels = malloc(batch);
    rb.scratch = malloc((size_t)m->in_h * m->in_w * sizeof(float));
    if (p->patience) rb.best = malloc((P + m->n_state) * sizeof(float));
    if (p->swa) rb.swa = calloc(P, sizeof(float)); /* checkpoints hold it before it fills */
    fm_epoch_stats *epochs = calloc((size_t)p->epochs, sizeof *epochs);
    fm_checkpoint *ck = p->checkpoint ? calloc(1, sizeof *ck) : NULL;
    if (!rb.grads || (need_m1 && !rb.m1) || (adam && !rb.m2) || !rb.order ||
        !rb.labels || !rb.scratch || (p->patience && !rb.best) || (p->swa && !rb.swa) || !epochs ||
        (p->checkpoint && !ck)) {
        run_buffers_free(&rb);
        free(epochs);
        free(ck);
        return fm_fail(err, FM_ERR_NOMEM, "out of memory for training buffers");
    }
    for (uint32_t i = 0; i < train.n; i++) rb.order[i] = (int32_t)i;

    fm_rng rng;
    fm_rng_seed(&rng, p->seed);
    long step = 0;
    int batches = (int)((train.n + batch - 1) / batch);
    int done = 0;
    if (ck) {
        /* What every checkpoint of this run shares; the arrays are the run's own. */
        ck->p = *p;
        ck->p.on_batch = NULL, ck->p.on_epoch = NULL, ck->p.user = NULL, ck->p.checkpoint = NULL;
        ck->p.checkpoint_note = NULL, ck->p.stop = NULL, ck->p.resume = NULL;
        ck->note = (char *)(p->checkpoint_note ? p->checkpoint_note : "");
        memcpy(ck->spec, m->spec, sizeof ck->spec);
        ck->in_h = m->in_h, ck->in_w = m->in_w, ck->classes = m->classes, ck->scaling = m->scaling;
        ck->tta = m->tta_flip, ck->n_layers = m->n_layers, ck->n_params = P, ck->n_state = m->n_state;
        ck->params = m->params, ck->state = m->state, ck->m1 = rb.m1, ck->m2 = rb.m2;
        ck->n_train = train.n, ck->data_crc = data_crc, ck->order = rb.order, ck->batches = batches;
        ck->best = rb.best, ck->swa = rb.swa, ck->history = epochs;
    }
    const long total_steps = (long)p->epochs * batches;
    const fm_schedule_params sched = {p->schedule, (long)llround((double)p->warmup * batches),
                                      (long)p->step_epochs * batches, p->step_gamma};
    float lr_now = lr;
    /* Weight averaging: its epochs and the rate held through them. */
    const int swa_first = p->swa ? p->epochs - p->swa + 1 : 0;
    const long swa_step = (long)(swa_first - 1) * batches;
    const int augment = fm_augment_active(&p->augment);
    const size_t D = fm_model_in_size(m), pixel_split = (size_t)fm_gemm_split_k_at((int)D);
    /* Plain Adam on a model of dense layers (and activations) runs inside the backward pass,
     * using each weight gradient while it is in registers; anything else stores gradients and
     * steps over the flat array afterwards. */
    int dense_only = 1;
    for (int l = 0; l < m->n_layers; l++) {
        fm_layer_kind k = m->layers[l].kind;
        if (k != FM_LAYER_DENSE && k != FM_LAYER_RELU && k != FM_LAYER_TANH && k != FM_LAYER_SIGMOID &&
            k != FM_LAYER_FLATTEN) {
            dense_only = 0;
        }
    }
    const int fused_adam = p->optimizer == FM_OPT_ADAM && dense_only;
    /* What a 0 pixel scales to, computed as fm_scale_images does: the fill for uncovered areas. */
    const float background = ((float)0 / 255.0f - m->scaling.mean) / m->scaling.std;
    /* Callbacks: the best monitored score so far (higher is better) and the epochs since. */
    double best_score = 0.0;
    int best_epoch = 0, plateau_wait = 0, stopped_early = 0;
    float lr_scale = 1.0f;
    int first_epoch = 1, first_batch = 0;
    if (from) {
        /* Continue where the checkpoint stands: the model, optimizer, order, generator,
         * history and callbacks as they were after its last batch. */
        memcpy(m->params, from->params, P * sizeof(float));
        if (m->n_state) memcpy(m->state, from->state, m->n_state * sizeof(float));
        memcpy(m->batches_tracked, from->batches_tracked, sizeof m->batches_tracked);
        if (rb.m1) memcpy(rb.m1, from->m1, P * sizeof(float));
        if (rb.m2) memcpy(rb.m2, from->m2, P * sizeof(float));
        if (rb.best) {
            memcpy(rb.best, from->best, (P + m->n_state) * sizeof(float));
            memcpy(rb.best_tracked, from->best_tracked, sizeof rb.best_tracked);
        }
        if (rb.swa) memcpy(rb.swa, from->swa, P * sizeof(float));
        memcpy(rb.order, from->order, train.n * sizeof(int32_t));
        if (from->n_history) memcpy(epochs, from->history, (size_t)from->n_history * sizeof *epochs);
        step = from->step, rng = from->rng, lr_now = from->lr_now, lr_scale = from->lr_scale;
        best_score = from->best_score, best_epoch = from->best_epoch, plateau_wait = from->plateau_wait;
        done = from->epochs_done;
        first_epoch = from->epochs_done + 1, first_batch = from->batches_done;
    }
    for (int e = first_epoch; e <= p->epochs && !s; e++) {
        double t0 = fm_now_seconds();
        double loss_sum = 0.0;
        uint64_t seen = 0, right_sum = 0;
        int bi0 = 0;
        if (e == first_epoch && first_batch) {
            /* Mid-epoch: this epoch's order is already shuffled and partly done. */
            bi0 = first_batch, loss_sum = from->loss_sum, seen = from->seen, right_sum = from->right_sum;
            t0 -= from->epoch_seconds;
        } else {
            fm_rng_shuffle(&rng, rb.order, train.n);
        }
        /* dropout drops, batch norm uses batch statistics, products as the precision says */
        m->training = 1, m->rng = &rng, m->bf16 = p->precision == FM_PRECISION_BF16;
        for (int bi = bi0; bi < batches; bi++) {
            uint32_t start = (uint32_t)bi * batch;
            int B = (int)(train.n - start < batch ? train.n - start : batch);
            const int32_t *rows = rb.order + start;
            scale_job sj = {fm_model_input(m), &train, rows, (size_t)B, pixel_split, D, m->scaling};
            fm_pool_run(fm_model_pool(m, threads), 2, scale_task, &sj);
            uint32_t next = train.n - start - (uint32_t)B; /* on their way while this one trains */
            fm_prefetch_images(&train, rows + B, next < batch ? next : batch);
            for (int b = 0; b < B; b++) rb.labels[b] = train.labels[rows[b]];
            if (augment) {
                fm_augment_batch(fm_model_input(m), B, (int)m->in_h, (int)m->in_w, &p->augment,
                                 background, rb.scratch, &rng);
            }

            if (swa_first && e >= swa_first) {
                lr_now = p->swa_lr > 0.0f ? p->swa_lr
                                          : fm_schedule_lr(&sched, lr, swa_step, total_steps) * lr_scale;
            } else {
                lr_now = fm_schedule_lr(&sched, lr, step, total_steps) * lr_scale;
            }
            const float *logits = fm_model_forward(m, B, threads);
            int right = 0;
            double loss = softmax_xent_smooth_forward(m->probs, logits, rb.labels, B, C,
                                                      p->label_smoothing, &right) / B;
            if (p->l2 > 0.0f) loss += l2_penalty(m, p->l2);
            if (!isfinite(loss)) {
                s = fm_fail(err, FM_ERR_DIVERGED,
                            "loss became %s at epoch %d, batch %d; the learning rate (%g) is "
                            "probably too high",
                            isnan(loss) ? "NaN" : "infinite", e, bi + 1, (double)lr_now);
                break;
            }
            softmax_xent_smooth_backward(m->dbuf[0], m->probs, rb.labels, B, C, p->label_smoothing);
            step++;
            if (fused_adam) {
                fm_adam_fused fa = {rb.m1, rb.m2, adam_alpha(lr_now, p->beta1, p->beta2, step),
                                    p->beta1, p->beta2, p->eps, p->l2};
                fm_model_backward(m, m->dbuf[0], rb.grads, B, threads, &fa);
            } else {
                /* Dense layers overwrite their gradients; convolutions and batch norm add. */
                if (!dense_only) memset(rb.grads, 0, P * sizeof(float));
                fm_model_backward(m, m->dbuf[0], rb.grads, B, threads, NULL);
                if (p->l2 > 0.0f) l2_add_gradients(m, rb.grads, p->l2);
                if (p->weight_decay > 0.0f) decay_kernels(m, lr_now, p->weight_decay);
                fm_pool *pool = fm_model_pool(m, threads);
                if (adam) {
                    adam_job opt = {p, m->params, rb.grads, rb.m1, rb.m2, P,
                                    adam_alpha(lr_now, p->beta1, p->beta2, step),
                                    fm_slice_tasks(pool, P, 16384)};
                    fm_pool_run(pool, opt.tasks, adam_task, &opt);
                } else {
                    sgd_job opt = {p, m->params, rb.grads, rb.m1, P, lr_now,
                                   fm_slice_tasks(pool, P, 16384)};
                    fm_pool_run(pool, opt.tasks, sgd_task, &opt);
                }
            }
            loss_sum += loss * B;
            right_sum += (uint64_t)right;
            seen += (uint64_t)B;
            if (p->on_batch) {
                p->on_batch(e, bi + 1, batches, loss_sum / (double)seen,
                            (double)right_sum / (double)seen, p->user);
            }
            /* A stop request mid-epoch: save the exact position (after an epoch's last batch the
             * epoch is finished first, below). */
            if (p->stop && *p->stop && bi + 1 < batches) {
                fit_position pos = {e - 1, bi + 1, 0, step, rng, lr_now, lr_scale, best_score,
                                    best_epoch, plateau_wait, loss_sum, fm_now_seconds() - t0,
                                    seen, right_sum};
                if (ck && (s = checkpoint_save(p->checkpoint, ck, m, &rb, &pos, err))) break;
                s = fm_fail(err, FM_ERR_CANCELLED, "training stopped at epoch %d, batch %d of %d%s%s",
                            e, bi + 1, batches, ck ? "; checkpoint saved to " : " (no checkpoint)",
                            ck ? p->checkpoint : "");
                break;
            }
        }
        m->training = 0, m->rng = NULL, m->bf16 = 0;
        if (s) break;
        fm_epoch_stats *st = &epochs[e - 1];
        st->epoch = e;
        st->epochs = p->epochs;
        st->loss = loss_sum / (double)seen;
        st->accuracy = (double)right_sum / (double)seen;
        st->val_loss = st->val_accuracy = NAN;
        st->lr = lr_now;
        if (swa_first && e >= swa_first) swa_accumulate(rb.swa, m->params, P, e - swa_first + 1);
        if (val.n > 0) {
            uint32_t right;
            evaluate_into(m, &val, eval_batch, threads, &st->val_loss, &right, NULL, NULL);
            st->val_accuracy = (double)right / val.n;
        }
        int stop = 0;
        if (val.n > 0) {
            double score = p->monitor == FM_MONITOR_VAL_LOSS ? -st->val_loss : st->val_accuracy;
            if (best_epoch == 0 || score > best_score) {
                best_score = score, best_epoch = e, plateau_wait = 0;
                st->improved = 1;
                if (rb.best) snapshot(m, &rb, 0);
            } else {
                /* The averaged epochs hold their rate (and lr_scale, which sets the default). */
                int averaging = swa_first && e >= swa_first - 1;
                if (p->reduce_lr_patience && !averaging && ++plateau_wait >= p->reduce_lr_patience) {
                    lr_scale *= p->reduce_lr_factor;
                    if (lr * lr_scale < p->min_lr) lr_scale = p->min_lr / lr;
                    plateau_wait = 0;
                }
                stop = p->patience && e - best_epoch >= p->patience;
            }
        }
        st->seconds = fm_now_seconds() - t0;
        done = e;
        if (p->on_epoch && p->on_epoch(st, p->user)) {
            s = fm_fail(err, FM_ERR_CANCELLED, "training stopped after epoch %d", e);
        }
        if (!s && ck) {
            fit_position pos = {e, 0, stop, step, rng, lr_now, lr_scale, best_score, best_epoch,
                                plateau_wait, 0.0, 0.0, 0, 0};
            s = checkpoint_save(p->checkpoint, ck, m, &rb, &pos, err);
        }
        if (!s && !stop && e < p->epochs && p->stop && *p->stop) {
            s = fm_fail(err, FM_ERR_CANCELLED, "training stopped after epoch %d of %d%s%s", e,
                        p->epochs, ck ? "; checkpoint saved to " : " (no checkpoint)",
                        ck ? p->checkpoint : "");
        }
        if (stop && !s) {
            stopped_early = 1;
            break;
        }
    }
    int restored = 0;
    if (!s && rb.best && best_epoch) {
        snapshot(m, &rb, 1);
        restored = 1;
    }
    double swa_val_loss = NAN, swa_val_accuracy = NAN;
    if (!s && swa_first) {
        swa_apply(m, rb.swa, &train, rb.order, batch, p, background, rb.scratch, &rng, threads);
        if (val.n > 0) {
            uint32_t right;
            evaluate_into(m, &val, eval_batch, threads, &swa_val_loss, &right, NULL, NULL);
            swa_val_accuracy = (double)right / val.n;
        }
    }
    run_buffers_free(&rb);
    free(ck);
    if (hist) {
        hist->n = done;
        hist->epochs = epochs;
        hist->best_epoch = best_epoch;
        hist->stopped_early = stopped_early;
        hist->restored_best = restored;
        hist->swa_first = !s ? swa_first : 0;
        hist->swa_val_loss = swa_val_loss, hist->swa_val_accuracy = swa_val_accuracy;
    } else {
        free(epochs);
    }
    return s;
}

/* The library's floating-point mode (fpenv.c) for the whole run, serial parts included. */
fm_status fm_fit(fm_model *m, const fm_dataset *ds, const fm_train_params *p, fm_history *hist,
                 fm_error *err) {
    fm_fpenv saved = fm_fpenv_enter();
    fm_status s = fit(m, ds, p, hist, err);
    fm_fpenv_leave(saved);
    return s;
}
