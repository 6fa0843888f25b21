/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the benchmarks run by `make bench` (bench/run-bench.sh):
 * a monotonic clock, median/min/max of repeated samples, the host's
 * ceilings (memory read bandwidth over a buffer far larger than the
 * last-level cache, peak FMA throughput) and their JSON form.
 *
 * Every benchmark reports a figure next to a baseline measured in the same
 * process, run alternately with it so that both see the same machine load
 * (other engineers compile on the same two cores): a figure is only ever
 * read as its ratio to the baseline.
 *
 * Not thread-safe unless stated; the measuring functions start and join
 * their own threads.
 */
#ifndef KVFPGA_BENCH_UTIL_H
#define KVFPGA_BENCH_UTIL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Median, smallest and largest of n >= 1 samples (the samples are not changed). */
struct bench_stats {
	double median, min, max;
	int n;
};

/* -EINVAL when n < 1, -ENOMEM. */
int bench_stats_of(const double *samples, int n, struct bench_stats *out);

/*
 * {"unit": unit, "median": .., "min": .., "max": .., "n": ..}; NULL on
 * allocation failure.
 */
json_object *bench_stats_json(const struct bench_stats *s, const char *unit);

/*
 * A measured figure with its baseline: value and baseline are the sample
 * statistics of each, ratio the statistics of value[i] / baseline[i] over
 * the pairs measured one right after the other (so the median ratio is not
 * thrown off by load that changed between pairs).  n >= 1 pairs.
 */
struct bench_figure {
	struct bench_stats value, baseline, ratio;
};

int bench_figure_of(const double *value, const double *baseline, int n, struct bench_figure *out);

/*
 * {"value": {...unit}, "baseline": {...baseline_unit, "what": baseline_what},
 *  "ratio": {...}}; NULL on allocation failure.
 */
json_object *bench_figure_json(const struct bench_figure *f, const char *unit,
                               const char *baseline_what, const char *baseline_unit);

/* A decimal option value in [min, max] into *out; -EINVAL otherwise (out untouched). */
int bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Size of the last-level cache of CPU 0 from sysfs; 32 MiB when unknown. */
size_t bench_llc_bytes(void);

/*
 * Big benchmark buffers (bandwidth baselines, KV arenas) come from
 * bench_alloc_pages: 2 MiB-aligned and a whole number of 2 MiB.  They keep
 * 4 KiB pages (MADV_NOHUGEPAGE), as the library's card memory has (a memfd
 * in the emulation, a BAR mapping with the driver).  BENCH_PAGES=huge in the
 * environment asks for transparent huge pages (MADV_HUGEPAGE) instead, to
 * see what page walks cost: here the plain-loop baseline read 3-5% faster
 * with them and the decode kernels no faster (docs/attention.md).  Pages
 * are not touched here.  NULL when out of memory.
 */
void *bench_alloc_pages(size_t bytes);

/* Whether bench_alloc_pages asks for huge pages (BENCH_PAGES=huge). */
int bench_want_huge_pages(void);

/*
 * This process's anonymous memory in huge pages, in bytes
 * (/proc/self/smaps_rollup), or -1 when it cannot be read.  Read it before
 * touching a buffer, and bench_anon_huge_since(that) after: how much of the
 * buffer the kernel backed with huge pages (THP may be off, or memory too
 * fragmented); -1 when either read failed.
 */
long long bench_anon_huge_bytes(void);
long long bench_anon_huge_since(long long before);

/*
 * Host memory read bandwidth: @threads threads (1..64) each sum their share
 * of a buffer of @bytes (from bench_alloc_pages, written once by
 * bench_membuf_create so that every page is backed; huge_bytes of it in
 * huge pages, -1 if unknown).
 */
struct bench_membuf {
	uint64_t *words;
	size_t bytes;
	long long huge_bytes;
	uint64_t sink; /* keeps the sums alive */
};

int bench_membuf_create(size_t bytes, struct bench_membuf *out);
void bench_membuf_free(struct bench_membuf *m);

/* Bytes per second of one pass reading the whole buffer; negative errno on failure. */
double bench_read_bw(struct bench_membuf *m, int threads);

/*
 * The same pass with glibc's memchr looking for a byte that is not there
 * (its vectorised scan), the check that bench_read_bw is a fair ceiling.
 */
double bench_memchr_bw(struct bench_membuf *m, int threads);

/*
 * Read bandwidth of an access pattern: @n runs of memory (each 32-byte
 * aligned, a multiple of 128 bytes long), summed as bench_read_bw does;
 * thread t of @threads reads runs [t * n / threads, (t + 1) * n / threads)
 * in order, @side_by_side (>= 1) runs at a time, 128 bytes of each in turn.
 * The sums are added to *@sink.  Bytes per second, or -EINVAL.
 */
struct bench_run {
	const void *p;
	size_t bytes;
};

double bench_read_runs_bw(const struct bench_run *runs, size_t n, size_t side_by_side, int threads,
                          uint64_t *sink);

/*
 * Peak single-precision FLOP/s of @threads threads running independent
 * fused multiply-adds on registers for about @seconds, using the widest
 * vectors the CPU has (AVX-512F, else AVX2+FMA, else SSE multiply and add).
 * *@isa (may be NULL) names the one used.  Negative errno on failure.
 */
double bench_peak_flops(int threads, double seconds, const char **isa);

/*
 * First thing in main() of a benchmark that runs OpenCL kernels: pins
 * PoCL's CPU worker threads, one per CPU, unless the environment says
 * otherwise (kvfpga_cl_pin_cpu_workers).  The bandwidth baseline's threads
 * always run on separate CPUs; unpinned, PoCL's workers were often woken
 * onto one CPU for a whole call.  Returns what was done, for the report.
 */
const char *bench_pin_cl_workers(void);

#endif /* KVFPGA_BENCH_UTIL_H */
