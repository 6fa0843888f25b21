/* SPDX-License-Identifier: MIT */
/* Unit tests of the paged KV cache (include/kvfpga/kvcache.h) on the default device. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "helpers/test_layout.h"
#include "helpers/test_util.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

/* ---- fixtures ---- */

struct fx {
	struct kvfpga_device *dev;
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvcache_config cfg; /* what the cache was created with */
	struct kvfpga_kvcache_layout lay;
	uint8_t *base;
};

static struct kvfpga_device *open_dev(uint64_t emu_mem)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev = NULL;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	opts.emu_mem_size = emu_mem;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), 0);
	return dev;
}

static void fx_open(struct fx *f, uint32_t layers, uint32_t heads, uint32_t hd, uint32_t bs,
                    enum kvfpga_kvcache_dtype dtype, uint32_t n_blocks, uint32_t flags)
{
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache_arena ar;

	memset(f, 0, sizeof(*f));
	f->dev = open_dev(64ull << 20);
	ck_assert_int_eq(kvfpga_kvcache_config_init(&cfg), 0);
	cfg.n_layers = layers;
	cfg.n_kv_heads = heads;
	cfg.head_dim = hd;
	cfg.block_size = bs;
	cfg.dtype = dtype;
	cfg.n_blocks = n_blocks;
	cfg.flags = flags;
	f->cfg = cfg;
	ck_assert_int_eq(kvfpga_kvcache_create(f->dev, &cfg, &f->kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(f->kc, &f->lay), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(f->kc, &ar), 0);
	f->base = ar.base;
}

/*
 * The documented arena layout (docs/kvcache.md, helpers/test_layout.h),
 * computed from the configuration alone: an independent check of the
 * library's layout.  The slice of (layer l, block b) starts at byte
 * (l * n_blocks + b) * slice_bytes.
 */
static uint64_t doc_elem_size(const struct fx *f)
{
	return f->cfg.dtype == KVFPGA_KVCACHE_F32 ? 4 : f->cfg.dtype == KVFPGA_KVCACHE_F16 ? 2 : 1;
}

static uint64_t doc_slice_bytes(const struct fx *f)
{
	const struct kvfpga_kvcache_config *c = &f->cfg;

	if (c->dtype == KVFPGA_KVCACHE_I8)
		return test_i8_slice_bytes(c->n_kv_heads, c->block_size, c->head_dim);
	return test_slice_elems(c->n_kv_heads, c->block_size, c->head_dim) * doc_elem_size(f);
}

static const uint8_t *doc_slice(const struct fx *f, int32_t block, uint32_t layer)
{
	return f->base +
	       test_slice_start(layer, (uint32_t)block, f->cfg.n_blocks, doc_slice_bytes(f));
}

static uint64_t doc_slice_elem(const struct fx *f, uint32_t kv, uint32_t head, uint32_t slot,
                               uint32_t d)
{
	return test_slice_elem(kv, head, slot, d, f->cfg.n_kv_heads, f->cfg.block_size,
	                       f->cfg.head_dim);
}

static void fx_close(struct fx *f)
{
	ck_assert_int_eq(kvfpga_kvcache_verify(f->kc), 0);
	kvfpga_kvcache_destroy(f->kc);
	kvfpga_device_close(f->dev);
}

static struct kvfpga_kvcache_stats stats_of(struct fx *f)
{
	struct kvfpga_kvcache_stats st;

	ck_assert_int_eq(kvfpga_kvcache_get_stats(f->kc, &st), 0);
	ck_assert_uint_eq(st.blocks_total, st.blocks_used + st.blocks_cached + st.blocks_free);
	return st;
}

/* A value exact in binary16 (multiple of 1/8, |v| < 256), distinct per coordinate. */
static float val(uint32_t tag, uint32_t pos, uint32_t layer, uint32_t kv, uint32_t head, uint32_t d)
{
	uint32_t x = tag * 7919u + pos * 131u + layer * 37u + kv * 17u + head * 5u + d;

	return (float)(x % 3001u) / 8.0f - 180.0f;
}

static void row_of(const struct fx *f, uint32_t tag, uint32_t pos, uint32_t layer, uint32_t kv,
                   float *row)
{
	for (uint32_t h = 0; h < f->lay.n_kv_heads; h++)
		for (uint32_t d = 0; d < f->lay.head_dim; d++)
			row[h * f->lay.head_dim + d] = val(tag, pos, layer, kv, h, d);
}

/* Write K and V of positions [from, to) of every layer with val(tag, ...). */
static void write_all(struct fx *f, struct kvfpga_kvseq *s, uint32_t tag, uint32_t from,
                      uint32_t to)
{
	float k[256], v[256];

	for (uint32_t p = from; p < to; p++)
		for (uint32_t l = 0; l < f->lay.n_layers; l++) {
			row_of(f, tag, p, l, 0, k);
			row_of(f, tag, p, l, 1, v);
			EXPECT(kvfpga_kvseq_write(s, l, p, k, v) == 0, "write pos %u layer %u", p,
			       l);
		}
}

/* The element at the documented offset, read straight from the arena. */
static float raw_elem(const struct fx *f, int32_t block, uint32_t layer, uint32_t kv, uint32_t head,
                      uint32_t slot, uint32_t d)
{
	uint64_t esz = doc_elem_size(f);
	const uint8_t *p = doc_slice(f, block, layer) + doc_slice_elem(f, kv, head, slot, d) * esz;

	EXPECT(esz != 1, "raw_elem() reads f32 and f16; int8 has raw_i8() and raw_scale()");

	if (esz == 4) {
		float x;

		memcpy(&x, p, 4);
		return x;
	}
	uint16_t h;

	memcpy(&h, p, 2);
	return kvfpga_kvcache_f16_to_f32(h);
}

/* Every K/V element of positions [from, to) of s, read from the arena, equals val(tag, ...). */
static void check_all(const struct fx *f, const struct kvfpga_kvseq *s, uint32_t tag, uint32_t from,
                      uint32_t to)
{
	int32_t table[512];
	uint32_t nb;

	ck_assert_int_eq(kvfpga_kvseq_block_table(s, table, 512, &nb), 0);
	for (uint32_t p = from; p < to; p++)
		for (uint32_t l = 0; l < f->lay.n_layers; l++)
			for (uint32_t kv = 0; kv < 2; kv++)
				for (uint32_t h = 0; h < f->lay.n_kv_heads; h++)
					for (uint32_t d = 0; d < f->lay.head_dim; d++) {
						float got =
						        raw_elem(f, table[p / f->lay.block_size], l,
						                 kv, h, p % f->lay.block_size, d);
						float want = val(tag, p, l, kv, h, d);

						EXPECT(got == want,
						       "pos %u layer %u kv %u head %u d %u: "
						       "%g != %g",
						       p, l, kv, h, d, got, want);
					}
}

static void make_tokens(int32_t *t, uint32_t n, int32_t start)
{
	for (uint32_t i = 0; i < n; i++)
		t[i] = start + (int32_t)i;
}

static uint32_t n_blocks_of(const struct kvfpga_kvseq *s)
{
	uint32_t nb;

	ck_assert_int_eq(kvfpga_kvseq_block_table(s, NULL, 0, &nb), 0);
	return nb;
}

static int32_t block_at(const struct kvfpga_kvseq *s, uint32_t i)
{
	int32_t table[512];
	uint32_t nb;

	ck_assert_int_eq(kvfpga_kvseq_block_table(s, table, 512, &nb), 0);
	ck_assert_uint_lt(i, nb);
	return table[i];
}

static uint32_t lookup(struct fx *f, uint64_t salt, const int32_t *t, uint32_t n)
{
	uint32_t got = UINT32_MAX;

	ck_assert_int_eq(kvfpga_kvcache_prefix_lookup(f->kc, salt, t, n, &got), 0);
	return got;
}

/* A sequence holding tokens t[0..n) with K/V written (tag) and committed. */
static struct kvfpga_kvseq *computed_seq(struct fx *f, uint64_t salt, const int32_t *t, uint32_t n,
                                         uint32_t tag)
{
	struct kvfpga_kvseq *s;
	uint32_t cached = UINT32_MAX;

	ck_assert_int_eq(kvfpga_kvseq_create(f->kc, salt, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, n, &cached), 0);
	write_all(f, s, tag, cached, n);
	ck_assert_int_eq(kvfpga_kvseq_commit(s, n), 0);
	return s;
}

/*
 * Real XXH64 collisions, found offline with Pollard's rho: the first blocks
 * (4 tokens, parent 0, salt 0) made from these two values share a hash.
 */
#define COLLIDE_X1 0x9d1106564290e752ull
#define COLLIDE_X2 0x9f03d9d6ac11b272ull

/* Tokens of a block: le32(x), le32(x >> 32), twice. */
static void colliding_tokens(uint64_t x, int32_t *t)
{
	t[0] = (int32_t)(uint32_t)x;
	t[1] = (int32_t)(uint32_t)(x >> 32);
	t[2] = t[0];
	t[3] = t[1];
}

/* ---- configuration ---- */

START_TEST(test_config_defaults)
{
	struct kvfpga_kvcache_config cfg;

	memset(&cfg, 0xa5, sizeof(cfg));
	ck_assert_int_eq(kvfpga_kvcache_config_init(&cfg), 0);
	ck_assert_uint_eq(cfg.block_size, 16);
	ck_assert_int_eq(cfg.dtype, KVFPGA_KVCACHE_F16);
	ck_assert_uint_eq(cfg.flags, 0);
	ck_assert_uint_eq(cfg.n_layers, 0);
	ck_assert_uint_eq(cfg.n_blocks, 0);
	ck_assert_uint_eq(cfg.mem_bytes, 0);
	ck_assert_int_eq(kvfpga_kvcache_config_init(NULL), -EINVAL);
}
END_TEST

START_TEST(test_create_bad_args)
{
	struct kvfpga_device *dev = open_dev(16ull << 20);
	struct kvfpga_kvcache_config good, cfg;
	struct kvfpga_kvcache *kc = (struct kvfpga_kvcache *)&good; /* must stay untouched */
	struct kvfpga_kvcache *const sentinel = kc;

	kvfpga_kvcache_config_init(&good);
	good.n_layers = 2;
	good.n_kv_heads = 2;
	good.head_dim = 8;
	good.n_blocks = 4;

	ck_assert_int_eq(kvfpga_kvcache_create(NULL, &good, &kc), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_create(dev, NULL, &kc), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &good, NULL), -EINVAL);

	const uint32_t bad_bs[] = { 0, 3, 12, 512, 1024, 100 };

