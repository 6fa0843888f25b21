// SPDX-License-Identifier: MIT
/*
 * Buddy allocator for the emulated card address space (see emu_buddy.h).
 *
 * Blocks form one binary tree per root.  Internally every offset and
 * length is in chunks.  Each node keeps a bit mask of the orders of the
 * free leaves below it, so finding the smallest free block that fits
 * (lowest address first) is one walk down a tree, with no free lists to
 * keep sorted.  Tree nodes are allocated before anything is changed, so
 * an operation either completes or leaves the allocator as it was.
 */
#include "emu_buddy.h"

#include <errno.h>
#include <stdlib.h>

enum block_state {
	BLOCK_FREE,
	BLOCK_ALLOCATED,
	BLOCK_SPLIT,
};

struct block {
	uint64_t offset;       /* chunks */
	uint64_t alloc_chunks; /* first leaf of an allocation: its length; else 0 */
	uint64_t free_orders;  /* bit k: a free leaf of order k lies in this subtree */
	struct block *parent, *left, *right;
	unsigned order; /* the block spans 2^order chunks */
	enum block_state state;
};

#define MAX_ROOTS 64
/* Spare nodes kept around after frees, so alloc/free cycles do not hit malloc. */
#define SPARE_KEEP 256

struct emu_buddy {
	uint64_t size;       /* bytes */
	uint64_t chunk_size; /* bytes */
	unsigned chunk_shift;
	uint64_t avail_chunks;
	unsigned max_order; /* order of the largest root */
	unsigned n_roots;
	struct block *roots[MAX_ROOTS];
	struct block *spare; /* cache of unused nodes, linked through ->parent */
	size_t n_spare;
};

static uint64_t order_chunks(unsigned order)
{
	return 1ULL << order;
}

static unsigned ceil_log2(uint64_t n)
{
	return n <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(n - 1);
}

static int spare_reserve(struct emu_buddy *mm, size_t count)
{
	while (mm->n_spare < count) {
		struct block *b = calloc(1, sizeof(*b));

		if (!b)
			return -ENOMEM;
		b->parent = mm->spare;
		mm->spare = b;
		mm->n_spare++;
	}
	return 0;
}

static struct block *spare_take(struct emu_buddy *mm)
{
	struct block *b = mm->spare;

	/* Callers reserved enough nodes before changing anything. */
	mm->spare = b->parent;
	mm->n_spare--;
	*b = (struct block){ 0 };
	return b;
}

static void spare_put(struct emu_buddy *mm, struct block *b)
{
	if (mm->n_spare >= SPARE_KEEP) {
		free(b);
		return;
	}
	b->parent = mm->spare;
	mm->spare = b;
	mm->n_spare++;
}

static uint64_t own_free_orders(const struct block *b)
{
	switch (b->state) {
	case BLOCK_FREE:
		return 1ULL << b->order;
	case BLOCK_SPLIT:
		return b->left->free_orders | b->right->free_orders;
	case BLOCK_ALLOCATED:
	default:
		return 0;
	}
}

/* Recompute the free-order masks from @b up to its root. */
static void update_up(struct block *b)
{
	for (; b; b = b->parent)
		b->free_orders = own_free_orders(b);
}

/* Split a leaf into two children in the leaf's state; needs two spare nodes. */
static void split(struct emu_buddy *mm, struct block *b)
{
	struct block *l = spare_take(mm), *r = spare_take(mm);

	l->order = r->order = b->order - 1;
	l->offset = b->offset;
	r->offset = b->offset + order_chunks(b->order - 1);
	l->state = r->state = b->state;
	l->parent = r->parent = b;
	l->free_orders = r->free_orders = own_free_orders(l);
	b->left = l;
	b->right = r;
	b->state = BLOCK_SPLIT;
	b->free_orders = own_free_orders(b);
}

/* @b just became a free leaf: merge it with its buddy while both are free. */
static void merge_up(struct emu_buddy *mm, struct block *b)
{
	while (b->parent) {
		struct block *p = b->parent;
		struct block *buddy = p->left == b ? p->right : p->left;

		if (buddy->state != BLOCK_FREE)
			break;
		spare_put(mm, p->left);
		spare_put(mm, p->right);
		p->left = p->right = NULL;
		p->state = BLOCK_FREE;
		b = p;
	}
	update_up(b);
}

