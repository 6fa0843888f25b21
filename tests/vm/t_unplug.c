/* SPDX-License-Identifier: MIT */
/*
 * In-VM test of hot-unplug: the card is removed (sysfs "remove", then an
 * unbind) while a process holds open fds, live mappings through both the
 * device fd and a dma-buf, and an exported buffer.  Afterwards the mappings
 * give SIGBUS, ioctls -ENODEV, closing frees everything, and a rescan (or a
 * bind) brings the card back fully usable.  The rig fails the run on any
 * kernel warning this provokes.
 */
#include <setjmp.h>
#include <signal.h>

#include "vmtest.h"

#define MiB (1024ULL * 1024ULL)

static sigjmp_buf touch_env;

static void on_sigbus(int sig)
{
	siglongjmp(touch_env, sig);
}

/* 1 when reading *p raised SIGBUS, 0 when it read fine. */
static int touch_faults(volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int faulted;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(touch_env, 1) == 0) {
		(void)*p;
		faulted = 0;
	} else {
		faulted = 1;
	}
	sigaction(SIGBUS, &old, NULL);
	return faulted;
}

static int write_sysfs(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -errno;
}

/* The card's node after a rescan or bind; waits up to ~10 s. */
static int wait_open(const char *slot)
{
	for (int i = 0; i < 100; i++) {
		int fd = vt_open_slot(slot);
		struct timespec nap = { 0, 100 * 1000 * 1000 };

		if (fd >= 0)
			return fd;
		nanosleep(&nap, NULL);
	}
	return -ENODEV;
}

static void check_usable(struct vt_case *c, const char *slot)
{
	int fd = wait_open(slot);
	struct drm_kvfpga_bo_create bo;
	uint8_t *m;

	if (fd < 0) {
		vt_fail(c, "card did not come back");
		return;
	}
	VT_CHECK(c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == vt_param(fd, KVFPGA_PARAM_MEM_TOTAL),
	         "card came back with memory in use");
	if (vt_bo_create(fd, 4 * MiB, 0, &bo) || !(m = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(c, "card came back unusable");
		close(fd);
		return;
	}
	VT_CHECK(c, m[0] == 0, "new buffer after return not zero");
	vm_pattern_fill(m, bo.size, 99);
	VT_CHECK(c, vm_pattern_check(m, bo.size, 99) == bo.size, "read back after return");
	munmap(m, bo.size);
	vt_gem_close(fd, bo.handle);
	close(fd);
}

enum how { REMOVE_RESCAN, UNBIND_BIND };

static void unplug_case(const char *name, const char *slot, enum how how)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create a, b;
	struct drm_kvfpga_get_param gp = { .param = KVFPGA_PARAM_MEM_FREE };
	char path[256];
	int fd, buf = -1;
	uint8_t *ma, *mb;
	void *m;

	vt_begin(&c, name);
	fd = vt_open_slot(slot);
	if (fd < 0 || vt_bo_create(fd, 2 * MiB, 0, &a) || vt_bo_create(fd, MiB, 0, &b) ||
	    !(ma = vt_map(fd, a.mmap_offset, a.size)) ||
	    drmPrimeHandleToFD(fd, b.handle, DRM_CLOEXEC | DRM_RDWR, &buf)) {
		vt_fail(&c, "setup failed");
		vt_end(&c);
		return;
	}
	mb = mmap(NULL, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (mb == MAP_FAILED) {
		vt_fail(&c, "dma-buf mmap failed");
		vt_end(&c);
		return;
	}
	vm_pattern_fill(ma, a.size, 5);
	vm_pattern_fill(mb, b.size, 6);
	VT_CHECK(&c, !touch_faults(ma) && !touch_faults(mb), "mapping faults before unplug");

	if (how == REMOVE_RESCAN) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", slot);
		VT_CHECK(&c, write_sysfs(path, "1") == 0, "remove failed");
	} else {
		VT_CHECK(&c, write_sysfs("/sys/bus/pci/drivers/kvfpga/unbind", slot) == 0,
		         "unbind failed");
	}

	VT_CHECK(&c, touch_faults(ma), "device-fd mapping still readable after unplug");
	VT_CHECK(&c, touch_faults(ma + a.size - 1), "device-fd mapping end readable after unplug");
	VT_CHECK(&c, touch_faults(mb), "dma-buf mapping still readable after unplug");
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp) == -ENODEV,
	         "GET_PARAM after unplug did not give -ENODEV");
	VT_CHECK(&c, vt_bo_create(fd, MiB, 0, NULL) == -ENODEV, "BO_CREATE after unplug");
	m = mmap(NULL, a.size, PROT_READ, MAP_SHARED, fd, (off_t)a.mmap_offset);
	VT_CHECK(&c, m == MAP_FAILED, "new mapping after unplug allowed");
	if (m != MAP_FAILED)
		munmap(m, a.size);

	munmap(ma, a.size);
	munmap(mb, b.size);
	vt_gem_close(fd, a.handle);
	close(buf);
	close(fd);

	if (how == REMOVE_RESCAN)
		VT_CHECK(&c, write_sysfs("/sys/bus/pci/rescan", "1") == 0, "rescan failed");
	else
		VT_CHECK(&c, write_sysfs("/sys/bus/pci/drivers/kvfpga/bind", slot) == 0,
		         "bind failed");
	check_usable(&c, slot);
	vt_end(&c);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unplug_case("unplug-remove-rescan-with-live-mappings", VT_SLOT_MAIN, REMOVE_RESCAN);
	unplug_case("unplug-unbind-bind-with-live-mappings", VT_SLOT_MAIN, UNBIND_BIND);
	unplug_case("unplug-second-card", VT_SLOT_SECOND, REMOVE_RESCAN);
	return vt_exit_status();
}