	for (size_t i = 0; i < sizeof(bad_bs) / sizeof(bad_bs[0]); i++) {
		cfg = good;
		cfg.block_size = bad_bs[i];
		ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	}
	cfg = good;
	cfg.n_layers = 0;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg = good;
	cfg.n_kv_heads = 0;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg = good;
	cfg.head_dim = 0;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg = good;
	cfg.dtype = (enum kvfpga_kvcache_dtype)0;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg.dtype = (enum kvfpga_kvcache_dtype)7;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg = good;
	cfg.flags = 1u << 5;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	/* Capacity: none, below one block, above INT32_MAX blocks. */
	cfg = good;
	cfg.n_blocks = 0;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg.mem_bytes = 2 * 2 * 2 * 16 * 8 * 2 - 1; /* one byte short of a block */
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	cfg.n_blocks = 0x80000000u;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	/* Block size overflowing 64 bits. */
	cfg = good;
	cfg.n_layers = cfg.n_kv_heads = cfg.head_dim = 0xffffffffu;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EOVERFLOW);
	/* Arena larger than the card: the device's error, nothing leaked (ASan). */
	cfg = good;
	cfg.n_blocks = 1u << 20;
	ck_assert_int_lt(kvfpga_kvcache_create(dev, &cfg, &kc), 0);
	ck_assert_ptr_eq(kc, sentinel);

	kvfpga_kvcache_destroy(NULL);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(test_capacity_from_bytes)
{
	struct kvfpga_device *dev = open_dev(16ull << 20);
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvcache_layout lay;
	struct kvfpga_kvcache_stats st;
	const uint64_t slice_bytes = 2ull * 2 * 8 * 4 * 2; /* f16: K and V of 2 heads, 8 x 4 */
	const uint64_t block_bytes = 3 * slice_bytes;      /* 3 layers */

	kvfpga_kvcache_config_init(&cfg);
	cfg.n_layers = 3;
	cfg.n_kv_heads = 2;
	cfg.head_dim = 4;
	cfg.block_size = 8;
	cfg.mem_bytes = 10 * block_bytes + block_bytes - 1;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(kc, &lay), 0);
	ck_assert_uint_eq(lay.slice_bytes, slice_bytes);
	ck_assert_uint_eq(lay.block_bytes, block_bytes);
	ck_assert_uint_eq(lay.n_blocks, 10);
	ck_assert_uint_eq(lay.layer_bytes, 10 * slice_bytes);
	ck_assert_uint_eq(lay.arena_bytes, 10 * block_bytes);
	ck_assert_int_eq(kvfpga_kvcache_get_stats(kc, &st), 0);
	ck_assert_uint_eq(st.blocks_total, 10);
	ck_assert_uint_eq(st.blocks_free, 10);
	ck_assert_uint_eq(st.bytes_per_token, block_bytes / 8);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(kc, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(NULL, &lay), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_get_stats(NULL, &st), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_get_stats(kc, NULL), -EINVAL);
	kvfpga_kvcache_destroy(kc);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(test_layout_strides)
{
	struct fx f;
	struct kvfpga_kvcache_arena ar;
	const enum kvfpga_kvcache_dtype dt = _i ? KVFPGA_KVCACHE_F32 : KVFPGA_KVCACHE_F16;
	const uint64_t esz = _i ? 4 : 2;

	fx_open(&f, 3, 2, 8, 32, dt, 5, 0);
	ck_assert_uint_eq(f.lay.n_layers, 3);
	ck_assert_uint_eq(f.lay.n_kv_heads, 2);
	ck_assert_uint_eq(f.lay.head_dim, 8);
	ck_assert_uint_eq(f.lay.block_size, 32);
	ck_assert_uint_eq(f.lay.elem_size, esz);
	ck_assert_uint_eq(f.lay.slot_stride, 8);
	ck_assert_uint_eq(f.lay.k_slot_stride, 1);
	ck_assert_uint_eq(f.lay.k_dim_stride, 32);
	ck_assert_uint_eq(f.lay.head_stride, 32 * 8);
	ck_assert_uint_eq(f.lay.kv_stride, 2 * 32 * 8);
	ck_assert_uint_eq(f.lay.slice_bytes, 2 * 2 * 32 * 8 * esz);
	ck_assert_uint_eq(f.lay.layer_bytes, 5 * 2 * 2 * 32 * 8 * esz);
	ck_assert_uint_eq(f.lay.block_bytes, 3 * 2 * 2 * 32 * 8 * esz);
	ck_assert_uint_eq(f.lay.arena_bytes, 3 * 5 * 2 * 2 * 32 * 8 * esz);
	ck_assert_uint_eq(f.lay.bytes_per_token, 3 * 2 * 2 * 8 * esz);
	ck_assert_uint_eq(f.lay.scale_offset, 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(f.kc, &ar), 0);
	ck_assert_ptr_nonnull(ar.bo);
	ck_assert_ptr_nonnull(ar.base);
	ck_assert_uint_ge(kvfpga_bo_size(ar.bo), f.lay.arena_bytes);
	ck_assert_uint_eq(ar.card_addr, kvfpga_bo_card_addr(ar.bo));
	ck_assert_uint_eq(ar.block_bytes, f.lay.block_bytes);
	ck_assert_uint_eq(ar.arena_bytes, f.lay.arena_bytes);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(NULL, &ar), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(f.kc, NULL), -EINVAL);
	fx_close(&f);
}
END_TEST

/* Values land exactly at the documented offsets, for several shapes and both dtypes. */
START_TEST(test_layout_offsets)
{
	static const uint32_t shapes[][4] = {
		/* layers, heads, head_dim, block_size */
		{ 1, 1, 1, 1 }, { 2, 3, 4, 4 }, { 3, 2, 8, 16 }, { 1, 4, 2, 256 }, { 4, 1, 16, 2 },
	};
	const enum kvfpga_kvcache_dtype dt = _i ? KVFPGA_KVCACHE_F32 : KVFPGA_KVCACHE_F16;

	for (size_t c = 0; c < sizeof(shapes) / sizeof(shapes[0]); c++) {
		struct fx f;
		struct kvfpga_kvseq *s;
		uint32_t bs = shapes[c][3], n = 2 * bs + bs / 2 + 1;
		int32_t t[700];

		fx_open(&f, shapes[c][0], shapes[c][1], shapes[c][2], bs, dt, 8, 0);
		make_tokens(t, n, 100);
		ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
		ck_assert_int_eq(kvfpga_kvseq_append(s, t, n, NULL), 0);
		write_all(&f, s, 3, 0, n);
		check_all(&f, s, 3, 0, n);
		/* read() returns the same values. */
		float k[256], v[256], want[256];

		for (uint32_t p = 0; p < n; p += 3) {
			uint32_t l = p % f.lay.n_layers;

			ck_assert_int_eq(kvfpga_kvseq_read(s, l, p, k, v), 0);
			row_of(&f, 3, p, l, 0, want);
			ck_assert_mem_eq(k, want, f.lay.n_kv_heads * f.lay.head_dim * 4);
			row_of(&f, 3, p, l, 1, want);
			ck_assert_mem_eq(v, want, f.lay.n_kv_heads * f.lay.head_dim * 4);
		}
		fx_close(&f);
	}
}
END_TEST

/* The worked example of docs/kvcache.md. */
START_TEST(test_layout_doc_example)
{
	struct fx f;
	struct kvfpga_kvseq *filler, *s;
	int32_t t[48];
	float k[4 * 64], v[4 * 64];
	uint16_t h;

	/*
	 * 2 layers, 4 KV heads, head_dim 64, block_size 16, f16, 8 blocks:
	 * slice_bytes 2 * 4 * 16 * 64 * 2 = 16384, layer_bytes 8 * 16384 =
	 * 131072, block_bytes 2 * 16384 = 32768, arena_bytes 262144.
	 */
	fx_open(&f, 2, 4, 64, 16, KVFPGA_KVCACHE_F16, 8, 0);
	ck_assert_uint_eq(f.lay.slice_bytes, 16384);
	ck_assert_uint_eq(f.lay.layer_bytes, 131072);
	ck_assert_uint_eq(f.lay.block_bytes, 32768);
	ck_assert_uint_eq(f.lay.arena_bytes, 262144);
	/* A fresh cache hands out blocks 0, 1, 2 to a first sequence of 48
	 * tokens and 3, 4, 5 to the next one of 40: its table[2] is block 5. */
	make_tokens(t, 48, 1000);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &filler), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(filler, t, 48, NULL), 0);
	make_tokens(t, 40, 1);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 40, NULL), 0);
	ck_assert_int_eq(block_at(s, 2), 5);

	/* V of layer 1, head 2, position 37 (table[2], slot 5), dimension 10 = 1.5:
	 * slice 1 * 131072 + 5 * 16384 = 212992; tile (1 * 4 + 2) * 16 * 64 =
	 * 6144, element 6144 + 5 * 64 + 10 = 6474, byte 12948: arena byte 225940. */
	memset(k, 0, sizeof(k));
	memset(v, 0, sizeof(v));
	v[2 * 64 + 10] = 1.5f;
	ck_assert_int_eq(kvfpga_kvseq_write(s, 1, 37, NULL, v), 0);
	_Static_assert(1 * 131072 + 5 * 16384 + ((1 * 4 + 2) * 16 * 64 + 5 * 64 + 10) * 2 == 225940,
	               "the V address of docs/kvcache.md's example");
	memcpy(&h, f.base + 225940, 2);
	ck_assert_uint_eq(h, 0x3e00); /* 1.5 in binary16 */
	/* K of the same layer, head, position and dimension = -2, K tiles being
	 * [dim][slot]: tile (0 * 4 + 2) * 1024 = 2048, element 2048 + 10 * 16 + 5 =
	 * 2213, byte 4426: arena byte 212992 + 4426 = 217418. */
	k[2 * 64 + 10] = -2.0f;
	ck_assert_int_eq(kvfpga_kvseq_write(s, 1, 37, k, NULL), 0);
	_Static_assert(1 * 131072 + 5 * 16384 + ((0 * 4 + 2) * 16 * 64 + 10 * 16 + 5) * 2 == 217418,
	               "the K address of docs/kvcache.md's example");
	memcpy(&h, f.base + 217418, 2);
	ck_assert_uint_eq(h, 0xc000); /* -2 in binary16 */
	/* Nothing else of the arena changed: only those two halves are nonzero. */
	for (uint64_t i = 0; i < f.lay.arena_bytes; i += 2) {
		memcpy(&h, f.base + i, 2);
		if (i != 225940 && i != 217418)
			EXPECT(h == 0, "arena byte %llu: 0x%04x", (unsigned long long)i, h);
	}
	kvfpga_kvseq_free(s);
	kvfpga_kvseq_free(filler);
	fx_close(&f);
}
END_TEST

/*
 * What the layer-major arena is for: a fresh cache hands the blocks of one
 * append out in ascending order, so each layer's K/V of the sequence is one
 * run of memory (the slice of table[i + 1] right after that of table[i]),
 * which attention over that layer streams without a jump.  The run is
 * compared in one piece with its image built from the documented layout.
 */
