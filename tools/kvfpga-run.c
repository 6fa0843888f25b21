/* SPDX-License-Identifier: MIT */
/*
 * kvfpga-run: llama inference with libkvfpga.
 *
 * One prompt (-p) streams its text as it is generated.  Many prompts
 * (--prompts FILE, one per line) run as one continuously batched job:
 * up to --parallel sequences are live at once, new ones join as others
 * finish; each step is either a prefill step (the joiners' prompts) or a
 * decode step (one token for every live sequence), so prefill and decode
 * rates are measured separately.  A table of rates and times ends the run.
 *
 * --attention host keeps K/V in host memory and computes attention on the
 * host; --attention card keeps K/V in a paged cache in card memory (or the
 * announced host emulation of a card) and runs attention as OpenCL kernels,
 * reusing K/V blocks of shared prompt prefixes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvfpga/engine.h"
#include "kvfpga/kvfpga.h"
#include "kvfpga/model.h"
#include "kvfpga/sampler.h"
#include "kvfpga/tokenizer.h"

#define PROG "kvfpga-run"

struct opts {
	const char *model, *tokenizer, *prompt, *prompts_file;
	uint32_t n_gen, threads, batch, ctx, parallel, block_size;
	bool block_size_set, device_set, kv_type_set, quiet, emulate, no_prefix_cache;
	const char *card; /* card number, PCI slot or device node */
	int cl_device;    /* -1: the engine's default */
	enum kvfpga_infer_kv_type kv_type;
	enum kvfpga_kernels kernels;
	const char *attention;
	struct kvfpga_sampler_params sp;
};

struct seq_state {
	char *prompt;
	uint32_t *tokens; /* prompt then generated */
	size_t n_prompt, n_tokens, n_prefilled;
	uint32_t seq;
	bool live, done;
	struct kvfpga_sampler *sampler;
	struct kvfpga_detok *detok;
	char *text; /* generated text (batch mode) */
	size_t text_len, text_cap;
};

