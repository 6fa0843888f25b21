/* SPDX-License-Identifier: MIT */
/*
 * The card attention backend: each sequence's K/V live in a paged cache
 * (kvfpga/kvcache.h) whose arena is one buffer in card memory; attention
 * runs as the OpenCL kernels of the engine (kvfpga/engine.h), reading the
 * arena in place through the sequences' block tables.
 *
 * Per forward call: prepare appends the batch's tokens to the sequences
 * (slots, and blocks when a block fills), write_kv stores each layer's new
 * K/V rows straight into the mapped arena, attend submits one decode
 * launch for all single-token runs and one prefill launch per longer run,
 * and commit marks the positions final, which publishes full blocks to the
 * prefix cache.  seq_prefix lets a new sequence reuse published blocks.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_internal.h"
#include "kvfpga/engine.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"
#include "model_internal.h"

#define DEFAULT_BLOCK_SIZE 16u
#define DEFAULT_MAX_SEQS   64u

struct card_seq {
	struct kvfpga_kvseq *kv;
};

struct card_attn {
	struct kvfpga_kvcache *kc;
	struct kvfpga_kv_arena *arena;
	struct kvfpga_attn *attn;
	struct kvfpga_attn_job *job;
	struct kvfpga_kvcache_layout layout;
	uint32_t n_heads, head_dim, dim, kv_dim;
	uint32_t max_seqs, max_seq_len, max_blocks;
	float scale;
	struct card_seq *seqs;
	int32_t *tables;          /* [max_seqs][max_blocks] */
	const int32_t **table_of; /* [max_seqs] */
	uint32_t *lens;           /* [max_seqs] */
	float *qbuf, *obuf;       /* [max_seqs][dim]: decode rows gathered */
	int32_t *tok;             /* [max_seq_len]: token ids as the cache keeps them */
	uint32_t *undo_len;       /* [max_seqs]: lengths before a prepare, for rollback */
	char err[KVFPGA_ENGINE_MSG_MAX];
};

void kvfpga_infer_card_opts_init(struct kvfpga_infer_card_opts *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->block_size = DEFAULT_BLOCK_SIZE;
	opts->kv_type = KVFPGA_INFER_KV_F16;
}

static struct kvfpga_kvseq *seq_of(struct card_attn *c, uint32_t id)
{
	return id < c->max_seqs ? c->seqs[id].kv : NULL;
}

static int card_seq_create(void *state, uint32_t *id)
{
	struct card_attn *c = state;

	for (uint32_t i = 0; i < c->max_seqs; i++) {
		if (c->seqs[i].kv)
			continue;
		int ret = kvfpga_kvseq_create(c->kc, 0, &c->seqs[i].kv);

		if (ret)
			return ret;
		*id = i;
		return 0;
	}
	return -ENOSPC;
}

static void card_seq_free(void *state, uint32_t id)
{
	struct card_attn *c = state;

	if (id < c->max_seqs && c->seqs[id].kv) {
		kvfpga_kvseq_free(c->seqs[id].kv);
		c->seqs[id].kv = NULL;
	}
}

static int card_seq_fork(void *state, uint32_t src, uint32_t n_tokens, uint32_t *id)
{
	struct card_attn *c = state;
	struct kvfpga_kvseq *from = seq_of(c, src), *kv = NULL;
	int ret;

	if (!from)
		return -EINVAL;
	for (uint32_t i = 0; i < c->max_seqs; i++) {
		if (c->seqs[i].kv)
			continue;
		ret = kvfpga_kvseq_fork(from, &kv);
		if (!ret)
			ret = kvfpga_kvseq_truncate(kv, n_tokens);
		if (ret) {
			kvfpga_kvseq_free(kv);
			return ret;
		}
		c->seqs[i].kv = kv;
		*id = i;
		return 0;
	}
	return -ENOSPC;
}

static int card_seq_prefix(void *state, uint32_t id, const uint32_t *tokens, uint32_t n,
                           uint32_t *n_cached)
{
	struct card_attn *c = state;
	struct kvfpga_kvseq *kv = seq_of(c, id);

	if (!kv || n > c->max_seq_len)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		c->tok[i] = (int32_t)tokens[i];
	/* Reserves all n positions; the leading *n_cached come with their K/V. */
	return kvfpga_kvseq_append(kv, c->tok, n, n_cached);
}

