# Installation: make install / uninstall (PREFIX, DESTDIR and the *DIR
# variables below), check-install (part of make check), dkms-install /
# dkms-uninstall / dkms-source, check-dkms (needs dkms; not part of make check).
#
# What goes where (PREFIX=/usr/local by default):
#   $(LIBDIR)        libkvfpga.so.0.1.0, libkvfpga.so.0 -> it, libkvfpga.so -> .so.0, libkvfpga.a
#   $(INCLUDEDIR)    kvfpga/*.h, drm/kvfpga_accel.h (the driver's uapi)
#   $(PKGCONFIGDIR)  kvfpga.pc (Cflags -I$(INCLUDEDIR): <kvfpga/kvfpga.h>, <drm/kvfpga_accel.h>)
#   $(BINDIR)        the tools except the test rig's (TEST_ONLY_TOOLS)
#   $(MANDIR)        man1/kvfpga-*.1, man3/libkvfpga.3
#   $(DATADIR)/kvfpga/kernels   the OpenCL kernel sources (hw/hw.mk's install-hw)
#   $(DOCDIR)        docs/*.md, CHANGELOG.md
#   $(UDEVRULESDIR)  72-kvfpga.rules; $(SYSUSERSDIR) kvfpga.conf (the "kvfpga" group)
# With an empty DESTDIR, install also runs ldconfig, creates the group
# (systemd-sysusers) and reloads udev, where those exist.  An unprivileged
# install (PREFIX=$HOME/.local) passes UDEVRULESDIR= SYSUSERSDIR= (empty) to
# leave the udev rule and the group file out.

BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATADIR      ?= $(PREFIX)/share
MANDIR       ?= $(DATADIR)/man
DOCDIR       ?= $(DATADIR)/doc/kvfpga
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# udev and systemd-sysusers read /usr/lib and /usr/local/lib; for any other
# prefix the rule and the group file go to /etc.
ifneq ($(filter /usr /usr/local,$(PREFIX)),)
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
else
UDEVRULESDIR ?= /etc/udev/rules.d
SYSUSERSDIR  ?= /etc/sysusers.d
endif
# hw/hw.mk installs the kernel sources here (install-hw, a prerequisite of install).
KERNELS_INSTDIR := $(PREFIX)/share/kvfpga/kernels
DKMS         ?= dkms
DKMS_SRCDIR  ?= /usr/src/kvfpga-$(KVFPGA_VERSION)

