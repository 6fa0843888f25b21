/* SPDX-License-Identifier: MIT */
/*
 * Model-based test of the paged KV cache: thousands of random operations
 * (create, append, write, commit, fork, truncate, free, prefix lookup) on
 * seven shapes (f32, f16, int8, block sizes 1 to 16, caching off once),
 * each mirrored on a reference model kept in plain arrays, and after EVERY
 * operation the cache is compared with the model: return codes, lengths,
 * tokens, statistics, which sequences share which blocks, and every K/V
 * element read straight from the arena at the documented offsets.
 *
 * The model is deliberately naive: linear scans instead of hash tables and
 * lists, whole token prefixes compared instead of hashes, the eviction
 * victim chosen as "oldest release, then deepest" instead of list order.
 *
 * KVFPGA_TEST_SEED=<n> replays a run (the seed is in every failure),
 * KVFPGA_TEST_OPS=<n> sets the total number of operations (default 300000).
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test_layout.h"
#include "helpers/test_seed.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

#define MAXB        64  /* blocks */
#define MAXS        6   /* live sequences */
#define MAXLEN      256 /* tokens per sequence (n_blocks * block_size <= MAXLEN) */
#define MAXBS       16
#define MAXROW      8 /* n_kv_heads * head_dim */
#define N_TEMPLATES 4

struct config {
	const char *name;
	uint32_t layers, heads, head_dim, block_size, n_blocks;
	enum kvfpga_kvcache_dtype dtype;
	uint32_t flags;
};

static const struct config configs[] = {
	{ "f32 bs4", 2, 1, 2, 4, 24, KVFPGA_KVCACHE_F32, 0 },
	{ "f16 bs2", 1, 2, 3, 2, 20, KVFPGA_KVCACHE_F16, 0 },
	{ "f16 bs8", 2, 1, 1, 8, 16, KVFPGA_KVCACHE_F16, 0 },
	{ "f32 bs1", 1, 1, 2, 1, 12, KVFPGA_KVCACHE_F32, 0 },
	{ "f16 bs16", 1, 2, 2, 16, 10, KVFPGA_KVCACHE_F16, 0 },
	{ "f16 bs4 no-cache", 1, 1, 2, 4, 16, KVFPGA_KVCACHE_F16,
	  KVFPGA_KVCACHE_NO_PREFIX_CACHING },
	{ "i8 bs4", 2, 2, 3, 4, 16, KVFPGA_KVCACHE_I8, 0 },
};
#define N_CONFIGS (sizeof(configs) / sizeof(configs[0]))

enum { M_FREE, M_PRIVATE, M_PUBLISHED };

struct mblk {
	int state, ref;
	uint32_t gen;
	int impl; /* the cache's block id, -1 until seen in a block table */
	/* published: */
	int32_t prefix[MAXLEN]; /* every token up to the end of this block */
	uint64_t salt;
	int depth, parent;
	uint32_t parent_gen;
	uint64_t last_use;
	/* contents: per slot the key its K/V were written from, 0 = unknown */
	uint64_t vkey[MAXBS];
};

struct mseq {
	bool alive;
	struct kvfpga_kvseq *h;
	uint64_t salt;
	int tmpl;
	int32_t tok[MAXLEN];
	uint64_t ph[MAXLEN]; /* running hash of (salt, tokens[0..i]) */
	int len, committed, nb;
	int mt[MAXB];
};

struct model {
	const struct config *cfg;
	uint64_t seed, rng;
	long step;
	const char *op;
	bool caching;
	int bs, nb_total, row;
	struct mblk b[MAXB];
	struct mseq s[MAXS];
	uint64_t tick;
	long n_err[3]; /* operations the model expected to fail: -ENOSPC, -EPERM, -ERANGE */
	uint64_t hit_blocks, miss_blocks, hit_tokens, miss_tokens, evictions, cows;
	int32_t templates[N_TEMPLATES][MAXLEN];

	struct kvfpga_device *dev;
	struct kvfpga_kvcache *kc;
	const uint8_t *base;
	uint64_t slice_bytes; /* one (layer, block) slice, from the documented layout */
};

static void model_fail(const struct model *m, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void model_fail(const struct model *m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck_abort_msg("config '%s' seed %llu (KVFPGA_TEST_SEED=%llu) step %ld op %s: %s",
	             m->cfg->name, (unsigned long long)m->seed, (unsigned long long)m->seed,
	             m->step, m->op, msg);
}

#define EXPECT(m, cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			model_fail(m, __VA_ARGS__);                                                \
	} while (0)

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t rnd(struct model *m, uint64_t n)
{
	return test_rand_below(&m->rng, n);
}

