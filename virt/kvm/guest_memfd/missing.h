/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Missing ("userfault") bits of a guest_memfd inode, for post-copy: one bit
 * per page beside the shared/private state of state.h, in 32 KiB leaves of
 * 1G each, allocated on first set, plus a summary bit per 2M and per 1G
 * block.  kvm_gmem_state_lookup() reports them as KVM_GMEM_STATE_MISSING
 * and bounds its order by them, so every consumer still makes one lookup.
 *
 * missing.c owns them; userfault.c sets and clears them.
 */
#ifndef __KVM_GMEM_MISSING_H
#define __KVM_GMEM_MISSING_H

#include "state.h"

#define KVM_GMEM_UF_LEAF_BYTES		(KVM_GMEM_GIG_PAGES / 8)

/* Userfault bits of one 1G block. */
struct kvm_gmem_uf_gig {
	unsigned long *bits;	/* 32 KiB, NULL until a page is set */
	unsigned long sum2m[KVM_GMEM_BLOCKS_PER_GIG / BITS_PER_LONG];
};

struct kvm_gmem_uf {
	unsigned long nr_gigs;
	unsigned long *sum1g;	/* points behind gig[] */
	struct kvm_gmem_uf_gig gig[];
};

/* Result of kvm_gmem_state_clear_missing_one(). */
enum kvm_gmem_uf_clear {
	KVM_GMEM_UF_NOT_MISSING = 0,	/* the page was not missing */
	KVM_GMEM_UF_CLEARED,		/* cleared, nobody waits */
	KVM_GMEM_UF_WAKE,		/* cleared, caller must wake waiters */
};

/**
 * kvm_gmem_state_set_missing() - mark a range's contents as missing
 * @s: the state
 * @start: first page
 * @end: page after the last one
 *
 * Allocates userfault leaves as needed; on -ENOMEM nothing changes.
 *
 * Context: the caller holds @s->lock for write. May sleep.
 * Return: 0, -EINVAL or -ENOMEM.
 */
int kvm_gmem_state_set_missing(struct kvm_gmem_state *s, pgoff_t start,
			       pgoff_t end);

/**
 * kvm_gmem_state_clear_missing() - mark a range's contents as present
 * @s: the state
 * @start: first page
 * @end: page after the last one
 *
 * Never allocates. The caller wakes waiters if the result says so.
 *
 * Context: the caller holds @s->lock for write.
 * Return: true if waiters must be woken, false otherwise.
 */
bool kvm_gmem_state_clear_missing(struct kvm_gmem_state *s, pgoff_t start,
				  pgoff_t end);

void __kvm_gmem_state_trim_missing(struct kvm_gmem_state *s, pgoff_t index);

/**
 * kvm_gmem_state_clear_missing_one() - mark one page present (post-copy)
 * @s: the state
 * @index: the page
 *
 * The critical path of post-copy, inline: one atomic bit operation, a
 * summary update (out of line, under @s->uf_lock) only when the page was
 * the last missing one of its word, and one read of the waiter count. No
 * allocation, no sleeping lock, no writer lock; safe against concurrent
 * clears, sets and lookups.
 *
 * Return: whether the page was missing and whether waiters must be woken.
 */
static inline enum kvm_gmem_uf_clear
kvm_gmem_state_clear_missing_one(struct kvm_gmem_state *s, pgoff_t index)
{
	/* Pairs with smp_store_release() of s->uf in set_missing. */
	struct kvm_gmem_uf *uf = smp_load_acquire(&s->uf);
	unsigned long g = index >> KVM_GMEM_STATE_ORDER_1G;
	unsigned long off = index & (KVM_GMEM_GIG_PAGES - 1);
	unsigned long *bits;

	if (!uf || g >= uf->nr_gigs)
		return KVM_GMEM_UF_NOT_MISSING;
	/* Pairs with smp_store_release() of the zeroed leaf in set_missing. */
	bits = smp_load_acquire(&uf->gig[g].bits);
	if (!bits)
		return KVM_GMEM_UF_NOT_MISSING;
	bits += BIT_WORD(off);
	if (!test_and_clear_bit(off % BITS_PER_LONG, bits))
		return KVM_GMEM_UF_NOT_MISSING;

	/*
	 * Of concurrent clears of one word, the last one in the word's
	 * modification order reads it back as zero, so one of them trims the
	 * summary; a stale non-zero read only leaves the summary set.
	 */
	if (unlikely(!READ_ONCE(*bits)))
		__kvm_gmem_state_trim_missing(s, index);

	/* test_and_clear_bit() is fully ordered: see wait_prepare. */
	return atomic_read(&s->uf_waiters) ? KVM_GMEM_UF_WAKE :
					     KVM_GMEM_UF_CLEARED;
}

/**
 * kvm_gmem_state_wait_prepare() - announce a waiter for a missing page
 * @s: the state
 *
 * Call before the final re-check of the missing bit and before sleeping on
 * the caller's wait queue; pairs with the fully ordered bit clear in
 * kvm_gmem_state_clear_missing_one(), so either the waiter sees the page
 * present or the clearer sees the waiter.
 */
void kvm_gmem_state_wait_prepare(struct kvm_gmem_state *s);

/**
 * kvm_gmem_state_wait_finish() - retract a kvm_gmem_state_wait_prepare()
 * @s: the state
 */
void kvm_gmem_state_wait_finish(struct kvm_gmem_state *s);

/* For the lookups of state.c. */
unsigned int kvm_gmem_missing_lookup(struct kvm_gmem_uf *uf, pgoff_t index,
				     unsigned int *order);
bool kvm_gmem_missing_test(struct kvm_gmem_uf *uf, pgoff_t index);
pgoff_t kvm_gmem_missing_next_change(struct kvm_gmem_uf *uf, pgoff_t pos,
				     pgoff_t limit, bool missing);
void kvm_gmem_missing_destroy(struct kvm_gmem_state *s);
size_t kvm_gmem_missing_bytes(struct kvm_gmem_state *s);

#endif /* __KVM_GMEM_MISSING_H */
