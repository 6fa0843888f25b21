/* SPDX-License-Identifier: MIT */
/*
 * Decode attention throughput against host memory bandwidth.
 *
 * For each case (head_dim 128, 32 query heads, GQA 1 and 4, f32 and f16
 * KV, 16k context by default) this times kvfpga_attn_decode_submit + wait
 * for one layer and counts the KV bytes the kernels must read
 * (context x n_kv_heads x head_dim x element size x 2), then divides by
 * the host's memory read bandwidth measured in the same run (2 threads
 * summing a buffer far larger than the last-level cache).  Kernel runs and
 * bandwidth runs alternate so that both see the same machine load; each
 * reports its best and its median.  The arena holds several layers and the
 * runs cycle through them, so no run finds the previous one's KV in cache.
 *
 * A second baseline, the access pattern's own ceiling: after each bandwidth
 * run, 2 threads read the kernel run's bytes in the same order with the same
 * plain summing loop as the bandwidth run (each block's slice of the layer,
 * blocks in table order, two blocks side by side as the CPU decode kernel
 * reads them: PATTERN_SIDE_BY_SIDE).  With a shuffled table the runs between
 * jumps are only one block's slice of one layer; in address order (ascending
 * blocks, as one append gives a sequence) the arena's layer-major layout
 * makes the whole layer one run.  How fast a plain read of that pattern goes
 * bounds what a kernel can do with it.
 *
 * A third bound is arithmetic: every K and V element takes one
 * multiply-add per query head that shares it (the GQA group), so a case
 * needs group / element size multiply-adds per KV byte.  The 2-thread peak
 * FMA rate (bench_peak_flops, once per run) gives the ratio the case could
 * reach if the kernels did nothing but multiply-adds at that peak ("fma
 * ceil"), and the fraction of that peak the best run used ("fma use").
 * When the ceiling comes near 1 (f16 with GQA 4 while memory is fast), the
 * case is bound by the two cores' arithmetic, not by memory.
 * docs/attention.md explains how to read the numbers.
 *
 *   attention_bench [--json] [--context N] [--block-size N] [--reps N] [--min-ratio X]
 *                   [--table address|shuffled|both] [--quick]
 *
 * The OpenCL device comes from KVFPGA_OPENCL_DEVICE as for the library.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "kvfpga/engine.h"

#define BW_THREADS 2
/* Blocks the pattern read takes side by side: the CPU decode kernel's DECODE_STREAMS. */
#define PATTERN_SIDE_BY_SIDE 2

struct bench_case {
	const char *name;
	uint32_t n_q_heads, n_kv_heads, head_dim;
	enum kvfpga_kv_dtype dtype;
};

static const struct bench_case cases[] = {
	{ "h128 q32 kv32 (GQA 1) f32", 32, 32, 128, KVFPGA_KV_F32 },
	{ "h128 q32 kv32 (GQA 1) f16", 32, 32, 128, KVFPGA_KV_F16 },
	{ "h128 q32 kv8 (GQA 4) f32", 32, 8, 128, KVFPGA_KV_F32 },
	{ "h128 q32 kv8 (GQA 4) f16", 32, 8, 128, KVFPGA_KV_F16 },
};

struct result {
	double kv_bytes;
	double kernel_best, kernel_median; /* bytes per second */
	double host_best, host_median;
	double pair_median; /* median over runs of (kernel run / the bandwidth run after it) */
	double pattern_best, pattern_median; /* plain reads of the kernel's bytes, its order */
	double ms_best;
	double fma_per_byte;  /* multiply-adds the case needs per KV byte */
	double max_rel_error; /* against the library's host reference */
	size_t arena_bytes;
	long long arena_huge_bytes; /* of the arena in huge pages once written, -1 unknown */
	uint32_t n_layers;
};

