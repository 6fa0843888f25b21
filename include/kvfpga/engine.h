/* SPDX-License-Identifier: MIT */
/*
 * libkvfpga attention engine: paged attention over the KV arena, run as the
 * OpenCL kernels of hw/kernels/kvfpga_attention.cl on the card's OpenCL
 * platform (a prebuilt .xclbin/.aocx) or on any OpenCL device that can
 * build from source (PoCL on the CPU in tests).  docs/attention.md has the
 * algorithm and the memory traffic.
 *
 * Objects:
 *   kvfpga_engine    one OpenCL device and context, the program cache.
 *   kvfpga_attn      the kernels built for one model shape.
 *   kvfpga_kv_arena  a KV arena (host pointer + size, e.g. the mapped card
 *                    buffer) handed to OpenCL without a copy.
 *   kvfpga_attn_job  one submission at a time (the decode attention of a
 *                    batch of sequences for one layer, or a prefill
 *                    chunk), asynchronous: submit returns at once, wait
 *                    completes it.  A job is reusable.
 *
 * Arena layout (the KV cache's, include/kvfpga/kvcache.h): an arena of
 * size bytes holds n_blocks = size / block_bytes blocks, layer-major: the
 * slice of (layer l, block b) starts at byte (l * n_blocks + b) *
 * slice_bytes, block_bytes = n_layers * slice_bytes; inside a slice the
 * order is [kv: 0 = K, 1 = V][kv_head][tile of block_size x head_dim] of the
 * element type, a V tile [slot][dim] and a K tile transposed, [dim][slot]
 * (kvfpga_kvcache_layout).  With more than one layer the size must be a
 * whole number of blocks (register kvfpga_kvcache_arena.arena_bytes, not
 * the buffer's size): submits refuse other sizes with -EINVAL.  Position p
 * of a sequence is in block table[p / block_size], slot p % block_size.
 * Query head h uses KV head h / (n_q_heads / n_kv_heads).
 *
 * Conventions: every function returns 0 or a negative errno and never
 * prints; out-parameters are written only on success; a NULL object is
 * -EINVAL.  An OpenCL failure becomes a negative errno plus a message that
 * names the OpenCL call, the error (e.g. CL_OUT_OF_RESOURCES) and the
 * device: kvfpga_engine_last_error() for calls on the engine, arena or
 * attn, kvfpga_attn_job_error() for calls on a job.
 *
 * Thread safety: an engine, its attns and arenas may be used from several
 * threads at once (creation, destruction excepted: destroy an object only
 * when no other thread uses it, and jobs before their attn, attns and
 * arenas before their engine).  The engine's last error is shared: when
 * threads share an engine, read it right after the failing call and
 * expect another thread's message possibly.  A job is used by one thread
 * at a time.
 */
#ifndef KVFPGA_ENGINE_H
#define KVFPGA_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvfpga_engine;
struct kvfpga_attn;
struct kvfpga_kv_arena;
struct kvfpga_attn_job;

#define KVFPGA_ENGINE_PATH_MAX 512
#define KVFPGA_ENGINE_MSG_MAX  1024 /* longest error message, with its NUL */

/*
 * How to choose and set up the OpenCL device.  Initialise with
 * kvfpga_engine_opts_init(), which applies the environment:
 *   KVFPGA_OPENCL_DEVICE=<N>       device N in kvfpga_cl_list_devices() order
 *   KVFPGA_OPENCL_DEVICE=<text>    the first device whose "platform: device"
 *                                  name contains <text> (case-insensitive)
 *   KVFPGA_OPENCL_BINARY=<path>    prebuilt program (see binary below)
 *   KVFPGA_OPENCL_CACHE=<dir>|off  program cache directory, or no cache
 *   KVFPGA_OPENCL_TUNING=auto|cpu|fpga  kernel variant (see tuning below)
 * Without a device choice the first usable accelerator is taken, else the
 * first usable device.
 */
enum kvfpga_kernel_tuning {
	KVFPGA_TUNING_AUTO = 0, /* CPU for CPU devices, FPGA for all others */
	KVFPGA_TUNING_CPU,      /* caches do the buffering; software prefetch */
	KVFPGA_TUNING_FPGA,     /* explicit private tiles (on-chip RAM), no prefetch */
};
/*
 * Per-call data (queries, block tables, output) moves as the tuning says
 * too: on a CPU device, unless the tuning is FPGA, the kernels use the
 * job's host staging memory in place (no write or read commands); else, as
 * on a card, queued writes and a read copy it.
 */

