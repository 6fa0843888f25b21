/* SPDX-License-Identifier: MIT */
/*
 * kvfpga attention kernels (OpenCL C 1.2), over the paged KV arena.
 *
 * Arena layout (fixed by the KV cache): layer-major, the slice of (layer
 * l, block b) at element layer_base + b * slice_elems, where the host
 * passes layer_base = l * n_blocks * slice_elems; inside a slice the order is
 *   [kv: 0 = K, 1 = V][kv_head][tile of BLOCK_SIZE x HEAD_DIM]
 * so the K (or V) elements of one (layer, kv head) form one contiguous
 * tile per block, and blocks adjacent in the arena are one run per layer.
 * A V tile is row-major, [slot][HEAD_DIM]; a K tile is transposed,
 * [HEAD_DIM][slot], so that the scores of a tile's slots are accumulated
 * lane-wise with no horizontal sums.  Position p of a sequence
 * is in block table[p / BLOCK_SIZE], slot p % BLOCK_SIZE.
 *
 * Compile-time parameters (FPGA tools need static bounds; the host passes
 * them with -D, derived from the model shape):
 *   HEAD_DIM      head dimension, a multiple of VEC
 *   BLOCK_SIZE    tokens per KV block, a power of two
 *   N_KV_HEADS    KV heads per layer
 *   GROUP_SIZE    query heads per KV head (1 = MHA, N_Q_HEADS = MQA)
 *   KV_F16        1: K/V are IEEE binary16 (read with vload_half), 0: float
 *   KV_I8         1: K/V are int8 with one float scale per (block, layer,
 *                 K/V, KV head), stored after the slice's data at byte
 *                 scale_offset (the KV cache's int8 layout); value = q * scale
 *   VEC           vector width of the head-dim loops: 4, 8 or 16
 *   PREFILL_ROWS  query rows (tokens x GROUP_SIZE) per prefill work-group
 *
 * Every kernel is a single work-item per work-group: on an FPGA each loop
 * below becomes a pipeline (the head-dim loops are fully unrolled over VEC
 * lanes, i.e. one memory-port beat per cycle); on a CPU the VEC lanes are
 * SIMD lanes and work-groups spread over the cores.  No barriers, no local
 * memory, no recursion; all private arrays have static sizes.
 *
 * Softmax runs in the log2 domain: the query is pre-multiplied by
 * scale * log2(e) so each score needs one exp2.  Partial results carry
 * (m, l) = (running max, running sum of exp2(s - m)) in that domain.
 */

#ifndef HEAD_DIM
#error "HEAD_DIM must be defined (-DHEAD_DIM=...)"
#endif
#ifndef BLOCK_SIZE
#error "BLOCK_SIZE must be defined (-DBLOCK_SIZE=...)"
#endif
#ifndef N_KV_HEADS
#error "N_KV_HEADS must be defined (-DN_KV_HEADS=...)"
#endif
#ifndef GROUP_SIZE
#error "GROUP_SIZE must be defined (-DGROUP_SIZE=...)"
#endif
#define N_Q_HEADS (N_KV_HEADS * GROUP_SIZE)
#ifndef KV_F16
#define KV_F16 0
#endif
#ifndef KV_I8
#define KV_I8 0
#endif
#if KV_F16 && KV_I8
#error "KV_F16 and KV_I8 exclude each other"
#endif
/* The dtype code of the library's kvfpga_kv_dtype (reported by kvfpga_build_info). */
#define KV_DTYPE (KV_I8 ? 3 : KV_F16 ? 2 : 1)
#ifndef VEC
#if HEAD_DIM % 16 == 0
#define VEC 16
#elif HEAD_DIM % 8 == 0
#define VEC 8
#else
#define VEC 4
#endif
#endif
#ifndef PREFILL_ROWS
#define PREFILL_ROWS 16
#endif

/* Bumped when a kernel signature or the partial-result layout changes. */
#define KVFPGA_KERNEL_ABI 5

#if HEAD_DIM % VEC != 0
#error "HEAD_DIM must be a multiple of VEC"
#endif
#if (BLOCK_SIZE & (BLOCK_SIZE - 1)) != 0
#error "BLOCK_SIZE must be a power of two"
#endif

#define NV (HEAD_DIM / VEC)

#if VEC == 16
typedef float16 vecf;
#define VLOADF(i, p) vload16((i), (p))
#define VSTOREF(v, i, p) vstore16((v), (i), (p))
#define VLOADH(i, p) vload_half16((i), (p))
#elif VEC == 8
typedef float8 vecf;
#define VLOADF(i, p) vload8((i), (p))
#define VSTOREF(v, i, p) vstore8((v), (i), (p))
#define VLOADH(i, p) vload_half8((i), (p))
#elif VEC == 4
typedef float4 vecf;
#define VLOADF(i, p) vload4((i), (p))
#define VSTOREF(v, i, p) vstore4((v), (i), (p))
#define VLOADH(i, p) vload_half4((i), (p))
#else
#error "VEC must be 4, 8 or 16"
#endif

#if KV_F16
typedef half kv_t;
#define VLOADKV(i, p) VLOADH((i), (p))
#elif KV_I8
typedef char kv_t;
#if VEC == 16
#define VLOADKV(i, p) convert_float16(vload16((i), (p)))
#elif VEC == 8
#define VLOADKV(i, p) convert_float8(vload8((i), (p)))
#else
#define VLOADKV(i, p) convert_float4(vload4((i), (p)))
#endif
#else
typedef float kv_t;
#define VLOADKV(i, p) VLOADF((i), (p))
#endif

/*
 * int8 scales: the float scale of (kv, head) in the slice that starts at
 * `slice`; K's scale multiplies the scores, V's the probabilities.  Other
 * types have no scale and the multiplications compile away.
 */
#if KV_I8
#define KV_SCALE(slice, kv, head)                                                                  \
	(((const __global float *)((const __global char *)(slice) +                                 \
				   scale_offset))[(kv) * N_KV_HEADS + (head)])
#define SCALED(x, s) ((x) * (s))
#else
#define KV_SCALE(slice, kv, head) 1.0f
#define SCALED(x, s) (x)
#endif

#if PREFILL_ROWS >= GROUP_SIZE
#define PREFILL_TOKENS (PREFILL_ROWS / GROUP_SIZE)
#else
#define PREFILL_TOKENS 1
#endif
#define PREFILL_QROWS (PREFILL_TOKENS * GROUP_SIZE)

#define TILE_ELEMS ((ulong)BLOCK_SIZE * HEAD_DIM)