struct run_stats {
	uint64_t prefill_tokens, prefill_ns, decode_tokens, decode_ns, sample_ns;
	uint64_t cached_tokens; /* prompt tokens whose K/V came from the prefix cache */
	uint64_t peak_blocks;   /* most K/V blocks held at once (card backend) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: " PROG " -m MODEL [-z TOKENIZER] (-p PROMPT | --prompts FILE) [options]\n"
	        "Generate text with a llama-family model (llama2.c .bin or GGUF).\n"
	        "\n"
	        "  -m, --model F          llama2.c checkpoint or GGUF (general.architecture "
	        "llama)\n"
	        "  -z, --tokenizer F      llama2.c tokenizer.bin (default: the GGUF's vocabulary)\n"
	        "  -p, --prompt TEXT      one prompt, streamed\n"
	        "      --prompts FILE     many prompts, one per line, continuously batched\n"
	        "      --parallel N       live sequences at once with --prompts (default 4)\n"
	        "  -n, --n-predict N      tokens to generate per prompt (default 128)\n"
	        "sampling (chain: penalties -> top-k -> top-p -> min-p -> temperature -> sample):\n"
	        "      --temp F           temperature, 0 = greedy (default 0.8)\n"
	        "      --top-k N          (default 40, 0 = off)\n"
	        "      --top-p F          (default 0.95, 1 = off)\n"
	        "      --min-p F          (default 0.05, 0 = off)\n"
	        "      --repeat-penalty F (default 1.0 = off)\n"
	        "      --frequency-penalty F, --presence-penalty F (default 0)\n"
	        "      --repeat-last-n N  penalty window (default 64)\n"
	        "  -s, --seed N           sampler seed (default 0); sequence i uses seed + i\n"
	        "compute:\n"
	        "  -t, --threads N        host threads for dense layers and host attention "
	        "(default 2)\n"
	        "      --batch N          tokens per forward call (default 512)\n"
	        "      --ctx N            positions per sequence (default: the model's)\n"
	        "      --kernels K        auto | avx2 | portable (default auto)\n"
	        "      --kv-type T        f32 | f16 | i8 K/V storage (default: f32 host, f16\n"
	        "                         card; i8 is int8 with per-block scales, card only)\n"
	        "      --attention A      host (K/V in host memory) or card (paged K/V in card\n"
	        "                         memory, attention by the OpenCL engine); default host\n"
	        "card backend:\n"
	        "      --block-size N     K/V positions per cache block (default 16)\n"
	        "      --card N|SLOT|DEV  card number, PCI slot or device node (default: the\n"
	        "                         first card, else the announced host emulation)\n"
	        "      --emulate          host-memory emulation of a card\n"
	        "      --cl-device N      OpenCL device index (default: the engine's choice)\n"
	        "      --no-prefix-cache  never reuse K/V blocks between prompts\n"
	        "  -q, --quiet            no banner and no statistics table\n"
	        "  -h, --help\n");
}

static int parse_u32(const char *s, uint32_t *v, uint32_t lo, uint32_t hi)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || *end || !*s || x < lo || x > hi)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

static int parse_f(const char *s, float *v)
{
	char *end;

	errno = 0;
	*v = strtof(s, &end);
	return errno || *end || !*s ? -1 : 0;
}

static int die(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	return 1;
}

/*
 * --card takes what KVFPGA_DEVICE takes for one card (a number, a PCI slot,
 * "00:04.0" meaning "0000:00:04.0", or a device node), not its keywords.
 */
static bool card_spec_ok(const char *spec)
{
	struct kvfpga_open_opts probe = { 0 };

	if (!strcmp(spec, "auto") || !strcmp(spec, "emulated") || !strcmp(spec, "card"))
		return false;
	return kvfpga_open_opts_set_device(&probe, spec) == 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum {
		O_PROMPTS = 256,
		O_PARALLEL,
		O_TEMP,
		O_TOPK,
		O_TOPP,
		O_MINP,
		O_REP,
		O_FREQ,
		O_PRES,
		O_LASTN,
		O_BATCH,
		O_CTX,
		O_KERNELS,
		O_KV,
		O_ATTN,
		O_BLOCK,
		O_CARD,
		O_CL,
		O_EMU,
		O_NOPREFIX
	};
	static const struct option lo[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokenizer", required_argument, NULL, 'z' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "prompts", required_argument, NULL, O_PROMPTS },
		{ "parallel", required_argument, NULL, O_PARALLEL },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, O_TEMP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "min-p", required_argument, NULL, O_MINP },
		{ "repeat-penalty", required_argument, NULL, O_REP },
		{ "frequency-penalty", required_argument, NULL, O_FREQ },
		{ "presence-penalty", required_argument, NULL, O_PRES },
		{ "repeat-last-n", required_argument, NULL, O_LASTN },
		{ "seed", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "ctx", required_argument, NULL, O_CTX },
		{ "kernels", required_argument, NULL, O_KERNELS },
		{ "kv-type", required_argument, NULL, O_KV },
		{ "attention", required_argument, NULL, O_ATTN },
		{ "block-size", required_argument, NULL, O_BLOCK },
		{ "card", required_argument, NULL, O_CARD },
		{ "cl-device", required_argument, NULL, O_CL },
		{ "emulate", no_argument, NULL, O_EMU },
		{ "no-prefix-cache", no_argument, NULL, O_NOPREFIX },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->n_gen = 128;
	o->threads = 2;
	o->batch = 512;
	o->parallel = 4;
	o->attention = "host";
	o->cl_device = -1;
	kvfpga_sampler_params_init(&o->sp);
	int longindex = -1;

	while ((c = getopt_long(argc, argv, "m:z:p:n:s:t:qh", lo, &longindex)) != -1) {
		int bad = 0;
		uint32_t u;

		switch (c) {
		case 'm':
			o->model = optarg;
			break;
		case 'z':
			o->tokenizer = optarg;
			break;
		case 'p':
			o->prompt = optarg;
			break;
		case O_PROMPTS:
			o->prompts_file = optarg;
			break;
		case O_PARALLEL:
			bad = parse_u32(optarg, &o->parallel, 1, 1024);
			break;
		case 'n':
			bad = parse_u32(optarg, &o->n_gen, 0, 1u << 24);
			break;
		case O_TEMP:
			bad = parse_f(optarg, &o->sp.temperature);
			break;
		case O_TOPK:
			bad = parse_u32(optarg, &o->sp.top_k, 0, 1u << 24);
			break;
		case O_TOPP:
			bad = parse_f(optarg, &o->sp.top_p);
			break;
		case O_MINP:
			bad = parse_f(optarg, &o->sp.min_p);
			break;
		case O_REP:
			bad = parse_f(optarg, &o->sp.repeat_penalty);
			break;
		case O_FREQ:
			bad = parse_f(optarg, &o->sp.frequency_penalty);
			break;
		case O_PRES:
			bad = parse_f(optarg, &o->sp.presence_penalty);
			break;
		case O_LASTN:
			bad = parse_u32(optarg, &o->sp.penalty_last_n, 0, 1u << 20);
			break;
		case 's': {
			char *end;

			errno = 0;
			o->sp.seed = strtoull(optarg, &end, 0);
			bad = errno || *end || !*optarg;
			break;
		}
		case 't':
			bad = parse_u32(optarg, &o->threads, 1, 256);
			break;
		case O_BATCH:
			bad = parse_u32(optarg, &o->batch, 1, 65536);
			break;
		case O_CTX:
			bad = parse_u32(optarg, &o->ctx, 1, 1u << 22);
			break;
		case O_KERNELS:
			if (!strcmp(optarg, "auto"))
				o->kernels = KVFPGA_KERNELS_AUTO;
			else if (!strcmp(optarg, "avx2"))
				o->kernels = KVFPGA_KERNELS_AVX2;
			else if (!strcmp(optarg, "portable"))
				o->kernels = KVFPGA_KERNELS_PORTABLE;
			else
				bad = 1;
			break;
		case O_KV:
			if (!strcmp(optarg, "f32"))
				o->kv_type = KVFPGA_INFER_KV_F32;
			else if (!strcmp(optarg, "f16"))
				o->kv_type = KVFPGA_INFER_KV_F16;
			else if (!strcmp(optarg, "i8"))
				o->kv_type = KVFPGA_INFER_KV_I8;
			else
				bad = 1;
			o->kv_type_set = true;
			break;
		case O_ATTN:
			if (strcmp(optarg, "host") && strcmp(optarg, "card"))
				bad = 1;
			o->attention = optarg;
			break;
		case O_BLOCK:
			bad = parse_u32(optarg, &o->block_size, 1, 1u << 16);
			o->block_size_set = true;
			break;
		case O_CARD: /* a card number, a PCI slot name or a device node */
			bad = !card_spec_ok(optarg);
			o->card = optarg;
			o->device_set = true;
			break;
		case O_CL:
			bad = parse_u32(optarg, &u, 0, 1u << 16);
			o->cl_device = (int)u;
			o->device_set = true;
			break;
		case O_EMU:
			o->emulate = true;
			o->device_set = true;
			break;
		case O_NOPREFIX:
			o->no_prefix_cache = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, PROG ": try --help\n");
			return -1;
		}
		if (bad) {
			char name[40];

			if (longindex >= 0)
				snprintf(name, sizeof(name), "--%s", lo[longindex].name);
			else
				snprintf(name, sizeof(name), "-%c", c);
			die("bad value '%s' for %s", optarg, name);
			return -1;
		}
		longindex = -1;
	}
	if (optind != argc) {
		die("unexpected argument '%s'%s", argv[optind], "");
		return -1;
	}
	if (!o->model) {
		die("no model: give -m MODEL%s%s", "", "");
		return -1;
	}
	if (o->emulate && o->card) {
		die("--emulate and --card%s%s exclude each other", "", "");
		return -1;
	}
	{
		/* Check the sampling parameters now rather than after loading a model. */
		struct kvfpga_sampler *probe = NULL;

		if (kvfpga_sampler_create(&o->sp, 1, &probe)) {
			die("bad sampling parameters: --temp must be finite, --top-p in (0, 1], "
			    "--min-p in [0, 1], --repeat-penalty > 0%s%s",
			    "", "");
			return -1;
		}
		kvfpga_sampler_free(probe);
	}
	if (!o->prompt == !o->prompts_file) {
		die("give either -p PROMPT or --prompts FILE%s%s", "", "");
		return -1;
	}
	return 0;
}

