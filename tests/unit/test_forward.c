/* SPDX-License-Identifier: MIT */
/*
 * The optimised forward pass against a plain double-precision reference
 * written here, on generated models of several shapes (MHA, GQA, MQA,
 * untied classifier, odd dimensions), for both kernel sets, 1 and 2
 * threads, llama2.c and GGUF (f32, f16, q8_0) files.
 *
 * Tolerance: at every position of a 100-token run,
 *   max |logit - ref| <= 1e-5 * (1 + max |ref|)
 * with f32 K/V (float accumulation over these shapes stays below 1e-6 of
 * that scale); an f16 K/V cache rounds every K and V, so it gets 5e-3
 * (seen: below 6e-4).  KVFPGA_TEST_VERBOSE=1 prints the worst errors.
 * Seeds: KVFPGA_TEST_SEED (default 1234), printed in every failure.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfpga/engine.h"
#include "kvfpga/kvfpga.h"
#include "kvfpga/model.h"
#include "llama_testfiles.h"

static uint64_t g_seed = 1234;
static char g_dir[64];

#define N_POS 100

static const struct tf_shape shapes[] = {
	{ 64, 160, 2, 4, 4, 300, 128, 0 }, /* MHA, tied */
	{ 96, 200, 3, 6, 2, 301, 128, 1 }, /* GQA, untied */
	{ 64, 96, 2, 8, 1, 260, 128, 0 },  /* MQA, head size 8 */
	{ 70, 187, 2, 5, 5, 257, 128, 1 }, /* odd dims: head size 14, hidden 187 */
};

static void setup(void)
{
	const char *e = getenv("KVFPGA_TEST_SEED");

	if (e)
		g_seed = strtoull(e, NULL, 0);
	snprintf(g_dir, sizeof(g_dir), "/tmp/kvfpga-fwd-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- the reference: one token at a time, all in double ---- */

struct ref {
	const struct tf_model *m;
	double *kc, *vc; /* [layers][N_POS][kv_dim] */
	int pos;
};

static void ref_init(struct ref *r, const struct tf_model *m)
{
	r->m = m;
	r->kc = calloc((size_t)m->s.layers * N_POS * m->kv_dim, sizeof(double));
	r->vc = calloc((size_t)m->s.layers * N_POS * m->kv_dim, sizeof(double));
	r->pos = 0;
	ck_assert(r->kc && r->vc);
}

static void ref_free(struct ref *r)
{
	free(r->kc);
	free(r->vc);
}

static void ref_rmsnorm(double *o, const double *x, const float *w, size_t n)
{
	double ss = 0;

	for (size_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + 1e-5);
	for (size_t i = 0; i < n; i++)
		o[i] = x[i] * ss * w[i];
}

static void ref_matvec(double *o, const float *w, const double *x, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++) {
		double s = 0;

		for (size_t c = 0; c < cols; c++)
			s += (double)w[r * cols + c] * x[c];
		o[r] = s;
	}
}

static void ref_rope(double *v, size_t heads, size_t hs, int pos)
{
	for (size_t h = 0; h < heads; h++)
		for (size_t i = 0; i < hs / 2; i++) {
			double a = pos * pow(10000.0, -(double)(2 * i) / hs);
			double x0 = v[h * hs + 2 * i], x1 = v[h * hs + 2 * i + 1];

			v[h * hs + 2 * i] = x0 * cos(a) - x1 * sin(a);
			v[h * hs + 2 * i + 1] = x0 * sin(a) + x1 * cos(a);
		}
}

static void ref_step(struct ref *r, uint32_t token, double *logits)
{
	const struct tf_model *m = r->m;
	size_t d = m->s.dim, hd = m->s.hidden, kv = m->kv_dim, hs = m->head_dim;
	size_t nh = m->s.heads, group = m->s.heads / m->s.kv_heads;
	double *x = calloc(d, 8), *xb = calloc(d, 8), *q = calloc(d, 8), *att = calloc(d, 8);
	double *k = calloc(kv, 8), *v = calloc(kv, 8), *h1 = calloc(hd, 8), *h3 = calloc(hd, 8);
	double *tmp = calloc(d > hd ? d : hd, 8), *sc = calloc(N_POS, 8);
	int p = r->pos;

	for (size_t i = 0; i < d; i++)
		x[i] = m->emb[token * d + i];
	for (size_t l = 0; l < m->s.layers; l++) {
		double *kc = r->kc + l * N_POS * kv, *vc = r->vc + l * N_POS * kv;

		ref_rmsnorm(xb, x, m->rms_att + l * d, d);
		ref_matvec(q, m->wq + l * d * d, xb, d, d);
		ref_matvec(k, m->wk + l * d * kv, xb, kv, d);
		ref_matvec(v, m->wv + l * d * kv, xb, kv, d);
		ref_rope(q, nh, hs, p);
		ref_rope(k, m->s.kv_heads, hs, p);
		memcpy(kc + p * kv, k, kv * 8);
		memcpy(vc + p * kv, v, kv * 8);
		for (size_t h = 0; h < nh; h++) {
			size_t kh = h / group;
			double mx = -INFINITY, sum = 0;

			for (int t = 0; t <= p; t++) {
				double s = 0;

				for (size_t i = 0; i < hs; i++)
					s += q[h * hs + i] * kc[t * kv + kh * hs + i];
				sc[t] = s / sqrt((double)hs);
				mx = fmax(mx, sc[t]);
			}
			for (int t = 0; t <= p; t++)
				sum += (sc[t] = exp(sc[t] - mx));
			for (size_t i = 0; i < hs; i++) {
				double o = 0;

				for (int t = 0; t <= p; t++)
					o += sc[t] / sum * vc[t * kv + kh * hs + i];
				att[h * hs + i] = o;
			}
		}
		ref_matvec(tmp, m->wo + l * d * d, att, d, d);
		for (size_t i = 0; i < d; i++)
			x[i] += tmp[i];
		ref_rmsnorm(xb, x, m->rms_ffn + l * d, d);
		ref_matvec(h1, m->w1 + l * hd * d, xb, hd, d);
		ref_matvec(h3, m->w3 + l * hd * d, xb, hd, d);
		for (size_t i = 0; i < hd; i++)
			h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
		ref_matvec(tmp, m->w2 + l * d * hd, h1, d, hd);
		for (size_t i = 0; i < d; i++)
			x[i] += tmp[i];
	}
	ref_rmsnorm(xb, x, m->rms_final, d);
	ref_matvec(logits, m->wcls, xb, m->s.vocab, d);
	r->pos++;
	free(x), free(xb), free(q), free(att), free(k), free(v), free(h1), free(h3);
	free(tmp), free(sc);
}

/* Reference logits for N_POS tokens: [N_POS][vocab]. */
static double *ref_run(const struct tf_model *m, const uint32_t *tokens)
{
	double *out = malloc((size_t)N_POS * m->s.vocab * sizeof(double));
	struct ref r;

	ck_assert_ptr_nonnull(out);
	ref_init(&r, m);
	for (int p = 0; p < N_POS; p++)
		ref_step(&r, tokens[p], out + (size_t)p * m->s.vocab);
	ref_free(&r);
	return out;
}

static void make_tokens(uint32_t *tokens, uint32_t vocab, uint64_t seed)
{
	for (int i = 0; i < N_POS; i++)
		tokens[i] = (uint32_t)(tf_rng(&seed) % vocab);
}

/* Max |a - ref| / (1 + max |ref|) over one position's logits. */
static double rel_err(const float *a, const double *ref, uint32_t n)
{
	double md = 0, mr = 0;

	for (uint32_t i = 0; i < n; i++) {
		md = fmax(md, fabs(a[i] - ref[i]));
		mr = fmax(mr, fabs(ref[i]));
	}
	return md / (1 + mr);
}

static struct kvfpga_infer *make_infer(const struct kvfpga_model *model, uint32_t threads,
                                       enum kvfpga_kernels kern, enum kvfpga_infer_kv_type kvt)
{
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf = NULL;

	kvfpga_infer_opts_init(&o);
	o.n_threads = threads;
	o.kernels = kern;
	o.kv_type = kvt;
	o.max_batch = 256;
	ck_assert_int_eq(kvfpga_infer_create(model, &o, &inf), 0);
	return inf;
}

/* Decode token by token; check every position against @ref. */
static void check_decode(const struct kvfpga_model *model, const uint32_t *tokens,
                         const double *ref, uint32_t vocab, uint32_t threads,
                         enum kvfpga_kernels kern, enum kvfpga_infer_kv_type kvt, double tol,
                         const char *what)
{
	struct kvfpga_infer *inf = make_infer(model, threads, kern, kvt);
	float *logits = malloc(vocab * sizeof(float));
	uint32_t seq;
	double worst = 0;

	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &seq), 0);
	for (int p = 0; p < N_POS; p++) {
		struct kvfpga_token_in t = { seq, (uint32_t)p, tokens[p], 1 };
		double e;

		ck_assert_int_eq(kvfpga_infer_forward(inf, &t, 1, logits), 0);
		e = rel_err(logits, ref + (size_t)p * vocab, vocab);
		ck_assert_msg(e <= tol, "%s: position %d error %.3g > %.3g (seed %llu)", what, p, e,
		              tol, (unsigned long long)g_seed);
		worst = fmax(worst, e);
	}
	if (getenv("KVFPGA_TEST_VERBOSE"))
		printf("%s: worst error %.3g (tolerance %.3g)\n", what, worst, tol);
	free(logits);
	kvfpga_infer_free(inf);
}

