/* SPDX-License-Identifier: MIT */
/* Shared pieces of the benchmarks: see bench_util.h. */
#include "bench_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kvfpga/engine.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

#define MAX_THREADS 64

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int bench_stats_of(const double *samples, int n, struct bench_stats *out)
{
	double *v;

	if (!samples || n < 1 || !out)
		return -EINVAL;
	v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, samples, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	out->median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
	out->min = v[0];
	out->max = v[n - 1];
	out->n = n;
	free(v);
	return 0;
}

json_object *bench_stats_json(const struct bench_stats *s, const char *unit)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(o, "unit", json_object_new_string(unit)) ||
	    json_object_object_add(o, "median", json_object_new_double(s->median)) ||
	    json_object_object_add(o, "min", json_object_new_double(s->min)) ||
	    json_object_object_add(o, "max", json_object_new_double(s->max)) ||
	    json_object_object_add(o, "n", json_object_new_int(s->n))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int bench_figure_of(const double *value, const double *baseline, int n, struct bench_figure *out)
{
	double *ratio;
	int ret;

	if (!value || !baseline || n < 1 || !out)
		return -EINVAL;
	ratio = malloc((size_t)n * sizeof(*ratio));
	if (!ratio)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		ratio[i] = value[i] / baseline[i];
	ret = bench_stats_of(value, n, &out->value);
	if (!ret)
		ret = bench_stats_of(baseline, n, &out->baseline);
	if (!ret)
		ret = bench_stats_of(ratio, n, &out->ratio);
	free(ratio);
	return ret;
}

json_object *bench_figure_json(const struct bench_figure *f, const char *unit,
                               const char *baseline_what, const char *baseline_unit)
{
	json_object *o = json_object_new_object();
	json_object *v = bench_stats_json(&f->value, unit);
	json_object *b = bench_stats_json(&f->baseline, baseline_unit);
	json_object *r = bench_stats_json(&f->ratio, "ratio");

	if (!o || !v || !b || !r ||
	    json_object_object_add(b, "what", json_object_new_string(baseline_what)))
		goto fail;
	json_object_object_add(o, "value", v);
	v = NULL;
	json_object_object_add(o, "baseline", b);
	b = NULL;
	json_object_object_add(o, "ratio", r);
	return o;
fail:
	json_object_put(o);
	json_object_put(v);
	json_object_put(b);
	json_object_put(r);
	return NULL;
}

int bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/*
 * From sysfs: glibc's sysconf can report the L3 of the whole package times
 * the threads in a VM.
 */
size_t bench_llc_bytes(void)
{
	size_t best = 0;
	int best_level = 0;

	for (int i = 0; i < 8; i++) {
		char path[96], buf[32];
		unsigned long long v = 0;
		int level = 0;
		char unit = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
		f = fopen(path, "r");
		if (!f)
			break;
		if (fscanf(f, "%d", &level) != 1)
			level = 0;
		fclose(f);
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%llu%c", &v, &unit) >= 1) {
			if (unit == 'K')
				v <<= 10;
			else if (unit == 'M')
				v <<= 20;
			if (level > best_level) {
				best_level = level;
				best = (size_t)v;
			}
		}
		fclose(f);
	}
	return best ? best : (size_t)32 << 20;
}

/* ---- memory read bandwidth ---- */

#define BW_CHUNK 128u /* bytes per inner step: four 32-byte vectors */

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

int bench_want_huge_pages(void)
{
	const char *v = getenv("BENCH_PAGES");

	return v && strcmp(v, "huge") == 0;
}