/*
 * KVFPGA_CPU (the host sets it for CPU devices only) tunes for a cache
 * hierarchy instead of on-chip memories:
 *  - K/V rows are read where they are (the L1 cache is the tile buffer);
 *    only f16 rows used by several query rows are converted once into a
 *    private copy.  Without it, every tile is first copied into a private
 *    array, which an FPGA compiler maps to on-chip RAM filled by one burst.
 *  - While a tile is worked on, the tile PREFETCH_TILES ahead is prefetched
 *    towards the L2 cache (locality 1: prefetcht2 on x86) a slice at a
 *    time, interleaved with the arithmetic, so that memory keeps busy while
 *    the core computes (it does not look that far ahead by itself; an FPGA
 *    pipeline overlaps its bursts anyway).  On a Zen 4 CPU with PoCL,
 *    spreading the prefetches over the loop instead of issuing a tile's
 *    worth at once raised decode throughput from memory by up to 1.5x
 *    (MHA, f16); the distance (1 to 4 tiles) mattered little.
 *  - Decode blocks the arithmetic across the query heads of a group and
 *    vectorises the softmax across heads (DECODE_BLOCKED, below).
 */
#ifndef PREFETCH_TILES
#define PREFETCH_TILES 2
#endif
#if defined(KVFPGA_CPU) && KVFPGA_CPU
#define CPU_TUNED 1
#define PREFETCH_ROW(p)                                                                            \
	do {                                                                                       \
		_Pragma("unroll") for (int b_ = 0; b_ < HEAD_DIM * (int)sizeof(kv_t); b_ += 64)    \
			__builtin_prefetch((const __global char *)(p) + b_, 0, 1);                  \
	} while (0)
#else
#define CPU_TUNED 0
#define PREFETCH_ROW(p)                                                                            \
	do {                                                                                       \
	} while (0)
#endif
/* Slice i of NV of a row: one prefetch per vector's worth of bytes. */
#if CPU_TUNED
#define PREFETCH_SLICE(p, i)                                                                       \
	__builtin_prefetch((const __global char *)(p) + (i) * (HEAD_DIM * (int)sizeof(kv_t) / NV), \
			   0, 1)
#else
#define PREFETCH_SLICE(p, i)                                                                       \
	do {                                                                                       \
	} while (0)
#endif
#define IN_PLACE(ROWS) (CPU_TUNED && (!(KV_F16 || KV_I8) || (ROWS) == 1))

/*
 * Score vectors: SVEC lanes = SVEC consecutive slots of a block.  A K tile
 * is stored transposed (see the layout above), so one column (dimension d
 * of every slot) is BLOCK_SIZE contiguous elements, NS vectors of SVEC.
 */
#if BLOCK_SIZE >= 16
#define SVEC 16
typedef float16 svec;
typedef int16 isvec;
#define SLANES (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define SLOAD(i, p) vload16((i), (p))
#define SSTORE(v, i, p) vstore16((v), (i), (p))
#define SLOADH(i, p) vload_half16((i), (p))
#define SLOADC(i, p) convert_float16(vload16((i), (p)))
#elif BLOCK_SIZE == 8
#define SVEC 8
typedef float8 svec;
typedef int8 isvec;
#define SLANES (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#define SLOAD(i, p) vload8((i), (p))
#define SSTORE(v, i, p) vstore8((v), (i), (p))
#define SLOADH(i, p) vload_half8((i), (p))
#define SLOADC(i, p) convert_float8(vload8((i), (p)))
#elif BLOCK_SIZE == 4
#define SVEC 4
typedef float4 svec;
typedef int4 isvec;
#define SLANES (int4)(0, 1, 2, 3)
#define SLOAD(i, p) vload4((i), (p))
#define SSTORE(v, i, p) vstore4((v), (i), (p))
#define SLOADH(i, p) vload_half4((i), (p))
#define SLOADC(i, p) convert_float4(vload4((i), (p)))
#elif BLOCK_SIZE == 2
#define SVEC 2
typedef float2 svec;
typedef int2 isvec;
#define SLANES (int2)(0, 1)
#define SLOAD(i, p) vload2((i), (p))
#define SSTORE(v, i, p) vstore2((v), (i), (p))
#define SLOADH(i, p) vload_half2((i), (p))
#define SLOADC(i, p) convert_float2(vload2((i), (p)))
#else
#define SVEC 1
typedef float svec;
typedef int isvec;
#define SLANES 0
#define SLOAD(i, p) ((p)[(i)])
#define SSTORE(v, i, p) ((p)[(i)] = (v))
#define SLOADH(i, p) vload_half((i), (p))
#define SLOADC(i, p) ((float)(p)[(i)])
#endif
#define NS (BLOCK_SIZE / SVEC)
#if KV_F16
#define SLOADKV(i, p) SLOADH((i), (p))
#elif KV_I8
#define SLOADKV(i, p) SLOADC((i), (p))
#else
#define SLOADKV(i, p) SLOAD((i), (p))
#endif

/* Lane reductions with a fixed tree (deterministic order). */
static float sum16(float16 v)
{
	float8 a = v.lo + v.hi;
	float4 b = a.lo + a.hi;
	float2 c = b.lo + b.hi;
	return c.x + c.y;
}

static float sum8(float8 v)
{
	float4 b = v.lo + v.hi;
	float2 c = b.lo + b.hi;
	return c.x + c.y;
}

static float sum4(float4 v)
{
	float2 c = v.lo + v.hi;
	return c.x + c.y;
}

static float max16(float16 v)
{
	float8 a = fmax(v.lo, v.hi);
	float4 b = fmax(a.lo, a.hi);
	float2 c = fmax(b.lo, b.hi);
	return fmax(c.x, c.y);
}

static float max8(float8 v)
{
	float4 b = fmax(v.lo, v.hi);
	float2 c = fmax(b.lo, b.hi);
	return fmax(c.x, c.y);
}

static float max4(float4 v)
{
	float2 c = fmax(v.lo, v.hi);
	return fmax(c.x, c.y);
}

#if SVEC == 16
#define SSUM(v) sum16(v)
#define SMAX(v) max16(v)
#elif SVEC == 8
#define SSUM(v) sum8(v)
#define SMAX(v) max8(v)
#elif SVEC == 4
#define SSUM(v) sum4(v)
#define SMAX(v) max4(v)
#elif SVEC == 2
#define SSUM(v) ((v).x + (v).y)
#define SMAX(v) fmax((v).x, (v).y)
#else
#define SSUM(v) (v)
#define SMAX(v) (v)
#endif

