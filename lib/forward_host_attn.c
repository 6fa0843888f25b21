/* SPDX-License-Identifier: MIT */
/*
 * The host attention backend: each sequence owns contiguous K and V
 * arrays [n_layers][max_seq_len][kv_dim] in host memory (f32 or f16),
 * allocated zeroed so untouched positions cost no memory.  It is the
 * reference and comparison path for backends that keep K/V on a card.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "forward_internal.h"

struct host_seq {
	int live;
	void *k, *v;
};

struct host_attn {
	struct kvfpga_infer_attn_shape shape;
	enum kvfpga_infer_kv_type kv_type;
	size_t elem; /* bytes per stored element */
	uint32_t kv_dim;
	uint32_t max_seqs;
	struct host_seq *seqs;
	struct kvfi_pool *pool;
	const struct kvfi_kernels *kern;
	float *scores; /* per worker: max_seq_len floats */
	uint64_t bytes;
};

static size_t seq_bytes(const struct host_attn *h)
{
	return (size_t)h->shape.n_layers * h->shape.max_seq_len * h->kv_dim * h->elem;
}

static void *row_ptr(const struct host_attn *h, void *base, uint32_t layer, uint32_t pos)
{
	return (uint8_t *)base +
	       (((size_t)layer * h->shape.max_seq_len + pos) * h->kv_dim) * h->elem;
}

int kvfi_host_attn_create(const struct kvfpga_infer_attn_shape *shape,
                          enum kvfpga_infer_kv_type kv_type, uint32_t max_seqs,
                          struct kvfi_pool *pool, const struct kvfi_kernels *kern, void **state)
{
	struct host_attn *h;
	uint32_t nw = kvfi_pool_size(pool);

	if (kv_type != KVFPGA_INFER_KV_F32 && kv_type != KVFPGA_INFER_KV_F16)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->shape = *shape;
	h->kv_type = kv_type;
	h->elem = kv_type == KVFPGA_INFER_KV_F16 ? 2 : 4;
	h->kv_dim = shape->n_kv_heads * shape->head_dim;
	h->max_seqs = max_seqs;
	h->pool = pool;
	h->kern = kern;
	h->seqs = calloc(max_seqs, sizeof(*h->seqs));
	h->scores = malloc((size_t)nw * shape->max_seq_len * sizeof(float));
	if (!h->seqs || !h->scores) {
		free(h->seqs);
		free(h->scores);
		free(h);
		return -ENOMEM;
	}
	*state = h;
	return 0;
}

static int host_seq_create(void *state, uint32_t *seq)
{
	struct host_attn *h = state;

	for (uint32_t i = 0; i < h->max_seqs; i++) {
		struct host_seq *s = &h->seqs[i];

		if (s->live)
			continue;
		s->k = calloc(1, seq_bytes(h));
		s->v = calloc(1, seq_bytes(h));
		if (!s->k || !s->v) {
			free(s->k);
			free(s->v);
			s->k = s->v = NULL;
			return -ENOMEM;
		}
		s->live = 1;
		h->bytes += 2 * seq_bytes(h);
		*seq = i;
		return 0;
	}
	return -ENOSPC;
}

static void host_seq_free(void *state, uint32_t seq)
{
	struct host_attn *h = state;
	struct host_seq *s;

	if (seq >= h->max_seqs || !h->seqs[seq].live)
		return;
	s = &h->seqs[seq];
	free(s->k);
	free(s->v);
	s->k = s->v = NULL;
	s->live = 0;
	h->bytes -= 2 * seq_bytes(h);
}

static int host_seq_fork(void *state, uint32_t src, uint32_t n_tokens, uint32_t *seq)
{
	struct host_attn *h = state;
	uint32_t id;
	int ret;

	if (src >= h->max_seqs || !h->seqs[src].live || n_tokens > h->shape.max_seq_len)
		return -EINVAL;
	ret = host_seq_create(state, &id);
	if (ret)
		return ret;
	for (uint32_t l = 0; l < h->shape.n_layers; l++) {
		size_t n = (size_t)n_tokens * h->kv_dim * h->elem;

		memcpy(row_ptr(h, h->seqs[id].k, l, 0), row_ptr(h, h->seqs[src].k, l, 0), n);
		memcpy(row_ptr(h, h->seqs[id].v, l, 0), row_ptr(h, h->seqs[src].v, l, 0), n);
	}
	*seq = id;
	return 0;
}

static int check_runs(const struct host_attn *h, const struct kvfpga_infer_attn_run *runs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (runs[i].seq >= h->max_seqs || !h->seqs[runs[i].seq].live ||
		    runs[i].p0 > runs[i].p1 || runs[i].p1 > h->shape.max_seq_len)
			return -EINVAL;
	}
	return 0;
}

