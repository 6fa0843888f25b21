# Fuzzing and memory checking (docs/security.md).
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="gguf ..."] [FUZZ_SEED=S]
#                       each libFuzzer target for N seconds (default 60)
#   make check-fuzz     replay tests/fuzz/regressions/, 30 s per target, then check-valgrind
#   make check-valgrind kvfpga-run under valgrind on models made by kvfpga-genmodel
#   make fuzz-driver [FUZZ_DRIVER_SECONDS=N] [FUZZ_DRIVER_SEED=S] [KERNELS="6.1 6.12"]
#                       the in-VM uapi fuzzer (tests/vm/t_fuzz.c) for N seconds per kernel
#
# The targets (tests/fuzz/fuzz_*.c) link the model loaders and the tokenizer
# built with clang's -fsanitize=fuzzer,address,undefined; their seed corpora
# come from tests/fuzz/make-seeds.sh (kvfpga-genmodel's files).  Corpora grow
# in $(BUILD)/fuzz/corpus/<target>; crashes land in $(BUILD)/fuzz/artifacts/.

FUZZ_CC        ?= clang
FUZZ_DIR       := $(BUILD)/fuzz
FUZZ_SECONDS   ?= 60
FUZZ_TARGETS   ?= gguf llama2c tokbin encode
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS    := -std=c11 -g -O1 $(WARN) -D_GNU_SOURCE -Iinclude -Ilib -Itests/fuzz $(FUZZ_SAN)
FUZZ_LIB_SRCS  := lib/model.c lib/model_gguf.c lib/model_llama2c.c lib/tokenizer.c
FUZZ_LIB_OBJS  := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BINS      := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_SEEDS     := $(FUZZ_DIR)/seeds
FUZZ_GENMODEL  := $(BUILD)/bin/kvfpga-genmodel
FUZZ_DRIVER_SECONDS ?= 600

.PHONY: fuzz fuzz-build fuzz-replay check-fuzz check-valgrind fuzz-driver

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# The loader maps its file through the harness, which hands it a heap copy
# of exactly the file's size (tests/fuzz/fuzz_common.h).
$(FUZZ_DIR)/obj/lib/model.o: FUZZ_CFLAGS += -Dmmap=fuzz_model_mmap -Dmunmap=fuzz_model_munmap

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_LIB_OBJS) -lm

$(FUZZ_SEEDS)/.stamp: tests/fuzz/make-seeds.sh $(FUZZ_GENMODEL)
	tests/fuzz/make-seeds.sh $(FUZZ_GENMODEL) $(FUZZ_SEEDS)
	touch $@

fuzz-build: $(FUZZ_BINS) $(FUZZ_SEEDS)/.stamp

fuzz-replay: fuzz-build
	tests/fuzz/run-fuzz.sh replay $(FUZZ_DIR) $(FUZZ_TARGETS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) \
		tests/fuzz/run-fuzz.sh run $(FUZZ_DIR) $(FUZZ_TARGETS)

check-fuzz: fuzz-build
	tests/fuzz/run-fuzz.sh replay $(FUZZ_DIR) $(FUZZ_TARGETS)
	FUZZ_SECONDS=30 FUZZ_SEED=$(FUZZ_SEED) tests/fuzz/run-fuzz.sh run $(FUZZ_DIR) $(FUZZ_TARGETS)
	$(MAKE) check-valgrind

check-valgrind: $(BUILD)/bin/kvfpga-run $(FUZZ_GENMODEL)
	tests/fuzz/valgrind-run.sh $(BUILD)

fuzz-driver: all module
	tests/fuzz/fuzz-driver.sh --seconds $(FUZZ_DRIVER_SECONDS) \
		$(if $(FUZZ_DRIVER_SEED),--seed $(FUZZ_DRIVER_SEED)) $(if $(KERNELS),--kernels "$(KERNELS)")

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:=.d)