# kvfpga-mkcard writes descriptors into the VM rig's stand-in cards and
# kvfpga-genmodel writes synthetic test models: both stay in the build tree.
TEST_ONLY_TOOLS   := kvfpga-mkcard kvfpga-genmodel
INSTALL_TOOLS     := $(filter-out $(TEST_ONLY_TOOLS),$(TOOL_NAMES))
INSTALL_TOOL_BINS := $(INSTALL_TOOLS:%=$(BUILD)/bin/%)
INSTALL_HEADERS   := $(sort $(wildcard include/kvfpga/*.h))
INSTALL_KERNELS   := $(notdir $(wildcard hw/kernels/*.cl))
INSTALL_MAN1      := $(sort $(wildcard man/*.1))
INSTALL_MAN3      := $(sort $(wildcard man/*.3))
INSTALL_DOCS      := $(sort $(wildcard docs/*.md)) CHANGELOG.md
LIB_REALNAME      := libkvfpga.so.$(KVFPGA_VERSION)

# kvfpga.pc: paths under PREFIX are written relative to ${prefix}.
pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
# libdrm's drm.h is what <drm/kvfpga_accel.h> includes; OpenCL is linked.
PC_REQUIRES_PRIVATE := libdrm OpenCL
PC_LIBS_PRIVATE     := $(filter-out -ldrm -lOpenCL,$(LIB_LIBS))
PC_SED = -e 's|@PREFIX@|$(PREFIX)|g' \
	 -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|g' \
	 -e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|g' \
	 -e 's|@KERNELSDIR@|$(call pc_rel,$(KERNELS_INSTDIR))|g' \
	 -e 's|@VERSION@|$(KVFPGA_VERSION)|g' \
	 -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES_PRIVATE)|g' \
	 -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|g'

.PHONY: install uninstall check-install dkms-source dkms-install dkms-uninstall check-dkms

install: $(LIB_SO) $(LIB_A) $(INSTALL_TOOL_BINS)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(INCLUDEDIR)/kvfpga $(DESTDIR)$(INCLUDEDIR)/drm \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/lib/$(LIB_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIB_REALNAME)
	ln -sfn $(LIB_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sfn $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libkvfpga.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libkvfpga.a
	install -m 0644 $(INSTALL_HEADERS) $(DESTDIR)$(INCLUDEDIR)/kvfpga/
	install -m 0644 include/uapi/drm/kvfpga_accel.h $(DESTDIR)$(INCLUDEDIR)/drm/
	sed $(PC_SED) kvfpga.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/kvfpga.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/kvfpga.pc
	install -m 0755 $(INSTALL_TOOL_BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(INSTALL_MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(INSTALL_MAN3) $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 $(INSTALL_DOCS) $(DESTDIR)$(DOCDIR)/
# 70-kvfpga.rules was the rule's earlier name (it sorted before 70-uaccess.rules).
ifneq ($(UDEVRULESDIR),)
	install -d $(DESTDIR)$(UDEVRULESDIR)
	install -m 0644 udev/72-kvfpga.rules $(DESTDIR)$(UDEVRULESDIR)/
	rm -f $(DESTDIR)$(UDEVRULESDIR)/70-kvfpga.rules
endif
ifneq ($(SYSUSERSDIR),)
	install -d $(DESTDIR)$(SYSUSERSDIR)
	printf 'g kvfpga - - -\n' >$(DESTDIR)$(SYSUSERSDIR)/kvfpga.conf
	chmod 0644 $(DESTDIR)$(SYSUSERSDIR)/kvfpga.conf
endif
ifeq ($(DESTDIR),)
	-ldconfig
ifneq ($(SYSUSERSDIR),)
	if command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/kvfpga.conf; fi
endif
ifneq ($(UDEVRULESDIR),)
	-if command -v udevadm >/dev/null; then udevadm control --reload 2>/dev/null; fi
endif
	@echo "kvfpga: installed under $(PREFIX); add users to the kvfpga group to use the cards"
endif

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(LIB_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME) \
		$(DESTDIR)$(LIBDIR)/libkvfpga.so $(DESTDIR)$(LIBDIR)/libkvfpga.a \
		$(DESTDIR)$(PKGCONFIGDIR)/kvfpga.pc \
		$(addprefix $(DESTDIR)$(INCLUDEDIR)/kvfpga/,$(notdir $(INSTALL_HEADERS))) \
		$(DESTDIR)$(INCLUDEDIR)/drm/kvfpga_accel.h \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_TOOLS)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(INSTALL_MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(INSTALL_MAN3))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS))) \
		$(addprefix $(DESTDIR)$(KERNELS_INSTDIR)/,$(INSTALL_KERNELS)) \
		$(if $(UDEVRULESDIR),$(DESTDIR)$(UDEVRULESDIR)/72-kvfpga.rules \
			$(DESTDIR)$(UDEVRULESDIR)/70-kvfpga.rules) \
		$(if $(SYSUSERSDIR),$(DESTDIR)$(SYSUSERSDIR)/kvfpga.conf)
	-rmdir $(DESTDIR)$(INCLUDEDIR)/kvfpga $(DESTDIR)$(DOCDIR) $(DESTDIR)$(KERNELS_INSTDIR) \
		$(DESTDIR)$(PREFIX)/share/kvfpga 2>/dev/null
ifeq ($(DESTDIR),)
	-ldconfig
	@echo "kvfpga: uninstalled; the kvfpga group stays (groupdel kvfpga removes it)"
endif

# Installs into a temporary DESTDIR, builds and runs a program against the
# installed library with pkg-config only, checks man pages against --help,
# then uninstalls and checks that nothing is left.
check-install: $(LIB_SO) $(LIB_A) $(INSTALL_TOOL_BINS)
	MAKE="$(MAKE)" BUILD="$(BUILD)" KVFPGA_VERSION="$(KVFPGA_VERSION)" \
		INSTALL_TOOLS="$(INSTALL_TOOLS)" tests/install/check-install.sh

# The module's sources as DKMS wants them: DESTDIR$(DKMS_SRCDIR) holds
# dkms.conf, Kbuild, driver/ and the two headers the driver includes.
dkms-source:
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)
	install -d $(DESTDIR)$(DKMS_SRCDIR)/driver $(DESTDIR)$(DKMS_SRCDIR)/include/kvfpga \
		$(DESTDIR)$(DKMS_SRCDIR)/include/uapi/drm
	install -m 0644 dkms.conf Kbuild $(DESTDIR)$(DKMS_SRCDIR)/
	install -m 0644 driver/Kbuild $(wildcard driver/*.c driver/*.h) $(DESTDIR)$(DKMS_SRCDIR)/driver/
	install -m 0644 include/kvfpga/kvfpga_card.h $(DESTDIR)$(DKMS_SRCDIR)/include/kvfpga/
	install -m 0644 include/uapi/drm/kvfpga_accel.h $(DESTDIR)$(DKMS_SRCDIR)/include/uapi/drm/

# KVER=<release> builds for that kernel, else dkms's default (the running one).
dkms-install:
	@command -v $(DKMS) >/dev/null || { echo "dkms-install: $(DKMS) not found (apt-get install dkms linux-headers-$$(uname -r))" >&2; exit 1; }
	-$(DKMS) remove -m kvfpga -v $(KVFPGA_VERSION) --all >/dev/null 2>&1
	$(MAKE) --no-print-directory dkms-source DESTDIR=
	$(DKMS) add -m kvfpga -v $(KVFPGA_VERSION)
	$(DKMS) build -m kvfpga -v $(KVFPGA_VERSION) $(if $(KVER),-k $(KVER))
	$(DKMS) install -m kvfpga -v $(KVFPGA_VERSION) $(if $(KVER),-k $(KVER))

dkms-uninstall:
	-$(DKMS) remove -m kvfpga -v $(KVFPGA_VERSION) --all
	rm -rf $(DKMS_SRCDIR)

# dkms add + build against every kernel with headers, in private dkms trees
# (nothing under /usr/src, /var/lib/dkms or /lib/modules is touched).
check-dkms:
	MAKE="$(MAKE)" DKMS="$(DKMS)" KVFPGA_VERSION="$(KVFPGA_VERSION)" tests/install/check-dkms.sh