static uint64_t all_free_orders(const struct emu_buddy *mm)
{
	uint64_t mask = 0;

	for (unsigned i = 0; i < mm->n_roots; i++)
		mask |= mm->roots[i]->free_orders;
	return mask;
}

/* The leaf that contains chunk @pos (which must be inside the space). */
static struct block *find_leaf(const struct emu_buddy *mm, uint64_t pos)
{
	unsigned i = 0;
	struct block *b;

	while (i + 1 < mm->n_roots && pos >= mm->roots[i + 1]->offset)
		i++;
	b = mm->roots[i];
	while (b->state == BLOCK_SPLIT)
		b = pos < b->right->offset ? b->left : b->right;
	return b;
}

int emu_buddy_init(uint64_t size, uint64_t chunk_size, struct emu_buddy **out)
{
	struct emu_buddy *mm;
	uint64_t chunks, offset = 0;

	if (!out || chunk_size == 0 || (chunk_size & (chunk_size - 1)) || size == 0 ||
	    size % chunk_size || size > EMU_BUDDY_MAX_SIZE)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->size = size;
	mm->chunk_size = chunk_size;
	mm->chunk_shift = (unsigned)__builtin_ctzll(chunk_size);
	chunks = size >> mm->chunk_shift;
	mm->avail_chunks = chunks;
	mm->max_order = 63u - (unsigned)__builtin_clzll(chunks);
	/* One root per set bit of the chunk count, largest first. */
	for (int bit = 63; bit >= 0; bit--) {
		struct block *root;

		if (!(chunks & (1ULL << bit)))
			continue;
		root = calloc(1, sizeof(*root));
		if (!root) {
			emu_buddy_fini(mm);
			return -ENOMEM;
		}
		root->order = (unsigned)bit;
		root->offset = offset;
		root->state = BLOCK_FREE;
		root->free_orders = 1ULL << bit;
		mm->roots[mm->n_roots++] = root;
		offset += 1ULL << bit;
	}
	*out = mm;
	return 0;
}

static void free_tree(struct block *b)
{
	if (!b)
		return;
	free_tree(b->left);
	free_tree(b->right);
	free(b);
}

void emu_buddy_fini(struct emu_buddy *mm)
{
	if (!mm)
		return;
	for (unsigned i = 0; i < mm->n_roots; i++)
		free_tree(mm->roots[i]);
	while (mm->spare) {
		struct block *b = mm->spare;

		mm->spare = b->parent;
		free(b);
	}
	free(mm);
}

/* Keep the first @keep chunks of the allocated leaf @b, give the tail back. */
static void trim(struct emu_buddy *mm, struct block *b, uint64_t keep)
{
	struct block *cur = b;

	while (keep < order_chunks(cur->order)) {
		uint64_t half = order_chunks(cur->order - 1);

		split(mm, cur);
		if (keep <= half) {
			cur->right->state = BLOCK_FREE;
			cur->right->free_orders = own_free_orders(cur->right);
			mm->avail_chunks += half;
			cur = cur->left;
		} else {
			keep -= half;
			cur = cur->right;
		}
	}
	/* Every freed tail hangs off the path from @cur up to the root. */
	update_up(cur);
}

int emu_buddy_alloc(struct emu_buddy *mm, uint64_t size, uint64_t *offset)
{
	uint64_t chunks, candidates;
	unsigned order, found_order, root;
	struct block *b;
	int ret;

	if (!mm || !offset || size == 0)
		return -EINVAL;
	if (size > order_chunks(mm->max_order) << mm->chunk_shift)
		return -E2BIG;
	chunks = (size + mm->chunk_size - 1) >> mm->chunk_shift;
	order = ceil_log2(chunks);
	if (order > mm->max_order)
		return -E2BIG;
	candidates = all_free_orders(mm) & ~(order_chunks(order) - 1);
	if (!candidates)
		return -ENOSPC;
	found_order = (unsigned)__builtin_ctzll(candidates);
	/* Splitting down takes two nodes per level, trimming at most two per level more. */
	ret = spare_reserve(mm, 2u * found_order);
	if (ret)
		return ret;

	/* The first root with a free block of that order holds the lowest such block. */
	root = 0;
	while (!(mm->roots[root]->free_orders & (1ULL << found_order)))
		root++;
	b = mm->roots[root];
	while (b->state == BLOCK_SPLIT)
		b = (b->left->free_orders & (1ULL << found_order)) ? b->left : b->right;
	while (b->order > order) {
		split(mm, b);
		b = b->left;
	}
	b->state = BLOCK_ALLOCATED;
	mm->avail_chunks -= order_chunks(order);
	trim(mm, b, chunks);
	while (b->state == BLOCK_SPLIT)
		b = b->left;
	b->alloc_chunks = chunks;
	*offset = b->offset << mm->chunk_shift;
	return 0;
}

