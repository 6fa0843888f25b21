/* SPDX-License-Identifier: MIT */
/*
 * GGUF (versions 2 and 3, little-endian) models with
 * general.architecture = llama.  Layout: "GGUF", uint32 version, uint64
 * tensor count, uint64 metadata count, the metadata key/values, the tensor
 * infos (name, n_dims, ne[], ggml type, offset), then the tensor data from
 * the next multiple of general.alignment (default 32).  ne[0] is the
 * innermost dimension, so a PyTorch [out, in] weight has ne = {in, out}.
 * Every read is bounds-checked against the mapping.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

enum gguf_type {
	GGUF_U8 = 0,
	GGUF_I8,
	GGUF_U16,
	GGUF_I16,
	GGUF_U32,
	GGUF_I32,
	GGUF_F32,
	GGUF_BOOL,
	GGUF_STRING,
	GGUF_ARRAY,
	GGUF_U64,
	GGUF_I64,
	GGUF_F64,
	GGUF_NTYPES
};

#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KV      (1u << 20)
#define GGUF_MAX_STRING  (1u << 24)
#define GGUF_MAX_DIMS    4u

/* The smallest tensor info: name length, n_dims, one dimension, type, offset. */
#define GGUF_MIN_TENSOR_INFO (8u + 4u + 8u + 4u + 8u)

struct rd {
	const uint8_t *base;
	size_t off, size;
};

struct gguf_str {
	const char *s;
	uint64_t len;
};

struct tensor_info {
	struct gguf_str name;
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint32_t type;
	uint64_t offset;
};

/* Metadata this loader uses. */
struct meta {
	struct gguf_str arch, tok_model, rope_scaling, name;
	bool have_ctx, have_dim, have_blocks, have_ffn, have_heads, have_kv_heads;
	bool have_eps, have_theta, have_rope_dims;
	uint64_t ctx, dim, blocks, ffn, heads, kv_heads, rope_dims, alignment;
	double eps, theta;
	const uint8_t *tokens, *scores, *types;
	uint64_t n_tokens, n_scores, n_types;
	int64_t bos, eos, unk;
};

static bool rd_bytes(struct rd *r, size_t n, const uint8_t **p)
{
	if (n > r->size - r->off)
		return false;
	if (p)
		*p = r->base + r->off;
	r->off += n;
	return true;
}

static bool rd_u32(struct rd *r, uint32_t *v)
{
	const uint8_t *p;

	if (!rd_bytes(r, 4, &p))
		return false;
	memcpy(v, p, 4);
	return true;
}

static bool rd_u64(struct rd *r, uint64_t *v)
{
	const uint8_t *p;

	if (!rd_bytes(r, 8, &p))
		return false;
	memcpy(v, p, 8);
	return true;
}

static bool rd_str(struct rd *r, struct gguf_str *s)
{
	const uint8_t *p;

	if (!rd_u64(r, &s->len) || s->len > GGUF_MAX_STRING || !rd_bytes(r, s->len, &p))
		return false;
	s->s = (const char *)p;
	return true;
}

static bool str_is(const struct gguf_str *s, const char *lit)
{
	return s->s && s->len == strlen(lit) && memcmp(s->s, lit, s->len) == 0;
}

static size_t scalar_size(uint32_t type)
{
	static const size_t sizes[GGUF_NTYPES] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

	return type < GGUF_NTYPES ? sizes[type] : 0;
}

