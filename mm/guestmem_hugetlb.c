// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb pages for guest_memfd, without hugetlbfs.
 *
 * A guest_memfd file backed by hugetlb takes its folios from the pool of
 * one hstate (2M or 1G on x86), with hugetlb's own accounting:
 *
 *  - Reservation: the file gets a hugetlb subpool whose minimum and maximum
 *    are both the file size in huge pages, so creating it reserves the
 *    whole file in the global pool (HugePages_Rsvd) or fails with -ENOMEM.
 *    A fault can then never find the pool empty.
 *  - Allocation takes one page of the subpool's reservation and dequeues a
 *    reserved folio (alloc_hugetlb_folio_reserve()); the folio remembers
 *    its subpool, so whoever drops the last reference, free_huge_folio()
 *    gives the reservation back to the subpool and the folio to the pool.
 *  - Destroy drops the file's reference on the subpool. The subpool, and
 *    with it the file's global reservation, goes away when its last folio
 *    is freed (at once if there is none), so HugePages_Free and
 *    HugePages_Rsvd are back where they were before the create.
 *
 * Folios live in the file's page cache at naturally aligned indices, like
 * hugetlbfs folios, but outside the LRU and unaccounted to memcg (hugetlb
 * pages are never reclaimed).
 *
 * hugetlb cgroup: the creating task's cgroup is charged with the whole
 * file, on its reservation counter (as hugetlbfs charges a reservation)
 * and on its usage counter, from creation until the file is destroyed
 * and the last of its huge pages that a pin kept (an orphan) is freed;
 * creation fails with -ENOMEM if the file exceeds either limit. Faults are
 * never refused for the cgroup (a vCPU cannot take SIGBUS), and split or
 * whole, every page of the file is covered. The folios themselves carry
 * no charge. When the cgroup is removed, guestmem_hugetlb_cgroup_offline()
 * moves the usage charges to the parent, as hugetlb does for its folios.
 *
 * Split and merge. The host cannot map hugetlb folios outside hugetlbfs,
 * and files the host can map need small folios where shared and private
 * pages meet, so a huge folio can be split in place, one level at a time:
 * a 1G folio into 512 folios of 2M, a 2M folio (a hugetlb one, or a piece
 * of a 1G one) into 512 pages, and a 2M hugetlb folio into one 2M piece.
 * Pieces are ordinary (non-hugetlb) page cache folios, which the host can
 * map, a 2M one with a PMD; the huge page they came from is remembered in
 * a struct guestmem_split. Merging makes a 2M piece of 512 pages again
 * (guestmem_hugetlb_merge()), and restoring makes the hugetlb folio of the
 * pieces (guestmem_hugetlb_restore()), which alone may go back to the
 * pool:
 *
 *  - A split or merge first hides the folios involved from the page
 *    cache: under the xa_lock it replaces their entry with a placeholder
 *    value entry (GUESTMEM_BUSY) and freezes their reference counts at the
 *    count it expects (the page cache's references, its own, the anchors
 *    below), so it fails with -EAGAIN, changing nothing, while anybody
 *    else holds a reference. Lookups find the placeholder, see no folio,
 *    and go to guestmem_hugetlb_get_folio(), which waits for @lock; they
 *    never spin on a frozen folio. With the folios out of sight, the
 *    struct pages are rewritten with preemption enabled, and the new
 *    folios are published one by one (a piece at a time for a split).
 *    Nothing runs with preemption or interrupts disabled but short
 *    xa_lock and hugetlb_lock sections of bounded length (a 2M block's
 *    entries at most), so the whole protocol is also fit for PREEMPT_RT.
 *    Truncation holds @lock too, so it never meets a placeholder.
 *  - Every piece holds one extra reference, its anchor, for as long as it
 *    is a piece. Whoever drops the last other reference therefore never
 *    frees a piece to the buddy allocator: pieces leave the page cache by
 *    truncation like any folio, and guestmem_hugetlb_truncate() then
 *    merges them back into the hugetlb folio and frees that. A piece still
 *    referenced then (pinned by a driver, say) makes the huge page an
 *    orphan that a work item retries until the references are gone.
 *  - The hugetlb vmemmap optimisation (HVO) shares the struct pages of all
 *    but the first pages of a huge folio, and a split must write them.
 *    Restoring and optimising the vmemmap wait for an RCU grace period
 *    with the folio's count frozen, while lockless page cache lookups
 *    would spin on that frozen folio inside an RCU read-side section, so
 *    neither can happen while the folio is in the page cache. A file whose
 *    folios may be split therefore restores each folio's vmemmap when it
 *    allocates it (-ENOMEM if that fails), before the folio is visible,
 *    and keeps it so while the folio is in the file; a split huge page
 *    that leaves the file is optimised again before it goes back to the
 *    pool. Files that are never split keep HVO all along.
 *  - A piece is up to date if its pages were zeroed or written. A merge of
 *    pieces of which only some are up to date first zeroes the others (and
 *    marks them up to date), so no stale pool content ever becomes visible
 *    and no data is lost.
 *
 *  - Memory failure. The poison of a hugetlb folio (its flag and the list
 *    of raw pages) moves to the raw pages when the folio is split, and a
 *    2M piece with a poisoned page is marked "has hwpoisoned", so that the
 *    exact page stays poisoned and KVM maps that piece with single pages
 *    only. Blocks with a poisoned page are never merged (-EHWPOISON). When
 *    such a huge page leaves the file it becomes a hugetlb folio again
 *    with its raw page list, and hugetlb dissolves it: the poisoned pages
 *    are taken out of use, the others go back to the buddy allocator, and
 *    the pool shrinks by one huge page, as for hugetlbfs pages. A whole
 *    hugetlb folio that was poisoned while in the file is dissolved the
 *    same way when truncation frees it.
 *    memory_failure() keeps a reference on a hugetlb folio it poisoned
 *    (so that it is never freed), and handles pieces, which are not on
 *    the LRU, as pages it cannot handle: it only marks the page, and keeps
 *    no reference unless its caller passed one in (MADV_HWPOISON). So a
 *    split of a poisoned hugetlb folio freezes it with that reference and
 *    drops it, and freeing a split huge page takes a poisoned single page
 *    with one reference more than its anchor as well.
 *    A piece poisoned while KVM maps it stays mapped until the mapping is
 *    zapped (memory_failure() tells nobody); the next fault on it fails.
 *
 * Locking: @lock serializes the lookup-allocate-insert sequence of one
 * file, so that concurrent faults on a missing folio allocate it once and
 * the subpool's maximum (the file size) is never exceeded transiently. It
 * also serializes splits, merges, truncation and truncation records
 * (@split). Lock order: the caller's mapping->invalidate_lock, then @lock,
 * then the folio lock, then i_mmap_rwsem (truncation unmaps), hugetlb_lock
 * or the page cache's xa_lock.
 */
#include <linux/cgroup.h>
#include <linux/guestmem.h>
#include <linux/hugetlb.h>
#include <linux/hugetlb_cgroup.h>
#include <linux/mempolicy.h>
#include <linux/mutex.h>
#include <linux/page_counter.h>
#include <linux/page_ref.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "hugetlb_vmemmap.h"
#include "internal.h"

