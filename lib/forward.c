/* SPDX-License-Identifier: MIT */
/*
 * The llama forward pass on the host: RMSNorm, RoPE (adjacent pairs),
 * GQA attention through a backend, SwiGLU FFN, tied or untied classifier.
 * Every matmul processes all tokens of the batch at once (decode is the
 * one-token case), with rows split between the pool's workers.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward_internal.h"
#include "model_internal.h"

#define DEFAULT_MAX_BATCH 512u
#define DEFAULT_MAX_SEQS  64u

struct seq_slot {
	uint32_t id;
	uint32_t len;
	uint32_t stamp; /* forward call that last ran it, to catch a second run */
	int live;
};

struct kvfpga_infer {
	const struct kvfpga_model *m;
	struct kvfpga_model_config cfg;
	uint32_t kv_dim;
	const struct kvfi_kernels *kern;
	struct kvfi_pool *pool;
	const struct kvfpga_infer_attn_ops *ops;
	void *attn;
	uint32_t max_batch, max_seq_len, max_seqs;
	struct seq_slot *seqs;
	uint32_t stamp;
	/* Activations, [max_batch][width]. */
	float *x, *xb, *q, *k, *v, *att, *h1, *h3;
	float *scratch; /* per worker: KVFI_MATMUL_ROW_TILE * max(dim, hidden) */
	size_t scratch_stride;
	double *inv_freq; /* [head_dim / 2] */
	float *rope_cs;   /* [max_batch][head_dim / 2][2]: cos, sin at each token's position */
	struct kvfpga_infer_attn_run *runs;
	uint32_t *out_rows;
	uint32_t *row_tokens; /* token id of each batch row, for the backend's prepare */
	uint64_t forward_calls, tokens, attn_ns, total_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kvfpga_infer_opts_init(struct kvfpga_infer_opts *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->n_threads = 1;
	opts->max_batch = DEFAULT_MAX_BATCH;
	opts->max_seqs = DEFAULT_MAX_SEQS;
	opts->kv_type = KVFPGA_INFER_KV_F32;
	opts->kernels = KVFPGA_KERNELS_AUTO;
}

static void release_attn(const struct kvfpga_infer_opts *opts)
{
	if (opts && opts->attn_ops && opts->attn_ops->destroy)
		opts->attn_ops->destroy(opts->attn_state);
}

void kvfpga_infer_free(struct kvfpga_infer *inf)
{
	if (!inf)
		return;
	if (inf->ops && inf->ops->destroy)
		inf->ops->destroy(inf->attn);
	kvfi_pool_destroy(inf->pool);
	free(inf->seqs);
	free(inf->x);
	free(inf->xb);
	free(inf->q);
	free(inf->k);
	free(inf->v);
	free(inf->att);
	free(inf->h1);
	free(inf->h3);
	free(inf->scratch);
	free(inf->inv_freq);
	free(inf->rope_cs);
	free(inf->runs);
	free(inf->out_rows);
	free(inf->row_tokens);
	free(inf);
}

static float *alloc_act(uint32_t rows, uint32_t width)
{
	return malloc((size_t)rows * width * sizeof(float));
}

int kvfpga_infer_create(const struct kvfpga_model *model, const struct kvfpga_infer_opts *opts,
                        struct kvfpga_infer **out)
{
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf;
	const struct kvfpga_model_config *c;
	uint32_t widest, half;
	int ret;

