// SPDX-License-Identifier: MIT
/*
 * The emulation's buddy allocator (lib/emu_buddy.c): splitting, trimming,
 * merging and range reservation on small hand-checked layouts, then long
 * seeded random runs checked against a plain per-chunk bitmap.
 * KVFPGA_TEST_SEED=<n> replays a random run.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/emu_buddy.h"
#include "helpers/test_seed.h"

#define CHUNK 4096ULL

struct leaf {
	uint64_t offset, size;
	bool allocated;
};

struct leaves {
	struct leaf items[64];
	size_t count;
};

static int collect_leaf(uint64_t offset, uint64_t size, bool allocated, void *ctx)
{
	struct leaves *l = ctx;

	if (l->count == sizeof(l->items) / sizeof(l->items[0]))
		return -ENOSPC;
	l->items[l->count++] = (struct leaf){ offset, size, allocated };
	return 0;
}

/* Assert the leaves are exactly @expect (offsets and sizes in chunks). */
static void assert_leaves(struct emu_buddy *mm, const struct leaf *expect, size_t n)
{
	struct leaves got = { .count = 0 };

	ck_assert_int_eq(emu_buddy_check(mm), 0);
	ck_assert_int_eq(emu_buddy_for_each_block(mm, collect_leaf, &got), 0);
	ck_assert_uint_eq(got.count, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(got.items[i].offset, expect[i].offset * CHUNK);
		ck_assert_uint_eq(got.items[i].size, expect[i].size * CHUNK);
		ck_assert_int_eq(got.items[i].allocated, expect[i].allocated);
	}
}

static struct emu_buddy *make(uint64_t chunks)
{
	struct emu_buddy *mm = NULL;

	ck_assert_int_eq(emu_buddy_init(chunks * CHUNK, CHUNK, &mm), 0);
	ck_assert_ptr_nonnull(mm);
	return mm;
}

START_TEST(init_rejects_bad_sizes)
{
	struct emu_buddy *mm = NULL;

	ck_assert_int_eq(emu_buddy_init(0, CHUNK, &mm), -EINVAL);
	ck_assert_int_eq(emu_buddy_init(CHUNK, 0, &mm), -EINVAL);
	ck_assert_int_eq(emu_buddy_init(3 * 3000, 3000, &mm), -EINVAL);
	ck_assert_int_eq(emu_buddy_init(CHUNK + 1, CHUNK, &mm), -EINVAL);
	ck_assert_int_eq(emu_buddy_init(EMU_BUDDY_MAX_SIZE * 2, CHUNK, &mm), -EINVAL);
	ck_assert_int_eq(emu_buddy_init(CHUNK, CHUNK, NULL), -EINVAL);
	ck_assert_ptr_null(mm);
	ck_assert_int_eq(emu_buddy_init(EMU_BUDDY_MAX_SIZE, CHUNK, &mm), 0);
	ck_assert_uint_eq(emu_buddy_largest_root(mm), EMU_BUDDY_MAX_SIZE);
	emu_buddy_fini(mm);
	emu_buddy_fini(NULL);
}
END_TEST

