// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Benchmark of virt/kvm/guest_memfd/state.c against an xarray with one
 * entry per page (the way KVM 6.12 uses kvm->mem_attr_array) and a plain
 * bitmap. Built with -O2 and no sanitizers; never a timed test.
 *
 *   ./bench-gmem table          ns/op, metadata bytes, allocations
 *   ./bench-gmem ops SIZE IMPL OP N
 *                               run one operation kind N times with only
 *                               that loop collected by callgrind (bench.sh
 *                               turns this into instructions per op)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <valgrind/callgrind.h>

#include "internal.h"
#include <linux/radix-tree.h>
#include "alloc.h"
#include "bench.h"

#include "../../../virt/kvm/guest_memfd/state.c"
#include "../../../virt/kvm/guest_memfd/missing.c"

#define GIG	BIT(18)		/* pages */
#define WINDOW	(4 * GIG)	/* the populated window of every file */

static const char * const impl_name[] = { "state", "xarray", "bitmap" };
static const char * const op_name[] = {
	"lookup", "convert", "convert_1g", "lookup_chunk", "uf_clear",
};

struct bench {
	pgoff_t nr;
	pgoff_t base;		/* first page of the window */
	struct rw_semaphore lock;
	struct kvm_gmem_state s;
	struct xarray xa;
	unsigned long *attr_bm;	/* 1 bit per page: shared */
	unsigned long *uf_bm;	/* 1 bit per page: missing */
	pgoff_t *idx;		/* random indices in the window */
};

#define NR_IDX	BIT(16)

static unsigned long rnd_state = 88172645463325252ULL;

static unsigned long rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Per-page attribute store, as kvm_vm_set_mem_attributes() does it. */
static noinline int xa_set_attr(struct xarray *xa, pgoff_t start, pgoff_t end,
				unsigned long attr)
{
	void *entry = attr ? xa_mk_value(attr) : NULL;
	pgoff_t i;

	for (i = start; i < end; i++) {
		if (xa_err(xa_store(xa, i, entry, GFP_KERNEL_ACCOUNT)))
			return -ENOMEM;
	}
	return 0;
}

static noinline unsigned long xa_get_attr(struct xarray *xa, pgoff_t i)
{
	return xa_to_value(xa_load(xa, i));
}

static noinline bool bm_test(unsigned long *bm, pgoff_t i)
{
	return test_bit(i, bm);
}

static noinline bool bm_clear(unsigned long *bm, pgoff_t i)
{
	return test_and_clear_bit(i, bm);
}

/*
 * Both single-page userfault clears are called through one noinline
 * function, so that their call structure and loop overhead are the same:
 * the structure's fast path is a static inline in state.h (as clear_bit()
 * is), its slow path is out of line in state.c.
 */
static noinline enum kvm_gmem_uf_clear state_clear(struct kvm_gmem_state *s,
						   pgoff_t i)
{
	return kvm_gmem_state_clear_missing_one(s, i);
}

static noinline void bm_change(unsigned long *bm, pgoff_t i)
{
	__change_bit(i, bm);
}

/*
 * Every file: private, with the window's every 4th 2M block shared (so the
 * xarray has entries to walk) and, for the userfault clear, all missing.
 */
static void bench_setup(struct bench *b, pgoff_t nr, enum bench_impl impl,
			enum bench_op op)
{
	pgoff_t i;

	memset(b, 0, sizeof(*b));
	b->nr = nr;
	b->base = nr - WINDOW;
	init_rwsem(&b->lock);
	b->idx = malloc(NR_IDX * sizeof(*b->idx));
	for (i = 0; i < NR_IDX; i++)
		b->idx[i] = b->base + rnd() % WINDOW;
	/* lookup_chunk: pages of shared blocks whose first page is private. */
	if (op == OP_LOOKUP_CHUNK) {
		for (i = 0; i < NR_IDX; i++)
			b->idx[i] = b->base + rnd() % (WINDOW / (4 * KVM_GMEM_BLOCK_PAGES)) *
				    4 * KVM_GMEM_BLOCK_PAGES + rnd() % KVM_GMEM_BLOCK_PAGES;
	}

