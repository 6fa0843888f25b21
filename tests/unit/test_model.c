/* SPDX-License-Identifier: MIT */
/*
 * Model loaders: llama2.c and GGUF files written by the test helpers,
 * good ones and corrupt, truncated, wrong-architecture, wrong-shape,
 * wrong-type and absurd ones.  Randomised corruption is seeded
 * (KVFPGA_TEST_SEED, default 1234; printed on failure).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfpga/model.h"
#include "llama_testfiles.h"

static uint64_t g_seed = 1234;
static char g_dir[64];
static char g_err[512];

static const struct tf_shape small = { 64, 96, 2, 4, 2, 100, 32, 0 };

static void setup(void)
{
	const char *e = getenv("KVFPGA_TEST_SEED");

	if (e)
		g_seed = strtoull(e, NULL, 0);
	snprintf(g_dir, sizeof(g_dir), "/tmp/kvfpga-model-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *tmp(const char *name)
{
	static char path[4][160];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, 160, "%s/%s", g_dir, name);
	return p;
}

static int open_model(const char *path, enum kvfpga_model_format fmt,
                      struct kvfpga_model_config *cfg)
{
	struct kvfpga_model *m = NULL;
	int ret;

	g_err[0] = '\0';
	ret = kvfpga_model_open(path, fmt, &m, g_err, sizeof(g_err));
	if (ret) {
		ck_assert_ptr_null(m);
		ck_assert_msg(g_err[0] != '\0', "error %d without a message", ret);
		return ret;
	}
	if (cfg)
		ck_assert_int_eq(kvfpga_model_get_config(m, cfg), 0);
	kvfpga_model_close(m);
	return 0;
}

static void write_llama2c(const char *path, const struct tf_shape *s)
{
	struct tf_model m;

	tf_model_make(&m, s, g_seed);
	ck_assert_int_eq(tf_write_llama2c(path, &m), 0);
	tf_model_free(&m);
}

static void write_gguf(const char *path, const struct tf_shape *s, const struct tf_gguf_opts *o)
{
	struct tf_model m;

	tf_model_make(&m, s, g_seed);
	ck_assert_int_eq(tf_write_gguf(path, &m, o), 0);
	tf_model_free(&m);
}

START_TEST(test_llama2c_good)
{
	struct kvfpga_model_config c;
	struct tf_shape s = small;
	uint64_t kv = 2 * 16, per_layer;

	s.untied = _i;
	write_llama2c(tmp("a.bin"), &s);
	ck_assert_msg(open_model(tmp("a.bin"), KVFPGA_MODEL_FORMAT_AUTO, &c) == 0, "%s", g_err);
	ck_assert_int_eq(c.format, KVFPGA_MODEL_FORMAT_LLAMA2C);
	ck_assert_uint_eq(c.dim, 64);
	ck_assert_uint_eq(c.hidden_dim, 96);
	ck_assert_uint_eq(c.n_layers, 2);
	ck_assert_uint_eq(c.n_heads, 4);
	ck_assert_uint_eq(c.n_kv_heads, 2);
	ck_assert_uint_eq(c.head_dim, 16);
	ck_assert_uint_eq(c.vocab_size, 100);
	ck_assert_uint_eq(c.seq_len, 32);
	ck_assert_int_eq(c.shared_classifier, !_i);
	ck_assert_int_eq(c.weight_dtype, KVFPGA_DTYPE_F32);
	ck_assert_str_eq(c.name, ""); /* llama2.c files carry no name */
	/* Per token: every layer matrix and norm, one embedding row, the classifier, the final
	 * norm. */
	per_layer = (64 * 64 * 2 + 64 * kv * 2 + 3 * 64 * 96 + 2 * 64) * 4;
	ck_assert_uint_eq(c.weight_bytes_per_token, 2 * per_layer + 64 * 4 + 100 * 64 * 4 + 64 * 4);
	ck_assert_uint_eq(c.n_params, 2 * per_layer / 4 + 100 * 64 * (1 + (uint64_t)_i) + 64);
	/* Forcing the format works too; forcing GGUF on it fails clearly. */
	ck_assert_int_eq(open_model(tmp("a.bin"), KVFPGA_MODEL_FORMAT_LLAMA2C, NULL), 0);
	ck_assert_int_eq(open_model(tmp("a.bin"), KVFPGA_MODEL_FORMAT_GGUF, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(g_err, "not a GGUF"));
}
END_TEST

START_TEST(test_llama2c_truncated_and_trailing)
{
	long size;

	write_llama2c(tmp("a.bin"), &small);
	size = tf_file_size(tmp("a.bin"));
	ck_assert_int_gt(size, 100);
	ck_assert_int_eq(tf_copy_prefix(tmp("a.bin"), tmp("t.bin"), (size_t)size - 4), 0);
	ck_assert_int_eq(open_model(tmp("t.bin"), 0, NULL), -EPROTO);
	ck_assert_msg(strstr(g_err, "truncated"), "%s", g_err);
	ck_assert_int_eq(tf_copy_prefix(tmp("a.bin"), tmp("t.bin"), 20), 0);
	ck_assert_int_eq(open_model(tmp("t.bin"), 0, NULL), -EPROTO);
	{
		FILE *f = fopen(tmp("a.bin"), "ab");

		ck_assert_ptr_nonnull(f);
		fputs("junk", f);
		fclose(f);
	}
	ck_assert_int_eq(open_model(tmp("a.bin"), 0, NULL), -EPROTO);
	ck_assert_msg(strstr(g_err, "trailing"), "%s", g_err);
}
END_TEST

