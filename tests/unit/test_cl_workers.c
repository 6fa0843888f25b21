/* SPDX-License-Identifier: MIT */
/*
 * kvfpga_cl_pin_cpu_workers(): when it asks PoCL to pin its worker threads
 * (POCL_AFFINITY=1), when it leaves the environment alone (already set,
 * PoCL's worker count set, a restricted affinity mask), and that PoCL's CPU
 * device then really runs with one worker pinned to each CPU.
 *
 * Every case runs in its own forked process (Check's default): the function
 * changes the process environment, and PoCL reads it once, when the first
 * OpenCL call of the process sets up the device.  The last two cases need
 * PoCL's CPU device (pocl-opencl-icd), as the attention tests do; under a
 * restricted CPU mask they check that nothing is pinned and PoCL starts.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfpga/engine.h"

#define POCL_PLATFORM "Portable Computing Language"

static long online_cpus(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

/* Whether this thread may run on every online CPU 0 .. n-1 (the function's condition). */
static int may_run_on_all(void)
{
	cpu_set_t set;
	long n = online_cpus();

	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (long cpu = 0; cpu < n; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			return 0;
	}
	return 1;
}

START_TEST(test_existing_setting_kept)
{
	static const char *const values[] = { "0", "1", "" };

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ck_assert_int_eq(setenv("POCL_AFFINITY", values[i], 1), 0);
		ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), 0);
		ck_assert_str_eq(getenv("POCL_AFFINITY"), values[i]);
	}
}
END_TEST

/* PoCL's worker count from the environment may exceed the CPUs: left alone. */
START_TEST(test_worker_count_set_left_alone)
{
	static const char *const vars[] = { "POCL_MAX_PTHREAD_COUNT", "POCL_CPU_MAX_CU_COUNT",
		                            "POCL_MAX_COMPUTE_UNITS" };

	ck_assert_int_eq(unsetenv("POCL_AFFINITY"), 0);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		ck_assert_int_eq(setenv(vars[i], "64", 1), 0);
		ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), 0);
		ck_assert_ptr_null(getenv("POCL_AFFINITY"));
		ck_assert_int_eq(unsetenv(vars[i]), 0);
	}
}
END_TEST

START_TEST(test_sets_when_unset)
{
	int expect = may_run_on_all();

	ck_assert_int_eq(unsetenv("POCL_AFFINITY"), 0);
	ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), expect);
	if (expect)
		ck_assert_str_eq(getenv("POCL_AFFINITY"), "1");
	else
		ck_assert_ptr_null(getenv("POCL_AFFINITY"));
	/* A second call sees its own setting and changes nothing. */
	ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), 0);
}
END_TEST

/* Allowed on the last online CPU only: on 2+ CPUs PoCL could not pin worker 0. */
START_TEST(test_restricted_mask_left_alone)
{
	long n = online_cpus();
	cpu_set_t one;

	ck_assert_int_ge(n, 1);
	CPU_ZERO(&one);
	CPU_SET(n - 1, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(unsetenv("POCL_AFFINITY"), 0);
	ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), n == 1 ? 1 : 0);
	if (n > 1)
		ck_assert_ptr_null(getenv("POCL_AFFINITY"));
}
END_TEST

/* Threads of this process whose affinity is exactly one CPU. */
static int single_cpu_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	int count = 0;

	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir))) {
		char path[300], line[256];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread has exited */
		while (fgets(line, sizeof(line), f)) {
			char *list;

			if (strncmp(line, "Cpus_allowed_list:", 18))
				continue;
			list = line + 18 + strspn(line + 18, " \t");
			list[strcspn(list, "\n")] = '\0';
			if (list[0] && !strpbrk(list, ",-"))
				count++;
		}
		fclose(f);
	}
	closedir(dir);
	return count;
}

/* Opens PoCL's CPU device; its compute units (= PoCL's worker threads). */
static struct kvfpga_engine *open_pocl(uint32_t *compute_units)
{
	struct kvfpga_cl_device_desc devs[16];
	struct kvfpga_engine_opts opts;
	struct kvfpga_engine *engine = NULL;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	size_t count = 0;

	ck_assert_int_eq(kvfpga_cl_list_devices(devs, 16, &count), 0);
	ck_assert_int_eq(kvfpga_engine_opts_init(&opts), 0);
	opts.device_index = -1;
	for (size_t i = 0; i < count && i < 16; i++) {
		if (strstr(devs[i].platform, POCL_PLATFORM) && devs[i].type == KVFPGA_CL_TYPE_CPU &&
		    devs[i].usable) {
			opts.device_index = (int)devs[i].index;
			*compute_units = devs[i].compute_units;
			break;
		}
	}
	ck_assert_msg(opts.device_index >= 0, "no usable PoCL CPU device (pocl-opencl-icd)");
	ck_assert_msg(kvfpga_engine_create(&opts, &engine, msg, sizeof(msg)) == 0, "%s", msg);
	return engine;
}

/* How many CPUs this thread may run on. */
static int allowed_cpus(void)
{
	cpu_set_t set;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	return CPU_COUNT(&set);
}

/*
 * Allowed on every CPU: PoCL starts one worker per compute unit when it
 * sets the device up, each pinned to its CPU (on one CPU every thread's
 * list is that CPU).  Restricted (a container's cpuset, taskset): the
 * function declines, and PoCL still starts, where with POCL_AFFINITY=1 it
 * would abort pinning a worker to a CPU outside the mask.
 */
START_TEST(test_pocl_workers_pinned)
{
	struct kvfpga_engine *engine;
	int all = may_run_on_all();
	uint32_t cu = 0;

	ck_assert_int_eq(unsetenv("POCL_AFFINITY"), 0);
	ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), all);
	if (!all)
		ck_assert_ptr_null(getenv("POCL_AFFINITY"));
	engine = open_pocl(&cu);
	ck_assert_uint_ge(cu, 1);
	if (all && allowed_cpus() > 1)
		ck_assert_int_eq(single_cpu_threads(), (int)cu);
	else if (all)
		ck_assert_int_ge(single_cpu_threads(), (int)cu);
	kvfpga_engine_destroy(engine);
}
END_TEST

/* The control: left to the scheduler, no worker is pinned. */
START_TEST(test_pocl_workers_free_with_affinity_0)
{
	struct kvfpga_engine *engine;
	uint32_t cu = 0;

	ck_assert_int_eq(setenv("POCL_AFFINITY", "0", 1), 0);
	ck_assert_int_eq(kvfpga_cl_pin_cpu_workers(), 0);
	engine = open_pocl(&cu);
	/* Threads keep the process's mask; on one allowed CPU every list is that CPU. */
	if (allowed_cpus() > 1)
		ck_assert_int_eq(single_cpu_threads(), 0);
	else
		ck_assert_int_ge(single_cpu_threads(), 1);
	kvfpga_engine_destroy(engine);
}
END_TEST

static Suite *cl_workers_suite(void)
{
	Suite *s = suite_create("cl_workers");
	TCase *tc = tcase_create("pin");

	tcase_add_test(tc, test_existing_setting_kept);
	tcase_add_test(tc, test_worker_count_set_left_alone);
	tcase_add_test(tc, test_sets_when_unset);
	tcase_add_test(tc, test_restricted_mask_left_alone);
	tcase_add_test(tc, test_pocl_workers_pinned);
	tcase_add_test(tc, test_pocl_workers_free_with_affinity_0);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cl_workers_suite());
	int failed;

	/* Each case needs a process whose OpenCL is not set up yet. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
