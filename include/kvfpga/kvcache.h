/* SPDX-License-Identifier: MIT */
/*
 * libkvfpga paged KV cache: the K/V of every sequence lives in fixed-size
 * blocks of one card buffer (the "arena"), addressed through per-sequence
 * block tables, as in vLLM's PagedAttention.  Full blocks whose K/V are
 * complete can be published in a prefix cache (on by default) and reused
 * by later sequences whose tokens start the same way.  docs/kvcache.md has
 * the layout, the hash chain, the commit and eviction rules and examples.
 *
 * Conventions: functions return 0 or a negative errno and never print;
 * out-parameters are written only on success; a NULL object is -EINVAL; a
 * call that fails changes nothing (no half-appended tokens, no leaked
 * blocks).
 *
 * Thread safety: a struct kvfpga_kvcache and all of its sequences form one
 * unit that must be used by one thread at a time (no internal locking, so
 * the per-token write path makes no system call).  The mapped arena may be
 * read concurrently by other threads or by the card (attention kernels)
 * while the owner thread works, as long as nobody reads blocks that are
 * being written.
 */
#ifndef KVFPGA_KVCACHE_H
#define KVFPGA_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kvfpga/kvfpga.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kvfpga_kvcache;
struct kvfpga_kvseq;

/* Element type of the K/V stored in the arena. */
enum kvfpga_kvcache_dtype {
	KVFPGA_KVCACHE_F32 = 1, /* IEEE binary32 */
	KVFPGA_KVCACHE_F16 = 2, /* IEEE binary16, rounded to nearest even */
	/*
	 * int8, symmetric: value = q * scale with one float scale per
	 * (block, layer, kv, head), stored in the block after the data
	 * (see struct kvfpga_kvcache_layout.scale_offset).
	 */
	KVFPGA_KVCACHE_I8 = 3,
};

#define KVFPGA_KVCACHE_DEFAULT_BLOCK_SIZE 16u
#define KVFPGA_KVCACHE_MAX_BLOCK_SIZE     256u

/* Config flags. */
#define KVFPGA_KVCACHE_NO_PREFIX_CACHING (1u << 0) /* never publish or reuse blocks */
#define KVFPGA_KVCACHE_FLAGS_VALID       (KVFPGA_KVCACHE_NO_PREFIX_CACHING)

/*
 * Shape and capacity.  Initialise with kvfpga_kvcache_config_init(), then
 * set the model shape and the capacity: n_blocks, or (n_blocks = 0)
 * mem_bytes, of which floor(mem_bytes / block_bytes) blocks are used.
 */
struct kvfpga_kvcache_config {
	uint32_t n_layers;
	uint32_t n_kv_heads;
	uint32_t head_dim;
	uint32_t block_size; /* tokens per block: a power of two <= 256 */
	enum kvfpga_kvcache_dtype dtype;
	uint32_t flags; /* KVFPGA_KVCACHE_* */
	uint32_t n_blocks;
	uint64_t mem_bytes;
};

/* Defaults: block_size 16, f16, prefix caching on, no shape (must be set). */
int kvfpga_kvcache_config_init(struct kvfpga_kvcache_config *cfg);

/*
 * Allocates the arena (one buffer object on @dev, mapped) and the host-side
 * bookkeeping.  -EINVAL for a bad config (zero dimension, block size not a
 * power of two <= 256, unknown dtype or flag, capacity below one block or
 * above INT32_MAX blocks), -EOVERFLOW when the arena size overflows 64
 * bits, or the device's error (e.g. -ENOSPC) for the buffer.
 * The device must outlive the cache.
 */
int kvfpga_kvcache_create(struct kvfpga_device *dev, const struct kvfpga_kvcache_config *cfg,
                          struct kvfpga_kvcache **out);
/* Frees every sequence still alive, then the arena.  NULL is a no-op. */
void kvfpga_kvcache_destroy(struct kvfpga_kvcache *kc);

/*
 * Where the attention engine finds K/V.  The arena is layer-major, as the
 * attention of one layer reads it: layer l's slices of all blocks come
 * first, then layer l + 1's.  The slice of (layer l, block b) starts at byte
 *   l * layer_bytes + b * slice_bytes
 * so the blocks of a sequence that are adjacent in the arena (a fresh cache
 * hands them out in ascending order) are one run of memory per layer.
 * Inside a slice the order is [kv: 0 = K, 1 = V][kv_head][tile of
 * block_size x head_dim].  A V tile is row-major, [slot][dim]; a K tile is
 * transposed, [dim][slot] (the attention kernels then compute a tile's
 * scores without horizontal sums).  Strides are in elements of the dtype;
 * the element offset of (head h, slot t, dim d) inside a slice is
 *   K:             h * head_stride + t * k_slot_stride + d * k_dim_stride
 *   V: kv_stride + h * head_stride + t * slot_stride + d.
 * For int8 the scales follow the data inside each slice: float
 * scales[2][n_kv_heads] at byte scale_offset of the slice (16-byte aligned),
 * and slice_bytes is rounded up to a multiple of 16.
 */
