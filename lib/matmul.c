/* SPDX-License-Identifier: MIT */
/* Portable dense kernels (plain C) and the choice between them and the AVX2 ones. */
#include <errno.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "matmul.h"

static float q8_scale(const uint8_t *block)
{
	uint16_t h;

	memcpy(&h, block, 2);
	return kvfh_f16_to_f32(h);
}

static void row_f32_portable(const struct kvfi_tensor *w, uint32_t row, float *out)
{
	const uint8_t *p = w->data + (size_t)row * w->row_bytes;

	switch (w->type) {
	case KVFPGA_DTYPE_F32:
		memcpy(out, p, (size_t)w->cols * 4);
		break;
	case KVFPGA_DTYPE_F16: /* the loaders checked that f16 rows are 2-byte aligned */
		kvfh_f16_to_f32_portable((const uint16_t *)(const void *)p, out, w->cols);
		break;
	case KVFPGA_DTYPE_Q8_0:
		for (uint32_t b = 0; b < w->cols / KVFI_Q8_0_BLOCK; b++) {
			const uint8_t *blk = p + (size_t)b * KVFI_Q8_0_BYTES;
			float d = q8_scale(blk);

			for (uint32_t i = 0; i < KVFI_Q8_0_BLOCK; i++)
				out[b * KVFI_Q8_0_BLOCK + i] = d * (float)(int8_t)blk[2 + i];
		}
		break;
	}
}

/* Eight independent partial sums: a fixed summation order the compiler may vectorise. */
static float dot_portable(const float *a, const float *b, size_t n)
{
	float acc[8] = { 0 };
	size_t i = 0;
	float s;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void axpy_portable(float a, const float *x, float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

static float dot_h_portable(const uint16_t *a, const float *b, size_t n)
{
	float s = 0.0f;

	for (size_t i = 0; i < n; i++)
		s += kvfh_f16_to_f32(a[i]) * b[i];
	return s;
}

static void axpy_h_portable(float a, const uint16_t *x, float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * kvfh_f16_to_f32(x[i]);
}

static void scores_portable(const float *q, const uint8_t *k, size_t stride, uint32_t n,
                            uint32_t hd, int f16, float scale, float *out)
{
	for (uint32_t t = 0; t < n; t++) {
		const uint8_t *row = k + (size_t)t * stride;

		out[t] = scale * (f16 ? dot_h_portable((const uint16_t *)row, q, hd)
		                      : dot_portable((const float *)row, q, hd));
	}
}

static void weighted_sum_portable(const float *w, const uint8_t *v, size_t stride, uint32_t n,
                                  uint32_t hd, int f16, float *out)
{
	memset(out, 0, hd * sizeof(float));
	for (uint32_t t = 0; t < n; t++) {
		const uint8_t *row = v + (size_t)t * stride;

		if (f16)
			axpy_h_portable(w[t], (const uint16_t *)row, out, hd);
		else
			axpy_portable(w[t], (const float *)row, out, hd);
	}
}

static void matmul_portable(const struct kvfi_tensor *w, uint32_t r0, uint32_t r1, const float *x,
                            size_t xs, size_t nt, float *y, size_t ys, int accumulate,
                            float *scratch)
{
	for (uint32_t r = r0; r < r1; r += KVFI_MATMUL_ROW_TILE) {
		uint32_t nr = r1 - r < KVFI_MATMUL_ROW_TILE ? r1 - r : KVFI_MATMUL_ROW_TILE;
		const float *rows[KVFI_MATMUL_ROW_TILE];

		for (uint32_t i = 0; i < nr; i++) {
			if (w->type == KVFPGA_DTYPE_F32) {
				rows[i] = (const float *)(w->data + (size_t)(r + i) * w->row_bytes);
			} else {
				row_f32_portable(w, r + i, scratch + (size_t)i * w->cols);
				rows[i] = scratch + (size_t)i * w->cols;
			}
		}
		for (size_t t = 0; t < nt; t++) {
			for (uint32_t i = 0; i < nr; i++) {
				float v = dot_portable(rows[i], x + t * xs, w->cols);
				float *dst = &y[t * ys + r + i];

				*dst = accumulate ? *dst + v : v;
			}
		}
	}
}

const struct kvfi_kernels kvfi_kernels_portable = {
	.name = "portable",
	.matmul = matmul_portable,
	.row_f32 = row_f32_portable,
	.dot = dot_portable,
	.axpy = axpy_portable,
	.dot_h = dot_h_portable,
	.axpy_h = axpy_h_portable,
	.to_h = kvfh_f32_to_f16_portable,
	.scores = scores_portable,
	.weighted_sum = weighted_sum_portable,
};

int kvfi_cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;

	/* AVX2, F16C and the OS's YMM state as lib/half.c checks them, plus FMA (cpuid 1, ecx 12).
	 */
	return kvfh_cpu_has_f16c() && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 12));
#else
	return 0;
#endif
}

int kvfi_kernels_select(enum kvfpga_kernels which, const struct kvfi_kernels **out)
{
	switch (which) {
	case KVFPGA_KERNELS_AUTO:
		*out = kvfi_cpu_has_avx2() ? &kvfi_kernels_avx2 : &kvfi_kernels_portable;
		return 0;
	case KVFPGA_KERNELS_PORTABLE:
		*out = &kvfi_kernels_portable;
		return 0;
	case KVFPGA_KERNELS_AVX2:
		if (!kvfi_cpu_has_avx2())
			return -ENOTSUP;
		*out = &kvfi_kernels_avx2;
		return 0;
	}
	return -EINVAL;
}
