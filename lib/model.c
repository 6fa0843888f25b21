/* SPDX-License-Identifier: MIT */
/* Model objects: mapping a checkpoint, format detection, shared checks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

int kvfi_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

size_t kvfi_row_bytes(enum kvfpga_dtype type, uint32_t cols)
{
	switch (type) {
	case KVFPGA_DTYPE_F32:
		return (size_t)cols * 4;
	case KVFPGA_DTYPE_F16:
		return (size_t)cols * 2;
	case KVFPGA_DTYPE_Q8_0:
		if (cols % KVFI_Q8_0_BLOCK)
			return 0;
		return (size_t)cols / KVFI_Q8_0_BLOCK * KVFI_Q8_0_BYTES;
	}
	return 0;
}

int kvfi_tensor_init(struct kvfi_tensor *t, const uint8_t *data, enum kvfpga_dtype type,
                     uint32_t rows, uint32_t cols)
{
	size_t rb = kvfi_row_bytes(type, cols);

	if (!rb || !rows)
		return -EINVAL;
	t->data = data;
	t->type = type;
	t->rows = rows;
	t->cols = cols;
	t->row_bytes = rb;
	return 0;
}

const char *kvfpga_model_format_name(enum kvfpga_model_format format)
{
	switch (format) {
	case KVFPGA_MODEL_FORMAT_AUTO:
		return "auto";
	case KVFPGA_MODEL_FORMAT_LLAMA2C:
		return "llama2.c";
	case KVFPGA_MODEL_FORMAT_GGUF:
		return "gguf";
	}
	return "unknown";
}

const char *kvfpga_dtype_name(enum kvfpga_dtype dtype)
{
	switch (dtype) {
	case KVFPGA_DTYPE_F32:
		return "f32";
	case KVFPGA_DTYPE_F16:
		return "f16";
	case KVFPGA_DTYPE_Q8_0:
		return "q8_0";
	}
	return "unknown";
}

int kvfi_check_config(struct kvfpga_model_config *c, char *err, size_t errlen)
{
#define LIMIT(field, lo, hi)                                                                       \
	do {                                                                                       \
		if (c->field < (lo) || c->field > (hi))                                            \
			return kvfi_fail(err, errlen, -EINVAL,                                     \
			                 "%s = %u is outside [%u, %u]: not a plausible model",     \
			                 #field, c->field, (unsigned)(lo), (unsigned)(hi));        \
	} while (0)
	LIMIT(dim, 2, KVFI_MAX_DIM);
	LIMIT(hidden_dim, 1, KVFI_MAX_HIDDEN);
	LIMIT(n_layers, 1, KVFI_MAX_LAYERS);
	LIMIT(n_heads, 1, KVFI_MAX_HEADS);
	LIMIT(n_kv_heads, 1, KVFI_MAX_HEADS);
	LIMIT(vocab_size, 3, KVFI_MAX_VOCAB);
	LIMIT(seq_len, 1, KVFI_MAX_SEQ_LEN);
#undef LIMIT
	if (c->dim % c->n_heads)
		return kvfi_fail(err, errlen, -EINVAL, "dim %u is not a multiple of n_heads %u",
		                 c->dim, c->n_heads);
	c->head_dim = c->dim / c->n_heads;
	if (c->head_dim % 2 || c->head_dim > KVFI_MAX_HEAD_DIM)
		return kvfi_fail(err, errlen, -EINVAL,
		                 "head size %u must be even and at most %u (dim %u, %u heads)",
		                 c->head_dim, KVFI_MAX_HEAD_DIM, c->dim, c->n_heads);
	if (c->n_heads % c->n_kv_heads)
		return kvfi_fail(err, errlen, -EINVAL,
		                 "n_heads %u is not a multiple of n_kv_heads %u", c->n_heads,
		                 c->n_kv_heads);
	if (!(c->rms_eps > 0.0f && c->rms_eps < 1.0f))
		return kvfi_fail(err, errlen, -EINVAL, "RMSNorm epsilon %g is not in (0, 1)",
		                 (double)c->rms_eps);
	if (!(c->rope_theta > 1.0f && c->rope_theta < 1e12f))
		return kvfi_fail(err, errlen, -EINVAL, "RoPE base %g is not plausible",
		                 (double)c->rope_theta);
	return 0;
}

static uint64_t tensor_bytes(const struct kvfi_tensor *t)
{
	return (uint64_t)t->rows * t->row_bytes;
}

void kvfi_finish_config(struct kvfpga_model *m)
{
	struct kvfpga_model_config *c = &m->cfg;
	uint64_t bytes = 0, params = 0, norm = (uint64_t)c->dim * 4;

	for (uint32_t l = 0; l < c->n_layers; l++) {
		const struct kvfi_layer *ly = &m->layers[l];
		const struct kvfi_tensor *ts[] = { &ly->wq, &ly->wk, &ly->wv, &ly->wo,
			                           &ly->w1, &ly->w2, &ly->w3 };

		for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
			bytes += tensor_bytes(ts[i]);
			params += (uint64_t)ts[i]->rows * ts[i]->cols;
		}
		bytes += 2 * norm;
		params += 2 * (uint64_t)c->dim;
	}
	/* One embedding row is read per token; the classifier is read whole. */
	bytes += m->tok_embd.row_bytes + tensor_bytes(&m->wcls) + norm;
	params += (uint64_t)c->vocab_size * c->dim + c->dim;
	if (!c->shared_classifier)
		params += (uint64_t)c->vocab_size * c->dim;
	c->weight_bytes_per_token = bytes;
	c->n_params = params;
	c->weight_dtype = m->layers[0].w1.type;
}