	switch (impl) {
	case IMPL_STATE:
		kvm_gmem_state_init(&b->s, &b->lock, nr, 0);
		down_write(&b->lock);
		for (i = 0; i < WINDOW; i += 4 * KVM_GMEM_BLOCK_PAGES)
			kvm_gmem_state_update(&b->s, b->base + i,
					      b->base + i + KVM_GMEM_BLOCK_PAGES,
					      KVM_GMEM_STATE_SHARED, 0);
		if (op == OP_UF_CLEAR)
			kvm_gmem_state_set_missing(&b->s, b->base, nr);
		for (i = 0; op == OP_LOOKUP_CHUNK && i < WINDOW;
		     i += 4 * KVM_GMEM_BLOCK_PAGES)
			kvm_gmem_state_update(&b->s, b->base + i, b->base + i + 1,
					      0, KVM_GMEM_STATE_SHARED);
		up_write(&b->lock);
		break;
	case IMPL_XARRAY:
		xa_init(&b->xa);
		for (i = 0; i < WINDOW; i += 4 * KVM_GMEM_BLOCK_PAGES)
			xa_set_attr(&b->xa, b->base + i,
				    b->base + i + KVM_GMEM_BLOCK_PAGES, 1);
		if (op == OP_UF_CLEAR) {
			/* Userfault as a second per-page attribute. */
			for (i = b->base; i < nr; i++)
				xa_store(&b->xa, i, xa_mk_value(xa_get_attr(&b->xa, i) | 2),
					 GFP_KERNEL);
		}
		for (i = 0; op == OP_LOOKUP_CHUNK && i < WINDOW;
		     i += 4 * KVM_GMEM_BLOCK_PAGES)
			xa_set_attr(&b->xa, b->base + i, b->base + i + 1, 0);
		break;
	case IMPL_BITMAP:
		b->attr_bm = calloc(BITS_TO_LONGS(nr), sizeof(long));
		b->uf_bm = calloc(BITS_TO_LONGS(nr), sizeof(long));
		for (i = 0; i < WINDOW; i += 4 * KVM_GMEM_BLOCK_PAGES)
			bitmap_set(b->attr_bm, b->base + i, KVM_GMEM_BLOCK_PAGES);
		if (op == OP_UF_CLEAR)
			memset(b->uf_bm + BIT_WORD(b->base), 0xff, WINDOW / 8);
		for (i = 0; op == OP_LOOKUP_CHUNK && i < WINDOW;
		     i += 4 * KVM_GMEM_BLOCK_PAGES)
			__clear_bit(b->base + i, b->attr_bm);
		break;
	default:
		break;
	}
}

static void bench_teardown(struct bench *b, enum bench_impl impl)
{
	if (impl == IMPL_STATE)
		kvm_gmem_state_destroy(&b->s);
	else if (impl == IMPL_XARRAY)
		xa_destroy(&b->xa);
	free(b->attr_bm);
	free(b->uf_bm);
	free(b->idx);
}

/* Benchmark sink: written with WRITE_ONCE() so the work is not optimised out. */
static unsigned long sink;