static void write_header(const char *path, const int32_t hdr[7])
{
	ck_assert_int_eq(tf_write_all(path, hdr, 7 * 4), 0);
}

START_TEST(test_llama2c_bad_headers)
{
	static const struct {
		int32_t hdr[7];
		const char *word;
	} cases[] = {
		{ { 1 << 30, 96, 2, 4, 2, 100, 32 }, "dim" },
		{ { 64, 96, -2, 4, 2, 100, 32 }, "field 2" },
		{ { 64, 96, 2, 5, 5, 100, 32 }, "multiple of n_heads" },
		{ { 64, 96, 2, 4, 3, 100, 32 }, "n_kv_heads" },
		{ { 64, 96, 2, 4, 2, 0, 32 }, "vocab" },
		{ { 64, 96, 2, 4, 2, 100, 1 << 30 }, "seq_len" },
		{ { 66, 96, 2, 6, 6, 100, 32 }, "even" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_header(tmp("h.bin"), cases[i].hdr);
		ck_assert_msg(open_model(tmp("h.bin"), 0, NULL) == -EINVAL, "case %zu: %s", i,
		              g_err);
		ck_assert_msg(strstr(g_err, cases[i].word), "case %zu: '%s' lacks '%s'", i, g_err,
		              cases[i].word);
	}
	/* A sane header with no weights is a truncated file. */
	write_header(tmp("h.bin"), (int32_t[7]){ 64, 96, 2, 4, 2, 100, 32 });
	ck_assert_int_eq(open_model(tmp("h.bin"), 0, NULL), -EPROTO);
}
END_TEST

START_TEST(test_open_args)
{
	struct kvfpga_model *m = NULL;
	struct kvfpga_model_config c;

	ck_assert_int_eq(kvfpga_model_open(NULL, 0, &m, g_err, sizeof(g_err)), -EINVAL);
	ck_assert_int_eq(kvfpga_model_open(tmp("x"), 0, NULL, NULL, 0), -EINVAL);
	ck_assert_int_eq(kvfpga_model_open(tmp("missing.bin"), 0, &m, g_err, sizeof(g_err)),
	                 -ENOENT);
	ck_assert_ptr_nonnull(strstr(g_err, "missing.bin"));
	ck_assert_int_eq(kvfpga_model_open(g_dir, 0, &m, NULL, 0), -EPROTO); /* a directory */
	ck_assert_int_eq(kvfpga_model_open(tmp("x"), (enum kvfpga_model_format)9, &m, NULL, 0),
	                 -EINVAL);
	ck_assert_int_eq(kvfpga_model_get_config(NULL, &c), -EINVAL);
	kvfpga_model_close(NULL);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(kvfpga_dtype_name(KVFPGA_DTYPE_Q8_0), "q8_0");
	ck_assert_str_eq(kvfpga_model_format_name(KVFPGA_MODEL_FORMAT_GGUF), "gguf");
}
END_TEST

START_TEST(test_gguf_good)
{
	static const int types[3] = { TF_F32, TF_F16, TF_Q8_0 };
	struct kvfpga_model_config c;
	struct tf_shape s = small;

	s.untied = 1;
	for (uint32_t version = 2; version <= 3; version++) {
		for (int t = 0; t < 3; t++) {
			write_gguf(tmp("g.gguf"), &s,
			           &(struct tf_gguf_opts){ .type = types[t], .version = version });
			ck_assert_msg(open_model(tmp("g.gguf"), 0, &c) == 0, "v%u type %d: %s",
			              version, types[t], g_err);
			ck_assert_int_eq(c.format, KVFPGA_MODEL_FORMAT_GGUF);
			ck_assert_int_eq(c.weight_dtype, types[t]);
			ck_assert_uint_eq(c.dim, 64);
			ck_assert_uint_eq(c.n_kv_heads, 2);
			ck_assert_uint_eq(c.vocab_size, 100);
			ck_assert_uint_eq(c.seq_len, 32);
			ck_assert_int_eq(c.shared_classifier, 0);
			ck_assert(c.rms_eps == 1e-5f && c.rope_theta == 10000.0f);
			ck_assert_str_eq(c.name, "kvfpga test model");
		}
	}
}
END_TEST

START_TEST(test_gguf_rejects)
{
	static const struct {
		struct tf_gguf_opts o;
		int err;
		const char *words[2];
	} cases[] = {
		{ { .arch = "gpt2" }, -EINVAL, { "architecture", "gpt2" } },
		{ { .version = 1 }, -ENOTSUP, { "version 1", NULL } },
		{ { .version = 4 }, -ENOTSUP, { "version 4", NULL } },
		{ { .omit = "blk.1.ffn_up.weight" },
		  -EINVAL,
		  { "blk.1.ffn_up.weight", "missing" } },
		{ { .omit = "output_norm.weight" }, -EINVAL, { "output_norm.weight", "missing" } },
		{ { .bad_shape = "blk.0.attn_k.weight" },
		  -EINVAL,
		  { "blk.0.attn_k.weight", "shape" } },
		{ { .bad_shape = "token_embd.weight" },
		  -EINVAL,
		  { "token_embd.weight", "overlap" } },
		{ { .bad_type = "blk.0.attn_q.weight" },
		  -ENOTSUP,
		  { "blk.0.attn_q.weight", "q4_0" } },
		{ { .bad_type = "blk.1.ffn_norm.weight" }, -ENOTSUP, { "ffn_norm", "f32" } },
		{ { .omit_head_count = 1 }, -EINVAL, { "head_count", "lacks" } },
		{ { .absurd_dim = 1ull << 40 }, -EINVAL, { "absurd", NULL } },
		{ { .absurd_dim = 48 }, -ENOTSUP, { "dimension_count", "head size 12" } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		write_gguf(tmp("r.gguf"), &small, &cases[i].o);
		ret = open_model(tmp("r.gguf"), 0, NULL);
		ck_assert_msg(ret == cases[i].err, "case %zu: %d (%s), expected %d", i, ret, g_err,
		              cases[i].err);
		for (int w = 0; w < 2; w++)
			ck_assert_msg(!cases[i].words[w] || strstr(g_err, cases[i].words[w]),
			              "case %zu: '%s' lacks '%s'", i, g_err, cases[i].words[w]);
	}
}
END_TEST

/* Every prefix of a GGUF file is refused with an error, never a crash. */
START_TEST(test_gguf_truncated)
{
	long size;
	int step;

	write_gguf(tmp("g.gguf"), &small, &(struct tf_gguf_opts){ .type = TF_Q8_0 });
	size = tf_file_size(tmp("g.gguf"));
	ck_assert_int_gt(size, 1000);
	for (long cut = 0; cut < size; cut += step) {
		int ret;

		step = cut < 2048 ? 7 : 1009;
		ck_assert_int_eq(tf_copy_prefix(tmp("g.gguf"), tmp("t.gguf"), (size_t)cut), 0);
		ret = open_model(tmp("t.gguf"), KVFPGA_MODEL_FORMAT_GGUF, NULL);
		ck_assert_msg(ret == -EPROTO || ret == -EINVAL, "cut at %ld: %d (%s)", cut, ret,
		              g_err);
	}
	ck_assert_int_eq(tf_copy_prefix(tmp("g.gguf"), tmp("t.gguf"), (size_t)size - 1), 0);
	ck_assert_int_eq(open_model(tmp("t.gguf"), 0, NULL), -EPROTO);
	ck_assert_msg(strstr(g_err, "truncated"), "%s", g_err);
}
END_TEST

/* Random bytes overwritten in the header and metadata: an error or a model, never a crash. */
START_TEST(test_gguf_corrupt_fuzz)
{
	long size;
	uint8_t *orig, *buf;
	uint64_t rng = g_seed;
	FILE *f;
	int failures = 0;

	write_gguf(tmp("g.gguf"), &small, &(struct tf_gguf_opts){ .type = TF_F16 });
	size = tf_file_size(tmp("g.gguf"));
	orig = malloc((size_t)size);
	buf = malloc((size_t)size);
	f = fopen(tmp("g.gguf"), "rb");
	ck_assert(orig && buf && f);
	ck_assert_int_eq(fread(orig, 1, (size_t)size, f), size);
	fclose(f);
	for (int iter = 0; iter < 300; iter++) {
		int ret;

		memcpy(buf, orig, (size_t)size);
		for (int k = 0; k < 1 + iter % 4; k++)
			buf[tf_rng(&rng) % 3000] = (uint8_t)tf_rng(&rng);
		ck_assert_int_eq(tf_write_all(tmp("c.gguf"), buf, (size_t)size), 0);
		ret = open_model(tmp("c.gguf"), KVFPGA_MODEL_FORMAT_GGUF, NULL);
		ck_assert_msg(ret == 0 || ret == -EPROTO || ret == -EINVAL || ret == -ENOTSUP,
		              "iteration %d: %d (%s), seed %llu", iter, ret, g_err,
		              (unsigned long long)g_seed);
		failures += ret != 0;
	}
	ck_assert_int_gt(failures, 0); /* the corruption did reach checked fields */
	free(orig);
	free(buf);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("loaders");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_llama2c_good, 0, 2);
	tcase_add_test(tc, test_llama2c_truncated_and_trailing);
	tcase_add_test(tc, test_llama2c_bad_headers);
	tcase_add_test(tc, test_open_args);
	tcase_add_test(tc, test_gguf_good);
	tcase_add_test(tc, test_gguf_rejects);
	tcase_add_test(tc, test_gguf_truncated);
	tcase_add_test(tc, test_gguf_corrupt_fuzz);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(model_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
