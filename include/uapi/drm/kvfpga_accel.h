/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * kvfpga: userspace ABI of the kvfpga accelerator driver.
 *
 * Rules (Documentation/process/botching-up-ioctls.rst): fixed-size types,
 * __u64 for anything that may hold a pointer, explicit padding, and every
 * pad, reserved field or unknown flag must be zero or the ioctl fails with
 * -EINVAL.  Structs only ever grow at the end; drm_ioctl() zero-extends a
 * shorter struct from an older userspace.
 */
#ifndef _UAPI_KVFPGA_ACCEL_H_
#define _UAPI_KVFPGA_ACCEL_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define KVFPGA_ABI_MAJOR 1
#define KVFPGA_ABI_MINOR 0

#define DRM_KVFPGA_GET_PARAM	0x00
#define DRM_KVFPGA_GET_INFO	0x01
#define DRM_KVFPGA_BO_CREATE	0x02
#define DRM_KVFPGA_BO_INFO	0x03

#define DRM_IOCTL_KVFPGA_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_KVFPGA_GET_PARAM, struct drm_kvfpga_get_param)
#define DRM_IOCTL_KVFPGA_GET_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_KVFPGA_GET_INFO, struct drm_kvfpga_info)
#define DRM_IOCTL_KVFPGA_BO_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_KVFPGA_BO_CREATE, struct drm_kvfpga_bo_create)
#define DRM_IOCTL_KVFPGA_BO_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_KVFPGA_BO_INFO, struct drm_kvfpga_bo_info)

/* Capability bits reported by KVFPGA_PARAM_CAPABILITIES and GET_INFO. */
#define KVFPGA_CAP_PRIME_EXPORT	(1ULL << 0)	/* BOs export as dma-buf fds */
#define KVFPGA_CAP_PRIME_IMPORT	(1ULL << 1)	/* this device's dma-bufs import */
#define KVFPGA_CAP_CONTIGUOUS	(1ULL << 2)	/* every BO is one card range */

/* Parameters for DRM_IOCTL_KVFPGA_GET_PARAM. */
#define KVFPGA_PARAM_ABI_VERSION	0	/* (major << 16) | minor */
#define KVFPGA_PARAM_CAPABILITIES	1	/* KVFPGA_CAP_* */
#define KVFPGA_PARAM_MEM_SIZE		2	/* card memory in the descriptor */
#define KVFPGA_PARAM_MEM_TOTAL		3	/* bytes buffers may use */
#define KVFPGA_PARAM_MEM_FREE		4	/* bytes not held by any buffer */
#define KVFPGA_PARAM_GRANULE		5	/* allocation unit, a power of 2 */
#define KVFPGA_PARAM_MAX_BO_SIZE	6	/* largest BO the card can hold */
#define KVFPGA_PARAM_BO_COUNT		7	/* live buffers on the device */

/**
 * struct drm_kvfpga_get_param - read one device parameter
 * @param: in, KVFPGA_PARAM_*; unknown values give -EINVAL
 * @pad: in, must be zero
 * @value: out
 */
struct drm_kvfpga_get_param {
	__u32 param;
	__u32 pad;
	__u64 value;
};

#define KVFPGA_NAME_LEN 32

/**
 * struct drm_kvfpga_info - everything about the card in one call
 * @flags: in, must be zero
 * @pad: in, must be zero
 * Every other field is output; see KVFPGA_PARAM_* for their meaning.
 * @name, @serial: NUL-terminated strings from the card descriptor.
 */
struct drm_kvfpga_info {
	__u32 flags;
	__u32 pad;
	__u32 abi_major;
	__u32 abi_minor;
	__u64 capabilities;
	__u64 mem_size;
	__u64 mem_total;
	__u64 mem_free;
	__u64 granule;
	__u64 max_bo_size;
	__u32 bo_count;
	__u32 desc_version;
	char name[KVFPGA_NAME_LEN];
	char serial[KVFPGA_NAME_LEN];
};

/* No BO_CREATE flag is defined yet; all bits are reserved and must be 0. */
#define KVFPGA_BO_FLAGS_VALID 0u

/**
 * struct drm_kvfpga_bo_create - allocate a buffer in card memory
 * @size: in, bytes wanted (> 0); out, bytes given (rounded up to the granule)
 * @flags: in, KVFPGA_BO_*; must be a subset of KVFPGA_BO_FLAGS_VALID
 * @handle: out, GEM handle; release with DRM_IOCTL_GEM_CLOSE
 * @card_addr: out, offset of the buffer in card memory (what card-side
 *	kernels address); the buffer is one contiguous range
 * @mmap_offset: out, offset to pass to mmap() on the device fd
 *
 * The buffer's contents are zero.  -ENOSPC when no free range is large
 * enough, -E2BIG when @size exceeds what the card could ever hold.
 */
struct drm_kvfpga_bo_create {
	__u64 size;
	__u32 flags;
	__u32 handle;
	__u64 card_addr;
	__u64 mmap_offset;
};

/**
 * struct drm_kvfpga_bo_info - describe a buffer (e.g. one just imported)
 * @handle: in
 * @flags: in, must be zero
 * @size, @card_addr, @mmap_offset: out, as for BO_CREATE
 */
struct drm_kvfpga_bo_info {
	__u32 handle;
	__u32 flags;
	__u64 size;
	__u64 card_addr;
	__u64 mmap_offset;
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_KVFPGA_ACCEL_H_ */
