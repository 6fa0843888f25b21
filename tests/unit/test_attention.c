/* SPDX-License-Identifier: MIT */
/*
 * Attention engine (include/kvfpga/engine.h) on the OpenCL device the
 * environment selects (PoCL on the CPU here), against a double-precision
 * reference computed here from the same arena.
 *
 * Every run draws fresh random K/V, queries, lengths and block tables from
 * one seed (KVFPGA_TEST_SEED replays a run; every failure message names
 * the seed).  Outputs are poisoned with NaN before each launch and every
 * element is checked:
 *
 *   |got - ref| <= TOL * mag[d] + SCORE_TOL * cond[d]
 *   mag[d]  = sum_t p_t |v_t[d]|                    TOL = 1e-5
 *   cond[d] = sum_t p_t S_t |v_t[d] - ref[d]|       SCORE_TOL = 2e-7
 *   S_t     = scale * sum_i |q_i k_t[i]|
 *
 * The first term is relative to the magnitude of the terms the
 * softmax-weighted sum adds up (for outputs that do not cancel, a relative
 * error of 1e-5, well under 1e-4); the second is the first-order effect of
 * rounding each score in float, a few ulps of S_t, which only matters when
 * scores are large (test_decode_large_scores).  f16 K/V are compared with a
 * reference built from the same f16 values, so the tolerance is the same.
 *
 * The program runs without fork (Check's CK_NOFORK) so the engine and the
 * built programs are shared by all cases; programs also come from the
 * disk cache across runs.
 *
 * Environment:
 *   KVFPGA_TEST_ARENA=card       every K/V arena is a buffer object of the
 *                                kvfpga device KVFPGA_DEVICE selects (the
 *                                card's BAR in the VM suite), mapped; unset
 *                                or "host": host memory (aligned_alloc)
 *   KVFPGA_TEST_ATTN_CONFIGS=a,b the loop cases run over these entries of
 *                                configs[] only (each is one program build,
 *                                slow under QEMU TCG); an unknown name fails
 *   CK_RUN_CASE=attention        Check's own: one tcase
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvfpga/engine.h"
#include "kvfpga/kvfpga.h"
#include "helpers/test_layout.h"
#include "helpers/test_seed.h"
#include "helpers/test_util.h"

extern char **environ;

#define TOL       1e-5
#define SCORE_TOL 2e-7

static uint64_t g_seed;
static double g_worst; /* largest error / (TOL-scaled bound) seen, for the summary */
static struct kvfpga_engine *g_engine;
static char g_engine_msg[KVFPGA_ENGINE_MSG_MAX];

/* ---- configurations (each is one program build) ---- */

struct config {
	const char *name;
	struct kvfpga_attn_shape shape;
	struct kvfpga_attn *attn;
	int selected; /* by KVFPGA_TEST_ATTN_CONFIGS (all when unset) */
};

#define F32 KVFPGA_KV_F32
#define F16 KVFPGA_KV_F16

/* n_layers, n_q_heads, n_kv_heads, head_dim, block_size, dtype */
static struct config configs[] = {
	{ "h64-g1-f32-b16", { 2, 4, 4, 64, 16, F32 }, NULL, 1 },
	{ "h80-g4-f32-b32", { 2, 8, 2, 80, 32, F32 }, NULL, 1 },
	/* CPU variant: V passes of 2, 2 and 1 of the 5 head-dim vectors. */
	{ "h80-g8-f32-b16", { 2, 16, 2, 80, 16, F32 }, NULL, 1 },
	{ "h96-g8-f16-b8", { 2, 16, 2, 96, 8, F16 }, NULL, 1 },
	{ "h128-g4-f32-b16", { 2, 8, 2, 128, 16, F32 }, NULL, 1 },
	{ "h128-g4-f16-b16", { 2, 8, 2, 128, 16, F16 }, NULL, 1 },
	{ "h256-g1-f16-b16", { 2, 2, 2, 256, 16, F16 }, NULL, 1 },
	{ "h256-g8-f32-b16", { 3, 8, 1, 256, 16, F32 }, NULL, 1 },
	{ "h40-g2-f32-b16", { 2, 4, 2, 40, 16, F32 }, NULL, 1 }, /* VEC 8 */
	/* Scores of a 64-slot tile in several register passes (CPU variant). */
	{ "h64-g8-f32-b64", { 2, 16, 2, 64, 64, F32 }, NULL, 1 },
	/* With the above, every head dim of 64-256 runs with both f32 and f16 K/V. */
	{ "h64-g4-f16-b16", { 2, 8, 2, 64, 16, F16 }, NULL, 1 },
	{ "h80-g1-f16-b16", { 2, 2, 2, 80, 16, F16 }, NULL, 1 },
	{ "h96-g4-f32-b16", { 2, 8, 2, 96, 16, F32 }, NULL, 1 },
};

#define N_CONFIGS (sizeof(configs) / sizeof(configs[0]))

/*
 * The configurations one loop test runs over: @names (NULL-terminated; none
 * means every entry of configs[]) narrowed to the selected ones.  Case _i
 * runs on selected[_i]; salt[_i] is its position in the full list, so a
 * seed replays the same data whatever the selection.
 */
struct config_loop {
	const char *names[N_CONFIGS + 1];
	struct config *selected[N_CONFIGS];
	uint32_t salt[N_CONFIGS];
	int n;
};

static struct config_loop all_configs_loop;
/* h96-g8-f16-b8 is also one of the VM's configurations: long f16 decode on the card. */
static struct config_loop decode_long_loop = {
	.names = { "h128-g4-f32-b16", "h128-g4-f16-b16", "h64-g1-f32-b16", "h96-g8-f16-b8" },
};
static struct config_loop prefill_long_loop = {
	.names = { "h64-g1-f32-b16", "h128-g4-f16-b16" },
};
static struct config_loop decode_prefill_loop = {
	.names = { "h128-g4-f32-b16", "h96-g8-f16-b8", "h64-g1-f32-b16", "h80-g1-f16-b16",
	           "h256-g8-f32-b16", "h64-g8-f32-b64" },
};
static struct config_loop host_reference_loop = {
	.names = { "h80-g4-f32-b32", "h96-g8-f16-b8" },
};

static struct kvfpga_engine *engine(void)
{
	ck_assert_msg(g_engine, "no OpenCL engine: %s", g_engine_msg);
	return g_engine;
}

static struct kvfpga_attn *config_attn(struct config *c)
{
	if (!c->attn) {
		char msg[KVFPGA_ENGINE_MSG_MAX];
		int ret = kvfpga_attn_create(engine(), &c->shape, &c->attn);

		if (ret)
			kvfpga_engine_last_error(engine(), msg, sizeof(msg));
		ck_assert_msg(ret == 0, "%s: attn_create %d: %s", c->name, ret, ret ? msg : "");
	}
	return c->attn;
}

static struct config *find_config(const char *name, size_t len)
{
	for (size_t i = 0; i < N_CONFIGS; i++) {
		if (strlen(configs[i].name) == len && !strncmp(configs[i].name, name, len))
			return &configs[i];
	}
	return NULL;
}

static struct config *config_named(const char *name)
{
	struct config *c = find_config(name, strlen(name));

	ck_assert_msg(c, "no config %s", name);
	return c;
}

/*
 * KVFPGA_TEST_ATTN_CONFIGS: names separated by commas (or spaces); unset or
 * empty selects every configuration.  -EINVAL with the reason in @err for a
 * name that is not in configs[], one given twice, or none at all.
 */
static int select_configs(const char *spec, char *err, size_t len)
{
	const char *p = spec;
	int n = 0;

	if (!spec || !spec[0])
		return 0;
	for (size_t i = 0; i < N_CONFIGS; i++)
		configs[i].selected = 0;
	while (*p) {
		size_t word = strcspn(p, ", ");
		struct config *c;

		if (!word) {
			p++;
			continue;
		}
		c = find_config(p, word);
		if (!c || c->selected) {
			int off = snprintf(
			        err, len, "KVFPGA_TEST_ATTN_CONFIGS: %.*s %s", (int)word, p,
			        c ? "is listed twice" : "is not a configuration; known:");

			for (size_t i = 0; !c && i < N_CONFIGS && off > 0 && (size_t)off < len; i++)
				off += snprintf(err + off, len - (size_t)off, " %s",
				                configs[i].name);
			return -EINVAL;
		}
		c->selected = 1;
		n++;
		p += word;
	}
	if (!n) {
		snprintf(err, len, "KVFPGA_TEST_ATTN_CONFIGS names no configuration");
		return -EINVAL;
	}
	return 0;
}

/* Fills @l->selected from @l->names (all of configs[] when it has none). */
static void build_loop(struct config_loop *l)
{
	size_t total = l->names[0] ? 0 : N_CONFIGS;

	while (l->names[total])
		total++;
	l->n = 0;
	for (size_t i = 0; i < total; i++) {
		struct config *c =
		        l->names[0] ? find_config(l->names[i], strlen(l->names[i])) : &configs[i];

		if (!c) {
			/* A typo in this file: fail every run, not just the selective ones. */
			fprintf(stderr, "test_attention: loop lists unknown config %s\n",
			        l->names[i]);
			exit(EXIT_FAILURE);
		}
		if (c->selected) {
			l->selected[l->n] = c;
			l->salt[l->n] = (uint32_t)i;
			l->n++;
		}
	}
}

/* ---- arena and reference ---- */

/*
 * What one arena holds: its memory (host memory, or a mapped buffer object
 * on g_card), its registration, its block list.  Every open one is on
 * g_arenas, so that a case that fails half-way (and so leaves its function
 * early, CK_NOFORK) still gives its card memory back in the teardown.
 */
struct arena_mem {
	struct kvfpga_bo *bo; /* NULL: host memory */
	unsigned char *base;
	struct kvfpga_kv_arena *reg;
	int32_t *free_list;
	struct arena_mem *next;
};

static int g_arena_on_card; /* KVFPGA_TEST_ARENA=card */
static struct kvfpga_device *g_card;
static struct arena_mem *g_arenas;

struct arena {
	struct kvfpga_attn_shape shape;
	uint32_t n_blocks;
	uint64_t slice_elems, size;
	unsigned char *mem;
	struct kvfpga_kv_arena *reg;
	uint32_t next_free; /* blocks are handed out from a shuffled list */
	int32_t *free_list;
	struct arena_mem *backing;
};

/* @size bytes, page aligned, on the card or in host memory; fails the case on error. */
static struct arena_mem *arena_mem_new(uint64_t size)
{
	struct arena_mem *m = calloc(1, sizeof(*m));
	void *map = NULL;
	int ret;

	ck_assert_ptr_nonnull(m);
	m->next = g_arenas;
	g_arenas = m;
	if (!g_arena_on_card) {
		m->base = aligned_alloc(4096, (size + 4095) & ~4095ull);
		ck_assert_ptr_nonnull(m->base);
		return m;
	}
	ret = kvfpga_bo_create(g_card, size, 0, &m->bo);
	ck_assert_msg(ret == 0, "card buffer of %llu bytes for a K/V arena: %s (%d)",
	              (unsigned long long)size, kvfpga_strerror(ret), ret);
	ret = kvfpga_bo_map(m->bo, &map);
	ck_assert_msg(ret == 0, "mapping the K/V arena's card buffer: %s (%d)",
	              kvfpga_strerror(ret), ret);
	m->base = map;
	return m;
}

/* Releases the registration, then the memory; 0 or the unmap's error. */
static int arena_mem_free(struct arena_mem *m)
{
	struct arena_mem **link = &g_arenas;
	int ret = 0;

	while (*link && *link != m)
		link = &(*link)->next;
	if (*link)
		*link = m->next;
	kvfpga_kv_arena_release(m->reg);
	if (m->bo) {
		if (m->base)
			ret = kvfpga_bo_unmap(m->bo);
		kvfpga_bo_free(m->bo);
	} else {
		free(m->base);
	}
	free(m->free_list);
	free(m);
	return ret;
}

/* Checked teardown: what a failed case left open. */
static void free_leftover_arenas(void)
{
	while (g_arenas)
		arena_mem_free(g_arenas);
}

