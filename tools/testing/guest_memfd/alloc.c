// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Allocator for the guest_memfd harness. Replaces tools/lib/slab.c and the
 * kmem_cache part of tools/testing/shared/linux.c: counts objects and bytes
 * (rounded the way SLUB and the page allocator round them) and can fail the
 * Nth allocation, so every store path can be tested under ENOMEM.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <assert.h>

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <urcu/uatomic.h>

#include "alloc.h"

int nr_allocated;
int preempt_count;
int test_verbose;
int kmalloc_verbose;

struct kmem_cache {
	const char *name;
	unsigned int size;
	unsigned int align;
	void (*ctor)(void *obj);
	long nr_allocated;
};

static long fail_countdown;
static long fail_armed;
static struct gmem_alloc_stats stats;

void gmem_alloc_fail_nth(long n)
{
	uatomic_set(&fail_countdown, n);
	uatomic_set(&fail_armed, n > 0);
}

bool gmem_alloc_fail_pending(void)
{
	return uatomic_read(&fail_countdown) > 0;
}

void gmem_alloc_stats(struct gmem_alloc_stats *st)
{
	st->allocs = uatomic_read(&stats.allocs);
	st->frees = uatomic_read(&stats.frees);
	st->live = uatomic_read(&stats.live);
	st->live_bytes = uatomic_read(&stats.live_bytes);
	st->injected = uatomic_read(&stats.injected);
}

/*
 * Once armed, the Nth allocation and every one after it fail until the test
 * disarms the injection, so a retry inside the code under test (the maple
 * tree retries once) cannot hide the failure. Only the thread that runs
 * the test allocates; frees may come from RCU callbacks.
 */

static bool should_fail(void)
{
	long n;

	if (!uatomic_read(&fail_armed))
		return false;
	n = uatomic_read(&fail_countdown);
	if (n > 1) {
		uatomic_set(&fail_countdown, n - 1);
		return false;
	}
	uatomic_set(&fail_countdown, 0);
	uatomic_inc(&stats.injected);
	return true;
}

static void account(long bytes)
{
	uatomic_inc(&stats.allocs);
	uatomic_inc(&stats.live);
	uatomic_add(&stats.live_bytes, bytes);
}

static void unaccount(long bytes)
{
	uatomic_inc(&stats.frees);
	uatomic_dec(&stats.live);
	uatomic_sub(&stats.live_bytes, bytes);
}

/* What the kernel really hands out for a kmalloc/kvmalloc of @size. */
static size_t kernel_size(size_t size)
{
	static const size_t buckets[] = {
		8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
	};
	size_t i, pages = 4096;

	for (i = 0; i < ARRAY_SIZE(buckets); i++)
		if (size <= buckets[i])
			return buckets[i];
	/* Up to 32 KiB kvmalloc() gets a compound page, beyond vmalloc. */
	if (size <= 32768) {
		while (pages < size)
			pages *= 2;
		return pages;
	}
	return (size + 4095) & ~4095UL;
}

struct kmalloc_hdr {
	size_t size;
	size_t pad;
};

void *kmalloc(size_t size, gfp_t gfp)
{
	struct kmalloc_hdr *h;

	if (should_fail())
		return NULL;
	h = malloc(sizeof(*h) + size);
	assert(h);
	h->size = kernel_size(size);
	if (gfp & __GFP_ZERO)
		memset(h + 1, 0, size);
	account(h->size);
	uatomic_inc(&nr_allocated);
	return h + 1;
}

void kfree(void *p)
{
	struct kmalloc_hdr *h = p;

	if (!p)
		return;
	h--;
	unaccount(h->size);
	uatomic_dec(&nr_allocated);
	free(h);
}

void *kvmalloc(size_t size, gfp_t gfp)
{
	return kmalloc(size, gfp);
}

void kvfree(const void *p)
{
	kfree((void *)p);
}

struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
				     unsigned int align, unsigned int flags,
				     void (*ctor)(void *obj))
{
	struct kmem_cache *c = calloc(1, sizeof(*c));

	assert(c);
	c->name = name;
	c->size = (size + 7) & ~7U;
	c->align = align;
	c->ctor = ctor;
	return c;
}

void kmem_cache_destroy(struct kmem_cache *c)
{
	if (!c)
		return;
	if (uatomic_read(&c->nr_allocated))
		fprintf(stderr, "kmem_cache %s: %ld objects leaked\n", c->name,
			uatomic_read(&c->nr_allocated));
	free(c);
}

static void *cache_alloc(struct kmem_cache *c, gfp_t gfp)
{
	void *p;

	if (c->align) {
		if (posix_memalign(&p, c->align, c->size))
			p = NULL;
	} else {
		p = malloc(c->size);
	}
	assert(p);
	if (c->ctor)
		c->ctor(p);
	else if (gfp & __GFP_ZERO)
		memset(p, 0, c->size);
	uatomic_inc(&c->nr_allocated);
	uatomic_inc(&nr_allocated);
	account(c->size);
	return p;
}

void *kmem_cache_alloc_lru(struct kmem_cache *c, struct list_lru *lru,
			   int gfp)
{
	if (should_fail())
		return NULL;
	return cache_alloc(c, gfp);
}

void kmem_cache_free(struct kmem_cache *c, void *p)
{
	if (!p)
		return;
	uatomic_dec(&c->nr_allocated);
	uatomic_dec(&nr_allocated);
	unaccount(c->size);
	free(p);
}

void kmem_cache_free_bulk(struct kmem_cache *c, size_t size, void **list)
{
	size_t i;

	for (i = 0; i < size; i++)
		kmem_cache_free(c, list[i]);
}

int kmem_cache_alloc_bulk(struct kmem_cache *c, gfp_t gfp, size_t size,
			  void **list)
{
	size_t i;

	if (should_fail())
		return 0;
	for (i = 0; i < size; i++)
		list[i] = cache_alloc(c, gfp);
	return size;
}

/* Hooks the maple tree's debug build expects; not used here. */
void kmem_cache_set_non_kernel(struct kmem_cache *c, unsigned int val)
{
}

void kmem_cache_set_callback(struct kmem_cache *c, void (*callback)(void *))
{
}

void kmem_cache_set_private(struct kmem_cache *c, void *private)
{
}

unsigned long kmem_cache_get_alloc(struct kmem_cache *c)
{
	return c->size * uatomic_read(&c->nr_allocated);
}

void kmem_cache_zero_nr_tallocated(struct kmem_cache *c)
{
}

unsigned long kmem_cache_nr_tallocated(struct kmem_cache *c)
{
	return uatomic_read(&c->nr_allocated);
}

unsigned long kmem_cache_nr_allocated(struct kmem_cache *c)
{
	return uatomic_read(&c->nr_allocated);
}
