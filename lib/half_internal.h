/* SPDX-License-Identifier: MIT */
/*
 * Internal to libkvfpga: IEEE binary16 <-> binary32 conversion, the one
 * implementation every part of the library uses (the KV cache's write and
 * read paths, the forward pass's f16 weights and K/V, the public
 * kvfpga_kvcache_f16_*() wrappers).
 *
 * Semantics, identical on every path and for every input:
 *   - f32 -> f16 rounds to nearest, ties to even; beyond 65504 the result
 *     rounds to +-Inf exactly as IEEE 754 says (65520 and above), float
 *     subnormals and tiny values give +-0 or a half subnormal, -0 stays -0;
 *   - f16 -> f32 is exact (half subnormals become normal floats);
 *   - NaN in either direction comes out quiet, same sign, with the payload's
 *     top bits kept: f32 -> f16 keeps payload bits 22..13 and sets the
 *     quiet bit (0x7e00 | bits 22..13), f16 -> f32 shifts the 10 payload
 *     bits up by 13 and sets the quiet bit 22.  This is what IEEE 754
 *     conversion and the x86 F16C instructions do, so the vector path
 *     below needs no fix-up: a signalling NaN is never produced.
 *
 * Bulk conversion of rows goes through a table of functions: the portable
 * (scalar) one and an F16C one (vcvtps2ph / vcvtph2ps, 16 elements per
 * step, scalar tail), chosen once by the caller (e.g. per KV cache at
 * creation) with kvfh_ops_best().  Both give the same bits for every input.
 * The tables are process-wide constants; nothing here has mutable state.
 *
 * Floating-point environment: the scalar path is integer code and neither
 * reads nor sets MXCSR.  The F16C path sets MXCSR's exception flags
 * (inexact, overflow, underflow, invalid for a signalling NaN) and would
 * trap if the caller unmasked those exceptions.  Its results do not depend
 * on MXCSR: the rounding is the instruction's immediate (nearest even),
 * FTZ does not apply to it, and DAZ could only touch float subnormal inputs,
 * which give +-0 either way.
 */
#ifndef KVFPGA_HALF_INTERNAL_H
#define KVFPGA_HALF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One value (the portable definition both row paths must match). */
uint16_t kvfh_f32_to_f16(float value);
float kvfh_f16_to_f32(uint16_t half);

/* Rows of @n elements; @src and @dst need only their type's natural alignment, must not overlap. */
struct kvfh_ops {
	const char *name;
	void (*f32_to_f16)(const float *src, uint16_t *dst, size_t n);
	void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
};

/* Plain C, every CPU. */
extern const struct kvfh_ops kvfh_ops_portable;
/*
 * F16C (vcvtps2ph with the round-to-nearest-even immediate, vcvtph2ps);
 * only where kvfh_cpu_has_f16c() says so.  On other architectures it holds
 * the portable functions.
 */
extern const struct kvfh_ops kvfh_ops_f16c;

/* The tables' row functions by name (e.g. for other tables of kernels). */
void kvfh_f32_to_f16_portable(const float *src, uint16_t *dst, size_t n);
void kvfh_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n);
/* Only on a CPU where kvfh_cpu_has_f16c() (or a caller's stricter check) holds. */
void kvfh_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n);
void kvfh_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n);

/* Whether this CPU and OS run kvfh_ops_f16c: F16C, AVX and AVX2, YMM state saved by the OS. */
int kvfh_cpu_has_f16c(void);
/* kvfh_ops_f16c when the CPU has it, else kvfh_ops_portable (asks the CPU: call once, keep it). */
const struct kvfh_ops *kvfh_ops_best(void);

#endif /* KVFPGA_HALF_INTERNAL_H */
