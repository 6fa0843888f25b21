/* SPDX-License-Identifier: MIT */
/*
 * IEEE binary16 <-> binary32 conversion (see half_internal.h): the exact
 * scalar definition, rows through it, and rows through F16C, compiled with
 * a function target attribute so the rest of the library stays baseline
 * x86-64; the F16C rows run only after kvfh_cpu_has_f16c() said so.
 */
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define KVFH_HAVE_F16C 1
#endif

#include "half_internal.h"

static inline uint16_t f32_to_f16(float value)
{
	uint32_t x, sign;
	uint16_t h;

	memcpy(&x, &value, sizeof(x));
	sign = (x >> 16) & 0x8000u;
	x &= 0x7fffffffu;
	if (x >= 0x47800000u) {
		/* >= 2^16 (beyond the rounding range of 65504), Inf or NaN. */
		if (x > 0x7f800000u)
			h = (uint16_t)(0x7e00u |
			               ((x >> 13) & 0x3ffu)); /* quiet, top payload bits */
		else
			h = 0x7c00u;
	} else if (x < 0x38800000u) {
		/*
		 * Below 2^-14: a subnormal half, m * 2^-24.  Shift the full
		 * 24-bit significand right and round to nearest even by hand.
		 */
		uint32_t exp = x >> 23;
		uint32_t mant = (x & 0x7fffffu) | (exp ? 0x800000u : 0);
		uint32_t shift = 126 - exp; /* value = mant * 2^(exp-150) -> units of 2^-24 */

		if (!exp)
			shift = 125; /* float subnormals: mant * 2^-149 */
		if (shift > 31) {
			h = 0;
		} else {
			uint32_t q = mant >> shift;
			uint32_t rem = mant & ((1u << shift) - 1);
			uint32_t half = 1u << (shift - 1);

			if (rem > half || (rem == half && (q & 1)))
				q++;
			h = (uint16_t)q; /* may carry into the smallest normal: still right */
		}
	} else {
		/* Normal: rebias the exponent, round the 13 dropped bits to nearest even. */
		uint32_t odd = (x >> 13) & 1u;

		x += 0xc8000fffu + odd;  /* (15 - 127) << 23, plus the rounding bias */
		h = (uint16_t)(x >> 13); /* a carry into exponent 31 gives Inf */
	}
	return (uint16_t)(h | sign);
}

static inline float f16_to_f32(uint16_t half)
{
	uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
	uint32_t exp = (half >> 10) & 0x1fu;
	uint32_t mant = half & 0x3ffu;
	uint32_t x;
	float f;

	if (exp == 0) {
		/* Zero or subnormal: mant * 2^-24 is exact in binary32. */
		f = (float)mant * 0x1p-24f;
		return sign ? -f : f;
	}
	if (exp == 31)
		x = sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0); /* NaN: quiet */
	else
		x = sign | ((exp + 112) << 23) | (mant << 13);
	memcpy(&f, &x, sizeof(f));
	return f;
}

uint16_t kvfh_f32_to_f16(float value)
{
	return f32_to_f16(value);
}

float kvfh_f16_to_f32(uint16_t half)
{
	return f16_to_f32(half);
}

void kvfh_f32_to_f16_portable(const float *src, uint16_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = f32_to_f16(src[i]);
}

void kvfh_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = f16_to_f32(src[i]);
}

const struct kvfh_ops kvfh_ops_portable = {
	.name = "portable",
	.f32_to_f16 = kvfh_f32_to_f16_portable,
	.f16_to_f32 = kvfh_f16_to_f32_portable,
};

#ifdef KVFH_HAVE_F16C

#define F16C_FN __attribute__((target("avx2,f16c")))

/* Immediate 0: round to nearest even, not MXCSR.RC. */
#define F16C_RNE _MM_FROUND_TO_NEAREST_INT

F16C_FN void kvfh_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i lo = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), F16C_RNE);
		__m128i hi = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), F16C_RNE);

		_mm_storeu_si128((__m128i *)(void *)(dst + i), lo);
		_mm_storeu_si128((__m128i *)(void *)(dst + i + 8), hi);
	}
	if (i + 8 <= n) {
		_mm_storeu_si128((__m128i *)(void *)(dst + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), F16C_RNE));
		i += 8;
	}
	for (; i < n; i++)
		dst[i] = f32_to_f16(src[i]);
}

F16C_FN void kvfh_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
		__m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));

		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(lo));
		_mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(hi));
	}
	if (i + 8 <= n) {
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
		                                  (const __m128i *)(const void *)(src + i))));
		i += 8;
	}
	for (; i < n; i++)
		dst[i] = f16_to_f32(src[i]);
}

const struct kvfh_ops kvfh_ops_f16c = {
	.name = "f16c",
	.f32_to_f16 = kvfh_f32_to_f16_f16c,
	.f16_to_f32 = kvfh_f16_to_f32_f16c,
};

int kvfh_cpu_has_f16c(void)
{
	/* cpuid directly: not every compiler's __builtin_cpu_supports knows "f16c". */
	unsigned a, b, c, d;
	uint32_t xcr0_lo, xcr0_hi;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	/* OSXSAVE (27), AVX (28), F16C (29) */
	if (!(c & (1u << 27)) || !(c & (1u << 28)) || !(c & (1u << 29)))
		return 0;
	/* The OS must save the YMM state (XCR0 bits 1 and 2). */
	__asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
	if ((xcr0_lo & 6u) != 6u)
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (b & (1u << 5)) != 0; /* AVX2 */
}

#else /* not x86: the portable rows under the F16C name; kvfh_ops_best() never picks them */

void kvfh_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n)
{
	kvfh_f32_to_f16_portable(src, dst, n);
}

void kvfh_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
	kvfh_f16_to_f32_portable(src, dst, n);
}

const struct kvfh_ops kvfh_ops_f16c = {
	.name = "portable (no F16C on this architecture)",
	.f32_to_f16 = kvfh_f32_to_f16_portable,
	.f16_to_f32 = kvfh_f16_to_f32_portable,
};

int kvfh_cpu_has_f16c(void)
{
	return 0;
}

#endif

const struct kvfh_ops *kvfh_ops_best(void)
{
	return kvfh_cpu_has_f16c() ? &kvfh_ops_f16c : &kvfh_ops_portable;
}
