/* SPDX-License-Identifier: MIT */
/*
 * Attention over a KV cache filled through the cache's own API: the kernels
 * must read exactly the layout libkvfpga's kvcache writes (block tables,
 * layer-major slices of [K/V][head][tile], f16 rounding, int8 values and their
 * per-block scales, copy-on-write blocks of forks), so this test never
 * touches the arena itself.  K/V rows are written with kvfpga_kvseq_write,
 * read back with kvfpga_kvseq_read (the values the cache really holds), and
 * a double-precision reference over those values is compared with
 * kvfpga_attn_decode_submit and kvfpga_attn_prefill_submit, every element.
 *
 * The device is whatever kvfpga_device_open picks (KVFPGA_DEVICE), so the
 * same program runs on the host emulation and, in the VM, on the stand-in
 * card's memory.  KVFPGA_TEST_SEED replays a run; KVFPGA_TEST_ATTN_CONFIGS=a,b
 * runs the decode and prefill cases on those entries of cfgs[] only (each is
 * a program build, slow under QEMU TCG); an unknown name fails the run.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test_seed.h"
#include "helpers/test_util.h"
#include "kvfpga/engine.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

static uint64_t g_seed;
static struct kvfpga_engine *g_engine;
static char g_engine_msg[KVFPGA_ENGINE_MSG_MAX];

struct cfg {
	const char *name;
	uint32_t n_layers, n_q_heads, n_kv_heads, head_dim, block_size;
	enum kvfpga_kvcache_dtype dtype;
};

static const struct cfg cfgs[] = {
	{ "h128-g4-i8-b16", 2, 8, 2, 128, 16, KVFPGA_KVCACHE_I8 },
	{ "h64-g1-i8-b16", 2, 4, 4, 64, 16, KVFPGA_KVCACHE_I8 },
	{ "h80-g2-i8-b32", 1, 4, 2, 80, 32, KVFPGA_KVCACHE_I8 },
	{ "h96-g8-i8-b8", 1, 8, 1, 96, 8, KVFPGA_KVCACHE_I8 },
	{ "h128-g4-f16-b16", 2, 8, 2, 128, 16, KVFPGA_KVCACHE_F16 },
	{ "h64-g1-f32-b16", 2, 4, 4, 64, 16, KVFPGA_KVCACHE_F32 },
};

#define N_CFGS (sizeof(cfgs) / sizeof(cfgs[0]))

/* The configurations the loop cases run over (KVFPGA_TEST_ATTN_CONFIGS). */
static const struct cfg *g_sel[N_CFGS];
static int g_n_sel;
/* Sequence lengths: 1, a block minus one, a block, a block plus one, longer. */
#define N_SEQS 5

struct fx {
	const struct cfg *c;
	struct kvfpga_device *dev;
	struct kvfpga_kvcache *kc;
	struct kvfpga_kv_arena *arena;
	struct kvfpga_attn *attn;
	struct kvfpga_attn_job *job;
	struct kvfpga_attn_shape shape;
	struct kvfpga_kvseq *seqs[N_SEQS + 1]; /* the last one is a fork */
	uint32_t lens[N_SEQS + 1];
	uint64_t rng;
};

