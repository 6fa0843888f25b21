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

TOOL_LIBS_kvfpga-mkcard := -lz
