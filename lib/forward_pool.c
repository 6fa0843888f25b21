/* SPDX-License-Identifier: MIT */
/*
 * Persistent thread pool for the forward pass.
 *
 * A decode step runs about a hundred short parallel regions (one per
 * matmul group and layer), so waking workers through a condition variable
 * each time would cost more than the work: idle workers spin on a
 * generation counter for a while after each job and only then sleep.
 *
 * Joining a job is optional.  Every job hands out its work dynamically
 * (atomic counters), and the caller works on it too; when the caller has
 * run out of work it closes the job and waits only for the workers that
 * actually joined and are still busy.  A worker that is not running when
 * a job starts (preempted by another process on a busy machine, or
 * asleep) therefore costs nothing: it finds the job closed and skips it.
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

/*
 * Job state word: generation in the high 31 bits, a "closed" bit, and the
 * number of workers inside the job in the low 32 bits.
 */
#define STATE_CLOSED    (1ull << 32)
#define STATE_ACTIVE    0xffffffffull
#define STATE_GEN_SHIFT 33
#define STATE_GEN(s)    ((s) >> STATE_GEN_SHIFT)

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
	atomic_uint_fast64_t state;
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

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Enter job @gen if it is still open; false if it closed (or a newer one began). */
static bool try_enter(struct kvfi_pool *pool, uint64_t gen)
{
	uint64_t s = atomic_load_explicit(&pool->state, memory_order_acquire);

	do {
		if (STATE_GEN(s) != gen || (s & STATE_CLOSED))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	        &pool->state, &s, s + 1, memory_order_acquire, memory_order_acquire));
	return true;
}

static void *worker_main(void *p)
{
	struct kvfi_worker *w = p;
	struct kvfi_pool *pool = w->pool;
	uint64_t seen = 0;

	for (;;) {
		uint64_t gen = STATE_GEN(atomic_load_explicit(&pool->state, memory_order_acquire));

		if (gen == seen) {
			uint64_t start = now_ns();
			unsigned spins = 0;

			while ((gen = STATE_GEN(atomic_load_explicit(
			                &pool->state, memory_order_acquire))) == seen) {
				/* Yield after a while: this thread is optional to every job. */
				if (spins < 4096)
					cpu_relax();
				else
					sched_yield();
				if (++spins % 1024 == 0 && now_ns() - start > SPIN_NS)
					break;
			}
		}
		if (gen == seen) {
			pthread_mutex_lock(&pool->lock);
			pool->sleepers++;
			while (!pool->stop && STATE_GEN(atomic_load(&pool->state)) == seen)
				pthread_cond_wait(&pool->wake, &pool->lock);
			pool->sleepers--;
			gen = STATE_GEN(atomic_load(&pool->state));
			if (pool->stop) {
				pthread_mutex_unlock(&pool->lock);
				return NULL;
			}
			pthread_mutex_unlock(&pool->lock);
		}
		seen = gen;
		if (try_enter(pool, gen)) {
			/* fn and arg were published before the generation (release/acquire). */
			pool->fn(pool->arg, w->index, pool->n);
			atomic_fetch_sub_explicit(&pool->state, 1, memory_order_release);
		}
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
	atomic_init(&pool->state, STATE_CLOSED);
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
	/* A new, already closed generation: spinning workers notice, then see stop. */
	atomic_fetch_add(&pool->state, 1ull << STATE_GEN_SHIFT);
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
	uint64_t gen;
	unsigned spins = 0;

	if (pool->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	pool->fn = fn;
	pool->arg = arg;
	/* Open the next generation with nobody inside (the previous job is closed and empty). */
	gen = STATE_GEN(atomic_load_explicit(&pool->state, memory_order_relaxed)) + 1;
	pthread_mutex_lock(&pool->lock);
	atomic_store_explicit(&pool->state, gen << STATE_GEN_SHIFT, memory_order_release);
	if (pool->sleepers)
		pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	fn(arg, 0, pool->n);
	/* No work is left: close the job, then wait for the workers still inside. */
	atomic_fetch_or_explicit(&pool->state, STATE_CLOSED, memory_order_acq_rel);
	while (atomic_load_explicit(&pool->state, memory_order_acquire) & STATE_ACTIVE) {
		if (spins++ < 4096)
			cpu_relax();
		else
			sched_yield();
	}
}
