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
 * Files the host can map (GUEST_MEMFD_FLAG_MMAP) keep one rule: every
 * folio holds pages of one state, and the host, which cannot map hugetlb
 * folios, maps only pieces (see guestmem_hugetlb.c). So:
 *
 *  - a huge page that is private throughout stays its hugetlb folio;
 *  - so does a huge page that is shared throughout, until the host looks
 *    a page of it up (a fault, userfaultfd, a missing page filled in):
 *    then it becomes 2M pieces;
 *  - a huge page with pages of both states is held as 2M pieces;
 *  - a 2M piece that is shared throughout stays one piece, which the host
 *    maps with one PMD where its mapping is aligned and no page of the
 *    block is missing, once it is used (up to date); before, the host's
 *    lookup makes it single pages, so that the host fills it page by
 *    page, each page a hole until written (as userfaultfd sees it), and a
 *    vCPU's first access zeroes it whole;
 *  - a 2M block with both states is held as single pages.
 *
 * So shared memory that only the guest uses costs what private memory
 * does: a vCPU's first access zeroes the hugetlb folio whole and KVM maps
 * it whole; the host's first access to it splits it once, into 2M pieces
 * that stay up to date. Memory that the host populates page by page
 * becomes 2M pieces when a conversion merges its blocks.
 *
 * KVM maps a block at the largest order at which the state is uniform,
 * up to the huge page, however the block is split into folios: a huge page
 * is one piece of contiguous memory (kvm_gmem_hugetlb_block_order()). A 1G
 * page that is shared throughout is mapped 1G by KVM and 2M by the host.
 * As a vCPU's first access to a hugetlb folio zeroes all of it, its first
 * access to such a block zeroes the pieces nobody used yet. Because KVM
 * maps across folios, a conversion zaps, after the state changed, every
 * KVM mapping that overlaps its range (convert.c). A split changes no
 * page: KVM's mappings of the memory stay.
 *
 * Splits happen one level at a time, lazily when a lookup finds a folio
 * that breaks the rule (a new folio, a poisoned hugetlb folio, a shared
 * hugetlb folio the host looks up), and eagerly for a conversion, before
 * the state changes: the folios that the conversion would leave mixed. After
 * a conversion, every 2M block of its range that has one state
 * again is merged back into one folio, a private one into the hugetlb
 * folio where the page is 2M, and every 1G page of the range that is
 * private throughout becomes its hugetlb folio again; KVM's mappings of a
 * merged block are zapped so that KVM maps it huge again, the host's of a
 * shared block so that the host maps it with a PMD.
 *
 * Splits and merges wait out references that others hold for a moment
 * (a vCPU fault between looking up a folio and mapping it), for at most
 * KVM_GMEM_HUGETLB_TRIES ticks. A merge that still fails leaves the block
 * split, which is correct, only slower, and is tried again by the next
 * conversion of the block. A page pinned by the host (O_DIRECT, vmsplice)
 * blocks the splits of its 2M block, and with them conversions of the
 * other pages of the block, until it is unpinned.
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

/* The lookup is for the host, which maps only pieces. */
#define KVM_GMEM_HUGETLB_HOST	BIT(0)

/*
 * The order @folio must be split to for the rule at the top of this file,
 * given its state: @attrs of its first page, uniform over a block of order
 * @st; with KVM_GMEM_HUGETLB_HOST in @flags, for the host to map a page of
 * it. Return: PMD_ORDER or 0, or -1 if it may stay as it is.
 */
