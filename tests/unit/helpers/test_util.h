/* SPDX-License-Identifier: MIT */
/*
 * Small pieces the Check unit tests share.
 */
#ifndef KVFPGA_TEST_UTIL_H
#define KVFPGA_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

struct kvfpga_engine;

/*
 * For hot loops: Check's ck_assert records every passing check (through a
 * pipe when forking), which is slow by the million; this one reports only
 * a failure.
 */
#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg(__VA_ARGS__);                                                 \
	} while (0)

/*
 * Runs @s (and frees it) in this process: the cases share state that is
 * expensive to rebuild, such as built OpenCL programs.  Returns the number
 * of failed checks.
 */
int test_run_nofork(Suite *s);

/*
 * An attention engine with the default options and the environment's
 * (KVFPGA_OPENCL_*), outputs poisoned before every launch (poison_outputs).
 * NULL when there is none; @msg then says why.
 */
struct kvfpga_engine *test_engine_open(char *msg, size_t len);

#endif /* KVFPGA_TEST_UTIL_H */
