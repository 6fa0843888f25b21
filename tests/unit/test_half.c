/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of lib/half.c, the library's one binary16 <-> binary32
 * conversion: the scalar definition against an independent reference
 * (double arithmetic, and GCC's _Float16 where it exists), both row paths
 * (portable, F16C) bit-exact against the scalar for every half, swept and
 * random floats, lengths 0..67 at misaligned addresses, under other MXCSR
 * settings, the dispatch, and the KV cache's stored bytes.
 * KVFPGA_TEST_SEED replays the random parts (the seed is in every failure message).
 */
#include <check.h>
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "../../lib/half_internal.h"
#include "helpers/test_seed.h"
#include "helpers/test_util.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

/* GCC's _Float16 on x86-64 (without F16C: libgcc's soft-float conversions) as a second reference.
 */
#if defined(__FLT16_MAX__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_FLOAT16 1
#endif

static uint64_t g_seed;

static uint32_t bits_of(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	return x;
}

static float float_of(uint32_t x)
{
	float f;

	memcpy(&f, &x, sizeof(f));
	return f;
}

/* ---- independent reference: the value in double, rounded by the FPU (round to nearest even) ----
 */

static float ref_f16_to_f32(uint16_t h)
{
	uint32_t sign = h & 0x8000u, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	double v;

	if (exp == 31) {
		if (!mant)
			return sign ? -INFINITY : INFINITY;
		/* NaN: quiet, sign and the 10 payload bits on top of the float's payload. */
		return float_of((sign << 16) | 0x7fc00000u | (mant << 13));
	}
	v = exp ? ldexp(1024.0 + mant, (int)exp - 25) : ldexp((double)mant, -24);
	return (float)(sign ? -v : v); /* exact */
}

static uint16_t ref_f32_to_f16(float f)
{
	uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000u;
	double a = fabs((double)f), q;
	int e;

	if (isnan(f))
		return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
	if (a < 0x1p-14) {
		/* Units of 2^-24 (exact scaling); 1024 is the smallest normal's bit pattern too. */
		q = nearbyint(a * 0x1p24);
		return (uint16_t)(sign | (uint32_t)q);
	}
	if (isinf(f) || a >= 0x1p16)
		return (uint16_t)(sign | 0x7c00u);
	frexp(a, &e);                    /* a in [2^(e-1), 2^e) */
	q = nearbyint(ldexp(a, 11 - e)); /* 11 significant bits: [1024, 2048] */
	/* q == 2048 carries into the exponent; exponent 31 is Inf. */
	x = (uint32_t)(e - 1 + 15) * 1024u + (uint32_t)q - 1024u;
	if (x >= 0x7c00u)
		x = 0x7c00u;
	return (uint16_t)(sign | x);
}

/* Floats a conversion must get right, with what it must give. */
static const struct {
	uint32_t f32;
	uint16_t f16;
} edge_cases[] = {
	{ 0x00000000u, 0x0000u }, /* +0 */
	{ 0x80000000u, 0x8000u }, /* -0 */
	{ 0x3f800000u, 0x3c00u }, /* 1 */
	{ 0xc0000000u, 0xc000u }, /* -2 */
	{ 0x477fe000u, 0x7bffu }, /* 65504, the largest half */
	{ 0x477fefffu, 0x7bffu }, /* just below 65520 */
	{ 0x477ff000u, 0x7c00u }, /* 65520: the tie with 2^16 rounds to Inf */
	{ 0x47800000u, 0x7c00u }, /* 2^16 */
	{ 0x7f7fffffu, 0x7c00u }, /* FLT_MAX */
	{ 0xff7fffffu, 0xfc00u }, /* -FLT_MAX */
	{ 0x7f800000u, 0x7c00u }, /* +Inf */
	{ 0xff800000u, 0xfc00u }, /* -Inf */
	{ 0x7fc00000u, 0x7e00u }, /* quiet NaN */
	{ 0xffc00000u, 0xfe00u }, /* negative quiet NaN */
	{ 0x7f800001u, 0x7e00u }, /* signalling NaN, payload below the kept bits: quiet */
	{ 0x7fa00000u, 0x7f00u }, /* signalling NaN with a kept payload bit */
	{ 0x7f802000u, 0x7e01u }, /* the lowest kept payload bit */
	{ 0x7fffffffu, 0x7fffu }, /* every payload bit */
	{ 0xffbfe000u, 0xffffu }, /* negative signalling NaN, all kept bits */
	{ 0x38800000u, 0x0400u }, /* 2^-14, the smallest normal */
	{ 0x387fc000u, 0x03ffu }, /* the largest subnormal */
	{ 0x387fe000u, 0x0400u }, /* tie between it and the smallest normal: even is 0x0400 */
	{ 0x387fdfffu, 0x03ffu }, /* just below that tie */
	{ 0x33800000u, 0x0001u }, /* 2^-24, the smallest subnormal */
	{ 0x33000000u, 0x0000u }, /* 2^-25: tie with 0, even is 0 */
	{ 0x33000001u, 0x0001u }, /* just above it */
	{ 0xb3000000u, 0x8000u }, /* -2^-25 -> -0 */
	{ 0x33c00000u, 0x0002u }, /* 1.5 * 2^-24: tie, even is 2 */
	{ 0x34200000u, 0x0002u }, /* 2.5 * 2^-24: tie, even is 2 */
	{ 0x00800000u, 0x0000u }, /* FLT_MIN */
	{ 0x00000001u, 0x0000u }, /* the smallest float subnormal */
	{ 0x80000001u, 0x8000u }, /* its negative */
	{ 0x3f801000u, 0x3c00u }, /* 1 + 2^-11: tie, even is 1 */
	{ 0x3f803000u, 0x3c02u }, /* 1 + 3 * 2^-11: tie, even is 1 + 2^-9 */
	{ 0x3f801001u, 0x3c01u }, /* just above the first tie */
	{ 0x3f800fffu, 0x3c00u }, /* just below it */
	{ 0x3fffffffu, 0x4000u }, /* rounds up into the next binade */
};

#define N_EDGE (sizeof(edge_cases) / sizeof(edge_cases[0]))

/* ---- the scalar definition ---- */

START_TEST(test_scalar_every_half)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float got = kvfh_f16_to_f32((uint16_t)h), want = ref_f16_to_f32((uint16_t)h);
		int nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
		uint16_t back = kvfh_f32_to_f16(got);

		EXPECT(bits_of(got) == bits_of(want), "f16 0x%04x -> 0x%08x, want 0x%08x", h,
		       bits_of(got), bits_of(want));
		/* Back: the same half; a NaN comes back quiet (0x200) with its sign and payload. */
		EXPECT(back == (nan ? (h | 0x200u) : h), "f16 0x%04x -> f32 -> 0x%04x", h, back);
#ifdef HAVE_FLOAT16
		{
			uint16_t hb = (uint16_t)h;
			_Float16 x;
			float r;

			memcpy(&x, &hb, 2);
			r = (float)x;
			EXPECT(bits_of(got) == bits_of(r), "f16 0x%04x -> 0x%08x, _Float16 0x%08x",
			       h, bits_of(got), bits_of(r));
		}
#endif
	}
}
END_TEST