/*
 * Make each run's positions [p0, p1) hold its tokens.  Positions already
 * reserved with the same tokens (by seq_prefix, or a forward call that
 * failed after its prepare) are kept; different ones are dropped first.
 */
static int card_prepare(void *state, const struct kvfpga_infer_attn_run *runs, size_t n_runs,
                        const uint32_t *tokens)
{
	struct card_attn *c = state;
	size_t i;
	int ret = 0;

	for (i = 0; i < n_runs; i++) {
		const struct kvfpga_infer_attn_run *r = &runs[i];
		struct kvfpga_kvseq *kv = seq_of(c, r->seq);
		struct kvfpga_kvseq_info info;
		uint32_t keep, p;

		if (!kv || r->p1 > c->max_seq_len) {
			ret = -EINVAL;
			break;
		}
		ret = kvfpga_kvseq_get_info(kv, &info);
		if (ret)
			break;
		c->undo_len[i] = info.len;
		if (info.committed > r->p0) {
			ret = -EINVAL; /* the forward pass would rewrite final positions */
			break;
		}
		keep = info.len < r->p1 ? info.len : r->p1;
		if (keep > r->p0) {
			ret = kvfpga_kvseq_tokens(kv, r->p0, keep - r->p0, c->tok);
			if (ret)
				break;
			for (p = r->p0; p < keep; p++)
				if (c->tok[p - r->p0] != (int32_t)tokens[r->row + p - r->p0])
					break;
			keep = p;
		} else {
			keep = r->p0;
		}
		if (info.len > keep) {
			ret = kvfpga_kvseq_truncate(kv, keep);
			if (ret)
				break;
		}
		if (r->p1 > keep) {
			for (p = keep; p < r->p1; p++)
				c->tok[p - keep] = (int32_t)tokens[r->row + p - r->p0];
			/* Cached blocks found here are harmless: write_kv skips committed slots. */
			ret = kvfpga_kvseq_append(kv, c->tok, r->p1 - keep, NULL);
			if (ret)
				break;
		}
	}
	if (ret) {
		/* Undo the runs already prepared: back to their earlier lengths. */
		while (i-- > 0) {
			struct kvfpga_kvseq *kv = seq_of(c, runs[i].seq);
			struct kvfpga_kvseq_info info;

			if (!kvfpga_kvseq_get_info(kv, &info) && info.len > c->undo_len[i] &&
			    c->undo_len[i] >= info.committed)
				kvfpga_kvseq_truncate(kv, c->undo_len[i]);
		}
	}
	return ret;
}

static int card_write_kv(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
                         size_t n_runs, const float *k, const float *v)
{
	struct card_attn *c = state;

	for (size_t i = 0; i < n_runs; i++) {
		const struct kvfpga_infer_attn_run *r = &runs[i];
		struct kvfpga_kvseq *kv = seq_of(c, r->seq);
		struct kvfpga_kvseq_info info;
		uint32_t from;
		size_t off;
		int ret;

		if (!kv)
			return -EINVAL;
		ret = kvfpga_kvseq_get_info(kv, &info);
		if (ret)
			return ret;
		/* Committed slots already hold these K/V (reused from the prefix cache). */
		from = info.committed > r->p0 ? info.committed : r->p0;
		if (from >= r->p1)
			continue;
		off = (size_t)(r->row + from - r->p0) * c->kv_dim;
		ret = kvfpga_kvseq_write_range(kv, layer, from, r->p1 - from, k + off, v + off,
		                               c->kv_dim);
		if (ret)
			return ret;
	}
	return 0;
}

static int table_for(struct card_attn *c, struct kvfpga_kvseq *kv, uint32_t slot,
                     const int32_t **table)
{
	int32_t *t = c->tables + (size_t)slot * c->max_blocks;
	uint32_t n;
	int ret = kvfpga_kvseq_block_table(kv, t, c->max_blocks, &n);

	if (ret)
		return ret;
	if (n > c->max_blocks)
		return -ERANGE;
	*table = t;
	return 0;
}

static int job_failed(struct card_attn *c, int ret)
{
	snprintf(c->err, sizeof(c->err), "%s", kvfpga_attn_job_error(c->job));
	return ret;
}