static int kvm_gmem_hugetlb_split_order(struct folio *folio,
					unsigned int attrs, unsigned int st,
					unsigned int flags)
{
	unsigned int order = folio_order(folio);
	bool hugetlb = folio_test_hugetlb(folio);

	if (!order)
		return -1;
	/*
	 * Mixed states take the next level down; so does a poisoned hugetlb
	 * folio, so that its poison narrows to the exact pages (see
	 * guestmem_hugetlb.c).
	 */
	if (st < order || (hugetlb && folio_test_hwpoison(folio)))
		return order > PMD_ORDER ? PMD_ORDER : 0;
	if (!(attrs & KVM_GMEM_STATE_SHARED))
		return -1;
	/* Shared throughout: whole for KVM; for the host, pieces of 2M... */
	if (!(flags & KVM_GMEM_HUGETLB_HOST))
		return -1;
	if (hugetlb)
		return PMD_ORDER;
	/* ...once used: before, the host fills them page by page. */
	return folio_test_uptodate(folio) ? -1 : 0;
}

/*
 * Split @folio, locked and referenced, to @new_order; the folio is
 * unlocked and released. The host's mappings of a piece go first (it
 * refaults what stays shared); others' passing references are waited out
 * for @tries ticks.
 */
static int kvm_gmem_hugetlb_split(struct kvm_gmem_inode *gi,
				  struct folio *folio, unsigned int new_order,
				  int tries)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	pgoff_t index = folio->index;
	unsigned long nr = folio_nr_pages(folio);
	bool hugetlb = folio_test_hugetlb(folio);
	int ret;

	folio_unlock(folio);
	folio_put(folio);

	for (;;) {
		if (!hugetlb)
			unmap_mapping_pages(mapping, index, nr, false);
		ret = guestmem_hugetlb_split(gi->hugetlb, mapping, index,
					     new_order);
		if (ret != -EAGAIN || !tries--)
			return ret;
		if (fatal_signal_pending(current))
			return -EINTR;
		schedule_timeout_uninterruptible(1);
	}
}

/*
 * The locked folio of @index, new or not, split first if it breaks the
 * rule at the top of this file for the lookup's @flags. A vCPU's first
 * access zeroes the folio it gets whole (kvm_gmem_prepare_folio()), a
 * hugetlb folio shared throughout as a private one.
 */
static struct folio *kvm_gmem_hugetlb_lookup(struct kvm_gmem_inode *gi,
					     pgoff_t index, unsigned int flags)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	int tries = KVM_GMEM_HUGETLB_TRIES, ret, new_order;
	unsigned int order, attrs, st;
	struct mempolicy *mpol;
	struct folio *folio;
	pgoff_t ilx;

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
		if (IS_ERR(folio) || !kvm_gmem_has_state(gi) ||
		    !folio_test_large(folio))
			return folio;
		st = 0;
		attrs = kvm_gmem_state_lookup_attrs(&gi->state, folio->index,
						    folio_order(folio), &st);
		new_order = kvm_gmem_hugetlb_split_order(folio, attrs, st,
							 flags);
		if (new_order < 0)
			return folio;
		/*
		 * Held up by a passing reference: look again, as the holder
		 * may have changed what the folio needs (a vCPU that zeroed
		 * a piece made it up to date).
		 */
		ret = kvm_gmem_hugetlb_split(gi, folio, new_order, 0);
		if (ret == -EAGAIN && tries--) {
			if (fatal_signal_pending(current))
				return ERR_PTR(-EINTR);
			schedule_timeout_uninterruptible(1);
			continue;
		}
		if (ret)
			return ERR_PTR(ret);
	}
}

/**
 * kvm_gmem_hugetlb_get_folio() - the locked folio of an index, new or not
 * @gi: an inode with hugetlb backing
 * @index: the page index
 *
 * For the host, which maps only pieces: in files that own their state, a
 * folio that breaks the rule at the top of this file is split first, a
 * hugetlb folio that is shared throughout too. Pages of a shared block
 * that nobody used yet are single pages, each a hole until it is written.
 *
 * Return: the locked folio holding @index, with a reference, or an
 * ERR_PTR().
 */
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_inode *gi,
					 pgoff_t index)
{
	return kvm_gmem_hugetlb_lookup(gi, index, KVM_GMEM_HUGETLB_HOST);
}

