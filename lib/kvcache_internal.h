/* SPDX-License-Identifier: MIT */
/* Internal to libkvfpga: the paged KV cache's bookkeeping, shared by lib/kvcache*.c. */
#ifndef KVFPGA_KVCACHE_INTERNAL_H
#define KVFPGA_KVCACHE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "half_internal.h"
#include "kvfpga/kvcache.h"

enum kvc_state {
	KVC_FREE = 0,      /* on the free list, no content */
	KVC_PRIVATE = 1,   /* held by sequences, not in the prefix cache */
	KVC_PUBLISHED = 2, /* in the hash table (immutable); in the LRU list when ref == 0 */
};

/* Host-side metadata of one arena block (its token ids are in kc->tokens). */
struct kvc_block {
	uint64_t hash;       /* published: chain hash */
	uint64_t salt;       /* published: salt of the sequence that published it */
	uint32_t ref;        /* sequences holding it */
	uint32_t gen;        /* bumped each time the block becomes free */
	int32_t parent;      /* published: previous block of the chain, -1 for the first */
	uint32_t parent_gen; /* parent's gen when published: a stale link never matches */
	uint32_t depth;      /* published: index in the chain */
	uint32_t state;      /* enum kvc_state */
	int32_t prev, next;  /* LRU list links; free list uses next */
	int32_t hnext;       /* hash bucket chain */
};

struct kvfpga_kvcache {
	struct kvfpga_device *dev;
	struct kvfpga_bo *bo;
	uint8_t *base; /* the arena mapping */
	struct kvfpga_kvcache_layout lay;
	uint32_t flags;
	uint32_t bs_shift;           /* log2(block_size) */
	const struct kvfh_ops *half; /* f16 row conversion for this CPU, chosen at creation */

	struct kvc_block *blocks;
	int32_t *tokens; /* [n_blocks][block_size] token ids */

	int32_t *buckets; /* hash table heads, -1 when empty */
	uint32_t bucket_mask;

	int32_t free_head; /* stack of free blocks */
	uint32_t n_free;
	int32_t lru_head, lru_tail; /* head = least recently used = next victim */
	uint32_t n_lru;
	uint32_t n_published;

	struct kvfpga_kvseq *seqs; /* every live sequence (for destroy and verify) */
	uint32_t n_seqs;

	uint64_t prefix_hit_blocks, prefix_miss_blocks;
	uint64_t prefix_hit_tokens, prefix_miss_tokens;
	uint64_t evictions, cow_copies;
};

struct kvfpga_kvseq {
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvseq *prev, *next;
	int32_t *table; /* physical block ids */
	uint32_t n_blocks, cap;
	uint32_t len, committed;
	uint32_t pub_cursor; /* table[0, pub_cursor) are known to be published */
	uint64_t salt;
};

static inline bool kvc_caching(const struct kvfpga_kvcache *kc)
{
	return !(kc->flags & KVFPGA_KVCACHE_NO_PREFIX_CACHING);
}

/* Blocks an allocation may still take: free ones plus evictable cached ones. */
static inline uint32_t kvc_available(const struct kvfpga_kvcache *kc)
{
	return kc->n_free + kc->n_lru;
}

/* A block the holder may not write in place (shared, or K/V published). */
static inline bool kvc_immutable(const struct kvfpga_kvcache *kc, int32_t id)
{
	return kc->blocks[id].ref > 1 || kc->blocks[id].state == KVC_PUBLISHED;
}

/* Layer @layer's slice of block @id (the arena is layer-major). */
static inline uint8_t *kvc_slice_ptr(const struct kvfpga_kvcache *kc, int32_t id, uint32_t layer)
{
	return kc->base + layer * kc->lay.layer_bytes + (uint64_t)id * kc->lay.slice_bytes;
}

static inline int32_t *kvc_block_tokens(const struct kvfpga_kvcache *kc, int32_t id)
{
	return kc->tokens + ((size_t)id << kc->bs_shift);
}

/* Take one block (a free one, else evict the LRU head); caller checked kvc_available(). */
int32_t kvc_alloc_block(struct kvfpga_kvcache *kc);
/* A fresh private block holding a copy of @src's K/V and token ids. */
int32_t kvc_copy_block(struct kvfpga_kvcache *kc, int32_t src);
/* Drop one reference; at zero a published block joins the LRU tail, others are freed. */
void kvc_release_block(struct kvfpga_kvcache *kc, int32_t id);
/* Take a reference on a published block (leaving the LRU list if it was there). */
void kvc_acquire_block(struct kvfpga_kvcache *kc, int32_t id);

/* The published block with this chain key, or -1. */
int32_t kvc_find(const struct kvfpga_kvcache *kc, uint64_t hash, int32_t parent, uint64_t salt,
                 const int32_t *tokens);
/* Publish a full private block as the child of @parent (-1: first block). */
void kvc_publish(struct kvfpga_kvcache *kc, int32_t id, uint64_t hash, int32_t parent,
                 uint64_t salt, uint32_t depth);
/*
 * Follow the chain from @parent through up to @max_blocks full blocks of
 * @tokens; store the matching block ids in @ids (may be NULL) and return
 * how many matched.
 */
uint32_t kvc_match(const struct kvfpga_kvcache *kc, int32_t parent, uint64_t salt,
                   const int32_t *tokens, uint32_t max_blocks, int32_t *ids);

void kvc_seq_link(struct kvfpga_kvcache *kc, struct kvfpga_kvseq *seq);
void kvc_seq_unlink(struct kvfpga_kvcache *kc, struct kvfpga_kvseq *seq);

#endif /* KVFPGA_KVCACHE_INTERNAL_H */