/**
 * struct guestmem_hugetlb - hugetlb backing of one guest_memfd inode
 * @h: the hstate the folios come from
 * @spool: the subpool holding the file's reservation
 * @splittable: folios may be split (their vmemmap is never optimised
 *	while they are in the file)
 * @lock: serializes allocation, page cache insertion, split and merge
 * @split: huge page index (file index >> hstate order) -> struct
 *	guestmem_split of each huge page that is split, guarded by @lock
 * @nr_pages: the file size in pages
 * @rsvd_hcg: the hugetlb cgroup charged with the file's reservation
 *	(which holds a css reference on it), or NULL
 * @hcg: the hugetlb cgroup charged with the file's usage: @rsvd_hcg, or
 *	its closest ancestor still online once it went offline; a css
 *	reference, or NULL; guarded by hugetlb_lock
 * @node: link in guestmem_backings, guarded by hugetlb_lock
 * @refs: the file's reference and one per orphan of it: the cgroup
 *	charges stay until the last huge page of the file is back in the
 *	pool, as the subpool's reservation does
 */
struct guestmem_hugetlb {
	struct hstate *h;
	struct hugepage_subpool *spool;
	bool splittable;
	struct mutex lock;	/* allocation, insertion, split, merge */
	struct xarray split;
	unsigned long nr_pages;
	struct hugetlb_cgroup *rsvd_hcg;
	struct hugetlb_cgroup *hcg;
	struct list_head node;
	refcount_t refs;
};

/**
 * struct guestmem_split - a huge page that is split into pieces
 * @head: its first page
 * @h: its hstate
 * @spool: the subpool of the hugetlb folio, to restore on merge
 * @hpg_flags: the hugetlb folio's private flags (HPG_*), to restore
 * @orphan: link in guestmem_orphans once its file is gone or it left the
 *	page cache while a piece was still referenced
 * @gh: the backing it was taken from, once it is an orphan (a reference)
 */
struct guestmem_split {
	struct page *head;
	struct hstate *h;
	struct hugepage_subpool *spool;
	unsigned long hpg_flags;
	struct list_head orphan;
	struct guestmem_hugetlb *gh;
};

/*
 * What the page cache holds in place of folios that a split or merge is
 * rewriting: a value entry, which lookups take for a hole (see the top of
 * this file). Never seen without @lock held by the one rewriting.
 */
#define GUESTMEM_BUSY	xa_mk_value(0x676d656d)

static LIST_HEAD(guestmem_orphans);
static DEFINE_SPINLOCK(guestmem_orphan_lock);

/*
 * Every backing that holds a usage charge, for hugetlb cgroup removal
 * (guestmem_hugetlb_cgroup_offline()). Under hugetlb_lock.
 */
static LIST_HEAD(guestmem_backings);
static void guestmem_orphan_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(guestmem_orphan_work, guestmem_orphan_fn);
static bool guestmem_reclaim_orphans(void);

/*
 * How long an allocation that finds the file's subpool full waits for
 * truncated pages to come back: split ones still referenced wait on the
 * orphan list, whole ones until their last reference drops. A second:
 * under a loaded host a passing reference can outlast 100 ms.
 */
#define GUESTMEM_ORPHAN_WAIT	HZ

#ifdef CONFIG_CGROUP_HUGETLB
/*
 * Charge the file to the hugetlb cgroup of the calling task: its
 * reservation counter and its usage counter each take the whole file, for
 * as long as the file lives. guest_memfd promises every page of a file at
 * creation (a vCPU fault cannot take SIGBUS), so the usage limit is
 * checked then, not page by page at fault time as hugetlbfs does.
 */
static int guestmem_charge_file(struct guestmem_hugetlb *gh)
{
	int idx = hstate_index(gh->h);
	struct page_counter *fail;
	int ret = 0;

	if (hugetlb_cgroup_charge_cgroup_rsvd(idx, gh->nr_pages, &gh->rsvd_hcg))
		return -ENOMEM;
	if (!gh->rsvd_hcg)
		return 0;

	/*
	 * A cgroup still online, under hugetlb_lock: its removal has not
	 * begun, so guestmem_hugetlb_cgroup_offline() will see this file.
	 */
	spin_lock_irq(&hugetlb_lock);
	if (!css_tryget_online(&gh->rsvd_hcg->css))
		ret = -EAGAIN;
	else if (!page_counter_try_charge(&gh->rsvd_hcg->hugepage[idx],
					  gh->nr_pages, &fail))
		ret = -ENOMEM;
	if (!ret) {
		gh->hcg = gh->rsvd_hcg;
		list_add(&gh->node, &guestmem_backings);
	}
	spin_unlock_irq(&hugetlb_lock);
	if (ret == -ENOMEM)
		css_put(&gh->rsvd_hcg->css);
	if (ret)
		hugetlb_cgroup_uncharge_cgroup_rsvd(idx, gh->nr_pages,
						    gh->rsvd_hcg);
	return ret;
}

static void guestmem_uncharge_file(struct guestmem_hugetlb *gh)
{
	int idx = hstate_index(gh->h);
	struct hugetlb_cgroup *hcg;

	if (!gh->rsvd_hcg)
		return;
	spin_lock_irq(&hugetlb_lock);
	list_del(&gh->node);
	hcg = gh->hcg;
	gh->hcg = NULL;
	spin_unlock_irq(&hugetlb_lock);
	page_counter_uncharge(&hcg->hugepage[idx], gh->nr_pages);
	css_put(&hcg->css);
	hugetlb_cgroup_uncharge_cgroup_rsvd(idx, gh->nr_pages, gh->rsvd_hcg);
}

/**
 * guestmem_hugetlb_cgroup_offline() - a hugetlb cgroup goes away
 * @hcg: the cgroup going offline
 * @parent: the cgroup that takes its charges
 *
 * Called by hugetlb_cgroup_css_offline(), which moves the charges of the
 * hugetlb folios on the active lists to @parent: moves the usage charges
 * of the files charged to @hcg as well, so that the removal does not wait
 * for them. Their reservation charges stay, as hugetlbfs's do.
 *
 * Context: hugetlb_lock held.
 */
void guestmem_hugetlb_cgroup_offline(struct hugetlb_cgroup *hcg,
				     struct hugetlb_cgroup *parent)
{
	struct guestmem_hugetlb *gh;

	lockdep_assert_held(&hugetlb_lock);
	list_for_each_entry(gh, &guestmem_backings, node) {
		if (gh->hcg != hcg)
			continue;
		hugetlb_cgroup_move_charge(hstate_index(gh->h), hcg,
					   gh->nr_pages);
		css_get(&parent->css);
		gh->hcg = parent;
		css_put(&hcg->css);
	}
}
#else
static int guestmem_charge_file(struct guestmem_hugetlb *gh)
{
	return 0;
}

static void guestmem_uncharge_file(struct guestmem_hugetlb *gh)
{
}
#endif

/*
 * Drop a reference to @gh: the file's (at destroy) or an orphan's (once
 * it is back in the pool). The last one uncharges the file.
 */
static void guestmem_hugetlb_put(struct guestmem_hugetlb *gh)
{
	if (!refcount_dec_and_test(&gh->refs))
		return;
	guestmem_uncharge_file(gh);
	mutex_destroy(&gh->lock);
	kfree(gh);
}

