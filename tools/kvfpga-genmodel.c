/* SPDX-License-Identifier: MIT */
/*
 * kvfpga-genmodel: write a deterministic synthetic llama-shaped model.
 *
 * The weights are random numbers from a seed (so the model produces
 * meaningless text); the shapes, file formats and tokenizer are real:
 * a llama2.c checkpoint (.bin), a matching tokenizer.bin, and optionally
 * the same weights as a GGUF file (f32, f16 or q8_0).  The tokenizer has
 * the llama layout (<unk>, <s>, </s>, 256 byte tokens <0xXX>) plus BPE
 * merges learned from English text embedded below; when the text runs out
 * of repeated pairs, the rest of the vocabulary is filled with merges of
 * two learned pieces, so sampled tokens look like English fragments.
 *
 * Every value depends only on (seed, tensor, row), so the .bin and the
 * GGUF hold the same weights and any file is reproducible from its flags.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shape {
	uint32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
	bool untied;
};

static const struct {
	const char *name;
	struct shape s;
} presets[] = {
	{ "tiny", { 64, 176, 2, 4, 2, 512, 256, false } },
	{ "stories15M", { 288, 768, 6, 6, 6, 32000, 256, false } },
	{ "stories110M", { 768, 2048, 12, 12, 12, 32000, 1024, false } },
};

/* English text the tokenizer's merges are learned from. */
static const char corpus[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in "
        "the sun with her friends. One day, she saw a big red ball in the park. She wanted to "
        "play with the ball, but it was not hers. Lily asked her mom, \"Can I play with the "
        "ball?\" Her mom said, \"Yes, but you have to share it with the other children.\" "
        "Lily was happy and she played with the ball all day. When the sun went down, she "
        "gave the ball back to the boy who owned it. The boy smiled and said, \"Thank you for "
        "sharing with me.\" They became good friends and played together every day after "
        "that. Once upon a time, in a small house near the woods, there lived a kind old man. "
        "He had a dog named Max and a cat named Tom. Every morning the old man went for a walk "
        "with Max and Tom. They walked past the river and the tall trees, and they listened "
        "to the birds singing in the morning light. One day, Max found a little bird on the "
        "ground. The bird could not fly because its wing was hurt. The old man picked up the "
        "bird and took it home. He gave it water and food and kept it warm. After a few days, "
        "the bird was strong again. The old man opened the window and the bird flew away into "
        "the blue sky. Max barked and Tom jumped, and the old man laughed. He was happy that "
        "the bird was free. There was once a boy named Ben who liked to build things. He built "
        "a tower with his blocks, a boat with some paper, and a house for his toys. One "
        "morning, Ben wanted to build the biggest tower in the world. He put one block on top "
        "of another, and another, and another. The tower grew taller and taller. His sister "
        "Sue came into the room and looked at the tower. \"Wow, that is so big!\" she said. "
        "Ben smiled, but then the tower started to shake. It fell down with a loud crash. Ben "
        "was sad, but Sue helped him pick up the blocks. Together they built a new tower, and "
        "this time it was even better, because they made it together. The little rabbit "
        "lived in a hole under a big green tree. Every day he looked for carrots in the "
        "garden. He was very careful, because the farmer did not like rabbits in his garden. "
        "One day the rabbit saw the farmer sleeping under the tree. He quietly hopped into "
        "the garden and found the biggest carrot he had ever seen. He pulled and pulled, and "
        "at last the carrot came out of the ground. The rabbit was so happy that he jumped "
        "up and down. The farmer woke up and saw the rabbit with the carrot. The farmer "
        "laughed and said, \"You can keep that one, little friend.\" From that day on, the "
        "rabbit and the farmer were friends. Anna had a red kite. She liked to fly it on "
        "windy days. She ran across the field and the kite went up, up, up into the sky. "
        "Her brother wanted to try, so Anna gave him the string. The wind was strong and the "
        "kite pulled hard, but he held on. They took turns until it was time to go home for "
        "dinner. Mom made soup and bread, and they told her all about the kite and the wind. "
        "It was a very good day. The sun was warm and the flowers were bright. A small bee "
        "flew from flower to flower, looking for something sweet to eat. The bee was busy "
        "all day long, and when the evening came, it flew back to its home in the old tree. "
        "The next morning it would start again, because that is what bees like to do.";

/* ---- deterministic numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

enum tensor_kind {
	T_EMB,
	T_RMS_ATT,
	T_WQ,
	T_WK,
	T_WV,
	T_WO,
	T_RMS_FFN,
	T_W1,
	T_W2,
	T_W3,
	T_RMS_FINAL,
	T_WCLS,
};

/* Row @row of tensor (@kind, @layer): @cols values in [-a, a) (+1 for norm weights). */
static void gen_row(uint64_t seed, int kind, uint32_t layer, uint32_t row, uint32_t cols,
                    float *out)
{
	uint64_t s = seed ^ ((uint64_t)kind << 56) ^ ((uint64_t)layer << 40) ^ row;
	bool norm = kind == T_RMS_ATT || kind == T_RMS_FFN || kind == T_RMS_FINAL;
	/*
	 * Matrices scaled by 1/sqrt(fan-in) keep activations near unit size.
	 * Embeddings are small beside the layers' outputs, so that the random
	 * layers (not the input token's own embedding, which a tied classifier
	 * would score highest) choose the next token: the demo then wanders
	 * through the vocabulary instead of repeating its last word.
	 */
	float a = norm ? 0.1f : kind == T_EMB || kind == T_WCLS ? 0.1f : 1.7f / sqrtf((float)cols);

	splitmix64(&s);
	for (uint32_t i = 0; i < cols; i++) {
		double u = (double)(splitmix64(&s) >> 11) * 0x1.0p-53 * 2.0 - 1.0;

		out[i] = (norm ? 1.0f : 0.0f) + (float)u * a;
	}
}

/* ---- the tokenizer ---- */

struct vocab {
	char **piece;
	float *score;
	int32_t *type; /* GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte */
	uint32_t n, cap;
	uint32_t *slots; /* hash set of pieces: id + 1 */
	uint32_t mask;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static int vocab_find(const struct vocab *v, const char *s)
{
	for (uint32_t i = (uint32_t)hash_str(s) & v->mask;; i = (i + 1) & v->mask) {
		if (!v->slots[i])
			return -1;
		if (!strcmp(v->piece[v->slots[i] - 1], s))
			return (int)v->slots[i] - 1;
	}
}

static bool vocab_add(struct vocab *v, const char *s, float score, int32_t type)
{
	uint32_t i;

	if (v->n == v->cap || vocab_find(v, s) >= 0)
		return false;
	v->piece[v->n] = strdup(s);
	if (!v->piece[v->n]) {
		fprintf(stderr, "kvfpga-genmodel: out of memory\n");
		exit(1);
	}
	v->score[v->n] = score;
	v->type[v->n] = type;
	for (i = (uint32_t)hash_str(s) & v->mask; v->slots[i]; i = (i + 1) & v->mask)
		;
	v->slots[i] = ++v->n;
	return true;
}

struct word {
	int *sym; /* piece ids */
	int n;
	int count;
};

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (!s) {
		fprintf(stderr, "kvfpga-genmodel: out of memory\n");
		exit(1);
	}
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p) {
		fprintf(stderr, "kvfpga-genmodel: out of memory\n");
		exit(1);
	}
	return p;
}