START_TEST(test_scalar_edge_cases)
{
	for (size_t i = 0; i < N_EDGE; i++) {
		float f = float_of(edge_cases[i].f32);

		ck_assert_msg(kvfh_f32_to_f16(f) == edge_cases[i].f16,
		              "0x%08x -> 0x%04x, want 0x%04x", edge_cases[i].f32,
		              kvfh_f32_to_f16(f), edge_cases[i].f16);
		ck_assert_msg(ref_f32_to_f16(f) == edge_cases[i].f16,
		              "reference: 0x%08x -> 0x%04x, want 0x%04x", edge_cases[i].f32,
		              ref_f32_to_f16(f), edge_cases[i].f16);
	}
	/* f16 NaNs read quiet: a signalling half NaN gets bit 22. */
	ck_assert_uint_eq(bits_of(kvfh_f16_to_f32(0x7c01u)), 0x7fc02000u);
	ck_assert_uint_eq(bits_of(kvfh_f16_to_f32(0xfd55u)), 0xffeaa000u);
	ck_assert_uint_eq(bits_of(kvfh_f16_to_f32(0x7e00u)), 0x7fc00000u);
	ck_assert_uint_eq(bits_of(kvfh_f16_to_f32(0x8001u)), 0xb3800000u); /* -2^-24 */
	ck_assert_uint_eq(bits_of(kvfh_f16_to_f32(0x8000u)), 0x80000000u);
}
END_TEST

