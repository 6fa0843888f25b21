# hw: the attention kernels.  The library embeds hw/kernels/kvfpga_attention.cl
# (lib/engine_source.c, .incbin), so that object depends on it; the FPGA
# build flow is hw/Makefile (make -C hw help).
HW_KERNELS := $(sort $(wildcard hw/kernels/*.cl))

$(BUILD)/lib/engine_source.o: $(HW_KERNELS)

.PHONY: install-hw hw-help
install: install-hw
install-hw:
	install -d $(DESTDIR)$(PREFIX)/share/kvfpga/kernels
	install -m 0644 $(HW_KERNELS) $(DESTDIR)$(PREFIX)/share/kvfpga/kernels/

hw-help:
	@$(MAKE) --no-print-directory -C hw help
