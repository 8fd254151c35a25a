// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd backed by hugetlb pages (GUEST_MEMFD_FLAG_HUGETLB): the glue
 * between the guest_memfd inode and mm/guestmem_hugetlb.c.
 *
 * The whole file is reserved in the pool at creation. Every folio is one
 * huge page at a naturally aligned index; KVM maps it at the largest level
 * the folio, the memslot's alignment and the page state allow (see
 * kvm_gmem_mapping_order()).
 *
 * Files the host can map (GUEST_MEMFD_FLAG_MMAP) keep one rule: a 2M block
 * with a shared page in it is held as single pages, and a 1G huge page
 * with such a block in it is held as 2M folios (the rest of it stays 2M
 * and KVM still maps it 2M). Splits happen lazily, one level at a time:
 * when a lookup finds a folio that breaks the rule (a new folio, or one
 * whose pages turned shared) and eagerly for the range of a conversion to
 * shared. A conversion to private merges every block it leaves private
 * throughout back into a 2M folio and, when all of a 1G huge page is 2M
 * folios again, into the 1G folio, and zaps KVM's mappings of the block
 * so that KVM maps it huge again. The host only ever maps single pages.
 *
 * Splits and merges wait out references that others hold for a moment
 * (a vCPU fault between looking up a folio and mapping it), for at most
 * KVM_GMEM_HUGETLB_TRIES ticks. A merge that still fails leaves the block
 * split, which is correct, only slower, and is tried again by the next
 * conversion to private of the block.
 */
#include <linux/guestmem.h>
#include <linux/kvm_host.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/sched/signal.h>

#include "gmem.h"

/* The flag and the page size field; the size is checked at setup. */
#define KVM_GMEM_HUGETLB_FLAGS \
	(GUEST_MEMFD_FLAG_HUGETLB | \
	 (GUEST_MEMFD_HUGETLB_MASK << GUEST_MEMFD_HUGETLB_SHIFT))

/**
 * kvm_gmem_hugetlb_flags() - the hugetlb bits of the valid creation flags
 *
 * Built only where the kernel can back guest_memfd with hugetlb pages
 * (CONFIG_GUESTMEM_HUGETLB); gmem.h has stubs for the others.
 *
 * Return: GUEST_MEMFD_FLAG_HUGETLB and the page size field.
 */
u64 kvm_gmem_hugetlb_flags(void)
{
	return KVM_GMEM_HUGETLB_FLAGS;
}

/**
 * kvm_gmem_hugetlb_check_extension() - KVM_CAP_GUEST_MEMFD_HUGETLB
 * @cap: the capability asked for
 * @flags: the creation flags the VM (or some VM type) supports
 *
 * Return: for KVM_CAP_GUEST_MEMFD_HUGETLB where GUEST_MEMFD_FLAG_HUGETLB
 * is valid, the page sizes it takes that KVM can map, at most 1G, as a
 * mask of 1 << log2(size); else 0.
 */
int kvm_gmem_hugetlb_check_extension(long cap, u64 flags)
{
	if (cap != KVM_CAP_GUEST_MEMFD_HUGETLB ||
	    !(flags & GUEST_MEMFD_FLAG_HUGETLB))
		return 0;
	return guestmem_hugetlb_page_sizes() &
	       GENMASK(PUD_SHIFT, PAGE_SHIFT + 1);
}

/**
 * kvm_gmem_hugetlb_setup() - give a new inode its hugetlb backing
 * @gi: the inode, not visible to anyone yet
 * @size: the file size
 * @flags: the creation flags, already checked against the valid mask
 *
 * Return: 0 (also without GUEST_MEMFD_FLAG_HUGETLB); -EINVAL for a page
 * size field without the flag, a page size without a hugetlb pool or a
 * size that is not a multiple of it; -ENOMEM if the pool cannot reserve
 * the whole file.
 */
int kvm_gmem_hugetlb_setup(struct kvm_gmem_inode *gi, loff_t size, u64 flags)
{
	unsigned int shift = (flags >> GUEST_MEMFD_HUGETLB_SHIFT) &
			     GUEST_MEMFD_HUGETLB_MASK;
	struct guestmem_hugetlb *gh;

	if (!(flags & GUEST_MEMFD_FLAG_HUGETLB))
		return shift ? -EINVAL : 0;

	/* Only files with shared pages ever split a folio. */
	gh = guestmem_hugetlb_create(shift, size,
				     flags & (GUEST_MEMFD_FLAG_MMAP |
					      GUEST_MEMFD_FLAG_INIT_SHARED));
	if (IS_ERR(gh))
		return PTR_ERR(gh);
	gi->hugetlb = gh;
	/* Huge folios, and pieces of them that are 2M, are large folios. */
	mapping_set_large_folios(gi->vfs_inode.i_mapping);
	return 0;
}

