// SPDX-License-Identifier: GPL-2.0-only
/*
 * Missing ("userfault") bits of a guest_memfd inode, for post-copy: see
 * missing.h.  This file owns the bits and their summaries; it calls
 * nothing but the allocator.  The lookups of state.c read them through
 * kvm_gmem_missing_lookup(), kvm_gmem_missing_test() and
 * kvm_gmem_missing_next_change().
 *
 * One bit per page in 1G leaves (32 KiB), a summary bit per 2M block
 * (sum2m, 64 bytes per 1G) and one per 1G block (sum1g). The table of
 * leaves is allocated on the first set and sized for the file (72 bytes per
 * GiB); leaves are allocated on set and freed only on destroy, so the
 * lockless clear needs no RCU.
 *
 * Summary ordering: a summary bit is set if any page bit of its block is
 * set, except transiently while a set or clear of that block is running.
 * Summary bits only change under uf_lock (a spinlock).
 *  - Set (writer lock held): set the page bits, then take uf_lock and set
 *    the summary bits.
 *  - Clear one page (lockless): test_and_clear_bit() the page bit (fully
 *    ordered). If its word became zero, take uf_lock, check the whole
 *    block, and clear the 2M summary bit only if the block is empty, then
 *    the 1G bit only if all its 2M bits are clear.
 *  A set racing with the clear either made its page bits visible before the
 *  clearer checked the block under uf_lock (so the block is not empty and
 *  the summary stays), or takes uf_lock after the clearer dropped it and
 *  sets the summary again. So no set is lost, and between operations the
 *  summary is exact. A reader racing with a clear may see a stale set
 *  summary bit, which only makes it choose a smaller order.
 */
#include "internal.h"
#include "missing.h"

#define GMEM_GFP		KVM_GMEM_STATE_GFP

static inline unsigned long *gmem_uf_leaf(struct kvm_gmem_uf *uf, pgoff_t index)
{
	unsigned long g = index >> KVM_GMEM_STATE_ORDER_1G;

	if (!uf || g >= uf->nr_gigs)
		return NULL;
	/* Pairs with smp_store_release() in set_missing: leaf is zeroed. */
	return smp_load_acquire(&uf->gig[g].bits);
}

bool kvm_gmem_missing_test(struct kvm_gmem_uf *uf, pgoff_t index)
{
	unsigned long *bits = gmem_uf_leaf(uf, index);

	return bits && test_bit(index & (KVM_GMEM_GIG_PAGES - 1), bits);
}

static bool gmem_uf_block_empty(const unsigned long *bits, unsigned long blk)
{
	const unsigned long *w = bits + blk * (KVM_GMEM_BLOCK_PAGES / BITS_PER_LONG);
	unsigned long i, any = 0;

	for (i = 0; i < KVM_GMEM_BLOCK_PAGES / BITS_PER_LONG; i++)
		any |= READ_ONCE(w[i]);
	return !any;
}

/* Clear the summary bits of block @blk of gig @g if it is empty. */
static void gmem_uf_trim_summary(struct kvm_gmem_state *s,
				 struct kvm_gmem_uf *uf, unsigned long g,
				 unsigned long blk)
{
	struct kvm_gmem_uf_gig *gig = &uf->gig[g];

	lockdep_assert_held(&s->uf_lock);
	if (!gmem_uf_block_empty(gig->bits, blk))
		return;
	clear_bit(blk, gig->sum2m);
	if (bitmap_empty(gig->sum2m, KVM_GMEM_BLOCKS_PER_GIG))
		clear_bit(g, uf->sum1g);
}

static struct kvm_gmem_uf *gmem_uf_alloc(struct kvm_gmem_state *s)
{
	unsigned long nr_gigs = DIV_ROUND_UP(s->nr_pages, KVM_GMEM_GIG_PAGES);
	struct kvm_gmem_uf *uf;
	size_t size;

	if (nr_gigs > KVM_GMEM_MAX_GIGS)
		return NULL;
	size = struct_size(uf, gig, nr_gigs) +
	       BITS_TO_LONGS(nr_gigs) * sizeof(unsigned long);
	uf = kvzalloc(size, GMEM_GFP);
	if (!uf)
		return NULL;
	uf->nr_gigs = nr_gigs;
	uf->sum1g = (unsigned long *)&uf->gig[nr_gigs];
	return uf;
}

static size_t gmem_uf_table_bytes(unsigned long nr_gigs)
{
	return sizeof(struct kvm_gmem_uf) +
	       nr_gigs * sizeof(struct kvm_gmem_uf_gig) +
	       BITS_TO_LONGS(nr_gigs) * sizeof(unsigned long);
}

/*
 * Set bits [@a, @b) of @bits. Bits outside the range may be cleared
 * concurrently, so partial words use atomic bit operations; a whole word
 * belongs to the range and can simply be written.
 */