START_TEST(test_layer_runs_contiguous)
{
	enum { LAYERS = 3, HEADS = 2, HD = 8, BS = 4, SEQ_BLOCKS = 5, N = SEQ_BLOCKS * BS };
	const enum kvfpga_kvcache_dtype dt = _i ? KVFPGA_KVCACHE_F32 : KVFPGA_KVCACHE_F16;
	const uint64_t esz = _i ? 4 : 2, slice = 2ull * HEADS * BS * HD * esz;
	static uint8_t want[SEQ_BLOCKS * 2 * HEADS * BS * HD * 4];
	int32_t t[N], table[SEQ_BLOCKS + 1];
	struct kvfpga_kvseq *s;
	uint32_t nb;
	struct fx f;

	fx_open(&f, LAYERS, HEADS, HD, BS, dt, SEQ_BLOCKS + 2, 0);
	ck_assert_uint_eq(doc_slice_bytes(&f), slice);
	make_tokens(t, N, 70);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, N, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_block_table(s, table, SEQ_BLOCKS + 1, &nb), 0);
	ck_assert_uint_eq(nb, SEQ_BLOCKS);
	for (uint32_t i = 0; i + 1 < SEQ_BLOCKS; i++)
		ck_assert_msg(table[i + 1] == table[i] + 1,
		              "a fresh cache gave blocks %d, %d to table[%u], table[%u]", table[i],
		              table[i + 1], i, i + 1);
	write_all(&f, s, 6, 0, N);

	for (uint32_t l = 0; l < LAYERS; l++) {
		const uint8_t *run = doc_slice(&f, table[0], l);

		/* Every byte of the run: position p in slice p / BS of it, i.e. the slice
		 * of table[i] at run + i * slice_bytes. */
		for (uint32_t p = 0; p < N; p++)
			for (uint32_t kv = 0; kv < 2; kv++)
				for (uint32_t h = 0; h < HEADS; h++)
					for (uint32_t d = 0; d < HD; d++) {
						float x = val(6, p, l, kv, h, d);
						uint8_t *at =
						        want + (p / BS) * slice +
						        doc_slice_elem(&f, kv, h, p % BS, d) * esz;

						if (esz == 4) {
							memcpy(at, &x, 4);
						} else {
							uint16_t half =
							        kvfpga_kvcache_f16_from_f32(x);

							memcpy(at, &half, 2);
						}
					}
		ck_assert_msg(memcmp(run, want, SEQ_BLOCKS * slice) == 0,
		              "layer %u: the sequence's K/V are not one run from block %d", l,
		              table[0]);
	}
	kvfpga_kvseq_free(s);
	fx_close(&f);
}
END_TEST

/*
 * After churn one append still gets its new blocks in ascending order, so a
 * prompt prefilled into blocks that were one run is one run again.  Case 0:
 * a freed sequence's published blocks are evicted tail first (the prefix is
 * worth more), i.e. in descending order.  Case 1 (no prefix caching): two
 * sequences that grew a block at a time in turn hold the even and the odd
 * blocks; freed, they leave the free list 1, 3, 5, 7, 0, 2, 4, 6.
 */
START_TEST(test_append_sorts_new_blocks)
{
	enum { BS = 4, NB = 8, N = NB * BS };
	int32_t t[N], u[N], table[NB];
	struct kvfpga_kvseq *a, *b;
	uint32_t nb;
	struct fx f;

	fx_open(&f, 2, 1, 4, BS, KVFPGA_KVCACHE_F16, NB, (uint32_t)_i);
	make_tokens(t, N, 10);
	make_tokens(u, N, 500);
	if (!_i) {
		a = computed_seq(&f, 0, t, N, 3);
		kvfpga_kvseq_free(a); /* all of it cached, evicted tail first */
	} else {
		ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
		ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
		for (uint32_t i = 0; i < NB / 2; i++) {
			ck_assert_int_eq(kvfpga_kvseq_append(a, t + i * BS, BS, NULL), 0);
			ck_assert_int_eq(kvfpga_kvseq_append(b, u + i * BS, BS, NULL), 0);
		}
		ck_assert_int_eq(kvfpga_kvseq_block_table(a, table, NB, &nb), 0);
		ck_assert_uint_eq(nb, NB / 2);
		ck_assert_int_eq(table[1], 2); /* the interleaving this case needs */
		kvfpga_kvseq_free(a);
		kvfpga_kvseq_free(b);
	}
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 1, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, u, N, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_block_table(b, table, NB, &nb), 0);
	ck_assert_uint_eq(nb, NB);
	for (uint32_t i = 0; i < NB; i++)
		ck_assert_msg(table[i] == (int32_t)i, "table[%u] is block %d after churn (%s)", i,
		              table[i], _i ? "interleaved frees" : "evicted");
	if (!_i)
		ck_assert_uint_eq(stats_of(&f).evictions, NB);
	kvfpga_kvseq_free(b);
	fx_close(&f);
}
END_TEST

/* ---- append / write / read ---- */

START_TEST(test_append_basic)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	struct kvfpga_kvseq_info info;
	int32_t t[100], back[100];
	uint32_t cached = 77;

	fx_open(&f, 2, 2, 4, 8, KVFPGA_KVCACHE_F32, 16, 0);
	make_tokens(t, 100, 500);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 9, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.len, 0);
	ck_assert_uint_eq(info.n_blocks, 0);
	ck_assert_uint_eq(info.salt, 9);

	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 0, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 5, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	ck_assert_uint_eq(n_blocks_of(s), 1);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t + 5, 3, NULL), 0); /* fills block 0 */
	ck_assert_uint_eq(n_blocks_of(s), 1);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t + 8, 1, NULL), 0);
	ck_assert_uint_eq(n_blocks_of(s), 2);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t + 9, 30, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.len, 39);
	ck_assert_uint_eq(info.committed, 0);
	ck_assert_uint_eq(info.n_blocks, 5);
	ck_assert_uint_eq(info.n_shared, 0);
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 0, 39, back), 0);
	ck_assert_mem_eq(back, t, 39 * sizeof(int32_t));
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 30, 9, back), 0);
	ck_assert_mem_eq(back, t + 30, 9 * sizeof(int32_t));
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 30, 10, back), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 40, 0, back), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 39, 0, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_tokens(NULL, 0, 1, back), -EINVAL);

	struct kvfpga_kvcache_stats st = stats_of(&f);

	ck_assert_uint_eq(st.blocks_used, 5);
	ck_assert_uint_eq(st.blocks_free, 11);
	ck_assert_uint_eq(st.n_seqs, 1);

	/* Distinct physical blocks. */
	int32_t table[8];
	uint32_t nb = 0;

	ck_assert_int_eq(kvfpga_kvseq_block_table(s, table, 8, &nb), 0);
	ck_assert_uint_eq(nb, 5);
	for (uint32_t i = 0; i < 5; i++) {
		ck_assert_int_ge(table[i], 0);
		ck_assert_int_lt(table[i], 16);
		for (uint32_t j = 0; j < i; j++)
			ck_assert_int_ne(table[i], table[j]);
	}
	/* A short buffer gets the first entries and the full count. */
	int32_t two[2];

	ck_assert_int_eq(kvfpga_kvseq_block_table(s, two, 2, &nb), 0);
	ck_assert_uint_eq(nb, 5);
	ck_assert_int_eq(two[0], table[0]);
	ck_assert_int_eq(two[1], table[1]);

	write_all(&f, s, 1, 0, 39);
	check_all(&f, s, 1, 0, 39);
	kvfpga_kvseq_free(s);
	st = stats_of(&f);
	ck_assert_uint_eq(st.blocks_free, 16);
	ck_assert_uint_eq(st.n_seqs, 0);
	kvfpga_kvseq_free(NULL);
	fx_close(&f);
}
END_TEST

START_TEST(test_seq_bad_args)
{
	struct fx f;
	struct kvfpga_kvseq *s, *out = NULL;
	struct kvfpga_kvseq_info info;
	int32_t t[4] = { 1, 2, 3, 4 }, ids[4];
	uint32_t n;
	float row[8] = { 0 };

	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_F16, 4, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(NULL, 0, &s), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(NULL, t, 1, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_append(s, NULL, 1, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_append(s, NULL, 0, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 3, NULL), 0);

	ck_assert_int_eq(kvfpga_kvseq_write(NULL, 0, 0, row, row), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 2, 0, row, row), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 3, row, row), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 1000, row, row), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 0, 1, 3, row, row, 0), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 0, 2, 0xffffffffu, row, row, 0), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 0, 0, 1, row, row, 7), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 0, 0, 0, row, row, 0), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 2, row, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 1, 2, NULL, row), 0);

	ck_assert_int_eq(kvfpga_kvseq_read(NULL, 0, 0, row, row), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_read(s, 2, 0, row, row), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 3, row, row), -ERANGE);

	ck_assert_int_eq(kvfpga_kvseq_commit(NULL, 0), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_commit(s, 4), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_truncate(NULL, 0), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 4), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_fork(NULL, &out), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_fork(s, NULL), -EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(kvfpga_kvseq_block_table(NULL, ids, 4, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_block_table(s, NULL, 4, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_block_table(s, ids, 4, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_get_info(NULL, &info), -EINVAL);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_prefix_lookup(NULL, 0, t, 4, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_prefix_lookup(f.kc, 0, NULL, 4, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_prefix_lookup(f.kc, 0, t, 4, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_verify(NULL), -EINVAL);

	/* Nothing above changed the sequence. */
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.len, 3);
	ck_assert_uint_eq(info.committed, 0);
	ck_assert_uint_eq(info.n_blocks, 1);
	ck_assert_uint_eq(stats_of(&f).blocks_used, 1);
	fx_close(&f);
}
END_TEST

START_TEST(test_write_range_stride)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	int32_t t[20];
	const uint32_t row = 2 * 4, stride = 3 * row; /* rows inside a fused [q|k|v] buffer */
	float fused[20 * 3 * 8];

	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_F32, 8, 0);
	make_tokens(t, 20, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 20, NULL), 0);
	for (uint32_t l = 0; l < 2; l++) {
		for (uint32_t p = 0; p < 20; p++) {
			for (uint32_t i = 0; i < row; i++)
				fused[p * stride + i] = -1.0f; /* q: never stored */
			row_of(&f, 4, p, l, 0, fused + p * stride + row);
			row_of(&f, 4, p, l, 1, fused + p * stride + 2 * row);
		}
		/* Positions 3..17 span four blocks. */
		ck_assert_int_eq(kvfpga_kvseq_write_range(s, l, 3, 15, fused + 3 * stride + row,
		                                          fused + 3 * stride + 2 * row, stride),
		                 0);
		ck_assert_int_eq(
		        kvfpga_kvseq_write_range(s, l, 0, 3, fused + row, fused + 2 * row, stride),
		        0);
		ck_assert_int_eq(kvfpga_kvseq_write_range(s, l, 18, 2, fused + 18 * stride + row,
		                                          fused + 18 * stride + 2 * row, stride),
		                 0);
	}
	check_all(&f, s, 4, 0, 20);
	/* Packed rows (stride 0). */
	float k[3 * 8], v[3 * 8];

	for (uint32_t p = 0; p < 3; p++) {
		row_of(&f, 5, 10 + p, 1, 0, k + p * row);
		row_of(&f, 5, 10 + p, 1, 1, v + p * row);
	}
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 1, 10, 3, k, v, 0), 0);
	float got[8];

	ck_assert_int_eq(kvfpga_kvseq_read(s, 1, 11, got, NULL), 0);
	ck_assert_mem_eq(got, k + row, sizeof(got));
	ck_assert_int_eq(kvfpga_kvseq_read(s, 1, 12, NULL, got), 0);
	ck_assert_mem_eq(got, v + 2 * row, sizeof(got));
	fx_close(&f);
}
END_TEST

/*
 * Multi-position writes store K a block's column at a time (one contiguous
 * run per dimension): the result must be the same as writing each position
 * on its own, for every dtype, with runs longer than one f16 conversion
 * chunk (16 rows, 64 dims) and ranges that start and end inside blocks.
 */