/**
 * guestmem_hugetlb_create() - set up hugetlb backing for a file
 * @page_shift: log2 of the huge page size
 * @size: file size in bytes, a multiple of the huge page size
 * @splittable: whether guestmem_hugetlb_split() may be used on the file
 *
 * Reserves the whole file in the pool of the hstate, and charges it to the
 * hugetlb cgroup of the calling task (reservation and usage).
 *
 * Context: process context, may sleep.
 * Return: the backing, ERR_PTR(-EINVAL) if there is no hstate of that
 * size or @size is not a positive multiple of it, ERR_PTR(-ENOMEM) if the
 * pool cannot reserve the file or the file exceeds a cgroup limit.
 */
struct guestmem_hugetlb *guestmem_hugetlb_create(unsigned int page_shift,
						 loff_t size, bool splittable)
{
	struct guestmem_hugetlb *gh;
	struct hstate *h;
	int err;

	if (page_shift <= PAGE_SHIFT || page_shift >= BITS_PER_LONG)
		return ERR_PTR(-EINVAL);
	h = size_to_hstate(1UL << page_shift);
	if (!h || size <= 0 || !IS_ALIGNED(size, huge_page_size(h)))
		return ERR_PTR(-EINVAL);

	gh = kzalloc(sizeof(*gh), GFP_KERNEL_ACCOUNT);
	if (!gh)
		return ERR_PTR(-ENOMEM);

	gh->h = h;
	gh->splittable = splittable;
	mutex_init(&gh->lock);
	xa_init(&gh->split);
	gh->nr_pages = size >> PAGE_SHIFT;
	INIT_LIST_HEAD(&gh->node);
	refcount_set(&gh->refs, 1);
	err = guestmem_charge_file(gh);
	if (err) {
		kfree(gh);
		return ERR_PTR(err);
	}
	gh->spool = hugepage_new_subpool(h, size >> huge_page_shift(h),
					 size >> huge_page_shift(h));
	if (!gh->spool) {
		guestmem_uncharge_file(gh);
		kfree(gh);
		return ERR_PTR(-ENOMEM);
	}
	return gh;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_create, "kvm");

/**
 * guestmem_hugetlb_page_sizes() - the huge page sizes a backing can use
 *
 * Return: a mask with bit log2(size) set for every hugetlb page size,
 * whether or not its pool has pages now.
 */
unsigned long guestmem_hugetlb_page_sizes(void)
{
	unsigned long sizes = 0;
	struct hstate *h;

	for_each_hstate(h)
		if (huge_page_shift(h) < BITS_PER_LONG)
			sizes |= BIT(huge_page_shift(h));
	return sizes;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_page_sizes, "kvm");

/**
 * guestmem_hugetlb_order() - folio order of a backing
 * @gh: the backing
 *
 * Return: the order of the huge pages; guestmem_hugetlb_get_folio()
 * returns folios of this order unless they were split.
 */
unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh)
{
	return huge_page_order(gh->h);
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_order, "kvm");

/*
 * Take a free pool page on the nodes @mpol allows, never one that cannot be
 * pinned for good (ZONE_MOVABLE, CMA): guest_memfd folios never migrate.
 */
static struct folio *guestmem_hugetlb_dequeue(struct hstate *h,
					      struct mempolicy *mpol,
					      pgoff_t ilx)
{
	gfp_t gfp = htlb_alloc_mask(h);
	nodemask_t *nodemask = NULL;
	int nid = numa_mem_id();
	struct folio *folio;
	unsigned int pin;

	/* Node and nodemask by the policy, as huge_node() for hugetlbfs. */
#ifdef CONFIG_NUMA
	if (mpol)
		nodemask = policy_nodemask(gfp, mpol, ilx, &nid);
#endif
	pin = memalloc_pin_save();
	folio = alloc_hugetlb_folio_reserve(h, nid, nodemask, gfp);
#ifdef CONFIG_NUMA
	/* Preferred nodes are only preferred, as in dequeue_hugetlb_folio_vma(). */
	if (!folio && nodemask && mpol->mode == MPOL_PREFERRED_MANY)
		folio = alloc_hugetlb_folio_reserve(h, nid, NULL, gfp);
#endif
	memalloc_pin_restore(pin);
	return folio;
}

/*
 * Take a reserved folio of the file's subpool: NULL while the file's pages
 * are all in use (a truncated page not freed yet), ERR_PTR(-ENOMEM) when
 * the pool has no page the policy allows (MPOL_BIND to nodes without free
 * pages, or only unpinnable ones).
 */
static struct folio *guestmem_hugetlb_alloc(struct guestmem_hugetlb *gh,
					    struct mempolicy *mpol,
					    pgoff_t ilx)
{
	struct hstate *h = gh->h;
	struct folio *folio;
	long gbl;

	/*
	 * Minimum and maximum are the file size, so as long as the file has
	 * fewer folios than pages the subpool still holds a reservation for
	 * this one and there is nothing to take from the global pool.
	 */
	gbl = hugepage_subpool_get_pages(gh->spool, 1);
	if (gbl < 0)
		return NULL;
	if (WARN_ON_ONCE(gbl)) {
		hugepage_subpool_put_pages(gh->spool, 1);
		return NULL;
	}

	folio = guestmem_hugetlb_dequeue(h, mpol, ilx);
	if (!folio) {
		/* Keeps the reservation in the subpool: nothing else moved. */
		hugepage_subpool_put_pages(gh->spool, 1);
		return ERR_PTR(-ENOMEM);
	}
	hugetlb_set_folio_subpool(folio, gh->spool);
	/*
	 * guest_memfd reads "up to date" as "zeroed or filled": whatever a
	 * previous user of this pool page left set, the new file has not
	 * written it yet.
	 */
	folio_clear_uptodate(folio);

	/* Writable struct pages for splits, while nobody can see the folio. */
	if (gh->splittable && folio_test_hugetlb_vmemmap_optimized(folio)) {
		int err;

		/* Speculative references (PFN walkers) go away at once. */
		while (!folio_ref_freeze(folio, 1))
			cond_resched();
		err = hugetlb_vmemmap_restore_folio(h, folio);
		folio_ref_unfreeze(folio, 1);
		if (err) {
			/* Back to the pool, its reservation to the subpool. */
			folio_put(folio);
			return ERR_PTR(err);
		}
	}
	return folio;
}

/**
 * guestmem_hugetlb_get_folio() - the folio of a file index, allocated if new
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the file
 * @mpol: the NUMA memory policy a new folio is allocated by, or NULL for
 *	the local node
 * @ilx: the interleave index of a new folio under @mpol
 *
 * A new folio is neither zeroed nor up to date; the caller zeroes or
 * fills it and marks it up to date.
 *
 * Context: process context, may sleep.
 * Return: the locked folio containing @index with a reference held, or
 * ERR_PTR(-ENOMEM) (if the pool broke the reservation's promise, or the
 * struct pages of a splittable file's new folio could not be restored).
 */