static bool chance(struct model *m, int percent)
{
	return (int)rnd(m, 100) < percent;
}

/*
 * The K/V element of (layer, kv, e = head * head_dim + d) written from key
 * @vkey.  Floats of all magnitudes for f32/f16 (f16 subnormals and Inf
 * included); for int8, multiples of 1/8 with +-127/8 as each head's first
 * element, so every head's scale is exactly 1/8 and storage is exact.
 */
static float value_of(const struct config *c, uint64_t vkey, uint32_t layer, uint32_t kv,
                      uint32_t e)
{
	uint64_t x = mix64(vkey ^ ((uint64_t)layer << 40) ^ ((uint64_t)kv << 32) ^ e);
	uint32_t exp = 127 - 20 + (uint32_t)(x % 41); /* 2^-20 .. 2^20 */
	uint32_t bits = (uint32_t)((x >> 63) << 31) | exp << 23 | (uint32_t)((x >> 8) & 0x7fffff);
	float f;

	if (c->dtype == KVFPGA_KVCACHE_I8) {
		float sign = (x >> 63) ? -1.0f : 1.0f;

		if (e % c->head_dim == 0)
			return sign * 15.875f;
		return (float)((int)(x % 255) - 127) / 8.0f;
	}
	memcpy(&f, &bits, 4);
	return f;
}

static uint64_t key_of(const struct mseq *s, int pos, int version)
{
	return mix64(s->ph[pos] + 0x9e3779b97f4a7c15ull * (uint64_t)version) | 1;
}

/* ---- the reference model ---- */

static int count_err(struct model *m, int err)
{
	if (err == -ENOSPC)
		m->n_err[0]++;
	else if (err == -EPERM)
		m->n_err[1]++;
	else if (err == -ERANGE)
		m->n_err[2]++;
	return err;
}

static int m_avail(const struct model *m)
{
	int n = 0;

	for (int i = 0; i < m->nb_total; i++)
		n += m->b[i].state == M_FREE || (m->b[i].state == M_PUBLISHED && m->b[i].ref == 0);
	return n;
}

static int m_alloc(struct model *m)
{
	int id = -1;

	for (int i = 0; i < m->nb_total && id < 0; i++)
		if (m->b[i].state == M_FREE)
			id = i;
	if (id < 0) {
		/* Least recently released, then deepest. */
		for (int i = 0; i < m->nb_total; i++) {
			const struct mblk *c = &m->b[i];

			if (c->state != M_PUBLISHED || c->ref)
				continue;
			if (id < 0 || c->last_use < m->b[id].last_use ||
			    (c->last_use == m->b[id].last_use && c->depth > m->b[id].depth))
				id = i;
		}
		EXPECT(m, id >= 0, "model: nothing to evict");
		m->b[id].gen++;
		m->evictions++;
	}
	m->b[id].state = M_PRIVATE;
	m->b[id].ref = 1;
	m->b[id].impl = -1;
	memset(m->b[id].vkey, 0, sizeof(m->b[id].vkey));
	return id;
}

static int m_copy(struct model *m, int src)
{
	int id = m_alloc(m);

	memcpy(m->b[id].vkey, m->b[src].vkey, sizeof(m->b[id].vkey));
	m->cows++;
	return id;
}

static void m_release(struct model *m, int id)
{
	struct mblk *b = &m->b[id];

	if (--b->ref)
		return;
	if (b->state == M_PUBLISHED) {
		b->last_use = m->tick;
	} else {
		b->state = M_FREE;
		b->gen++;
		b->impl = -1;
	}
}

/* The published block holding exactly prefix[0..plen) under @parent, or -1. */
static int m_find(const struct model *m, const int32_t *prefix, int plen, uint64_t salt, int parent)
{
	for (int i = 0; i < m->nb_total; i++) {
		const struct mblk *b = &m->b[i];

		if (b->state != M_PUBLISHED || b->salt != salt || (b->depth + 1) * m->bs != plen ||
		    b->parent != parent)
			continue;
		if (parent >= 0 && b->parent_gen != m->b[parent].gen)
			continue;
		if (memcmp(b->prefix, prefix, (size_t)plen * sizeof(int32_t)) == 0)
			return i;
	}
	return -1;
}