START_TEST(test_write_range_blocks)
{
	static const enum kvfpga_kvcache_dtype dts[] = { KVFPGA_KVCACHE_F32, KVFPGA_KVCACHE_F16,
		                                         KVFPGA_KVCACHE_I8 };
	enum { HEADS = 3, HD = 80, ROW = HEADS * HD, STRIDE = 2 * ROW + 3, N = 100 };
	static const uint32_t cuts[] = { 0, 5, 45, 77, N };
	static float fused[N * STRIDE];
	float ka[ROW], va[ROW], kb[ROW], vb[ROW];
	struct kvfpga_kvseq *a, *b;
	int32_t t[N];
	struct fx f;

	fx_open(&f, 2, HEADS, HD, 32, dts[_i], 10, KVFPGA_KVCACHE_NO_PREFIX_CACHING);
	make_tokens(t, N, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, N, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, N, NULL), 0);
	for (uint32_t l = 0; l < 2; l++) {
		for (uint32_t p = 0; p < N; p++) {
			row_of(&f, 9, p, l, 0, fused + p * STRIDE);
			row_of(&f, 9, p, l, 1, fused + p * STRIDE + ROW);
			ck_assert_int_eq(kvfpga_kvseq_write(b, l, p, fused + p * STRIDE,
			                                    fused + p * STRIDE + ROW),
			                 0);
		}
		for (uint32_t c = 0; c + 1 < sizeof(cuts) / sizeof(cuts[0]); c++) {
			uint32_t p = cuts[c], n = cuts[c + 1] - cuts[c];

			ck_assert_int_eq(kvfpga_kvseq_write_range(a, l, p, n, fused + p * STRIDE,
			                                          fused + p * STRIDE + ROW, STRIDE),
			                 0);
		}
	}
	for (uint32_t l = 0; l < 2; l++)
		for (uint32_t p = 0; p < N; p++) {
			ck_assert_int_eq(kvfpga_kvseq_read(a, l, p, ka, va), 0);
			ck_assert_int_eq(kvfpga_kvseq_read(b, l, p, kb, vb), 0);
			ck_assert_msg(
			        memcmp(ka, kb, sizeof(ka)) == 0 && memcmp(va, vb, sizeof(va)) == 0,
			        "dtype %d layer %u pos %u: range write differs from row writes",
			        (int)dts[_i], l, p);
		}
	if (dts[_i] != KVFPGA_KVCACHE_I8)
		check_all(&f, a, 9, 0, N); /* the arena bytes, from the documented layout */
	kvfpga_kvseq_free(a);
	kvfpga_kvseq_free(b);
	fx_close(&f);
}
END_TEST

START_TEST(test_f16_storage_rounds)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	int32_t t[1] = { 5 };
	/* 1 + 2^-11 is a tie between 1 and 1 + 2^-10: rounds to even (1). */
	float k[2] = { 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f }, got[2];

	fx_open(&f, 1, 1, 2, 1, KVFPGA_KVCACHE_F16, 2, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 1, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 0, k, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 0, got, NULL), 0);
	ck_assert(got[0] == 1.0f);
	ck_assert(got[1] == 1.0f + 4 * 0x1p-11f);
	fx_close(&f);
}
END_TEST

/* ---- commit, truncate ---- */

START_TEST(test_commit_rules)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	struct kvfpga_kvseq_info info;
	int32_t t[12];
	float row[4] = { 0 };

	fx_open(&f, 1, 1, 4, 4, KVFPGA_KVCACHE_F32, 8, 0);
	make_tokens(t, 12, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 10, NULL), 0);
	write_all(&f, s, 0, 0, 10);
	ck_assert_int_eq(kvfpga_kvseq_commit(s, 6), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.committed, 6);
	ck_assert_uint_eq(stats_of(&f).blocks_published, 1);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 5, row, row), -EPERM);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 0, row, row), -EPERM);
	ck_assert_int_eq(kvfpga_kvseq_write_range(s, 0, 5, 3, row, row, 0), -EPERM);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 6, row, row), 0);
	ck_assert_int_eq(kvfpga_kvseq_commit(s, 3), 0); /* below: no-op */
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.committed, 6);
	ck_assert_uint_eq(info.n_shared, 1); /* the published block */
	ck_assert_int_eq(kvfpga_kvseq_commit(s, 10), 0);
	ck_assert_uint_eq(stats_of(&f).blocks_published, 2);
	fx_close(&f);
}
END_TEST

START_TEST(test_truncate)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	struct kvfpga_kvseq_info info;
	int32_t t[20], back[20];

	fx_open(&f, 2, 1, 4, 4, KVFPGA_KVCACHE_F32, 8, 0);
	make_tokens(t, 20, 40);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 14, NULL), 0);
	write_all(&f, s, 1, 0, 14);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 4);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 15), -ERANGE);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 14), 0);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 9), 0);
	ck_assert_uint_eq(n_blocks_of(s), 3);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 5);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 8), 0);
	ck_assert_uint_eq(n_blocks_of(s), 2);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 8, (float[4]){ 0 }, NULL), -ERANGE);
	check_all(&f, s, 1, 0, 8);
	/* Regrow with other tokens. */
	ck_assert_int_eq(kvfpga_kvseq_append(s, t + 10, 5, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_tokens(s, 0, 13, back), 0);
	ck_assert_mem_eq(back, t, 8 * sizeof(int32_t));
	ck_assert_mem_eq(back + 8, t + 10, 5 * sizeof(int32_t));
	write_all(&f, s, 1, 8, 13);
	check_all(&f, s, 1, 0, 13);
	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 0), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.len, 0);
	ck_assert_uint_eq(info.n_blocks, 0);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 8);
	fx_close(&f);
}
END_TEST

/* Truncating into a published block keeps it cached; the next append copies it. */
START_TEST(test_truncate_into_published)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	struct kvfpga_kvseq_info info;
	int32_t t[14];

	fx_open(&f, 2, 2, 2, 4, KVFPGA_KVCACHE_F16, 8, 0);
	make_tokens(t, 14, 7);
	s = computed_seq(&f, 0, t, 14, 2);
	ck_assert_uint_eq(stats_of(&f).blocks_published, 3);
	int32_t b1 = block_at(s, 1);

	ck_assert_int_eq(kvfpga_kvseq_truncate(s, 6), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &info), 0);
	ck_assert_uint_eq(info.committed, 6);
	ck_assert_uint_eq(info.n_blocks, 2);
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 1); /* block 2 */
	ck_assert_uint_eq(stats_of(&f).blocks_free, 5);   /* plus the partial block 3 */
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 5, (float[4]){ 0 }, NULL), -EPERM);
	int32_t other[1] = { 999 };

	ck_assert_int_eq(kvfpga_kvseq_append(s, other, 1, NULL), 0);
	ck_assert_int_ne(block_at(s, 1), b1);             /* private copy */
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 2); /* old block 1 stays cached */
	check_all(&f, s, 2, 0, 6);
	write_all(&f, s, 2, 6, 7);
	check_all(&f, s, 2, 0, 7);
	/* The original chain is still found. */
	ck_assert_uint_eq(lookup(&f, 0, t, 14), 12);
	fx_close(&f);
}
END_TEST

/* ---- fork / copy-on-write ---- */

/* A whole block is its slice in every layer: buf gets them block by block, layer by layer. */
static void snapshot(const struct fx *f, const struct kvfpga_kvseq *s, uint8_t *buf)
{
	uint32_t nb = n_blocks_of(s);
	uint64_t slice = doc_slice_bytes(f);

	for (uint32_t i = 0; i < nb; i++)
		for (uint32_t l = 0; l < f->cfg.n_layers; l++)
			memcpy(buf + ((uint64_t)i * f->cfg.n_layers + l) * slice,
			       doc_slice(f, block_at(s, i), l), slice);
}

static void assert_same_bytes(const struct fx *f, const struct kvfpga_kvseq *s, const uint8_t *buf)
{
	uint32_t nb = n_blocks_of(s);
	uint64_t slice = doc_slice_bytes(f);

	for (uint32_t i = 0; i < nb; i++)
		for (uint32_t l = 0; l < f->cfg.n_layers; l++)
			ck_assert_msg(memcmp(buf + ((uint64_t)i * f->cfg.n_layers + l) * slice,
			                     doc_slice(f, block_at(s, i), l), slice) == 0,
			              "block %u (layer %u) of the other sequence changed", i, l);
}

START_TEST(test_fork_cow)
{
	struct fx f;
	struct kvfpga_kvseq *p, *c;
	struct kvfpga_kvseq_info info;
	int32_t t[16], back[16];
	static uint8_t snap[8 * 4096];
	float k[8], v[8];

	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_F32, 12, 0);
	ck_assert_uint_le(doc_slice_bytes(&f) * f.cfg.n_layers * 4, sizeof(snap));
	make_tokens(t, 16, 300);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 5, &p), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(p, t, 10, NULL), 0);
	write_all(&f, p, 1, 0, 10);

	ck_assert_int_eq(kvfpga_kvseq_fork(p, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_get_info(c, &info), 0);
	ck_assert_uint_eq(info.len, 10);
	ck_assert_uint_eq(info.salt, 5);
	ck_assert_uint_eq(info.n_blocks, 3);
	ck_assert_uint_eq(info.n_shared, 2);
	ck_assert_int_eq(block_at(c, 0), block_at(p, 0));
	ck_assert_int_eq(block_at(c, 1), block_at(p, 1));
	ck_assert_int_ne(block_at(c, 2), block_at(p, 2));
	ck_assert_uint_eq(stats_of(&f).cow_copies, 1);
	ck_assert_uint_eq(stats_of(&f).blocks_used, 4);
	check_all(&f, c, 1, 0, 10);
	ck_assert_int_eq(kvfpga_kvseq_tokens(c, 0, 10, back), 0);
	ck_assert_mem_eq(back, t, 10 * sizeof(int32_t));

	/* Writes and appends on the fork leave the parent's bytes alone. */
	snapshot(&f, p, snap);
	write_all(&f, c, 2, 8, 10); /* its private partial block */
	ck_assert_int_eq(kvfpga_kvseq_append(c, t + 10, 3, NULL), 0);
	write_all(&f, c, 2, 10, 13);
	write_all(&f, c, 2, 2, 3); /* shared block 0: copied first */
	ck_assert_int_ne(block_at(c, 0), block_at(p, 0));
	ck_assert_int_eq(block_at(c, 1), block_at(p, 1));
	assert_same_bytes(&f, p, snap);
	check_all(&f, p, 1, 0, 10);
	check_all(&f, c, 1, 0, 2);
	check_all(&f, c, 2, 2, 3);
	check_all(&f, c, 1, 3, 8);
	check_all(&f, c, 2, 8, 13);
	ck_assert_int_eq(kvfpga_kvseq_tokens(p, 0, 10, back), 0);
	ck_assert_mem_eq(back, t, 10 * sizeof(int32_t));

	/* And writes on the parent leave the fork alone. */
	snapshot(&f, c, snap);
	row_of(&f, 3, 5, 1, 0, k);
	row_of(&f, 3, 5, 1, 1, v);
	ck_assert_int_eq(kvfpga_kvseq_write(p, 1, 5, k, v), 0); /* shared block 1 */
	ck_assert_int_ne(block_at(c, 1), block_at(p, 1));
	assert_same_bytes(&f, c, snap);
	ck_assert_int_eq(kvfpga_kvseq_read(p, 1, 5, k, NULL), 0);
	ck_assert(k[3] == val(3, 5, 1, 0, 0, 3));
	ck_assert_uint_eq(stats_of(&f).cow_copies, 3);

	/* Forking a block-aligned sequence shares everything. */
	struct kvfpga_kvseq *a, *b;

	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, 8, NULL), 0);
	write_all(&f, a, 4, 0, 8);
	ck_assert_int_eq(kvfpga_kvseq_fork(a, &b), 0);
	ck_assert_uint_eq(stats_of(&f).cow_copies, 3);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t + 8, 1, NULL), 0);
	ck_assert_uint_eq(n_blocks_of(a), 2);
	ck_assert_uint_eq(n_blocks_of(b), 3);
	kvfpga_kvseq_free(p); /* the fork lives on */
	check_all(&f, c, 1, 3, 5);
	check_all(&f, c, 2, 8, 13);
	kvfpga_kvseq_free(a);
	check_all(&f, b, 4, 0, 8);
	ck_assert_int_eq(kvfpga_kvcache_verify(f.kc), 0);
	kvfpga_kvseq_free(b);
	kvfpga_kvseq_free(c);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 12);
	fx_close(&f);
}
END_TEST