static void gmem_bits_set(unsigned long *bits, unsigned long a, unsigned long b)
{
	while (a < b && a % BITS_PER_LONG)
		set_bit(a++, bits);
	for (; a + BITS_PER_LONG <= b; a += BITS_PER_LONG)
		WRITE_ONCE(bits[BIT_WORD(a)], ~0UL);
	while (a < b)
		set_bit(a++, bits);
}

static void gmem_bits_clear(unsigned long *bits, unsigned long a,
			    unsigned long b)
{
	while (a < b && a % BITS_PER_LONG)
		clear_bit(a++, bits);
	for (; a + BITS_PER_LONG <= b; a += BITS_PER_LONG)
		WRITE_ONCE(bits[BIT_WORD(a)], 0);
	while (a < b)
		clear_bit(a++, bits);
}

int kvm_gmem_state_set_missing(struct kvm_gmem_state *s, pgoff_t start,
			       pgoff_t end)
{
	unsigned long g, g0, g1, nr_new = 0;
	unsigned long *fresh = NULL, *leaf;
	struct kvm_gmem_uf *uf = s->uf;
	bool new_uf = false;

	lockdep_assert_held_write(s->lock);
	if (start >= end || end > s->nr_pages)
		return -EINVAL;

	if (!uf) {
		uf = gmem_uf_alloc(s);
		if (!uf)
			return -ENOMEM;
		new_uf = true;
	}

	/* Allocate all leaves first, chained through their first word. */
	g0 = start >> KVM_GMEM_STATE_ORDER_1G;
	g1 = (end - 1) >> KVM_GMEM_STATE_ORDER_1G;
	for (g = g0; g <= g1; g++) {
		if (uf->gig[g].bits)
			continue;
		leaf = kvzalloc(KVM_GMEM_UF_LEAF_BYTES, GMEM_GFP);
		if (!leaf)
			goto nomem;
		leaf[0] = (unsigned long)fresh;
		fresh = leaf;
		nr_new++;
	}

	for (g = g0; g <= g1; g++) {
		pgoff_t base = g << KVM_GMEM_STATE_ORDER_1G;
		pgoff_t a = max(start, base) - base;
		pgoff_t b = min(end, base + KVM_GMEM_GIG_PAGES) - base;

		leaf = uf->gig[g].bits;
		if (!leaf) {
			leaf = fresh;
			fresh = (unsigned long *)leaf[0];
			leaf[0] = 0;
			/* Publish the zeroed leaf; pairs with gmem_uf_leaf(). */
			smp_store_release(&uf->gig[g].bits, leaf);
		}
		gmem_bits_set(leaf, a, b);
	}
	if (new_uf)
		/* Publish the table and its leaves to lockless readers. */
		smp_store_release(&s->uf, uf);
	s->nr_uf_leaves += nr_new;

	/* Page bits first, then the summary (see the top of this file). */
	spin_lock(&s->uf_lock);
	for (g = g0; g <= g1; g++) {
		pgoff_t base = g << KVM_GMEM_STATE_ORDER_1G;
		pgoff_t a = max(start, base) - base;
		pgoff_t b = min(end, base + KVM_GMEM_GIG_PAGES) - base;
		unsigned long blk0 = a >> KVM_GMEM_STATE_ORDER_2M;
		unsigned long blk1 = (b - 1) >> KVM_GMEM_STATE_ORDER_2M;

		bitmap_set(uf->gig[g].sum2m, blk0, blk1 - blk0 + 1);
		set_bit(g, uf->sum1g);
	}
	spin_unlock(&s->uf_lock);
	return 0;

nomem:
	while (fresh) {
		leaf = fresh;
		fresh = (unsigned long *)leaf[0];
		kvfree(leaf);
	}
	if (new_uf)
		kvfree(uf);
	return -ENOMEM;
}

bool kvm_gmem_state_clear_missing(struct kvm_gmem_state *s, pgoff_t start,
				  pgoff_t end)
{
	struct kvm_gmem_uf *uf = s->uf;
	unsigned long g, g0, g1;

	lockdep_assert_held_write(s->lock);
	if (!uf || start >= end || end > s->nr_pages)
		return false;

	g0 = start >> KVM_GMEM_STATE_ORDER_1G;
	g1 = (end - 1) >> KVM_GMEM_STATE_ORDER_1G;
	for (g = g0; g <= g1; g++) {
		pgoff_t base = g << KVM_GMEM_STATE_ORDER_1G;
		pgoff_t a = max(start, base) - base;
		pgoff_t b = min(end, base + KVM_GMEM_GIG_PAGES) - base;
		struct kvm_gmem_uf_gig *gig = &uf->gig[g];
		unsigned long blk0, blk1;

		if (!gig->bits)
			continue;
		gmem_bits_clear(gig->bits, a, b);

		blk0 = a >> KVM_GMEM_STATE_ORDER_2M;
		blk1 = (b - 1) >> KVM_GMEM_STATE_ORDER_2M;
		spin_lock(&s->uf_lock);
		/* Only the edge blocks can still hold set bits. */
		gmem_uf_trim_summary(s, uf, g, blk0);
		gmem_uf_trim_summary(s, uf, g, blk1);
		if (blk1 > blk0 + 1) {
			bitmap_clear(gig->sum2m, blk0 + 1, blk1 - blk0 - 1);
			if (bitmap_empty(gig->sum2m, KVM_GMEM_BLOCKS_PER_GIG))
				clear_bit(g, uf->sum1g);
		}
		spin_unlock(&s->uf_lock);
	}
	return atomic_read(&s->uf_waiters) > 0;
}