/* o[key] = v as a JSON number. */
static void json_add_double(json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

/* Median of n >= 1 samples (bench_stats_of; 0 if it cannot allocate). */
static double median(const double *v, int n)
{
	struct bench_stats st;

	return bench_stats_of(v, n, &st) ? 0 : st.median;
}

/* ---- one case ---- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rnd(uint64_t *s)
{
	return (float)((double)(rng_next(s) >> 11) * 0x1p-53) * 2.0f - 1.0f;
}

static int run_case(struct kvfpga_engine *engine, const struct bench_case *bc, uint32_t context,
                    uint32_t block_size, int in_address_order, int reps, struct bench_membuf *bw,
                    struct result *res)
{
	struct kvfpga_attn_shape shape = { 1,          bc->n_q_heads, bc->n_kv_heads, bc->head_dim,
		                           block_size, bc->dtype };
	uint32_t esz = bc->dtype == KVFPGA_KV_F16 ? 2 : 4, n_blocks, blocks_per_seq;
	uint64_t block_bytes, layer_bytes, seed = 42;
	size_t q_elems = (size_t)bc->n_q_heads * bc->head_dim, arena_bytes;
	struct kvfpga_attn *attn = NULL;
	struct kvfpga_kv_arena *reg = NULL;
	struct kvfpga_attn_job *job = NULL;
	struct kvfpga_decode_batch b;
	unsigned char *arena = NULL;
	int32_t *table = NULL;
	float *q = NULL, *out = NULL, *ref = NULL;
	double *kt = NULL, *ht = NULL, *pt = NULL, *rt = NULL;
	struct bench_run *runs = NULL;
	uint64_t slice_bytes, arena_layer_bytes;
	long long huge_before;
	const int32_t *tables[1];
	char msg[KVFPGA_ENGINE_MSG_MAX];
	int ret;

	/* Enough layers that the arena is eight times the last-level cache or more. */
	layer_bytes = (uint64_t)context * bc->n_kv_heads * bc->head_dim * esz * 2;
	shape.n_layers =
	        (uint32_t)((8 * (uint64_t)bench_llc_bytes() + layer_bytes - 1) / layer_bytes);
	if (shape.n_layers < 2)
		shape.n_layers = 2;
	res->n_layers = shape.n_layers;
	ret = kvfpga_attn_shape_block_bytes(&shape, &block_bytes);
	if (ret)
		return ret;
	blocks_per_seq = (context + block_size - 1) / block_size;
	n_blocks = blocks_per_seq;
	arena_bytes = (size_t)(block_bytes * n_blocks);
	arena = bench_alloc_pages(arena_bytes);
	table = malloc(n_blocks * sizeof(int32_t));
	q = malloc(q_elems * sizeof(float));
	out = malloc(q_elems * sizeof(float));
	ref = malloc(q_elems * sizeof(float));
	kt = malloc((size_t)reps * sizeof(double));
	ht = malloc((size_t)reps * sizeof(double));
	pt = malloc((size_t)reps * sizeof(double));
	rt = malloc((size_t)reps * sizeof(double));
	runs = malloc(n_blocks * sizeof(*runs));
	if (!arena || !table || !q || !out || !ref || !kt || !ht || !pt || !rt || !runs) {
		ret = -ENOMEM;
		goto out;
	}
	huge_before = bench_anon_huge_bytes();
	/*
	 * Random finite K/V in the first slice (one layer of one block: its K
	 * tiles then its V tiles, docs/kvcache.md), copied to the others.
	 */
	slice_bytes = (uint64_t)2 * bc->n_kv_heads * block_size * bc->head_dim * esz;
	arena_layer_bytes = slice_bytes * n_blocks;
	for (uint64_t i = 0; i < slice_bytes / esz; i++) {
		float v = rnd(&seed);

		if (esz == 2) {
			uint16_t h = kvfpga_f32_to_f16(v);

			memcpy(arena + i * 2, &h, 2);
		} else {
			memcpy(arena + i * 4, &v, 4);
		}
	}
	for (uint64_t s = 1; s < (uint64_t)n_blocks * shape.n_layers; s++)
		memcpy(arena + s * slice_bytes, arena, (size_t)slice_bytes);
	res->arena_bytes = arena_bytes;
	res->arena_huge_bytes = bench_anon_huge_since(huge_before);
	/*
	 * A shuffled table, as blocks come from a free list after churn; or, with
	 * --table address, the ascending one a fresh KV cache hands a single
	 * sequence (a reference for what block placement is worth).
	 */
	for (uint32_t i = 0; i < n_blocks; i++)
		table[i] = (int32_t)i;
	for (uint32_t i = n_blocks - 1; i > 0 && !in_address_order; i--) {
		uint32_t j = (uint32_t)(rng_next(&seed) % (i + 1));
		int32_t t = table[i];

		table[i] = table[j];
		table[j] = t;
	}
	for (size_t i = 0; i < q_elems; i++)
		q[i] = rnd(&seed);

	ret = kvfpga_attn_create(engine, &shape, &attn);
	if (!ret)
		ret = kvfpga_kv_arena_register(engine, arena, arena_bytes, &reg);
	if (ret) {
		kvfpga_engine_last_error(engine, msg, sizeof(msg));
		fprintf(stderr, "attention_bench: %s: %s\n", bc->name, msg);
		goto out;
	}
	ret = kvfpga_attn_job_create(attn, &job);
	if (ret)
		goto out;
	tables[0] = table;
	memset(&b, 0, sizeof(b));
	b.n_seqs = 1;
	b.seq_lens = &context;
	b.block_tables = tables;
	b.q = q;
	b.out = out;
	b.scale = 1.0f / sqrtf((float)bc->head_dim);

	/* Correctness once, against the library's host reference. */
	ret = kvfpga_attn_decode_submit(job, reg, &b);
	if (!ret)
		ret = kvfpga_attn_job_wait(job);
	if (ret) {
		fprintf(stderr, "attention_bench: %s: %s\n", bc->name, kvfpga_attn_job_error(job));
		goto out;
	}
	b.out = ref;
	ret = kvfpga_attn_reference_decode(&shape, arena, arena_bytes, &b);
	b.out = out;
	if (ret)
		goto out;
	res->max_rel_error = 0;
	for (size_t i = 0; i < q_elems; i++) {
		double e = fabs((double)out[i] - ref[i]) / (fabs(ref[i]) + 1e-3);

		if (e > res->max_rel_error)
			res->max_rel_error = e;
	}

	res->kv_bytes = (double)layer_bytes;
	res->fma_per_byte = (double)(bc->n_q_heads / bc->n_kv_heads) / esz;
	res->kernel_best = res->host_best = res->pattern_best = 0;
	for (int r = -1; r < reps; r++) {
		double t0, t, hb;

		b.layer = (uint32_t)(r + 1) % shape.n_layers;
		t0 = bench_now();
		ret = kvfpga_attn_decode_submit(job, reg, &b);
		if (!ret)
			ret = kvfpga_attn_job_wait(job);
		t = bench_now() - t0;
		if (ret) {
			fprintf(stderr, "attention_bench: %s: %s\n", bc->name,
			        kvfpga_attn_job_error(job));
			goto out;
		}
		hb = bench_read_bw(bw, BW_THREADS);
		/* The 1 GiB pass above has evicted the layer: the pattern is read from memory. */
		for (uint32_t i = 0; i < n_blocks; i++) {
			runs[i].p = arena + b.layer * arena_layer_bytes +
			            (uint64_t)table[i] * slice_bytes;
			runs[i].bytes = (size_t)slice_bytes;
		}
		double pb = bench_read_runs_bw(runs, n_blocks, PATTERN_SIDE_BY_SIDE, BW_THREADS,
		                               &bw->sink);

		if (hb < 0 || pb < 0) {
			ret = -EINVAL;
			goto out;
		}
		if (r < 0)
			continue; /* warm-up */
		rt[r] = pb;
		if (pb > res->pattern_best)
			res->pattern_best = pb;
		kt[r] = res->kv_bytes / t;
		ht[r] = hb;
		pt[r] = kt[r] / hb;
		if (kt[r] > res->kernel_best) {
			res->kernel_best = kt[r];
			res->ms_best = t * 1e3;
		}
		if (hb > res->host_best)
			res->host_best = hb;
	}
	res->kernel_median = median(kt, reps);
	res->host_median = median(ht, reps);
	res->pair_median = median(pt, reps);
	res->pattern_median = median(rt, reps);
out:
	kvfpga_attn_job_destroy(job);
	kvfpga_kv_arena_release(reg);
	kvfpga_attn_destroy(attn);
	free(arena);
	free(table);
	free(q);
	free(out);
	free(ref);
	free(kt);
	free(ht);
	free(pt);
	free(rt);
	free(runs);
	return ret;
}