static uint32_t esize(const struct kvfpga_attn_shape *s)
{
	return s->kv_dtype == F16 ? 2 : 4;
}

static float frand(uint64_t *rng, float lo, float hi)
{
	return lo + (hi - lo) * (float)((double)(test_rand(rng) >> 11) * 0x1p-53);
}

static void store_elem(struct arena *a, uint64_t idx, float v)
{
	if (a->shape.kv_dtype == F16) {
		_Float16 h = (_Float16)v;

		memcpy(a->mem + idx * 2, &h, 2);
	} else {
		memcpy(a->mem + idx * 4, &v, 4);
	}
}

/*
 * binary16 -> double for the reference, by the compiler's conversion
 * (independent of the library's), once per bit pattern: the libgcc call
 * per element dominated the f16 cases' run time.
 */
static double g_f16_to_double[65536];

static void init_f16_table(void)
{
	for (uint32_t bits = 0; bits < 65536; bits++) {
		uint16_t b16 = (uint16_t)bits;
		_Float16 h;

		memcpy(&h, &b16, 2);
		g_f16_to_double[bits] = (double)h;
	}
}

/* The element as the reference sees it: decoded independently of the library. */
static double load_elem(const struct arena *a, uint64_t idx)
{
	if (a->shape.kv_dtype == F16) {
		uint16_t bits;

		memcpy(&bits, a->mem + idx * 2, 2);
		return g_f16_to_double[bits];
	}
	{
		float f;

		memcpy(&f, a->mem + idx * 4, 4);
		return f;
	}
}

static void fill_arena(struct arena *a, uint64_t *rng, float amp)
{
	uint64_t n = a->size / esize(&a->shape);

	for (uint64_t i = 0; i < n; i++)
		store_elem(a, i, frand(rng, -amp, amp));
}

static void arena_open_on(struct kvfpga_engine *e, struct arena *a,
                          const struct kvfpga_attn_shape *s, uint32_t n_blocks, uint64_t *rng)
{
	uint64_t block_bytes;

	memset(a, 0, sizeof(*a));
	a->shape = *s;
	a->n_blocks = n_blocks;
	ck_assert_int_eq(kvfpga_attn_shape_block_bytes(s, &block_bytes), 0);
	/* f32 and f16 only here: a slice is its K and V tiles, no scales. */
	a->slice_elems = test_slice_elems(s->n_kv_heads, s->block_size, s->head_dim);
	ck_assert_uint_eq(a->slice_elems * esize(s) * s->n_layers, block_bytes);
	a->size = block_bytes * n_blocks;
	a->backing = arena_mem_new(a->size);
	a->mem = a->backing->base;
	fill_arena(a, rng, 1.0f);
	ck_assert_int_eq(kvfpga_kv_arena_register(e, a->mem, a->size, &a->backing->reg), 0);
	a->reg = a->backing->reg;
	a->free_list = a->backing->free_list = malloc(n_blocks * sizeof(int32_t));
	ck_assert_ptr_nonnull(a->free_list);
	for (uint32_t i = 0; i < n_blocks; i++)
		a->free_list[i] = (int32_t)i;
	for (uint32_t i = n_blocks - 1; i > 0; i--) {
		uint32_t j = (uint32_t)test_rand_below(rng, i + 1);
		int32_t t = a->free_list[i];

		a->free_list[i] = a->free_list[j];
		a->free_list[j] = t;
	}
}

static void arena_open(struct arena *a, const struct kvfpga_attn_shape *s, uint32_t n_blocks,
                       uint64_t *rng)
{
	arena_open_on(engine(), a, s, n_blocks, rng);
}

static void arena_close(struct arena *a)
{
	int ret = arena_mem_free(a->backing);

	ck_assert_msg(ret == 0, "unmapping the K/V arena's card buffer: %s (%d)",
	              kvfpga_strerror(ret), ret);
}

/* A table of n_blocks distinct, scattered blocks (copying `shared` leading entries). */
static int32_t *new_table(struct arena *a, uint32_t n_blocks, const int32_t *shared,
                          uint32_t n_shared)
{
	int32_t *t = malloc((n_blocks ? n_blocks : 1) * sizeof(int32_t));

	ck_assert_ptr_nonnull(t);
	for (uint32_t i = 0; i < n_blocks; i++) {
		if (i < n_shared) {
			t[i] = shared[i];
			continue;
		}
		ck_assert_msg(a->next_free < a->n_blocks, "test arena too small");
		t[i] = a->free_list[a->next_free++];
	}
	return t;
}

static uint32_t blocks_for(const struct kvfpga_attn_shape *s, uint32_t tokens)
{
	return (tokens + s->block_size - 1) / s->block_size;
}

static uint64_t elem_index(const struct arena *a, const int32_t *table, uint32_t layer, int kv,
                           uint32_t head, uint32_t pos, uint32_t d)
{
	const struct kvfpga_attn_shape *s = &a->shape;

	return test_slice_start(layer, (uint32_t)table[pos / s->block_size], a->n_blocks,
	                        a->slice_elems) +
	       test_slice_elem((uint32_t)kv, head, pos % s->block_size, d, s->n_kv_heads,
	                       s->block_size, s->head_dim);
}

/*
 * Double-precision attention of one query row over positions 0..n_ctx-1:
 * ref[d], mag[d] and cond[d] as in the tolerance above.
 */
static void reference_row(const struct arena *a, const int32_t *table, uint32_t layer,
                          uint32_t q_head, uint32_t n_ctx, const float *q, float scale, double *ref,
                          double *mag, double *cond)
{
	const struct kvfpga_attn_shape *s = &a->shape;
	uint32_t kvh = q_head / (s->n_q_heads / s->n_kv_heads);
	double *sc = malloc(n_ctx * sizeof(double)), *sabs = malloc(n_ctx * sizeof(double));
	double mx = -INFINITY, sum = 0.0;

	ck_assert_ptr_nonnull(sc);
	ck_assert_ptr_nonnull(sabs);
	for (uint32_t t = 0; t < n_ctx; t++) {
		double dot = 0.0, dabs = 0.0;

		for (uint32_t d = 0; d < s->head_dim; d++) {
			double term = (double)q[d] *
			              load_elem(a, elem_index(a, table, layer, 0, kvh, t, d));

			dot += term;
			dabs += fabs(term);
		}
		sc[t] = dot * scale;
		sabs[t] = dabs * scale;
		if (sc[t] > mx)
			mx = sc[t];
	}
	for (uint32_t t = 0; t < n_ctx; t++) {
		sc[t] = exp(sc[t] - mx);
		sum += sc[t];
	}
	for (uint32_t d = 0; d < s->head_dim; d++)
		ref[d] = mag[d] = cond[d] = 0.0;
	for (uint32_t t = 0; t < n_ctx; t++) {
		double p = sc[t] / sum;

		for (uint32_t d = 0; d < s->head_dim; d++) {
			double v = load_elem(a, elem_index(a, table, layer, 1, kvh, t, d));

			ref[d] += p * v;
			mag[d] += p * fabs(v);
		}
	}
	for (uint32_t t = 0; t < n_ctx; t++) {
		double p = sc[t] / sum;

		for (uint32_t d = 0; d < s->head_dim; d++) {
			double v = load_elem(a, elem_index(a, table, layer, 1, kvh, t, d));

			cond[d] += p * sabs[t] * fabs(v - ref[d]);
		}
	}
	free(sc);
	free(sabs);
}

static float *new_floats(size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof(float));

	ck_assert_ptr_nonnull(p);
	return p;
}

static void poison(float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = NAN;
}

static void random_floats(float *p, size_t n, uint64_t *rng, float amp)
{
	for (size_t i = 0; i < n; i++)
		p[i] = frand(rng, -amp, amp);
}

/* Checks one output row against the reference and the tolerance above. */
static void check_row(const float *got, const double *ref, const double *mag, const double *cond,
                      uint32_t n, const char *what, uint32_t row)
{
	for (uint32_t d = 0; d < n; d++) {
		double err = fabs((double)got[d] - ref[d]);
		double bound = TOL * mag[d] + SCORE_TOL * cond[d] + 1e-30;

		EXPECT(err <= bound,
		       "%s: row %u element %u: got %.9g, reference %.9g (error %.3g > %.3g) seed "
		       "%llu",
		       what, row, d, (double)got[d], ref[d], err, bound,
		       (unsigned long long)g_seed);
		if (err / bound > g_worst)
			g_worst = err / bound;
	}
}

/* ---- decode / prefill drivers ---- */

struct decode_case {
	uint32_t n_seqs;
	uint32_t lens[8];
	int32_t *tables[8];
	uint32_t layer;
	float scale;
	uint32_t split_tokens;
	float *q, *out;
};

/* Runs dc on job, or on a job of its own when job is NULL, and checks every row. */
static void decode_run_on(struct kvfpga_attn *attn, struct kvfpga_attn_job *job, struct arena *a,
                          struct decode_case *dc, uint64_t *rng, float q_amp, const char *what)
{
	struct kvfpga_attn_job *own = NULL;
	const struct kvfpga_attn_shape *s = &a->shape;
	size_t row = s->head_dim, rows = (size_t)dc->n_seqs * s->n_q_heads;
	struct kvfpga_decode_batch b;
	double *ref = malloc(row * sizeof(double)), *mag = malloc(row * sizeof(double));
	double *cond = malloc(row * sizeof(double));
	int ret;

	ck_assert_ptr_nonnull(ref);
	ck_assert_ptr_nonnull(mag);
	ck_assert_ptr_nonnull(cond);
	dc->q = new_floats(rows * row);
	dc->out = new_floats(rows * row);
	random_floats(dc->q, rows * row, rng, q_amp);
	poison(dc->out, rows * row);
	memset(&b, 0, sizeof(b));
	b.layer = dc->layer;
	b.n_seqs = dc->n_seqs;
	b.seq_lens = dc->lens;
	b.block_tables = (const int32_t *const *)dc->tables;
	b.q = dc->q;
	b.out = dc->out;
	b.scale = dc->scale;
	b.split_tokens = dc->split_tokens;

	if (!job) {
		ck_assert_int_eq(kvfpga_attn_job_create(attn, &own), 0);
		job = own;
	}
	ret = kvfpga_attn_decode_submit(job, a->reg, &b);
	ck_assert_msg(ret == 0, "%s: submit %d: %s", what, ret, kvfpga_attn_job_error(job));
	ret = kvfpga_attn_job_wait(job);
	ck_assert_msg(ret == 0, "%s: wait %d: %s", what, ret, kvfpga_attn_job_error(job));
	kvfpga_attn_job_destroy(own);

	for (uint32_t sq = 0; sq < dc->n_seqs; sq++) {
		for (uint32_t h = 0; h < s->n_q_heads; h++) {
			size_t r = (size_t)sq * s->n_q_heads + h;
			char label[160];

			reference_row(a, dc->tables[sq], dc->layer, h, dc->lens[sq],
			              dc->q + r * row, dc->scale, ref, mag, cond);
			snprintf(label, sizeof(label), "%s seq %u (len %u) head %u", what, sq,
			         dc->lens[sq], h);
			check_row(dc->out + r * row, ref, mag, cond, s->head_dim, label,
			          (uint32_t)r);
		}
	}
	free(ref);
	free(mag);
	free(cond);
}

static void decode_run(struct kvfpga_attn *attn, struct arena *a, struct decode_case *dc,
                       uint64_t *rng, float q_amp, const char *what)
{
	decode_run_on(attn, NULL, a, dc, rng, q_amp, what);
}

static void decode_case_free(struct decode_case *dc)
{
	for (uint32_t i = 0; i < dc->n_seqs; i++)
		free(dc->tables[i]);
	free(dc->q);
	free(dc->out);
	memset(dc, 0, sizeof(*dc));
}

struct prefill_case {
	uint32_t start, n;
	int32_t *table;
	uint32_t layer;
	float scale;
	float *q, *out;
};