/**
 * kvm_gmem_hugetlb_get_guest_folio() - the folio of an index, for KVM
 * @gi: an inode with hugetlb backing
 * @index: the page index
 *
 * As kvm_gmem_hugetlb_get_folio(), for lookups that give the host no
 * mapping (a vCPU fault or populate, fallocate): a huge page shared
 * throughout stays its hugetlb folio, which KVM maps whole (and a vCPU's
 * first access zeroes whole, as a private one).
 *
 * Return: the locked folio holding @index, with a reference, or an
 * ERR_PTR().
 */
struct folio *kvm_gmem_hugetlb_get_guest_folio(struct kvm_gmem_inode *gi,
					       pgoff_t index)
{
	return kvm_gmem_hugetlb_lookup(gi, index, 0);
}

/*
 * The order @folio must be split to before [@start, @end) changes to
 * @attrs, for the rule to hold after the change; -1 if none.
 */
static int kvm_gmem_hugetlb_split_for(struct kvm_gmem_inode *gi,
				      struct folio *folio, pgoff_t start,
				      pgoff_t end, unsigned int attrs)
{
	unsigned int order = folio_order(folio), cur, st = 0;

	if (!order)
		return -1;
	/* Inside the range: one state, the new one. */
	if (folio->index >= start && folio_next_index(folio) <= end)
		return kvm_gmem_hugetlb_split_order(folio, attrs, order, 0);
	/* Across an edge: mixed if its part inside changes. */
	cur = kvm_gmem_state_lookup_attrs(&gi->state, folio->index, order,
					  &st);
	if ((cur & KVM_GMEM_STATE_SHARED) != attrs)
		st = 0;
	return kvm_gmem_hugetlb_split_order(folio, cur, st, 0);
}

/**
 * kvm_gmem_hugetlb_split_range() - split what a conversion would leave mixed
 * @gi: an inode with hugetlb backing, its invalidate lock held exclusive
 * @start: first page of the conversion
 * @end: page after the last one
 * @attrs: the state the range is about to get: KVM_GMEM_STATE_SHARED or 0
 * @bad: set to the folio that stayed referenced, on -EAGAIN
 *
 * Before the state changes: splits the folios overlapping the range that
 * the change would leave with pages of both states, as far as the rule at
 * the top of this file needs (a hugetlb folio it makes shared throughout
 * stays whole: the host has no mapping of it).
 * Folios not allocated yet are split when they are.
 *
 * Return: 0; -EAGAIN if a folio stayed referenced, with its first page
 * in the range in *@bad; -ENOMEM or -EINTR. Splits done before an error
 * stay: they change no page and no state.
 */
int kvm_gmem_hugetlb_split_range(struct kvm_gmem_inode *gi, pgoff_t start,
				 pgoff_t end, unsigned int attrs, pgoff_t *bad)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio *folio = NULL;
	struct folio_batch fbatch;
	pgoff_t index = start;
	int new_order = -1;
	unsigned int i;
	int ret;

	lockdep_assert_held_write(&mapping->invalidate_lock);
	folio_batch_init(&fbatch);
	while (filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			folio = fbatch.folios[i];
			new_order = kvm_gmem_hugetlb_split_for(gi, folio, start,
							       end, attrs);
			if (new_order >= 0) {
				folio_get(folio);
				break;
			}
		}
		folio_batch_release(&fbatch);
		if (new_order < 0)
			continue;
		/* Split it, then look at its pieces from there on. */
		index = max(folio->index, start);
		folio_lock(folio);
		ret = kvm_gmem_hugetlb_split(gi, folio, new_order,
					     KVM_GMEM_HUGETLB_TRIES);
		if (ret) {
			*bad = index;
			return ret;
		}
		new_order = -1;
		cond_resched();
	}
	return 0;
}

/*
 * Merge one block by @merge (guestmem_hugetlb_merge() or _restore()),
 * with KVM's mappings and the host's of it zapped meanwhile, retrying
 * for @tries ticks while others hold references.
 */
