/* SPDX-License-Identifier: MIT */
/*
 * Argument checks shared by the kernels and the host reference, the host
 * reference attention itself, and the public binary16 helpers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"
#include "half_internal.h"

/* The public binary16 helpers are lib/half.c's exact scalar conversions. */
float kvfpga_f16_to_f32(uint16_t h)
{
	return kvfh_f16_to_f32(h);
}

uint16_t kvfpga_f32_to_f16(float f)
{
	return kvfh_f32_to_f16(f);
}

static int scale_ok(float scale)
{
	return isfinite(scale) && scale > 0.0f;
}

static int check_table(const int32_t *table, uint32_t n, uint64_t arena_blocks, const char *who,
                       char *msg, size_t len)
{
	for (uint32_t i = 0; i < n; i++) {
		if (table[i] < 0 || (uint64_t)table[i] >= arena_blocks)
			return kvf_fail(
			        msg, len, -ERANGE,
			        "%s: block table entry %u is %d, the arena holds %llu blocks", who,
			        i, (int)table[i], (unsigned long long)arena_blocks);
	}
	return 0;
}

int kvf_check_decode(const struct kvfpga_attn_shape *shape, uint64_t arena_blocks,
                     const struct kvfpga_decode_batch *b, uint32_t *max_blocks, char *msg,
                     size_t len)
{
	uint32_t longest = 0;

	if (!b || !b->seq_lens || !b->block_tables || !b->q || !b->out)
		return kvf_fail(msg, len, -EINVAL, "decode batch: missing pointer");
	if (b->n_seqs == 0 || b->n_seqs > 65535)
		return kvf_fail(msg, len, -EINVAL, "decode batch: %u sequences (1..65535)",
		                b->n_seqs);
	if (b->layer >= shape->n_layers)
		return kvf_fail(msg, len, -EINVAL, "decode batch: layer %u of %u", b->layer,
		                shape->n_layers);
	if (!scale_ok(b->scale))
		return kvf_fail(msg, len, -EINVAL, "decode batch: scale must be finite and > 0");
	for (uint32_t s = 0; s < b->n_seqs; s++) {
		uint32_t l = b->seq_lens[s], nb;
		char who[32];
		int ret;

		if (l == 0 || l > INT32_MAX)
			return kvf_fail(msg, len, -EINVAL,
			                "decode batch: sequence %u has length %u", s, l);
		if (!b->block_tables[s])
			return kvf_fail(msg, len, -EINVAL, "decode batch: sequence %u has no table",
			                s);
		nb = (l + shape->block_size - 1) / shape->block_size;
		snprintf(who, sizeof(who), "sequence %u", s);
		ret = check_table(b->block_tables[s], nb, arena_blocks, who, msg, len);
		if (ret)
			return ret;
		if (nb > longest)
			longest = nb;
	}
	if (max_blocks)
		*max_blocks = longest;
	return 0;
}

int kvf_check_prefill(const struct kvfpga_attn_shape *shape, uint64_t arena_blocks,
                      const struct kvfpga_prefill_chunk *c, char *msg, size_t len)
{
	uint64_t end;

	if (!c || !c->block_table || !c->q || !c->out)
		return kvf_fail(msg, len, -EINVAL, "prefill chunk: missing pointer");
	end = (uint64_t)c->start_pos + c->n_tokens;
	if (c->n_tokens == 0 || end > INT32_MAX)
		return kvf_fail(msg, len, -EINVAL, "prefill chunk: %u tokens at position %u",
		                c->n_tokens, c->start_pos);
	if (c->layer >= shape->n_layers)
		return kvf_fail(msg, len, -EINVAL, "prefill chunk: layer %u of %u", c->layer,
		                shape->n_layers);
	if (!scale_ok(c->scale))
		return kvf_fail(msg, len, -EINVAL, "prefill chunk: scale must be finite and > 0");
	return check_table(c->block_table,
	                   (uint32_t)((end + shape->block_size - 1) / shape->block_size),
	                   arena_blocks, "prefill chunk", msg, len);
}

/* Where slices and their int8 scales are (see kvf_shape_check). */
struct ref_layout {
	struct kvf_kv_geometry geo;
	uint64_t arena_blocks;
};

/*
 * The (layer, kv, head, position) row of the arena, widened to float.  A
 * tile is [slot][dim] for V and transposed, [dim][slot], for K.
 */
