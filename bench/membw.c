/* SPDX-License-Identifier: MIT */
/*
 * The host's ceilings, which the other benchmarks divide by:
 *   - memory read bandwidth of 1 and 2 threads summing a buffer far larger
 *     than the last-level cache (1 GiB or 32x the LLC), next to glibc's
 *     memchr scanning the same buffer (the baseline: if our loop matched
 *     or beat a tuned libc scan, it is a fair ceiling);
 *   - peak FMA FLOP/s of 2 threads, next to 1 thread (the baseline: a
 *     ratio near 2 says both cores were ours while it ran).
 * Each repetition measures every variant once, one right after the other,
 * after a warm-up pass.
 *
 *   membw [--json] [--reps N] [--quick] [--bytes N] [--flops-seconds S]
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define MAX_REPS 1000

struct samples {
	double sum[2][MAX_REPS];    /* [threads - 1][rep]: our loop, bytes/s */
	double memchr[2][MAX_REPS]; /* glibc memchr, bytes/s */
	double flops[2][MAX_REPS];  /* [threads - 1][rep] */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: membw [--json] [--reps N] [--quick] [--bytes N] [--flops-seconds S]\n"
	           "  Host memory read bandwidth (1 and 2 threads) against glibc memchr over the\n"
	           "  same buffer, and peak FMA FLOP/s (2 threads against 1).\n"
	           "  --json             machine-readable output on stdout\n"
	           "  --reps N           repetitions after a warm-up (default 7)\n"
	           "  --quick            3 repetitions, 0.05 s FMA runs\n"
	           "  --bytes N          buffer size (default: 1 GiB or 32x the LLC)\n"
	           "  --flops-seconds S  length of one FMA run (default 0.1)\n");
}

static int measure(struct bench_membuf *m, int rep, double flops_seconds, struct samples *s,
                   const char **isa)
{
	for (int t = 1; t <= 2; t++) {
		double a = bench_read_bw(m, t), b = bench_memchr_bw(m, t);
		double c = bench_peak_flops(t, flops_seconds, isa);

		if (a <= 0 || b <= 0 || c <= 0)
			return -EINVAL;
		if (rep >= 0) {
			s->sum[t - 1][rep] = a;
			s->memchr[t - 1][rep] = b;
			s->flops[t - 1][rep] = c;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "reps", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "flops-seconds", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct samples s;
	struct bench_membuf m;
	struct bench_figure fig[2], flops;
	const char *isa = "";
	size_t bytes = 0;
	double flops_seconds = 0.1;
	int reps = 7, json = 0, c, ret;
	char *end;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'r':
			reps = (int)strtol(optarg, &end, 10);
			if (*end)
				reps = -1;
			break;
		case 'q':
			reps = 3;
			flops_seconds = 0.05;
			break;
		case 'b':
			bytes = (size_t)strtoull(optarg, &end, 0);
			if (*end)
				bytes = 1;
			break;
		case 'f':
			flops_seconds = strtod(optarg, &end);
			if (*end)
				flops_seconds = -1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || reps < 1 || reps > MAX_REPS || !(flops_seconds > 0) ||
	    flops_seconds > 10) {
		usage(stderr);
		return 2;
	}
	if (!bytes) {
		bytes = 32 * bench_llc_bytes();
		if (bytes < ((size_t)1 << 30))
			bytes = (size_t)1 << 30;
	}
	ret = bench_membuf_create(bytes, &m);
	if (ret) {
		fprintf(stderr, "membw: cannot allocate %zu bytes: %s\n", bytes, strerror(-ret));
		return 1;
	}
	for (int r = -1; r < reps && !ret; r++)
		ret = measure(&m, r, flops_seconds, &s, &isa);
	for (int t = 0; t < 2 && !ret; t++)
		ret = bench_figure_of(s.sum[t], s.memchr[t], reps, &fig[t]);
	if (!ret)
		ret = bench_figure_of(s.flops[1], s.flops[0], reps, &flops);
	if (ret) {
		fprintf(stderr, "membw: measurement failed: %s\n", strerror(-ret));
		bench_membuf_free(&m);
		return 1;
	}
	if (json) {
		json_object *root = json_object_new_object(), *arr = json_object_new_array();
		json_object *fl;

		json_object_object_add(root, "benchmark", json_object_new_string("host_ceilings"));
		json_object_object_add(root, "buffer_bytes",
		                       json_object_new_int64((int64_t)m.bytes));
		json_object_object_add(root, "llc_bytes",
		                       json_object_new_int64((int64_t)bench_llc_bytes()));
		json_object_object_add(root, "reps", json_object_new_int(reps));
		for (int t = 0; t < 2; t++) {
			json_object *o = bench_figure_json(
			        &fig[t], "bytes/s", "glibc memchr over the same buffer", "bytes/s");

			json_object_object_add(o, "threads", json_object_new_int(t + 1));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "read_bw", arr);
		fl = bench_figure_json(&flops, "FLOP/s", "the same FMA loop on 1 thread", "FLOP/s");
		json_object_object_add(fl, "threads", json_object_new_int(2));
		json_object_object_add(fl, "isa", json_object_new_string(isa));
		json_object_object_add(root, "peak_flops", fl);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("host ceilings: %zu MiB buffer (LLC %zu MiB), %d repetitions; median "
		       "[min, max]\n",
		       m.bytes >> 20, bench_llc_bytes() >> 20, reps);
		for (int t = 0; t < 2; t++)
			printf("read bandwidth, %d thread%s: %6.2f GB/s [%.2f, %.2f]   memchr "
			       "%6.2f GB/s   ratio %.3f\n",
			       t + 1, t ? "s" : " ", fig[t].value.median / 1e9,
			       fig[t].value.min / 1e9, fig[t].value.max / 1e9,
			       fig[t].baseline.median / 1e9, fig[t].ratio.median);
		printf("peak FLOP/s (%s), 2 threads: %6.1f GFLOP/s [%.1f, %.1f]   1 thread "
		       "%6.1f   ratio %.2f\n",
		       isa, flops.value.median / 1e9, flops.value.min / 1e9, flops.value.max / 1e9,
		       flops.baseline.median / 1e9, flops.ratio.median);
	}
	bench_membuf_free(&m);
	return 0;
}
