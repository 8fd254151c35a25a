/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * In-kernel API between mm/ and guest_memfd (virt/kvm/guest_memfd/): guest
 * memory backed by hugetlb pages without hugetlbfs.
 */
#ifndef _LINUX_GUESTMEM_H
#define _LINUX_GUESTMEM_H

#include <linux/err.h>
#include <linux/fs.h>
#include <linux/types.h>

struct folio;
struct guestmem_hugetlb;

#ifdef CONFIG_GUESTMEM_HUGETLB
struct guestmem_hugetlb *guestmem_hugetlb_create(unsigned int page_shift,
						 loff_t size);
void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh);
unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh);
struct folio *guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
					 struct address_space *mapping,
					 pgoff_t index);
#else
static inline struct guestmem_hugetlb *
guestmem_hugetlb_create(unsigned int page_shift, loff_t size)
{
	return ERR_PTR(-EINVAL);
}

static inline void guestmem_hugetlb_destroy(struct guestmem_hugetlb *gh)
{
}

static inline unsigned int guestmem_hugetlb_order(struct guestmem_hugetlb *gh)
{
	return 0;
}

static inline struct folio *
guestmem_hugetlb_get_folio(struct guestmem_hugetlb *gh,
			   struct address_space *mapping, pgoff_t index)
{
	return ERR_PTR(-EINVAL);
}
#endif

#endif /* _LINUX_GUESTMEM_H */