struct kvfpga_engine_opts {
	int device_index;      /* >= 0: that device; -1: by device_name or default */
	char device_name[128]; /* "" or a name substring (used when device_index < 0) */
	char cache_dir[KVFPGA_ENGINE_PATH_MAX]; /* "": $XDG_CACHE_HOME/kvfpga, else
	                                           $HOME/.cache/kvfpga */
	int no_cache;                           /* 1: never read or write the cache */
	/*
	 * "" to build from source; else a prebuilt program loaded with
	 * clCreateProgramWithBinary: a file (.xclbin, .aocx, any binary the
	 * device accepts) or a directory holding kvfpga_attn-<tag>.<ext> as
	 * written by `make -C hw`, <tag> naming the shape (hw/README.md).
	 */
	char binary[KVFPGA_ENGINE_PATH_MAX];
	/* "": the kernel source built into the library; else this .cl file. */
	char source[KVFPGA_ENGINE_PATH_MAX];
	enum kvfpga_kernel_tuning tuning;
	/*
	 * 1: before every launch, fill the buffers the kernels write (the
	 * output, and the split-K partials) with NaN, so that an element a
	 * kernel fails to write shows instead of last call's value.  For tests
	 * and debugging (it costs a fill per call); KVFPGA_OPENCL_POISON=1.
	 */
	int poison_outputs;
};

/* Defaults, then the environment.  -EINVAL on a bad value (opts untouched). */
int kvfpga_engine_opts_init(struct kvfpga_engine_opts *opts);

/*
 * Process-wide, for main() before the first OpenCL call and before other
 * threads start (it calls setenv): asks PoCL's CPU device to pin its worker
 * threads, worker i to CPU i (POCL_AFFINITY=1).  Left to the scheduler, the
 * workers of a 2-CPU machine were often woken onto one CPU for a whole
 * kernel of a few milliseconds: decode attention then ran on one core
 * (docs/attention.md, "CPU worker placement").  Other OpenCL platforms
 * ignore the variable.  Pinned workers cannot move away from another busy
 * process on their CPU: meant for one inference process per machine.
 *
 * Changes nothing and returns 0 when POCL_AFFINITY is already set (the
 * caller's choice; POCL_AFFINITY=0 keeps PoCL's default), when the
 * environment sets PoCL's worker count (POCL_MAX_PTHREAD_COUNT,
 * POCL_CPU_MAX_CU_COUNT, POCL_MAX_COMPUTE_UNITS: it may exceed the CPUs),
 * or when the process may not run on every one of the online CPUs 0 .. n-1
 * (PoCL aborts when it cannot pin a worker).  1 when it set the variable;
 * a negative errno on failure.
 */
int kvfpga_cl_pin_cpu_workers(void);

#define KVFPGA_CL_TYPE_CPU         (1u << 0)
#define KVFPGA_CL_TYPE_GPU         (1u << 1)
#define KVFPGA_CL_TYPE_ACCELERATOR (1u << 2)
#define KVFPGA_CL_TYPE_OTHER       (1u << 3)

/* One OpenCL device as the library sees it. */
struct kvfpga_cl_device_desc {
	uint32_t index; /* over all platforms, in enumeration order */
	uint32_t platform_index;
	uint32_t type; /* KVFPGA_CL_TYPE_* */
	uint32_t compute_units;
	uint64_t global_mem; /* bytes */
	uint64_t max_alloc;  /* largest buffer, bytes */
	int compiler;        /* 1: can build kernels from source */
	int usable;          /* 1: the library would use it */
	char platform[128];
	char device[128];
	char version[128];  /* CL_DEVICE_VERSION */
	char c_version[64]; /* CL_DEVICE_OPENCL_C_VERSION */
	char note[160];     /* why it is not usable, or what it needs */
};

/*
 * Lists the OpenCL devices of every platform: writes at most @max entries,
 * sets *@count to the number found.  No OpenCL platform is not an error
 * (*count = 0).
 */
int kvfpga_cl_list_devices(struct kvfpga_cl_device_desc *out, size_t max, size_t *count);

/*
 * Which device kvfpga_engine_create() would take with @opts: its index.
 * -ENODEV (with the reason in @msg, if given) when none matches or is usable.
 */
int kvfpga_cl_pick_device(const struct kvfpga_engine_opts *opts, uint32_t *index, char *msg,
                          size_t msg_len);

/*
 * Opens the chosen device.  On failure, @msg (if not NULL) receives the
 * reason, e.g. "clCreateContext: CL_OUT_OF_HOST_MEMORY on <device>".
 */
int kvfpga_engine_create(const struct kvfpga_engine_opts *opts, struct kvfpga_engine **out,
                         char *msg, size_t msg_len);
/* NULL is a no-op. */
void kvfpga_engine_destroy(struct kvfpga_engine *engine);

