/* SPDX-License-Identifier: MIT */
/*
 * The KV cache's arena layout as documented (docs/kvcache.md), for tests
 * that check the bytes in an arena independently of the library's own
 * layout struct.  The arena is layer-major: the slice of (layer, block)
 * starts at element (layer * n_blocks + block) * slice_elems.
 */
#ifndef KVFPGA_TEST_LAYOUT_H
#define KVFPGA_TEST_LAYOUT_H

#include <stdint.h>

/*
 * Element offset inside a slice of (kv, head, slot, d): [kv][head] tiles of
 * block_size x head_dim, a V tile [slot][dim] and a K tile transposed,
 * [dim][slot].
 */
uint64_t test_slice_elem(uint32_t kv, uint32_t head, uint32_t slot, uint32_t d, uint32_t n_kv_heads,
                         uint32_t block_size, uint32_t head_dim);

/* Elements of one slice of f32 or f16 K/V (no scales): 2 x n_kv_heads tiles. */
uint64_t test_slice_elems(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim);

/*
 * Bytes of one int8 slice: the data, then float scales[2][n_kv_heads] at
 * the next multiple of 16 (test_i8_scale_offset), rounded up to 16.
 */
uint64_t test_i8_scale_offset(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim);
uint64_t test_i8_slice_bytes(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim);

/* Start of the slice of (layer, block), in the unit of @slice_size (elements or bytes). */
uint64_t test_slice_start(uint32_t layer, uint32_t block, uint32_t n_blocks, uint64_t slice_size);

#endif /* KVFPGA_TEST_LAYOUT_H */