	if (!model || !out) {
		release_attn(opts);
		return -EINVAL;
	}
	if (opts)
		o = *opts;
	else
		kvfpga_infer_opts_init(&o);
	c = &model->cfg;
	if (!o.n_threads)
		o.n_threads = 1;
	if (!o.max_batch)
		o.max_batch = DEFAULT_MAX_BATCH;
	if (!o.max_seqs)
		o.max_seqs = DEFAULT_MAX_SEQS;
	if (!o.max_seq_len)
		o.max_seq_len = c->seq_len;
	if (o.n_threads > 256 || o.max_batch > 65536 || o.max_seqs > 65536 ||
	    o.max_seq_len > KVFI_MAX_SEQ_LEN ||
	    (o.kv_type != KVFPGA_INFER_KV_F32 && o.kv_type != KVFPGA_INFER_KV_F16 &&
	     !(o.kv_type == KVFPGA_INFER_KV_I8 && o.attn_ops)) ||
	    (o.attn_ops && (!o.attn_ops->seq_create || !o.attn_ops->seq_free ||
	                    !o.attn_ops->write_kv || !o.attn_ops->attend))) {
		release_attn(opts);
		return -EINVAL;
	}
	inf = calloc(1, sizeof(*inf));
	if (!inf) {
		release_attn(opts);
		return -ENOMEM;
	}
	if (o.attn_ops) { /* owned from here on: freed with inf */
		inf->ops = o.attn_ops;
		inf->attn = o.attn_state;
	}
	inf->m = model;
	inf->cfg = *c;
	inf->kv_dim = c->n_kv_heads * c->head_dim;
	inf->max_batch = o.max_batch;
	inf->max_seq_len = o.max_seq_len;
	inf->max_seqs = o.max_seqs;
	ret = kvfi_kernels_select(o.kernels, &inf->kern);
	if (ret)
		goto fail;
	ret = kvfi_pool_create(o.n_threads, &inf->pool);
	if (ret)
		goto fail;
	widest = c->hidden_dim > c->dim ? c->hidden_dim : c->dim;
	half = c->head_dim / 2;
	inf->scratch_stride = (size_t)KVFI_MATMUL_ROW_TILE * widest;
	inf->seqs = calloc(o.max_seqs, sizeof(*inf->seqs));
	inf->x = alloc_act(o.max_batch, c->dim);
	inf->xb = alloc_act(o.max_batch, c->dim);
	inf->q = alloc_act(o.max_batch, c->dim);
	inf->k = alloc_act(o.max_batch, inf->kv_dim);
	inf->v = alloc_act(o.max_batch, inf->kv_dim);
	inf->att = alloc_act(o.max_batch, c->dim);
	inf->h1 = alloc_act(o.max_batch, c->hidden_dim);
	inf->h3 = alloc_act(o.max_batch, c->hidden_dim);
	inf->scratch = malloc(inf->scratch_stride * o.n_threads * sizeof(float));
	inf->inv_freq = malloc(half * sizeof(double));
	inf->rope_cs = alloc_act(o.max_batch, 2 * half);
	inf->runs = calloc(o.max_batch, sizeof(*inf->runs));
	inf->out_rows = calloc(o.max_batch, sizeof(*inf->out_rows));
	inf->row_tokens = calloc(o.max_batch, sizeof(*inf->row_tokens));
	if (!inf->seqs || !inf->x || !inf->xb || !inf->q || !inf->k || !inf->v || !inf->att ||
	    !inf->h1 || !inf->h3 || !inf->scratch || !inf->inv_freq || !inf->rope_cs ||
	    !inf->runs || !inf->out_rows || !inf->row_tokens) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < half; i++)
		inf->inv_freq[i] = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->head_dim);
	if (!inf->ops) {
		struct kvfpga_infer_attn_shape shape = {
			.n_layers = c->n_layers,
			.n_heads = c->n_heads,
			.n_kv_heads = c->n_kv_heads,
			.head_dim = c->head_dim,
			.max_seq_len = o.max_seq_len,
		};

		ret = kvfi_host_attn_create(&shape, o.kv_type, o.max_seqs, inf->pool, inf->kern,
		                            &inf->attn);
		if (ret)
			goto fail;
		inf->ops = &kvfi_host_attn_ops;
	}
	*out = inf;
	return 0;
fail:
	kvfpga_infer_free(inf);
	return ret;
}

static struct seq_slot *find_seq(const struct kvfpga_infer *inf, uint32_t id)
{
	for (uint32_t i = 0; i < inf->max_seqs; i++)
		if (inf->seqs[i].live && inf->seqs[i].id == id)
			return &inf->seqs[i];
	return NULL;
}

static struct seq_slot *free_slot(struct kvfpga_infer *inf)
{
	for (uint32_t i = 0; i < inf->max_seqs; i++)
		if (!inf->seqs[i].live)
			return &inf->seqs[i];
	return NULL;
}

int kvfpga_infer_seq_create(struct kvfpga_infer *inf, uint32_t *seq)
{
	struct seq_slot *s;
	uint32_t id;
	int ret;

	if (!inf || !seq)
		return -EINVAL;
	s = free_slot(inf);
	if (!s)
		return -ENOSPC;
	ret = inf->ops->seq_create(inf->attn, &id);
	if (ret)
		return ret;
	s->id = id;
	s->len = 0;
	s->stamp = 0;
	s->live = 1;
	*seq = id;
	return 0;
}

