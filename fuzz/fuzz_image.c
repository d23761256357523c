/* fuzz_image.c — libFuzzer target for pictures: decoding through stb_image (PNG, JPEG, BMP,
 * PGM/PPM, GIF, TGA, ...) with the pixel limit, then the preprocessing into a model input. The
 * first byte picks the limit, the inversion mode and the output size; the rest is the file. */
#include "fuzz_common.h"
#include "fmnist.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len < 1) return 0;
    uint8_t sel = data[0];
    const char *path = fuzz_scratch(".img", data + 1, len - 1);
    if (!path) return 0;
    fm_image_params p = fm_image_default_params();
    /* A small limit half the time, so refusing by the header is exercised by small files too;
     * never the full 64 megapixels, whose decoding would take seconds per input. */
    p.max_pixels = sel & 1 ? 4096 : (1u << 20);
    p.invert = (fm_invert)((sel >> 1) % 3);
    static const uint32_t sides[4][2] = {{28, 28}, {1, 1}, {7, 33}, {64, 48}};
    uint32_t out_h = sides[(sel >> 3) & 3][0], out_w = sides[(sel >> 3) & 3][1];
    fm_error err = {0};
    uint8_t *grey = NULL;
    uint32_t h = 0, w = 0;
    int channels = 0;
    if (fm_image_load_grey(path, &p, &grey, &h, &w, &channels, &err) == FM_OK) {
        if (h == 0 || w == 0 || (uint64_t)h * w > p.max_pixels || channels < 1 || channels > 4) abort();
        volatile uint8_t sink = grey[(size_t)h * w - 1];
        (void)sink;
        uint8_t out[64 * 48];
        fm_image_info info;
        memset(&err, 0, sizeof err);
        if (fm_image_to_input(grey, h, w, &p, out, out_h, out_w, &info, &err) == FM_OK) {
            /* The item's box lies inside the picture. */
            if (info.width != w || info.height != h || info.box_w == 0 || info.box_h == 0 ||
                (uint64_t)info.box_x + info.box_w > w || (uint64_t)info.box_y + info.box_h > h) {
                abort();
            }
        } else if (err.msg[0] == '\0') {
            abort();
        }
        free(grey);
    } else if (err.msg[0] == '\0' || grey) {
        abort();
    }
    unlink(path);
    return 0;
}