START_TEST(test_decode_matches_reference)
{
	const struct tf_shape *s = &shapes[_i];
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	uint32_t tokens[N_POS];
	char path[128], err[256], what[128];
	double *ref;
	enum kvfpga_kernels kerns[2] = { KVFPGA_KERNELS_PORTABLE, KVFPGA_KERNELS_AVX2 };

	tf_model_make(&m, s, g_seed + (uint64_t)_i);
	make_tokens(tokens, s->vocab, g_seed * 7 + (uint64_t)_i);
	snprintf(path, sizeof(path), "%s/m%d.bin", g_dir, _i);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, KVFPGA_MODEL_FORMAT_AUTO, &model, err, sizeof(err)) ==
	                      0,
	              "%s", err);
	ref = ref_run(&m, tokens);
	for (int k = 0; k < 2; k++) {
		struct kvfpga_infer_opts o;
		struct kvfpga_infer *probe = NULL;

		kvfpga_infer_opts_init(&o);
		o.kernels = kerns[k];
		if (kvfpga_infer_create(model, &o, &probe) == -ENOTSUP)
			continue; /* a CPU without AVX2: the portable run covers it */
		kvfpga_infer_free(probe);
		for (uint32_t th = 1; th <= 2; th++) {
			snprintf(what, sizeof(what), "shape %d, %s kernels, %u threads", _i,
			         k ? "avx2" : "portable", th);
			check_decode(model, tokens, ref, s->vocab, th, kerns[k],
			             KVFPGA_INFER_KV_F32, 1e-5, what);
		}
	}
	snprintf(what, sizeof(what), "shape %d, f16 K/V", _i);
	check_decode(model, tokens, ref, s->vocab, 2, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F16,
	             5e-3, what);
	snprintf(what, sizeof(what), "shape %d, f16 K/V, portable kernels", _i);
	check_decode(model, tokens, ref, s->vocab, 1, KVFPGA_KERNELS_PORTABLE, KVFPGA_INFER_KV_F16,
	             5e-3, what);
	free(ref);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

