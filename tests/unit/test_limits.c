/* SPDX-License-Identifier: MIT */
/*
 * Resource limits: each must give a clear error (a specific errno, and a
 * reason where the API has one), never a crash, and leave nothing behind.
 *   - a model file declaring huge dimensions (llama2.c and GGUF), a GGUF
 *     claiming more tensors than its bytes can hold, a vocabulary too large;
 *   - a prompt longer than the context, and a batch running past it;
 *   - more sequences than the inference context holds;
 *   - a card (emulated) with no free memory: buffers and KV caches refused,
 *     card memory unchanged;
 *   - a KV cache asked for more blocks than fit, and sequences appending past
 *     the blocks it has: -ENOSPC with every sequence as it was.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"
#include "kvfpga/model.h"
#include "kvfpga/tokenizer.h"
#include "llama_testfiles.h"

static char g_dir[64];
static char g_err[512];

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/kvfpga-limits-XXXXXX");
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

/* Open @path; on failure the reason must contain @want (when not NULL). */
static int open_model(const char *path, struct kvfpga_model **out, const char *want)
{
	struct kvfpga_model *m = NULL;
	int ret;

	g_err[0] = '\0';
	ret = kvfpga_model_open(path, KVFPGA_MODEL_FORMAT_AUTO, &m, g_err, sizeof(g_err));
	if (ret) {
		ck_assert_ptr_null(m);
		ck_assert_msg(g_err[0], "error %d without a reason", ret);
		if (want)
			ck_assert_msg(strstr(g_err, want), "reason '%s' does not mention '%s'",
			              g_err, want);
	}
	if (out)
		*out = m;
	else
		kvfpga_model_close(m);
	return ret;
}

/* ---- huge dimensions ---- */

static void write_llama2c_header(const char *path, const int32_t hdr[7], size_t extra)
{
	struct tf_buf b = { 0 };

	tf_put(&b, hdr, 7 * sizeof(int32_t));
	for (size_t i = 0; i < extra; i++)
		tf_put_u32(&b, 0);
	ck_assert_int_eq(tf_write_all(path, b.p, b.n), 0);
	free(b.p);
}

START_TEST(test_llama2c_huge_dimensions)
{
	/* dim, hidden, layers, heads, kv_heads, vocab, seq_len */
	const int32_t too_wide[7] = { 1 << 20, 64, 1, 4, 4, 100, 16 };
	const int32_t too_deep[7] = { 64, 64, 1 << 20, 4, 4, 100, 16 };
	const int32_t vocab[7] = { 64, 64, 1, 4, 4, 1 << 30, 16 };
	const int32_t context[7] = { 64, 64, 1, 4, 4, 100, INT32_MAX };
	/* Every field at its limit: plausible, but the file is a header and a few bytes. */
	const int32_t largest[7] = { 65536, 1 << 20, 1024, 1024, 1024, 1 << 22, 1 << 22 };

	write_llama2c_header(tmp("wide.bin"), too_wide, 16);
	ck_assert_int_eq(open_model(tmp("wide.bin"), NULL, "dim"), -EINVAL);
	write_llama2c_header(tmp("deep.bin"), too_deep, 16);
	ck_assert_int_eq(open_model(tmp("deep.bin"), NULL, "n_layers"), -EINVAL);
	write_llama2c_header(tmp("vocab.bin"), vocab, 16);
	ck_assert_int_eq(open_model(tmp("vocab.bin"), NULL, "vocab_size"), -EINVAL);
	write_llama2c_header(tmp("ctx.bin"), context, 16);
	ck_assert_int_eq(open_model(tmp("ctx.bin"), NULL, "seq_len"), -EINVAL);
	write_llama2c_header(tmp("largest.bin"), largest, 16);
	ck_assert_int_eq(open_model(tmp("largest.bin"), NULL, "truncated"), -EPROTO);
}
END_TEST

/* A GGUF of just a header and metadata: what a loader reads before any tensor. */
static void write_gguf_header(const char *path, uint64_t n_tensors, uint64_t dim, uint64_t blocks,
                              size_t padding)
{
	struct tf_buf b = { 0 };

	tf_put(&b, "GGUF", 4);
	tf_put_u32(&b, 3);
	tf_put_u64(&b, n_tensors);
	tf_put_u64(&b, 6);
	tf_put_str(&b, "general.architecture");
	tf_put_u32(&b, 8); /* string */
	tf_put_str(&b, "llama");
	tf_kv_u32(&b, "llama.context_length", 64);
	tf_put_str(&b, "llama.embedding_length");
	tf_put_u32(&b, 10); /* uint64 */
	tf_put_u64(&b, dim);
	tf_put_str(&b, "llama.block_count");
	tf_put_u32(&b, 10);
	tf_put_u64(&b, blocks);
	tf_kv_u32(&b, "llama.feed_forward_length", 64);
	tf_kv_u32(&b, "llama.attention.head_count", 4);
	for (size_t i = 0; i < padding; i++)
		tf_put_u32(&b, 0);
	ck_assert_int_eq(tf_write_all(path, b.p, b.n), 0);
	free(b.p);
}