/* ---- prefix caching ---- */

START_TEST(test_prefix_hit_after_free)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b;
	struct kvfpga_kvseq_info info;
	struct kvfpga_kvcache_stats st;
	int32_t t[14], ta[4];
	uint32_t cached = 0;

	fx_open(&f, 2, 2, 4, 4, _i ? KVFPGA_KVCACHE_F32 : KVFPGA_KVCACHE_F16, 8, 0);
	make_tokens(t, 14, 1000);
	ck_assert_uint_eq(lookup(&f, 7, t, 14), 0);
	a = computed_seq(&f, 7, t, 14, 1);
	ck_assert_int_eq(kvfpga_kvseq_block_table(a, ta, 4, &cached), 0);
	st = stats_of(&f);
	ck_assert_uint_eq(st.blocks_published, 3);
	ck_assert_uint_eq(st.prefix_hit_blocks, 0);
	ck_assert_uint_eq(st.prefix_miss_blocks, 3);
	ck_assert_uint_eq(st.prefix_miss_tokens, 14);
	ck_assert_uint_eq(lookup(&f, 7, t, 14), 12);
	ck_assert_uint_eq(lookup(&f, 7, t, 13), 12);
	ck_assert_uint_eq(lookup(&f, 7, t, 12), 8); /* the last token is left to compute */
	ck_assert_uint_eq(lookup(&f, 7, t, 1), 0);
	ck_assert_uint_eq(lookup(&f, 7, t, 0), 0);
	ck_assert_uint_eq(lookup(&f, 8, t, 14), 0); /* other salt */
	st = stats_of(&f);
	ck_assert_uint_eq(st.prefix_miss_blocks, 3); /* lookups count nothing */
	kvfpga_kvseq_free(a);
	st = stats_of(&f);
	ck_assert_uint_eq(st.blocks_cached, 3);
	ck_assert_uint_eq(st.blocks_used, 0);
	ck_assert_uint_eq(st.blocks_free, 5);
	ck_assert_uint_eq(lookup(&f, 7, t, 14), 12);

	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 7, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 14, &cached), 0);
	ck_assert_uint_eq(cached, 12);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_int_eq(block_at(b, i), ta[i]);
	ck_assert_int_eq(kvfpga_kvseq_get_info(b, &info), 0);
	ck_assert_uint_eq(info.len, 14);
	ck_assert_uint_eq(info.committed, 12);
	check_all(&f, b, 1, 0, 12);
	ck_assert_int_eq(kvfpga_kvseq_write(b, 0, 11, (float[8]){ 0 }, NULL), -EPERM);
	write_all(&f, b, 1, 12, 14);
	check_all(&f, b, 1, 0, 14);
	st = stats_of(&f);
	ck_assert_uint_eq(st.prefix_hit_blocks, 3);
	ck_assert_uint_eq(st.prefix_hit_tokens, 12);
	ck_assert_uint_eq(st.prefix_miss_blocks, 3);
	ck_assert_uint_eq(st.prefix_miss_tokens, 16);
	ck_assert_uint_eq(st.blocks_cached, 0);
	ck_assert_uint_eq(st.blocks_used, 4);

	/* A diverging prompt reuses the common full blocks only. */
	int32_t u[14];
	struct kvfpga_kvseq *c;

	memcpy(u, t, sizeof(u));
	u[9] = -5;
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 7, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(c, u, 14, &cached), 0);
	ck_assert_uint_eq(cached, 8);
	ck_assert_int_eq(block_at(c, 1), ta[1]);
	ck_assert_int_ne(block_at(c, 2), ta[2]);
	kvfpga_kvseq_free(c);
	kvfpga_kvseq_free(b);
	fx_close(&f);
}
END_TEST

/* A sequence whose committed tokens fill published blocks picks up cached continuations. */
START_TEST(test_prefix_multi_turn)
{
	struct fx f;
	struct kvfpga_kvseq *a, *d;
	int32_t t[14];
	uint32_t cached = 0;

	fx_open(&f, 1, 1, 4, 4, KVFPGA_KVCACHE_F32, 12, 0);
	make_tokens(t, 14, 50);
	a = computed_seq(&f, 0, t, 14, 1);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &d), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(d, t, 8, &cached), 0);
	ck_assert_uint_eq(cached, 4);
	int32_t own = block_at(d, 1);

	write_all(&f, d, 1, 4, 8);
	ck_assert_int_eq(kvfpga_kvseq_commit(d, 8), 0);
	/* Its block 1 equals a's: replaced by the cached one, its own freed. */
	ck_assert_int_eq(block_at(d, 1), block_at(a, 1));
	ck_assert_int_ne(block_at(d, 1), own);
	/* Next turn: block 2 is cached too. */
	ck_assert_int_eq(kvfpga_kvseq_append(d, t + 8, 6, &cached), 0);
	ck_assert_uint_eq(cached, 4);
	ck_assert_int_eq(block_at(d, 2), block_at(a, 2));
	check_all(&f, d, 1, 0, 12);
	/* Not aligned: no reuse. */
	ck_assert_int_eq(kvfpga_kvseq_append(d, t, 9, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	fx_close(&f);
}
END_TEST

/* Two sequences computed the same prompt: the second commit adopts the first one's blocks. */
START_TEST(test_commit_dedup)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b, *b2;
	int32_t t[9];
	uint32_t cached;

	fx_open(&f, 1, 2, 2, 4, KVFPGA_KVCACHE_F16, 12, 0);
	make_tokens(t, 9, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, 9, &cached), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 9, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	write_all(&f, a, 1, 0, 9);
	write_all(&f, b, 1, 0, 9);
	ck_assert_int_eq(kvfpga_kvseq_fork(b, &b2), 0); /* b2 shares b's two full blocks */
	ck_assert_int_eq(kvfpga_kvseq_commit(a, 9), 0);
	ck_assert_uint_eq(stats_of(&f).blocks_used, 7); /* 3 + 3 + b2's partial copy */
	/* b's blocks are shared with b2: they stay private. */
	ck_assert_int_eq(kvfpga_kvseq_commit(b, 9), 0);
	ck_assert_int_ne(block_at(b, 0), block_at(a, 0));
	ck_assert_uint_eq(stats_of(&f).blocks_published, 2);
	kvfpga_kvseq_free(b2);
	ck_assert_int_eq(kvfpga_kvseq_commit(b, 9), 0); /* no-op: already committed */
	ck_assert_int_ne(block_at(b, 0), block_at(a, 0));
	kvfpga_kvseq_truncate(b, 8);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t + 8, 1, NULL), 0);
	write_all(&f, b, 1, 8, 9);
	ck_assert_int_eq(kvfpga_kvseq_commit(b, 9), 0);
	ck_assert_int_eq(block_at(b, 0), block_at(a, 0));
	ck_assert_int_eq(block_at(b, 1), block_at(a, 1));
	ck_assert_int_ne(block_at(b, 2), block_at(a, 2));
	ck_assert_uint_eq(stats_of(&f).blocks_used, 4);
	ck_assert_uint_eq(stats_of(&f).blocks_published, 2);
	check_all(&f, b, 1, 0, 9);
	fx_close(&f);
}
END_TEST

START_TEST(test_prefix_caching_disabled)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b;
	int32_t t[12];
	uint32_t cached = 1;

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F32, 8, KVFPGA_KVCACHE_NO_PREFIX_CACHING);
	make_tokens(t, 12, 0);
	a = computed_seq(&f, 0, t, 12, 1);
	ck_assert_uint_eq(stats_of(&f).blocks_published, 0);
	ck_assert_uint_eq(lookup(&f, 0, t, 12), 0);
	kvfpga_kvseq_free(a);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 8);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 12, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	ck_assert_uint_eq(stats_of(&f).prefix_hit_blocks + stats_of(&f).prefix_miss_blocks, 0);
	fx_close(&f);
}
END_TEST

/* LRU across chains, deepest block first within a chain; evicted only when needed. */
START_TEST(test_eviction_order)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b, *c, *d, *e;
	int32_t ta[13], tb[9], tc[9], te[12];
	uint32_t cached;

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F16, 6, 0);
	make_tokens(ta, 13, 100);
	make_tokens(tb, 9, 200);
	make_tokens(tc, 9, 300);
	make_tokens(te, 12, 400);
	a = computed_seq(&f, 0, ta, 13, 1); /* 3 published + partial */
	kvfpga_kvseq_free(a);               /* LRU: a2 a1 a0 */
	b = computed_seq(&f, 0, tb, 9, 2);  /* 3 free blocks, no eviction */
	ck_assert_uint_eq(stats_of(&f).evictions, 0);
	ck_assert_uint_eq(lookup(&f, 0, ta, 13), 12);
	kvfpga_kvseq_free(b); /* LRU: a2 a1 a0 b1 b0 */
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 5);

	/* 3 blocks: the free one, then a2 and a1. */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(c, tc, 9, &cached), 0);
	ck_assert_uint_eq(stats_of(&f).evictions, 2);
	ck_assert_uint_eq(lookup(&f, 0, ta, 13), 4);
	ck_assert_uint_eq(lookup(&f, 0, tb, 9), 8);

	/* Touch a0 (reuse it), release it: now the most recently used. */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &d), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(d, ta, 5, &cached), 0); /* evicts b1 for token 4 */
	ck_assert_uint_eq(cached, 4);
	ck_assert_uint_eq(stats_of(&f).evictions, 3);
	ck_assert_uint_eq(lookup(&f, 0, tb, 9), 4);
	kvfpga_kvseq_free(d); /* LRU: b0 a0 */
	kvfpga_kvseq_free(c); /* c's blocks were never committed: freed */
	ck_assert_uint_eq(stats_of(&f).blocks_free, 4);
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 2);

	/* 5 blocks: 4 free, then b0; a0 survives. */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &e), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(e, te, 12, &cached), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(e, te, 5, &cached), 0);
	ck_assert_uint_eq(stats_of(&f).evictions, 4);
	ck_assert_uint_eq(lookup(&f, 0, tb, 9), 0);
	ck_assert_uint_eq(lookup(&f, 0, ta, 13), 4);
	fx_close(&f);
}
END_TEST

/* ---- out of memory ---- */

struct frozen {
	struct kvfpga_kvcache_stats st;
	struct kvfpga_kvseq_info info;
	int32_t table[64];
	uint32_t nb;
};