int kvfpga_infer_seq_fork(struct kvfpga_infer *inf, uint32_t src, uint32_t n_tokens, uint32_t *seq)
{
	struct seq_slot *from, *s;
	uint32_t id;
	int ret;

	if (!inf || !seq)
		return -EINVAL;
	from = find_seq(inf, src);
	if (!from || n_tokens > from->len)
		return -EINVAL;
	if (!inf->ops->seq_fork)
		return -ENOTSUP;
	s = free_slot(inf);
	if (!s)
		return -ENOSPC;
	ret = inf->ops->seq_fork(inf->attn, src, n_tokens, &id);
	if (ret)
		return ret;
	s->id = id;
	s->len = n_tokens;
	s->stamp = 0;
	s->live = 1;
	*seq = id;
	return 0;
}

int kvfpga_infer_seq_free(struct kvfpga_infer *inf, uint32_t seq)
{
	struct seq_slot *s;

	if (!inf)
		return -EINVAL;
	s = find_seq(inf, seq);
	if (!s)
		return -ENOENT;
	inf->ops->seq_free(inf->attn, seq);
	s->live = 0;
	return 0;
}

int kvfpga_infer_seq_prefix(struct kvfpga_infer *inf, uint32_t seq, const uint32_t *tokens,
                            uint32_t n, uint32_t *n_cached)
{
	struct seq_slot *s;
	uint32_t cached = 0;
	int ret;

	if (!inf || (!tokens && n) || !n_cached)
		return -EINVAL;
	s = find_seq(inf, seq);
	if (!s || s->len)
		return -EINVAL;
	if (n > inf->max_seq_len)
		return -ERANGE; /* the prompt alone is longer than the context */
	for (uint32_t i = 0; i < n; i++)
		if (tokens[i] >= inf->cfg.vocab_size)
			return -EINVAL;
	if (inf->ops->seq_prefix && n) {
		ret = inf->ops->seq_prefix(inf->attn, seq, tokens, n, &cached);
		if (ret)
			return ret;
		if (cached >= n && n) /* the last token is always computed: it yields the logits */
			return -EPROTO;
	}
	s->len = cached;
	*n_cached = cached;
	return 0;
}

int kvfpga_infer_seq_len(const struct kvfpga_infer *inf, uint32_t seq, uint32_t *len)
{
	const struct seq_slot *s;

	if (!inf || !len)
		return -EINVAL;
	s = find_seq(inf, seq);
	if (!s)
		return -ENOENT;
	*len = s->len;
	return 0;
}

/* ---- parallel matmuls ---- */

struct mm_task {
	const struct kvfi_tensor *w;
	const float *x;
	size_t xs;
	float *y;
	size_t ys;
	int accumulate;
};

struct mm_job {
	struct kvfpga_infer *inf;
	size_t nt;
	struct mm_task task[3];
	int n_task;
	/* SwiGLU: task 0 (gate -> h1) and task 1 (up -> h3) share each chunk's rows. */
	int swiglu;
	uint64_t total_rows, chunk_rows, n_chunks;
	atomic_uint_fast64_t next_chunk;
};

/*
 * Chunks are handed out dynamically rather than one fixed share per
 * worker: when another process takes a core, the worker still running
 * picks up the rest instead of everyone waiting for the preempted one.
 */
static void mm_prepare(struct mm_job *job, uint32_t n_workers)
{
	uint64_t per_worker;

	job->total_rows = 0;
	for (int i = 0; i < (job->swiglu ? 1 : job->n_task); i++)
		job->total_rows += job->task[i].w->rows;
	/* About 32 chunks per worker, in whole register tiles: a short tail when one lags. */
	per_worker = (job->total_rows + 32ull * n_workers - 1) / (32ull * n_workers);
	job->chunk_rows = (per_worker + KVFI_MATMUL_ROW_TILE - 1) / KVFI_MATMUL_ROW_TILE *
	                  KVFI_MATMUL_ROW_TILE;
	if (job->chunk_rows < 16)
		job->chunk_rows = 16;
	job->n_chunks = (job->total_rows + job->chunk_rows - 1) / job->chunk_rows;
	atomic_init(&job->next_chunk, 0);
}

static void mm_chunk(struct mm_job *job, uint64_t lo, uint64_t hi, float *scratch)
{
	struct kvfpga_infer *inf = job->inf;
	uint64_t base = 0;

	if (job->swiglu) {
		const uint32_t hidden = job->task[0].w->rows;

		for (int i = 0; i < 2; i++) {
			const struct mm_task *t = &job->task[i];

			inf->kern->matmul(t->w, (uint32_t)lo, (uint32_t)hi, t->x, t->xs, job->nt,
			                  t->y, t->ys, 0, scratch);
		}
		for (size_t t = 0; t < job->nt; t++) {
			float *g = inf->h1 + t * hidden, *u = inf->h3 + t * hidden;

			for (uint64_t r = lo; r < hi; r++)
				g[r] = g[r] / (1.0f + expf(-g[r])) * u[r];
		}
		return;
	}
	for (int i = 0; i < job->n_task; i++) {
		const struct mm_task *t = &job->task[i];
		uint64_t a = lo > base ? lo - base : 0;
		uint64_t b = hi - base < t->w->rows ? hi - base : t->w->rows;

		if (hi > base && a < b)
			inf->kern->matmul(t->w, (uint32_t)a, (uint32_t)b, t->x, t->xs, job->nt,
			                  t->y, t->ys, t->accumulate, scratch);
		base += t->w->rows;
	}
}

