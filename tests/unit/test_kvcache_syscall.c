/* SPDX-License-Identifier: MIT */
/*
 * The per-token path of the KV cache makes no system call: appending tokens
 * into a block the sequence already holds, writing their K/V (single and
 * bulk) and reading them back.  A forked child installs a seccomp filter
 * that kills the process on any system call except exit/exit_group, then
 * does that work; the parent sees it exit normally and finds the K/V it
 * wrote in the (shared) arena.  A variant makes one deliberate getpid()
 * after the same work and must be killed by SIGSYS, which shows the filter
 * really catches a system call.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "helpers/test_layout.h"
#include "kvfpga/kvcache.h"
#include "kvfpga/kvfpga.h"

#if defined(__x86_64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_I386
#else
#error "add this architecture's AUDIT_ARCH_* value"
#endif

#define LAYERS   2
#define HEADS    2
#define HEAD_DIM 8
#define ROW      (HEADS * HEAD_DIM)
#define BS       16
#define N_BLOCKS 8

/* Child exit codes: which step went wrong. */
enum {
	CHILD_OK = 0,
	CHILD_NO_FILTER = 10,
	CHILD_APPEND = 11,
	CHILD_WRITE = 12,
	CHILD_WRITE_RANGE = 13,
	CHILD_READ = 14,
	CHILD_BAD_VALUE = 15,
	CHILD_INFO = 16,
};

struct rig {
	struct kvfpga_device *dev;
	struct kvfpga_kvcache *kc;
	struct kvfpga_kvseq *seq;
	struct kvfpga_kvcache_layout lay;
	const uint8_t *base;
	int32_t block;
};

static float value(uint32_t pos, uint32_t layer, uint32_t kv, uint32_t e)
{
	/* Multiples of 1/4 below 512: exact in binary16 too. */
	return (float)((pos * 97u + layer * 31u + kv * 13u + e) % 2048u) / 4.0f;
}

static void rows(uint32_t pos, uint32_t layer, float *k, float *v)
{
	for (uint32_t e = 0; e < ROW; e++) {
		k[e] = value(pos, layer, 0, e);
		v[e] = value(pos, layer, 1, e);
	}
}

