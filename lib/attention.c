/* SPDX-License-Identifier: MIT */
/*
 * Attention jobs: decode (split-K, then merge) and prefill submissions on
 * a job's own in-order queue, completed through events.
 *
 * A call's inputs (queries, block tables, lengths) are copied into the
 * job's staging memory at submit, so the caller may reuse its arrays at
 * once.  On a device that works in host memory (a CPU) the kernels' buffers
 * are that staging memory (CL_MEM_USE_HOST_PTR) and the output is copied to
 * the caller when the job completes: a call queues only its kernels.  With
 * PoCL each write or read command cost 5-20 us (the workers wake for it),
 * as much as a whole layer's attention at a short context.  Elsewhere
 * queued writes and a read move the data.  On a CPU device the partial
 * kernel also merges the splits itself when the program can
 * (kvfpga_build_info reports DECODE_FUSED_MERGE): the job zeroes its
 * per-sequence split counters in place and a decode call is one kernel
 * launch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

#define JOB_MAX_EVENTS 12

struct job_buf {
	cl_mem mem;
	size_t cap;
};

/* A per-call buffer and its host staging memory (the same bytes when in place). */
struct staged_buf {
	cl_mem mem;
	void *host;
	size_t cap; /* bytes of each */
};

struct kvfpga_attn_job {
	struct kvfpga_attn *attn;
	cl_command_queue queue;
	cl_kernel k_partial, k_merge, k_prefill;
	struct staged_buf q, tables, lens, out;
	struct staged_buf split_done; /* fused merge: finished splits per sequence */
	struct job_buf part_o, part_ml;
	/* In place: where the output goes when the submission completes. */
	float *copy_out;
	size_t copy_out_bytes;
	cl_event events[JOB_MAX_EVENTS];
	const char *event_names[JOB_MAX_EVENTS];
	unsigned n_events;
	int busy;
	char msg[KVFPGA_ENGINE_MSG_MAX];
};

static const char *dev_name(const struct kvfpga_attn_job *job)
{
	return job->attn->engine->device_name;
}

static int job_cl_fail(struct kvfpga_attn_job *job, const char *call, cl_int st, const char *detail)
{
	return kvf_cl_fail(job->msg, sizeof(job->msg), call, st, dev_name(job), detail);
}

static int ensure_buf(struct kvfpga_attn_job *job, struct job_buf *b, size_t bytes,
                      cl_mem_flags flags, const char *what)
{
	cl_int st;
	size_t cap;

	if (b->cap >= bytes)
		return 0;
	if (b->mem)
		clReleaseMemObject(b->mem);
	b->mem = NULL;
	b->cap = 0;
	/* Grow with headroom so that slowly growing contexts do not reallocate each step. */
	cap = bytes + bytes / 4;
	b->mem = clCreateBuffer(job->attn->engine->context, flags, cap, NULL, &st);
	if (!b->mem)
		return job_cl_fail(job, "clCreateBuffer", st, what);
	b->cap = cap;
	return 0;
}

static void staged_free(struct staged_buf *b)
{
	if (b->mem)
		clReleaseMemObject(b->mem);
	free(b->host);
	b->mem = NULL;
	b->host = NULL;
	b->cap = 0;
}

static int ensure_staged(struct kvfpga_attn_job *job, struct staged_buf *b, size_t bytes,
                         cl_mem_flags flags, const char *what)
{
	cl_int st;
	size_t cap;

	if (b->cap >= bytes)
		return 0;
	staged_free(b);
	/* Headroom as in ensure_buf; whole pages, so the device can use them in place. */
	cap = (bytes + bytes / 4 + 4095) & ~(size_t)4095;
	b->host = aligned_alloc(4096, cap);
	if (!b->host)
		return kvf_fail(job->msg, sizeof(job->msg), -ENOMEM, "out of host memory");
	if (job->attn->info.in_place)
		flags |= CL_MEM_USE_HOST_PTR;
	b->mem = clCreateBuffer(job->attn->engine->context, flags, cap,
	                        job->attn->info.in_place ? b->host : NULL, &st);
	if (!b->mem) {
		free(b->host);
		b->host = NULL;
		return job_cl_fail(job, "clCreateBuffer", st, what);
	}
	b->cap = cap;
	return 0;
}

