// SPDX-License-Identifier: GPL-2.0-only
/*
 * Buffers: GEM objects over a contiguous range of card memory, mapped into
 * processes write-combined.
 *
 * Pages are inserted at fault time under drm_dev_enter(), so that once the
 * card is unplugged (drm_dev_unplug() zaps every mapping of the device's
 * address space, dma-buf mappings included) a touch gets SIGBUS rather than
 * whatever now answers at the old bus address.
 */
#include <linux/dma-buf.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <drm/drm_drv.h>
#include <drm/drm_prime.h>
#include <drm/drm_vma_manager.h>

#include "kvfpga_drv.h"

/* Pages mapped per fault around the faulting address (2 MiB). */
#define KVFPGA_FAULT_AROUND	(SZ_2M >> PAGE_SHIFT)

static vm_fault_t kvfpga_gem_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct drm_gem_object *obj = vma->vm_private_data;
	struct kvfpga_bo *bo = to_kvfpga_bo(obj);
	struct kvfpga_device *kdev = to_kvfpga_dev(obj->dev);
	unsigned long obj_pages = obj->size >> PAGE_SHIFT;
	/* vm_pgoff is the fake offset of the object plus the page mapped first. */
	unsigned long first = vma->vm_pgoff - drm_vma_node_start(&obj->vma_node);
	unsigned long base_pfn = (kdev->mem_phys + bo->card_addr) >> PAGE_SHIFT;
	unsigned long page = first + ((vmf->address - vma->vm_start) >> PAGE_SHIFT);
	unsigned long addr, start, end;
	vm_fault_t ret;
	int idx;

	if (page >= obj_pages)
		return VM_FAULT_SIGBUS;
	if (!drm_dev_enter(obj->dev, &idx))
		return VM_FAULT_SIGBUS;

	ret = vmf_insert_pfn_prot(vma, vmf->address & PAGE_MASK, base_pfn + page,
				  vma->vm_page_prot);
	if (ret & VM_FAULT_ERROR)
		goto out;

	/* Map the neighbourhood too: bounded by the VMA and by the object. */
	start = max(vma->vm_start, ALIGN_DOWN(vmf->address, KVFPGA_FAULT_AROUND << PAGE_SHIFT));
	end = min(vma->vm_end, start + (KVFPGA_FAULT_AROUND << PAGE_SHIFT));
	for (addr = start; addr < end; addr += PAGE_SIZE) {
		page = first + ((addr - vma->vm_start) >> PAGE_SHIFT);
		if (page >= obj_pages)
			break;
		if (vmf_insert_pfn_prot(vma, addr, base_pfn + page, vma->vm_page_prot) &
		    VM_FAULT_ERROR)
			break;
	}
out:
	drm_dev_exit(idx);
	return ret;
}

static const struct vm_operations_struct kvfpga_gem_vm_ops = {
	.fault = kvfpga_gem_fault,
	.open = drm_gem_vm_open,
	.close = drm_gem_vm_close,
};

static int kvfpga_gem_mmap(struct drm_gem_object *obj, struct vm_area_struct *vma)
{
	unsigned long first = vma->vm_pgoff - drm_vma_node_start(&obj->vma_node);

	/*
	 * A private (copy-on-write) mapping of device memory makes no sense.
	 * (Not "!VM_SHARED": a shared mapping of a read-only file, such as a
	 * dma-buf exported without DRM_RDWR, has VM_MAYSHARE only.)
	 */
	if (is_cow_mapping(vma->vm_flags))
		return -EINVAL;
	/* The core checks this too; a mapping must never reach past the object. */
	if (first + vma_pages(vma) > obj->size >> PAGE_SHIFT)
		return -EINVAL;

	vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_writecombine(vm_get_page_prot(vma->vm_flags));
	return 0;
}

static void kvfpga_gem_free(struct drm_gem_object *obj)
{
	struct kvfpga_bo *bo = to_kvfpga_bo(obj);
	struct kvfpga_device *kdev = to_kvfpga_dev(obj->dev);

	mutex_lock(&kdev->mm.lock);
	list_del(&bo->link);
	mutex_unlock(&kdev->mm.lock);
	kvfpga_mem_free(kdev, &bo->blocks, obj->size);
	drm_gem_object_release(obj);
	kfree(bo);
}

/*
 * Card memory is reachable by the card and the CPU only: there is no
 * peer-to-peer path for another device's DMA (Debian's kernels have no
 * PCI_P2PDMA), so attaching our dma-buf to another driver is refused here
 * instead of letting the core WARN about a missing sg table.
 */
static struct sg_table *kvfpga_gem_get_sg_table(struct drm_gem_object *obj)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static const struct drm_gem_object_funcs kvfpga_gem_funcs = {
	.free = kvfpga_gem_free,
	.mmap = kvfpga_gem_mmap,
	.export = kvfpga_gem_prime_export,
	.get_sg_table = kvfpga_gem_get_sg_table,
	.vm_ops = &kvfpga_gem_vm_ops,
};

struct dma_buf *kvfpga_gem_prime_export(struct drm_gem_object *obj, int flags)
{
	if (kvfpga_fault_inject(to_kvfpga_dev(obj->dev), KVFPGA_FAULT_EXPORT))
		return ERR_PTR(-ENOMEM);
	return drm_gem_prime_export(obj, flags);
}

/* A zeroed buffer of @size bytes (granule aligned, <= max_bo_size). */
struct kvfpga_bo *kvfpga_bo_create(struct kvfpga_device *kdev, u64 size)
{
	struct kvfpga_bo *bo;
	int ret;

	if (kvfpga_fault_inject(kdev, KVFPGA_FAULT_BO_ALLOC))
		return ERR_PTR(-ENOMEM);
	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!bo)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&bo->blocks);
	INIT_LIST_HEAD(&bo->link);

	ret = kvfpga_mem_alloc(kdev, size, &bo->blocks, &bo->card_addr);
	if (ret) {
		kfree(bo);
		return ERR_PTR(ret);
	}

	bo->base.funcs = &kvfpga_gem_funcs;
	drm_gem_private_object_init(&kdev->drm, &bo->base, size);
	bo->creator_pid = task_tgid_nr(current);
	get_task_comm(bo->creator_comm, current);
	mutex_lock(&kdev->mm.lock);
	list_add_tail(&bo->link, &kdev->mm.bos);
	mutex_unlock(&kdev->mm.lock);

	/* From here on the object owns the memory: put() releases everything. */
	if (kvfpga_fault_inject(kdev, KVFPGA_FAULT_MMAP_OFFSET))
		ret = -ENOMEM;
	else
		ret = drm_gem_create_mmap_offset(&bo->base);
	if (ret) {
		drm_gem_object_put(&bo->base);
		return ERR_PTR(ret);
	}

	/* No process may ever see an earlier owner's data. */
	memset_io(kdev->mem + bo->card_addr, 0, size);
	/* Drain the write-combining buffers before the buffer is handed out. */
	wmb();
	return bo;
}
