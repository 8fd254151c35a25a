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
 * pages are never reclaimed). The hugetlb cgroup is not charged yet.
 *
 * Locking: @lock serializes the lookup-allocate-insert sequence of one
 * file, so that concurrent faults on a missing folio allocate it once and
 * the subpool's maximum (the file size) is never exceeded transiently.
 */
#include <linux/guestmem.h>
#include <linux/hugetlb.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/slab.h>

/**
 * struct guestmem_hugetlb - hugetlb backing of one guest_memfd inode
 * @h: the hstate the folios come from
 * @spool: the subpool holding the file's reservation
 * @lock: serializes allocation and page cache insertion
 */
struct guestmem_hugetlb {
	struct hstate *h;
	struct hugepage_subpool *spool;
	struct mutex lock;	/* lookup, allocation and insertion */
};

/**
 * guestmem_hugetlb_create() - set up hugetlb backing for a file
 * @page_shift: log2 of the huge page size
 * @size: file size in bytes, a multiple of the huge page size
 *
 * Reserves the whole file in the pool of the hstate.
 *
 * Context: process context, may sleep.
 * Return: the backing, ERR_PTR(-EINVAL) if there is no hstate of that
 * size or @size is not a positive multiple of it, ERR_PTR(-ENOMEM) if the
 * pool cannot reserve the file.
 */
struct guestmem_hugetlb *guestmem_hugetlb_create(unsigned int page_shift,
						 loff_t size)
{
	struct guestmem_hugetlb *gh;
	struct hstate *h;

	if (page_shift <= PAGE_SHIFT || page_shift >= BITS_PER_LONG)
		return ERR_PTR(-EINVAL);
	h = size_to_hstate(1UL << page_shift);
	if (!h || size <= 0 || !IS_ALIGNED(size, huge_page_size(h)))
		return ERR_PTR(-EINVAL);

	gh = kzalloc(sizeof(*gh), GFP_KERNEL_ACCOUNT);
	if (!gh)
		return ERR_PTR(-ENOMEM);

	gh->h = h;
	mutex_init(&gh->lock);
	gh->spool = hugepage_new_subpool(h, size >> huge_page_shift(h),
					 size >> huge_page_shift(h));
	if (!gh->spool) {
		kfree(gh);
		return ERR_PTR(-ENOMEM);
	}
	return gh;
}
EXPORT_SYMBOL_GPL(guestmem_hugetlb_create);

/**
 * guestmem_hugetlb_destroy() - drop a file's hugetlb backing
 * @gh: the backing, from guestmem_hugetlb_create()
 *
 * Call after the file's folios left the page cache. The reservation goes
 * back to the pool once the last folio is freed.
 */
void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh)
{
	hugepage_put_subpool(gh->spool);
	mutex_destroy(&gh->lock);
	kfree(gh);
}
EXPORT_SYMBOL_GPL(guestmem_hugetlb_destroy);

/**
 * guestmem_hugetlb_order() - folio order of a backing
 * @gh: the backing
 *
 * Return: the order of every folio guestmem_hugetlb_get_folio() returns.
 */
unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh)
{
	return huge_page_order(gh->h);
}
EXPORT_SYMBOL_GPL(guestmem_hugetlb_order);

/* Take a reserved folio of the file's subpool, or NULL. */
static struct folio *guestmem_hugetlb_alloc(struct guestmem_hugetlb *gh)
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

	folio = alloc_hugetlb_folio_reserve(h, numa_mem_id(), NULL,
					    htlb_alloc_mask(h));
	if (!folio) {
		/* Keeps the reservation in the subpool: nothing else moved. */
		hugepage_subpool_put_pages(gh->spool, 1);
		return NULL;
	}
	hugetlb_set_folio_subpool(folio, gh->spool);
	/*
	 * guest_memfd reads "up to date" as "zeroed or filled": whatever a
	 * previous user of this pool page left set, the new file has not
	 * written it yet.
	 */
	folio_clear_uptodate(folio);
	return folio;
}

/**
 * guestmem_hugetlb_get_folio() - the folio of a file index, allocated if new
 * @gh: the backing
 * @mapping: the file's mapping
 * @index: a page index in the file
 *
 * A new folio is neither zeroed nor up to date; the caller zeroes or
 * fills it and marks it up to date.
 *
 * Context: process context, may sleep.
 * Return: the locked folio containing @index with a reference held, or
 * ERR_PTR(-ENOMEM) (only if the pool broke the reservation's promise).
 */
struct folio *guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index)
{
	pgoff_t base = round_down(index, pages_per_huge_page(gh->h));
	struct folio *folio;
	int err;

	folio = filemap_lock_folio(mapping, index);
	if (!IS_ERR(folio))
		return folio;

	mutex_lock(&gh->lock);
	folio = filemap_lock_folio(mapping, index);
	if (!IS_ERR(folio))
		goto out;

	folio = guestmem_hugetlb_alloc(gh);
	if (!folio) {
		folio = ERR_PTR(-ENOMEM);
		goto out;
	}

	__folio_set_locked(folio);
	err = __filemap_add_folio(mapping, folio, base, GFP_KERNEL, NULL);
	if (err) {
		__folio_clear_locked(folio);
		/* Back to the pool, its reservation back to the subpool. */
		folio_put(folio);
		folio = ERR_PTR(err);
	}
out:
	mutex_unlock(&gh->lock);
	return folio;
}
EXPORT_SYMBOL_GPL(guestmem_hugetlb_get_folio);