/**
 * kvm_gmem_hugetlb_teardown() - drop an inode's hugetlb backing
 * @gi: the inode, its page cache already empty
 *
 * The reservation returns to the pool when the last folio is freed.
 */
void kvm_gmem_hugetlb_teardown(struct kvm_gmem_inode *gi)
{
	if (gi->hugetlb)
		guestmem_hugetlb_destroy(gi->hugetlb);
	gi->hugetlb = NULL;
}

/* Ticks a split or merge waits for others' passing references. */
#define KVM_GMEM_HUGETLB_TRIES	250

/* Whether the block of @order around @index is private throughout. */
static bool kvm_gmem_hugetlb_private(struct kvm_gmem_inode *gi,
				     pgoff_t index, unsigned int order)
{
	unsigned int st;

	return !(kvm_gmem_state_lookup_attrs(&gi->state, index, order, &st) &
		 KVM_GMEM_STATE_SHARED) && st >= order;
}

/* Split the folio at @index one level, waiting out passing references. */
static int kvm_gmem_hugetlb_split(struct kvm_gmem_inode *gi, pgoff_t index)
{
	int tries = KVM_GMEM_HUGETLB_TRIES, ret;

	for (;;) {
		ret = guestmem_hugetlb_split(gi->hugetlb,
					     gi->vfs_inode.i_mapping, index);
		if (ret != -EAGAIN || !tries--)
			return ret;
		if (fatal_signal_pending(current))
			return -EINTR;
		schedule_timeout_uninterruptible(1);
	}
}

/**
 * kvm_gmem_hugetlb_get_folio() - the locked folio of an index, new or not
 * @gi: an inode with hugetlb backing
 * @index: the page index
 *
 * For files that own their state, a folio whose block has a shared page is
 * split first (see the top of this file), so that a shared page is always
 * a folio of its own.
 *
 * Return: the locked folio holding @index, with a reference, or an
 * ERR_PTR().
 */
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_inode *gi,
					 pgoff_t index)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct mempolicy *mpol;
	unsigned int order;
	struct folio *folio;
	pgoff_t ilx;
	int ret;

	for (;;) {
		folio = filemap_lock_folio(mapping, index);
		if (IS_ERR(folio)) {
			order = guestmem_hugetlb_order(gi->hugetlb);
			/* The huge page's policy, whichever page faults. */
			mpol = kvm_gmem_get_mpol(gi, round_down(index, 1UL << order),
						 order, &ilx);
			folio = guestmem_hugetlb_get_folio(gi->hugetlb, mapping,
							   index, mpol, ilx);
			mpol_cond_put(mpol);
		}
		/*
		 * A poisoned hugetlb folio is split too, once, so that its
		 * poison narrows to the exact pages (see guestmem_hugetlb.c).
		 */
		if (IS_ERR(folio) || !kvm_gmem_has_state(gi) ||
		    !folio_test_large(folio) ||
		    (kvm_gmem_hugetlb_private(gi, folio->index,
					      folio_order(folio)) &&
		     !(folio_test_hugetlb(folio) &&
		       folio_test_hwpoison(folio))))
			return folio;

		folio_unlock(folio);
		folio_put(folio);
		ret = kvm_gmem_hugetlb_split(gi, index);
		if (ret)
			return ERR_PTR(ret);
	}
}

/**
 * kvm_gmem_hugetlb_split_range() - make every page of a range its own folio
 * @gi: an inode with hugetlb backing, its invalidate lock held exclusive
 * @start: first page
 * @end: page after the last one
 *
 * For a conversion to shared: splits the huge folios that overlap the
 * range down to single pages, 1G ones only as far as the range needs.
 * Folios not allocated yet are split when they are (see
 * kvm_gmem_hugetlb_get_folio()).
 *
 * Return: 0, -EAGAIN if a folio stayed referenced, -ENOMEM or -EINTR.
 * Splits done before an error stay: they change no page and no state.
 */
