/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the in-VM driver tests (tests/vm/t_*.c).  These talk to the
 * driver through the raw uapi and libdrm on purpose: they test the kernel's
 * contract, not the library's.  Each test prints "PASS <name>" or
 * "FAIL <name>: <why>" lines that guest.sh collects.
 */
#ifndef KVFPGA_VMTEST_H
#define KVFPGA_VMTEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xf86drm.h>

#include <kvfpga_accel.h>
#include "pattern.h"

/* The main test card and the second good card (tests/vm/run-vm.sh). */
#define VT_SLOT_MAIN   "0000:00:10.0"
#define VT_SLOT_SECOND "0000:00:12.0"

struct vt_case {
	const char *name;
	int failed;
};

static int vt_failures;

static inline void vt_begin(struct vt_case *c, const char *name)
{
	c->name = name;
	c->failed = 0;
}

__attribute__((format(printf, 2, 3))) static inline void vt_fail(struct vt_case *c, const char *fmt,
                                                                 ...)
{
	va_list ap;

	if (c->failed++)
		return; /* the first reason is the one worth reading */
	printf("FAIL %s: ", c->name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	vt_failures++;
}

static inline void vt_end(struct vt_case *c)
{
	if (!c->failed)
		printf("PASS %s\n", c->name);
	fflush(stdout);
}

#define VT_CHECK(c, cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			vt_fail(c, __VA_ARGS__);                                                   \
	} while (0)

/* Device node of the kvfpga card in PCI slot @slot, or -ENODEV. */
static inline int vt_find_node(const char *slot, char *node, size_t len)
{
	static const char *const dirs[][2] = { { "/dev/accel", "accel" },
		                               { "/dev/dri", "renderD" } };
	static const char *const classes[] = { "/sys/class/accel", "/sys/class/drm" };

	for (int d = 0; d < 2; d++) {
		DIR *dir = opendir(dirs[d][0]);
		struct dirent *de;

		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			char link[PATH_MAX], target[PATH_MAX];
			ssize_t n;
			const char *base;

			if (strncmp(de->d_name, dirs[d][1], strlen(dirs[d][1])))
				continue;
			snprintf(link, sizeof(link), "%s/%s/device", classes[d], de->d_name);
			n = readlink(link, target, sizeof(target) - 1);
			if (n < 0)
				continue;
			target[n] = '\0';
			base = strrchr(target, '/');
			base = base ? base + 1 : target;
			if (strcmp(base, slot))
				continue;
			snprintf(node, len, "%s/%s", dirs[d][0], de->d_name);
			closedir(dir);
			return 0;
		}
		closedir(dir);
	}
	return -ENODEV;
}

static inline int vt_open_slot(const char *slot)
{
	char node[PATH_MAX];
	drmVersionPtr v;
	int fd;

	if (vt_find_node(slot, node, sizeof(node)))
		return -ENODEV;
	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	v = drmGetVersion(fd);
	if (!v || strcmp(v->name, "kvfpga")) {
		if (v)
			drmFreeVersion(v);
		close(fd);
		return -ENODEV;
	}
	drmFreeVersion(v);
	return fd;
}

/* ioctl returning 0 or -errno. */
static inline int vt_ioctl(int fd, unsigned long req, void *arg)
{
	return drmIoctl(fd, req, arg) ? -errno : 0;
}

static inline int vt_bo_create(int fd, uint64_t size, uint32_t flags,
                               struct drm_kvfpga_bo_create *out)
{
	struct drm_kvfpga_bo_create args = { .size = size, .flags = flags };
	int ret = vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_CREATE, &args);

	if (!ret && out)
		*out = args;
	return ret;
}

static inline int vt_gem_close(int fd, uint32_t handle)
{
	struct drm_gem_close args = { .handle = handle };

	return vt_ioctl(fd, DRM_IOCTL_GEM_CLOSE, &args);
}

static inline uint64_t vt_param(int fd, uint32_t param)
{
	struct drm_kvfpga_get_param args = { .param = param };

	if (vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &args))
		return UINT64_MAX;
	return args.value;
}

static inline void *vt_map(int fd, uint64_t offset, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Ask the host agent (tests/vm/host_agent.c) to plant or verify the pattern
 * in the card's backing file.  Returns 0 on "ok", -EIO with @why filled on a
 * failed check, -ETIMEDOUT when the host does not answer.
 */
static inline int vt_host(const char *slot, const char *op, uint64_t off, uint64_t len,
                          uint64_t seed, char *why, size_t whylen)
{
	static unsigned int seq;
	const char *out = getenv("KVFPGA_VM_OUT");
	char req[PATH_MAX], tmp[PATH_MAX], ack[PATH_MAX], line[512];
	FILE *f;

	if (!out)
		return -ENOENT;
	snprintf(req, sizeof(req), "%s/req-%d-%u", out, getpid(), seq);
	snprintf(tmp, sizeof(tmp), "%s/tmp-%d-%u", out, getpid(), seq);
	snprintf(ack, sizeof(ack), "%s/ack-%d-%u", out, getpid(), seq);
	seq++;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", slot, op, off, len, seed);
	fclose(f);
	if (rename(tmp, req))
		return -errno;
	for (int i = 0; i < 3000; i++) {
		struct timespec nap = { 0, 10 * 1000 * 1000 };

		f = fopen(ack, "r");
		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = '\0';
			fclose(f);
			unlink(ack);
			line[strcspn(line, "\n")] = '\0';
			if (!strcmp(line, "ok"))
				return 0;
			snprintf(why, whylen, "%s", line);
			return -EIO;
		}
		nanosleep(&nap, NULL);
	}
	snprintf(why, whylen, "host agent did not answer");
	return -ETIMEDOUT;
}

static inline int vt_exit_status(void)
{
	printf("vmtest: %d failed\n", vt_failures);
	return vt_failures ? 1 : 0;
}

#endif