static char **read_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char **lines = NULL, *line = NULL;
	size_t cap = 0, count = 0, lcap = 0;
	ssize_t len;

	if (!f)
		return NULL;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len)
			continue;
		if (count == cap) {
			char **nl = realloc(lines, (cap = cap ? 2 * cap : 16) * sizeof(*nl));

			if (!nl)
				break;
			lines = nl;
		}
		lines[count] = strdup(line);
		if (!lines[count])
			break;
		count++;
	}
	free(line);
	fclose(f);
	*n = count;
	if (!lines)
		lines = calloc(1, sizeof(*lines));
	return lines;
}

static void append_text(struct seq_state *s, const char *t, size_t n)
{
	if (s->text_len + n + 1 > s->text_cap) {
		size_t cap = (s->text_cap + n + 1) * 2;
		char *nt = realloc(s->text, cap);

		if (!nt)
			return;
		s->text = nt;
		s->text_cap = cap;
	}
	memcpy(s->text + s->text_len, t, n);
	s->text_len += n;
	s->text[s->text_len] = '\0';
}

/* Emit a token's text: to stdout at once (streaming) or into the sequence's buffer. */
static void emit_token(struct seq_state *s, uint32_t token, bool stream, char *buf, size_t cap)
{
	size_t n = 0;

	if (kvfpga_detok_push(s->detok, token, buf, cap, &n) || !n)
		return;
	if (stream) {
		fwrite(buf, 1, n, stdout);
		fflush(stdout);
	} else {
		append_text(s, buf, n);
	}
}

