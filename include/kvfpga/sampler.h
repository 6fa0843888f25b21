/* SPDX-License-Identifier: MIT */
/*
 * Token sampler: a fixed chain in llama.cpp's default order
 *
 *   penalties -> top_k -> top_p -> min_p -> temperature -> sample
 *
 * penalties  over the last penalty_last_n accepted tokens: a token seen
 *            c > 0 times has its logit divided by repeat_penalty when
 *            positive (multiplied when negative), then reduced by
 *            c * frequency_penalty + presence_penalty.
 * top_k      keeps the k highest logits (0: off); ties go to the lower id.
 * top_p      keeps the smallest highest-first prefix whose softmax mass
 *            (before temperature) reaches top_p (1: off).
 * min_p      keeps tokens whose probability is >= min_p times the best
 *            one's (0: off).
 * temperature divides the logits; <= 0 means greedy (argmax after
 *            penalties; ties go to the lower id) and skips the rest.
 * sample     draws from the softmax of what is left with the sampler's
 *            own PRNG (xoshiro256**, seeded from seed with splitmix64),
 *            so a seed gives the same tokens on every run and machine.
 *
 * Every filter keeps at least one token.  A sampler is used by one thread
 * at a time.
 */
#ifndef KVFPGA_SAMPLER_H
#define KVFPGA_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvfpga_sampler;

struct kvfpga_sampler_params {
	float temperature;       /* default 0.8 */
	uint32_t top_k;          /* default 40 */
	float top_p;             /* default 0.95 */
	float min_p;             /* default 0.05 */
	float repeat_penalty;    /* default 1.0 (off) */
	float frequency_penalty; /* default 0 */
	float presence_penalty;  /* default 0 */
	uint32_t penalty_last_n; /* default 64 */
	uint64_t seed;           /* default 0 */
};

void kvfpga_sampler_params_init(struct kvfpga_sampler_params *params);

/* -EINVAL for a parameter out of range (NaN, top_p outside (0,1], ...). */
int kvfpga_sampler_create(const struct kvfpga_sampler_params *params, uint32_t vocab_size,
                          struct kvfpga_sampler **out);
void kvfpga_sampler_free(struct kvfpga_sampler *s);

/* Choose a token from @logits (vocab_size floats, not modified). */
int kvfpga_sampler_sample(struct kvfpga_sampler *s, const float *logits, uint32_t *token);
/* Record a token (prompt or generated) in the penalty window. */
int kvfpga_sampler_accept(struct kvfpga_sampler *s, uint32_t token);
/* Forget the history and reseed. */
void kvfpga_sampler_reset(struct kvfpga_sampler *s, uint64_t seed);

/*
 * Candidates surviving the chain for @logits, without drawing: ids in
 * descending order of final logit; *@n is their count (at most @max
 * written; -ENOSPC if more survive).  Greedy gives the one argmax.
 */
int kvfpga_sampler_candidates(struct kvfpga_sampler *s, const float *logits, uint32_t *ids,
                              size_t max, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_SAMPLER_H */