/* Logits of every position, from batches of the given sizes. */
static float *run_batches(const struct kvfpga_model *model, const uint32_t *tokens, uint32_t vocab,
                          const int *sizes, int n_sizes, uint32_t threads)
{
	struct kvfpga_infer *inf =
	        make_infer(model, threads, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F32);
	float *logits = malloc((size_t)N_POS * vocab * sizeof(float));
	struct kvfpga_token_in batch[N_POS];
	uint32_t seq, len;
	int p = 0;

	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &seq), 0);
	for (int b = 0; b < n_sizes; b++) {
		for (int i = 0; i < sizes[b]; i++, p++)
			batch[i] = (struct kvfpga_token_in){ seq, (uint32_t)p, tokens[p], 1 };
		ck_assert_int_eq(kvfpga_infer_forward(inf, batch, (size_t)sizes[b],
		                                      logits + (size_t)(p - sizes[b]) * vocab),
		                 0);
	}
	ck_assert_int_eq(p, N_POS);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, seq, &len), 0);
	ck_assert_uint_eq(len, N_POS);
	kvfpga_infer_free(inf);
	return logits;
}

START_TEST(test_prefill_equals_decode)
{
	const struct tf_shape *s = &shapes[_i];
	static const int one_by_one[N_POS] = { [0 ... N_POS - 1] = 1 };
	static const int chunks[] = { 37, 1, 2, 60 };
	static const int whole[] = { N_POS };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	uint32_t tokens[N_POS];
	char path[128], err[256];
	float *a, *b, *c;

	tf_model_make(&m, s, g_seed + 100 + (uint64_t)_i);
	make_tokens(tokens, s->vocab, g_seed * 3 + (uint64_t)_i);
	snprintf(path, sizeof(path), "%s/p%d.bin", g_dir, _i);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	a = run_batches(model, tokens, s->vocab, one_by_one, N_POS, 1);
	b = run_batches(model, tokens, s->vocab, chunks, 4, 2);
	c = run_batches(model, tokens, s->vocab, whole, 1, 2);
	for (int p = 0; p < N_POS; p++) {
		double eb = 0, ec = 0, mr = 0;

		for (uint32_t i = 0; i < s->vocab; i++) {
			size_t j = (size_t)p * s->vocab + i;

			mr = fmax(mr, fabs(a[j]));
			eb = fmax(eb, fabs(a[j] - b[j]));
			ec = fmax(ec, fabs(a[j] - c[j]));
		}
		/* Same arithmetic up to summation order: much tighter than the reference. */
		ck_assert_msg(eb <= 1e-5 * (1 + mr) && ec <= 1e-5 * (1 + mr),
		              "shape %d position %d: batched differs by %.3g / %.3g (seed %llu)",
		              _i, p, eb, ec, (unsigned long long)g_seed);
	}
	free(a), free(b), free(c);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

/* GGUF f32 gives bit-identical logits to llama2.c; f16 and q8_0 match their own reference. */
START_TEST(test_gguf_matches)
{
	const struct tf_shape s = { 64, 128, 2, 4, 2, 300, 128, _i == 1 };
	const int types[3] = { TF_F32, TF_F16, TF_Q8_0 };
	uint32_t tokens[N_POS];
	struct tf_model m;
	struct kvfpga_model *l2c = NULL, *gg = NULL;
	char p1[128], p2[128], err[256];
	struct kvfpga_model_config cfg;
	double *ref;

	make_tokens(tokens, s.vocab, g_seed + 55);
	for (int t = 0; t < 3; t++) {
		tf_model_make(&m, &s, g_seed + 200 + (uint64_t)_i);
		snprintf(p1, sizeof(p1), "%s/g%d.bin", g_dir, t);
		snprintf(p2, sizeof(p2), "%s/g%d.gguf", g_dir, t);
		ck_assert_int_eq(tf_write_llama2c(p1, &m), 0);
		ck_assert_int_eq(tf_write_gguf(p2, &m, &(struct tf_gguf_opts){ .type = types[t] }),
		                 0);
		ck_assert_msg(kvfpga_model_open(p2, 0, &gg, err, sizeof(err)) == 0, "%s", err);
		ck_assert_int_eq(kvfpga_model_get_config(gg, &cfg), 0);
		ck_assert_int_eq(cfg.format, KVFPGA_MODEL_FORMAT_GGUF);
		ck_assert_int_eq(cfg.weight_dtype, types[t]);
		ck_assert_int_eq(cfg.shared_classifier, !s.untied);
		if (t == 0) {
			float *a, *b;
			static const int whole[] = { N_POS };

			ck_assert_msg(kvfpga_model_open(p1, 0, &l2c, err, sizeof(err)) == 0, "%s",
			              err);
			a = run_batches(l2c, tokens, s.vocab, whole, 1, 1);
			b = run_batches(gg, tokens, s.vocab, whole, 1, 1);
			ck_assert_msg(memcmp(a, b, (size_t)N_POS * s.vocab * 4) == 0,
			              "GGUF f32 and llama2.c logits differ (seed %llu)",
			              (unsigned long long)g_seed);
			free(a), free(b);
			kvfpga_model_close(l2c);
		}
		/* tf_write_gguf rewrote m to the values the file holds. */
		ref = ref_run(&m, tokens);
		check_decode(gg, tokens, ref, s.vocab, 2, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F32,
		             1e-5,
		             t == 0   ? "gguf f32"
		             : t == 1 ? "gguf f16"
		                      : "gguf q8_0");
		if (t > 0)
			check_decode(gg, tokens, ref, s.vocab, 1, KVFPGA_KERNELS_PORTABLE,
			             KVFPGA_INFER_KV_F32, 1e-5, "gguf quantised, portable");
		free(ref);
		kvfpga_model_close(gg);
		tf_model_free(&m);
	}
}
END_TEST

/* Two sequences in one batch, a fork, and a late joiner agree with running alone. */
START_TEST(test_multi_sequence)
{
	const struct tf_shape s = { 64, 128, 2, 4, 2, 300, 128, 0 };
	static const int whole[] = { N_POS };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct kvfpga_infer *inf;
	uint32_t ta[N_POS], tb[N_POS], sa, sb, sf;
	struct kvfpga_token_in batch[2 * N_POS];
	char path[128], err[256];
	float *alone_a, *alone_b, *both;
	size_t n = 0;

	tf_model_make(&m, &s, g_seed + 300);
	make_tokens(ta, s.vocab, g_seed + 301);
	make_tokens(tb, s.vocab, g_seed + 302);
	memcpy(tb, ta, 10 * sizeof(uint32_t)); /* a shared prefix for the fork */
	snprintf(path, sizeof(path), "%s/ms.bin", g_dir);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	alone_a = run_batches(model, ta, s.vocab, whole, 1, 2);
	alone_b = run_batches(model, tb, s.vocab, whole, 1, 2);
	both = malloc((size_t)2 * N_POS * s.vocab * sizeof(float));

	inf = make_infer(model, 2, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F32);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &sa), 0);
	/* a: first 10 tokens alone; then fork b from a's prefix and run both in one batch. */
	for (int p = 0; p < 10; p++)
		batch[n++] = (struct kvfpga_token_in){ sa, (uint32_t)p, ta[p], 1 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, n, both), 0);
	ck_assert_int_eq(kvfpga_infer_seq_fork(inf, sa, 10, &sb), 0);
	n = 0;
	for (int p = 10; p < 60; p++)
		batch[n++] = (struct kvfpga_token_in){ sa, (uint32_t)p, ta[p], 1 };
	for (int p = 10; p < N_POS; p++)
		batch[n++] = (struct kvfpga_token_in){ sb, (uint32_t)p, tb[p], 1 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, n, both + (size_t)10 * s.vocab), 0);
	for (int p = 10; p < 60; p++) {
		const float *x = both + (size_t)p * s.vocab;

		for (uint32_t i = 0; i < s.vocab; i++)
			ck_assert_msg(fabsf(x[i] - alone_a[(size_t)p * s.vocab + i]) <= 1e-3f,
			              "seq a position %d (seed %llu)", p,
			              (unsigned long long)g_seed);
	}
	for (int p = 10; p < N_POS; p++) {
		const float *x = both + (size_t)(60 + p - 10) * s.vocab;

		for (uint32_t i = 0; i < s.vocab; i++)
			ck_assert_msg(fabsf(x[i] - alone_b[(size_t)p * s.vocab + i]) <= 1e-3f,
			              "forked seq b position %d (seed %llu)", p,
			              (unsigned long long)g_seed);
	}
	/* A fork past the source's length is refused; freeing twice is -ENOENT. */
	ck_assert_int_eq(kvfpga_infer_seq_fork(inf, sa, 61, &sf), -EINVAL);
	ck_assert_int_eq(kvfpga_infer_seq_free(inf, sb), 0);
	ck_assert_int_eq(kvfpga_infer_seq_free(inf, sb), -ENOENT);
	kvfpga_infer_free(inf);
	free(alone_a), free(alone_b), free(both);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

