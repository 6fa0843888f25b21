# Unit tests (Check): every tests/unit/test_*.c is one test program.
UNIT_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPERS := $(sort $(wildcard tests/unit/helpers/*.c))
UNIT_HELPER_OBJS := $(UNIT_HELPERS:%.c=$(BUILD)/%.o)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

# In-VM driver test programs: tests/vm/t_*.c, run by tests/vm/guest.sh.
VMTEST_SRCS := $(sort $(wildcard tests/vm/t_*.c))
VMTEST_BINS := $(VMTEST_SRCS:tests/vm/%.c=$(BUILD)/vmtests/%)

.PHONY: unit-tests vm-tests
unit-tests: $(UNIT_BINS)
vm-tests: $(VMTEST_BINS)
all: vm-tests

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HELPER_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(LIB_A) $(LIB_LIBS) $(CHECK_LIBS) $(LDLIBS)

# They test the kernel's uapi directly (libdrm only), not the library.
$(BUILD)/vmtests/%: $(BUILD)/tests/vm/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -ldrm $(LDLIBS)

check-unit: $(UNIT_BINS)
	scripts/run-unit-tests.sh $(UNIT_BINS)

# Host side of the VM rig.
$(BUILD)/vmhost/kvfpga-vm-agent: tests/vm/host_agent.c tests/vm/pattern.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $<
vm-tests: $(BUILD)/vmhost/kvfpga-vm-agent $(BUILD)/bin/kvfpga-mkcard

# Header dependencies of the test objects (-MMD), so a changed header rebuilds them.
-include $(wildcard $(BUILD)/tests/unit/*.d $(BUILD)/tests/unit/helpers/*.d $(BUILD)/tests/vm/*.d)