struct pair_count {
	int a, b, count;
};

/* Adjacent symbol positions in the corpus are far fewer than this. */
#define PAIR_SLOTS 16384u

static void pair_add(struct pair_count *t, int a, int b, int count)
{
	uint32_t i = ((uint32_t)a * 2654435761u ^ (uint32_t)b * 40503u) & (PAIR_SLOTS - 1);

	while (t[i].count && (t[i].a != a || t[i].b != b))
		i = (i + 1) & (PAIR_SLOTS - 1);
	t[i].a = a;
	t[i].b = b;
	t[i].count += count;
}

/* llama layout, then BPE merges learned from the corpus, then filler merges. */
static int build_vocab(struct vocab *v, uint32_t size, uint64_t seed, uint32_t *n_learned)
{
	struct word *words = xcalloc(sizeof(corpus), sizeof(*words));
	struct pair_count *pairs = xcalloc(PAIR_SLOTS, sizeof(*pairs));
	int n_words = 0, first_merge;
	uint32_t cap = 16;
	char buf[8];

	while (cap < 2 * size)
		cap <<= 1;
	v->cap = size;
	v->piece = xcalloc(size, sizeof(*v->piece));
	v->score = xcalloc(size, sizeof(*v->score));
	v->type = xcalloc(size, sizeof(*v->type));
	v->slots = xcalloc(cap, sizeof(*v->slots));
	v->mask = cap - 1;
	vocab_add(v, "<unk>", 0.0f, 2);
	vocab_add(v, "<s>", 0.0f, 3);
	vocab_add(v, "</s>", 0.0f, 3);
	for (int b = 0; b < 256; b++) {
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		vocab_add(v, buf, 0.0f, 6);
	}
	/* Single characters of the corpus (ASCII), and ' ' for SentencePiece's word starts. */
	for (int c = 32; c < 127; c++) {
		buf[0] = (char)c;
		buf[1] = '\0';
		if (c == ' ' || strchr(corpus, c))
			vocab_add(v, buf, -1e6f - (float)c, 1);
	}
	if (v->n >= size) {
		fprintf(stderr,
		        "kvfpga-genmodel: vocabulary of %u is too small (needs more than %u for "
		        "special, byte and character tokens)\n",
		        size, v->n);
		return -1;
	}
	/* Words with SentencePiece's leading space, as symbol sequences. */
	for (const char *p = corpus; *p;) {
		const char *e;
		int found = -1;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		for (e = p; *e && *e != ' '; e++)
			;
		for (int w = 0; w < n_words; w++) {
			if (words[w].n == (int)(e - p) + 1) {
				bool same = true;

				for (int k = 0; k < words[w].n - 1 && same; k++)
					same = v->piece[words[w].sym[k + 1]][0] == p[k];
				if (same) {
					found = w;
					break;
				}
			}
		}
		if (found >= 0) {
			words[found].count++;
		} else {
			struct word *w = &words[n_words++];

			w->n = (int)(e - p) + 1;
			w->sym = xcalloc((size_t)w->n, sizeof(int));
			w->count = 1;
			w->sym[0] = vocab_find(v, " ");
			for (int k = 0; k < w->n - 1; k++) {
				buf[0] = p[k];
				buf[1] = '\0';
				w->sym[k + 1] = vocab_find(v, buf);
			}
		}
		p = e;
	}
	/* Learn merges: the most frequent adjacent pair (ties: smallest merged string). */
	first_merge = (int)v->n;
	while (v->n < size) {
		int best_count = 1, ba = -1, bb = -1;
		char *best = NULL;

		memset(pairs, 0, PAIR_SLOTS * sizeof(*pairs));
		for (int w = 0; w < n_words; w++)
			for (int k = 0; k + 1 < words[w].n; k++)
				pair_add(pairs, words[w].sym[k], words[w].sym[k + 1],
				         words[w].count);
		for (uint32_t i = 0; i < PAIR_SLOTS; i++) {
			char *m;

			if (pairs[i].count < best_count || !pairs[i].count)
				continue;
			m = concat(v->piece[pairs[i].a], v->piece[pairs[i].b]);
			if (pairs[i].count > best_count || !best || strcmp(m, best) < 0) {
				free(best);
				best = m;
				best_count = pairs[i].count;
				ba = pairs[i].a;
				bb = pairs[i].b;
			} else {
				free(m);
			}
		}
		if (!best)
			break;
		if (!vocab_add(v, best, -(float)(v->n - (uint32_t)first_merge), 1)) {
			free(best);
			break;
		}
		free(best);
		for (int w = 0; w < n_words; w++) {
			int out = 0;

			for (int k = 0; k < words[w].n; k++) {
				if (k + 1 < words[w].n && words[w].sym[k] == ba &&
				    words[w].sym[k + 1] == bb) {
					words[w].sym[out++] = (int)v->n - 1;
					k++;
				} else {
					words[w].sym[out++] = words[w].sym[k];
				}
			}
			words[w].n = out;
		}
	}
	*n_learned = v->n - (uint32_t)first_merge;
	/* Fill: merges of a learned word start (" xx") with a learned continuation ("yy"). */
	{
		uint64_t s = seed ^ 0x746f6b656e73ull;
		uint32_t learned_end = v->n, tries = 0;

		while (v->n < size && tries++ < 100u * size) {
			uint32_t a =
			        (uint32_t)first_merge +
			        (uint32_t)(splitmix64(&s) % (learned_end - (uint32_t)first_merge));
			uint32_t b =
			        (uint32_t)first_merge +
			        (uint32_t)(splitmix64(&s) % (learned_end - (uint32_t)first_merge));
			char *m;

			if (v->piece[a][0] != ' ' || v->piece[b][0] == ' ' ||
			    strlen(v->piece[a]) + strlen(v->piece[b]) > 16)
				continue;
			m = concat(v->piece[a], v->piece[b]);
			vocab_add(v, m, -(float)(v->n - (uint32_t)first_merge), 1);
			free(m);
		}
		/* Tiny corpora may still leave room: numbered pieces are valid if dull. */
		for (uint32_t k = 0; v->n < size; k++) {
			snprintf(buf, sizeof(buf), "%u", k);
			vocab_add(v, buf, -1e7f - (float)k, 1);
		}
	}
	for (int w = 0; w < n_words; w++)
		free(words[w].sym);
	free(words);
	free(pairs);
	return 0;
}

