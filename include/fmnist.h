/* fmnist.h — the public API of libfmnist: load IDX image sets, build a sequential
 * classifier from a spec, train it, evaluate it, predict, save and load it, and draw what it
 * did (pictures, a run's report page, an experiment's comparison).
 *
 * A tour, in the order a program uses it:
 *
 *   fm_error err = {0};
 *   char dir[FM_PATH_MAX];
 *   fm_data_find(NULL, dir, sizeof dir, &err);              // --data, $FMNIST_DATA, ./data, Debian's
 *   fm_dataset train, test;
 *   fm_dataset_load(dir, FM_SPLIT_TRAIN, &train, &err);     // uint8 pixels, validated
 *   fm_dataset_load(dir, FM_SPLIT_TEST, &test, &err);
 *
 *   fm_model_params mp = fm_model_default_params();
 *   fm_model *model;
 *   fm_model_create("mlp", 28, 28, &mp, &model, &err);      // preset or "dense:128:relu,dense:10"
 *
 *   fm_train_params tp = fm_train_default_params();         // Adam, batch 32, 10 epochs, val 5000
 *   fm_history hist;
 *   fm_fit(model, &train, &tp, &hist, &err);
 *   fm_eval_result ev;
 *   fm_evaluate(model, &test, 1000, 0, &ev, &err);
 *   fm_model_save(model, "model.safetensors", &err);
 *
 *   fm_report_params rp = fm_report_default_params();       // the run's pictures and its page
 *   rp.history = &hist, rp.test = &test;
 *   fm_report_write("runs/x", model, &rp, NULL, &err);     // curves.png ... report.html
 *   fm_model_free(model);
 *
 * Conventions: every function that can fail returns an fm_status and fills the caller's
 * fm_error with one sentence naming the file, field or flag at fault. Nothing prints, nothing
 * exits, there is no global state; threads and verbosity are parameters.
 */
#ifndef FMNIST_H
#define FMNIST_H

#include <signal.h> /* sig_atomic_t */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_VERSION "0.1.0"
#define FM_PATH_MAX 4096
#define FM_MAX_CLASSES 256
#define FM_CLASS_NAME_MAX 32

typedef enum {
    FM_OK = 0,
    FM_ERR_ARG,      /* a bad argument, flag or spec */
    FM_ERR_IO,       /* a file could not be opened, read or written */
    FM_ERR_FORMAT,   /* a file's contents are malformed */
    FM_ERR_NOMEM,    /* an allocation failed or a declared size is beyond the limits */
    FM_ERR_DIVERGED, /* training produced a NaN or infinite loss */
    FM_ERR_CANCELLED /* a callback asked to stop */
} fm_status;

typedef struct {
    fm_status status;
    char msg[1024];
} fm_error;

const char *fm_status_name(fm_status s);

/* The thread count a request resolves to (<= 0 means every core) and a monotonic clock. */
int fm_threads_resolve(int threads);
double fm_now_seconds(void);

/* ---------------------------------------------------------------- random numbers */

/* xoshiro256** seeded through splitmix64: the only source of randomness, owned by the caller. */
typedef struct { uint64_t s[4]; } fm_rng;

void fm_rng_seed(fm_rng *rng, uint64_t seed);
uint64_t fm_rng_next(fm_rng *rng);
float fm_rng_uniform(fm_rng *rng);             /* [0, 1) */
uint32_t fm_rng_below(fm_rng *rng, uint32_t n); /* [0, n), unbiased */
void fm_rng_shuffle(fm_rng *rng, int32_t *items, size_t n);

/* ---------------------------------------------------------------- data */

/* Upper limits that a file's declared sizes must respect before anything is allocated. */
#define FM_IDX_MAX_ITEMS 10000000u
#define FM_IDX_MAX_SIDE 4096u
#define FM_IDX_MAX_BYTES (2u << 30) /* 2 GiB of pixels */

/* Reads an IDX file, gzip-compressed or raw. Images: magic 0x00000803, dims N,H,W, uint8.
 * Labels: magic 0x00000801, dim N, uint8. The caller frees *pixels / *labels with free(). */
fm_status fm_idx_read_images(const char *path, uint8_t **pixels, uint32_t *n, uint32_t *h,
                             uint32_t *w, fm_error *err);
