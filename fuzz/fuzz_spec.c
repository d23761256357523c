/* fuzz_spec.c — libFuzzer target for the model spec language and class-name lists. A spec that
 * parses must print a canonical form that parses again to the same layers (residual blocks
 * adding the same layers' outputs). */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    char *text = malloc(len + 1);
    if (!text) return 0;
    memcpy(text, data, len);
    text[len] = '\0';
    fm_error err = {0};
    fm_layer a[FM_MAX_LAYERS], b[FM_MAX_LAYERS];
    int na = 0, nb = 0;
    char canon[FM_SPEC_MAX], canon2[FM_SPEC_MAX];
    if (fm_spec_parse(text, 28, 28, 10, a, &na, canon, sizeof canon, &err) == FM_OK) {
        if (fm_spec_parse(canon, 28, 28, 10, b, &nb, canon2, sizeof canon2, &err) != FM_OK) abort();
        if (na != nb || strcmp(canon, canon2) != 0) abort();
        for (int i = 0; i < na; i++) {
            if (a[i].kind != b[i].kind || a[i].out_size != b[i].out_size || a[i].n_params != b[i].n_params) abort();
            if (a[i].kind == FM_LAYER_ADD && a[i].from != b[i].from) abort();
        }
    } else if (err.msg[0] == '\0') {
        abort();
    }
    fm_classes cl;
    memset(&err, 0, sizeof err);
    if (fm_classes_parse(text, &cl, &err) == FM_OK) {
        if (cl.n < 2 || cl.n > FM_MAX_CLASSES) abort();
    } else if (err.msg[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