static void m_push_token(struct mseq *s, int32_t t)
{
	uint64_t prev = s->len ? s->ph[s->len - 1] : mix64(s->salt ^ 0x5a17);

	s->tok[s->len] = t;
	s->ph[s->len] = mix64(prev ^ (uint32_t)t);
	s->len++;
}

static int m_append(struct model *m, struct mseq *s, const int32_t *t, int n, int *n_cached)
{
	int bs = m->bs, nb = s->nb, mcount = 0, offered = 0, reuse_lru = 0, rest, room = 0;
	int matched[MAXB], fresh;
	bool eligible, cow = false;

	*n_cached = 0;
	if (n == 0)
		return 0;
	if ((s->len + n + bs - 1) / bs > m->nb_total)
		return -ENOSPC;
	eligible = m->caching && s->len % bs == 0 && s->committed == s->len &&
	           (nb == 0 || m->b[s->mt[nb - 1]].state == M_PUBLISHED);
	if (eligible) {
		int32_t pfx[MAXLEN];
		int parent = nb ? s->mt[nb - 1] : -1;

		memcpy(pfx, s->tok, (size_t)s->len * sizeof(int32_t));
		memcpy(pfx + s->len, t, (size_t)n * sizeof(int32_t));
		offered = (n - 1) / bs;
		while (mcount < offered) {
			int id = m_find(m, pfx, s->len + (mcount + 1) * bs, s->salt, parent);

			if (id < 0)
				break;
			matched[mcount++] = id;
			reuse_lru += m->b[id].ref == 0;
			parent = id;
		}
	}
	rest = n - mcount * bs;
	if (s->len % bs) {
		int last = s->mt[nb - 1];

		room = bs - s->len % bs;
		cow = m->b[last].ref > 1 || m->b[last].state == M_PUBLISHED;
	}
	fresh = rest > room ? (rest - room + bs - 1) / bs : 0;
	if (fresh + (int)cow > m_avail(m) - reuse_lru)
		return -ENOSPC;

	for (int i = 0; i < mcount; i++) {
		m->b[matched[i]].ref++;
		s->mt[s->nb++] = matched[i];
		for (int j = 0; j < bs; j++)
			m_push_token(s, t[i * bs + j]);
	}
	if (mcount)
		s->committed = s->len;
	if (cow) {
		int old = s->mt[nb - 1];

		s->mt[nb - 1] = m_copy(m, old);
		m_release(m, old);
	}
	for (int i = mcount * bs; i < n; i++) {
		if (s->len % bs == 0)
			s->mt[s->nb++] = m_alloc(m);
		m_push_token(s, t[i]);
	}
	if (eligible) {
		m->hit_blocks += (uint64_t)mcount;
		m->miss_blocks += (uint64_t)(offered - mcount);
		m->hit_tokens += (uint64_t)mcount * bs;
		m->miss_tokens += (uint64_t)rest;
	}
	*n_cached = mcount * bs;
	return 0;
}

static int m_write(struct model *m, struct mseq *s, int pos, int n, int version)
{
	int copies = 0;

	if (n == 0)
		return 0;
	if (pos >= s->len || n > s->len - pos)
		return -ERANGE;
	if (pos < s->committed)
		return -EPERM;
	for (int i = pos / m->bs; i <= (pos + n - 1) / m->bs; i++) {
		if (m->b[s->mt[i]].state == M_PUBLISHED)
			return -EPERM;
		copies += m->b[s->mt[i]].ref > 1;
	}
	if (copies > m_avail(m))
		return -ENOSPC;
	for (int i = pos / m->bs; i <= (pos + n - 1) / m->bs; i++) {
		int old = s->mt[i];

		if (m->b[old].ref > 1) {
			s->mt[i] = m_copy(m, old);
			m_release(m, old);
		}
	}
	for (int p = pos; p < pos + n; p++)
		m->b[s->mt[p / m->bs]].vkey[p % m->bs] = key_of(s, p, version);
	return 0;
}

static int m_commit(struct model *m, struct mseq *s, int n)
{
	if (n > s->len)
		return -ERANGE;
	if (n <= s->committed)
		return 0;
	s->committed = n;
	if (!m->caching)
		return 0;
	for (int i = 0; i < n / m->bs; i++) {
		int id = s->mt[i], parent = i ? s->mt[i - 1] : -1, same;
		struct mblk *b = &m->b[id];

		if (parent >= 0 && m->b[parent].state != M_PUBLISHED)
			break;
		if (b->state == M_PUBLISHED)
			continue;
		same = m_find(m, s->tok, (i + 1) * m->bs, s->salt, parent);
		if (same < 0) {
			b->state = M_PUBLISHED;
			memcpy(b->prefix, s->tok, (size_t)(i + 1) * m->bs * sizeof(int32_t));
			b->salt = s->salt;
			b->depth = i;
			b->parent = parent;
			b->parent_gen = parent >= 0 ? m->b[parent].gen : 0;
		} else if (b->ref == 1) {
			m->b[same].ref++;
			s->mt[i] = same;
			m_release(m, id);
		} else {
			break;
		}
	}
	return 0;
}

