/* fmnist.h — the public API of libfmnist: load IDX image sets, build a sequential
 * classifier from a spec, train it, evaluate it, predict, save and load it.
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
 *   fm_model_free(model);
 *
 * Conventions: every function that can fail returns an fm_status and fills the caller's
 * fm_error with one sentence naming the file, field or flag at fault. Nothing prints, nothing
 * exits, there is no global state; threads and verbosity are parameters.
 */
#ifndef FMNIST_H
#define FMNIST_H

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

/* spec is a preset name (mlp, mlp64, mlp256, mlp2, mlp300-100) or a comma-separated list of
 * layers: dense:UNITS[:ACT], relu, tanh, sigmoid, flatten. Flatten is implicit before a dense
 * layer. The last layer must produce classes.n logits. */
fm_status fm_model_create(const char *spec, uint32_t in_h, uint32_t in_w, const fm_model_params *p,
                          fm_model **out, fm_error *err);
void fm_model_free(fm_model *m);

/* Resolves a preset to its spec; returns NULL when name is no preset. */
const char *fm_preset_spec(const char *name);
/* The presets, NULL-terminated, for help texts. */
const char *const *fm_preset_names(void);

const char *fm_model_spec(const fm_model *m);   /* the expanded spec */
size_t fm_model_param_count(const fm_model *m);
const fm_classes *fm_model_classes(const fm_model *m);
fm_scaling fm_model_scaling(const fm_model *m);
void fm_model_set_scaling(fm_model *m, fm_scaling sc);
void fm_model_input_shape(const fm_model *m, uint32_t *h, uint32_t *w);

/* The Keras-style table: layer, output shape, parameters, totals. Writes at most cap bytes
 * (always NUL-terminated) and returns the length it needed. */
size_t fm_model_summary(const fm_model *m, const char *title, char *buf, size_t cap);

/* Inference on count images; probs is [count, classes.n]; threads <= 0 means all cores. */
fm_status fm_predict(fm_model *m, const fm_dataset *ds, uint32_t start, uint32_t count,
                     float *probs, int threads, fm_error *err);

/* Forward pass on already-scaled inputs x [count, h*w]; probs [count, classes.n]. */
fm_status fm_predict_inputs(fm_model *m, const float *x, uint32_t count, float *probs,
                            int threads, fm_error *err);

/* Safetensors with PyTorch names and layouts (layers.K.weight [out, in], layers.K.bias [out]) and
 * __metadata__ holding the spec, input shape, scaling and class names. */
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

/* Decodes an image file to 8-bit grey [h, w] (colour by luma, transparent parts over white); the
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

typedef enum { FM_OPT_ADAM = 0, FM_OPT_SGD = 1 } fm_optimizer;

typedef struct {
    int epoch, epochs;          /* 1-based */
    double loss, accuracy;      /* running means over the epoch's training batches */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
    double seconds;             /* wall time of the epoch, validation included */
} fm_epoch_stats;

typedef struct {
    int n;
    fm_epoch_stats *epochs;     /* n entries, owned; free with fm_history_free */
} fm_history;
void fm_history_free(fm_history *h);

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
} fm_train_params;

fm_train_params fm_train_default_params(void);
/* Checks every field; names the one at fault ("--batch must be ..." style, by field name). */
fm_status fm_train_params_check(const fm_train_params *p, fm_error *err);

/* Trains on ds, holding out its first p->val images for validation. hist may be NULL. */
fm_status fm_fit(fm_model *m, const fm_dataset *ds, const fm_train_params *p, fm_history *hist,
                 fm_error *err);

typedef struct {
    double loss, accuracy;
    int n_classes;
    uint32_t n;
    double per_class[FM_MAX_CLASSES]; /* accuracy among images of that true class */
    uint32_t per_class_n[FM_MAX_CLASSES];
} fm_eval_result;

fm_status fm_evaluate(fm_model *m, const fm_dataset *ds, uint32_t batch, int threads,
                      fm_eval_result *out, fm_error *err);

#ifdef __cplusplus
}
#endif
#endif