static int card_attend(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
                       size_t n_runs, const float *q, float *out)
{
	struct card_attn *c = state;
	struct kvfpga_decode_batch db = { 0 };
	uint32_t nd = 0;
	int ret;

	c->err[0] = '\0';
	/* All single-token runs (decode) go in one launch. */
	for (size_t i = 0; i < n_runs; i++) {
		const struct kvfpga_infer_attn_run *r = &runs[i];
		struct kvfpga_kvseq *kv = seq_of(c, r->seq);

		if (!kv || r->p1 - r->p0 != 1)
			continue;
		if (nd >= c->max_seqs)
			return -EINVAL;
		ret = table_for(c, kv, nd, &c->table_of[nd]);
		if (ret)
			return ret;
		c->lens[nd] = r->p1;
		memcpy(c->qbuf + (size_t)nd * c->dim, q + (size_t)r->row * c->dim,
		       (size_t)c->dim * sizeof(float));
		nd++;
	}
	if (nd) {
		db.layer = layer;
		db.n_seqs = nd;
		db.seq_lens = c->lens;
		db.block_tables = c->table_of;
		db.q = c->qbuf;
		db.out = c->obuf;
		db.scale = c->scale;
		ret = kvfpga_attn_decode_submit(c->job, c->arena, &db);
		if (!ret)
			ret = kvfpga_attn_job_wait(c->job);
		if (ret)
			return job_failed(c, ret);
		nd = 0;
		for (size_t i = 0; i < n_runs; i++) {
			if (runs[i].p1 - runs[i].p0 != 1)
				continue;
			memcpy(out + (size_t)runs[i].row * c->dim, c->obuf + (size_t)nd++ * c->dim,
			       (size_t)c->dim * sizeof(float));
		}
	}
	/* Longer runs (prefill chunks): one causal launch each, in place. */
	for (size_t i = 0; i < n_runs; i++) {
		const struct kvfpga_infer_attn_run *r = &runs[i];
		struct kvfpga_kvseq *kv = seq_of(c, r->seq);
		struct kvfpga_prefill_chunk pc = { 0 };

		if (!kv || r->p1 - r->p0 < 2)
			continue;
		ret = table_for(c, kv, 0, &pc.block_table);
		if (ret)
			return ret;
		pc.layer = layer;
		pc.start_pos = r->p0;
		pc.n_tokens = r->p1 - r->p0;
		pc.q = q + (size_t)r->row * c->dim;
		pc.out = out + (size_t)r->row * c->dim;
		pc.scale = c->scale;
		ret = kvfpga_attn_prefill_submit(c->job, c->arena, &pc);
		if (!ret)
			ret = kvfpga_attn_job_wait(c->job);
		if (ret)
			return job_failed(c, ret);
	}
	return 0;
}

static int card_commit(void *state, const struct kvfpga_infer_attn_run *runs, size_t n_runs)
{
	struct card_attn *c = state;

	for (size_t i = 0; i < n_runs; i++) {
		struct kvfpga_kvseq *kv = seq_of(c, runs[i].seq);
		int ret = kv ? kvfpga_kvseq_commit(kv, runs[i].p1) : -EINVAL;

		if (ret)
			return ret;
	}
	return 0;
}

static int card_stats(void *state, struct kvfpga_infer_attn_stats *st)
{
	struct card_attn *c = state;
	struct kvfpga_kvcache_stats ks;
	int ret = kvfpga_kvcache_get_stats(c->kc, &ks);

	if (ret)
		return ret;
	memset(st, 0, sizeof(*st));
	st->blocks_used = ks.blocks_used;
	st->blocks_total = ks.blocks_total;
	st->prefix_hits = ks.prefix_hit_tokens;
	st->bytes_resident = (uint64_t)(ks.blocks_used + ks.blocks_cached) * c->layout.block_bytes;
	return 0;
}

static int card_last_error(void *state, char *buf, size_t len)
{
	struct card_attn *c = state;

	snprintf(buf, len, "%s", c->err);
	return 0;
}

static void card_destroy(void *state)
{
	struct card_attn *c = state;

	if (!c)
		return;
	kvfpga_attn_job_destroy(c->job);
	kvfpga_kv_arena_release(c->arena);
	kvfpga_attn_destroy(c->attn);
	for (uint32_t i = 0; c->seqs && i < c->max_seqs; i++)
		kvfpga_kvseq_free(c->seqs[i].kv);
	kvfpga_kvcache_destroy(c->kc);
	free(c->seqs);
	free(c->tables);
	free(c->table_of);
	free(c->lens);
	free(c->qbuf);
	free(c->obuf);
	free(c->tok);
	free(c->undo_len);
	free(c);
}