/* Element offset of column d (dimension d of every slot) in a K tile. */
#define KCOL(d) ((d) * BLOCK_SIZE)
/* Bytes of one K column, and a prefetch of n columns' bytes towards L2. */
#define COL_BYTES (BLOCK_SIZE * (int)sizeof(kv_t))
#if CPU_TUNED
#define PREFETCH_COLS(p, n)                                                                        \
	do {                                                                                       \
		for (int b_ = 0; b_ < (n) * COL_BYTES; b_ += 64)                                   \
			__builtin_prefetch((const __global char *)(p) + b_, 0, 1);                  \
	} while (0)
#else
#define PREFETCH_COLS(p, n)                                                                        \
	do {                                                                                       \
	} while (0)
#endif

/*
 * The steps of attending ROWS query rows (qs, ROWS x HEAD_DIM floats,
 * already scaled) to one K/V tile of BLOCK_SIZE slots, of which the first
 * `valid` are in the context.  Each K and V element is read from global
 * memory once, into a private tile (or, CPU-tuned, into the L1 cache), and
 * used there for all ROWS rows.  `next` is the tile read after this one
 * (for the CPU prefetch).
 *
 * tile_scores: sc[r][t] = q_r . k_t, or -INFINITY for slots past `valid`
 *   and, with CAUSAL, for key positions kpos0 + t > qpos[r].  Over the
 *   transposed K tile this is a column sweep: for each dimension d,
 *   sc[r][slots] += q_r[d] * column d, SVEC slots per vector, so no dot
 *   product needs a horizontal reduction.  Slots past `valid` may hold
 *   anything, even NaN; select() replaces their scores whatever they are.
 * softmax_update: online softmax; sc becomes the probabilities
 *   exp2(s - m_new), acc is rescaled by exp2(m - m_new), (m, l) updated.
 *   The caller guarantees every row has seen an unmasked key by the end of
 *   its first tile, so m is finite from then on and no inf - inf arises.
 * tile_accumulate: acc_r += sum_t sc[r][t] * v_t (masked slots have
 *   probability 0 and a finite row, so the loop needs no bound but the tile's).
 */
/*
 * V rows past `valid` are never used (their probabilities are 0), but they
 * must hold finite numbers (0 * NaN is NaN): a slot past a sequence's end
 * may hold anything, so reads are clamped to the last valid row instead.
 */
#define ROW(t, valid) min((t), (valid)-1)
#define COPY_TILE(ROWS, tile, src, valid)                                                          \
	if (!IN_PLACE(ROWS)) {                                                                     \
		for (int t_ = 0; t_ < BLOCK_SIZE; t_++) {                                          \
			_Pragma("unroll") for (int i_ = 0; i_ < NV; i_++) (tile)[t_][i_] =         \
				VLOADKV(i_, (src) + ROW(t_, valid) * HEAD_DIM);                    \
		}                                                                                  \
	}
#define KV_AT(ROWS, tile, src, valid, t, i)                                                        \
	(IN_PLACE(ROWS) ? VLOADKV((i), (src) + ROW((t), valid) * HEAD_DIM) : (tile)[(t)][(i)])
#define COPY_KT(ROWS, tile, src)                                                                   \
	if (!IN_PLACE(ROWS)) {                                                                     \
		for (int d_ = 0; d_ < HEAD_DIM; d_++) {                                            \
			_Pragma("unroll") for (int c_ = 0; c_ < NS; c_++) (tile)[d_][c_] =         \
				SLOADKV(c_, (src) + KCOL(d_));                                     \
		}                                                                                  \
	}
#define KT_AT(ROWS, tile, src, d, c)                                                               \
	(IN_PLACE(ROWS) ? SLOADKV((c), (src) + KCOL(d)) : (tile)[(d)][(c)])

/*
 * Rows are taken SC_RB at a time (SC_RB(ROWS) x NS score vectors in
 * registers): each K column vector is loaded once per pass and used for
 * SC_RB query rows, and the multiply-add chains are independent.
 */
