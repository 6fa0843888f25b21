/* SPDX-License-Identifier: MIT */
/*
 * Internals of the device layer shared by lib/device.c (argument checks,
 * options, dispatch, mapping, enumeration) and its two backends:
 * lib/device_drm.c (a card through the kernel driver) and
 * lib/device_emu.c (host-memory emulation).
 */
#ifndef KVFPGA_DEVICE_INTERNAL_H
#define KVFPGA_DEVICE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvfpga/kvfpga.h"

#define kvfpga_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/*
 * What a backend provides.  device.c has validated every argument before
 * calling these; a backend returns 0 or a negative errno and, on failure,
 * leaves no trace (no buffer, no fd, no card memory held).
 */
struct kvfpga_device_ops {
	/* Release everything; called once the last reference is gone. */
	void (*destroy)(struct kvfpga_device *dev);
	int (*query)(struct kvfpga_device *dev, struct kvfpga_device_info *info);
	/* @size > 0, @flags valid.  Sets every field of the new kvfpga_bo. */
	int (*bo_create)(struct kvfpga_device *dev, uint64_t size, uint32_t flags,
	                 struct kvfpga_bo **out);
	/* @fd >= 0 and stays the caller's. */
	int (*bo_import)(struct kvfpga_device *dev, int fd, struct kvfpga_bo **out);
	int (*bo_export)(struct kvfpga_bo *bo, int *fd);
	/* The buffer is already unmapped; frees the kvfpga_bo itself. */
	void (*bo_release)(struct kvfpga_bo *bo);
};

/* Embedded first in each backend's device. */
struct kvfpga_device {
	const struct kvfpga_device_ops *ops;
	enum kvfpga_backend backend;
	/* The opener's reference plus one per live buffer, so close may come first. */
	atomic_uint refs;
};

/* Embedded in each backend's buffer. */
struct kvfpga_bo {
	struct kvfpga_device *dev;
	uint64_t size;
	uint64_t card_addr;
	int map_fd; /* what mmap() maps: the device fd or the memfd */
	uint64_t map_offset;
	void *map; /* NULL while unmapped */
};

int kvfpga_drm_open(const char *node, struct kvfpga_device **out);
int kvfpga_emu_open(uint64_t mem_size, struct kvfpga_device **out);

/* 0 when @fd is a DRM device whose driver is kvfpga, else a negative errno. */
int kvfpga_drm_check_driver(int fd);
/* PCI slot of the device behind char device @rdev from sysfs; "" when unknown. */
void kvfpga_sysfs_pci_slot(dev_t rdev, char *buf, size_t len);
/* Whether @size is an acceptable emulated card size. */
bool kvfpga_emu_mem_size_valid(uint64_t size);

/* Copy a string, truncating, always NUL-terminated (len > 0). */
void kvfpga_copy_string(char *dst, size_t len, const char *src);

#endif /* KVFPGA_DEVICE_INTERNAL_H */
