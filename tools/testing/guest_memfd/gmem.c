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
	TEST(fragmented_bound),
	TEST(alloc_failure),
	TEST(clear_race),
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
