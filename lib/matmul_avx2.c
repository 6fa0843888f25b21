/* SPDX-License-Identifier: MIT */
/*
 * AVX2 + FMA + F16C dense kernels, compiled with function target
 * attributes so the rest of the library stays baseline x86-64; used only
 * after kvfi_cpu_has_avx2() says the CPU has them.
 *
 * Matmul tiles: 4 weight rows x 3 tokens in 12 accumulators (plus 3 x
 * and 1 w register: all 16 ymm).  A 4-row tile of weights stays in L1
 * while every token streams past it, so each weight is read from memory
 * once per call whatever the batch size.  f16/q8_0 weights are converted
 * on the fly: per 4-row tile into scratch for batches, inside the dot
 * product for decode.
 */
#include <string.h>

#include "matmul.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

AVX2_FN static inline float hsum(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v);
	__m128 hi = _mm256_extractf128_ps(v, 1);
	__m128 s = _mm_add_ps(lo, hi);
	__m128 sh = _mm_movehdup_ps(s);

	s = _mm_add_ps(s, sh);
	sh = _mm_movehl_ps(sh, s);
	s = _mm_add_ss(s, sh);
	return _mm_cvtss_f32(s);
}

AVX2_FN static inline __m256 load_h8(const void *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2_FN static inline __m256 load_q8(const uint8_t *p)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

AVX2_FN static inline float q8_scale(const uint8_t *block)
{
	uint16_t h;

	memcpy(&h, block, 2);
	return _cvtsh_ss(h);
}

AVX2_FN static void row_f32_avx2(const struct kvfi_tensor *w, uint32_t row, float *out)
{
	const uint8_t *p = w->data + (size_t)row * w->row_bytes;

	switch (w->type) {
	case KVFPGA_DTYPE_F32:
		memcpy(out, p, (size_t)w->cols * 4);
		break;
	case KVFPGA_DTYPE_F16: /* the loaders checked that f16 rows are 2-byte aligned */
		kvfh_f16_to_f32_f16c((const uint16_t *)(const void *)p, out, w->cols);
		break;
	case KVFPGA_DTYPE_Q8_0:
		for (uint32_t b = 0; b < w->cols / KVFI_Q8_0_BLOCK; b++) {
			const uint8_t *blk = p + (size_t)b * KVFI_Q8_0_BYTES;
			__m256 d = _mm256_set1_ps(q8_scale(blk));
			float *o = out + b * KVFI_Q8_0_BLOCK;

			for (int j = 0; j < 4; j++)
				_mm256_storeu_ps(o + 8 * j,
				                 _mm256_mul_ps(d, load_q8(blk + 2 + 8 * j)));
		}
		break;
	}
}

/* out[i][j] = dot(w[i], x[j]) for a 4 x 3 tile over n floats. */
AVX2_FN static void tile_4x3(const float *const w[4], const float *const x[3], size_t n,
                             float out[4][3])
{
	__m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
	__m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
	size_t k = 0;

	for (; k + 8 <= n; k += 8) {
		__m256 x0 = _mm256_loadu_ps(x[0] + k);
		__m256 x1 = _mm256_loadu_ps(x[1] + k);
		__m256 x2 = _mm256_loadu_ps(x[2] + k);
		__m256 wv = _mm256_loadu_ps(w[0] + k);

		a00 = _mm256_fmadd_ps(wv, x0, a00);
		a01 = _mm256_fmadd_ps(wv, x1, a01);
		a02 = _mm256_fmadd_ps(wv, x2, a02);
		wv = _mm256_loadu_ps(w[1] + k);
		a10 = _mm256_fmadd_ps(wv, x0, a10);
		a11 = _mm256_fmadd_ps(wv, x1, a11);
		a12 = _mm256_fmadd_ps(wv, x2, a12);
		wv = _mm256_loadu_ps(w[2] + k);
		a20 = _mm256_fmadd_ps(wv, x0, a20);
		a21 = _mm256_fmadd_ps(wv, x1, a21);
		a22 = _mm256_fmadd_ps(wv, x2, a22);
		wv = _mm256_loadu_ps(w[3] + k);
		a30 = _mm256_fmadd_ps(wv, x0, a30);
		a31 = _mm256_fmadd_ps(wv, x1, a31);
		a32 = _mm256_fmadd_ps(wv, x2, a32);
	}
	out[0][0] = hsum(a00), out[0][1] = hsum(a01), out[0][2] = hsum(a02);
	out[1][0] = hsum(a10), out[1][1] = hsum(a11), out[1][2] = hsum(a12);
	out[2][0] = hsum(a20), out[2][1] = hsum(a21), out[2][2] = hsum(a22);
	out[3][0] = hsum(a30), out[3][1] = hsum(a31), out[3][2] = hsum(a32);
	for (; k < n; k++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 3; j++)
				out[i][j] += w[i][k] * x[j][k];
}

/*
 * One row . one token, four accumulators: the decode path.  Rows are
 * streamed one after another; interleaving several rows' streams was
 * measured slower here (16 vs 28 GB/s on one core): the prefetchers
 * follow one sequential stream best.
 */
AVX2_FN static float dot_row(const float *w, const float *x, size_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	size_t k = 0;
	float s;

	for (; k + 32 <= n; k += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
	}
	for (; k + 8 <= n; k += 8)
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
	s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; k < n; k++)
		s += w[k] * x[k];
	return s;
}