START_TEST(test_gguf_huge_dimensions)
{
	write_gguf_header(tmp("wide.gguf"), 1, 1ull << 40, 1, 64);
	ck_assert_int_eq(open_model(tmp("wide.gguf"), NULL, "absurd"), -EINVAL);
	write_gguf_header(tmp("deep.gguf"), 1, 64, 1ull << 33, 64);
	ck_assert_int_eq(open_model(tmp("deep.gguf"), NULL, "absurd"), -EINVAL);
	/* Over the loader's own cap on tensors. */
	write_gguf_header(tmp("many.gguf"), 1ull << 40, 64, 1, 64);
	ck_assert_int_eq(open_model(tmp("many.gguf"), NULL, "tensors"), -EINVAL);
	/* Under the cap, but far more than the 256 bytes after the header can describe. */
	write_gguf_header(tmp("claims.gguf"), 1u << 20, 64, 1, 64);
	ck_assert_int_eq(open_model(tmp("claims.gguf"), NULL, "tensors"), -EPROTO);
}
END_TEST

START_TEST(test_tokenizer_vocabulary_too_large)
{
	static const char *const pieces[] = { "<unk>", "<s>", "</s>", "a", "b" };
	static const float scores[] = { 0, 0, 0, -1, -2 };
	struct kvfpga_tokenizer *tok = NULL;

	ck_assert_int_eq(tf_write_tokenizer(tmp("tok.bin"), pieces, scores, 5), 0);
	ck_assert_int_eq(
	        kvfpga_tokenizer_load_llama2c(tmp("tok.bin"), 1u << 23, &tok, g_err, sizeof(g_err)),
	        -EINVAL);
	ck_assert_ptr_null(tok);
	/* A size the file cannot back: the loader says the file ends early. */
	ck_assert_int_eq(
	        kvfpga_tokenizer_load_llama2c(tmp("tok.bin"), 1u << 20, &tok, g_err, sizeof(g_err)),
	        -EPROTO);
	ck_assert_ptr_null(tok);
	ck_assert_msg(strstr(g_err, "ends after 5"), "reason: %s", g_err);
	ck_assert_int_eq(
	        kvfpga_tokenizer_load_llama2c(tmp("tok.bin"), 5, &tok, g_err, sizeof(g_err)), 0);
	kvfpga_tokenizer_free(tok);
}
END_TEST

/* ---- the context ---- */

static const struct tf_shape small = { 32, 48, 1, 4, 2, 40, 64, 0 };

static struct kvfpga_model *small_model(void)
{
	struct kvfpga_model *m;
	struct tf_model tm;

	tf_model_make(&tm, &small, 99);
	ck_assert_int_eq(tf_write_llama2c(tmp("small.bin"), &tm), 0);
	tf_model_free(&tm);
	ck_assert_int_eq(open_model(tmp("small.bin"), &m, NULL), 0);
	return m;
}

static size_t feed(struct kvfpga_token_in *in, uint32_t seq, uint32_t pos, size_t n)
{
	for (size_t i = 0; i < n; i++)
		in[i] = (struct kvfpga_token_in){ seq, pos + (uint32_t)i, 3 + (uint32_t)i % 30,
			                          i + 1 == n };
	return n;
}

START_TEST(test_prompt_longer_than_context)
{
	struct kvfpga_model *m = small_model();
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf = NULL;
	struct kvfpga_token_in in[16];
	uint32_t toks[16] = { 0 }, seq, len, cached;
	float logits[40];

	kvfpga_infer_opts_init(&o);
	o.max_seq_len = 8;
	o.max_batch = 16;
	ck_assert_int_eq(kvfpga_infer_create(m, &o, &inf), 0);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &seq), 0);

	/* The whole prompt is past the context: refused, the sequence still empty. */
	ck_assert_int_eq(kvfpga_infer_seq_prefix(inf, seq, toks, 9, &cached), -ERANGE);
	ck_assert_int_eq(kvfpga_infer_forward(inf, in, feed(in, seq, 0, 9), logits), -ERANGE);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, seq, &len), 0);
	ck_assert_uint_eq(len, 0);

	/* Exactly the context fits; one more position does not, and changes nothing. */
	ck_assert_int_eq(kvfpga_infer_forward(inf, in, feed(in, seq, 0, 8), logits), 0);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, seq, &len), 0);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(kvfpga_infer_forward(inf, in, feed(in, seq, 8, 1), logits), -ERANGE);
	ck_assert_int_eq(kvfpga_infer_seq_len(inf, seq, &len), 0);
	ck_assert_uint_eq(len, 8);

	/* Other bad input stays -EINVAL: the two are told apart. */
	ck_assert_int_eq(kvfpga_infer_forward(inf, in, feed(in, seq, 3, 1), logits), -EINVAL);

	/* A context larger than the model was trained for, or absurd, is refused up front. */
	kvfpga_infer_free(inf);
	o.max_seq_len = 1u << 30;
	inf = NULL;
	ck_assert_int_eq(kvfpga_infer_create(m, &o, &inf), -EINVAL);
	ck_assert_ptr_null(inf);
	kvfpga_model_close(m);
}
END_TEST

