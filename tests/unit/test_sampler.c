/* SPDX-License-Identifier: MIT */
/* The sampler chain: each filter keeps exactly the right candidates; penalties; seeds. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvfpga/sampler.h"

static struct kvfpga_sampler *make(float temp, uint32_t k, float p, float minp)
{
	struct kvfpga_sampler_params sp;
	struct kvfpga_sampler *s = NULL;

	kvfpga_sampler_params_init(&sp);
	sp.temperature = temp;
	sp.top_k = k;
	sp.top_p = p;
	sp.min_p = minp;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), 0);
	return s;
}

/* Logits whose softmax is 0.4, 0.25, 0.15, 0.1, 0.06, 0.04 for ids 2, 0, 5, 1, 4, 3. */
static void probs_logits(float *l)
{
	l[2] = logf(0.40f);
	l[0] = logf(0.25f);
	l[5] = logf(0.15f);
	l[1] = logf(0.10f);
	l[4] = logf(0.06f);
	l[3] = logf(0.04f);
}

static void expect(struct kvfpga_sampler *s, const float *logits, const uint32_t *want, size_t n)
{
	uint32_t ids[6];
	size_t got = 0;

	ck_assert_int_eq(kvfpga_sampler_candidates(s, logits, ids, 6, &got), 0);
	ck_assert_msg(got == n, "%zu candidates, expected %zu", got, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ids[i] == want[i], "candidate %zu is %u, expected %u", i, ids[i],
		              want[i]);
}

START_TEST(test_filters)
{
	float l[6];
	struct kvfpga_sampler *s;

	probs_logits(l);
	s = make(1.0f, 0, 1.0f, 0.0f); /* nothing filtered */
	expect(s, l, (uint32_t[]){ 2, 0, 5, 1, 4, 3 }, 6);
	kvfpga_sampler_free(s);
	s = make(1.0f, 3, 1.0f, 0.0f);
	expect(s, l, (uint32_t[]){ 2, 0, 5 }, 3);
	kvfpga_sampler_free(s);
	s = make(1.0f, 1, 1.0f, 0.0f);
	expect(s, l, (uint32_t[]){ 2 }, 1);
	kvfpga_sampler_free(s);
	/* top_p: cumulative 0.40, 0.65, 0.80, 0.90, ... */
	s = make(1.0f, 0, 0.64f, 0.0f);
	expect(s, l, (uint32_t[]){ 2, 0 }, 2);
	kvfpga_sampler_free(s);
	s = make(1.0f, 0, 0.66f, 0.0f);
	expect(s, l, (uint32_t[]){ 2, 0, 5 }, 3);
	kvfpga_sampler_free(s);
	s = make(1.0f, 0, 0.1f, 0.0f); /* always at least one */
	expect(s, l, (uint32_t[]){ 2 }, 1);
	kvfpga_sampler_free(s);
	/* min_p: keep p >= min_p * 0.40 */
	s = make(1.0f, 0, 1.0f, 0.26f); /* threshold 0.104 */
	expect(s, l, (uint32_t[]){ 2, 0, 5 }, 3);
	kvfpga_sampler_free(s);
	s = make(1.0f, 0, 1.0f, 0.24f); /* threshold 0.096 */
	expect(s, l, (uint32_t[]){ 2, 0, 5, 1 }, 4);
	kvfpga_sampler_free(s);
	/* top_k 4 first; top_p 0.95 then needs all four survivors (cumulative 0.44, 0.72, 0.89, 1)
	 */
	s = make(1.0f, 4, 0.95f, 0.0f);
	expect(s, l, (uint32_t[]){ 2, 0, 5, 1 }, 4);
	kvfpga_sampler_free(s);
	/* top_p renormalises over top_k's survivors: 0.4/0.65 = 0.615 > 0.6 */
	s = make(1.0f, 2, 0.6f, 0.0f);
	expect(s, l, (uint32_t[]){ 2 }, 1);
	kvfpga_sampler_free(s);
	/* temperature does not change which survive */
	s = make(0.3f, 3, 1.0f, 0.0f);
	expect(s, l, (uint32_t[]){ 2, 0, 5 }, 3);
	kvfpga_sampler_free(s);
}
END_TEST

