/* SPDX-License-Identifier: MIT */
#include "test_layout.h"

uint64_t test_kv_elem(uint32_t layer, uint32_t kv, uint32_t head, uint32_t slot, uint32_t d,
                      uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim)
{
	uint64_t tile = (((uint64_t)layer * 2 + kv) * n_kv_heads + head) * block_size * head_dim;

	return tile + (kv ? (uint64_t)slot * head_dim + d : (uint64_t)d * block_size + slot);
}