/* Run @n operations of one kind. */
static void bench_run(struct bench *b, enum bench_impl impl, enum bench_op op,
		      unsigned long n)
{
	unsigned long k, acc = 0;
	unsigned int o;

	for (k = 0; k < n; k++) {
		pgoff_t i = b->idx[k % NR_IDX];

		switch (op * NR_IMPLS + impl) {
		case OP_LOOKUP * NR_IMPLS + IMPL_STATE:
		case OP_LOOKUP_CHUNK * NR_IMPLS + IMPL_STATE:
			acc += kvm_gmem_state_lookup(&b->s, i, 18, &o) + o;
			break;
		case OP_LOOKUP * NR_IMPLS + IMPL_XARRAY:
		case OP_LOOKUP_CHUNK * NR_IMPLS + IMPL_XARRAY:
			acc += xa_get_attr(&b->xa, i);
			break;
		case OP_LOOKUP * NR_IMPLS + IMPL_BITMAP:
		case OP_LOOKUP_CHUNK * NR_IMPLS + IMPL_BITMAP:
			acc += bm_test(b->attr_bm, i);
			break;
		case OP_UF_CLEAR * NR_IMPLS + IMPL_STATE:
			i = b->base + k % WINDOW;
			acc += state_clear(&b->s, i);
			break;
		case OP_UF_CLEAR * NR_IMPLS + IMPL_XARRAY:
			i = b->base + k % WINDOW;
			acc += xa_set_attr(&b->xa, i, i + 1,
					   xa_get_attr(&b->xa, i) & ~2UL);
			break;
		case OP_UF_CLEAR * NR_IMPLS + IMPL_BITMAP:
			i = b->base + k % WINDOW;
			acc += bm_clear(b->uf_bm, i);
			break;
		case OP_CONVERT * NR_IMPLS + IMPL_STATE:
			/* Toggle one page: private <-> shared. */
			down_write(&b->lock);
			if (kvm_gmem_state_lookup(&b->s, i, 0, NULL))
				kvm_gmem_state_update(&b->s, i, i + 1, 0,
						      KVM_GMEM_STATE_SHARED);
			else
				kvm_gmem_state_update(&b->s, i, i + 1,
						      KVM_GMEM_STATE_SHARED, 0);
			up_write(&b->lock);
			break;
		case OP_CONVERT * NR_IMPLS + IMPL_XARRAY:
			xa_set_attr(&b->xa, i, i + 1, xa_get_attr(&b->xa, i) ^ 1);
			break;
		case OP_CONVERT * NR_IMPLS + IMPL_BITMAP:
			bm_change(b->attr_bm, i);
			break;
		case OP_CONVERT_1G * NR_IMPLS + IMPL_STATE:
			i = b->base + (k % 4) * GIG;
			down_write(&b->lock);
			kvm_gmem_state_update(&b->s, i, i + GIG,
					      k & 4 ? 0 : KVM_GMEM_STATE_SHARED,
					      k & 4 ? KVM_GMEM_STATE_SHARED : 0);
			up_write(&b->lock);
			break;
		case OP_CONVERT_1G * NR_IMPLS + IMPL_XARRAY:
			i = b->base + (k % 4) * GIG;
			xa_set_attr(&b->xa, i, i + GIG, k & 4 ? 0 : 1);
			break;
		case OP_CONVERT_1G * NR_IMPLS + IMPL_BITMAP:
			i = b->base + (k % 4) * GIG;
			if (k & 4)
				bitmap_clear(b->attr_bm, i, GIG);
			else
				bitmap_set(b->attr_bm, i, GIG);
			break;
		}
	}
	WRITE_ONCE(sink, acc);
}

