/* bench.c — fmnist's side of the benchmark: one measurement per run, printed as one JSON line
 * that bench/run.sh gathers (and compares with bench/peer_torch.py, which prints the same keys).
 *   bench train PRESET   seconds per epoch (60,000 images, batch 32, Adam), GFLOP/s, peak RSS
 *   bench infer          images/s at batch 1 and batch 1000 on the 10,000 test images
 *   bench peak N         GFLOP/s of an N x N x N SGEMM: ours, and OpenBLAS's when it loads
 * Options: --data DIR, --threads N [all], --epochs N [timed epochs after one warm-up, 4],
 * --reps N [inference passes, 5], --images N [train: the first N training images, all when 0;
 * epoch_s is still reported per 60,000 images]. Medians throughout: the machine is shared. */
#define _GNU_SOURCE
#include "fmnist.h"
#include "internal.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct {
    const char *data;
    int threads, epochs, reps;
    unsigned images;
} options;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* CPU seconds this process has used: on one thread, what the wall time would be on an idle
 * machine (a busy one stretches wall time, not CPU time); on several it also counts spinning. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

static void die(const fm_error *err) {
    fprintf(stderr, "bench: %s\n", err->msg);
    exit(1);
}

/* Matrix-multiply FLOPs of one training image (forward, dW, and dinp for every dense or conv
 * layer but the first): what the kernels do, a convolution counting OC*C*KH*KW*OH*OW
 * multiply-adds per pass. Bias, activations, pooling, softmax and the optimizer are left out,
 * so the GFLOP/s figures are conservative. */
static double train_flops_per_image(const fm_model *m) {
    double f = 0.0;
    int first = 1;
    for (int l = 0; l < m->n_layers; l++) {
        const fm_layer *L = &m->layers[l];
        double macs;
        if (L->kind == FM_LAYER_DENSE) {
            macs = (double)L->in_size * L->out_size;
        } else if (L->kind == FM_LAYER_CONV) {
            const fm_conv_shape *c = &L->conv;
            macs = (double)c->OC * c->C * c->KH * c->KW * c->OH * c->OW;
        } else {
            continue;
        }
        f += 2.0 * macs * (first ? 2 : 3);
        first = 0;
    }
    return f;
}

typedef struct {
    double *seconds, *cpu;
    double cpu_mark;
    int n;
} epoch_log;

static int log_epoch(const fm_epoch_stats *st, void *user) {
    epoch_log *log = user;
    double now = cpu_seconds();
    log->cpu[log->n] = now - log->cpu_mark;
    log->cpu_mark = now;
    log->seconds[log->n++] = st->seconds;
    return 0;
}

static void bench_train(const options *o, const char *preset) {
    fm_error err = {0};
    char dir[FM_PATH_MAX];
    fm_dataset train;
    if (fm_data_find(o->data, dir, sizeof dir, &err) ||
        fm_dataset_load(dir, FM_SPLIT_TRAIN, 10, &train, &err)) {
        die(&err);
    }
    /* A slow network is timed on fewer images and scaled to the full set's 60,000: an epoch's
     * time is proportional to its images (same batch, no validation). */
    uint32_t full = train.n;
    if (o->images > 0 && o->images < train.n) train.n = o->images;
    double per_full = (double)full / train.n;
    fm_model *m;
    if (fm_model_create(preset, train.h, train.w, NULL, &m, &err)) die(&err);
    fm_train_params p = fm_train_default_params();
    p.epochs = o->epochs + 1;
    p.val = 0; /* all 60,000 images, as the notebook */
    p.threads = o->threads;
    double seconds[1024], cpu[1024];
    epoch_log log = {seconds, cpu, 0.0, 0};
    p.on_epoch = log_epoch;
    p.user = &log;
    fm_history hist;
    log.cpu_mark = cpu_seconds();
    if (fm_fit(m, &train, &p, &hist, &err)) die(&err);
    double loss = hist.epochs[hist.n - 1].loss, acc = hist.epochs[hist.n - 1].accuracy;
    /* epoch 1 warms caches and pages up */
    double s = median(seconds + 1, log.n - 1) * per_full;
    double s_cpu = median(cpu + 1, log.n - 1) * per_full;
    double gflop = train_flops_per_image(m) * full / 1e9;
    printf("{\"impl\":\"fmnist\",\"mode\":\"train\",\"preset\":\"%s\",\"threads\":%d,"
           "\"images\":%u,\"images_timed\":%u,\"epochs_timed\":%d,\"epoch_s\":%.4f,\"epoch_cpu_s\":%.4f,"
           "\"images_per_s\":%.0f,"
           "\"gflop_per_epoch\":%.3f,\"gflops\":%.2f,\"last_loss\":%.4f,\"last_accuracy\":%.4f,"
           "\"peak_rss_mib\":%.1f,\"kernels\":\"%s\"}\n",
           preset, fm_threads_resolve(o->threads), full, train.n, log.n - 1, s, s_cpu, full / s, gflop,
           gflop / s, loss, acc, peak_rss_mib(), fm_simd_name(fm_simd_best()));
    fm_history_free(&hist);
    fm_model_free(m);
    fm_dataset_free(&train);
}