START_TEST(test_bad_batches)
{
	const struct tf_shape s = { 64, 128, 1, 4, 4, 300, 16, 0 };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct kvfpga_infer *inf;
	struct kvfpga_infer_stats st;
	float *logits = malloc(2 * 300 * sizeof(float));
	char path[128], err[256];
	uint32_t a, b, len;

	tf_model_make(&m, &s, g_seed + 400);
	snprintf(path, sizeof(path), "%s/bad.bin", g_dir);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	inf = make_infer(model, 1, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F32);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &a), 0);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &b), 0);
	/* wrong first position, token out of range, unknown sequence, a sequence twice */
	ck_assert_int_eq(
	        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ a, 1, 5, 1 }, 1, logits),
	        -EINVAL);
	ck_assert_int_eq(
	        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ a, 0, 300, 1 }, 1, logits),
	        -EINVAL);
	ck_assert_int_eq(
	        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ 999, 0, 5, 1 }, 1, logits),
	        -EINVAL);
	{
		struct kvfpga_token_in t[3] = { { a, 0, 5, 0 }, { b, 0, 6, 0 }, { a, 1, 7, 1 } };

		ck_assert_int_eq(kvfpga_infer_forward(inf, t, 3, logits), -EINVAL);
		ck_assert_int_eq(kvfpga_infer_forward(inf, t, 2, NULL), 0);
	}
	ck_assert_int_eq(
	        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ a, 1, 5, 1 }, 1, NULL),
	        -EINVAL);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, a, &len), 0);
	ck_assert_uint_eq(len, 1);
	/* the context is full at seq_len positions (-ERANGE, not mistaken for bad input) */
	for (uint32_t p = 1; p < 16; p++)
		ck_assert_int_eq(
		        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ a, p, 5, 0 }, 1, NULL),
		        0);
	ck_assert_int_eq(
	        kvfpga_infer_forward(inf, &(struct kvfpga_token_in){ a, 16, 5, 0 }, 1, NULL),
	        -ERANGE);
	ck_assert_int_eq(kvfpga_infer_get_stats(inf, &st), 0);
	ck_assert_uint_eq(st.tokens, 17);
	ck_assert_str_eq(st.attn_backend, "host");
	ck_assert_int_eq(kvfpga_infer_forward(NULL, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_infer_create(NULL, NULL, NULL), -EINVAL);
	kvfpga_infer_free(inf);
	kvfpga_model_close(model);
	tf_model_free(&m);
	free(logits);
}
END_TEST

