// SPDX-License-Identifier: MIT
#include "test_util.h"

#include <stdio.h>

#include "kvfpga/engine.h"

int test_run_nofork(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

struct kvfpga_engine *test_engine_open(char *msg, size_t len)
{
	struct kvfpga_engine_opts opts;
	struct kvfpga_engine *engine = NULL;
	int ret;

	msg[0] = '\0';
	ret = kvfpga_engine_opts_init(&opts);
	/* Every launch starts from NaN: an element a kernel skips cannot pass. */
	opts.poison_outputs = 1;
	if (!ret)
		ret = kvfpga_engine_create(&opts, &engine, msg, len);
	if (ret && !msg[0])
		snprintf(msg, len, "error %d", ret);
	return ret ? NULL : engine;
}
