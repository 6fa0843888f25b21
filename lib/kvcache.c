/* SPDX-License-Identifier: MIT */
/*
 * Paged KV cache: the arena, the block pool (free list, LRU list of cached
 * blocks, hash table of published blocks), statistics and self-checks.
 * Sequence operations are in kvcache_seq.c.  See docs/kvcache.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kvcache_internal.h"

int kvfpga_kvcache_config_init(struct kvfpga_kvcache_config *cfg)
{
	if (!cfg)
		return -EINVAL;
	memset(cfg, 0, sizeof(*cfg));
	cfg->block_size = KVFPGA_KVCACHE_DEFAULT_BLOCK_SIZE;
	cfg->dtype = KVFPGA_KVCACHE_F16;
	return 0;
}

static uint32_t dtype_size(enum kvfpga_kvcache_dtype dtype)
{
	switch (dtype) {
	case KVFPGA_KVCACHE_F32:
		return 4;
	case KVFPGA_KVCACHE_F16:
		return 2;
	case KVFPGA_KVCACHE_I8:
		return 1;
	}
	return 0;
}

/* Fill @lay from @cfg, or return -EINVAL / -EOVERFLOW. */
static int compute_layout(const struct kvfpga_kvcache_config *cfg,
                          struct kvfpga_kvcache_layout *lay)
{
	uint32_t bs = cfg->block_size;
	uint32_t elem = dtype_size(cfg->dtype);
	uint64_t head, kv, slice_elems, slice_bytes, block_bytes, n_blocks, layer_bytes, arena;
	uint64_t scale_offset = 0;

	if (!cfg->n_layers || !cfg->n_kv_heads || !cfg->head_dim || !elem)
		return -EINVAL;
	if (!bs || bs > KVFPGA_KVCACHE_MAX_BLOCK_SIZE || (bs & (bs - 1)))
		return -EINVAL;
	if (cfg->flags & ~KVFPGA_KVCACHE_FLAGS_VALID)
		return -EINVAL;

	head = (uint64_t)bs * cfg->head_dim; /* < 2^40 */
	if (__builtin_mul_overflow(head, (uint64_t)cfg->n_kv_heads, &kv) ||
	    __builtin_mul_overflow(kv, (uint64_t)2, &slice_elems) ||
	    __builtin_mul_overflow(slice_elems, (uint64_t)elem, &slice_bytes))
		return -EOVERFLOW;
	if (cfg->dtype == KVFPGA_KVCACHE_I8) {
		/* float scales[2][n_kv_heads] after the slice's data, 16-byte aligned. */
		uint64_t n_scales = 2ull * cfg->n_kv_heads;

		if (slice_bytes > UINT64_MAX / 2)
			return -EOVERFLOW;
		scale_offset = (slice_bytes + 15) & ~(uint64_t)15;
		if (scale_offset > UINT64_MAX - 4 * n_scales - 15)
			return -EOVERFLOW;
		slice_bytes = (scale_offset + 4 * n_scales + 15) & ~(uint64_t)15;
	}
	if (__builtin_mul_overflow(slice_bytes, (uint64_t)cfg->n_layers, &block_bytes))
		return -EOVERFLOW;

	if (cfg->n_blocks)
		n_blocks = cfg->n_blocks;
	else
		n_blocks = cfg->mem_bytes / block_bytes;
	if (n_blocks == 0 || n_blocks > INT32_MAX)
		return -EINVAL;
	if (__builtin_mul_overflow(n_blocks, slice_bytes, &layer_bytes) ||
	    __builtin_mul_overflow(n_blocks, block_bytes, &arena))
		return -EOVERFLOW;