static void free_vocab(struct vocab *v)
{
	for (uint32_t i = 0; i < v->n; i++)
		free(v->piece[i]);
	free(v->piece);
	free(v->score);
	free(v->type);
	free(v->slots);
}

/* ---- writers ---- */

static bool put(FILE *f, const void *p, size_t n)
{
	return fwrite(p, 1, n, f) == n;
}

static int write_tokenizer(const char *path, const struct vocab *v)
{
	FILE *f = fopen(path, "wb");
	uint32_t maxlen = 0;
	bool ok;

	if (!f)
		return -errno;
	for (uint32_t i = 0; i < v->n; i++)
		if (strlen(v->piece[i]) > maxlen)
			maxlen = (uint32_t)strlen(v->piece[i]);
	ok = put(f, &maxlen, 4);
	for (uint32_t i = 0; i < v->n && ok; i++) {
		uint32_t len = (uint32_t)strlen(v->piece[i]);

		ok = put(f, &v->score[i], 4) && put(f, &len, 4) && put(f, v->piece[i], len);
	}
	if (fclose(f) || !ok)
		return -EIO;
	return 0;
}

/* Writes a [rows x cols] tensor row by row through @emit. */
typedef bool (*row_sink)(FILE *f, const float *row, uint32_t cols, int type);

