// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd backed by hugetlb pages (GUEST_MEMFD_FLAG_HUGETLB): the glue
 * between the guest_memfd inode and mm/guestmem_hugetlb.c.
 *
 * The whole file is reserved in the pool at creation. Every folio is one
 * huge page at a naturally aligned index; KVM maps it at the largest level
 * the folio, the memslot's alignment and the page state allow (see
 * kvm_gmem_mapping_order()). Host mmap and conversion of hugetlb files,
 * which need folios split on shared faults and merged back, are not
 * supported yet: GUEST_MEMFD_FLAG_HUGETLB with GUEST_MEMFD_FLAG_MMAP is
 * refused.
 */
#include <linux/guestmem.h>
#include <linux/kvm_host.h>
#include <linux/pagemap.h>

#include "gmem.h"

/* The flag and the page size field; the size is checked at setup. */
#define KVM_GMEM_HUGETLB_FLAGS \
	(GUEST_MEMFD_FLAG_HUGETLB | \
	 (GUEST_MEMFD_HUGETLB_MASK << GUEST_MEMFD_HUGETLB_SHIFT))

/**
 * kvm_gmem_hugetlb_flags() - the hugetlb bits of the valid creation flags
 *
 * Return: GUEST_MEMFD_FLAG_HUGETLB and the page size field if the kernel
 * can back guest_memfd with hugetlb pages, else 0.
 */
u64 kvm_gmem_hugetlb_flags(void)
{
	return IS_ENABLED(CONFIG_GUESTMEM_HUGETLB) ? KVM_GMEM_HUGETLB_FLAGS : 0;
}

/**
 * kvm_gmem_hugetlb_setup() - give a new inode its hugetlb backing
 * @gi: the inode, not visible to anyone yet
 * @size: the file size
 * @flags: the creation flags, already checked against the valid mask
 *
 * Return: 0 (also without GUEST_MEMFD_FLAG_HUGETLB); -EINVAL for a page
 * size field without the flag, the flag with GUEST_MEMFD_FLAG_MMAP, a page
 * size without a hugetlb pool or a size that is not a multiple of it;
 * -ENOMEM if the pool cannot reserve the whole file.
 */
int kvm_gmem_hugetlb_setup(struct kvm_gmem_inode *gi, loff_t size, u64 flags)
{
	unsigned int shift = (flags >> GUEST_MEMFD_HUGETLB_SHIFT) &
			     GUEST_MEMFD_HUGETLB_MASK;
	struct guestmem_hugetlb *gh;

	if (!(flags & GUEST_MEMFD_FLAG_HUGETLB))
		return shift ? -EINVAL : 0;
	if (flags & GUEST_MEMFD_FLAG_MMAP)
		return -EINVAL;

	gh = guestmem_hugetlb_create(shift, size);
	if (IS_ERR(gh))
		return PTR_ERR(gh);
	gi->hugetlb = gh;
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

/**
 * kvm_gmem_hugetlb_get_folio() - the locked folio of an index, new or not
 * @gi: an inode with hugetlb backing
 * @index: the page index
 *
 * Return: the locked folio holding @index, with a reference, or an
 * ERR_PTR().
 */
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_inode *gi,
					 pgoff_t index)
{
	return guestmem_hugetlb_get_folio(gi->hugetlb, gi->vfs_inode.i_mapping,
					  index);
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