int kvfpga_attn_job_create(struct kvfpga_attn *attn, struct kvfpga_attn_job **out)
{
	struct kvfpga_attn_job *job;
	struct kvfpga_engine *e;
	cl_int st;
	int ret;

	if (!attn || !out)
		return -EINVAL;
	e = attn->engine;
	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->attn = attn;
	job->queue = clCreateCommandQueue(e->context, e->device, 0, &st);
	if (!job->queue) {
		ret = job_cl_fail(job, "clCreateCommandQueue", st, NULL);
		goto fail;
	}
	job->k_partial = clCreateKernel(attn->program, "kvfpga_decode_partial", &st);
	if (!job->k_partial) {
		ret = job_cl_fail(job, "clCreateKernel", st, "kvfpga_decode_partial");
		goto fail;
	}
	job->k_merge = clCreateKernel(attn->program, "kvfpga_decode_merge", &st);
	if (!job->k_merge) {
		ret = job_cl_fail(job, "clCreateKernel", st, "kvfpga_decode_merge");
		goto fail;
	}
	job->k_prefill = clCreateKernel(attn->program, "kvfpga_prefill", &st);
	if (!job->k_prefill) {
		ret = job_cl_fail(job, "clCreateKernel", st, "kvfpga_prefill");
		goto fail;
	}
	*out = job;
	return 0;
fail:
	kvf_engine_set_error(e, job->msg);
	kvfpga_attn_job_destroy(job);
	return ret;
}

static void release_events(struct kvfpga_attn_job *job)
{
	for (unsigned i = 0; i < job->n_events; i++)
		clReleaseEvent(job->events[i]);
	job->n_events = 0;
}

/* Waits for everything queued and reports the first command that failed. */
static int finish(struct kvfpga_attn_job *job)
{
	int ret = 0;
	cl_int st;

	if (!job->n_events) {
		job->busy = 0;
		return 0;
	}
	st = clWaitForEvents(job->n_events, job->events);
	if (st != CL_SUCCESS) {
		ret = job_cl_fail(job, "clWaitForEvents", st, NULL);
		for (unsigned i = 0; i < job->n_events; i++) {
			cl_int es = CL_COMPLETE;

			if (clGetEventInfo(job->events[i], CL_EVENT_COMMAND_EXECUTION_STATUS,
			                   sizeof(es), &es, NULL) == CL_SUCCESS &&
			    es < 0) {
				ret = job_cl_fail(job, job->event_names[i], es, "command failed");
				break;
			}
		}
	}
	if (!ret && job->copy_out)
		memcpy(job->copy_out, job->out.host, job->copy_out_bytes);
	job->copy_out = NULL;
	release_events(job);
	job->busy = 0;
	return ret;
}

void kvfpga_attn_job_destroy(struct kvfpga_attn_job *job)
{
	if (!job)
		return;
	/* A caller that did not wait gets no output written after the job is gone. */
	job->copy_out = NULL;
	if (job->queue) {
		finish(job);
		clFinish(job->queue);
	}
	staged_free(&job->q);
	staged_free(&job->tables);
	staged_free(&job->lens);
	staged_free(&job->out);
	staged_free(&job->split_done);
	if (job->part_o.mem)
		clReleaseMemObject(job->part_o.mem);
	if (job->part_ml.mem)
		clReleaseMemObject(job->part_ml.mem);
	if (job->k_prefill)
		clReleaseKernel(job->k_prefill);
	if (job->k_merge)
		clReleaseKernel(job->k_merge);
	if (job->k_partial)
		clReleaseKernel(job->k_partial);
	if (job->queue)
		clReleaseCommandQueue(job->queue);
	free(job);
}

int kvfpga_attn_job_wait(struct kvfpga_attn_job *job)
{
	if (!job)
		return -EINVAL;
	if (!job->busy)
		return 0;
	return finish(job);
}

int kvfpga_attn_job_poll(struct kvfpga_attn_job *job)
{
	cl_int es = CL_COMPLETE;

	if (!job)
		return -EINVAL;
	if (!job->busy)
		return 0;
	for (unsigned i = 0; i < job->n_events; i++) {
		cl_int st = clGetEventInfo(job->events[i], CL_EVENT_COMMAND_EXECUTION_STATUS,
		                           sizeof(es), &es, NULL);

		if (st != CL_SUCCESS || es < 0)
			return finish(job);
		if (es != CL_COMPLETE)
			return -EBUSY;
	}
	return finish(job);
}