/* One f16 row . one token, converting in registers. */
AVX2_FN static float dot_row_f16(const uint8_t *w, const float *x, size_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	size_t k = 0;
	float s;

	for (; k + 16 <= n; k += 16) {
		a0 = _mm256_fmadd_ps(load_h8(w + 2 * k), _mm256_loadu_ps(x + k), a0);
		a1 = _mm256_fmadd_ps(load_h8(w + 2 * k + 16), _mm256_loadu_ps(x + k + 8), a1);
	}
	for (; k + 8 <= n; k += 8)
		a0 = _mm256_fmadd_ps(load_h8(w + 2 * k), _mm256_loadu_ps(x + k), a0);
	s = hsum(_mm256_add_ps(a0, a1));
	for (; k < n; k++) {
		uint16_t h;

		memcpy(&h, w + 2 * k, 2);
		s += _cvtsh_ss(h) * x[k];
	}
	return s;
}

/* One q8_0 row . one token: per 32-block integer->float products, scaled once. */
AVX2_FN static float dot_row_q8(const uint8_t *w, const float *x, size_t n)
{
	__m256 acc = _mm256_setzero_ps();
	size_t nb = n / KVFI_Q8_0_BLOCK;

	for (size_t b = 0; b < nb; b++) {
		const uint8_t *blk = w + b * KVFI_Q8_0_BYTES;
		const float *xb = x + b * KVFI_Q8_0_BLOCK;
		__m256 s = _mm256_mul_ps(load_q8(blk + 2), _mm256_loadu_ps(xb));

		s = _mm256_fmadd_ps(load_q8(blk + 10), _mm256_loadu_ps(xb + 8), s);
		s = _mm256_fmadd_ps(load_q8(blk + 18), _mm256_loadu_ps(xb + 16), s);
		s = _mm256_fmadd_ps(load_q8(blk + 26), _mm256_loadu_ps(xb + 24), s);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk)), s, acc);
	}
	return hsum(acc);
}

AVX2_FN static void store_tile(float *y, size_t ys, uint32_t r, uint32_t nr, size_t t, size_t ntt,
                               const float out[4][3], int accumulate)
{
	for (size_t j = 0; j < ntt; j++) {
		for (uint32_t i = 0; i < nr; i++) {
			float *dst = &y[(t + j) * ys + r + i];

			*dst = accumulate ? *dst + out[i][j] : out[i][j];
		}
	}
}