static void load_row(const struct kvfpga_attn_shape *s, const unsigned char *arena,
                     const struct ref_layout *lay, const int32_t *table, uint32_t layer, int kv,
                     uint32_t head, uint32_t pos, float *row)
{
	uint64_t slice = kvf_layer_base(&lay->geo, lay->arena_blocks, layer) +
	                 (uint64_t)table[pos / s->block_size] * lay->geo.slice_elems;
	uint64_t tile = slice + ((uint64_t)kv * s->n_kv_heads + head) * s->block_size * s->head_dim;
	uint64_t slot = pos % s->block_size;
	uint64_t off = kv ? tile + slot * s->head_dim : tile + slot;
	uint64_t step = kv ? 1 : s->block_size; /* elements between dims */
	float scale = 1.0f;

	if (s->kv_dtype == KVFPGA_KV_I8)
		/* int8 elements are bytes: element offsets are byte offsets. */
		memcpy(&scale,
		       arena + slice + lay->geo.scale_offset +
		               ((uint64_t)kv * s->n_kv_heads + head) * 4,
		       sizeof(scale));
	for (uint32_t d = 0; d < s->head_dim; d++) {
		uint64_t e = off + d * step;

		if (s->kv_dtype == KVFPGA_KV_I8) {
			row[d] = (float)(int8_t)arena[e] * scale;
		} else if (s->kv_dtype == KVFPGA_KV_F16) {
			uint16_t h;

			memcpy(&h, arena + e * 2, sizeof(h));
			row[d] = kvfh_f16_to_f32(h);
		} else {
			memcpy(&row[d], arena + e * 4, sizeof(float));
		}
	}
}

/* One query row against positions 0..n_ctx-1, online softmax in double. */
static void attend(const struct kvfpga_attn_shape *s, const unsigned char *arena,
                   const struct ref_layout *lay, const int32_t *table, uint32_t layer,
                   uint32_t kv_head, uint32_t n_ctx, const float *q, float scale, float *out)
{
	double acc[KVF_MAX_HEAD_DIM];
	float k[KVF_MAX_HEAD_DIM], v[KVF_MAX_HEAD_DIM];
	double m = -INFINITY, l = 0.0;

	memset(acc, 0, sizeof(acc));
	for (uint32_t p = 0; p < n_ctx; p++) {
		double dot = 0.0, m_new, corr, w;

		load_row(s, arena, lay, table, layer, 0, kv_head, p, k);
		load_row(s, arena, lay, table, layer, 1, kv_head, p, v);
		for (uint32_t d = 0; d < s->head_dim; d++)
			dot += (double)q[d] * k[d];
		dot *= scale;
		m_new = dot > m ? dot : m;
		corr = exp(m - m_new);
		w = exp(dot - m_new);
		l = l * corr + w;
		for (uint32_t d = 0; d < s->head_dim; d++)
			acc[d] = acc[d] * corr + w * v[d];
		m = m_new;
	}
	for (uint32_t d = 0; d < s->head_dim; d++)
		out[d] = (float)(acc[d] / l);
}

int kvfpga_attn_reference_decode(const struct kvfpga_attn_shape *shape, const void *arena_base,
                                 uint64_t arena_size, const struct kvfpga_decode_batch *batch)
{
	struct ref_layout lay;
	uint32_t group;
	int ret;

	ret = kvf_shape_check(shape, &group, &lay.geo);
	if (ret || !arena_base)
		return -EINVAL;
	ret = kvf_arena_blocks(&lay.geo, arena_size, &lay.arena_blocks, NULL, 0);
	if (!ret)
		ret = kvf_check_decode(shape, lay.arena_blocks, batch, NULL, NULL, 0);
	if (ret)
		return ret;
	for (uint32_t s = 0; s < batch->n_seqs; s++) {
		for (uint32_t h = 0; h < shape->n_q_heads; h++) {
			size_t row = ((size_t)s * shape->n_q_heads + h) * shape->head_dim;

			attend(shape, arena_base, &lay, batch->block_tables[s], batch->layer,
			       h / group, batch->seq_lens[s], batch->q + row, batch->scale,
			       batch->out + row);
		}
	}
	return 0;
}

int kvfpga_attn_reference_prefill(const struct kvfpga_attn_shape *shape, const void *arena_base,
                                  uint64_t arena_size, const struct kvfpga_prefill_chunk *chunk)
{
	struct ref_layout lay;
	uint32_t group;
	int ret;

	ret = kvf_shape_check(shape, &group, &lay.geo);
	if (ret || !arena_base)
		return -EINVAL;
	ret = kvf_arena_blocks(&lay.geo, arena_size, &lay.arena_blocks, NULL, 0);
	if (!ret)
		ret = kvf_check_prefill(shape, lay.arena_blocks, chunk, NULL, 0);
	if (ret)
		return ret;
	for (uint32_t t = 0; t < chunk->n_tokens; t++) {
		for (uint32_t h = 0; h < shape->n_q_heads; h++) {
			size_t row = ((size_t)t * shape->n_q_heads + h) * shape->head_dim;

			attend(shape, arena_base, &lay, chunk->block_table, chunk->layer, h / group,
			       chunk->start_pos + t + 1, chunk->q + row, chunk->scale,
			       chunk->out + row);
		}
	}
	return 0;
}