int kvm_gmem_hugetlb_split_range(struct kvm_gmem_inode *gi, pgoff_t start,
				 pgoff_t end)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio_batch fbatch;
	pgoff_t index = start, large;
	unsigned int i;
	int ret;

	lockdep_assert_held_write(&mapping->invalidate_lock);
	folio_batch_init(&fbatch);
	while (filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		large = end;
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];

			if (folio_test_large(folio)) {
				large = max(folio->index, start);
				break;
			}
		}
		folio_batch_release(&fbatch);
		if (large == end)
			continue;
		/* Split it, then look at its pieces from there on. */
		ret = kvm_gmem_hugetlb_split(gi, large);
		if (ret)
			return ret;
		index = large;
		cond_resched();
	}
	return 0;
}

/* Merge one block, with KVM's mappings of it zapped meanwhile. */
static void kvm_gmem_hugetlb_merge_block(struct kvm_gmem_inode *gi,
					 pgoff_t base, unsigned int order)
{
	int tries = KVM_GMEM_HUGETLB_TRIES, ret;
	pgoff_t end = base + (1UL << order);

	kvm_gmem_invalidate_begin(gi, base, end);
	for (;;) {
		ret = guestmem_hugetlb_merge(gi->hugetlb,
					     gi->vfs_inode.i_mapping, base,
					     order);
		if (ret != -EAGAIN || !tries-- || fatal_signal_pending(current))
			break;
		schedule_timeout_uninterruptible(1);
	}
	kvm_gmem_invalidate_end(gi, base, end);
}

/**
 * kvm_gmem_hugetlb_merge_range() - merge private blocks of a range back
 * @gi: an inode with hugetlb backing, its invalidate lock held exclusive
 * @start: first page
 * @end: page after the last one
 *
 * For a conversion to private, after the state says so: every split 2M
 * block overlapping the range whose pages are all private becomes one 2M
 * folio again, then every 1G huge page overlapping it whose blocks are
 * all 2M folios becomes its hugetlb folio again. A block that cannot be
 * merged now stays split.
 */
void kvm_gmem_hugetlb_merge_range(struct kvm_gmem_inode *gi, pgoff_t start,
				  pgoff_t end)
{
	unsigned int horder = guestmem_hugetlb_order(gi->hugetlb), order, i;
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio_batch fbatch;
	pgoff_t index, last, base;
	unsigned long n;

	lockdep_assert_held_write(&mapping->invalidate_lock);
	folio_batch_init(&fbatch);
	for (order = PMD_ORDER; order <= horder; order += horder - PMD_ORDER) {
		n = 1UL << order;
		index = round_down(start, n);
		last = round_up(end, n) - 1;
		while (filemap_get_folios(mapping, &index, last, &fbatch)) {
			base = ULONG_MAX;
			for (i = 0; i < folio_batch_count(&fbatch); i++) {
				struct folio *folio = fbatch.folios[i];

				if (folio_order(folio) < order) {
					base = round_down(folio->index, n);
					break;
				}
			}
			folio_batch_release(&fbatch);
			if (base == ULONG_MAX)
				continue;
			if (kvm_gmem_hugetlb_private(gi, base, order))
				kvm_gmem_hugetlb_merge_block(gi, base, order);
			index = base + n;
			if (!index || index > last)
				break;
			cond_resched();
		}
		if (order == horder)
			break;
	}
}

/**
 * kvm_gmem_hugetlb_truncate() - remove whole huge pages from a file
 * @gi: an inode with hugetlb backing, its invalidate lock held exclusive
 * @lstart: first byte, aligned to the huge page size
 * @lend: last byte, inclusive
 *
 * Unmaps and removes the pages and returns the huge pages to the pool,
 * split ones merged back first.
 */
void kvm_gmem_hugetlb_truncate(struct kvm_gmem_inode *gi, loff_t lstart,
			       loff_t lend)
{
	guestmem_hugetlb_truncate(gi->hugetlb, gi->vfs_inode.i_mapping,
				  lstart, lend);
}

/**
 * kvm_gmem_hugetlb_page_size() - the huge page size of an inode
 * @gi: the inode
 *
 * Return: the size of its folios in bytes, PAGE_SIZE without hugetlb.
 */
unsigned long kvm_gmem_hugetlb_page_size(struct kvm_gmem_inode *gi)
{
	return gi->hugetlb ? PAGE_SIZE << guestmem_hugetlb_order(gi->hugetlb) :
			     PAGE_SIZE;
}