struct folio *guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index, struct mempolicy *mpol,
					 pgoff_t ilx)
{
	pgoff_t base = round_down(index, pages_per_huge_page(gh->h));
	struct folio *folio;
	int err, tries;

	folio = filemap_lock_folio(mapping, index);
	if (!IS_ERR(folio))
		return folio;

	mutex_lock(&gh->lock);
	for (tries = GUESTMEM_ORPHAN_WAIT; ; tries--) {
		folio = filemap_lock_folio(mapping, index);
		if (!IS_ERR(folio))
			goto out;
		folio = guestmem_hugetlb_alloc(gh, mpol, ilx);
		if (IS_ERR(folio))
			goto out;
		if (folio)
			break;
		if (!tries || fatal_signal_pending(current)) {
			folio = ERR_PTR(-ENOMEM);
			goto out;
		}
		/*
		 * A page truncated while briefly referenced counts against
		 * the file until it is freed: by the orphan work if it was
		 * split, by its last folio_put() if not. And a fault racing
		 * with a hole punch gets here before the punch freed the
		 * split pages it truncated, which it does under @lock. Wait
		 * a little, without @lock, and look again.
		 */
		mutex_unlock(&gh->lock);
		guestmem_reclaim_orphans();
		schedule_timeout_uninterruptible(1);
		mutex_lock(&gh->lock);
	}

	__folio_set_locked(folio);
	err = __filemap_add_folio(mapping, folio, base, GFP_KERNEL, NULL);
	if (err) {
		__folio_clear_locked(folio);
		/* Back to the pool, its reservation back to the subpool. */
		folio_put(folio);
		folio = ERR_PTR(err);
	} else {
		/*
		 * In use, as hugetlbfs marks its folios once they are in the
		 * page cache: memory failure handling takes only those as in
		 * use (and otherwise ignores the poison). Migration itself
		 * refuses the folio: its mapping is inaccessible.
		 */
		folio_set_hugetlb_migratable(folio);
	}
out:
	mutex_unlock(&gh->lock);
	return folio;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_get_folio, "kvm");

/**
 * guestmem_hugetlb_lookup() - the folio of a file index, without allocating
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the file
 *
 * As filemap_get_folio(), but a folio that a split or merge is rewriting
 * is waited for rather than taken for a hole (see the top of this file).
 *
 * Context: process context, may sleep.
 * Return: the folio containing @index with a reference held (not locked),
 * or ERR_PTR(-ENOENT) if the file has none there.
 */
struct folio *guestmem_hugetlb_lookup(struct guestmem_hugetlb *gh,
				      struct address_space *mapping,
				      pgoff_t index)
{
	void *entry;

	for (;;) {
		entry = filemap_get_entry(mapping, index);
		if (entry != GUESTMEM_BUSY)
			break;
		mutex_lock(&gh->lock);
		mutex_unlock(&gh->lock);
	}
	if (!entry || xa_is_value(entry))
		return ERR_PTR(-ENOENT);
	return entry;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_lookup, "kvm");

/* Whether a page of @folio may be poisoned (hugetlb: the folio is). */
static bool guestmem_folio_poisoned(struct folio *folio)
{
	long i;

	if (folio_test_hugetlb(folio))
		return folio_test_hwpoison(folio);
	if (folio_contain_hwpoisoned_page(folio))
		return true;
	/* Memory failure marks only the page of a piece (see the top). */
	if (!IS_ENABLED(CONFIG_MEMORY_FAILURE) ||
	    !atomic_long_read(&num_poisoned_pages))
		return false;
	for (i = 0; i < folio_nr_pages(folio); i++)
		if (PageHWPoison(folio_page(folio, i)))
			return true;
	return false;
}

/**
 * guestmem_hugetlb_block_ready() - whether a block of a file maps whole
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the block
 * @order: the block's order, at most the huge page's
 *
 * A huge page is one piece of contiguous memory however it is split into
 * folios, so a block of it can be mapped with one page table entry (by
 * KVM) if every page of the naturally aligned block of @order around
 * @index is in the page cache, up to date and not poisoned.
 *
 * Context: any; looks at the page cache under RCU, with a reference on
 * each folio while it looks at it. The answer may be stale at once: the
 * caller must see every later split, merge, truncation or conversion
 * (KVM: the invalidation sequence) and look again.
 * Return: whether the block is ready to be mapped whole; false also for a
 * block of more than 512 folios (single pages: the 1G block around a
 * split 2M block).
 */
bool guestmem_hugetlb_block_ready(struct guestmem_hugetlb *gh,
				  struct address_space *mapping,
				  pgoff_t index, unsigned int order)
{
	unsigned long nr = 1UL << order, folios = 0;
	pgoff_t base = round_down(index, nr), i = base;
	struct folio *folio;
	bool ready = true;

	if (order > huge_page_order(gh->h))
		return false;
	rcu_read_lock();
	while (ready && i < base + nr) {
		folio = xa_load(&mapping->i_pages, i);
		/*
		 * A hole, a split or merge under way (the placeholder, or a
		 * frozen folio), or more folios than a block of 2M pieces
		 * has (single pages are a block's own business).
		 */
		if (!folio || xa_is_value(folio) || ++folios > 512 ||
		    !folio_try_get(folio)) {
			ready = false;
			break;
		}
		if (folio->mapping != mapping || folio->index != i ||
		    folio_next_index(folio) > base + nr ||
		    !folio_test_uptodate(folio) ||
		    guestmem_folio_poisoned(folio))
			ready = false;
		i = folio_next_index(folio);
		folio_put(folio);
	}
	rcu_read_unlock();
	return ready;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_block_ready, "kvm");

/*
 * Turn the 2^@order frozen, untyped pages at @head into folios of
 * @new_order (bigger or smaller), each with @flags (PG_uptodate, PG_dirty)
 * and page cache position @mapping/@index + offset. Reference counts stay
 * zero: the caller unfreezes the new folios. Nobody can reach the pages
 * meanwhile (they are hidden from the page cache, or out of it), so this
 * yields the CPU as it goes.
 *
 * A page keeps PG_hwpoison, which memory_failure() may also set while
 * this runs (atomically, so the flag updates here are atomic too, but
 * prep_compound_page()'s are not: a caller that makes a hugetlb folio
 * looks again once memory_failure() takes it as one), and a new large
 * folio with a poisoned page is marked as having one. Returns whether a
 * page is poisoned. Not inlined, so that make profile can time it.
 */
static noinline bool guestmem_reformat(struct page *head,
				       unsigned int order,
				       unsigned int new_order,
				       unsigned long flags,
				       struct address_space *mapping,
				       pgoff_t index)
{
	unsigned long nr = 1UL << order, step = 1UL << new_order, i, j;
	bool poisoned = false;

	for (i = 0; i < nr; i++) {
		struct page *p = nth_page(head, i);
		unsigned long keep = __PG_HWPOISON;

		/*
		 * Drops PG_head and, in pages 1-3, the old folio's fields.
		 * The first page keeps its lock and waiters: the caller of a
		 * split holds the lock, and memory_failure() may sleep on it
		 * without a reference.
		 */
		if (!i)
			keep |= BIT(PG_locked) | BIT(PG_waiters);
		atomic_long_andnot(PAGEFLAGS_MASK & ~keep,
				   (atomic_long_t *)&p->flags);
		poisoned |= PageHWPoison(p);
		clear_compound_head(p);
		p->lru.prev = NULL;
		p->mapping = NULL;
		p->index = 0;
		set_page_private(p, 0);
		atomic_set(&p->_mapcount, -1);
		set_page_count(p, 0);
#ifdef CONFIG_MEMCG
		p->memcg_data = 0;
#endif
		if (!(i & 511))
			cond_resched();
	}

	for (i = 0; i < nr; i += step) {
		struct page *p = nth_page(head, i);

		if (new_order)
			prep_compound_page(p, new_order);
		atomic_long_or(flags, (atomic_long_t *)&p->flags);
		p->mapping = mapping;
		p->index = index + i;
		INIT_LIST_HEAD(&p->lru);
		if (!new_order || !poisoned)
			continue;
		for (j = 0; j < step; j++) {
			if (PageHWPoison(nth_page(p, j))) {
				folio_set_has_hwpoisoned(page_folio(p));
				break;
			}
		}
		cond_resched();
	}
	return poisoned;
}

