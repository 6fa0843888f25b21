/* SPDX-License-Identifier: MIT */
/*
 * Attention programs: build options from the model shape; the program
 * itself from a prebuilt binary (.xclbin/.aocx), the disk cache, or the
 * source; then a check of what it was really built for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine_internal.h"

#define BINARY_MAX_BYTES (1ull << 30)

uint32_t kvf_dtype_size(enum kvfpga_kv_dtype dtype)
{
	return dtype == KVFPGA_KV_I8 ? 1 : dtype == KVFPGA_KV_F16 ? 2 : 4;
}

static const char *dtype_name(enum kvfpga_kv_dtype dtype)
{
	return dtype == KVFPGA_KV_I8 ? "i8" : dtype == KVFPGA_KV_F16 ? "f16" : "f32";
}

#define ALIGN16(x) (((x) + 15) & ~(uint64_t)15)

/*
 * A slice (one layer of one block) is [K/V][kv_head][tile of block_size x
 * head_dim] elements (V tiles [slot][dim], K tiles [dim][slot]); its size does
 * not depend on the order inside a tile.  int8 adds a float scale per (K/V,
 * kv_head) at a 16-byte aligned offset after the data, and the slice is
 * rounded up to 16 bytes (the KV cache's layout).
 */
int kvf_shape_check(const struct kvfpga_attn_shape *s, uint32_t *group, struct kvf_kv_geometry *geo)
{
	uint64_t bytes, scales = 0;

	if (!s || s->n_layers == 0 || s->n_layers > KVF_MAX_LAYERS || s->n_q_heads == 0 ||
	    s->n_kv_heads == 0 || s->n_q_heads % s->n_kv_heads || s->head_dim == 0 ||
	    s->head_dim % 4 || s->head_dim > KVF_MAX_HEAD_DIM || s->block_size == 0 ||
	    s->block_size > KVF_MAX_BLOCK || (s->block_size & (s->block_size - 1)) ||
	    (s->kv_dtype != KVFPGA_KV_F32 && s->kv_dtype != KVFPGA_KV_F16 &&
	     s->kv_dtype != KVFPGA_KV_I8) ||
	    (uint64_t)s->n_q_heads * s->head_dim > KVF_MAX_Q_ELEMS)
		return -EINVAL;
	bytes = 2ull * s->n_kv_heads * s->block_size * s->head_dim * kvf_dtype_size(s->kv_dtype);
	if (s->kv_dtype == KVFPGA_KV_I8) {
		scales = ALIGN16(bytes);
		bytes = ALIGN16(scales + 4ull * 2 * s->n_kv_heads);
	}
	if (group)
		*group = s->n_q_heads / s->n_kv_heads;
	if (geo) {
		geo->slice_bytes = bytes;
		geo->slice_elems = bytes / kvf_dtype_size(s->kv_dtype);
		geo->block_bytes = bytes * s->n_layers;
		geo->scale_offset = scales;
	}
	return 0;
}

int kvf_arena_blocks(const struct kvf_kv_geometry *geo, uint64_t arena_size, uint64_t *n_blocks,
                     char *msg, size_t len)
{
	/* One layer has no layer offsets: any size is fine, the tail is unused. */
	if (geo->block_bytes != geo->slice_bytes && arena_size % geo->block_bytes)
		return kvf_fail(msg, len, -EINVAL,
		                "arena of %llu bytes is not a whole number of %llu-byte blocks "
		                "(register the KV cache's arena_bytes)",
		                (unsigned long long)arena_size,
		                (unsigned long long)geo->block_bytes);
	*n_blocks = arena_size / geo->block_bytes;
	return 0;
}

int kvfpga_attn_shape_block_bytes(const struct kvfpga_attn_shape *shape, uint64_t *block_bytes)
{
	struct kvf_kv_geometry geo;
	int ret;

	if (!block_bytes)
		return -EINVAL;
	ret = kvf_shape_check(shape, NULL, &geo);
	if (!ret)
		*block_bytes = geo.block_bytes;
	return ret;
}

