/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * In-kernel API between mm/ and guest_memfd (virt/kvm/guest_memfd/): guest
 * memory backed by hugetlb pages without hugetlbfs.
 */
#ifndef _LINUX_GUESTMEM_H
#define _LINUX_GUESTMEM_H

#include <linux/err.h>
#include <linux/fs.h>
#include <linux/page-flags.h>
#include <linux/types.h>

struct folio;
struct guestmem_hugetlb;
struct hugetlb_cgroup;
struct mempolicy;

#ifdef CONFIG_GUESTMEM_HUGETLB
struct guestmem_hugetlb *guestmem_hugetlb_create(unsigned int page_shift,
						 loff_t size, bool splittable);
void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh);
unsigned long guestmem_hugetlb_page_sizes(void);
unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh);
struct folio *guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index, struct mempolicy *mpol,
					 pgoff_t ilx);
int guestmem_hugetlb_split(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index,
			   unsigned int new_order);
int guestmem_hugetlb_merge(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index);
int guestmem_hugetlb_restore(struct guestmem_hugetlb *gh,
			     struct address_space *mapping, pgoff_t index);
bool guestmem_hugetlb_block_ready(struct guestmem_hugetlb *gh,
				  struct address_space *mapping,
				  pgoff_t index, unsigned int order);
void guestmem_hugetlb_truncate(struct guestmem_hugetlb *gh,
			       struct address_space *mapping, loff_t lstart,
			       loff_t lend);
struct folio *guestmem_hugetlb_lookup(struct guestmem_hugetlb *gh,
				      struct address_space *mapping,
				      pgoff_t index);
#else
static inline struct guestmem_hugetlb *
guestmem_hugetlb_create(unsigned int page_shift, loff_t size, bool splittable)
{
	return ERR_PTR(-EINVAL);
}

static inline void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh)
{
}

static inline unsigned long guestmem_hugetlb_page_sizes(void)
{
	return 0;
}

static inline unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh)
{
	return 0;
}

static inline struct folio *
guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index,
			   struct mempolicy *mpol, pgoff_t ilx)
{
	return ERR_PTR(-EINVAL);
}

static inline int guestmem_hugetlb_split(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index, unsigned int new_order)
{
	return -EINVAL;
}

static inline int guestmem_hugetlb_merge(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index)
{
	return -EINVAL;
}

static inline int guestmem_hugetlb_restore(struct guestmem_hugetlb *gh,
					   struct address_space *mapping,
					   pgoff_t index)
{
	return -EINVAL;
}

static inline bool guestmem_hugetlb_block_ready(struct guestmem_hugetlb *gh,
						struct address_space *mapping,
						pgoff_t index,
						unsigned int order)
{
	return false;
}

static inline void guestmem_hugetlb_truncate(struct guestmem_hugetlb *gh,
					     struct address_space *mapping,
					     loff_t lstart, loff_t lend)
{
}

static inline struct folio *
guestmem_hugetlb_lookup(struct guestmem_hugetlb *gh,
			struct address_space *mapping, pgoff_t index)
{
	return ERR_PTR(-ENOENT);
}
#endif

#if defined(CONFIG_GUESTMEM_HUGETLB) && defined(CONFIG_CGROUP_HUGETLB)
void guestmem_hugetlb_cgroup_offline(struct hugetlb_cgroup *hcg,
				     struct hugetlb_cgroup *parent);
#else
static inline void
guestmem_hugetlb_cgroup_offline(struct hugetlb_cgroup *hcg,
				struct hugetlb_cgroup *parent)
{
}
#endif

/**
 * guestmem_hugetlb_extra_refs() - references a backing holds on a folio
 * @gh: the file's hugetlb backing, or NULL
 * @folio: a folio in the file's page cache
 *
 * A piece of a split huge page holds one reference of its own (its
 * anchor) besides the page cache's.
 *
 * Return: the number of such references.
 */
static inline int guestmem_hugetlb_extra_refs(struct guestmem_hugetlb *gh,
					      struct folio *folio)
{
	return gh && !folio_test_hugetlb(folio);
}

#endif /* _LINUX_GUESTMEM_H */