static int m_truncate(struct model *m, struct mseq *s, int len)
{
	int keep;

	if (len > s->len)
		return -ERANGE;
	keep = (len + m->bs - 1) / m->bs;
	while (s->nb > keep)
		m_release(m, s->mt[--s->nb]);
	s->len = len;
	if (s->committed > len)
		s->committed = len;
	return 0;
}

static int m_fork(struct model *m, const struct mseq *s, struct mseq *c)
{
	bool partial = s->len % m->bs != 0;

	if (partial && m_avail(m) < 1)
		return -ENOSPC;
	*c = *s;
	for (int i = 0; i < s->nb - (int)partial; i++)
		m->b[s->mt[i]].ref++;
	if (partial)
		c->mt[s->nb - 1] = m_copy(m, s->mt[s->nb - 1]);
	return 0;
}

static void m_free(struct model *m, struct mseq *s)
{
	while (s->nb > 0)
		m_release(m, s->mt[--s->nb]);
	s->alive = false;
}

static int m_lookup(const struct model *m, const int32_t *t, int n, uint64_t salt)
{
	int mcount = 0, parent = -1;

	if (!m->caching || n == 0)
		return 0;
	while (mcount < (n - 1) / m->bs) {
		int id = m_find(m, t, (mcount + 1) * m->bs, salt, parent);

		if (id < 0)
			break;
		parent = id;
		mcount++;
	}
	return mcount * m->bs;
}

/* ---- comparing the cache with the model ---- */

/* The stored element at the documented offsets (f16 raw in *raw16; int8 as q * scale). */
static float arena_elem(const struct model *m, int32_t block, uint32_t layer, uint32_t kv,
                        uint32_t head, uint32_t slot, uint32_t d, uint16_t *raw16)
{
	const struct config *c = m->cfg;
	uint64_t esz = c->dtype == KVFPGA_KVCACHE_F32 ? 4 : c->dtype == KVFPGA_KVCACHE_F16 ? 2 : 1;
	uint64_t off = test_slice_elem(kv, head, slot, d, c->heads, c->block_size, c->head_dim);
	const uint8_t *slice =
	        m->base + test_slice_start(layer, (uint32_t)block, c->n_blocks, m->slice_bytes);
	float f = 0;

	if (esz == 4) {
		memcpy(&f, slice + off * 4, 4);
	} else if (esz == 2) {
		memcpy(raw16, slice + off * 2, 2);
	} else {
		uint64_t scale_at = test_i8_scale_offset(c->heads, c->block_size, c->head_dim) +
		                    ((uint64_t)kv * c->heads + head) * 4;

		memcpy(&f, slice + scale_at, 4);
		f *= (float)(int8_t)slice[off];
	}
	return f;
}

