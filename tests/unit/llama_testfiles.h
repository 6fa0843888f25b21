/* SPDX-License-Identifier: MIT */
/*
 * Test helpers (header-only, included by the inference tests): random
 * llama weights held in memory, and writers for llama2.c checkpoints,
 * tokenizer.bin and GGUF files built from them.  Written independently
 * of the library's loaders so that they check each other.
 */
#ifndef KVFPGA_TEST_LLAMA_TESTFILES_H
#define KVFPGA_TEST_LLAMA_TESTFILES_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tf_shape {
	uint32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
	int untied;
};

struct tf_model {
	struct tf_shape s;
	uint32_t head_dim, kv_dim;
	float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
};

/* GGUF tensor types (ggml ids). */
enum { TF_F32 = 0, TF_F16 = 1, TF_Q8_0 = 8 };

static inline uint64_t tf_rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-a, a). */
static inline float tf_uniform(uint64_t *s, float a)
{
	return (float)(((double)(tf_rng(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0) * a);
}

static inline float *tf_fill(uint64_t *seed, size_t n, float center, float a)
{
	float *p = malloc(n * sizeof(float));

	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = center + tf_uniform(seed, a);
	return p;
}

static inline void tf_model_make(struct tf_model *m, const struct tf_shape *s, uint64_t seed)
{
	size_t d = s->dim, h = s->hidden, L = s->layers, kv;

	memset(m, 0, sizeof(*m));
	m->s = *s;
	m->head_dim = s->dim / s->heads;
	m->kv_dim = m->head_dim * s->kv_heads;
	kv = m->kv_dim;
	m->emb = tf_fill(&seed, (size_t)s->vocab * d, 0.0f, 1.0f);
	m->rms_att = tf_fill(&seed, L * d, 1.0f, 0.2f);
	m->wq = tf_fill(&seed, L * d * d, 0.0f, 1.7f / sqrtf((float)d));
	m->wk = tf_fill(&seed, L * d * kv, 0.0f, 1.7f / sqrtf((float)d));
	m->wv = tf_fill(&seed, L * d * kv, 0.0f, 1.7f / sqrtf((float)d));
	m->wo = tf_fill(&seed, L * d * d, 0.0f, 1.7f / sqrtf((float)d));
	m->rms_ffn = tf_fill(&seed, L * d, 1.0f, 0.2f);
	m->w1 = tf_fill(&seed, L * h * d, 0.0f, 1.7f / sqrtf((float)d));
	m->w2 = tf_fill(&seed, L * d * h, 0.0f, 1.7f / sqrtf((float)h));
	m->w3 = tf_fill(&seed, L * h * d, 0.0f, 1.7f / sqrtf((float)d));
	m->rms_final = tf_fill(&seed, d, 1.0f, 0.2f);
	m->wcls = s->untied ? tf_fill(&seed, (size_t)s->vocab * d, 0.0f, 1.0f) : m->emb;
}

static inline void tf_model_free(struct tf_model *m)
{
	if (m->wcls != m->emb)
		free(m->wcls);
	free(m->emb);
	free(m->rms_att);
	free(m->wq);
	free(m->wk);
	free(m->wv);
	free(m->wo);
	free(m->rms_ffn);
	free(m->w1);
	free(m->w2);
	free(m->w3);
	free(m->rms_final);
	memset(m, 0, sizeof(*m));
}

/* IEEE half conversions, written here independently of the library's. */
static inline float tf_h2f(uint16_t h)
{
	int e = (h >> 10) & 31, mnt = h & 1023;
	float v;

	if (e == 0)
		v = ldexpf((float)mnt, -24);
	else if (e == 31)
		v = mnt ? NAN : INFINITY;
	else
		v = ldexpf((float)(mnt + 1024), e - 25);
	return (h & 0x8000) ? -v : v;
}

static inline uint16_t tf_f2h(float f)
{
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	float a = fabsf(f);
	int e;

	if (a < ldexpf(1.0f, -14)) /* subnormal: multiples of 2^-24 */
		return sign | (uint16_t)lrintf(a * 16777216.0f);
	frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
	if (e > 16)
		return sign | 0x7c00;
	{
		long q = lrintf(ldexpf(a, 11 - e)); /* 11 significant bits, [1024, 2048] */
		int be = e - 1 + 15;

		if (q == 2048) {
			q = 1024;
			be++;
		}
		if (be >= 31)
			return sign | 0x7c00;
		return sign | (uint16_t)(be << 10) | (uint16_t)(q - 1024);
	}
}

/* Bytes of one row of @cols elements of @type. */
static inline size_t tf_row_bytes(int type, size_t cols)
{
	return type == TF_F32 ? cols * 4 : type == TF_F16 ? cols * 2 : cols / 32 * 34;
}

/* Encode @n values as @type into @out; rewrite @v to the values the encoding holds. */
static inline void tf_encode(int type, float *v, size_t n, uint8_t *out)
{
	if (type == TF_F32) {
		memcpy(out, v, n * 4);
	} else if (type == TF_F16) {
		for (size_t i = 0; i < n; i++) {
			uint16_t h = tf_f2h(v[i]);

			memcpy(out + 2 * i, &h, 2);
			v[i] = tf_h2f(h);
		}
	} else {
		for (size_t b = 0; b < n / 32; b++) {
			float amax = 0.0f, d, id;
			uint8_t *blk = out + b * 34;
			uint16_t dh;

			for (int i = 0; i < 32; i++)
				amax = fmaxf(amax, fabsf(v[b * 32 + i]));
			d = amax / 127.0f;
			id = d ? 1.0f / d : 0.0f;
			dh = tf_f2h(d);
			memcpy(blk, &dh, 2);
			for (int i = 0; i < 32; i++) {
				int q = (int)lrintf(v[b * 32 + i] * id);

				blk[2 + i] = (uint8_t)(int8_t)q;
				v[b * 32 + i] = tf_h2f(dh) * (float)q;
			}
		}
	}
}

static inline int tf_write_all(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	size_t w;

	if (!f)
		return -1;
	w = fwrite(buf, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

struct tf_buf {
	uint8_t *p;
	size_t n, cap;
};

static inline void tf_put(struct tf_buf *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 4096) + n;

		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, src, n);
	b->n += n;
}

static inline void tf_put_u32(struct tf_buf *b, uint32_t v)
{
	tf_put(b, &v, 4);
}

static inline void tf_put_u64(struct tf_buf *b, uint64_t v)
{
	tf_put(b, &v, 8);
}

static inline void tf_put_f32(struct tf_buf *b, float v)
{
	tf_put(b, &v, 4);
}

/* llama2.c legacy checkpoint; freq_cis tables hold llama2.c's values. */
static inline int tf_write_llama2c(const char *path, const struct tf_model *m)
{
	const struct tf_shape *s = &m->s;
	size_t d = s->dim, h = s->hidden, L = s->layers, kv = m->kv_dim, hs = m->head_dim;
	struct tf_buf b = { 0 };
	int32_t hdr[7] = { (int32_t)s->dim,      (int32_t)s->hidden,
		           (int32_t)s->layers,   (int32_t)s->heads,
		           (int32_t)s->kv_heads, s->untied ? -(int32_t)s->vocab : (int32_t)s->vocab,
		           (int32_t)s->seq_len };
	int ret;

	tf_put(&b, hdr, sizeof(hdr));
	tf_put(&b, m->emb, (size_t)s->vocab * d * 4);
	tf_put(&b, m->rms_att, L * d * 4);
	tf_put(&b, m->wq, L * d * d * 4);
	tf_put(&b, m->wk, L * d * kv * 4);
	tf_put(&b, m->wv, L * d * kv * 4);
	tf_put(&b, m->wo, L * d * d * 4);
	tf_put(&b, m->rms_ffn, L * d * 4);
	tf_put(&b, m->w1, L * h * d * 4);
	tf_put(&b, m->w2, L * d * h * 4);
	tf_put(&b, m->w3, L * h * d * 4);
	tf_put(&b, m->rms_final, d * 4);
	for (int part = 0; part < 2; part++)
		for (size_t p = 0; p < s->seq_len; p++)
			for (size_t i = 0; i < hs / 2; i++) {
				double a = p * pow(10000.0, -(double)(2 * i) / hs);

				tf_put_f32(&b, (float)(part ? sin(a) : cos(a)));
			}
	if (s->untied)
		tf_put(&b, m->wcls, (size_t)s->vocab * d * 4);
	ret = tf_write_all(path, b.p, b.n);
	free(b.p);
	return ret;
}

/* tokenizer.bin from @n pieces (NUL-terminated) and scores. */
static inline int tf_write_tokenizer(const char *path, const char *const *pieces,
                                     const float *scores, uint32_t n)
{
	struct tf_buf b = { 0 };
	uint32_t maxlen = 0;
	int ret;

	for (uint32_t i = 0; i < n; i++)
		if (strlen(pieces[i]) > maxlen)
			maxlen = (uint32_t)strlen(pieces[i]);
	tf_put_u32(&b, maxlen);
	for (uint32_t i = 0; i < n; i++) {
		tf_put_f32(&b, scores[i]);
		tf_put_u32(&b, (uint32_t)strlen(pieces[i]));
		tf_put(&b, pieces[i], strlen(pieces[i]));
	}
	ret = tf_write_all(path, b.p, b.n);
	free(b.p);
	return ret;
}

struct tf_gguf_opts {
	int type;              /* TF_F32 / TF_F16 / TF_Q8_0 for matrices */
	uint32_t version;      /* 3 unless set */
	const char *arch;      /* "llama" unless set */
	const char *omit;      /* a tensor name to leave out */
	const char *bad_shape; /* a tensor name written with a wrong shape */
	const char *bad_type;  /* a tensor name written with type q4_0 (2) */
	int omit_head_count;   /* leave out llama.attention.head_count */
	uint64_t absurd_dim;   /* nonzero: llama.embedding_length value */
	/* Vocabulary (SentencePiece spaces as U+2581), or none. */
	const char *const *tokens;
	const float *scores;
	const int32_t *types;
	uint32_t n_tokens;
};

static inline void tf_put_str(struct tf_buf *b, const char *s)
{
	tf_put_u64(b, strlen(s));
	tf_put(b, s, strlen(s));
}

static inline void tf_kv_u32(struct tf_buf *b, const char *k, uint32_t v)
{
	tf_put_str(b, k);
	tf_put_u32(b, 4);
	tf_put_u32(b, v);
}

struct tf_tensor {
	char name[64];
	uint32_t n_dims;
	uint64_t ne[2];
	int type;
	float *v; /* values (rewritten to what the encoding holds) */
	size_t n;
};

/*
 * GGUF llama file from @m.  Matrices are encoded as opts->type and @m's
 * arrays are rewritten to the values the file holds, so a reference
 * computed from @m afterwards sees exactly the file's weights.
 */
static inline int tf_write_gguf(const char *path, struct tf_model *m, const struct tf_gguf_opts *o)
{
	const struct tf_shape *s = &m->s;
	size_t d = s->dim, h = s->hidden, kv = m->kv_dim;
	struct tf_tensor *ts = calloc(4 + 9 * (size_t)s->layers, sizeof(*ts));
	struct tf_buf b = { 0 };
	size_t nt = 0, data_off = 0, n_kv = 0;
	uint64_t kv_count_pos;
	int ret;

#define TENSOR(nm, dims, c, r, ty, ptr, cnt)                                                       \
	do {                                                                                       \
		snprintf(ts[nt].name, sizeof(ts[nt].name), "%s", nm);                              \
		ts[nt].n_dims = dims;                                                              \
		ts[nt].ne[0] = c;                                                                  \
		ts[nt].ne[1] = r;                                                                  \
		ts[nt].type = ty;                                                                  \
		ts[nt].v = ptr;                                                                    \
		ts[nt].n = cnt;                                                                    \
		nt++;                                                                              \
	} while (0)
	TENSOR("token_embd.weight", 2, d, s->vocab, o->type, m->emb, (size_t)s->vocab * d);
	for (uint32_t l = 0; l < s->layers; l++) {
		char nm[64];

#define LAYER(suffix, dims, c, r, ty, ptr, cnt)                                                    \
	do {                                                                                       \
		snprintf(nm, sizeof(nm), "blk.%u.%s.weight", l, suffix);                           \
		TENSOR(nm, dims, c, r, ty, ptr, cnt);                                              \
	} while (0)
		LAYER("attn_norm", 1, d, 1, TF_F32, m->rms_att + l * d, d);
		LAYER("attn_q", 2, d, d, o->type, m->wq + l * d * d, d * d);
		LAYER("attn_k", 2, d, kv, o->type, m->wk + l * d * kv, d * kv);
		LAYER("attn_v", 2, d, kv, o->type, m->wv + l * d * kv, d * kv);
		LAYER("attn_output", 2, d, d, o->type, m->wo + l * d * d, d * d);
		LAYER("ffn_norm", 1, d, 1, TF_F32, m->rms_ffn + l * d, d);
		LAYER("ffn_gate", 2, d, h, o->type, m->w1 + l * h * d, h * d);
		LAYER("ffn_down", 2, h, d, o->type, m->w2 + l * d * h, d * h);
		LAYER("ffn_up", 2, d, h, o->type, m->w3 + l * h * d, h * d);
#undef LAYER
	}
	TENSOR("output_norm.weight", 1, d, 1, TF_F32, m->rms_final, d);
	if (s->untied)
		TENSOR("output.weight", 2, d, s->vocab, o->type, m->wcls, (size_t)s->vocab * d);
#undef TENSOR

	tf_put(&b, "GGUF", 4);
	tf_put_u32(&b, o->version ? o->version : 3);
	tf_put_u64(&b, 0); /* tensor count, patched below */
	kv_count_pos = b.n;
	tf_put_u64(&b, 0);
	tf_put_str(&b, "general.architecture");
	tf_put_u32(&b, 8);
	tf_put_str(&b, o->arch ? o->arch : "llama");
	n_kv++;
	tf_put_str(&b, "general.name");
	tf_put_u32(&b, 8);
	tf_put_str(&b, "kvfpga test model");
	n_kv++;
	tf_kv_u32(&b, "llama.context_length", s->seq_len), n_kv++;
	if (o->absurd_dim) {
		tf_put_str(&b, "llama.embedding_length");
		tf_put_u32(&b, 10); /* u64 */
		tf_put_u64(&b, o->absurd_dim);
	} else {
		tf_kv_u32(&b, "llama.embedding_length", s->dim);
	}
	n_kv++;
	tf_kv_u32(&b, "llama.block_count", s->layers), n_kv++;
	tf_kv_u32(&b, "llama.feed_forward_length", s->hidden), n_kv++;
	if (!o->omit_head_count)
		tf_kv_u32(&b, "llama.attention.head_count", s->heads), n_kv++;
	tf_kv_u32(&b, "llama.attention.head_count_kv", s->kv_heads), n_kv++;
	tf_kv_u32(&b, "llama.rope.dimension_count", m->head_dim), n_kv++;
	tf_put_str(&b, "llama.attention.layer_norm_rms_epsilon");
	tf_put_u32(&b, 6);
	tf_put_f32(&b, 1e-5f);
	n_kv++;
	tf_put_str(&b, "llama.rope.freq_base");
	tf_put_u32(&b, 6);
	tf_put_f32(&b, 10000.0f);
	n_kv++;
	if (o->tokens) {
		tf_put_str(&b, "tokenizer.ggml.model");
		tf_put_u32(&b, 8);
		tf_put_str(&b, "llama");
		n_kv++;
		tf_put_str(&b, "tokenizer.ggml.tokens");
		tf_put_u32(&b, 9);
		tf_put_u32(&b, 8);
		tf_put_u64(&b, o->n_tokens);
		for (uint32_t i = 0; i < o->n_tokens; i++)
			tf_put_str(&b, o->tokens[i]);
		n_kv++;
		tf_put_str(&b, "tokenizer.ggml.scores");
		tf_put_u32(&b, 9);
		tf_put_u32(&b, 6);
		tf_put_u64(&b, o->n_tokens);
		tf_put(&b, o->scores, 4 * (size_t)o->n_tokens);
		n_kv++;
		tf_put_str(&b, "tokenizer.ggml.token_type");
		tf_put_u32(&b, 9);
		tf_put_u32(&b, 5);
		tf_put_u64(&b, o->n_tokens);
		tf_put(&b, o->types, 4 * (size_t)o->n_tokens);
		n_kv++;
		tf_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1), n_kv++;
		tf_kv_u32(&b, "tokenizer.ggml.eos_token_id", 2), n_kv++;
	}
	memcpy(b.p + kv_count_pos, &(uint64_t){ n_kv }, 8);

	/* Tensor infos, then data at 32-byte aligned offsets. */
	{
		uint64_t written = 0;

		for (size_t i = 0; i < nt; i++) {
			struct tf_tensor *t = &ts[i];
			size_t bytes;

			if (o->omit && !strcmp(o->omit, t->name))
				continue;
			if (o->bad_type && !strcmp(o->bad_type, t->name))
				t->type = 2;
			tf_put_str(&b, t->name);
			tf_put_u32(&b, t->n_dims);
			tf_put_u64(&b, t->ne[0]);
			if (t->n_dims > 1)
				tf_put_u64(&b, t->ne[1] + (o->bad_shape &&
				                           !strcmp(o->bad_shape, t->name)));
			tf_put_u32(&b, (uint32_t)t->type);
			tf_put_u64(&b, data_off);
			bytes = t->type == 2 ? t->n / 32 * 18 : tf_row_bytes(t->type, t->n);
			data_off += (bytes + 31) / 32 * 32;
			written++;
		}
		memcpy(b.p + 8, &written, 8);
	}
	while (b.n % 32)
		tf_put(&b, "", 1);
	for (size_t i = 0; i < nt; i++) {
		struct tf_tensor *t = &ts[i];
		size_t bytes = t->type == 2 ? t->n / 32 * 18 : tf_row_bytes(t->type, t->n);
		uint8_t *enc = calloc(1, bytes + 32);

		if (o->omit && !strcmp(o->omit, t->name)) {
			free(enc);
			continue;
		}
		if (t->type != 2)
			tf_encode(t->type, t->v, t->n, enc);
		tf_put(&b, enc, (bytes + 31) / 32 * 32);
		free(enc);
	}
	ret = tf_write_all(path, b.p, b.n);
	free(b.p);
	free(ts);
	return ret;
}

/* Truncate (or copy) @src to @len bytes at @dst. */
static inline int tf_copy_prefix(const char *src, const char *dst, size_t len)
{
	FILE *f = fopen(src, "rb");
	uint8_t *buf = malloc(len ? len : 1);
	size_t got;
	int ret;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return -1;
	}
	got = fread(buf, 1, len, f);
	fclose(f);
	ret = tf_write_all(dst, buf, got);
	free(buf);
	return got == len ? ret : -1;
}

static inline long tf_file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fclose(f);
	return n;
}

#endif /* KVFPGA_TEST_LLAMA_TESTFILES_H */
