/* SPDX-License-Identifier: MIT */
/*
 * The driver's debugfs files (driver/kvfpga_debugfs.c) for the in-VM tests
 * that inject faults: fail_nth, faults_injected, mm and bos.
 *
 * Where the folder is depends on the kernel: the DRM core names it after
 * the device (accel/<slot> on 6.12) or after the node's minor (dri/<minor>
 * on 6.1, accel/<minor> on 6.2-6.7).  Every candidate is tried, and the
 * one chosen must report the card's own memory size in its mm file, so
 * that a second card can never be mistaken for the first.
 */
#ifndef KVFPGA_VT_DEBUGFS_H
#define KVFPGA_VT_DEBUGFS_H

#include <sys/sysmacros.h>

#include "vmtest.h"

#define VT_DEBUGFS "/sys/kernel/debug"

/* Reads "<key>: <value>" from the mm file of @dir; UINT64_MAX when absent. */
static inline uint64_t vt_debugfs_mm(const char *dir, const char *key)
{
	char path[PATH_MAX + 32], line[256];
	size_t klen = strlen(key);
	uint64_t value = UINT64_MAX;
	FILE *f;

	snprintf(path, sizeof(path), "%s/mm", dir);
	f = fopen(path, "r");
	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			value = strtoull(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return value;
}

/* The debugfs folder of the device open as @fd, or -ENOENT. */
static inline int vt_debugfs_dir(int fd, const char *slot, char *dir, size_t len)
{
	const char *kinds[] = { "accel", "dri" };
	uint64_t mem_size = vt_param(fd, KVFPGA_PARAM_MEM_SIZE);
	char cand[PATH_MAX], probe[PATH_MAX + 16];
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	for (int byminor = 0; byminor < 2; byminor++) {
		for (int k = 0; k < 2; k++) {
			if (byminor)
				snprintf(cand, sizeof(cand), VT_DEBUGFS "/%s/%u", kinds[k],
				         minor(st.st_rdev));
			else
				snprintf(cand, sizeof(cand), VT_DEBUGFS "/%s/%s", kinds[k], slot);
			snprintf(probe, sizeof(probe), "%s/fail_nth", cand);
			if (access(probe, W_OK))
				continue;
			if (vt_debugfs_mm(cand, "mem_size") != mem_size)
				continue;
			snprintf(dir, len, "%s", cand);
			return 0;
		}
	}
	return -ENOENT;
}

static inline int vt_debugfs_read_u64(const char *dir, const char *name, uint64_t *value)
{
	char path[PATH_MAX + 32], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	*value = strtoull(buf, NULL, 10);
	return 0;
}

static inline int vt_debugfs_write_u64(const char *dir, const char *name, uint64_t value)
{
	char path[PATH_MAX + 32], buf[32];
	int fd, len;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)value);
	n = write(fd, buf, (size_t)len);
	close(fd);
	return n == len ? 0 : n < 0 ? -errno : -EIO;
}

/* Lines in the bos file after its header: the live buffers the driver lists. */
static inline long vt_debugfs_bos_listed(const char *dir)
{
	char path[PATH_MAX + 32], line[256];
	long lines = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bos", dir);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines - 1;
}

#endif
