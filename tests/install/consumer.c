/* SPDX-License-Identifier: MIT */
/*
 * A program built against an *installed* libkvfpga (tests/install/
 * check-install.sh compiles it with `pkg-config --cflags --libs kvfpga`
 * only).  It includes every installed header, then exercises the library
 * end to end on the host-memory emulation: a buffer is created, mapped,
 * exported and imported back, then used as the KV arena of one decode
 * attention built from the *installed* kernel source (argv[1]), checked
 * against the library's host reference.
 *
 * usage: consumer KERNEL_SOURCE.cl
 */
#include <kvfpga/engine.h>
#include <kvfpga/kvcache.h>
#include <kvfpga/kvfpga.h>
#include <kvfpga/kvfpga_card.h>
#include <kvfpga/model.h>
#include <kvfpga/sampler.h>
#include <kvfpga/tokenizer.h>
#include <drm/kvfpga_accel.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "consumer: FAIL %s:%d: ", __FILE__, __LINE__);             \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

enum { N_BLOCKS = 8, SEQ_LEN = 10 };

static void test_buffers(struct kvfpga_device *dev)
{
	struct kvfpga_bo *bo, *imported;
	unsigned char *p, *q;
	int fd, ret;

	ret = kvfpga_bo_create(dev, 1 << 20, 0, &bo);
	CHECK(ret == 0, "bo_create: %s", kvfpga_strerror(ret));
	CHECK(kvfpga_bo_map(bo, (void **)&p) == 0, "bo_map");
	for (size_t i = 0; i < (1u << 20); i++)
		p[i] = (unsigned char)(i * 7 + 3);
	CHECK(kvfpga_bo_export(bo, &fd) == 0, "bo_export");
	ret = kvfpga_bo_import(dev, fd, &imported);
	CHECK(ret == 0, "bo_import: %s", kvfpga_strerror(ret));
	close(fd);
	CHECK(kvfpga_bo_map(imported, (void **)&q) == 0, "map imported");
	for (size_t i = 0; i < (1u << 20); i++)
		CHECK(q[i] == (unsigned char)(i * 7 + 3), "imported buffer differs at %zu", i);
	kvfpga_bo_free(imported);
	kvfpga_bo_free(bo);
}