struct kvfpga_kvcache_layout {
	uint32_t n_layers, n_kv_heads, head_dim, block_size;
	enum kvfpga_kvcache_dtype dtype;
	uint32_t elem_size; /* bytes per element: 4, 2 or 1 */
	uint32_t n_blocks;
	uint32_t pad;
	uint64_t slot_stride;     /* V: head_dim (V's dims are contiguous) */
	uint64_t head_stride;     /* block_size * head_dim */
	uint64_t kv_stride;       /* n_kv_heads * head_stride */
	uint64_t slice_bytes;     /* 2 * kv_stride * elem_size (int8: plus the scales, rounded) */
	uint64_t layer_bytes;     /* n_blocks * slice_bytes: one layer's slices */
	uint64_t block_bytes;     /* n_layers * slice_bytes: what one block holds */
	uint64_t arena_bytes;     /* n_layers * layer_bytes (the buffer may be larger) */
	uint64_t bytes_per_token; /* block_bytes / block_size */
	uint64_t scale_offset;    /* int8: byte offset of the scales in a slice; else 0 */
	uint64_t k_slot_stride;   /* K: 1 (a K tile is [dim][slot]) */
	uint64_t k_dim_stride;    /* K: block_size */
};

int kvfpga_kvcache_get_layout(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_layout *out);

struct kvfpga_kvcache_arena {
	struct kvfpga_bo *bo; /* owned by the cache: do not free or unmap */
	void *base;           /* its mapping */
	uint64_t card_addr;   /* kvfpga_bo_card_addr(bo) */
	uint64_t block_bytes;
	/*
	 * n_blocks * block_bytes: register exactly this with the engine, which
	 * finds the layers from it (the buffer, kvfpga_bo_size(bo), may be
	 * larger; registered whole it would put the layers in the wrong place).
	 */
	uint64_t arena_bytes;
};

int kvfpga_kvcache_get_arena(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_arena *out);

/*
 * Block accounting: blocks_total = blocks_used + blocks_cached + blocks_free.
 * used: held by at least one sequence; cached: published, held by none,
 * kept in the LRU list until evicted; free: no content.  blocks_published
 * counts published blocks whether held or not.  Prefix statistics count
 * the full blocks and tokens that appends offered to the prefix cache.
 */
struct kvfpga_kvcache_stats {
	uint32_t blocks_total;
	uint32_t blocks_used;
	uint32_t blocks_cached;
	uint32_t blocks_free;
	uint32_t blocks_published;
	uint32_t n_seqs;
	uint64_t prefix_hit_blocks;
	uint64_t prefix_miss_blocks;
	uint64_t prefix_hit_tokens;
	uint64_t prefix_miss_tokens;
	uint64_t evictions;
	uint64_t cow_copies; /* blocks copied by fork, append or write */
	uint64_t bytes_per_token;
};

int kvfpga_kvcache_get_stats(const struct kvfpga_kvcache *kc, struct kvfpga_kvcache_stats *out);

/*
 * How many leading tokens of @tokens would an append to a new sequence with
 * @salt find in the prefix cache (a multiple of block_size, always < n so
 * that the last token is left to compute).  Changes nothing, counts nothing.
 */
int kvfpga_kvcache_prefix_lookup(const struct kvfpga_kvcache *kc, uint64_t salt,
                                 const int32_t *tokens, uint32_t n, uint32_t *n_cached);

/*
 * Block tables of several sequences of this cache for one kernel launch:
 * @table is [n_seqs][max_blocks] int32 physical block ids, unused entries
 * -1; @lens[i] is sequence i's length in tokens.  -ERANGE (nothing written)
 * when a sequence holds more than max_blocks blocks.
 */
int kvfpga_kvcache_batch_table(const struct kvfpga_kvcache *kc, struct kvfpga_kvseq *const *seqs,
                               uint32_t n_seqs, uint32_t max_blocks, int32_t *table, int32_t *lens);

/* Checks every internal invariant (for tests): 0, -EUCLEAN if one is broken, or -ENOMEM. */
int kvfpga_kvcache_verify(const struct kvfpga_kvcache *kc);

/*
 * The hash of a full block (docs/kvcache.md): XXH64 with seed 0 over
 * le64(parent_hash) || le64(salt) || le32(tokens[0]) .. le32(tokens[bs-1]);
 * the first block of a sequence has parent_hash 0.
 */
uint64_t kvfpga_kvcache_block_hash(uint64_t parent_hash, uint64_t salt, const int32_t *tokens,
                                   uint32_t block_size);

/*
 * binary16 <-> binary32, the conversions the cache uses: round to nearest
 * even, overflow to +-Inf, subnormals kept, exact widening.  A NaN comes
 * out quiet with its sign and the top bits of its payload (f32 -> f16:
 * 0x7e00 | bits 22..13; f16 -> f32: the 10 bits shifted up by 13, bit 22
 * set), as IEEE 754 and the x86 F16C instructions convert; so the cache
 * stores those bits for a NaN, and never a signalling one.
 */