static void kvm_gmem_hugetlb_merge_block(struct kvm_gmem_inode *gi,
					 pgoff_t base, unsigned int order,
					 int (*merge)(struct guestmem_hugetlb *,
						      struct address_space *,
						      pgoff_t),
					 int tries)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	int ret;
	pgoff_t end = base + (1UL << order);

	kvm_gmem_invalidate_begin(gi, base, end);
	for (;;) {
		unmap_mapping_pages(mapping, base, end - base, false);
		ret = merge(gi->hugetlb, mapping, base);
		if (ret != -EAGAIN || !tries-- || fatal_signal_pending(current))
			break;
		schedule_timeout_uninterruptible(1);
	}
	kvm_gmem_invalidate_end(gi, base, end);
}

/*
 * The next folio in [*@index, @last] that is smaller than @order or, for
 * @order == the huge page's order, not hugetlb; *@index moves past it.
 * Return: the base of its block of @order, its order in *@forder; or
 * ULONG_MAX if there is none.
 */
static pgoff_t kvm_gmem_hugetlb_next_split(struct kvm_gmem_inode *gi,
					   pgoff_t *index, pgoff_t last,
					   unsigned int order,
					   unsigned int *forder)
{
	unsigned int horder = guestmem_hugetlb_order(gi->hugetlb), i;
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio_batch fbatch;
	pgoff_t base = ULONG_MAX;

	folio_batch_init(&fbatch);
	while (base == ULONG_MAX &&
	       filemap_get_folios(mapping, index, last, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];

			if (folio_order(folio) < order ||
			    (order == horder && !folio_test_hugetlb(folio))) {
				base = round_down(folio->index, 1UL << order);
				*forder = folio_order(folio);
				break;
			}
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
	return base;
}

/*
 * Whether a page of the 2M block at @base was used (is up to date): a
 * shared block nobody used stays single pages (see the top).
 */
static bool kvm_gmem_hugetlb_block_used(struct kvm_gmem_inode *gi,
					pgoff_t base)
{
	struct folio_batch fbatch;
	pgoff_t index = base;
	bool used = false;
	unsigned int i;

	folio_batch_init(&fbatch);
	while (!used && filemap_get_folios(gi->vfs_inode.i_mapping, &index,
					   base + (1UL << PMD_ORDER) - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++)
			used |= folio_test_uptodate(fbatch.folios[i]);
		folio_batch_release(&fbatch);
	}
	return used;
}

/**
 * kvm_gmem_hugetlb_merge_range() - merge the blocks of a range back
 * @gi: an inode with hugetlb backing, its invalidate lock held exclusive
 * @start: first page
 * @end: page after the last one
 *
 * After a conversion, once the state says so: every 2M block overlapping
 * the range that is held as single pages and has one state throughout
 * (and, if shared, was used) becomes one folio again (the hugetlb folio,
 * for a private block of a 2M page), then every huge page overlapping it
 * that is private throughout becomes its hugetlb folio again. A block that cannot be merged now
 * stays split.
 */
void kvm_gmem_hugetlb_merge_range(struct kvm_gmem_inode *gi, pgoff_t start,
				  pgoff_t end)
{
	unsigned int horder = guestmem_hugetlb_order(gi->hugetlb);
	unsigned int order, forder = 0, attrs, st;
	int tries;
	int (*merge)(struct guestmem_hugetlb *gh,
		     struct address_space *mapping, pgoff_t index);
	pgoff_t index, last, base;
	unsigned long n;

	lockdep_assert_held_write(&gi->vfs_inode.i_mapping->invalidate_lock);
	for (order = PMD_ORDER; ; order = horder) {
		n = 1UL << order;
		index = round_down(start, n);
		last = round_up(end, n) - 1;
		for (;;) {
			base = kvm_gmem_hugetlb_next_split(gi, &index, last,
							   order, &forder);
			if (base == ULONG_MAX)
				break;
			st = 0;
			attrs = kvm_gmem_state_lookup_attrs(&gi->state, base,
							    order, &st);
			/* Both states: the block stays split. */
			merge = NULL;
			if (st >= order && order == horder &&
			    !(attrs & KVM_GMEM_STATE_SHARED))
				merge = guestmem_hugetlb_restore;
			else if (st >= order && order == PMD_ORDER &&
				 forder < PMD_ORDER &&
				 (!(attrs & KVM_GMEM_STATE_SHARED) ||
				  kvm_gmem_hugetlb_block_used(gi, base)))
				merge = guestmem_hugetlb_merge;
			/*
			 * Private pages passed the conversion's reference
			 * check: wait out passing ones. Shared pages may be
			 * pinned for long: one try.
			 */
			tries = attrs & KVM_GMEM_STATE_SHARED ?
				0 : KVM_GMEM_HUGETLB_TRIES;
			if (merge)
				kvm_gmem_hugetlb_merge_block(gi, base, order,
							     merge, tries);
			index = base + n;
			if (!index || index > last)
				break;
		}
		if (order == horder)
			break;
	}
}

/*
 * Zero the pieces of the block of @order around @index that were never
 * used, @locked (ours, locked) among them, up to 512 of them. Pieces that
 * others hold locked are left alone: the block then maps smaller.
 */
static void kvm_gmem_hugetlb_fill_block(struct kvm_gmem_inode *gi,
					pgoff_t index, unsigned int order,
					struct folio *locked)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	pgoff_t i = round_down(index, 1UL << order);
	pgoff_t end = i + (1UL << order);
	unsigned int folios = 0;
	struct folio *folio;

	/* Single pages across a 1G block: block_ready() says no anyway. */
	while (i < end && folios++ < 512) {
		folio = filemap_get_folio(mapping, i);
		if (IS_ERR(folio))
			return;
		if (!folio_test_uptodate(folio) &&
		    (folio == locked || folio_trylock(folio))) {
			if (folio->mapping == mapping &&
			    !folio_test_uptodate(folio)) {
				kvm_gmem_zero_folio(folio);
				folio_mark_uptodate(folio);
			}
			if (folio != locked)
				folio_unlock(folio);
		}
		i = max(folio_next_index(folio), i + 1);
		folio_put(folio);
		cond_resched();
	}
}