static void freeze(struct fx *f, const struct kvfpga_kvseq *s, struct frozen *z)
{
	memset(z, 0, sizeof(*z));
	z->st = stats_of(f);
	ck_assert_int_eq(kvfpga_kvseq_get_info(s, &z->info), 0);
	ck_assert_int_eq(kvfpga_kvseq_block_table(s, z->table, 64, &z->nb), 0);
}

static void assert_unchanged(struct fx *f, const struct kvfpga_kvseq *s, const struct frozen *z)
{
	struct frozen now;

	freeze(f, s, &now);
	ck_assert_mem_eq(&now.st, &z->st, sizeof(now.st));
	ck_assert_mem_eq(&now.info, &z->info, sizeof(now.info));
	ck_assert_uint_eq(now.nb, z->nb);
	ck_assert_mem_eq(now.table, z->table, sizeof(now.table));
	ck_assert_int_eq(kvfpga_kvcache_verify(f->kc), 0);
}

START_TEST(test_enospc_nothing_changes)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b, *fa, *out = NULL;
	struct frozen za, zb;
	int32_t t[40];
	float row[4] = { 1, 2, 3, 4 };

	fx_open(&f, 1, 1, 4, 4, KVFPGA_KVCACHE_F32, 4, 0);
	make_tokens(t, 40, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, 16, NULL), 0);
	write_all(&f, a, 1, 0, 16);

	freeze(&f, b, &zb);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 1, NULL), -ENOSPC);
	assert_unchanged(&f, b, &zb);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 17, NULL), -ENOSPC); /* beyond the arena */
	assert_unchanged(&f, b, &zb);
	freeze(&f, a, &za);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, 1, NULL), -ENOSPC);
	assert_unchanged(&f, a, &za);

	/* A block-aligned fork needs no block; a partial one does. */
	ck_assert_int_eq(kvfpga_kvseq_fork(a, &fa), 0);
	ck_assert_int_eq(kvfpga_kvseq_truncate(a, 15), 0);
	freeze(&f, a, &za);
	ck_assert_int_eq(kvfpga_kvseq_fork(a, &out), -ENOSPC);
	ck_assert_ptr_null(out);
	assert_unchanged(&f, a, &za);
	/* Copy-on-write of a shared block needs one too (bulk write: all or nothing). */
	ck_assert_int_eq(kvfpga_kvseq_write(a, 0, 14, row, row), -ENOSPC);
	ck_assert_int_eq(kvfpga_kvseq_write_range(a, 0, 10, 5, row, row, 0), -ENOSPC);
	assert_unchanged(&f, a, &za);
	check_all(&f, a, 1, 0, 15);
	check_all(&f, fa, 1, 0, 16);

	/* Recovery. */
	kvfpga_kvseq_free(fa);
	ck_assert_int_eq(kvfpga_kvseq_write(a, 0, 14, row, row), 0);
	ck_assert_int_eq(kvfpga_kvseq_truncate(a, 8), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 8, NULL), 0);
	write_all(&f, b, 2, 0, 8);
	check_all(&f, b, 2, 0, 8);
	check_all(&f, a, 1, 0, 8);
	fx_close(&f);
}
END_TEST

/* Blocks being reused cannot also be evicted to make room for the rest. */
START_TEST(test_enospc_with_reuse)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b, *c;
	struct frozen zb;
	int32_t t[17], other[4] = { -1, -2, -3, -4 };
	uint32_t cached = 99;

	fx_open(&f, 1, 1, 4, 4, KVFPGA_KVCACHE_F32, 5, 0);
	make_tokens(t, 17, 0);
	a = computed_seq(&f, 0, t, 9, 1); /* 2 published + partial */
	kvfpga_kvseq_free(a);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(c, other, 4, NULL), 0); /* holds 1 block */
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 2);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 2);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	freeze(&f, b, &zb);
	/* 17 tokens = 5 blocks: reuses 2, needs 3 more, but only 2 others can be had. */
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 17, &cached), -ENOSPC);
	ck_assert_uint_eq(cached, 99);
	assert_unchanged(&f, b, &zb);
	ck_assert_uint_eq(lookup(&f, 0, t, 17), 8);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 16, &cached), 0);
	ck_assert_uint_eq(cached, 8);
	check_all(&f, b, 1, 0, 8);
	ck_assert_uint_eq(stats_of(&f).blocks_free, 0);
	fx_close(&f);
}
END_TEST

/*
 * A published block whose parent was evicted is not found through the block
 * that replaced its parent, even when the new parent has the same hash: s
 * rewrote block 0 after forking (copy-on-write), the fork published the
 * chain t and went away, block 0 was evicted and reused for tokens d whose
 * first block collides with t's.  Block 1 (held by s) still names block 0
 * as its parent, with the old generation.
 */
START_TEST(test_stale_parent_link)
{
	struct fx f;
	struct kvfpga_kvseq *s, *t2, *u, *v;
	int32_t t[9], d[9];
	uint32_t cached;

	colliding_tokens(COLLIDE_X1, t);
	colliding_tokens(COLLIDE_X2, d);
	make_tokens(t + 4, 5, 20);
	make_tokens(d + 4, 5, 20);
	ck_assert_uint_eq(kvfpga_kvcache_block_hash(0, 0, t, 4),
	                  kvfpga_kvcache_block_hash(0, 0, d, 4));

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F32, 5, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 9, NULL), 0);
	write_all(&f, s, 1, 0, 9);
	ck_assert_int_eq(kvfpga_kvseq_fork(s, &t2), 0);
	int32_t x0 = block_at(s, 0), x1 = block_at(s, 1);

	write_all(&f, s, 1, 0, 1); /* copy-on-write of block 0 */
	ck_assert_int_ne(block_at(s, 0), x0);
	ck_assert_int_eq(kvfpga_kvseq_commit(t2, 8), 0);
	kvfpga_kvseq_free(t2); /* x0 cached (LRU), x1 still held by s */
	ck_assert_uint_eq(stats_of(&f).blocks_cached, 1);
	ck_assert_uint_eq(lookup(&f, 0, t, 9), 8);

	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &v), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(v, d, 1, NULL), 0); /* takes the free block */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &u), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(u, d, 4, &cached), 0);
	ck_assert_uint_eq(stats_of(&f).evictions, 1);
	ck_assert_int_eq(block_at(u, 0), x0);
	write_all(&f, u, 2, 0, 4);
	ck_assert_int_eq(kvfpga_kvseq_commit(u, 4), 0);
	ck_assert_uint_eq(lookup(&f, 0, d, 9), 4); /* d's block 0 only, never x1 */
	ck_assert_uint_eq(lookup(&f, 0, t, 9), 0);
	ck_assert_int_eq(block_at(s, 1), x1);
	fx_close(&f);
}
END_TEST

/* ---- block tables ---- */

START_TEST(test_batch_table)
{
	struct fx f, g;
	struct kvfpga_kvseq *s[3], *foreign;
	int32_t t[20], table[3 * 6], lens[3];

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F16, 16, 0);
	fx_open(&g, 1, 1, 2, 4, KVFPGA_KVCACHE_F16, 4, 0);
	make_tokens(t, 20, 0);
	const uint32_t n[3] = { 20, 0, 5 };

	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(kvfpga_kvseq_create(f.kc, (uint64_t)i, &s[i]), 0);
		ck_assert_int_eq(kvfpga_kvseq_append(s[i], t, n[i], NULL), 0);
	}
	ck_assert_int_eq(kvfpga_kvseq_create(g.kc, 0, &foreign), 0);

	memset(table, 0x55, sizeof(table));
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, s, 3, 4, table, lens), -ERANGE);
	ck_assert_int_eq(table[0], 0x55555555);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, s, 3, 6, table, lens), 0);
	for (int i = 0; i < 3; i++) {
		uint32_t nb = n_blocks_of(s[i]);

		ck_assert_int_eq(lens[i], (int32_t)n[i]);
		for (uint32_t j = 0; j < 6; j++)
			ck_assert_int_eq(table[i * 6 + j], j < nb ? block_at(s[i], j) : -1);
	}
	struct kvfpga_kvseq *mixed[2] = { s[0], foreign };

	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, mixed, 2, 6, table, lens), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(NULL, s, 3, 6, table, lens), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, NULL, 3, 6, table, lens), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, s, 3, 6, NULL, lens), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, s, 3, 6, table, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_kvcache_batch_table(f.kc, s, 0, 6, NULL, NULL), 0);
	fx_close(&g);
	fx_close(&f);
}
END_TEST

/* Destroying the cache frees live sequences (ASan reports any leak). */
START_TEST(test_destroy_with_live_seqs)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b;
	int32_t t[10];

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F16, 8, 0);
	make_tokens(t, 10, 0);
	a = computed_seq(&f, 0, t, 10, 1);
	ck_assert_int_eq(kvfpga_kvseq_fork(a, &b), 0);
	ck_assert_uint_eq(stats_of(&f).n_seqs, 2);
	fx_close(&f);
}
END_TEST

/* ---- hash ---- */

static uint64_t ref_hash(uint64_t parent, uint64_t salt, const int32_t *t, uint32_t n)
{
	uint8_t buf[16 + 4 * 256];

	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(parent >> (8 * i));
		buf[8 + i] = (uint8_t)(salt >> (8 * i));
	}
	for (uint32_t j = 0; j < n; j++)
		for (int i = 0; i < 4; i++)
			buf[16 + 4 * j + i] = (uint8_t)((uint32_t)t[j] >> (8 * i));
	return XXH64(buf, 16 + 4 * (size_t)n, 0);
}

START_TEST(test_block_hash)
{
	int32_t t[256];
	const int32_t odd[4] = { -1, 0, 7, 2147483647 };

	make_tokens(t, 256, 1);
	/* The vectors of docs/kvcache.md (checked with xxhsum -H1 on the serialised bytes). */
	ck_assert_uint_eq(kvfpga_kvcache_block_hash(0, 0, t, 16), 0x08675bf5d7d0fbe4ull);
	ck_assert_uint_eq(kvfpga_kvcache_block_hash(0x0123456789abcdefull, 42, odd, 4),
	                  0x82d4bda6ebff6bfaull);
	for (uint32_t bs = 1; bs <= 256; bs *= 2)
		ck_assert_uint_eq(kvfpga_kvcache_block_hash(99, 3, t, bs), ref_hash(99, 3, t, bs));
	uint64_t h = kvfpga_kvcache_block_hash(1, 2, t, 16);

	ck_assert_uint_ne(h, kvfpga_kvcache_block_hash(0, 2, t, 16));
	ck_assert_uint_ne(h, kvfpga_kvcache_block_hash(1, 3, t, 16));
	t[15]++;
	ck_assert_uint_ne(h, kvfpga_kvcache_block_hash(1, 2, t, 16));
	t[15]--;
	int32_t tmp = t[0];

	t[0] = t[1];
	t[1] = tmp;
	ck_assert_uint_ne(h, kvfpga_kvcache_block_hash(1, 2, t, 16));
}
END_TEST

