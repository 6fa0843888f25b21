/* SPDX-License-Identifier: MIT */
/*
 * The per-token write path of the KV cache through the mapped card memory,
 * as a decode step does it: append one token to a sequence, write its K and
 * V rows for every layer (converted to the cache's type and stored straight
 * into the arena's mapping), commit it.  Two figures per K/V type:
 *   - ns per token per layer, against the baseline of a plain memcpy of the
 *     same bytes (the rows already in the stored type) into host memory of
 *     the same size, the two run alternately;
 *   - system calls per token (must be 0), counted in a child that does the
 *     same work under ptrace(PTRACE_SYSCALL): every system call entry
 *     between two marker calls is one (PTRACE_GET_SYSCALL_INFO, any arch).
 * Each repetition appends --tokens tokens to a new sequence (its own salt,
 * so that its blocks are new to the prefix cache); the arena holds one such
 * sequence, so from the second repetition on the cache evicts the blocks
 * the previous one published, as in a long-running server.
 *
 * The device is the library's choice (KVFPGA_DEVICE), or --device SPEC:
 * `emulated` or a card (in the VM: the real driver's mapping).  With
 * --compare-device SPEC a second cache on that device does the same work in
 * each repetition right after the first: a third figure, ns per token per
 * layer on --device against the same on --compare-device (e.g. the card
 * against the host emulation, in one VM boot).
 *
 *   kv_append_bench [--json] [--quick] [--device SPEC] [--compare-device SPEC]
 *                   [--dtypes f32,f16] [--tokens N] [--reps N] [--layers N]
 *                   [--kv-heads N] [--head-dim N] [--label TEXT]
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

#define MAX_REPS      1000
#define SOURCE_ROWS   16                /* distinct K/V source rows per layer, cycled */
#define MARKER_BEGIN  0x6b7666706761ull /* "kvfpga" */
#define MARKER_END    (MARKER_BEGIN + 1)
#define MAX_NR_LISTED 16

struct opts {
	const char *device, *compare_device, *label;
	enum kvfpga_kvcache_dtype dtypes[2];
	int n_dtypes;
	uint32_t tokens, layers, kv_heads, head_dim;
	int reps, json;
};

/* One cache on one device and the rows the benchmark writes. */
struct rig {
	struct kvfpga_device *dev;
	struct kvfpga_kvcache *kc;
	uint32_t row;           /* floats per K or V row: kv_heads * head_dim */
	uint32_t elem_size;     /* bytes per stored element */
	float *k, *v;           /* [layers][SOURCE_ROWS][row] */
	unsigned char *kb, *vb; /* the same rows in the stored type, for memcpy */
	unsigned char *dst;     /* memcpy destination: tokens * layers * 2 rows */
	size_t dst_bytes;
};

static const char *dtype_name(enum kvfpga_kvcache_dtype t)
{
	return t == KVFPGA_KVCACHE_F16 ? "f16" : "f32";
}

/* @spec: as KVFPGA_DEVICE, or NULL for the library's choice. */
static int open_device(const char *spec, struct kvfpga_device **dev)
{
	struct kvfpga_open_opts oo;
	int ret = kvfpga_open_opts_init(&oo);

	if (!ret && spec)
		ret = kvfpga_open_opts_set_device(&oo, spec);
	if (!ret)
		ret = kvfpga_device_open(&oo, dev);
	return ret;
}

static void rig_close(struct rig *r)
{
	kvfpga_kvcache_destroy(r->kc);
	kvfpga_device_close(r->dev);
	free(r->k);
	free(r->v);
	free(r->kb);
	free(r->vb);
	free(r->dst);
	memset(r, 0, sizeof(*r));
}

/*
 * A cache on the device @spec; @with_memcpy: also the baseline's rows and
 * destination (not needed when counting).
 */
static int rig_open(struct rig *r, const struct opts *o, const char *spec,
                    enum kvfpga_kvcache_dtype dtype, int with_memcpy)
{
	struct kvfpga_kvcache_config cfg;
	size_t n;
	uint64_t seed = 7;
	int ret;