/*
 * Every tie between neighbouring halves and one float ulp either side, and
 * random floats around the binary16 range, against the double reference.
 */
START_TEST(test_scalar_against_reference)
{
	uint64_t rng = g_seed;

	for (uint32_t h = 0; h < 0x7bffu; h++) {
		for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
			float lo = kvfh_f16_to_f32((uint16_t)(h | sign));
			float hi = kvfh_f16_to_f32((uint16_t)((h + 1) | sign));
			float mid = (lo + hi) / 2; /* exact: 12 significant bits */
			float probe[3] = { mid, nextafterf(mid, lo), nextafterf(mid, hi) };

			for (int j = 0; j < 3; j++)
				EXPECT(kvfh_f32_to_f16(probe[j]) == ref_f32_to_f16(probe[j]),
				       "0x%08x -> 0x%04x, reference 0x%04x", bits_of(probe[j]),
				       kvfh_f32_to_f16(probe[j]), ref_f32_to_f16(probe[j]));
		}
	}
	for (int i = 0; i < 2000000; i++) {
		uint32_t x = (uint32_t)test_rand(&rng);
		float f;

		/* Half the draws near the binary16 range, where rounding matters. */
		if (i & 1)
			x = (x & 0x807fffffu) | ((uint32_t)(96 + test_rand_below(&rng, 50)) << 23);
		f = float_of(x);
		EXPECT(kvfh_f32_to_f16(f) == ref_f32_to_f16(f),
		       "0x%08x -> 0x%04x, reference 0x%04x, seed %llu", x, kvfh_f32_to_f16(f),
		       ref_f32_to_f16(f), (unsigned long long)g_seed);
#ifdef HAVE_FLOAT16
		{
			_Float16 y = (_Float16)f;
			uint16_t yb;

			memcpy(&yb, &y, 2);
			EXPECT(kvfh_f32_to_f16(f) == yb,
			       "0x%08x -> 0x%04x, _Float16 0x%04x, seed %llu", x,
			       kvfh_f32_to_f16(f), yb, (unsigned long long)g_seed);
		}
#endif
	}
}
END_TEST

/* ---- rows: both paths ---- */

static const struct kvfh_ops *const paths[] = { &kvfh_ops_portable, &kvfh_ops_f16c };

/*
 * The row path of loop index @i, or NULL when this CPU cannot run it (then
 * only the dispatch is checked: kvfh_ops_best() must not pick it).
 */
static const struct kvfh_ops *path_or_null(int i)
{
	if (paths[i] == &kvfh_ops_f16c && !kvfh_cpu_has_f16c()) {
		ck_assert_ptr_eq(kvfh_ops_best(), &kvfh_ops_portable);
		fprintf(stderr, "test_half: no F16C/AVX2 on this CPU; its row path not run\n");
		return NULL;
	}
	return paths[i];
}

START_TEST(test_rows_every_half)
{
	const struct kvfh_ops *ops = path_or_null(_i);
	static uint16_t h[65536 + 8], back[65536 + 8];
	static float f[65536 + 8];

	if (!ops)
		return;
	/* At several element offsets, so that the vector loop and the tail see every value. */
	for (uint32_t off = 0; off < 8; off += 3) {
		for (uint32_t i = 0; i < 65536; i++)
			h[off + i] = (uint16_t)(i * 40503u); /* a permutation: odd multiplier */
		ops->f16_to_f32(h + off, f + off, 65536);
		ops->f32_to_f16(f + off, back + off, 65536);
		for (uint32_t i = 0; i < 65536; i++) {
			uint16_t x = h[off + i];
			float want = kvfh_f16_to_f32(x);

			EXPECT(bits_of(f[off + i]) == bits_of(want),
			       "%s: f16 0x%04x -> 0x%08x, scalar 0x%08x", ops->name, x,
			       bits_of(f[off + i]), bits_of(want));
			EXPECT(back[off + i] == kvfh_f32_to_f16(want),
			       "%s: 0x%08x -> 0x%04x, scalar 0x%04x", ops->name, bits_of(want),
			       back[off + i], kvfh_f32_to_f16(want));
		}
	}
}
END_TEST

