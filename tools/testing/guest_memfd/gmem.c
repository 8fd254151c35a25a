// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Userspace harness for virt/kvm/guest_memfd/state.c, built against the real
 * lib/maple_tree.c like tools/testing/vma does for mm/vma.c.
 *
 * Usage: ./gmem [-s seed] [-n random-ops] [-v]
 *   GMEM_SEED and GMEM_OPS in the environment work as well.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

/* The shim first: its include guard replaces the kernel's internal.h. */
#include "internal.h"
#include "alloc.h"

#include "../../../virt/kvm/guest_memfd/state.c"
#include "../../../virt/kvm/guest_memfd/missing.c"

static unsigned long long seed;
static unsigned long random_ops = 1000000;

static void gmem_test_fail(void *ctx, const char *file, int line,
			   const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "Assert FAILED at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

#define gmem_test_seed(ctx)		((void)(ctx), seed)
#define GMEM_TEST_RANDOM_OPS		(random_ops)
#define GMEM_TEST_FAIL_INJECT
#define gmem_test_fail_nth(n)		gmem_alloc_fail_nth(n)
#define gmem_test_fail_pending()	gmem_alloc_fail_pending()

#include "../../../virt/kvm/guest_memfd/state_test.h"

/* Harness only: lockless clears racing with sets and lookups. */
struct race {
	struct gt_file *f;
	pgoff_t base;
	int id;
	bool stop;		/* READ_ONCE()/WRITE_ONCE() */
};

static void *race_clearer(void *arg)
{
	struct race *rc = arg;
	unsigned long n = 0;
	pgoff_t i;

	rcu_register_thread();
	while (!READ_ONCE(rc->stop)) {
		for (i = rc->id; i < 4 * B2M; i += 2)
			n += kvm_gmem_state_clear_missing_one(&rc->f->s,
							      rc->base + i) != 0;
	}
	rcu_unregister_thread();
	return (void *)n;
}

static bool test_clear_race(void *ctx)
{
	struct race rc[2];
	pthread_t th[2];
	struct gt_file f;
	unsigned int o, round, k;
	pgoff_t base = B1G - 2 * B2M, i;

	if (!gt_check_eq(ctx, gt_open(&f, 2 * B1G, 0), 0))
		return false;
	for (k = 0; k < 2; k++) {
		rc[k] = (struct race){ .f = &f, .base = base, .id = k };
		pthread_create(&th[k], NULL, race_clearer, &rc[k]);
	}
	for (round = 0; round < 300; round++) {
		pgoff_t s = base + (round * 37) % (4 * B2M);

		pgoff_t e = min(s + 1 + round % 700, base + 4 * B2M);

		if (!gt_check_eq(ctx, gt_set_missing(&f, s, e), 0))
			return false;
		kvm_gmem_state_lookup(&f.s, base, 18, &o);
	}
	for (k = 0; k < 2; k++) {
		WRITE_ONCE(rc[k].stop, true);
		pthread_join(th[k], NULL);
	}
	/* Quiescent: every summary bit must match its block exactly. */
	for (i = 0; i < 4 * B2M; i++)
		kvm_gmem_state_clear_missing_one(&f.s, base + i);
	for (i = base; i < base + 4 * B2M; i += B2M) {
		if (!gt_check_eq(ctx, kvm_gmem_state_lookup(&f.s, i, 9, &o), 0))
			return false;
		if (!gt_check_eq(ctx, o, 9))
			return false;
	}
	kvm_gmem_state_lookup(&f.s, 0, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;
	kvm_gmem_state_lookup(&f.s, B1G, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;
	gt_close(&f);
	return true;
}

/*
 * Harness only: lockless lookups and range walks racing with updates that
 * move 1G blocks between uniform and mixed, and 2M blocks between values
 * and chunks, in the tree and in the leaves. Every read of a probe page
 * must return a state the page had between the last update that finished
 * before the read and the last one that started before it ended.
 */
#define RR_PROBES	64
#define RR_OPS		20000UL
#define RR_READERS	3

struct reader_race {
	struct gt_file f;
	pgoff_t nr;
	pgoff_t probe[RR_PROBES];
	u8 *hist;		/* [op][probe]: state after update op */
	unsigned long started;	/* smp_store_release()/smp_load_acquire() */
	unsigned long done;
	bool stop;
	unsigned long bad;
};

static void *rr_reader(void *arg)
{
	struct reader_race *rr = arg;
	unsigned long it = 0, bad = 0, d0, s1, k;
	unsigned int p, st, o;
	pgoff_t run_end;
	bool seen;

	rcu_register_thread();
	while (!READ_ONCE(rr->stop)) {
		p = (it * 7 + (unsigned long)pthread_self()) % RR_PROBES;
		/* Pairs with the writer's release of done: hist[d0] is final. */
		d0 = smp_load_acquire(&rr->done);
		switch (it++ % 3) {
		case 0:
			st = kvm_gmem_state_lookup(&rr->f.s, rr->probe[p], 18, &o);
			break;
		case 1:
			st = kvm_gmem_state_range(&rr->f.s, rr->probe[p],
						  rr->probe[p] + 1, &run_end);
			break;
		default:
			st = kvm_gmem_state_range(&rr->f.s, rr->probe[p], rr->nr,
						  &run_end);
			break;
		}
		/* Pairs with the writer's release of started: hist[s1] is set. */
		s1 = smp_load_acquire(&rr->started);
		seen = false;
		for (k = d0; k <= s1 && !seen; k++)
			seen = rr->hist[k * RR_PROBES + p] == st;
		bad += !seen;
	}
	rcu_unregister_thread();
	__atomic_add_fetch(&rr->bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static bool test_reader_race(void *ctx)
{
	struct reader_race *rr = calloc(1, sizeof(*rr));
	struct gt_rand r = { .s = seed ? seed : 1 };
	pthread_t th[RR_READERS];
	unsigned long op, k;
	unsigned int p;
	u8 *page = NULL;
	bool ok = false;
	pgoff_t i;

	if (!rr)
		return false;
	/*
	 * A last 1G block of 500 2M blocks, which only the tree describes:
	 * readers race with single stores that split, rebalance and span
	 * live tree nodes, as well as with the 1G leaves.
	 */
	rr->nr = 2 * B1G + 500 * B2M + 3;
	rr->hist = calloc((RR_OPS + 1) * RR_PROBES, 1);
	page = calloc(rr->nr, 1);
	if (!rr->hist || !page || !gt_check_eq(ctx, gt_open(&rr->f, rr->nr, 0), 0))
		goto free;
	/* Probes at and around 1G and 2M boundaries, and anywhere. */
	for (p = 0; p < RR_PROBES; p++) {
		i = gt_rand_below(&r, rr->nr);
		if (p < RR_PROBES / 2)
			i = round_down(i, p < RR_PROBES / 4 ? B1G : B2M);
		i += gt_rand_below(&r, 3);
		i -= min_t(pgoff_t, i, gt_rand_below(&r, 2));
		rr->probe[p] = min(i, rr->nr - 1);
	}

	for (k = 0; k < RR_READERS; k++)
		pthread_create(&th[k], NULL, rr_reader, rr);
	for (op = 1; op <= RR_OPS; op++) {
		unsigned int set = gt_rand_below(&r, 4);
		unsigned int clear = gt_rand_below(&r, 4);
		unsigned int kind = gt_rand_below(&r, 100);
		pgoff_t s, e, c;

		if (kind < 10) {
			/* Whole 1G blocks: merged mixed ranges break apart. */
			s = round_down(gt_rand_below(&r, rr->nr), B1G);
			e = min(s + B1G * (1 + gt_rand_below(&r, 3)), rr->nr);
		} else if (kind < 55) {
			/* Near a probe: chunks made, changed and merged. */
			c = rr->probe[gt_rand_below(&r, RR_PROBES)];
			s = c - min_t(pgoff_t, c, gt_rand_below(&r, 40));
			e = min(s + 1 + gt_rand_below(&r, kind < 40 ? 64 : 3 * B2M),
				rr->nr);
		} else {
			s = gt_rand_pos(&r, rr->nr);
			e = min(s + gt_rand_len(&r), rr->nr);
		}
		for (p = 0; p < RR_PROBES; p++) {
			u8 v = page[rr->probe[p]];

			if (rr->probe[p] >= s && rr->probe[p] < e)
				v = (v | set) & ~clear & KVM_GMEM_STATE_MASK;
			rr->hist[op * RR_PROBES + p] = v;
		}
		/* The expected states before the update can start. */
		smp_store_release(&rr->started, op);
		if (gt_update_raw(&rr->f, s, e, set, clear) < 0)
			break;
		for (i = s; i < e; i++)
			page[i] = (page[i] | set) & ~clear & KVM_GMEM_STATE_MASK;
		/* The update is complete before readers rely on it. */
		smp_store_release(&rr->done, op);
	}
	WRITE_ONCE(rr->stop, true);
	for (k = 0; k < RR_READERS; k++)
		pthread_join(th[k], NULL);
	ok = gt_check_eq(ctx, op, RR_OPS + 1) && gt_check_eq(ctx, rr->bad, 0);
	gt_close(&rr->f);
free:
	free(page);
	free(rr->hist);
	free(rr);
	return ok;
}

static bool test_no_leaks(void *ctx)
{
	struct gmem_alloc_stats st;

	int i;

	/* Freeing an old tree queues its nodes' RCU frees: flush a few times. */
	for (i = 0; i < 4; i++)
		rcu_barrier();
	gmem_alloc_stats(&st);
	/* Only the chunk and maple node caches' bookkeeping may be left. */
	if (!gt_check_eq(ctx, st.live, 0))
		return false;
	return true;
}

struct gmem_test {
	const char *name;
	bool (*fn)(void *ctx);
};

#define TEST(x) { #x, test_##x }

static const struct gmem_test tests[] = {
	TEST(init_sizes),
	TEST(diagrams),
	TEST(boundaries),
	TEST(huge_files),
	TEST(userfault),
	TEST(iterator),
	TEST(leaves),
	TEST(fragmented_bound),
	TEST(alloc_failure),
	TEST(clear_race),
	TEST(reader_race),
	TEST(random),
	TEST(no_leaks),
};

int main(int argc, char **argv)
{
	int opt, run = 0, passed = 0, failed = 0;
	const char *only = NULL;
	unsigned int i;

	seed = getenv("GMEM_SEED") ? strtoull(getenv("GMEM_SEED"), NULL, 0) :
				     (unsigned long long)time(NULL) * 2654435761ULL;
	if (getenv("GMEM_OPS"))
		random_ops = strtoul(getenv("GMEM_OPS"), NULL, 0);
	while ((opt = getopt(argc, argv, "s:n:t:")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			random_ops = strtoul(optarg, NULL, 0);
			break;
		case 't':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-s seed] [-n ops] [-t test]\n",
				argv[0]);
			return 2;
		}
	}

	rcu_register_thread();
	maple_tree_init();
	if (kvm_gmem_state_cache_init()) {
		fprintf(stderr, "cache init failed\n");
		return 1;
	}
	printf("random seed %llu (%lu ops; rerun with -s %llu)\n", seed,
	       random_ops, seed);

	for (i = 0; i < ARRAY_SIZE(tests); i++) {
		struct timespec a, b;
		bool ok;

		if (only && strcmp(only, tests[i].name) &&
		    strcmp(tests[i].name, "no_leaks"))
			continue;
		clock_gettime(CLOCK_MONOTONIC, &a);
		ok = tests[i].fn(NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		run++;
		if (ok)
			passed++;
		else
			failed++;
		printf("%-20s %s (%.2f s)\n", tests[i].name,
		       ok ? "ok" : "FAILED",
		       (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
		fflush(stdout);
	}

	kvm_gmem_state_cache_exit();
	rcu_unregister_thread();
	printf("%d tests run, %d passed, %d failed\n", run, passed, failed);
	printf("%d passed, %d failed, 0 skipped\n", passed, failed);
	return failed ? 1 : 0;
}
