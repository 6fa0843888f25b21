/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One source tree for Debian's 6.1 and 6.12 kernels: the few kernel APIs
 * that differ between them, selected by what the build tree provides.
 */
#ifndef __KVFPGA_COMPAT_H__
#define __KVFPGA_COMPAT_H__

#include <linux/mm.h>
#include <linux/version.h>

/* Compute accelerators get /dev/accel/accelN from 6.2 on. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0) && IS_ENABLED(CONFIG_DRM_ACCEL)
#define KVFPGA_ACCEL 1
#else
#define KVFPGA_ACCEL 0
#endif

/* The DRM core prints drm-driver/drm-client-id in fdinfo from 6.5 on. */
#define KVFPGA_CORE_FDINFO (LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0))

/* PRIME handle<->fd became the core default in 6.6. */
#define KVFPGA_EXPLICIT_PRIME (LINUX_VERSION_CODE < KERNEL_VERSION(6, 6, 0))

/* drm_driver.date went away in 6.14. */
#define KVFPGA_DRIVER_DATE (LINUX_VERSION_CODE < KERNEL_VERSION(6, 14, 0))

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
	vma->vm_flags |= flags;
}
#endif

/*
 * The buddy allocator: drm_buddy in 6.1; some 6.12 trees (Debian's among
 * them) carry it as gpu_buddy in lib/.  Only the calls used here are mapped.
 */
#if __has_include("linux/gpu_buddy.h")
#include <linux/gpu_buddy.h>
#define kvfpga_buddy			gpu_buddy
#define kvfpga_buddy_block		gpu_buddy_block
#define kvfpga_buddy_init		gpu_buddy_init
#define kvfpga_buddy_fini		gpu_buddy_fini
#define kvfpga_buddy_alloc_blocks	gpu_buddy_alloc_blocks
#define kvfpga_buddy_block_offset	gpu_buddy_block_offset
#define kvfpga_buddy_block_size		gpu_buddy_block_size
#define KVFPGA_BUDDY_RANGE		GPU_BUDDY_RANGE_ALLOCATION
#define kvfpga_buddy_free_list(mm, list) gpu_buddy_free_list(mm, list, 0)
#define kvfpga_buddy_trim(mm, size, list) gpu_buddy_block_trim(mm, NULL, size, list)
#else
#include <drm/drm_buddy.h>
#define kvfpga_buddy			drm_buddy
#define kvfpga_buddy_block		drm_buddy_block
#define kvfpga_buddy_init		drm_buddy_init
#define kvfpga_buddy_fini		drm_buddy_fini
#define kvfpga_buddy_alloc_blocks	drm_buddy_alloc_blocks
#define kvfpga_buddy_block_offset	drm_buddy_block_offset
#define kvfpga_buddy_block_size		drm_buddy_block_size
#define KVFPGA_BUDDY_RANGE		DRM_BUDDY_RANGE_ALLOCATION
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
#define kvfpga_buddy_free_list(mm, list) drm_buddy_free_list(mm, list, 0)
#else
#define kvfpga_buddy_free_list(mm, list) drm_buddy_free_list(mm, list)
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
#define kvfpga_buddy_trim(mm, size, list) drm_buddy_block_trim(mm, NULL, size, list)
#else
#define kvfpga_buddy_trim(mm, size, list) drm_buddy_block_trim(mm, size, list)
#endif
#endif

#endif /* __KVFPGA_COMPAT_H__ */
