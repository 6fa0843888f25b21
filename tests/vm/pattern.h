/* SPDX-License-Identifier: MIT */
/*
 * The byte pattern the guest tests and the host agent agree on: byte i of a
 * region seeded with s is a function of (s, i) only, so either side can
 * write it and the other check it.
 */
#ifndef KVFPGA_VM_PATTERN_H
#define KVFPGA_VM_PATTERN_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t vm_pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint8_t vm_pattern_byte(uint64_t seed, uint64_t i)
{
	return (uint8_t)(vm_pattern_word(seed, i / 8) >> ((i % 8) * 8));
}

static inline void vm_pattern_fill(volatile uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = vm_pattern_byte(seed, i);
}

/* Index of the first byte that differs, or len when all match. */
static inline size_t vm_pattern_check(const volatile uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != vm_pattern_byte(seed, i))
			return i;
	return len;
}

#endif