static bool overlaps(const struct block *b, uint64_t start, uint64_t end)
{
	return b->offset < end && start < b->offset + order_chunks(b->order);
}

static bool range_has_allocated(const struct block *b, uint64_t start, uint64_t end)
{
	if (!overlaps(b, start, end))
		return false;
	if (b->state == BLOCK_ALLOCATED)
		return true;
	if (b->state == BLOCK_FREE)
		return false;
	return range_has_allocated(b->left, start, end) ||
	       range_has_allocated(b->right, start, end);
}

/* Allocate every chunk of [start, end) under @b; nothing there is allocated yet. */
static void mark_range(struct emu_buddy *mm, struct block *b, uint64_t start, uint64_t end)
{
	if (!overlaps(b, start, end))
		return;
	if (b->offset >= start && b->offset + order_chunks(b->order) <= end) {
		/* Merged buddies mean a block wholly inside a free range is one free leaf. */
		b->state = BLOCK_ALLOCATED;
		b->free_orders = 0;
		mm->avail_chunks -= order_chunks(b->order);
		return;
	}
	if (b->state == BLOCK_FREE)
		split(mm, b);
	mark_range(mm, b->left, start, end);
	mark_range(mm, b->right, start, end);
	b->free_orders = own_free_orders(b);
}

int emu_buddy_alloc_range(struct emu_buddy *mm, uint64_t start, uint64_t size)
{
	uint64_t first, end;
	int ret;

	if (!mm || size == 0 || start % mm->chunk_size || size % mm->chunk_size ||
	    start >= mm->size || size > mm->size - start)
		return -EINVAL;
	first = start >> mm->chunk_shift;
	end = first + (size >> mm->chunk_shift);
	for (unsigned i = 0; i < mm->n_roots; i++) {
		if (range_has_allocated(mm->roots[i], first, end))
			return -ENOSPC;
	}
	/* At most two partly covered blocks per level get split, two nodes each. */
	ret = spare_reserve(mm, 4u * (mm->max_order + 1u));
	if (ret)
		return ret;
	for (unsigned i = 0; i < mm->n_roots; i++)
		mark_range(mm, mm->roots[i], first, end);
	find_leaf(mm, first)->alloc_chunks = end - first;
	return 0;
}

int emu_buddy_free(struct emu_buddy *mm, uint64_t offset, uint64_t *size)
{
	uint64_t first, end, pos;
	struct block *b;

	if (!mm || offset % mm->chunk_size || offset >= mm->size)
		return -EINVAL;
	first = offset >> mm->chunk_shift;
	b = find_leaf(mm, first);
	if (b->state != BLOCK_ALLOCATED || b->offset != first || b->alloc_chunks == 0)
		return -EINVAL;
	end = first + b->alloc_chunks;
	/* Check the whole run before changing anything. */
	for (pos = first; pos < end; pos += order_chunks(b->order)) {
		b = find_leaf(mm, pos);
		if (b->state != BLOCK_ALLOCATED || (pos != first && b->alloc_chunks) ||
		    b->offset + order_chunks(b->order) > end)
			return -EINVAL;
	}
	for (pos = first; pos < end;) {
		b = find_leaf(mm, pos);
		pos += order_chunks(b->order);
		b->state = BLOCK_FREE;
		b->alloc_chunks = 0;
		mm->avail_chunks += order_chunks(b->order);
		merge_up(mm, b);
	}
	if (size)
		*size = (end - first) << mm->chunk_shift;
	return 0;
}

