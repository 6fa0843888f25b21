/* SPDX-License-Identifier: MIT */
/* The sampler chain documented in kvfpga/sampler.h. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfpga/sampler.h"

#define MAX_VOCAB     (1u << 24)
#define MAX_PENALTY_N (1u << 20)

struct cand {
	float logit;
	uint32_t id;
};

struct kvfpga_sampler {
	struct kvfpga_sampler_params p;
	uint32_t vocab;
	struct cand *c;
	size_t nc;
	bool sorted;
	float *work;    /* logits after penalties */
	uint32_t *hist; /* ring of the last penalty_last_n accepted tokens */
	uint32_t hist_n, hist_head;
	uint32_t *counts;  /* occurrences of each token in the ring */
	uint32_t *applied; /* penalty stamp per token */
	uint32_t stamp;
	uint64_t rng[4];
};

void kvfpga_sampler_params_init(struct kvfpga_sampler_params *p)
{
	if (!p)
		return;
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->frequency_penalty = 0.0f;
	p->presence_penalty = 0.0f;
	p->penalty_last_n = 64;
	p->seed = 0;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rng_next(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static double rng_uniform(uint64_t s[4])
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

void kvfpga_sampler_reset(struct kvfpga_sampler *s, uint64_t seed)
{
	uint64_t x = seed;

	if (!s)
		return;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->hist_n = 0;
	s->hist_head = 0;
	memset(s->counts, 0, (size_t)s->vocab * sizeof(*s->counts));
}

static bool is_finite(float f)
{
	return isfinite(f);
}

int kvfpga_sampler_create(const struct kvfpga_sampler_params *params, uint32_t vocab_size,
                          struct kvfpga_sampler **out)
{
	struct kvfpga_sampler *s;
	const struct kvfpga_sampler_params *p = params;

	if (!p || !out || vocab_size == 0 || vocab_size > MAX_VOCAB)
		return -EINVAL;
	if (!is_finite(p->temperature) || !(p->top_p > 0.0f && p->top_p <= 1.0f) ||
	    !(p->min_p >= 0.0f && p->min_p <= 1.0f) ||
	    !(p->repeat_penalty > 0.0f && is_finite(p->repeat_penalty)) ||
	    !is_finite(p->frequency_penalty) || !is_finite(p->presence_penalty) ||
	    p->penalty_last_n > MAX_PENALTY_N)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = *p;
	s->vocab = vocab_size;
	s->c = malloc((size_t)vocab_size * sizeof(*s->c));
	s->work = malloc((size_t)vocab_size * sizeof(*s->work));
	s->counts = calloc(vocab_size, sizeof(*s->counts));
	s->applied = calloc(vocab_size, sizeof(*s->applied));
	s->hist = malloc(((size_t)p->penalty_last_n + 1) * sizeof(*s->hist));
	if (!s->c || !s->work || !s->counts || !s->applied || !s->hist) {
		kvfpga_sampler_free(s);
		return -ENOMEM;
	}
	kvfpga_sampler_reset(s, p->seed);
	*out = s;
	return 0;
}

void kvfpga_sampler_free(struct kvfpga_sampler *s)
{
	if (!s)
		return;
	free(s->c);
	free(s->work);
	free(s->counts);
	free(s->applied);
	free(s->hist);
	free(s);
}

int kvfpga_sampler_accept(struct kvfpga_sampler *s, uint32_t token)
{
	uint32_t n;

	if (!s || token >= s->vocab)
		return -EINVAL;
	n = s->p.penalty_last_n;
	if (!n)
		return 0;
	if (s->hist_n == n) { /* evict the oldest */
		uint32_t old = s->hist[s->hist_head];

		s->counts[old]--;
		s->hist_n--;
		s->hist_head = (s->hist_head + 1) % n;
	}
	s->hist[(s->hist_head + s->hist_n) % n] = token;
	s->hist_n++;
	s->counts[token]++;
	return 0;
}

/* Higher logit first; the lower id first on ties. */
static bool cand_before(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

static void apply_penalties(struct kvfpga_sampler *s)
{
	const struct kvfpga_sampler_params *p = &s->p;
	uint32_t n = p->penalty_last_n;

	if (!s->hist_n || (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f &&
	                   p->presence_penalty == 0.0f))
		return;
	if (++s->stamp == 0) { /* wrapped: clear the stamps */
		memset(s->applied, 0, (size_t)s->vocab * sizeof(*s->applied));
		s->stamp = 1;
	}
	for (uint32_t i = 0; i < s->hist_n; i++) {
		uint32_t id = s->hist[(s->hist_head + i) % n];
		float *l = &s->work[id];

		if (s->applied[id] == s->stamp)
			continue;
		s->applied[id] = s->stamp;
		*l = *l > 0.0f ? *l / p->repeat_penalty : *l * p->repeat_penalty;
		*l -= (float)s->counts[id] * p->frequency_penalty + p->presence_penalty;
	}
}

/* Min-heap (by cand_before) sift-down over h[0..n). */
static void heap_down(struct cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		struct cand t;

		if (c >= n)
			return;
		if (c + 1 < n && cand_before(&h[c], &h[c + 1]))
			c++;
		if (!cand_before(&h[i], &h[c]))
			return;
		t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

/* Keep the k best candidates, sorted. */
static void top_k(struct kvfpga_sampler *s, uint32_t k)
{
	struct cand *c = s->c;

	if (k >= s->nc) {
		if (!s->sorted)
			qsort(c, s->nc, sizeof(*c), cand_cmp);
		s->sorted = true;
		return;
	}
	/* c[0..k) becomes a min-heap of the best k seen: its root is the worst kept. */
	for (size_t i = k / 2; i-- > 0;)
		heap_down(c, k, i);
	for (size_t i = k; i < s->nc; i++) {
		if (cand_before(&c[i], &c[0])) {
			c[0] = c[i];
			heap_down(c, k, 0);
		}
	}
	s->nc = k;
	qsort(c, s->nc, sizeof(*c), cand_cmp);
	s->sorted = true;
}

static void sort_cands(struct kvfpga_sampler *s)
{
	if (!s->sorted)
		qsort(s->c, s->nc, sizeof(*s->c), cand_cmp);
	s->sorted = true;
}

static void top_p(struct kvfpga_sampler *s, float p)
{
	double sum = 0.0, cum = 0.0;
	float max;

	sort_cands(s);
	max = s->c[0].logit;
	for (size_t i = 0; i < s->nc; i++)
		sum += exp((double)s->c[i].logit - max);
	for (size_t i = 0; i < s->nc; i++) {
		cum += exp((double)s->c[i].logit - max) / sum;
		if (cum >= p) {
			s->nc = i + 1;
			return;
		}
	}
}

static void min_p(struct kvfpga_sampler *s, float p)
{
	double threshold;
	size_t kept = 0;
	float max = -INFINITY;

	for (size_t i = 0; i < s->nc; i++)
		if (s->c[i].logit > max)
			max = s->c[i].logit;
	/* p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p) */
	threshold = (double)max + log((double)p);
	for (size_t i = 0; i < s->nc; i++)
		if ((double)s->c[i].logit >= threshold)
			s->c[kept++] = s->c[i];
	s->nc = kept ? kept : 1;
}

/* Runs the chain up to (not including) the draw; returns 1 when greedy chose c[0]. */
static int run_chain(struct kvfpga_sampler *s, const float *logits)
{
	const struct kvfpga_sampler_params *p = &s->p;

	memcpy(s->work, logits, (size_t)s->vocab * sizeof(*s->work));
	apply_penalties(s);
	if (p->temperature <= 0.0f) {
		uint32_t best = 0;

		for (uint32_t i = 1; i < s->vocab; i++)
			if (s->work[i] > s->work[best])
				best = i;
		s->c[0].id = best;
		s->c[0].logit = s->work[best];
		s->nc = 1;
		s->sorted = true;
		return 1;
	}
	for (uint32_t i = 0; i < s->vocab; i++) {
		s->c[i].logit = s->work[i];
		s->c[i].id = i;
	}
	s->nc = s->vocab;
	s->sorted = false;
	if (p->top_k)
		top_k(s, p->top_k);
	if (p->top_p < 1.0f)
		top_p(s, p->top_p);
	if (p->min_p > 0.0f)
		min_p(s, p->min_p);
	for (size_t i = 0; i < s->nc; i++)
		s->c[i].logit /= p->temperature;
	return 0;
}

static bool logits_ok(const float *logits, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (isnan(logits[i]))
			return false;
	return true;
}

int kvfpga_sampler_sample(struct kvfpga_sampler *s, const float *logits, uint32_t *token)
{
	double sum = 0.0, r, cum = 0.0;
	float max;

	if (!s || !logits || !token || !logits_ok(logits, s->vocab))
		return -EINVAL;
	if (run_chain(s, logits)) {
		*token = s->c[0].id;
		return 0;
	}
	max = s->c[0].logit;
	for (size_t i = 1; i < s->nc; i++)
		if (s->c[i].logit > max)
			max = s->c[i].logit;
	for (size_t i = 0; i < s->nc; i++)
		sum += exp((double)s->c[i].logit - max);
	r = rng_uniform(s->rng) * sum;
	for (size_t i = 0; i < s->nc; i++) {
		cum += exp((double)s->c[i].logit - max);
		if (r < cum) {
			*token = s->c[i].id;
			return 0;
		}
	}
	*token = s->c[s->nc - 1].id; /* rounding left r at the very top */
	return 0;
}

int kvfpga_sampler_candidates(struct kvfpga_sampler *s, const float *logits, uint32_t *ids,
                              size_t max, size_t *n)
{
	if (!s || !logits || (!ids && max) || !n || !logits_ok(logits, s->vocab))
		return -EINVAL;
	run_chain(s, logits);
	sort_cands(s);
	*n = s->nc;
	if (s->nc > max)
		return -ENOSPC;
	for (size_t i = 0; i < s->nc; i++)
		ids[i] = s->c[i].id;
	return 0;
}
