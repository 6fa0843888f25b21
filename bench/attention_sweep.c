/* SPDX-License-Identifier: MIT */
/*
 * Attention on the engine (PoCL on the CPU here) over the matrix that
 * `make bench` reports, each run against a host ceiling measured right
 * after it:
 *   decode:  head_dim 64 and 128, GQA 1 and 4, f32 and f16 KV, contexts
 *            1k..32k, batch 1 and 8.  Figure: KV bytes the kernels must read
 *            (sum of contexts x n_kv_heads x head_dim x element size x 2)
 *            per second; baseline: host read bandwidth, 2 threads.
 *   prefill: the same shapes, chunks of 64..512 new tokens after a cached
 *            context (1024 tokens).  Figures: FLOP/s (4 x head_dim x
 *            n_q_heads per (query, key) pair, causal) against the host's
 *            peak FMA FLOP/s, and the bytes ratio (K/V bytes of the whole
 *            context, read at least once, per second) against host read
 *            bandwidth.
 * The shapes are one layer of a 1024-wide model (n_q_heads x head_dim =
 * 1024): 16 query heads of 64 or 8 of 128; GQA 4 has a quarter of the KV
 * heads.  The largest case (f32, GQA 1, 32k, batch 8) reads 2 GiB.
 *
 * K/V live in one arena registered once (f32 values, then refilled as f16
 * for the f16 cases), blocks of 16 tokens handed out in a shuffled order as
 * from a free list.  Successive runs of a case use disjoint block sets
 * whenever the arena holds 8x the last-level cache of them, and the
 * bandwidth pass in between (8x the LLC) evicts the cache anyway, so no
 * run finds K/V cached.  The first run of each case is a warm-up and is
 * checked against the library's host reference (decode: the first
 * sequence; prefill: chunks up to 128 tokens, where the reference is cheap).
 *
 *   attention_sweep [--json] [--quick] [--reps N] [--contexts LIST]
 *                   [--batches LIST] [--head-dims LIST] [--chunks LIST]
 *                   [--prefill-start N] [--no-decode] [--no-prefill]
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kvfpga/engine.h"

#define MODEL_WIDTH  1024u /* n_q_heads x head_dim */
#define BLOCK        16u
#define MAX_LIST     16
#define MAX_REPS     100
#define MAX_REL_ERR  1e-2 /* accumulation-order differences are ~1e-5 */
#define FLOPS_SECS   0.05 /* one peak-FLOP/s sample */
#define CHECK_CHUNKS 128u /* prefill chunks checked against the reference */

struct list {
	uint32_t v[MAX_LIST];
	int n;
};

struct opts {
	struct list contexts, batches, head_dims, gqas, chunks;
	uint32_t prefill_start;
	int reps, json, decode, prefill;
};

struct shape {
	uint32_t head_dim, n_q, n_kv, gqa;
	enum kvfpga_kv_dtype dtype;
};

struct rig {
	struct kvfpga_engine *engine;
	struct kvfpga_kv_arena *reg;
	unsigned char *arena;
	size_t arena_bytes;
	struct bench_membuf bw;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	uint64_t seed;
	int failed_checks;
	json_object *decode, *prefill;
	int json;
	FILE *table; /* stdout, or stderr when stdout carries the JSON */
};

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

static const char *dtype_name(enum kvfpga_kv_dtype t)
{
	return t == KVFPGA_KV_F16 ? "f16" : "f32";
}

static uint32_t elem_size(enum kvfpga_kv_dtype t)
{
	return t == KVFPGA_KV_F16 ? 2 : 4;
}

/* K/V bytes of one token of one layer. */
static uint64_t token_bytes(const struct shape *s)
{
	return (uint64_t)2 * s->n_kv * s->head_dim * elem_size(s->dtype);
}

/* Random finite values of the type in the first MiB, copied over the rest. */
static void fill_arena(struct rig *r, enum kvfpga_kv_dtype t)
{
	const size_t pattern = (size_t)1 << 20;

	for (size_t i = 0; i < pattern / 4; i++) {
		float v = rnd(&r->seed);

		if (t == KVFPGA_KV_F16) {
			uint16_t h[2] = { kvfpga_f32_to_f16(v), kvfpga_f32_to_f16(rnd(&r->seed)) };

			memcpy(r->arena + i * 4, h, 4);
		} else {
			memcpy(r->arena + i * 4, &v, 4);
		}
	}
	for (size_t off = pattern; off < r->arena_bytes; off += pattern)
		memcpy(r->arena + off, r->arena,
		       r->arena_bytes - off < pattern ? r->arena_bytes - off : pattern);
}