/* Page cache statistics of pieces (hugetlb folios have none). */
static void guestmem_account(struct folio *folio, unsigned int order,
			     long nr)
{
	__lruvec_stat_mod_folio(folio, NR_FILE_PAGES, nr);
	if (order >= PMD_ORDER)
		__lruvec_stat_mod_folio(folio, NR_FILE_THPS, nr);
}

/*
 * Make the frozen, reformatted folio of order huge_page_order(@s->h) at
 * @s->head a hugetlb folio again, as guestmem_hugetlb_alloc() handed it
 * out: subpool, private flags (migratable among them), active list.
 */
static struct folio *guestmem_restore_hugetlb(struct guestmem_split *s)
{
	struct folio *folio = page_folio(s->head);

	folio->private = (void *)s->hpg_flags;
	spin_lock_irq(&hugetlb_lock);
	__folio_set_hugetlb(folio);
	set_hugetlb_cgroup(folio, NULL);
	set_hugetlb_cgroup_rsvd(folio, NULL);
	list_add(&folio->lru, &s->h->hugepage_activelist);
	spin_unlock_irq(&hugetlb_lock);
	hugetlb_set_folio_subpool(folio, s->spool);
	return folio;
}

/* The count a piece is frozen at: its anchor and its page cache refs. */
static int guestmem_piece_refs(struct folio *piece, bool in_cache)
{
	return 1 + (in_cache ? folio_nr_pages(piece) : 0);
}

/* Unfreeze the pieces of the first @nr pages at @head. */
static void guestmem_unfreeze_pieces(struct page *head, unsigned long nr,
				     bool in_cache)
{
	struct folio *piece;
	unsigned long i;

	for (i = 0; i < nr; i += folio_nr_pages(piece)) {
		piece = page_folio(nth_page(head, i));
		folio_ref_unfreeze(piece, guestmem_piece_refs(piece, in_cache));
	}
}

/*
 * Freeze the pieces of the order @order block at @head at the count
 * nobody else holds (guestmem_piece_refs()). Returns the OR of their
 * flags in *@or and the AND in *@and; or, with nothing frozen, -EAGAIN if
 * one is referenced or mapped, -EHWPOISON if one has a poisoned page and
 * @in_cache (a merge in the file; truncation frees poisoned pages too).
 */
static int guestmem_freeze_pieces(struct page *head, unsigned int order,
				  bool in_cache, unsigned long *or,
				  unsigned long *and)
{
	unsigned long nr = 1UL << order, i;
	struct folio *piece;
	int ret = 0;

	*or = 0;
	*and = ~0UL;
	for (i = 0; i < nr; i += folio_nr_pages(piece)) {
		piece = page_folio(nth_page(head, i));
		if (in_cache && folio_contain_hwpoisoned_page(piece))
			ret = -EHWPOISON;
		else if (folio_mapped(piece) ||
			 !folio_ref_freeze(piece, guestmem_piece_refs(piece,
								       in_cache)))
			ret = -EAGAIN;
		if (ret) {
			guestmem_unfreeze_pieces(head, i, in_cache);
			return ret;
		}
		*or |= piece->flags;
		*and &= piece->flags;
	}
	return 0;
}

/*
 * Before a merge: if some pieces of the block are up to date (zeroed or
 * written) and others are not, zero the others and mark them up to date,
 * so that the merged folio shows no stale pool content. Each under its
 * lock, as a fault zeroes a page, and before the freeze, as it sleeps.
 * The pieces stay pieces meanwhile: the caller holds the backing's lock,
 * and each piece its anchor.
 */
static void guestmem_zero_stale(struct page *head, unsigned int order)
{
	unsigned long nr = 1UL << order, i;
	struct folio *piece;

	for (i = 0; i < nr; i += folio_nr_pages(piece)) {
		piece = page_folio(nth_page(head, i));
		if (folio_test_uptodate(piece))
			break;
	}
	if (i >= nr)
		return;

	for (i = 0; i < nr; i += folio_nr_pages(piece)) {
		piece = page_folio(nth_page(head, i));
		if (folio_test_uptodate(piece))
			continue;
		folio_lock(piece);
		if (!folio_test_uptodate(piece)) {
			long j;

			/* A poisoned page stays as it is (never merged). */
			for (j = 0; j < folio_nr_pages(piece); j++)
				if (!PageHWPoison(folio_page(piece, j)))
					clear_highpage(folio_page(piece, j));
			folio_mark_uptodate(piece);
		}
		folio_unlock(piece);
		cond_resched();
	}
}

/*
 * memory_failure()'s reference on a hugetlb folio: it keeps one when it
 * handles a folio in use, which it takes only if migratable and which it
 * then makes unmigratable (the folios of a file are migratable from their
 * insertion, see guestmem_hugetlb_get_folio()).
 */
static int guestmem_mf_refs(struct folio *folio)
{
	return folio_test_hugetlb(folio) && folio_test_hwpoison(folio) &&
	       !folio_test_hugetlb_migratable(folio);
}

/*
 * A hugetlb folio made from pieces: give it the raw page list of the
 * poisoned pages among its @nr pages, as memory_failure() would have, so
 * that hugetlb dissolves it rather than reuse it. Looks at every page once
 * the folio is a hugetlb folio again, when memory_failure() no longer sets
 * the flag of a raw page. Returns whether a page is poisoned.
 */
static bool guestmem_poison_to_list(struct folio *folio)
{
	unsigned long i, nr = folio_nr_pages(folio);
	bool poisoned = false;

	for (i = 0; i < nr; i++) {
		struct page *page = folio_page(folio, i);

		if (!(i & 511))
			cond_resched();
		if (!PageHWPoison(page))
			continue;
		poisoned = true;
		spin_lock_irq(&hugetlb_lock);
		hugetlb_update_hwpoison(folio, page);
		spin_unlock_irq(&hugetlb_lock);
		/* The list and the folio's flag say it now. */
		if (i)
			ClearPageHWPoison(page);
	}
	if (poisoned && folio_nr_pages(folio) > 1)
		folio_clear_has_hwpoisoned(folio);
	return poisoned;
}

/*
 * Give the raw pages of a hugetlb folio that is about to be split its
 * poison (see the top of this file). Called with the folio frozen and no
 * longer a hugetlb folio, so memory_failure() no longer adds to its list.
 */
static void guestmem_poison_to_pages(struct folio *folio)
{
	if (folio_test_hwpoison(folio))
		folio_clear_hugetlb_hwpoison(folio);
}