static uint32_t pick_vec(uint32_t head_dim)
{
	return head_dim % 16 == 0 ? 16 : head_dim % 8 == 0 ? 8 : 4;
}

/* Query rows per prefill work-group: about 16 KiB of accumulators. */
static uint32_t pick_prefill_rows(uint32_t head_dim)
{
	uint32_t rows = 4096 / head_dim;

	return rows > 16 ? 16 : rows ? rows : 1;
}

static void shape_tag(const struct kvfpga_attn *a, char *buf, size_t len)
{
	snprintf(buf, len, "h%u-b%u-kv%u-g%u-%s", a->shape.head_dim, a->shape.block_size,
	         a->shape.n_kv_heads, a->group, dtype_name(a->shape.kv_dtype));
}

static int cpu_tuned(const struct kvfpga_engine *e)
{
	if (e->opts.tuning == KVFPGA_TUNING_AUTO)
		return (e->type & KVFPGA_CL_TYPE_CPU) != 0;
	return e->opts.tuning == KVFPGA_TUNING_CPU;
}

/*
 * Whether attention jobs use their host staging memory in place
 * (CL_MEM_USE_HOST_PTR, no write or read commands): on a CPU device, unless
 * the FPGA tuning asks for the card's way (which also tests that path).
 */
static int jobs_in_place(const struct kvfpga_engine *e)
{
	return (e->type & KVFPGA_CL_TYPE_CPU) && e->opts.tuning != KVFPGA_TUNING_FPGA;
}

static void build_options(const struct kvfpga_attn *a, char *buf, size_t len)
{
	snprintf(buf, len,
	         "-cl-std=CL1.2 -DHEAD_DIM=%u -DBLOCK_SIZE=%u -DN_KV_HEADS=%u -DGROUP_SIZE=%u "
	         "-DKV_F16=%d -DKV_I8=%d -DVEC=%u -DPREFILL_ROWS=%u%s",
	         a->shape.head_dim, a->shape.block_size, a->shape.n_kv_heads, a->group,
	         a->shape.kv_dtype == KVFPGA_KV_F16, a->shape.kv_dtype == KVFPGA_KV_I8, a->vec,
	         a->prefill_rows, cpu_tuned(a->engine) ? " -DKVFPGA_CPU=1" : "");
}

/* The build log's first lines, flattened onto one line. */
static void build_log(const struct kvfpga_engine *e, cl_program prog, char *buf, size_t len)
{
	size_t n = 0;
	char *log;

	buf[0] = '\0';
	if (clGetProgramBuildInfo(prog, e->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) || n == 0)
		return;
	log = malloc(n + 1);
	if (!log)
		return;
	if (clGetProgramBuildInfo(prog, e->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) ==
	    CL_SUCCESS) {
		size_t j = 0;

		log[n] = '\0';
		for (size_t i = 0; log[i] && j + 1 < len; i++) {
			char c = log[i] == '\n' || log[i] == '\t' ? ' ' : log[i];

			if (c == ' ' && (j == 0 || buf[j - 1] == ' '))
				continue;
			buf[j++] = c;
		}
		buf[j] = '\0';
	}
	free(log);
}

static int build(struct kvfpga_attn *a, cl_program prog, const char *what, char *msg, size_t len)
{
	struct kvfpga_engine *e = a->engine;
	cl_int st = clBuildProgram(prog, 1, &e->device, a->info.build_options, NULL, NULL);

	if (st != CL_SUCCESS) {
		char log[640], detail[768];

		build_log(e, prog, log, sizeof(log));
		snprintf(detail, sizeof(detail), "%s%s%s", what, log[0] ? ": " : "", log);
		return kvf_cl_fail(msg, len, "clBuildProgram", st, e->device_name, detail);
	}
	return 0;
}

