/* SPDX-License-Identifier: MIT */
/*
 * Persistent thread pool for the forward pass.  A decode step runs about
 * a hundred short parallel regions (one per matmul group and layer), so
 * waking workers through a condition variable each time would cost more
 * than the work: workers spin on a generation counter for a while after
 * each job and only then sleep.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "forward_internal.h"

/* How long an idle worker spins before sleeping. */
#define SPIN_NS 2000000ull

struct kvfi_worker {
	struct kvfi_pool *pool;
	uint32_t index;
	pthread_t thread;
};

struct kvfi_pool {
	uint32_t n;
	struct kvfi_worker *workers; /* n - 1 threads */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_uint generation;
	atomic_uint pending;
	unsigned sleepers; /* under lock */
	bool stop;         /* under lock */
	kvfi_pool_fn fn;
	void *arg;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/*
 * Pause while spinning; after a while also yield, so that a spinning
 * thread does not keep a preempted partner (or another process) off a
 * busy machine's cores.
 */
static inline void relax(unsigned spins)
{
	if (spins < 4096)
		cpu_relax();
	else
		sched_yield();
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *p)
{
	struct kvfi_worker *w = p;
	struct kvfi_pool *pool = w->pool;
	unsigned seen = 0;

	for (;;) {
		unsigned gen = atomic_load_explicit(&pool->generation, memory_order_acquire);

		if (gen == seen) {
			uint64_t start = now_ns();
			unsigned spins = 0;

			while ((gen = atomic_load_explicit(&pool->generation,
			                                   memory_order_acquire)) == seen) {
				relax(spins);
				if (++spins % 1024 == 0 && now_ns() - start > SPIN_NS)
					break;
			}
		}
		if (gen == seen) {
			pthread_mutex_lock(&pool->lock);
			pool->sleepers++;
			while (!pool->stop && atomic_load(&pool->generation) == seen)
				pthread_cond_wait(&pool->wake, &pool->lock);
			pool->sleepers--;
			if (pool->stop) {
				pthread_mutex_unlock(&pool->lock);
				return NULL;
			}
			gen = atomic_load(&pool->generation);
			pthread_mutex_unlock(&pool->lock);
		}
		seen = gen;
		if (!pool->fn) /* a wake-up for stopping */
			return NULL;
		pool->fn(pool->arg, w->index, pool->n);
		atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
	}
}

int kvfi_pool_create(uint32_t n_threads, struct kvfi_pool **out)
{
	struct kvfi_pool *pool;
	uint32_t started = 0;
	int ret = 0;

	if (!out || n_threads == 0 || n_threads > 1024)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->n = n_threads;
	atomic_init(&pool->generation, 0);
	atomic_init(&pool->pending, 0);
	if (pthread_mutex_init(&pool->lock, NULL)) {
		free(pool);
		return -ENOMEM;
	}
	if (pthread_cond_init(&pool->wake, NULL)) {
		pthread_mutex_destroy(&pool->lock);
		free(pool);
		return -ENOMEM;
	}
	if (n_threads > 1) {
		pool->workers = calloc(n_threads - 1, sizeof(*pool->workers));
		if (!pool->workers)
			ret = -ENOMEM;
	}
	for (; !ret && started + 1 < n_threads; started++) {
		struct kvfi_worker *w = &pool->workers[started];

		w->pool = pool;
		w->index = started + 1;
		ret = -pthread_create(&w->thread, NULL, worker_main, w);
	}
	if (ret) {
		pool->n = started + 1;
		kvfi_pool_destroy(pool);
		return ret;
	}
	*out = pool;
	return 0;
}

void kvfi_pool_destroy(struct kvfi_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = true;
	pool->fn = NULL;
	atomic_fetch_add(&pool->generation, 1);
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (uint32_t i = 0; i + 1 < pool->n; i++)
		pthread_join(pool->workers[i].thread, NULL);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->workers);
	free(pool);
}

uint32_t kvfi_pool_size(const struct kvfi_pool *pool)
{
	return pool->n;
}

void kvfi_pool_run(struct kvfi_pool *pool, kvfi_pool_fn fn, void *arg)
{
	if (pool->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	pool->fn = fn;
	pool->arg = arg;
	atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
	pthread_mutex_lock(&pool->lock);
	atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
	if (pool->sleepers)
		pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	fn(arg, 0, pool->n);
	for (unsigned spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire);
	     spins++)
		relax(spins);
}
