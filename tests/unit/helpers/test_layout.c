/* SPDX-License-Identifier: MIT */
#include "test_layout.h"

uint64_t test_slice_elem(uint32_t kv, uint32_t head, uint32_t slot, uint32_t d, uint32_t n_kv_heads,
                         uint32_t block_size, uint32_t head_dim)
{
	uint64_t tile = ((uint64_t)kv * n_kv_heads + head) * block_size * head_dim;

	return tile + (kv ? (uint64_t)slot * head_dim + d : (uint64_t)d * block_size + slot);
}

uint64_t test_slice_elems(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim)
{
	return 2ull * n_kv_heads * block_size * head_dim;
}

uint64_t test_i8_scale_offset(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim)
{
	return (test_slice_elems(n_kv_heads, block_size, head_dim) + 15) & ~15ull;
}

uint64_t test_i8_slice_bytes(uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim)
{
	return (test_i8_scale_offset(n_kv_heads, block_size, head_dim) + 8ull * n_kv_heads + 15) &
	       ~15ull;
}

uint64_t test_slice_start(uint32_t layer, uint32_t block, uint32_t n_blocks, uint64_t slice_size)
{
	return ((uint64_t)layer * n_blocks + block) * slice_size;
}