	memset(lay, 0, sizeof(*lay));
	lay->n_layers = cfg->n_layers;
	lay->n_kv_heads = cfg->n_kv_heads;
	lay->head_dim = cfg->head_dim;
	lay->block_size = bs;
	lay->dtype = cfg->dtype;
	lay->elem_size = elem;
	lay->n_blocks = (uint32_t)n_blocks;
	lay->slot_stride = cfg->head_dim;
	lay->head_stride = head;
	lay->kv_stride = kv;
	lay->slice_bytes = slice_bytes;
	lay->layer_bytes = layer_bytes;
	lay->block_bytes = block_bytes;
	lay->arena_bytes = arena;
	lay->bytes_per_token = block_bytes / bs;
	lay->scale_offset = scale_offset;
	lay->k_slot_stride = 1;
	lay->k_dim_stride = bs;
	return 0;
}

int kvfpga_kvcache_create(struct kvfpga_device *dev, const struct kvfpga_kvcache_config *cfg,
                          struct kvfpga_kvcache **out)
{
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvcache_layout lay;
	uint32_t n, n_buckets;
	void *map;
	int ret;

	if (!dev || !cfg || !out)
		return -EINVAL;
	ret = compute_layout(cfg, &lay);
	if (ret)
		return ret;
	n = lay.n_blocks;

	kc = calloc(1, sizeof(*kc));
	if (!kc)
		return -ENOMEM;
	kc->dev = dev;
	kc->lay = lay;
	kc->flags = cfg->flags;
	kc->half = kvfh_ops_best();
	kc->bs_shift = (uint32_t)__builtin_ctz(lay.block_size);

	/* One bucket per block (a power of two): published blocks never exceed n. */
	n_buckets = 16;
	while (n_buckets < n && n_buckets < (1u << 30))
		n_buckets <<= 1;
	kc->bucket_mask = n_buckets - 1;

	kc->blocks = calloc(n, sizeof(*kc->blocks));
	kc->tokens = calloc((size_t)n, (size_t)lay.block_size * sizeof(int32_t));
	kc->buckets = malloc((size_t)n_buckets * sizeof(*kc->buckets));
	if (!kc->blocks || !kc->tokens || !kc->buckets) {
		ret = -ENOMEM;
		goto fail;
	}
	memset(kc->buckets, 0xff, (size_t)n_buckets * sizeof(*kc->buckets));

	ret = kvfpga_bo_create(dev, lay.arena_bytes, 0, &kc->bo);
	if (ret)
		goto fail;
	ret = kvfpga_bo_map(kc->bo, &map);
	if (ret)
		goto fail;
	kc->base = map;

	/* Free list in ascending order: block 0 is handed out first. */
	for (uint32_t i = 0; i < n; i++) {
		kc->blocks[i].state = KVC_FREE;
		kc->blocks[i].parent = -1;
		kc->blocks[i].prev = -1;
		kc->blocks[i].next = (i + 1 < n) ? (int32_t)(i + 1) : -1;
		kc->blocks[i].hnext = -1;
	}
	kc->free_head = 0;
	kc->n_free = n;
	kc->lru_head = kc->lru_tail = -1;
	*out = kc;
	return 0;

fail:
	kvfpga_bo_free(kc->bo);
	free(kc->buckets);
	free(kc->tokens);
	free(kc->blocks);
	free(kc);
	return ret;
}

void kvfpga_kvcache_destroy(struct kvfpga_kvcache *kc)
{
	if (!kc)
		return;
	while (kc->seqs)
		kvfpga_kvseq_free(kc->seqs);
	kvfpga_bo_free(kc->bo);
	free(kc->buckets);
	free(kc->tokens);
	free(kc->blocks);
	free(kc);
}

int kvfpga_kvcache_get_layout(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_layout *out)
{
	if (!kc || !out)
		return -EINVAL;
	*out = kc->lay;
	return 0;
}

int kvfpga_kvcache_get_arena(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_arena *out)
{
	if (!kc || !out)
		return -EINVAL;
	out->bo = kc->bo;
	out->base = kc->base;
	out->card_addr = kvfpga_bo_card_addr(kc->bo);
	out->block_bytes = kc->lay.block_bytes;
	out->arena_bytes = kc->lay.arena_bytes;
	return 0;
}