const char *kvfpga_attn_job_error(const struct kvfpga_attn_job *job)
{
	return job ? job->msg : "no job";
}

/* --- enqueueing ----------------------------------------------------------- */

static int add_event(struct kvfpga_attn_job *job, cl_event ev, const char *name)
{
	job->events[job->n_events] = ev;
	job->event_names[job->n_events] = name;
	job->n_events++;
	return 0;
}

static int enqueue_write(struct kvfpga_attn_job *job, cl_mem mem, size_t bytes, const void *src,
                         const char *name)
{
	cl_event ev;
	cl_int st = clEnqueueWriteBuffer(job->queue, mem, CL_FALSE, 0, bytes, src, 0, NULL, &ev);

	if (st != CL_SUCCESS)
		return job_cl_fail(job, "clEnqueueWriteBuffer", st, name);
	return add_event(job, ev, name);
}

/* NaN over what a kernel is about to write, when the engine asks for it (poison_outputs). */
static int poison(struct kvfpga_attn_job *job, cl_mem mem, size_t bytes, const char *name)
{
	const cl_uint quiet_nan = 0x7fc00000u;
	cl_event ev;
	cl_int st;

	if (!job->attn->engine->opts.poison_outputs)
		return 0;
	st = clEnqueueFillBuffer(job->queue, mem, &quiet_nan, sizeof(quiet_nan), 0, bytes, 0, NULL,
	                         &ev);
	if (st != CL_SUCCESS)
		return job_cl_fail(job, "clEnqueueFillBuffer", st, name);
	return add_event(job, ev, name);
}

/* Makes a staged input visible to the kernels: nothing to do in place. */
static int stage_in(struct kvfpga_attn_job *job, const struct staged_buf *b, size_t bytes,
                    const char *name)
{
	if (job->attn->info.in_place)
		return 0;
	return enqueue_write(job, b->mem, bytes, b->host, name);
}

/* The output to dst: copied at completion in place, else a queued read. */
static int stage_out(struct kvfpga_attn_job *job, size_t bytes, float *dst)
{
	cl_event ev;
	cl_int st;

	if (job->attn->info.in_place) {
		job->copy_out = dst;
		job->copy_out_bytes = bytes;
		return 0;
	}
	st = clEnqueueReadBuffer(job->queue, job->out.mem, CL_FALSE, 0, bytes, dst, 0, NULL, &ev);
	if (st != CL_SUCCESS)
		return job_cl_fail(job, "clEnqueueReadBuffer", st, "attention output");
	return add_event(job, ev, "clEnqueueReadBuffer(attention output)");
}

static int enqueue_kernel(struct kvfpga_attn_job *job, cl_kernel k, const char *name, size_t g0,
                          size_t g1, const char *event_name)
{
	const size_t global[2] = { g0, g1 }, local[2] = { 1, 1 };
	cl_event ev;
	cl_int st = clEnqueueNDRangeKernel(job->queue, k, 2, NULL, global, local, 0, NULL, &ev);

	if (st != CL_SUCCESS)
		return job_cl_fail(job, "clEnqueueNDRangeKernel", st, name);
	return add_event(job, ev, event_name);
}

struct arg {
	size_t size;
	const void *value;
};

static int set_args(struct kvfpga_attn_job *job, cl_kernel k, const char *name,
                    const struct arg *args, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		cl_int st = clSetKernelArg(k, i, args[i].size, args[i].value);

		if (st != CL_SUCCESS) {
			char detail[96];

			snprintf(detail, sizeof(detail), "%s argument %u", name, i);
			return job_cl_fail(job, "clSetKernelArg", st, detail);
		}
	}
	return 0;
}

/* Something failed after commands were queued: let them drain, drop the events. */
static int abandon(struct kvfpga_attn_job *job, int ret)
{
	clFinish(job->queue);
	job->copy_out = NULL;
	release_events(job);
	job->busy = 0;
	return ret;
}

/*
 * Split-K plan: enough work-groups to fill the device (8 per compute unit)
 * but at least 256 context tokens each, so the merge stays negligible.
 */