#define CHUNK 4096

/* Floats through @ops in chunks of random length, against the scalar. */
static void check_f32_chunk(const struct kvfh_ops *ops, const float *src, size_t n, uint16_t *dst)
{
	ops->f32_to_f16(src, dst, n);
	for (size_t i = 0; i < n; i++)
		EXPECT(dst[i] == kvfh_f32_to_f16(src[i]),
		       "%s: 0x%08x -> 0x%04x, scalar 0x%04x (seed %llu)", ops->name,
		       bits_of(src[i]), dst[i], kvfh_f32_to_f16(src[i]),
		       (unsigned long long)g_seed);
}

START_TEST(test_rows_floats)
{
	const struct kvfh_ops *ops = path_or_null(_i);
	static float src[CHUNK];
	static uint16_t dst[CHUNK];
	uint64_t rng = g_seed ^ 0x68616c66u;
	uint32_t step = 4093, x;
	size_t n = 0;

	if (!ops)
		return;
	for (size_t i = 0; i < N_EDGE; i++)
		src[n++] = float_of(edge_cases[i].f32);
	check_f32_chunk(ops, src, n, dst);
	/* Every 4093rd bit pattern (a prime: every residue of the low bits) from a random start. */
	x = (uint32_t)test_rand_below(&rng, step);
	for (;;) {
		size_t len = 1 + (size_t)test_rand_below(&rng, CHUNK);
		int done = 0;

		for (n = 0; n < len && !done; n++) {
			src[n] = float_of(x);
			done = x > UINT32_MAX - step;
			x += step;
		}
		check_f32_chunk(ops, src, n, dst);
		if (done)
			break;
	}
	/* Random floats, half of them near the binary16 range. */
	for (int batch = 0; batch < 256; batch++) {
		for (n = 0; n < CHUNK; n++) {
			x = (uint32_t)test_rand(&rng);
			if (n & 1)
				x = (x & 0x807fffffu) |
				    ((uint32_t)(96 + test_rand_below(&rng, 50)) << 23);
			src[n] = float_of(x);
		}
		check_f32_chunk(ops, src, CHUNK, dst);
	}
}
END_TEST

#define GUARD     16
#define MAX_LEN   67
#define MAX_SHIFT 9

/* Lengths 0..67 at element offsets 0..8 of source and destination: exact, nothing written past n.
 */