static int program_from_binary(struct kvfpga_attn *a, const unsigned char *bin, size_t bin_len,
                               const char *what, cl_program *out, char *msg, size_t len)
{
	struct kvfpga_engine *e = a->engine;
	cl_int st, bin_st = CL_SUCCESS;
	cl_program prog;
	int ret;

	prog = clCreateProgramWithBinary(e->context, 1, &e->device, &bin_len, &bin, &bin_st, &st);
	if (!prog || st != CL_SUCCESS || bin_st != CL_SUCCESS) {
		if (prog)
			clReleaseProgram(prog);
		return kvf_cl_fail(msg, len, "clCreateProgramWithBinary",
		                   st != CL_SUCCESS ? st : bin_st, e->device_name, what);
	}
	ret = build(a, prog, what, msg, len);
	if (ret) {
		clReleaseProgram(prog);
		return ret;
	}
	*out = prog;
	return 0;
}

static int program_from_source(struct kvfpga_attn *a, cl_program *out, char *msg, size_t len)
{
	struct kvfpga_engine *e = a->engine;
	const char *src = e->source;
	size_t src_len = e->source_len;
	cl_program prog;
	cl_int st;
	int ret;

	prog = clCreateProgramWithSource(e->context, 1, &src, &src_len, &st);
	if (!prog)
		return kvf_cl_fail(msg, len, "clCreateProgramWithSource", st, e->device_name, NULL);
	ret = build(a, prog, "kernel source", msg, len);
	if (ret) {
		clReleaseProgram(prog);
		return ret;
	}
	*out = prog;
	return 0;
}

static int program_binary(struct kvfpga_attn *a, cl_program prog, unsigned char **bin,
                          size_t *bin_len)
{
	size_t n = 0;
	unsigned char *buf;

	if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof(n), &n, NULL) != CL_SUCCESS ||
	    n == 0)
		return -ENODATA;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof(buf), &buf, NULL) != CL_SUCCESS) {
		free(buf);
		return -ENODATA;
	}
	*bin = buf;
	*bin_len = n;
	return 0;
}

/*
 * Runs kvfpga_build_info() and compares with what the shape needs.  On a
 * match adopts the program's VEC and PREFILL_ROWS (a prebuilt binary may
 * have been tuned differently from our defaults).
 */
static int check_build_info(struct kvfpga_attn *a, cl_program prog, const char *what, char *msg,
                            size_t len)
{
	struct kvfpga_engine *e = a->engine;
	cl_uint info[16];
	cl_kernel k = NULL;
	cl_mem buf = NULL;
	cl_command_queue q = NULL;
	const size_t one = 1;
	cl_int st;
	int ret = 0;

	memset(info, 0, sizeof(info));
	k = clCreateKernel(prog, "kvfpga_build_info", &st);
	if (!k) {
		ret = kvf_cl_fail(msg, len, "clCreateKernel(kvfpga_build_info)", st, e->device_name,
		                  what);
		goto out;
	}
	buf = clCreateBuffer(e->context, CL_MEM_WRITE_ONLY, sizeof(info), NULL, &st);
	if (!buf) {
		ret = kvf_cl_fail(msg, len, "clCreateBuffer", st, e->device_name, what);
		goto out;
	}
	q = clCreateCommandQueue(e->context, e->device, 0, &st);
	if (!q) {
		ret = kvf_cl_fail(msg, len, "clCreateCommandQueue", st, e->device_name, what);
		goto out;
	}
	st = clSetKernelArg(k, 0, sizeof(buf), &buf);
	if (st == CL_SUCCESS)
		st = clEnqueueNDRangeKernel(q, k, 1, NULL, &one, &one, 0, NULL, NULL);
	if (st != CL_SUCCESS) {
		ret = kvf_cl_fail(msg, len, "clEnqueueNDRangeKernel(kvfpga_build_info)", st,
		                  e->device_name, what);
		goto out;
	}
	st = clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof(info), info, 0, NULL, NULL);
	if (st != CL_SUCCESS) {
		ret = kvf_cl_fail(msg, len, "clEnqueueReadBuffer", st, e->device_name, what);
		goto out;
	}
	if (info[0] != KVF_INFO_MAGIC || info[1] != KVF_KERNEL_ABI ||
	    info[2] != a->shape.head_dim || info[3] != a->shape.block_size ||
	    info[4] != a->shape.n_kv_heads || info[5] != a->group ||
	    info[6] != (cl_uint)a->shape.kv_dtype ||
	    (info[7] != 4 && info[7] != 8 && info[7] != 16) || a->shape.head_dim % info[7] ||
	    info[8] == 0 || info[8] > 64 || info[9] > 1) {
		ret = kvf_fail(
		        msg, len, -ENOEXEC,
		        "%s was built for abi %u head_dim %u block_size %u n_kv_heads %u "
		        "group %u dtype %u, the model needs abi %u head_dim %u block_size %u "
		        "n_kv_heads %u group %u dtype %u (%s)",
		        what, info[1], info[2], info[3], info[4], info[5], info[6], KVF_KERNEL_ABI,
		        a->shape.head_dim, a->shape.block_size, a->shape.n_kv_heads, a->group,
		        (unsigned)a->shape.kv_dtype, dtype_name(a->shape.kv_dtype));
		goto out;
	}
	a->vec = info[7];
	a->prefill_rows = info[8];
	a->info.in_place = (uint32_t)jobs_in_place(e);
	/* The kernels merge in place only: the counters are zeroed in host memory. */
	a->info.fused_merge = info[9] && a->info.in_place;
	a->prefill_tokens = a->prefill_rows >= a->group ? a->prefill_rows / a->group : 1;
	a->info.vec = a->vec;
	a->info.prefill_rows = a->prefill_rows;
