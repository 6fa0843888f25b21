# libkvfpga: every lib/*.c and lib/*/*.c goes into both the shared and the static library.
LIB_SRCS   := $(sort $(wildcard lib/*.c lib/*/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_LIBS   := $(shell pkg-config --libs libdrm 2>/dev/null || echo -ldrm) -lOpenCL -lm -lpthread
LIB_SO     := $(BUILD)/lib/libkvfpga.so
LIB_SONAME := libkvfpga.so.$(KVFPGA_SOVERSION)
LIB_A      := $(BUILD)/lib/libkvfpga.a

# XRT (Debian's libxrt-dev) is optional: compiled in when its headers exist.
# Debian puts them in /usr/include/xrt/xrt/ and they include each other as
# "xrt.h", so the one file that uses them gets -isystem /usr/include/xrt
# (system: their old-style prototypes would trip -Werror).
ifneq ($(wildcard /usr/include/xrt/xrt/xrt_device.h),)
CPPFLAGS   += -DKVFPGA_HAVE_XRT=1
LIB_LIBS   += -lxrt_coreutil
$(BUILD)/lib/engine_xrt.o: CPPFLAGS += -isystem /usr/include/xrt
endif

CPPFLAGS   += -DKVFPGA_HW_DIR=\"$(abspath hw/kernels)\"

.PHONY: lib
lib: $(LIB_SO) $(LIB_A)
all: lib

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB_SO).$(KVFPGA_VERSION): $(LIB_OBJS) lib/libkvfpga.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(LIB_SONAME) -Wl,--version-script=lib/libkvfpga.map $(LDFLAGS) \
		-o $@ $(LIB_OBJS) $(LIB_LIBS)

$(LIB_SO): $(LIB_SO).$(KVFPGA_VERSION)
	ln -sf $(notdir $<) $(BUILD)/lib/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $@

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

-include $(LIB_OBJS:.o=.d)
