/* SPDX-License-Identifier: MIT */
/*
 * SentencePiece-style BPE: known merges and their priority, byte
 * fallback, round trips (ASCII, multi-byte UTF-8, arbitrary bytes), the
 * streaming decoder's UTF-8 guarantee, tokenizer.bin and GGUF vocabularies.
 * Random inputs are seeded (KVFPGA_TEST_SEED, default 1234; printed on failure).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfpga/model.h"
#include "kvfpga/tokenizer.h"
#include "llama_testfiles.h"

static uint64_t g_seed = 1234;
static char g_dir[64];

/* A small llama-layout vocabulary: specials, 256 bytes, characters, merges. */
#define N_BASE 259
static const char *const extra[] = {
	" ",
	"a",
	"b",
	"c",
	"d",
	"e",
	"h",
	"l",
	"o",
	"r",
	"w",
	"x",
	"é",
	"日",
	/* merges, best score first */
	"he",
	"ll",
	"llo",
	"hello",
	" hello",
	" w",
	"or",
	"orl",
	"orld",
	" world",
	"ab",
	"bc",
	"cd",
};
static const float extra_scores[] = {
	-1000, -1000, -1000, -1000, -1000, -1000, -1000, -1000, -1000,
	-1000, -1000, -1000, -1000, -1000, -1,    -2,    -3,    -4,
	-5,    -6,    -7,    -8,    -9,    -10,   -20,   -20,   -15,
};
#define N_EXTRA (sizeof(extra) / sizeof(extra[0]))
#define N_VOCAB (N_BASE + N_EXTRA)

static char *pieces[N_VOCAB];
static float scores[N_VOCAB];