/*
 * A backend written here against the public interface: contiguous K/V,
 * attention in double, and a prefix cache that copies the longest
 * committed common prefix (in blocks of 4) from another sequence.
 */
#define TB_SEQS   4
#define TB_BLOCK  4
#define TB_MAXPOS 128

struct tb_seq {
	int live;
	uint32_t len, committed;
	uint32_t tokens[TB_MAXPOS];
	float *k, *v; /* [layers][TB_MAXPOS][kv_dim] */
};

struct tb {
	uint32_t layers, heads, kv_heads, hd, kv_dim;
	struct tb_seq seq[TB_SEQS];
	unsigned prepares, commits, destroyed;
	uint64_t hits;
};

static float *tb_row(struct tb *b, float *base, uint32_t l, uint32_t p)
{
	return base + ((size_t)l * TB_MAXPOS + p) * b->kv_dim;
}

static int tb_seq_create(void *st, uint32_t *id)
{
	struct tb *b = st;

	for (uint32_t i = 0; i < TB_SEQS; i++) {
		if (b->seq[i].live)
			continue;
		memset(&b->seq[i], 0, sizeof(b->seq[i]));
		b->seq[i].k = calloc((size_t)b->layers * TB_MAXPOS * b->kv_dim, sizeof(float));
		b->seq[i].v = calloc((size_t)b->layers * TB_MAXPOS * b->kv_dim, sizeof(float));
		b->seq[i].live = 1;
		*id = i;
		return 0;
	}
	return -ENOSPC;
}

static void tb_seq_free(void *st, uint32_t id)
{
	struct tb *b = st;

	free(b->seq[id].k);
	free(b->seq[id].v);
	b->seq[id].live = 0;
}

static int tb_seq_prefix(void *st, uint32_t id, const uint32_t *tokens, uint32_t n,
                         uint32_t *n_cached)
{
	struct tb *b = st;
	struct tb_seq *s = &b->seq[id];
	uint32_t best = 0, from = 0;

	ck_assert_uint_eq(s->len, 0);
	for (uint32_t o = 0; o < TB_SEQS; o++) {
		uint32_t c = 0;

		if (o == id || !b->seq[o].live)
			continue;
		while (c < b->seq[o].committed && c < n && b->seq[o].tokens[c] == tokens[c])
			c++;
		c = c / TB_BLOCK * TB_BLOCK;
		if (c >= n)
			c -= TB_BLOCK;
		if (c > best)
			best = c, from = o;
	}
	for (uint32_t l = 0; best && l < b->layers; l++) {
		memcpy(tb_row(b, s->k, l, 0), tb_row(b, b->seq[from].k, l, 0),
		       (size_t)best * b->kv_dim * 4);
		memcpy(tb_row(b, s->v, l, 0), tb_row(b, b->seq[from].v, l, 0),
		       (size_t)best * b->kv_dim * 4);
	}
	memcpy(s->tokens, tokens, best * sizeof(uint32_t));
	s->len = s->committed = best;
	b->hits += best;
	*n_cached = best;
	return 0;
}

static int tb_prepare(void *st, const struct kvfpga_infer_attn_run *runs, size_t n_runs,
                      const uint32_t *tokens)
{
	struct tb *b = st;

	b->prepares++;
	for (size_t i = 0; i < n_runs; i++) {
		struct tb_seq *s = &b->seq[runs[i].seq];

		ck_assert_uint_eq(runs[i].p0, s->committed); /* continues right after */
		for (uint32_t p = runs[i].p0; p < runs[i].p1; p++)
			s->tokens[p] = tokens[runs[i].row + p - runs[i].p0];
		s->len = runs[i].p1;
	}
	return 0;
}

static int tb_write_kv(void *st, uint32_t l, const struct kvfpga_infer_attn_run *runs,
                       size_t n_runs, const float *k, const float *v)
{
	struct tb *b = st;

	for (size_t i = 0; i < n_runs; i++)
		for (uint32_t p = runs[i].p0; p < runs[i].p1; p++) {
			size_t r = runs[i].row + p - runs[i].p0;

			memcpy(tb_row(b, b->seq[runs[i].seq].k, l, p), k + r * b->kv_dim,
			       b->kv_dim * 4);
			memcpy(tb_row(b, b->seq[runs[i].seq].v, l, p), v + r * b->kv_dim,
			       b->kv_dim * 4);
		}
	return 0;
}

static int tb_attend(void *st, uint32_t l, const struct kvfpga_infer_attn_run *runs, size_t n_runs,
                     const float *q, float *out)
{
	struct tb *b = st;
	uint32_t dim = b->heads * b->hd, group = b->heads / b->kv_heads;
	double sc[TB_MAXPOS];

	for (size_t i = 0; i < n_runs; i++) {
		struct tb_seq *s = &b->seq[runs[i].seq];

		for (uint32_t p = runs[i].p0; p < runs[i].p1; p++) {
			size_t r = runs[i].row + p - runs[i].p0;

			for (uint32_t h = 0; h < b->heads; h++) {
				const float *qh = q + r * dim + h * b->hd;
				double mx = -INFINITY, sum = 0;

				for (uint32_t t = 0; t <= p; t++) {
					const float *kr =
					        tb_row(b, s->k, l, t) + (h / group) * b->hd;
					double d = 0;

					for (uint32_t j = 0; j < b->hd; j++)
						d += (double)qh[j] * kr[j];
					sc[t] = d / sqrt((double)b->hd);
					mx = fmax(mx, sc[t]);
				}
				for (uint32_t t = 0; t <= p; t++)
					sum += (sc[t] = exp(sc[t] - mx));
				for (uint32_t j = 0; j < b->hd; j++) {
					double o = 0;

					for (uint32_t t = 0; t <= p; t++)
						o += sc[t] / sum *
						     tb_row(b, s->v, l, t)[(h / group) * b->hd + j];
					out[r * dim + h * b->hd + j] = (float)o;
				}
			}
		}
	}
	return 0;
}