static bool gen_tensor(FILE *f, uint64_t seed, int kind, uint32_t layer, uint32_t rows,
                       uint32_t cols, int type, row_sink sink, float *row)
{
	for (uint32_t r = 0; r < rows; r++) {
		gen_row(seed, kind, layer, r, cols, row);
		if (!sink(f, row, cols, type))
			return false;
	}
	return true;
}

static bool sink_f32(FILE *f, const float *row, uint32_t cols, int type)
{
	(void)type;
	return put(f, row, (size_t)cols * 4);
}

static int write_llama2c(const char *path, const struct shape *s, uint64_t seed)
{
	uint32_t hs = s->dim / s->heads, kv = hs * s->kv_heads;
	uint32_t widest = s->hidden > s->dim ? s->hidden : s->dim;
	float *row = xcalloc(widest > s->seq_len ? widest : s->seq_len, sizeof(float));
	int32_t hdr[7] = { (int32_t)s->dim,      (int32_t)s->hidden,
		           (int32_t)s->layers,   (int32_t)s->heads,
		           (int32_t)s->kv_heads, s->untied ? -(int32_t)s->vocab : (int32_t)s->vocab,
		           (int32_t)s->seq_len };
	FILE *f = fopen(path, "wb");
	bool ok;

	if (!f) {
		free(row);
		return -errno;
	}
	ok = put(f, hdr, sizeof(hdr));
	ok = ok && gen_tensor(f, seed, T_EMB, 0, s->vocab, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_RMS_ATT, l, 1, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_WQ, l, s->dim, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_WK, l, kv, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_WV, l, kv, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_WO, l, s->dim, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_RMS_FFN, l, 1, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_W1, l, s->hidden, s->dim, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_W2, l, s->dim, s->hidden, 0, sink_f32, row);
	for (uint32_t l = 0; ok && l < s->layers; l++)
		ok = gen_tensor(f, seed, T_W3, l, s->hidden, s->dim, 0, sink_f32, row);
	ok = ok && gen_tensor(f, seed, T_RMS_FINAL, 0, 1, s->dim, 0, sink_f32, row);
	/* freq_cis_real, freq_cis_imag as llama2.c's export wrote them (loaders recompute them). */
	for (int part = 0; ok && part < 2; part++) {
		for (uint32_t p = 0; ok && p < s->seq_len; p++) {
			for (uint32_t i = 0; i < hs / 2; i++) {
				double a = p * pow(10000.0, -(double)(2 * i) / hs);

				row[i] = (float)(part ? sin(a) : cos(a));
			}
			ok = put(f, row, (size_t)hs / 2 * 4);
		}
	}
	if (s->untied)
		ok = ok && gen_tensor(f, seed, T_WCLS, 0, s->vocab, s->dim, 0, sink_f32, row);
	free(row);
	if (fclose(f) || !ok)
		return -EIO;
	return 0;
}