static void setup(void)
{
	const char *e = getenv("KVFPGA_TEST_SEED");

	if (e)
		g_seed = strtoull(e, NULL, 0);
	snprintf(g_dir, sizeof(g_dir), "/tmp/kvfpga-tok-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	pieces[0] = strdup("<unk>");
	pieces[1] = strdup("<s>");
	pieces[2] = strdup("</s>");
	for (int b = 0; b < 256; b++) {
		pieces[3 + b] = malloc(8);
		snprintf(pieces[3 + b], 8, "<0x%02X>", b);
	}
	for (size_t i = 0; i < N_EXTRA; i++) {
		pieces[N_BASE + i] = strdup(extra[i]);
		scores[N_BASE + i] = extra_scores[i];
	}
}

static void teardown(void)
{
	char cmd[128];

	for (size_t i = 0; i < N_VOCAB; i++)
		free(pieces[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct kvfpga_tokenizer *load(void)
{
	struct kvfpga_tokenizer *t = NULL;
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/tok.bin", g_dir);
	ck_assert_int_eq(tf_write_tokenizer(path, (const char *const *)pieces, scores, N_VOCAB), 0);
	ck_assert_msg(kvfpga_tokenizer_load_llama2c(path, N_VOCAB, &t, err, sizeof(err)) == 0, "%s",
	              err);
	return t;
}

static uint32_t id_of(const char *piece)
{
	for (uint32_t i = 0; i < N_VOCAB; i++)
		if (!strcmp(pieces[i], piece))
			return i;
	ck_abort_msg("no piece '%s'", piece);
	return 0;
}

static size_t enc(const struct kvfpga_tokenizer *t, const char *text, uint32_t flags, uint32_t *out,
                  size_t max)
{
	size_t n = 0;

	ck_assert_int_eq(kvfpga_tokenizer_encode(t, text, strlen(text), flags, out, max, &n), 0);
	return n;
}

static void expect_pieces(const struct kvfpga_tokenizer *t, const char *text, uint32_t flags,
                          const char *const *want, size_t n_want)
{
	uint32_t toks[64];
	size_t n = enc(t, text, flags, toks, 64);

	ck_assert_msg(n == n_want, "'%s': %zu tokens, expected %zu", text, n, n_want);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(toks[i] == id_of(want[i]), "'%s' token %zu is '%s', expected '%s'",
		              text, i, pieces[toks[i]], want[i]);
}

START_TEST(test_known_merges)
{
	struct kvfpga_tokenizer *t = load();

	ck_assert_uint_eq(kvfpga_tokenizer_vocab_size(t), N_VOCAB);
	ck_assert_uint_eq(kvfpga_tokenizer_bos(t), 1);
	ck_assert_uint_eq(kvfpga_tokenizer_eos(t), 2);
	expect_pieces(t, "hello world", 0, (const char *const[]){ " hello", " world" }, 2);
	expect_pieces(t, "hello world", KVFPGA_TOKENIZE_BOS | KVFPGA_TOKENIZE_EOS,
	              (const char *const[]){ "<s>", " hello", " world", "</s>" }, 4);
	expect_pieces(t, "hello", KVFPGA_TOKENIZE_NO_SPACE, (const char *const[]){ "hello" }, 1);
	expect_pieces(t, "hellohello", KVFPGA_TOKENIZE_NO_SPACE,
	              (const char *const[]){ "hello", "hello" }, 2);
	/* "bc" and "ab" tie: the leftmost pair merges first */
	expect_pieces(t, "abc", KVFPGA_TOKENIZE_NO_SPACE, (const char *const[]){ "ab", "c" }, 2);
	/* "cd" (-15) beats "bc" (-20) */
	expect_pieces(t, "bcd", KVFPGA_TOKENIZE_NO_SPACE, (const char *const[]){ "b", "cd" }, 2);
	/* a merge must exist at every step: "orl" then "orld" */
	expect_pieces(t, "xworld", KVFPGA_TOKENIZE_NO_SPACE,
	              (const char *const[]){ "x", "w", "orld" }, 3);
	expect_pieces(t, "", KVFPGA_TOKENIZE_BOS, (const char *const[]){ "<s>" }, 1);
	kvfpga_tokenizer_free(t);
}
END_TEST

START_TEST(test_byte_fallback)
{
	struct kvfpga_tokenizer *t = load();

	/* é and 日 are pieces; ü (C3 BC) and 本 (E6 9C AC) fall back to bytes */
	expect_pieces(t, "é", KVFPGA_TOKENIZE_NO_SPACE, (const char *const[]){ "é" }, 1);
	expect_pieces(t, "ü", KVFPGA_TOKENIZE_NO_SPACE, (const char *const[]){ "<0xC3>", "<0xBC>" },
	              2);
	expect_pieces(t, "日本", 0,
	              (const char *const[]){ " ", "日", "<0xE6>", "<0x9C>", "<0xAC>" }, 5);
	/* invalid UTF-8 (a lone continuation byte, a truncated sequence) is bytes too */
	expect_pieces(t,
	              "\x80"
	              "a\xe6\x9c",
	              KVFPGA_TOKENIZE_NO_SPACE,
	              (const char *const[]){ "<0x80>", "a", "<0xE6>", "<0x9C>" }, 4);
	/* control pieces are never produced from text */
	expect_pieces(t, "<s>", KVFPGA_TOKENIZE_NO_SPACE,
	              (const char *const[]){ "<0x3C>", "<0x73>", "<0x3E>" }, 3);
	kvfpga_tokenizer_free(t);
}
END_TEST

/* Decode @toks through the streaming decoder; every chunk must be whole UTF-8. */
static size_t decode_stream(const struct kvfpga_tokenizer *t, const uint32_t *toks, size_t n,
                            char *out, size_t cap);

static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t need;

		if (s[i] < 0x80)
			need = 1;
		else if (s[i] >= 0xc2 && s[i] <= 0xdf)
			need = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			need = 3;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			need = 4;
		else
			return 0;
		if (i + need > n)
			return 0;
		for (size_t k = 1; k < need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		if (need == 3 &&
		    ((s[i] == 0xe0 && s[i + 1] < 0xa0) || (s[i] == 0xed && s[i + 1] > 0x9f)))
			return 0;
		if (need == 4 &&
		    ((s[i] == 0xf0 && s[i + 1] < 0x90) || (s[i] == 0xf4 && s[i + 1] > 0x8f)))
			return 0;
		i += need;
	}
	return 1;
}

static size_t decode_stream(const struct kvfpga_tokenizer *t, const uint32_t *toks, size_t n,
                            char *out, size_t cap)
{
	struct kvfpga_detok *d = NULL;
	char buf[64];
	size_t len = 0, k;

	ck_assert_int_eq(kvfpga_detok_create(t, &d), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(kvfpga_detok_push(d, toks[i], buf, sizeof(buf), &k), 0);
		ck_assert_msg(valid_utf8((unsigned char *)buf, k),
		              "chunk after token %zu is not whole UTF-8 (seed %llu)", i,
		              (unsigned long long)g_seed);
		ck_assert_uint_le(len + k, cap);
		memcpy(out + len, buf, k);
		len += k;
	}
	ck_assert_int_eq(kvfpga_detok_flush(d, buf, sizeof(buf), &k), 0);
	ck_assert(valid_utf8((unsigned char *)buf, k));
	memcpy(out + len, buf, k);
	len += k;
	kvfpga_detok_free(d);
	return len;
}

/* Random text from an alphabet of ASCII and multi-byte characters. */
static size_t random_text(uint64_t *rng, char *out, size_t max_chars)
{
	static const char *const alphabet[] = { "a", "b", "c",     "h",      "e", "l",  "o",  " ",
		                                "w", "r", "d",     "x",      "é", "ü",  "日", "本",
		                                "€", "😀", "hello", " world", "Z", "\t", "\n" };
	size_t len = 0, n = 1 + tf_rng(rng) % max_chars;

	for (size_t i = 0; i < n; i++) {
		const char *c = alphabet[tf_rng(rng) % (sizeof(alphabet) / sizeof(alphabet[0]))];

		memcpy(out + len, c, strlen(c));
		len += strlen(c);
	}
	out[len] = '\0';
	return len;
}

START_TEST(test_round_trips)
{
	struct kvfpga_tokenizer *t = load();
	uint64_t rng = g_seed;
	char text[512], back[2048];
	uint32_t toks[512];

	for (int iter = 0; iter < 500; iter++) {
		size_t len = random_text(&rng, text, 60), n, blen;

		n = enc(t, text, KVFPGA_TOKENIZE_BOS, toks, 512);
		blen = decode_stream(t, toks, n, back, sizeof(back));
		ck_assert_msg(blen == len && memcmp(back, text, len) == 0,
		              "iteration %d: '%s' came back as '%.*s' (seed %llu)", iter, text,
		              (int)blen, back, (unsigned long long)g_seed);
	}
	kvfpga_tokenizer_free(t);
}
END_TEST

/* Arbitrary bytes: the decoder's output is always valid UTF-8, equal to the input when it was. */
START_TEST(test_stream_never_splits_utf8)
{
	struct kvfpga_tokenizer *t = load();
	uint64_t rng = g_seed ^ 0x55;
	char text[128], back[1024];
	uint32_t toks[512];

	for (int iter = 0; iter < 500; iter++) {
		size_t len = 1 + tf_rng(&rng) % 40, n, blen;

		for (size_t i = 0; i < len; i++)
			text[i] = (char)(tf_rng(&rng) % 3 ? 0x80 + tf_rng(&rng) % 0x78
			                                  : tf_rng(&rng));
		text[len] = '\0';
		ck_assert_int_eq(kvfpga_tokenizer_encode(t, text, len, KVFPGA_TOKENIZE_NO_SPACE,
		                                         toks, 512, &n),
		                 0);
		blen = decode_stream(t, toks, n, back, sizeof(back));
		if (valid_utf8((unsigned char *)text, len) && !memchr(text, 0, len))
			ck_assert_msg(blen == len && !memcmp(back, text, len),
			              "iteration %d (seed %llu)", iter, (unsigned long long)g_seed);
	}
	/* A character split over byte tokens comes out whole, only once complete. */
	{
		struct kvfpga_detok *d = NULL;
		char buf[64];
		size_t k;

		ck_assert_int_eq(kvfpga_detok_create(t, &d), 0);
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("<0xE6>"), buf, sizeof(buf), &k), 0);
		ck_assert_uint_eq(k, 0);
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("<0x9C>"), buf, sizeof(buf), &k), 0);
		ck_assert_uint_eq(k, 0);
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("<0xAC>"), buf, sizeof(buf), &k), 0);
		ck_assert_str_eq(buf, "本");
		/* a broken sequence becomes U+FFFD, and the next character survives */
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("<0xE6>"), buf, sizeof(buf), &k), 0);
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("a"), buf, sizeof(buf), &k), 0);
		ck_assert_str_eq(buf, "\xef\xbf\xbd"
		                      "a");
		/* held bytes at the end flush as U+FFFD */
		ck_assert_int_eq(kvfpga_detok_push(d, id_of("<0xC3>"), buf, sizeof(buf), &k), 0);
		ck_assert_int_eq(kvfpga_detok_flush(d, buf, sizeof(buf), &k), 0);
		ck_assert_str_eq(buf, "\xef\xbf\xbd");
		/* after BOS the dummy-prefix space is dropped; later spaces stay */
		ck_assert_int_eq(kvfpga_detok_push(d, 1, buf, sizeof(buf), &k), 0);
		ck_assert_uint_eq(k, 0);
		ck_assert_int_eq(kvfpga_detok_push(d, id_of(" hello"), buf, sizeof(buf), &k), 0);
		ck_assert_str_eq(buf, "hello");
		ck_assert_int_eq(kvfpga_detok_push(d, id_of(" world"), buf, sizeof(buf), &k), 0);
		ck_assert_str_eq(buf, " world");
		ck_assert_int_eq(kvfpga_detok_push(d, id_of(" world"), buf, 4, &k), -ENOSPC);
		ck_assert_int_eq(kvfpga_detok_push(d, N_VOCAB, buf, sizeof(buf), &k), -EINVAL);
		kvfpga_detok_free(d);
	}
	kvfpga_tokenizer_free(t);
}
END_TEST

