/* SPDX-License-Identifier: MIT */
/* Internal to libkvfpga: dense kernels of the forward pass, one table per instruction set. */
#ifndef KVFPGA_MATMUL_H
#define KVFPGA_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "half_internal.h"
#include "model_internal.h"

/* Rows per register tile of the matmul kernels; row ranges split between threads align to it. */
#define KVFI_MATMUL_ROW_TILE 4u

struct kvfi_kernels {
	const char *name;
	/*
	 * For rows r in [r0, r1) of @w and tokens t in [0, nt):
	 *   y[t * ys + r] = (accumulate ? y[t * ys + r] : 0) + dot(W[r], x + t * xs)
	 * @scratch holds at least KVFI_MATMUL_ROW_TILE * w->cols floats (for
	 * dequantising a tile of rows of f16/q8_0 weights, never the matrix).
	 */
	void (*matmul)(const struct kvfi_tensor *w, uint32_t r0, uint32_t r1, const float *x,
	               size_t xs, size_t nt, float *y, size_t ys, int accumulate, float *scratch);
	void (*row_f32)(const struct kvfi_tensor *w, uint32_t row, float *out);
	float (*dot)(const float *a, const float *b, size_t n);
	void (*axpy)(float a, const float *x, float *y, size_t n); /* y += a * x */
	float (*dot_h)(const uint16_t *a, const float *b, size_t n);
	void (*axpy_h)(float a, const uint16_t *x, float *y, size_t n);
	void (*to_h)(const float *x, uint16_t *out, size_t n);
	/*
	 * Attention over @n cached rows (row t at k/v + t * stride bytes, f32,
	 * or f16 when @f16): out[t] = scale * dot(q, K[t]) for the scores, and
	 * out = sum_t w[t] * V[t] for the weighted sum.
	 */
	void (*scores)(const float *q, const uint8_t *k, size_t stride, uint32_t n, uint32_t hd,
	               int f16, float scale, float *out);
	void (*weighted_sum)(const float *w, const uint8_t *v, size_t stride, uint32_t n,
	                     uint32_t hd, int f16, float *out);
};

extern const struct kvfi_kernels kvfi_kernels_portable;
extern const struct kvfi_kernels kvfi_kernels_avx2;

/* Whether this CPU runs kvfi_kernels_avx2 (AVX2, FMA and F16C). */
int kvfi_cpu_has_avx2(void);
/* The table for @which; -ENOTSUP if the CPU lacks it, -EINVAL if unknown. */
int kvfi_kernels_select(enum kvfpga_kernels which, const struct kvfi_kernels **out);

#endif /* KVFPGA_MATMUL_H */