/*
 * n_sets disjoint sets of per_set shuffled block ids each, as many sets as
 * the arena holds up to the count that spans 8x the LLC (at least one).
 */
static int32_t *make_sets(struct rig *r, uint64_t block_bytes, uint64_t per_set, uint32_t *n_sets)
{
	uint64_t arena_blocks = r->arena_bytes / block_bytes, want, sets, n;
	int32_t *ids;

	if (per_set > arena_blocks)
		return NULL;
	want = (8 * bench_llc_bytes() + per_set * block_bytes - 1) / (per_set * block_bytes);
	sets = arena_blocks / per_set;
	if (sets > want)
		sets = want;
	if (sets < 1)
		sets = 1;
	n = sets * per_set;
	ids = malloc(n * sizeof(*ids));
	if (!ids)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		ids[i] = (int32_t)i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_next(&r->seed) % (i + 1);
		int32_t t = ids[i];

		ids[i] = ids[j];
		ids[j] = t;
	}
	*n_sets = (uint32_t)sets;
	return ids;
}

static double max_rel_error(const float *out, const float *ref, size_t n)
{
	double worst = 0;

	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)out[i] - ref[i]) / (fabs(ref[i]) + 1e-3);

		if (!(e <= worst)) /* NaN counts as worst */
			worst = isnan(e) ? INFINITY : e;
	}
	return worst;
}

static void add_shape(json_object *o, const struct shape *s)
{
	json_object_object_add(o, "head_dim", json_object_new_int((int)s->head_dim));
	json_object_object_add(o, "n_q_heads", json_object_new_int((int)s->n_q));
	json_object_object_add(o, "n_kv_heads", json_object_new_int((int)s->n_kv));
	json_object_object_add(o, "gqa", json_object_new_int((int)s->gqa));
	json_object_object_add(o, "kv_dtype", json_object_new_string(dtype_name(s->dtype)));
}

static void report_job_error(const struct shape *s, const char *what,
                             const struct kvfpga_attn_job *job, int ret)
{
	fprintf(stderr, "attention_sweep: h%u gqa%u %s %s: %s (%s)\n", s->head_dim, s->gqa,
	        dtype_name(s->dtype), what, kvfpga_attn_job_error(job), strerror(-ret));
}

/* ---- decode ---- */

