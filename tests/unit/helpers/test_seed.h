/* SPDX-License-Identifier: MIT */
/*
 * Seeds for randomised unit tests.  KVFPGA_TEST_SEED=<n> replays a run;
 * otherwise each call picks a fresh seed, and prints it on stderr at once.
 * Put the seed in every failure message too (e.g. ck_assert_msg(...,
 * "seed %llu", seed)).
 */
#ifndef KVFPGA_TEST_SEED_H
#define KVFPGA_TEST_SEED_H

#include <stdint.h>

/* KVFPGA_TEST_SEED when set (decimal or 0x hex), else time and pid mixed. */
uint64_t test_seed(void);
/* splitmix64: the next value of the generator whose state is *@state. */
uint64_t test_rand(uint64_t *state);
/* Uniform in [0, @n), @n > 0. */
uint64_t test_rand_below(uint64_t *state, uint64_t n);

#endif /* KVFPGA_TEST_SEED_H */
