# Benchmarks: each prints ratios against a baseline measured in the same run.
# `make bench` runs them all; bench-<name> runs one.  BENCH_ARGS is passed on
# (e.g. make bench BENCH_ARGS=--json).
BENCH_NAMES := attention_bench
BENCH_BINS  := $(BENCH_NAMES:%=$(BUILD)/bench/%)
BENCH_LIBS_attention_bench := $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

.PHONY: bench-build bench-attention
bench-build: $(BENCH_BINS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS) $(LDLIBS) $(BENCH_LIBS_$*)

bench: bench-attention
bench-attention: $(BUILD)/bench/attention_bench
	$(BUILD)/bench/attention_bench $(BENCH_ARGS)
