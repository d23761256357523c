/* image.c — pictures as model inputs: decoding through stb_image (turned upright by the JPEG's EXIF
 * orientation, which stb ignores), then the preprocessing that makes a photo look like a
 * Fashion-MNIST image (item light on black, cropped, centred, 28x28). */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

/* The item is found on a reduced copy whose longer side is at most this: block averaging already
 * smooths sensor and JPEG noise, and the search stays cheap for a 50-megapixel photo. */
#define WORK_SIDE 512
/* Below this difference between the background and the brightest part (of 255), nothing stands
 * out: classifying such a picture would be a guess. */
#define MIN_CONTRAST 16

fm_image_params fm_image_default_params(void) {
    fm_image_params p;
    memset(&p, 0, sizeof p);
    p.max_pixels = FM_IMAGE_MAX_PIXELS;
    p.invert = FM_INVERT_AUTO;
    return p;
}

int fm_image_name_supported(const char *name) {
    static const char *const exts[] = {"png", "jpg", "jpeg", "bmp", "pgm", "ppm", "pnm", "gif", "tga"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        if (strcasecmp(dot + 1, exts[i]) == 0) return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- decoding */

/* How much of a file's start is searched for the EXIF segment: an APP1 segment is at most 64 KiB
 * and comes before the image data, normally right after the start marker and a JFIF APP0. */
#define EXIF_SEARCH_BYTES (128u << 10)

static unsigned exif_u16(const uint8_t *p, int big_endian) {
    return big_endian ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t exif_u32(const uint8_t *p, int big_endian) {
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The Orientation tag (0x0112) of IFD0 in a TIFF block of len bytes, or 1 (upright). Every offset
 * and count is checked against len before it is read; only IFD0 is read, so no chain of offsets
 * can loop. */
static int exif_tiff_orientation(const uint8_t *tiff, size_t len) {
    if (len < 8) return 1;
    int big;
    if (tiff[0] == 'I' && tiff[1] == 'I') big = 0;
    else if (tiff[0] == 'M' && tiff[1] == 'M') big = 1;
    else return 1;
    if (exif_u16(tiff + 2, big) != 42) return 1;
    uint32_t ifd = exif_u32(tiff + 4, big);
    if (ifd < 8 || ifd > len - 2) return 1;
    unsigned count = exif_u16(tiff + ifd, big);
    for (unsigned i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + 12 * (size_t)i;
        if (entry + 12 > len) break; /* a count larger than the block: read what is there */
        if (exif_u16(tiff + entry, big) != 0x0112) continue;
        /* SHORT (type 3), one value, stored in the first two bytes of the value field. */
        if (exif_u16(tiff + entry + 2, big) != 3 || exif_u32(tiff + entry + 4, big) < 1) return 1;
        unsigned v = exif_u16(tiff + entry + 8, big);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* The EXIF orientation (1..8, 1 upright) of a JPEG whose first len bytes are in buf; 1 for
 * anything else: not a JPEG, no EXIF, a segment cut short or malformed. Walks the marker segments
 * from the start marker up to the image data, each one's length checked against len. */
int fm_jpeg_exif_orientation(const uint8_t *buf, size_t len) {
    if (len < 4 || buf[0] != 0xFF || buf[1] != 0xD8) return 1;
    size_t pos = 2;
    while (pos + 4 <= len) {
        if (buf[pos] != 0xFF) return 1;
        unsigned marker = buf[pos + 1];
        if (marker == 0xFF) { /* fill byte before a marker */
            pos++;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) return 1; /* end of image, start of scan */
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { /* markers without a length */
            pos += 2;
            continue;
        }
        size_t seg = (size_t)buf[pos + 2] << 8 | buf[pos + 3]; /* counts its own two bytes */
        if (seg < 2 || pos + 2 + seg > len) return 1;
        if (marker == 0xE1 && seg >= 8 && memcmp(buf + pos + 4, "Exif\0\0", 6) == 0) {
            return exif_tiff_orientation(buf + pos + 10, seg - 8);
        }
        pos += 2 + seg;
    }
    return 1;
}

/* The picture as it is meant to be seen: src [h, w] as stored, turned by EXIF orientation o into
 * dst, [w, h] for o >= 5 (the quarter turns). For each displayed pixel (x, y) the stored one:
 * 2 mirrored, 3 turned half way, 4 flipped upside down, 5 transposed, 6 turned a quarter
 * clockwise, 7 transverse, 8 turned a quarter anticlockwise. */
void fm_image_orient(uint8_t *dst, const uint8_t *src, uint32_t h, uint32_t w, int o) {
    uint32_t dw = o >= 5 ? h : w, dh = o >= 5 ? w : h;
    for (uint32_t y = 0; y < dh; y++) {
        for (uint32_t x = 0; x < dw; x++) {
            uint32_t sx = x, sy = y;
            switch (o) {
            case 2: sx = w - 1 - x; break;
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;
            case 4: sy = h - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = h - 1 - x; break;
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;
            case 8: sx = w - 1 - y, sy = x; break;
            default: break;
            }
            dst[(size_t)y * dw + x] = src[(size_t)sy * w + sx];
        }
    }
}

fm_status fm_image_load_grey(const char *path, const fm_image_params *p, uint8_t **grey,
                             uint32_t *h, uint32_t *w, int *channels, fm_error *err) {
    fm_image_params def = fm_image_default_params();
    if (!p) p = &def;
    *grey = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fm_fail(err, FM_ERR_IO, "%s: is a folder, not an image", path);
    if (!S_ISREG(st.st_mode)) return fm_fail(err, FM_ERR_IO, "%s: not a regular file", path);
    if (st.st_size == 0) return fm_fail(err, FM_ERR_FORMAT, "%s: empty file (0 bytes), not an image", path);
    FILE *f = fopen(path, "rb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* The header alone gives the size, so an enormous picture is refused before its pixels are
     * allocated. stbi_info_from_file leaves the file position where it was. */
    int x = 0, y = 0, comp = 0;
    if (!stbi_info_from_file(f, &x, &y, &comp)) {
        const char *why = stbi_failure_reason();
        fclose(f);
        return fm_fail(err, FM_ERR_FORMAT,
                       "%s: not an image fmnist can read (PNG, JPEG, BMP, PGM/PPM, GIF, TGA): %s", path,
                       why ? why : "unknown format");
    }
    if (x <= 0 || y <= 0) {
        fclose(f);
        return fm_fail(err, FM_ERR_FORMAT, "%s: the image is %dx%d pixels (empty)", path, x, y);
    }
    uint64_t pixels = (uint64_t)x * (uint64_t)y;
    if (pixels > p->max_pixels) {
        fclose(f);
        return fm_fail(err, FM_ERR_NOMEM, "%s: %dx%d is %llu pixels, over the limit of %llu", path, x,
                       y, (unsigned long long)pixels, (unsigned long long)p->max_pixels);
    }
    /* A JPEG from a camera or phone is often stored sideways with an EXIF note saying how to turn
     * it; stb decodes the pixels as stored. The start of the file is read for that note first. */
    int orientation = 1;
    uint8_t *head = malloc(EXIF_SEARCH_BYTES);
    if (head) {
        size_t got = fread(head, 1, EXIF_SEARCH_BYTES, f);
        orientation = fm_jpeg_exif_orientation(head, got);
        free(head);
    }
    if (fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fm_fail(err, FM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    /* Two channels, grey and alpha, whatever the file holds: stb converts colour to luma
     * (0.30 R + 0.59 G + 0.11 B) and gives opaque alpha to files without one. */
    int dx = 0, dy = 0, dcomp = 0;
    uint8_t *ga = stbi_load_from_file(f, &dx, &dy, &dcomp, 2);
    fclose(f);
    if (!ga) {
        const char *why = stbi_failure_reason();
        return fm_fail(err, FM_ERR_FORMAT, "%s: cannot decode the image (truncated or corrupt?): %s",
                       path, why ? why : "unknown error");
    }
    if (dx != x || dy != y) {
        stbi_image_free(ga);
        return fm_fail(err, FM_ERR_FORMAT, "%s: header says %dx%d but the image decodes to %dx%d",
                       path, x, y, dx, dy);
    }
    uint8_t *g = malloc((size_t)pixels);
    if (!g) {
        stbi_image_free(ga);
        return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for %dx%d pixels", path, x, y);
    }
    /* Transparent parts are shown over white, as a viewer shows them: a cut-out product photo
     * then has a light background like any other. */
    for (size_t i = 0; i < (size_t)pixels; i++) {
        unsigned v = ga[2 * i], a = ga[2 * i + 1];
        g[i] = (uint8_t)((v * a + 255u * (255u - a) + 127u) / 255u);
    }
    stbi_image_free(ga);
    if (orientation != 1) {
        uint8_t *upright = malloc((size_t)pixels);
        if (!upright) {
            free(g);
            return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory for %dx%d pixels", path, x, y);
        }
        fm_image_orient(upright, g, (uint32_t)y, (uint32_t)x, orientation);
        free(g);
        g = upright;
        if (orientation >= 5) { /* a quarter turn: width and height swap */
            int t = x;
            x = y, y = t;
        }
    }
    *grey = g;
    *h = (uint32_t)y;
    *w = (uint32_t)x;
    if (channels) *channels = dcomp;
    return FM_OK;
}

/* ---------------------------------------------------------------- preprocessing */

/* Median and spread of a 256-bin histogram: the spread is the median absolute deviation scaled to
 * a standard deviation (x1.4826 for Gaussian noise), which an item touching the border barely
 * moves, unlike the plain standard deviation. */
static void hist_median_spread(const uint64_t *hist, uint64_t n, double *median, double *spread) {
    uint64_t acc = 0;
    int med = 0;
    for (med = 0; med < 256; med++) {
        acc += hist[med];
        if (2 * acc >= n) break;
    }
    uint64_t dev[256] = {0};
    for (int v = 0; v < 256; v++) dev[abs(v - med)] += hist[v];
    acc = 0;
    int mad = 0;
    for (mad = 0; mad < 256; mad++) {
        acc += dev[mad];
        if (2 * acc >= n) break;
    }
    *median = med;
    *spread = 1.4826 * mad;
}

/* Histogram, sum and count of the pixels in a ring of the given thickness along the border. */
static void border_stats(const uint8_t *img, uint32_t h, uint32_t w, uint32_t thick,
                         const uint8_t *lut, uint64_t *hist, double *sum, uint64_t *n) {
    for (uint32_t y = 0; y < h; y++) {
        int edge_row = y < thick || y >= h - thick;
        for (uint32_t x = 0; x < w; x++) {
            if (!edge_row && x == thick && w > 2 * thick) x = w - thick; /* skip the inside */
            uint8_t v = lut[img[(size_t)y * w + x]];
            hist[v]++;
            *sum += v;
            (*n)++;
        }
    }
}

/* The area filter for one output pixel: the mean of the source line over [lo, hi), n values
 * line[0], line[stride], ... padded on both sides with fill. Pixels that the interval covers in
 * part are weighted by the part covered, so the result is the exact average of the area. */
static double area_mean(const float *line, size_t stride, size_t n, double lo, double hi, double fill) {
    double in_lo = lo > 0.0 ? lo : 0.0, in_hi = hi < (double)n ? hi : (double)n;
    double sum = 0.0, covered = 0.0;
    for (size_t i = (size_t)in_lo; (double)i < in_hi; i++) {
        double a = (double)i > in_lo ? (double)i : in_lo;
        double b = (double)(i + 1) < in_hi ? (double)(i + 1) : in_hi;
        sum += (b - a) * line[i * stride];
        covered += b - a;
    }
    return (sum + (hi - lo - covered) * fill) / (hi - lo);
}

/* img += amount * (img - gaussian(img)), the Gaussian of sigma 1 truncated at radius 1 (weights
 * 0.274, 0.452, 0.274), edges repeated. blur is scratch space of h*w floats. */
static void unsharp_mask(float *img, float *blur, uint32_t h, uint32_t w, double amount) {
    static const double g[3] = {0.27406862, 0.45186276, 0.27406862};
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            double a = 0.0;
            for (int d = -1; d <= 1; d++) {
                int yy = (int)y + d;
                yy = yy < 0 ? 0 : yy >= (int)h ? (int)h - 1 : yy;
                a += g[d + 1] * img[(size_t)yy * w + x];
            }
            blur[(size_t)y * w + x] = (float)a;
        }
    }
    for (uint32_t y = 0; y < h; y++) {
        const float *row = blur + (size_t)y * w;
        for (uint32_t x = 0; x < w; x++) {
            double a = 0.0;
            for (int d = -1; d <= 1; d++) {
                int xx = (int)x + d;
                xx = xx < 0 ? 0 : xx >= (int)w ? (int)w - 1 : xx;
                a += g[d + 1] * row[xx];
            }
            float *px = img + (size_t)y * w + x;
            *px = (float)(*px + amount * (*px - a));
        }
    }
}

fm_status fm_image_to_input(const uint8_t *grey, uint32_t h, uint32_t w, const fm_image_params *p,
                            uint8_t *out, uint32_t out_h, uint32_t out_w, fm_image_info *info,
                            fm_error *err) {
    fm_image_params def = fm_image_default_params();
    if (!p) p = &def;
    if (h == 0 || w == 0) return fm_fail(err, FM_ERR_ARG, "the image is %ux%u pixels (empty)", w, h);
    if (out_h == 0 || out_w == 0 || out_h > FM_IDX_MAX_SIDE || out_w > FM_IDX_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "input size %ux%u is outside 1..%u per side", out_w, out_h,
                       FM_IDX_MAX_SIDE);
    }
    fm_image_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->width = w, info->height = h;

    /* 1. Light background? Judged from the border, which in a photo of one item is background. */
    uint8_t identity[256], inverse[256];
    for (int v = 0; v < 256; v++) identity[v] = (uint8_t)v, inverse[v] = (uint8_t)(255 - v);
    uint32_t thick = (h < w ? h : w) / 32;
    if (thick < 1) thick = 1;
    uint64_t hist[256] = {0}, n_border = 0;
    double border_sum = 0.0, median, spread;
    border_stats(grey, h, w, thick, identity, hist, &border_sum, &n_border);
    hist_median_spread(hist, n_border, &median, &spread);
    int invert = p->invert == FM_INVERT_ALWAYS || (p->invert == FM_INVERT_AUTO && median >= 128.0);
    const uint8_t *lut = invert ? inverse : identity;
    if (invert) median = 255.0 - median, border_sum = 255.0 * (double)n_border - border_sum;
    double bg_mean = border_sum / (double)n_border;
    info->inverted = invert;
    info->background = (float)median;

    /* 2. A reduced copy, block-averaged by an integer factor f (area filter), then a 3x3 box
     * blur: isolated noisy pixels fade below the threshold while the item's edges stay put. */
    uint32_t longer = h > w ? h : w;
    uint32_t f = (longer + WORK_SIDE - 1) / WORK_SIDE;
    if (f < 1) f = 1;
    uint32_t wh = (h + f - 1) / f, ww = (w + f - 1) / f;
    uint8_t *work = malloc((size_t)wh * ww), *smooth = malloc((size_t)wh * ww);
    uint64_t *acc = calloc(ww, sizeof *acc);
    uint32_t *rows = calloc(wh, sizeof *rows), *cols = calloc(ww, sizeof *cols);
    float *tmp = NULL, *shrunk = NULL, *line = NULL;
    fm_status s = FM_OK;
    if (!work || !smooth || !acc || !rows || !cols) {
        s = fm_fail(err, FM_ERR_NOMEM, "out of memory preparing a %ux%u image", w, h);
        goto done;
    }
    for (uint32_t by = 0; by < wh; by++) {
        uint32_t y0 = by * f, y1 = y0 + f < h ? y0 + f : h;
        memset(acc, 0, ww * sizeof *acc);
        for (uint32_t y = y0; y < y1; y++) {
            const uint8_t *row = grey + (size_t)y * w;
            for (uint32_t x = 0; x < w; x++) acc[x / f] += lut[row[x]];
        }
        for (uint32_t bx = 0; bx < ww; bx++) {
            uint32_t x0 = bx * f, x1 = x0 + f < w ? x0 + f : w;
            uint32_t count = (y1 - y0) * (x1 - x0);
            work[(size_t)by * ww + bx] = (uint8_t)((acc[bx] + count / 2) / count);
        }
    }
    for (uint32_t y = 0; y < wh; y++) {
        for (uint32_t x = 0; x < ww; x++) {
            unsigned sum = 0, count = 0;
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = (int)y + dy, xx = (int)x + dx;
                    if (yy < 0 || xx < 0 || yy >= (int)wh || xx >= (int)ww) continue;
                    sum += work[(size_t)yy * ww + xx], count++;
                }
            }
            smooth[(size_t)y * ww + x] = (uint8_t)((sum + count / 2) / count);
        }
    }

    /* 3. The item: pixels of the smoothed copy clearly above the background, by the noise on the
     * reduced copy's border (three of its standard deviations, which the blur has already cut to
     * about a third, so grain and JPEG ringing stay out) and by a fraction of the contrast (so a
     * faint shadow does too). The border is read on the unblurred copy so that an item touching
     * the edge of a small picture bleeds into it as little as possible. */
    uint32_t wthick = (wh < ww ? wh : ww) / 32;
    uint64_t whist[256] = {0}, wn = 0;
    double wsum = 0.0, wmedian, wspread;
    border_stats(work, wh, ww, wthick ? wthick : 1, identity, whist, &wsum, &wn);
    hist_median_spread(whist, wn, &wmedian, &wspread);
    int brightest = 0;
    for (size_t i = 0; i < (size_t)wh * ww; i++) brightest = smooth[i] > brightest ? smooth[i] : brightest;
    double contrast = brightest - wmedian;
    if (contrast < MIN_CONTRAST) {
        s = fm_fail(err, FM_ERR_FORMAT,
                    "nothing stands out from the background (contrast %.0f of 255): a blank or "
                    "uniform picture",
                    contrast < 0 ? 0.0 : contrast);
        goto done;
    }
    double noise_margin = 3.0 * wspread + 2.0, contrast_margin = 0.1 * contrast;
    double threshold = wmedian + (noise_margin > contrast_margin ? noise_margin : contrast_margin);
    if (threshold >= brightest) threshold = wmedian + 0.5 * contrast;

    /* Rows and columns that hold item pixels. A pixel counts when it is above the threshold both
     * in the reduced copy (so the blur does not widen the box by a pixel) and in the blurred one,
     * and when a 4-neighbour is too: a lone speck of noise does not stretch the box. */
    uint64_t total = 0;
    for (uint32_t y = 0; y < wh; y++) {
        for (uint32_t x = 0; x < ww; x++) {
            const uint8_t *px = smooth + (size_t)y * ww + x;
            if (*px <= threshold || work[(size_t)y * ww + x] <= threshold) continue;
            int friends = (x > 0 && px[-1] > threshold) + (x + 1 < ww && px[1] > threshold) +
                          (y > 0 && px[-(ptrdiff_t)ww] > threshold) + (y + 1 < wh && px[ww] > threshold);
            if (friends == 0) continue;
            rows[y]++, cols[x]++, total++;
        }
    }
    if (total == 0) {
        s = fm_fail(err, FM_ERR_FORMAT, "nothing stands out from the background: only scattered specks");
        goto done;
    }
    /* The box spans all but the outermost 0.1% of item pixels on each side: what survives the
     * neighbour test far from the item (a scratch, a speck of dust) is trimmed away. */
    uint64_t trim = total / 1000;
    uint32_t by0 = 0, by1 = wh - 1, bx0 = 0, bx1 = ww - 1;
    uint64_t run = 0;
    for (by0 = 0; by0 < wh && (run += rows[by0]) <= trim; by0++) {}
    for (run = 0; by1 > by0 && (run += rows[by1]) <= trim; by1--) {}
    for (run = 0; bx0 < ww && (run += cols[bx0]) <= trim; bx0++) {}
    for (run = 0; bx1 > bx0 && (run += cols[bx1]) <= trim; bx1--) {}
    uint32_t X0 = bx0 * f, Y0 = by0 * f;
    uint32_t X1 = (bx1 + 1) * f < w ? (bx1 + 1) * f : w, Y1 = (by1 + 1) * f < h ? (by1 + 1) * f : h;
    uint32_t bw = X1 - X0, bh = Y1 - Y0;
    info->box_x = X0, info->box_y = Y0, info->box_w = bw, info->box_h = bh;

    /* 4. Shrink the box with an exact area filter (each output pixel the mean of the source area
     * it covers), the way Fashion-MNIST's own images were made: the longer side fills the output,
     * the shorter one becomes a whole number of pixels, centred with whole-pixel margins (one
     * more pixel before than after when they differ, as in the data set), background around. So
     * the item sits on the same pixel grid as the training images instead of straddling pixels. */
    double scale = (double)out_w / bw < (double)out_h / bh ? (double)out_w / bw : (double)out_h / bh;
    uint32_t n_x = (uint32_t)lround(bw * scale), n_y = (uint32_t)lround(bh * scale);
    n_x = n_x < 1 ? 1 : n_x > out_w ? out_w : n_x;
    n_y = n_y < 1 ? 1 : n_y > out_h ? out_h : n_y;
    uint32_t pad_x = (out_w - n_x + 1) / 2, pad_y = (out_h - n_y + 1) / 2;
    tmp = malloc((size_t)bh * out_w * sizeof *tmp);         /* [bh, out_w]: rows shrunk */
    shrunk = malloc(2 * (size_t)out_h * out_w * sizeof *shrunk); /* [out_h, out_w], then scratch */
    line = malloc((size_t)bw * sizeof *line);                /* one source row of the box */
    if (!tmp || !shrunk || !line) {
        s = fm_fail(err, FM_ERR_NOMEM, "out of memory preparing a %ux%u image", w, h);
        goto done;
    }
    for (uint32_t y = 0; y < bh; y++) {
        const uint8_t *row = grey + (size_t)(Y0 + y) * w + X0;
        for (uint32_t x = 0; x < bw; x++) line[x] = lut[row[x]];
        for (uint32_t ox = 0; ox < out_w; ox++) {
            double lo = ((double)ox - pad_x) * bw / n_x, hi = ((double)ox + 1 - pad_x) * bw / n_x;
            tmp[(size_t)y * out_w + ox] = (float)area_mean(line, 1, bw, lo, hi, bg_mean);
        }
    }
    for (uint32_t ox = 0; ox < out_w; ox++) {
        for (uint32_t oy = 0; oy < out_h; oy++) {
            double lo = ((double)oy - pad_y) * bh / n_y, hi = ((double)oy + 1 - pad_y) * bh / n_y;
            shrunk[(size_t)oy * out_w + ox] = (float)area_mean(tmp + ox, out_w, bh, lo, hi, bg_mean);
        }
    }

    /* 5. Stretch: the background (its level plus three standard deviations of the noise left
     * after averaging k source pixels into one) becomes 0, the item's brightest part 255, as in
     * Fashion-MNIST, whose images all have a black background and a maximum of 254 or 255. The
     * brightest part is taken on the photo (the smoothed copy) as well as on the result: a thin
     * bright detail that the shrinking averages away must not make the whole item brighter. */
    double k = ((double)bw / n_x) * ((double)bh / n_y);
    if (k < 1.0) k = 1.0;
    double lo = (median > bg_mean ? median : bg_mean) + 3.0 * spread / sqrt(k) + 1.0, hi = -1.0;
    for (size_t i = 0; i < (size_t)out_h * out_w; i++) hi = shrunk[i] > hi ? shrunk[i] : hi;
    for (uint32_t y = by0; y <= by1; y++) {
        for (uint32_t x = bx0; x <= bx1; x++) hi = smooth[(size_t)y * ww + x] > hi ? smooth[(size_t)y * ww + x] : hi;
    }
    if (hi - lo < 1.0) {
        s = fm_fail(err, FM_ERR_FORMAT,
                    "nothing stands out from the background once shrunk to %ux%u (the item is too "
                    "faint or too small)",
                    out_w, out_h);
        goto done;
    }
    /* 6. Sharpen what the shrinking blurred, as Fashion-MNIST's makers did after resizing (a
     * Gaussian unsharp mask, sigma 1): full strength (0.5) once each output pixel averages two or
     * more source pixels across, none for a picture already at the output's size. */
    double ratio = (double)bw / n_x > (double)bh / n_y ? (double)bw / n_x : (double)bh / n_y;
    double amount = 0.5 * (ratio >= 2.0 ? 1.0 : ratio <= 1.0 ? 0.0 : ratio - 1.0);
    if (amount > 0.0) unsharp_mask(shrunk, shrunk + (size_t)out_h * out_w, out_h, out_w, amount);
    for (size_t i = 0; i < (size_t)out_h * out_w; i++) {
        double v = (shrunk[i] - lo) * 255.0 / (hi - lo);
        out[i] = (uint8_t)(v <= 0.0 ? 0 : v >= 255.0 ? 255 : lround(v));
    }
done:
    free(work), free(smooth), free(acc), free(rows), free(cols), free(tmp), free(shrunk), free(line);
    return s;
}

fm_status fm_image_load_input(const char *path, const fm_image_params *p, uint8_t *out,
                              uint32_t out_h, uint32_t out_w, fm_image_info *info, fm_error *err) {
    uint8_t *grey = NULL;
    uint32_t h = 0, w = 0;
    int channels = 0;
    fm_status s = fm_image_load_grey(path, p, &grey, &h, &w, &channels, err);
    if (s) return s;
    s = fm_image_to_input(grey, h, w, p, out, out_h, out_w, info, err);
    free(grey);
    if (s) {
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err ? err->msg : "");
        return fm_fail(err, s, "%s: %s", path, inner);
    }
    if (info) info->channels = channels;
    return FM_OK;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    FILE *f;
    int failed;
} png_sink;

static void png_write(void *context, void *data, int size) {
    png_sink *sink = context;
    if (!sink->failed && size > 0 && fwrite(data, 1, (size_t)size, sink->f) != (size_t)size) sink->failed = 1;
}

fm_status fm_image_write_png(const char *path, const uint8_t *pixels, uint32_t h, uint32_t w,
                             fm_error *err) {
    if (h == 0 || w == 0 || h > FM_IDX_MAX_SIDE || w > FM_IDX_MAX_SIDE) {
        return fm_fail(err, FM_ERR_ARG, "%s: cannot write a %ux%u image", path, w, h);
    }
    char tmp[FM_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return fm_fail(err, FM_ERR_ARG, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_sink sink = {f, 0};
    int ok = stbi_write_png_to_func(png_write, &sink, (int)w, (int)h, 1, pixels, (int)w) && !sink.failed;
    int saved = errno;
    ok = ok && fflush(f) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: write failed: %s", path, strerror(saved ? saved : EIO));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return fm_fail(err, FM_ERR_IO, "%s: cannot replace: %s", path, strerror(saved));
    }
    return FM_OK;
}