static int tb_commit(void *st, const struct kvfpga_infer_attn_run *runs, size_t n_runs)
{
	struct tb *b = st;

	b->commits++;
	for (size_t i = 0; i < n_runs; i++)
		b->seq[runs[i].seq].committed = runs[i].p1;
	return 0;
}

static void tb_destroy(void *st)
{
	struct tb *b = st;

	for (uint32_t i = 0; i < TB_SEQS; i++)
		if (b->seq[i].live)
			tb_seq_free(b, i);
	b->destroyed++;
}

static const struct kvfpga_infer_attn_ops tb_ops = {
	.name = "test",
	.seq_create = tb_seq_create,
	.seq_free = tb_seq_free,
	.seq_prefix = tb_seq_prefix,
	.prepare = tb_prepare,
	.write_kv = tb_write_kv,
	.attend = tb_attend,
	.commit = tb_commit,
	.destroy = tb_destroy,
};

/* A backend plugged in from outside: same logits as the host backend, prefix reuse honoured. */
START_TEST(test_custom_backend)
{
	const struct tf_shape s = { 64, 128, 2, 8, 2, 300, 128, 1 };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf = NULL;
	struct kvfpga_infer_stats st;
	struct tb b = { 0 };
	uint32_t ta[N_POS], tb_[N_POS], sa, sb, cached = 99, len;
	struct kvfpga_token_in batch[N_POS];
	char path[128], err[256];
	float *ref_b, *logits = malloc((size_t)N_POS * s.vocab * sizeof(float));
	static const int whole[] = { N_POS };

	tf_model_make(&m, &s, g_seed + 500);
	make_tokens(ta, s.vocab, g_seed + 501);
	make_tokens(tb_, s.vocab, g_seed + 502);
	memcpy(tb_, ta, 42 * sizeof(uint32_t)); /* 42 shared tokens: 40 reusable in blocks of 4 */
	snprintf(path, sizeof(path), "%s/cb.bin", g_dir);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	ref_b = run_batches(model, tb_, s.vocab, whole, 1, 2);

	b.layers = s.layers, b.heads = s.heads, b.kv_heads = s.kv_heads;
	b.hd = s.dim / s.heads, b.kv_dim = b.hd * s.kv_heads;
	kvfpga_infer_opts_init(&o);
	o.n_threads = 2;
	o.max_batch = N_POS;
	o.attn_ops = &tb_ops;
	o.attn_state = &b;
	ck_assert_int_eq(kvfpga_infer_create(model, &o, &inf), 0);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &sa), 0);
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, sa, ta, 60, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	for (int p = 0; p < 60; p++)
		batch[p] = (struct kvfpga_token_in){ sa, (uint32_t)p, ta[p], 0 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, 60, NULL), 0);

	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &sb), 0);
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, sb, tb_, N_POS, &cached), 0);
	ck_assert_uint_eq(cached, 40);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, sb, &len), 0);
	ck_assert_uint_eq(len, 40);
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, sb, tb_, N_POS, &cached), -EINVAL);
	for (int p = 40; p < N_POS; p++)
		batch[p - 40] = (struct kvfpga_token_in){ sb, (uint32_t)p, tb_[p], 1 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, N_POS - 40, logits), 0);
	for (int p = 40; p < N_POS; p++)
		for (uint32_t i = 0; i < s.vocab; i++)
			ck_assert_msg(fabsf(logits[(size_t)(p - 40) * s.vocab + i] -
			                    ref_b[(size_t)p * s.vocab + i]) <= 1e-4f,
			              "position %d logit %u (seed %llu)", p, i,
			              (unsigned long long)g_seed);
	ck_assert_uint_eq(b.prepares, 2);
	ck_assert_uint_eq(b.commits, 2);
	ck_assert_uint_eq(b.hits, 40);
	ck_assert_int_eq(kvfpga_infer_get_stats(inf, &st), 0);
	ck_assert_str_eq(st.attn_backend, "test");
	ck_assert_uint_eq(st.tokens, 60 + N_POS - 40);
	kvfpga_infer_free(inf);
	ck_assert_uint_eq(b.destroyed, 1);

	/* a backend missing a required operation is refused, and still destroyed */
	{
		struct kvfpga_infer_attn_ops bad = tb_ops;

		bad.attend = NULL;
		o.attn_ops = &bad;
		ck_assert_int_eq(kvfpga_infer_create(model, &o, &inf), -EINVAL);
		ck_assert_uint_eq(b.destroyed, 2);
	}
	free(ref_b);
	free(logits);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

/* ---- the card backend: paged K/V in (emulated) card memory, attention on the OpenCL engine ----
 */

struct card_env {
	struct kvfpga_device *dev;
	struct kvfpga_engine *engine;
};

static void card_env_open(struct card_env *e)
{
	struct kvfpga_open_opts d;
	struct kvfpga_engine_opts eo;
	char msg[1024];

	ck_assert_int_eq(kvfpga_open_opts_init(&d), 0);
	d.backend = KVFPGA_BACKEND_EMULATED;
	d.emu_mem_size = 64ull << 20;
	ck_assert_int_eq(kvfpga_device_open(&d, &e->dev), 0);
	ck_assert_int_eq(kvfpga_engine_opts_init(&eo), 0);
	ck_assert_msg(kvfpga_engine_create(&eo, &e->engine, msg, sizeof(msg)) == 0,
	              "no OpenCL engine: %s", msg);
}

static void card_env_close(struct card_env *e)
{
	kvfpga_engine_destroy(e->engine);
	kvfpga_device_close(e->dev);
}