fm_status fm_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n, fm_error *err);
/* Writes an IDX file, raw or gzip-compressed (when path ends in ".gz"); used by tests and tools. */
fm_status fm_idx_write_images(const char *path, const uint8_t *pixels, uint32_t n, uint32_t h,
                              uint32_t w, fm_error *err);
fm_status fm_idx_write_labels(const char *path, const uint8_t *labels, uint32_t n, fm_error *err);

typedef enum { FM_SPLIT_TRAIN = 0, FM_SPLIT_TEST = 1 } fm_split;

typedef struct {
    uint32_t n, h, w;  /* n images of h*w pixels */
    uint8_t *images;   /* [n, h, w] row-major, 0..255 */
    uint8_t *labels;   /* [n] */
    int n_classes;     /* labels are all < n_classes */
} fm_dataset;

/* Finds a folder holding the four IDX files, in order: flag_dir (when not NULL), $FMNIST_DATA,
 * ./data, /usr/share/datasets/fashion-mnist. flag_dir or a set $FMNIST_DATA is used alone: when it
 * lacks the files that is the error, not a reason to look further. On failure the error lists
 * every place tried. */
fm_status fm_data_find(const char *flag_dir, char *out_dir, size_t cap, fm_error *err);
/* Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from dir and checks them against each
 * other (counts match, labels < n_classes). */
fm_status fm_dataset_load(const char *dir, fm_split split, int n_classes, fm_dataset *out,
                          fm_error *err);
void fm_dataset_free(fm_dataset *ds);
/* A view of rows [start, start+count) of ds; shares its memory, is never freed. */
fm_dataset fm_dataset_slice(const fm_dataset *ds, uint32_t start, uint32_t count);

/* How raw pixels become inputs: x = (p / 255 - mean) / std. Unit scaling is mean 0, std 1. */
typedef enum { FM_SCALE_UNIT = 0, FM_SCALE_STANDARD = 1 } fm_scale_kind;
typedef struct {
    fm_scale_kind kind;
    float mean, std;
} fm_scaling;

/* Standardisation statistics of a (training) set: one mean and std over all pixels. */
fm_scaling fm_scaling_fit(const fm_dataset *ds, fm_scale_kind kind);
/* Converts count images starting at the given rows into float inputs [count, h*w]. */
void fm_scale_images(float *out, const fm_dataset *ds, const int32_t *rows, size_t count,
                     fm_scaling sc);

/* Class-name tables: "fashion" (T-shirt/top .. Ankle boot), "digits" ("0".."9"), or a
 * comma-separated list of names. */
typedef struct {
    int n;
    char names[FM_MAX_CLASSES][FM_CLASS_NAME_MAX];
} fm_classes;
fm_status fm_classes_parse(const char *text, fm_classes *out, fm_error *err);

/* On-the-fly augmentation of training batches (fm_train_params.augment); never applied when
 * evaluating. Each draw comes from the run's generator, so a seeded run repeats exactly. */
typedef struct {
    int shift;    /* move by up to ±shift pixels each way, uncovered pixels as background; 0 off */
    int flip;     /* mirror left to right with probability 1/2 */
    float rotate; /* turn by up to ±rotate degrees about the centre, bilinear; 0 off */
    float erase;  /* with this probability, blank a random rectangle of 2-40% of the image
                   * (random erasing, Zhong et al.) to the background; 0 off */
} fm_augment;

/* Parses "shift=2,flip,rotate=10,erase=0.5" (any subset, any order) or "none". */
fm_status fm_augment_parse(const char *text, fm_augment *out, fm_error *err);
/* The canonical text of a (the form fm_augment_parse reads), "none" when all are off. */
void fm_augment_format(const fm_augment *a, char *out, size_t cap);
/* Whether any kind is on. */
int fm_augment_active(const fm_augment *a);

/* ---------------------------------------------------------------- model */

typedef enum { FM_INIT_GLOROT_UNIFORM = 0, FM_INIT_HE_UNIFORM = 1 } fm_init;

typedef struct {
    fm_init init;
    uint64_t seed;      /* weight initialisation */
    fm_classes classes; /* n defines the output width the spec must end with */
    fm_scaling scaling; /* stored with the model so predictions see the same inputs */
} fm_model_params;