static void rig_open(struct rig *r, enum kvfpga_kvcache_dtype dtype)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_kvcache_config cfg;
	struct kvfpga_kvcache_arena ar;
	int32_t tok = 1;
	float k[ROW], v[ROW];
	uint32_t n;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	opts.emu_mem_size = 16ull << 20;
	ck_assert_int_eq(kvfpga_device_open(&opts, &r->dev), 0);
	kvfpga_kvcache_config_init(&cfg);
	cfg.n_layers = LAYERS;
	cfg.n_kv_heads = HEADS;
	cfg.head_dim = HEAD_DIM;
	cfg.block_size = BS;
	cfg.dtype = dtype;
	cfg.n_blocks = N_BLOCKS;
	ck_assert_int_eq(kvfpga_kvcache_create(r->dev, &cfg, &r->kc), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_layout(r->kc, &r->lay), 0);
	ck_assert_int_eq(kvfpga_kvcache_get_arena(r->kc, &ar), 0);
	r->base = ar.base;
	/* One token: the sequence now holds the block the child will fill. */
	ck_assert_int_eq(kvfpga_kvseq_create(r->kc, 0, &r->seq), 0);
	ck_assert_int_eq(kvfpga_kvseq_append(r->seq, &tok, 1, NULL), 0);
	/* Warm up every code path once (lazy symbol binding, first touches). */
	for (uint32_t l = 0; l < LAYERS; l++) {
		rows(0, l, k, v);
		ck_assert_int_eq(kvfpga_kvseq_write(r->seq, l, 0, k, v), 0);
		ck_assert_int_eq(kvfpga_kvseq_write_range(r->seq, l, 0, 1, k, v, 0), 0);
		ck_assert_int_eq(kvfpga_kvseq_read(r->seq, l, 0, k, v), 0);
	}
	ck_assert_int_eq(kvfpga_kvseq_block_table(r->seq, &r->block, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
}

static void rig_close(struct rig *r)
{
	kvfpga_kvcache_destroy(r->kc);
	kvfpga_device_close(r->dev);
}

/* From here on, any system call but exit/exit_group kills the process. */
static int forbid_syscalls(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The child's work, under the filter: fill the rest of the block, token by token. */
static int per_token_work(struct rig *r)
{
	float k[ROW], v[ROW], back[ROW], bulk_k[3 * ROW], bulk_v[3 * ROW];
	struct kvfpga_kvseq_info info;

	for (uint32_t pos = 1; pos < BS; pos++) {
		int32_t tok = (int32_t)pos + 1;
		uint32_t cached = 1;

		if (kvfpga_kvseq_append(r->seq, &tok, 1, &cached) || cached)
			return CHILD_APPEND;
		if (pos >= BS - 3)
			continue; /* the last three go in bulk below */
		for (uint32_t l = 0; l < LAYERS; l++) {
			rows(pos, l, k, v);
			if (kvfpga_kvseq_write(r->seq, l, pos, k, v))
				return CHILD_WRITE;
			if (kvfpga_kvseq_read(r->seq, l, pos, back, NULL))
				return CHILD_READ;
			/* f32 and f16 store these values exactly; int8 is checked by the parent. */
			if (r->lay.dtype != KVFPGA_KVCACHE_I8 && memcmp(back, k, sizeof(back)))
				return CHILD_BAD_VALUE;
		}
	}
	for (uint32_t l = 0; l < LAYERS; l++) {
		for (uint32_t i = 0; i < 3; i++)
			rows(BS - 3 + i, l, bulk_k + i * ROW, bulk_v + i * ROW);
		if (kvfpga_kvseq_write_range(r->seq, l, BS - 3, 3, bulk_k, bulk_v, 0))
			return CHILD_WRITE_RANGE;
	}
	if (kvfpga_kvseq_get_info(r->seq, &info) || info.len != BS || info.n_blocks != 1)
		return CHILD_INFO;
	return CHILD_OK;
}

/*
 * Leave by the raw system call: libc's _exit may run sanitizer hooks (ASan's
 * interceptor calls sigaltstack) which are not the code under test.
 */
static void __attribute__((noreturn)) exit_now(int code)
{
	syscall(SYS_exit_group, code);
	_exit(code); /* not reached */
}

/* Run per_token_work in a filtered child; returns its wait status. */
static int run_child(struct rig *r, int deliberate_syscall)
{
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int code;

		if (forbid_syscalls())
			exit_now(CHILD_NO_FILTER);
		code = per_token_work(r);
		if (deliberate_syscall)
			syscall(SYS_getpid);
		exit_now(code);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Layer @layer's slice of the rig's block in the layer-major arena (helpers/test_layout.h). */
static const uint8_t *slice_of(const struct rig *r, uint32_t layer)
{
	uint64_t elems = test_slice_elems(HEADS, BS, HEAD_DIM);
	uint64_t slice_bytes = r->lay.dtype == KVFPGA_KVCACHE_F32 ? elems * 4
	                       : r->lay.dtype == KVFPGA_KVCACHE_F16
	                               ? elems * 2
	                               : test_i8_slice_bytes(HEADS, BS, HEAD_DIM);

	return r->base + test_slice_start(layer, (uint32_t)r->block, N_BLOCKS, slice_bytes);
}

/* What the child wrote is in the shared arena: it really did the work. */
static void assert_child_wrote(const struct rig *r)
{
	const uint64_t esz = r->lay.dtype == KVFPGA_KVCACHE_F32   ? 4
	                     : r->lay.dtype == KVFPGA_KVCACHE_F16 ? 2
	                                                          : 1;

	for (uint32_t pos = 1; pos < BS; pos++)
		for (uint32_t l = 0; l < LAYERS; l++)
			for (uint32_t kv = 0; kv < 2; kv++)
				for (uint32_t h = 0; h < HEADS; h++)
					for (uint32_t d = 0; d < HEAD_DIM; d++) {
						uint64_t off = test_slice_elem(kv, h, pos, d, HEADS,
						                               BS, HEAD_DIM);
						const uint8_t *p = slice_of(r, l) + off * esz;
						float want = value(pos, l, kv, h * HEAD_DIM + d),
						      got;

						float tolerance = 0;

						if (esz == 4) {
							memcpy(&got, p, 4);
						} else if (esz == 2) {
							uint16_t half;

							memcpy(&half, p, 2);
							got = kvfpga_kvcache_f16_to_f32(half);
						} else {
							/* q * scale, within one step (two
							 * roundings). */
							float scale;

							memcpy(&scale,
							       slice_of(r, l) +
							               test_i8_scale_offset(
							                       HEADS, BS,
							                       HEAD_DIM) +
							               (kv * HEADS + h) * 4,
							       4);
							got = (float)(int8_t)*p * scale;
							tolerance = scale;
						}
						if (!(got - want <= tolerance &&
						      want - got <= tolerance))
							ck_abort_msg(
							        "pos %u layer %u kv %u head %u d "
							        "%u: %g, want %g",
							        pos, l, kv, h, d, got, want);
					}
}

START_TEST(test_per_token_path_makes_no_syscall)
{
	struct rig r;
	int status;

	static const enum kvfpga_kvcache_dtype types[] = { KVFPGA_KVCACHE_F16, KVFPGA_KVCACHE_F32,
		                                           KVFPGA_KVCACHE_I8 };

	rig_open(&r, types[_i]);
	status = run_child(&r, 0);
	ck_assert_msg(!WIFSIGNALED(status),
	              "child killed by signal %d (%s): a system call was made", WTERMSIG(status),
	              WTERMSIG(status) == SIGSYS ? "SIGSYS" : "other");
	ck_assert_msg(WIFEXITED(status), "child status 0x%x", status);
	ck_assert_msg(WEXITSTATUS(status) == CHILD_OK, "child failed at step %d",
	              WEXITSTATUS(status));
	assert_child_wrote(&r);
	rig_close(&r);
}
END_TEST

START_TEST(test_deliberate_syscall_is_caught)
{
	struct rig r;
	int status;

	rig_open(&r, KVFPGA_KVCACHE_F16);
	status = run_child(&r, 1);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
	              "the getpid() variant was not killed by SIGSYS (status 0x%x)", status);
	assert_child_wrote(&r); /* it got that far without a system call */
	rig_close(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kvcache_syscall");
	TCase *tc = tcase_create("seccomp");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_per_token_path_makes_no_syscall, 0, 3);
	tcase_add_test(tc, test_deliberate_syscall_is_caught);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