static int decode_case(struct rig *r, struct kvfpga_attn_job *job, const struct shape *s,
                       uint32_t context, uint32_t batch, int reps)
{
	uint64_t block_bytes = token_bytes(s) * BLOCK, per_seq = (context + BLOCK - 1) / BLOCK;
	size_t q_elems = (size_t)batch * s->n_q * s->head_dim;
	struct kvfpga_attn_shape shape = { 1, s->n_q, s->n_kv, s->head_dim, BLOCK, s->dtype };
	const int32_t **tables = calloc(batch, sizeof(*tables));
	uint32_t *lens = calloc(batch, sizeof(*lens)), n_sets = 0;
	float *q = malloc(q_elems * sizeof(float)), *out = malloc(q_elems * sizeof(float));
	float *ref = malloc((size_t)s->n_q * s->head_dim * sizeof(float));
	double kv[MAX_REPS], bw[MAX_REPS], kv_bytes = (double)token_bytes(s) * context * batch;
	int32_t *ids = make_sets(r, block_bytes, per_seq * batch, &n_sets);
	struct kvfpga_decode_batch b;
	struct bench_figure fig;
	double err = 0;
	int ret = -ENOMEM;

	if (!tables || !lens || !q || !out || !ref || !ids)
		goto out;
	for (size_t i = 0; i < q_elems; i++)
		q[i] = rnd(&r->seed);
	memset(&b, 0, sizeof(b));
	b.n_seqs = batch;
	b.seq_lens = lens;
	b.block_tables = tables;
	b.q = q;
	b.out = out;
	b.scale = 1.0f / sqrtf((float)s->head_dim);
	for (uint32_t i = 0; i < batch; i++)
		lens[i] = context;

	for (int rep = -1; rep < reps; rep++) {
		uint32_t set = (uint32_t)(rep + 1) % n_sets;
		double t0, t;

		for (uint32_t i = 0; i < batch; i++)
			tables[i] = ids + ((uint64_t)set * batch + i) * per_seq;
		t0 = bench_now();
		ret = kvfpga_attn_decode_submit(job, r->reg, &b);
		if (!ret)
			ret = kvfpga_attn_job_wait(job);
		t = bench_now() - t0;
		if (ret) {
			report_job_error(s, "decode", job, ret);
			goto out;
		}
		if (rep < 0) {
			/* Warm-up, and the first sequence checked against the reference. */
			struct kvfpga_decode_batch one = b;

			one.n_seqs = 1;
			one.out = ref;
			ret = kvfpga_attn_reference_decode(&shape, r->arena, r->arena_bytes, &one);
			if (ret)
				goto out;
			err = max_rel_error(out, ref, (size_t)s->n_q * s->head_dim);
			if (!(err <= MAX_REL_ERR))
				r->failed_checks++;
		} else {
			kv[rep] = kv_bytes / t;
		}
		bw[rep < 0 ? 0 : rep] = bench_read_bw(&r->bw, 2);
	}
	ret = bench_figure_of(kv, bw, reps, &fig);
	if (ret)
		goto out;
	if (r->json) {
		json_object *o = json_object_new_object();

		add_shape(o, s);
		json_object_object_add(o, "context", json_object_new_int((int)context));
		json_object_object_add(o, "batch", json_object_new_int((int)batch));
		json_object_object_add(o, "kv_bytes", json_object_new_double(kv_bytes));
		json_object_object_add(o, "block_sets", json_object_new_int((int)n_sets));
		json_object_object_add(o, "max_rel_error", json_object_new_double(err));
		json_object_object_add(o, "kv_read",
		                       bench_figure_json(&fig, "bytes/s",
		                                         "host read bandwidth, 2 threads, "
		                                         "measured right after each run",
		                                         "bytes/s"));
		json_object_array_add(r->decode, o);
	}
	fprintf(r->table,
	        "decode  h%-3u gqa%u %s ctx %5u batch %u  %8.1f MiB  %7.2f GB/s  host %6.2f GB/s  "
	        "ratio %.3f [%.3f, %.3f]  err %.1e\n",
	        s->head_dim, s->gqa, dtype_name(s->dtype), context, batch, kv_bytes / (1 << 20),
	        fig.value.median / 1e9, fig.baseline.median / 1e9, fig.ratio.median, fig.ratio.min,
	        fig.ratio.max, err);
	fflush(r->table);
out:
	free(tables);
	free(lens);
	free(q);
	free(out);
	free(ref);
	free(ids);
	return ret;
}

/* ---- prefill ---- */