START_TEST(test_hash_collision_tokens)
{
	struct fx f;
	struct kvfpga_kvseq *sa, *sb, *c;
	int32_t a[5], b[5];
	uint32_t cached;

	colliding_tokens(COLLIDE_X1, a);
	colliding_tokens(COLLIDE_X2, b);
	a[4] = b[4] = 9;
	ck_assert(memcmp(a, b, 4 * sizeof(int32_t)) != 0);
	ck_assert_uint_eq(kvfpga_kvcache_block_hash(0, 0, a, 4),
	                  kvfpga_kvcache_block_hash(0, 0, b, 4));

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F32, 8, 0);
	sa = computed_seq(&f, 0, a, 5, 1);
	ck_assert_uint_eq(lookup(&f, 0, a, 5), 4);
	ck_assert_uint_eq(lookup(&f, 0, b, 5), 0); /* same hash, other tokens */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &sb), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(sb, b, 5, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	write_all(&f, sb, 2, 0, 5);
	ck_assert_int_eq(kvfpga_kvseq_commit(sb, 5), 0); /* published beside a's, not merged */
	ck_assert_int_ne(block_at(sb, 0), block_at(sa, 0));
	ck_assert_uint_eq(stats_of(&f).blocks_published, 2);
	ck_assert_int_eq(kvfpga_kvcache_verify(f.kc), 0);
	kvfpga_kvseq_free(sa);
	kvfpga_kvseq_free(sb);
	/* Each prompt finds its own block and its own K/V. */
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(c, b, 5, &cached), 0);
	ck_assert_uint_eq(cached, 4);
	check_all(&f, c, 2, 0, 4);
	kvfpga_kvseq_free(c);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &c), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(c, a, 5, &cached), 0);
	ck_assert_uint_eq(cached, 4);
	check_all(&f, c, 1, 0, 4);
	fx_close(&f);
}
END_TEST

/* Two salts whose blocks of tokens 1, 2, 3, 4 share an XXH64 hash: namespaces stay apart. */
START_TEST(test_hash_collision_salt)
{
	struct fx f;
	struct kvfpga_kvseq *s1;
	const uint64_t salt1 = 0xc44bc0e310defabbull, salt2 = 0x5fcd1c53f31c7611ull;
	const int32_t t[5] = { 1, 2, 3, 4, 5 };
	uint32_t cached;

	ck_assert_uint_eq(kvfpga_kvcache_block_hash(0, salt1, t, 4),
	                  kvfpga_kvcache_block_hash(0, salt2, t, 4));
	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F16, 8, 0);
	s1 = computed_seq(&f, salt1, t, 5, 1);
	ck_assert_uint_eq(lookup(&f, salt1, t, 5), 4);
	ck_assert_uint_eq(lookup(&f, salt2, t, 5), 0);
	struct kvfpga_kvseq *s2;

	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, salt2, &s2), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s2, t, 5, &cached), 0);
	ck_assert_uint_eq(cached, 0);
	ck_assert_int_ne(block_at(s2, 0), block_at(s1, 0));
	fx_close(&f);
}
END_TEST

/* The published hashes form the documented chain. */
START_TEST(test_hash_chain_links_blocks)
{
	struct fx f;
	struct kvfpga_kvseq *a;
	int32_t t[12];

	fx_open(&f, 1, 1, 2, 4, KVFPGA_KVCACHE_F32, 8, 0);
	make_tokens(t, 12, 0);
	a = computed_seq(&f, 77, t, 12, 1);
	/* verify() recomputes every published block's hash from its parent's. */
	ck_assert_int_eq(kvfpga_kvcache_verify(f.kc), 0);
	/* A chain is found only from its first block: the same tokens later in a prompt miss. */
	int32_t shifted[13];

	shifted[0] = -1;
	memcpy(shifted + 1, t, sizeof(t));
	ck_assert_uint_eq(lookup(&f, 77, shifted, 13), 0);
	ck_assert_uint_eq(lookup(&f, 77, t + 4, 8), 0);
	ck_assert_uint_eq(lookup(&f, 77, t, 12), 8);
	kvfpga_kvseq_free(a);
	fx_close(&f);
}
END_TEST

/* ---- int8 ---- */

static int8_t raw_i8(const struct fx *f, int32_t block, uint32_t layer, uint32_t kv, uint32_t head,
                     uint32_t slot, uint32_t d)
{
	return (int8_t)doc_slice(f, block, layer)[doc_slice_elem(f, kv, head, slot, d)];
}

static float raw_scale(const struct fx *f, int32_t block, uint32_t layer, uint32_t kv,
                       uint32_t head)
{
	const struct kvfpga_kvcache_config *c = &f->cfg;
	uint64_t at = test_i8_scale_offset(c->n_kv_heads, c->block_size, c->head_dim) +
	              ((uint64_t)kv * c->n_kv_heads + head) * 4;
	float s;

	memcpy(&s, doc_slice(f, block, layer) + at, 4);
	return s;
}

/* The int8 sizes of the cache in @f, each worked out by hand at the call. */
static void check_i8_sizes(const struct fx *f, uint64_t scale_offset, uint64_t slice,
                           uint64_t block, uint64_t layer, uint64_t arena, uint64_t per_token)
{
	ck_assert_uint_eq(f->lay.elem_size, 1);
	ck_assert_uint_eq(f->lay.scale_offset, scale_offset);
	ck_assert_uint_eq(f->lay.slice_bytes, slice);
	ck_assert_uint_eq(f->lay.block_bytes, block);
	ck_assert_uint_eq(f->lay.layer_bytes, layer);
	ck_assert_uint_eq(f->lay.arena_bytes, arena);
	ck_assert_uint_eq(f->lay.bytes_per_token, per_token);
}

START_TEST(test_i8_layout)
{
	struct fx f;

	/*
	 * 1 layer, 3 heads, head_dim 3, block_size 2, 4 blocks: slice data
	 * 2 * 3 * 2 * 3 = 36 bytes, scales at 48 (2 * 3 floats, 24 bytes), slice
	 * 48 + 24 = 72 -> 80; block 1 * 80, layer 4 * 80 = 320, arena 1 * 320,
	 * 80 / 2 = 40 bytes per token.
	 */
	fx_open(&f, 1, 3, 3, 2, KVFPGA_KVCACHE_I8, 4, 0);
	ck_assert_uint_eq(f.lay.head_stride, 6);
	ck_assert_uint_eq(f.lay.kv_stride, 18);
	check_i8_sizes(&f, 48, 80, 80, 320, 320, 40);
	fx_close(&f);
	/*
	 * The same with 2 layers: every slice has its own scales, so the block is
	 * 2 * 80 = 160 (block-major it was 72 data, scales at 80, 128), layer
	 * 320, arena 2 * 320 = 640, 160 / 2 = 80 bytes per token.
	 */
	fx_open(&f, 2, 3, 3, 2, KVFPGA_KVCACHE_I8, 4, 0);
	check_i8_sizes(&f, 48, 80, 160, 320, 640, 80);
	fx_close(&f);
	/*
	 * Already aligned data, scales right after it: 2 layers, 2 heads,
	 * head_dim 4, block_size 4: data 2 * 2 * 4 * 4 = 64, scales at 64 (4
	 * floats, 16 bytes), slice 80, block 160, layer 4 * 80 = 320, arena 640,
	 * 160 / 4 = 40 bytes per token.
	 */
	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_I8, 4, 0);
	check_i8_sizes(&f, 64, 80, 160, 320, 640, 40);
	fx_close(&f);
	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_F16, 4, 0);
	ck_assert_uint_eq(f.lay.scale_offset, 0);
	fx_close(&f);
}
END_TEST

/* Multiples of 1/8 with one element of magnitude 127/8 per head: scale 1/8, exact. */
START_TEST(test_i8_exact_values)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	int32_t t[7];
	float k[2 * 4], v[2 * 4], back_k[8], back_v[8];

	fx_open(&f, 2, 2, 4, 4, KVFPGA_KVCACHE_I8, 4, 0);
	make_tokens(t, 7, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 7, NULL), 0);
	for (uint32_t p = 0; p < 7; p++)
		for (uint32_t l = 0; l < 2; l++) {
			for (uint32_t e = 0; e < 8; e++) {
				int q = (int)((p * 37 + l * 11 + e * 5) % 255) - 127;

				k[e] = (e % 4 == 0) ? 15.875f : (float)q / 8.0f;
				v[e] = (e % 4 == 0) ? -15.875f : (float)-q / 8.0f;
			}
			ck_assert_int_eq(kvfpga_kvseq_write(s, l, p, k, v), 0);
			ck_assert_int_eq(kvfpga_kvseq_read(s, l, p, back_k, back_v), 0);
			ck_assert_mem_eq(back_k, k, sizeof(k));
			ck_assert_mem_eq(back_v, v, sizeof(v));
			/* Raw bytes at the documented offsets. */
			int32_t b = block_at(s, p / 4);

			for (uint32_t h = 0; h < 2; h++) {
				ck_assert(raw_scale(&f, b, l, 0, h) == 0.125f);
				ck_assert(raw_scale(&f, b, l, 1, h) == 0.125f);
				for (uint32_t d = 0; d < 4; d++) {
					ck_assert_int_eq(raw_i8(&f, b, l, 0, h, p % 4, d),
					                 (int)(k[h * 4 + d] * 8));
					ck_assert_int_eq(raw_i8(&f, b, l, 1, h, p % 4, d),
					                 (int)(v[h * 4 + d] * 8));
				}
			}
		}
	fx_close(&f);
}
END_TEST

/* A larger row doubles the head's scale and requantises the block's earlier rows. */
START_TEST(test_i8_requantize)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	int32_t t[3] = { 1, 2, 3 };
	const float small[4] = { 1.0f, -0.5f, 0.3f, 0.01f };
	const float big[4] = { 100.0f, -37.0f, 0.4f, 99.0f };
	float k[8], back[8];

	fx_open(&f, 1, 2, 4, 4, KVFPGA_KVCACHE_I8, 4, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 3, NULL), 0);
	int32_t b = block_at(s, 0);

	/* Head 0 gets small then big rows, head 1 small ones only. */
	memcpy(k, small, sizeof(small));
	memcpy(k + 4, small, sizeof(small));
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 0, k, NULL), 0);
	ck_assert(raw_scale(&f, b, 0, 0, 0) == 1.0f / 127.0f);
	ck_assert(raw_scale(&f, b, 0, 1, 0) == 0.0f); /* V untouched */
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 0, back, NULL), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_float_le(fabsf(back[i] - k[i]), 0.5f / 127.0f * 1.0001f);

	memcpy(k, big, sizeof(big));
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 2, k, NULL), 0);
	/* 1/127 doubled until 127 * scale >= 100: 128/127. */
	const float grown = 128.0f / 127.0f;

	ck_assert(raw_scale(&f, b, 0, 0, 0) == grown);
	ck_assert(raw_scale(&f, b, 0, 0, 1) == 1.0f / 127.0f);
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 2, back, NULL), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_float_le(fabsf(back[i] - big[i]), 0.5f * grown * 1.0001f);
	for (int i = 4; i < 8; i++)
		ck_assert_float_le(fabsf(back[i] - small[i - 4]), 0.5f / 127.0f * 1.0001f);
	/* Position 0, head 0: requantised once, within one step. */
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 0, back, NULL), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_float_le(fabsf(back[i] - small[i]), grown);
	ck_assert_int_eq(raw_i8(&f, b, 0, 0, 0, 0, 0), 1);  /* 127 / 128 rounds to 1 */
	ck_assert_int_eq(raw_i8(&f, b, 0, 0, 0, 2, 0), 99); /* 100 * 127 / 128 = 99.2 */
	ck_assert_int_eq(raw_i8(&f, b, 0, 0, 0, 2, 3), 98); /* 99 * 127 / 128 = 98.2 */

	/* Many growing rows: every value stays within one final step. */
	struct kvfpga_kvseq *g;
	int32_t gt[4] = { 1, 2, 3, 4 };
	float rowsv[4][8];

	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &g), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(g, gt, 4, NULL), 0);
	for (int p = 0; p < 4; p++) {
		for (int i = 0; i < 8; i++)
			rowsv[p][i] = (float)((p * 8 + i) % 7 - 3) * (float)(1 << (3 * p)) * 0.37f;
		ck_assert_int_eq(kvfpga_kvseq_write(g, 0, (uint32_t)p, rowsv[p], NULL), 0);
	}
	int32_t gb = block_at(g, 0);

	for (int p = 0; p < 4; p++) {
		ck_assert_int_eq(kvfpga_kvseq_read(g, 0, (uint32_t)p, back, NULL), 0);
		for (int i = 0; i < 8; i++)
			ck_assert_float_le(fabsf(back[i] - rowsv[p][i]),
			                   raw_scale(&f, gb, 0, 0, (uint32_t)i / 4));
	}
	fx_close(&f);
}
END_TEST