fm_model_params fm_model_default_params(void);

typedef struct fm_model fm_model;

/* spec is a preset name (mlp, mlp64, mlp256, mlp2, mlp300-100, cnn, cnn-best) or a comma-separated list of
 * layers: dense:UNITS[:ACT], conv:FILTERS:KERNEL[:same|valid][:sSTRIDE][:ACT], maxpool:K[:S],
 * avgpool:K[:S], gap, bn, dropout:P, flatten, relu, leakyrelu[:ALPHA], tanh, sigmoid, and
 * res(ITEM,...,ITEM) around items that keep the shape, a residual block adding its input to its
 * output (the README has the grammar). Images enter as (1, H, W); flatten is implicit before a
 * dense layer. The last layer must produce classes.n logits. */
fm_status fm_model_create(const char *spec, uint32_t in_h, uint32_t in_w, const fm_model_params *p,
                          fm_model **out, fm_error *err);
void fm_model_free(fm_model *m);
/* Checks a spec as fm_model_create would (same messages) without building the model: nothing
 * is allocated, so it answers at once for a spec of a billion weights. *params (may be NULL)
 * gets the trainable parameter count. */
fm_status fm_spec_check(const char *spec, uint32_t in_h, uint32_t in_w, int n_classes,
                        size_t *params, fm_error *err);

/* Resolves a preset to its spec; returns NULL when name is no preset. */
const char *fm_preset_spec(const char *name);
/* The presets, NULL-terminated, for help texts. */
const char *const *fm_preset_names(void);

const char *fm_model_spec(const fm_model *m);   /* the expanded spec */
size_t fm_model_param_count(const fm_model *m); /* trainable ones */
const fm_classes *fm_model_classes(const fm_model *m);
fm_scaling fm_model_scaling(const fm_model *m);
void fm_model_set_scaling(fm_model *m, fm_scaling sc);
void fm_model_input_shape(const fm_model *m, uint32_t *h, uint32_t *w);

/* The Keras-style table: layer, output shape, parameters, totals. Writes at most cap bytes
 * (always NUL-terminated) and returns the length it needed. */
size_t fm_model_summary(const fm_model *m, const char *title, char *buf, size_t cap);
/* The table's rows, for callers that lay them out themselves (summary --json): the implicit
 * Flatten in front of a network that starts with a dense layer, then one row per layer. */
typedef struct {
    char name[24];     /* "layers.3", or "flatten" for the implicit one */
    const char *type;  /* "Conv2D", "BatchNorm", ... (static) */
    int rank;          /* 1: shape[0] features; 3: shape = channels, height, width */
    uint32_t shape[3]; /* one image's output */
    size_t params;     /* trainable */
    size_t state;      /* batch norm's running statistics */
    char adds[24];     /* an Add row: what it adds, "layers.N" or "input"; else "" */
} fm_summary_row;
int fm_model_summary_rows(const fm_model *m);
void fm_model_summary_row(const fm_model *m, int r, fm_summary_row *out);

/* Test-time augmentation: with flip on, evaluation and prediction average the class
 * probabilities of each image and its mirror image. Stored in the model file. */
void fm_model_set_tta(fm_model *m, int flip);
int fm_model_tta(const fm_model *m);

/* Inference on count images; probs is [count, classes.n]; threads <= 0 means all cores. What a
 * server calls: one image (count 1) runs on the calling thread alone, with no thread wake-up and
 * no allocation after the first call; batches are spread over the model's threads. The model
 * keeps working memory, so one model serves one thread at a time. */
fm_status fm_predict(fm_model *m, const fm_dataset *ds, uint32_t start, uint32_t count,
                     float *probs, int threads, fm_error *err);

/* The same on raw images: pixels [count, h, w] as uint8, scaled as the model was trained. */
fm_status fm_predict_pixels(fm_model *m, const uint8_t *pixels, uint32_t count, float *probs,
                            int threads, fm_error *err);

/* The same on already-scaled inputs x [count, h*w] (read in place, not copied). */
fm_status fm_predict_inputs(fm_model *m, const float *x, uint32_t count, float *probs,
                            int threads, fm_error *err);

/* Safetensors with PyTorch names and layouts (layers.K.weight [out, in] or [out, in, kh, kw],
 * layers.K.bias [out]; batch norm's weight, bias, running_mean, running_var and int64
 * num_batches_tracked) and __metadata__ holding the spec, input shape, scaling and class names. */