static float frand(uint64_t *rng)
{
	return (float)((double)(test_rand(rng) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static enum kvfpga_kv_dtype engine_dtype(enum kvfpga_kvcache_dtype d)
{
	return d == KVFPGA_KVCACHE_I8    ? KVFPGA_KV_I8
	       : d == KVFPGA_KVCACHE_F16 ? KVFPGA_KV_F16
	                                 : KVFPGA_KV_F32;
}

/* Random K/V for positions [from, to) of every layer; amplitude varies per head. */
static void fill(struct fx *f, struct kvfpga_kvseq *seq, uint32_t from, uint32_t to)
{
	uint32_t row = f->c->n_kv_heads * f->c->head_dim;
	float *k = malloc(row * sizeof(float)), *v = malloc(row * sizeof(float));

	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(v);
	for (uint32_t l = 0; l < f->c->n_layers; l++) {
		for (uint32_t p = from; p < to; p++) {
			for (uint32_t i = 0; i < row; i++) {
				float amp = 0.25f + (float)(i / f->c->head_dim);

				k[i] = amp * frand(&f->rng);
				v[i] = amp * frand(&f->rng);
			}
			ck_assert_int_eq(kvfpga_kvseq_write(seq, l, p, k, v), 0);
		}
	}
	free(k);
	free(v);
}

static void fx_open(struct fx *f, const struct cfg *c, uint32_t salt)
{
	struct kvfpga_open_opts oo;
	struct kvfpga_kvcache_config kcfg;
	struct kvfpga_kvcache_arena ar;
	const uint32_t lens[N_SEQS] = { 1, c->block_size - 1, c->block_size, c->block_size + 1,
		                        29 * c->block_size + 5 };
	int ret;

	memset(f, 0, sizeof(*f));
	f->c = c;
	f->rng = g_seed ^ (0x9e3779b97f4a7c15ull * (salt + 1));
	ck_assert_msg(g_engine, "no OpenCL engine: %s", g_engine_msg);
	ck_assert_int_eq(kvfpga_open_opts_init(&oo), 0);
	ck_assert_int_eq(kvfpga_device_open(&oo, &f->dev), 0);
	ck_assert_int_eq(kvfpga_kvcache_config_init(&kcfg), 0);
	kcfg.n_layers = c->n_layers;
	kcfg.n_kv_heads = c->n_kv_heads;
	kcfg.head_dim = c->head_dim;
	kcfg.block_size = c->block_size;
	kcfg.dtype = c->dtype;
	kcfg.n_blocks = 64;
	kcfg.flags = KVFPGA_KVCACHE_NO_PREFIX_CACHING;
	ck_assert_int_eq(kvfpga_kvcache_create(f->dev, &kcfg, &f->kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(f->kc, &ar), 0);

	f->shape.n_layers = c->n_layers;
	f->shape.n_q_heads = c->n_q_heads;
	f->shape.n_kv_heads = c->n_kv_heads;
	f->shape.head_dim = c->head_dim;
	f->shape.block_size = c->block_size;
	f->shape.kv_dtype = engine_dtype(c->dtype);
	{
		uint64_t bb;

		/* The engine and the cache must agree on the block size in bytes. */
		ck_assert_int_eq(kvfpga_attn_shape_block_bytes(&f->shape, &bb), 0);
		ck_assert_uint_eq(bb, ar.block_bytes);
	}
	ret = kvfpga_attn_create(g_engine, &f->shape, &f->attn);
	if (ret) {
		char msg[KVFPGA_ENGINE_MSG_MAX];

		kvfpga_engine_last_error(g_engine, msg, sizeof(msg));
		ck_abort_msg("%s: attn_create %d: %s", c->name, ret, msg);
	}
	ck_assert_int_eq(kvfpga_kv_arena_register(g_engine, ar.base, ar.arena_bytes, &f->arena), 0);
	ck_assert_int_eq(kvfpga_attn_job_create(f->attn, &f->job), 0);

	for (uint32_t s = 0; s < N_SEQS; s++) {
		int32_t *tok = calloc(lens[s], sizeof(int32_t));

		ck_assert_ptr_nonnull(tok);
		ck_assert_int_eq(kvfpga_kvseq_create(f->kc, 0, &f->seqs[s]), 0);
		ck_assert_int_eq(kvfpga_kvseq_append(f->seqs[s], tok, lens[s], NULL), 0);
		fill(f, f->seqs[s], 0, lens[s]);
		f->lens[s] = lens[s];
		free(tok);
	}
	/*
	 * A fork of the longest sequence, cut back into a block and rewritten
	 * from there: it shares the leading blocks and has its own copy of the
	 * block it rewrote (copy-on-write).
	 */
	{
		uint32_t src = N_SEQS - 1, keep = 7 * c->block_size + 3,
		         len = keep + 2 * c->block_size;
		int32_t *tok = calloc(len, sizeof(int32_t));

		ck_assert_ptr_nonnull(tok);
		ck_assert_int_eq(kvfpga_kvseq_fork(f->seqs[src], &f->seqs[N_SEQS]), 0);
		ck_assert_int_eq(kvfpga_kvseq_truncate(f->seqs[N_SEQS], keep), 0);
		ck_assert_int_eq(kvfpga_kvseq_append(f->seqs[N_SEQS], tok, len - keep, NULL), 0);
		fill(f, f->seqs[N_SEQS], keep, len);
		f->lens[N_SEQS] = len;
		free(tok);
	}
}

static void fx_close(struct fx *f)
{
	kvfpga_attn_job_destroy(f->job);
	kvfpga_kv_arena_release(f->arena);
	kvfpga_attn_destroy(f->attn);
	for (uint32_t s = 0; s <= N_SEQS; s++)
		kvfpga_kvseq_free(f->seqs[s]);
	ck_assert_int_eq(kvfpga_kvcache_verify(f->kc), 0);
	kvfpga_kvcache_destroy(f->kc);
	kvfpga_device_close(f->dev);
}

/*
 * Reference: query row q (already the head's row) over positions [0, n) of
 * seq, from the values the cache returns.  Also the scale of the terms,
 * sum_t p_t |v_t[d]|, and of the score rounding, for the tolerance.
 */
static void reference(struct fx *f, struct kvfpga_kvseq *seq, uint32_t layer, uint32_t q_head,
                      uint32_t n, const float *q, float scale, double *out, double *mag,
                      double *cond)
{
	uint32_t hd = f->c->head_dim, kvh = q_head / (f->c->n_q_heads / f->c->n_kv_heads);
	uint32_t row = f->c->n_kv_heads * hd;
	float *k = malloc(row * sizeof(float)), *v = malloc(row * sizeof(float));
	double *s = malloc(n * sizeof(double)), *sabs = malloc(n * sizeof(double)), m = -INFINITY,
	       l = 0;

	ck_assert(k && v && s && sabs);
	for (uint32_t p = 0; p < n; p++) {
		double dot = 0, adot = 0;

		ck_assert_int_eq(kvfpga_kvseq_read(seq, layer, p, k, NULL), 0);
		for (uint32_t d = 0; d < hd; d++) {
			dot += (double)q[d] * k[kvh * hd + d];
			adot += fabs((double)q[d] * k[kvh * hd + d]);
		}
		s[p] = dot * scale;
		sabs[p] = adot * scale;
		if (s[p] > m)
			m = s[p];
	}
	for (uint32_t p = 0; p < n; p++)
		l += exp(s[p] - m);
	for (uint32_t d = 0; d < hd; d++)
		out[d] = mag[d] = cond[d] = 0;
	for (uint32_t p = 0; p < n; p++) {
		double w = exp(s[p] - m) / l;

		ck_assert_int_eq(kvfpga_kvseq_read(seq, layer, p, NULL, v), 0);
		for (uint32_t d = 0; d < hd; d++)
			out[d] += w * v[kvh * hd + d];
	}
	for (uint32_t p = 0; p < n; p++) {
		double w = exp(s[p] - m) / l;

		ck_assert_int_eq(kvfpga_kvseq_read(seq, layer, p, NULL, v), 0);
		for (uint32_t d = 0; d < hd; d++) {
			mag[d] += w * fabs(v[kvh * hd + d]);
			cond[d] += w * sabs[p] * fabs(v[kvh * hd + d] - out[d]);
		}
	}
	free(k);
	free(v);
	free(s);
	free(sabs);
}

/* The same bound as test_attention: 1e-5 of the terms, plus score rounding. */
static void check_row(struct fx *f, const char *what, uint32_t s, uint32_t h, const float *got,
                      const double *ref, const double *mag, const double *cond)
{
	for (uint32_t d = 0; d < f->c->head_dim; d++) {
		double tol = 1e-5 * mag[d] + 2e-7 * cond[d] + 1e-30;

		ck_assert_msg(
		        isfinite(got[d]) && fabs(got[d] - ref[d]) <= tol,
		        "%s %s seq %u head %u dim %u: got %.9g want %.9g (tol %.3g), seed %llu",
		        f->c->name, what, s, h, d, got[d], ref[d], tol, (unsigned long long)g_seed);
	}
}

START_TEST(test_decode_over_kvcache)
{
	struct fx f;
	const struct cfg *c = g_sel[_i];
	uint32_t nq = c->n_q_heads, hd = c->head_dim, held;
	int32_t *tables[N_SEQS + 1];
	float *q, *out;
	double *ref = malloc(hd * sizeof(double)), *mag = malloc(hd * sizeof(double)),
	       *cond = malloc(hd * sizeof(double));

	fx_open(&f, c, (uint32_t)_i);
	q = malloc((N_SEQS + 1) * nq * hd * sizeof(float));
	out = malloc((N_SEQS + 1) * nq * hd * sizeof(float));
	ck_assert(q && out && ref && mag && cond);
	for (uint32_t s = 0; s <= N_SEQS; s++) {
		uint32_t nb = (f.lens[s] + c->block_size - 1) / c->block_size;

		tables[s] = malloc(nb * sizeof(int32_t));
		ck_assert_ptr_nonnull(tables[s]);
		ck_assert_int_eq(kvfpga_kvseq_block_table(f.seqs[s], tables[s], nb, &held), 0);
		ck_assert_uint_eq(held, nb);
	}
	for (uint32_t i = 0; i < (N_SEQS + 1) * nq * hd; i++)
		q[i] = frand(&f.rng);
	for (uint32_t layer = 0; layer < c->n_layers; layer++) {
		struct kvfpga_decode_batch b;

		memset(&b, 0, sizeof(b));
		b.layer = layer;
		b.n_seqs = N_SEQS + 1;
		b.seq_lens = f.lens;
		b.block_tables = (const int32_t *const *)tables;
		b.q = q;
		b.out = out;
		b.scale = 1.0f / sqrtf((float)hd);
		for (uint32_t i = 0; i < (N_SEQS + 1) * nq * hd; i++)
			out[i] = NAN;
		ck_assert_msg(kvfpga_attn_decode_submit(f.job, f.arena, &b) == 0, "%s",
		              kvfpga_attn_job_error(f.job));
		ck_assert_msg(kvfpga_attn_job_wait(f.job) == 0, "%s", kvfpga_attn_job_error(f.job));
		for (uint32_t s = 0; s <= N_SEQS; s++) {
			for (uint32_t h = 0; h < nq; h++) {
				size_t row = ((size_t)s * nq + h) * hd;

				reference(&f, f.seqs[s], layer, h, f.lens[s], q + row, b.scale, ref,
				          mag, cond);
				check_row(&f, "decode", s, h, out + row, ref, mag, cond);
			}
		}
	}
	for (uint32_t s = 0; s <= N_SEQS; s++)
		free(tables[s]);
	free(q);
	free(out);
	free(ref);
	free(mag);
	free(cond);
	fx_close(&f);
}
END_TEST

/* Prefill of the fork's tail (starts mid-block) equals the reference per token. */
START_TEST(test_prefill_over_kvcache)
{
	struct fx f;
	const struct cfg *c = g_sel[_i];
	uint32_t nq = c->n_q_heads, hd = c->head_dim, s = N_SEQS, nb, start, n, held;
	int32_t *table;
	float *q, *out;
	double *ref = malloc(hd * sizeof(double)), *mag = malloc(hd * sizeof(double)),
	       *cond = malloc(hd * sizeof(double));
	struct kvfpga_prefill_chunk ch;

	fx_open(&f, c, 100 + (uint32_t)_i);
	nb = (f.lens[s] + c->block_size - 1) / c->block_size;
	table = malloc(nb * sizeof(int32_t));
	ck_assert_int_eq(kvfpga_kvseq_block_table(f.seqs[s], table, nb, &held), 0);
	ck_assert_uint_eq(held, nb);
	start = 7 * c->block_size + 3;
	n = f.lens[s] - start;
	q = malloc((size_t)n * nq * hd * sizeof(float));
	out = malloc((size_t)n * nq * hd * sizeof(float));
	ck_assert(q && out && ref && mag && cond);
	for (uint32_t i = 0; i < n * nq * hd; i++) {
		q[i] = frand(&f.rng);
		out[i] = NAN;
	}
	memset(&ch, 0, sizeof(ch));
	ch.layer = c->n_layers - 1;
	ch.start_pos = start;
	ch.n_tokens = n;
	ch.block_table = table;
	ch.q = q;
	ch.out = out;
	ch.scale = 1.0f / sqrtf((float)hd);
	ck_assert_msg(kvfpga_attn_prefill_submit(f.job, f.arena, &ch) == 0, "%s",
	              kvfpga_attn_job_error(f.job));
	ck_assert_msg(kvfpga_attn_job_wait(f.job) == 0, "%s", kvfpga_attn_job_error(f.job));
	for (uint32_t t = 0; t < n; t++) {
		for (uint32_t h = 0; h < nq; h++) {
			size_t row = ((size_t)t * nq + h) * hd;

			reference(&f, f.seqs[s], ch.layer, h, start + t + 1, q + row, ch.scale, ref,
			          mag, cond);
			check_row(&f, "prefill", t, h, out + row, ref, mag, cond);
		}
	}
	free(table);
	free(q);
	free(out);
	free(ref);
	free(mag);
	free(cond);
	fx_close(&f);
}
END_TEST

/* int8 with a scale of zero (a head written with zeros only) gives finite output. */
START_TEST(test_i8_zero_scale)
{
	struct fx f;
	const struct cfg *c = &cfgs[0];
	uint32_t row = c->n_kv_heads * c->head_dim, nq = c->n_q_heads, hd = c->head_dim;
	float *zero = calloc(row, sizeof(float)), *q = malloc(nq * hd * sizeof(float)),
	      *out = malloc(nq * hd * sizeof(float));
	struct kvfpga_kvseq *seq;
	int32_t tok[3] = { 0, 0, 0 }, table[1];
	uint32_t len = 3, held;
	struct kvfpga_decode_batch b;
	const int32_t *tables[1] = { table };

	fx_open(&f, c, 200);
	ck_assert(zero && q && out);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &seq), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(seq, tok, len, NULL), 0);
	for (uint32_t l = 0; l < c->n_layers; l++)
		for (uint32_t p = 0; p < len; p++)
			ck_assert_int_eq(kvfpga_kvseq_write(seq, l, p, zero, zero), 0);
	ck_assert_int_eq(kvfpga_kvseq_block_table(seq, table, 1, &held), 0);
	ck_assert_uint_eq(held, 1);
	for (uint32_t i = 0; i < nq * hd; i++) {
		q[i] = frand(&f.rng);
		out[i] = NAN;
	}
	memset(&b, 0, sizeof(b));
	b.n_seqs = 1;
	b.seq_lens = &len;
	b.block_tables = tables;
	b.q = q;
	b.out = out;
	b.scale = 0.125f;
	ck_assert_int_eq(kvfpga_attn_decode_submit(f.job, f.arena, &b), 0);
	ck_assert_int_eq(kvfpga_attn_job_wait(f.job), 0);
	for (uint32_t i = 0; i < nq * hd; i++)
		ck_assert_msg(out[i] == 0.0f, "element %u is %g, want 0", i, out[i]);
	kvfpga_kvseq_free(seq);
	free(zero);
	free(q);
	free(out);
	fx_close(&f);
}
END_TEST

/* 0, or -1 after naming an unknown configuration. */
static int select_configs(void)
{
	const char *list = getenv("KVFPGA_TEST_ATTN_CONFIGS");
	char buf[512], *save = NULL;

	g_n_sel = 0;
	if (!list || !*list) {
		for (size_t i = 0; i < N_CFGS; i++)
			g_sel[g_n_sel++] = &cfgs[i];
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < N_CFGS && strcmp(cfgs[i].name, name); i++)
			;
		if (i == N_CFGS) {
			fprintf(stderr, "test_attention_kvcache: no configuration '%s'\n", name);
			return -1;
		}
		if (g_n_sel < (int)N_CFGS)
			g_sel[g_n_sel++] = &cfgs[i];
	}
	return g_n_sel ? 0 : -1;
}

static Suite *suite(void)
{
	Suite *s = suite_create("attention_kvcache");
	TCase *tc = tcase_create("kvcache");

	tcase_set_timeout(tc, 0);
	tcase_add_loop_test(tc, test_decode_over_kvcache, 0, g_n_sel);
	tcase_add_loop_test(tc, test_prefill_over_kvcache, 0, g_n_sel);
	tcase_add_test(tc, test_i8_zero_scale);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed;

	g_seed = test_seed();
	if (select_configs())
		return EXIT_FAILURE;
	printf("test_attention_kvcache: %d of %zu configurations\n", g_n_sel, N_CFGS);
	g_engine = test_engine_open(g_engine_msg, sizeof(g_engine_msg));
	failed = test_run_nofork(suite());
	if (failed)
		fprintf(stderr, "test_attention_kvcache: KVFPGA_TEST_SEED=%llu replays\n",
		        (unsigned long long)g_seed);
	kvfpga_engine_destroy(g_engine);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