uint16_t kvfpga_kvcache_f16_from_f32(float value);
float kvfpga_kvcache_f16_to_f32(uint16_t half);

/*
 * Sequences.  @salt separates prefix-cache namespaces (e.g. per LoRA
 * adapter or tenant): blocks are reused only between equal salts.
 */
int kvfpga_kvseq_create(struct kvfpga_kvcache *kc, uint64_t salt, struct kvfpga_kvseq **out);
/* Releases its blocks (published ones stay cached).  NULL is a no-op. */
void kvfpga_kvseq_free(struct kvfpga_kvseq *seq);

/*
 * Reserve slots for @n new tokens (ids >= 0 are not required; any int32 is
 * kept), allocating blocks as needed (evicting cached blocks only when no
 * block is free).  When the sequence's tokens so far are all committed and
 * fill whole published blocks (always true for a new sequence), the leading
 * full blocks of @tokens that are in the prefix cache are reused instead:
 * *@n_cached (may be NULL) tells how many of the n tokens (a multiple of
 * block_size, < n) already have their K/V, committed; compute only the rest.
 * The new blocks of one call are taken in ascending block order, so blocks
 * that are adjacent in the arena (a fresh cache, one freed sequence) are one
 * run of memory per layer for attention.
 * -ENOSPC when the blocks cannot be found, -EOVERFLOW past INT32_MAX tokens,
 * -ENOMEM; nothing changes then.
 */
int kvfpga_kvseq_append(struct kvfpga_kvseq *seq, const int32_t *tokens, uint32_t n,
                        uint32_t *n_cached);

/*
 * Write the K and V rows of position @pos for @layer: each is n_kv_heads *
 * head_dim floats (head-major), converted to the cache's dtype and stored
 * straight into the mapped arena.  Either may be NULL (not both).
 * int8: when a row does not fit its head's scale, the scale of (block,
 * layer, kv, head) doubles until it does (a fresh block's zero scale becomes
 * max|x| / 127) and the block's earlier values of that head are
 * requantised; every stored value stays within one scale step of what was
 * written.  NaN is stored as 0, +-Inf as +-127; neither moves the scale.
 * -ERANGE if pos >= length, -EPERM if pos is committed (or its block was
 * published by a sequence sharing it).  Writing a block shared with a fork
 * copies it first (copy-on-write; may evict, -ENOSPC).  Writing a block
 * the sequence owns alone makes no system call.
 */
int kvfpga_kvseq_write(struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, const float *k,
                       const float *v);
/*
 * The same for @n positions from @pos: row i of K is k + i * row_stride
 * (row_stride in floats, 0 for n_kv_heads * head_dim), likewise V.
 * Validates all positions (and finds room for every copy-on-write) first.
 */
int kvfpga_kvseq_write_range(struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, uint32_t n,
                             const float *k, const float *v, size_t row_stride);
/* Read back the K and V rows of (layer, pos) as floats; either may be NULL. */
int kvfpga_kvseq_read(const struct kvfpga_kvseq *seq, uint32_t layer, uint32_t pos, float *k,
                      float *v);

/*
 * Declare that the K/V of the first @n_tokens positions are complete for
 * every layer (e.g. after the forward pass over them).  Committed positions
 * can no longer be written.  With prefix caching, every full block inside
 * them is published (in order; a block equal to one already cached is
 * replaced by the cached one when this sequence alone holds it).
 * n_tokens below the committed length is a no-op; -ERANGE above the length.
 */
int kvfpga_kvseq_commit(struct kvfpga_kvseq *seq, uint32_t n_tokens);

/* Drop positions from @len on (-ERANGE if len > length). */
int kvfpga_kvseq_truncate(struct kvfpga_kvseq *seq, uint32_t len);

/*
 * A new sequence with the same tokens, salt and committed length: it shares
 * every full block and gets a private copy of a partial last block (-ENOSPC
 * if none can be had).  Writes to either never change the other.
 */
int kvfpga_kvseq_fork(struct kvfpga_kvseq *seq, struct kvfpga_kvseq **out);

/*
 * Physical block ids (int32) of the sequence in order: writes at most @max,
 * sets *@n_blocks to the number the sequence holds (may exceed @max).
 */
int kvfpga_kvseq_block_table(const struct kvfpga_kvseq *seq, int32_t *ids, uint32_t max,
                             uint32_t *n_blocks);

struct kvfpga_kvseq_info {
	uint32_t len;       /* tokens */
	uint32_t committed; /* tokens whose K/V are final */
	uint32_t n_blocks;
	uint32_t n_shared; /* blocks also held by another sequence or published */
	uint64_t salt;
};

int kvfpga_kvseq_get_info(const struct kvfpga_kvseq *seq, struct kvfpga_kvseq_info *out);

/* Copy token ids [start, start + n) out (-ERANGE past the length). */
int kvfpga_kvseq_tokens(const struct kvfpga_kvseq *seq, uint32_t start, uint32_t n, int32_t *out);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_KVCACHE_H */
