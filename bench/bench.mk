# Benchmarks: each prints ratios against a baseline measured in the same run.
# `make bench` runs them all; bench-<name> runs one.  BENCH_ARGS is passed on
# (e.g. make bench BENCH_ARGS=--json).
BENCH_NAMES := attention_bench
BENCH_BINS  := $(BENCH_NAMES:%=$(BUILD)/bench/%)
BENCH_LIBS_attention_bench = $(BENCH_UTIL_OBJ) $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

.PHONY: bench-build bench-attention
bench-build: $(BENCH_BINS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(filter %.o,$(BENCH_LIBS_$*)) $(LIB_A) $(LIB_LIBS) $(LDLIBS) \
		$(filter-out %.o,$(BENCH_LIBS_$*))

bench: bench-attention
bench-attention: $(BUILD)/bench/attention_bench
	$(BUILD)/bench/attention_bench $(BENCH_ARGS)

# ---- make bench: the whole harness (bench/run-bench.sh) ----
# membw (host ceilings), attention_sweep (decode/prefill matrix on the
# engine), kv_append_bench (KV append through mapped card memory, system
# calls per token), prefix_bench (time to first token, prefix cached vs cold)
# share bench/bench_util.c.  bench/run-bench.sh runs them, attention_bench
# --json, kvfpga-run end to end and the in-VM part, then writes
# bench/out/results.json and a Markdown table.  BENCH_QUICK=1: a short run.
BENCH_HARNESS_NAMES := membw attention_sweep kv_append_bench prefix_bench
BENCH_HARNESS_BINS  := $(BENCH_HARNESS_NAMES:%=$(BUILD)/bench/%)
BENCH_UTIL_OBJ      := $(BUILD)/bench/bench_util.o
BENCH_JSONC_LIBS    := $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)
$(foreach b,$(BENCH_HARNESS_NAMES),$(eval BENCH_LIBS_$(b) := $(BENCH_UTIL_OBJ) $(BENCH_JSONC_LIBS)))
$(BENCH_HARNESS_BINS) $(BENCH_BINS): $(BENCH_UTIL_OBJ)

ifeq ($(BENCH_QUICK),1)
BENCH_ARGS += --quick
endif

.PHONY: bench-harness
bench-build: $(BENCH_HARNESS_BINS)
bench: bench-harness
# After attention_bench's own run (never both at once: they would measure each other).
bench-harness: bench-attention $(BENCH_HARNESS_BINS) $(BENCH_BINS) $(BUILD)/bin/kvfpga-run \
		$(BUILD)/bin/kvfpga-genmodel $(BUILD)/bin/kvfpga-mkcard $(BUILD)/vmhost/kvfpga-vm-agent
	BUILD=$(BUILD) BENCH_QUICK=$(BENCH_QUICK) BENCH_CC="$(CC)" BENCH_CFLAGS="$(CFLAGS)" \
		bench/run-bench.sh

# Header dependencies of the benchmarks' objects (-MMD).
-include $(wildcard $(BUILD)/bench/*.d)