START_TEST(roots_follow_the_bits_of_the_size)
{
	struct emu_buddy *mm = make(7);
	const struct leaf expect[] = { { 0, 4, false }, { 4, 2, false }, { 6, 1, false } };

	assert_leaves(mm, expect, 3);
	ck_assert_uint_eq(emu_buddy_size(mm), 7 * CHUNK);
	ck_assert_uint_eq(emu_buddy_chunk_size(mm), CHUNK);
	ck_assert_uint_eq(emu_buddy_avail(mm), 7 * CHUNK);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), 4 * CHUNK);
	ck_assert_uint_eq(emu_buddy_largest_root(mm), 4 * CHUNK);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(alloc_splits_and_trims_the_tail)
{
	struct emu_buddy *mm = make(16);
	uint64_t off = 1, size = 0;
	/* 3 chunks: the 4-chunk block at 0 is split off, its last chunk trimmed back. */
	const struct leaf after_alloc[] = {
		{ 0, 2, true }, { 2, 1, true }, { 3, 1, false }, { 4, 4, false }, { 8, 8, false },
	};
	const struct leaf whole[] = { { 0, 16, false } };

	ck_assert_int_eq(emu_buddy_alloc(mm, 2 * CHUNK + 1, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_uint_eq(emu_buddy_avail(mm), 13 * CHUNK);
	assert_leaves(mm, after_alloc, 5);
	ck_assert_int_eq(emu_buddy_free(mm, 0, &size), 0);
	ck_assert_uint_eq(size, 3 * CHUNK);
	assert_leaves(mm, whole, 1);
	ck_assert_uint_eq(emu_buddy_avail(mm), 16 * CHUNK);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(trimmed_tail_is_reusable)
{
	struct emu_buddy *mm = make(8);
	uint64_t a, b;

	/* 5 chunks take [0,5); the trimmed [5,8) then serves a 2- and a 1-chunk request. */
	ck_assert_int_eq(emu_buddy_alloc(mm, 5 * CHUNK, &a), 0);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), 2 * CHUNK);
	ck_assert_int_eq(emu_buddy_alloc(mm, 2 * CHUNK, &b), 0);
	ck_assert_uint_eq(b, 6 * CHUNK);
	ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, &b), 0);
	ck_assert_uint_eq(b, 5 * CHUNK);
	ck_assert_uint_eq(emu_buddy_avail(mm), 0);
	ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, &b), -ENOSPC);
	ck_assert_int_eq(emu_buddy_check(mm), 0);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(free_merges_buddies_only)
{
	struct emu_buddy *mm = make(4);
	uint64_t off[4];
	const struct leaf split_frees[] = {
		{ 0, 1, true },
		{ 1, 1, false },
		{ 2, 1, false },
		{ 3, 1, true },
	};
	const struct leaf half[] = { { 0, 2, false }, { 2, 1, false }, { 3, 1, true } };
	const struct leaf whole[] = { { 0, 4, false } };

	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, &off[i]), 0);
		ck_assert_uint_eq(off[i], (uint64_t)i * CHUNK);
	}
	/* Chunks 1 and 2 are free and adjacent but not buddies: no merge. */
	ck_assert_int_eq(emu_buddy_free(mm, off[1], NULL), 0);
	ck_assert_int_eq(emu_buddy_free(mm, off[2], NULL), 0);
	assert_leaves(mm, split_frees, 4);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), CHUNK);
	ck_assert_int_eq(emu_buddy_free(mm, off[0], NULL), 0);
	assert_leaves(mm, half, 3);
	ck_assert_int_eq(emu_buddy_free(mm, off[3], NULL), 0);
	assert_leaves(mm, whole, 1);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(alloc_takes_the_smallest_block_that_fits)
{
	struct emu_buddy *mm = make(16);
	uint64_t a, b, c;

	ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, &a), 0);
	ck_assert_uint_eq(a, 0);
	/* Free now: [1], [2,4), [4,8), [8,16).  Two chunks fit [2,4) exactly. */
	ck_assert_int_eq(emu_buddy_alloc(mm, 2 * CHUNK, &b), 0);
	ck_assert_uint_eq(b, 2 * CHUNK);
	ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, &c), 0);
	ck_assert_uint_eq(c, CHUNK);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), 8 * CHUNK);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(alloc_range_reserves_exactly)
{
	struct emu_buddy *mm = make(8);
	uint64_t off;
	const struct leaf reserved[] = {
		{ 0, 1, true },
		{ 1, 1, false },
		{ 2, 2, false },
		{ 4, 4, false },
	};
	const struct leaf middle[] = {
		{ 0, 2, false }, { 2, 1, false }, { 3, 1, true },
		{ 4, 1, true },  { 5, 1, false }, { 6, 2, false },
	};
	const struct leaf whole[] = { { 0, 8, false } };

	ck_assert_int_eq(emu_buddy_alloc_range(mm, 0, CHUNK), 0);
	assert_leaves(mm, reserved, 4);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), 4 * CHUNK);
	/* Overlapping, unaligned, empty and out-of-bounds ranges change nothing. */
	ck_assert_int_eq(emu_buddy_alloc_range(mm, 0, 2 * CHUNK), -ENOSPC);
	ck_assert_int_eq(emu_buddy_alloc_range(mm, CHUNK + 1, CHUNK), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc_range(mm, CHUNK, 100), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc_range(mm, CHUNK, 0), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc_range(mm, 7 * CHUNK, 2 * CHUNK), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc_range(mm, UINT64_MAX - CHUNK + 1, CHUNK), -EINVAL);
	assert_leaves(mm, reserved, 4);
	/* The reservation is one allocation: freeing its start frees all of it. */
	ck_assert_int_eq(emu_buddy_free(mm, 0, NULL), 0);
	assert_leaves(mm, whole, 1);
	/* A range across a block boundary: [3,5). */
	ck_assert_int_eq(emu_buddy_alloc_range(mm, 3 * CHUNK, 2 * CHUNK), 0);
	assert_leaves(mm, middle, 6);
	ck_assert_int_eq(emu_buddy_free(mm, 4 * CHUNK, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_free(mm, 3 * CHUNK, NULL), 0);
	assert_leaves(mm, whole, 1);
	ck_assert_int_eq(emu_buddy_alloc(mm, 8 * CHUNK, &off), 0);
	emu_buddy_fini(mm);
}
END_TEST