fm_status fm_model_save(const fm_model *m, const char *path, fm_error *err);
fm_status fm_model_load(const char *path, fm_model **out, fm_error *err);

/* ---------------------------------------------------------------- interoperability */

/* Writes the model as an ONNX file (opset 13, IR version 7) that any ONNX runtime runs:
 *   input  "input"         float [N, 1, H, W]: pixel / 255 in [0, 1], the item light on black
 *                          as in Fashion-MNIST (N is symbolic);
 *   output "probabilities" float [N, classes]: the softmax of the logits.
 * The graph applies the model's own scaling (Sub and Div nodes for standard scaling), so every
 * model takes the same input; Flatten, one Gemm per dense layer with the weights as stored
 * ([out, in], transB=1), the activations, then Softmax(axis=1). metadata_props describe the
 * input and output and hold the class names (a JSON list), the spec and the scaling. Written
 * through a temporary file and rename. */
fm_status fm_model_export_onnx(const fm_model *m, const char *path, fm_error *err);

/* Photos and other pictures as model inputs. Decoding is stb_image's: PNG, JPEG, BMP, PGM/PPM,
 * GIF (first frame), TGA, PSD, HDR. Images with more than max_pixels pixels are refused from
 * their header, before anything is decoded. */
#define FM_IMAGE_MAX_PIXELS (64u << 20) /* 64 megapixels, 8192 x 8192 */

typedef enum { FM_INVERT_AUTO = 0, FM_INVERT_ALWAYS, FM_INVERT_NEVER } fm_invert;

typedef struct {
    uint64_t max_pixels; /* [FM_IMAGE_MAX_PIXELS] */
    fm_invert invert;    /* AUTO: invert when the border is light, so the item ends up light on black */
} fm_image_params;

fm_image_params fm_image_default_params(void);

/* What the preprocessing found, for reports and --json. */
typedef struct {
    uint32_t width, height;           /* of the picture */
    int channels;                     /* in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int inverted;                     /* the background was light and the image was inverted */
    float background;                 /* background level after inversion, 0..255 */
    uint32_t box_x, box_y, box_w, box_h; /* the item's bounding box in the picture */
} fm_image_info;

/* Decodes an image file to 8-bit grey [h, w] (colour by luma, transparent parts over white), a
 * JPEG turned upright as its EXIF orientation says (h and w are then the upright picture's); the
 * caller frees *grey with free(). Errors name the file: missing, not an image, truncated or
 * corrupt, 0 pixels, over max_pixels. */
fm_status fm_image_load_grey(const char *path, const fm_image_params *p, uint8_t **grey,
                             uint32_t *h, uint32_t *w, int *channels, fm_error *err);

/* Turns a grey picture into what the model was trained on, out [out_h, out_w] uint8: inverts a
 * light background (item light on black), finds the item's bounding box (robust to noise),
 * crops it, pads it to the output's aspect ratio (centred), shrinks it with an area filter and
 * stretches the contrast so that the background is 0 and the brightest part 255. Fails on a
 * picture where nothing stands out from the background. info may be NULL. */
fm_status fm_image_to_input(const uint8_t *grey, uint32_t h, uint32_t w, const fm_image_params *p,
                            uint8_t *out, uint32_t out_h, uint32_t out_w, fm_image_info *info,
                            fm_error *err);

/* fm_image_load_grey then fm_image_to_input, errors prefixed with the file name. */
fm_status fm_image_load_input(const char *path, const fm_image_params *p, uint8_t *out,
                              uint32_t out_h, uint32_t out_w, fm_image_info *info, fm_error *err);

/* Writes an 8-bit grey image [h, w] as PNG, through a temporary file and rename. */
fm_status fm_image_write_png(const char *path, const uint8_t *pixels, uint32_t h, uint32_t w,
                             fm_error *err);

/* Whether a file name has an image extension fmnist picks from folders (.png .jpg .jpeg .bmp
 * .pgm .ppm .pnm .gif .tga, any case). */
int fm_image_name_supported(const char *name);

/* ---------------------------------------------------------------- training */

