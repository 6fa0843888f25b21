/* SPDX-License-Identifier: MIT */
/*
 * Prefix caching: time to first token of a prompt whose first --prefix
 * tokens (1000) are in the card backend's prefix cache, against the same
 * prompt cold (the baseline).  Each repetition makes a new random prefix,
 * runs it cold with one suffix (its full blocks get published when
 * committed), then warm with another suffix: the warm run finds the
 * prefix's full blocks (992 of 1000 tokens with blocks of 16) and computes
 * only the rest.  Time to first token = from creating the sequence to the
 * argmax of the last prompt token's logits, through the library's forward
 * pass (dense layers on the host, K/V in the paged cache in card memory or
 * its host emulation, attention on the OpenCL engine), as kvfpga-run does.
 *
 *   prefix_bench --model F [--json] [--quick] [--prefix N] [--suffix N]
 *                [--reps N] [--threads N] [--device SPEC] [--kv-type f16|f32]
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kvfpga/engine.h"
#include "kvfpga/kvfpga.h"
#include "kvfpga/model.h"

#define MAX_REPS 100

struct opts {
	const char *model, *device;
	uint32_t prefix, suffix, threads;
	enum kvfpga_infer_kv_type kv_type;
	int reps, json;
};

struct rig {
	struct kvfpga_model *model;
	struct kvfpga_model_config cfg;
	struct kvfpga_device *dev;
	struct kvfpga_engine *engine;
	struct kvfpga_infer *inf;
	struct kvfpga_token_in *batch;
	float *logits;
	uint32_t *prompt;
	uint32_t max_batch;
	uint64_t seed;
	char dev_desc[256], eng_desc[512];
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Ordinary tokens: past BOS/EOS and the other low ids. */
static void random_tokens(struct rig *r, uint32_t *t, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		t[i] = 3 + (uint32_t)(rng_next(&r->seed) % (r->cfg.vocab_size - 3));
}

/*
 * One prompt of @n tokens to its first token; *@n_cached gets how many came
 * from the prefix cache.  The sequence is freed (its published blocks stay
 * cached).
 */
static int first_token(struct rig *r, const uint32_t *prompt, uint32_t n, uint32_t *n_cached,
                       uint32_t *token)
{
	uint32_t seq, pos;
	int ret = kvfpga_infer_seq_create(r->inf, &seq);

	if (ret)
		return ret;
	ret = kvfpga_infer_seq_prefix(r->inf, seq, prompt, n, n_cached);
	for (pos = ret ? n : *n_cached; pos < n && !ret;) {
		uint32_t m = n - pos < r->max_batch ? n - pos : r->max_batch;

		for (uint32_t i = 0; i < m; i++) {
			r->batch[i].seq = seq;
			r->batch[i].pos = pos + i;
			r->batch[i].token = prompt[pos + i];
			r->batch[i].want_logits = pos + i == n - 1;
		}
		ret = kvfpga_infer_forward(r->inf, r->batch, m, r->logits);
		pos += m;
	}
	if (!ret) {
		uint32_t best = 0;

		for (uint32_t i = 1; i < r->cfg.vocab_size; i++)
			if (r->logits[i] > r->logits[best])
				best = i;
		*token = best;
	}
	kvfpga_infer_seq_free(r->inf, seq);
	return ret;
}

