/* SPDX-License-Identifier: MIT */
/*
 * SentencePiece-style BPE (llama), after llama.cpp's llm_tokenizer_spm:
 * the text (with a leading dummy-prefix space) is split into UTF-8
 * characters, then adjacent symbols are merged, best vocabulary score
 * first (leftmost on ties), while their concatenation is a normal piece.
 * A final symbol that is not a piece falls back to its bytes' <0xXX>
 * tokens.  Pieces are kept with ' ' for SentencePiece's U+2581.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfpga/tokenizer.h"
#include "model_internal.h"

enum piece_kind {
	PIECE_NORMAL = 1,
	PIECE_UNKNOWN = 2,
	PIECE_CONTROL = 3,
	PIECE_USER = 4,
	PIECE_UNUSED = 5,
	PIECE_BYTE = 6,
};

#define MAX_PIECE_LEN (1u << 16)
#define MAX_TEXT_LEN  (1u << 30)
#define NO_TOKEN      UINT32_MAX

struct piece {
	uint32_t off, len; /* in pool */
	float score;
	uint8_t kind;
	uint8_t byte; /* value of a byte token */
};

struct kvfpga_tokenizer {
	uint32_t n;
	struct piece *p;
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *slots; /* open addressing: id + 1, 0 = empty */
	uint32_t slot_mask;
	uint32_t byte_token[256]; /* NO_TOKEN when absent */
	uint8_t byte_value[256];  /* byte_value[b] == b: what byte tokens' pieces point at */
	uint32_t bos, eos, unk;
	uint32_t max_piece_len;
};

struct kvfpga_detok {
	const struct kvfpga_tokenizer *tok;
	uint8_t pend[4];
	uint8_t npend, need;
	bool at_start;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint32_t lookup(const struct kvfpga_tokenizer *t, const char *s, size_t n)
{
	uint32_t i = (uint32_t)hash_bytes(s, n) & t->slot_mask;

	for (;; i = (i + 1) & t->slot_mask) {
		uint32_t id = t->slots[i];

		if (!id)
			return NO_TOKEN;
		id--;
		if (t->p[id].len == n && memcmp(t->pool + t->p[id].off, s, n) == 0)
			return id;
	}
}

/* A piece that text may turn into (not a control, byte or unused token). */
static uint32_t lookup_text(const struct kvfpga_tokenizer *t, const char *s, size_t n)
{
	uint32_t id = lookup(t, s, n);

	if (id == NO_TOKEN || (t->p[id].kind != PIECE_NORMAL && t->p[id].kind != PIECE_USER))
		return NO_TOKEN;
	return id;
}

static struct kvfpga_tokenizer *tok_new(uint32_t n)
{
	struct kvfpga_tokenizer *t = calloc(1, sizeof(*t));
	uint32_t cap = 16;