	memset(r, 0, sizeof(*r));
	r->row = o->kv_heads * o->head_dim;
	r->elem_size = dtype == KVFPGA_KVCACHE_F16 ? 2 : 4;
	n = (size_t)o->layers * SOURCE_ROWS * r->row;
	r->k = malloc(n * sizeof(float));
	r->v = malloc(n * sizeof(float));
	if (!r->k || !r->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		r->k[i] = (float)((seed >> 40) & 0xffff) / 32768.0f - 1.0f;
		r->v[i] = (float)((seed >> 20) & 0xffff) / 32768.0f - 1.0f;
	}
	if (with_memcpy) {
		r->kb = malloc(n * r->elem_size);
		r->vb = malloc(n * r->elem_size);
		r->dst_bytes = (size_t)o->tokens * o->layers * 2 * r->row * r->elem_size;
		r->dst = malloc(r->dst_bytes);
		if (!r->kb || !r->vb || !r->dst)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			if (r->elem_size == 2) {
				uint16_t hk = kvfpga_kvcache_f16_from_f32(r->k[i]);
				uint16_t hv = kvfpga_kvcache_f16_from_f32(r->v[i]);

				memcpy(r->kb + i * 2, &hk, 2);
				memcpy(r->vb + i * 2, &hv, 2);
			} else {
				memcpy(r->kb + i * 4, &r->k[i], 4);
				memcpy(r->vb + i * 4, &r->v[i], 4);
			}
		}
		memset(r->dst, 0, r->dst_bytes); /* backs every page */
	}
	ret = open_device(spec, &r->dev);
	if (ret)
		return ret;
	kvfpga_kvcache_config_init(&cfg);
	cfg.n_layers = o->layers;
	cfg.n_kv_heads = o->kv_heads;
	cfg.head_dim = o->head_dim;
	cfg.dtype = dtype;
	/* One sequence of --tokens, plus the block a new sequence may take before evicting. */
	cfg.n_blocks = (o->tokens + cfg.block_size - 1) / cfg.block_size + 1;
	return kvfpga_kvcache_create(r->dev, &cfg, &r->kc);
}

/*
 * The measured work: @tokens decode steps of one new sequence.  @deliberate:
 * one getpid() per token, which the system call counter must then find.
 */
static int append_tokens(struct rig *r, const struct opts *o, uint64_t salt, int deliberate)
{
	struct kvfpga_kvseq *seq = NULL;
	int ret = kvfpga_kvseq_create(r->kc, salt, &seq);

	for (uint32_t pos = 0; !ret && pos < o->tokens; pos++) {
		int32_t tok = (int32_t)(pos % 32000);
		size_t src = (size_t)(pos % SOURCE_ROWS) * r->row;

		ret = kvfpga_kvseq_append(seq, &tok, 1, NULL);
		for (uint32_t l = 0; !ret && l < o->layers; l++) {
			size_t off = (size_t)l * SOURCE_ROWS * r->row + src;

			ret = kvfpga_kvseq_write(seq, l, pos, r->k + off, r->v + off);
		}
		if (!ret)
			ret = kvfpga_kvseq_commit(seq, pos + 1);
		if (deliberate)
			syscall(SYS_getpid);
	}
	kvfpga_kvseq_free(seq);
	return ret;
}

/* The baseline: the same bytes, memcpy'd row by row into host memory of the same size. */
static void memcpy_tokens(struct rig *r, const struct opts *o)
{
	size_t rowb = (size_t)r->row * r->elem_size;
	unsigned char *d = r->dst;

	for (uint32_t pos = 0; pos < o->tokens; pos++) {
		size_t src = (size_t)(pos % SOURCE_ROWS) * rowb;

		for (uint32_t l = 0; l < o->layers; l++) {
			size_t off = (size_t)l * SOURCE_ROWS * rowb + src;

			memcpy(d, r->kb + off, rowb);
			memcpy(d + rowb, r->vb + off, rowb);
			d += 2 * rowb;
		}
	}
	__asm__ __volatile__("" : : "r"(r->dst) : "memory"); /* the stores are the point */
}

/* ---- system calls per token ---- */

enum { CHILD_OK = 0, CHILD_TRACEME = 20, CHILD_SETUP = 21, CHILD_WORK = 22 };

