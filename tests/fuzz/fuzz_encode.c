/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the tokenizer's encoder on arbitrary bytes, with the
 * project's own vocabularies (kvfpga-genmodel's tokenizer.bin and the
 * vocabulary of its GGUF, paths in KVFPGA_FUZZ_TOKENIZER and
 * KVFPGA_FUZZ_GGUF; tests/fuzz/fuzz.mk sets them).  Byte 0 of the input
 * picks the vocabulary and the flags, the rest is the text.
 *
 * Both vocabularies hold all 256 byte tokens, so encoding loses nothing:
 * the pieces of the tokens, concatenated, are exactly the text (after the
 * dummy-prefix space unless KVFPGA_TOKENIZE_NO_SPACE), and for valid UTF-8
 * with the prefix the streaming decoder gives the text back byte for byte.
 */
#include "fuzz_common.h"

static struct kvfpga_tokenizer *vocabs[2];
static struct kvfpga_model *gguf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tok_path = getenv("KVFPGA_FUZZ_TOKENIZER");
	const char *gguf_path = getenv("KVFPGA_FUZZ_GGUF");
	char err[512];
	int ret;

	(void)argc;
	(void)argv;
	if (!tok_path || !gguf_path) {
		fprintf(stderr, "fuzz_encode: set KVFPGA_FUZZ_TOKENIZER and KVFPGA_FUZZ_GGUF "
		                "(make fuzz does)\n");
		exit(2);
	}
	/* The tokenizer.bin holds no count: the model's vocabulary size is the file's. */
	ret = kvfpga_model_open(gguf_path, KVFPGA_MODEL_FORMAT_GGUF, &gguf, err, sizeof(err));
	if (ret == 0)
		ret = kvfpga_tokenizer_from_model(gguf, &vocabs[1], err, sizeof(err));
	if (ret == 0)
		ret = kvfpga_tokenizer_load_llama2c(tok_path,
		                                    kvfpga_tokenizer_vocab_size(vocabs[1]),
		                                    &vocabs[0], err, sizeof(err));
	if (ret) {
		fprintf(stderr, "fuzz_encode: cannot load the vocabularies: %s\n", err);
		exit(2);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct kvfpga_tokenizer *tok;
	uint32_t flags, *toks = NULL;
	uint8_t *decoded = NULL, *joined;
	size_t decoded_len = 0, text_len, joined_len = 0;
	const uint8_t *text;
	bool prefix;
	long n;

	if (size < 1)
		return 0;
	tok = vocabs[data[0] & 1];
	flags = (data[0] >> 1) &
	        (KVFPGA_TOKENIZE_BOS | KVFPGA_TOKENIZE_EOS | KVFPGA_TOKENIZE_NO_SPACE);
	text = data + 1;
	text_len = size - 1;
	prefix = text_len && !(flags & KVFPGA_TOKENIZE_NO_SPACE);
	n = fuzz_encode_check(tok, text, text_len, flags, &toks, &decoded, &decoded_len);
	if (n < 0)
		return 0;

	/* Lossless: the pieces (BOS and EOS aside) are the text, after the prefix. */
	joined = malloc(text_len + 2);
	if (!joined)
		abort();
	for (long i = (flags & KVFPGA_TOKENIZE_BOS) ? 1 : 0;
	     i < n - ((flags & KVFPGA_TOKENIZE_EOS) ? 1 : 0); i++) {
		const char *piece;
		size_t len;

		kvfpga_tokenizer_piece(tok, toks[i], &piece, &len);
		if (joined_len + len > text_len + 1)
			fuzz_fail("the pieces of %ld tokens are longer than the %zu-byte text", n,
			          text_len);
		memcpy(joined + joined_len, piece, len);
		joined_len += len;
	}
	if (joined_len != text_len + prefix || (prefix && joined[0] != ' ') ||
	    memcmp(joined + prefix, text, text_len))
		fuzz_fail("the pieces do not spell the text (%zu bytes for %zu + prefix %d)",
		          joined_len, text_len, prefix);

	/* Round trip through the streaming decoder. */
	if (prefix && !(flags & (KVFPGA_TOKENIZE_BOS | KVFPGA_TOKENIZE_EOS)) &&
	    fuzz_utf8_valid(text, text_len) &&
	    (decoded_len != text_len || memcmp(decoded, text, text_len)))
		fuzz_fail("decoding %zu bytes of valid UTF-8 gave %zu different bytes", text_len,
		          decoded_len);
	free(joined);
	free(decoded);
	free(toks);
	return 0;
}