static void check_all(struct model *m)
{
	const struct config *c = m->cfg;
	struct kvfpga_kvcache_stats st;
	int rev[MAXB], used = 0, cached = 0, free_ = 0, published = 0;
	struct kvfpga_kvseq *handles[MAXS];
	int idx[MAXS], n_live = 0;
	int32_t table[MAXS * MAXB], lens[MAXS];

	EXPECT(m, kvfpga_kvcache_verify(m->kc) == 0, "verify() found a broken invariant");

	for (int i = 0; i < m->nb_total; i++) {
		const struct mblk *b = &m->b[i];

		free_ += b->state == M_FREE;
		published += b->state == M_PUBLISHED;
		cached += b->state == M_PUBLISHED && b->ref == 0;
		used += b->ref > 0;
	}
	EXPECT(m, kvfpga_kvcache_get_stats(m->kc, &st) == 0, "stats");
	EXPECT(m, st.blocks_total == (uint32_t)m->nb_total, "blocks_total");
	EXPECT(m, st.blocks_free == (uint32_t)free_, "blocks_free %u, model %d", st.blocks_free,
	       free_);
	EXPECT(m, st.blocks_cached == (uint32_t)cached, "blocks_cached %u, model %d",
	       st.blocks_cached, cached);
	EXPECT(m, st.blocks_used == (uint32_t)used, "blocks_used %u, model %d", st.blocks_used,
	       used);
	EXPECT(m, st.blocks_published == (uint32_t)published, "blocks_published %u, model %d",
	       st.blocks_published, published);
	EXPECT(m, st.evictions == m->evictions, "evictions %llu, model %llu",
	       (unsigned long long)st.evictions, (unsigned long long)m->evictions);
	EXPECT(m, st.cow_copies == m->cows, "cow_copies %llu, model %llu",
	       (unsigned long long)st.cow_copies, (unsigned long long)m->cows);
	EXPECT(m,
	       st.prefix_hit_blocks == m->hit_blocks && st.prefix_miss_blocks == m->miss_blocks &&
	               st.prefix_hit_tokens == m->hit_tokens &&
	               st.prefix_miss_tokens == m->miss_tokens,
	       "prefix stats %llu/%llu blocks %llu/%llu tokens, model %llu/%llu %llu/%llu",
	       (unsigned long long)st.prefix_hit_blocks, (unsigned long long)st.prefix_miss_blocks,
	       (unsigned long long)st.prefix_hit_tokens, (unsigned long long)st.prefix_miss_tokens,
	       (unsigned long long)m->hit_blocks, (unsigned long long)m->miss_blocks,
	       (unsigned long long)m->hit_tokens, (unsigned long long)m->miss_tokens);

	for (int i = 0; i < MAXS; i++)
		if (m->s[i].alive) {
			idx[n_live] = i;
			handles[n_live++] = m->s[i].h;
		}
	EXPECT(m, st.n_seqs == (uint32_t)n_live, "n_seqs");
	EXPECT(m,
	       kvfpga_kvcache_batch_table(m->kc, handles, (uint32_t)n_live, MAXB, table, lens) == 0,
	       "batch_table");

	/* Block identity: model blocks and cache blocks correspond one to one. */
	for (int i = 0; i < MAXB; i++)
		rev[i] = -1;
	for (int i = 0; i < m->nb_total; i++) {
		int impl = m->b[i].impl;

		if (m->b[i].state == M_FREE || impl < 0)
			continue;
		EXPECT(m, rev[impl] < 0, "cache block %d stands for model blocks %d and %d", impl,
		       rev[impl], i);
		rev[impl] = i;
	}
	for (int q = 0; q < n_live; q++) {
		struct mseq *s = &m->s[idx[q]];
		struct kvfpga_kvseq_info info;
		int32_t tok[MAXLEN], *row = table + q * MAXB;
		int shared = 0;

		EXPECT(m, lens[q] == s->len, "seq %d: length %d, model %d", idx[q], lens[q],
		       s->len);
		EXPECT(m, kvfpga_kvseq_get_info(s->h, &info) == 0, "info");
		for (int i = 0; i < s->nb; i++)
			shared += m->b[s->mt[i]].ref > 1 || m->b[s->mt[i]].state == M_PUBLISHED;
		EXPECT(m,
		       info.len == (uint32_t)s->len && info.committed == (uint32_t)s->committed &&
		               info.n_blocks == (uint32_t)s->nb &&
		               info.n_shared == (uint32_t)shared && info.salt == s->salt,
		       "seq %d: len %u committed %u blocks %u shared %u, model %d %d %d %d", idx[q],
		       info.len, info.committed, info.n_blocks, info.n_shared, s->len, s->committed,
		       s->nb, shared);
		EXPECT(m, kvfpga_kvseq_tokens(s->h, 0, (uint32_t)s->len, tok) == 0, "tokens");
		EXPECT(m, memcmp(tok, s->tok, (size_t)s->len * sizeof(int32_t)) == 0,
		       "seq %d: tokens differ", idx[q]);
		for (int i = 0; i < MAXB; i++) {
			if (i >= s->nb) {
				EXPECT(m, row[i] == -1, "seq %d: table padding", idx[q]);
				continue;
			}
			struct mblk *b = &m->b[s->mt[i]];
			int impl = row[i];

			EXPECT(m, impl >= 0 && impl < m->nb_total, "seq %d: block id %d", idx[q],
			       impl);
			if (b->impl < 0) {
				EXPECT(m, rev[impl] < 0,
				       "seq %d block %d: cache gave block %d, which the model "
				       "holds as its block %d",
				       idx[q], i, impl, rev[impl]);
				b->impl = impl;
				rev[impl] = s->mt[i];
			} else {
				EXPECT(m, b->impl == impl,
				       "seq %d block %d: cache block %d, model expects %d", idx[q],
				       i, impl, b->impl);
			}
		}
		/* Every K/V element whose content the model knows. */
		for (int p = 0; p < s->len; p++) {
			const struct mblk *b = &m->b[s->mt[p / m->bs]];
			uint64_t vkey = b->vkey[p % m->bs];

			if (!vkey)
				continue;
			for (uint32_t l = 0; l < c->layers; l++)
				for (uint32_t kv = 0; kv < 2; kv++)
					for (uint32_t h = 0; h < c->heads; h++)
						for (uint32_t d = 0; d < c->head_dim; d++) {
							float want = value_of(c, vkey, l, kv,
							                      h * c->head_dim + d);
							uint16_t raw = 0;
							float got = arena_elem(
							        m, b->impl, l, kv, h,
							        (uint32_t)(p % m->bs), d, &raw);

							if (c->dtype != KVFPGA_KVCACHE_F16)
								EXPECT(m,
								       memcmp(&got, &want, 4) == 0,
								       "seq %d pos %d layer %u kv "
								       "%u head %u d %u: %a, want "
								       "%a",
								       idx[q], p, l, kv, h, d, got,
								       want);
							else
								EXPECT(m,
								       raw == kvfpga_kvcache_f16_from_f32(
								                      want),
								       "seq %d pos %d layer %u kv "
								       "%u head %u d %u: 0x%04x, "
								       "want %a",
								       idx[q], p, l, kv, h, d, raw,
								       want);
						}
		}
	}
}

