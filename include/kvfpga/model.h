/* SPDX-License-Identifier: MIT */
/*
 * libkvfpga inference: llama-family models and the forward pass.
 *
 * A struct kvfpga_model is a read-only, memory-mapped checkpoint (llama2.c
 * .bin or GGUF with general.architecture = llama).  Weights stay in the
 * mapping (f32, f16 or q8_0, dequantised on the fly); nothing large is
 * copied.  A model may be shared by any number of threads and inference
 * contexts once opened; close it after every context using it is freed.
 *
 * A struct kvfpga_infer runs the forward pass: dense layers on the host
 * (a persistent thread pool, AVX2/FMA kernels when the CPU has them) and
 * attention through a pluggable backend (struct kvfpga_infer_attn_ops): the host
 * backend built in here, or one keeping K/V in card memory.  A context is
 * used by one thread at a time.
 *
 * RoPE: llama2.c checkpoints and GGUF llama tensors both store Q/K rows in
 * Meta's original order, where RoPE rotates adjacent pairs (x[2i], x[2i+1])
 * of each head (llama.cpp's converter undoes Hugging Face's rotate-half
 * permutation when writing GGUF).  Both formats therefore share one RoPE.
 *
 * Every function returns 0 or a negative errno; loaders also write a
 * one-line reason into the caller's buffer (err, errlen; may be NULL/0).
 */
#ifndef KVFPGA_MODEL_H
#define KVFPGA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvfpga_model;
struct kvfpga_infer;

enum kvfpga_model_format {
	KVFPGA_MODEL_FORMAT_AUTO = 0, /* GGUF if the file starts with "GGUF", else llama2.c */
	KVFPGA_MODEL_FORMAT_LLAMA2C,
	KVFPGA_MODEL_FORMAT_GGUF,
};

/* Element types of weight tensors (values match ggml's type ids). */
enum kvfpga_dtype {
	KVFPGA_DTYPE_F32 = 0,
	KVFPGA_DTYPE_F16 = 1,
	KVFPGA_DTYPE_Q8_0 = 8, /* blocks of 32: fp16 scale + 32 int8 */
};

struct kvfpga_model_config {
	enum kvfpga_model_format format;
	uint32_t dim;        /* embedding width */
	uint32_t hidden_dim; /* FFN width */
	uint32_t n_layers;
	uint32_t n_heads;
	uint32_t n_kv_heads; /* < n_heads: GQA; 1: MQA */
	uint32_t head_dim;   /* dim / n_heads */
	uint32_t vocab_size;
	uint32_t seq_len; /* trained context length */
	float rms_eps;
	float rope_theta;
	int shared_classifier;           /* 1: logits use the token embedding */
	enum kvfpga_dtype weight_dtype;  /* type of the largest layer matrices */
	uint64_t weight_bytes_per_token; /* bytes of weights one decode step reads */
	uint64_t n_params;
	char name[64]; /* GGUF general.name (printable ASCII), "" if none */
};

/*
 * Map a checkpoint.  -ENOENT/-EACCES/... from open(2), -EINVAL for a file
 * that is not a usable llama model (wrong magic, architecture, shape or
 * type; absurd dimensions), -EPROTO for a truncated or inconsistent file,
 * -ENOTSUP for a tensor type this library does not read.  @err gets why.
 */
int kvfpga_model_open(const char *path, enum kvfpga_model_format format, struct kvfpga_model **out,
                      char *err, size_t errlen);
/* NULL is a no-op. */
void kvfpga_model_close(struct kvfpga_model *model);
int kvfpga_model_get_config(const struct kvfpga_model *model, struct kvfpga_model_config *cfg);
const char *kvfpga_model_format_name(enum kvfpga_model_format format);
const char *kvfpga_dtype_name(enum kvfpga_dtype dtype);

/*
 * Attention backends.  The forward pass hands a backend, per layer, the
 * new K/V rows and the query rows of each "run": consecutive positions
 * [p0, p1) of one sequence, in the batch's rows [row, row + p1 - p0).
 * write_kv stores K/V for those positions; attend then computes, for each
 * query position p, causal attention over positions [0, p] of that
 * sequence (keys written earlier included) with GQA head sharing, scale
 * 1/sqrt(head_dim), and writes out[row][n_heads * head_dim].
 * Row strides are kv_dim for k/v and n_heads*head_dim for q/out.
 */
