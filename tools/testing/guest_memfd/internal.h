/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * internal.h
 *
 * Userland shim for virt/kvm/guest_memfd/internal.h. The include guard is
 * the kernel header's, so including this first replaces it when state.c is
 * built here (the tools/testing/vma pattern).
 */
#ifndef __KVM_GMEM_INTERNAL_H
#define __KVM_GMEM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "maple-shared.h"
#include <linux/xarray.h>
#include <linux/maple_tree.h>
#include <linux/bitmap.h>
#include <linux/find.h>
#include <linux/overflow.h>
#include <linux/math.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/slab.h>
#include <asm/barrier.h>

#ifndef pgoff_t
#define pgoff_t unsigned long
#endif

/* Kinds of stub: no-ops (lockdep), customised (the allocator, alloc.c). */
#define lockdep_assert_held(l)		((void)(l))
#define lockdep_assert_held_write(l)	((void)(l))
#define lockdep_is_held(l)		((void)(l), 1)

#ifndef SLAB_ACCOUNT
#define SLAB_ACCOUNT			0
#endif

/* Fully ordered atomic bit operations, as in the kernel. */
static inline bool test_and_set_bit(long nr, unsigned long *addr)
{
	unsigned long mask = BIT_MASK(nr);

	return __atomic_fetch_or(addr + BIT_WORD(nr), mask, __ATOMIC_SEQ_CST) & mask;
}

static inline bool test_and_clear_bit(long nr, unsigned long *addr)
{
	unsigned long mask = BIT_MASK(nr);

	return __atomic_fetch_and(addr + BIT_WORD(nr), ~mask, __ATOMIC_SEQ_CST) & mask;
}

#ifndef clear_bit
#define clear_bit(nr, addr)		((void)test_and_clear_bit((nr), (addr)))
#endif
#ifndef set_bit
#define set_bit(nr, addr)		((void)test_and_set_bit((nr), (addr)))
#endif

#ifndef atomic_dec
#define atomic_dec(x)			uatomic_dec(x)
#endif
/*
 * Userspace atomics give no ordering guarantee beyond their own; order the
 * preceding atomic RMW against later accesses with a full barrier.
 */
#define smp_mb__after_atomic()		smp_mb()

static inline void bitmap_set(unsigned long *map, unsigned int start,
			      unsigned int nbits)
{
	while (nbits--)
		__set_bit(start++, map);
}

/* alloc.c: a counting allocator that can fail the Nth allocation. */
void *kvmalloc(size_t size, gfp_t gfp);
void kvfree(const void *p);
void kmem_cache_destroy(struct kmem_cache *cachep);

static inline void *kvzalloc(size_t size, gfp_t gfp)
{
	return kvmalloc(size, gfp | __GFP_ZERO);
}

static inline void *kvmalloc_array(size_t n, size_t size, gfp_t gfp)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return kvmalloc(bytes, gfp);
}

static inline void *kvcalloc(size_t n, size_t size, gfp_t gfp)
{
	return kvmalloc_array(n, size, gfp | __GFP_ZERO);
}

/* Single-threaded harness: a reader never waits for a writer. */
static inline void cpu_relax(void)
{
}

/* First byte of [@start, @start + @bytes) that is not @c, or NULL. */
static inline void *memchr_inv(const void *start, int c, size_t bytes)
{
	const unsigned char *p = start;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (p[i] != (unsigned char)c)
			return (void *)&p[i];
	return NULL;
}

#include "../../../virt/kvm/guest_memfd/state.h"

#endif /* __KVM_GMEM_INTERNAL_H */