	if (!t)
		return NULL;
	while (cap < 2 * n)
		cap <<= 1;
	t->n = n;
	t->p = calloc(n, sizeof(*t->p));
	t->slots = calloc(cap, sizeof(*t->slots));
	t->slot_mask = cap - 1;
	t->pool_cap = (size_t)n * 8 + 64;
	t->pool = malloc(t->pool_cap);
	if (!t->p || !t->slots || !t->pool) {
		kvfpga_tokenizer_free(t);
		return NULL;
	}
	for (int b = 0; b < 256; b++) {
		t->byte_token[b] = NO_TOKEN;
		t->byte_value[b] = (uint8_t)b;
	}
	t->bos = 1;
	t->eos = 2;
	t->unk = NO_TOKEN;
	return t;
}

/* Append piece @id's text, mapping U+2581 to ' ' when @sp_spaces. */
static int tok_set(struct kvfpga_tokenizer *t, uint32_t id, const char *s, size_t n, float score,
                   bool sp_spaces)
{
	struct piece *p = &t->p[id];
	size_t o = 0;

	if (t->pool_len + n + 1 > t->pool_cap) {
		size_t cap = t->pool_cap * 2 + n + 1;
		char *np = realloc(t->pool, cap);

		if (!np)
			return -ENOMEM;
		t->pool = np;
		t->pool_cap = cap;
	}
	p->off = (uint32_t)t->pool_len;
	for (size_t i = 0; i < n; i++) {
		if (sp_spaces && i + 2 < n && (uint8_t)s[i] == 0xe2 && (uint8_t)s[i + 1] == 0x96 &&
		    (uint8_t)s[i + 2] == 0x81) {
			t->pool[p->off + o++] = ' ';
			i += 2;
		} else {
			t->pool[p->off + o++] = s[i];
		}
	}
	t->pool[p->off + o] = '\0';
	p->len = (uint32_t)o;
	p->score = score;
	t->pool_len += o + 1;
	if (o > t->max_piece_len)
		t->max_piece_len = (uint32_t)o;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Index every piece; recognise <0xXX> byte tokens. */
static void tok_index(struct kvfpga_tokenizer *t)
{
	for (uint32_t id = 0; id < t->n; id++) {
		struct piece *p = &t->p[id];
		const char *s = t->pool + p->off;
		uint32_t i = (uint32_t)hash_bytes(s, p->len) & t->slot_mask;

		if (p->len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
		    hexval(s[3]) >= 0 && hexval(s[4]) >= 0 &&
		    (p->kind == PIECE_BYTE || p->kind == PIECE_NORMAL)) {
			p->kind = PIECE_BYTE;
			p->byte = (uint8_t)(hexval(s[3]) * 16 + hexval(s[4]));
			if (t->byte_token[p->byte] == NO_TOKEN)
				t->byte_token[p->byte] = id;
		}
		if (lookup(t, s, p->len) != NO_TOKEN)
			continue; /* a duplicate piece: the first id wins */
		while (t->slots[i])
			i = (i + 1) & t->slot_mask;
		t->slots[i] = id + 1;
	}
}

int kvfpga_tokenizer_load_llama2c(const char *path, uint32_t vocab_size,
                                  struct kvfpga_tokenizer **out, char *err, size_t errlen)
{
	struct kvfpga_tokenizer *t = NULL;
	uint32_t max_len;
	char *buf = NULL;
	FILE *f;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !out || vocab_size < 3 || vocab_size > KVFI_MAX_VOCAB)
		return kvfi_fail(err, errlen, -EINVAL, "bad tokenizer arguments");
	f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		return kvfi_fail(err, errlen, ret, "%s: %s", path, strerror(-ret));
	}
	t = tok_new(vocab_size);
	buf = malloc(MAX_PIECE_LEN);
	if (!t || !buf) {
		ret = kvfi_fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (fread(&max_len, 4, 1, f) != 1) {
		ret = kvfi_fail(err, errlen, -EPROTO, "%s: truncated header", path);
		goto out;
	}
	for (uint32_t id = 0; id < vocab_size; id++) {
		float score;
		uint32_t len;

		if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1) {
			ret = kvfi_fail(err, errlen, -EPROTO,
			                "%s: ends after %u of %u tokens (vocabulary size mismatch "
			                "or truncated file)",
			                path, id, vocab_size);
			goto out;
		}
		if (len > max_len || len >= MAX_PIECE_LEN) {
			ret = kvfi_fail(err, errlen, -EPROTO,
			                "%s: token %u has length %u (max_token_length %u): corrupt",
			                path, id, len, max_len);
			goto out;
		}
		if (len && fread(buf, 1, len, f) != len) {
			ret = kvfi_fail(err, errlen, -EPROTO, "%s: truncated in token %u", path,
			                id);
			goto out;
		}
		ret = tok_set(t, id, buf, len, score, false);
		if (ret) {
			kvfi_fail(err, errlen, ret, "out of memory");
			goto out;
		}
		t->p[id].kind = PIECE_NORMAL;
	}
	if (fgetc(f) != EOF) {
		ret = kvfi_fail(err, errlen, -EPROTO,
		                "%s: data after %u tokens: the model's vocabulary size does not "
		                "match this tokenizer",
		                path, vocab_size);
		goto out;
	}
	/* llama2.c's fixed ids: 0 <unk>, 1 <s> (BOS), 2 </s> (EOS). */
	t->p[0].kind = PIECE_UNKNOWN;
	t->p[1].kind = PIECE_CONTROL;
	t->p[2].kind = PIECE_CONTROL;
	t->unk = 0;
	tok_index(t);
	*out = t;
	t = NULL;
	ret = 0;
out:
	fclose(f);
	free(buf);
	kvfpga_tokenizer_free(t);
	return ret;
}