static int prefill_case(struct rig *r, struct kvfpga_attn_job *job, const struct shape *s,
                        uint32_t start, uint32_t chunk, int reps)
{
	uint64_t block_bytes = token_bytes(s) * BLOCK;
	uint64_t per_set = (start + chunk + BLOCK - 1) / BLOCK;
	size_t q_elems = (size_t)chunk * s->n_q * s->head_dim;
	struct kvfpga_attn_shape shape = { 1, s->n_q, s->n_kv, s->head_dim, BLOCK, s->dtype };
	float *q = malloc(q_elems * sizeof(float)), *out = malloc(q_elems * sizeof(float));
	float *ref = chunk <= CHECK_CHUNKS ? malloc(q_elems * sizeof(float)) : NULL;
	uint32_t n_sets = 0;
	int32_t *ids = make_sets(r, block_bytes, per_set, &n_sets);
	/* Causal: the token at start + i meets start + i + 1 keys. */
	double pairs = (double)chunk * start + (double)chunk * (chunk + 1) / 2;
	double flop = 4.0 * s->head_dim * s->n_q * pairs;
	double kv_bytes = (double)token_bytes(s) * (start + chunk);
	double fl[MAX_REPS], peak[MAX_REPS], by[MAX_REPS], bw[MAX_REPS], err = -1;
	struct kvfpga_prefill_chunk c;
	struct bench_figure ffig, bfig;
	int ret = -ENOMEM;

	if (!q || !out || (chunk <= CHECK_CHUNKS && !ref) || !ids)
		goto out;
	for (size_t i = 0; i < q_elems; i++)
		q[i] = rnd(&r->seed);
	memset(&c, 0, sizeof(c));
	c.start_pos = start;
	c.n_tokens = chunk;
	c.q = q;
	c.out = out;
	c.scale = 1.0f / sqrtf((float)s->head_dim);

	for (int rep = -1; rep < reps; rep++) {
		uint32_t set = (uint32_t)(rep + 1) % n_sets;
		double t0, t;
		int i = rep < 0 ? 0 : rep;

		c.block_table = ids + (uint64_t)set * per_set;
		t0 = bench_now();
		ret = kvfpga_attn_prefill_submit(job, r->reg, &c);
		if (!ret)
			ret = kvfpga_attn_job_wait(job);
		t = bench_now() - t0;
		if (ret) {
			report_job_error(s, "prefill", job, ret);
			goto out;
		}
		if (rep < 0 && ref) {
			struct kvfpga_prefill_chunk one = c;

			one.out = ref;
			ret = kvfpga_attn_reference_prefill(&shape, r->arena, r->arena_bytes, &one);
			if (ret)
				goto out;
			err = max_rel_error(out, ref, q_elems);
			if (!(err <= MAX_REL_ERR))
				r->failed_checks++;
		}
		fl[i] = flop / t;
		by[i] = kv_bytes / t;
		bw[i] = bench_read_bw(&r->bw, 2);
		peak[i] = bench_peak_flops(2, FLOPS_SECS, NULL);
	}
	ret = bench_figure_of(fl, peak, reps, &ffig);
	if (!ret)
		ret = bench_figure_of(by, bw, reps, &bfig);
	if (ret)
		goto out;
	if (r->json) {
		json_object *o = json_object_new_object();

		add_shape(o, s);
		json_object_object_add(o, "start_pos", json_object_new_int((int)start));
		json_object_object_add(o, "chunk", json_object_new_int((int)chunk));
		json_object_object_add(o, "flop", json_object_new_double(flop));
		json_object_object_add(o, "kv_bytes", json_object_new_double(kv_bytes));
		json_object_object_add(o, "block_sets", json_object_new_int((int)n_sets));
		if (err >= 0)
			json_object_object_add(o, "max_rel_error", json_object_new_double(err));
		json_object_object_add(o, "flops",
		                       bench_figure_json(&ffig, "FLOP/s",
		                                         "host peak FMA FLOP/s, 2 threads, "
		                                         "measured right after each run",
		                                         "FLOP/s"));
		json_object_object_add(o, "kv_read",
		                       bench_figure_json(&bfig, "bytes/s",
		                                         "host read bandwidth, 2 threads, "
		                                         "measured right after each run",
		                                         "bytes/s"));
		json_object_array_add(r->prefill, o);
	}
	fprintf(r->table,
	        "prefill h%-3u gqa%u %s start %u chunk %3u  %7.2f GFLOP/s  peak %6.1f  ratio %.3f "
	        "[%.3f, %.3f]  bytes ratio %.3f\n",
	        s->head_dim, s->gqa, dtype_name(s->dtype), start, chunk, ffig.value.median / 1e9,
	        ffig.baseline.median / 1e9, ffig.ratio.median, ffig.ratio.min, ffig.ratio.max,
	        bfig.ratio.median);
	fflush(r->table);
out:
	free(q);
	free(out);
	free(ref);
	free(ids);
	return ret;
}

static int run_shape(struct rig *r, const struct opts *o, const struct shape *s)
{
	struct kvfpga_attn_shape shape = { 1, s->n_q, s->n_kv, s->head_dim, BLOCK, s->dtype };
	struct kvfpga_attn *attn = NULL;
	struct kvfpga_attn_job *job = NULL;
	int ret = kvfpga_attn_create(r->engine, &shape, &attn);

	if (ret) {
		kvfpga_engine_last_error(r->engine, r->msg, sizeof(r->msg));
		fprintf(stderr, "attention_sweep: h%u gqa%u %s: %s\n", s->head_dim, s->gqa,
		        dtype_name(s->dtype), r->msg);
		return ret;
	}
	ret = kvfpga_attn_job_create(attn, &job);
	for (int i = 0; o->decode && !ret && i < o->batches.n; i++)
		for (int j = 0; !ret && j < o->contexts.n; j++)
			ret = decode_case(r, job, s, o->contexts.v[j], o->batches.v[i], o->reps);
	for (int j = 0; o->prefill && !ret && j < o->chunks.n; j++)
		ret = prefill_case(r, job, s, o->prefill_start, o->chunks.v[j], o->reps);
	kvfpga_attn_job_destroy(job);
	kvfpga_attn_destroy(attn);
	return ret;
}

/* ---- options ---- */