AVX2_FN static void matmul_avx2(const struct kvfi_tensor *w, uint32_t r0, uint32_t r1,
                                const float *x, size_t xs, size_t nt, float *y, size_t ys,
                                int accumulate, float *scratch)
{
	const size_t n = w->cols;
	/* Few tokens: convert inside the dot product; many: convert each row tile once. */
	const int direct = w->type == KVFPGA_DTYPE_F32 || nt < 4;

	for (uint32_t r = r0; r < r1; r += 4) {
		uint32_t nr = r1 - r < 4 ? r1 - r : 4;
		const float *rows[4];
		const uint8_t *raw[4];
		float out[4][3];

		/* A short tile repeats its last row; the extra results are dropped. */
		for (uint32_t i = 0; i < 4; i++) {
			uint32_t ri = r + (i < nr ? i : nr - 1);

			raw[i] = w->data + (size_t)ri * w->row_bytes;
			rows[i] = (const float *)raw[i];
			if (!direct && i < nr) {
				row_f32_avx2(w, ri, scratch + (size_t)i * n);
				rows[i] = scratch + (size_t)i * n;
			} else if (!direct) {
				/* nr >= 1: r < r1 */
				// cppcheck-suppress negativeIndex
				rows[i] = rows[nr - 1];
			}
		}
		if (direct && (w->type != KVFPGA_DTYPE_F32 || nt == 1)) {
			for (size_t t = 0; t < nt; t++) {
				const float *xt = x + t * xs;

				for (uint32_t i = 0; i < nr; i++)
					out[i][0] = w->type == KVFPGA_DTYPE_F32
					                    ? dot_row(rows[i], xt, n)
					            : w->type == KVFPGA_DTYPE_F16
					                    ? dot_row_f16(raw[i], xt, n)
					                    : dot_row_q8(raw[i], xt, n);
				store_tile(y, ys, r, nr, t, 1, out, accumulate);
			}
			continue;
		}
		for (size_t t = 0; t < nt; t += 3) {
			size_t ntt = nt - t < 3 ? nt - t : 3;
			const float *xp[3];

			for (size_t j = 0; j < 3; j++)
				xp[j] = x + (t + (j < ntt ? j : ntt - 1)) * xs;
			tile_4x3(rows, xp, n, out);
			store_tile(y, ys, r, nr, t, ntt, out, accumulate);
		}
	}
}