static void mm_worker(void *arg, uint32_t worker, uint32_t n_workers)
{
	struct mm_job *job = arg;
	float *scratch = job->inf->scratch + worker * job->inf->scratch_stride;
	uint64_t c;

	(void)n_workers;
	while ((c = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed)) <
	       job->n_chunks) {
		uint64_t lo = c * job->chunk_rows;
		uint64_t hi = lo + job->chunk_rows < job->total_rows ? lo + job->chunk_rows
		                                                     : job->total_rows;

		mm_chunk(job, lo, hi, scratch);
	}
}

static void mm_run(struct mm_job *job)
{
	mm_prepare(job, kvfi_pool_size(job->inf->pool));
	kvfi_pool_run(job->inf->pool, mm_worker, job);
}

static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
	double ss = 0.0;
	float scale;

	for (uint32_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	scale = (float)(1.0 / sqrt(ss / n + eps));
	for (uint32_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

/* Rotate adjacent pairs of each head of @n_heads heads in @v by the token's angles. */
static void rope(float *v, uint32_t n_heads, uint32_t head_dim, const float *cs)
{
	for (uint32_t h = 0; h < n_heads; h++) {
		float *p = v + (size_t)h * head_dim;

		for (uint32_t i = 0; i < head_dim / 2; i++) {
			float c = cs[2 * i], s = cs[2 * i + 1];
			float a = p[2 * i], b = p[2 * i + 1];

			p[2 * i] = a * c - b * s;
			p[2 * i + 1] = a * s + b * c;
		}
	}
}

/* Splits the batch into runs and checks them; 0, -EINVAL or -ERANGE (context full). */
static int plan_batch(struct kvfpga_infer *inf, const struct kvfpga_token_in *tok, size_t n,
                      size_t *n_runs, size_t *n_out)
{
	size_t runs = 0, outs = 0;

	inf->stamp++;
	for (size_t i = 0; i < n; i++) {
		struct kvfpga_infer_attn_run *r = runs ? &inf->runs[runs - 1] : NULL;

		if (tok[i].token >= inf->cfg.vocab_size)
			return -EINVAL;
		if (!r || tok[i].seq != r->seq || tok[i].pos != r->p1) {
			struct seq_slot *s = find_seq(inf, tok[i].seq);

			if (!s || s->stamp == inf->stamp || tok[i].pos != s->len)
				return -EINVAL;
			s->stamp = inf->stamp;
			r = &inf->runs[runs++];
			r->seq = tok[i].seq;
			r->p0 = tok[i].pos;
			r->p1 = tok[i].pos;
			r->row = (uint32_t)i;
		}
		if (r->p1 >= inf->max_seq_len)
			return -ERANGE; /* past the context: tell it apart from bad input */
		r->p1++;
		if (tok[i].want_logits)
			inf->out_rows[outs++] = (uint32_t)i;
	}
	*n_runs = runs;
	*n_out = outs;
	return 0;
}

int kvfpga_infer_forward(struct kvfpga_infer *inf, const struct kvfpga_token_in *tokens, size_t n,
                         float *logits)
{
	const struct kvfpga_model *m;
	const struct kvfpga_model_config *c;
	size_t n_runs, n_out;
	uint64_t t0, ta;
	uint32_t half;
	int ret;

	if (!inf || (!tokens && n) || n > inf->max_batch)
		return -EINVAL;
	if (!n)
		return 0;
	ret = plan_batch(inf, tokens, n, &n_runs, &n_out);
	if (ret)
		return ret;
	if (n_out && !logits)
		return -EINVAL;
	t0 = now_ns();
	if (inf->ops->prepare) {
		for (size_t t = 0; t < n; t++)
			inf->row_tokens[t] = tokens[t].token;
		ret = inf->ops->prepare(inf->attn, inf->runs, n_runs, inf->row_tokens);
		if (ret)
			return ret;
	}
	m = inf->m;
	c = &inf->cfg;
	half = c->head_dim / 2;

	for (size_t t = 0; t < n; t++) {
		float *cs = inf->rope_cs + t * 2 * half;

		inf->kern->row_f32(&m->tok_embd, tokens[t].token, inf->x + t * c->dim);
		for (uint32_t i = 0; i < half; i++) {
			double a = tokens[t].pos * inf->inv_freq[i];

			cs[2 * i] = (float)cos(a);
			cs[2 * i + 1] = (float)sin(a);
		}
	}

	for (uint32_t l = 0; l < c->n_layers; l++) {
		const struct kvfi_layer *ly = &m->layers[l];
		struct mm_job job = { .inf = inf, .nt = n };

		for (size_t t = 0; t < n; t++)
			rmsnorm(inf->xb + t * c->dim, inf->x + t * c->dim, ly->rms_att, c->dim,
			        c->rms_eps);
		job.n_task = 3;
		job.task[0] = (struct mm_task){ &ly->wq, inf->xb, c->dim, inf->q, c->dim, 0 };
		job.task[1] = (struct mm_task){ &ly->wk, inf->xb, c->dim, inf->k, inf->kv_dim, 0 };
		job.task[2] = (struct mm_task){ &ly->wv, inf->xb, c->dim, inf->v, inf->kv_dim, 0 };
		mm_run(&job);
		for (size_t t = 0; t < n; t++) {
			const float *cs = inf->rope_cs + t * 2 * half;

			rope(inf->q + t * c->dim, c->n_heads, c->head_dim, cs);
			rope(inf->k + t * inf->kv_dim, c->n_kv_heads, c->head_dim, cs);
		}

		ta = now_ns();
		ret = inf->ops->write_kv(inf->attn, l, inf->runs, n_runs, inf->k, inf->v);
		if (!ret)
			ret = inf->ops->attend(inf->attn, l, inf->runs, n_runs, inf->q, inf->att);
		inf->attn_ns += now_ns() - ta;
		if (ret)
			return ret;

		job.n_task = 1;
		job.task[0] = (struct mm_task){ &ly->wo, inf->att, c->dim, inf->x, c->dim, 1 };
		mm_run(&job);

		for (size_t t = 0; t < n; t++)
			rmsnorm(inf->xb + t * c->dim, inf->x + t * c->dim, ly->rms_ffn, c->dim,
			        c->rms_eps);
		job.n_task = 2;
		job.swiglu = 1;
		job.task[0] =
		        (struct mm_task){ &ly->w1, inf->xb, c->dim, inf->h1, c->hidden_dim, 0 };
		job.task[1] =
		        (struct mm_task){ &ly->w3, inf->xb, c->dim, inf->h3, c->hidden_dim, 0 };
		mm_run(&job);

		job.n_task = 1;
		job.swiglu = 0;
		job.task[0] =
		        (struct mm_task){ &ly->w2, inf->h1, c->hidden_dim, inf->x, c->dim, 1 };
		mm_run(&job);
	}

	if (n_out) {
		struct mm_job job = { .inf = inf, .nt = n_out, .n_task = 1 };

		for (size_t i = 0; i < n_out; i++)
			rmsnorm(inf->xb + i * c->dim, inf->x + (size_t)inf->out_rows[i] * c->dim,
			        m->rms_final, c->dim, c->rms_eps);
		job.task[0] =
		        (struct mm_task){ &m->wcls, inf->xb, c->dim, logits, c->vocab_size, 0 };
		mm_run(&job);
	}

	if (inf->ops->commit) {
		ret = inf->ops->commit(inf->attn, inf->runs, n_runs);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < n_runs; i++)
		find_seq(inf, inf->runs[i].seq)->len = inf->runs[i].p1;
	inf->forward_calls++;
	inf->tokens += n;
	inf->total_ns += now_ns() - t0;
	return 0;
}

int kvfpga_infer_last_error(const struct kvfpga_infer *inf, char *buf, size_t len)
{
	if (!inf || !buf || !len)
		return -EINVAL;
	buf[0] = '\0';
	if (inf->ops->last_error)
		return inf->ops->last_error(inf->attn, buf, len);
	return 0;
}

int kvfpga_infer_get_stats(const struct kvfpga_infer *inf, struct kvfpga_infer_stats *st)
{
	if (!inf || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->forward_calls = inf->forward_calls;
	st->tokens = inf->tokens;
	st->attn_ns = inf->attn_ns;
	st->dense_ns = inf->total_ns > inf->attn_ns ? inf->total_ns - inf->attn_ns : 0;
	st->kernels = inf->kern->name;
	st->attn_backend = inf->ops->name;
	if (inf->ops->stats)
		return inf->ops->stats(inf->attn, &st->attn);
	return 0;
}
