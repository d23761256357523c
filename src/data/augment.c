/* augment.c — on-the-fly augmentation of training images: random shifts, horizontal flips, small
 * rotations (bilinear) and random erasing, on already-scaled inputs. Every draw comes from the
 * run's generator, so a seeded run sees the same augmented batches every time. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* dst (H,W) = src moved right by dx and down by dy; uncovered pixels get the background. */
void augment_shift(float *dst, const float *src, int H, int W, int dx, int dy, float background) {
    for (int y = 0; y < H; y++) {
        int sy = y - dy;
        for (int x = 0; x < W; x++) {
            int sx = x - dx;
            dst[y * W + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? src[sy * W + sx] : background;
        }
    }
}

/* img (H,W) mirrored left to right, in place. */
void augment_flip(float *img, int H, int W) {
    for (int y = 0; y < H; y++) {
        float *row = img + (size_t)y * W;
        for (int a = 0, b = W - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

/* dst (H,W) = src turned by degrees about the image centre, clockwise as the image is seen (rows
 * going down): at 90 degrees what was above the centre is right of it. Each output pixel samples
 * the source where the inverse rotation takes it, bilinearly; samples outside the image read the
 * background. */
void augment_rotate(float *dst, const float *src, int H, int W, float degrees, float background) {
    double a = degrees * PI / 180.0, c = cos(a), s = sin(a);
    double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            double u = x - cx, v = y - cy;
            double sx = c * u + s * v + cx, sy = -s * u + c * v + cy;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            double fx = sx - x0, fy = sy - y0, acc = 0.0;
            for (int k = 0; k < 4; k++) {
                int px = x0 + (k & 1), py = y0 + (k >> 1);
                double wgt = ((k & 1) ? fx : 1.0 - fx) * ((k >> 1) ? fy : 1.0 - fy);
                if (wgt == 0.0) continue;
                float v0 = px >= 0 && px < W && py >= 0 && py < H ? src[py * W + px] : background;
                acc += wgt * v0;
            }
            dst[y * W + x] = (float)acc;
        }
    }
}

/* Sets the h x w rectangle at (y0, x0) of img (H,W) to the background. */
void augment_erase(float *img, int H, int W, int y0, int x0, int h, int w, float background) {
    for (int y = y0; y < y0 + h && y < H; y++) {
        for (int x = x0; x < x0 + w && x < W; x++) img[y * W + x] = background;
    }
}

/* Random erasing as Zhong et al. draw it: a rectangle of 2%..40% of the image with an aspect
 * ratio between 0.3 and 1/0.3 (log-uniform), placed uniformly; up to 10 tries to find one that
 * fits, else nothing is erased. */
static void random_erase(float *img, int H, int W, float background, fm_rng *rng) {
    for (int attempt = 0; attempt < 10; attempt++) {
        double area = (0.02 + 0.38 * fm_rng_uniform(rng)) * H * W;
        double ratio = exp(log(0.3) + (log(1.0 / 0.3) - log(0.3)) * fm_rng_uniform(rng));
        int h = (int)lround(sqrt(area * ratio)), w = (int)lround(sqrt(area / ratio));
        if (h < 1 || w < 1 || h >= H || w >= W) continue;
        int y0 = (int)fm_rng_below(rng, (uint32_t)(H - h + 1));
        int x0 = (int)fm_rng_below(rng, (uint32_t)(W - w + 1));
        augment_erase(img, H, W, y0, x0, h, w, background);
        return;
    }
}

int fm_augment_active(const fm_augment *a) {
    return a->shift > 0 || a->flip || a->rotate > 0.0f || a->erase > 0.0f;
}

/* x is (B,H,W); scratch holds H*W floats. The draws for each image, in order: flip (1), angle
 * (1), shift (2), erase (1, then the rectangle's); only for the enabled kinds. */
void fm_augment_batch(float *x, int B, int H, int W, const fm_augment *a, float background,
                      float *scratch, fm_rng *rng) {
    const size_t D = (size_t)H * W;
    for (int b = 0; b < B; b++) {
        float *img = x + (size_t)b * D;
        if (a->flip && fm_rng_below(rng, 2)) augment_flip(img, H, W);
        if (a->rotate > 0.0f) {
            float deg = (2.0f * fm_rng_uniform(rng) - 1.0f) * a->rotate;
            augment_rotate(scratch, img, H, W, deg, background);
            memcpy(img, scratch, D * sizeof(float));
        }
        if (a->shift > 0) {
            uint32_t span = 2u * (uint32_t)a->shift + 1u;
            int dx = (int)fm_rng_below(rng, span) - a->shift;
            int dy = (int)fm_rng_below(rng, span) - a->shift;
            if (dx || dy) {
                augment_shift(scratch, img, H, W, dx, dy, background);
                memcpy(img, scratch, D * sizeof(float));
            }
        }
        if (a->erase > 0.0f && fm_rng_uniform(rng) < a->erase) random_erase(img, H, W, background, rng);
    }
}

/* "shift=2,flip,rotate=10,erase=0.5" or "none"; each kind at most once. */
fm_status fm_augment_parse(const char *text, fm_augment *out, fm_error *err) {
    memset(out, 0, sizeof *out);
    if (!text || strcmp(text, "none") == 0) return FM_OK;
    if (!*text) return fm_fail(err, FM_ERR_ARG, "augmentation list is empty (e.g. shift=2,flip,rotate=10,erase=0.5)");
    char buf[256];
    if (strlen(text) >= sizeof buf) return fm_fail(err, FM_ERR_ARG, "augmentation list is too long");
    snprintf(buf, sizeof buf, "%s", text);
    int seen[4] = {0};
    for (char *item = buf; item;) {
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        char *eq = strchr(item, '=');
        const char *val = eq ? eq + 1 : NULL;
        if (eq) *eq = '\0';
        static const char *const kinds[4] = {"shift", "flip", "rotate", "erase"};
        int k = 0;
        while (k < 4 && strcmp(item, kinds[k]) != 0) k++;
        if (eq) *eq = '=';
        if (k == 4) {
            return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": unknown (expected shift=N, flip, "
                           "rotate=DEGREES or erase=P)", item);
        }
        if (seen[k]++) return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": %s given twice", item, kinds[k]);
        char *end = NULL;
        errno = 0;
        double v = val ? strtod(val, &end) : 0.0;
        int number_ok = val && *val && !isspace((unsigned char)*val) && end && !*end && !errno && isfinite(v);
        switch (k) {
        case 0:
            if (!number_ok || v != floor(v) || v < 1 || v > 16) {
                return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": shift needs a whole number of "
                               "pixels in 1..16, e.g. shift=2", item);
            }
            out->shift = (int)v;
            break;
        case 1:
            if (val) return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": flip takes no value", item);
            out->flip = 1;
            break;
        case 2:
            if (!number_ok || !(v > 0 && v <= 180)) {
                return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": rotate needs degrees in (0, "
                               "180], e.g. rotate=10", item);
            }
            out->rotate = (float)v;
            break;
        default:
            if (!number_ok || !(v > 0 && v <= 1)) {
                return fm_fail(err, FM_ERR_ARG, "augmentation \"%s\": erase needs a probability in "
                               "(0, 1], e.g. erase=0.5", item);
            }
            out->erase = (float)v;
            break;
        }
        item = comma ? comma + 1 : NULL;
    }
    return FM_OK;
}

void fm_augment_format(const fm_augment *a, char *out, size_t cap) {
    size_t len = 0;
    out[0] = '\0';
    if (a->shift) len += (size_t)snprintf(out + len, cap - len, "shift=%d", a->shift);
    if (a->flip && len < cap) len += (size_t)snprintf(out + len, cap - len, "%sflip", len ? "," : "");
    if (a->rotate > 0 && len < cap) len += (size_t)snprintf(out + len, cap - len, "%srotate=%g", len ? "," : "", (double)a->rotate);
    if (a->erase > 0 && len < cap) len += (size_t)snprintf(out + len, cap - len, "%serase=%g", len ? "," : "", (double)a->erase);
    if (!len) snprintf(out, cap, "none");
}
