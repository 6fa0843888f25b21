/* SPDX-License-Identifier: MIT */
/* Internal to libkvfpga: the forward pass's thread pool and built-in attention backend. */
#ifndef KVFPGA_FORWARD_INTERNAL_H
#define KVFPGA_FORWARD_INTERNAL_H

#include <stdint.h>

#include "kvfpga/model.h"
#include "matmul.h"

/*
 * A persistent pool: the calling thread is worker 0, n - 1 threads wait
 * (spinning briefly, then on a condition variable) for the next job.
 */
struct kvfi_pool;
typedef void (*kvfi_pool_fn)(void *arg, uint32_t worker, uint32_t n_workers);

int kvfi_pool_create(uint32_t n_threads, struct kvfi_pool **out);
void kvfi_pool_destroy(struct kvfi_pool *pool);
uint32_t kvfi_pool_size(const struct kvfi_pool *pool);
/* Runs fn(arg, i, n) on every worker i and returns when all are done. */
void kvfi_pool_run(struct kvfi_pool *pool, kvfi_pool_fn fn, void *arg);

/* The built-in host attention backend: contiguous per-sequence K/V in host memory. */
extern const struct kvfpga_infer_attn_ops kvfi_host_attn_ops;
int kvfi_host_attn_create(const struct kvfpga_infer_attn_shape *shape,
                          enum kvfpga_infer_kv_type kv_type, uint32_t max_seqs,
                          struct kvfi_pool *pool, const struct kvfi_kernels *kern, void **state);

#endif /* KVFPGA_FORWARD_INTERNAL_H */