/* One line naming the device, e.g. for tools to say what they run on. */
int kvfpga_engine_describe(const struct kvfpga_engine *engine, char *buf, size_t len);
/* Index of the engine's device in kvfpga_cl_list_devices() order. */
int kvfpga_engine_device_index(const struct kvfpga_engine *engine, uint32_t *index);
/* The message of the engine's most recent failure ("" if none). */
int kvfpga_engine_last_error(struct kvfpga_engine *engine, char *buf, size_t len);

/* Element type of K/V in the arena (same values as kvfpga_kvcache_dtype). */
enum kvfpga_kv_dtype {
	KVFPGA_KV_F32 = 1, /* IEEE binary32 */
	KVFPGA_KV_F16 = 2, /* IEEE binary16 */
	/*
	 * int8, value = q * scale, with one float scale per (block, layer, K/V,
	 * KV head) stored after the block's data, as kvfpga_kvcache lays out
	 * KVFPGA_KVCACHE_I8 (docs/kvcache.md).
	 */
	KVFPGA_KV_I8 = 3,
};

/*
 * The model shape the kernels are built for.  Limits: head_dim a multiple
 * of 4 up to 512; block_size a power of two up to 256; n_kv_heads divides
 * n_q_heads and n_q_heads * head_dim <= 16384 (decode keeps every query
 * head's accumulator in private memory); n_layers up to 65536.
 */
struct kvfpga_attn_shape {
	uint32_t n_layers;
	uint32_t n_q_heads;
	uint32_t n_kv_heads;
	uint32_t head_dim;
	uint32_t block_size;
	enum kvfpga_kv_dtype kv_dtype;
};

/* Checks @shape (-EINVAL if unsupported) and gives the bytes of one block. */
int kvfpga_attn_shape_block_bytes(const struct kvfpga_attn_shape *shape, uint64_t *block_bytes);

/*
 * Builds (or loads from the cache or the configured binary) the kernels
 * for @shape.  -ENOEXEC when the program does not build (the message has
 * the start of the build log) or a binary was built for another shape,
 * -ENOENT when the configured binary is missing.
 */
int kvfpga_attn_create(struct kvfpga_engine *engine, const struct kvfpga_attn_shape *shape,
                       struct kvfpga_attn **out);
/* NULL is a no-op. */
void kvfpga_attn_destroy(struct kvfpga_attn *attn);

enum kvfpga_program_origin {
	KVFPGA_PROGRAM_SOURCE = 1, /* built from source now */
	KVFPGA_PROGRAM_CACHE,      /* loaded from the disk cache */
	KVFPGA_PROGRAM_BINARY,     /* loaded from the configured prebuilt binary */
};

enum kvfpga_cache_state {
	KVFPGA_CACHE_OFF = 1,      /* not used (disabled, or a prebuilt binary) */
	KVFPGA_CACHE_HIT,          /* loaded from the cache */
	KVFPGA_CACHE_STORED,       /* built, then written to the cache */
	KVFPGA_CACHE_STORE_FAILED, /* built, but writing the cache failed (cache_errno) */
};

struct kvfpga_attn_info {
	enum kvfpga_program_origin origin;
	enum kvfpga_cache_state cache;
	int cache_errno;       /* why storing failed, else 0 */
	uint32_t vec;          /* VEC the kernels use */
	uint32_t prefill_rows; /* PREFILL_ROWS */
	uint32_t in_place;     /* 1: jobs' per-call buffers are host memory used in place */
	uint32_t fused_merge;  /* 1: a split decode merges in kvfpga_decode_partial (one launch) */
	char build_options[512];
	char path[KVFPGA_ENGINE_PATH_MAX + 64]; /* the cache file or binary, or "" */
};

int kvfpga_attn_query(const struct kvfpga_attn *attn, struct kvfpga_attn_info *info);

/*
 * Makes @size bytes at @base (page aligned, e.g. kvfpga_kvcache_arena.base)
 * readable by the kernels with CL_MEM_USE_HOST_PTR.  @size is the arena,
 * not the buffer around it (kvfpga_kvcache_arena.arena_bytes): the kernels
 * take the block count, and so each layer's place, from it.  Submits refuse
 * a size that is not a whole number of blocks when the shape has several
 * layers; a buffer padded by whole blocks would pass that check and read
 * the wrong layers.  -E2BIG when @size is
 * above the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE).  The memory must stay
 * mapped until the arena is released; the kernels read it as it is when
 * they run (writes by the host in between need no OpenCL call on devices
 * that share host memory, such as PoCL; see docs/attention.md).
 */
int kvfpga_kv_arena_register(struct kvfpga_engine *engine, void *base, uint64_t size,
                             struct kvfpga_kv_arena **out);
/* NULL is a no-op.  No job may be running on it. */
void kvfpga_kv_arena_release(struct kvfpga_kv_arena *arena);

