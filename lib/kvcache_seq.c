/* SPDX-License-Identifier: MIT */
/*
 * Paged KV cache: sequence operations (append, K/V writes, commit,
 * truncate, fork, block tables).  Every operation first checks that it can
 * finish (arguments, host memory, blocks) and only then changes state, so
 * a failed call changes nothing.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kvcache_internal.h"

int kvfpga_kvseq_create(struct kvfpga_kvcache *kc, uint64_t salt, struct kvfpga_kvseq **out)
{
	struct kvfpga_kvseq *seq;

	if (!kc || !out)
		return -EINVAL;
	seq = calloc(1, sizeof(*seq));
	if (!seq)
		return -ENOMEM;
	seq->kc = kc;
	seq->salt = salt;
	kvc_seq_link(kc, seq);
	*out = seq;
	return 0;
}

void kvfpga_kvseq_free(struct kvfpga_kvseq *seq)
{
	struct kvfpga_kvcache *kc;

	if (!seq)
		return;
	kc = seq->kc;
	/* Tail first: deeper blocks reach the LRU list first and so are evicted first. */
	for (uint32_t i = seq->n_blocks; i-- > 0;)
		kvc_release_block(kc, seq->table[i]);
	kvc_seq_unlink(kc, seq);
	free(seq->table);
	free(seq);
}