/**
 * guestmem_hugetlb_split() - split the folio holding an index one level
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the file
 * @new_order: the order of the new folios: PMD_ORDER or 0
 *
 * A huge folio of 1G becomes 512 folios of 2M, one of 2M (hugetlb or a
 * piece) 512 pages; a hugetlb folio of 2M may also become a single piece
 * of 2M (which the host can map). The pages, their content and their
 * flags (poison included) do not change, only the folios around them.
 *
 * Context: process context, may sleep; takes @gh's lock and the folio
 * lock, so the caller must hold neither and no reference on the folio.
 * Return: 0 (also if there is no folio at @index or it is no bigger than
 * @new_order and not hugetlb; a 1G folio is split into 2M ones whatever
 * @new_order); -EAGAIN if somebody else holds a reference on the folio or
 * maps it (retry); -EHWPOISON for a hugetlb folio that lost track of its
 * poisoned pages; -EINVAL for a @new_order other than 0 or PMD_ORDER;
 * -ENOMEM. Nothing changed on error.
 */
int guestmem_hugetlb_split(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index,
			   unsigned int new_order)
{
	unsigned int order, mid, i;
	struct guestmem_split *s = NULL;
	unsigned long nr, flags, step;
	struct folio *folio, *piece;
	bool hugetlb;
	pgoff_t base;
	int ret = 0;
	XA_STATE(xas, &mapping->i_pages, 0);
	XA_STATE(xas2, &mapping->i_pages, 0);
	XA_STATE(xhide, &mapping->i_pages, 0);

	mutex_lock(&gh->lock);
	folio = filemap_lock_folio(mapping, index);
	if (IS_ERR(folio))
		goto out;

	order = folio_order(folio);
	hugetlb = folio_test_hugetlb(folio);
	if (new_order && new_order != PMD_ORDER) {
		ret = -EINVAL;
		goto unlock;
	}
	/* One level at a time (the folio may have changed since asked). */
	if (order > PMD_ORDER)
		new_order = PMD_ORDER;
	if (order < new_order || (order == new_order && !hugetlb))
		goto unlock;
	nr = folio_nr_pages(folio);
	step = 1UL << new_order;
	base = folio->index;

	/* Only folios of splittable files have their whole vmemmap. */
	if (WARN_ON_ONCE(!gh->splittable ||
			 (hugetlb &&
			  folio_test_hugetlb_vmemmap_optimized(folio)))) {
		ret = -EBUSY;
		goto unlock;
	}
	/* Mapped by the host: its page table entries hold references. */
	if (folio_mapped(folio)) {
		ret = -EAGAIN;
		goto unlock;
	}
	/* Which of its pages are poisoned is not known: keep it whole. */
	if (hugetlb && folio_test_hwpoison(folio) &&
	    folio_test_hugetlb_raw_hwp_unreliable(folio)) {
		ret = -EHWPOISON;
		goto unlock;
	}

	if (hugetlb) {
		s = kzalloc(sizeof(*s), GFP_KERNEL);
		if (!s) {
			ret = -ENOMEM;
			goto unlock;
		}
		s->head = &folio->page;
		s->h = gh->h;
		INIT_LIST_HEAD(&s->orphan);
		ret = xa_insert(&gh->split, base >> huge_page_order(gh->h), s,
				GFP_KERNEL);
		if (ret)
			goto free;
	}

	/*
	 * The placeholder's multi-index entry is split later: XArray nodes
	 * hold 64 slots, so a split by more than one node level (order 18 to
	 * 9) goes through entries of order 12. A folio that keeps its order
	 * keeps its entry.
	 */
	mid = round_up(new_order, XA_CHUNK_SHIFT);
	if (new_order == order) {
		mid = new_order;
	} else if (mid > new_order && mid < order) {
		xas_set_order(&xas, base, mid);
		xas_split_alloc(&xas, GUESTMEM_BUSY, order, GFP_KERNEL);
		xas_set_order(&xas2, base, new_order);
		for (i = 0; i < nr >> mid && !xas_error(&xas2); i++)
			xas_split_alloc(&xas2, GUESTMEM_BUSY, mid, GFP_KERNEL);
	} else {
		xas_set_order(&xas, base, new_order);
		xas_split_alloc(&xas, GUESTMEM_BUSY, order, GFP_KERNEL);
		mid = new_order;
	}
	ret = xas_error(&xas) ?: xas_error(&xas2);
	if (ret)
		goto erase;

	/*
	 * Hide it, then freeze it at the page cache's references and ours,
	 * a piece's anchor and memory_failure()'s on a hugetlb folio it took
	 * as in use (it keeps one exactly when it clears migratable). Hidden
	 * first, it is never frozen in sight of a lookup. Both stores have
	 * the folio entry's shape: they allocate nothing and cannot fail.
	 */
	xas_set_order(&xhide, base, order);
	xas_lock_irq(&xhide);
	xas_store(&xhide, GUESTMEM_BUSY);
	if (!folio_ref_freeze(folio, nr + 1 + !hugetlb +
			      guestmem_mf_refs(folio))) {
		xas_store(&xhide, folio);
		xas_unlock_irq(&xhide);
		ret = -EAGAIN;
		goto erase;
	}
	if (hugetlb)
		guestmem_account(folio, new_order, nr);
	else
		__lruvec_stat_mod_folio(folio, NR_FILE_THPS, -nr);
	xas_unlock_irq(&xhide);

	if (hugetlb) {
		s->spool = hugetlb_folio_subpool(folio);
		s->hpg_flags = (unsigned long)folio->private;
		spin_lock_irq(&hugetlb_lock);
		list_del(&folio->lru);
		__folio_clear_hugetlb(folio);
		spin_unlock_irq(&hugetlb_lock);
		guestmem_poison_to_pages(folio);
	}

	flags = folio->flags & (BIT(PG_uptodate) | BIT(PG_dirty));
	/* The first piece stays locked: ours, unlocked below. */
	guestmem_reformat(&folio->page, order, new_order, flags, mapping,
			  base);

	if (new_order != order) {
		xas_lock_irq(&xas);
		xas_split(&xas, GUESTMEM_BUSY, order);
		xas_unlock_irq(&xas);
	}
	for (i = 0; mid != new_order && i < nr >> mid; i++) {
		xas_lock_irq(&xas2);
		xas_set(&xas2, base + ((unsigned long)i << mid));
		xas_split(&xas2, GUESTMEM_BUSY, mid);
		xas_unlock_irq(&xas2);
	}

	/*
	 * Publish the pieces, each live before lookups can find it, each
	 * stored over its whole placeholder entry (siblings included, so
	 * that the nodes' value counts stay right).
	 */
	for (i = 0; i < nr >> new_order; i++) {
		piece = page_folio(nth_page(&folio->page,
					    (unsigned long)i << new_order));
		/* Ours too on the first: unlocked and dropped below. */
		folio_ref_unfreeze(piece, step + 1 + !i);
		xas_set_order(&xhide, piece->index, new_order);
		xas_lock_irq(&xhide);
		xas_store(&xhide, piece);
		xas_unlock_irq(&xhide);
		if (!(i & 63))
			cond_resched();
	}
	s = NULL;
	goto unlock;

erase:
	if (hugetlb)
		xa_erase(&gh->split, base >> huge_page_order(gh->h));
free:
	kfree(s);
unlock:
	folio_unlock(folio);
	folio_put(folio);
out:
	xas_destroy(&xas);
	xas_destroy(&xas2);
	mutex_unlock(&gh->lock);
	return ret;
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_split, "kvm");