out:
	if (q)
		clReleaseCommandQueue(q);
	if (buf)
		clReleaseMemObject(buf);
	if (k)
		clReleaseKernel(k);
	return ret;
}

/* The configured binary: the file itself, or <dir>/kvfpga_attn-<tag>.<ext>. */
static int binary_path(const struct kvfpga_attn *a, char *path, size_t len)
{
	const struct kvfpga_engine *e = a->engine;
	struct stat st;
	char tag[96];
	int n;

	if (stat(e->opts.binary, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		n = snprintf(path, len, "%s", e->opts.binary);
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	shape_tag(a, tag, sizeof(tag));
	n = snprintf(path, len, "%s/kvfpga_attn-%s.%s", e->opts.binary, tag,
	             e->xilinx       ? "xclbin"
	             : e->intel_fpga ? "aocx"
	                             : "bin");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int load_prebuilt(struct kvfpga_attn *a, cl_program *prog, char *msg, size_t len)
{
	struct kvfpga_engine *e = a->engine;
	unsigned char *bin = NULL;
	size_t bin_len = 0;
	int ret;

	ret = binary_path(a, a->info.path, sizeof(a->info.path));
	if (ret)
		return kvf_fail(msg, len, ret, "prebuilt program %s: %s", e->opts.binary,
		                strerror(-ret));
	ret = kvf_read_file(a->info.path, BINARY_MAX_BYTES, &bin, &bin_len);
	if (ret)
		return kvf_fail(msg, len, ret, "prebuilt program %s: %s", a->info.path,
		                strerror(-ret));
	if (e->xilinx) {
		struct kvfpga_xclbin_info xi;
		char why[KVFPGA_ENGINE_MSG_MAX - 64];

		ret = kvf_xclbin_check(bin, bin_len, &xi, why, sizeof(why));
		if (!ret && !xi.has_attention)
			ret = kvf_fail(why, sizeof(why), -ENOEXEC,
			               "it has no compute unit of some kvfpga attention kernel");
		if (ret) {
			free(bin);
			return kvf_fail(msg, len, ret, "%s: %s", a->info.path, why);
		}
	}
	ret = program_from_binary(a, bin, bin_len, a->info.path, prog, msg, len);
	free(bin);
	if (ret)
		return ret;
	ret = check_build_info(a, *prog, a->info.path, msg, len);
	if (ret) {
		clReleaseProgram(*prog);
		*prog = NULL;
		return ret;
	}
	a->info.origin = KVFPGA_PROGRAM_BINARY;
	a->info.cache = KVFPGA_CACHE_OFF;
	return 0;
}

/* Source build through the disk cache (when enabled). */
static int load_built(struct kvfpga_attn *a, cl_program *prog, char *msg, size_t len)
{
	struct kvfpga_engine *e = a->engine;
	struct kvf_cache_key key = { 0 };
	char dir[KVFPGA_ENGINE_PATH_MAX];
	int use_cache = !e->opts.no_cache, ret;

	if (!e->compiler)
		return kvf_fail(msg, len, -EOPNOTSUPP,
		                "%s has no OpenCL compiler: build the kernels with make -C hw "
		                "(hw/README.md) and set KVFPGA_OPENCL_BINARY",
		                e->device_name);
	a->info.cache = KVFPGA_CACHE_OFF;
	if (use_cache && (kvf_cache_dir(&e->opts, dir, sizeof(dir)) ||
	                  kvf_cache_key_make(e, a->info.build_options, &key) ||
	                  kvf_cache_path(dir, &key, a->info.path, sizeof(a->info.path))))
		use_cache = 0;
	if (use_cache) {
		unsigned char *bin;
		size_t bin_len;

		if (!kvf_cache_load(a->info.path, &key, &bin, &bin_len)) {
			char ignored[KVFPGA_ENGINE_MSG_MAX];

			ret = program_from_binary(a, bin, bin_len, a->info.path, prog, ignored,
			                          sizeof(ignored));
			free(bin);
			if (!ret &&
			    check_build_info(a, *prog, a->info.path, ignored, sizeof(ignored))) {
				clReleaseProgram(*prog);
				*prog = NULL;
				ret = -ENOEXEC;
			}
			if (!ret) {
				a->info.origin = KVFPGA_PROGRAM_CACHE;
				a->info.cache = KVFPGA_CACHE_HIT;
				kvf_cache_key_free(&key);
				return 0;
			}
			/* An unusable entry is rebuilt and overwritten below. */
		}
	}
	ret = program_from_source(a, prog, msg, len);
	if (!ret) {
		ret = check_build_info(a, *prog, "kernel source", msg, len);
		if (ret) {
			clReleaseProgram(*prog);
			*prog = NULL;
		}
	}
	if (ret) {
		kvf_cache_key_free(&key);
		return ret;
	}
	a->info.origin = KVFPGA_PROGRAM_SOURCE;
	if (use_cache) {
		unsigned char *bin;
		size_t bin_len;
		int st = program_binary(a, *prog, &bin, &bin_len);

		if (!st) {
			st = kvf_cache_store(dir, a->info.path, &key, bin, bin_len);
			free(bin);
		}
		a->info.cache = st ? KVFPGA_CACHE_STORE_FAILED : KVFPGA_CACHE_STORED;
		a->info.cache_errno = st;
	} else {
		a->info.path[0] = '\0';
	}
	kvf_cache_key_free(&key);
	return 0;
}

int kvfpga_attn_create(struct kvfpga_engine *engine, const struct kvfpga_attn_shape *shape,
                       struct kvfpga_attn **out)
{
	struct kvfpga_attn *a;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	int ret;

	if (!engine || !out)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	ret = kvf_shape_check(shape, &a->group, &a->geo);
	if (ret) {
		free(a);
		kvf_engine_set_error(engine, "unsupported attention shape");
		return ret;
	}
	a->engine = engine;
	a->shape = *shape;
	a->vec = pick_vec(shape->head_dim);
	a->prefill_rows = pick_prefill_rows(shape->head_dim);
	build_options(a, a->info.build_options, sizeof(a->info.build_options));
	if (engine->opts.binary[0])
		ret = load_prebuilt(a, &a->program, msg, sizeof(msg));
	else
		ret = load_built(a, &a->program, msg, sizeof(msg));
	if (ret) {
		kvf_engine_set_error(engine, msg);
		free(a);
		return ret;
	}
	*out = a;
	return 0;
}

void kvfpga_attn_destroy(struct kvfpga_attn *attn)
{
	if (!attn)
		return;
	clReleaseProgram(attn->program);
	free(attn);
}

int kvfpga_attn_query(const struct kvfpga_attn *attn, struct kvfpga_attn_info *info)
{
	if (!attn || !info)
		return -EINVAL;
	*info = attn->info;
	return 0;
}
