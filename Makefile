# Makefile — builds libfmnist.a, the fmnist command and the tests.
#   make                 optimised build in build/
#   make test            the whole suite (unit, command line, end to end on the real data)
#   make SAN=1 test-fast the unit and command-line tests under AddressSanitizer + UBSan (build-san/)
#   make PORTABLE=1      no -march=native (a binary for other x86-64 machines; the GEMM tiles
#                        still pick AVX-512 or AVX2 at run time, the convolution's Winograd,
#                        gather and transpose kernels run as SSE2)
#   make bench           the benchmark against PyTorch (bench/README.md)

CC      ?= cc
SAN     ?= 0
PORTABLE ?= 0

ifeq ($(SAN),1)
BUILD   ?= build-san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     := -O3 -g
LDSAN   :=
endif
ifeq ($(PORTABLE),0)
ARCH    := -march=native
endif

# Interoperability: ONNX through protobuf-c code generated from Debian's onnx.proto (libonnx-dev,
# protobuf-c-compiler), images through stb (libstb-dev's headers, compiled in by
# src/data/stb_impl.c with the fixes of src/data/stb_image-fixes.patch).
ONNX_PROTO_DIR ?= /usr/include
STB_DIR ?= /usr/include/stb
CFLAGS  += -I$(BUILD)/gen
LDLIBS  += -lprotobuf-c

# -fno-math-errno: nothing reads errno after sqrtf/expf, and setting it keeps loops scalar.
# cairo draws the pictures and writes the PNGs, its text through fontconfig and DejaVu Sans
# (fontconfig is named too for fm_release_caches).
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo fontconfig)
CAIRO_LIBS   := $(shell pkg-config --libs cairo fontconfig)

CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -fno-math-errno $(OPT) $(ARCH) -pthread -Iinclude -Isrc $(CAIRO_CFLAGS)
LDLIBS  += $(CAIRO_LIBS) -lcjson -lz -lm
LDFLAGS += -pthread $(LDSAN)

LIB_SRC := src/util.c src/fpenv.c src/pool.c src/model.c src/train.c src/kernels/gemm.c src/kernels/gemm_avx512.c \
           src/kernels/gemm_avx2.c src/kernels/gemm_bf16.c src/kernels/gather_axpy.c src/kernels/winograd.c src/kernels/transpose.c src/layers/dense.c \
           src/layers/activation.c src/layers/softmax_xent.c src/optim/sgd.c src/optim/adam.c \
           src/data/idx.c src/data/dataset.c src/io/safetensors.c src/io/checkpoint.c
# Convolutional networks: layers, optimizers and schedules, augmentation.
LIB_SRC += src/layers/conv2d.c src/layers/pool.c src/layers/dropout.c src/layers/add.c src/layers/batchnorm.c \
           src/optim/schedule.c src/optim/weight_decay.c src/data/augment.c src/presets.c
# Pictures, run reports and experiments.
LIB_SRC += src/report/draw.c src/report/html.c src/report/predictions.c src/report/grid.c \
           src/report/chart.c src/report/confusion.c src/report/run_report.c src/report/experiment.c
# Interoperability: ONNX export and photos.
LIB_SRC += src/io/onnx.c src/data/image.c src/data/stb_impl.c
CLI_SRC := cli/main.c cli/common.c cli/train.c cli/evaluate.c cli/predict.c cli/summary.c \
           cli/show.c cli/report.c cli/experiment.c cli/export.c cli/predict_images.c \
           cli/train_resume.c
TEST_SRC := $(wildcard tests/unit/test_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx/onnx.pb-c.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/unit/harness.o

all: $(BUILD)/fmnist $(BUILD)/unit_tests $(BUILD)/fixtures

$(BUILD)/libfmnist.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/fmnist: $(CLI_OBJ) $(BUILD)/libfmnist.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit_tests: $(TEST_OBJ) $(BUILD)/libfmnist.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fmnist-bench: $(BUILD)/bench/bench.o $(BUILD)/libfmnist.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -ldl

# The fixture writer also resizes photos with Debian's libstb (stb_image_resize).
$(BUILD)/fixtures: $(BUILD)/tests/fixtures.o $(BUILD)/libfmnist.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lstb

$(BUILD)/%.o: %.c include/fmnist.h src/internal.h src/kernels/gemm_simd.h src/report/report.h cli/cli.h tests/unit/harness.h tests/unit/tests.def
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The ONNX message code, generated at build time and never committed: onnx.pb-c.{c,h} from the
# onnx.proto that the installed ONNX ships, so the wire format comes from the spec, not from us.
$(BUILD)/gen/onnx/onnx.pb-c.c $(BUILD)/gen/onnx/onnx.pb-c.h &: $(ONNX_PROTO_DIR)/onnx/onnx.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(ONNX_PROTO_DIR) --c_out=$(BUILD)/gen onnx/onnx.proto

$(BUILD)/gen/onnx/onnx.pb-c.o: $(BUILD)/gen/onnx/onnx.pb-c.c $(BUILD)/gen/onnx/onnx.pb-c.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/src/io/onnx.o $(BUILD)/tests/unit/test_onnx.o: $(BUILD)/gen/onnx/onnx.pb-c.h

# stb_image.h as Debian ships it plus the memory-safety fixes that the fuzzer showed it lacks
# (stb 2.28's own fixes; the patch says which). Generated, never committed, like the ONNX code.
$(BUILD)/gen/stb/stb_image.h: $(STB_DIR)/stb_image.h src/data/stb_image-fixes.patch
	@mkdir -p $(BUILD)/gen/stb
	patch -s -o $@ $(STB_DIR)/stb_image.h src/data/stb_image-fixes.patch

# stb is not our code: its warnings and its integer arithmetic (UBSan) are left to it, as in
# Debian's build; AddressSanitizer still checks its memory accesses under SAN=1.
$(BUILD)/src/data/stb_impl.o: CFLAGS += -w -fno-sanitize=undefined
# `acc += g * row` as one fused multiply-add (ISO C mode turns contraction off; see the file).
$(BUILD)/src/kernels/gather_axpy.o: CFLAGS += -ffp-contract=fast
$(BUILD)/src/data/image.o $(BUILD)/src/data/stb_impl.o $(BUILD)/tests/unit/test_image.o: $(BUILD)/gen/stb/stb_image.h

# The whole suite: what the README's Quick start and CI run (after scripts/setup.sh).
test: all
	BUILD=$(BUILD) bash tests/run.sh

# Unit and command-line tests only (no long training), e.g. under sanitizers.
test-fast: all
	BUILD=$(BUILD) FMNIST_TEST_FAST=1 bash tests/run.sh

# The benchmark: fmnist against PyTorch on the real data, figures and ratios (bench/README.md).
bench: $(BUILD)/fmnist-bench
	BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build build-san

.PHONY: all test test-fast bench clean

# For scripts/fuzz.sh, which builds the library with clang's fuzzer instrumentation (and has
# make write the generated sources into its own folder: make BUILD=build-fuzz gen).
print-lib-src:
	@echo $(LIB_SRC)
gen: $(BUILD)/gen/onnx/onnx.pb-c.c $(BUILD)/gen/stb/stb_image.h
.PHONY: print-lib-src gen