/* A scalar integer of any GGUF integer type, as uint64 (negative -> fails). */
static bool scalar_uint(uint32_t type, const uint8_t *p, uint64_t *v)
{
	int64_t s;

	switch (type) {
	case GGUF_U8:
	case GGUF_BOOL:
		*v = p[0];
		return true;
	case GGUF_I8:
		s = (int8_t)p[0];
		break;
	case GGUF_U16: {
		uint16_t x;
		memcpy(&x, p, 2);
		*v = x;
		return true;
	}
	case GGUF_I16: {
		int16_t x;
		memcpy(&x, p, 2);
		s = x;
		break;
	}
	case GGUF_U32: {
		uint32_t x;
		memcpy(&x, p, 4);
		*v = x;
		return true;
	}
	case GGUF_I32: {
		int32_t x;
		memcpy(&x, p, 4);
		s = x;
		break;
	}
	case GGUF_U64:
		memcpy(v, p, 8);
		return true;
	case GGUF_I64:
		memcpy(&s, p, 8);
		break;
	default:
		return false;
	}
	if (s < 0)
		return false;
	*v = (uint64_t)s;
	return true;
}

static bool scalar_float(uint32_t type, const uint8_t *p, double *v)
{
	if (type == GGUF_F32) {
		float f;
		memcpy(&f, p, 4);
		*v = f;
		return true;
	}
	if (type == GGUF_F64) {
		memcpy(v, p, 8);
		return true;
	}
	return false;
}

/* Skip (and bounds-check) one value of @type; for arrays, report element type/count/start. */
static bool skip_value(struct rd *r, uint32_t type, uint32_t *arr_type, uint64_t *arr_n,
                       const uint8_t **arr_start)
{
	struct gguf_str s;

	if (type == GGUF_STRING)
		return rd_str(r, &s);
	if (type == GGUF_ARRAY) {
		uint32_t et;
		uint64_t n;

		if (!rd_u32(r, &et) || !rd_u64(r, &n))
			return false;
		if (arr_type) {
			*arr_type = et;
			*arr_n = n;
			*arr_start = r->base + r->off;
		}
		if (et == GGUF_STRING) {
			for (uint64_t i = 0; i < n; i++)
				if (!rd_str(r, &s))
					return false;
			return true;
		}
		if (et == GGUF_ARRAY || !scalar_size(et) ||
		    n > (r->size - r->off) / scalar_size(et))
			return false;
		r->off += n * scalar_size(et);
		return true;
	}
	if (!scalar_size(type))
		return false;
	return rd_bytes(r, scalar_size(type), NULL);
}

struct uint_key {
	const char *name;
	uint64_t *val;
	bool *have;
};

