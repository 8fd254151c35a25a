/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one lookup: per-inode faultability ranges and userfault bits of a
 * guest_memfd file.
 *
 * Every consumer of guest_memfd page state asks kvm_gmem_state_lookup()
 * and nothing else.
 *
 * Faultability lives in a maple tree of page ranges. Inside the file an
 * entry is never NULL: it is xa_mk_value(state) for a range of whole 2M
 * blocks with one state (state 0, private, included; the last block may be
 * cut short by the end of the file). A whole 1G block whose pages differ is
 * one entry that sends readers to its leaf in the 1G table: a byte per 2M
 * block, and for a 2M block whose pages differ a chunk holding 2 bits per
 * page. Files too large for the 1G table, and the partial 1G block at the
 * end of a file, keep such chunks in the tree, one per 2M block. Beyond the
 * file the tree is NULL. The layout is canonical: it depends only on the
 * page states, never on the history of operations, and fragmentation costs
 * at most one chunk per 2M block. A byte per 1G block caches whether the
 * whole block has one state, so that most lookups of a uniform 1G block
 * need no tree walk.
 *
 * Userfault ("missing") bits live beside it: one bit per page in 32 KiB
 * leaves of 1G each, allocated on first set, plus a summary bit per 2M
 * block and per 1G block.
 */
#ifndef __KVM_GMEM_STATE_H
#define __KVM_GMEM_STATE_H

#include <linux/types.h>
#include <linux/bitops.h>
#include <linux/gfp_types.h>
#include <linux/compiler.h>
#include <linux/maple_tree.h>
#include <linux/rcupdate.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>

/* Host may fault the page in; KVM maps it as shared. */
#define KVM_GMEM_STATE_SHARED		0x1u
/* The guest has agreed to share the page (pKVM model). */
#define KVM_GMEM_STATE_GUEST_SHARED	0x2u
/* Number of stored state bits per page; chunks hold this many per page. */
#define KVM_GMEM_STATE_BITS		2
#define KVM_GMEM_STATE_MASK		((1u << KVM_GMEM_STATE_BITS) - 1)
/* Lookup result only: the page's contents are not here yet. */
#define KVM_GMEM_STATE_MISSING		0x80u

/* Allocations of the state map are charged to the file's creator. */
#define KVM_GMEM_STATE_GFP		GFP_KERNEL_ACCOUNT

#define KVM_GMEM_STATE_ORDER_2M		9
#define KVM_GMEM_STATE_ORDER_1G		18
#define KVM_GMEM_BLOCK_PAGES		BIT(KVM_GMEM_STATE_ORDER_2M)
#define KVM_GMEM_GIG_PAGES		BIT(KVM_GMEM_STATE_ORDER_1G)
#define KVM_GMEM_BLOCKS_PER_GIG		(KVM_GMEM_GIG_PAGES / KVM_GMEM_BLOCK_PAGES)

/*
 * Largest file whose 1G state table (and userfault bits) can be kept, in
 * 1G units (1 PiB).
 */
#define KVM_GMEM_MAX_GIGS		BIT(20)

struct kvm_gmem_state_tree;
struct kvm_gmem_blk_leaf;
struct kvm_gmem_uf;

/**
 * struct kvm_gmem_state - page state of one guest_memfd inode
 * @tree: faultability ranges; replaced as a whole by a new copy whenever
 *	an update needs a store that allocates (see state.c)
 * @lock: the lock that orders writers (the mapping's invalidate_lock)
 * @nr_pages: file size in pages
 * @uf: userfault bits, NULL until the first page is set missing
 * @uf_lock: orders summary bit updates against the lockless clear
 * @uf_waiters: number of tasks waiting for a missing page (see
 *	kvm_gmem_state_wait_prepare())
 * @gig_state: per 1G block of the file, the state plus one if @tree holds
 *	a single value entry over the whole block, else 0; written by writers
 *	after the tree, read locklessly by kvm_gmem_state_lookup(). NULL for
 *	files larger than KVM_GMEM_MAX_GIGS.
 * @gig_blk: per 1G block, NULL until the block first stops being
 *	uniform, then its leaf: per 2M block the state plus one if the block
 *	has one state, else 0 and the block's chunk; while the 1G block is
 *	not uniform, @tree holds one entry over all of it and the leaf is
 *	the only place its 2M blocks are described
 * @nr_chunks: number of per-page chunks, in @tree and in the leaves
 * @nr_uf_leaves: number of allocated 1G userfault leaves
 * @nr_blk_leaves: number of allocated @gig_blk leaves
 */