/* What a merge makes of a block. */
enum guestmem_merge_to {
	GUESTMEM_MERGE_PIECE,	/* single pages into a 2M piece */
	GUESTMEM_MERGE_HUGETLB,	/* a whole huge page into its hugetlb folio */
};

/*
 * The merges below, on the block at @index: its pieces must all be of one
 * order, single pages for a piece; for the hugetlb folio 2M pieces (1G
 * pages), or single pages or one 2M piece (2M pages).
 */
static int guestmem_merge(struct guestmem_hugetlb *gh,
			  struct address_space *mapping, pgoff_t index,
			  enum guestmem_merge_to to)
{
	unsigned int horder = huge_page_order(gh->h), order, sub, i;
	unsigned long nr, or, and, flags;
	struct guestmem_split *s;
	struct folio *folio;
	struct page *head;
	pgoff_t base;
	int ret = 0;
	XA_STATE(xas, &mapping->i_pages, 0);

	order = to == GUESTMEM_MERGE_HUGETLB ? horder : PMD_ORDER;
	nr = 1UL << order;
	base = round_down(index, nr);
	xas_set_order(&xas, base, order);

	mutex_lock(&gh->lock);
	s = xa_load(&gh->split, base >> horder);
	if (!s)
		goto out;

	/* Every piece of the block, in place and of one order. */
	head = nth_page(s->head, base & ((1UL << horder) - 1));
	rcu_read_lock();
	sub = folio_order(page_folio(head));
	if (sub > order || (sub == order && to == GUESTMEM_MERGE_PIECE)) {
		/* One folio already. */
		rcu_read_unlock();
		goto out;
	}
	if (to == GUESTMEM_MERGE_HUGETLB && order > PMD_ORDER &&
	    sub != PMD_ORDER)
		ret = -EBUSY;
	for (i = 0; !ret && i < nr >> sub; i++) {
		folio = page_folio(nth_page(head, (unsigned long)i << sub));
		if (folio_order(folio) != sub ||
		    xa_load(&mapping->i_pages, base + ((unsigned long)i << sub))
		    != folio)
			ret = -EBUSY;
	}
	rcu_read_unlock();
	if (ret)
		goto out;

	guestmem_zero_stale(head, order);

	/*
	 * Hide the block: freeze the pieces and put the placeholder in their
	 * place, in one xa_lock section (a lookup that found a piece before
	 * the freeze retries until the placeholder is in, as for a THP split).
	 */
	xas_lock_irq(&xas);
	ret = guestmem_freeze_pieces(head, order, true, &or, &and);
	if (ret)
		goto unlock;
	/* A fault zeroed or filled a piece since: zero the rest first. */
	if ((or & BIT(PG_uptodate)) && !(and & BIT(PG_uptodate))) {
		ret = -EAGAIN;
		goto unfreeze;
	}
	flags = or & (BIT(PG_uptodate) | BIT(PG_dirty));
	xas_store(&xas, GUESTMEM_BUSY);
	ret = xas_error(&xas);
	if (ret)
		goto unfreeze;
	folio = page_folio(head);
	if (to == GUESTMEM_MERGE_HUGETLB)
		guestmem_account(folio, sub, -nr);
	else
		__lruvec_stat_mod_folio(folio, NR_FILE_THPS, nr);
	xas_unlock_irq(&xas);

	guestmem_reformat(head, order, order, flags, mapping, base);
	folio = page_folio(head);
	if (to == GUESTMEM_MERGE_HUGETLB) {
		xa_erase(&gh->split, base >> horder);
		guestmem_restore_hugetlb(s);
		/* Poisoned while it was rewritten: hugetlb's way from now. */
		guestmem_poison_to_list(folio);
		kfree(s);
		folio_ref_unfreeze(folio, nr);
	} else {
		folio_ref_unfreeze(folio, nr + 1);
	}

	/* Publish it: the same shape as the placeholder, nothing to allocate. */
	xas_reset(&xas);
	xas_lock_irq(&xas);
	xas_store(&xas, folio);
	xas_unlock_irq(&xas);
	goto out;

unfreeze:
	guestmem_unfreeze_pieces(head, nr, true);
unlock:
	xas_unlock_irq(&xas);
out:
	mutex_unlock(&gh->lock);
	return ret;
}

/**
 * guestmem_hugetlb_merge() - merge the single pages of a 2M block
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the block
 *
 * The 512 single pages of a split 2M block become one 2M piece again,
 * which the host can map with one PMD. It stays a piece, whatever the
 * huge page size: guestmem_hugetlb_restore() makes hugetlb folios.
 *
 * Context: process context, may sleep; takes @gh's lock. The caller makes
 * sure that nobody maps or refers to the block's pages any more (KVM's
 * mappings zapped, the host's unmapped).
 * Return: 0 (also if the block is one folio already or not in the page
 * cache); -EBUSY if its folios are not all single pages; -EAGAIN if one
 * of them is still referenced or mapped (retry later); -EHWPOISON if one
 * has a poisoned page (it stays split); -ENOMEM. Nothing changed on error.
 */
int guestmem_hugetlb_merge(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index)
{
	return guestmem_merge(gh, mapping, index, GUESTMEM_MERGE_PIECE);
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_merge, "kvm");

/**
 * guestmem_hugetlb_restore() - make a split huge page a hugetlb folio again
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the huge page
 *
 * The pieces of a split huge page become its hugetlb folio again: 512 2M
 * pieces for a 1G page; 512 single pages or one 2M piece for a 2M page.
 * The host cannot map hugetlb folios: only private memory is restored.
 *
 * Context: as guestmem_hugetlb_merge().
 * Return: as guestmem_hugetlb_merge(); -EBUSY if the pieces are not of
 * those orders.
 */
int guestmem_hugetlb_restore(struct guestmem_hugetlb *gh,
			     struct address_space *mapping, pgoff_t index)
{
	return guestmem_merge(gh, mapping, index, GUESTMEM_MERGE_HUGETLB);
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_restore, "kvm");

/*
 * Free a poisoned hugetlb folio that left the file, holding the last
 * reference: to the pool (reservation and subpool accounting as for any
 * folio, and nobody allocates a poisoned folio), then dissolve it, as
 * memory failure handling does for hugetlbfs pages, so that its healthy
 * pages return to the buddy allocator and its poisoned ones are taken out
 * of it for good (kept with a reference, as memory_failure() does). If
 * hugetlb cannot dissolve it now (its pool has no page to spare for
 * reservations), it stays in the pool's free list, where nobody takes it.
 * Its vmemmap is restored first, so that hugetlb frees it at once even as
 * a surplus page, before the poisoned pages are looked for.
 */
static void guestmem_free_poisoned(struct folio *folio)
{
	struct hstate *h = folio_hstate(folio);
	unsigned long pfn = folio_pfn(folio), nr = pages_per_huge_page(h), i;
	struct page *page;

	if (folio_test_hugetlb_vmemmap_optimized(folio) &&
	    folio_ref_freeze(folio, 1)) {
		hugetlb_vmemmap_restore_folio(h, folio);
		folio_ref_unfreeze(folio, 1);
	}
	folio_put(folio);
	if (dissolve_free_hugetlb_folio(folio))
		return;
	drain_all_pages(page_zone(pfn_to_page(pfn)));
	for (i = 0; i < nr; i++) {
		page = pfn_to_page(pfn + i);
		if (PageHWPoison(page) && take_page_off_buddy(page))
			page_ref_inc(page);
		if (!(i & 511))
			cond_resched();
	}
}