/*
 * The slow path of kvm_gmem_state_clear_missing_one(): page @index was
 * cleared and its bitmap word read back as zero, so its 2M block (and then
 * its 1G block) may have become empty.
 */
noinline void __kvm_gmem_state_trim_missing(struct kvm_gmem_state *s,
					    pgoff_t index)
{
	struct kvm_gmem_uf *uf = READ_ONCE(s->uf);

	spin_lock(&s->uf_lock);
	gmem_uf_trim_summary(s, uf, index >> KVM_GMEM_STATE_ORDER_1G,
			     (index & (KVM_GMEM_GIG_PAGES - 1)) >>
			     KVM_GMEM_STATE_ORDER_2M);
	spin_unlock(&s->uf_lock);
}

void kvm_gmem_state_wait_prepare(struct kvm_gmem_state *s)
{
	atomic_inc(&s->uf_waiters);
	/* Order the count before the caller's re-check of the bit. */
	smp_mb__after_atomic();
}

void kvm_gmem_state_wait_finish(struct kvm_gmem_state *s)
{
	atomic_dec(&s->uf_waiters);
}

/*
 * The userfault part of a lookup: KVM_GMEM_STATE_MISSING if page @index is
 * missing, and @order trimmed to what has no missing page.
 */
noinline unsigned int kvm_gmem_missing_lookup(struct kvm_gmem_uf *uf,
					     pgoff_t index,
					     unsigned int *order)
{
	unsigned long g = index >> KVM_GMEM_STATE_ORDER_1G;
	unsigned long *bits;

	/*
	 * A clear 1G summary bit means no page of the 1G block is missing
	 * (see the summary ordering above): one word read skips the rest.
	 */
	if (!test_bit(g, uf->sum1g))
		return 0;
	bits = gmem_uf_leaf(uf, index);
	if (bits && test_bit(index & (KVM_GMEM_GIG_PAGES - 1), bits)) {
		*order = 0;
		return KVM_GMEM_STATE_MISSING;
	}
	if (*order >= KVM_GMEM_STATE_ORDER_2M)
		*order = test_bit((index >> KVM_GMEM_STATE_ORDER_2M) &
				  (KVM_GMEM_BLOCKS_PER_GIG - 1),
				  uf->gig[g].sum2m) ?
			 0 : KVM_GMEM_STATE_ORDER_2M;
	return 0;
}

/*
 * First index in [@pos, @limit) whose missing bit differs from @missing,
 * or @limit.
 */
pgoff_t kvm_gmem_missing_next_change(struct kvm_gmem_uf *uf, pgoff_t pos,
				     pgoff_t limit, bool missing)
{
	if (!uf && !missing)
		return limit;

	while (pos < limit) {
		pgoff_t base = round_down(pos, KVM_GMEM_GIG_PAGES);
		pgoff_t gend = min(base + KVM_GMEM_GIG_PAGES, limit);
		unsigned long *bits = gmem_uf_leaf(uf, pos);
		unsigned long n;

		if (!bits) {
			if (missing)
				return pos;
			pos = gend;
			continue;
		}
		if (missing)
			n = find_next_zero_bit(bits, gend - base, pos - base);
		else
			n = find_next_bit(bits, gend - base, pos - base);
		if (n < gend - base)
			return base + n;
		pos = gend;
	}
	return limit;
}

void kvm_gmem_missing_destroy(struct kvm_gmem_state *s)
{
	struct kvm_gmem_uf *uf = s->uf;
	unsigned long g;

	if (!uf)
		return;
	for (g = 0; g < uf->nr_gigs; g++)
		kvfree(uf->gig[g].bits);
	kvfree(uf);
	s->uf = NULL;
	s->nr_uf_leaves = 0;
}

size_t kvm_gmem_missing_bytes(struct kvm_gmem_state *s)
{
	if (!s->uf)
		return 0;
	return gmem_uf_table_bytes(s->uf->nr_gigs) +
	       s->nr_uf_leaves * KVM_GMEM_UF_LEAF_BYTES;
}