START_TEST(test_rows_lengths_and_alignment)
{
	const struct kvfh_ops *ops = path_or_null(_i);
	/* 64-byte aligned bases, so offsets give every alignment a vector load can see. */
	_Alignas(64) float fsrc[MAX_SHIFT + MAX_LEN], fdst[GUARD + MAX_SHIFT + MAX_LEN + GUARD];
	_Alignas(64) uint16_t hsrc[MAX_SHIFT + MAX_LEN], hdst[GUARD + MAX_SHIFT + MAX_LEN + GUARD];
	uint64_t rng = g_seed ^ 0x6c656e73u;
	const uint16_t hfill = 0xa5a5u;
	const uint32_t ffill = 0x5a5a5a5au;

	if (!ops)
		return;
	for (size_t i = 0; i < MAX_SHIFT + MAX_LEN; i++) {
		uint32_t x = (uint32_t)test_rand(&rng);

		if (i % 3)
			x = (x & 0x807fffffu) | ((uint32_t)(100 + test_rand_below(&rng, 45)) << 23);
		fsrc[i] = float_of(x);
		hsrc[i] = (uint16_t)test_rand(&rng);
	}
	for (size_t len = 0; len <= MAX_LEN; len++) {
		for (size_t so = 0; so < MAX_SHIFT; so++) {
			for (size_t d = 0; d < MAX_SHIFT; d++) {
				size_t lo = GUARD + d, hi = lo + len;

				for (size_t i = 0; i < sizeof(hdst) / 2; i++)
					hdst[i] = hfill;
				for (size_t i = 0; i < sizeof(fdst) / 4; i++)
					fdst[i] = float_of(ffill);
				ops->f32_to_f16(fsrc + so, hdst + lo, len);
				ops->f16_to_f32(hsrc + so, fdst + lo, len);
				for (size_t i = 0; i < sizeof(hdst) / 2; i++) {
					int in = i >= lo && i < hi;
					uint16_t want =
					        in ? kvfh_f32_to_f16(fsrc[so + i - lo]) : hfill;
					uint32_t fwant =
					        in ? bits_of(kvfh_f16_to_f32(hsrc[so + i - lo]))
					           : ffill;

					EXPECT(hdst[i] == want,
					       "%s: f32->f16 len %zu src+%zu dst+%zu: [%zu] "
					       "0x%04x, "
					       "want 0x%04x (seed %llu)",
					       ops->name, len, so, d, i, hdst[i], want,
					       (unsigned long long)g_seed);
					EXPECT(bits_of(fdst[i]) == fwant,
					       "%s: f16->f32 len %zu src+%zu dst+%zu: [%zu] "
					       "0x%08x, "
					       "want 0x%08x (seed %llu)",
					       ops->name, len, so, d, i, bits_of(fdst[i]), fwant,
					       (unsigned long long)g_seed);
				}
			}
		}
	}
}
END_TEST

#if defined(__x86_64__) || defined(__i386__)
/*
 * The rows do not depend on MXCSR: other rounding modes, flush-to-zero and
 * denormals-are-zero give the same bits (the expected ones are computed
 * first, in the default environment).
 */
START_TEST(test_rows_ignore_mxcsr)
{
	const struct kvfh_ops *ops = path_or_null(_i);
	const int modes[] = { FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD };
	float src[N_EDGE + 64];
	uint16_t want[N_EDGE + 64], got[N_EDGE + 64], hsrc[64];
	float fwant[64], fgot[64];
	size_t n = 0;
	unsigned int csr = _mm_getcsr();

	if (!ops)
		return;
	for (size_t i = 0; i < N_EDGE; i++)
		src[n++] = float_of(edge_cases[i].f32);
	for (uint32_t i = 0; i < 64; i++) {
		/* Halfway cases, subnormal halves, float subnormals. */
		src[n++] = float_of(i < 32 ? 0x33000000u + i * 0x00400000u : 0x00000100u * i);
		hsrc[i] = (uint16_t)(i < 32 ? i * 31u : 0x8000u | (i * 0x1fu));
	}
	for (size_t i = 0; i < n; i++)
		want[i] = ref_f32_to_f16(src[i]);
	for (uint32_t i = 0; i < 64; i++)
		fwant[i] = ref_f16_to_f32(hsrc[i]);
	for (int m = 0; m < 4; m++) {
		if (m < 3)
			ck_assert_int_eq(fesetround(modes[m]), 0);
		else
			_mm_setcsr(csr | 0x8040u); /* FTZ, DAZ */
		ops->f32_to_f16(src, got, n);
		ops->f16_to_f32(hsrc, fgot, 64);
		_mm_setcsr(csr);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(got[i] == want[i],
			              "%s, MXCSR setting %d: 0x%08x -> 0x%04x, want 0x%04x",
			              ops->name, m, bits_of(src[i]), got[i], want[i]);
		for (size_t i = 0; i < 64; i++)
			ck_assert_msg(bits_of(fgot[i]) == bits_of(fwant[i]),
			              "%s, MXCSR setting %d: 0x%04x -> 0x%08x, want 0x%08x",
			              ops->name, m, hsrc[i], bits_of(fgot[i]), bits_of(fwant[i]));
	}
}
END_TEST
#endif

