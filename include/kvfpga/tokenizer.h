/* SPDX-License-Identifier: MIT */
/*
 * SentencePiece-style BPE tokenizer (llama): pieces with scores, merges
 * chosen by highest score, byte fallback through <0xXX> tokens, BOS/EOS.
 * Vocabularies come from a llama2.c tokenizer.bin or from a GGUF model's
 * metadata (tokenizer.ggml.model = llama).
 *
 * A struct kvfpga_tokenizer is read-only after loading and may be used by
 * several threads at once.  A struct kvfpga_detok (streaming decoder) is
 * used by one thread at a time.
 */
#ifndef KVFPGA_TOKENIZER_H
#define KVFPGA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvfpga_tokenizer;
struct kvfpga_detok;
struct kvfpga_model;

/*
 * llama2.c tokenizer.bin: uint32 max_token_length, then per token float
 * score, uint32 length, bytes.  @vocab_size is the model's (the file has
 * no count).  BOS = 1, EOS = 2.
 */
int kvfpga_tokenizer_load_llama2c(const char *path, uint32_t vocab_size,
                                  struct kvfpga_tokenizer **out, char *err, size_t errlen);
/* The vocabulary in a GGUF model's metadata; -ENOENT if it has none. */
int kvfpga_tokenizer_from_model(const struct kvfpga_model *model, struct kvfpga_tokenizer **out,
                                char *err, size_t errlen);
void kvfpga_tokenizer_free(struct kvfpga_tokenizer *tok);

uint32_t kvfpga_tokenizer_vocab_size(const struct kvfpga_tokenizer *tok);
uint32_t kvfpga_tokenizer_bos(const struct kvfpga_tokenizer *tok);
uint32_t kvfpga_tokenizer_eos(const struct kvfpga_tokenizer *tok);

#define KVFPGA_TOKENIZE_BOS      1u /* prepend BOS */
#define KVFPGA_TOKENIZE_EOS      2u /* append EOS */
#define KVFPGA_TOKENIZE_NO_SPACE 4u /* no SentencePiece dummy-prefix space */

/*
 * Encode @len bytes of @text (any bytes; invalid UTF-8 falls back to byte
 * tokens).  Writes at most @max tokens; *@n_tokens is the count needed,
 * and -ENOSPC is returned when it exceeds @max.
 */
int kvfpga_tokenizer_encode(const struct kvfpga_tokenizer *tok, const char *text, size_t len,
                            uint32_t flags, uint32_t *tokens, size_t max, size_t *n_tokens);

/*
 * The raw bytes of a token's piece (a byte token <0xXX> gives its one
 * byte; control tokens give "").  *@piece is valid while @tok lives.
 */
int kvfpga_tokenizer_piece(const struct kvfpga_tokenizer *tok, uint32_t token, const char **piece,
                           size_t *len);
/* Id of an exact piece, -ENOENT if absent. */
int kvfpga_tokenizer_find(const struct kvfpga_tokenizer *tok, const char *piece, size_t len,
                          uint32_t *token);

/*
 * Streaming decoder: feed tokens one at a time, get text that is always
 * whole UTF-8 characters.  Bytes of a character split across tokens are
 * held back until complete; invalid sequences come out as U+FFFD.  The
 * dummy-prefix space after BOS (or at the very start) is dropped.
 */
int kvfpga_detok_create(const struct kvfpga_tokenizer *tok, struct kvfpga_detok **out);
void kvfpga_detok_free(struct kvfpga_detok *d);
void kvfpga_detok_reset(struct kvfpga_detok *d);
/*
 * Writes the text completed by @token to @buf (NUL-terminated) and sets
 * *@n to its length.  -ENOSPC (state unchanged) when @cap is less than
 * 3 * (the piece's length) + 4, enough for every byte becoming U+FFFD.
 */
int kvfpga_detok_push(struct kvfpga_detok *d, uint32_t token, char *buf, size_t cap, size_t *n);
/* Emits what is still held (as U+FFFD) and resets. */
int kvfpga_detok_flush(struct kvfpga_detok *d, char *buf, size_t cap, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_TOKENIZER_H */