AVX2_FN static float dot_avx2(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	size_t i = 0;
	float s;

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	s = hsum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

AVX2_FN static void axpy_avx2(float a, const float *x, float *y, size_t n)
{
	__m256 av = _mm256_set1_ps(a);
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(
		        y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

AVX2_FN static float dot_h_avx2(const uint16_t *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps();
	size_t i = 0;
	float s;

	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(load_h8(a + i), _mm256_loadu_ps(b + i), s0);
	s = hsum(s0);
	for (; i < n; i++)
		s += _cvtsh_ss(a[i]) * b[i];
	return s;
}

AVX2_FN static void axpy_h_avx2(float a, const uint16_t *x, float *y, size_t n)
{
	__m256 av = _mm256_set1_ps(a);
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i,
		                 _mm256_fmadd_ps(av, load_h8(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * _cvtsh_ss(x[i]);
}

/* Eight f32 elements of row @p at element @d, from f32 or f16 storage. */
AVX2_FN static inline __m256 load_kv8(const uint8_t *p, size_t d, int f16)
{
	return f16 ? load_h8(p + 2 * d) : _mm256_loadu_ps((const float *)p + d);
}

AVX2_FN static inline float kv_elem(const uint8_t *p, size_t d, int f16)
{
	if (f16) {
		uint16_t h;

		memcpy(&h, p + 2 * d, 2);
		return _cvtsh_ss(h);
	}
	return ((const float *)p)[d];
}

/* Scores four rows at a time: one horizontal reduction per four dot products. */
AVX2_FN static void scores_avx2(const float *q, const uint8_t *k, size_t stride, uint32_t n,
                                uint32_t hd, int f16, float scale, float *out)
{
	const uint32_t hd8 = hd / 8 * 8;
	uint32_t t = 0;

	for (; t + 4 <= n; t += 4) {
		const uint8_t *r0 = k + (size_t)t * stride, *r1 = r0 + stride;
		const uint8_t *r2 = r1 + stride, *r3 = r2 + stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		__m256 h;
		__m128 sum;
		float part[4];

		for (uint32_t d = 0; d < hd8; d += 8) {
			__m256 qv = _mm256_loadu_ps(q + d);

			a0 = _mm256_fmadd_ps(load_kv8(r0, d, f16), qv, a0);
			a1 = _mm256_fmadd_ps(load_kv8(r1, d, f16), qv, a1);
			a2 = _mm256_fmadd_ps(load_kv8(r2, d, f16), qv, a2);
			a3 = _mm256_fmadd_ps(load_kv8(r3, d, f16), qv, a3);
		}
		/* [a0 a1 a2 a3] sums: pairwise adds within lanes, then the two lanes. */
		h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
		sum = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
		_mm_storeu_ps(part, sum);
		for (uint32_t d = hd8; d < hd; d++) {
			part[0] += kv_elem(r0, d, f16) * q[d];
			part[1] += kv_elem(r1, d, f16) * q[d];
			part[2] += kv_elem(r2, d, f16) * q[d];
			part[3] += kv_elem(r3, d, f16) * q[d];
		}
		for (int i = 0; i < 4; i++)
			out[t + i] = scale * part[i];
	}
	for (; t < n; t++) {
		const uint8_t *row = k + (size_t)t * stride;

		out[t] = scale * (f16 ? dot_h_avx2((const uint16_t *)row, q, hd)
		                      : dot_avx2((const float *)row, q, hd));
	}
}

/* out = sum_t w[t] V[t], eight output elements at a time over all rows. */
AVX2_FN static void weighted_sum_avx2(const float *w, const uint8_t *v, size_t stride, uint32_t n,
                                      uint32_t hd, int f16, float *out)
{
	const uint32_t hd8 = hd / 8 * 8;

	for (uint32_t d = 0; d < hd8; d += 8) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0;
		uint32_t t = 0;

		for (; t + 2 <= n; t += 2) {
			const uint8_t *r = v + (size_t)t * stride;

			a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[t]), load_kv8(r, d, f16), a0);
			a1 = _mm256_fmadd_ps(_mm256_set1_ps(w[t + 1]), load_kv8(r + stride, d, f16),
			                     a1);
		}
		if (t < n)
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[t]),
			                     load_kv8(v + (size_t)t * stride, d, f16), a0);
		_mm256_storeu_ps(out + d, _mm256_add_ps(a0, a1));
	}
	for (uint32_t d = hd8; d < hd; d++) {
		float acc = 0.0f;

		for (uint32_t t = 0; t < n; t++)
			acc += w[t] * kv_elem(v + (size_t)t * stride, d, f16);
		out[d] = acc;
	}
}

const struct kvfi_kernels kvfi_kernels_avx2 = {
	.name = "avx2",
	.matmul = matmul_avx2,
	.row_f32 = row_f32_avx2,
	.dot = dot_avx2,
	.axpy = axpy_avx2,
	.dot_h = dot_h_avx2,
	.axpy_h = axpy_h_avx2,
	.to_h = kvfh_f32_to_f16_f16c, /* F16C: checked with AVX2 */
	.scores = scores_avx2,
	.weighted_sum = weighted_sum_avx2,
};

#else /* not x86: kvfi_kernels_select() never hands this table out */

const struct kvfi_kernels kvfi_kernels_avx2 = {
	.name = "avx2 (not built for this CPU)",
};

#endif