START_TEST(test_more_sequences_than_the_context_holds)
{
	struct kvfpga_model *m = small_model();
	struct kvfpga_infer_opts o;
	struct kvfpga_infer *inf = NULL;
	struct kvfpga_token_in in[4];
	uint32_t seqs[3], extra, len;
	float logits[40];

	kvfpga_infer_opts_init(&o);
	o.max_seqs = 3;
	ck_assert_int_eq(kvfpga_infer_create(m, &o, &inf), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(kvfpga_infer_seq_create(inf, &seqs[i]), 0);
		ck_assert_int_eq(kvfpga_infer_forward(inf, in, feed(in, seqs[i], 0, 2 + i), logits),
		                 0);
	}
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &extra), -ENOSPC);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(kvfpga_infer_seq_len(inf, seqs[i], &len), 0);
		ck_assert_uint_eq(len, 2 + (uint32_t)i);
	}
	/* Freeing one makes room again. */
	ck_assert_int_eq(kvfpga_infer_seq_free(inf, seqs[1]), 0);
	ck_assert_int_eq(kvfpga_infer_seq_create(inf, &extra), 0);
	kvfpga_infer_free(inf);
	kvfpga_model_close(m);
}
END_TEST

/* ---- card memory ---- */

static struct kvfpga_device *emu_dev(uint64_t bytes)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev = NULL;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	opts.backend = KVFPGA_BACKEND_EMULATED;
	opts.emu_mem_size = bytes;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), 0);
	return dev;
}

static struct kvfpga_device_info info_of(struct kvfpga_device *dev)
{
	struct kvfpga_device_info info;

	ck_assert_int_eq(kvfpga_device_query(dev, &info), 0);
	return info;
}

static void kv_config(struct kvfpga_kvcache_config *cfg, uint32_t n_blocks)
{
	ck_assert_int_eq(kvfpga_kvcache_config_init(cfg), 0);
	cfg->n_layers = 2;
	cfg->n_kv_heads = 2;
	cfg->head_dim = 16;
	cfg->block_size = 16;
	cfg->dtype = KVFPGA_KVCACHE_F16;
	cfg->n_blocks = n_blocks; /* 4 KiB per block */
}

