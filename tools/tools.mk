# Tools: tools/<name>.c (plus tools/<name>/*.c if present) -> $(BUILD)/bin/<name>,
# linked statically against libkvfpga so they run from the build tree.
TOOL_NAMES := $(sort $(basename $(notdir $(wildcard tools/*.c))))
TOOL_BINS  := $(TOOL_NAMES:%=$(BUILD)/bin/%)

.PHONY: tools
tools: $(TOOL_BINS)
all: tools

$(BUILD)/bin/%: $(BUILD)/tools/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS) $(LDLIBS) $(TOOL_LIBS_$*)

# kvfpga-smi writes its --json output with json-c.
TOOL_LIBS_kvfpga-smi := $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

# The card-descriptor writer is part of the test rig: it must build even
# when the library does not, so it links nothing of it.
$(BUILD)/bin/kvfpga-mkcard: $(BUILD)/tools/kvfpga-mkcard.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -lz

.SECONDARY:

# Header dependencies of the tools' objects (-MMD).
-include $(wildcard $(BUILD)/tools/*.d)
