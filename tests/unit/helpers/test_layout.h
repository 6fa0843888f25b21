/* SPDX-License-Identifier: MIT */
/*
 * The KV cache's block layout as documented (docs/kvcache.md), for tests
 * that check the bytes in an arena independently of the library's own
 * layout struct.
 */
#ifndef KVFPGA_TEST_LAYOUT_H
#define KVFPGA_TEST_LAYOUT_H

#include <stdint.h>

/*
 * Element offset inside a block of (layer, kv, head, slot, d):
 * [layer][kv][head] tiles of block_size x head_dim, a V tile [slot][dim]
 * and a K tile transposed, [dim][slot].
 */
uint64_t test_kv_elem(uint32_t layer, uint32_t kv, uint32_t head, uint32_t slot, uint32_t d,
                      uint32_t n_kv_heads, uint32_t block_size, uint32_t head_dim);

#endif /* KVFPGA_TEST_LAYOUT_H */