static int host_write_kv(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
                         size_t n_runs, const float *k, const float *v)
{
	struct host_attn *h = state;
	int ret = check_runs(h, runs, n_runs);

	if (ret || layer >= h->shape.n_layers)
		return ret ? ret : -EINVAL;
	for (size_t i = 0; i < n_runs; i++) {
		struct host_seq *s = &h->seqs[runs[i].seq];

		for (uint32_t p = runs[i].p0; p < runs[i].p1; p++) {
			const float *kr = k + (size_t)(runs[i].row + p - runs[i].p0) * h->kv_dim;
			const float *vr = v + (size_t)(runs[i].row + p - runs[i].p0) * h->kv_dim;

			if (h->kv_type == KVFPGA_INFER_KV_F16) {
				h->kern->to_h(kr, row_ptr(h, s->k, layer, p), h->kv_dim);
				h->kern->to_h(vr, row_ptr(h, s->v, layer, p), h->kv_dim);
			} else {
				memcpy(row_ptr(h, s->k, layer, p), kr, (size_t)h->kv_dim * 4);
				memcpy(row_ptr(h, s->v, layer, p), vr, (size_t)h->kv_dim * 4);
			}
		}
	}
	return 0;
}

struct attend_job {
	struct host_attn *h;
	uint32_t layer;
	const struct kvfpga_infer_attn_run *runs;
	size_t n_runs;
	const float *q;
	float *out;
	uint64_t n_tasks;
	atomic_uint_fast64_t next_task;
};

/* One (query row, head) task: softmax(q . K[0..p]) . V[0..p]. */
static void attend_one(struct host_attn *h, const struct host_seq *s, uint32_t layer, uint32_t pos,
                       uint32_t head, const float *q, float *out, float *scores)
{
	const uint32_t hd = h->shape.head_dim;
	const uint32_t kvh = head / (h->shape.n_heads / h->shape.n_kv_heads);
	const size_t off = (size_t)kvh * hd * h->elem, stride = (size_t)h->kv_dim * h->elem;
	const int f16 = h->kv_type == KVFPGA_INFER_KV_F16;
	float max = -INFINITY, sum = 0.0f;

	h->kern->scores(q, (const uint8_t *)row_ptr(h, s->k, layer, 0) + off, stride, pos + 1, hd,
	                f16, 1.0f / sqrtf((float)hd), scores);
	for (uint32_t t = 0; t <= pos; t++)
		if (scores[t] > max)
			max = scores[t];
	for (uint32_t t = 0; t <= pos; t++) {
		scores[t] = expf(scores[t] - max);
		sum += scores[t];
	}
	for (uint32_t t = 0; t <= pos; t++)
		scores[t] /= sum;
	h->kern->weighted_sum(scores, (const uint8_t *)row_ptr(h, s->v, layer, 0) + off, stride,
	                      pos + 1, hd, f16, out);
}

static void attend_worker(void *arg, uint32_t worker, uint32_t n_workers)
{
	struct attend_job *job = arg;
	struct host_attn *h = job->h;
	const uint32_t nh = h->shape.n_heads, hd = h->shape.head_dim;
	float *scores = h->scores + (size_t)worker * h->shape.max_seq_len;
	uint64_t task;

	(void)n_workers;
	/* (row, head) tasks handed out one by one: causal rows differ in cost. */
	while ((task = atomic_fetch_add_explicit(&job->next_task, 1, memory_order_relaxed)) <
	       job->n_tasks) {
		uint64_t row = task / nh;
		uint32_t head = (uint32_t)(task % nh);
		const struct kvfpga_infer_attn_run *run = job->runs;

		while (row >= run->row + (run->p1 - run->p0))
			run++;
		attend_one(h, &h->seqs[run->seq], job->layer, run->p0 + (uint32_t)(row - run->row),
		           head, job->q + row * nh * hd + (size_t)head * hd,
		           job->out + row * nh * hd + (size_t)head * hd, scores);
	}
}

static int host_attend(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
                       size_t n_runs, const float *q, float *out)
{
	struct host_attn *h = state;
	struct attend_job job = {
		.h = h, .layer = layer, .runs = runs, .n_runs = n_runs, .q = q, .out = out
	};
	int ret = check_runs(h, runs, n_runs);

	if (ret || layer >= h->shape.n_layers)
		return ret ? ret : -EINVAL;
	/* Rows must tile the batch run after run, as the forward pass lays them out. */
	for (size_t i = 0; i < n_runs; i++) {
		if (runs[i].row != job.n_tasks)
			return -EINVAL;
		job.n_tasks += runs[i].p1 - runs[i].p0;
	}
	job.n_tasks *= h->shape.n_heads;
	atomic_init(&job.next_task, 0);
	kvfi_pool_run(h->pool, attend_worker, &job);
	return 0;
}

static int host_stats(void *state, struct kvfpga_infer_attn_stats *st)
{
	struct host_attn *h = state;

	memset(st, 0, sizeof(*st));
	st->bytes_resident = h->bytes;
	return 0;
}

static void host_destroy(void *state)
{
	struct host_attn *h = state;

	if (!h)
		return;
	for (uint32_t i = 0; i < h->max_seqs; i++)
		host_seq_free(h, i);
	free(h->seqs);
	free(h->scores);
	free(h);
}

const struct kvfpga_infer_attn_ops kvfi_host_attn_ops = {
	.name = "host",
	.seq_create = host_seq_create,
	.seq_fork = host_seq_fork,
	.seq_free = host_seq_free,
	.write_kv = host_write_kv,
	.attend = host_attend,
	.stats = host_stats,
	.destroy = host_destroy,
};