static const struct kvfpga_infer_attn_ops card_ops = {
	.name = "card",
	.seq_create = card_seq_create,
	.seq_fork = card_seq_fork,
	.seq_free = card_seq_free,
	.seq_prefix = card_seq_prefix,
	.prepare = card_prepare,
	.write_kv = card_write_kv,
	.attend = card_attend,
	.commit = card_commit,
	.stats = card_stats,
	.last_error = card_last_error,
	.destroy = card_destroy,
};

/* Blocks for the cache: as asked, else max_seqs full sequences if 90% of free memory holds them. */
static int size_cache(const struct kvfpga_infer_card_opts *o, uint32_t max_seqs,
                      uint32_t blocks_per_seq, uint64_t block_bytes, uint32_t *n_blocks, char *err,
                      size_t errlen)
{
	struct kvfpga_device_info di;
	uint64_t want = o->n_blocks ? o->n_blocks : (uint64_t)max_seqs * blocks_per_seq;
	uint64_t fit;
	int ret = kvfpga_device_query(o->dev, &di);

	if (ret)
		return kvfi_fail(err, errlen, ret, "cannot query the device: %s",
		                 kvfpga_strerror(ret));
	fit = di.mem_free / 10 * 9 / block_bytes;
	if (!o->n_blocks && want > fit)
		want = fit;
	if (want < blocks_per_seq || want > INT32_MAX)
		return kvfi_fail(err, errlen, -ENOSPC,
		                 "%llu K/V blocks of %llu bytes do not hold one sequence of %u "
		                 "blocks (device memory free: %llu bytes)",
		                 (unsigned long long)want, (unsigned long long)block_bytes,
		                 blocks_per_seq, (unsigned long long)di.mem_free);
	*n_blocks = (uint32_t)want;
	return 0;
}