START_TEST(test_greedy_and_ties)
{
	float l[6] = { 1, 3, 3, 0, -1, 2 };
	struct kvfpga_sampler *s = make(0.0f, 40, 0.95f, 0.05f);
	uint32_t tok = 99, ids[6];
	size_t n;

	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(kvfpga_sampler_sample(s, l, &tok), 0);
		ck_assert_uint_eq(tok, 1); /* tie between 1 and 2: the lower id */
	}
	kvfpga_sampler_free(s);
	s = make(1.0f, 2, 1.0f, 0.0f); /* top_k ties resolved by id too */
	ck_assert_int_eq(kvfpga_sampler_candidates(s, l, ids, 6, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ids[0], 1);
	ck_assert_uint_eq(ids[1], 2);
	ck_assert_int_eq(kvfpga_sampler_candidates(s, l, ids, 1, &n), -ENOSPC);
	ck_assert_uint_eq(n, 2);
	kvfpga_sampler_free(s);
}
END_TEST

static uint32_t greedy_with(float rep, float freq, float pres, uint32_t last_n,
                            const uint32_t *hist, size_t n_hist)
{
	struct kvfpga_sampler_params sp;
	struct kvfpga_sampler *s = NULL;
	float l[6] = { 2.0f, 1.5f, -1.0f, -3.0f, -3.0f, -3.0f };
	uint32_t tok = 99;

	kvfpga_sampler_params_init(&sp);
	sp.temperature = 0.0f;
	sp.repeat_penalty = rep;
	sp.frequency_penalty = freq;
	sp.presence_penalty = pres;
	sp.penalty_last_n = last_n;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), 0);
	for (size_t i = 0; i < n_hist; i++)
		ck_assert_int_eq(kvfpga_sampler_accept(s, hist[i]), 0);
	ck_assert_int_eq(kvfpga_sampler_sample(s, l, &tok), 0);
	kvfpga_sampler_free(s);
	return tok;
}

START_TEST(test_penalties)
{
	const uint32_t zero3[] = { 0, 0, 0 };

	ck_assert_uint_eq(greedy_with(1.0f, 0, 0, 64, zero3, 3), 0);
	ck_assert_uint_eq(greedy_with(1.3f, 0, 0, 64, zero3, 3), 0);    /* 2/1.3 = 1.54 */
	ck_assert_uint_eq(greedy_with(1.4f, 0, 0, 64, zero3, 3), 1);    /* 2/1.4 = 1.43 */
	ck_assert_uint_eq(greedy_with(1.0f, 0.1f, 0, 64, zero3, 3), 0); /* 2 - 0.3 = 1.7 */
	ck_assert_uint_eq(greedy_with(1.0f, 0.2f, 0, 64, zero3, 3), 1); /* 2 - 0.6 = 1.4 */
	ck_assert_uint_eq(greedy_with(1.0f, 0, 0.4f, 64, zero3, 3), 0); /* 2 - 0.4 = 1.6 */
	ck_assert_uint_eq(greedy_with(1.0f, 0, 0.6f, 64, zero3, 3), 1); /* 2 - 0.6 = 1.4 */
	/* A negative logit is multiplied: -1 * 3 keeps token 2 far below. */
	ck_assert_uint_eq(greedy_with(3.0f, 0, 0, 64, (uint32_t[]){ 0, 1, 2 }, 3), 0);
	/* penalty_last_n = 2: token 0 left the window, only 1 is penalised */
	ck_assert_uint_eq(greedy_with(1.0f, 0, 5.0f, 2, (uint32_t[]){ 0, 1, 1 }, 3), 0);
	/* window 3: both penalised (-3, -3.5), so token 2 (-1) wins */
	ck_assert_uint_eq(greedy_with(1.0f, 0, 5.0f, 3, (uint32_t[]){ 0, 1, 1 }, 3), 2);
	/* penalty_last_n = 0 disables penalties */
	ck_assert_uint_eq(greedy_with(2.0f, 1.0f, 1.0f, 0, zero3, 3), 0);
}
END_TEST