typedef enum { FM_OPT_ADAM = 0, FM_OPT_SGD = 1, FM_OPT_ADAMW = 2 } fm_optimizer;

/* The validation figure the callbacks watch: higher accuracy or lower loss is an improvement. */
typedef enum { FM_MONITOR_VAL_ACCURACY = 0, FM_MONITOR_VAL_LOSS = 1 } fm_monitor;

/* How the learning rate moves over a run (see fm_train_params.schedule). */
typedef enum {
    FM_SCHED_CONSTANT = 0,
    FM_SCHED_STEP = 1,     /* times step_gamma every step_epochs epochs */
    FM_SCHED_COSINE = 2,   /* half a cosine from lr down to 0 */
    FM_SCHED_ONECYCLE = 3  /* PyTorch's OneCycleLR: lr/25 up to lr, then down to lr/25/1e4 */
} fm_schedule;

typedef struct {
    int epoch, epochs;          /* 1-based */
    double loss, accuracy;      /* running means over the epoch's training batches */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
    double seconds;             /* wall time of the epoch, validation included */
    double lr;                  /* the learning rate of the epoch's last step */
    int improved;               /* the monitored validation figure is the best so far */
} fm_epoch_stats;

typedef struct {
    int n;
    fm_epoch_stats *epochs;     /* n entries, owned; free with fm_history_free */
    int best_epoch;             /* 1-based epoch with the best monitored figure; 0 without validation */
    int stopped_early;          /* early stopping ended the run */
    int restored_best;          /* the model holds best_epoch's weights (early stopping on) */
    /* Weight averaging (fm_train_params.swa): the model holds the mean of the weights at the
     * end of epochs swa_first..n, with batch norm's statistics recomputed for them; swa_val_*
     * are its validation figures (NaN without validation), beside epoch n's own in epochs[]. */
    int swa_first;              /* 0: no averaging */
    double swa_val_loss, swa_val_accuracy;
} fm_history;
void fm_history_free(fm_history *h);

typedef enum { FM_PRECISION_FLOAT32 = 0, FM_PRECISION_BF16 = 1 } fm_precision;
/* Whether this CPU runs precision p's products with its own instructions (float always; bf16
 * with AVX-512 BF16). */
int fm_precision_fast(fm_precision p);