int kvfpga_model_open(const char *path, enum kvfpga_model_format format, struct kvfpga_model **out,
                      char *err, size_t errlen)
{
	struct kvfpga_model *m;
	struct stat st;
	int fd, ret;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !out)
		return kvfi_fail(err, errlen, -EINVAL, "no model path");
	if (format != KVFPGA_MODEL_FORMAT_AUTO && format != KVFPGA_MODEL_FORMAT_LLAMA2C &&
	    format != KVFPGA_MODEL_FORMAT_GGUF)
		return kvfi_fail(err, errlen, -EINVAL, "unknown model format %d", (int)format);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		return kvfi_fail(err, errlen, ret, "%s: %s", path, strerror(-ret));
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return kvfi_fail(err, errlen, ret, "%s: %s", path, strerror(-ret));
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 8) {
		close(fd);
		return kvfi_fail(err, errlen, -EPROTO, "%s: not a model file (%lld bytes)", path,
		                 (long long)st.st_size);
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	}
	m->map_size = (size_t)st.st_size;
	m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		ret = -errno;
		free(m);
		return kvfi_fail(err, errlen, ret, "%s: mmap: %s", path, strerror(-ret));
	}
	if (format == KVFPGA_MODEL_FORMAT_AUTO)
		format = memcmp(m->map, "GGUF", 4) == 0 ? KVFPGA_MODEL_FORMAT_GGUF
		                                        : KVFPGA_MODEL_FORMAT_LLAMA2C;
	m->cfg.format = format;
	m->vocab.bos = m->vocab.eos = m->vocab.unk = -1;
	ret = format == KVFPGA_MODEL_FORMAT_GGUF ? kvfi_load_gguf(m, err, errlen)
	                                         : kvfi_load_llama2c(m, err, errlen);
	if (ret) {
		kvfpga_model_close(m);
		return ret;
	}
	kvfi_finish_config(m);
	/* Decoding streams every matrix once per token: let the kernel read ahead. */
	madvise(m->map, m->map_size, MADV_WILLNEED);
	*out = m;
	return 0;
}

void kvfpga_model_close(struct kvfpga_model *model)
{
	if (!model)
		return;
	if (model->map && model->map != MAP_FAILED)
		munmap(model->map, model->map_size);
	free(model->layers);
	free(model);
}

int kvfpga_model_get_config(const struct kvfpga_model *model, struct kvfpga_model_config *cfg)
{
	if (!model || !cfg)
		return -EINVAL;
	*cfg = model->cfg;
	return 0;
}