START_TEST(test_encode_args)
{
	struct kvfpga_tokenizer *t = load();
	uint32_t toks[2], id;
	size_t n = 0;
	const char *p;
	size_t len;

	ck_assert_int_eq(
	        kvfpga_tokenizer_encode(t, "hello world", 11, KVFPGA_TOKENIZE_BOS, toks, 2, &n),
	        -ENOSPC);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(kvfpga_tokenizer_encode(NULL, "a", 1, 0, toks, 2, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_tokenizer_encode(t, "a", 1, 0x80, toks, 2, &n), -EINVAL);
	ck_assert_int_eq(kvfpga_tokenizer_find(t, " hello", 6, &id), 0);
	ck_assert_uint_eq(id, id_of(" hello"));
	ck_assert_int_eq(kvfpga_tokenizer_find(t, "zzz", 3, &id), -ENOENT);
	ck_assert_int_eq(kvfpga_tokenizer_piece(t, id_of("<0x41>"), &p, &len), 0);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(p[0], 'A');
	ck_assert_int_eq(kvfpga_tokenizer_piece(t, 1, &p, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(kvfpga_tokenizer_piece(t, N_VOCAB, &p, &len), -EINVAL);
	kvfpga_tokenizer_free(t);
}
END_TEST

START_TEST(test_bad_files)
{
	struct kvfpga_tokenizer *t = NULL;
	char path[128], cut[128], err[256];
	long size;

	snprintf(path, sizeof(path), "%s/tok.bin", g_dir);
	snprintf(cut, sizeof(cut), "%s/cut.bin", g_dir);
	ck_assert_int_eq(tf_write_tokenizer(path, (const char *const *)pieces, scores, N_VOCAB), 0);
	/* the model says the vocabulary is larger or smaller than the file's */
	ck_assert_int_eq(kvfpga_tokenizer_load_llama2c(path, N_VOCAB + 1, &t, err, sizeof(err)),
	                 -EPROTO);
	ck_assert_msg(strstr(err, "mismatch"), "%s", err);
	ck_assert_int_eq(kvfpga_tokenizer_load_llama2c(path, N_VOCAB - 1, &t, err, sizeof(err)),
	                 -EPROTO);
	ck_assert_msg(strstr(err, "does not match"), "%s", err);
	size = tf_file_size(path);
	for (long c = 0; c < size; c += 13) {
		ck_assert_int_eq(tf_copy_prefix(path, cut, (size_t)c), 0);
		ck_assert_int_eq(kvfpga_tokenizer_load_llama2c(cut, N_VOCAB, &t, err, sizeof(err)),
		                 -EPROTO);
	}
	ck_assert_int_eq(kvfpga_tokenizer_load_llama2c("/nonexistent/tok.bin", N_VOCAB, &t, err,
	                                               sizeof(err)),
	                 -ENOENT);
	ck_assert_ptr_null(t);
}
END_TEST

/* The same vocabulary from GGUF metadata (with U+2581 spaces and token types) encodes alike. */
START_TEST(test_gguf_vocab)
{
	struct tf_shape s = { 32, 64, 1, 2, 2, N_VOCAB, 16, 0 };
	struct tf_model m;
	struct kvfpga_model *model = NULL;
	struct kvfpga_tokenizer *a = load(), *b = NULL;
	char *sp[N_VOCAB];
	int32_t types[N_VOCAB];
	char path[128], err[256];
	uint64_t rng = g_seed + 9;

	for (uint32_t i = 0; i < N_VOCAB; i++) {
		const char *p = pieces[i];
		char *o = malloc(3 * strlen(p) + 1), *q = o;

		for (; *p; p++) {
			if (*p == ' ') {
				memcpy(q, "\xe2\x96\x81", 3);
				q += 3;
			} else {
				*q++ = *p;
			}
		}
		*q = '\0';
		sp[i] = o;
		types[i] = i == 0 ? 2 : i < 3 ? 3 : i < N_BASE ? 6 : 1;
	}
	tf_model_make(&m, &s, g_seed);
	snprintf(path, sizeof(path), "%s/v.gguf", g_dir);
	ck_assert_int_eq(tf_write_gguf(path, &m,
	                               &(struct tf_gguf_opts){ .tokens = (const char *const *)sp,
	                                                       .scores = scores,
	                                                       .types = types,
	                                                       .n_tokens = N_VOCAB }),
	                 0);
	ck_assert_msg(kvfpga_model_open(path, 0, &model, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(kvfpga_tokenizer_from_model(model, &b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(kvfpga_tokenizer_vocab_size(b), N_VOCAB);
	for (int iter = 0; iter < 200; iter++) {
		char text[512];
		uint32_t ta[512], tb[512];
		size_t na, nb;

		random_text(&rng, text, 40);
		na = enc(a, text, KVFPGA_TOKENIZE_BOS, ta, 512);
		nb = enc(b, text, KVFPGA_TOKENIZE_BOS, tb, 512);
		ck_assert_msg(na == nb && !memcmp(ta, tb, na * 4), "'%s' (seed %llu)", text,
		              (unsigned long long)g_seed);
	}
	kvfpga_tokenizer_free(b);
	kvfpga_model_close(model);
	/* A model without a vocabulary says so. */
	ck_assert_int_eq(tf_write_gguf(path, &m, &(struct tf_gguf_opts){ 0 }), 0);
	ck_assert_int_eq(kvfpga_model_open(path, 0, &model, err, sizeof(err)), 0);
	ck_assert_int_eq(kvfpga_tokenizer_from_model(model, &b, err, sizeof(err)), -ENOENT);
	kvfpga_model_close(model);
	tf_model_free(&m);
	for (uint32_t i = 0; i < N_VOCAB; i++)
		free(sp[i]);
	kvfpga_tokenizer_free(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("tokenizer");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_known_merges);
	tcase_add_test(tc, test_byte_fallback);
	tcase_add_test(tc, test_round_trips);
	tcase_add_test(tc, test_stream_never_splits_utf8);
	tcase_add_test(tc, test_encode_args);
	tcase_add_test(tc, test_bad_files);
	tcase_add_test(tc, test_gguf_vocab);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