static void test_attention(struct kvfpga_device *dev, const char *source)
{
	const struct kvfpga_attn_shape shape = { 1, 2, 1, 16, 4, KVFPGA_KV_F32 };
	const int32_t table[] = { 5, 2, 7 }; /* ceil(SEQ_LEN / block_size) blocks */
	const int32_t *tables[] = { table };
	const uint32_t lens[] = { SEQ_LEN };
	float q[2 * 16], out[2 * 16], ref[2 * 16];
	struct kvfpga_engine_opts opts;
	struct kvfpga_engine *engine;
	struct kvfpga_attn *attn;
	struct kvfpga_attn_info info;
	struct kvfpga_kv_arena *arena;
	struct kvfpga_attn_job *job;
	struct kvfpga_decode_batch batch;
	struct kvfpga_bo *bo;
	char msg[KVFPGA_ENGINE_MSG_MAX] = "";
	uint64_t block_bytes;
	float *kv;
	int ret;

	CHECK(kvfpga_attn_shape_block_bytes(&shape, &block_bytes) == 0, "shape");
	CHECK(kvfpga_bo_create(dev, N_BLOCKS * block_bytes, 0, &bo) == 0, "arena buffer");
	CHECK(kvfpga_bo_map(bo, (void **)&kv) == 0, "map arena");
	for (size_t i = 0; i < N_BLOCKS * block_bytes / sizeof(float); i++)
		kv[i] = (float)sin(0.37 * (double)i);
	for (size_t i = 0; i < 2 * 16; i++)
		q[i] = (float)cos(0.11 * (double)i);

	CHECK(kvfpga_engine_opts_init(&opts) == 0, "engine_opts_init");
	opts.no_cache = 1;
	CHECK(strlen(source) < sizeof(opts.source), "source path too long");
	strcpy(opts.source, source);
	ret = kvfpga_engine_create(&opts, &engine, msg, sizeof(msg));
	CHECK(ret == 0, "engine_create: %s (%s)", kvfpga_strerror(ret), msg);
	ret = kvfpga_attn_create(engine, &shape, &attn);
	if (ret)
		kvfpga_engine_last_error(engine, msg, sizeof(msg));
	CHECK(ret == 0, "attn_create from %s: %s (%s)", source, kvfpga_strerror(ret), msg);
	CHECK(kvfpga_attn_query(attn, &info) == 0, "attn_query");
	CHECK(info.origin == KVFPGA_PROGRAM_SOURCE, "program origin %d, want built from source",
	      (int)info.origin);

	CHECK(kvfpga_kv_arena_register(engine, kv, N_BLOCKS * block_bytes, &arena) == 0,
	      "arena_register");
	CHECK(kvfpga_attn_job_create(attn, &job) == 0, "job_create");
	memset(&batch, 0, sizeof(batch));
	batch.layer = 0;
	batch.n_seqs = 1;
	batch.seq_lens = lens;
	batch.block_tables = tables;
	batch.q = q;
	batch.out = out;
	batch.scale = 0.25f;
	ret = kvfpga_attn_decode_submit(job, arena, &batch);
	CHECK(ret == 0, "decode_submit: %s", kvfpga_attn_job_error(job));
	ret = kvfpga_attn_job_wait(job);
	CHECK(ret == 0, "job_wait: %s", kvfpga_attn_job_error(job));

	batch.out = ref;
	CHECK(kvfpga_attn_reference_decode(&shape, kv, N_BLOCKS * block_bytes, &batch) == 0,
	      "reference_decode");
	for (size_t i = 0; i < 2 * 16; i++)
		CHECK(fabsf(out[i] - ref[i]) <= 1e-4f * (1.0f + fabsf(ref[i])),
		      "out[%zu] = %g, reference %g", i, (double)out[i], (double)ref[i]);

	kvfpga_attn_job_destroy(job);
	kvfpga_kv_arena_release(arena);
	kvfpga_attn_destroy(attn);
	kvfpga_engine_destroy(engine);
	kvfpga_bo_free(bo);
}

int main(int argc, char **argv)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device_info info;
	struct kvfpga_device *dev;
	int ret;

	CHECK(argc == 2, "usage: consumer KERNEL_SOURCE.cl");
	CHECK(sizeof(struct kvfpga_card_desc) <= KVFPGA_DESC_RESERVED, "card descriptor header");
	CHECK(kvfpga_open_opts_init(&opts) == 0, "open_opts_init");
	CHECK(kvfpga_open_opts_set_device(&opts, "emulated") == 0, "set_device");
	CHECK(kvfpga_open_opts_set_emu_mem(&opts, "16M") == 0, "set_emu_mem");
	ret = kvfpga_device_open(&opts, &dev);
	CHECK(ret == 0, "device_open: %s", kvfpga_strerror(ret));
	CHECK(kvfpga_device_query(dev, &info) == 0, "device_query");
	CHECK(info.abi_major == KVFPGA_ABI_MAJOR, "abi %u, <drm/kvfpga_accel.h> says %d",
	      info.abi_major, KVFPGA_ABI_MAJOR);
	CHECK(info.backend == KVFPGA_BACKEND_EMULATED, "backend %s",
	      kvfpga_backend_name(info.backend));

	test_buffers(dev);
	test_attention(dev, argv[1]);
	kvfpga_device_close(dev);
	printf("consumer: libkvfpga %d.%d.%d: buffers and attention from %s ok\n",
	       KVFPGA_VERSION_MAJOR, KVFPGA_VERSION_MINOR, KVFPGA_VERSION_PATCH, argv[1]);
	return 0;
}