START_TEST(errors_change_nothing)
{
	struct emu_buddy *mm = make(12);
	uint64_t off = 77, a, b;
	const struct leaf expect[] = {
		{ 0, 8, true },
		{ 8, 2, true },
		{ 10, 1, true },
		{ 11, 1, false },
	};

	/* Roots are 8 and 4 chunks; 3 chunks best fit the 4-chunk root. */
	ck_assert_int_eq(emu_buddy_alloc(mm, 3 * CHUNK, &a), 0);
	ck_assert_uint_eq(a, 8 * CHUNK);
	ck_assert_int_eq(emu_buddy_alloc(mm, 8 * CHUNK, &b), 0);
	ck_assert_uint_eq(b, 0);
	ck_assert_int_eq(emu_buddy_alloc(mm, 0, &off), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc(mm, CHUNK, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_alloc(NULL, CHUNK, &off), -EINVAL);
	/* 9 chunks can never fit (-E2BIG); 2 chunks could, but not now (-ENOSPC). */
	ck_assert_int_eq(emu_buddy_alloc(mm, 8 * CHUNK + 1, &off), -E2BIG);
	ck_assert_int_eq(emu_buddy_alloc(mm, UINT64_MAX, &off), -E2BIG);
	ck_assert_int_eq(emu_buddy_alloc(mm, 2 * CHUNK, &off), -ENOSPC);
	ck_assert_uint_eq(off, 77);
	ck_assert_int_eq(emu_buddy_free(mm, 9 * CHUNK, NULL), -EINVAL);  /* inside, not start */
	ck_assert_int_eq(emu_buddy_free(mm, 10 * CHUNK, NULL), -EINVAL); /* its second leaf */
	ck_assert_int_eq(emu_buddy_free(mm, 11 * CHUNK, NULL), -EINVAL); /* free */
	ck_assert_int_eq(emu_buddy_free(mm, 1, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_free(mm, 12 * CHUNK, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_free(NULL, 0, NULL), -EINVAL);
	ck_assert_uint_eq(emu_buddy_avail(mm), CHUNK);
	assert_leaves(mm, expect, 4);
	ck_assert_int_eq(emu_buddy_free(mm, a, NULL), 0);
	ck_assert_int_eq(emu_buddy_free(mm, a, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_free(mm, b, NULL), 0);
	ck_assert_uint_eq(emu_buddy_avail(mm), 12 * CHUNK);
	ck_assert_int_eq(emu_buddy_for_each_block(mm, NULL, NULL), -EINVAL);
	ck_assert_int_eq(emu_buddy_check(NULL), -EINVAL);
	emu_buddy_fini(mm);
}
END_TEST

/* ---- random runs against a bitmap ---- */

struct ref_alloc {
	uint64_t first, chunks;
};

struct reference {
	uint64_t chunks;
	unsigned char *used;
	struct ref_alloc *live;
	size_t n_live;
};

static bool ref_range_free(const struct reference *r, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		if (r->used[i])
			return false;
	}
	return true;
}

/* Whether an aligned, all-free run of 2^order chunks exists (the buddy's only fits). */
static bool ref_has_free_block(const struct reference *r, unsigned order)
{
	uint64_t n = 1ULL << order;

	for (uint64_t o = 0; o + n <= r->chunks; o += n) {
		if (ref_range_free(r, o, n))
			return true;
	}
	return false;
}

static void ref_mark(struct reference *r, uint64_t first, uint64_t n, unsigned char v)
{
	memset(r->used + first, v, n);
}

struct compare_ctx {
	const struct reference *ref;
	uint64_t next;
	bool ok;
};

static int compare_leaf(uint64_t offset, uint64_t size, bool allocated, void *ctx)
{
	struct compare_ctx *c = ctx;

	if (offset != c->next * CHUNK)
		c->ok = false;
	for (uint64_t i = offset / CHUNK; i < (offset + size) / CHUNK && c->ok; i++) {
		if (i >= c->ref->chunks || (c->ref->used[i] != 0) != allocated)
			c->ok = false;
	}
	c->next = (offset + size) / CHUNK;
	return c->ok ? 0 : 1;
}

static unsigned ceil_order(uint64_t n)
{
	unsigned k = 0;

	while ((1ULL << k) < n)
		k++;
	return k;
}

static void random_run(uint64_t chunks, unsigned steps)
{
	uint64_t seed = test_seed(), rng = seed;
	struct reference ref = { .chunks = chunks };
	struct emu_buddy *mm = make(chunks);
	unsigned max_order = 63u - (unsigned)__builtin_clzll(chunks);

	ref.used = calloc(chunks, 1);
	ref.live = calloc(chunks, sizeof(*ref.live));
	ck_assert_ptr_nonnull(ref.used);
	ck_assert_ptr_nonnull(ref.live);

	for (unsigned step = 0; step < steps; step++) {
		uint64_t action = test_rand_below(&rng, 100), off = 0, free_chunks = 0;
		struct compare_ctx cmp = { .ref = &ref, .next = 0, .ok = true };
		int ret, walk;

		if (action < 50) {
			/* Mostly small requests, now and then up to the whole space. */
			uint64_t limit = test_rand_below(&rng, 8) ? 16 : chunks + 2;
			uint64_t n = 1 + test_rand_below(&rng, limit);
			unsigned order = ceil_order(n);

			ret = emu_buddy_alloc(mm, n * CHUNK - test_rand_below(&rng, CHUNK), &off);
			if (order > max_order) {
				ck_assert_msg(
				        ret == -E2BIG, "seed %llu step %u: %d for %llu chunks",
				        (unsigned long long)seed, step, ret, (unsigned long long)n);
			} else if (ref_has_free_block(&ref, order)) {
				uint64_t first = off / CHUNK;

				ck_assert_msg(ret == 0 && off % CHUNK == 0 &&
				                      first % (1ULL << order) == 0 &&
				                      first + n <= chunks &&
				                      ref_range_free(&ref, first, n),
				              "seed %llu step %u: alloc %llu chunks: %d at %llu",
				              (unsigned long long)seed, step, (unsigned long long)n,
				              ret, (unsigned long long)first);
				ref_mark(&ref, first, n, 1);
				ref.live[ref.n_live++] = (struct ref_alloc){ first, n };
			} else {
				ck_assert_msg(ret == -ENOSPC, "seed %llu step %u: %d, want -ENOSPC",
				              (unsigned long long)seed, step, ret);
			}
		} else if (action < 90 && ref.n_live) {
			size_t i = test_rand_below(&rng, ref.n_live);
			struct ref_alloc a = ref.live[i];
			uint64_t size = 0;

			ret = emu_buddy_free(mm, a.first * CHUNK, &size);
			ck_assert_msg(ret == 0 && size == a.chunks * CHUNK,
			              "seed %llu step %u: free: %d size %llu",
			              (unsigned long long)seed, step, ret,
			              (unsigned long long)size);
			ref_mark(&ref, a.first, a.chunks, 0);
			ref.live[i] = ref.live[--ref.n_live];
		} else {
			uint64_t first = test_rand_below(&rng, chunks);
			uint64_t n =
			        1 + test_rand_below(&rng, chunks - first < 8 ? chunks - first : 8);
			bool fits = ref_range_free(&ref, first, n);

			ret = emu_buddy_alloc_range(mm, first * CHUNK, n * CHUNK);
			ck_assert_msg(ret == (fits ? 0 : -ENOSPC),
			              "seed %llu step %u: range [%llu,+%llu): %d",
			              (unsigned long long)seed, step, (unsigned long long)first,
			              (unsigned long long)n, ret);
			if (fits) {
				ref_mark(&ref, first, n, 1);
				ref.live[ref.n_live++] = (struct ref_alloc){ first, n };
			}
		}

		ck_assert_msg(emu_buddy_check(mm) == 0, "seed %llu step %u: invariants broken",
		              (unsigned long long)seed, step);
		walk = emu_buddy_for_each_block(mm, compare_leaf, &cmp);
		ck_assert_msg(walk == 0 && cmp.ok && cmp.next == chunks,
		              "seed %llu step %u: blocks differ from the bitmap",
		              (unsigned long long)seed, step);
		for (uint64_t i = 0; i < chunks; i++)
			free_chunks += !ref.used[i];
		ck_assert_msg(emu_buddy_avail(mm) == free_chunks * CHUNK,
		              "seed %llu step %u: avail %llu, bitmap %llu free chunks",
		              (unsigned long long)seed, step,
		              (unsigned long long)emu_buddy_avail(mm),
		              (unsigned long long)free_chunks);
	}

	/* Freeing everything merges back to the roots. */
	while (ref.n_live) {
		struct ref_alloc a = ref.live[--ref.n_live];

		ck_assert_msg(emu_buddy_free(mm, a.first * CHUNK, NULL) == 0,
		              "seed %llu: final free", (unsigned long long)seed);
	}
	ck_assert_msg(emu_buddy_check(mm) == 0, "seed %llu: invariants after freeing all",
	              (unsigned long long)seed);
	ck_assert_uint_eq(emu_buddy_avail(mm), chunks * CHUNK);
	ck_assert_uint_eq(emu_buddy_largest_free(mm), (1ULL << max_order) * CHUNK);
	{
		struct leaves got = { .count = 0 };

		ck_assert_int_eq(emu_buddy_for_each_block(mm, collect_leaf, &got), 0);
		ck_assert_uint_eq(got.count, (unsigned)__builtin_popcountll(chunks));
	}
	emu_buddy_fini(mm);
	free(ref.used);
	free(ref.live);
}

START_TEST(random_power_of_two)
{
	random_run(256, 4000);
}
END_TEST

START_TEST(random_odd_size)
{
	random_run(1000, 4000);
}
END_TEST

START_TEST(random_tiny)
{
	random_run(5, 2000);
}
END_TEST

static Suite *buddy_suite(void)
{
	Suite *s = suite_create("emu_buddy");
	TCase *tc = tcase_create("layout");

	tcase_add_test(tc, init_rejects_bad_sizes);
	tcase_add_test(tc, roots_follow_the_bits_of_the_size);
	tcase_add_test(tc, alloc_splits_and_trims_the_tail);
	tcase_add_test(tc, trimmed_tail_is_reusable);
	tcase_add_test(tc, free_merges_buddies_only);
	tcase_add_test(tc, alloc_takes_the_smallest_block_that_fits);
	tcase_add_test(tc, alloc_range_reserves_exactly);
	tcase_add_test(tc, errors_change_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_add_test(tc, random_power_of_two);
	tcase_add_test(tc, random_odd_size);
	tcase_add_test(tc, random_tiny);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buddy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
