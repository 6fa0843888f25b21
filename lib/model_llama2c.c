/* SPDX-License-Identifier: MIT */
/*
 * llama2.c checkpoints (legacy layout): a header of 7 int32 (dim,
 * hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then
 * fp32 weights.  A negative vocab_size means an unshared classifier (wcls)
 * follows the RoPE tables.  The file's freq_cis tables are skipped: RoPE
 * is computed (base 10000, as llama2.c's run.c does).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define LLAMA2C_HEADER_BYTES (7 * 4)

struct cursor {
	const uint8_t *base;
	size_t off, size;
};

/* Take an [rows x cols] f32 tensor at the cursor; the caller checked the total size. */
static void take(struct cursor *c, struct kvfi_tensor *t, uint32_t rows, uint32_t cols)
{
	kvfi_tensor_init(t, c->base + c->off, KVFPGA_DTYPE_F32, rows, cols);
	c->off += (size_t)rows * cols * 4;
}

static const float *take_vec(struct cursor *c, size_t n)
{
	const float *p = (const float *)(c->base + c->off);

	c->off += n * 4;
	return p;
}

int kvfi_load_llama2c(struct kvfpga_model *m, char *err, size_t errlen)
{
	struct kvfpga_model_config *cfg = &m->cfg;
	int32_t hdr[7];
	uint64_t dim, hidden, L, kv_dim, vocab, need;
	struct cursor c;
	int ret;

	if (m->map_size < LLAMA2C_HEADER_BYTES)
		return kvfi_fail(err, errlen, -EPROTO,
		                 "llama2.c checkpoint truncated: %zu bytes, header needs %d",
		                 m->map_size, LLAMA2C_HEADER_BYTES);
	memcpy(hdr, m->map, sizeof(hdr));
	for (int i = 0; i < 7; i++) {
		if (i != 5 && hdr[i] <= 0)
			return kvfi_fail(
			        err, errlen, -EINVAL,
			        "llama2.c header field %d is %d: not a llama2.c checkpoint", i,
			        hdr[i]);
	}
	if (hdr[5] == 0 || hdr[5] == INT32_MIN)
		return kvfi_fail(err, errlen, -EINVAL, "llama2.c header: vocab_size %d", hdr[5]);
	cfg->dim = (uint32_t)hdr[0];
	cfg->hidden_dim = (uint32_t)hdr[1];
	cfg->n_layers = (uint32_t)hdr[2];
	cfg->n_heads = (uint32_t)hdr[3];
	cfg->n_kv_heads = (uint32_t)hdr[4];
	cfg->shared_classifier = hdr[5] > 0;
	cfg->vocab_size = (uint32_t)(hdr[5] > 0 ? hdr[5] : -hdr[5]);
	cfg->seq_len = (uint32_t)hdr[6];
	cfg->rms_eps = 1e-5f;
	cfg->rope_theta = 10000.0f;
	ret = kvfi_check_config(cfg, err, errlen);
	if (ret)
		return ret;

	/* All factors are bounded by the limits above, so these products fit in 64 bits. */
	dim = cfg->dim;
	hidden = cfg->hidden_dim;
	L = cfg->n_layers;
	kv_dim = (uint64_t)cfg->n_kv_heads * cfg->head_dim;
	vocab = cfg->vocab_size;
	need = vocab * dim + L * dim                      /* embedding, rms_att */
	       + L * dim * dim * 2 + L * dim * kv_dim * 2 /* wq, wo, wk, wv */
	       + L * dim + L * hidden * dim * 3 + dim     /* rms_ffn, w1-3, rms_final */
	       + (uint64_t)cfg->seq_len * cfg->head_dim;  /* freq_cis real + imag */
	if (!cfg->shared_classifier)
		need += vocab * dim;
	need = need * 4 + LLAMA2C_HEADER_BYTES;
	if (need != m->map_size)
		return kvfi_fail(
		        err, errlen, -EPROTO,
		        "llama2.c checkpoint is %zu bytes but its header (dim %u, hidden "
		        "%u, %u layers, %u/%u heads, vocab %u%s, seq %u) needs %llu: %s",
		        m->map_size, cfg->dim, cfg->hidden_dim, cfg->n_layers, cfg->n_heads,
		        cfg->n_kv_heads, cfg->vocab_size, cfg->shared_classifier ? "" : " unshared",
		        cfg->seq_len, (unsigned long long)need,
		        need > m->map_size ? "truncated" : "trailing data or wrong header");

	m->layers = calloc(cfg->n_layers, sizeof(*m->layers));
	if (!m->layers)
		return kvfi_fail(err, errlen, -ENOMEM, "out of memory");
	c.base = m->map;
	c.size = m->map_size;
	c.off = LLAMA2C_HEADER_BYTES;
	take(&c, &m->tok_embd, cfg->vocab_size, cfg->dim);
	/* Weights are stored per kind, all layers of one kind together. */
	for (uint32_t l = 0; l < L; l++)
		m->layers[l].rms_att = take_vec(&c, dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].wq, cfg->dim, cfg->dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].wk, (uint32_t)kv_dim, cfg->dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].wv, (uint32_t)kv_dim, cfg->dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].wo, cfg->dim, cfg->dim);
	for (uint32_t l = 0; l < L; l++)
		m->layers[l].rms_ffn = take_vec(&c, dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].w1, cfg->hidden_dim, cfg->dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].w2, cfg->dim, cfg->hidden_dim);
	for (uint32_t l = 0; l < L; l++)
		take(&c, &m->layers[l].w3, cfg->hidden_dim, cfg->dim);
	m->rms_final = take_vec(&c, dim);
	c.off += (size_t)cfg->seq_len * cfg->head_dim * 4; /* freq_cis_real, freq_cis_imag */
	if (cfg->shared_classifier)
		m->wcls = m->tok_embd;
	else
		take(&c, &m->wcls, cfg->vocab_size, cfg->dim);
	return 0;
}