/* Inference on already-scaled inputs, as the PyTorch peer feeds its model a float tensor; the
 * model is the notebook MLP after one epoch (the weights do not change the work). */
static void bench_infer(const options *o, const char *preset) {
    fm_error err = {0};
    char dir[FM_PATH_MAX];
    fm_dataset train, test;
    if (fm_data_find(o->data, dir, sizeof dir, &err) ||
        fm_dataset_load(dir, FM_SPLIT_TRAIN, 10, &train, &err) ||
        fm_dataset_load(dir, FM_SPLIT_TEST, 10, &test, &err)) {
        die(&err);
    }
    fm_model *m;
    if (fm_model_create(preset, train.h, train.w, NULL, &m, &err)) die(&err);
    fm_train_params p = fm_train_default_params();
    p.epochs = 1, p.val = 0, p.threads = o->threads;
    if (fm_fit(m, &train, &p, NULL, &err)) die(&err);
    size_t D = (size_t)test.h * test.w, n = test.n;
    float *x = malloc(n * D * sizeof(float)), *probs = malloc(n * 10 * sizeof(float));
    if (!x || !probs) exit(1);
    fm_scale_images(x, &test, NULL, n, fm_model_scaling(m));
    double one[64], batch[64], one_cpu[64], batch_cpu[64];
    int reps = o->reps < 64 ? o->reps : 64;
    uint32_t right = 0;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = fm_now_seconds(), c0 = cpu_seconds();
        for (size_t i = 0; i < n; i++) {
            if (fm_predict_inputs(m, x + i * D, 1, probs + i * 10, o->threads, &err)) die(&err);
        }
        double t1 = fm_now_seconds(), c1 = cpu_seconds();
        for (size_t i = 0; i < n; i += 1000) {
            uint32_t B = n - i < 1000 ? (uint32_t)(n - i) : 1000;
            if (fm_predict_inputs(m, x + i * D, B, probs + i * 10, o->threads, &err)) die(&err);
        }
        double t2 = fm_now_seconds(), c2 = cpu_seconds();
        if (r > 0) { /* pass 0 warms up */
            one[r - 1] = t1 - t0, batch[r - 1] = t2 - t1;
            one_cpu[r - 1] = c1 - c0, batch_cpu[r - 1] = c2 - c1;
        }
    }
    for (size_t i = 0; i < n; i++) right += fm_argmax(probs + i * 10, 10) == test.labels[i];
    double s1 = median(one, reps), sb = median(batch, reps);
    double s1_cpu = median(one_cpu, reps), sb_cpu = median(batch_cpu, reps);
    printf("{\"impl\":\"fmnist\",\"mode\":\"infer\",\"preset\":\"%s\",\"threads\":%d,"
           "\"images\":%zu,\"batch1_images_per_s\":%.0f,\"batch1_us\":%.2f,"
           "\"batch1000_images_per_s\":%.0f,\"batch1_cpu_images_per_s\":%.0f,"
           "\"batch1000_cpu_images_per_s\":%.0f,\"accuracy\":%.4f,\"peak_rss_mib\":%.1f}\n",
           preset, fm_threads_resolve(o->threads), n, n / s1, 1e6 * s1 / n, n / sb, n / s1_cpu,
           n / sb_cpu,
           (double)right / n, peak_rss_mib());
    free(x), free(probs);
    fm_model_free(m);
    fm_dataset_free(&train);
    fm_dataset_free(&test);
}