int kvfpga_tokenizer_from_model(const struct kvfpga_model *model, struct kvfpga_tokenizer **out,
                                char *err, size_t errlen)
{
	const struct kvfi_gguf_vocab *v;
	struct kvfpga_tokenizer *t;
	const uint8_t *p;

	if (err && errlen)
		err[0] = '\0';
	if (!model || !out)
		return kvfi_fail(err, errlen, -EINVAL, "bad tokenizer arguments");
	v = &model->vocab;
	if (!v->present)
		return kvfi_fail(err, errlen, -ENOENT,
		                 "the model has no llama (SentencePiece) vocabulary; pass a "
		                 "tokenizer file");
	t = tok_new((uint32_t)v->n_tokens);
	if (!t)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	p = v->tokens;
	for (uint32_t id = 0; id < t->n; id++) {
		uint64_t len;
		float score = 0.0f;
		int32_t type = PIECE_NORMAL;
		int ret;

		/* The loader bounds-checked every string of the array. */
		memcpy(&len, p, 8);
		if (v->scores)
			memcpy(&score, v->scores + 4 * (size_t)id, 4);
		if (v->token_types)
			memcpy(&type, v->token_types + 4 * (size_t)id, 4);
		ret = tok_set(t, id, (const char *)p + 8, len, score, true);
		if (ret) {
			kvfpga_tokenizer_free(t);
			return kvfi_fail(err, errlen, ret, "out of memory");
		}
		t->p[id].kind =
		        type >= PIECE_NORMAL && type <= PIECE_BYTE ? (uint8_t)type : PIECE_NORMAL;
		p += 8 + len;
	}
	if (v->bos >= 0 && v->bos < t->n)
		t->bos = (uint32_t)v->bos;
	if (v->eos >= 0 && v->eos < t->n)
		t->eos = (uint32_t)v->eos;
	if (v->unk >= 0 && v->unk < t->n)
		t->unk = (uint32_t)v->unk;
	if (t->bos >= t->n || t->eos >= t->n) {
		kvfpga_tokenizer_free(t);
		return kvfi_fail(err, errlen, -EINVAL, "GGUF vocabulary too small for BOS/EOS");
	}
	tok_index(t);
	*out = t;
	return 0;
}

void kvfpga_tokenizer_free(struct kvfpga_tokenizer *tok)
{
	if (!tok)
		return;
	free(tok->p);
	free(tok->pool);
	free(tok->slots);
	free(tok);
}

uint32_t kvfpga_tokenizer_vocab_size(const struct kvfpga_tokenizer *tok)
{
	return tok ? tok->n : 0;
}

uint32_t kvfpga_tokenizer_bos(const struct kvfpga_tokenizer *tok)
{
	return tok ? tok->bos : 0;
}

uint32_t kvfpga_tokenizer_eos(const struct kvfpga_tokenizer *tok)
{
	return tok ? tok->eos : 0;
}

int kvfpga_tokenizer_find(const struct kvfpga_tokenizer *tok, const char *piece, size_t len,
                          uint32_t *token)
{
	uint32_t id;

	if (!tok || (!piece && len) || !token)
		return -EINVAL;
	id = lookup(tok, piece ? piece : "", len);
	if (id == NO_TOKEN)
		return -ENOENT;
	*token = id;
	return 0;
}

int kvfpga_tokenizer_piece(const struct kvfpga_tokenizer *tok, uint32_t token, const char **piece,
                           size_t *len)
{
	const struct piece *p;

	if (!tok || !piece || !len || token >= tok->n)
		return -EINVAL;
	p = &tok->p[token];
	switch (p->kind) {
	case PIECE_BYTE:
		*piece = (const char *)&tok->byte_value[p->byte];
		*len = 1;
		break;
	case PIECE_NORMAL:
	case PIECE_USER:
		*piece = tok->pool + p->off;
		*len = p->len;
		break;
	default:
		*piece = "";
		*len = 0;
		break;
	}
	return 0;
}

/* ---- encoding ---- */

struct sym {
	int prev, next;
	uint32_t off, len; /* in the (prefixed) text */
};

struct bigram {
	float score;
	int left, right;
	uint32_t len;
};

struct heap {
	struct bigram *a;
	size_t n, cap;
};