/**
 * kvm_gmem_hugetlb_block_order() - the largest block KVM may map whole
 * @gi: an inode with hugetlb backing
 * @index: the page KVM maps
 * @folio: its folio, locked
 * @order: the largest order the state allows around @index
 * @attrs: the state of @index (KVM_GMEM_STATE_SHARED or not)
 *
 * A split huge page is still contiguous memory: a block of it whose pages
 * are all in the page cache, up to date and not poisoned maps whole,
 * however it is split into folios. Pieces of a shared block nobody used
 * yet are zeroed here, @folio among them, as a first access to a hugetlb
 * folio zeroes all of it.
 *
 * Return: at most @order and the huge page's order; at least @folio's
 * order unless @order is smaller.
 */
unsigned int kvm_gmem_hugetlb_block_order(struct kvm_gmem_inode *gi,
					  pgoff_t index, struct folio *folio,
					  unsigned int order, unsigned int attrs)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	/* Private pieces are zeroed one by one as the vCPU uses them. */
	bool fill = attrs & KVM_GMEM_STATE_SHARED;

	order = min(order, guestmem_hugetlb_order(gi->hugetlb));
	while (order > folio_order(folio)) {
		if (guestmem_hugetlb_block_ready(gi->hugetlb, mapping, index,
						 order))
			break;
		if (fill) {
			kvm_gmem_hugetlb_fill_block(gi, index, order, folio);
			if (guestmem_hugetlb_block_ready(gi->hugetlb, mapping,
							 index, order))
				break;
		}
		order = order > PMD_ORDER ? PMD_ORDER : 0;
	}
	return order;
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