static int rig_open(struct rig *r, const struct opts *o)
{
	struct kvfpga_open_opts dopts;
	struct kvfpga_engine_opts eopts;
	struct kvfpga_infer_card_opts copts;
	struct kvfpga_infer_opts io;
	char msg[1024] = "";
	uint32_t n = o->prefix + o->suffix;
	int ret;

	memset(r, 0, sizeof(*r));
	r->seed = 1234;
	ret = kvfpga_model_open(o->model, KVFPGA_MODEL_FORMAT_AUTO, &r->model, msg, sizeof(msg));
	if (ret) {
		fprintf(stderr, "prefix_bench: %s: %s\n", o->model, msg);
		return ret;
	}
	kvfpga_model_get_config(r->model, &r->cfg);
	if (n > r->cfg.seq_len) {
		fprintf(stderr,
		        "prefix_bench: a %u-token prompt does not fit the model's %u positions\n",
		        n, r->cfg.seq_len);
		return -EINVAL;
	}
	ret = kvfpga_open_opts_init(&dopts);
	if (!ret && o->device)
		ret = kvfpga_open_opts_set_device(&dopts, o->device);
	if (!ret)
		ret = kvfpga_device_open(&dopts, &r->dev);
	if (ret) {
		fprintf(stderr, "prefix_bench: device: %s\n", kvfpga_strerror(ret));
		return ret;
	}
	kvfpga_device_describe(r->dev, r->dev_desc, sizeof(r->dev_desc));
	ret = kvfpga_engine_opts_init(&eopts);
	if (!ret)
		ret = kvfpga_engine_create(&eopts, &r->engine, msg, sizeof(msg));
	if (ret) {
		fprintf(stderr, "prefix_bench: engine: %s\n", msg[0] ? msg : strerror(-ret));
		return ret;
	}
	kvfpga_engine_describe(r->engine, r->eng_desc, sizeof(r->eng_desc));
	kvfpga_infer_opts_init(&io);
	io.n_threads = o->threads;
	io.max_seqs = 2;
	r->max_batch = io.max_batch ? io.max_batch : 512;
	kvfpga_infer_card_opts_init(&copts);
	copts.dev = r->dev;
	copts.engine = r->engine;
	copts.kv_type = o->kv_type;
	copts.max_seqs = io.max_seqs;
	ret = kvfpga_infer_card_attn_create(r->model, &copts, &io.attn_ops, &io.attn_state, msg,
	                                    sizeof(msg));
	if (ret) {
		fprintf(stderr, "prefix_bench: card attention: %s\n", msg);
		return ret;
	}
	ret = kvfpga_infer_create(r->model, &io, &r->inf);
	if (ret) {
		fprintf(stderr, "prefix_bench: inference context: %s\n", strerror(-ret));
		return ret;
	}
	r->batch = calloc(r->max_batch, sizeof(*r->batch));
	r->logits = malloc((size_t)r->cfg.vocab_size * sizeof(float));
	r->prompt = malloc((size_t)n * sizeof(uint32_t));
	return r->batch && r->logits && r->prompt ? 0 : -ENOMEM;
}

