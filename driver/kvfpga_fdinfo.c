// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-client memory in /proc/<pid>/fdinfo/<fd>, keys as in
 * Documentation/gpu/drm-usage-stats.rst.  Counted from the client's handles,
 * so the figures follow the handles' lifetime with no separate accounting.
 */
#include <linux/seq_file.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_print.h>

#include "kvfpga_drv.h"

struct kvfpga_client_mem {
	u64 total;
	u64 shared;
};

static void kvfpga_client_mem(struct drm_file *file, struct kvfpga_client_mem *mem)
{
	struct drm_gem_object *obj;
	int id;

	memset(mem, 0, sizeof(*mem));
	spin_lock(&file->table_lock);
	idr_for_each_entry(&file->object_idr, obj, id) {
		mem->total += obj->size;
		if (obj->handle_count > 1 || obj->dma_buf)
			mem->shared += obj->size;
	}
	spin_unlock(&file->table_lock);
}

static void kvfpga_print_mem(struct drm_printer *p, struct drm_file *file)
{
	struct kvfpga_client_mem mem;

	kvfpga_client_mem(file, &mem);
	/* Card memory is always resident: nothing is swapped or migrated. */
	drm_printf(p, "drm-total-card:\t%llu KiB\n", mem.total >> 10);
	drm_printf(p, "drm-shared-card:\t%llu KiB\n", mem.shared >> 10);
	drm_printf(p, "drm-resident-card:\t%llu KiB\n", mem.total >> 10);
	drm_printf(p, "drm-memory-card:\t%llu KiB\n", mem.total >> 10);
}

#if KVFPGA_CORE_FDINFO
void kvfpga_show_fdinfo(struct drm_printer *p, struct drm_file *file)
{
	kvfpga_print_mem(p, file);
}
#else
void kvfpga_show_fdinfo(struct seq_file *m, struct file *f)
{
	struct drm_file *file = f->private_data;
	struct kvfpga_file *kfile = file->driver_priv;
	struct drm_printer p = drm_seq_file_printer(m);
	struct drm_device *drm = file->minor->dev;

	drm_printf(&p, "drm-driver:\t%s\n", drm->driver->name);
	drm_printf(&p, "drm-pdev:\t%s\n", dev_name(drm->dev));
	drm_printf(&p, "drm-client-id:\t%llu\n", kfile->client_id);
	kvfpga_print_mem(&p, file);
}
#endif