static void plan_splits(const struct kvfpga_attn *a, uint32_t n_seqs, uint32_t max_blocks,
                        uint32_t split_tokens, uint32_t *split_blocks, uint32_t *n_splits)
{
	uint32_t bs = a->shape.block_size, sb;

	if (split_tokens) {
		sb = (uint32_t)(((uint64_t)split_tokens + bs - 1) / bs);
	} else {
		uint64_t target = 8ull * a->engine->compute_units;
		uint64_t want = (target + n_seqs - 1) / n_seqs;
		uint32_t min_blocks = 256 / bs ? 256 / bs : 1;

		sb = (uint32_t)((max_blocks + want - 1) / want);
		if (sb < min_blocks)
			sb = min_blocks;
	}
	if (sb > max_blocks)
		sb = max_blocks;
	*split_blocks = sb;
	*n_splits = (max_blocks + sb - 1) / sb;
}

static int check_submit(struct kvfpga_attn_job *job, const struct kvfpga_kv_arena *arena)
{
	if (job->busy)
		return kvf_fail(job->msg, sizeof(job->msg), -EBUSY,
		                "job busy: wait for its previous submission first");
	if (arena->engine != job->attn->engine)
		return kvf_fail(job->msg, sizeof(job->msg), -EINVAL,
		                "arena belongs to another engine");
	return 0;
}

