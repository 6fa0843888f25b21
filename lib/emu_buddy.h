/* SPDX-License-Identifier: MIT */
/*
 * A buddy allocator for the host-memory emulation of a card's address
 * space, modelled on the kernel's drm_buddy: the space is split into
 * power-of-two roots (largest first, from offset 0); a request is rounded
 * up to a power-of-two number of chunks, taken from the smallest free
 * block that fits (lowest address among those), split down, and the
 * unused tail of the block is trimmed back to the free pool.  Freed
 * blocks merge with their buddy whenever both halves are free, so every
 * allocation is one contiguous range and the space never needs
 * compaction.
 *
 * Allocations are addressed by their start offset.  Not thread-safe: the
 * caller serialises access to one allocator.
 */
#ifndef KVFPGA_EMU_BUDDY_H
#define KVFPGA_EMU_BUDDY_H

#include <stdbool.h>
#include <stdint.h>

struct emu_buddy;

/* Largest space an allocator manages, in bytes (2^48, 256 TiB). */
#define EMU_BUDDY_MAX_SIZE (1ULL << 48)

/*
 * @size: bytes managed, a non-zero multiple of @chunk_size, at most
 * EMU_BUDDY_MAX_SIZE.  @chunk_size: a power of two >= 1; the unit of
 * every allocation.  -EINVAL on bad sizes, -ENOMEM.
 */
int emu_buddy_init(uint64_t size, uint64_t chunk_size, struct emu_buddy **out);
/* Frees the allocator; any live allocation goes with it.  NULL is a no-op. */
void emu_buddy_fini(struct emu_buddy *mm);

/*
 * Allocate @size bytes (> 0, rounded up to the chunk) as one contiguous
 * range aligned to its rounded-up power-of-two block; the start offset
 * goes to *@offset.  -EINVAL for size 0, -E2BIG when no block of the
 * allocator could ever hold it, -ENOSPC when no free block is large
 * enough now, -ENOMEM when host memory for bookkeeping runs out.
 */
int emu_buddy_alloc(struct emu_buddy *mm, uint64_t size, uint64_t *offset);

/*
 * Allocate exactly [@start, @start + @size) (both chunk aligned), e.g. to
 * reserve a range the card uses itself.  -EINVAL when unaligned or out of
 * bounds, -ENOSPC when part of it is already allocated.  The range is then
 * one allocation that emu_buddy_free(@start) releases.
 */
int emu_buddy_alloc_range(struct emu_buddy *mm, uint64_t start, uint64_t size);

/*
 * Free the allocation that starts at @offset; its size (rounded to the
 * chunk) goes to *@size when @size is not NULL.  -EINVAL when no
 * allocation starts there (nothing changes).
 */
int emu_buddy_free(struct emu_buddy *mm, uint64_t offset, uint64_t *size);

uint64_t emu_buddy_size(const struct emu_buddy *mm);
uint64_t emu_buddy_chunk_size(const struct emu_buddy *mm);
/* Bytes in free blocks. */
uint64_t emu_buddy_avail(const struct emu_buddy *mm);
/* Size of the largest free block (what the largest allocation can be now). */
uint64_t emu_buddy_largest_free(const struct emu_buddy *mm);
/* Size of the largest root (what the largest allocation could ever be). */
uint64_t emu_buddy_largest_root(const struct emu_buddy *mm);

/* Visit every leaf block in address order; a non-zero return stops the walk and is returned. */
typedef int (*emu_buddy_visit_fn)(uint64_t offset, uint64_t size, bool allocated, void *ctx);
int emu_buddy_for_each_block(const struct emu_buddy *mm, emu_buddy_visit_fn visit, void *ctx);

/*
 * Check the allocator's invariants (leaves tile the space, no two free
 * buddies left unmerged, free-order summaries and byte counts agree).
 * 0 when they hold, -EUCLEAN when not.  For tests; O(blocks).
 */
int emu_buddy_check(const struct emu_buddy *mm);

#endif /* KVFPGA_EMU_BUDDY_H */
