/* fuzz_model.c — libFuzzer target for model files (safetensors + fmnist metadata): any input
 * either loads into a model that can predict, or fails with a message. */
#include "fuzz_common.h"
#include "fmnist.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    const char *path = fuzz_scratch(".safetensors", data, len);
    if (!path) return 0;
    fm_error err = {0};
    fm_model *m = NULL;
    if (fm_model_load(path, &m, &err) == FM_OK) {
        uint32_t h, w;
        fm_model_input_shape(m, &h, &w);
        size_t pixels = (size_t)h * w;
        int classes = fm_model_classes(m)->n;
        /* Models the fuzzer can write are small; skip the rare large one to keep runs fast. */
        if (pixels <= 4096 && fm_model_param_count(m) <= (1u << 20)) {
            float *x = calloc(pixels, sizeof(float)), *p = calloc((size_t)classes, sizeof(float));
            if (x && p && fm_predict_inputs(m, x, 1, p, 1, &err) != FM_OK) abort();
            free(x);
            free(p);
        }
        fm_model_free(m);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    unlink(path);
    return 0;
}
