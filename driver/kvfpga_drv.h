/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kvfpga: a DRM driver that gives processes the on-board memory of a PCIe
 * FPGA card as GEM buffers they mmap directly (the KV cache of LLM
 * inference lives there; the per-token path never enters the kernel).
 */
#ifndef __KVFPGA_DRV_H__
#define __KVFPGA_DRV_H__

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/sched.h>
#include <drm/drm_device.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>

#include <kvfpga/kvfpga_card.h>
#include "kvfpga_compat.h"

#define DRIVER_NAME	"kvfpga"
#define DRIVER_DESC	"KV cache card memory for LLM inference"
#define DRIVER_DATE	"20261129"
#define DRIVER_MAJOR	1
#define DRIVER_MINOR	0

/* The card's memory BAR (BAR0 holds the shell's registers). */
#define KVFPGA_MEM_BAR	2

/* The validated card descriptor, in CPU byte order. */
struct kvfpga_card_info {
	u64 mem_size;
	u64 granule;
	u32 version;
	u32 num_reserved;
	struct {
		u64 offset;
		u64 size;
	} reserved[KVFPGA_DESC_MAX_RANGES];
	char name[KVFPGA_DESC_NAME_LEN];
	char serial[KVFPGA_DESC_NAME_LEN];
};

/* Fault injection points (debugfs fail_nth, see kvfpga_debugfs.c). */
enum kvfpga_fault_site {
	KVFPGA_FAULT_BO_ALLOC,		/* the kvfpga_bo struct */
	KVFPGA_FAULT_BUDDY,		/* card memory from the buddy allocator */
	KVFPGA_FAULT_MMAP_OFFSET,	/* the fake mmap offset */
	KVFPGA_FAULT_HANDLE,		/* the GEM handle */
	KVFPGA_FAULT_EXPORT,		/* a dma-buf export */
};

/* Card memory bookkeeping; @lock protects every field below it. */
struct kvfpga_mem {
	struct mutex lock;		/* protects the fields below */
	struct kvfpga_buddy mm;
	struct list_head reserved_blocks;
	struct list_head bos;
	u64 total;
	u64 used;
	u64 max_bo_size;
	u32 bo_count;
};

struct kvfpga_device {
	struct drm_device drm;
	struct pci_dev *pdev;
	void __iomem *mem;		/* card memory, write-combined */
	resource_size_t mem_phys;
	resource_size_t bar_len;
	struct kvfpga_card_info card;
	struct kvfpga_mem mm;
	/* >0: the fail_nth-th fault point evaluated from now on fails */
	atomic_t fail_nth;
	atomic64_t faults_injected;
	atomic64_t client_ids;		/* fdinfo drm-client-id before 6.5 */
};

/* A buffer: one contiguous range of card memory. */
struct kvfpga_bo {
	struct drm_gem_object base;
	struct list_head blocks;	/* buddy blocks backing the range */
	struct list_head link;		/* in kvfpga_mem.bos */
	u64 card_addr;
	pid_t creator_pid;
	char creator_comm[TASK_COMM_LEN];
};

/* Per-open-file state. */
struct kvfpga_file {
	u64 client_id;
};

static inline struct kvfpga_device *to_kvfpga_dev(struct drm_device *drm)
{
	return container_of(drm, struct kvfpga_device, drm);
}

static inline struct kvfpga_bo *to_kvfpga_bo(struct drm_gem_object *obj)
{
	return container_of(obj, struct kvfpga_bo, base);
}

bool kvfpga_fault_inject(struct kvfpga_device *kdev, enum kvfpga_fault_site site);

/* kvfpga_card.c */
int kvfpga_card_read_desc(struct kvfpga_device *kdev);

/* kvfpga_mem.c */
int kvfpga_mem_init(struct kvfpga_device *kdev);
int kvfpga_mem_alloc(struct kvfpga_device *kdev, u64 size, struct list_head *blocks,
		     u64 *card_addr);
void kvfpga_mem_free(struct kvfpga_device *kdev, struct list_head *blocks, u64 size);
void kvfpga_mem_stats(struct kvfpga_device *kdev, u64 *used, u32 *bo_count);

/* kvfpga_gem.c */
struct kvfpga_bo *kvfpga_bo_create(struct kvfpga_device *kdev, u64 size);
struct dma_buf *kvfpga_gem_prime_export(struct drm_gem_object *obj, int flags);

/* kvfpga_ioctl.c */
int kvfpga_ioctl_get_param(struct drm_device *drm, void *data, struct drm_file *file);
int kvfpga_ioctl_get_info(struct drm_device *drm, void *data, struct drm_file *file);
int kvfpga_ioctl_bo_create(struct drm_device *drm, void *data, struct drm_file *file);
int kvfpga_ioctl_bo_info(struct drm_device *drm, void *data, struct drm_file *file);

/* kvfpga_fdinfo.c */
#if KVFPGA_CORE_FDINFO
void kvfpga_show_fdinfo(struct drm_printer *p, struct drm_file *file);
#else
void kvfpga_show_fdinfo(struct seq_file *m, struct file *f);
#endif

/* kvfpga_sysfs.c */
int kvfpga_sysfs_init(struct kvfpga_device *kdev);

/* kvfpga_debugfs.c */
void kvfpga_debugfs_init(struct kvfpga_device *kdev);

#endif /* __KVFPGA_DRV_H__ */