typedef struct {
    int epochs;
    int batch;
    fm_optimizer optimizer;
    float lr;                   /* Adam 1e-3, SGD 1e-2 when left at 0 */
    float momentum;             /* SGD */
    int nesterov;               /* SGD */
    float beta1, beta2, eps;    /* Adam (Keras defaults 0.9, 0.999, 1e-7) */
    float l2;                   /* adds l2 * sum(w^2) over weight matrices to the loss */
    uint64_t seed;              /* shuffling */
    int threads;                /* <= 0: all cores */
    uint32_t val;               /* images held out from the start of the training set */
    /* Called after every batch (for progress bars) and every epoch; either may be NULL.
     * Returning non-zero from on_epoch stops training with FM_ERR_CANCELLED. */
    void (*on_batch)(int epoch, int batch, int batches, double loss, double acc, void *user);
    int (*on_epoch)(const fm_epoch_stats *st, void *user);
    void *user;

    /* Decoupled weight decay (sgd, adamw): dense and conv kernels shrink by lr*weight_decay each
     * step before the optimizer's update, as PyTorch's AdamW does; biases and batch norm do not.
     * adam refuses it (use adamw, or l2 for a penalty in the loss). */
    float weight_decay;
    fm_schedule schedule;
    float warmup;               /* epochs of linear warm-up to lr (one-cycle: of the rise; 0
                                 * means 30% of the run); may be fractional */
    int step_epochs;            /* step schedule: period in epochs [10] */
    float step_gamma;           /* step schedule: factor [0.1] */
    float label_smoothing;      /* training targets (1-s)*onehot + s/classes; s in [0, 1) */
    fm_augment augment;         /* applied to each training batch, off for validation */
    /* Mixed precision, as Keras's mixed_bfloat16 policy: FM_PRECISION_BF16 rounds the operands of
     * the 3x3 stride-1 convolutions' products (forward, input and weight gradients, by Winograd)
     * to bfloat16 in the training batches, summing in float; weights, the optimizer and every
     * other layer stay float, and evaluation and prediction run in float on the float weights.
     * Twice the products per instruction where the CPU has AVX-512 BF16 (fm_precision_fast);
     * without it the same arithmetic runs in plain code, several times slower. */
    fm_precision precision;

    /* Callbacks on the validation split (they need val > 0), watching monitor. Each epoch whose
     * figure is the best so far is flagged improved (the command line saves best.safetensors
     * then). Early stopping, as KANN does it: after patience epochs without improvement stop,
     * and at the end of the run (stopped or not) restore the best epoch's weights. Plateaus:
     * after reduce_lr_patience epochs without improvement multiply the rate by
     * reduce_lr_factor (not below min_lr) and wait again. 0 turns either off. */
    fm_monitor monitor;
    int patience;
    int reduce_lr_patience;
    float reduce_lr_factor;     /* [0.1] */
    float min_lr;               /* [0] */

    /* Stochastic weight averaging (Izmailov et al. 2018, PyTorch's swa_utils): over the last swa
     * epochs the rate is held at swa_lr (0: the schedule's rate where those epochs begin) and
     * the weights are averaged at the end of each; after the last, the model gets the average
     * and batch norm's running statistics are recomputed for it by one pass over the training
     * part (augmented as in training), each batch weighing the same. 0 turns it off; it cannot
     * be combined with early stopping, which restores one epoch's weights instead. */
    int swa;
    float swa_lr;

    /* Checkpoints, interruption and resuming (see fm_checkpoint below). checkpoint: a file fm_fit
     * writes at the end of every epoch and when stopped, atomically (a temporary file in the same
     * folder, fsync, rename, fsync of the folder), so a failed write leaves the previous one
     * intact; NULL for none. checkpoint_note: text kept in it verbatim (the command line stores
     * its own settings there). stop: read after every batch; once non-zero (a signal handler
     * sets it) fm_fit writes a checkpoint of the exact position, mid-epoch included, and returns
     * FM_ERR_CANCELLED. A NaN or infinite loss writes nothing, so the last checkpoint is the last
     * finite epoch's. resume: continue the run a checkpoint holds instead of starting one; every
     * setting must equal the checkpoint's but epochs, which may grow. The same threads give the
     * same bits as a run never interrupted. */
    const char *checkpoint;
    const char *checkpoint_note;
    volatile sig_atomic_t *stop;
    const struct fm_checkpoint *resume;
} fm_train_params;

fm_train_params fm_train_default_params(void);
/* The training settings a preset comes with (cnn, cnn-best): written into p over its values, and
 * *tta set to whether the preset evaluates with test-time flips. Returns 0, touching nothing,
 * for names without settings (the MLP presets, layer specs). Callers apply their own settings
 * after this, so those win. */
int fm_preset_train_params(const char *name, fm_train_params *p, int *tta);
/* Checks every field; names the one at fault ("--batch must be ..." style, by field name). */
fm_status fm_train_params_check(const fm_train_params *p, fm_error *err);
/* The (peak) learning rate a run uses: p->lr, or the optimizer's default when it is 0 (Adam and
 * AdamW 0.001, SGD 0.01). */
float fm_train_lr(const fm_train_params *p);

/* Trains on ds, holding out its first p->val images for validation. hist may be NULL. */
fm_status fm_fit(fm_model *m, const fm_dataset *ds, const fm_train_params *p, fm_history *hist,
                 fm_error *err);

/* A training run's whole state, as fm_fit writes it to fm_train_params.checkpoint: the model
 * (spec, weights, batch norm statistics, scaling, classes, test-time flips), the optimizer (Adam's
 * moments and step count, SGD's velocity, the schedule's position and plateau factor), the
 * generator that shuffles, augments and drops out, the shuffled order and the position in it,
 * the history, the callbacks' state (best score, waits, the best weights when early stopping
 * restores them), a checksum of the training data, and the settings. The file format is
 * fmnist's own, versioned and checksummed (README, "Checkpoints"). */
typedef struct fm_checkpoint fm_checkpoint;

/* Reads and validates a checkpoint: magic, version, length, CRC-32, then every field (ranges,
 * counts against the model its spec builds, the shuffled order a permutation). Errors name the
 * file and what is wrong with it. */