static unsigned long op_count(enum bench_op op, enum bench_impl impl)
{
	if (op == OP_CONVERT_1G)
		return impl == IMPL_XARRAY ? 8 : 64;
	if (op == OP_CONVERT && impl == IMPL_XARRAY)
		return 200000;
	return 1000000;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Metadata bytes per GiB with every other page of a 1 GiB window differing. */
static void bench_memory(pgoff_t nr, enum bench_impl impl, bool missing,
			 double *kib_per_gib)
{
	struct gmem_alloc_stats a, z;
	struct rw_semaphore lock;
	struct kvm_gmem_state s;
	struct xarray xa;
	pgoff_t base = nr - GIG, i;

	init_rwsem(&lock);
	rcu_barrier();
	gmem_alloc_stats(&a);
	if (impl == IMPL_STATE) {
		kvm_gmem_state_init(&s, &lock, nr, 0);
		down_write(&lock);
		for (i = base; i < nr; i += 2) {
			if (missing)
				kvm_gmem_state_set_missing(&s, i, i + 1);
			else
				kvm_gmem_state_update(&s, i, i + 1,
						      KVM_GMEM_STATE_SHARED, 0);
		}
		up_write(&lock);
	} else if (impl == IMPL_XARRAY) {
		xa_init(&xa);
		for (i = base; i < nr; i += 2)
			xa_store(&xa, i, xa_mk_value(1), GFP_KERNEL);
	}
	rcu_barrier();
	gmem_alloc_stats(&z);
	if (impl == IMPL_BITMAP)
		*kib_per_gib = (missing ? 1 : KVM_GMEM_STATE_BITS) * GIG / 8 / 1024.0;
	else
		*kib_per_gib = (z.live_bytes - a.live_bytes) / 1024.0;
	if (impl == IMPL_STATE) {
		struct kvm_gmem_state_stats st;

		down_read(&lock);
		kvm_gmem_state_stats(&s, &st);
		up_read(&lock);
		printf("    state stats: %lu entries, %lu nodes (est.), %lu chunks,",
		       st.tree_entries, st.tree_nodes, st.chunks);
		printf(" %lu uf leaves, %lu bytes (est.)\n",
		       st.uf_leaves, st.bytes);
		kvm_gmem_state_destroy(&s);
	} else if (impl == IMPL_XARRAY) {
		xa_destroy(&xa);
	}
}

static void table(void)
{
	static const pgoff_t sizes[] = { 1UL << 28, 1UL << 20 };
	static const char * const size_name[] = { "1 TiB", "4 GiB" };
	unsigned int si, impl, op;

	for (si = 0; si < 2; si++) {
		printf("\n%s file (window of 4 GiB at its end; every 4th 2M block shared)\n",
		       size_name[si]);
		printf("  %-12s %14s %14s %14s\n", "ns/op", impl_name[0],
		       impl_name[1], impl_name[2]);
		for (op = 0; op < NR_OPS; op++) {
			printf("  %-12s", op_name[op]);
			for (impl = 0; impl < NR_IMPLS; impl++) {
				struct gmem_alloc_stats a, z;
				unsigned long n = op_count(op, impl);
				struct bench b;
				double t;

				bench_setup(&b, sizes[si], impl, op);
				gmem_alloc_stats(&a);
				t = now();
				bench_run(&b, impl, op, n);
				t = now() - t;
				gmem_alloc_stats(&z);
				printf(" %14.1f", t * 1e9 / n);
				if (op == OP_UF_CLEAR && impl == IMPL_STATE &&
				    z.allocs != a.allocs)
					printf(" (%ld allocs!)", z.allocs - a.allocs);
				bench_teardown(&b, impl);
			}
			printf("\n");
		}
		for (op = 0; op < 2; op++) {
			printf("  %-12s", op ? "KiB/GiB uf" : "KiB/GiB shr");
			for (impl = 0; impl < NR_IMPLS; impl++) {
				double kib;

				if (op && impl == IMPL_XARRAY) {
					printf(" %14s", "(as shr)");
					continue;
				}
				bench_memory(sizes[si], impl, op, &kib);
				printf(" %14.1f", kib);
			}
			printf("\n");
		}
	}

	/* Allocations during single-page userfault clears. */
	{
		struct gmem_alloc_stats a, z;
		struct bench b;

		bench_setup(&b, 1UL << 28, IMPL_STATE, OP_UF_CLEAR);
		gmem_alloc_stats(&a);
		bench_run(&b, IMPL_STATE, OP_UF_CLEAR, 1000000);
		gmem_alloc_stats(&z);
		printf("\nallocations during 1000000 single-page userfault clears: %ld\n",
		       z.allocs - a.allocs);
		bench_teardown(&b, IMPL_STATE);
	}
}

int main(int argc, char **argv)
{
	rcu_register_thread();
	maple_tree_init();
	radix_tree_init();
	kvm_gmem_state_cache_init();

	if (argc == 6 && !strcmp(argv[1], "ops")) {
		pgoff_t nr = strtoul(argv[2], NULL, 0);
		enum bench_impl impl = atoi(argv[3]);
		enum bench_op op = atoi(argv[4]);
		unsigned long n = strtoul(argv[5], NULL, 0);
		struct bench b;

		bench_setup(&b, nr, impl, op);
		bench_run(&b, impl, op, 2);	/* warm up */
		CALLGRIND_ZERO_STATS;
		CALLGRIND_TOGGLE_COLLECT;
		bench_run(&b, impl, op, n);
		CALLGRIND_TOGGLE_COLLECT;
		CALLGRIND_DUMP_STATS_AT("ops");
		bench_teardown(&b, impl);
		return 0;
	}
	table();
	return 0;
}