#define SC_RB(ROWS) ((ROWS) < 8 ? (ROWS) : 8)
#define DEFINE_TILE_SCORES(name, ROWS, CAUSAL)                                                      \
	static void name(const __global kv_t *restrict kt, const __global kv_t *next,              \
			 const int valid, const int kpos0, const int *qpos, const float *qs,        \
			 const float kscale, float sc[][BLOCK_SIZE])                                \
	{                                                                                          \
		svec tile[IN_PLACE(ROWS) ? 1 : HEAD_DIM][NS];                                      \
		COPY_KT(ROWS, tile, kt)                                                            \
		for (int r0 = 0; r0 < ROWS; r0 += SC_RB(ROWS)) {                                   \
			svec s[SC_RB(ROWS)][NS];                                                   \
			_Pragma("unroll") for (int r = 0; r < SC_RB(ROWS); r++)                    \
			{                                                                          \
				_Pragma("unroll") for (int c = 0; c < NS; c++) s[r][c] =           \
					(svec)(0.0f);                                              \
			}                                                                          \
			for (int d = 0; d < HEAD_DIM; d++) {                                       \
				svec k[NS];                                                        \
				if (r0 == 0 && next)                                               \
					PREFETCH_COLS(next + KCOL(d), 1);                          \
				_Pragma("unroll") for (int c = 0; c < NS; c++) k[c] =              \
					KT_AT(ROWS, tile, kt, d, c);                               \
				_Pragma("unroll") for (int r = 0; r < SC_RB(ROWS); r++)            \
				{                                                                  \
					const svec qd = (svec)(                                    \
						r0 + r < ROWS ? qs[(r0 + r) * HEAD_DIM + d] : 0.0f); \
					_Pragma("unroll") for (int c = 0; c < NS; c++) s[r][c] =   \
						fma(qd, k[c], s[r][c]);                            \
				}                                                                  \
			}                                                                          \
			_Pragma("unroll") for (int r = 0; r < SC_RB(ROWS); r++)                    \
			{                                                                          \
				if (r0 + r >= ROWS)                                                \
					break;                                                     \
				_Pragma("unroll") for (int c = 0; c < NS; c++)                     \
				{                                                                  \
					const isvec slot = SLANES + c * SVEC;                      \
					isvec keep = slot < valid;                                 \
					if (CAUSAL)                                                \
						keep &= kpos0 + slot <= qpos[r0 + r];              \
					SSTORE(select((svec)(-INFINITY), SCALED(s[r][c], kscale),  \
						      keep),                                       \
					       c, sc[r0 + r]);                                     \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
	}

#define DEFINE_SOFTMAX_UPDATE(name, ROWS)                                                           \
	static void name(float sc[][BLOCK_SIZE], vecf *acc, float *m, float *l)                    \
	{                                                                                          \
		for (int r = 0; r < ROWS; r++) {                                                   \
			svec mx = SLOAD(0, sc[r]);                                                 \
			for (int j = 1; j < NS; j++)                                               \
				mx = fmax(mx, SLOAD(j, sc[r]));                                    \
			const float m_new = fmax(m[r], SMAX(mx));                                  \
			svec sum = (svec)(0.0f);                                                   \
			for (int j = 0; j < NS; j++) {                                             \
				const svec p = exp2(SLOAD(j, sc[r]) - m_new);                      \
				SSTORE(p, j, sc[r]);                                               \
				sum += p;                                                          \
			}                                                                          \
			/* The maximum rarely moves after the first tiles: then nothing to rescale. */ \
			if (m_new != m[r]) {                                                       \
				const float corr = exp2(m[r] - m_new);                             \
				l[r] *= corr;                                                      \
				_Pragma("unroll") for (int i = 0; i < NV; i++) acc[r * NV + i] *=  \
					corr;                                                      \
			}                                                                          \
			l[r] += SSUM(sum);                                                         \
			m[r] = m_new;                                                              \
		}                                                                                  \
	}

#define DEFINE_TILE_ACCUMULATE(name, ROWS)                                                          \
	static void name(const __global kv_t *restrict vt, const __global kv_t *next,              \
			 const int valid, const float vscale, float sc[][BLOCK_SIZE], vecf *acc)    \
	{                                                                                          \
		vecf tile[IN_PLACE(ROWS) ? 1 : BLOCK_SIZE][NV];                                    \
		COPY_TILE(ROWS, tile, vt, valid)                                                   \
		for (int r = 0; r < ROWS; r++) {                                                   \
			vecf a[NV];                                                                \
			_Pragma("unroll") for (int i = 0; i < NV; i++) a[i] = acc[r * NV + i];     \
			for (int t = 0; t < BLOCK_SIZE; t++) {                                     \
				if (r == 0 && next)                                                \
					PREFETCH_ROW(next + t * HEAD_DIM);                         \
				const vecf p = (vecf)(SCALED(sc[r][t], vscale));                   \
				_Pragma("unroll") for (int i = 0; i < NV; i++) a[i] =              \
					fma(p, KV_AT(ROWS, tile, vt, valid, t, i), a[i]);          \
			}                                                                          \
			_Pragma("unroll") for (int i = 0; i < NV; i++) acc[r * NV + i] = a[i];     \
		}                                                                                  \
	}

/*
 * CPU-tuned decode (KVFPGA_CPU, VEC 8 or 16): register blocking across the
 * GROUP_SIZE query heads that share a KV head.
 *
 * A K or V vector is loaded (and, for f16, widened) once into a register
 * and used there by every query head of the group, instead of once per
 * head: under GQA the arithmetic per KV byte grows with the group while the
 * loads and conversions per byte stay the same.
 *
 * Scores: a pass holds KT_KH heads x KT_KC slot vectors of scores, each as
 * KT_DS partial sums over interleaved dimensions, in registers while it
 * sweeps the columns of the transposed K tile: per dimension, KT_KC column
 * vectors are loaded and each head's query element is broadcast against
 * them.  Enough independent sums (>= 8) keep the multiply-add pipelines
 * full; no horizontal reduction is needed.
 *
 * Accumulate: AC_HEADS heads x AC_VECS head-dim vectors of the output stay
 * in registers while a pass runs over the tile's rows; each probability is
 * a broadcast load from sc.
 */
#if CPU_TUNED && (VEC == 16 || VEC == 8) && BLOCK_SIZE >= VEC
#define DECODE_BLOCKED 1
/*
 * Blocks read side by side: a pass takes DECODE_STREAMS blocks of the
 * context together (PSLOTS slots, PNS slot vectors), their tiles' columns
 * (scores) and rows (accumulate) interleaved, so that memory serves that
 * many independent runs at once.  A layer's slice of a block is one run of
 * a few tens of KiB; unless the table's blocks are adjacent in the arena,
 * each jump to a new block stalls the stream.  Two streams, not
 * four: four measured 0.8x.
 */
#ifndef DECODE_STREAMS
#define DECODE_STREAMS 2
#endif
#define DS_N DECODE_STREAMS
#define PSLOTS (DS_N * BLOCK_SIZE)
#define PNS (DS_N * NS)
/*
 * The reference maximum m of a head only moves when a score exceeds it by
 * more than SOFTMAX_SLACK (log2 units): probabilities exp2(s - m) then stay
 * below 2^SOFTMAX_SLACK, far from float overflow, and the common pass
 * costs one vector compare instead of a horizontal maximum.  m is a lower
 * bound of the true maximum; (m, l) and the output are consistent for any
 * such m, which is all the merge needs.
 */
#define SOFTMAX_SLACK 8.0f
#define KT_KH (GROUP_SIZE < 8 ? GROUP_SIZE : 8)
/* Up to 16 score vectors in registers for f32; converted K (f16, int8) needs registers too. */
#define KT_SUMS_MAX (KV_F16 || KV_I8 ? 8 : 16)
#define KT_KC_(n) ((n) <= PNS && (n)*KT_KH <= KT_SUMS_MAX)
#define KT_KC (KT_KC_(8) ? 8 : KT_KC_(4) ? 4 : KT_KC_(2) ? 2 : 1)
#define KT_SUMS (KT_KH * KT_KC)
#define KT_DS (KT_SUMS >= 8 ? 1 : KT_SUMS >= 4 ? 2 : KT_SUMS >= 2 ? 4 : 8)
#if HEAD_DIM % KT_DS != 0
#error "HEAD_DIM must be a multiple of KT_DS"
#endif
#if PNS % KT_KC != 0
#error "a pass's slot vectors (PNS) must be a multiple of KT_KC"
#endif
#define AC_HEADS (GROUP_SIZE < 8 ? GROUP_SIZE : 8)
/*
 * Output vectors a pass keeps: 16, or for f32 up to 32 when that lets one
 * pass take whole rows, so that each V row is read once (some spill, but
 * GQA 4 f32 at head_dim 128 ran 2-3% faster from memory than with two
 * passes of 16; GQA 8 at 128, still two passes with 32, ran 1.5% slower,
 * and f16/int8, which widen into registers too, 4% slower).  Other shapes
 * that qualify, GQA 8 at head_dim 64 and GQA 2 above 128, were within the
 * noise (3%) of a run next to another job.
 */
#define AC_WIDE (!KV_F16 && !KV_I8 && 32 / AC_HEADS >= NV)
#define AC_SUMS_MAX (AC_WIDE ? 32 : 16)
#define AC_VECS_MAX (AC_SUMS_MAX / AC_HEADS > 0 ? AC_SUMS_MAX / AC_HEADS : 1)
#define AC_VECS (AC_VECS_MAX < NV ? AC_VECS_MAX : NV)
/* Whether head-dim vector i exists (always, when passes divide NV evenly). */
#define AC_VEC_IN(i) (NV % AC_VECS == 0 || (i) < NV)

/*
 * Scores and the online-softmax step of the GROUP_SIZE heads of one KV head
 * (rows row0 ..) over the tiles kt[0 .. DS_N) (slots of tile i are
 * i * BLOCK_SIZE ..): sc[row][t] becomes the probability exp2(q . k_t -
 * m) while the scores are still in registers.  The running sum is kept per
 * lane (lsum[row], SVEC partial sums, added up once at the end), so a pass
 * needs no horizontal sum, and a horizontal maximum only when m moves
 * (SOFTMAX_SLACK); then a head's acc and lsum are rescaled by exp2(m - m_new).
 */
static void decode_scores_blocked(const __global kv_t *const *kt, const __global kv_t *const *next,
				  const int valid, const float *qs, const float *kscale,
				  float sc[][PSLOTS], const int row0, float *m, svec *lsum,
				  vecf *acc)
{
	for (int h0 = 0; h0 < GROUP_SIZE; h0 += KT_KH) {
		for (int c0 = 0; c0 < PNS; c0 += KT_KC) {
			svec s[KT_KH][KT_KC][KT_DS];

			_Pragma("unroll") for (int h = 0; h < KT_KH; h++)
			{
				_Pragma("unroll") for (int c = 0; c < KT_KC; c++)
				{
					_Pragma("unroll") for (int j = 0; j < KT_DS; j++) s[h][c][j] =
						(svec)(0.0f);
				}
			}
			_Pragma("unroll 1") for (int d0 = 0; d0 < HEAD_DIM; d0 += KT_DS)
			{
				/* Prefetches spread over the arithmetic, not in a burst. */
				if (h0 == 0 && c0 == 0) {
					_Pragma("unroll") for (int i = 0; i < DS_N; i++)
					{
						if (next[i])
							PREFETCH_COLS(next[i] + KCOL(d0), KT_DS);
					}
				}
				_Pragma("unroll") for (int j = 0; j < KT_DS; j++)
				{
					svec k[KT_KC];

					_Pragma("unroll") for (int c = 0; c < KT_KC; c++) k[c] =
						SLOADKV((c0 + c) % NS, kt[(c0 + c) / NS] + KCOL(d0 + j));
					_Pragma("unroll") for (int h = 0; h < KT_KH; h++)
					{
						if (h0 + h < GROUP_SIZE) {
							const svec qd = (svec)(
								qs[(h0 + h) * HEAD_DIM + d0 + j]);

							_Pragma("unroll") for (int c = 0; c < KT_KC; c++)
								s[h][c][j] = fma(qd, k[c], s[h][c][j]);
						}
					}
				}
			}
			_Pragma("unroll") for (int h = 0; h < KT_KH; h++)
			{
				_Pragma("unroll") for (int c = 0; c < KT_KC; c++)
				{
					const isvec keep = SLANES + (c0 + c) * SVEC < valid;

					_Pragma("unroll") for (int j = 1; j < KT_DS; j++) s[h][c][0] +=
						s[h][c][j];
					s[h][c][0] = select((svec)(-INFINITY),
							    SCALED(s[h][c][0], kscale[(c0 + c) / NS]),
							    keep);
				}
				if (h0 + h >= GROUP_SIZE)
					continue;
				/* The scores of one head so far: store, or finish the softmax. */
				const int row = row0 + h0 + h;

				if (KT_KC < PNS) {
					_Pragma("unroll") for (int c = 0; c < KT_KC; c++)
						SSTORE(s[h][c][0], c0 + c, sc[row]);
					if (c0 + KT_KC < PNS)
						continue;
				}
				svec sv[PNS];
				isvec up = (isvec)(0);
				const float bound = m[row] + SOFTMAX_SLACK;

				_Pragma("unroll") for (int c = 0; c < PNS; c++)
				{
					sv[c] = KT_KC < PNS ? SLOAD(c, sc[row]) : s[h][c % KT_KC][0];
					up |= sv[c] > (svec)(bound);
				}
				/* m is finite after the first pass (it always holds a key). */
				if (any(up)) {
					svec mx = sv[0];

					/* fmax: max() is undefined for the -inf of masked slots. */
					_Pragma("unroll") for (int c = 1; c < PNS; c++) mx = fmax(mx, sv[c]);
					const float m_new = SMAX(mx);
					const float corr = exp2(m[row] - m_new);

					lsum[row] *= corr;
					_Pragma("unroll") for (int i = 0; i < NV; i++) acc[row * NV + i] *=
						corr;
					m[row] = m_new;
				}
				_Pragma("unroll") for (int c = 0; c < PNS; c++)
				{
					const svec p = exp2(sv[c] - (svec)(m[row]));

					SSTORE(p, c, sc[row]);
					lsum[row] += p;
				}
			}
		}
	}
}

/*
 * acc_g += sum_t p[row0 + g][t] v_t for the GROUP_SIZE heads of one KV head,
 * over the tiles vt[0 .. DS_N); rows[i] is how many rows of tile i hold
 * finite values (reads past them are clamped, as ROW does).
 */
static void decode_accumulate_blocked(const __global kv_t *const *vt,
				      const __global kv_t *const *next, const int *rows,
				      const float *vscale, float sc[][PSLOTS], const int row0,
				      vecf *acc)
{
	for (int h0 = 0; h0 < GROUP_SIZE; h0 += AC_HEADS) {
		for (int i0 = 0; i0 < NV; i0 += AC_VECS) {
			vecf a[AC_HEADS][AC_VECS];

			_Pragma("unroll") for (int h = 0; h < AC_HEADS; h++)
			{
				_Pragma("unroll") for (int j = 0; j < AC_VECS; j++) a[h][j] =
					h0 + h < GROUP_SIZE && AC_VEC_IN(i0 + j) ?
						acc[(h0 + h) * NV + i0 + j] :
						(vecf)(0.0f);
			}
			_Pragma("unroll 1") for (int t = 0; t < BLOCK_SIZE; t++) {
				_Pragma("unroll") for (int s = 0; s < DS_N; s++)
				{
					/* This pass's slice of a row: constant offsets from one pointer. */
					const __global kv_t *vrow =
						vt[s] + i0 * VEC + ROW(t, rows[s]) * HEAD_DIM;
					vecf v[AC_VECS];

					/* Each pass prefetches the slices of the next tiles it would read. */
					if (h0 == 0 && next[s]) {
						_Pragma("unroll") for (int j = 0; j < AC_VECS; j++)
						{
							if (AC_VEC_IN(i0 + j))
								PREFETCH_SLICE(next[s] + i0 * VEC +
										       t * HEAD_DIM,
									       j);
						}
					}
					_Pragma("unroll") for (int j = 0; j < AC_VECS; j++) v[j] =
						AC_VEC_IN(i0 + j) ? VLOADKV(j, vrow) : (vecf)(0.0f);
					_Pragma("unroll") for (int h = 0; h < AC_HEADS; h++)
					{
						if (h0 + h < GROUP_SIZE) {
							const vecf p = (vecf)(SCALED(
								sc[row0 + h0 + h][s * BLOCK_SIZE + t],
								vscale[s]));

							_Pragma("unroll") for (int j = 0; j < AC_VECS; j++)
								a[h][j] = fma(p, v[j], a[h][j]);
						}
					}
				}
			}
			_Pragma("unroll") for (int h = 0; h < AC_HEADS; h++)
			{
				_Pragma("unroll") for (int j = 0; j < AC_VECS; j++)
				{
					if (h0 + h < GROUP_SIZE && AC_VEC_IN(i0 + j))
						acc[(h0 + h) * NV + i0 + j] = a[h][j];
				}
			}
		}
	}
}
#else
#define DECODE_BLOCKED 0
#endif

DEFINE_TILE_SCORES(decode_scores, GROUP_SIZE, 0)
DEFINE_SOFTMAX_UPDATE(decode_softmax, N_Q_HEADS)
DEFINE_TILE_ACCUMULATE(decode_accumulate, GROUP_SIZE)
DEFINE_TILE_SCORES(prefill_scores, PREFILL_QROWS, 1)
DEFINE_SOFTMAX_UPDATE(prefill_softmax, PREFILL_QROWS)
DEFINE_TILE_ACCUMULATE(prefill_accumulate, PREFILL_QROWS)

/*
 * The layer's slice of a block is 2 x N_KV_HEADS tiles in the order the
 * decode reads them (K of every head, then V of every head).  Tile u of the
 * slice at kl names tile u + PREFETCH_TILES of that order for the prefetch,
 * running into the next block's slice (next_kl; none after the last block).
 */
static const __global kv_t *tile_ahead(const __global kv_t *kl, const __global kv_t *next_kl,
				       const int u)
{
	const int v = u + PREFETCH_TILES;

	if (v < 2 * N_KV_HEADS)
		return kl + v * TILE_ELEMS;
	return next_kl ? next_kl + (v - 2 * N_KV_HEADS) * TILE_ELEMS : 0;
}

/*
 * Whether kvfpga_decode_partial can merge the splits itself: when the host
 * asks (merge_splits, with per-sequence counters in split_done zeroed), the
 * last work-group of a sequence to finish merges all of its query heads, so
 * a call is one kernel launch instead of two (with PoCL on a 2-core machine
 * 2-6 us less per call at 1k tokens, 33-47 us at 16k: the workers are not
 * woken a second time).  OpenCL 1.2 orders global memory between
 * work-groups only at the end of a kernel; this relies on a CPU's coherent
 * caches and on the atomic ordering the split's stores before it and the
 * merge's loads after it (PoCL 3.1's atomic_inc is an acq_rel atomicrmw;
 * its mem_fence is empty, the fences here are for runtimes that need them).
 * So only the CPU variant has it, and the host asks for it only on a CPU
 * device; otherwise kvfpga_decode_merge runs as a second kernel.
 */
#ifndef DECODE_FUSED_MERGE
#define DECODE_FUSED_MERGE CPU_TUNED
#endif
#if DECODE_FUSED_MERGE && !CPU_TUNED
#error "DECODE_FUSED_MERGE needs the CPU variant"
#endif

/*
 * Merges query head qh of sequence seq over its `used` splits:
 *   M = max m_i,  w_i = l_i * 2^(m_i - M),  out = sum w_i o_i / sum w_i.
 */
static void merge_head(const __global float *restrict part_o,
		       const __global float *restrict part_ml, __global float *restrict out,
		       const uint seq, const uint qh, const uint used, const uint n_splits)
{
	const ulong first_row = (ulong)seq * n_splits * N_Q_HEADS + qh;

	float mmax = -INFINITY;
	for (uint sp = 0; sp < used; sp++)
		mmax = fmax(mmax, part_ml[(first_row + (ulong)sp * N_Q_HEADS) * 2]);

	vecf acc[NV];
	_Pragma("unroll") for (int i = 0; i < NV; i++) acc[i] = (vecf)(0.0f);
	float wsum = 0.0f;
	for (uint sp = 0; sp < used; sp++) {
		const ulong row = first_row + (ulong)sp * N_Q_HEADS;
		const float w = part_ml[row * 2 + 1] * exp2(part_ml[row * 2] - mmax);
		wsum += w;
		_Pragma("unroll") for (int i = 0; i < NV; i++) acc[i] =
			fma((vecf)(w), VLOADF(i, part_o + row * HEAD_DIM), acc[i]);
	}
	const float inv = 1.0f / wsum;
	__global float *orow = out + ((ulong)seq * N_Q_HEADS + qh) * HEAD_DIM;
	_Pragma("unroll") for (int i = 0; i < NV; i++) VSTOREF(acc[i] * inv, i, orow);
}

/*
 * Split-K decode, phase 1.  Work-group (split, seq) reads blocks
 * [split * split_blocks, ...) of the sequence's context, block by block,
 * and in each block the tiles of every KV head of the layer: a layer's K
 * tiles of one block are contiguous (N_KV_HEADS x BLOCK_SIZE x HEAD_DIM),
 * its V tiles follow, so the work-group streams memory in two sequential
 * runs per block (prefetcher-friendly, one page-table walk per page rather
 * than per tile, and long bursts on an FPGA memory port); the CPU variant
 * takes DECODE_STREAMS blocks at a time, their runs side by side.  Each K/V
 * row is loaded once for all GROUP_SIZE query heads that share it.  Writes the
 * normalised partial output and its (m, l) for every query head; with
 * n_splits == 1 the partial output is the final output (the host passes out
 * as part_o) and there is no phase 2.  With DECODE_FUSED_MERGE and
 * merge_splits (split_done: [batch] counts the host zeroed) the last split
 * of each sequence to finish does phase 2 into out; otherwise out and
 * split_done are not touched and the host runs kvfpga_decode_merge.
 *
 * q, out: [batch][N_Q_HEADS][HEAD_DIM];  tables: [batch][table_stride];
 * part_o: [batch][n_splits][N_Q_HEADS][HEAD_DIM];
 * part_ml: [batch][n_splits][N_Q_HEADS][2].
 */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
kvfpga_decode_partial(const __global float *restrict q, const __global kv_t *restrict arena,
		      const __global int *restrict tables, const __global int *restrict seq_lens,
		      __global float *restrict part_o, __global float *restrict part_ml,
		      __global float *restrict out, volatile __global int *restrict split_done,
		      const uint merge_splits, const ulong layer_base, const ulong slice_elems,
		      const uint table_stride, const uint split_blocks, const uint n_splits,
		      const float scale, const ulong scale_offset)
{
	const uint split = get_global_id(0);
	const uint seq = get_global_id(1);
	const int len = seq_lens[seq];
	const uint seq_blocks = ((uint)len + BLOCK_SIZE - 1) / BLOCK_SIZE;
	const uint first_block = split * split_blocks;

	if (first_block >= seq_blocks)
		return;
	const uint end_block = min(first_block + split_blocks, seq_blocks);

	float qs[N_Q_HEADS * HEAD_DIM];
	vecf acc[N_Q_HEADS * NV];
	float m[N_Q_HEADS], l[N_Q_HEADS];
	const float qscale = scale * M_LOG2E_F;
	const __global float *qseq = q + (ulong)seq * N_Q_HEADS * HEAD_DIM;
#if DECODE_BLOCKED
	svec lsum[N_Q_HEADS];
#endif

	for (int h = 0; h < N_Q_HEADS; h++) {
		_Pragma("unroll") for (int i = 0; i < NV; i++)
		{
			VSTOREF(VLOADF(i, qseq + h * HEAD_DIM) * qscale, i, qs + h * HEAD_DIM);
			acc[h * NV + i] = (vecf)(0.0f);
		}
		m[h] = -INFINITY;
		l[h] = 0.0f;
#if DECODE_BLOCKED
		lsum[h] = (svec)(0.0f);
#endif
	}

	const __global kv_t *layer_arena = arena + layer_base;
	const __global int *table = tables + (ulong)seq * table_stride;

#if DECODE_BLOCKED
	for (uint blk = first_block; blk < end_block; blk += DS_N) {
		const __global kv_t *kl[DS_N], *next_kl[DS_N];
		int rows[DS_N], valid = 0;
		float sc[N_Q_HEADS][PSLOTS];

		/* A missing last tile reads the first again; its slots are masked. */
		_Pragma("unroll") for (int s = 0; s < DS_N; s++)
		{
			const uint b = blk + s < end_block ? blk + s : blk;
			const uint nb = blk + DS_N + s;

			kl[s] = layer_arena + (ulong)table[b] * slice_elems;
			rows[s] = min(BLOCK_SIZE, len - (int)(b * BLOCK_SIZE));
			if (blk + s < end_block)
				valid += rows[s];
			next_kl[s] = nb < end_block
					     ? layer_arena + (ulong)table[nb] * slice_elems
					     : 0;
		}
		/* All K tiles of the layer, then all V tiles: two runs per block. */
		for (int h = 0; h < N_KV_HEADS; h++) {
			const __global kv_t *tiles[DS_N], *ahead[DS_N];
			float ks[DS_N];

			_Pragma("unroll") for (int s = 0; s < DS_N; s++)
			{
				tiles[s] = kl[s] + h * TILE_ELEMS;
				ahead[s] = tile_ahead(kl[s], next_kl[s], h);
				ks[s] = KV_SCALE(kl[s], 0, h);
			}
			decode_scores_blocked(tiles, ahead, valid, qs + h * GROUP_SIZE * HEAD_DIM, ks,
					      sc, h * GROUP_SIZE, m, lsum, acc);
		}
		for (int h = 0; h < N_KV_HEADS; h++) {
			const __global kv_t *tiles[DS_N], *ahead[DS_N];
			float vs[DS_N];

			_Pragma("unroll") for (int s = 0; s < DS_N; s++)
			{
				tiles[s] = kl[s] + (N_KV_HEADS + h) * TILE_ELEMS;
				ahead[s] = tile_ahead(kl[s], next_kl[s], N_KV_HEADS + h);
				vs[s] = KV_SCALE(kl[s], 1, h);
			}
			decode_accumulate_blocked(tiles, ahead, rows, vs, sc, h * GROUP_SIZE,
						  acc + h * GROUP_SIZE * NV);
		}
	}
#else
	for (uint blk = first_block; blk < end_block; blk++) {
		const __global kv_t *kl = layer_arena + (ulong)table[blk] * slice_elems;
		const int valid = min(BLOCK_SIZE, len - (int)(blk * BLOCK_SIZE));
		const __global kv_t *next_kl =
			blk + 1 < end_block ? layer_arena + (ulong)table[blk + 1] * slice_elems : 0;
		float sc[N_Q_HEADS][BLOCK_SIZE];

		/* All K tiles of the layer, then all V tiles: two sequential runs. */
		for (int h = 0; h < N_KV_HEADS; h++)
			decode_scores(kl + h * TILE_ELEMS, tile_ahead(kl, next_kl, h), valid, 0, 0,
				      qs + h * GROUP_SIZE * HEAD_DIM, KV_SCALE(kl, 0, h),
				      sc + h * GROUP_SIZE);
		decode_softmax(sc, acc, m, l);
		for (int h = 0; h < N_KV_HEADS; h++)
			decode_accumulate(kl + (N_KV_HEADS + h) * TILE_ELEMS,
					  tile_ahead(kl, next_kl, N_KV_HEADS + h), valid,
					  KV_SCALE(kl, 1, h), sc + h * GROUP_SIZE,
					  acc + h * GROUP_SIZE * NV);
	}
#endif
#if DECODE_BLOCKED
	for (int h = 0; h < N_Q_HEADS; h++)
		l[h] = SSUM(lsum[h]);
#endif

	const ulong row0 = ((ulong)seq * n_splits + split) * N_Q_HEADS;
	for (int h = 0; h < N_Q_HEADS; h++) {
		const float inv_l = 1.0f / l[h];
		__global float *orow = part_o + (row0 + h) * HEAD_DIM;
		_Pragma("unroll") for (int i = 0; i < NV; i++) VSTOREF(acc[h * NV + i] * inv_l, i, orow);
		part_ml[(row0 + h) * 2 + 0] = m[h];
		part_ml[(row0 + h) * 2 + 1] = l[h];
	}
#if DECODE_FUSED_MERGE
	if (n_splits > 1 && merge_splits) {
		const uint used = min(n_splits, (seq_blocks + split_blocks - 1) / split_blocks);

		/* Release this split's results; the last one in acquires all of them. */
		mem_fence(CLK_GLOBAL_MEM_FENCE);
		if (atomic_inc(&split_done[seq]) == (int)used - 1) {
			mem_fence(CLK_GLOBAL_MEM_FENCE);
			for (uint qh = 0; qh < N_Q_HEADS; qh++)
				merge_head(part_o, part_ml, out, seq, qh, used, n_splits);
		}
	}
#endif
}

/*
 * Split-K decode, phase 2 (unless kvfpga_decode_partial merged): work-item
 * (q_head, seq) merges the partial results of the splits that covered the
 * sequence (merge_head).
 */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
kvfpga_decode_merge(const __global float *restrict part_o, const __global float *restrict part_ml,
		    const __global int *restrict seq_lens, __global float *restrict out,
		    const uint split_blocks, const uint n_splits)
{
	const uint qh = get_global_id(0);
	const uint seq = get_global_id(1);
	const uint seq_blocks = ((uint)seq_lens[seq] + BLOCK_SIZE - 1) / BLOCK_SIZE;
	const uint used = min(n_splits, (seq_blocks + split_blocks - 1) / split_blocks);

	merge_head(part_o, part_ml, out, seq, qh, used, n_splits);
}

/*
 * Causal prefill of a chunk of n_tokens new tokens of one sequence, at
 * positions start_pos .. start_pos + n_tokens - 1 (their K/V are already in
 * the arena; start_pos may be anywhere inside a block).  Work-group
 * (tile, kv_head) owns PREFILL_TOKENS consecutive new tokens times the
 * GROUP_SIZE query heads of one KV head and streams the context blocks
 * 0 .. (last position of the tile) / BLOCK_SIZE once with an online
 * softmax, so private memory is PREFILL_QROWS x HEAD_DIM at any length.
 *
 * q, out: [n_tokens][N_Q_HEADS][HEAD_DIM];  table: the sequence's blocks.
 */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
kvfpga_prefill(const __global float *restrict q, const __global kv_t *restrict arena,
	       const __global int *restrict table, __global float *restrict out,
	       const ulong layer_base, const ulong slice_elems, const uint start_pos,
	       const uint n_tokens, const float scale,
	       const ulong scale_offset)
{
	const uint tile = get_global_id(0);
	const uint kvh = get_global_id(1);
	const uint first_tok = tile * PREFILL_TOKENS;

	if (first_tok >= n_tokens)
		return;
	const uint tile_tokens = min((uint)PREFILL_TOKENS, n_tokens - first_tok);
	const uint last_pos = start_pos + first_tok + tile_tokens - 1;

	float qs[PREFILL_QROWS * HEAD_DIM];
	vecf acc[PREFILL_QROWS * NV];
	float m[PREFILL_QROWS], l[PREFILL_QROWS];
	int qpos[PREFILL_QROWS];
	const float qscale = scale * M_LOG2E_F;

	for (int r = 0; r < PREFILL_QROWS; r++) {
		const uint tok = r / GROUP_SIZE;
		const uint g = r % GROUP_SIZE;
		/* Rows past the chunk compute on a zero query and are not stored. */
		const int live = tok < tile_tokens;
		const __global float *qrow =
			q + ((ulong)(first_tok + tok) * N_Q_HEADS + kvh * GROUP_SIZE + g) * HEAD_DIM;
		_Pragma("unroll") for (int i = 0; i < NV; i++)
		{
			VSTOREF(live ? VLOADF(i, qrow) * qscale : (vecf)(0.0f), i, qs + r * HEAD_DIM);
			acc[r * NV + i] = (vecf)(0.0f);
		}
		qpos[r] = (int)(start_pos + first_tok + tok);
		m[r] = -INFINITY;
		l[r] = 0.0f;
	}

	const __global kv_t *layer_arena = arena + layer_base;
	const ulong k_off = (ulong)kvh * TILE_ELEMS;
	const ulong v_off = k_off + (ulong)N_KV_HEADS * TILE_ELEMS;
	const uint end_block = last_pos / BLOCK_SIZE + 1;

	/* Block 0 holds position 0, which every row sees: m is finite after it. */
	for (uint blk = 0; blk < end_block; blk++) {
		const __global kv_t *slice = layer_arena + (ulong)table[blk] * slice_elems;
		const int kpos0 = (int)(blk * BLOCK_SIZE);
		const int valid = min(BLOCK_SIZE, (int)last_pos + 1 - kpos0);

		float sc[PREFILL_QROWS][BLOCK_SIZE];

		const __global kv_t *next_k =
			blk + 1 < end_block ? layer_arena + (ulong)table[blk + 1] * slice_elems + k_off
					    : 0;

		prefill_scores(slice + k_off, slice + v_off, valid, kpos0, qpos, qs,
			       KV_SCALE(slice, 0, kvh), sc);
		prefill_softmax(sc, acc, m, l);
		prefill_accumulate(slice + v_off, next_k, valid, KV_SCALE(slice, 1, kvh), sc, acc);
	}

	for (int r = 0; r < PREFILL_QROWS; r++) {
		const uint tok = r / GROUP_SIZE;
		const uint g = r % GROUP_SIZE;
		if (tok >= tile_tokens)
			continue;
		__global float *orow =
			out + ((ulong)(first_tok + tok) * N_Q_HEADS + kvh * GROUP_SIZE + g) * HEAD_DIM;
		const float inv_l = 1.0f / l[r];
		_Pragma("unroll") for (int i = 0; i < NV; i++) VSTOREF(acc[r * NV + i] * inv_l, i, orow);
	}
}

/*
 * The compile-time parameters this program was built with, so the host can
 * check a prebuilt FPGA binary (or a cached one) against the model shape.
 */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
kvfpga_build_info(__global uint *restrict info)
{
	info[0] = 0x6b766661u; /* "kvfa" */
	info[1] = KVFPGA_KERNEL_ABI;
	info[2] = HEAD_DIM;
	info[3] = BLOCK_SIZE;
	info[4] = N_KV_HEADS;
	info[5] = GROUP_SIZE;
	info[6] = KV_DTYPE;
	info[7] = VEC;
	info[8] = PREFILL_ROWS;
	info[9] = DECODE_FUSED_MERGE;
}