/* ---- dispatch and the public names ---- */

START_TEST(test_dispatch)
{
	ck_assert_ptr_eq(kvfh_ops_best(),
	                 kvfh_cpu_has_f16c() ? &kvfh_ops_f16c : &kvfh_ops_portable);
	ck_assert_ptr_nonnull(kvfh_ops_portable.f32_to_f16);
	ck_assert_ptr_nonnull(kvfh_ops_portable.f16_to_f32);
	ck_assert_ptr_nonnull(kvfh_ops_f16c.f32_to_f16);
	ck_assert_ptr_nonnull(kvfh_ops_f16c.f16_to_f32);
	ck_assert_str_ne(kvfh_ops_portable.name, kvfh_ops_f16c.name);
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
	/* GCC's own CPU model agrees (clang 14's does not know "f16c"). */
	__builtin_cpu_init();
	ck_assert_int_eq(kvfh_cpu_has_f16c(), __builtin_cpu_supports("avx") &&
	                                              __builtin_cpu_supports("avx2") &&
	                                              __builtin_cpu_supports("f16c"));
#endif
}
END_TEST

START_TEST(test_public_wrappers)
{
	uint64_t rng = g_seed ^ 0x77726170u;

	for (uint32_t h = 0; h < 65536; h++)
		EXPECT(bits_of(kvfpga_kvcache_f16_to_f32((uint16_t)h)) ==
		               bits_of(kvfh_f16_to_f32((uint16_t)h)),
		       "kvfpga_kvcache_f16_to_f32(0x%04x)", h);
	for (int i = 0; i < 100000; i++) {
		float f = float_of((uint32_t)test_rand(&rng));

		EXPECT(kvfpga_kvcache_f16_from_f32(f) == kvfh_f32_to_f16(f),
		       "kvfpga_kvcache_f16_from_f32(0x%08x), seed %llu", bits_of(f),
		       (unsigned long long)g_seed);
	}
}
END_TEST

/* ---- the KV cache's write and read paths ---- */

#define KV_LAYERS 2
#define KV_HEADS  3
#define KV_HD     67 /* odd: rows at every alignment, a vector part and a tail */
#define KV_BS     4
#define KV_TOKENS 6

/* What the cache stores for f16 is kvfh_f32_to_f16 of each float, and reads back kvfh_f16_to_f32.
 */