struct kvm_gmem_state {
	struct kvm_gmem_state_tree __rcu *tree;
	struct rw_semaphore *lock;
	pgoff_t nr_pages;
	u8 *gig_state;
	struct kvm_gmem_blk_leaf **gig_blk;
	struct kvm_gmem_uf *uf;
	spinlock_t uf_lock;	/* summary bits: set vs lockless clear */
	atomic_t uf_waiters;
	unsigned long nr_chunks;
	unsigned long nr_uf_leaves;
	unsigned long nr_blk_leaves;
};

/**
 * struct kvm_gmem_state_stats - where the metadata bytes go
 * @tree_entries: number of tree entries in the file (values and chunks)
 * @tree_nodes: maple tree nodes
 * @chunks: per-page chunks
 * @uf_leaves: allocated 1G userfault leaves
 * @bytes: total bytes of metadata (leaf nodes are counted exactly,
 *	internal nodes estimated)
 */
struct kvm_gmem_state_stats {
	unsigned long tree_entries;
	unsigned long tree_nodes;
	unsigned long chunks;
	unsigned long uf_leaves;
	unsigned long bytes;
};

/**
 * kvm_gmem_state_cache_init() - take a reference on the chunk cache
 *
 * Call before any kvm_gmem_state_init(), e.g. from kvm_gmem_init(). The
 * first call creates the cache. Calls and kvm_gmem_state_cache_exit() must
 * not run concurrently (they run from module and KUnit suite init/exit).
 *
 * Return: 0 or -ENOMEM.
 */
int kvm_gmem_state_cache_init(void);

/**
 * kvm_gmem_state_cache_exit() - drop a reference on the chunk cache
 *
 * The last reference waits for pending RCU frees and destroys the cache;
 * drop it after the last kvm_gmem_state_destroy().
 */
void kvm_gmem_state_cache_exit(void);

/**
 * kvm_gmem_state_init() - set up the state of a file of @nr_pages pages
 * @s: the state to initialise
 * @lock: lock held for write by every writer (the invalidate_lock)
 * @nr_pages: file size in pages, at least 1
 * @state: initial state of every page (KVM_GMEM_STATE_* bits)
 *
 * Return: 0, -EINVAL for a bad argument, or -ENOMEM. On -ENOMEM @s is
 * left zeroed, so @s->nr_pages == 0 says there is nothing to destroy.
 */
int kvm_gmem_state_init(struct kvm_gmem_state *s, struct rw_semaphore *lock,
			pgoff_t nr_pages, unsigned int state);

/**
 * kvm_gmem_state_destroy() - free everything @s holds
 * @s: the state
 *
 * No reader or writer may use @s any more; memory reachable by RCU readers
 * is freed after a grace period.
 */
void kvm_gmem_state_destroy(struct kvm_gmem_state *s);

/**
 * kvm_gmem_state_update() - set and clear state bits over a range
 * @s: the state
 * @start: first page
 * @end: page after the last one, at most the file size
 * @set: bits to set (state |= @set)
 * @clear: bits to clear (state &= ~@clear), applied after @set
 *
 * Either the whole range changes or, on failure, nothing does.
 *
 * Context: the caller holds @s->lock for write. May sleep.
 * Return: 1 if a page changed state, 0 if every page had its new state
 * already, -EINVAL for a bad range or bit, or -ENOMEM.
 */
int kvm_gmem_state_update(struct kvm_gmem_state *s, pgoff_t start,
			  pgoff_t end, unsigned int set, unsigned int clear);

/*
 * kvm_gmem_state_lookup() and kvm_gmem_state_lookup_attrs() in one: @mask
 * is KVM_GMEM_STATE_MASK, with or without KVM_GMEM_STATE_MISSING (the
 * only optional bit): whether the result, and the order of the block it
 * reports, take the missing bits into account.
 */
unsigned int __kvm_gmem_state_lookup(struct kvm_gmem_state *s, pgoff_t index,
				     unsigned int max_order,
				     unsigned int *order, unsigned int mask);