static void rig_close(struct rig *r)
{
	kvfpga_infer_free(r->inf);
	kvfpga_engine_destroy(r->engine);
	kvfpga_device_close(r->dev);
	kvfpga_model_close(r->model);
	free(r->batch);
	free(r->logits);
	free(r->prompt);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: prefix_bench --model F [--json] [--quick] [--prefix N] [--suffix N]\n"
	        "                    [--reps N] [--threads N] [--device SPEC] [--kv-type T]\n"
	        "  Time to first token with a cached prompt prefix against the same prompt\n"
	        "  cold, on the card attention backend.  Defaults: 1000-token prefix, 24-token\n"
	        "  suffix, 5 repetitions (--quick: 2), 2 threads, f16 K/V.\n"
	        "  --device SPEC  as KVFPGA_DEVICE (default: a card, else the host emulation)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "suffix", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "device", required_argument, NULL, 'D' },
		{ "kv-type", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t reps = 5;
	int c, bad = 0;

	memset(o, 0, sizeof(*o));
	o->prefix = 1000;
	o->suffix = 24;
	o->threads = 2;
	o->kv_type = KVFPGA_INFER_KV_F16;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o->model = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'q':
			reps = 2;
			break;
		case 'p':
			bad |= bench_parse_u32(optarg, 16, 1u << 20, &o->prefix) != 0;
			break;
		case 's':
			bad |= bench_parse_u32(optarg, 1, 1u << 20, &o->suffix) != 0;
			break;
		case 'r':
			bad |= bench_parse_u32(optarg, 1, MAX_REPS, &reps) != 0;
			break;
		case 't':
			bad |= bench_parse_u32(optarg, 1, 256, &o->threads) != 0;
			break;
		case 'D':
			o->device = optarg;
			break;
		case 'k':
			if (!strcmp(optarg, "f16"))
				o->kv_type = KVFPGA_INFER_KV_F16;
			else if (!strcmp(optarg, "f32"))
				o->kv_type = KVFPGA_INFER_KV_F32;
			else
				bad = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	o->reps = (int)reps;
	return bad || !o->model || optind != argc ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	static double cold[MAX_REPS], warm[MAX_REPS];
	uint32_t n_cached_cold = 0, n_cached_warm = 0, tok_cold = 0, tok_warm = 0;
	struct bench_figure fig;
	struct opts o;
	struct rig r;
	uint32_t n;
	int ret;

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	n = o.prefix + o.suffix;
	ret = rig_open(&r, &o);
	/* Repetition -1 is the warm-up (program loads, first touches). */
	for (int rep = -1; rep < o.reps && !ret; rep++) {
		double t0, t1, t2;

		random_tokens(&r, r.prompt, n);
		t0 = bench_now();
		ret = first_token(&r, r.prompt, n, &n_cached_cold, &tok_cold);
		t1 = bench_now();
		/* Same prefix, another suffix. */
		random_tokens(&r, r.prompt + o.prefix, o.suffix);
		if (!ret)
			ret = first_token(&r, r.prompt, n, &n_cached_warm, &tok_warm);
		t2 = bench_now();
		if (ret) {
			char msg[512] = "";

			kvfpga_infer_last_error(r.inf, msg, sizeof(msg));
			fprintf(stderr, "prefix_bench: forward: %s %s\n", strerror(-ret), msg);
		} else if (n_cached_cold != 0 || n_cached_warm < o.prefix / 16 * 16 - 16) {
			fprintf(stderr,
			        "prefix_bench: the prefix cache found %u (cold) and %u (warm) "
			        "tokens; expected 0 and about %u\n",
			        n_cached_cold, n_cached_warm, o.prefix);
			ret = -EPROTO;
		} else if (rep >= 0) {
			cold[rep] = (t1 - t0) * 1e3;
			warm[rep] = (t2 - t1) * 1e3;
		}
	}
	if (!ret)
		ret = bench_figure_of(warm, cold, o.reps, &fig);
	if (!ret && o.json) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "benchmark", json_object_new_string("prefix_cache"));
		json_object_object_add(root, "model", json_object_new_string(o.model));
		json_object_object_add(root, "dim", json_object_new_int((int)r.cfg.dim));
		json_object_object_add(root, "n_layers", json_object_new_int((int)r.cfg.n_layers));
		json_object_object_add(root, "device", json_object_new_string(r.dev_desc));
		json_object_object_add(root, "engine", json_object_new_string(r.eng_desc));
		json_object_object_add(
		        root, "kv_type",
		        json_object_new_string(o.kv_type == KVFPGA_INFER_KV_F16 ? "f16" : "f32"));
		json_object_object_add(root, "threads", json_object_new_int((int)o.threads));
		json_object_object_add(root, "prefix_tokens", json_object_new_int((int)o.prefix));
		json_object_object_add(root, "suffix_tokens", json_object_new_int((int)o.suffix));
		json_object_object_add(root, "cached_tokens_warm",
		                       json_object_new_int((int)n_cached_warm));
		json_object_object_add(root, "reps", json_object_new_int(o.reps));
		json_object_object_add(
		        root, "ttft",
		        bench_figure_json(&fig, "ms", "the same prompt with nothing cached", "ms"));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	}
	if (!ret)
		fprintf(o.json ? stderr : stdout,
		        "time to first token, %u-token prompt: prefix cached %.1f ms [%.1f, %.1f] "
		        "(%u tokens reused), cold %.1f ms [%.1f, %.1f], ratio %.3f\n",
		        n, fig.value.median, fig.value.min, fig.value.max, n_cached_warm,
		        fig.baseline.median, fig.baseline.min, fig.baseline.max, fig.ratio.median);
	rig_close(&r);
	return ret ? 1 : 0;
}