/*
 * Decode attention of a batch of sequences for one layer: one new query
 * token per sequence, attending to its whole context (the token's own K/V
 * already in the cache).
 */
struct kvfpga_decode_batch {
	uint32_t layer;
	uint32_t n_seqs;                    /* 1..65535 */
	const uint32_t *seq_lens;           /* [n_seqs]: context lengths, each >= 1 */
	const int32_t *const *block_tables; /* [n_seqs]: ceil(len / block_size) ids each */
	const float *q;                     /* [n_seqs][n_q_heads][head_dim] */
	float *out;                         /* [n_seqs][n_q_heads][head_dim] */
	float scale;                        /* softmax scale, finite, > 0 (e.g. 1/sqrt(head_dim)) */
	uint32_t split_tokens;              /* context tokens per work-group; 0: automatic */
};

/*
 * Prefill attention of a chunk of new tokens of one sequence, causal: the
 * token at position p sees positions 0..p.  Their K/V are in the cache.
 */
struct kvfpga_prefill_chunk {
	uint32_t layer;
	uint32_t start_pos;         /* position of the chunk's first token (any slot) */
	uint32_t n_tokens;          /* >= 1 */
	const int32_t *block_table; /* ceil((start_pos + n_tokens) / block_size) ids */
	const float *q;             /* [n_tokens][n_q_heads][head_dim] */
	float *out;                 /* [n_tokens][n_q_heads][head_dim] */
	float scale;
};

int kvfpga_attn_job_create(struct kvfpga_attn *attn, struct kvfpga_attn_job **out);
/*
 * Waits for a submission still running, then frees.  NULL is a no-op.  Its
 * output is then not copied to the caller when the job works in place
 * (kvfpga_attn_info.in_place); otherwise the queued read may have written it.
 */
void kvfpga_attn_job_destroy(struct kvfpga_attn_job *job);

/*
 * Submit: checks everything (every block id of every table must lie inside
 * the arena: -ERANGE otherwise), copies q and the tables, queues the work
 * and returns.  q and the tables may be reused at once; out must stay
 * valid until kvfpga_attn_job_wait() returns.  -EBUSY if the job still
 * has a submission that was not waited for.
 */
int kvfpga_attn_decode_submit(struct kvfpga_attn_job *job, const struct kvfpga_kv_arena *arena,
                              const struct kvfpga_decode_batch *batch);
int kvfpga_attn_prefill_submit(struct kvfpga_attn_job *job, const struct kvfpga_kv_arena *arena,
                               const struct kvfpga_prefill_chunk *chunk);
/* Completes the submission: 0 once out is written, or its error.  0 if idle. */
int kvfpga_attn_job_wait(struct kvfpga_attn_job *job);
/* 0 if complete (wait will not block), -EBUSY while running, or the error. */
int kvfpga_attn_job_poll(struct kvfpga_attn_job *job);
/* The message of the job's most recent failure ("" if none); never NULL. */
const char *kvfpga_attn_job_error(const struct kvfpga_attn_job *job);

/*
 * Host reference attention, plain C over the same arena layout (double
 * accumulation), for comparison with the kernels.  Same argument rules as
 * the submit calls; @arena_base/@arena_size is the arena.
 */
int kvfpga_attn_reference_decode(const struct kvfpga_attn_shape *shape, const void *arena_base,
                                 uint64_t arena_size, const struct kvfpga_decode_batch *batch);
int kvfpga_attn_reference_prefill(const struct kvfpga_attn_shape *shape, const void *arena_base,
                                  uint64_t arena_size, const struct kvfpga_prefill_chunk *chunk);

/* IEEE binary16 <-> binary32: exact widening; narrowing rounds to nearest even. */
float kvfpga_f16_to_f32(uint16_t h);
uint16_t kvfpga_f32_to_f16(float f);

/*
 * What an .xclbin holds, read with XRT's C API (xrtXclbinAlloc*) after the
 * library has checked the file's structure itself.  -ENOTSUP when the
 * library was built without XRT, -EBADMSG for a malformed file.
 */
struct kvfpga_xclbin_info {
	char platform[65]; /* the shell (XSA) it was linked for */
	uint8_t uuid[16];
	uint32_t n_kernels;       /* as XRT counts them */
	uint32_t n_compute_units; /* as XRT counts them */
	uint32_t n_ips;           /* IP_LAYOUT entries */
	char ips[32][65];         /* their names ("kernel:instance"), the first 32 */
	int has_attention;        /* 1: every kvfpga attention kernel has a compute unit */
};

int kvfpga_xclbin_inspect(const char *path, struct kvfpga_xclbin_info *info, char *msg,
                          size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_ENGINE_H */