START_TEST(test_card_without_free_memory)
{
	struct kvfpga_device *dev = emu_dev(1u << 20);
	struct kvfpga_device_info before, after, full;
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache *kc = NULL;
	struct kvfpga_bo *bos[512], *bo = NULL;
	uint64_t size;
	size_t n = 0;
	int ret;

	before = info_of(dev);
	/* Fill it: largest pieces first, down to the granule. */
	for (size = before.max_bo_size; size >= before.granule && n < 512;) {
		ret = kvfpga_bo_create(dev, size, 0, &bos[n]);
		if (ret == 0) {
			n++;
			continue;
		}
		ck_assert_int_eq(ret, -ENOSPC);
		size /= 2;
	}
	full = info_of(dev);
	ck_assert_uint_eq(full.mem_free, 0);

	ck_assert_int_eq(kvfpga_bo_create(dev, before.granule, 0, &bo), -ENOSPC);
	ck_assert_ptr_null(bo);
	kv_config(&cfg, 1);
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -ENOSPC);
	ck_assert_ptr_null(kc);
	/* Larger than the card could ever hold is a different answer. */
	ck_assert_int_eq(kvfpga_bo_create(dev, before.max_bo_size + 1, 0, &bo), -E2BIG);
	after = info_of(dev);
	ck_assert_uint_eq(after.mem_free, 0);
	ck_assert_uint_eq(after.bo_count, full.bo_count);

	/* One buffer back, and the cache fits. */
	kvfpga_bo_free(bos[--n]);
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), 0);
	kvfpga_kvcache_destroy(kc);
	while (n)
		kvfpga_bo_free(bos[--n]);
	after = info_of(dev);
	ck_assert_uint_eq(after.mem_free, before.mem_free);
	ck_assert_uint_eq(after.bo_count, before.bo_count);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(test_kvcache_more_blocks_than_fit)
{
	struct kvfpga_device *dev = emu_dev(1u << 20);
	struct kvfpga_device_info before = info_of(dev), after;
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache *kc = NULL;

	/* Twice the card: -E2BIG from the device, nothing taken. */
	kv_config(&cfg, (uint32_t)(2 * before.mem_total / 4096));
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -E2BIG);
	ck_assert_ptr_null(kc);
	/* More blocks than the cache can number, or an arena past 64 bits. */
	kv_config(&cfg, 0);
	cfg.mem_bytes = UINT64_MAX;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	kv_config(&cfg, 1);
	cfg.n_layers = UINT32_MAX;
	cfg.n_kv_heads = UINT32_MAX;
	cfg.head_dim = UINT32_MAX;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EOVERFLOW);
	/* Under one block. */
	kv_config(&cfg, 0);
	cfg.mem_bytes = 4095;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), -EINVAL);
	ck_assert_ptr_null(kc);
	after = info_of(dev);
	ck_assert_uint_eq(after.mem_free, before.mem_free);
	ck_assert_uint_eq(after.bo_count, before.bo_count);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(test_kvcache_sequences_past_their_blocks)
{
	struct kvfpga_device *dev = emu_dev(1u << 20);
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache *kc = NULL;
	struct kvfpga_kvcache_stats st0, st1;
	struct kvfpga_kvseq *seqs[8] = { 0 }, *late = NULL;
	struct kvfpga_kvseq_info info;
	int32_t toks[80];

	for (int i = 0; i < 80; i++)
		toks[i] = 100 + i;
	kv_config(&cfg, 4);
	cfg.flags = KVFPGA_KVCACHE_NO_PREFIX_CACHING;
	ck_assert_int_eq(kvfpga_kvcache_create(dev, &cfg, &kc), 0);

	/* One sequence asking for five blocks of four: refused whole. */
	ck_assert_int_eq(kvfpga_kvseq_create(kc, 0, &seqs[0]), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_stats(kc, &st0), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(seqs[0], toks, 80, NULL), -ENOSPC);
	ck_assert_int_eq(kvfpga_kvseq_get_info(seqs[0], &info), 0);
	ck_assert_uint_eq(info.len, 0);
	ck_assert_uint_eq(info.n_blocks, 0);
	ck_assert_int_eq(kvfpga_kvcache_get_stats(kc, &st1), 0);
	ck_assert_uint_eq(st1.blocks_free, st0.blocks_free);

	/* Four sequences take a block each; a fifth cannot start, the others stay. */
	for (int i = 0; i < 4; i++) {
		if (!seqs[i])
			ck_assert_int_eq(kvfpga_kvseq_create(kc, 0, &seqs[i]), 0);
		ck_assert_int_eq(kvfpga_kvseq_append(seqs[i], toks, 10 + (uint32_t)i, NULL), 0);
	}
	ck_assert_int_eq(kvfpga_kvseq_create(kc, 0, &late), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(late, toks, 1, NULL), -ENOSPC);
	/* Growing one past its block needs a fifth block too. */
	ck_assert_int_eq(kvfpga_kvseq_append(seqs[0], toks, 7, NULL), -ENOSPC);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(kvfpga_kvseq_get_info(seqs[i], &info), 0);
		ck_assert_uint_eq(info.len, 10 + (uint32_t)i);
		ck_assert_uint_eq(info.n_blocks, 1);
	}
	ck_assert_int_eq(kvfpga_kvseq_get_info(late, &info), 0);
	ck_assert_uint_eq(info.len, 0);
	ck_assert_int_eq(kvfpga_kvcache_verify(kc), 0);

	/* Freeing one gives its block to the late one. */
	kvfpga_kvseq_free(seqs[3]);
	seqs[3] = NULL;
	ck_assert_int_eq(kvfpga_kvseq_append(late, toks, 16, NULL), 0);
	ck_assert_int_eq(kvfpga_kvcache_verify(kc), 0);
	kvfpga_kvseq_free(late);
	for (int i = 0; i < 4; i++)
		kvfpga_kvseq_free(seqs[i]);
	kvfpga_kvcache_destroy(kc);
	kvfpga_device_close(dev);
}
END_TEST

static Suite *limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_llama2c_huge_dimensions);
	tcase_add_test(tc, test_gguf_huge_dimensions);
	tcase_add_test(tc, test_tokenizer_vocabulary_too_large);
	tcase_add_test(tc, test_prompt_longer_than_context);
	tcase_add_test(tc, test_more_sequences_than_the_context_holds);
	tcase_add_test(tc, test_card_without_free_memory);
	tcase_add_test(tc, test_kvcache_more_blocks_than_fit);
	tcase_add_test(tc, test_kvcache_sequences_past_their_blocks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(limits_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