/* OpenBLAS's cblas_sgemm when libopenblas can be loaded (no link-time dependency); the caller
 * sets OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS. */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);

static double time_gemm(int which, sgemm_fn blas, int n, const float *A, const float *B, float *C,
                        fm_pool *pool, int reps) {
    double best[16];
    for (int r = 0; r < reps; r++) {
        double t0 = fm_now_seconds();
        if (which == 0) {
            fm_gemm_ex(fm_simd_best(), 0, 0, n, n, n, A, n, B, n, 0, C, n, NULL, pool);
        } else {
            blas(101 /* row-major */, 111, 111 /* no transposes */, n, n, n, 1.0f, A, n, B, n, 0.0f,
                 C, n);
        }
        best[r] = fm_now_seconds() - t0;
    }
    return 2.0 * n * (double)n * n / median(best, reps) / 1e9;
}

static void bench_peak(const options *o, int n) {
    size_t nn = (size_t)n * n;
    float *A = malloc(nn * sizeof(float)), *B = malloc(nn * sizeof(float));
    float *C = malloc(nn * sizeof(float));
    if (!A || !B || !C) exit(1);
    fm_rng rng;
    fm_rng_seed(&rng, 1);
    for (size_t i = 0; i < nn; i++) A[i] = fm_rng_uniform(&rng) - 0.5f, B[i] = fm_rng_uniform(&rng) - 0.5f;
    int threads = fm_threads_resolve(o->threads);
    fm_pool *pool = threads > 1 ? fm_pool_create(threads) : NULL;
    int reps = o->reps < 16 ? o->reps : 16;
    time_gemm(0, NULL, n, A, B, C, pool, 1);
    double ours = time_gemm(0, NULL, n, A, B, C, pool, reps);
    double blas = 0.0;
    const char *core = "";
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
        sgemm_fn sgemm = (sgemm_fn)dlsym(lib, "cblas_sgemm");
        char *(*corename)(void) = (char *(*)(void))dlsym(lib, "openblas_get_corename");
        if (sgemm) {
            time_gemm(1, sgemm, n, A, B, C, pool, 1);
            blas = time_gemm(1, sgemm, n, A, B, C, pool, reps);
        }
        if (corename) core = corename();
    }
    printf("{\"impl\":\"fmnist\",\"mode\":\"peak\",\"n\":%d,\"threads\":%d,\"fmnist_gflops\":%.1f,"
           "\"openblas_gflops\":%.1f,\"openblas_core\":\"%s\",\"kernels\":\"%s\"}\n",
           n, threads, ours, blas, core, fm_simd_name(fm_simd_best()));
    fm_pool_free(pool);
    free(A), free(B), free(C);
}

int main(int argc, char **argv) {
    options o = {NULL, 0, 4, 5, 0};
    const char *mode = NULL, *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) o.data = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc) o.epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) o.reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) o.images = (unsigned)atoi(argv[++i]);
        else if (!mode) mode = argv[i];
        else if (!arg) arg = argv[i];
    }
    if (o.epochs < 1 || o.epochs > 1000 || o.reps < 1) {
        fprintf(stderr, "bench: --epochs must be 1..1000 and --reps at least 1\n");
        return 2;
    }
    if (mode && strcmp(mode, "train") == 0) bench_train(&o, arg ? arg : "mlp");
    else if (mode && strcmp(mode, "infer") == 0) bench_infer(&o, arg ? arg : "mlp");
    else if (mode && strcmp(mode, "peak") == 0) bench_peak(&o, arg ? atoi(arg) : 2048);
    else {
        fprintf(stderr, "usage: bench train PRESET | infer [PRESET] | peak [N]  [--data DIR] "
                        "[--threads N] [--epochs N] [--reps N] [--images N]\n");
        return 2;
    }
    return 0;
}