static int parse_list(const char *text, struct list *l, uint32_t max)
{
	char *end;

	l->n = 0;
	while (*text) {
		unsigned long v = strtoul(text, &end, 10);

		if (end == text || v == 0 || v > max || l->n == MAX_LIST)
			return -EINVAL;
		l->v[l->n++] = (uint32_t)v;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		text = end;
	}
	return l->n ? 0 : -EINVAL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: attention_sweep [--json] [--quick] [--reps N] [--contexts LIST]\n"
	           "                       [--batches LIST] [--head-dims LIST] [--gqa LIST]\n"
	           "                       [--chunks LIST] [--prefill-start N] [--no-decode]\n"
	           "                       [--no-prefill]\n"
	           "  Decode and prefill attention on the engine against host ceilings measured\n"
	           "  right after each run (read bandwidth, peak FMA FLOP/s; 2 threads).\n"
	           "  LISTs are comma-separated.  Defaults: contexts 1024,...,32768; batches 1,8;\n"
	           "  head dims 64,128; gqa 1,4; chunks 64,128,256,512 after 1024 tokens; 5 reps.\n"
	           "  --quick  contexts 1024,8192, chunks 64,512, 3 reps\n"
	           "  KVFPGA_OPENCL_DEVICE selects the OpenCL device as for the library.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "reps", required_argument, NULL, 'r' },
		{ "contexts", required_argument, NULL, 'c' },
		{ "batches", required_argument, NULL, 'b' },
		{ "head-dims", required_argument, NULL, 'd' },
		{ "gqa", required_argument, NULL, 'g' },
		{ "chunks", required_argument, NULL, 'k' },
		{ "prefill-start", required_argument, NULL, 's' },
		{ "no-decode", no_argument, NULL, 'D' },
		{ "no-prefill", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c, bad = 0;

	memset(o, 0, sizeof(*o));
	parse_list("1024,2048,4096,8192,16384,32768", &o->contexts, 1u << 20);
	parse_list("1,8", &o->batches, 64);
	parse_list("64,128", &o->head_dims, 512);
	parse_list("1,4", &o->gqas, 64);
	parse_list("64,128,256,512", &o->chunks, 4096);
	o->prefill_start = 1024;
	o->reps = 5;
	o->decode = o->prefill = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = 1;
			break;
		case 'q':
			parse_list("1024,8192", &o->contexts, 1u << 20);
			parse_list("64,512", &o->chunks, 4096);
			o->reps = 3;
			break;
		case 'r':
			o->reps = (int)strtol(optarg, &end, 10);
			bad |= *end || o->reps < 1 || o->reps > MAX_REPS;
			break;
		case 'c':
			bad |= parse_list(optarg, &o->contexts, 1u << 20) != 0;
			break;
		case 'b':
			bad |= parse_list(optarg, &o->batches, 64) != 0;
			break;
		case 'd':
			bad |= parse_list(optarg, &o->head_dims, 512) != 0;
			break;
		case 'g':
			bad |= parse_list(optarg, &o->gqas, 64) != 0;
			break;
		case 'k':
			bad |= parse_list(optarg, &o->chunks, 4096) != 0;
			break;
		case 's':
			o->prefill_start = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || o->prefill_start > (1u << 20);
			break;
		case 'D':
			o->decode = 0;
			break;
		case 'P':
			o->prefill = 0;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	for (int i = 0; i < o->head_dims.n; i++)
		bad |= MODEL_WIDTH % o->head_dims.v[i] || o->head_dims.v[i] % 4;
	for (int i = 0; i < o->head_dims.n; i++)
		for (int j = 0; j < o->gqas.n; j++)
			bad |= (MODEL_WIDTH / o->head_dims.v[i]) % o->gqas.v[j] != 0;
	return bad || optind != argc ? -EINVAL : 0;
}

/* The arena: the largest case's blocks, and at least 8x the LLC. */
static size_t arena_size(const struct opts *o)
{
	uint64_t most = 8 * (uint64_t)bench_llc_bytes();

	for (int i = 0; i < o->head_dims.n; i++)
		for (int j = 0; j < o->gqas.n; j++) {
			struct shape s = { o->head_dims.v[i], MODEL_WIDTH / o->head_dims.v[i], 0,
				           o->gqas.v[j], KVFPGA_KV_F32 };
			uint64_t per_token;

			s.n_kv = s.n_q / s.gqa;
			per_token = token_bytes(&s);
			for (int b = 0; o->decode && b < o->batches.n; b++)
				for (int c = 0; c < o->contexts.n; c++) {
					uint64_t blocks = (o->contexts.v[c] + BLOCK - 1) / BLOCK;
					uint64_t need =
					        blocks * o->batches.v[b] * BLOCK * per_token;

					if (need > most)
						most = need;
				}
			if (o->prefill) {
				uint64_t blocks = 0, need;

				for (int c = 0; c < o->chunks.n; c++)
					if (o->chunks.v[c] > blocks)
						blocks = o->chunks.v[c];
				blocks = (o->prefill_start + blocks + BLOCK - 1) / BLOCK;
				need = blocks * BLOCK * per_token;
				if (need > most)
					most = need;
			}
		}
	return (size_t)((most + 4095) & ~(uint64_t)4095);
}

int main(int argc, char **argv)
{
	static const enum kvfpga_kv_dtype dtypes[] = { KVFPGA_KV_F32, KVFPGA_KV_F16 };
	struct kvfpga_engine_opts eopts;
	struct opts o;
	struct rig r;
	char dev[512];
	int ret;
	const char *workers = bench_pin_cl_workers();

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	memset(&r, 0, sizeof(r));
	r.seed = 42;
	r.json = o.json;
	r.table = o.json ? stderr : stdout;
	ret = kvfpga_engine_opts_init(&eopts);
	if (!ret)
		ret = kvfpga_engine_create(&eopts, &r.engine, r.msg, sizeof(r.msg));
	if (ret) {
		fprintf(stderr, "attention_sweep: %s\n",
		        ret == -EINVAL && !r.engine ? "bad KVFPGA_OPENCL_* value" : r.msg);
		return 1;
	}
	kvfpga_engine_describe(r.engine, dev, sizeof(dev));
	fprintf(r.table, "attention_sweep: %s; %s\n", dev, workers);
	r.arena_bytes = arena_size(&o);
	r.arena = bench_alloc_pages(r.arena_bytes);
	ret = r.arena ? bench_membuf_create(8 * bench_llc_bytes(), &r.bw) : -ENOMEM;
	if (ret) {
		fprintf(stderr, "attention_sweep: cannot allocate %zu MiB\n", r.arena_bytes >> 20);
		goto out;
	}
	ret = kvfpga_kv_arena_register(r.engine, r.arena, r.arena_bytes, &r.reg);
	if (ret) {
		kvfpga_engine_last_error(r.engine, r.msg, sizeof(r.msg));
		fprintf(stderr, "attention_sweep: arena of %zu MiB: %s\n", r.arena_bytes >> 20,
		        r.msg);
		goto out;
	}
	r.decode = json_object_new_array();
	r.prefill = json_object_new_array();
	for (size_t t = 0; !ret && t < sizeof(dtypes) / sizeof(dtypes[0]); t++) {
		fill_arena(&r, dtypes[t]);
		for (int i = 0; !ret && i < o.head_dims.n; i++)
			for (int j = 0; !ret && j < o.gqas.n; j++) {
				struct shape s = { o.head_dims.v[i], MODEL_WIDTH / o.head_dims.v[i],
					           0, o.gqas.v[j], dtypes[t] };

				s.n_kv = s.n_q / s.gqa;
				ret = run_shape(&r, &o, &s);
			}
	}
	if (!ret && o.json) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "benchmark",
		                       json_object_new_string("attention_sweep"));
		json_object_object_add(root, "device", json_object_new_string(dev));
		json_object_object_add(root, "cl_workers", json_object_new_string(workers));
		json_object_object_add(root, "reps", json_object_new_int(o.reps));
		json_object_object_add(root, "block_size", json_object_new_int(BLOCK));
		json_object_object_add(root, "model_width", json_object_new_int(MODEL_WIDTH));
		json_object_object_add(root, "arena_bytes",
		                       json_object_new_int64((int64_t)r.arena_bytes));
		json_object_object_add(root, "bandwidth_buffer_bytes",
		                       json_object_new_int64((int64_t)r.bw.bytes));
		json_object_object_add(root, "failed_checks", json_object_new_int(r.failed_checks));
		json_object_object_add(root, "decode", r.decode);
		json_object_object_add(root, "prefill", r.prefill);
		r.decode = r.prefill = NULL;
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	}
	if (!ret && r.failed_checks) {
		fprintf(stderr,
		        "attention_sweep: %d case(s) differ from the host reference by more "
		        "than %g\n",
		        r.failed_checks, MAX_REL_ERR);
		ret = -EBADMSG;
	}
out:
	json_object_put(r.decode);
	json_object_put(r.prefill);
	kvfpga_kv_arena_release(r.reg);
	bench_membuf_free(&r.bw);
	free(r.arena);
	kvfpga_engine_destroy(r.engine);
	return ret ? 1 : 0;
}
