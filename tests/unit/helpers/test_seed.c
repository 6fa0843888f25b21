// SPDX-License-Identifier: MIT
#include "test_seed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t test_seed(void)
{
	const char *env = getenv("KVFPGA_TEST_SEED");
	struct timespec ts;
	uint64_t mix, seed;

	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		mix = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
		      (uint64_t)getpid() << 32;
		seed = test_rand(&mix);
	}
	/* Said up front too: a crash (tests run unforked) never reaches a failure message. */
	fprintf(stderr, "%s: seed %llu (KVFPGA_TEST_SEED=%llu repeats it)\n",
	        program_invocation_short_name, (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

uint64_t test_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t test_rand_below(uint64_t *state, uint64_t n)
{
	/* Rejection keeps it uniform; the loop almost never repeats. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;

	do {
		r = test_rand(state);
	} while (r >= limit);
	return r % n;
}
