/* SPDX-License-Identifier: MIT */
/* Internal to libkvfpga: the model object shared by the loaders, the forward pass and the
 * tokenizer. */
#ifndef KVFPGA_MODEL_INTERNAL_H
#define KVFPGA_MODEL_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#include "kvfpga/model.h"

/* Sanity limits: anything larger is treated as a corrupt header. */
#define KVFI_MAX_DIM      65536u
#define KVFI_MAX_HIDDEN   (1u << 20)
#define KVFI_MAX_LAYERS   1024u
#define KVFI_MAX_HEADS    1024u
#define KVFI_MAX_HEAD_DIM 1024u
#define KVFI_MAX_VOCAB    (1u << 22)
#define KVFI_MAX_SEQ_LEN  (1u << 22)

#define KVFI_Q8_0_BLOCK 32u /* elements per q8_0 block */
#define KVFI_Q8_0_BYTES 34u /* fp16 scale + 32 int8 */

/* A row-major [rows x cols] matrix in the mapping (row r starts at r * row_bytes). */
struct kvfi_tensor {
	const uint8_t *data;
	enum kvfpga_dtype type;
	uint32_t rows, cols;
	size_t row_bytes;
};

struct kvfi_layer {
	const float *rms_att, *rms_ffn; /* [dim] */
	struct kvfi_tensor wq, wk, wv, wo, w1, w2, w3;
};

/* A GGUF llama vocabulary, pointing into the mapping (validated by the loader). */
struct kvfi_gguf_vocab {
	int present;
	uint64_t n_tokens;
	const uint8_t *tokens;      /* n_tokens GGUF strings: uint64 length, bytes */
	const uint8_t *scores;      /* n_tokens float32 or NULL */
	const uint8_t *token_types; /* n_tokens int32 or NULL */
	int64_t bos, eos, unk;      /* -1 when absent */
};

struct kvfpga_model {
	struct kvfpga_model_config cfg;
	void *map;
	size_t map_size;
	struct kvfi_tensor tok_embd; /* [vocab x dim] */
	struct kvfi_tensor wcls;     /* [vocab x dim], == tok_embd when shared */
	const float *rms_final;
	struct kvfi_layer *layers;
	struct kvfi_gguf_vocab vocab;
};

/* printf into the caller's error buffer (if any); returns @ret for "return kvfi_fail(...)". */
int kvfi_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Bytes of one row of @cols elements of @type; 0 if @cols does not fit the type's blocks. */
size_t kvfi_row_bytes(enum kvfpga_dtype type, uint32_t cols);
int kvfi_tensor_init(struct kvfi_tensor *t, const uint8_t *data, enum kvfpga_dtype type,
                     uint32_t rows, uint32_t cols);

/* Checks shared by both loaders; fills head_dim. */
int kvfi_check_config(struct kvfpga_model_config *cfg, char *err, size_t errlen);
/* Fills the derived fields (bytes per token, parameter count, weight dtype). */
void kvfi_finish_config(struct kvfpga_model *m);

int kvfi_load_llama2c(struct kvfpga_model *m, char *err, size_t errlen);
int kvfi_load_gguf(struct kvfpga_model *m, char *err, size_t errlen);

#endif /* KVFPGA_MODEL_INTERNAL_H */