static bool bigram_before(const struct bigram *x, const struct bigram *y)
{
	return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(struct heap *h, struct bigram b)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct bigram *na = realloc(h->a, cap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		h->a = na;
		h->cap = cap;
	}
	i = h->n++;
	while (i && bigram_before(&b, &h->a[(i - 1) / 2])) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = b;
	return 0;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->a[0], last = h->a[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && bigram_before(&h->a[c + 1], &h->a[c]))
			c++;
		if (!bigram_before(&h->a[c], &last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

static int try_bigram(const struct kvfpga_tokenizer *t, const char *text, const struct sym *s,
                      int left, int right, struct heap *h)
{
	uint32_t id, len;

	if (left < 0 || right < 0)
		return 0;
	len = s[left].len + s[right].len;
	id = lookup_text(t, text + s[left].off, len);
	if (id == NO_TOKEN)
		return 0;
	return heap_push(h, (struct bigram){ t->p[id].score, left, right, len });
}

/* Length of the UTF-8 character at @s (1 for an invalid or truncated sequence). */
static uint32_t utf8_char_len(const uint8_t *s, size_t avail)
{
	uint32_t need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 1;
	if (avail < need)
		return 1;
	for (uint32_t i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 1;
	return need;
}

struct out_toks {
	uint32_t *v;
	size_t n, cap;
};

static int emit(struct out_toks *o, uint32_t id)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint32_t *nv = realloc(o->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		o->v = nv;
		o->cap = cap;
	}
	o->v[o->n++] = id;
	return 0;
}

static int emit_symbol(const struct kvfpga_tokenizer *t, const char *text, const struct sym *s,
                       struct out_toks *o)
{
	uint32_t id = lookup_text(t, text + s->off, s->len);
	int ret = 0;

	if (id != NO_TOKEN)
		return emit(o, id);
	for (uint32_t i = 0; i < s->len && !ret; i++) {
		uint32_t b = t->byte_token[(uint8_t)text[s->off + i]];

		if (b == NO_TOKEN)
			b = t->unk;
		if (b != NO_TOKEN)
			ret = emit(o, b);
	}
	return ret;
}

int kvfpga_tokenizer_encode(const struct kvfpga_tokenizer *tok, const char *text, size_t len,
                            uint32_t flags, uint32_t *tokens, size_t max, size_t *n_tokens)
{
	struct out_toks o = { 0 };
	struct heap h = { 0 };
	struct sym *s = NULL;
	char *buf = NULL;
	size_t blen, ns = 0;
	int ret = 0;

	if (!tok || (!text && len) || (!tokens && max) || !n_tokens || len > MAX_TEXT_LEN ||
	    (flags & ~(KVFPGA_TOKENIZE_BOS | KVFPGA_TOKENIZE_EOS | KVFPGA_TOKENIZE_NO_SPACE)))
		return -EINVAL;
	/* SentencePiece's dummy prefix: a space before non-empty text. */
	blen = len + (len && !(flags & KVFPGA_TOKENIZE_NO_SPACE));
	buf = malloc(blen + 1);
	s = malloc((blen + 1) * sizeof(*s));
	if (!buf || !s) {
		ret = -ENOMEM;
		goto out;
	}
	if (blen > len)
		buf[0] = ' ';
	if (len)
		memcpy(buf + (blen - len), text, len);
	if (flags & KVFPGA_TOKENIZE_BOS)
		ret = emit(&o, tok->bos);
	for (size_t off = 0; off < blen && !ret; ns++) {
		uint32_t cl = utf8_char_len((const uint8_t *)buf + off, blen - off);

		s[ns].off = (uint32_t)off;
		s[ns].len = cl;
		s[ns].prev = (int)ns - 1;
		s[ns].next = off + cl < blen ? (int)ns + 1 : -1;
		off += cl;
	}
	for (size_t i = 1; i < ns && !ret; i++)
		ret = try_bigram(tok, buf, s, (int)i - 1, (int)i, &h);
	while (h.n && !ret) {
		struct bigram b = heap_pop(&h);
		struct sym *l = &s[b.left], *r = &s[b.right];

		/* Stale: one side was merged away or grew since this pair was queued. */
		if (!l->len || !r->len || l->len + r->len != b.len || l->next != b.right)
			continue;
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		ret = try_bigram(tok, buf, s, l->prev, b.left, &h);
		if (!ret)
			ret = try_bigram(tok, buf, s, b.left, l->next, &h);
	}
	for (int i = ns ? 0 : -1; i >= 0 && !ret; i = s[i].next)
		ret = emit_symbol(tok, buf, &s[i], &o);
	if (!ret && (flags & KVFPGA_TOKENIZE_EOS))
		ret = emit(&o, tok->eos);
	if (ret)
		goto out;
	*n_tokens = o.n;
	if (o.n > max) {
		ret = -ENOSPC;
		goto out;
	}
	if (o.n)
		memcpy(tokens, o.v, o.n * sizeof(*tokens));
out:
	free(o.v);
	free(h.a);
	free(s);
	free(buf);
	return ret;
}

/* ---- streaming decoding ---- */

int kvfpga_detok_create(const struct kvfpga_tokenizer *tok, struct kvfpga_detok **out)
{
	struct kvfpga_detok *d;

	if (!tok || !out)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->tok = tok;
	d->at_start = true;
	*out = d;
	return 0;
}

void kvfpga_detok_free(struct kvfpga_detok *d)
{
	free(d);
}

void kvfpga_detok_reset(struct kvfpga_detok *d)
{
	if (!d)
		return;
	d->npend = 0;
	d->need = 0;
	d->at_start = true;
}

static size_t put_replacement(char *buf, size_t n)
{
	buf[n] = (char)0xef;
	buf[n + 1] = (char)0xbf;
	buf[n + 2] = (char)0xbd;
	return n + 3;
}

/* Bytes a UTF-8 lead byte starts (0 if it cannot start a character). */
static uint8_t lead_len(uint8_t b)
{
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b >= 0xe0 && b <= 0xef)
		return 3;
	if (b >= 0xf0 && b <= 0xf4)
		return 4;
	return 0;
}

static bool valid_next(const uint8_t *pend, uint8_t npend, uint8_t b)
{
	if ((b & 0xc0) != 0x80)
		return false;
	if (npend == 1) {
		if (pend[0] == 0xe0 && b < 0xa0)
			return false;
		if (pend[0] == 0xed && b > 0x9f)
			return false;
		if (pend[0] == 0xf0 && b < 0x90)
			return false;
		if (pend[0] == 0xf4 && b > 0x8f)
			return false;
	}
	return true;
}

static size_t feed_byte(struct kvfpga_detok *d, uint8_t b, char *buf, size_t n)
{
	if (d->npend) {
		if (valid_next(d->pend, d->npend, b)) {
			d->pend[d->npend++] = b;
			if (d->npend == d->need) {
				memcpy(buf + n, d->pend, d->npend);
				n += d->npend;
				d->npend = 0;
			}
			return n;
		}
		/* The held sequence is broken: replace it, then treat b afresh. */
		n = put_replacement(buf, n);
		d->npend = 0;
	}
	switch (lead_len(b)) {
	case 0:
		return put_replacement(buf, n);
	case 1:
		buf[n] = (char)b;
		return n + 1;
	default:
		d->need = lead_len(b);
		d->pend[0] = b;
		d->npend = 1;
		return n;
	}
}

int kvfpga_detok_push(struct kvfpga_detok *d, uint32_t token, char *buf, size_t cap, size_t *n)
{
	const char *piece;
	size_t len, out = 0;
	int ret;

	if (!d || !buf || !n)
		return -EINVAL;
	ret = kvfpga_tokenizer_piece(d->tok, token, &piece, &len);
	if (ret)
		return ret;
	if (cap < 3 * len + 4)
		return -ENOSPC;
	if (token == d->tok->bos) {
		d->at_start = true;
	} else if (len) {
		if (d->at_start && piece[0] == ' ') {
			piece++;
			len--;
		}
		d->at_start = false;
	}
	for (size_t i = 0; i < len; i++)
		out = feed_byte(d, (uint8_t)piece[i], buf, out);
	buf[out] = '\0';
	*n = out;
	return 0;
}

int kvfpga_detok_flush(struct kvfpga_detok *d, char *buf, size_t cap, size_t *n)
{
	size_t out = 0;

	if (!d || !buf || !n)
		return -EINVAL;
	if (cap < 4)
		return -ENOSPC;
	if (d->npend)
		out = put_replacement(buf, 0);
	buf[out] = '\0';
	*n = out;
	kvfpga_detok_reset(d);
	return 0;
}
