// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kvfpga ioctls (include/uapi/drm/kvfpga_accel.h).  Each validates every
 * input field before touching anything and runs inside drm_dev_enter(), so
 * an unplugged card answers -ENODEV.
 */
#include <linux/string.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_vma_manager.h>

#include <uapi/drm/kvfpga_accel.h>
#include "kvfpga_drv.h"

static u64 kvfpga_caps(void)
{
	return KVFPGA_CAP_PRIME_EXPORT | KVFPGA_CAP_PRIME_IMPORT | KVFPGA_CAP_CONTIGUOUS;
}

int kvfpga_ioctl_get_param(struct drm_device *drm, void *data, struct drm_file *file)
{
	struct kvfpga_device *kdev = to_kvfpga_dev(drm);
	struct drm_kvfpga_get_param *args = data;
	u64 used;
	u32 count;
	int idx, ret = 0;

	if (args->pad)
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	switch (args->param) {
	case KVFPGA_PARAM_ABI_VERSION:
		args->value = (KVFPGA_ABI_MAJOR << 16) | KVFPGA_ABI_MINOR;
		break;
	case KVFPGA_PARAM_CAPABILITIES:
		args->value = kvfpga_caps();
		break;
	case KVFPGA_PARAM_MEM_SIZE:
		args->value = kdev->card.mem_size;
		break;
	case KVFPGA_PARAM_MEM_TOTAL:
		args->value = kdev->mm.total;
		break;
	case KVFPGA_PARAM_MEM_FREE:
		kvfpga_mem_stats(kdev, &used, &count);
		args->value = kdev->mm.total - used;
		break;
	case KVFPGA_PARAM_GRANULE:
		args->value = kdev->card.granule;
		break;
	case KVFPGA_PARAM_MAX_BO_SIZE:
		args->value = kdev->mm.max_bo_size;
		break;
	case KVFPGA_PARAM_BO_COUNT:
		kvfpga_mem_stats(kdev, &used, &count);
		args->value = count;
		break;
	default:
		ret = -EINVAL;
		break;
	}

	drm_dev_exit(idx);
	return ret;
}

int kvfpga_ioctl_get_info(struct drm_device *drm, void *data, struct drm_file *file)
{
	struct kvfpga_device *kdev = to_kvfpga_dev(drm);
	struct drm_kvfpga_info *args = data;
	u64 used;
	u32 count;
	int idx;

	if (args->flags || args->pad)
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	kvfpga_mem_stats(kdev, &used, &count);
	args->abi_major = KVFPGA_ABI_MAJOR;
	args->abi_minor = KVFPGA_ABI_MINOR;
	args->capabilities = kvfpga_caps();
	args->mem_size = kdev->card.mem_size;
	args->mem_total = kdev->mm.total;
	args->mem_free = kdev->mm.total - used;
	args->granule = kdev->card.granule;
	args->max_bo_size = kdev->mm.max_bo_size;
	args->bo_count = count;
	args->desc_version = kdev->card.version;
	strscpy_pad(args->name, kdev->card.name, sizeof(args->name));
	strscpy_pad(args->serial, kdev->card.serial, sizeof(args->serial));

	drm_dev_exit(idx);
	return 0;
}

int kvfpga_ioctl_bo_create(struct drm_device *drm, void *data, struct drm_file *file)
{
	struct kvfpga_device *kdev = to_kvfpga_dev(drm);
	struct drm_kvfpga_bo_create *args = data;
	struct kvfpga_bo *bo;
	u64 size;
	u32 handle;
	int idx, ret;

	if (args->flags & ~KVFPGA_BO_FLAGS_VALID)
		return -EINVAL;
	if (!args->size)
		return -EINVAL;
	/* Checked before rounding, so that rounding cannot overflow. */
	if (args->size > kdev->mm.max_bo_size)
		return -E2BIG;
	size = round_up(args->size, kdev->card.granule);

	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	bo = kvfpga_bo_create(kdev, size);
	if (IS_ERR(bo)) {
		ret = PTR_ERR(bo);
		goto out;
	}

	if (kvfpga_fault_inject(kdev, KVFPGA_FAULT_HANDLE))
		ret = -ENOMEM;
	else
		ret = drm_gem_handle_create(file, &bo->base, &handle);
	if (!ret) {
		args->size = size;
		args->handle = handle;
		args->card_addr = bo->card_addr;
		args->mmap_offset = drm_vma_node_offset_addr(&bo->base.vma_node);
	}
	/* The handle holds its own reference; drop the creation one last. */
	drm_gem_object_put(&bo->base);
out:
	drm_dev_exit(idx);
	return ret;
}

int kvfpga_ioctl_bo_info(struct drm_device *drm, void *data, struct drm_file *file)
{
	struct drm_kvfpga_bo_info *args = data;
	struct drm_gem_object *obj;
	int idx, ret = 0;

	if (args->flags)
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	obj = drm_gem_object_lookup(file, args->handle);
	if (!obj) {
		ret = -ENOENT;
		goto out;
	}
	args->size = obj->size;
	args->card_addr = to_kvfpga_bo(obj)->card_addr;
	args->mmap_offset = drm_vma_node_offset_addr(&obj->vma_node);
	drm_gem_object_put(obj);
out:
	drm_dev_exit(idx);
	return ret;
}