/* ---- random operations ---- */

static int pick_seq(struct model *m)
{
	int live[MAXS] = { 0 }, n = 0;

	for (int i = 0; i < MAXS; i++)
		if (m->s[i].alive)
			live[n++] = i;
	return n ? live[rnd(m, (uint64_t)n)] : -1;
}

static int free_slot(const struct model *m)
{
	for (int i = 0; i < MAXS; i++)
		if (!m->s[i].alive)
			return i;
	return -1;
}

/* Tokens continuing @s (or a new prompt when s->len == 0): mostly its template. */
static int gen_tokens(struct model *m, const struct mseq *s, int32_t *t, int max)
{
	int n = 1 + (int)rnd(m, (uint64_t)max);
	int diverge = chance(m, 30) ? (int)rnd(m, (uint64_t)n + 1) : n;

	for (int i = 0; i < n; i++) {
		int p = s->len + i;

		if (i < diverge && p < MAXLEN)
			t[i] = m->templates[s->tmpl][p];
		else
			t[i] = (int32_t)rnd(m, 4);
	}
	return n;
}

static void op_append(struct model *m, struct mseq *s, int max)
{
	int32_t t[MAXLEN];
	int n = gen_tokens(m, s, t, max), want_cached, want;
	uint32_t got_cached = 12345;
	int got;

	if (s->len + n > MAXLEN)
		n = MAXLEN - s->len;
	m->op = "append";
	want = count_err(m, m_append(m, s, t, n, &want_cached));
	got = kvfpga_kvseq_append(s->h, t, (uint32_t)n, &got_cached);
	EXPECT(m, got == want, "append %d tokens at %d: %d, model %d", n, s->len, got, want);
	if (!got)
		EXPECT(m, (int)got_cached == want_cached, "append: %u cached, model %d", got_cached,
		       want_cached);
}

static void op_write(struct model *m, struct mseq *s, int pos, int n, int version)
{
	const struct config *c = m->cfg;
	float k[MAXLEN * MAXROW], v[MAXLEN * MAXROW];
	int want, got = 0;

	m->op = "write";
	want = count_err(m, m_write(m, s, pos, n, version));
	for (uint32_t l = 0; l < c->layers; l++) {
		for (int i = 0; i < n && pos + i < MAXLEN; i++) {
			/* Key from the model's hash of the position (valid or not). */
			uint64_t key = pos + i < s->len ? key_of(s, pos + i, version) : 1;

			for (int e = 0; e < m->row; e++) {
				k[i * m->row + e] = value_of(c, key, l, 0, (uint32_t)e);
				v[i * m->row + e] = value_of(c, key, l, 1, (uint32_t)e);
			}
		}
		if (n == 1 && chance(m, 50))
			got = kvfpga_kvseq_write(s->h, l, (uint32_t)pos, k, v);
		else
			got = kvfpga_kvseq_write_range(s->h, l, (uint32_t)pos, (uint32_t)n, k, v,
			                               0);
		EXPECT(m, got == want,
		       "write [%d, +%d) layer %u of len %d committed %d: %d, model %d", pos, n, l,
		       s->len, s->committed, got, want);
		if (got)
			break;
	}
}