static int read_metadata(struct rd *r, uint64_t n_kv, struct meta *mt, char *err, size_t errlen)
{
	for (uint64_t i = 0; i < n_kv; i++) {
		struct gguf_str key;
		uint32_t type, at = 0;
		uint64_t an = 0;
		const uint8_t *val, *astart = NULL;
		const struct uint_key ukeys[] = {
			{ "llama.context_length", &mt->ctx, &mt->have_ctx },
			{ "llama.embedding_length", &mt->dim, &mt->have_dim },
			{ "llama.block_count", &mt->blocks, &mt->have_blocks },
			{ "llama.feed_forward_length", &mt->ffn, &mt->have_ffn },
			{ "llama.attention.head_count", &mt->heads, &mt->have_heads },
			{ "llama.attention.head_count_kv", &mt->kv_heads, &mt->have_kv_heads },
			{ "llama.rope.dimension_count", &mt->rope_dims, &mt->have_rope_dims },
		};

		if (!rd_str(r, &key) || !rd_u32(r, &type))
			return kvfi_fail(err, errlen, -EPROTO,
			                 "GGUF metadata entry %llu of %llu is truncated or corrupt",
			                 (unsigned long long)i, (unsigned long long)n_kv);
		val = r->base + r->off;
		if (!skip_value(r, type, &at, &an, &astart))
			return kvfi_fail(err, errlen, -EPROTO,
			                 "GGUF metadata '%.*s' is truncated or has a bad type %u",
			                 (int)key.len, key.s, type);
		for (size_t k = 0; k < sizeof(ukeys) / sizeof(ukeys[0]); k++) {
			if (!str_is(&key, ukeys[k].name))
				continue;
			if (!scalar_uint(type, val, ukeys[k].val))
				return kvfi_fail(err, errlen, -EINVAL,
				                 "GGUF metadata '%s' is not a non-negative integer",
				                 ukeys[k].name);
			*ukeys[k].have = true;
		}
		if (str_is(&key, "general.alignment")) {
			if (!scalar_uint(type, val, &mt->alignment) || mt->alignment == 0 ||
			    mt->alignment > 65536 || (mt->alignment & (mt->alignment - 1)))
				return kvfi_fail(
				        err, errlen, -EINVAL,
				        "GGUF general.alignment is not a power of two <= 65536");
		} else if (str_is(&key, "general.architecture") ||
		           str_is(&key, "tokenizer.ggml.model") ||
		           str_is(&key, "llama.rope.scaling.type") ||
		           str_is(&key, "general.name")) {
			struct rd sr = { r->base, (size_t)(val - r->base), r->size };
			struct gguf_str *dst = str_is(&key, "general.architecture") ? &mt->arch
			                       : str_is(&key, "tokenizer.ggml.model")
			                               ? &mt->tok_model
			                       : str_is(&key, "general.name") ? &mt->name
			                                                      : &mt->rope_scaling;

			if (type != GGUF_STRING || !rd_str(&sr, dst))
				return kvfi_fail(err, errlen, -EINVAL,
				                 "GGUF metadata '%.*s' is not a string",
				                 (int)key.len, key.s);
		} else if (str_is(&key, "llama.attention.layer_norm_rms_epsilon")) {
			if (!scalar_float(type, val, &mt->eps))
				return kvfi_fail(err, errlen, -EINVAL,
				                 "GGUF layer_norm_rms_epsilon is not a float");
			mt->have_eps = true;
		} else if (str_is(&key, "llama.rope.freq_base")) {
			if (!scalar_float(type, val, &mt->theta))
				return kvfi_fail(err, errlen, -EINVAL,
				                 "GGUF llama.rope.freq_base is not a float");
			mt->have_theta = true;
		} else if (str_is(&key, "tokenizer.ggml.tokens")) {
			if (type != GGUF_ARRAY || at != GGUF_STRING)
				return kvfi_fail(
				        err, errlen, -EINVAL,
				        "GGUF tokenizer.ggml.tokens is not a string array");
			mt->tokens = astart;
			mt->n_tokens = an;
		} else if (str_is(&key, "tokenizer.ggml.scores")) {
			if (type != GGUF_ARRAY || at != GGUF_F32)
				return kvfi_fail(
				        err, errlen, -EINVAL,
				        "GGUF tokenizer.ggml.scores is not a float32 array");
			mt->scores = astart;
			mt->n_scores = an;
		} else if (str_is(&key, "tokenizer.ggml.token_type")) {
			if (type != GGUF_ARRAY || (at != GGUF_I32 && at != GGUF_U32))
				return kvfi_fail(
				        err, errlen, -EINVAL,
				        "GGUF tokenizer.ggml.token_type is not an int32 array");
			mt->types = astart;
			mt->n_types = an;
		} else if (str_is(&key, "tokenizer.ggml.bos_token_id") ||
		           str_is(&key, "tokenizer.ggml.eos_token_id") ||
		           str_is(&key, "tokenizer.ggml.unknown_token_id")) {
			uint64_t id;
			int64_t *dst = key.s[15] == 'b'   ? &mt->bos
			               : key.s[15] == 'e' ? &mt->eos
			                                  : &mt->unk;

			if (!scalar_uint(type, val, &id) || id > INT32_MAX)
				return kvfi_fail(err, errlen, -EINVAL,
				                 "GGUF metadata '%.*s' is not a token id",
				                 (int)key.len, key.s);
			*dst = (int64_t)id;
		}
	}
	return 0;
}