/* IEEE half, round to nearest even (normal and subnormal range). */
static uint16_t to_f16(float x)
{
	uint32_t b, sign, exp, man;

	memcpy(&b, &x, 4);
	sign = (b >> 16) & 0x8000u;
	exp = (b >> 23) & 0xffu;
	man = b & 0x7fffffu;
	if (exp == 0xff)
		return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
	if ((int)exp - 127 + 15 >= 31)
		return (uint16_t)(sign | 0x7c00u);
	if ((int)exp - 127 + 15 <= 0) { /* subnormal half: multiples of 2^-24 */
		float a = fabsf(x) * 16777216.0f;

		return (uint16_t)(sign | (uint32_t)lrintf(a));
	}
	{
		uint32_t h = sign | ((exp - 127 + 15) << 10) | (man >> 13), rest = man & 0x1fffu;

		if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
			h++;
		return (uint16_t)h;
	}
}

static bool sink_gguf(FILE *f, const float *row, uint32_t cols, int type)
{
	if (type == 0)
		return put(f, row, (size_t)cols * 4);
	if (type == 1) {
		uint16_t h[64];

		for (uint32_t i = 0; i < cols; i += 64) {
			uint32_t n = cols - i < 64 ? cols - i : 64;

			for (uint32_t j = 0; j < n; j++)
				h[j] = to_f16(row[i + j]);
			if (!put(f, h, (size_t)n * 2))
				return false;
		}
		return true;
	}
	for (uint32_t b = 0; b < cols / 32; b++) {
		uint8_t blk[34];
		float amax = 0.0f, d, id;
		uint16_t dh;

		for (int i = 0; i < 32; i++)
			amax = fmaxf(amax, fabsf(row[b * 32 + i]));
		d = amax / 127.0f;
		id = d ? 1.0f / d : 0.0f;
		dh = to_f16(d);
		memcpy(blk, &dh, 2);
		for (int i = 0; i < 32; i++)
			blk[2 + i] = (uint8_t)(int8_t)lrintf(row[b * 32 + i] * id);
		if (!put(f, blk, 34))
			return false;
	}
	return true;
}

static bool put_str(FILE *f, const char *s)
{
	uint64_t n = strlen(s);

	return put(f, &n, 8) && put(f, s, n);
}

static bool put_kv_u32(FILE *f, const char *k, uint32_t v)
{
	uint32_t t = 4;

	return put_str(f, k) && put(f, &t, 4) && put(f, &v, 4);
}

static bool put_kv_f32(FILE *f, const char *k, float v)
{
	uint32_t t = 6;

	return put_str(f, k) && put(f, &t, 4) && put(f, &v, 4);
}

static bool put_kv_str(FILE *f, const char *k, const char *v)
{
	uint32_t t = 8;

	return put_str(f, k) && put(f, &t, 4) && put_str(f, v);
}

struct gtensor {
	char name[48];
	int kind;
	uint32_t layer, rows, cols; /* rows == 0: a vector */
	int type;
	uint64_t offset, bytes;
};

static uint64_t tensor_bytes(int type, uint32_t rows, uint32_t cols)
{
	uint64_t n = (uint64_t)(rows ? rows : 1) * cols;

	return type == 0 ? n * 4 : type == 1 ? n * 2 : n / 32 * 34;
}