void *bench_alloc_pages(size_t bytes)
{
	void *p;

	if (!bytes || bytes > SIZE_MAX - HUGE_PAGE_BYTES)
		return NULL;
	bytes = (bytes + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
	p = aligned_alloc(HUGE_PAGE_BYTES, bytes);
	/* Advice only: without THP the buffer simply keeps 4 KiB pages. */
	if (p)
		(void)madvise(p, bytes, bench_want_huge_pages() ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

long long bench_anon_huge_bytes(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib * 1024;
}

long long bench_anon_huge_since(long long before)
{
	long long now = before < 0 ? -1 : bench_anon_huge_bytes();

	return now < 0 ? -1 : now - before;
}

int bench_membuf_create(size_t bytes, struct bench_membuf *out)
{
	long long huge_before;

	if (!out || bytes < BW_CHUNK * MAX_THREADS)
		return -EINVAL;
	bytes = (bytes + 4095) & ~(size_t)4095;
	out->words = bench_alloc_pages(bytes);
	if (!out->words)
		return -ENOMEM;
	huge_before = bench_anon_huge_bytes();
	memset(out->words, 1, bytes); /* backs every page; no zero byte for memchr */
	out->huge_bytes = bench_anon_huge_since(huge_before);
	out->bytes = bytes;
	out->sink = 0;
	return 0;
}

void bench_membuf_free(struct bench_membuf *m)
{
	if (!m)
		return;
	free(m->words);
	m->words = NULL;
	m->bytes = 0;
}

typedef uint64_t v4u64 __attribute__((vector_size(32)));

struct bw_part {
	const unsigned char *p;
	size_t bytes;
	int use_memchr;
	uint64_t sum;
};

/* Sum of @bytes (a multiple of BW_CHUNK, 32-byte aligned) as 64-bit words. */
static uint64_t sum_words(const unsigned char *p, size_t bytes)
{
	/* Four independent sums keep enough loads in flight. */
	const v4u64 *v = (const v4u64 *)(const void *)p;
	v4u64 s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	size_t n = bytes / BW_CHUNK;

	for (size_t i = 0; i < n; i++, v += 4) {
		s0 += v[0];
		s1 += v[1];
		s2 += v[2];
		s3 += v[3];
	}
	s0 += s1 + s2 + s3;
	return s0[0] + s0[1] + s0[2] + s0[3];
}

static void *bw_thread(void *arg)
{
	struct bw_part *part = arg;

	if (part->use_memchr)
		part->sum = memchr(part->p, 0, part->bytes) != NULL;
	else
		part->sum = sum_words(part->p, part->bytes);
	return NULL;
}

/*
 * fn on each of @threads parts (@part_size bytes apart): part 0 on this
 * thread, the others on threads of their own (or here, when one cannot
 * start); returns when all are done.
 */
static void run_parts(void *(*fn)(void *), void *parts, size_t part_size, int threads)
{
	pthread_t th[MAX_THREADS];
	int started[MAX_THREADS];
	unsigned char *p = parts;

	for (int i = 0; i < threads; i++)
		started[i] = i > 0 && !pthread_create(&th[i], NULL, fn, p + (size_t)i * part_size);
	for (int i = 0; i < threads; i++)
		if (!started[i])
			fn(p + (size_t)i * part_size);
	for (int i = 0; i < threads; i++)
		if (started[i])
			pthread_join(th[i], NULL);
}

static double bw_pass(struct bench_membuf *m, int threads, int use_memchr)
{
	struct bw_part parts[MAX_THREADS];
	size_t share;
	double t0, t;

	if (!m || !m->words || threads < 1 || threads > MAX_THREADS)
		return -EINVAL;
	share = m->bytes / (size_t)threads / BW_CHUNK * BW_CHUNK;
	for (int i = 0; i < threads; i++) {
		parts[i].p = (const unsigned char *)m->words + (size_t)i * share;
		parts[i].bytes = share;
		parts[i].use_memchr = use_memchr;
	}
	t0 = bench_now();
	run_parts(bw_thread, parts, sizeof(parts[0]), threads);
	t = bench_now() - t0;
	for (int i = 0; i < threads; i++)
		m->sink += parts[i].sum;
	return (double)(share * (size_t)threads) / t;
}

double bench_read_bw(struct bench_membuf *m, int threads)
{
	return bw_pass(m, threads, 0);
}

double bench_memchr_bw(struct bench_membuf *m, int threads)
{
	return bw_pass(m, threads, 1);
}

struct runs_part {
	const struct bench_run *runs;
	size_t n, side_by_side;
	uint64_t sum;
};

/* Runs read side by side: BW_CHUNK bytes of each in turn, until all are read. */
static uint64_t sum_side_by_side(const struct bench_run *runs, size_t n)
{
	v4u64 s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	int more = 1;

	for (size_t off = 0; more; off += BW_CHUNK) {
		more = 0;
		for (size_t r = 0; r < n; r++) {
			const v4u64 *v;

			if (off >= runs[r].bytes)
				continue;
			v = (const v4u64 *)(const void *)((const unsigned char *)runs[r].p + off);
			s0 += v[0];
			s1 += v[1];
			s2 += v[2];
			s3 += v[3];
			more = 1;
		}
	}
	s0 += s1 + s2 + s3;
	return s0[0] + s0[1] + s0[2] + s0[3];
}

static void *runs_thread(void *arg)
{
	struct runs_part *part = arg;

	part->sum = 0;
	for (size_t i = 0; i < part->n; i += part->side_by_side) {
		size_t group = part->n - i < part->side_by_side ? part->n - i : part->side_by_side;

		if (group == 1)
			part->sum += sum_words(part->runs[i].p, part->runs[i].bytes);
		else
			part->sum += sum_side_by_side(part->runs + i, group);
	}
	return NULL;
}

double bench_read_runs_bw(const struct bench_run *runs, size_t n, size_t side_by_side, int threads,
                          uint64_t *sink)
{
	struct runs_part parts[MAX_THREADS];
	size_t bytes = 0;
	double t0, t;

	if (!runs || !n || !side_by_side || !sink || threads < 1 || threads > MAX_THREADS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!runs[i].p || runs[i].bytes % BW_CHUNK || (uintptr_t)runs[i].p % 32)
			return -EINVAL;
		bytes += runs[i].bytes;
	}
	for (int i = 0; i < threads; i++) {
		size_t first = n * (size_t)i / (size_t)threads;

		parts[i].runs = runs + first;
		parts[i].n = n * (size_t)(i + 1) / (size_t)threads - first;
		parts[i].side_by_side = side_by_side;
	}
	t0 = bench_now();
	run_parts(runs_thread, parts, sizeof(parts[0]), threads);
	t = bench_now() - t0;
	for (int i = 0; i < threads; i++)
		*sink += parts[i].sum;
	return (double)bytes / t;
}

/* ---- peak FMA throughput ---- */

/* Twelve independent chains: more than FMA latency times the FMA ports on current x86. */
#define CHAINS   12
#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#ifdef BENCH_X86
__attribute__((target("avx512f"))) static float fma_avx512(uint64_t iters)
{
	const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)(k));
#define STEP(k) a##k = _mm512_fmadd_ps(a##k, m, c);
#define SUM(k)  s = _mm512_add_ps(s, a##k);
	REP12(DECL)
	__m512 s = _mm512_setzero_ps();

	for (uint64_t i = 0; i < iters; i++) {
		REP12(STEP)
	}
	REP12(SUM)
	return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float fma_avx2(uint64_t iters)
{
	const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
	float lanes[8], t = 0;
#define DECL(k) __m256 a##k = _mm256_set1_ps((float)(k));
#define STEP(k) a##k = _mm256_fmadd_ps(a##k, m, c);
#define SUM(k)  s = _mm256_add_ps(s, a##k);
	REP12(DECL)
	__m256 s = _mm256_setzero_ps();

	for (uint64_t i = 0; i < iters; i++) {
		REP12(STEP)
	}
	REP12(SUM)
	_mm256_storeu_ps(lanes, s);
	for (int i = 0; i < 8; i++)
		t += lanes[i];
	return t;
#undef DECL
#undef STEP
#undef SUM
}
#endif

typedef float v4f32 __attribute__((vector_size(16)));

/* Multiply then add (two FLOPs per lane), for CPUs without FMA. */
static float muladd_generic(uint64_t iters)
{
	const v4f32 m = { 0.9999999f, 0.9999999f, 0.9999999f, 0.9999999f };
	const v4f32 c = { 1e-7f, 1e-7f, 1e-7f, 1e-7f };
#define DECL(k) v4f32 a##k = { (float)(k), (float)(k), (float)(k), (float)(k) };
#define STEP(k) a##k = a##k * m + c;
#define SUM(k)  s += a##k;
	REP12(DECL)
	v4f32 s = { 0 };

	for (uint64_t i = 0; i < iters; i++) {
		REP12(STEP)
	}
	REP12(SUM)
	return s[0] + s[1] + s[2] + s[3];
#undef DECL
#undef STEP
#undef SUM
}

enum isa { ISA_GENERIC, ISA_AVX2, ISA_AVX512 };

static enum isa best_isa(void)
{
#ifdef BENCH_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return ISA_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return ISA_AVX2;
#endif
	return ISA_GENERIC;
}

static float fma_run(enum isa isa, uint64_t iters)
{
#ifdef BENCH_X86
	if (isa == ISA_AVX512)
		return fma_avx512(iters);
	if (isa == ISA_AVX2)
		return fma_avx2(iters);
#endif
	return muladd_generic(iters);
}

static unsigned lanes_of(enum isa isa)
{
	return isa == ISA_AVX512 ? 16 : isa == ISA_AVX2 ? 8 : 4;
}

struct flops_part {
	enum isa isa;
	double seconds;
	double rate; /* FLOP/s */
	float sink;
};

static void *flops_thread(void *arg)
{
	struct flops_part *part = arg;
	const uint64_t iters = 1u << 16; /* about 0.2 ms per call on a 3 GHz core */
	uint64_t calls = 0;
	double t0 = bench_now(), t;

	do {
		part->sink += fma_run(part->isa, iters);
		calls++;
		t = bench_now() - t0;
	} while (t < part->seconds);
	part->rate = (double)calls * (double)iters * CHAINS * lanes_of(part->isa) * 2.0 / t;
	return NULL;
}

double bench_peak_flops(int threads, double seconds, const char **isa_name)
{
	static const char *const names[] = { "sse (mul+add)", "avx2+fma", "avx512f" };
	struct flops_part parts[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	int started[MAX_THREADS];
	enum isa isa = best_isa();
	double total = 0;
	float sink = 0;

	if (threads < 1 || threads > MAX_THREADS || !(seconds > 0 && seconds < 60))
		return -EINVAL;
	for (int i = 0; i < threads; i++) {
		parts[i].isa = isa;
		parts[i].seconds = seconds;
		parts[i].sink = 0;
		started[i] = i > 0 && !pthread_create(&th[i], NULL, flops_thread, &parts[i]);
	}
	for (int i = 0; i < threads; i++)
		if (!started[i])
			flops_thread(&parts[i]);
	for (int i = 0; i < threads; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		total += parts[i].rate;
		sink += parts[i].sink;
	}
	if (sink == 42.0f) /* keeps the chains' results alive */
		fputc(' ', stderr);
	if (isa_name)
		*isa_name = names[isa];
	return total;
}

/* ---- OpenCL CPU worker placement ---- */

const char *bench_pin_cl_workers(void)
{
	const char *env = getenv("POCL_AFFINITY");
	int ret;

	if (env)
		return strcmp(env, "1")
		               ? "PoCL workers as POCL_AFFINITY (not 1) in the environment says"
		               : "PoCL workers pinned, one per CPU (POCL_AFFINITY=1 in the "
		                 "environment)";
	ret = kvfpga_cl_pin_cpu_workers();
	if (ret == 1)
		return "PoCL workers pinned, one per CPU (POCL_AFFINITY=1)";
	return ret ? "PoCL workers not pinned (cannot read the CPU affinity)"
	           : "PoCL workers not pinned (PoCL's worker count set in the environment, or "
	             "the process may not run on every CPU)";
}