struct kvfpga_infer_attn_run {
	uint32_t seq;
	uint32_t p0, p1;
	uint32_t row;
};

struct kvfpga_infer_attn_shape {
	uint32_t n_layers, n_heads, n_kv_heads, head_dim;
	uint32_t max_seq_len; /* positions per sequence the backend must hold */
};

struct kvfpga_infer_attn_stats {
	uint64_t blocks_used, blocks_total; /* 0/0 for backends without blocks */
	uint64_t prefix_hits;               /* tokens whose K/V were reused */
	uint64_t bytes_resident;            /* K/V bytes held */
};

struct kvfpga_infer_attn_ops {
	const char *name;
	/* A new, empty sequence; its id is the backend's. */
	int (*seq_create)(void *state, uint32_t *seq);
	/* A new sequence sharing the first n_tokens positions of src (may be NULL: unsupported). */
	int (*seq_fork)(void *state, uint32_t src, uint32_t n_tokens, uint32_t *seq);
	void (*seq_free)(void *state, uint32_t seq);
	/*
	 * Optional (NULL: no prefix cache).  @seq is empty and will hold
	 * @tokens: set *n_cached to how many leading positions already have
	 * their K/V (reused, e.g. from a prefix cache); the forward pass then
	 * starts at position *n_cached.
	 */
	int (*seq_prefix)(void *state, uint32_t seq, const uint32_t *tokens, uint32_t n,
	                  uint32_t *n_cached);
	/*
	 * Optional.  Before the layers of a forward call: the token ids of the
	 * runs' positions (tokens[row], batch rows).  On failure the backend
	 * leaves every sequence as it was.
	 */
	int (*prepare)(void *state, const struct kvfpga_infer_attn_run *runs, size_t n_runs,
	               const uint32_t *tokens);
	int (*write_kv)(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
	                size_t n_runs, const float *k, const float *v);
	int (*attend)(void *state, uint32_t layer, const struct kvfpga_infer_attn_run *runs,
	              size_t n_runs, const float *q, float *out);
	/* Optional.  After every layer succeeded: the runs' positions are final. */
	int (*commit)(void *state, const struct kvfpga_infer_attn_run *runs, size_t n_runs);
	int (*stats)(void *state, struct kvfpga_infer_attn_stats *stats); /* may be NULL */
	/* Optional: a one-line reason for the backend's most recent failure. */
	int (*last_error)(void *state, char *buf, size_t len);
	void (*destroy)(void *state);
};

enum kvfpga_infer_kv_type {
	KVFPGA_INFER_KV_F32 = 0,
	KVFPGA_INFER_KV_F16,
	KVFPGA_INFER_KV_I8, /* int8 with per-block scales: the card backend only */
};

enum kvfpga_kernels {
	KVFPGA_KERNELS_AUTO = 0, /* AVX2/FMA/F16C when the CPU has them, else portable */
	KVFPGA_KERNELS_PORTABLE, /* plain C */
	KVFPGA_KERNELS_AVX2,     /* -ENOTSUP on a CPU without AVX2+FMA+F16C */
};

struct kvfpga_infer_opts {
	uint32_t n_threads;                /* 0: 1 */
	uint32_t max_batch;                /* tokens per kvfpga_infer_forward call; 0: 512 */
	uint32_t max_seq_len;              /* positions per sequence; 0: the model's seq_len */
	uint32_t max_seqs;                 /* live sequences; 0: 64 */
	enum kvfpga_infer_kv_type kv_type; /* host backend storage */
	enum kvfpga_kernels kernels;
	/*
	 * An attention backend and its state, or NULL for the built-in host
	 * backend.  The context calls ops->destroy(state) when freed (also
	 * when kvfpga_infer_create fails after taking it).
	 */
	const struct kvfpga_infer_attn_ops *attn_ops;
	void *attn_state;
};

void kvfpga_infer_opts_init(struct kvfpga_infer_opts *opts);

int kvfpga_infer_create(const struct kvfpga_model *model, const struct kvfpga_infer_opts *opts,
                        struct kvfpga_infer **out);
void kvfpga_infer_free(struct kvfpga_infer *inf);