/**
 * kvm_gmem_state_lookup() - the one lookup
 * @s: the state
 * @index: the page, below the file size
 * @max_order: largest order the caller can use (e.g. its mapping level)
 * @order: if not NULL, receives the largest order in {0, 9, 18}, at most
 *	@max_order, such that the naturally aligned block of that order around
 *	@index lies in the file, has one state and has no missing page
 *
 * Context: any; takes the RCU read lock itself.
 * Return: the page's KVM_GMEM_STATE_* bits, KVM_GMEM_STATE_MISSING included.
 */
static inline unsigned int kvm_gmem_state_lookup(struct kvm_gmem_state *s,
						 pgoff_t index,
						 unsigned int max_order,
						 unsigned int *order)
{
	return __kvm_gmem_state_lookup(s, index, max_order, order,
				       KVM_GMEM_STATE_MASK | KVM_GMEM_STATE_MISSING);
}

/**
 * kvm_gmem_state_lookup_attrs() - the lookup without the missing bits
 * @s: the state
 * @index: the page, below the file size
 * @max_order: largest order the caller can use
 * @order: if not NULL, receives the largest order, at most @max_order, of
 *	the aligned block around @index that has one shared/private state,
 *	missing pages or not
 *
 * For decisions about what backs a block (hugetlb split and merge), which
 * missing pages do not change: contents arrive in place.
 *
 * Context: any; takes the RCU read lock itself.
 * Return: the page's KVM_GMEM_STATE_* bits without KVM_GMEM_STATE_MISSING.
 */
static inline unsigned int
kvm_gmem_state_lookup_attrs(struct kvm_gmem_state *s, pgoff_t index,
			    unsigned int max_order, unsigned int *order)
{
	return __kvm_gmem_state_lookup(s, index, max_order, order,
				       KVM_GMEM_STATE_MASK);
}

/**
 * kvm_gmem_state_range() - the maximal uniform run starting at an index
 * @s: the state
 * @index: first page of the run
 * @end: stop the run at this page at the latest
 * @run_end: receives the page after the run (at most @end)
 *
 * Pages [@index, *@run_end) have the returned state (missing bit
 * included), and page *@run_end, if below @end, has another one.
 *
 * Context: any; takes the RCU read lock itself. Results are stable only
 * under @s->lock.
 * Return: the KVM_GMEM_STATE_* bits of the run.
 */
unsigned int kvm_gmem_state_range(struct kvm_gmem_state *s, pgoff_t index,
				  pgoff_t end, pgoff_t *run_end);

/**
 * struct kvm_gmem_state_iter - cursor of kvm_gmem_state_for_each_range()
 * @index: first page of the current run
 * @run_end: page after the current run
 * @end: page after the last one of the walk
 * @state: KVM_GMEM_STATE_* bits of the current run
 */
struct kvm_gmem_state_iter {
	pgoff_t index;
	pgoff_t run_end;
	pgoff_t end;
	unsigned int state;
};

/* Start a walk of [@start, @end) with @it; for the iterator macro. */
static inline struct kvm_gmem_state_iter *
kvm_gmem_state_iter_start(struct kvm_gmem_state_iter *it, pgoff_t start,
			  pgoff_t end)
{
	it->index = start;
	it->run_end = start;
	it->end = end;
	return it;
}

/* Advance @it to the next run; false when the walk is done. */
static inline bool kvm_gmem_state_iter_next(struct kvm_gmem_state *s,
					    struct kvm_gmem_state_iter *it)
{
	it->index = it->run_end;
	if (it->index >= it->end)
		return false;
	it->state = kvm_gmem_state_range(s, it->index, it->end, &it->run_end);
	return true;
}

/**
 * kvm_gmem_state_for_each_range - walk maximal uniform runs of a range
 * @s: the state
 * @it: a struct kvm_gmem_state_iter; the current run is [@it->index,
 *	@it->run_end) with state @it->state
 * @start: first page
 * @end: page after the last one
 */
#define kvm_gmem_state_for_each_range(s, it, start, end)			\
	for (struct kvm_gmem_state_iter *__kvm_gmem_it =			\
		kvm_gmem_state_iter_start((it), (start), (end));		\
	     kvm_gmem_state_iter_next((s), __kvm_gmem_it);)

/**
 * kvm_gmem_state_stats() - count the metadata of @s
 * @s: the state
 * @stats: receives the counts
 *
 * Context: the caller holds @s->lock.
 */
void kvm_gmem_state_stats(struct kvm_gmem_state *s,
			  struct kvm_gmem_state_stats *stats);

#endif /* __KVM_GMEM_STATE_H */