int kvfpga_attn_decode_submit(struct kvfpga_attn_job *job, const struct kvfpga_kv_arena *arena,
                              const struct kvfpga_decode_batch *b)
{
	const struct kvfpga_attn *a;
	uint32_t max_blocks, split_blocks, n_splits, n_q, hd;
	size_t q_bytes, table_bytes, lens_bytes, ml_bytes, o_bytes;
	cl_mem part_o;
	cl_uint table_stride, n_splits_u, split_blocks_u;
	cl_uint fused;
	cl_ulong layer_base, slice_elems, scale_offset;
	uint64_t arena_blocks;
	int ret;

	if (!job || !arena || !b)
		return -EINVAL;
	a = job->attn;
	ret = check_submit(job, arena);
	if (ret)
		return ret;
	ret = kvf_arena_blocks(&a->geo, arena->size, &arena_blocks, job->msg, sizeof(job->msg));
	if (!ret)
		ret = kvf_check_decode(&a->shape, arena_blocks, b, &max_blocks, job->msg,
		                       sizeof(job->msg));
	if (ret)
		return ret;
	plan_splits(a, b->n_seqs, max_blocks, b->split_tokens, &split_blocks, &n_splits);
	n_q = a->shape.n_q_heads;
	hd = a->shape.head_dim;
	q_bytes = (size_t)b->n_seqs * n_q * hd * sizeof(float);
	table_bytes = (size_t)b->n_seqs * max_blocks * sizeof(int32_t);
	lens_bytes = (size_t)b->n_seqs * sizeof(int32_t);
	ml_bytes = (size_t)b->n_seqs * n_splits * n_q * 2 * sizeof(float);
	o_bytes = (size_t)b->n_seqs * n_splits * n_q * hd * sizeof(float);
	/* The kernel merges the splits itself on a CPU (counters zeroed in place). */
	fused = a->info.fused_merge && n_splits > 1;

	ret = ensure_staged(job, &job->q, q_bytes, CL_MEM_READ_ONLY, "queries");
	if (!ret)
		ret = ensure_staged(job, &job->tables, table_bytes, CL_MEM_READ_ONLY,
		                    "block tables");
	if (!ret)
		ret = ensure_staged(job, &job->lens, lens_bytes, CL_MEM_READ_ONLY, "lengths");
	if (!ret)
		ret = ensure_staged(job, &job->out, q_bytes, CL_MEM_READ_WRITE, "output");
	if (!ret)
		ret = ensure_buf(job, &job->part_ml, ml_bytes, CL_MEM_READ_WRITE,
		                 "partial max/sum");
	if (!ret && n_splits > 1)
		ret = ensure_buf(job, &job->part_o, o_bytes, CL_MEM_READ_WRITE, "partial outputs");
	/* Bound even when unused: some runtimes refuse NULL buffer arguments. */
	if (!ret)
		ret = ensure_staged(job, &job->split_done, lens_bytes, CL_MEM_READ_WRITE,
		                    "split counters");
	if (ret)
		return ret;

	memcpy(job->q.host, b->q, q_bytes);
	for (uint32_t s = 0; s < b->n_seqs; s++) {
		uint32_t nb = (b->seq_lens[s] + a->shape.block_size - 1) / a->shape.block_size;
		int32_t *row = (int32_t *)job->tables.host + (size_t)s * max_blocks;

		memcpy(row, b->block_tables[s], (size_t)nb * sizeof(int32_t));
		/* Entries past a sequence's end are never read; keep them defined. */
		memset(row + nb, 0, (size_t)(max_blocks - nb) * sizeof(int32_t));
		((int32_t *)job->lens.host)[s] = (int32_t)b->seq_lens[s];
	}

	/* With one split the partial output is the result: no merge. */
	part_o = n_splits > 1 ? job->part_o.mem : job->out.mem;
	if (fused)
		memset(job->split_done.host, 0, lens_bytes);
	layer_base = kvf_layer_base(&a->geo, arena_blocks, b->layer);
	slice_elems = a->geo.slice_elems;
	scale_offset = a->geo.scale_offset;
	table_stride = max_blocks;
	split_blocks_u = split_blocks;
	n_splits_u = n_splits;
	{
		const struct arg args[] = {
			{ sizeof(cl_mem), &job->q.mem },
			{ sizeof(cl_mem), &arena->mem },
			{ sizeof(cl_mem), &job->tables.mem },
			{ sizeof(cl_mem), &job->lens.mem },
			{ sizeof(cl_mem), &part_o },
			{ sizeof(cl_mem), &job->part_ml.mem },
			{ sizeof(cl_mem), &job->out.mem },
			{ sizeof(cl_mem), &job->split_done.mem },
			{ sizeof(cl_uint), &fused },
			{ sizeof(cl_ulong), &layer_base },
			{ sizeof(cl_ulong), &slice_elems },
			{ sizeof(cl_uint), &table_stride },
			{ sizeof(cl_uint), &split_blocks_u },
			{ sizeof(cl_uint), &n_splits_u },
			{ sizeof(float), &b->scale },
			{ sizeof(cl_ulong), &scale_offset },
		};

		ret = set_args(job, job->k_partial, "kvfpga_decode_partial", args,
		               sizeof(args) / sizeof(args[0]));
	}
	if (!ret && n_splits > 1 && !fused) {
		const struct arg args[] = {
			{ sizeof(cl_mem), &job->part_o.mem }, { sizeof(cl_mem), &job->part_ml.mem },
			{ sizeof(cl_mem), &job->lens.mem },   { sizeof(cl_mem), &job->out.mem },
			{ sizeof(cl_uint), &split_blocks_u }, { sizeof(cl_uint), &n_splits_u },
		};

		ret = set_args(job, job->k_merge, "kvfpga_decode_merge", args,
		               sizeof(args) / sizeof(args[0]));
	}
	if (ret)
		return ret;

	job->busy = 1;
	ret = stage_in(job, &job->q, q_bytes, "clEnqueueWriteBuffer(queries)");
	if (!ret)
		ret = stage_in(job, &job->tables, table_bytes,
		               "clEnqueueWriteBuffer(block tables)");
	if (!ret)
		ret = stage_in(job, &job->lens, lens_bytes, "clEnqueueWriteBuffer(lengths)");
	if (!ret)
		ret = poison(job, job->out.mem, q_bytes, "clEnqueueFillBuffer(output)");
	if (!ret && n_splits > 1)
		ret = poison(job, job->part_o.mem, o_bytes, "clEnqueueFillBuffer(partial outputs)");
	if (!ret && n_splits > 1)
		ret = poison(job, job->part_ml.mem, ml_bytes,
		             "clEnqueueFillBuffer(partial max/sum)");
	if (!ret)
		ret = enqueue_kernel(job, job->k_partial, "kvfpga_decode_partial", n_splits,
		                     b->n_seqs, "kvfpga_decode_partial");
	if (!ret && n_splits > 1 && !fused)
		ret = enqueue_kernel(job, job->k_merge, "kvfpga_decode_merge", n_q, b->n_seqs,
		                     "kvfpga_decode_merge");
	if (!ret)
		ret = stage_out(job, q_bytes, b->out);
	if (!ret) {
		cl_int st = clFlush(job->queue);

		if (st != CL_SUCCESS)
			ret = job_cl_fail(job, "clFlush", st, NULL);
	}
	if (ret)
		return abandon(job, ret);
	return 0;
}