/* Sequences: ids come from the attention backend. */
int kvfpga_infer_seq_create(struct kvfpga_infer *inf, uint32_t *seq);
/* A new sequence whose first n_tokens positions are src's (-ENOTSUP if the backend cannot). */
int kvfpga_infer_seq_fork(struct kvfpga_infer *inf, uint32_t src, uint32_t n_tokens, uint32_t *seq);
int kvfpga_infer_seq_free(struct kvfpga_infer *inf, uint32_t seq);
/*
 * For an empty sequence about to be fed @tokens (a prompt): how many of
 * its leading positions the backend already holds (prefix cache; always 0
 * for the host backend).  The sequence's length becomes *n_cached, so the
 * caller feeds tokens[*n_cached..n-1] next.  -EINVAL if seq is not empty,
 * -ERANGE if n exceeds max_seq_len.
 */
int kvfpga_infer_seq_prefix(struct kvfpga_infer *inf, uint32_t seq, const uint32_t *tokens,
                            uint32_t n, uint32_t *n_cached);
/* Positions stored for a sequence so far. */
int kvfpga_infer_seq_len(const struct kvfpga_infer *inf, uint32_t seq, uint32_t *len);

/*
 * One token of a batch.  Tokens of one sequence must be consecutive in
 * the batch, at consecutive positions continuing that sequence (its first
 * new position is kvfpga_infer_seq_len()); a sequence appears in at most
 * one run per batch.
 */
struct kvfpga_token_in {
	uint32_t seq;
	uint32_t pos;
	uint32_t token;
	uint32_t want_logits; /* nonzero: write this token's logits */
};

/*
 * Run the model on n (<= max_batch) tokens.  For each token with
 * want_logits, in batch order, writes vocab_size floats to logits
 * (logits may be NULL when no token wants them).  -ERANGE when a
 * position would reach max_seq_len (the context is full), -EINVAL for
 * other bad input.  On error nothing about the sequences changes except
 * that K/V rows past their lengths may have been overwritten.
 */
int kvfpga_infer_forward(struct kvfpga_infer *inf, const struct kvfpga_token_in *tokens, size_t n,
                         float *logits);

/*
 * The card attention backend: K/V in a paged cache (kvfpga/kvcache.h) in
 * the memory of @dev (a card, or its announced host emulation), attention
 * by the OpenCL engine (kvfpga/engine.h) reading that memory in place.
 * Full blocks are shared between sequences through the cache's prefix
 * cache (kvfpga_infer_seq_prefix) unless no_prefix_cache is set.
 * @dev and @engine must outlive the backend (that is, the kvfpga_infer it
 * is given to).  @err receives a one-line reason on failure.
 */
struct kvfpga_device;
struct kvfpga_engine;

struct kvfpga_infer_card_opts {
	struct kvfpga_device *dev;
	struct kvfpga_engine *engine;
	uint32_t block_size; /* positions per K/V block, a power of two <= 256; 0: 16 */
	enum kvfpga_infer_kv_type kv_type;
	uint32_t max_seqs;    /* 0: 64; must match kvfpga_infer_opts.max_seqs */
	uint32_t max_seq_len; /* 0: the model's; must match kvfpga_infer_opts.max_seq_len */
	uint32_t n_blocks;    /* 0: max_seqs full sequences, or what fits in 90% of free memory */
	int no_prefix_cache;
};

void kvfpga_infer_card_opts_init(struct kvfpga_infer_card_opts *opts);
int kvfpga_infer_card_attn_create(const struct kvfpga_model *model,
                                  const struct kvfpga_infer_card_opts *opts,
                                  const struct kvfpga_infer_attn_ops **ops, void **state, char *err,
                                  size_t errlen);

/* The attention backend's reason for its most recent failure ("" if it has none). */
int kvfpga_infer_last_error(const struct kvfpga_infer *inf, char *buf, size_t len);

struct kvfpga_infer_stats {
	uint64_t forward_calls;
	uint64_t tokens;
	uint64_t attn_ns;    /* in the attention backend */
	uint64_t dense_ns;   /* everything else in forward */
	const char *kernels; /* "avx2" or "portable" */
	const char *attn_backend;
	struct kvfpga_infer_attn_stats attn;
};

int kvfpga_infer_get_stats(const struct kvfpga_infer *inf, struct kvfpga_infer_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_MODEL_H */