START_TEST(test_kvcache_stores_scalar_bits)
{
	struct kvfpga_open_opts oo;
	struct kvfpga_device *dev = NULL;
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache *kc = NULL;
	struct kvfpga_kvcache_layout lay;
	struct kvfpga_kvcache_arena ar;
	struct kvfpga_kvseq *seq = NULL;
	static float rows[KV_TOKENS][KV_LAYERS][2][KV_HEADS * KV_HD];
	float back[2][KV_HEADS * KV_HD];
	int32_t tokens[KV_TOKENS], table[4];
	uint32_t n_blocks;
	uint64_t rng = g_seed ^ 0x6b76u;
	size_t e = 0;

	ck_assert_int_eq(kvfpga_open_opts_init(&oo), 0);
	oo.emu_mem_size = 16ull << 20;
	ck_assert_int_eq(kvfpga_device_open(&oo, &dev), 0);
	ck_assert_int_eq(kvfpga_kvcache_config_init(&cfg), 0);
	cfg.n_layers = KV_LAYERS;
	cfg.n_kv_heads = KV_HEADS;
	cfg.head_dim = KV_HD;
	cfg.block_size = KV_BS;
	cfg.dtype = KVFPGA_KVCACHE_F16;
	cfg.n_blocks = 4;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(kc, &lay), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(kc, &ar), 0);
	ck_assert_int_eq(kvfpga_kvseq_create(kc, 0, &seq), 0);
	for (int t = 0; t < KV_TOKENS; t++)
		tokens[t] = t;
	ck_assert_int_eq(kvfpga_kvseq_append(seq, tokens, KV_TOKENS, NULL), 0);
	ck_assert_int_eq(kvfpga_kvseq_block_table(seq, table, 4, &n_blocks), 0);
	ck_assert_uint_eq(n_blocks, 2);

	/* The edge cases first (NaN payloads, ties, subnormals, overflow), then random floats. */
	for (int t = 0; t < KV_TOKENS; t++)
		for (int l = 0; l < KV_LAYERS; l++)
			for (int kv = 0; kv < 2; kv++)
				for (int i = 0; i < KV_HEADS * KV_HD; i++, e++) {
					uint32_t x = (uint32_t)test_rand(&rng);

					if (e < N_EDGE)
						x = edge_cases[e].f32;
					else if (e & 1)
						x = (x & 0x807fffffu) |
						    ((uint32_t)(98 + test_rand_below(&rng, 48))
						     << 23);
					rows[t][l][kv][i] = float_of(x);
				}
	for (int t = 0; t < KV_TOKENS; t++)
		for (int l = 0; l < KV_LAYERS; l++)
			ck_assert_int_eq(kvfpga_kvseq_write(seq, (uint32_t)l, (uint32_t)t,
			                                    rows[t][l][0], rows[t][l][1]),
			                 0);

	for (int t = 0; t < KV_TOKENS; t++) {
		for (int l = 0; l < KV_LAYERS; l++) {
			/* The arena is layer-major: layer l's slice of block table[t / KV_BS]. */
			const uint8_t *slice = (const uint8_t *)ar.base + l * lay.layer_bytes +
			                       (uint64_t)table[t / KV_BS] * lay.slice_bytes;

			ck_assert_int_eq(
			        kvfpga_kvseq_read(seq, (uint32_t)l, (uint32_t)t, back[0], back[1]),
			        0);
			for (int kv = 0; kv < 2; kv++)
				for (int h = 0; h < KV_HEADS; h++)
					for (int d = 0; d < KV_HD; d++) {
						uint64_t el =
						        kv * lay.kv_stride + h * lay.head_stride +
						        (kv ? (t % KV_BS) * lay.slot_stride + d
						            : (t % KV_BS) * lay.k_slot_stride +
						                         d * lay.k_dim_stride);
						float f = rows[t][l][kv][h * KV_HD + d];
						uint16_t stored;

						memcpy(&stored, slice + 2 * el, 2);
						EXPECT(stored == kvfh_f32_to_f16(f),
						       "t %d l %d kv %d h %d d %d: 0x%08x "
						       "stored 0x%04x, want 0x%04x (seed %llu)",
						       t, l, kv, h, d, bits_of(f), stored,
						       kvfh_f32_to_f16(f),
						       (unsigned long long)g_seed);
						EXPECT(bits_of(back[kv][h * KV_HD + d]) ==
						               bits_of(kvfh_f16_to_f32(stored)),
						       "t %d l %d kv %d h %d d %d: read 0x%08x "
						       "for 0x%04x",
						       t, l, kv, h, d,
						       bits_of(back[kv][h * KV_HD + d]), stored);
					}
		}
	}
	kvfpga_kvseq_free(seq);
	ck_assert_int_eq(kvfpga_kvcache_verify(kc), 0);
	kvfpga_kvcache_destroy(kc);
	kvfpga_device_close(dev);
}
END_TEST

static Suite *half_suite(void)
{
	Suite *s = suite_create("half");
	TCase *tc = tcase_create("scalar");

	tcase_add_test(tc, test_scalar_every_half);
	tcase_add_test(tc, test_scalar_edge_cases);
	tcase_add_test(tc, test_scalar_against_reference);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("rows");
	tcase_add_loop_test(tc, test_rows_every_half, 0, 2);
	tcase_add_loop_test(tc, test_rows_floats, 0, 2);
	tcase_add_loop_test(tc, test_rows_lengths_and_alignment, 0, 2);
#if defined(__x86_64__) || defined(__i386__)
	tcase_add_loop_test(tc, test_rows_ignore_mxcsr, 0, 2);
#endif
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_test(tc, test_dispatch);
	tcase_add_test(tc, test_public_wrappers);
	tcase_add_test(tc, test_kvcache_stores_scalar_bits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	g_seed = test_seed();
	sr = srunner_create(half_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