static struct kvfpga_infer *make_card_infer(const struct kvfpga_model *model, struct card_env *e,
                                            enum kvfpga_infer_kv_type kvt, uint32_t block_size,
                                            int *ret_out, char *err, size_t errlen)
{
	struct kvfpga_infer_card_opts co;
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf = NULL;
	int ret;

	kvfpga_infer_card_opts_init(&co);
	co.dev = e->dev;
	co.engine = e->engine;
	co.kv_type = kvt;
	co.block_size = block_size;
	co.max_seqs = 4;
	kvfpga_infer_opts_init(&o);
	o.n_threads = 2;
	o.max_batch = 256;
	o.max_seqs = 4;
	ret = kvfpga_infer_card_attn_create(model, &co, &o.attn_ops, &o.attn_state, err, errlen);
	if (!ret)
		ret = kvfpga_infer_create(model, &o, &inf);
	*ret_out = ret;
	return inf;
}

START_TEST(test_card_backend_matches_reference)
{
	const struct tf_shape *s = &shapes[_i];
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct card_env env;
	uint32_t tokens[N_POS];
	char path[128], err[256];
	double *ref;
	const enum kvfpga_infer_kv_type kvts[3] = { KVFPGA_INFER_KV_F32, KVFPGA_INFER_KV_F16,
		                                    KVFPGA_INFER_KV_I8 };
	const char *const kvt_names[3] = { "f32", "f16", "int8" };
	/* Relative logit error: f32 K/V as the reference; f16 and int8 round the K/V. */
	const double tols[3] = { 1e-5, 5e-3, 5e-2 };

	tf_model_make(&m, s, g_seed + (uint64_t)_i);
	make_tokens(tokens, s->vocab, g_seed * 7 + (uint64_t)_i);
	snprintf(path, sizeof(path), "%s/c%d.bin", g_dir, _i);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	card_env_open(&env);
	ref = ref_run(&m, tokens);
	for (int k = 0; k < 3; k++) {
		int ret;
		struct kvfpga_infer *inf =
		        make_card_infer(model, &env, kvts[k], 8, &ret, err, sizeof(err));
		float *logits = malloc((size_t)N_POS * s->vocab * sizeof(float));
		struct kvfpga_token_in batch[N_POS];
		struct kvfpga_infer_stats st;
		uint32_t seq;
		double worst = 0, tol = tols[k];

		if (m.head_dim % 4) { /* the engine's kernels need head sizes in multiples of 4 */
			ck_assert_int_eq(ret, -EINVAL);
			ck_assert_msg(strstr(err, "head size"), "%s", err);
			free(logits);
			continue;
		}
		ck_assert_msg(ret == 0, "card backend: %d %s", ret, err);
		ck_assert_int_eq(kvfpga_infer_seq_create(inf, &seq), 0);
		/* a prefill of 37 (causal chunk), then decode one by one */
		for (int p = 0; p < 37; p++)
			batch[p] = (struct kvfpga_token_in){ seq, (uint32_t)p, tokens[p], 1 };
		ck_assert_int_eq(kvfpga_infer_forward(inf, batch, 37, logits), 0);
		for (int p = 37; p < N_POS; p++) {
			batch[0] = (struct kvfpga_token_in){ seq, (uint32_t)p, tokens[p], 1 };
			ck_assert_int_eq(
			        kvfpga_infer_forward(inf, batch, 1, logits + (size_t)p * s->vocab),
			        0);
		}
		for (int p = 0; p < N_POS; p++) {
			double e = rel_err(logits + (size_t)p * s->vocab,
			                   ref + (size_t)p * s->vocab, s->vocab);

			ck_assert_msg(e <= tol,
			              "shape %d %s K/V: position %d error %.3g > %.3g "
			              "(seed %llu)",
			              _i, kvt_names[k], p, e, tol, (unsigned long long)g_seed);
			worst = fmax(worst, e);
		}
		if (getenv("KVFPGA_TEST_VERBOSE"))
			printf("card shape %d %s: worst error %.3g\n", _i, kvt_names[k], worst);
		ck_assert_int_eq(kvfpga_infer_get_stats(inf, &st), 0);
		ck_assert_str_eq(st.attn_backend, "card");
		ck_assert_uint_eq(st.attn.blocks_used, (N_POS + 7) / 8);
		kvfpga_infer_free(inf);
		free(logits);
	}
	free(ref);
	card_env_close(&env);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

/* A second prompt sharing a prefix reuses the first one's committed blocks, with the same logits.
 */
START_TEST(test_card_prefix_reuse)
{
	const struct tf_shape s = { 64, 128, 2, 4, 2, 300, 128, 0 };
	static const int whole[] = { N_POS };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct card_env env;
	struct kvfpga_infer *inf;
	struct kvfpga_infer_stats st;
	struct kvfpga_token_in batch[N_POS];
	uint32_t ta[N_POS], tb[N_POS], sa, sb, cached = 0, len;
	char path[128], err[256];
	float *ref_b, *logits = malloc((size_t)N_POS * 300 * sizeof(float));
	int ret;

	tf_model_make(&m, &s, g_seed + 600);
	make_tokens(ta, s.vocab, g_seed + 601);
	make_tokens(tb, s.vocab, g_seed + 602);
	memcpy(tb, ta, 42 * sizeof(uint32_t)); /* 42 shared: two full blocks of 16 */
	snprintf(path, sizeof(path), "%s/cp.bin", g_dir);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	ref_b = run_batches(model, tb, s.vocab, whole, 1, 2);
	card_env_open(&env);
	inf = make_card_infer(model, &env, KVFPGA_INFER_KV_F32, 16, &ret, err, sizeof(err));
	ck_assert_msg(ret == 0, "%s", err);

	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &sa), 0);
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, sa, ta, 50, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	for (int p = 0; p < 50; p++)
		batch[p] = (struct kvfpga_token_in){ sa, (uint32_t)p, ta[p], 0 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, 50, NULL), 0);
	ck_assert_int_eq(kvfpga_infer_seq_free(inf, sa), 0); /* published blocks stay cached */

	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &sb), 0);
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, sb, tb, N_POS, &cached), 0);
	ck_assert_uint_eq(cached, 32);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, sb, &len), 0);
	ck_assert_uint_eq(len, 32);
	for (int p = 32; p < N_POS; p++)
		batch[p - 32] = (struct kvfpga_token_in){ sb, (uint32_t)p, tb[p], 1 };
	ck_assert_int_eq(kvfpga_infer_forward(inf, batch, N_POS - 32, logits), 0);
	for (int p = 32; p < N_POS; p++) {
		double md = 0;

		for (uint32_t i = 0; i < s.vocab; i++)
			md = fmax(md, fabs(logits[(size_t)(p - 32) * s.vocab + i] -
			                   ref_b[(size_t)p * s.vocab + i]));
		ck_assert_msg(md <= 1e-4, "position %d differs by %.3g (seed %llu)", p, md,
		              (unsigned long long)g_seed);
	}
	ck_assert_int_eq(kvfpga_infer_get_stats(inf, &st), 0);
	ck_assert_uint_eq(st.attn.prefix_hits, 32);
	kvfpga_infer_free(inf);
	card_env_close(&env);
	free(ref_b);
	free(logits);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

