/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * The kvfpga card descriptor: the contract between a card's shell and
 * the driver.  The card exposes its on-board memory through a 64-bit
 * prefetchable PCI memory BAR; the first KVFPGA_DESC_RESERVED bytes of that
 * memory hold this little-endian descriptor.  See hw/README.md.
 *
 * Shared by the driver (kernel types) and host tools (<linux/types.h>).
 */
#ifndef _KVFPGA_CARD_H_
#define _KVFPGA_CARD_H_

#include <linux/types.h>

#define KVFPGA_DESC_MAGIC	0x5046564bU	/* "KVFP" as little-endian bytes */
#define KVFPGA_DESC_VERSION	1
#define KVFPGA_DESC_RESERVED	4096		/* bytes at offset 0 never allocated */
#define KVFPGA_DESC_MAX_RANGES	8
#define KVFPGA_DESC_NAME_LEN	32
#define KVFPGA_DESC_MIN_GRANULE	4096
#define KVFPGA_DESC_MAX_GRANULE	(1U << 30)
#define KVFPGA_DESC_MIN_MEM	(1ULL << 20)

/* A range of card memory, in bytes from the start of the memory BAR. */
struct kvfpga_desc_range {
	__le64 offset;
	__le64 size;
};

/**
 * struct kvfpga_card_desc - at offset 0 of card memory
 * @magic: KVFPGA_DESC_MAGIC
 * @version: KVFPGA_DESC_VERSION
 * @header_size: sizeof(struct kvfpga_card_desc) for this version
 * @mem_size: bytes of card memory (<= the BAR's size), multiple of @granule
 * @granule: allocation unit in bytes, power of two in
 *	[KVFPGA_DESC_MIN_GRANULE, KVFPGA_DESC_MAX_GRANULE]
 * @num_reserved: entries used in @reserved
 * @flags: must be zero in version 1
 * @name: NUL-terminated card model name
 * @serial: NUL-terminated serial number
 * @reserved: ranges the card's shell uses itself (never given to buffers);
 *	granule aligned, inside @mem_size.  The descriptor's own first
 *	KVFPGA_DESC_RESERVED bytes are always reserved and need no entry.
 * @crc32: CRC-32 (IEEE 802.3, as zlib's crc32()) of every byte before it
 * @pad: zero
 */
struct kvfpga_card_desc {
	__le32 magic;
	__le16 version;
	__le16 header_size;
	__le64 mem_size;
	__le64 granule;
	__le32 num_reserved;
	__le32 flags;
	char name[KVFPGA_DESC_NAME_LEN];
	char serial[KVFPGA_DESC_NAME_LEN];
	struct kvfpga_desc_range reserved[KVFPGA_DESC_MAX_RANGES];
	__le32 crc32;
	__le32 pad;
};

#define KVFPGA_DESC_CRC_LEN offsetof(struct kvfpga_card_desc, crc32)

#endif /* _KVFPGA_CARD_H_ */