/* A reused block starts with zero scales: no precision lost to its last user's values. */
START_TEST(test_i8_fresh_block_scales)
{
	struct fx f;
	struct kvfpga_kvseq *a, *b;
	int32_t t[1] = { 5 };
	float big[2] = { 1000.0f, -1000.0f }, small[2] = { 0.002f, -0.001f }, back[2];

	/* Two layers: the scales of every slice of the block are reset. */
	fx_open(&f, 2, 1, 2, 4, KVFPGA_KVCACHE_I8, 1, KVFPGA_KVCACHE_NO_PREFIX_CACHING);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &a), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(a, t, 1, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(a, 0, 0, big, big), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(a, 1, 0, big, big), 0);
	int32_t blk = block_at(a, 0);

	for (uint32_t l = 0; l < 2; l++)
		for (uint32_t kv = 0; kv < 2; kv++)
			ck_assert(raw_scale(&f, blk, l, kv, 0) == 1000.0f / 127.0f);
	kvfpga_kvseq_free(a);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &b), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(b, t, 1, NULL), 0);
	ck_assert_int_eq(block_at(b, 0), blk);
	for (uint32_t l = 0; l < 2; l++)
		for (uint32_t kv = 0; kv < 2; kv++)
			ck_assert_msg(raw_scale(&f, blk, l, kv, 0) == 0.0f,
			              "layer %u kv %u: the last user's scale", l, kv);
	ck_assert_int_eq(kvfpga_kvseq_write(b, 1, 0, small, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_read(b, 1, 0, back, NULL), 0);
	ck_assert_float_le(fabsf(back[0] - small[0]), 0.5f * 0.002f / 127.0f * 1.0001f);
	ck_assert_float_le(fabsf(back[1] - small[1]), 0.5f * 0.002f / 127.0f * 1.0001f);
	fx_close(&f);
}
END_TEST

START_TEST(test_i8_nonfinite)
{
	struct fx f;
	struct kvfpga_kvseq *s;
	int32_t t[1] = { 5 };
	float k[4] = { NAN, INFINITY, -INFINITY, 2.0f }, back[4];

	fx_open(&f, 1, 1, 4, 4, KVFPGA_KVCACHE_I8, 1, 0);
	ck_assert_int_eq(kvfpga_kvseq_create(f.kc, 0, &s), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(s, t, 1, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_write(s, 0, 0, k, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_read(s, 0, 0, back, NULL), 0);
	ck_assert(raw_scale(&f, block_at(s, 0), 0, 0, 0) == 2.0f / 127.0f);
	ck_assert(back[0] == 0.0f);
	ck_assert(back[1] == 127.0f * (2.0f / 127.0f));
	ck_assert(back[2] == -127.0f * (2.0f / 127.0f));
	ck_assert(back[3] == back[1]);
	fx_close(&f);
}
END_TEST

/* ---- binary16 conversion ---- */

static float f_of_bits(uint32_t b)
{
	float x;

	memcpy(&x, &b, 4);
	return x;
}

START_TEST(test_f16_roundtrip_all)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float x = kvfpga_kvcache_f16_to_f32((uint16_t)h);
		uint16_t back = kvfpga_kvcache_f16_from_f32(x);

		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
			/* Still a quiet NaN of the same sign. */
			EXPECT(isnan(x) && (back & 0x7e00) == 0x7e00 &&
			               (back & 0x8000) == (h & 0x8000),
			       "NaN 0x%04x -> 0x%04x", h, back);
		} else {
			EXPECT(back == h, "0x%04x -> %a -> 0x%04x", h, x, back);
		}
	}
}
END_TEST

START_TEST(test_f16_specials)
{
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0.0f), 0x0000);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(-0.0f), 0x8000);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(1.0f), 0x3c00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(-2.0f), 0xc000);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(65504.0f), 0x7bff);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(65519.996f), 0x7bff);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(65520.0f), 0x7c00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(1e10f), 0x7c00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(-INFINITY), 0xfc00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(FLT_MAX), 0x7c00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(NAN) & 0x7e00, 0x7e00);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x1p-14f), 0x0400); /* smallest normal */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x1p-24f), 0x0001); /* smallest subnormal */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x1p-25f), 0x0000); /* tie -> even 0 */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x1.000002p-25f), 0x0001);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x3p-25f), 0x0002); /* 1.5 ulp: tie -> 2 */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x5p-25f), 0x0002); /* 2.5 ulp: tie -> 2 */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(0x7ffp-25f),
	                  0x0400); /* 1023.5: up to normal */
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(FLT_MIN), 0x0000);
	ck_assert_uint_eq(kvfpga_kvcache_f16_from_f32(-0x1p-149f), 0x8000);
	ck_assert(kvfpga_kvcache_f16_to_f32(0x0001) == 0x1p-24f);
	ck_assert(kvfpga_kvcache_f16_to_f32(0x7bff) == 65504.0f);
	ck_assert(kvfpga_kvcache_f16_to_f32(0xfc00) == -INFINITY);
	ck_assert(signbit(kvfpga_kvcache_f16_to_f32(0x8000)));
}
END_TEST

/* Every tie between neighbouring halves goes to the even one, and one float ulp either side goes to
 * the nearer one. */
START_TEST(test_f16_ties_to_even)
{
	for (uint32_t h = 0; h < 0x7bff; h++) {
		for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
			float lo = kvfpga_kvcache_f16_to_f32((uint16_t)(h | sign));
			float hi = kvfpga_kvcache_f16_to_f32((uint16_t)((h + 1) | sign));
			float mid = (lo + hi) / 2; /* exact: 12 significant bits */
			uint16_t even = (uint16_t)(((h & 1) ? h + 1 : h) | sign);

			EXPECT(kvfpga_kvcache_f16_from_f32(mid) == even, "tie after 0x%04x",
			       h | sign);
			EXPECT(kvfpga_kvcache_f16_from_f32(nextafterf(mid, lo)) == (h | sign),
			       "below the tie after 0x%04x", h | sign);
			EXPECT(kvfpga_kvcache_f16_from_f32(nextafterf(mid, hi)) == ((h + 1) | sign),
			       "above the tie after 0x%04x", h | sign);
		}
	}
}
END_TEST

/* Random floats: the result is a nearest half (checked against its neighbours in double). */
START_TEST(test_f16_random_nearest)
{
	uint64_t state = 12345;

	for (int i = 0; i < 1000000; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		/* Exponents around the binary16 range. */
		uint32_t bits = (uint32_t)(state >> 32);
		uint32_t exp = 96 + (uint32_t)((state >> 20) % 50);

		bits = (bits & 0x807fffffu) | (exp << 23);
		float x = f_of_bits(bits);
		uint16_t h = kvfpga_kvcache_f16_from_f32(x);
		double err = fabs((double)kvfpga_kvcache_f16_to_f32(h) - x);

		if (fabs(x) >= 65520.0) {
			EXPECT((h & 0x7fff) == 0x7c00, "%a -> 0x%04x", x, h);
			continue;
		}
		EXPECT((h & 0x7fff) != 0x7c00, "%a -> 0x%04x", x, h);
		if ((h & 0x7fff) != 0x7bff) {
			double up = fabs((double)kvfpga_kvcache_f16_to_f32((uint16_t)(h + 1)) - x);

			EXPECT(err <= up, "%a -> 0x%04x", x, h);
		}
		if ((h & 0x7fff) != 0) {
			double down =
			        fabs((double)kvfpga_kvcache_f16_to_f32((uint16_t)(h - 1)) - x);

			EXPECT(err <= down, "%a -> 0x%04x", x, h);
		}
#if defined(__FLT16_MAX__) && defined(__GNUC__) && !defined(__clang__)
		_Float16 ref = (_Float16)x;
		uint16_t rb;

		memcpy(&rb, &ref, 2);
		EXPECT(h == rb, "%a -> 0x%04x, _Float16 0x%04x", x, h, rb);
#endif
	}
}
END_TEST

static Suite *kvcache_suite(void)
{
	Suite *s = suite_create("kvcache");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_create_bad_args);
	tcase_add_test(tc, test_capacity_from_bytes);
	tcase_add_loop_test(tc, test_layout_strides, 0, 2);
	tcase_add_loop_test(tc, test_layout_offsets, 0, 2);
	tcase_add_test(tc, test_layout_doc_example);
	tcase_add_loop_test(tc, test_layer_runs_contiguous, 0, 2);
	tcase_add_loop_test(tc, test_append_sorts_new_blocks, 0,
	                    (int)KVFPGA_KVCACHE_NO_PREFIX_CACHING + 1);
	tcase_add_test(tc, test_append_basic);
	tcase_add_test(tc, test_seq_bad_args);
	tcase_add_test(tc, test_write_range_stride);
	tcase_add_loop_test(tc, test_write_range_blocks, 0, 3);
	tcase_add_test(tc, test_f16_storage_rounds);
	tcase_add_test(tc, test_commit_rules);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_truncate_into_published);
	tcase_add_test(tc, test_fork_cow);
	tcase_add_loop_test(tc, test_prefix_hit_after_free, 0, 2);
	tcase_add_test(tc, test_prefix_multi_turn);
	tcase_add_test(tc, test_commit_dedup);
	tcase_add_test(tc, test_prefix_caching_disabled);
	tcase_add_test(tc, test_eviction_order);
	tcase_add_test(tc, test_enospc_nothing_changes);
	tcase_add_test(tc, test_enospc_with_reuse);
	tcase_add_test(tc, test_stale_parent_link);
	tcase_add_test(tc, test_batch_table);
	tcase_add_test(tc, test_destroy_with_live_seqs);
	tcase_add_test(tc, test_block_hash);
	tcase_add_test(tc, test_hash_chain_links_blocks);
	tcase_add_test(tc, test_hash_collision_tokens);
	tcase_add_test(tc, test_hash_collision_salt);
	tcase_add_test(tc, test_i8_layout);
	tcase_add_test(tc, test_i8_exact_values);
	tcase_add_test(tc, test_i8_requantize);
	tcase_add_test(tc, test_i8_fresh_block_scales);
	tcase_add_test(tc, test_i8_nonfinite);
	tcase_add_test(tc, test_f16_roundtrip_all);
	tcase_add_test(tc, test_f16_specials);
	tcase_add_test(tc, test_f16_ties_to_even);
	tcase_add_test(tc, test_f16_random_nearest);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kvcache_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