/* Make room in the block table for @n blocks (the only host allocation on append). */
static int reserve_table(struct kvfpga_kvseq *seq, uint32_t n)
{
	uint32_t cap;
	int32_t *t;

	if (n <= seq->cap)
		return 0;
	cap = seq->cap ? seq->cap : 4;
	while (cap < n)
		cap = cap > UINT32_MAX / 2 ? n : cap * 2;
	t = realloc(seq->table, (size_t)cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	seq->table = t;
	seq->cap = cap;
	return 0;
}

/* Replace table[i] by a private copy (the caller checked kvc_available()). */
static void cow_block(struct kvfpga_kvseq *seq, uint32_t i)
{
	struct kvfpga_kvcache *kc = seq->kc;
	int32_t old = seq->table[i];

	/* Copy before releasing so the source cannot be the eviction victim. */
	seq->table[i] = kvc_copy_block(kc, old);
	kvc_release_block(kc, old);
	if (seq->pub_cursor > i)
		seq->pub_cursor = i;
}

static void sift_down(int32_t *ids, uint32_t root, uint32_t n)
{
	for (uint32_t child; (child = 2 * root + 1) < n; root = child) {
		int32_t t;

		if (child + 1 < n && ids[child + 1] > ids[child])
			child++;
		if (ids[root] >= ids[child])
			return;
		t = ids[root];
		ids[root] = ids[child];
		ids[child] = t;
	}
}

/* Heapsort: in place, no allocation, O(n log n) whatever order evictions gave. */
static void sort_block_ids(int32_t *ids, uint32_t n)
{
	for (uint32_t i = n / 2; i-- > 0;)
		sift_down(ids, i, n);
	for (uint32_t end = n; end-- > 1;) {
		int32_t t = ids[0];

		ids[0] = ids[end];
		ids[end] = t;
		sift_down(ids, 0, end);
	}
}

int kvfpga_kvseq_append(struct kvfpga_kvseq *seq, const int32_t *tokens, uint32_t n,
                        uint32_t *n_cached)
{
	struct kvfpga_kvcache *kc;
	uint32_t bs, shift, nb, m = 0, offered = 0, reuse_lru = 0, rest, room = 0, fresh;
	bool eligible = false, cow = false;
	uint64_t new_len;
	int ret;

	if (!seq || (n && !tokens))
		return -EINVAL;
	kc = seq->kc;
	bs = kc->lay.block_size;
	shift = kc->bs_shift;
	if (n == 0) {
		if (n_cached)
			*n_cached = 0;
		return 0;
	}
	new_len = (uint64_t)seq->len + n;
	if (new_len > INT32_MAX)
		return -EOVERFLOW;
	if (((new_len + bs - 1) >> shift) > kc->lay.n_blocks)
		return -ENOSPC; /* more than the whole arena */
	ret = reserve_table(seq, (uint32_t)((new_len + bs - 1) >> shift));
	if (ret)
		return ret;
	nb = seq->n_blocks;

	/* Reuse cached blocks when everything before them is a published chain. */
	if (kvc_caching(kc) && (seq->len & (bs - 1)) == 0 && seq->committed == seq->len &&
	    (nb == 0 || kc->blocks[seq->table[nb - 1]].state == KVC_PUBLISHED)) {
		eligible = true;
		offered = (n - 1) >> shift; /* leave the last token to compute */
		m = kvc_match(kc, nb ? seq->table[nb - 1] : -1, seq->salt, tokens, offered,
		              seq->table + nb);
		for (uint32_t i = 0; i < m; i++)
			reuse_lru += kc->blocks[seq->table[nb + i]].ref == 0;
	}

	rest = n - (m << shift);
	if (seq->len & (bs - 1)) {
		room = bs - (seq->len & (bs - 1));
		cow = kvc_immutable(kc, seq->table[nb - 1]);
	}
	fresh = rest > room ? (rest - room + bs - 1) >> shift : 0;
	if (fresh + cow > kvc_available(kc) - reuse_lru)
		return -ENOSPC;

	/* From here on nothing fails. */
	for (uint32_t i = 0; i < m; i++)
		kvc_acquire_block(kc, seq->table[nb + i]);
	if (seq->pub_cursor == nb)
		seq->pub_cursor = nb + m;
	seq->n_blocks = nb + m;
	seq->len += m << shift;
	if (m)
		seq->committed = seq->len; /* it was the old length: eligible */
	if (cow)
		cow_block(seq, nb - 1);
	/*
	 * The new blocks in ascending order: blocks that are adjacent in the
	 * arena are then one run of memory per layer for the attention kernels
	 * (a fresh cache, or the blocks of one freed sequence, hand out runs).
	 */
	for (uint32_t i = 0; i < fresh; i++)
		seq->table[seq->n_blocks + i] = kvc_alloc_block(kc);
	sort_block_ids(seq->table + seq->n_blocks, fresh);
	for (uint32_t i = m << shift; i < n; i++) {
		uint32_t slot = seq->len & (bs - 1);

		if (slot == 0)
			seq->n_blocks++;
		kvc_block_tokens(kc, seq->table[seq->n_blocks - 1])[slot] = tokens[i];
		seq->len++;
	}

	if (eligible) {
		kc->prefix_hit_blocks += m;
		kc->prefix_miss_blocks += offered - m;
		kc->prefix_hit_tokens += (uint64_t)m << shift;
		kc->prefix_miss_tokens += rest;
	}
	if (n_cached)
		*n_cached = m << shift;
	return 0;
}

/* int8: round x / scale to the nearest (ties away from zero), saturating at +-127. */
static int8_t quantize(float x, float scale)
{
	float r;

	if (x != x)
		return 0; /* NaN */
	if (scale == 0.0f)
		return (int8_t)(x > 0 ? 127 : x < 0 ? -127 : 0); /* only 0 or +-Inf get here */
	r = x / scale;
	if (r >= 127.0f)
		return 127;
	if (r <= -127.0f)
		return -127;
	return (int8_t)(r >= 0 ? (int)(r + 0.5f) : -(int)(-r + 0.5f));
}

/*
 * int8 row of one head.  When the row does not fit the scale of (block,
 * layer, kv, head), the scale doubles until it does (a fresh block's zero
 * scale becomes max|x| / 127) and the block's values of that head are
 * requantised.  Doubling bounds the error that repeated requantisation adds:
 * every value stays within one final scale step of what was written.
 */
static void store_i8(int8_t *group, float *scale, uint32_t group_len, int8_t *dst, size_t step,
                     const float *x, uint32_t n)
{
	float amax = 0.0f, s = *scale;

	for (uint32_t i = 0; i < n; i++) {
		float a = x[i] < 0 ? -x[i] : x[i];

		if (a > amax && a <= FLT_MAX)
			amax = a;
	}
	if (amax > 127.0f * s) {
		float ns = s, ratio;

		if (s == 0.0f) {
			ns = amax / 127.0f;
		} else {
			while (amax > 127.0f * ns)
				ns *= 2.0f;
		}
		ratio = s / ns; /* 0 or a power of two */
		for (uint32_t j = 0; j < group_len; j++)
			group[j] = quantize((float)group[j] * ratio, 1.0f);
		*scale = s = ns;
	}
	for (uint32_t i = 0; i < n; i++)
		dst[i * step] = quantize(x[i], s);
}

/* binary16 conversions of a strided K row go through a buffer this long. */
#define HALF_CHUNK 64

/*
 * Store one row of n_kv_heads * head_dim floats at (layer, kv, slot) of
 * block @id.  V's dims are contiguous; K's are block_size apart (a K tile
 * is [dim][slot], see kvfpga_kvcache_layout).
 */
static void store_row(const struct kvfpga_kvcache *kc, int32_t id, uint32_t layer, uint32_t kv,
                      uint32_t slot, const float *row)
{
	const struct kvfpga_kvcache_layout *l = &kc->lay;
	uint8_t *slice = kvc_slice_ptr(kc, id, layer);
	uint64_t off = kv * l->kv_stride + (kv ? slot * l->slot_stride : slot * l->k_slot_stride);
	size_t step = kv ? 1 : l->k_dim_stride;
	uint32_t hd = l->head_dim;

	if (l->dtype == KVFPGA_KVCACHE_F32) {
		float *dst = (float *)(void *)slice + off;

		for (uint32_t h = 0; h < l->n_kv_heads; h++) {
			const float *x = row + (size_t)h * hd;
			float *y = dst + h * l->head_stride;

			if (step == 1) {
				memcpy(y, x, hd * sizeof(float));
				continue;
			}
			for (uint32_t d = 0; d < hd; d++)
				y[d * step] = x[d];
		}
	} else if (l->dtype == KVFPGA_KVCACHE_I8) {
		int8_t *blk = (int8_t *)slice;
		float *scales =
		        (float *)(void *)(slice + l->scale_offset) + (size_t)kv * l->n_kv_heads;

		for (uint32_t h = 0; h < l->n_kv_heads; h++) {
			int8_t *group = blk + kv * l->kv_stride + h * l->head_stride;

			store_i8(group, &scales[h], (uint32_t)l->head_stride,
			         blk + off + h * l->head_stride, step, row + (size_t)h * hd, hd);
		}
	} else {
		uint16_t *dst = (uint16_t *)(void *)slice + off;
		uint16_t tmp[HALF_CHUNK];

		for (uint32_t h = 0; h < l->n_kv_heads; h++) {
			const float *x = row + (size_t)h * hd;
			uint16_t *y = dst + h * l->head_stride;

			if (step == 1) {
				kc->half->f32_to_f16(x, y, hd);
				continue;
			}
			for (uint32_t d0 = 0; d0 < hd; d0 += HALF_CHUNK) {
				uint32_t n = hd - d0 < HALF_CHUNK ? hd - d0 : HALF_CHUNK;

				kc->half->f32_to_f16(x + d0, tmp, n);
				for (uint32_t d = 0; d < n; d++)
					y[(d0 + d) * step] = tmp[d];
			}
		}
	}
}

/* Rows of a binary16 K chunk converted together before their columns are stored. */
#define HALF_ROWS 16

/*
 * K of positions slot0 .. slot0 + n - 1 of block @id (row i at k + i *
 * row_stride): a K tile is [dim][slot], so each dimension's n values are one
 * contiguous run, stored together instead of n scattered rows (on a card,
 * runs of a cache line rather than single elements through write-combining).
 * int8 goes row by row: each row may grow the scale.
 */
static void store_k_rows(const struct kvfpga_kvcache *kc, int32_t id, uint32_t layer,
                         uint32_t slot0, uint32_t n, const float *k, size_t row_stride)
{
	const struct kvfpga_kvcache_layout *l = &kc->lay;
	uint8_t *slice = kvc_slice_ptr(kc, id, layer);
	uint64_t off = slot0 * l->k_slot_stride;
	uint32_t hd = l->head_dim;

	/*
	 * One position (the decode path) takes store_row's per-row scatter: with
	 * f16 it ran at 807 ns per token and layer in kv_append_bench against
	 * 1250 through the column loops below with a single row.
	 */
	if (n == 1 || l->dtype == KVFPGA_KVCACHE_I8) {
		for (uint32_t i = 0; i < n; i++)
			store_row(kc, id, layer, 0, slot0 + i, k + i * row_stride);
	} else if (l->dtype == KVFPGA_KVCACHE_F32) {
		float *dst = (float *)(void *)slice + off;

		for (uint32_t h = 0; h < l->n_kv_heads; h++)
			for (uint32_t d = 0; d < hd; d++) {
				float *y = dst + h * l->head_stride + d * l->k_dim_stride;
				const float *x = k + (size_t)h * hd + d;

				for (uint32_t i = 0; i < n; i++)
					y[i] = x[i * row_stride];
			}
	} else {
		uint16_t *dst = (uint16_t *)(void *)slice + off;
		uint16_t tmp[HALF_ROWS][HALF_CHUNK];

		for (uint32_t h = 0; h < l->n_kv_heads; h++)
			for (uint32_t i0 = 0; i0 < n; i0 += HALF_ROWS) {
				uint32_t m = n - i0 < HALF_ROWS ? n - i0 : HALF_ROWS;

				for (uint32_t d0 = 0; d0 < hd; d0 += HALF_CHUNK) {
					uint32_t c = hd - d0 < HALF_CHUNK ? hd - d0 : HALF_CHUNK;

					for (uint32_t i = 0; i < m; i++)
						kc->half->f32_to_f16(k + (i0 + i) * row_stride +
						                             (size_t)h * hd + d0,
						                     tmp[i], c);
					for (uint32_t d = 0; d < c; d++) {
						uint16_t *y = dst + h * l->head_stride +
						              (d0 + d) * l->k_dim_stride + i0;

						for (uint32_t i = 0; i < m; i++)
							y[i] = tmp[i][d];
					}
				}
			}
	}
}

static void load_row(const struct kvfpga_kvcache *kc, int32_t id, uint32_t layer, uint32_t kv,
                     uint32_t slot, float *row)
{
	const struct kvfpga_kvcache_layout *l = &kc->lay;
	const uint8_t *slice = kvc_slice_ptr(kc, id, layer);
	uint64_t off = kv * l->kv_stride + (kv ? slot * l->slot_stride : slot * l->k_slot_stride);
	size_t step = kv ? 1 : l->k_dim_stride;
	uint32_t hd = l->head_dim;

	if (l->dtype == KVFPGA_KVCACHE_F32) {
		const float *src = (const float *)(const void *)slice + off;

		for (uint32_t h = 0; h < l->n_kv_heads; h++)
			for (uint32_t d = 0; d < hd; d++)
				row[(size_t)h * hd + d] = src[h * l->head_stride + d * step];
	} else if (l->dtype == KVFPGA_KVCACHE_I8) {
		const int8_t *src = (const int8_t *)slice + off;
		const float *scales = (const float *)(const void *)(slice + l->scale_offset) +
		                      (size_t)kv * l->n_kv_heads;

		for (uint32_t h = 0; h < l->n_kv_heads; h++)
			for (uint32_t d = 0; d < hd; d++)
				row[(size_t)h * hd + d] =
				        (float)src[h * l->head_stride + d * step] * scales[h];
	} else {
		const uint16_t *src = (const uint16_t *)(const void *)slice + off;
		uint16_t tmp[HALF_CHUNK];

		for (uint32_t h = 0; h < l->n_kv_heads; h++) {
			const uint16_t *x = src + h * l->head_stride;
			float *y = row + (size_t)h * hd;

			if (step == 1) {
				kc->half->f16_to_f32(x, y, hd);
				continue;
			}
			for (uint32_t d0 = 0; d0 < hd; d0 += HALF_CHUNK) {
				uint32_t n = hd - d0 < HALF_CHUNK ? hd - d0 : HALF_CHUNK;

				for (uint32_t d = 0; d < n; d++)
					tmp[d] = x[(d0 + d) * step];
				kc->half->f16_to_f32(tmp, y + d0, n);
			}
		}
	}
}

int kvfpga_kvseq_write_range(struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, uint32_t n,
                             const float *k, const float *v, size_t row_stride)
{
	struct kvfpga_kvcache *kc;
	uint32_t shift, bs, first, last, copies = 0;
	size_t row;

	if (!seq || (!k && !v))
		return -EINVAL;
	kc = seq->kc;
	row = (size_t)kc->lay.n_kv_heads * kc->lay.head_dim;
	if (layer >= kc->lay.n_layers || (row_stride && row_stride < row))
		return -EINVAL;
	if (!row_stride)
		row_stride = row;
	if (n == 0)
		return 0;
	if (pos >= seq->len || n > seq->len - pos)
		return -ERANGE;
	if (pos < seq->committed)
		return -EPERM;
	shift = kc->bs_shift;
	bs = kc->lay.block_size;
	first = pos >> shift;
	last = (pos + n - 1) >> shift;
	for (uint32_t i = first; i <= last; i++) {
		int32_t id = seq->table[i];

		if (kc->blocks[id].state == KVC_PUBLISHED)
			return -EPERM; /* published through a sequence sharing it */
		copies += kc->blocks[id].ref > 1;
	}
	if (copies > kvc_available(kc))
		return -ENOSPC;

	for (uint32_t i = first; copies && i <= last; i++) {
		if (kc->blocks[seq->table[i]].ref > 1) {
			cow_block(seq, i);
			copies--;
		}
	}
	/* A block at a time: K's columns are contiguous within a block. */
	for (uint32_t i = 0; i < n;) {
		uint32_t p = pos + i, slot = p & (bs - 1);
		uint32_t m = bs - slot < n - i ? bs - slot : n - i;
		int32_t id = seq->table[p >> shift];

		if (k)
			store_k_rows(kc, id, layer, slot, m, k + i * row_stride, row_stride);
		for (uint32_t j = 0; v && j < m; j++)
			store_row(kc, id, layer, 1, slot + j, v + (i + j) * row_stride);
		i += m;
	}
	return 0;
}

int kvfpga_kvseq_write(struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, const float *k,
                       const float *v)
{
	return kvfpga_kvseq_write_range(seq, layer, pos, 1, k, v, 0);
}

int kvfpga_kvseq_read(const struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, float *k,
                      float *v)
{
	const struct kvfpga_kvcache *kc;
	int32_t id;
	uint32_t slot;

	if (!seq)
		return -EINVAL;
	kc = seq->kc;
	if (layer >= kc->lay.n_layers)
		return -EINVAL;
	if (pos >= seq->len)
		return -ERANGE;
	id = seq->table[pos >> kc->bs_shift];
	slot = pos & (kc->lay.block_size - 1);
	if (k)
		load_row(kc, id, layer, 0, slot, k);
	if (v)
		load_row(kc, id, layer, 1, slot, v);
	return 0;
}

int kvfpga_kvseq_commit(struct kvfpga_kvseq *seq, uint32_t n_tokens)
{
	struct kvfpga_kvcache *kc;
	uint32_t bs, full;

	if (!seq)
		return -EINVAL;
	kc = seq->kc;
	if (n_tokens > seq->len)
		return -ERANGE;
	if (n_tokens <= seq->committed)
		return 0;
	seq->committed = n_tokens;
	if (!kvc_caching(kc))
		return 0;

	/* Publish the full committed blocks in chain order. */
	bs = kc->lay.block_size;
	full = n_tokens >> kc->bs_shift;
	for (uint32_t i = seq->pub_cursor; i < full; i++) {
		int32_t id = seq->table[i];
		int32_t parent = i ? seq->table[i - 1] : -1;
		const int32_t *t = kvc_block_tokens(kc, id);
		uint64_t h;
		int32_t same;

		if (parent >= 0 && kc->blocks[parent].state != KVC_PUBLISHED)
			break; /* a child is reachable only through a published parent */
		if (kc->blocks[id].state != KVC_PUBLISHED) {
			h = kvfpga_kvcache_block_hash(parent >= 0 ? kc->blocks[parent].hash : 0,
			                              seq->salt, t, bs);
			same = kvc_find(kc, h, parent, seq->salt, t);
			if (same < 0) {
				kvc_publish(kc, id, h, parent, seq->salt, i);
			} else if (kc->blocks[id].ref == 1) {
				/* Same K/V already cached: use that block, free ours. */
				kvc_acquire_block(kc, same);
				seq->table[i] = same;
				kvc_release_block(kc, id);
			} else {
				break; /* a fork holds ours too: keep it private */
			}
		}
		seq->pub_cursor = i + 1;
	}
	return 0;
}

int kvfpga_kvseq_truncate(struct kvfpga_kvseq *seq, uint32_t len)
{
	struct kvfpga_kvcache *kc;
	uint32_t keep;

	if (!seq)
		return -EINVAL;
	kc = seq->kc;
	if (len > seq->len)
		return -ERANGE;
	keep = (uint32_t)(((uint64_t)len + kc->lay.block_size - 1) >> kc->bs_shift);
	while (seq->n_blocks > keep)
		kvc_release_block(kc, seq->table[--seq->n_blocks]);
	seq->len = len;
	if (seq->committed > len)
		seq->committed = len;
	if (seq->pub_cursor > keep)
		seq->pub_cursor = keep;
	return 0;
}

int kvfpga_kvseq_fork(struct kvfpga_kvseq *seq, struct kvfpga_kvseq **out)
{
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvseq *child;
	uint32_t nb, shared;
	bool partial;

	if (!seq || !out)
		return -EINVAL;
	kc = seq->kc;
	nb = seq->n_blocks;
	partial = (seq->len & (kc->lay.block_size - 1)) != 0;
	if (partial && kvc_available(kc) < 1)
		return -ENOSPC;
	child = calloc(1, sizeof(*child));
	if (!child)
		return -ENOMEM;
	if (nb) {
		child->table = malloc((size_t)nb * sizeof(int32_t));
		if (!child->table) {
			free(child);
			return -ENOMEM;
		}
		memcpy(child->table, seq->table, (size_t)nb * sizeof(int32_t));
	}
	child->kc = kc;
	child->cap = nb;
	child->n_blocks = nb;
	child->len = seq->len;
	child->committed = seq->committed;
	child->salt = seq->salt;
	child->pub_cursor = seq->pub_cursor;

	shared = partial ? nb - 1 : nb;
	for (uint32_t i = 0; i < shared; i++)
		kc->blocks[child->table[i]].ref++;
	if (partial) {
		child->table[nb - 1] = kvc_copy_block(kc, seq->table[nb - 1]);
		if (child->pub_cursor > nb - 1)
			child->pub_cursor = nb - 1;
	}
	kvc_seq_link(kc, child);
	*out = child;
	return 0;
}

int kvfpga_kvseq_block_table(const struct kvfpga_kvseq *seq, int32_t *ids, uint32_t max,
                             uint32_t *n_blocks)
{
	if (!seq || !n_blocks || (max && !ids))
		return -EINVAL;
	if (max && seq->n_blocks)
		memcpy(ids, seq->table,
		       (size_t)(max < seq->n_blocks ? max : seq->n_blocks) * sizeof(int32_t));
	*n_blocks = seq->n_blocks;
	return 0;
}

int kvfpga_kvseq_get_info(const struct kvfpga_kvseq *seq, struct kvfpga_kvseq_info *out)
{
	uint32_t shared = 0;

	if (!seq || !out)
		return -EINVAL;
	for (uint32_t i = 0; i < seq->n_blocks; i++)
		shared += kvc_immutable(seq->kc, seq->table[i]);
	out->len = seq->len;
	out->committed = seq->committed;
	out->n_blocks = seq->n_blocks;
	out->n_shared = shared;
	out->salt = seq->salt;
	return 0;
}

int kvfpga_kvseq_tokens(const struct kvfpga_kvseq *seq, uint32_t start, uint32_t n, int32_t *out)
{
	const struct kvfpga_kvcache *kc;

	if (!seq || (n && !out))
		return -EINVAL;
	kc = seq->kc;
	if (start > seq->len || n > seq->len - start)
		return -ERANGE;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = start + i;

		out[i] = kvc_block_tokens(
		        kc, seq->table[p >> kc->bs_shift])[p & (kc->lay.block_size - 1)];
	}
	return 0;
}
