# Makefile — builds libfmnist.a, the fmnist command and the tests.
#   make                 optimised build in build/
#   make test            the whole suite (unit, command line, end to end on the real data)
#   make SAN=1 test-fast the unit and command-line tests under AddressSanitizer + UBSan (build-san/)
#   make PORTABLE=1      no -march=native (a binary for other x86-64 machines)

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

CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter $(OPT) $(ARCH) -fopenmp -Iinclude -Isrc
LDLIBS  += -lcjson -lz -lm
# Interoperability: ONNX through protobuf-c code generated from Debian's onnx.proto (libonnx-dev,
# protobuf-c-compiler), images through stb (libstb-dev).
ONNX_PROTO_DIR ?= /usr/include
CFLAGS  += -I$(BUILD)/gen
LDLIBS  += -lprotobuf-c -lstb
LDFLAGS += -fopenmp $(LDSAN)

LIB_SRC := src/util.c src/model.c src/train.c src/kernels/gemm.c src/layers/dense.c \
           src/layers/activation.c src/layers/softmax_xent.c src/optim/sgd.c src/optim/adam.c \
           src/data/idx.c src/data/dataset.c src/io/safetensors.c
LIB_SRC += src/io/onnx.c src/data/image.c
CLI_SRC := cli/main.c cli/common.c cli/train.c cli/evaluate.c cli/predict.c cli/summary.c
CLI_SRC += cli/export.c cli/predict_images.c
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

$(BUILD)/fixtures: $(BUILD)/tests/fixtures.o $(BUILD)/libfmnist.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c include/fmnist.h src/internal.h cli/cli.h tests/unit/harness.h tests/unit/tests.def
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

# The whole suite: what the README's Quick start and CI run (after scripts/setup.sh).
test: all
	BUILD=$(BUILD) bash tests/run.sh

# Unit and command-line tests only (no long training), e.g. under sanitizers.
test-fast: all
	BUILD=$(BUILD) FMNIST_TEST_FAST=1 bash tests/run.sh

clean:
	rm -rf build build-san

.PHONY: all test test-fast clean