START_TEST(test_seed_reproducible)
{
	struct kvfpga_sampler_params sp;
	struct kvfpga_sampler *a = NULL, *b = NULL, *c = NULL;
	float l[6];
	int same_ab = 0, same_ac = 0;

	probs_logits(l);
	kvfpga_sampler_params_init(&sp);
	sp.temperature = 1.0f;
	sp.top_k = 0;
	sp.top_p = 1.0f;
	sp.min_p = 0.0f;
	sp.seed = 42;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &a), 0);
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &b), 0);
	sp.seed = 43;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &c), 0);
	for (int i = 0; i < 200; i++) {
		uint32_t ta, tb, tc;

		ck_assert_int_eq(kvfpga_sampler_sample(a, l, &ta), 0);
		ck_assert_int_eq(kvfpga_sampler_sample(b, l, &tb), 0);
		ck_assert_int_eq(kvfpga_sampler_sample(c, l, &tc), 0);
		same_ab += ta == tb;
		same_ac += ta == tc;
	}
	ck_assert_int_eq(same_ab, 200);
	ck_assert_int_lt(same_ac, 150);
	/* reset to the same seed replays */
	kvfpga_sampler_reset(a, 7);
	kvfpga_sampler_reset(c, 7);
	for (int i = 0; i < 50; i++) {
		uint32_t ta, tc;

		ck_assert_int_eq(kvfpga_sampler_sample(a, l, &ta), 0);
		ck_assert_int_eq(kvfpga_sampler_sample(c, l, &tc), 0);
		ck_assert_uint_eq(ta, tc);
	}
	kvfpga_sampler_free(a);
	kvfpga_sampler_free(b);
	kvfpga_sampler_free(c);
}
END_TEST

/* Frequencies follow softmax(logits / T) over the survivors (fixed seed, 5-sigma bounds). */
START_TEST(test_distribution)
{
	const float temps[2] = { 1.0f, 0.5f };

	for (int t = 0; t < 2; t++) {
		struct kvfpga_sampler_params sp;
		struct kvfpga_sampler *s = NULL;
		float l[6];
		double p[6], z = 0;
		int counts[6] = { 0 };
		const int n = 40000;

		probs_logits(l);
		kvfpga_sampler_params_init(&sp);
		sp.temperature = temps[t];
		sp.top_k = 0;
		sp.top_p = 1.0f;
		sp.min_p = 0.0f;
		sp.seed = 1;
		ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), 0);
		for (int i = 0; i < 6; i++)
			z += (p[i] = exp(l[i] / temps[t]));
		for (int i = 0; i < n; i++) {
			uint32_t tok;

			ck_assert_int_eq(kvfpga_sampler_sample(s, l, &tok), 0);
			ck_assert_uint_lt(tok, 6);
			counts[tok]++;
		}
		for (int i = 0; i < 6; i++) {
			double pi = p[i] / z, sd = sqrt(pi * (1 - pi) / n);

			ck_assert_msg(fabs((double)counts[i] / n - pi) < 5 * sd + 1e-4,
			              "T=%g token %d: %.4f vs %.4f", temps[t], i,
			              (double)counts[i] / n, pi);
		}
		kvfpga_sampler_free(s);
	}
}
END_TEST

START_TEST(test_invalid)
{
	struct kvfpga_sampler_params sp;
	struct kvfpga_sampler *s = NULL;
	float l[6] = { 0 };
	uint32_t tok;

	kvfpga_sampler_params_init(&sp);
	ck_assert_int_eq(kvfpga_sampler_create(NULL, 6, &s), -EINVAL);
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 0, &s), -EINVAL);
	sp.top_p = 0.0f;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), -EINVAL);
	sp.top_p = 0.9f;
	sp.temperature = NAN;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), -EINVAL);
	sp.temperature = 1.0f;
	sp.min_p = 1.5f;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), -EINVAL);
	sp.min_p = 0.0f;
	sp.repeat_penalty = 0.0f;
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), -EINVAL);
	sp.repeat_penalty = 1.0f;
	ck_assert_ptr_null(s);
	ck_assert_int_eq(kvfpga_sampler_create(&sp, 6, &s), 0);
	ck_assert_int_eq(kvfpga_sampler_accept(s, 6), -EINVAL);
	l[3] = NAN;
	ck_assert_int_eq(kvfpga_sampler_sample(s, l, &tok), -EINVAL);
	ck_assert_int_eq(kvfpga_sampler_sample(NULL, l, &tok), -EINVAL);
	kvfpga_sampler_free(s);
	kvfpga_sampler_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("sampler");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_filters);
	tcase_add_test(tc, test_greedy_and_ties);
	tcase_add_test(tc, test_penalties);
	tcase_add_test(tc, test_seed_reproducible);
	tcase_add_test(tc, test_distribution);
	tcase_add_test(tc, test_invalid);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