static void prefill_run(struct kvfpga_attn *attn, struct arena *a, struct prefill_case *pc,
                        uint64_t *rng, const char *what)
{
	const struct kvfpga_attn_shape *s = &a->shape;
	size_t row = s->head_dim, rows = (size_t)pc->n * s->n_q_heads;
	struct kvfpga_prefill_chunk c;
	struct kvfpga_attn_job *job;
	double *ref = malloc(row * sizeof(double)), *mag = malloc(row * sizeof(double));
	double *cond = malloc(row * sizeof(double));
	int ret;

	ck_assert_ptr_nonnull(ref);
	ck_assert_ptr_nonnull(mag);
	ck_assert_ptr_nonnull(cond);
	if (!pc->q) {
		pc->q = new_floats(rows * row);
		random_floats(pc->q, rows * row, rng, 1.0f);
	}
	pc->out = new_floats(rows * row);
	poison(pc->out, rows * row);
	memset(&c, 0, sizeof(c));
	c.layer = pc->layer;
	c.start_pos = pc->start;
	c.n_tokens = pc->n;
	c.block_table = pc->table;
	c.q = pc->q;
	c.out = pc->out;
	c.scale = pc->scale;

	ck_assert_int_eq(kvfpga_attn_job_create(attn, &job), 0);
	ret = kvfpga_attn_prefill_submit(job, a->reg, &c);
	ck_assert_msg(ret == 0, "%s: submit %d: %s", what, ret, kvfpga_attn_job_error(job));
	ret = kvfpga_attn_job_wait(job);
	ck_assert_msg(ret == 0, "%s: wait %d: %s", what, ret, kvfpga_attn_job_error(job));
	kvfpga_attn_job_destroy(job);

	for (uint32_t t = 0; t < pc->n; t++) {
		for (uint32_t h = 0; h < s->n_q_heads; h++) {
			size_t r = (size_t)t * s->n_q_heads + h;
			char label[160];

			reference_row(a, pc->table, pc->layer, h, pc->start + t + 1,
			              pc->q + r * row, pc->scale, ref, mag, cond);
			snprintf(label, sizeof(label), "%s token %u (position %u) head %u", what, t,
			         pc->start + t, h);
			check_row(pc->out + r * row, ref, mag, cond, s->head_dim, label,
			          (uint32_t)r);
		}
	}
	free(ref);
	free(mag);
	free(cond);
}

static uint64_t case_rng(uint32_t salt)
{
	return g_seed ^ ((uint64_t)salt * 0x9e3779b97f4a7c15ull);
}

/* ---- tests: conversions, shapes, options, devices ---- */

START_TEST(test_f16_conversion)
{
	uint64_t rng = case_rng(1);

	for (uint32_t bits = 0; bits < 65536; bits++) {
		_Float16 h;
		uint16_t b16 = (uint16_t)bits;
		float want, got = kvfpga_f16_to_f32(b16);

		memcpy(&h, &b16, 2);
		want = (float)h;
		if (isnan(want))
			EXPECT(isnan(got), "f16 %#06x: want NaN, got %g", bits, (double)got);
		else
			EXPECT(memcmp(&want, &got, 4) == 0, "f16 %#06x: want %a, got %a", bits,
			       (double)want, (double)got);
	}
	for (int i = 0; i < 2000000; i++) {
		uint32_t x = (uint32_t)test_rand(&rng);
		float f;
		_Float16 h;
		uint16_t want, got;

		/* Half the draws near the binary16 range, where rounding matters. */
		if (i & 1)
			x = (x & 0x807fffffu) | ((uint32_t)(96 + test_rand_below(&rng, 48)) << 23);
		memcpy(&f, &x, 4);
		h = (_Float16)f;
		memcpy(&want, &h, 2);
		got = kvfpga_f32_to_f16(f);
		if (isnan(f))
			EXPECT((got & 0x7c00) == 0x7c00 && (got & 0x3ff),
			       "f32 %#010x: want a NaN, got %#06x", x, got);
		else
			EXPECT(want == got, "f32 %#010x (%a): want %#06x, got %#06x seed %llu", x,
			       (double)f, want, got, (unsigned long long)g_seed);
	}
}
END_TEST

START_TEST(test_shape_checks)
{
	struct kvfpga_attn_shape ok = { 2, 8, 2, 128, 16, F16 }, s;
	uint64_t bytes = 0;
	struct kvfpga_attn *attn = NULL;

	ck_assert_int_eq(kvfpga_attn_shape_block_bytes(&ok, &bytes), 0);
	ck_assert_uint_eq(bytes, 2ull * 2 * 2 * 16 * 128 * 2);
	ck_assert_int_eq(kvfpga_attn_shape_block_bytes(NULL, &bytes), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_shape_block_bytes(&ok, NULL), -EINVAL);
#define BAD(field, value)                                                                          \
	do {                                                                                       \
		s = ok;                                                                            \
		s.field = value;                                                                   \
		ck_assert_int_eq(kvfpga_attn_shape_block_bytes(&s, &bytes), -EINVAL);              \
		ck_assert_int_eq(kvfpga_attn_create(engine(), &s, &attn), -EINVAL);                \
		ck_assert_ptr_null(attn);                                                          \
	} while (0)
	BAD(n_layers, 0);
	BAD(n_q_heads, 0);
	BAD(n_kv_heads, 0);
	BAD(n_kv_heads, 3);
	BAD(head_dim, 0);
	BAD(head_dim, 66);
	BAD(head_dim, 516);
	BAD(block_size, 0);
	BAD(block_size, 24);
	BAD(block_size, 512);
	BAD(kv_dtype, 0);
	BAD(kv_dtype, 4);
	BAD(n_q_heads, 256); /* 256 * 128 query elements: more than decode keeps */
#undef BAD
	ck_assert_int_eq(kvfpga_attn_create(NULL, &ok, &attn), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_create(engine(), &ok, NULL), -EINVAL);
}
END_TEST

static void set_env(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static char *saved_env(const char *name)
{
	const char *v = getenv(name);

	return v ? strdup(v) : NULL;
}

START_TEST(test_opts_env)
{
	char *dev = saved_env("KVFPGA_OPENCL_DEVICE"), *bin = saved_env("KVFPGA_OPENCL_BINARY"),
	     *cache = saved_env("KVFPGA_OPENCL_CACHE"), *tuning = saved_env("KVFPGA_OPENCL_TUNING"),
	     *poison = saved_env("KVFPGA_OPENCL_POISON");
	struct kvfpga_engine_opts o;
	char long_name[300];

	set_env("KVFPGA_OPENCL_BINARY", NULL);
	set_env("KVFPGA_OPENCL_CACHE", NULL);
	set_env("KVFPGA_OPENCL_DEVICE", NULL);
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.device_index, -1);
	ck_assert_str_eq(o.device_name, "");
	ck_assert_int_eq(o.no_cache, 0);

	set_env("KVFPGA_OPENCL_DEVICE", "3");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.device_index, 3);
	set_env("KVFPGA_OPENCL_DEVICE", "pthread");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.device_index, -1);
	ck_assert_str_eq(o.device_name, "pthread");
	set_env("KVFPGA_OPENCL_DEVICE", "99999999999999");
	o.device_index = 7;
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), -EINVAL);
	ck_assert_int_eq(o.device_index, 7); /* untouched on error */
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	set_env("KVFPGA_OPENCL_DEVICE", long_name);
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), -EINVAL);
	set_env("KVFPGA_OPENCL_DEVICE", NULL);

	set_env("KVFPGA_OPENCL_CACHE", "off");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.no_cache, 1);
	set_env("KVFPGA_OPENCL_CACHE", "/tmp/somewhere");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_str_eq(o.cache_dir, "/tmp/somewhere");
	set_env("KVFPGA_OPENCL_TUNING", "fpga");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.tuning, KVFPGA_TUNING_FPGA);
	set_env("KVFPGA_OPENCL_TUNING", "gpu");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), -EINVAL);
	set_env("KVFPGA_OPENCL_TUNING", tuning);
	set_env("KVFPGA_OPENCL_POISON", NULL);
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.poison_outputs, 0);
	set_env("KVFPGA_OPENCL_POISON", "1");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(o.poison_outputs, 1);
	set_env("KVFPGA_OPENCL_POISON", "yes");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), -EINVAL);
	set_env("KVFPGA_OPENCL_POISON", poison);
	set_env("KVFPGA_OPENCL_BINARY", "/x/y.xclbin");
	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_str_eq(o.binary, "/x/y.xclbin");
	ck_assert_int_eq(kvfpga_engine_opts_init(NULL), -EINVAL);

	set_env("KVFPGA_OPENCL_DEVICE", dev);
	set_env("KVFPGA_OPENCL_BINARY", bin);
	set_env("KVFPGA_OPENCL_CACHE", cache);
	free(dev);
	free(bin);
	free(cache);
	free(tuning);
	free(poison);
}
END_TEST

