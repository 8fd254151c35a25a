// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit suite for the guest_memfd state (state.c). The test bodies are
 * shared with the userspace harness in tools/testing/guest_memfd.
 */
#include <kunit/test.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/random.h>
#include <linux/string.h>

#include "missing.h"

static u64 gmem_kunit_seed;
module_param_named(gmem_state_seed, gmem_kunit_seed, ullong, 0444);
MODULE_PARM_DESC(gmem_state_seed, "Seed of the randomized test (0: random)");

static unsigned long gmem_kunit_ops = 10000;
module_param_named(gmem_state_ops, gmem_kunit_ops, ulong, 0444);
MODULE_PARM_DESC(gmem_state_ops, "Operations of the randomized test");

#define gmem_test_fail(ctx, file, line, fmt, ...)			\
	do {								\
		struct kunit *__test = (ctx);				\
									\
		KUNIT_FAIL(__test, "%s:%d: " fmt, file, line,		\
			   ##__VA_ARGS__);				\
	} while (0)
#define GMEM_TEST_RANDOM_OPS	(gmem_kunit_ops)

static u64 gmem_test_seed(void *ctx)
{
	return gmem_kunit_seed;
}

#include "state_test.h"

#define GMEM_KUNIT(name)						\
static void kunit_##name(struct kunit *test)				\
{									\
	KUNIT_EXPECT_TRUE(test, name(test));				\
}

GMEM_KUNIT(test_init_sizes)
GMEM_KUNIT(test_diagrams)
GMEM_KUNIT(test_boundaries)
GMEM_KUNIT(test_huge_files)
GMEM_KUNIT(test_userfault)
GMEM_KUNIT(test_iterator)
GMEM_KUNIT(test_leaves)
GMEM_KUNIT(test_fragmented_bound)

static void kunit_test_random(struct kunit *test)
{
	if (!gmem_kunit_seed)
		gmem_kunit_seed = get_random_u64();
	kunit_info(test, "seed %llu, %lu ops (kvm.gmem_state_seed=%llu reproduces)\n",
		   gmem_kunit_seed, gmem_kunit_ops, gmem_kunit_seed);
	KUNIT_EXPECT_TRUE(test, test_random(test));
}

static int gmem_state_suite_init(struct kunit_suite *suite)
{
	return kvm_gmem_state_cache_init();
}

static void gmem_state_suite_exit(struct kunit_suite *suite)
{
	kvm_gmem_state_cache_exit();
}

static struct kunit_case gmem_state_cases[] = {
	KUNIT_CASE(kunit_test_init_sizes),
	KUNIT_CASE(kunit_test_diagrams),
	KUNIT_CASE(kunit_test_boundaries),
	KUNIT_CASE(kunit_test_huge_files),
	KUNIT_CASE(kunit_test_userfault),
	KUNIT_CASE(kunit_test_iterator),
	KUNIT_CASE(kunit_test_leaves),
	KUNIT_CASE_SLOW(kunit_test_fragmented_bound),
	KUNIT_CASE_SLOW(kunit_test_random),
	{}
};

static struct kunit_suite gmem_state_suite = {
	.name		= "kvm_gmem_state",
	.suite_init	= gmem_state_suite_init,
	.suite_exit	= gmem_state_suite_exit,
	.test_cases	= gmem_state_cases,
};

kunit_test_suite(gmem_state_suite);

MODULE_DESCRIPTION("KUnit tests for the guest_memfd state lookup");
MODULE_LICENSE("GPL");