int kvfpga_infer_card_attn_create(const struct kvfpga_model *model,
                                  const struct kvfpga_infer_card_opts *opts,
                                  const struct kvfpga_infer_attn_ops **ops, void **state, char *err,
                                  size_t errlen)
{
	const struct kvfpga_model_config *mc;
	struct kvfpga_kvcache_config kcfg;
	struct kvfpga_kvcache_arena ka;
	struct kvfpga_attn_shape shape;
	struct kvfpga_infer_card_opts o;
	uint64_t block_bytes;
	struct card_attn *c;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!model || !opts || !opts->dev || !opts->engine || !ops || !state)
		return kvfi_fail(err, errlen, -EINVAL,
		                 "card attention needs a model, a device "
		                 "and an engine");
	o = *opts;
	mc = &model->cfg;
	if (!o.block_size)
		o.block_size = DEFAULT_BLOCK_SIZE;
	if (!o.max_seqs)
		o.max_seqs = DEFAULT_MAX_SEQS;
	if (!o.max_seq_len)
		o.max_seq_len = mc->seq_len;
	if (o.kv_type != KVFPGA_INFER_KV_F32 && o.kv_type != KVFPGA_INFER_KV_F16 &&
	    o.kv_type != KVFPGA_INFER_KV_I8)
		return kvfi_fail(err, errlen, -EINVAL, "unknown K/V type %d", (int)o.kv_type);
	if (o.max_seqs > 65536 || o.max_seq_len > KVFI_MAX_SEQ_LEN)
		return kvfi_fail(err, errlen, -EINVAL, "max_seqs or max_seq_len out of range");

	shape.n_layers = mc->n_layers;
	shape.n_q_heads = mc->n_heads;
	shape.n_kv_heads = mc->n_kv_heads;
	shape.head_dim = mc->head_dim;
	shape.block_size = o.block_size;
	shape.kv_dtype = o.kv_type == KVFPGA_INFER_KV_I8    ? KVFPGA_KV_I8
	                 : o.kv_type == KVFPGA_INFER_KV_F16 ? KVFPGA_KV_F16
	                                                    : KVFPGA_KV_F32;
	ret = kvfpga_attn_shape_block_bytes(&shape, &block_bytes);
	if (ret)
		return kvfi_fail(
		        err, errlen, ret,
		        "the attention engine does not support this shape (%u heads, %u kv "
		        "heads, head size %u, block size %u)",
		        mc->n_heads, mc->n_kv_heads, mc->head_dim, o.block_size);

	c = calloc(1, sizeof(*c));
	if (!c)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	c->n_heads = mc->n_heads;
	c->head_dim = mc->head_dim;
	c->dim = mc->n_heads * mc->head_dim;
	c->kv_dim = mc->n_kv_heads * mc->head_dim;
	c->max_seqs = o.max_seqs;
	c->max_seq_len = o.max_seq_len;
	c->max_blocks = (o.max_seq_len + o.block_size - 1) / o.block_size;
	c->scale = 1.0f / sqrtf((float)mc->head_dim);
	c->seqs = calloc(o.max_seqs, sizeof(*c->seqs));
	c->tables = calloc((size_t)o.max_seqs * c->max_blocks, sizeof(*c->tables));
	c->table_of = calloc(o.max_seqs, sizeof(*c->table_of));
	c->lens = calloc(o.max_seqs, sizeof(*c->lens));
	c->qbuf = calloc((size_t)o.max_seqs * c->dim, sizeof(float));
	c->obuf = calloc((size_t)o.max_seqs * c->dim, sizeof(float));
	c->tok = calloc(o.max_seq_len ? o.max_seq_len : 1, sizeof(*c->tok));
	c->undo_len = calloc(o.max_seqs, sizeof(*c->undo_len));
	if (!c->seqs || !c->tables || !c->table_of || !c->lens || !c->qbuf || !c->obuf || !c->tok ||
	    !c->undo_len) {
		ret = kvfi_fail(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}

	kvfpga_kvcache_config_init(&kcfg);
	kcfg.n_layers = mc->n_layers;
	kcfg.n_kv_heads = mc->n_kv_heads;
	kcfg.head_dim = mc->head_dim;
	kcfg.block_size = o.block_size;
	kcfg.dtype = o.kv_type == KVFPGA_INFER_KV_I8    ? KVFPGA_KVCACHE_I8
	             : o.kv_type == KVFPGA_INFER_KV_F16 ? KVFPGA_KVCACHE_F16
	                                                : KVFPGA_KVCACHE_F32;
	kcfg.flags = o.no_prefix_cache ? KVFPGA_KVCACHE_NO_PREFIX_CACHING : 0;
	ret = size_cache(&o, o.max_seqs, c->max_blocks, block_bytes, &kcfg.n_blocks, err, errlen);
	if (ret)
		goto fail;
	ret = kvfpga_kvcache_create(o.dev, &kcfg, &c->kc);
	if (ret) {
		kvfi_fail(err, errlen, ret,
		          "cannot create the K/V cache (%u blocks of %llu bytes): %s",
		          kcfg.n_blocks, (unsigned long long)block_bytes, kvfpga_strerror(ret));
		goto fail;
	}
	ret = kvfpga_kvcache_get_layout(c->kc, &c->layout);
	if (!ret)
		ret = kvfpga_kvcache_get_arena(c->kc, &ka);
	if (ret) {
		kvfi_fail(err, errlen, ret, "K/V cache layout: %s", kvfpga_strerror(ret));
		goto fail;
	}
	if (c->layout.block_bytes != block_bytes) {
		ret = kvfi_fail(err, errlen, -EPROTO,
		                "the K/V cache (%llu bytes per block) and the attention engine "
		                "(%llu) disagree on the layout",
		                (unsigned long long)c->layout.block_bytes,
		                (unsigned long long)block_bytes);
		goto fail;
	}
	ret = kvfpga_attn_create(o.engine, &shape, &c->attn);
	if (!ret)
		ret = kvfpga_kv_arena_register(o.engine, ka.base, ka.arena_bytes, &c->arena);
	if (!ret)
		ret = kvfpga_attn_job_create(c->attn, &c->job);
	if (ret) {
		char msg[KVFPGA_ENGINE_MSG_MAX];

		kvfpga_engine_last_error(o.engine, msg, sizeof(msg));
		kvfi_fail(err, errlen, ret, "attention engine: %s", msg[0] ? msg : strerror(-ret));
		goto fail;
	}
	*ops = &card_ops;
	*state = c;
	return 0;
fail:
	card_destroy(c);
	return ret;
}