START_TEST(test_devices)
{
	struct kvfpga_cl_device_desc descs[16];
	struct kvfpga_engine_opts o;
	struct kvfpga_engine *e2 = NULL;
	char msg[KVFPGA_ENGINE_MSG_MAX], line[400];
	size_t n = 0;
	uint32_t idx = 99, eidx = 99;
	int usable = -1;

	ck_assert_int_eq(kvfpga_cl_list_devices(descs, 16, &n), 0);
	ck_assert_uint_ge(n, 1);
	ck_assert_int_eq(kvfpga_cl_list_devices(NULL, 1, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_cl_list_devices(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_engine_device_index(engine(), &eidx), 0);
	ck_assert_uint_lt(eidx, n);
	ck_assert_int_eq(descs[eidx].usable, 1);
	ck_assert_int_eq(kvfpga_engine_describe(engine(), line, sizeof(line)), 0);
	ck_assert_ptr_nonnull(strstr(line, descs[eidx].device));

	for (size_t i = 0; i < n && i < 16; i++) {
		ck_assert_uint_eq(descs[i].index, i);
		if (descs[i].usable && usable < 0)
			usable = (int)i;
	}
	ck_assert_int_ge(usable, 0);

	memset(&o, 0, sizeof(o));
	o.device_index = usable;
	ck_assert_int_eq(kvfpga_cl_pick_device(&o, &idx, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(idx, (uint32_t)usable);
	o.device_index = 1000;
	ck_assert_int_eq(kvfpga_cl_pick_device(&o, &idx, msg, sizeof(msg)), -ENODEV);
	ck_assert_ptr_nonnull(strstr(msg, "no OpenCL device 1000"));
	ck_assert_int_eq(kvfpga_engine_create(&o, &e2, msg, sizeof(msg)), -ENODEV);
	ck_assert_ptr_null(e2);

	/* By name: a substring of the device, in another case. */
	o.device_index = -1;
	snprintf(o.device_name, sizeof(o.device_name), "%s", descs[usable].device);
	for (char *p = o.device_name; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z'   ? *p - 32
		            : *p >= 'A' && *p <= 'Z' ? *p + 32
		                                     : *p);
	ck_assert_int_eq(kvfpga_cl_pick_device(&o, &idx, msg, sizeof(msg)), 0);
	ck_assert_int_eq(descs[idx].usable, 1);
	snprintf(o.device_name, sizeof(o.device_name), "no-such-device-%llu",
	         (unsigned long long)g_seed);
	ck_assert_int_eq(kvfpga_cl_pick_device(&o, &idx, msg, sizeof(msg)), -ENODEV);
	ck_assert_ptr_nonnull(strstr(msg, o.device_name));
	ck_assert_int_eq(kvfpga_engine_create(&o, &e2, msg, sizeof(msg)), -ENODEV);
	ck_assert_ptr_nonnull(strstr(msg, "no OpenCL device matches"));
	o.device_index = -2;
	ck_assert_int_eq(kvfpga_cl_pick_device(&o, &idx, msg, sizeof(msg)), -EINVAL);
	ck_assert_int_eq(kvfpga_engine_create(NULL, &e2, msg, sizeof(msg)), -EINVAL);
}
END_TEST

/* ---- tests: attention ---- */

/*
 * Batches per config: lengths 1, bs-1, bs, bs+1 and one random, two
 * sequences that share leading blocks, with the automatic split plan and
 * forced splits of 2 and 3 blocks (so the merge runs; with 3, every split
 * ends on a block that the CPU kernel's two-block passes read alone).  All
 * on one job, the batch shrinking then growing, so that what a job keeps
 * between calls (buffers sized for the largest batch so far) is checked
 * too.
 */
START_TEST(test_decode_configs)
{
	static const uint32_t pass_seqs[] = { 7, 5, 7, 7 };
	static const uint32_t pass_split[] = { 0, 2, 3, 2 };
	struct config *c = all_configs_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	struct kvfpga_attn *attn = config_attn(c);
	uint64_t rng = case_rng(100 + all_configs_loop.salt[_i]);
	uint32_t bs = s->block_size;
	struct kvfpga_attn_job *job;
	struct arena a;

	arena_open(&a, s, 200, &rng);
	ck_assert_int_eq(kvfpga_attn_job_create(attn, &job), 0);
	for (int pass = 0; pass < 4; pass++) {
		struct decode_case dc;
		uint32_t shared_len = bs * (2 + (uint32_t)test_rand_below(&rng, 4));
		uint32_t lens[7];
		char what[96];

		memset(&dc, 0, sizeof(dc));
		lens[0] = 1;
		lens[1] = bs > 1 ? bs - 1 : 1;
		lens[2] = bs;
		lens[3] = bs + 1;
		lens[4] = 17 + (uint32_t)test_rand_below(&rng, 300);
		lens[5] = shared_len + 1 + (uint32_t)test_rand_below(&rng, 40);
		lens[6] = shared_len + (uint32_t)test_rand_below(&rng, 40);
		dc.n_seqs = pass_seqs[pass];
		for (uint32_t i = 0; i < dc.n_seqs; i++) {
			dc.lens[i] = lens[i];
			/* Sequence 6 points at the same physical blocks as sequence 5. */
			dc.tables[i] = i == 6 ? new_table(&a, blocks_for(s, lens[6]), dc.tables[5],
			                                  shared_len / bs)
			                      : new_table(&a, blocks_for(s, lens[i]), NULL, 0);
		}
		dc.layer = (uint32_t)test_rand_below(&rng, s->n_layers);
		dc.scale = 1.0f / sqrtf((float)s->head_dim);
		dc.split_tokens = pass_split[pass] * bs;
		snprintf(what, sizeof(what), "%s decode pass %d (%u seqs, %s split)", c->name, pass,
		         dc.n_seqs,
		         pass_split[pass] == 0   ? "automatic"
		         : pass_split[pass] == 2 ? "2-block"
		                                 : "3-block");
		decode_run_on(attn, job, &a, &dc, &rng, 1.0f, what);
		decode_case_free(&dc);
		a.next_free = 0;
	}
	kvfpga_attn_job_destroy(job);
	arena_close(&a);
}
END_TEST

/* Several thousand tokens, f32 and f16, GQA 4 and 8 and MHA, two sequences. */
START_TEST(test_decode_long)
{
	struct config *c = decode_long_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(200 + decode_long_loop.salt[_i]);
	struct decode_case dc;
	struct arena a;

	/* Room for both sequences at their longest (5999 + 3999 tokens) at any block size. */
	arena_open(&a, s, blocks_for(s, 5999) + blocks_for(s, 3999), &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 2;
	dc.lens[0] = 3000 + (uint32_t)test_rand_below(&rng, 3000);
	dc.lens[1] = 1000 + (uint32_t)test_rand_below(&rng, 3000);
	dc.tables[0] = new_table(&a, blocks_for(s, dc.lens[0]), NULL, 0);
	dc.tables[1] = new_table(&a, blocks_for(s, dc.lens[1]), dc.tables[0], 8);
	dc.layer = 1;
	dc.scale = 1.0f / sqrtf((float)s->head_dim);
	decode_run(c->attn ? c->attn : config_attn(c), &a, &dc, &rng, 1.0f, c->name);
	decode_case_free(&dc);
	arena_close(&a);
}
END_TEST

/*
 * Numerical stability: scores of magnitude ~100 (exp would overflow float
 * without the running max), over a long context with a split.
 */
START_TEST(test_decode_large_scores)
{
	struct config *c = config_named("h128-g4-f32-b16");
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(300);
	struct decode_case dc;
	struct arena a;

	arena_open(&a, s, 200, &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 2;
	dc.lens[0] = 1500;
	dc.lens[1] = 37;
	dc.tables[0] = new_table(&a, blocks_for(s, dc.lens[0]), NULL, 0);
	dc.tables[1] = new_table(&a, blocks_for(s, dc.lens[1]), NULL, 0);
	dc.scale = 8.0f;
	dc.split_tokens = 256;
	decode_run(config_attn(c), &a, &dc, &rng, 2.0f, "large scores");
	decode_case_free(&dc);
	arena_close(&a);
}
END_TEST

/*
 * Scores that keep rising along the context: every K element of position t
 * is r(t), a ramp that climbs slowly for the first half (a tile raises a
 * score by a few log2 units, less than the CPU kernel's SOFTMAX_SLACK: its
 * reference maximum stays behind the true one) and steeply after (the
 * maximum moves every tile, the running sums are rescaled each time).  A
 * head whose query sums to a negative number sees falling scores instead.
 * With splits, so the merge gets partial maxima that are not the true ones.
 * GQA 4 f32 (the CPU decode kernel with the slack) and GQA 8 f16 (hd 96,
 * 8-slot blocks: the generic path, exact maxima).
 */
static void fill_rising_keys(struct arena *a, const int32_t *table, uint32_t len)
{
	const struct kvfpga_attn_shape *s = &a->shape;

	for (uint32_t t = 0; t < len; t++) {
		uint32_t half = len / 2;
		float r = t < half ? 0.02f * (float)t
		                   : 0.02f * (float)half + 0.3f * (float)(t - half);

		for (uint32_t h = 0; h < s->n_kv_heads; h++)
			for (uint32_t d = 0; d < s->head_dim; d++)
				store_elem(a, elem_index(a, table, 0, 0, h, t, d), r);
	}
}

START_TEST(test_decode_rising_scores)
{
	/* Configurations the VM suite builds anyway (each is a program build under TCG). */
	static const char *const names[] = { "h128-g4-f32-b16", "h96-g8-f16-b8" };
	struct config *c = config_named(names[_i]);
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(310 + (uint32_t)_i);
	struct decode_case dc;
	struct arena a;

	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 2;
	dc.lens[0] = 700;
	dc.lens[1] = 1100;
	arena_open(&a, s, blocks_for(s, dc.lens[0]) + blocks_for(s, dc.lens[1]), &rng);
	for (uint32_t i = 0; i < dc.n_seqs; i++) {
		dc.tables[i] = new_table(&a, blocks_for(s, dc.lens[i]), NULL, 0);
		fill_rising_keys(&a, dc.tables[i], dc.lens[i]);
	}
	dc.scale = 1.0f;
	dc.split_tokens = 256;
	decode_run(config_attn(c), &a, &dc, &rng, 1.0f, "rising scores");
	decode_case_free(&dc);
	arena_close(&a);
}
END_TEST

/* Chunks that start mid-block, at 0, and of one token; several tiles each. */
START_TEST(test_prefill_configs)
{
	struct config *c = all_configs_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	struct kvfpga_attn *attn = config_attn(c);
	uint64_t rng = case_rng(400 + all_configs_loop.salt[_i]);
	uint32_t bs = s->block_size;
	struct arena a;
	struct {
		uint32_t start, n;
	} chunks[3];

	chunks[0].start = bs * (1 + (uint32_t)test_rand_below(&rng, 6)) + 1 +
	                  (uint32_t)test_rand_below(&rng, bs > 1 ? bs - 1 : 1);
	chunks[0].n = 20 + (uint32_t)test_rand_below(&rng, 50);
	chunks[1].start = 0;
	chunks[1].n = 1 + (uint32_t)test_rand_below(&rng, 40);
	chunks[2].start = 5 + (uint32_t)test_rand_below(&rng, 100);
	chunks[2].n = 1;
	arena_open(&a, s, 120, &rng);
	for (int i = 0; i < 3; i++) {
		struct prefill_case pc;
		char what[96];

		memset(&pc, 0, sizeof(pc));
		pc.start = chunks[i].start;
		pc.n = chunks[i].n;
		pc.table = new_table(&a, blocks_for(s, pc.start + pc.n), NULL, 0);
		pc.layer = (uint32_t)test_rand_below(&rng, s->n_layers);
		pc.scale = 1.0f / sqrtf((float)s->head_dim);
		snprintf(what, sizeof(what), "%s prefill [%u, %u)", c->name, pc.start,
		         pc.start + pc.n);
		prefill_run(attn, &a, &pc, &rng, what);
		free(pc.table);
		free(pc.q);
		free(pc.out);
		a.next_free = 0;
	}
	arena_close(&a);
}
END_TEST

/* A long chunk (several tiles, hundreds of context blocks) stays bounded and exact. */
START_TEST(test_prefill_long)
{
	struct config *c = prefill_long_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(500 + prefill_long_loop.salt[_i]);
	struct prefill_case pc;
	struct arena a;

	arena_open(&a, s, 300, &rng);
	memset(&pc, 0, sizeof(pc));
	pc.start = 2000 + (uint32_t)test_rand_below(&rng, 1000);
	pc.n = 100 + (uint32_t)test_rand_below(&rng, 100);
	pc.table = new_table(&a, blocks_for(s, pc.start + pc.n), NULL, 0);
	pc.layer = 1;
	pc.scale = 1.0f / sqrtf((float)s->head_dim);
	prefill_run(config_attn(c), &a, &pc, &rng, "long prefill");
	free(pc.table);
	free(pc.q);
	free(pc.out);
	arena_close(&a);
}
END_TEST

/* Decode at each position of a prefill chunk gives the prefill's rows. */
START_TEST(test_decode_matches_prefill)
{
	struct config *c = decode_prefill_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	struct kvfpga_attn *attn = config_attn(c);
	uint64_t rng = case_rng(600 + decode_prefill_loop.salt[_i]);
	size_t row_elems = (size_t)s->n_q_heads * s->head_dim;
	struct prefill_case pc;
	struct decode_case dc;
	struct arena a;
	int32_t *tables[8];

	arena_open(&a, s, 100, &rng);
	memset(&pc, 0, sizeof(pc));
	pc.start = s->block_size * 3 + 3;
	pc.n = 8;
	pc.table = new_table(&a, blocks_for(s, pc.start + pc.n), NULL, 0);
	pc.scale = 0.1f;
	prefill_run(attn, &a, &pc, &rng, "prefill for decode comparison");

	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = pc.n;
	dc.scale = pc.scale;
	dc.split_tokens = s->block_size;
	for (uint32_t t = 0; t < pc.n; t++) {
		dc.lens[t] = pc.start + t + 1;
		tables[t] = pc.table;
	}
	{
		struct kvfpga_decode_batch b;
		struct kvfpga_attn_job *job;
		float *out = new_floats(pc.n * row_elems);

		poison(out, pc.n * row_elems);
		memset(&b, 0, sizeof(b));
		b.n_seqs = dc.n_seqs;
		b.seq_lens = dc.lens;
		b.block_tables = (const int32_t *const *)tables;
		b.q = pc.q; /* token t's queries are decode sequence t's */
		b.out = out;
		b.scale = dc.scale;
		b.split_tokens = dc.split_tokens;
		ck_assert_int_eq(kvfpga_attn_job_create(attn, &job), 0);
		ck_assert_int_eq(kvfpga_attn_decode_submit(job, a.reg, &b), 0);
		ck_assert_int_eq(kvfpga_attn_job_wait(job), 0);
		kvfpga_attn_job_destroy(job);
		for (size_t i = 0; i < pc.n * row_elems; i++) {
			double diff = fabs((double)out[i] - pc.out[i]);

			EXPECT(diff <= 2 * TOL * (fabs(pc.out[i]) + 0.05),
			       "element %zu: decode %.9g vs prefill %.9g seed %llu", i,
			       (double)out[i], (double)pc.out[i], (unsigned long long)g_seed);
		}
		free(out);
	}
	free(pc.table);
	free(pc.q);
	free(pc.out);
	arena_close(&a);
}
END_TEST

/* The library's host reference agrees with the test's (both double). */
START_TEST(test_host_reference)
{
	struct config *c = host_reference_loop.selected[_i];
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(700 + host_reference_loop.salt[_i]);
	size_t row = s->head_dim, rows;
	double *ref = malloc(row * sizeof(double)), *mag = malloc(row * sizeof(double));
	double *cond = malloc(row * sizeof(double));
	struct kvfpga_decode_batch b;
	struct kvfpga_prefill_chunk ch;
	struct decode_case dc;
	struct arena a;
	float *q, *out;

	arena_open(&a, s, 60, &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 3;
	dc.lens[0] = 1;
	dc.lens[1] = 77;
	dc.lens[2] = 300;
	for (uint32_t i = 0; i < 3; i++)
		dc.tables[i] = new_table(&a, blocks_for(s, dc.lens[i]), NULL, 0);
	rows = (size_t)dc.n_seqs * s->n_q_heads;
	/* Room for the 20-token prefill below too. */
	q = new_floats(20 * s->n_q_heads * row);
	out = new_floats(20 * s->n_q_heads * row);
	random_floats(q, 20 * s->n_q_heads * row, &rng, 1.0f);
	poison(out, rows * row);
	memset(&b, 0, sizeof(b));
	b.n_seqs = dc.n_seqs;
	b.seq_lens = dc.lens;
	b.block_tables = (const int32_t *const *)dc.tables;
	b.q = q;
	b.out = out;
	b.scale = 0.3f;
	ck_assert_int_eq(kvfpga_attn_reference_decode(s, a.mem, a.size, &b), 0);
	for (uint32_t r = 0; r < rows; r++) {
		uint32_t sq = r / s->n_q_heads, h = r % s->n_q_heads;

		reference_row(&a, dc.tables[sq], 0, h, dc.lens[sq], q + r * row, b.scale, ref, mag,
		              cond);
		for (uint32_t d = 0; d < s->head_dim; d++)
			EXPECT(fabs(out[r * row + d] - ref[d]) <= 1e-6 * (mag[d] + 1e-3),
			       "reference decode row %u elem %u: %.9g vs %.9g seed %llu", r, d,
			       (double)out[r * row + d], ref[d], (unsigned long long)g_seed);
	}
	/* Prefill of the last 20 tokens of sequence 2. */
	memset(&ch, 0, sizeof(ch));
	ch.start_pos = 280;
	ch.n_tokens = 20;
	ch.block_table = dc.tables[2];
	ch.q = q;
	ch.out = out;
	ch.scale = 0.3f;
	poison(out, 20 * s->n_q_heads * row);
	ck_assert_int_eq(kvfpga_attn_reference_prefill(s, a.mem, a.size, &ch), 0);
	for (uint32_t t = 0; t < 20; t++) {
		for (uint32_t h = 0; h < s->n_q_heads; h++) {
			size_t r = (size_t)t * s->n_q_heads + h;

			reference_row(&a, dc.tables[2], 0, h, 281 + t, q + r * row, ch.scale, ref,
			              mag, cond);
			for (uint32_t d = 0; d < s->head_dim; d++)
				EXPECT(fabs(out[r * row + d] - ref[d]) <= 1e-6 * (mag[d] + 1e-3),
				       "reference prefill token %u head %u: seed %llu", t, h,
				       (unsigned long long)g_seed);
		}
	}
	/* Same argument rules as the kernels. */
	ck_assert_int_eq(kvfpga_attn_reference_decode(s, NULL, a.size, &b), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_reference_decode(s, a.mem, a.size / 2, &b), -ERANGE);
	ck_assert_int_eq(kvfpga_attn_reference_prefill(NULL, a.mem, a.size, &ch), -EINVAL);
	free(q);
	free(out);
	free(ref);
	free(mag);
	free(cond);
	decode_case_free(&dc);
	arena_close(&a);
}
END_TEST

/*
 * The arena is used in place (CL_MEM_USE_HOST_PTR, no copy): K/V written
 * by the host after registration and after a first launch, with no OpenCL
 * call in between, are what the next launch reads.  A copying
 * implementation would keep computing on the old values.
 */
START_TEST(test_arena_zero_copy)
{
	struct config *c = config_named("h128-g4-f32-b16");
	const struct kvfpga_attn_shape *s = &c->shape;
	uint64_t rng = case_rng(800);
	struct decode_case dc;
	struct arena a;

	arena_open(&a, s, 40, &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 1;
	dc.lens[0] = 300;
	dc.tables[0] = new_table(&a, blocks_for(s, 300), NULL, 0);
	dc.scale = 0.2f;
	decode_run(config_attn(c), &a, &dc, &rng, 1.0f, "before rewrite");
	free(dc.q);
	free(dc.out);
	fill_arena(&a, &rng, 3.0f);
	decode_run(config_attn(c), &a, &dc, &rng, 1.0f, "after host rewrite");
	decode_case_free(&dc);
	arena_close(&a);
}
END_TEST

/* Two jobs in flight at once; poll; a busy job refuses a second submission. */
START_TEST(test_async_jobs)
{
	struct config *c = config_named("h64-g1-f32-b16");
	const struct kvfpga_attn_shape *s = &c->shape;
	struct kvfpga_attn *attn = config_attn(c);
	uint64_t rng = case_rng(900);
	size_t row = s->head_dim, rows = s->n_q_heads;
	double *ref = malloc(row * sizeof(double)), *mag = malloc(row * sizeof(double));
	double *cond = malloc(row * sizeof(double));
	struct kvfpga_attn_job *j1, *j2, *j3;
	struct kvfpga_decode_batch b1, b2;
	uint32_t len1 = 4000, len2 = 100;
	int32_t *t1, *t2;
	float *q1 = new_floats(rows * row), *q2 = new_floats(rows * row);
	float *o1 = new_floats(rows * row), *o2 = new_floats(rows * row);
	float *q1_sent = new_floats(rows * row);
	struct arena a;
	int ret;

	arena_open(&a, s, 300, &rng);
	t1 = new_table(&a, blocks_for(s, len1), NULL, 0);
	t2 = new_table(&a, blocks_for(s, len2), NULL, 0);
	random_floats(q1, rows * row, &rng, 1.0f);
	random_floats(q2, rows * row, &rng, 1.0f);
	poison(o1, rows * row);
	poison(o2, rows * row);
	memset(&b1, 0, sizeof(b1));
	b1.n_seqs = 1;
	b1.seq_lens = &len1;
	b1.block_tables = (const int32_t *const *)&t1;
	b1.q = q1;
	b1.out = o1;
	b1.scale = 0.125f;
	b2 = b1;
	b2.seq_lens = &len2;
	b2.block_tables = (const int32_t *const *)&t2;
	b2.q = q2;
	b2.out = o2;

	ck_assert_int_eq(kvfpga_attn_job_create(attn, &j1), 0);
	ck_assert_int_eq(kvfpga_attn_job_create(attn, &j2), 0);
	ck_assert_int_eq(kvfpga_attn_job_create(attn, &j3), 0);
	ck_assert_int_eq(kvfpga_attn_job_poll(j1), 0); /* idle */
	ck_assert_int_eq(kvfpga_attn_job_wait(j1), 0);
	ck_assert_int_eq(kvfpga_attn_decode_submit(j1, a.reg, &b1), 0);
	ck_assert_int_eq(kvfpga_attn_decode_submit(j2, a.reg, &b2), 0);
	/* The caller's q may change right after submit. */
	memcpy(q1_sent, q1, rows * row * sizeof(float));
	random_floats(q1, rows * row, &rng, 5.0f);
	ck_assert_int_eq(kvfpga_attn_decode_submit(j1, a.reg, &b1), -EBUSY);
	ck_assert_ptr_nonnull(strstr(kvfpga_attn_job_error(j1), "busy"));
	ret = kvfpga_attn_job_poll(j1);
	ck_assert_msg(ret == 0 || ret == -EBUSY, "poll %d", ret);
	ck_assert_int_eq(kvfpga_attn_job_wait(j2), 0);
	ck_assert_int_eq(kvfpga_attn_job_wait(j1), 0);
	ck_assert_int_eq(kvfpga_attn_job_poll(j1), 0);
	/* A job destroyed with work in flight waits for it. */
	ck_assert_int_eq(kvfpga_attn_decode_submit(j3, a.reg, &b2), 0);
	kvfpga_attn_job_destroy(j3);
	kvfpga_attn_job_destroy(j1);
	kvfpga_attn_job_destroy(j2);

	/* q1 was overwritten: o1 is for the queries as submitted. */
	for (uint32_t h = 0; h < rows; h++) {
		reference_row(&a, t1, 0, h, len1, q1_sent + h * row, 0.125f, ref, mag, cond);
		check_row(o1 + h * row, ref, mag, cond, s->head_dim, "job 1", h);
		reference_row(&a, t2, 0, h, len2, q2 + h * row, 0.125f, ref, mag, cond);
		check_row(o2 + h * row, ref, mag, cond, s->head_dim, "job 2", h);
	}
	free(t1);
	free(t2);
	free(q1);
	free(q1_sent);
	free(q2);
	free(o1);
	free(o2);
	free(ref);
	free(mag);
	free(cond);
	arena_close(&a);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct config *c = config_named("h64-g1-f32-b16");
	const struct kvfpga_attn_shape *s = &c->shape;
	struct kvfpga_attn *attn = config_attn(c);
	uint64_t rng = case_rng(1000);
	struct kvfpga_attn_job *job;
	struct kvfpga_decode_batch b, t;
	struct kvfpga_prefill_chunk p, u;
	struct kvfpga_kv_arena *reg = NULL;
	uint32_t len = 40;
	int32_t table[3] = { 0, 1, 2 };
	const int32_t *tables[1] = { table };
	float q[2 * 4 * 64] = { 0 }, out[2 * 4 * 64]; /* room for a 2-token prefill */
	struct arena a;

	arena_open(&a, s, 8, &rng);
	ck_assert_int_eq(kvfpga_kv_arena_register(NULL, a.mem, a.size, &reg), -EINVAL);
	ck_assert_int_eq(kvfpga_kv_arena_register(engine(), NULL, a.size, &reg), -EINVAL);
	ck_assert_int_eq(kvfpga_kv_arena_register(engine(), a.mem, 0, &reg), -EINVAL);
	ck_assert_int_eq(kvfpga_kv_arena_register(engine(), a.mem + 8, 4096, &reg), -EINVAL);
	ck_assert_int_eq(kvfpga_kv_arena_register(engine(), a.mem, a.size, NULL), -EINVAL);
	ck_assert_ptr_null(reg);

	ck_assert_int_eq(kvfpga_attn_job_create(NULL, &job), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_job_create(attn, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_job_create(attn, &job), 0);
	memset(&b, 0, sizeof(b));
	b.n_seqs = 1;
	b.seq_lens = &len;
	b.block_tables = tables;
	b.q = q;
	b.out = out;
	b.scale = 0.125f;
	ck_assert_int_eq(kvfpga_attn_decode_submit(NULL, a.reg, &b), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_decode_submit(job, NULL, &b), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_decode_submit(job, a.reg, NULL), -EINVAL);
#define BAD_DECODE(expect, stmt)                                                                   \
	do {                                                                                       \
		t = b;                                                                             \
		stmt;                                                                              \
		ck_assert_int_eq(kvfpga_attn_decode_submit(job, a.reg, &t), expect);               \
	} while (0)
	BAD_DECODE(-EINVAL, t.n_seqs = 0);
	BAD_DECODE(-EINVAL, t.seq_lens = NULL);
	BAD_DECODE(-EINVAL, t.block_tables = NULL);
	BAD_DECODE(-EINVAL, t.q = NULL);
	BAD_DECODE(-EINVAL, t.out = NULL);
	BAD_DECODE(-EINVAL, t.layer = s->n_layers);
	BAD_DECODE(-EINVAL, t.scale = 0.0f);
	BAD_DECODE(-EINVAL, t.scale = -1.0f);
	BAD_DECODE(-EINVAL, t.scale = NAN);
	BAD_DECODE(-EINVAL, t.scale = INFINITY);
	len = 0;
	BAD_DECODE(-EINVAL, (void)0);
	len = 40;
	table[2] = 8; /* one past the arena */
	BAD_DECODE(-ERANGE, (void)0);
	ck_assert_ptr_nonnull(strstr(kvfpga_attn_job_error(job), "entry 2 is 8"));
	table[2] = -1;
	BAD_DECODE(-ERANGE, (void)0);
	table[2] = 2;
#undef BAD_DECODE
	/* A job still works after all those refusals. */
	poison(out, 4 * 64);
	ck_assert_int_eq(kvfpga_attn_decode_submit(job, a.reg, &b), 0);
	ck_assert_int_eq(kvfpga_attn_job_wait(job), 0);
	for (int i = 0; i < 4 * 64; i++)
		ck_assert(isfinite(out[i]));

	memset(&p, 0, sizeof(p));
	p.start_pos = 30;
	p.n_tokens = 2;
	p.block_table = table;
	p.q = q;
	p.out = out;
	p.scale = 1.0f;
#define BAD_PREFILL(expect, stmt)                                                                  \
	do {                                                                                       \
		u = p;                                                                             \
		stmt;                                                                              \
		ck_assert_int_eq(kvfpga_attn_prefill_submit(job, a.reg, &u), expect);              \
	} while (0)
	BAD_PREFILL(-EINVAL, u.n_tokens = 0);
	BAD_PREFILL(-EINVAL, u.block_table = NULL);
	BAD_PREFILL(-EINVAL, u.q = NULL);
	BAD_PREFILL(-EINVAL, u.out = NULL);
	BAD_PREFILL(-EINVAL, u.layer = 5);
	BAD_PREFILL(-EINVAL, u.scale = 0.0f);
	BAD_PREFILL(-EINVAL, u.start_pos = 0x7fffffff);
	table[1] = 100;
	BAD_PREFILL(-ERANGE, (void)0);
	table[1] = 1;
#undef BAD_PREFILL
	ck_assert_int_eq(kvfpga_attn_prefill_submit(job, a.reg, &p), 0);
	ck_assert_int_eq(kvfpga_attn_job_wait(job), 0);

	/* An arena of another engine. */
	{
		struct kvfpga_engine_opts o;
		struct kvfpga_engine *e2;
		struct kvfpga_kv_arena *r2;
		char msg[KVFPGA_ENGINE_MSG_MAX];

		ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
		ck_assert_int_eq(kvfpga_engine_create(&o, &e2, msg, sizeof(msg)), 0);
		ck_assert_int_eq(kvfpga_kv_arena_register(e2, a.mem, a.size, &r2), 0);
		ck_assert_int_eq(kvfpga_attn_decode_submit(job, r2, &b), -EINVAL);
		ck_assert_ptr_nonnull(strstr(kvfpga_attn_job_error(job), "another engine"));
		kvfpga_kv_arena_release(r2);
		kvfpga_engine_destroy(e2);
	}
	/*
	 * An arena that is not a whole number of blocks (e.g. a padded buffer's
	 * full size): the layer offsets depend on the block count, so it is
	 * refused rather than read with the wrong layer.
	 */
	{
		struct kvfpga_kv_arena *r3;

		ck_assert_int_eq(kvfpga_kv_arena_register(engine(), a.mem, a.size - 4096, &r3), 0);
		ck_assert_int_eq(kvfpga_attn_decode_submit(job, r3, &b), -EINVAL);
		ck_assert_ptr_nonnull(strstr(kvfpga_attn_job_error(job), "whole number"));
		ck_assert_int_eq(kvfpga_attn_prefill_submit(job, r3, &p), -EINVAL);
		ck_assert_int_eq(kvfpga_attn_reference_decode(s, a.mem, a.size - 4096, &b),
		                 -EINVAL);
		ck_assert_int_eq(kvfpga_attn_reference_prefill(s, a.mem, a.size - 4096, &p),
		                 -EINVAL);
		kvfpga_kv_arena_release(r3);
	}
	/* One layer has no layer offsets: there any size is fine, the tail unused. */
	{
		struct kvfpga_attn_shape one = *s;

		one.n_layers = 1;
		ck_assert_int_eq(kvfpga_attn_reference_decode(&one, a.mem, a.size - 4096, &b), 0);
		ck_assert_int_eq(kvfpga_attn_reference_prefill(&one, a.mem, a.size - 4096, &p), 0);
	}
	ck_assert_int_eq(kvfpga_attn_job_wait(NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_attn_job_poll(NULL), -EINVAL);
	ck_assert_ptr_nonnull(kvfpga_attn_job_error(NULL));
	kvfpga_attn_job_destroy(job);
	kvfpga_attn_job_destroy(NULL);
	kvfpga_attn_destroy(NULL);
	kvfpga_kv_arena_release(NULL);
	kvfpga_engine_destroy(NULL);
	arena_close(&a);
}
END_TEST

/* ---- tests: programs, cache, binaries, errors ---- */

static char *make_temp_dir(void)
{
	char *d = strdup("/tmp/kvfpga-attn-test-XXXXXX");

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static void remove_tree(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct kvfpga_engine *engine_with(void (*tweak)(struct kvfpga_engine_opts *, void *),
                                         void *arg, char *msg, size_t len, int *ret)
{
	struct kvfpga_engine_opts o;
	struct kvfpga_engine *e = NULL;
	uint32_t idx;

	ck_assert_int_eq(kvfpga_engine_opts_init(&o), 0);
	ck_assert_int_eq(kvfpga_engine_device_index(engine(), &idx), 0);
	o.device_index = (int)idx;
	o.device_name[0] = '\0';
	o.binary[0] = '\0';
	o.poison_outputs = 1;
	tweak(&o, arg);
	*ret = kvfpga_engine_create(&o, &e, msg, len);
	return e;
}

static void tweak_cache(struct kvfpga_engine_opts *o, void *dir)
{
	snprintf(o->cache_dir, sizeof(o->cache_dir), "%s", (const char *)dir);
	o->no_cache = 0;
}

static void tweak_no_cache(struct kvfpga_engine_opts *o, void *unused)
{
	o->no_cache = 1;
}

static void tweak_binary(struct kvfpga_engine_opts *o, void *path)
{
	snprintf(o->binary, sizeof(o->binary), "%s", (const char *)path);
}

static void tweak_source(struct kvfpga_engine_opts *o, void *path)
{
	snprintf(o->source, sizeof(o->source), "%s", (const char *)path);
	o->no_cache = 1;
}

static void quick_decode(struct kvfpga_engine *e, struct kvfpga_attn *attn,
                         const struct kvfpga_attn_shape *s, uint64_t *rng)
{
	struct arena a;
	struct decode_case dc;

	arena_open_on(e, &a, s, 20, rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 1;
	dc.lens[0] = 100;
	dc.tables[0] = new_table(&a, blocks_for(s, 100), NULL, 0);
	dc.scale = 0.25f;
	decode_run(attn, &a, &dc, rng, 1.0f, "program from cache/binary");
	decode_case_free(&dc);
	arena_close(&a);
}

/*
 * Disk cache: a miss stores an entry, the next create loads it, a
 * corrupted entry is rebuilt and replaced, no_cache touches nothing; the
 * stored program then serves as a "prebuilt binary" for the right shape
 * and is refused, with a message, for another shape.
 */
START_TEST(test_program_cache_and_binary)
{
	struct kvfpga_attn_shape s = { 1, 4, 2, 64, 16, F32 }, other = { 1, 4, 2, 64, 32, F32 };
	char *dir = make_temp_dir();
	char msg[KVFPGA_ENGINE_MSG_MAX], path[KVFPGA_ENGINE_PATH_MAX + 64];
	struct kvfpga_attn_info info;
	struct kvfpga_engine *e;
	struct kvfpga_attn *attn;
	uint64_t rng = case_rng(1100);
	struct stat st;
	int ret;

	e = engine_with(tweak_cache, dir, msg, sizeof(msg), &ret);
	ck_assert_msg(ret == 0, "%s", msg);
	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_int_eq(info.origin, KVFPGA_PROGRAM_SOURCE);
	ck_assert_int_eq(info.cache, KVFPGA_CACHE_STORED);
	ck_assert_ptr_nonnull(strstr(info.path, dir));
	ck_assert_ptr_nonnull(strstr(info.build_options, "-DHEAD_DIM=64"));
	ck_assert_ptr_nonnull(strstr(info.build_options, "-DGROUP_SIZE=2"));
	ck_assert_int_eq(stat(info.path, &st), 0);
	ck_assert_int_gt(st.st_size, 0);
	snprintf(path, sizeof(path), "%s", info.path);
	kvfpga_attn_destroy(attn);

	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_int_eq(info.origin, KVFPGA_PROGRAM_CACHE);
	ck_assert_int_eq(info.cache, KVFPGA_CACHE_HIT);
	quick_decode(e, attn, &s, &rng);
	kvfpga_attn_destroy(attn);

	/* Corrupt the entry's binary: it must be rebuilt, not trusted. */
	{
		FILE *f = fopen(path, "r+b");

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(fseek(f, -64, SEEK_END), 0);
		for (int i = 0; i < 64; i++)
			fputc(0x5a, f);
		fclose(f);
	}
	ck_assert_int_eq(truncate(path, st.st_size - 10), 0);
	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_int_eq(info.origin, KVFPGA_PROGRAM_SOURCE);
	ck_assert_int_eq(info.cache, KVFPGA_CACHE_STORED);
	kvfpga_attn_destroy(attn);
	kvfpga_engine_destroy(e);

	/* The cached program as a prebuilt binary: right shape loads, wrong one is refused. */
	ck_assert_int_eq(stat(path, &st), 0);
	{
		FILE *f = fopen(path, "rb");
		char bin_path[KVFPGA_ENGINE_PATH_MAX];
		unsigned char *data = malloc((size_t)st.st_size + 16);
		uint64_t key_len, bin_len;
		size_t n;

		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(data);
		n = fread(data, 1, (size_t)st.st_size + 16, f);
		fclose(f);
		ck_assert_uint_ge(n, 24);
		memcpy(&key_len, data + 8, 8);
		memcpy(&bin_len, data + 16, 8);
		ck_assert_uint_eq(24 + key_len + bin_len, n);
		snprintf(bin_path, sizeof(bin_path), "%s/program.bin", dir);
		f = fopen(bin_path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(data + 24 + key_len, 1, bin_len, f), bin_len);
		fclose(f);
		free(data);

		e = engine_with(tweak_binary, bin_path, msg, sizeof(msg), &ret);
		ck_assert_msg(ret == 0, "%s", msg);
		ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
		ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
		ck_assert_int_eq(info.origin, KVFPGA_PROGRAM_BINARY);
		ck_assert_int_eq(info.cache, KVFPGA_CACHE_OFF);
		ck_assert_str_eq(info.path, bin_path);
		quick_decode(e, attn, &s, &rng);
		kvfpga_attn_destroy(attn);
		attn = NULL;
		ck_assert_int_eq(kvfpga_attn_create(e, &other, &attn), -ENOEXEC);
		ck_assert_ptr_null(attn);
		ck_assert_int_eq(kvfpga_engine_last_error(e, msg, sizeof(msg)), 0);
		ck_assert_msg(strstr(msg, "was built for") && strstr(msg, "block_size 16") &&
		                      strstr(msg, "block_size 32"),
		              "message: %s", msg);
		kvfpga_engine_destroy(e);

		/* A directory: the file is looked up by the shape's tag. */
		e = engine_with(tweak_binary, dir, msg, sizeof(msg), &ret);
		ck_assert_msg(ret == 0, "%s", msg);
		ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), -ENOENT);
		ck_assert_int_eq(kvfpga_engine_last_error(e, msg, sizeof(msg)), 0);
		ck_assert_msg(strstr(msg, "kvfpga_attn-h64-b16-kv2-g2-f32.bin"), "message: %s",
		              msg);
		kvfpga_engine_destroy(e);
	}

	/* no_cache: built from source, nothing stored. */
	e = engine_with(tweak_no_cache, NULL, msg, sizeof(msg), &ret);
	ck_assert_msg(ret == 0, "%s", msg);
	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_int_eq(info.origin, KVFPGA_PROGRAM_SOURCE);
	ck_assert_int_eq(info.cache, KVFPGA_CACHE_OFF);
	ck_assert_str_eq(info.path, "");
	kvfpga_attn_destroy(attn);
	kvfpga_engine_destroy(e);
	remove_tree(dir);
	free(dir);
}
END_TEST

static void tweak_fpga(struct kvfpga_engine_opts *o, void *unused)
{
	o->tuning = KVFPGA_TUNING_FPGA;
}

/*
 * The FPGA variant of the kernels (private tile copies, no prefetch), run
 * on this device: decode with lengths around the block size and a forced
 * split, and a prefill chunk that starts mid-block.
 */
START_TEST(test_fpga_variant)
{
	static const struct kvfpga_attn_shape shapes[] = {
		{ 2, 8, 2, 128, 16, F16 }, /* 16-token score path, f16 tiles */
		{ 2, 4, 4, 80, 8, F32 },   /* per-token score path */
	};
	const struct kvfpga_attn_shape *s = &shapes[_i];
	uint64_t rng = case_rng(1200 + (uint32_t)_i);
	char msg[KVFPGA_ENGINE_MSG_MAX];
	struct kvfpga_attn_info info;
	struct kvfpga_engine *e;
	struct kvfpga_attn *attn;
	struct decode_case dc;
	struct prefill_case pc;
	struct arena a;
	int ret;

	e = engine_with(tweak_fpga, NULL, msg, sizeof(msg), &ret);
	ck_assert_msg(ret == 0, "%s", msg);
	ck_assert_int_eq(kvfpga_attn_create(e, s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_ptr_null(strstr(info.build_options, "KVFPGA_CPU"));
	/* As on a card: queued writes and reads, a second kernel for the merge. */
	ck_assert_uint_eq(info.in_place, 0);
	ck_assert_uint_eq(info.fused_merge, 0);
	arena_open_on(e, &a, s, 100, &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 5;
	dc.lens[0] = 1;
	dc.lens[1] = s->block_size - 1;
	dc.lens[2] = s->block_size;
	dc.lens[3] = s->block_size + 1;
	dc.lens[4] = 200 + (uint32_t)test_rand_below(&rng, 300);
	for (uint32_t i = 0; i < dc.n_seqs; i++)
		dc.tables[i] = new_table(&a, blocks_for(s, dc.lens[i]), NULL, 0);
	dc.layer = 1;
	dc.scale = 1.0f / sqrtf((float)s->head_dim);
	dc.split_tokens = 4 * s->block_size;
	decode_run(attn, &a, &dc, &rng, 1.0f, "FPGA variant decode");
	decode_case_free(&dc);
	a.next_free = 0;
	memset(&pc, 0, sizeof(pc));
	pc.start = 3 * s->block_size + 5;
	pc.n = 37;
	pc.table = new_table(&a, blocks_for(s, pc.start + pc.n), NULL, 0);
	pc.scale = 0.2f;
	prefill_run(attn, &a, &pc, &rng, "FPGA variant prefill");
	free(pc.table);
	free(pc.q);
	free(pc.out);
	arena_close(&a);
	kvfpga_attn_destroy(attn);
	kvfpga_engine_destroy(e);
}
END_TEST

/* Whether the engine's device is a CPU (the in-place and fused-merge paths). */
static int engine_is_cpu(struct kvfpga_engine *e)
{
	struct kvfpga_cl_device_desc descs[16];
	uint32_t idx;
	size_t n;

	ck_assert_int_eq(kvfpga_cl_list_devices(descs, 16, &n), 0);
	ck_assert_int_eq(kvfpga_engine_device_index(e, &idx), 0);
	ck_assert_uint_lt(idx, n);
	return (descs[idx].type & KVFPGA_CL_TYPE_CPU) != 0;
}

/*
 * The two ways a split decode is merged, each checked against the
 * reference: the default program (on a CPU: data in place, the last split
 * of each sequence merges, one launch) and the same source built without
 * the fused merge (DECODE_FUSED_MERGE 0, as a prebuilt program for another
 * device would be: data still in place on a CPU, the merge a second
 * kernel).  A batch mixes sequences that use one split with ones that use
 * many.
 */
START_TEST(test_merge_paths)
{
	static const struct kvfpga_attn_shape s = { 2, 8, 2, 128, 16, F16 };
	uint64_t rng = case_rng(1300 + (uint32_t)_i);
	char *dir = NULL, src[600], msg[KVFPGA_ENGINE_MSG_MAX];
	struct kvfpga_engine *e = engine();
	struct kvfpga_attn_info info;
	struct kvfpga_attn *attn;
	struct decode_case dc;
	struct arena a;
	int cpu = engine_is_cpu(e), ret;

	if (_i == 1) {
		FILE *in, *out;
		char buf[4096];
		size_t n;

		dir = make_temp_dir();
		snprintf(src, sizeof(src), "%s/nofuse.cl", dir);
		in = fopen(KVFPGA_HW_DIR "/kvfpga_attention.cl", "r");
		out = fopen(src, "w");
		ck_assert_ptr_nonnull(in);
		ck_assert_ptr_nonnull(out);
		fputs("#define DECODE_FUSED_MERGE 0\n", out);
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
		fclose(in);
		ck_assert_int_eq(fclose(out), 0);
		e = engine_with(tweak_source, src, msg, sizeof(msg), &ret);
		ck_assert_msg(ret == 0, "%s", msg);
	}
	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), 0);
	ck_assert_int_eq(kvfpga_attn_query(attn, &info), 0);
	ck_assert_uint_eq(info.in_place, cpu);
	ck_assert_uint_eq(info.fused_merge, _i == 0 && cpu);
	arena_open_on(e, &a, &s, 200, &rng);
	memset(&dc, 0, sizeof(dc));
	dc.n_seqs = 5;
	dc.lens[0] = 1;
	dc.lens[1] = 2 * s.block_size; /* exactly one split */
	dc.lens[2] = 2 * s.block_size + 1;
	dc.lens[3] = 900 + (uint32_t)test_rand_below(&rng, 600);
	dc.lens[4] = 300 + (uint32_t)test_rand_below(&rng, 300);
	for (uint32_t i = 0; i < dc.n_seqs; i++)
		dc.tables[i] = new_table(&a, blocks_for(&s, dc.lens[i]), NULL, 0);
	dc.layer = 1;
	dc.scale = 1.0f / sqrtf((float)s.head_dim);
	dc.split_tokens = 2 * s.block_size;
	decode_run(attn, &a, &dc, &rng, 1.0f, _i == 0 ? "default merge" : "merge kernel");
	decode_case_free(&dc);
	arena_close(&a);
	kvfpga_attn_destroy(attn);
	if (dir) {
		kvfpga_engine_destroy(e);
		remove_tree(dir);
		free(dir);
	}
}
END_TEST

/* An OpenCL failure: negative errno, message naming call, error, device, log. */
START_TEST(test_build_error_message)
{
	char *dir = make_temp_dir();
	char src[600], msg[KVFPGA_ENGINE_MSG_MAX], dev[400];
	struct kvfpga_attn_shape s = { 1, 4, 2, 64, 16, F32 };
	struct kvfpga_cl_device_desc descs[16];
	struct kvfpga_engine *e;
	struct kvfpga_attn *attn = NULL;
	uint32_t idx;
	size_t n;
	FILE *f;
	int ret;

	snprintf(src, sizeof(src), "%s/broken.cl", dir);
	f = fopen(src, "w");
	ck_assert_ptr_nonnull(f);
	fputs("__kernel void kvfpga_decode_partial(__global float *p) { p[0] = undeclared_x; }\n",
	      f);
	fclose(f);
	e = engine_with(tweak_source, src, msg, sizeof(msg), &ret);
	ck_assert_msg(ret == 0, "%s", msg);
	ck_assert_int_eq(kvfpga_attn_create(e, &s, &attn), -ENOEXEC);
	ck_assert_ptr_null(attn);
	ck_assert_int_eq(kvfpga_engine_last_error(e, msg, sizeof(msg)), 0);
	ck_assert_int_eq(kvfpga_cl_list_devices(descs, 16, &n), 0);
	ck_assert_int_eq(kvfpga_engine_device_index(e, &idx), 0);
	snprintf(dev, sizeof(dev), "on %s", descs[idx].device);
	ck_assert_msg(strstr(msg, "clBuildProgram") && strstr(msg, "CL_BUILD_PROGRAM_FAILURE") &&
	                      strstr(msg, dev) && strstr(msg, "undeclared_x"),
	              "message: %s", msg);
	kvfpga_engine_destroy(e);

	/* A source file that does not exist. */
	snprintf(src, sizeof(src), "%s/missing.cl", dir);
	e = engine_with(tweak_source, src, msg, sizeof(msg), &ret);
	ck_assert_int_eq(ret, -ENOENT);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(msg, "missing.cl"));
	remove_tree(dir);
	free(dir);
}
END_TEST

/* ---- tests: FPGA build flow and xclbin metadata ---- */

/* Runs make with PATH pointing at an empty directory; returns the exit status. */
static int run_make(const char *target, const char *var, char *err, size_t len)
{
	char *dir = make_temp_dir();
	char path_env[400], hw[600], *argv[8];
	char *envp[] = { path_env, NULL };
	int pipefd[2], status = -1, argc = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	size_t got = 0;
	ssize_t r;

	snprintf(path_env, sizeof(path_env), "PATH=%s", dir);
	snprintf(hw, sizeof(hw), "%s/..", KVFPGA_HW_DIR);
	argv[argc++] = "make";
	argv[argc++] = "--no-print-directory";
	argv[argc++] = "-C";
	argv[argc++] = hw;
	argv[argc++] = (char *)target;
	if (var)
		argv[argc++] = (char *)var;
	argv[argc] = NULL;
	ck_assert_int_eq(pipe(pipefd), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	/* posix_spawnp searches this process's PATH; the child gets the empty one. */
	ck_assert_int_eq(posix_spawnp(&pid, "make", &fa, NULL, argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	while (got + 1 < len && (r = read(pipefd[0], err + got, len - 1 - got)) > 0)
		got += (size_t)r;
	err[got] = '\0';
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	remove_tree(dir);
	free(dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

START_TEST(test_fpga_build_flow_missing_tools)
{
	char err[2048];
	int rc;

	rc = run_make("xclbin", "PLATFORM=xilinx_u280_gen3x16_xdma_1_202211_1", err, sizeof(err));
	ck_assert_msg(rc != 0 && count_lines(err) == 1 && strstr(err, "v++"),
	              "xclbin without v++: rc %d, stderr: %s", rc, err);
	rc = run_make("aocx", "BOARD=p520_hpc_m210h_g3x16", err, sizeof(err));
	ck_assert_msg(rc != 0 && count_lines(err) == 1 && strstr(err, "aoc"),
	              "aocx without aoc: rc %d, stderr: %s", rc, err);
	rc = run_make("xclbin", NULL, err, sizeof(err));
	ck_assert_msg(rc != 0 && count_lines(err) == 1 && strstr(err, "PLATFORM"),
	              "xclbin without PLATFORM: rc %d, stderr: %s", rc, err);
	rc = run_make("aocx", NULL, err, sizeof(err));
	ck_assert_msg(rc != 0 && count_lines(err) == 1 && strstr(err, "BOARD"),
	              "aocx without BOARD: rc %d, stderr: %s", rc, err);
}
END_TEST

/*
 * A synthetic .xclbin in the documented axlf layout (xclbin.h: axlf 496
 * bytes, header at 304, sections at 456, 40 bytes each; ip_layout entries
 * of 80 bytes after an 8-byte count).
 */
struct xsec {
	uint32_t kind;
	const void *data;
	size_t len;
};

static unsigned char *make_xclbin(const struct xsec *secs, uint32_t n, size_t *len)
{
	size_t head = 456 + 40 * (size_t)n, total = head;
	unsigned char *p;
	uint64_t v;
	uint32_t u;
	int32_t sig = -1;

	for (uint32_t i = 0; i < n; i++)
		total += (secs[i].len + 7) & ~(size_t)7;
	p = calloc(1, total);
	ck_assert_ptr_nonnull(p);
	memcpy(p, "xclbin2", 8);
	memcpy(p + 8, &sig, 4);
	memset(p + 12, 0xff, 28);
	v = total;
	memcpy(p + 304, &v, 8);                                              /* m_length */
	p[304 + 26] = 2;                                                     /* m_versionMajor */
	strcpy((char *)p + 304 + 48, "xilinx_u280_gen3x16_xdma_1_202211_1"); /* m_platformVBNV */
	memcpy(p + 304 + 144, &n, 4);                                        /* m_numSections */
	v = head;
	for (uint32_t i = 0; i < n; i++) {
		unsigned char *sh = p + 456 + 40 * (size_t)i;
		uint64_t size = secs[i].len;

		u = secs[i].kind;
		memcpy(sh, &u, 4);
		memcpy(sh + 24, &v, 8);
		memcpy(sh + 32, &size, 8);
		memcpy(p + v, secs[i].data, secs[i].len);
		v += (secs[i].len + 7) & ~(size_t)7;
	}
	*len = total;
	return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

START_TEST(test_xclbin_inspect)
{
	static const char *const kernels[] = { "kvfpga_decode_partial", "kvfpga_decode_merge",
		                               "kvfpga_prefill", "kvfpga_build_info" };
	char xml[4096];
	unsigned char ip[8 + 4 * 80];
	char *dir = make_temp_dir(), path[600], msg[KVFPGA_ENGINE_MSG_MAX];
	struct kvfpga_xclbin_info info;
	struct xsec secs[2];
	unsigned char *img;
	size_t len, off = 0;
	int32_t count = 4;

	off += (size_t)snprintf(
	        xml, sizeof(xml),
	        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<project name=\"kvfpga\">"
	        "<platform vendor=\"xilinx\" boardid=\"u280\" name=\"x\" "
	        "featureRomTime=\"0\"><version major=\"1\" minor=\"0\"/>"
	        "<device name=\"fpga0\" fpgaDevice=\"virtexuplus\" addrWidth=\"0\">"
	        "<core name=\"OCL_REGION_0\" target=\"hw\" type=\"clc_region\" "
	        "clockFreq=\"300MHz\" numComputeUnits=\"4\">");
	memset(ip, 0, sizeof(ip));
	memcpy(ip, &count, 4);
	for (int k = 0; k < 4; k++) {
		uint32_t type = 1; /* IP_KERNEL */
		uint64_t base = 0x1000ull * (uint64_t)(k + 1);

		memcpy(ip + 8 + 80 * k, &type, 4);
		memcpy(ip + 8 + 80 * k + 8, &base, 8);
		snprintf((char *)ip + 8 + 80 * k + 16, 64, "%s:%s_1", kernels[k], kernels[k]);
		off += (size_t)snprintf(
		        xml + off, sizeof(xml) - off,
		        "<kernel name=\"%s\" language=\"c\" vlnv=\"xilinx.com:hls:%s:1.0\" "
		        "preferredWorkGroupSizeMultiple=\"0\" workGroupSize=\"1\" "
		        "interrupt=\"true\" hwControlProtocol=\"ap_ctrl_chain\">"
		        "<port name=\"M_AXI_GMEM\" mode=\"master\" range=\"0xFFFFFFFF\" "
		        "dataWidth=\"512\" portType=\"addressable\" base=\"0x0\"/>"
		        "<arg name=\"p\" addressQualifier=\"1\" id=\"0\" port=\"M_AXI_GMEM\" "
		        "size=\"0x8\" offset=\"0x10\" hostOffset=\"0x0\" hostSize=\"0x8\" "
		        "type=\"void*\"/><instance name=\"%s_1\"><addrRemap base=\"0x%llx\" "
		        "port=\"S_AXI_CONTROL\"/></instance></kernel>",
		        kernels[k], kernels[k], kernels[k], (unsigned long long)base);
	}
	off += (size_t)snprintf(xml + off, sizeof(xml) - off,
	                        "</core></device></platform></project>");
	secs[0] = (struct xsec){ 8 /* IP_LAYOUT */, ip, sizeof(ip) };
	secs[1] = (struct xsec){ 2 /* EMBEDDED_METADATA */, xml, off };
	img = make_xclbin(secs, 2, &len);
	snprintf(path, sizeof(path), "%s/t.xclbin", dir);
	write_file(path, img, len);

#if defined(KVFPGA_HAVE_XRT) && KVFPGA_HAVE_XRT
	ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), 0);
	ck_assert_str_eq(info.platform, "xilinx_u280_gen3x16_xdma_1_202211_1");
	ck_assert_uint_eq(info.n_ips, 4);
	ck_assert_str_eq(info.ips[2], "kvfpga_prefill:kvfpga_prefill_1");
	ck_assert_int_eq(info.has_attention, 1);
	ck_assert_uint_eq(info.n_kernels, 4);
	ck_assert_uint_eq(info.n_compute_units, 4);

	/* Damaged images are refused before XRT sees them (XRT would abort). */
	{
		unsigned char *bad = malloc(len);
		char broken_xml[4096];
		size_t bad_len;
		unsigned char *bad_img;

		ck_assert_ptr_nonnull(bad);
		memcpy(bad, img, len);
		bad[0] = 'X';
		write_file(path, bad, len);
		ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(msg, "magic"));
		write_file(path, img, len / 2);
		ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), -EBADMSG);
		memcpy(bad, img, len);
		count = 1000;
		memcpy(bad + 456 + 80, &count, 4); /* IP_LAYOUT count past its section */
		write_file(path, bad, len);
		ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(msg, "IP_LAYOUT"));
		free(bad);
		/* Truncated XML: well-formedness fails, the process survives. */
		memcpy(broken_xml, xml, off);
		secs[1].data = broken_xml;
		secs[1].len = off - 10;
		bad_img = make_xclbin(secs, 2, &bad_len);
		write_file(path, bad_img, bad_len);
		ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(msg, "XML"));
		free(bad_img);
		/* Only some kernels: read, but not an attention program. */
		count = 2;
		memcpy(ip, &count, 4);
		secs[1].data = xml;
		secs[1].len = off;
		bad_img = make_xclbin(secs, 2, &bad_len);
		write_file(path, bad_img, bad_len);
		ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), 0);
		ck_assert_int_eq(info.has_attention, 0);
		free(bad_img);
	}
#else
	ck_assert_int_eq(kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg)), -ENOTSUP);
#endif
	ck_assert_int_eq(kvfpga_xclbin_inspect(NULL, &info, msg, sizeof(msg)), -EINVAL);
	free(img);
	remove_tree(dir);
	free(dir);
}
END_TEST

static Suite *attention_suite(void)
{
	Suite *s = suite_create("attention");
	TCase *tc;

	tc = tcase_create("basics");
	tcase_add_test(tc, test_f16_conversion);
	tcase_add_test(tc, test_shape_checks);
	tcase_add_test(tc, test_opts_env);
	tcase_add_test(tc, test_devices);
	tcase_add_test(tc, test_fpga_build_flow_missing_tools);
	tcase_add_test(tc, test_xclbin_inspect);
	suite_add_tcase(s, tc);

	/*
	 * Loop tests run over the selected configurations only; the fixed
	 * cases after them (large scores, zero copy, jobs, bad arguments)
	 * always run, on h128-g4-f32-b16 and h64-g1-f32-b16.
	 */
	tc = tcase_create("attention");
	tcase_set_timeout(tc, 0);
	tcase_add_checked_fixture(tc, NULL, free_leftover_arenas);
	if (all_configs_loop.n)
		tcase_add_loop_test(tc, test_decode_configs, 0, all_configs_loop.n);
	if (decode_long_loop.n)
		tcase_add_loop_test(tc, test_decode_long, 0, decode_long_loop.n);
	tcase_add_test(tc, test_decode_large_scores);
	tcase_add_loop_test(tc, test_decode_rising_scores, 0, 2);
	if (all_configs_loop.n)
		tcase_add_loop_test(tc, test_prefill_configs, 0, all_configs_loop.n);
	if (prefill_long_loop.n)
		tcase_add_loop_test(tc, test_prefill_long, 0, prefill_long_loop.n);
	if (decode_prefill_loop.n)
		tcase_add_loop_test(tc, test_decode_matches_prefill, 0, decode_prefill_loop.n);
	if (host_reference_loop.n)
		tcase_add_loop_test(tc, test_host_reference, 0, host_reference_loop.n);
	tcase_add_test(tc, test_arena_zero_copy);
	tcase_add_test(tc, test_async_jobs);
	tcase_add_test(tc, test_bad_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("programs");
	tcase_set_timeout(tc, 0);
	tcase_add_checked_fixture(tc, NULL, free_leftover_arenas);
	tcase_add_test(tc, test_program_cache_and_binary);
	tcase_add_test(tc, test_build_error_message);
	tcase_add_loop_test(tc, test_fpga_variant, 0, 2);
	tcase_add_loop_test(tc, test_merge_paths, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * KVFPGA_TEST_ARENA: opens the device for card arenas and says where the
 * arenas live.  A bad value or a device that does not open ends the run:
 * no silent fallback to host memory.
 */
static int arena_backend_init(void)
{
	const char *where = getenv("KVFPGA_TEST_ARENA");
	struct kvfpga_open_opts opts;
	char line[256];
	int ret;

	if (!where || !where[0] || !strcmp(where, "host")) {
		printf("test_attention: K/V arenas in host memory\n");
		return 0;
	}
	if (strcmp(where, "card")) {
		fprintf(stderr, "test_attention: KVFPGA_TEST_ARENA=%s: want card or host\n", where);
		return -EINVAL;
	}
	g_arena_on_card = 1;
	ret = kvfpga_open_opts_init(&opts);
	if (!ret)
		ret = kvfpga_device_open(&opts, &g_card);
	if (!ret)
		ret = kvfpga_device_describe(g_card, line, sizeof(line));
	if (ret) {
		fprintf(stderr,
		        "test_attention: KVFPGA_TEST_ARENA=card: cannot open the kvfpga device "
		        "(KVFPGA_DEVICE=%s): %s (%d)\n",
		        getenv("KVFPGA_DEVICE") ? getenv("KVFPGA_DEVICE") : "",
		        kvfpga_strerror(ret), ret);
		kvfpga_device_close(g_card);
		g_card = NULL;
		return ret;
	}
	printf("test_attention: K/V arenas in card memory on %s\n", line);
	return 0;
}

int main(void)
{
	char err[512];
	int failed;

	g_seed = test_seed();
	init_f16_table();
	if (select_configs(getenv("KVFPGA_TEST_ATTN_CONFIGS"), err, sizeof(err))) {
		fprintf(stderr, "test_attention: %s\n", err);
		return EXIT_FAILURE;
	}
	build_loop(&all_configs_loop);
	build_loop(&decode_long_loop);
	build_loop(&prefill_long_loop);
	build_loop(&decode_prefill_loop);
	build_loop(&host_reference_loop);
	if (all_configs_loop.n < (int)N_CONFIGS) {
		printf("test_attention: loop cases on %d of %zu configurations "
		       "(KVFPGA_TEST_ATTN_CONFIGS):",
		       all_configs_loop.n, N_CONFIGS);
		for (int i = 0; i < all_configs_loop.n; i++)
			printf(" %s", all_configs_loop.selected[i]->name);
		printf("\n");
	}
	if (arena_backend_init())
		return EXIT_FAILURE;
	fflush(stdout);
	g_engine = test_engine_open(g_engine_msg, sizeof(g_engine_msg));
	/* One process: the engine and its built programs are shared by all cases. */
	failed = test_run_nofork(attention_suite());
	printf("test_attention: largest error was %.2f of the tolerance (seed %llu)\n", g_worst,
	       (unsigned long long)g_seed);
	if (failed)
		fprintf(stderr, "test_attention: seed %llu (KVFPGA_TEST_SEED=%llu replays)\n",
		        (unsigned long long)g_seed, (unsigned long long)g_seed);
	free_leftover_arenas();
	for (size_t i = 0; i < N_CONFIGS; i++)
		kvfpga_attn_destroy(configs[i].attn);
	kvfpga_engine_destroy(g_engine);
	kvfpga_device_close(g_card);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
