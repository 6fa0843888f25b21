// SPDX-License-Identifier: GPL-2.0-only
/*
 * The card descriptor at offset 0 of card memory (include/kvfpga/kvfpga_card.h,
 * hw/README.md).  A card whose descriptor is missing or inconsistent is
 * refused: the driver must never hand out memory it does not know.
 */
#include <linux/crc32.h>
#include <linux/io.h>
#include <linux/log2.h>
#include <linux/string.h>
#include <drm/drm_print.h>

#include "kvfpga_drv.h"

static bool ranges_overlap(u64 a_off, u64 a_size, u64 b_off, u64 b_size)
{
	return a_off < b_off + b_size && b_off < a_off + a_size;
}

static int kvfpga_card_check(struct kvfpga_device *kdev, const struct kvfpga_card_desc *d)
{
	struct device *dev = &kdev->pdev->dev;
	struct kvfpga_card_info *card = &kdev->card;
	u32 crc;
	u32 i, j;

	if (le32_to_cpu(d->magic) != KVFPGA_DESC_MAGIC) {
		dev_err(dev, "card descriptor missing (magic %#010x, want %#010x)\n",
			le32_to_cpu(d->magic), KVFPGA_DESC_MAGIC);
		return -ENODEV;
	}
	if (le16_to_cpu(d->version) != KVFPGA_DESC_VERSION ||
	    le16_to_cpu(d->header_size) != sizeof(*d)) {
		dev_err(dev, "card descriptor version %u size %u unsupported (want %u, %zu)\n",
			le16_to_cpu(d->version), le16_to_cpu(d->header_size),
			KVFPGA_DESC_VERSION, sizeof(*d));
		return -ENODEV;
	}
	crc = ~crc32_le(~0U, (const u8 *)d, KVFPGA_DESC_CRC_LEN);
	if (crc != le32_to_cpu(d->crc32)) {
		dev_err(dev, "card descriptor corrupt (crc %#010x, stored %#010x)\n",
			crc, le32_to_cpu(d->crc32));
		return -ENODEV;
	}
	if (d->flags || d->pad) {
		dev_err(dev, "card descriptor has unknown flags %#x\n", le32_to_cpu(d->flags));
		return -ENODEV;
	}

	card->version = le16_to_cpu(d->version);
	card->mem_size = le64_to_cpu(d->mem_size);
	card->granule = le64_to_cpu(d->granule);
	card->num_reserved = le32_to_cpu(d->num_reserved);

	if (!is_power_of_2(card->granule) || card->granule < KVFPGA_DESC_MIN_GRANULE ||
	    card->granule > KVFPGA_DESC_MAX_GRANULE || card->granule < PAGE_SIZE) {
		dev_err(dev, "card descriptor: bad granule %llu\n", card->granule);
		return -ENODEV;
	}
	if (card->mem_size < KVFPGA_DESC_MIN_MEM || card->mem_size > kdev->bar_len ||
	    !IS_ALIGNED(card->mem_size, card->granule)) {
		dev_err(dev, "card descriptor: memory size %llu does not fit BAR%d (%llu bytes)\n",
			card->mem_size, KVFPGA_MEM_BAR, (u64)kdev->bar_len);
		return -ENODEV;
	}
	if (card->num_reserved > KVFPGA_DESC_MAX_RANGES) {
		dev_err(dev, "card descriptor: %u reserved ranges (max %d)\n",
			card->num_reserved, KVFPGA_DESC_MAX_RANGES);
		return -ENODEV;
	}
	for (i = 0; i < card->num_reserved; i++) {
		u64 off = le64_to_cpu(d->reserved[i].offset);
		u64 size = le64_to_cpu(d->reserved[i].size);

		if (!size || !IS_ALIGNED(off | size, card->granule) ||
		    off >= card->mem_size || size > card->mem_size - off) {
			dev_err(dev, "card descriptor: reserved range %u [%#llx +%#llx] invalid\n",
				i, off, size);
			return -ENODEV;
		}
		for (j = 0; j < i; j++) {
			if (ranges_overlap(off, size, card->reserved[j].offset,
					   card->reserved[j].size)) {
				dev_err(dev, "card descriptor: reserved ranges %u and %u overlap\n",
					j, i);
				return -ENODEV;
			}
		}
		card->reserved[i].offset = off;
		card->reserved[i].size = size;
	}
	for (; i < KVFPGA_DESC_MAX_RANGES; i++) {
		if (d->reserved[i].offset || d->reserved[i].size) {
			dev_err(dev, "card descriptor: unused reserved range %u not zero\n", i);
			return -ENODEV;
		}
	}
	if (strnlen(d->name, sizeof(d->name)) == sizeof(d->name) ||
	    strnlen(d->serial, sizeof(d->serial)) == sizeof(d->serial)) {
		dev_err(dev, "card descriptor: name or serial not terminated\n");
		return -ENODEV;
	}
	strscpy(card->name, d->name, sizeof(card->name));
	strscpy(card->serial, d->serial, sizeof(card->serial));
	return 0;
}

int kvfpga_card_read_desc(struct kvfpga_device *kdev)
{
	struct kvfpga_card_desc desc;
	int ret;

	memcpy_fromio(&desc, kdev->mem, sizeof(desc));
	ret = kvfpga_card_check(kdev, &desc);
	if (ret)
		return ret;

	drm_info(&kdev->drm, "card '%s' serial '%s': %llu MiB memory, granule %llu KiB, %u reserved ranges\n",
		 kdev->card.name, kdev->card.serial, kdev->card.mem_size >> 20,
		 kdev->card.granule >> 10, kdev->card.num_reserved);
	return 0;
}