/* The device, the engine and the card attention backend; the caller announces them. */
static int open_card_backend(const struct opts *o, const struct kvfpga_model *model,
                             struct kvfpga_infer_opts *io, struct kvfpga_device **dev,
                             struct kvfpga_engine **engine, char *dev_desc, size_t dev_len,
                             char *eng_desc, size_t eng_len)
{
	struct kvfpga_open_opts dopts;
	struct kvfpga_engine_opts eopts;
	struct kvfpga_infer_card_opts copts;
	char msg[1024];
	int ret;

	ret = kvfpga_open_opts_init(&dopts);
	if (ret) {
		fprintf(stderr, PROG ": bad KVFPGA_DEVICE/KVFPGA_EMU_MEM: %s\n",
		        kvfpga_strerror(ret));
		return ret;
	}
	if (o->emulate) {
		dopts.backend = KVFPGA_BACKEND_EMULATED;
	} else if (o->card) {
		ret = kvfpga_open_opts_set_device(&dopts, o->card); /* checked by card_spec_ok */
		if (ret)
			return ret;
	}
	ret = kvfpga_device_open(&dopts, dev);
	if (ret) {
		fprintf(stderr, PROG ": cannot open the kvfpga device: %s\n", kvfpga_strerror(ret));
		return ret;
	}
	kvfpga_device_describe(*dev, dev_desc, dev_len);
	ret = kvfpga_engine_opts_init(&eopts);
	if (ret) {
		fprintf(stderr, PROG ": bad KVFPGA_OPENCL_* setting: %s\n", strerror(-ret));
		return ret;
	}
	if (o->cl_device >= 0)
		eopts.device_index = o->cl_device;
	ret = kvfpga_engine_create(&eopts, engine, msg, sizeof(msg));
	if (ret) {
		fprintf(stderr, PROG ": cannot start the attention engine: %s\n",
		        msg[0] ? msg : strerror(-ret));
		return ret;
	}
	kvfpga_engine_describe(*engine, eng_desc, eng_len);
	kvfpga_infer_card_opts_init(&copts);
	copts.dev = *dev;
	copts.engine = *engine;
	copts.block_size = o->block_size;
	copts.kv_type = o->kv_type;
	copts.max_seqs = io->max_seqs;
	copts.max_seq_len = io->max_seq_len;
	copts.no_prefix_cache = o->no_prefix_cache;
	ret = kvfpga_infer_card_attn_create(model, &copts, &io->attn_ops, &io->attn_state, msg,
	                                    sizeof(msg));
	if (ret) {
		fprintf(stderr, PROG ": cannot set up card attention: %s\n", msg);
		return ret;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct kvfpga_model *model = NULL;
	struct kvfpga_model_config cfg;
	struct kvfpga_tokenizer *tok = NULL;
	struct kvfpga_infer *inf = NULL;
	struct kvfpga_infer_opts io;
	struct kvfpga_infer_stats ist;
	struct kvfpga_token_in *batch = NULL;
	struct seq_state *seqs = NULL;
	struct run_stats rs = { 0 };
	char err[512], **prompts = NULL, *piece_buf = NULL;
	size_t n_prompts = 0, next = 0, finished = 0, piece_cap;
	float *logits = NULL;
	uint32_t *out_seq = NULL;
	struct kvfpga_device *dev = NULL;
	struct kvfpga_engine *engine = NULL;
	char dev_desc[256] = "", eng_desc[256] = "";
	bool stream, card;
	int ret, status = 1;

	if (parse_args(argc, argv, &o))
		return 2;
	card = !strcmp(o.attention, "card");
	if (card && !o.kv_type_set)
		o.kv_type = KVFPGA_INFER_KV_F16;
	if (!card && o.kv_type == KVFPGA_INFER_KV_I8) {
		fprintf(stderr, PROG ": --kv-type i8 needs --attention card\n");
		return 2;
	}

	ret = kvfpga_model_open(o.model, KVFPGA_MODEL_FORMAT_AUTO, &model, err, sizeof(err));
	if (ret) {
		fprintf(stderr, PROG ": cannot load model: %s\n", err);
		return 1;
	}
	kvfpga_model_get_config(model, &cfg);
	if (o.tokenizer)
		ret = kvfpga_tokenizer_load_llama2c(o.tokenizer, cfg.vocab_size, &tok, err,
		                                    sizeof(err));
	else if (cfg.format == KVFPGA_MODEL_FORMAT_GGUF)
		ret = kvfpga_tokenizer_from_model(model, &tok, err, sizeof(err));
	else {
		snprintf(err, sizeof(err), "a llama2.c model needs -z TOKENIZER.bin");
		ret = -EINVAL;
	}
	if (ret) {
		fprintf(stderr, PROG ": cannot load tokenizer: %s\n", err);
		goto out;
	}

	kvfpga_infer_opts_init(&io);
	io.n_threads = o.threads;
	io.max_batch = o.batch;
	io.max_seq_len = o.ctx ? o.ctx : cfg.seq_len;
	io.max_seqs = o.prompts_file ? o.parallel : 1;
	io.kv_type = o.kv_type;
	io.kernels = o.kernels;
	if (card) {
		ret = open_card_backend(&o, model, &io, &dev, &engine, dev_desc, sizeof(dev_desc),
		                        eng_desc, sizeof(eng_desc));
		if (ret)
			goto out;
	}
	ret = kvfpga_infer_create(model, &io, &inf);
	if (ret) {
		fprintf(stderr, PROG ": cannot set up inference: %s\n",
		        ret == -ENOTSUP ? "this CPU lacks AVX2/FMA/F16C (use --kernels auto)"
		                        : strerror(-ret));
		goto out;
	}
	kvfpga_infer_get_stats(inf, &ist);
	if (!o.quiet) {
		fprintf(stderr,
		        PROG ": %s model, dim %u, %u layers, %u/%u heads, vocab %u, %s weights, "
		             "%.1f MB read per token\n",
		        kvfpga_model_format_name(cfg.format), cfg.dim, cfg.n_layers, cfg.n_heads,
		        cfg.n_kv_heads, cfg.vocab_size, kvfpga_dtype_name(cfg.weight_dtype),
		        cfg.weight_bytes_per_token / 1e6);
		if (cfg.name[0])
			fprintf(stderr, PROG ": model name: %s\n", cfg.name);
		if (card) {
			fprintf(stderr, PROG ": K/V cache (%s, blocks of %u) in %s\n",
			        o.kv_type == KVFPGA_INFER_KV_I8    ? "int8"
			        : o.kv_type == KVFPGA_INFER_KV_F16 ? "f16"
			                                           : "f32",
			        o.block_size ? o.block_size : 16, dev_desc);
			fprintf(stderr, PROG ": attention on the OpenCL engine: %s\n", eng_desc);
			fprintf(stderr, PROG ": dense layers on the host, %u threads, %s kernels\n",
			        o.threads, ist.kernels);
		} else {
			fprintf(stderr,
			        PROG
			        ": attention on the HOST (K/V in host memory, %s); dense layers "
			        "on the host, %u threads, %s kernels\n",
			        o.kv_type == KVFPGA_INFER_KV_F16 ? "f16" : "f32", o.threads,
			        ist.kernels);
			if (o.device_set || o.block_size_set || o.no_prefix_cache)
				fprintf(stderr, PROG ": note: --card/--cl-device/--emulate/"
				                     "--block-size/--no-prefix-cache apply to "
				                     "--attention card and are unused here\n");
		}
	}

	if (o.prompts_file) {
		prompts = read_lines(o.prompts_file, &n_prompts);
		if (!prompts) {
			fprintf(stderr, PROG ": cannot read %s: %s\n", o.prompts_file,
			        strerror(errno));
			goto out;
		}
		if (!n_prompts) {
			fprintf(stderr, PROG ": %s holds no prompts\n", o.prompts_file);
			goto out;
		}
	} else {
		prompts = calloc(1, sizeof(*prompts));
		if (prompts)
			prompts[0] = strdup(o.prompt);
		if (!prompts || !prompts[0]) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
		n_prompts = 1;
	}
	stream = !o.prompts_file;

	seqs = calloc(n_prompts, sizeof(*seqs));
	batch = calloc(o.batch, sizeof(*batch));
	out_seq = calloc(o.batch, sizeof(*out_seq));
	/* At most one row of logits per live sequence and step. */
	logits = malloc((size_t)io.max_seqs * cfg.vocab_size * sizeof(float));
	piece_cap = 3 * 65536 + 4; /* enough for any piece (kvfpga_detok_push) */
	piece_buf = malloc(piece_cap);
	if (!seqs || !batch || !out_seq || !logits || !piece_buf) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < n_prompts; i++) {
		struct seq_state *s = &seqs[i];
		size_t need = 0, len = strlen(prompts[i]);
		struct kvfpga_sampler_params sp = o.sp;

		s->prompt = prompts[i];
		kvfpga_tokenizer_encode(tok, s->prompt, len, KVFPGA_TOKENIZE_BOS, NULL, 0, &need);
		s->tokens = malloc((need + o.n_gen + 1) * sizeof(*s->tokens));
		if (!s->tokens || kvfpga_tokenizer_encode(tok, s->prompt, len, KVFPGA_TOKENIZE_BOS,
		                                          s->tokens, need, &s->n_prompt)) {
			fprintf(stderr, PROG ": cannot tokenize prompt %zu\n", i + 1);
			goto out;
		}
		if (s->n_prompt + o.n_gen > io.max_seq_len) {
			fprintf(stderr,
			        PROG
			        ": prompt %zu has %zu tokens; with -n %u it exceeds the context "
			        "of %u positions\n",
			        i + 1, s->n_prompt, o.n_gen, io.max_seq_len);
			goto out;
		}
		s->n_tokens = s->n_prompt;
		sp.seed = o.sp.seed + i;
		ret = kvfpga_sampler_create(&sp, cfg.vocab_size, &s->sampler);
		if (ret) {
			fprintf(stderr, PROG ": bad sampling parameters (%s)\n", strerror(-ret));
			goto out;
		}
		ret = kvfpga_detok_create(tok, &s->detok);
		if (ret) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
		for (size_t k = 0; k < s->n_prompt; k++)
			kvfpga_sampler_accept(s->sampler, s->tokens[k]);
		if (stream)
			for (size_t k = 0; k < s->n_prompt; k++)
				emit_token(s, s->tokens[k], true, piece_buf, piece_cap);
	}

	/* Continuous batching: prefill steps for joiners, decode steps for the live ones. */
	while (finished < n_prompts) {
		size_t nb = 0, live = 0;
		uint32_t n_cached = 0;
		bool prefill = false;
		uint64_t t0;

		for (size_t i = 0; i < n_prompts; i++)
			live += seqs[i].live;
		while (live < o.parallel && next < n_prompts) {
			ret = kvfpga_infer_seq_create(inf, &seqs[next].seq);
			if (ret) {
				fprintf(stderr, PROG ": cannot start a sequence: %s\n",
				        strerror(-ret));
				goto out;
			}
			/* Leading prompt positions the backend already holds are not recomputed. */
			ret = kvfpga_infer_seq_prefix(inf, seqs[next].seq, seqs[next].tokens,
			                              (uint32_t)seqs[next].n_prompt, &n_cached);
			if (ret) {
				fprintf(stderr, PROG ": prefix lookup failed: %s\n",
				        strerror(-ret));
				goto out;
			}
			seqs[next].n_prefilled = n_cached;
			rs.cached_tokens += n_cached;
			seqs[next++].live = true;
			live++;
		}
		/* Prefill: chunks of every live sequence that still has prompt left. */
		for (size_t i = 0; i < n_prompts && nb < o.batch; i++) {
			struct seq_state *s = &seqs[i];

			while (s->live && s->n_prefilled < s->n_prompt && nb < o.batch) {
				bool last = s->n_prefilled + 1 == s->n_prompt;

				if (last)
					out_seq[nb] = (uint32_t)i;
				batch[nb++] =
				        (struct kvfpga_token_in){ s->seq, (uint32_t)s->n_prefilled,
					                          s->tokens[s->n_prefilled], last };
				s->n_prefilled++;
				prefill = true;
			}
		}
		if (!prefill) {
			for (size_t i = 0; i < n_prompts && nb < o.batch; i++) {
				struct seq_state *s = &seqs[i];

				if (!s->live)
					continue;
				out_seq[nb] = (uint32_t)i;
				batch[nb++] =
				        (struct kvfpga_token_in){ s->seq,
					                          (uint32_t)(s->n_tokens - 1),
					                          s->tokens[s->n_tokens - 1], 1 };
			}
		}
		t0 = now_ns();
		ret = kvfpga_infer_forward(inf, batch, nb, logits);
		if (ret) {
			kvfpga_infer_last_error(inf, err, sizeof(err));
			fprintf(stderr, PROG ": forward pass failed: %s%s%s\n", strerror(-ret),
			        err[0] ? ": " : "", err);
			goto out;
		}
		if (card && !kvfpga_infer_get_stats(inf, &ist) &&
		    ist.attn.blocks_used > rs.peak_blocks)
			rs.peak_blocks = ist.attn.blocks_used;
		if (prefill) {
			rs.prefill_ns += now_ns() - t0;
			rs.prefill_tokens += nb;
		} else {
			rs.decode_ns += now_ns() - t0;
			rs.decode_tokens += nb;
		}
		/* Sample for every row that produced logits. */
		t0 = now_ns();
		for (size_t r = 0, k = 0; r < nb; r++) {
			struct seq_state *s;
			uint32_t next_tok;

			if (!batch[r].want_logits)
				continue;
			s = &seqs[out_seq[r]];
			if (o.n_gen == 0 ||
			    kvfpga_sampler_sample(s->sampler, logits + k * cfg.vocab_size,
			                          &next_tok)) {
				s->done = true;
			} else {
				kvfpga_sampler_accept(s->sampler, next_tok);
				if (next_tok == kvfpga_tokenizer_eos(tok) ||
				    next_tok == kvfpga_tokenizer_bos(tok)) {
					s->done = true;
				} else {
					s->tokens[s->n_tokens++] = next_tok;
					emit_token(s, next_tok, stream, piece_buf, piece_cap);
					if (s->n_tokens - s->n_prompt >= o.n_gen)
						s->done = true;
				}
			}
			k++;
			if (s->done) {
				size_t n = 0;

				kvfpga_detok_flush(s->detok, piece_buf, piece_cap, &n);
				if (stream) {
					fwrite(piece_buf, 1, n, stdout);
					printf("\n");
				} else {
					append_text(s, piece_buf, n);
					printf("[%zu] %s%s\n", (size_t)(s - seqs) + 1, s->prompt,
					       s->text ? s->text : "");
				}
				fflush(stdout);
				kvfpga_infer_seq_free(inf, s->seq);
				s->live = false;
				finished++;
			}
		}
		rs.sample_ns += now_ns() - t0;
	}

	kvfpga_infer_get_stats(inf, &ist);
	if (!o.quiet) {
		double pf = rs.prefill_ns / 1e9, dc = rs.decode_ns / 1e9;
		double tot = (ist.attn_ns + ist.dense_ns) / 1e9;

		fprintf(stderr, "\n%-22s %10s %10s %10s\n", "", "tokens", "seconds", "tok/s");
		fprintf(stderr, "%-22s %10" PRIu64 " %10.3f %10.1f\n", "prompt (prefill)",
		        rs.prefill_tokens, pf, pf > 0 ? rs.prefill_tokens / pf : 0.0);
		fprintf(stderr, "%-22s %10" PRIu64 " %10.3f %10.1f\n", "generated (decode)",
		        rs.decode_tokens, dc, dc > 0 ? rs.decode_tokens / dc : 0.0);
		fprintf(stderr, "%-22s %10s %10.3f %9.1f%%\n",
		        card ? "attention (card)" : "attention (host)", "", ist.attn_ns / 1e9,
		        tot > 0 ? 100.0 * ist.attn_ns / 1e9 / tot : 0.0);
		fprintf(stderr, "%-22s %10s %10.3f %9.1f%%\n", "dense layers (host)", "",
		        ist.dense_ns / 1e9, tot > 0 ? 100.0 * ist.dense_ns / 1e9 / tot : 0.0);
		fprintf(stderr, "%-22s %10s %10.3f\n", "sampling", "", rs.sample_ns / 1e9);
		if (card)
			fprintf(stderr,
			        "%-22s %" PRIu64 " of %" PRIu64 " blocks at most in use, %" PRIu64
			        " prompt tokens reused from the prefix cache\n",
			        "KV cache", rs.peak_blocks, ist.attn.blocks_total,
			        rs.cached_tokens);
		else
			fprintf(stderr,
			        "%-22s host backend: %.1f MB reserved, no blocks, no prefix "
			        "cache (those are the card backend's)\n",
			        "KV cache", ist.attn.bytes_resident / 1e6);
	}
	status = 0;
out:
	if (seqs) {
		for (size_t i = 0; i < n_prompts; i++) {
			free(seqs[i].tokens);
			free(seqs[i].text);
			kvfpga_sampler_free(seqs[i].sampler);
			kvfpga_detok_free(seqs[i].detok);
		}
	}
	for (size_t i = 0; prompts && i < n_prompts; i++)
		free(prompts[i]);
	free(prompts);
	free(seqs);
	free(batch);
	free(out_seq);
	free(logits);
	free(piece_buf);
	kvfpga_infer_free(inf); /* frees the card backend too */
	kvfpga_engine_destroy(engine);
	kvfpga_device_close(dev);
	kvfpga_tokenizer_free(tok);
	kvfpga_model_close(model);
	return status;
}
