# kvfpga top-level build.  `make help` lists the targets.
#
# Userspace is plain make with one fragment per component (lib/lib.mk,
# tools/tools.mk, tests/tests.mk, bench/bench.mk, hw/hw.mk); the kernel
# module is Kbuild (./Kbuild, driver/Kbuild), built per kernel by
# scripts/build-module.sh.

PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc
BUILD      ?= build
OPT        ?= -O2
SAN        ?=
KVFPGA_VERSION := 0.1.0
KVFPGA_SOVERSION := 0

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS   += -Iinclude -Iinclude/uapi/drm -D_GNU_SOURCE $(shell pkg-config --cflags libdrm 2>/dev/null)
CFLAGS     ?= $(OPT) -g
CFLAGS     += -std=c11 $(WARN) -fPIC -pthread $(SAN)
LDFLAGS    += -pthread $(SAN)
LDLIBS     += -lm

.PHONY: all help deps module module-strict check check-unit check-vm check-sanitize demo bench lint format clean
all:

help:
	@echo "make              build libkvfpga (.so and .a) and the tools into $(BUILD)/"
	@echo "make module       build kvfpga.ko (KDIR=... or every Debian kernel build tree)"
	@echo "make check        every test: unit tests (plain and ASan/UBSan) and the in-VM driver suite"
	@echo "make check-unit   userspace unit tests only"
	@echo "make check-fuzz   parser fuzzing (30 s per libFuzzer target, regressions) and valgrind"
	@echo "make fuzz         the libFuzzer targets for FUZZ_SECONDS each; fuzz-driver: the uapi fuzzer in the VM"
	@echo "make check-vm     the in-VM driver suite only (KERNELS='6.1 6.12')"
	@echo "make demo         the FPGA-backed inference demo on its embedded default"
	@echo "make bench        benchmarks, as ratios against baselines measured in the same run"
	@echo "make deps         install the Debian packages the build and tests need (root)"
	@echo "make lint         clang-format check, cppcheck, checkpatch on driver/"
	@echo "make install      install under PREFIX=$(PREFIX) (DESTDIR honoured); make uninstall"
	@echo "make check-install  install into a temporary DESTDIR and build a pkg-config consumer"
	@echo "make dkms-install kvfpga.ko through DKMS for every kernel (make check-dkms: build test)"
	@echo "make fuzz         libFuzzer targets (FUZZ_SECONDS=N); make fuzz-driver: the uapi fuzzer in the VM"

deps:
	@scripts/deps.sh

module:
	@scripts/build-module.sh $(if $(KDIR),--kdir $(KDIR))

-include lib/lib.mk
-include tools/tools.mk
-include tests/tests.mk
-include hw/hw.mk
-include bench/bench.mk
-include mk/install.mk
-include tests/fuzz/fuzz.mk

check: deps
	$(MAKE) check-unit
	$(MAKE) check-sanitize
	$(MAKE) check-fuzz
	$(MAKE) check-install
	$(MAKE) check-vm

check-sanitize:
	$(MAKE) BUILD=$(BUILD)/san OPT="-O1" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check-unit

# The driver must build warning-free with W=1 on every kernel.
module-strict:
	@KBUILD_ARGS="W=1 KCFLAGS=-Werror" scripts/build-module.sh $(if $(KDIR),--kdir $(KDIR))

check-vm: deps all unit-tests module-strict
	tests/vm/run-suite.sh $(if $(KERNELS),--kernels "$(KERNELS)")

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' | grep -v '^driver/' | grep -v '^include/uapi/' | grep -v '^include/kvfpga/kvfpga_card.h')

format:
	clang-format -i $(FORMAT_SRC)

CPPCHECK_FLAGS = --quiet --error-exitcode=1 --enable=warning,performance --std=c11 --inline-suppr \
	-j2 -Iinclude -Iinclude/uapi/drm -I/usr/include/libdrm -D__linux__ -D__x86_64__ \
	-DKVFPGA_HW_DIR=\"hw/kernels\" --suppress=missingIncludeSystem \
	--suppress=negativeIndex:tests/vm/t_fuzz.c
# (t_fuzz.c: every path to w->bufs[b] has b >= 0, through early returns cppcheck
# does not follow.)

lint:
	clang-format --dry-run --Werror $(FORMAT_SRC)
	cppcheck $(CPPCHECK_FLAGS) lib tools tests/unit tests/vm bench
	scripts/checkpatch.sh

demo: deps all
	scripts/demo.sh

clean:
	rm -rf $(BUILD)