/* SentencePiece spaces back to U+2581 for GGUF. */
static char *sp_piece(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(3 * n + 1);

	if (!out) {
		fprintf(stderr, "kvfpga-genmodel: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			out[o++] = (char)0xe2;
			out[o++] = (char)0x96;
			out[o++] = (char)0x81;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static int write_gguf(const char *path, const struct shape *s, uint64_t seed, int type,
                      const struct vocab *v)
{
	uint32_t hs = s->dim / s->heads, kv = hs * s->kv_heads;
	size_t nt = 0, max_t = 3 + 9 * (size_t)s->layers;
	struct gtensor *ts = xcalloc(max_t, sizeof(*ts));
	uint32_t widest = s->hidden > s->dim ? s->hidden : s->dim;
	float *row = xcalloc(widest, sizeof(float));
	uint64_t off = 0, n_kv = 18, n_tensors; /* metadata entries written below */
	uint32_t version = 3, arr = 9, et;
	FILE *f;
	bool ok;

#define ADD(nm, k, l, r, c, ty)                                                                    \
	do {                                                                                       \
		snprintf(ts[nt].name, sizeof(ts[nt].name), "%s", nm);                              \
		ts[nt].kind = k;                                                                   \
		ts[nt].layer = l;                                                                  \
		ts[nt].rows = r;                                                                   \
		ts[nt].cols = c;                                                                   \
		ts[nt].type = ty;                                                                  \
		ts[nt].offset = off;                                                               \
		ts[nt].bytes = tensor_bytes(ty, r, c);                                             \
		off += (ts[nt].bytes + 31) / 32 * 32;                                              \
		nt++;                                                                              \
	} while (0)
	ADD("token_embd.weight", T_EMB, 0, s->vocab, s->dim, type);
	ADD("output_norm.weight", T_RMS_FINAL, 0, 0, s->dim, 0);
	if (s->untied)
		ADD("output.weight", T_WCLS, 0, s->vocab, s->dim, type);
	for (uint32_t l = 0; l < s->layers; l++) {
		char nm[48];

#define LAYER(suffix, k, r, c, ty)                                                                 \
	do {                                                                                       \
		snprintf(nm, sizeof(nm), "blk.%u.%s.weight", l, suffix);                           \
		ADD(nm, k, l, r, c, ty);                                                           \
	} while (0)
		LAYER("attn_norm", T_RMS_ATT, 0, s->dim, 0);
		LAYER("attn_q", T_WQ, s->dim, s->dim, type);
		LAYER("attn_k", T_WK, kv, s->dim, type);
		LAYER("attn_v", T_WV, kv, s->dim, type);
		LAYER("attn_output", T_WO, s->dim, s->dim, type);
		LAYER("ffn_norm", T_RMS_FFN, 0, s->dim, 0);
		LAYER("ffn_gate", T_W1, s->hidden, s->dim, type);
		LAYER("ffn_down", T_W2, s->dim, s->hidden, type);
		LAYER("ffn_up", T_W3, s->hidden, s->dim, type);
#undef LAYER
	}
#undef ADD
	n_tensors = nt;
	f = fopen(path, "wb");
	if (!f) {
		free(ts);
		free(row);
		return -errno;
	}
	ok = put(f, "GGUF", 4) && put(f, &version, 4) && put(f, &n_tensors, 8) && put(f, &n_kv, 8);
	ok = ok && put_kv_str(f, "general.architecture", "llama");
	ok = ok && put_kv_str(f, "general.name", "kvfpga synthetic (random weights)");
	ok = ok && put_kv_u32(f, "llama.context_length", s->seq_len);
	ok = ok && put_kv_u32(f, "llama.embedding_length", s->dim);
	ok = ok && put_kv_u32(f, "llama.block_count", s->layers);
	ok = ok && put_kv_u32(f, "llama.feed_forward_length", s->hidden);
	ok = ok && put_kv_u32(f, "llama.attention.head_count", s->heads);
	ok = ok && put_kv_u32(f, "llama.attention.head_count_kv", s->kv_heads);
	ok = ok && put_kv_u32(f, "llama.rope.dimension_count", hs);
	ok = ok && put_kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	ok = ok && put_kv_f32(f, "llama.rope.freq_base", 10000.0f);
	ok = ok && put_kv_str(f, "tokenizer.ggml.model", "llama");
	et = 8;
	ok = ok && put_str(f, "tokenizer.ggml.tokens") && put(f, &arr, 4) && put(f, &et, 4);
	{
		uint64_t n = v->n;

		ok = ok && put(f, &n, 8);
		for (uint32_t i = 0; i < v->n && ok; i++) {
			char *p = sp_piece(v->piece[i]);

			ok = put_str(f, p);
			free(p);
		}
		et = 6;
		ok = ok && put_str(f, "tokenizer.ggml.scores") && put(f, &arr, 4) &&
		     put(f, &et, 4) && put(f, &n, 8) && put(f, v->score, (size_t)v->n * 4);
		et = 5;
		ok = ok && put_str(f, "tokenizer.ggml.token_type") && put(f, &arr, 4) &&
		     put(f, &et, 4) && put(f, &n, 8) && put(f, v->type, (size_t)v->n * 4);
	}
	ok = ok && put_kv_u32(f, "tokenizer.ggml.bos_token_id", 1);
	ok = ok && put_kv_u32(f, "tokenizer.ggml.eos_token_id", 2);
	ok = ok && put_kv_u32(f, "tokenizer.ggml.unknown_token_id", 0);
	for (size_t i = 0; i < nt && ok; i++) {
		uint32_t nd = ts[i].rows ? 2 : 1, t = (uint32_t)ts[i].type;
		uint64_t ne0 = ts[i].cols, ne1 = ts[i].rows;

		ok = put_str(f, ts[i].name) && put(f, &nd, 4) && put(f, &ne0, 8) &&
		     (nd == 1 || put(f, &ne1, 8)) && put(f, &t, 4) && put(f, &ts[i].offset, 8);
	}
	for (long pos = ftell(f); ok && pos % 32; pos++)
		ok = put(f, "", 1);
	for (size_t i = 0; i < nt && ok; i++) {
		uint64_t pad = (ts[i].bytes + 31) / 32 * 32 - ts[i].bytes;

		ok = gen_tensor(f, seed, ts[i].kind, ts[i].layer, ts[i].rows ? ts[i].rows : 1,
		                ts[i].cols, ts[i].type, sink_gguf, row);
		while (ok && pad--)
			ok = put(f, "", 1);
	}
	free(ts);
	free(row);
	if (fclose(f) || !ok)
		return -EIO;
	return 0;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: kvfpga-genmodel -o MODEL.bin [-t TOKENIZER.bin] [options]\n"
	            "Writes a deterministic llama-shaped model with SYNTHETIC (random) weights.\n"
	            "  --preset NAME     tiny (default), stories15M, stories110M\n"
	            "  --dim N --hidden N --layers N --heads N --kv-heads N --vocab N --seq-len N\n"
	            "                    override the preset's shape\n"
	            "  --untied          a separate classifier (llama2.c negative vocab_size)\n"
	            "  --seed N          weights and filler merges (default 1)\n"
	            "  -o, --output F    llama2.c checkpoint to write\n"
	            "  -t, --tokenizer F tokenizer.bin to write (byte tokens + BPE merges)\n"
	            "  --gguf F          also write the same model as GGUF (with its vocabulary)\n"
	            "  --gguf-type T     f32 (default), f16 or q8_0 for the GGUF matrices\n"
	            "  -q, --quiet       no summary\n"
	            "  -h, --help\n");
}

static int parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno || *end || !*s || x == 0 || x > 1u << 22)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_PRESET = 256,
		O_DIM,
		O_HIDDEN,
		O_LAYERS,
		O_HEADS,
		O_KV,
		O_VOCAB,
		O_SEQ,
		O_UNTIED,
		O_SEED,
		O_GGUF,
		O_GTYPE
	};
	static const struct option opts[] = {
		{ "preset", required_argument, NULL, O_PRESET },
		{ "dim", required_argument, NULL, O_DIM },
		{ "hidden", required_argument, NULL, O_HIDDEN },
		{ "layers", required_argument, NULL, O_LAYERS },
		{ "heads", required_argument, NULL, O_HEADS },
		{ "kv-heads", required_argument, NULL, O_KV },
		{ "vocab", required_argument, NULL, O_VOCAB },
		{ "seq-len", required_argument, NULL, O_SEQ },
		{ "untied", no_argument, NULL, O_UNTIED },
		{ "seed", required_argument, NULL, O_SEED },
		{ "gguf", required_argument, NULL, O_GGUF },
		{ "gguf-type", required_argument, NULL, O_GTYPE },
		{ "output", required_argument, NULL, 'o' },
		{ "tokenizer", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct shape s = presets[0].s;
	const char *out = NULL, *tok = NULL, *gguf = NULL, *preset = presets[0].name;
	uint64_t seed = 1;
	int gtype = 0, c, ret;
	bool quiet = false, kv_set = false;
	struct vocab v = { 0 };
	uint32_t learned = 0, *field;

	while ((c = getopt_long(argc, argv, "o:t:qh", opts, NULL)) != -1) {
		field = NULL;
		switch (c) {
		case O_PRESET: {
			size_t i;

			for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
				if (!strcmp(optarg, presets[i].name))
					break;
			if (i == sizeof(presets) / sizeof(presets[0])) {
				fprintf(stderr, "kvfpga-genmodel: unknown preset '%s'\n", optarg);
				return 2;
			}
			s = presets[i].s;
			preset = presets[i].name;
			break;
		}
		case O_DIM:
			field = &s.dim;
			break;
		case O_HIDDEN:
			field = &s.hidden;
			break;
		case O_LAYERS:
			field = &s.layers;
			break;
		case O_HEADS:
			field = &s.heads;
			break;
		case O_KV:
			field = &s.kv_heads;
			kv_set = true;
			break;
		case O_VOCAB:
			field = &s.vocab;
			break;
		case O_SEQ:
			field = &s.seq_len;
			break;
		case O_UNTIED:
			s.untied = true;
			break;
		case O_SEED:
			seed = strtoull(optarg, NULL, 0);
			break;
		case O_GGUF:
			gguf = optarg;
			break;
		case O_GTYPE:
			gtype = !strcmp(optarg, "f32")    ? 0
			        : !strcmp(optarg, "f16")  ? 1
			        : !strcmp(optarg, "q8_0") ? 8
			                                  : -1;
			if (gtype < 0) {
				fprintf(stderr,
				        "kvfpga-genmodel: --gguf-type must be f32, f16 or q8_0\n");
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 't':
			tok = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (field && parse_u32(optarg, field)) {
			fprintf(stderr, "kvfpga-genmodel: bad number '%s'\n", optarg);
			return 2;
		}
		if (c == O_HEADS && !kv_set)
			s.kv_heads = s.heads;
	}
	if (!out || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (s.dim % s.heads || (s.dim / s.heads) % 2 || s.heads % s.kv_heads) {
		fprintf(stderr,
		        "kvfpga-genmodel: dim %u / heads %u must give an even head size, and heads "
		        "must be a multiple of kv-heads %u\n",
		        s.dim, s.heads, s.kv_heads);
		return 2;
	}
	if (gguf && gtype == 8 && (s.dim % 32 || s.hidden % 32)) {
		fprintf(stderr, "kvfpga-genmodel: q8_0 needs dim and hidden multiples of 32\n");
		return 2;
	}
	if (build_vocab(&v, s.vocab, seed, &learned))
		return 1;
	ret = write_llama2c(out, &s, seed);
	if (!ret && tok)
		ret = write_tokenizer(tok, &v);
	if (!ret && gguf)
		ret = write_gguf(gguf, &s, seed, gtype, &v);
	if (ret) {
		fprintf(stderr, "kvfpga-genmodel: writing failed: %s\n", strerror(-ret));
		free_vocab(&v);
		return 1;
	}
	if (!quiet) {
		printf("kvfpga-genmodel: SYNTHETIC model (random weights, seed %llu): its output "
		       "is "
		       "meaningless text\n",
		       (unsigned long long)seed);
		printf("  shape %s: dim %u, hidden %u, %u layers, %u heads (%u kv), vocab %u, seq "
		       "%u, "
		       "%s classifier\n",
		       preset, s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.seq_len,
		       s.untied ? "untied" : "tied");
		printf("  %s (llama2.c)%s%s%s%s%s\n", out, tok ? ", " : "", tok ? tok : "",
		       tok ? " (tokenizer)" : "", gguf ? ", " : "", gguf ? gguf : "");
		printf("  tokenizer: 3 special + 256 byte tokens, %u merges learned from the "
		       "built-in "
		       "text, the rest filler merges\n",
		       learned);
	}
	free_vocab(&v);
	return 0;
}
