/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the llama2.c tokenizer.bin loader.  The input is a
 * little-endian uint32 vocabulary size (the model's, as the loader is told;
 * its low 16 bits are used) followed by the file.  A file that loads is then
 * used: every piece is looked up again by its text, and text (a fixed
 * sentence and the input's tail) goes through encode and the streaming
 * decoder.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sentence[] =
	        "The sun was warm and the flowers were bright. \xe4\xb8\xad!";
	struct kvfpga_tokenizer *tok = NULL;
	uint32_t vocab = 0, n;
	char err[512];
	size_t tail;
	int ret;

	if (size < 4)
		return 0;
	memcpy(&vocab, data, 4);
	vocab &= 0xffff;
	err[0] = 'x';
	ret = kvfpga_tokenizer_load_llama2c(fuzz_file(data + 4, size - 4), vocab, &tok, err,
	                                    sizeof(err));
	if (ret) {
		if (tok)
			fuzz_fail("load failed (%d) but returned a tokenizer", ret);
		if (ret > 0 || !err[0])
			fuzz_fail("load failed with %d and no reason", ret);
		return 0;
	}
	n = kvfpga_tokenizer_vocab_size(tok);
	if (n != vocab)
		fuzz_fail("loaded %u pieces, asked for %u", n, vocab);
	/* Every piece's text finds a piece with that same text (the first of duplicates). */
	for (uint32_t id = 0; id < n; id++) {
		const char *piece, *again;
		size_t len, len2;
		uint32_t found;

		if (kvfpga_tokenizer_piece(tok, id, &piece, &len))
			fuzz_fail("no piece for id %u", id);
		if (!len)
			continue;
		ret = kvfpga_tokenizer_find(tok, piece, len, &found);
		if (ret == -ENOENT)
			continue; /* a byte token's piece is its byte, found under its own text */
		if (ret || kvfpga_tokenizer_piece(tok, found, &again, &len2))
			fuzz_fail("find of piece %u gave %d", id, ret);
	}
	fuzz_encode_check(tok, (const uint8_t *)sentence, sizeof(sentence) - 1, KVFPGA_TOKENIZE_BOS,
	                  NULL, NULL, NULL);
	tail = size - 4 < 48 ? size - 4 : 48;
	fuzz_encode_check(tok, data + size - tail, tail, KVFPGA_TOKENIZE_NO_SPACE, NULL, NULL,
	                  NULL);
	kvfpga_tokenizer_free(tok);
	return 0;
}
