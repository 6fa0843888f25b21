// SPDX-License-Identifier: GPL-2.0-only
/*
 * debugfs: live buffers, allocator state, and fault injection.
 *   bos             one line per live buffer
 *   mm              card memory totals and the buddy allocator's free lists
 *   fail_nth        write N: the N-th fault point evaluated from now fails
 *                   once (0 disarms); read: fault points left before it fires
 *   faults_injected how many faults fired since load
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <drm/drm_buddy.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_print.h>

#include "kvfpga_drv.h"

bool kvfpga_fault_inject(struct kvfpga_device *kdev, enum kvfpga_fault_site site)
{
	if (likely(!atomic_read(&kdev->fail_nth)))
		return false;
	if (atomic_dec_if_positive(&kdev->fail_nth) != 0)
		return false;
	atomic64_inc(&kdev->faults_injected);
	drm_dbg_driver(&kdev->drm, "injected fault at site %d\n", site);
	return true;
}

static int kvfpga_bos_show(struct seq_file *m, void *unused)
{
	struct kvfpga_device *kdev = m->private;
	struct kvfpga_bo *bo;

	seq_puts(m, "card_addr          size       handles exported pid     comm\n");
	mutex_lock(&kdev->mm.lock);
	list_for_each_entry(bo, &kdev->mm.bos, link) {
		seq_printf(m, "0x%016llx %-10zu %-7u %-8s %-7d %s\n", bo->card_addr,
			   bo->base.size, bo->base.handle_count,
			   bo->base.dma_buf ? "yes" : "no", bo->creator_pid, bo->creator_comm);
	}
	mutex_unlock(&kdev->mm.lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kvfpga_bos);

static int kvfpga_mm_show(struct seq_file *m, void *unused)
{
	struct kvfpga_device *kdev = m->private;
	struct drm_printer p = drm_seq_file_printer(m);

	mutex_lock(&kdev->mm.lock);
	drm_printf(&p, "mem_size: %llu\ntotal: %llu\nused: %llu\nbo_count: %u\nmax_bo_size: %llu\n",
		   kdev->card.mem_size, kdev->mm.total, kdev->mm.used, kdev->mm.bo_count,
		   kdev->mm.max_bo_size);
	drm_buddy_print(&kdev->mm.mm, &p);
	mutex_unlock(&kdev->mm.lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kvfpga_mm);

static int kvfpga_fail_nth_get(void *data, u64 *val)
{
	struct kvfpga_device *kdev = data;

	*val = atomic_read(&kdev->fail_nth);
	return 0;
}

static int kvfpga_fail_nth_set(void *data, u64 val)
{
	struct kvfpga_device *kdev = data;

	if (val > INT_MAX)
		return -EINVAL;
	atomic_set(&kdev->fail_nth, (int)val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(kvfpga_fail_nth_fops, kvfpga_fail_nth_get, kvfpga_fail_nth_set,
			 "%llu\n");

static int kvfpga_faults_get(void *data, u64 *val)
{
	struct kvfpga_device *kdev = data;

	*val = atomic64_read(&kdev->faults_injected);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(kvfpga_faults_fops, kvfpga_faults_get, NULL, "%llu\n");

void kvfpga_debugfs_init(struct kvfpga_device *kdev)
{
	struct dentry *root;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	root = kdev->drm.debugfs_root;
#elif KVFPGA_ACCEL
	root = kdev->drm.accel->debugfs_root; /* 6.2-6.4: an accel device has no render minor */
#else
	root = kdev->drm.render->debugfs_root;
#endif
	if (IS_ERR_OR_NULL(root))
		return;
	debugfs_create_file("bos", 0444, root, kdev, &kvfpga_bos_fops);
	debugfs_create_file("mm", 0444, root, kdev, &kvfpga_mm_fops);
	debugfs_create_file_unsafe("fail_nth", 0600, root, kdev, &kvfpga_fail_nth_fops);
	debugfs_create_file_unsafe("faults_injected", 0444, root, kdev, &kvfpga_faults_fops);
}