int kvfpga_kvcache_get_stats(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_stats *out)
{
	if (!kc || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->blocks_total = kc->lay.n_blocks;
	out->blocks_free = kc->n_free;
	out->blocks_cached = kc->n_lru;
	out->blocks_used = kc->lay.n_blocks - kc->n_free - kc->n_lru;
	out->blocks_published = kc->n_published;
	out->n_seqs = kc->n_seqs;
	out->prefix_hit_blocks = kc->prefix_hit_blocks;
	out->prefix_miss_blocks = kc->prefix_miss_blocks;
	out->prefix_hit_tokens = kc->prefix_hit_tokens;
	out->prefix_miss_tokens = kc->prefix_miss_tokens;
	out->evictions = kc->evictions;
	out->cow_copies = kc->cow_copies;
	out->bytes_per_token = kc->lay.bytes_per_token;
	return 0;
}

/* ---- hashing ---- */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t kvfpga_kvcache_block_hash(uint64_t parent_hash, uint64_t salt, const int32_t *tokens,
                                   uint32_t block_size)
{
	/* Serialised explicitly so the value does not depend on the host's byte order. */
	uint8_t buf[16 + 4 * KVFPGA_KVCACHE_MAX_BLOCK_SIZE];
	XXH64_state_t st;
	uint32_t done = 0;

	XXH64_reset(&st, 0);
	put_le64(buf, parent_hash);
	put_le64(buf + 8, salt);
	XXH64_update(&st, buf, 16);
	while (tokens && done < block_size) {
		uint32_t chunk = block_size - done;

		if (chunk > KVFPGA_KVCACHE_MAX_BLOCK_SIZE)
			chunk = KVFPGA_KVCACHE_MAX_BLOCK_SIZE;
		for (uint32_t i = 0; i < chunk; i++)
			put_le32(buf + 4 * i, (uint32_t)tokens[done + i]);
		XXH64_update(&st, buf, (size_t)chunk * 4);
		done += chunk;
	}
	return XXH64_digest(&st);
}

static uint64_t parent_hash_of(const struct kvfpga_kvcache *kc, int32_t parent)
{
	return parent >= 0 ? kc->blocks[parent].hash : 0;
}

/* ---- binary16 ---- */

/* The public names of the library's one conversion (lib/half.c). */
uint16_t kvfpga_kvcache_f16_from_f32(float value)
{
	return kvfh_f32_to_f16(value);
}

float kvfpga_kvcache_f16_to_f32(uint16_t half)
{
	return kvfh_f16_to_f32(half);
}

/* ---- block pool ---- */

static void lru_unlink(struct kvfpga_kvcache *kc, int32_t id)
{
	struct kvc_block *b = &kc->blocks[id];

	if (b->prev >= 0)
		kc->blocks[b->prev].next = b->next;
	else
		kc->lru_head = b->next;
	if (b->next >= 0)
		kc->blocks[b->next].prev = b->prev;
	else
		kc->lru_tail = b->prev;
	b->prev = b->next = -1;
	kc->n_lru--;
}

static void lru_append(struct kvfpga_kvcache *kc, int32_t id)
{
	struct kvc_block *b = &kc->blocks[id];

	b->next = -1;
	b->prev = kc->lru_tail;
	if (kc->lru_tail >= 0)
		kc->blocks[kc->lru_tail].next = id;
	else
		kc->lru_head = id;
	kc->lru_tail = id;
	kc->n_lru++;
}

static void hash_remove(struct kvfpga_kvcache *kc, int32_t id)
{
	int32_t *link = &kc->buckets[kc->blocks[id].hash & kc->bucket_mask];

	while (*link != id)
		link = &kc->blocks[*link].hnext;
	*link = kc->blocks[id].hnext;
	kc->blocks[id].hnext = -1;
}

static void free_push(struct kvfpga_kvcache *kc, int32_t id)
{
	struct kvc_block *b = &kc->blocks[id];

	b->state = KVC_FREE;
	b->gen++; /* children published under the old content no longer match */
	b->parent = -1;
	b->prev = -1;
	b->next = kc->free_head;
	kc->free_head = id;
	kc->n_free++;
}

int32_t kvc_alloc_block(struct kvfpga_kvcache *kc)
{
	int32_t id;

	if (kc->free_head < 0) {
		/* Evict the least recently used cached block. */
		id = kc->lru_head;
		lru_unlink(kc, id);
		hash_remove(kc, id);
		kc->n_published--;
		kc->evictions++;
		free_push(kc, id);
	}
	id = kc->free_head;
	kc->free_head = kc->blocks[id].next;
	kc->n_free--;
	kc->blocks[id].next = -1;
	kc->blocks[id].state = KVC_PRIVATE;
	kc->blocks[id].ref = 1;
	if (kc->lay.scale_offset) {
		/* int8: a fresh block starts with zero scales, not its last user's. */
		for (uint32_t l = 0; l < kc->lay.n_layers; l++)
			memset(kvc_slice_ptr(kc, id, l) + kc->lay.scale_offset, 0,
			       kc->lay.slice_bytes - kc->lay.scale_offset);
	}
	return id;
}

int32_t kvc_copy_block(struct kvfpga_kvcache *kc, int32_t src)
{
	int32_t id = kvc_alloc_block(kc);

	for (uint32_t l = 0; l < kc->lay.n_layers; l++)
		memcpy(kvc_slice_ptr(kc, id, l), kvc_slice_ptr(kc, src, l), kc->lay.slice_bytes);
	memcpy(kvc_block_tokens(kc, id), kvc_block_tokens(kc, src),
	       (size_t)kc->lay.block_size * sizeof(int32_t));
	kc->cow_copies++;
	return id;
}

void kvc_release_block(struct kvfpga_kvcache *kc, int32_t id)
{
	struct kvc_block *b = &kc->blocks[id];

	if (--b->ref)
		return;
	if (b->state == KVC_PUBLISHED)
		lru_append(kc, id);
	else
		free_push(kc, id);
}

void kvc_acquire_block(struct kvfpga_kvcache *kc, int32_t id)
{
	if (kc->blocks[id].ref++ == 0)
		lru_unlink(kc, id);
}

static bool parent_link_valid(const struct kvfpga_kvcache *kc, const struct kvc_block *b)
{
	if (b->parent < 0)
		return true;
	return kc->blocks[b->parent].state == KVC_PUBLISHED &&
	       kc->blocks[b->parent].gen == b->parent_gen;
}

int32_t kvc_find(const struct kvfpga_kvcache *kc, uint64_t hash, int32_t parent, uint64_t salt,
                 const int32_t *tokens)
{
	size_t tok_bytes = (size_t)kc->lay.block_size * sizeof(int32_t);

	for (int32_t id = kc->buckets[hash & kc->bucket_mask]; id >= 0; id = kc->blocks[id].hnext) {
		const struct kvc_block *b = &kc->blocks[id];

		/* The hash only finds candidates: the key is compared in full. */
		if (b->hash != hash || b->parent != parent || b->salt != salt)
			continue;
		if (parent >= 0 && b->parent_gen != kc->blocks[parent].gen)
			continue;
		if (memcmp(kvc_block_tokens(kc, id), tokens, tok_bytes) != 0)
			continue;
		return id;
	}
	return -1;
}

void kvc_publish(struct kvfpga_kvcache *kc, int32_t id, uint64_t hash, int32_t parent,
                 uint64_t salt, uint32_t depth)
{
	struct kvc_block *b = &kc->blocks[id];
	int32_t *head = &kc->buckets[hash & kc->bucket_mask];

	b->state = KVC_PUBLISHED;
	b->hash = hash;
	b->salt = salt;
	b->parent = parent;
	b->parent_gen = parent >= 0 ? kc->blocks[parent].gen : 0;
	b->depth = depth;
	b->hnext = *head;
	*head = id;
	kc->n_published++;
}

uint32_t kvc_match(const struct kvfpga_kvcache *kc, int32_t parent, uint64_t salt,
                   const int32_t *tokens, uint32_t max_blocks, int32_t *ids)
{
	uint32_t bs = kc->lay.block_size;
	uint64_t phash = parent_hash_of(kc, parent);
	uint32_t m;

	for (m = 0; m < max_blocks; m++) {
		const int32_t *t = tokens + (size_t)m * bs;
		uint64_t h = kvfpga_kvcache_block_hash(phash, salt, t, bs);
		int32_t id = kvc_find(kc, h, parent, salt, t);

		if (id < 0)
			break;
		if (ids)
			ids[m] = id;
		parent = id;
		phash = h;
	}
	return m;
}

int kvfpga_kvcache_prefix_lookup(const struct kvfpga_kvcache *kc, uint64_t salt,
                                 const int32_t *tokens, uint32_t n, uint32_t *n_cached)
{
	uint32_t m = 0;

	if (!kc || !n_cached || (n && !tokens))
		return -EINVAL;
	if (n && kvc_caching(kc))
		m = kvc_match(kc, -1, salt, tokens, (n - 1) >> kc->bs_shift, NULL);
	*n_cached = m << kc->bs_shift;
	return 0;
}

void kvc_seq_link(struct kvfpga_kvcache *kc, struct kvfpga_kvseq *seq)
{
	seq->prev = NULL;
	seq->next = kc->seqs;
	if (kc->seqs)
		kc->seqs->prev = seq;
	kc->seqs = seq;
	kc->n_seqs++;
}

void kvc_seq_unlink(struct kvfpga_kvcache *kc, struct kvfpga_kvseq *seq)
{
	if (seq->prev)
		seq->prev->next = seq->next;
	else
		kc->seqs = seq->next;
	if (seq->next)
		seq->next->prev = seq->prev;
	seq->prev = seq->next = NULL;
	kc->n_seqs--;
}

int kvfpga_kvcache_batch_table(const struct kvfpga_kvcache *kc, struct kvfpga_kvseq *const *seqs,
                               uint32_t n_seqs, uint32_t max_blocks, int32_t *table, int32_t *lens)
{
	if (!kc || (n_seqs && (!seqs || !table || !lens)))
		return -EINVAL;
	for (uint32_t i = 0; i < n_seqs; i++) {
		if (!seqs[i] || seqs[i]->kc != kc)
			return -EINVAL;
		if (seqs[i]->n_blocks > max_blocks)
			return -ERANGE;
	}
	for (uint32_t i = 0; i < n_seqs; i++) {
		const struct kvfpga_kvseq *s = seqs[i];
		int32_t *row = table + (size_t)i * max_blocks;

		if (s->n_blocks)
			memcpy(row, s->table, (size_t)s->n_blocks * sizeof(int32_t));
		for (uint32_t j = s->n_blocks; j < max_blocks; j++)
			row[j] = -1;
		lens[i] = (int32_t)s->len;
	}
	return 0;
}

/* ---- self-check ---- */

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			ret = -EUCLEAN;                                                            \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

int kvfpga_kvcache_verify(const struct kvfpga_kvcache *kc)
{
	uint32_t n, bs, count, *refs = NULL;
	uint8_t *mark = NULL;
	int ret = 0;

	if (!kc)
		return -EINVAL;
	n = kc->lay.n_blocks;
	bs = kc->lay.block_size;
	refs = calloc(n, sizeof(*refs));
	mark = calloc(n, 1);
	if (!refs || !mark) {
		ret = -ENOMEM;
		goto out;
	}

	/* Sequences: shape, and the references they hold. */
	count = 0;
	for (const struct kvfpga_kvseq *s = kc->seqs; s; s = s->next) {
		CHECK(s->kc == kc && count++ < kc->n_seqs);
		CHECK(s->n_blocks <= s->cap && s->committed <= s->len);
		CHECK((uint64_t)s->n_blocks * bs >= s->len);
		CHECK(s->n_blocks == 0 || (uint64_t)(s->n_blocks - 1) * bs < s->len);
		CHECK(s->pub_cursor <= s->n_blocks);
		for (uint32_t i = 0; i < s->n_blocks; i++) {
			int32_t id = s->table[i];

			CHECK(id >= 0 && (uint32_t)id < n && kc->blocks[id].state != KVC_FREE);
			refs[id]++;
			if (i < s->pub_cursor)
				CHECK(kc->blocks[id].state == KVC_PUBLISHED);
			if (kc->blocks[id].state == KVC_PUBLISHED)
				CHECK(kc->blocks[id].depth == i);
		}
	}
	CHECK(count == kc->n_seqs);

	/* Free list. */
	count = 0;
	for (int32_t id = kc->free_head; id >= 0; id = kc->blocks[id].next) {
		CHECK((uint32_t)id < n && !mark[id] && kc->blocks[id].state == KVC_FREE);
		mark[id] = 1;
		count++;
	}
	CHECK(count == kc->n_free);

	/* LRU list: exactly the published blocks nobody holds. */
	count = 0;
	for (int32_t id = kc->lru_head, prev = -1; id >= 0; prev = id, id = kc->blocks[id].next) {
		CHECK((uint32_t)id < n && !mark[id] && kc->blocks[id].prev == prev);
		CHECK(kc->blocks[id].state == KVC_PUBLISHED && kc->blocks[id].ref == 0);
		CHECK(kc->blocks[id].next >= 0 || kc->lru_tail == id);
		mark[id] = 2;
		count++;
	}
	CHECK(count == kc->n_lru);

	/* Hash table: exactly the published blocks, each in its bucket. */
	count = 0;
	for (uint32_t bk = 0; bk <= kc->bucket_mask; bk++) {
		for (int32_t id = kc->buckets[bk]; id >= 0; id = kc->blocks[id].hnext) {
			CHECK((uint32_t)id < n && count++ < n);
			CHECK(kc->blocks[id].state == KVC_PUBLISHED);
			CHECK((kc->blocks[id].hash & kc->bucket_mask) == bk);
		}
	}
	CHECK(count == kc->n_published);

	for (uint32_t i = 0; i < n; i++) {
		const struct kvc_block *b = &kc->blocks[i];

		CHECK(b->ref == refs[i]);
		switch (b->state) {
		case KVC_FREE:
			CHECK(mark[i] == 1 && b->ref == 0);
			break;
		case KVC_PRIVATE:
			CHECK(mark[i] == 0 && b->ref > 0);
			break;
		case KVC_PUBLISHED:
			CHECK(mark[i] == (b->ref ? 0 : 2));
			if (parent_link_valid(kc, b)) {
				const int32_t *t = kvc_block_tokens(kc, (int32_t)i);

				CHECK(b->hash ==
				      kvfpga_kvcache_block_hash(parent_hash_of(kc, b->parent),
				                                b->salt, t, bs));
				/* No two live entries share a key. */
				CHECK(kvc_find(kc, b->hash, b->parent, b->salt, t) == (int32_t)i);
				CHECK(b->parent < 0 || kc->blocks[b->parent].depth + 1 == b->depth);
				CHECK(b->parent >= 0 || b->depth == 0);
			}
			break;
		default:
			CHECK(0);
		}
	}
out:
	free(refs);
	free(mark);
	return ret;
}