fm_status fm_checkpoint_load(const char *path, fm_checkpoint **out, fm_error *err);
void fm_checkpoint_free(fm_checkpoint *ck);
/* The run's settings (callbacks and pointers NULL) and the note it was written with. */
fm_train_params fm_checkpoint_train_params(const fm_checkpoint *ck);
const char *fm_checkpoint_note(const fm_checkpoint *ck);
/* Where the run stands: epochs finished, batches of the next epoch done (0 at an epoch
 * boundary), batches per epoch, and whether early stopping ended it. */
void fm_checkpoint_position(const fm_checkpoint *ck, int *epochs_done, int *batches_done,
                            int *batches, int *stopped_early);
/* A new model with the checkpoint's layers, weights, statistics, scaling, classes and flips. */
fm_status fm_checkpoint_model(const fm_checkpoint *ck, fm_model **out, fm_error *err);

typedef struct {
    double loss, accuracy;
    int n_classes;
    uint32_t n;
    double per_class[FM_MAX_CLASSES]; /* accuracy among images of that true class */
    uint32_t per_class_n[FM_MAX_CLASSES];
} fm_eval_result;

fm_status fm_evaluate(fm_model *m, const fm_dataset *ds, uint32_t batch, int threads,
                      fm_eval_result *out, fm_error *err);

/* ---------------------------------------------------------------- predictions as data */

/* The class a row of probabilities favours: the first index of its largest value, as fm_evaluate
 * and `fmnist predict` count it. */
int fm_predicted_class(const float *probs, int n_classes);

/* The test-set confusion matrix: counts[t * C + p] is the number of images of true class t
 * predicted as p (argmax of their row of probs [n, C]). counts holds C*C entries, overwritten. */
fm_status fm_confusion_matrix(const float *probs, const uint8_t *labels, uint32_t n, int n_classes,
                              uint32_t *counts, fm_error *err);

/* The most confident wrong predictions: fills rows with up to max image indices whose predicted
 * class is not their label, highest confidence first (ties: lower index first); returns how many. */
uint32_t fm_worst_mistakes(const float *probs, const uint8_t *labels, uint32_t n, int n_classes,
                           uint32_t *rows, uint32_t max);

/* CSV files, written through a temporary name and a rename:
 * predictions: index,label,predicted,label_name,predicted_name,confidence,p0..p{C-1}, one row per
 *              image of ds (probs is [ds->n, C]); `fmnist predict --all --csv` writes this too.
 * confusion:   true_class,<one column per predicted class>,total,accuracy, one row per class. */
fm_status fm_predictions_write_csv(const char *path, const fm_dataset *ds, const float *probs,
                                   const fm_classes *classes, fm_error *err);
fm_status fm_confusion_write_csv(const char *path, const uint32_t *counts, const fm_classes *classes,
                                 fm_error *err);

/* ---------------------------------------------------------------- pictures
 *
 * PNG pictures drawn with cairo, text in DejaVu Sans found through fontconfig. Each function
 * writes one file through a temporary name and a rename, and fails with the path and the reason
 * (an unwritable folder, an image too large, nothing to draw). */

typedef struct {
    int columns;       /* tiles per row; 0: up to 8 */
    int scale;         /* screen pixels per image pixel; 0: 4 for plain grids, 3 for predictions */
    const char *title; /* a line above the grid; NULL for none */
} fm_grid_params;

fm_grid_params fm_grid_default_params(void);

/* Images ds[rows[0..count)] in a grid, each captioned with its class name. */
fm_status fm_draw_image_grid(const char *path, const fm_dataset *ds, const uint32_t *rows,
                             uint32_t count, const fm_classes *classes, const fm_grid_params *p,
                             fm_error *err);

/* What one tile of a prediction grid shows, so that tests and tools can check the picture
 * against the data it was drawn from. */
typedef struct {
    uint32_t index;        /* the image's row in the set */
    int label, predicted;
    float confidence;      /* probability of the predicted class */
    int correct;
    int x, y, w, h;        /* the tile's frame in the PNG, in pixels, drawn in the outcome colour */
    char caption[2][96];   /* the two caption lines exactly as drawn */
} fm_grid_tile;