/* Canonical K/V for the not-yet-committed positions that lack them. */
static void op_compute(struct model *m, struct mseq *s)
{
	int from = s->committed, to = s->len;

	while (from < to && m->b[s->mt[from / m->bs]].vkey[from % m->bs] == key_of(s, from, 0))
		from++;
	if (from < to)
		op_write(m, s, from, to - from, 0);
}

static int canonical_end(const struct model *m, const struct mseq *s)
{
	int p = s->committed;

	while (p < s->len && m->b[s->mt[p / m->bs]].vkey[p % m->bs] == key_of(s, p, 0))
		p++;
	return p;
}

static void op_commit(struct model *m, struct mseq *s)
{
	int end = canonical_end(m, s), n, want, got;

	/* The caller's promise: committed positions hold their canonical K/V. */
	if (chance(m, 10))
		n = (int)rnd(m, (uint64_t)s->committed + 1); /* no-op */
	else if (chance(m, 5))
		n = s->len + 1 + (int)rnd(m, 3); /* -ERANGE */
	else
		n = s->committed + (int)rnd(m, (uint64_t)(end - s->committed) + 1);
	m->op = "commit";
	want = count_err(m, m_commit(m, s, n));
	got = kvfpga_kvseq_commit(s->h, (uint32_t)n);
	EXPECT(m, got == want, "commit %d: %d, model %d", n, got, want);
}

static void run_one(struct model *m)
{
	int si = pick_seq(m), slot = free_slot(m), r = (int)rnd(m, 100);
	struct mseq *s = si >= 0 ? &m->s[si] : NULL;

	if (!s || (r < 18 && slot >= 0)) {
		/* New sequence with a prompt. */
		struct mseq *n;

		if (slot < 0)
			return;
		n = &m->s[slot];
		memset(n, 0, sizeof(*n));
		n->salt = chance(m, 20) ? 1 : 0;
		n->tmpl = (int)rnd(m, N_TEMPLATES);
		m->op = "create";
		EXPECT(m, kvfpga_kvseq_create(m->kc, n->salt, &n->h) == 0, "create");
		n->alive = true;
		check_all(m);
		m->step++;
		op_append(m, n, 3 * m->bs + 5);
		return;
	}
	if (r < 34) {
		op_append(m, s, chance(m, 50) ? 3 : 2 * m->bs + 3);
	} else if (r < 50) {
		op_compute(m, s);
	} else if (r < 56) {
		/* A stray write: any range, any version (errors included). */
		int pos = (int)rnd(m, (uint64_t)s->len + 2);
		int n = (int)rnd(m, (uint64_t)m->bs * 2 + 1);

		if (pos + n > MAXLEN)
			n = MAXLEN - pos;
		op_write(m, s, pos, n, chance(m, 50) ? 0 : 1 + (int)rnd(m, 3));
	} else if (r < 70) {
		op_commit(m, s);
	} else if (r < 77) {
		struct mseq *c;
		int want, got;

		if (slot < 0)
			return;
		c = &m->s[slot];
		m->op = "fork";
		want = count_err(m, m_fork(m, s, c));
		got = kvfpga_kvseq_fork(s->h, &c->h);
		EXPECT(m, got == want, "fork of len %d: %d, model %d", s->len, got, want);
		c->alive = got == 0;
	} else if (r < 84) {
		int len = chance(m, 5) ? s->len + 1 : (int)rnd(m, (uint64_t)s->len + 1);
		int want, got;

		m->op = "truncate";
		want = count_err(m, m_truncate(m, s, len));
		got = kvfpga_kvseq_truncate(s->h, (uint32_t)len);
		EXPECT(m, got == want, "truncate to %d of %d: %d, model %d", len, s->len, got,
		       want);
	} else if (r < 92) {
		m->op = "free";
		m_free(m, s);
		kvfpga_kvseq_free(s->h);
	} else {
		struct mseq probe;
		int32_t t[MAXLEN];
		int n, want;
		uint32_t got = 12345;

		memset(&probe, 0, sizeof(probe));
		probe.tmpl = (int)rnd(m, N_TEMPLATES);
		probe.salt = chance(m, 20) ? 1 : 0;
		n = gen_tokens(m, &probe, t, 4 * m->bs + 4);
		m->op = "lookup";
		want = m_lookup(m, t, n, probe.salt);
		EXPECT(m,
		       kvfpga_kvcache_prefix_lookup(m->kc, probe.salt, t, (uint32_t)n, &got) == 0,
		       "lookup");
		EXPECT(m, (int)got == want, "lookup of %d tokens: %u, model %d", n, got, want);
	}
}