static const char *ggml_type_name(uint32_t type)
{
	static const char *const names[] = {
		"f32",  "f16",  "q4_0", "q4_1", "type 4", "type 5", "q5_0", "q5_1",
		"q8_0", "q8_1", "q2_K", "q3_K", "q4_K",   "q5_K",   "q6_K", "q8_K",
	};

	if (type < sizeof(names) / sizeof(names[0]))
		return names[type];
	if (type == 30)
		return "bf16";
	return "an unknown type";
}

struct extent {
	uint64_t off, end;
	const struct tensor_info *ti;
};

static int extent_cmp(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Tensors of the types this loader reads must lie inside the data and
 * must not overlap: a shape or offset that disagrees with the others is
 * corruption even when each tensor alone looks fine.
 */
static int check_extents(const struct tensor_info *ts, uint64_t n, uint64_t data_size, char *err,
                         size_t errlen)
{
	struct extent *e = calloc(n ? n : 1, sizeof(*e));
	uint64_t k = 0;
	int ret = 0;

	if (!e)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t elems = 1, bytes;

		if (ts[i].type != KVFPGA_DTYPE_F32 && ts[i].type != KVFPGA_DTYPE_F16 &&
		    ts[i].type != KVFPGA_DTYPE_Q8_0)
			continue;
		for (uint32_t d = 0; d < ts[i].n_dims; d++)
			if (__builtin_mul_overflow(elems, ts[i].ne[d], &elems))
				elems = UINT64_MAX;
		bytes = ts[i].type == KVFPGA_DTYPE_F32 ? elems * 4
		        : ts[i].type == KVFPGA_DTYPE_F16
		                ? elems * 2
		                : elems / KVFI_Q8_0_BLOCK * KVFI_Q8_0_BYTES;
		if (elems > (1ull << 48) || ts[i].offset > data_size ||
		    bytes > data_size - ts[i].offset) {
			ret = kvfi_fail(
			        err, errlen, -EPROTO,
			        "GGUF tensor '%.*s' lies past the end of the file: truncated",
			        (int)(ts[i].name.len > 64 ? 64 : ts[i].name.len), ts[i].name.s);
			goto out;
		}
		e[k++] = (struct extent){ ts[i].offset, ts[i].offset + bytes, &ts[i] };
	}
	qsort(e, k, sizeof(*e), extent_cmp);
	for (uint64_t i = 1; i < k; i++) {
		if (e[i].off < e[i - 1].end) {
			ret = kvfi_fail(
			        err, errlen, -EINVAL,
			        "GGUF tensors '%.*s' and '%.*s' overlap: corrupt shape or offset",
			        (int)(e[i - 1].ti->name.len > 64 ? 64 : e[i - 1].ti->name.len),
			        e[i - 1].ti->name.s,
			        (int)(e[i].ti->name.len > 64 ? 64 : e[i].ti->name.len),
			        e[i].ti->name.s);
			goto out;
		}
	}
out:
	free(e);
	return ret;
}

static const struct tensor_info *find_tensor(const struct tensor_info *ts, uint64_t n,
                                             const char *name)
{
	for (uint64_t i = 0; i < n; i++)
		if (str_is(&ts[i].name, name))
			return &ts[i];
	return NULL;
}

struct bind_ctx {
	const struct kvfpga_model *m;
	const struct tensor_info *ts;
	uint64_t n;
	const uint8_t *data;
	size_t data_size;
};

/*
 * Bind tensor @name of shape ne = {cols, rows} (rows == 0: a vector of
 * cols) to @t / @vec.  Vectors must be f32; matrices f32, f16 or q8_0.
 */