int kvfpga_attn_prefill_submit(struct kvfpga_attn_job *job, const struct kvfpga_kv_arena *arena,
                               const struct kvfpga_prefill_chunk *c)
{
	const struct kvfpga_attn *a;
	uint32_t n_blocks, n_tiles;
	size_t q_bytes, table_bytes;
	cl_uint start_pos, n_tokens;
	cl_ulong layer_base, slice_elems, scale_offset;
	uint64_t arena_blocks;
	int ret;

	if (!job || !arena || !c)
		return -EINVAL;
	a = job->attn;
	ret = check_submit(job, arena);
	if (ret)
		return ret;
	ret = kvf_arena_blocks(&a->geo, arena->size, &arena_blocks, job->msg, sizeof(job->msg));
	if (!ret)
		ret = kvf_check_prefill(&a->shape, arena_blocks, c, job->msg, sizeof(job->msg));
	if (ret)
		return ret;
	n_blocks = (uint32_t)(((uint64_t)c->start_pos + c->n_tokens + a->shape.block_size - 1) /
	                      a->shape.block_size);
	n_tiles = (c->n_tokens + a->prefill_tokens - 1) / a->prefill_tokens;
	q_bytes = (size_t)c->n_tokens * a->shape.n_q_heads * a->shape.head_dim * sizeof(float);
	table_bytes = (size_t)n_blocks * sizeof(int32_t);

	ret = ensure_staged(job, &job->q, q_bytes, CL_MEM_READ_ONLY, "queries");
	if (!ret)
		ret = ensure_staged(job, &job->tables, table_bytes, CL_MEM_READ_ONLY,
		                    "block table");
	if (!ret)
		ret = ensure_staged(job, &job->out, q_bytes, CL_MEM_READ_WRITE, "output");
	if (ret)
		return ret;
	memcpy(job->q.host, c->q, q_bytes);
	memcpy(job->tables.host, c->block_table, table_bytes);

	layer_base = kvf_layer_base(&a->geo, arena_blocks, c->layer);
	slice_elems = a->geo.slice_elems;
	scale_offset = a->geo.scale_offset;
	start_pos = c->start_pos;
	n_tokens = c->n_tokens;
	{
		const struct arg args[] = {
			{ sizeof(cl_mem), &job->q.mem },      { sizeof(cl_mem), &arena->mem },
			{ sizeof(cl_mem), &job->tables.mem }, { sizeof(cl_mem), &job->out.mem },
			{ sizeof(cl_ulong), &layer_base },    { sizeof(cl_ulong), &slice_elems },
			{ sizeof(cl_uint), &start_pos },      { sizeof(cl_uint), &n_tokens },
			{ sizeof(float), &c->scale },         { sizeof(cl_ulong), &scale_offset },
		};

		ret = set_args(job, job->k_prefill, "kvfpga_prefill", args,
		               sizeof(args) / sizeof(args[0]));
	}
	if (ret)
		return ret;

	job->busy = 1;
	ret = stage_in(job, &job->q, q_bytes, "clEnqueueWriteBuffer(queries)");
	if (!ret)
		ret = stage_in(job, &job->tables, table_bytes, "clEnqueueWriteBuffer(block table)");
	if (!ret)
		ret = poison(job, job->out.mem, q_bytes, "clEnqueueFillBuffer(output)");
	if (!ret)
		ret = enqueue_kernel(job, job->k_prefill, "kvfpga_prefill", n_tiles,
		                     a->shape.n_kv_heads, "kvfpga_prefill");
	if (!ret)
		ret = stage_out(job, q_bytes, c->out);
	if (!ret) {
		cl_int st = clFlush(job->queue);

		if (st != CL_SUCCESS)
			ret = job_cl_fail(job, "clFlush", st, NULL);
	}
	if (ret)
		return abandon(job, ret);
	return 0;
}