static void __attribute__((noreturn))
child_main(const struct opts *o, enum kvfpga_kvcache_dtype dtype, int deliberate)
{
	struct rig r;
	int code = CHILD_OK;

	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		_exit(CHILD_TRACEME);
	raise(SIGSTOP); /* the parent takes over from here */
	if (rig_open(&r, o, o->device, dtype, 0))
		code = CHILD_SETUP;
	/* A warm-up sequence: first touches of the arena, lazy binding, allocations. */
	else if (append_tokens(&r, o, 1, 0))
		code = CHILD_WORK;
	if (code == CHILD_OK) {
		int ret;

		syscall(SYS_getppid, MARKER_BEGIN);
		ret = append_tokens(&r, o, 2, deliberate);
		syscall(SYS_getppid, MARKER_END);
		if (ret)
			code = CHILD_WORK;
	}
	rig_close(&r);
	_exit(code);
}

struct syscall_count {
	uint64_t count;
	uint64_t nrs[MAX_NR_LISTED]; /* the first ones seen */
	int marked;                  /* both markers were seen */
};

/*
 * 0, or a negative errno / positive child exit code with a message on stderr.
 * @deliberate: the child makes one extra system call per token.
 */
static int count_syscalls(const struct opts *o, enum kvfpga_kvcache_dtype dtype, int deliberate,
                          struct syscall_count *out)
{
	int status, phase = 0, sig = 0;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_main(o, dtype, deliberate);
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		fprintf(stderr, "kv_append_bench: traced child did not stop (status 0x%x)\n",
		        status);
		return -ECHILD;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
	           (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL))) {
		int err = errno;

		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -err;
	}
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig))
			return -errno;
		sig = 0;
		if (waitpid(pid, &status, 0) != pid)
			return -errno;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			struct __ptrace_syscall_info info;

			if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof(info), &info) <= 0)
				continue;
			if (info.op != PTRACE_SYSCALL_INFO_ENTRY)
				continue;
			if (info.entry.nr == SYS_getppid && info.entry.args[0] == MARKER_BEGIN) {
				phase = 1;
			} else if (info.entry.nr == SYS_getppid &&
			           info.entry.args[0] == MARKER_END) {
				phase = 2;
				out->marked = 1;
			} else if (phase == 1) {
				if (out->count < MAX_NR_LISTED)
					out->nrs[out->count] = info.entry.nr;
				out->count++;
			}
		} else {
			sig = WSTOPSIG(status); /* a real signal: deliver it */
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "kv_append_bench: traced child killed by signal %d\n",
		        WTERMSIG(status));
		return -EINTR;
	}
	if (WEXITSTATUS(status) != CHILD_OK) {
		fprintf(stderr, "kv_append_bench: traced child failed at step %d\n",
		        WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	if (!out->marked) {
		fprintf(stderr, "kv_append_bench: the traced child's markers were not seen\n");
		return -EPROTO;
	}
	return 0;
}

/* ---- one K/V type ---- */

static int run_dtype(const struct opts *o, enum kvfpga_kvcache_dtype dtype, json_object *arr,
                     char *devdesc, char *cmpdesc, size_t desclen)
{
	static double t_append[MAX_REPS], t_memcpy[MAX_REPS], t_cmp[MAX_REPS];
	double scale = 1e9 / ((double)o->tokens * o->layers);
	struct syscall_count sc, check;
	struct bench_figure fig, cfig;
	struct rig r, rc;
	int ret;

	memset(&rc, 0, sizeof(rc));
	/*
	 * Counting first: the child forks from a process that holds no device
	 * yet.  The counter must find one deliberate call per token, or its 0
	 * means nothing.
	 */
	ret = count_syscalls(o, dtype, 1, &check);
	if (!ret && check.count != o->tokens) {
		fprintf(stderr,
		        "kv_append_bench: the counter found %llu system calls where %u were made\n",
		        (unsigned long long)check.count, o->tokens);
		return -EPROTO;
	}
	if (!ret)
		ret = count_syscalls(o, dtype, 0, &sc);
	if (ret) {
		if (ret < 0)
			fprintf(stderr, "kv_append_bench: counting system calls: %s\n",
			        strerror(-ret));
		return ret < 0 ? ret : -ECHILD;
	}
	ret = rig_open(&r, o, o->device, dtype, 1);
	if (!ret && o->compare_device)
		ret = rig_open(&rc, o, o->compare_device, dtype, 0);
	if (ret) {
		fprintf(stderr, "kv_append_bench: %s cache: %s\n", dtype_name(dtype),
		        kvfpga_strerror(ret));
		rig_close(&r);
		rig_close(&rc);
		return ret;
	}
	kvfpga_device_describe(r.dev, devdesc, desclen);
	if (rc.dev)
		kvfpga_device_describe(rc.dev, cmpdesc, desclen);
	for (int rep = -1; rep < o->reps && !ret; rep++) {
		double t0 = bench_now(), t1, t2, t3;

		ret = append_tokens(&r, o, (uint64_t)rep + 2, 0);
		t1 = bench_now();
		memcpy_tokens(&r, o);
		t2 = bench_now();
		if (!ret && rc.dev)
			ret = append_tokens(&rc, o, (uint64_t)rep + 2, 0);
		t3 = bench_now();
		if (rep >= 0) {
			t_append[rep] = (t1 - t0) * scale;
			t_memcpy[rep] = (t2 - t1) * scale;
			t_cmp[rep] = (t3 - t2) * scale;
		}
	}
	if (ret)
		fprintf(stderr, "kv_append_bench: %s append: %s\n", dtype_name(dtype),
		        kvfpga_strerror(ret));
	if (!ret)
		ret = bench_figure_of(t_append, t_memcpy, o->reps, &fig);
	if (!ret && rc.dev)
		ret = bench_figure_of(t_append, t_cmp, o->reps, &cfig);
	if (!ret && o->json) {
		json_object *d = json_object_new_object(), *sys = json_object_new_object();
		json_object *nrs = json_object_new_array();

		json_object_object_add(d, "kv_dtype", json_object_new_string(dtype_name(dtype)));
		json_object_object_add(d, "bytes_per_token_layer",
		                       json_object_new_int64((int64_t)2 * r.row * r.elem_size));
		json_object_object_add(
		        d, "ns_per_token_layer",
		        bench_figure_json(&fig, "ns", "memcpy of the same bytes into host memory",
		                          "ns"));
		json_object_object_add(sys, "count", json_object_new_int64((int64_t)sc.count));
		json_object_object_add(sys, "tokens", json_object_new_int64(o->tokens));
		json_object_object_add(sys, "per_token",
		                       json_object_new_double((double)sc.count / o->tokens));
		for (uint64_t i = 0; i < sc.count && i < MAX_NR_LISTED; i++)
			json_object_array_add(nrs, json_object_new_int64((int64_t)sc.nrs[i]));
		json_object_object_add(sys, "first_syscall_numbers", nrs);
		json_object_object_add(sys, "method",
		                       json_object_new_string("ptrace PTRACE_SYSCALL entries "
		                                              "between two marker calls"));
		json_object_object_add(sys, "counter_check_deliberate_calls",
		                       json_object_new_int64(o->tokens));
		json_object_object_add(sys, "counter_check_counted",
		                       json_object_new_int64((int64_t)check.count));
		json_object_object_add(d, "syscalls", sys);
		if (rc.dev)
			json_object_object_add(
			        d, "ns_per_token_layer_vs_compare_device",
			        bench_figure_json(&cfig, "ns",
			                          "the same on the compare device, right after",
			                          "ns"));
		json_object_array_add(arr, d);
	}
	if (!ret)
		fprintf(o->json ? stderr : stdout,
		        "kv append %s: %7.1f ns/token/layer [%.1f, %.1f]   memcpy %6.1f ns   ratio "
		        "%.2f   system calls %llu in %u tokens\n",
		        dtype_name(dtype), fig.value.median, fig.value.min, fig.value.max,
		        fig.baseline.median, fig.ratio.median, (unsigned long long)sc.count,
		        o->tokens);
	if (!ret && rc.dev)
		fprintf(o->json ? stderr : stdout,
		        "kv append %s on the compare device: %7.1f ns/token/layer [%.1f, %.1f]   "
		        "ratio (device / compare device) %.2f [%.2f, %.2f]\n",
		        dtype_name(dtype), cfig.baseline.median, cfig.baseline.min,
		        cfig.baseline.max, cfig.ratio.median, cfig.ratio.min, cfig.ratio.max);
	rig_close(&r);
	rig_close(&rc);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kv_append_bench [--json] [--quick] [--device SPEC]\n"
	           "                       [--compare-device SPEC] [--dtypes f32,f16]\n"
	           "                       [--tokens N] [--reps N] [--layers N] [--kv-heads N]\n"
	           "                       [--head-dim N] [--label TEXT]\n"
	           "  KV cache append + K/V row writes through the mapped card memory: ns per\n"
	           "  token per layer against memcpy of the same bytes, and system calls per\n"
	           "  token (counted under ptrace).  Defaults: 4096 tokens, 7 repetitions,\n"
	           "  12 layers x 12 KV heads x 64 (a stories110M-shaped model).\n"
	           "  --device SPEC  as KVFPGA_DEVICE: emulated, card, a PCI slot or a node\n"
	           "  --compare-device SPEC  the same work on this device too, each repetition\n"
	           "                 right after --device's, for a device / device ratio\n"
	           "  --quick        1024 tokens, 3 repetitions\n"
	           "  --label TEXT   copied into the JSON (e.g. which run this is)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "device", required_argument, NULL, 'D' },
		{ "compare-device", required_argument, NULL, 'C' },
		{ "dtypes", required_argument, NULL, 't' },
		{ "tokens", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "layers", required_argument, NULL, 'l' },
		{ "kv-heads", required_argument, NULL, 'k' },
		{ "head-dim", required_argument, NULL, 'd' },
		{ "label", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t reps = 7;
	int c, bad = 0;

	memset(o, 0, sizeof(*o));
	o->dtypes[0] = KVFPGA_KVCACHE_F32;
	o->dtypes[1] = KVFPGA_KVCACHE_F16;
	o->n_dtypes = 2;
	o->tokens = 4096;
	o->layers = 12;
	o->kv_heads = 12;
	o->head_dim = 64;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = 1;
			break;
		case 'q':
			o->tokens = 1024;
			reps = 3;
			break;
		case 'D':
			o->device = optarg;
			break;
		case 'C':
			o->compare_device = optarg;
			break;
		case 't':
			if (!strcmp(optarg, "f32") || !strcmp(optarg, "f16")) {
				o->dtypes[0] =
				        optarg[1] == '3' ? KVFPGA_KVCACHE_F32 : KVFPGA_KVCACHE_F16;
				o->n_dtypes = 1;
			} else if (!strcmp(optarg, "f32,f16")) {
				o->n_dtypes = 2;
			} else {
				bad = 1;
			}
			break;
		case 'n':
			bad |= bench_parse_u32(optarg, 1, 1u << 24, &o->tokens) != 0;
			break;
		case 'r':
			bad |= bench_parse_u32(optarg, 1, MAX_REPS, &reps) != 0;
			break;
		case 'l':
			bad |= bench_parse_u32(optarg, 1, 1024, &o->layers) != 0;
			break;
		case 'k':
			bad |= bench_parse_u32(optarg, 1, 1024, &o->kv_heads) != 0;
			break;
		case 'd':
			bad |= bench_parse_u32(optarg, 1, 1024, &o->head_dim) != 0;
			break;
		case 'L':
			o->label = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	o->reps = (int)reps;
	return bad || optind != argc ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	json_object *root, *arr;
	struct opts o;
	char dev[256] = "", cmp[256] = "";
	int ret = 0;

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	root = json_object_new_object();
	arr = json_object_new_array();
	for (int i = 0; i < o.n_dtypes && !ret; i++)
		ret = run_dtype(&o, o.dtypes[i], arr, dev, cmp, sizeof(dev));
	if (!ret && o.json) {
		json_object_object_add(root, "benchmark", json_object_new_string("kv_append"));
		if (o.label)
			json_object_object_add(root, "label", json_object_new_string(o.label));
		json_object_object_add(root, "device", json_object_new_string(dev));
		if (o.compare_device)
			json_object_object_add(root, "compare_device", json_object_new_string(cmp));
		json_object_object_add(root, "tokens", json_object_new_int64(o.tokens));
		json_object_object_add(root, "reps", json_object_new_int(o.reps));
		json_object_object_add(root, "layers", json_object_new_int((int)o.layers));
		json_object_object_add(root, "kv_heads", json_object_new_int((int)o.kv_heads));
		json_object_object_add(root, "head_dim", json_object_new_int((int)o.head_dim));
		json_object_object_add(root, "cases", arr);
		arr = NULL;
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	}
	json_object_put(arr);
	json_object_put(root);
	return ret ? 1 : 0;
}