/* One line on the page size a buffer got (bench_alloc_pages). */
static void print_pages(const char *what, long long huge_bytes, size_t bytes)
{
	if (huge_bytes < 0)
		printf("%s: %s, page sizes unknown\n", what,
		       bench_want_huge_pages() ? "huge pages asked for" : "4 KiB pages");
	else
		printf("%s: %lld of %zu MiB in huge pages%s\n", what, huge_bytes >> 20, bytes >> 20,
		       bench_want_huge_pages() ? " (BENCH_PAGES=huge)" : "");
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: attention_bench [--json] [--context N] [--block-size N] [--reps N]\n"
	        "                       [--min-ratio X] [--table address|shuffled|both] [--quick]\n"
	        "  Decode attention throughput (KV bytes read per second) over host memory read\n"
	        "  bandwidth (%d threads) measured in the same run.\n"
	        "  --json         machine-readable output on stdout\n"
	        "  --context N    context tokens per sequence (default 16384)\n"
	        "  --block-size N tokens per KV block, a power of two up to 256 (default 16)\n"
	        "  --reps N       timed runs per case (default 7)\n"
	        "  --min-ratio X  exit 1 if any case's best ratio is below X\n"
	        "  --table T      block table order: address (ascending, as kvfpga_kvcache gives\n"
	        "                 a sequence its new blocks), shuffled (blocks scattered by\n"
	        "                 churn), or both (default: address first)\n"
	        "  --quick        2048-token context, 3 runs (a smoke test)\n"
	        "  KVFPGA_OPENCL_DEVICE selects the OpenCL device as for the library;\n"
	        "  BENCH_PAGES=huge puts the arena and the bandwidth buffer in transparent huge\n"
	        "  pages where the kernel gives them (default: 4 KiB pages, as card memory).\n",
	        BW_THREADS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "context", required_argument, NULL, 'c' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "reps", required_argument, NULL, 'r' },
		{ "min-ratio", required_argument, NULL, 'm' },
		{ "table", required_argument, NULL, 't' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kvfpga_engine_opts opts;
	struct kvfpga_engine *engine = NULL;
	enum { N_CASES = sizeof(cases) / sizeof(cases[0]) };
	static const char *const table_names[2] = { "address", "shuffled" };
	struct result res[2 * N_CASES];
	int first_table = 0, n_tables = 2;
	char msg[KVFPGA_ENGINE_MSG_MAX], dev[512];
	uint32_t context = 16384, block_size = 16;
	int reps = 7, json = 0, c, ret, below = 0;
	double min_ratio = 0;
	struct bench_membuf bw;
	size_t bw_bytes;
	const char *workers = bench_pin_cl_workers();
	const char *fma_isa = "none";
	double peak_fma; /* multiply-adds per second, BW_THREADS threads */

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'c':
			context = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'b':
			if (bench_parse_u32(optarg, 1, 256, &block_size) ||
			    (block_size & (block_size - 1))) {
				usage(stderr);
				return 2;
			}
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'm':
			min_ratio = atof(optarg);
			break;
		case 't':
			if (!strcmp(optarg, "address")) {
				first_table = 0;
				n_tables = 1;
			} else if (!strcmp(optarg, "shuffled")) {
				first_table = 1;
				n_tables = 1;
			} else if (!strcmp(optarg, "both")) {
				first_table = 0;
				n_tables = 2;
			} else {
				usage(stderr);
				return 2;
			}
			break;
		case 'q':
			context = 2048;
			reps = 3;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || context == 0 || context > (1u << 24) || reps < 1 || reps > 1000) {
		usage(stderr);
		return 2;
	}
	ret = kvfpga_engine_opts_init(&opts);
	if (!ret)
		ret = kvfpga_engine_create(&opts, &engine, msg, sizeof(msg));
	if (ret) {
		fprintf(stderr, "attention_bench: %s\n",
		        ret == -EINVAL && !engine ? "bad KVFPGA_OPENCL_* value" : msg);
		return 1;
	}
	kvfpga_engine_describe(engine, dev, sizeof(dev));
	/* The bandwidth buffer: 1 GiB or 8x the last-level cache, whichever is larger. */
	bw_bytes = 8 * bench_llc_bytes();
	if (bw_bytes < (1u << 30))
		bw_bytes = 1u << 30;
	if (bench_membuf_create(bw_bytes, &bw)) {
		fprintf(stderr, "attention_bench: out of memory\n");
		kvfpga_engine_destroy(engine);
		return 1;
	}
	/* Best of three: another tenant on a core halves a single run. */
	peak_fma = 0;
	for (int i = 0; i < 3; i++) {
		double f = bench_peak_flops(BW_THREADS, 0.1, &fma_isa) / 2;

		if (f > peak_fma)
			peak_fma = f;
	}
	if (peak_fma <= 0) {
		fprintf(stderr, "attention_bench: cannot measure the peak FMA rate\n");
		bench_membuf_free(&bw);
		kvfpga_engine_destroy(engine);
		return 1;
	}
	if (!json) {
		printf("decode attention, %u-token context, %u-token blocks, batch 1, one layer "
		       "per run; %s\n",
		       context, block_size, dev);
		printf("%s\n", workers);
		printf("host read bandwidth: %d threads over %zu MiB (LLC %zu MiB)\n", BW_THREADS,
		       bw.bytes >> 20, bench_llc_bytes() >> 20);
		print_pages("bandwidth buffer", bw.huge_bytes, bw.bytes);
		printf("peak multiply-add rate: %d threads, %s: %.1f G/s\n", BW_THREADS, fma_isa,
		       peak_fma / 1e9);
	}
	for (int k = 0; k < n_tables * N_CASES; k++) {
		int t = first_table + k / N_CASES, i = k % N_CASES;
		struct result *r = &res[k];
		double ratio, ratio_med;

		if (!json && i == 0) {
			printf("\nblock table %s\n",
			       t == 0 ? "in address order (a sequence's blocks from one append)"
			              : "shuffled (blocks scattered by churn)");
			printf("%-27s %7s %7s %8s %9s %8s %6s %6s %6s %9s %6s %8s %8s %8s\n",
			       "case", "KV MiB", "ms", "KV GB/s", "host GB/s", "med GB/s", "ratio",
			       "med", "pairs", "patt GB/s", "/patt", "fma use", "fma ceil",
			       "max err");
		}
		ret = run_case(engine, &cases[i], context, block_size, t == 0, reps, &bw, r);
		if (ret) {
			fprintf(stderr, "attention_bench: %s failed: %s\n", cases[i].name,
			        strerror(-ret));
			bench_membuf_free(&bw);
			kvfpga_engine_destroy(engine);
			return 1;
		}
		ratio = r->kernel_best / r->host_best;
		ratio_med = r->kernel_median / r->host_median;
		if (ratio < min_ratio)
			below = 1;
		if (!json)
			printf("%-27s %7.0f %7.2f %8.2f %9.2f %8.2f %6.3f %6.3f %6.3f %9.2f %6.3f "
			       "%8.3f %8.3f %8.1e\n",
			       cases[i].name, r->kv_bytes / (1 << 20), r->ms_best,
			       r->kernel_best / 1e9, r->host_best / 1e9, r->kernel_median / 1e9,
			       ratio, ratio_med, r->pair_median, r->pattern_best / 1e9,
			       r->kernel_best / r->pattern_best,
			       r->kernel_best * r->fma_per_byte / peak_fma,
			       peak_fma / r->fma_per_byte / r->host_best, r->max_rel_error);
	}
	if (json) {
		json_object *root = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(root, "benchmark",
		                       json_object_new_string("attention_decode"));
		json_object_object_add(root, "device", json_object_new_string(dev));
		json_object_object_add(root, "cl_workers", json_object_new_string(workers));
		json_object_object_add(root, "context", json_object_new_int64(context));
		json_object_object_add(root, "block_size", json_object_new_int64(block_size));
		json_object_object_add(root, "reps", json_object_new_int(reps));
		json_object_object_add(root, "bandwidth_threads", json_object_new_int(BW_THREADS));
		json_object_object_add(root, "bandwidth_buffer_bytes",
		                       json_object_new_int64((int64_t)bw.bytes));
		json_object_object_add(root, "huge_pages_requested",
		                       json_object_new_boolean(bench_want_huge_pages()));
		json_object_object_add(root, "bandwidth_buffer_huge_page_bytes",
		                       json_object_new_int64(bw.huge_bytes));
		json_object_object_add(root, "fma_isa", json_object_new_string(fma_isa));
		json_add_double(root, "peak_fma_per_s", peak_fma);
		for (int k = 0; k < n_tables * N_CASES; k++) {
			json_object *o = json_object_new_object();
			struct result *r = &res[k];
			int i = k % N_CASES;

			json_object_object_add(o, "case", json_object_new_string(cases[i].name));
			json_object_object_add(
			        o, "table",
			        json_object_new_string(table_names[first_table + k / N_CASES]));
			json_object_object_add(o, "head_dim",
			                       json_object_new_int((int)cases[i].head_dim));
			json_object_object_add(o, "n_q_heads",
			                       json_object_new_int((int)cases[i].n_q_heads));
			json_object_object_add(o, "n_kv_heads",
			                       json_object_new_int((int)cases[i].n_kv_heads));
			json_object_object_add(
			        o, "kv_dtype",
			        json_object_new_string(cases[i].dtype == KVFPGA_KV_F16 ? "f16"
			                                                               : "f32"));
			json_object_object_add(o, "arena_layers",
			                       json_object_new_int((int)r->n_layers));
			json_object_object_add(o, "arena_bytes",
			                       json_object_new_int64((int64_t)r->arena_bytes));
			json_object_object_add(o, "arena_huge_page_bytes",
			                       json_object_new_int64(r->arena_huge_bytes));
			json_add_double(o, "kv_bytes", r->kv_bytes);
			json_add_double(o, "ms_best", r->ms_best);
			json_add_double(o, "kv_bytes_per_s_best", r->kernel_best);
			json_add_double(o, "kv_bytes_per_s_median", r->kernel_median);
			json_add_double(o, "host_bytes_per_s_best", r->host_best);
			json_add_double(o, "host_bytes_per_s_median", r->host_median);
			json_add_double(o, "ratio_best", r->kernel_best / r->host_best);
			json_add_double(o, "ratio_median", r->kernel_median / r->host_median);
			json_add_double(o, "ratio_pairs_median", r->pair_median);
			json_add_double(o, "pattern_bytes_per_s_best", r->pattern_best);
			json_add_double(o, "pattern_bytes_per_s_median", r->pattern_median);
			json_add_double(o, "ratio_to_pattern_best",
			                r->kernel_best / r->pattern_best);
			json_add_double(o, "fma_per_kv_byte", r->fma_per_byte);
			json_add_double(o, "fma_fraction_of_peak_best",
			                r->kernel_best * r->fma_per_byte / peak_fma);
			json_add_double(o, "ratio_fma_ceiling",
			                peak_fma / r->fma_per_byte / r->host_best);
			json_add_double(o, "max_rel_error", r->max_rel_error);
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "cases", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("\nratio = KV bytes per second / host read bandwidth, best of %d runs "
		       "each;\n"
		       "med = median / median; pairs = median of (each run / the bandwidth run "
		       "after "
		       "it);\n"
		       "patt = the same bytes read in the kernel's order by a plain loop (best), "
		       "/patt = best KV GB/s / patt;\n"
		       "fma use = the best run's multiply-adds (one per K or V element per query "
		       "head sharing it)\n"
		       "  per second / the peak rate; fma ceil = the ratio at the peak rate\n"
		       "  and the best host GB/s\n",
		       reps);
		print_pages("the first case's KV arena", res[0].arena_huge_bytes,
		            res[0].arena_bytes);
	}
	bench_membuf_free(&bw);
	kvfpga_engine_destroy(engine);
	return below ? 1 : 0;
}
