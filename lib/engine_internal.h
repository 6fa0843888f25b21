/* SPDX-License-Identifier: MIT */
/* Attention engine internals shared by lib/engine*.c and lib/attention*.c. */
#ifndef KVFPGA_ENGINE_INTERNAL_H
#define KVFPGA_ENGINE_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfpga/engine.h"

#define KVF_HIDDEN __attribute__((visibility("hidden")))

/* Must match KVFPGA_KERNEL_ABI and kvfpga_build_info() in the .cl file. */
#define KVF_KERNEL_ABI   5u
#define KVF_INFO_MAGIC   0x6b766661u
#define KVF_MAX_HEAD_DIM 512u
#define KVF_MAX_BLOCK    256u
#define KVF_MAX_Q_ELEMS  16384u /* n_q_heads * head_dim */
#define KVF_MAX_LAYERS   65536u

struct kvfpga_engine {
	cl_platform_id platform;
	cl_device_id device;
	cl_context context;
	uint32_t index;
	uint32_t type; /* KVFPGA_CL_TYPE_* */
	uint32_t compute_units;
	int compiler;
	int xilinx;     /* Xilinx/AMD XRT platform: binaries are .xclbin */
	int intel_fpga; /* Intel FPGA platform: binaries are .aocx */
	char platform_name[128];
	char device_name[128];
	char device_version[128];
	char driver_version[128];
	struct kvfpga_engine_opts opts;
	char *source; /* the kernel source (embedded copy or the opts.source file) */
	size_t source_len;
	pthread_mutex_t lock; /* guards last_error */
	char last_error[KVFPGA_ENGINE_MSG_MAX];
};

/*
 * Where K/V of a shape are in an arena: the KV cache's layer-major layout,
 * layer l's slice of block b at element kvf_layer_base(l) + b * slice_elems,
 * with n_blocks = arena bytes / block_bytes (kvf_arena_blocks).
 */
struct kvf_kv_geometry {
	uint64_t slice_bytes;  /* one (layer, block) slice */
	uint64_t slice_elems;  /* slice_bytes / element size */
	uint64_t block_bytes;  /* n_layers * slice_bytes */
	uint64_t scale_offset; /* int8: byte offset of a slice's scales; else 0 */
};

/* First element of layer @layer's slices in an arena of @arena_blocks blocks. */
static inline uint64_t kvf_layer_base(const struct kvf_kv_geometry *geo, uint64_t arena_blocks,
                                      uint32_t layer)
{
	return layer * arena_blocks * geo->slice_elems;
}

struct kvfpga_attn {
	struct kvfpga_engine *engine;
	struct kvfpga_attn_shape shape;
	uint32_t group; /* n_q_heads / n_kv_heads */
	uint32_t vec;
	uint32_t prefill_rows;
	uint32_t prefill_tokens; /* new tokens per prefill work-group */
	struct kvf_kv_geometry geo;
	cl_program program;
	struct kvfpga_attn_info info;
};

struct kvfpga_kv_arena {
	struct kvfpga_engine *engine;
	void *base;
	uint64_t size;
	cl_mem mem;
};

/* Error text of an OpenCL status ("CL_OUT_OF_RESOURCES"); never NULL. */
KVF_HIDDEN const char *kvf_cl_error_name(cl_int status);
/* The negative errno an OpenCL status maps to. */
KVF_HIDDEN int kvf_cl_errno(cl_int status);

/*
 * Formats "<call>: <CL_NAME> (<status>) on <device>" (plus ": <detail>"
 * when detail is not NULL) into msg and returns the errno.
 */
KVF_HIDDEN int kvf_cl_fail(char *msg, size_t len, const char *call, cl_int status,
                           const char *device, const char *detail);
/* Formats a message into msg and returns err. */
KVF_HIDDEN int kvf_fail(char *msg, size_t len, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Records msg as the engine's last error (under its lock). */
KVF_HIDDEN void kvf_engine_set_error(struct kvfpga_engine *engine, const char *msg);

/* The kernel source embedded in the library (NUL-terminated). */
KVF_HIDDEN const char *kvf_embedded_source(size_t *len);

/* Disk cache of program binaries (lib/engine_cache.c). */
struct kvf_cache_key {
	char *text; /* everything the binary depends on, compared exactly */
	size_t len;
	uint64_t hash; /* names the file; entries are verified exactly */
};
KVF_HIDDEN int kvf_cache_key_make(const struct kvfpga_engine *engine, const char *options,
                                  struct kvf_cache_key *key);
KVF_HIDDEN void kvf_cache_key_free(struct kvf_cache_key *key);
/* The cache directory for the engine's options (no trailing slash). */
KVF_HIDDEN int kvf_cache_dir(const struct kvfpga_engine_opts *opts, char *dir, size_t len);
/* Path of the entry for key in dir. */
KVF_HIDDEN int kvf_cache_path(const char *dir, const struct kvf_cache_key *key, char *path,
                              size_t len);
/* Reads the binary stored under key: 0, -ENOENT (absent), -EBADMSG (not ours). */
KVF_HIDDEN int kvf_cache_load(const char *path, const struct kvf_cache_key *key,
                              unsigned char **binary, size_t *binary_len);
/* Writes atomically (temporary file + rename); creates the directory. */
KVF_HIDDEN int kvf_cache_store(const char *dir, const char *path, const struct kvf_cache_key *key,
                               const unsigned char *binary, size_t binary_len);

/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated buffer. */
KVF_HIDDEN int kvf_read_file(const char *path, size_t max, unsigned char **data, size_t *len);

/*
 * Checks an .xclbin image: structure first (so that XRT never sees a
 * malformed file), then XRT's own reading when built with XRT.
 */
KVF_HIDDEN int kvf_xclbin_check(const unsigned char *data, size_t len,
                                struct kvfpga_xclbin_info *info, char *msg, size_t msg_len);

/* Checks a shape and fills the derived sizes (no OpenCL); @group, @geo may be NULL. */
KVF_HIDDEN int kvf_shape_check(const struct kvfpga_attn_shape *shape, uint32_t *group,
                               struct kvf_kv_geometry *geo);
/*
 * The blocks of an arena of @arena_size bytes: -EINVAL (with a message)
 * unless it is a whole number of blocks, as the layer offsets depend on it
 * (a single-layer shape has none: there the tail is ignored).
 */
KVF_HIDDEN int kvf_arena_blocks(const struct kvf_kv_geometry *geo, uint64_t arena_size,
                                uint64_t *n_blocks, char *msg, size_t len);
/* Bytes of one element of the dtype. */
KVF_HIDDEN uint32_t kvf_dtype_size(enum kvfpga_kv_dtype dtype);

/*
 * Argument checks shared by the kernels' submit calls and the host
 * reference.  arena_blocks is how many whole blocks the arena holds.
 * max_blocks receives the longest table (decode).
 */
KVF_HIDDEN int kvf_check_decode(const struct kvfpga_attn_shape *shape, uint64_t arena_blocks,
                                const struct kvfpga_decode_batch *batch, uint32_t *max_blocks,
                                char *msg, size_t len);
KVF_HIDDEN int kvf_check_prefill(const struct kvfpga_attn_shape *shape, uint64_t arena_blocks,
                                 const struct kvfpga_prefill_chunk *chunk, char *msg, size_t len);

#endif /* KVFPGA_ENGINE_INTERNAL_H */
