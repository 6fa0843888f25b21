// SPDX-License-Identifier: GPL-2.0-only
/*
 * Card memory, carved by the kernel's buddy allocator.
 *
 * Every buffer is one contiguous range of card memory, so card-side kernels
 * address it with a single base address (the card has no MMU).  A request is
 * served by a naturally aligned power-of-two block whose unused tail is
 * trimmed straight back to the allocator: waste is only the rounding to the
 * granule, and the largest buffer is the largest such block that avoids the
 * reserved ranges.
 */
#include <linux/log2.h>
#include <drm/drm_managed.h>
#include <drm/drm_print.h>

#include "kvfpga_drv.h"

static void kvfpga_mem_fini(struct drm_device *drm, void *arg)
{
	struct kvfpga_mem *mm = arg;

	/* Every buffer is gone by now: the device outlives its objects. */
	kvfpga_buddy_free_list(&mm->mm, &mm->reserved_blocks);
	kvfpga_buddy_fini(&mm->mm);
}

static bool kvfpga_mem_reserved(struct kvfpga_device *kdev, u64 off, u64 size)
{
	const struct kvfpga_card_info *card = &kdev->card;
	u32 i;

	if (off < round_up(KVFPGA_DESC_RESERVED, card->granule))
		return true;
	for (i = 0; i < card->num_reserved; i++) {
		if (off < card->reserved[i].offset + card->reserved[i].size &&
		    card->reserved[i].offset < off + size)
			return true;
	}
	return false;
}

/* The largest naturally aligned power-of-two block clear of reserved ranges. */
static u64 kvfpga_mem_max_block(struct kvfpga_device *kdev)
{
	u64 mem = kdev->card.mem_size;
	u64 size, off;

	for (size = rounddown_pow_of_two(mem); size >= kdev->card.granule; size >>= 1) {
		for (off = 0; off + size <= mem; off += size) {
			if (!kvfpga_mem_reserved(kdev, off, size))
				return size;
		}
	}
	return 0;
}

static int kvfpga_mem_reserve(struct kvfpga_mem *mm, u64 off, u64 size)
{
	return kvfpga_buddy_alloc_blocks(&mm->mm, off, off + size, size, mm->mm.chunk_size,
					 &mm->reserved_blocks, KVFPGA_BUDDY_RANGE);
}

int kvfpga_mem_init(struct kvfpga_device *kdev)
{
	const struct kvfpga_card_info *card = &kdev->card;
	struct kvfpga_mem *mm = &kdev->mm;
	u64 desc_size = round_up(KVFPGA_DESC_RESERVED, card->granule);
	u64 reserved = desc_size;
	u32 i;
	int ret;

	ret = drmm_mutex_init(&kdev->drm, &mm->lock);
	if (ret)
		return ret;
	INIT_LIST_HEAD(&mm->reserved_blocks);
	INIT_LIST_HEAD(&mm->bos);

	ret = kvfpga_buddy_init(&mm->mm, card->mem_size, card->granule);
	if (ret)
		return ret;
	ret = drmm_add_action_or_reset(&kdev->drm, kvfpga_mem_fini, mm);
	if (ret)
		return ret;

	ret = kvfpga_mem_reserve(mm, 0, desc_size);
	for (i = 0; !ret && i < card->num_reserved; i++) {
		if (card->reserved[i].offset < desc_size) {
			/* Overlaps the descriptor page: reserve only what is left. */
			u64 end = card->reserved[i].offset + card->reserved[i].size;

			if (end <= desc_size)
				continue;
			ret = kvfpga_mem_reserve(mm, desc_size, end - desc_size);
			reserved += end - desc_size;
			continue;
		}
		ret = kvfpga_mem_reserve(mm, card->reserved[i].offset, card->reserved[i].size);
		reserved += card->reserved[i].size;
	}
	if (ret) {
		drm_err(&kdev->drm, "cannot reserve card ranges: %d\n", ret);
		return ret;
	}

	mm->total = card->mem_size - reserved;
	mm->max_bo_size = kvfpga_mem_max_block(kdev);
	drm_info(&kdev->drm, "%llu MiB for buffers, largest buffer %llu MiB\n",
		 mm->total >> 20, mm->max_bo_size >> 20);
	return 0;
}

/*
 * @size is granule aligned and at most mm->max_bo_size.  On success @blocks
 * holds one contiguous range starting at *@card_addr.
 */
int kvfpga_mem_alloc(struct kvfpga_device *kdev, u64 size, struct list_head *blocks,
		     u64 *card_addr)
{
	struct kvfpga_mem *mm = &kdev->mm;
	u64 block_size = roundup_pow_of_two(size);
	struct kvfpga_buddy_block *block;
	int ret;

	if (kvfpga_fault_inject(kdev, KVFPGA_FAULT_BUDDY))
		return -ENOMEM;

	mutex_lock(&mm->lock);
	ret = kvfpga_buddy_alloc_blocks(&mm->mm, 0, kdev->card.mem_size, block_size, block_size,
					blocks, 0);
	if (ret)
		goto out;
	block = list_first_entry(blocks, struct kvfpga_buddy_block, link);
	*card_addr = kvfpga_buddy_block_offset(block);
	if (block_size != size) {
		ret = kvfpga_buddy_trim(&mm->mm, size, blocks);
		if (ret) {
			kvfpga_buddy_free_list(&mm->mm, blocks);
			goto out;
		}
	}
	mm->used += size;
	mm->bo_count++;
out:
	mutex_unlock(&mm->lock);
	return ret;
}

void kvfpga_mem_free(struct kvfpga_device *kdev, struct list_head *blocks, u64 size)
{
	struct kvfpga_mem *mm = &kdev->mm;

	mutex_lock(&mm->lock);
	kvfpga_buddy_free_list(&mm->mm, blocks);
	mm->used -= size;
	mm->bo_count--;
	mutex_unlock(&mm->lock);
}

void kvfpga_mem_stats(struct kvfpga_device *kdev, u64 *used, u32 *bo_count)
{
	mutex_lock(&kdev->mm.lock);
	*used = kdev->mm.used;
	*bo_count = kdev->mm.bo_count;
	mutex_unlock(&kdev->mm.lock);
}