uint64_t emu_buddy_size(const struct emu_buddy *mm)
{
	return mm ? mm->size : 0;
}

uint64_t emu_buddy_chunk_size(const struct emu_buddy *mm)
{
	return mm ? mm->chunk_size : 0;
}

uint64_t emu_buddy_avail(const struct emu_buddy *mm)
{
	return mm ? mm->avail_chunks << mm->chunk_shift : 0;
}

uint64_t emu_buddy_largest_free(const struct emu_buddy *mm)
{
	uint64_t mask = mm ? all_free_orders(mm) : 0;

	if (!mask)
		return 0;
	return order_chunks(63u - (unsigned)__builtin_clzll(mask)) << mm->chunk_shift;
}

uint64_t emu_buddy_largest_root(const struct emu_buddy *mm)
{
	return mm ? order_chunks(mm->max_order) << mm->chunk_shift : 0;
}

static int visit_leaves(const struct emu_buddy *mm, const struct block *b, emu_buddy_visit_fn visit,
                        void *ctx)
{
	int ret;

	if (b->state == BLOCK_SPLIT) {
		ret = visit_leaves(mm, b->left, visit, ctx);
		return ret ? ret : visit_leaves(mm, b->right, visit, ctx);
	}
	return visit(b->offset << mm->chunk_shift, order_chunks(b->order) << mm->chunk_shift,
	             b->state == BLOCK_ALLOCATED, ctx);
}

int emu_buddy_for_each_block(const struct emu_buddy *mm, emu_buddy_visit_fn visit, void *ctx)
{
	if (!mm || !visit)
		return -EINVAL;
	for (unsigned i = 0; i < mm->n_roots; i++) {
		int ret = visit_leaves(mm, mm->roots[i], visit, ctx);

		if (ret)
			return ret;
	}
	return 0;
}

struct check_state {
	uint64_t next_offset; /* where the next leaf must start */
	uint64_t free_chunks;
	uint64_t run_left; /* chunks of the current allocation still to come */
};

static int check_tree(const struct block *b, const struct block *parent, struct check_state *st)
{
	if (b->parent != parent || b->free_orders != own_free_orders(b))
		return -EUCLEAN;
	if (b->state == BLOCK_SPLIT) {
		const struct block *l = b->left, *r = b->right;

		if (!l || !r || b->order == 0 || b->alloc_chunks || l->order != b->order - 1 ||
		    r->order != b->order - 1 || l->offset != b->offset ||
		    r->offset != b->offset + order_chunks(b->order - 1))
			return -EUCLEAN;
		/* Two free buddies must have merged. */
		if (l->state == BLOCK_FREE && r->state == BLOCK_FREE)
			return -EUCLEAN;
		if (check_tree(l, b, st) || check_tree(r, b, st))
			return -EUCLEAN;
		return 0;
	}
	if (b->left || b->right || b->offset != st->next_offset ||
	    b->offset & (order_chunks(b->order) - 1))
		return -EUCLEAN;
	st->next_offset += order_chunks(b->order);
	if (b->state == BLOCK_FREE) {
		if (b->alloc_chunks || st->run_left)
			return -EUCLEAN;
		st->free_chunks += order_chunks(b->order);
		return 0;
	}
	if (b->state != BLOCK_ALLOCATED)
		return -EUCLEAN;
	if (b->alloc_chunks) {
		if (st->run_left)
			return -EUCLEAN;
		st->run_left = b->alloc_chunks;
	}
	if (st->run_left < order_chunks(b->order))
		return -EUCLEAN;
	st->run_left -= order_chunks(b->order);
	return 0;
}

int emu_buddy_check(const struct emu_buddy *mm)
{
	struct check_state st = { 0 };

	if (!mm)
		return -EINVAL;
	for (unsigned i = 0; i < mm->n_roots; i++) {
		const struct block *root = mm->roots[i];

		if (root->offset & (order_chunks(root->order) - 1) ||
		    (i > 0 && root->order >= mm->roots[i - 1]->order) ||
		    check_tree(root, NULL, &st))
			return -EUCLEAN;
	}
	if (st.run_left || st.next_offset << mm->chunk_shift != mm->size ||
	    st.free_chunks != mm->avail_chunks)
		return -EUCLEAN;
	return 0;
}