/* Mixed batches (decode rows of two sequences and a third's prefill chunk) agree with the host. */
START_TEST(test_card_mixed_batches)
{
	const struct tf_shape s = { 64, 128, 2, 8, 2, 300, 128, 1 };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct card_env env;
	struct kvfpga_infer *card, *host;
	uint32_t toks[3][N_POS], sc[3], sh[3];
	char path[128], err[256];
	float *lc = malloc((size_t)N_POS * 300 * sizeof(float));
	float *lh = malloc((size_t)N_POS * 300 * sizeof(float));
	uint32_t len[3] = { 0, 0, 0 };
	uint64_t rng = g_seed + 700;
	int ret;

	tf_model_make(&m, &s, g_seed + 700);
	for (int q = 0; q < 3; q++)
		make_tokens(toks[q], s.vocab, g_seed + 701 + (uint64_t)q);
	snprintf(path, sizeof(path), "%s/mx.bin", g_dir);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	card_env_open(&env);
	card = make_card_infer(model, &env, KVFPGA_INFER_KV_F32, 16, &ret, err, sizeof(err));
	ck_assert_msg(ret == 0, "%s", err);
	host = make_infer(model, 2, KVFPGA_KERNELS_AUTO, KVFPGA_INFER_KV_F32);
	for (int q = 0; q < 3; q++) {
		ck_assert_int_eq(kvfpga_infer_seq_create(card, &sc[q]), 0);
		ck_assert_int_eq(kvfpga_infer_seq_create(host, &sh[q]), 0);
	}
	/* 40 steps: each sequence advances by 0, 1 or a chunk of up to 9 tokens. */
	for (int step = 0; step < 40; step++) {
		struct kvfpga_token_in bc[32], bh[32];
		size_t n = 0;

		for (int q = 0; q < 3; q++) {
			uint32_t adv = (uint32_t)(tf_rng(&rng) % 3);

			adv = adv == 2 ? 2 + (uint32_t)(tf_rng(&rng) % 8) : adv;
			if (len[q] + adv > N_POS)
				adv = N_POS - len[q];
			for (uint32_t i = 0; i < adv; i++, n++) {
				bc[n] = (struct kvfpga_token_in){ sc[q], len[q] + i,
					                          toks[q][len[q] + i], 1 };
				bh[n] = bc[n];
				bh[n].seq = sh[q];
			}
			len[q] += adv;
		}
		ck_assert_int_eq(kvfpga_infer_forward(card, bc, n, lc), 0);
		ck_assert_int_eq(kvfpga_infer_forward(host, bh, n, lh), 0);
		for (size_t r = 0; r < n; r++) {
			double md = 0, mr = 0;

			for (uint32_t i = 0; i < s.vocab; i++) {
				md = fmax(md, fabs(lc[r * s.vocab + i] - lh[r * s.vocab + i]));
				mr = fmax(mr, fabs(lh[r * s.vocab + i]));
			}
			ck_assert_msg(md <= 1e-5 * (1 + mr),
			              "step %d row %zu: card and host differ by %.3g (seed %llu)",
			              step, r, md, (unsigned long long)g_seed);
		}
	}
	kvfpga_infer_free(card);
	kvfpga_infer_free(host);
	card_env_close(&env);
	free(lc);
	free(lh);
	kvfpga_model_close(model);
	tf_model_free(&m);
}
END_TEST

static Suite *forward_suite(void)
{
	Suite *s = suite_create("forward");
	TCase *tc = tcase_create("forward");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* A cap for loaded machines under sanitizers; each test takes about a second when idle. */
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_decode_matches_reference, 0,
	                    (int)(sizeof(shapes) / sizeof(shapes[0])));
	tcase_add_loop_test(tc, test_prefill_equals_decode, 0,
	                    (int)(sizeof(shapes) / sizeof(shapes[0])));
	tcase_add_loop_test(tc, test_gguf_matches, 0, 2);
	tcase_add_test(tc, test_multi_sequence);
	tcase_add_test(tc, test_bad_batches);
	tcase_add_test(tc, test_custom_backend);
	tcase_add_loop_test(tc, test_card_backend_matches_reference, 0,
	                    (int)(sizeof(shapes) / sizeof(shapes[0])));
	tcase_add_test(tc, test_card_prefix_reuse);
	tcase_add_test(tc, test_card_mixed_batches);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(forward_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