static long ops_total(void)
{
	const char *env = getenv("KVFPGA_TEST_OPS");
	long n = env && *env ? strtol(env, NULL, 0) : 0;

	return n > 0 ? n : 300000;
}

START_TEST(test_model_random_ops)
{
	static struct model mm; /* large: keep it off the stack */
	struct model *m = &mm;
	const struct config *c = &configs[_i];
	struct kvfpga_open_opts opts;
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache_arena ar;
	uint64_t base_seed = test_seed();
	long n_ops = (ops_total() + (long)N_CONFIGS - 1) / (long)N_CONFIGS;

	memset(m, 0, sizeof(*m));
	m->cfg = c;
	m->seed = base_seed;
	m->rng = base_seed ^ mix64((uint64_t)_i + 1); /* each config its own stream */
	m->op = "setup";
	m->caching = !(c->flags & KVFPGA_KVCACHE_NO_PREFIX_CACHING);
	m->bs = (int)c->block_size;
	m->nb_total = (int)c->n_blocks;
	m->row = (int)(c->heads * c->head_dim);
	ck_assert(c->n_blocks <= MAXB && c->n_blocks * c->block_size <= MAXLEN);
	ck_assert(c->block_size <= MAXBS && (uint32_t)m->row <= MAXROW);
	for (int i = 0; i < m->nb_total; i++)
		m->b[i].impl = -1;
	/* Templates over a small alphabet so that prompts share prefixes often. */
	for (int t = 0; t < N_TEMPLATES; t++)
		for (int i = 0; i < MAXLEN; i++)
			m->templates[t][i] = i < 2 * m->bs && t >= 2 ? m->templates[t - 2][i]
			                                             : (int32_t)rnd(m, 3);

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	opts.emu_mem_size = 16ull << 20;
	ck_assert_int_eq(kvfpga_device_open(&opts, &m->dev), 0);
	kvfpga_kvcache_config_init(&cfg);
	cfg.n_layers = c->layers;
	cfg.n_kv_heads = c->heads;
	cfg.head_dim = c->head_dim;
	cfg.block_size = c->block_size;
	cfg.dtype = c->dtype;
	cfg.n_blocks = c->n_blocks;
	cfg.flags = c->flags;
	ck_assert_int_eq(kvfpga_kvcache_create(m->dev, &cfg, &m->kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(m->kc, &ar), 0);
	m->base = ar.base;
	{
		/* The documented slice size, computed independently; a block is one slice
		 * per layer. */
		uint64_t elems = test_slice_elems(c->heads, c->block_size, c->head_dim);

		m->slice_bytes =
		        c->dtype == KVFPGA_KVCACHE_F32 ? elems * 4
		        : c->dtype == KVFPGA_KVCACHE_F16
		                ? elems * 2
		                : test_i8_slice_bytes(c->heads, c->block_size, c->head_dim);
		ck_assert_uint_eq(ar.block_bytes, c->layers * m->slice_bytes);
		ck_assert_uint_eq(ar.arena_bytes,
		                  (uint64_t)c->n_blocks * c->layers * m->slice_bytes);
		ck_assert_uint_ge(kvfpga_bo_size(ar.bo), ar.arena_bytes);
	}

	for (m->step = 0; m->step < n_ops;) {
		m->tick++;
		run_one(m);
		check_all(m);
		m->step++;
	}
	/* What the run covered, so a reader can see it is not vacuous. */
	printf("kvcache_model '%s': %ld ops, seed %llu: %llu/%llu prefix blocks hit/missed, "
	       "%llu evictions, %llu copies, %ld ENOSPC, %ld EPERM, %ld ERANGE\n",
	       c->name, m->step, (unsigned long long)m->seed, (unsigned long long)m->hit_blocks,
	       (unsigned long long)m->miss_blocks, (unsigned long long)m->evictions,
	       (unsigned long long)m->cows, m->n_err[0], m->n_err[1], m->n_err[2]);
	kvfpga_kvcache_destroy(m->kc);
	kvfpga_device_close(m->dev);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kvcache_model");
	TCase *tc = tcase_create("random");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_model_random_ops, 0, (int)N_CONFIGS);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