static int bind(const struct bind_ctx *b, const char *name, uint32_t cols, uint32_t rows,
                struct kvfi_tensor *t, const float **vec, bool optional, bool *found, char *err,
                size_t errlen)
{
	const struct tensor_info *ti = find_tensor(b->ts, b->n, name);
	uint32_t want_dims = rows ? 2 : 1;
	uint64_t nbytes;
	size_t rb;

	if (found)
		*found = ti != NULL;
	if (!ti) {
		if (optional)
			return 0;
		return kvfi_fail(err, errlen, -EINVAL, "GGUF tensor '%s' is missing", name);
	}
	if (ti->n_dims != want_dims || ti->ne[0] != cols || (rows && ti->ne[1] != rows))
		return kvfi_fail(
		        err, errlen, -EINVAL,
		        "GGUF tensor '%s' has shape [%llu, %llu] (%u dims), expected [%u, %u]",
		        name, (unsigned long long)ti->ne[0],
		        (unsigned long long)(ti->n_dims > 1 ? ti->ne[1] : 1), ti->n_dims, cols,
		        rows ? rows : 1);
	if (vec && ti->type != KVFPGA_DTYPE_F32)
		return kvfi_fail(err, errlen, -ENOTSUP,
		                 "GGUF tensor '%s' is %s; norm weights must be f32", name,
		                 ggml_type_name(ti->type));
	if (ti->type != KVFPGA_DTYPE_F32 && ti->type != KVFPGA_DTYPE_F16 &&
	    ti->type != KVFPGA_DTYPE_Q8_0)
		return kvfi_fail(err, errlen, -ENOTSUP,
		                 "GGUF tensor '%s' is %s (ggml type %u); supported: f32, f16, q8_0",
		                 name, ggml_type_name(ti->type), ti->type);
	rb = kvfi_row_bytes((enum kvfpga_dtype)ti->type, cols);
	if (!rb)
		return kvfi_fail(err, errlen, -EINVAL,
		                 "GGUF tensor '%s': %u columns do not fit %s blocks", name, cols,
		                 ggml_type_name(ti->type));
	nbytes = (uint64_t)rb * (rows ? rows : 1);
	if (ti->offset > b->data_size || nbytes > b->data_size - ti->offset)
		return kvfi_fail(err, errlen, -EPROTO,
		                 "GGUF tensor '%s' (%llu bytes at data offset %llu) lies past the "
		                 "end of the file: truncated",
		                 name, (unsigned long long)nbytes, (unsigned long long)ti->offset);
	if (((uintptr_t)(b->data + ti->offset)) % (ti->type == KVFPGA_DTYPE_F32 ? 4 : 2))
		return kvfi_fail(err, errlen, -EINVAL, "GGUF tensor '%s' is misaligned", name);
	if (vec)
		*vec = (const float *)(b->data + ti->offset);
	else
		kvfi_tensor_init(t, b->data + ti->offset, (enum kvfpga_dtype)ti->type, rows, cols);
	return 0;
}