/* Images ds[rows[0..count)] with their predictions (probs is [ds->n, C], indexed by row): line 1
 * names the predicted class and its probability, line 2 the true class; under them a bar of the
 * C probabilities (predicted bar in the outcome colour, true class in blue). Correct tiles are
 * framed and captioned in blue, wrong ones in red. tiles (count entries, or NULL) receives what
 * each tile shows. */
fm_status fm_draw_prediction_grid(const char *path, const fm_dataset *ds, const float *probs,
                                  const uint32_t *rows, uint32_t count, const fm_classes *classes,
                                  const fm_grid_params *p, fm_grid_tile *tiles, fm_error *err);
/* The tiles as CSV: tile,index,label,predicted,label_name,predicted_name,confidence,correct,
 * x,y,w,h,caption_1,caption_2. */
fm_status fm_grid_tiles_write_csv(const char *path, const fm_grid_tile *tiles, uint32_t count,
                                  const fm_classes *classes, fm_error *err);

/* Training curves: accuracy (left) and loss (right) per epoch, training and, when the history
 * has them, validation; ticks, axis labels and a legend. One epoch draws points. */
fm_status fm_draw_curves(const char *path, const fm_history *h, const char *title, fm_error *err);

/* Validation accuracy per epoch of several runs on one set of axes, with a legend of labels. */
fm_status fm_draw_val_accuracy(const char *path, const char *title, const fm_history *histories,
                               const char *const *labels, int n, fm_error *err);

/* The C x C confusion matrix with class names, counts in every cell, cells shaded by their share
 * of the true class, and each class's accuracy beside its row. */
fm_status fm_draw_confusion(const char *path, const uint32_t *counts, const fm_classes *classes,
                            const char *title, fm_error *err);

/* Frees what cairo and fontconfig keep cached for the life of the process once a picture has been
 * drawn (fonts, their configuration). Those caches are theirs, not fmnist's state; a program that
 * wants a clean leak check calls this once before it exits, with no picture being drawn. */
void fm_release_caches(void);

/* ---------------------------------------------------------------- reports */

typedef struct {
    const char *name, *value;
} fm_setting;

typedef struct {
    const char *title;          /* page heading, e.g. the run folder */
    const fm_setting *settings; /* shown as a table, in order; may be NULL */
    int n_settings;
    const fm_history *history;  /* the training curves; NULL or empty draws none */
    const fm_dataset *test;     /* NULL: no confusion matrix, predictions or mistakes */
    int threads;                /* for the predictions; <= 0: all cores */
    uint32_t grid_count;        /* test images in predictions.png [24] */
    uint32_t mistakes_count;    /* most confident mistakes in mistakes.png [24] */
} fm_report_params;

fm_report_params fm_report_default_params(void);

/* A run's pictures and page, written into the existing folder dir: curves.png; with a test set
 * confusion.png, confusion.csv, predictions.png, predictions.csv (every test image),
 * predictions-grid.csv (the tiles of predictions.png), mistakes.png, mistakes-grid.csv; and last
 * report.html, one self-contained page (pictures embedded as data: URIs) with the settings, the
 * model summary, the final figures, per-class accuracy and the pictures. test_out (may be NULL)
 * receives the test figures the page shows. */
fm_status fm_report_write(const char *dir, fm_model *m, const fm_report_params *p,
                          fm_eval_result *test_out, fm_error *err);

/* One configuration of an experiment, as its comparison table shows it. */
typedef struct {
    const char *name;            /* the configuration's name */
    const char *model;           /* preset or spec as given */
    size_t params;
    int epochs;
    const char *training;        /* optimizer and settings, e.g. "adam lr 0.001, augment flip" */
    double best_val_accuracy;    /* NaN without validation */
    int best_val_epoch;          /* 1-based; 0 without validation */
    double test_accuracy;        /* NaN when not measured */
    double seconds;              /* training time */
    const char *run;             /* its run folder, relative to the experiment folder */
    const fm_history *history;
} fm_experiment_row;

/* The comparison of an experiment, written into the existing folder dir: results.csv,
 * results.md (a Markdown table), val_accuracy.png (every run's validation accuracy per epoch;
 * rows sharing a run folder are drawn once) and index.html (table, picture, links to each run's
 * report.html). */
fm_status fm_experiment_write(const char *dir, const char *title, const fm_experiment_row *rows,
                              int n, fm_error *err);

#ifdef __cplusplus
}
#endif
#endif
