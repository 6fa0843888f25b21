/* SPDX-License-Identifier: MIT */
/*
 * The model loaders' fuzz targets (fuzz_gguf.c, fuzz_llama2c.c): load the
 * input, and when it loads, check what the forward pass relies on without
 * reading it: every tensor and norm vector the model points at lies inside
 * the file, with the shape the configuration says.  Then, for a GGUF with a
 * vocabulary, build its tokenizer and encode/decode through it.
 */
#ifndef KVFPGA_FUZZ_MODEL_H
#define KVFPGA_FUZZ_MODEL_H

#include "fuzz_common.h"
#include "model_internal.h"

static void fuzz_check_range(const struct kvfpga_model *m, const void *p, uint64_t bytes,
                             const char *what)
{
	const uint8_t *lo = m->map, *hi = lo + m->map_size, *q = p;

	if (!q || q < lo || q > hi || bytes > (uint64_t)(hi - q))
		fuzz_fail("%s (%llu bytes at +%lld) lies outside the %zu-byte file", what,
		          (unsigned long long)bytes, q ? (long long)(q - lo) : -1LL, m->map_size);
}

static void fuzz_check_tensor(const struct kvfpga_model *m, const struct kvfi_tensor *t,
                              uint32_t rows, uint32_t cols, const char *what)
{
	if (t->rows != rows || t->cols != cols)
		fuzz_fail("%s is [%u x %u], the config says [%u x %u]", what, t->rows, t->cols,
		          rows, cols);
	if (t->row_bytes != kvfi_row_bytes(t->type, cols) || !t->row_bytes)
		fuzz_fail("%s has %zu bytes per row", what, t->row_bytes);
	fuzz_check_range(m, t->data, (uint64_t)rows * t->row_bytes, what);
}

static void fuzz_check_model(const struct kvfpga_model *m)
{
	struct kvfpga_model_config c;
	uint32_t kv_dim;

	if (kvfpga_model_get_config(m, &c))
		fuzz_fail("get_config failed on an open model");
	if (!c.dim || !c.n_heads || c.head_dim * c.n_heads != c.dim || !c.n_kv_heads ||
	    c.n_heads % c.n_kv_heads || !c.n_layers || c.vocab_size < 3 || !c.seq_len)
		fuzz_fail("inconsistent config: dim %u heads %u/%u head_dim %u layers %u vocab %u",
		          c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.n_layers, c.vocab_size);
	kv_dim = c.n_kv_heads * c.head_dim;
	fuzz_check_tensor(m, &m->tok_embd, c.vocab_size, c.dim, "token embedding");
	fuzz_check_tensor(m, &m->wcls, c.vocab_size, c.dim, "classifier");
	fuzz_check_range(m, m->rms_final, (uint64_t)c.dim * 4, "final norm");
	for (uint32_t l = 0; l < c.n_layers; l++) {
		const struct kvfi_layer *ly = &m->layers[l];

		fuzz_check_range(m, ly->rms_att, (uint64_t)c.dim * 4, "attention norm");
		fuzz_check_range(m, ly->rms_ffn, (uint64_t)c.dim * 4, "ffn norm");
		fuzz_check_tensor(m, &ly->wq, c.dim, c.dim, "wq");
		fuzz_check_tensor(m, &ly->wk, kv_dim, c.dim, "wk");
		fuzz_check_tensor(m, &ly->wv, kv_dim, c.dim, "wv");
		fuzz_check_tensor(m, &ly->wo, c.dim, c.dim, "wo");
		fuzz_check_tensor(m, &ly->w1, c.hidden_dim, c.dim, "w1");
		fuzz_check_tensor(m, &ly->w2, c.dim, c.hidden_dim, "w2");
		fuzz_check_tensor(m, &ly->w3, c.hidden_dim, c.dim, "w3");
	}
}

/* Text to push through a model's tokenizer: a fixed sentence, then the input's tail. */
static void fuzz_check_model_tokenizer(const struct kvfpga_model *m, const uint8_t *data,
                                       size_t size)
{
	static const char sentence[] = "Once upon a time, a caf\xc3\xa9 \xe2\x96\x81 <0x41> \xff.";
	struct kvfpga_tokenizer *tok = NULL;
	char err[256];
	int ret = kvfpga_tokenizer_from_model(m, &tok, err, sizeof(err));
	size_t tail = size < 64 ? size : 64;

	if (ret) {
		if (tok)
			fuzz_fail("tokenizer_from_model failed (%d) but returned one", ret);
		if (!err[0])
			fuzz_fail("tokenizer_from_model failed (%d) without a reason", ret);
		return;
	}
	if (kvfpga_tokenizer_vocab_size(tok) > m->cfg.vocab_size)
		fuzz_fail("tokenizer has %u pieces, the model %u rows",
		          kvfpga_tokenizer_vocab_size(tok), m->cfg.vocab_size);
	fuzz_encode_check(tok, (const uint8_t *)sentence, sizeof(sentence) - 1,
	                  KVFPGA_TOKENIZE_BOS | KVFPGA_TOKENIZE_EOS, NULL, NULL, NULL);
	fuzz_encode_check(tok, data + size - tail, tail, 0, NULL, NULL, NULL);
	kvfpga_tokenizer_free(tok);
}

static int fuzz_model_one(const uint8_t *data, size_t size, enum kvfpga_model_format format)
{
	struct kvfpga_model *m = NULL;
	char err[512];
	int ret;

	err[0] = 'x';
	ret = kvfpga_model_open(fuzz_file(data, size), format, &m, err, sizeof(err));
	if (ret) {
		if (m)
			fuzz_fail("model_open failed (%d) but returned a model", ret);
		if (ret > 0 || !err[0] || !memchr(err, '\0', sizeof(err)))
			fuzz_fail("model_open failed with %d and reason '%.40s'", ret, err);
		return 0;
	}
	fuzz_check_model(m);
	fuzz_check_model_tokenizer(m, data, size);
	kvfpga_model_close(m);
	return 0;
}

#endif