static int bind_layers(struct kvfpga_model *m, const struct bind_ctx *b, char *err, size_t errlen)
{
	const struct kvfpga_model_config *c = &m->cfg;
	uint32_t kv_dim = c->n_kv_heads * c->head_dim;
	char name[64];
	int ret;

	m->layers = calloc(c->n_layers, sizeof(*m->layers));
	if (!m->layers)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	for (uint32_t l = 0; l < c->n_layers; l++) {
		struct kvfi_layer *ly = &m->layers[l];
		const struct {
			const char *suffix;
			uint32_t cols, rows;
			struct kvfi_tensor *t;
			const float **vec;
		} parts[] = {
			{ "attn_norm", c->dim, 0, NULL, &ly->rms_att },
			{ "attn_q", c->dim, c->dim, &ly->wq, NULL },
			{ "attn_k", c->dim, kv_dim, &ly->wk, NULL },
			{ "attn_v", c->dim, kv_dim, &ly->wv, NULL },
			{ "attn_output", c->dim, c->dim, &ly->wo, NULL },
			{ "ffn_norm", c->dim, 0, NULL, &ly->rms_ffn },
			{ "ffn_gate", c->dim, c->hidden_dim, &ly->w1, NULL },
			{ "ffn_down", c->hidden_dim, c->dim, &ly->w2, NULL },
			{ "ffn_up", c->dim, c->hidden_dim, &ly->w3, NULL },
		};

		for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
			snprintf(name, sizeof(name), "blk.%u.%s.weight", l, parts[i].suffix);
			ret = bind(b, name, parts[i].cols, parts[i].rows, parts[i].t, parts[i].vec,
			           false, NULL, err, errlen);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int check_vocab(struct kvfpga_model *m, const struct meta *mt, char *err, size_t errlen)
{
	if (!mt->tokens)
		return 0; /* a model without a vocabulary needs a separate tokenizer */
	if (mt->tok_model.s && !str_is(&mt->tok_model, "llama"))
		return 0; /* kvfpga_tokenizer_from_model reports the unsupported kind */
	if (mt->n_tokens == 0 || mt->n_tokens > m->cfg.vocab_size)
		return kvfi_fail(err, errlen, -EINVAL,
		                 "GGUF vocabulary has %llu tokens but the embedding has %u rows",
		                 (unsigned long long)mt->n_tokens, m->cfg.vocab_size);
	if (mt->scores && mt->n_scores != mt->n_tokens)
		return kvfi_fail(err, errlen, -EINVAL, "GGUF has %llu token scores for %llu tokens",
		                 (unsigned long long)mt->n_scores,
		                 (unsigned long long)mt->n_tokens);
	if (mt->types && mt->n_types != mt->n_tokens)
		return kvfi_fail(err, errlen, -EINVAL, "GGUF has %llu token types for %llu tokens",
		                 (unsigned long long)mt->n_types, (unsigned long long)mt->n_tokens);
	m->vocab.present = 1;
	m->vocab.n_tokens = mt->n_tokens;
	m->vocab.tokens = mt->tokens;
	m->vocab.scores = mt->scores;
	m->vocab.token_types = mt->types;
	m->vocab.bos = mt->bos;
	m->vocab.eos = mt->eos;
	m->vocab.unk = mt->unk;
	return 0;
}

int kvfi_load_gguf(struct kvfpga_model *m, char *err, size_t errlen)
{
	struct kvfpga_model_config *c = &m->cfg;
	struct rd r = { m->map, 0, m->map_size };
	struct tensor_info *ts = NULL;
	struct meta mt;
	uint32_t magic, version;
	uint64_t n_tensors, n_kv, data_start;
	struct bind_ctx b;
	bool have_output;
	int ret;

	memset(&mt, 0, sizeof(mt));
	mt.alignment = 32;
	mt.bos = mt.eos = mt.unk = -1;
	if (!rd_u32(&r, &magic) || memcmp(&magic, "GGUF", 4) != 0)
		return kvfi_fail(err, errlen, -EINVAL, "not a GGUF file (bad magic)");
	if (!rd_u32(&r, &version))
		return kvfi_fail(err, errlen, -EPROTO, "GGUF header truncated");
	if (version != 2 && version != 3)
		return kvfi_fail(err, errlen, -ENOTSUP,
		                 "GGUF version %u is not supported (only 2 and 3)", version);
	if (!rd_u64(&r, &n_tensors) || !rd_u64(&r, &n_kv))
		return kvfi_fail(err, errlen, -EPROTO, "GGUF header truncated");
	if (n_tensors > GGUF_MAX_TENSORS || n_kv > GGUF_MAX_KV)
		return kvfi_fail(
		        err, errlen, -EINVAL,
		        "GGUF header claims %llu tensors and %llu metadata entries: corrupt",
		        (unsigned long long)n_tensors, (unsigned long long)n_kv);
	ret = read_metadata(&r, n_kv, &mt, err, errlen);
	if (ret)
		return ret;
	if (!mt.arch.s)
		return kvfi_fail(err, errlen, -EINVAL, "GGUF has no general.architecture");
	if (!str_is(&mt.arch, "llama"))
		return kvfi_fail(err, errlen, -EINVAL,
		                 "GGUF architecture is '%.*s'; only 'llama' is supported",
		                 (int)(mt.arch.len > 64 ? 64 : mt.arch.len), mt.arch.s);
	if (mt.rope_scaling.s && !str_is(&mt.rope_scaling, "none"))
		return kvfi_fail(err, errlen, -ENOTSUP, "GGUF RoPE scaling '%.*s' is not supported",
		                 (int)(mt.rope_scaling.len > 64 ? 64 : mt.rope_scaling.len),
		                 mt.rope_scaling.s);
	{
		const struct {
			const char *name;
			bool have;
		} req[] = {
			{ "llama.embedding_length", mt.have_dim },
			{ "llama.block_count", mt.have_blocks },
			{ "llama.feed_forward_length", mt.have_ffn },
			{ "llama.attention.head_count", mt.have_heads },
			{ "llama.context_length", mt.have_ctx },
		};

		for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
			if (!req[i].have)
				return kvfi_fail(err, errlen, -EINVAL, "GGUF metadata lacks %s",
				                 req[i].name);
	}
	if (mt.dim > KVFI_MAX_DIM || mt.ffn > KVFI_MAX_HIDDEN || mt.blocks > KVFI_MAX_LAYERS ||
	    mt.heads > KVFI_MAX_HEADS || (mt.have_kv_heads && mt.kv_heads > KVFI_MAX_HEADS) ||
	    mt.ctx > UINT32_MAX)
		return kvfi_fail(
		        err, errlen, -EINVAL,
		        "GGUF hyperparameters are absurd (dim %llu, ffn %llu, %llu blocks, "
		        "%llu heads, context %llu)",
		        (unsigned long long)mt.dim, (unsigned long long)mt.ffn,
		        (unsigned long long)mt.blocks, (unsigned long long)mt.heads,
		        (unsigned long long)mt.ctx);
	c->dim = (uint32_t)mt.dim;
	c->hidden_dim = (uint32_t)mt.ffn;
	c->n_layers = (uint32_t)mt.blocks;
	c->n_heads = (uint32_t)mt.heads;
	c->n_kv_heads = (uint32_t)(mt.have_kv_heads ? mt.kv_heads : mt.heads);
	c->seq_len = (uint32_t)(mt.ctx > KVFI_MAX_SEQ_LEN ? KVFI_MAX_SEQ_LEN : mt.ctx);
	c->rms_eps = mt.have_eps ? (float)mt.eps : 1e-5f;
	if (mt.name.s) {
		/* Printable ASCII only: the name is shown to users. */
		size_t n = 0;

		for (uint64_t i = 0; i < mt.name.len && n + 1 < sizeof(c->name); i++)
			if (mt.name.s[i] >= 0x20 && mt.name.s[i] < 0x7f)
				c->name[n++] = mt.name.s[i];
		c->name[n] = '\0';
	}
	c->rope_theta = mt.have_theta ? (float)mt.theta : 10000.0f;

	/*
	 * Tensor infos.  Each takes at least GGUF_MIN_TENSOR_INFO bytes of the
	 * file: a count the rest of the file cannot hold is corruption, and must
	 * not cost an allocation sized by it (found by tests/fuzz/fuzz_gguf.c).
	 */
	if (n_tensors > (m->map_size - r.off) / GGUF_MIN_TENSOR_INFO)
		return kvfi_fail(err, errlen, -EPROTO,
		                 "GGUF header claims %llu tensors but only %zu bytes follow: "
		                 "truncated or corrupt",
		                 (unsigned long long)n_tensors, m->map_size - r.off);
	ts = calloc(n_tensors ? n_tensors : 1, sizeof(*ts));
	if (!ts)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n_tensors; i++) {
		struct tensor_info *ti = &ts[i];

		if (!rd_str(&r, &ti->name) || !rd_u32(&r, &ti->n_dims)) {
			ret = kvfi_fail(err, errlen, -EPROTO, "GGUF tensor info %llu truncated",
			                (unsigned long long)i);
			goto out;
		}
		if (ti->n_dims == 0 || ti->n_dims > GGUF_MAX_DIMS) {
			ret = kvfi_fail(err, errlen, -EINVAL,
			                "GGUF tensor '%.*s' has %u dimensions",
			                (int)(ti->name.len > 64 ? 64 : ti->name.len), ti->name.s,
			                ti->n_dims);
			goto out;
		}
		for (uint32_t d = 0; d < ti->n_dims; d++) {
			if (!rd_u64(&r, &ti->ne[d]) || ti->ne[d] == 0 || ti->ne[d] > UINT32_MAX) {
				ret = kvfi_fail(err, errlen, -EINVAL,
				                "GGUF tensor '%.*s' has a bad or truncated shape",
				                (int)(ti->name.len > 64 ? 64 : ti->name.len),
				                ti->name.s);
				goto out;
			}
		}
		if (!rd_u32(&r, &ti->type) || !rd_u64(&r, &ti->offset)) {
			ret = kvfi_fail(err, errlen, -EPROTO, "GGUF tensor info %llu truncated",
			                (unsigned long long)i);
			goto out;
		}
		if (ti->offset % mt.alignment) {
			ret = kvfi_fail(err, errlen, -EINVAL,
			                "GGUF tensor '%.*s' offset %llu is not aligned to %llu",
			                (int)(ti->name.len > 64 ? 64 : ti->name.len), ti->name.s,
			                (unsigned long long)ti->offset,
			                (unsigned long long)mt.alignment);
			goto out;
		}
	}
	data_start = (r.off + mt.alignment - 1) / mt.alignment * mt.alignment;
	if (data_start > m->map_size) {
		ret = kvfi_fail(err, errlen, -EPROTO, "GGUF file ends before its tensor data");
		goto out;
	}

	ret = check_extents(ts, n_tensors, m->map_size - data_start, err, errlen);
	if (ret)
		goto out;

	/* The embedding fixes the vocabulary size. */
	{
		const struct tensor_info *emb = find_tensor(ts, n_tensors, "token_embd.weight");

		if (!emb) {
			ret = kvfi_fail(err, errlen, -EINVAL,
			                "GGUF tensor 'token_embd.weight' is missing");
			goto out;
		}
		c->vocab_size =
		        emb->n_dims == 2 && emb->ne[1] <= KVFI_MAX_VOCAB ? (uint32_t)emb->ne[1] : 0;
	}
	ret = kvfi_check_config(c, err, errlen);
	if (ret)
		goto out;
	if (mt.have_rope_dims && mt.rope_dims != c->head_dim) {
		ret = kvfi_fail(
		        err, errlen, -ENOTSUP,
		        "GGUF llama.rope.dimension_count %llu != head size %u (partial RoPE "
		        "is not supported)",
		        (unsigned long long)mt.rope_dims, c->head_dim);
		goto out;
	}
	b.m = m;
	b.ts = ts;
	b.n = n_tensors;
	b.data = (const uint8_t *)m->map + data_start;
	b.data_size = m->map_size - data_start;
	ret = bind(&b, "token_embd.weight", c->dim, c->vocab_size, &m->tok_embd, NULL, false, NULL,
	           err, errlen);
	if (!ret)
		ret = bind(&b, "output_norm.weight", c->dim, 0, NULL, &m->rms_final, false, NULL,
		           err, errlen);
	if (!ret)
		ret = bind(&b, "output.weight", c->dim, c->vocab_size, &m->wcls, NULL, true,
		           &have_output, err, errlen);
	if (!ret)
		ret = bind_layers(m, &b, err, errlen);
	if (!ret)
		ret = check_vocab(m, &mt, err, errlen);
	if (ret)
		goto out;
	c->shared_classifier = !have_output;
	if (!have_output)
		m->wcls = m->tok_embd;
out:
	free(ts);
	return ret;
}