/*
 * Merge a split huge page whose pieces left the page cache and free it to
 * the pool. Fails with -EAGAIN, changing nothing, while a piece is still
 * referenced by anyone but its anchor. A huge page with poisoned pages
 * gets their list back and is dissolved.
 */
static int guestmem_free_split(struct guestmem_split *s)
{
	unsigned int order = huge_page_order(s->h);
	struct guestmem_hugetlb *gh = s->gh;
	unsigned long or, and;
	struct folio *folio;

	if (guestmem_freeze_pieces(s->head, order, false, &or, &and))
		return -EAGAIN;
	guestmem_reformat(s->head, order, order, 0, NULL, 0);
	folio = guestmem_restore_hugetlb(s);
	if (guestmem_poison_to_list(folio)) {
		/* The raw page list needs the tail pages: no HVO for it. */
		folio_ref_unfreeze(folio, 1);
		guestmem_free_poisoned(folio);
	} else {
		/* Best effort, as for a new folio; needs the count frozen. */
		hugetlb_vmemmap_optimize_folio(s->h, folio);
		folio_ref_unfreeze(folio, 1);
		/* free_huge_folio(): back to the pool and the subpool. */
		folio_put(folio);
	}
	kfree(s);
	if (gh)
		guestmem_hugetlb_put(gh);
	return 0;
}

/* Free the orphans nobody refers to any more; true if none is left. */
static bool guestmem_reclaim_orphans(void)
{
	struct guestmem_split *s, *next;
	LIST_HEAD(list);
	LIST_HEAD(busy);
	bool done;

	spin_lock(&guestmem_orphan_lock);
	list_splice_init(&guestmem_orphans, &list);
	spin_unlock(&guestmem_orphan_lock);

	list_for_each_entry_safe(s, next, &list, orphan) {
		list_del_init(&s->orphan);
		if (guestmem_free_split(s))
			list_add_tail(&s->orphan, &busy);
		cond_resched();
	}

	spin_lock(&guestmem_orphan_lock);
	list_splice(&busy, &guestmem_orphans);
	done = list_empty(&guestmem_orphans);
	spin_unlock(&guestmem_orphan_lock);
	return done;
}

static void guestmem_orphan_fn(struct work_struct *work)
{
	/* Nobody knows how long a pin lasts: look again in a while. */
	if (!guestmem_reclaim_orphans())
		schedule_delayed_work(&guestmem_orphan_work, HZ / 10);
}

/* Ticks truncation waits for passing references before making orphans. */
#define GUESTMEM_FREE_TRIES	10

/* Free, or hand to the orphan work, the split pages of [@first, @last]. */
static void guestmem_free_splits(struct guestmem_hugetlb *gh,
				 unsigned long first, unsigned long last)
{
	struct guestmem_split *s;
	unsigned long i;
	bool orphans = false;

	lockdep_assert_held(&gh->lock);
	xa_for_each_range(&gh->split, i, s, first, last) {
		int tries = GUESTMEM_FREE_TRIES;

		xa_erase(&gh->split, i);
		/* A vCPU fault or a lookup lets go within moments. */
		while (guestmem_free_split(s) && tries--)
			schedule_timeout_uninterruptible(1);
		if (tries >= 0)
			continue;
		s->gh = gh;
		refcount_inc(&gh->refs);
		spin_lock(&guestmem_orphan_lock);
		list_add_tail(&s->orphan, &guestmem_orphans);
		spin_unlock(&guestmem_orphan_lock);
		orphans = true;
	}
	if (orphans)
		schedule_delayed_work(&guestmem_orphan_work, HZ / 10);
}

/**
 * guestmem_hugetlb_truncate() - remove whole huge pages from a file
 * @gh: the backing
 * @mapping: the file's mapping
 * @lstart: first byte, aligned to the huge page size
 * @lend: last byte (inclusive), one before a multiple of the huge page size
 *
 * Truncates the page cache over the range (unmapping the host's mappings
 * of it) and returns the huge pages to the pool: whole folios when their
 * last reference goes, split ones after merging their pieces back, which
 * waits for references that outlive the truncation (pins).
 *
 * Context: process context, may sleep. The caller holds the mapping's
 * invalidate lock.
 */
void guestmem_hugetlb_truncate(struct guestmem_hugetlb *gh,
			       struct address_space *mapping, loff_t lstart,
			       loff_t lend)
{
	unsigned int shift = huge_page_shift(gh->h);
	struct folio_batch fbatch, poisoned;
	pgoff_t index = lstart >> PAGE_SHIFT;
	struct folio *folio;
	unsigned int i;

	mutex_lock(&gh->lock);
	/*
	 * Whole hugetlb folios poisoned in the file: keep a reference, to
	 * dissolve them once truncation let them go (a handful at most).
	 */
	folio_batch_init(&fbatch);
	folio_batch_init(&poisoned);
	while (filemap_get_folios(mapping, &index, lend >> PAGE_SHIFT,
				  &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			folio = fbatch.folios[i];
			if (folio_test_hugetlb(folio) &&
			    folio_test_hwpoison(folio) &&
			    folio_batch_space(&poisoned)) {
				folio_batch_add(&poisoned, folio);
				fbatch.folios[i] = NULL;
			}
		}
		for (i = 0; i < folio_batch_count(&fbatch); i++)
			if (fbatch.folios[i])
				folio_put(fbatch.folios[i]);
		folio_batch_reinit(&fbatch);
		cond_resched();
	}
	truncate_inode_pages_range(mapping, lstart, lend);
	guestmem_free_splits(gh, lstart >> shift, lend >> shift);
	mutex_unlock(&gh->lock);

	/*
	 * Ours and memory_failure()'s are all that is left once truncation
	 * dropped the page cache's: take over the latter and free it. A
	 * folio somebody else still holds stays theirs (and out of the pool).
	 */
	for (i = 0; i < folio_batch_count(&poisoned); i++) {
		int refs = 1 + guestmem_mf_refs(poisoned.folios[i]);

		folio = poisoned.folios[i];
		if (folio_ref_freeze(folio, refs)) {
			folio_ref_unfreeze(folio, 1);
			guestmem_free_poisoned(folio);
		} else {
			folio_put(folio);
		}
	}
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_truncate, "kvm");

/**
 * guestmem_hugetlb_destroy() - drop a file's hugetlb backing
 * @gh: the backing, from guestmem_hugetlb_create()
 *
 * Call after the file's folios left the page cache. Split huge pages are
 * merged and freed (or left to the orphan work while a piece is still
 * referenced); the reservation goes back to the pool, and the cgroup
 * charges with it, once the last folio is freed.
 */
void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh)
{
	mutex_lock(&gh->lock);
	guestmem_free_splits(gh, 0, ULONG_MAX);
	mutex_unlock(&gh->lock);
	xa_destroy(&gh->split);
	hugepage_put_subpool(gh->spool);
	guestmem_hugetlb_put(gh);
}
EXPORT_SYMBOL_GPL_FOR_MODULES(guestmem_hugetlb_destroy, "kvm");
