/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * guest_memfd internals shared by the files of virt/kvm/guest_memfd/.
 *
 * Objects:
 *  - struct kvm_gmem_inode: one per guest_memfd inode (the memory). It owns
 *    the creation flags, the page state (the one lookup, state.h) and the
 *    list of files that give VMs access to it.
 *  - struct kvm_gmem_file: one per file, i.e. one VM's view: the VM and
 *    the memslots bound to ranges of the file.
 *
 * Lock order (outermost first):
 *   kvm->slots_lock
 *     mmap_lock / per-VMA lock (host page faults)
 *       mapping->invalidate_lock (the "gmem lock")
 *         kvm->mmu_lock
 *         struct guestmem_hugetlb's lock (hugetlb files: allocation, split,
 *         merge; mm/guestmem_hugetlb.c), never held with kvm->mmu_lock
 *           folio lock, hugetlb_lock, the page cache's xa_lock
 *
 * KVM's vCPU faults (kvm_gmem_get_pfn()) take no invalidate lock: the MMU
 * invalidation of conversions and holes makes them retry instead. On
 * hugetlb files they may take the guestmem_hugetlb lock to split.
 *
 * The invalidate lock protects the state map (writers hold it exclusive,
 * readers use RCU), the file list and every file's bindings (writers hold
 * it exclusive). Host mmap faults hold it shared while they check the state
 * and install the page, so a conversion to private, which holds it
 * exclusive, cannot race with a new host mapping of the range.
 */
#ifndef __KVM_GMEM_H
#define __KVM_GMEM_H

#include <linux/fs.h>
#include <linux/guestmem.h>
#include <linux/kvm_host.h>
#include <linux/list.h>
#include <linux/mempolicy.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include "state.h"

/**
 * struct kvm_gmem_inode - one guest_memfd inode
 * @flags: GUEST_MEMFD_FLAG_* given at creation
 * @owner: the module that provides KVM (kvm_gmem_init()), held until the
 *	inode is freed; NULL for the pseudo filesystem's root
 * @hugetlb: hugetlb backing (GUEST_MEMFD_FLAG_HUGETLB), or NULL
 * @state: page state, guarded by @vfs_inode.i_mapping->invalidate_lock
 * @files: struct kvm_gmem_file.entry of the files open on this inode,
 *	guarded by the invalidate lock
 * @uf_wq: tasks waiting for missing pages (userfault.c)
 * @policy: NUMA memory policy per page range, set by mbind() on a mapping
 *	of the file; its own lock guards it
 * @vfs_inode: the VFS inode
 */
struct kvm_gmem_inode {
	u64 flags;
	struct module *owner;
	struct guestmem_hugetlb *hugetlb;
	struct kvm_gmem_state state;
	struct list_head files;
	wait_queue_head_t uf_wq;
	struct shared_policy policy;
	struct inode vfs_inode;
};

/**
 * struct kvm_gmem_file - one VM's view of a guest_memfd inode
 * @kvm: the VM; the file holds a reference on it
 * @bindings: page index -> struct kvm_memory_slot bound there, guarded by
 *	the invalidate lock for writes
 * @entry: link in struct kvm_gmem_inode.files
 */
struct kvm_gmem_file {
	struct kvm *kvm;
	struct xarray bindings;
	struct list_head entry;
};

static inline struct kvm_gmem_inode *KVM_GMEM_I(struct inode *inode)
{
	return container_of(inode, struct kvm_gmem_inode, vfs_inode);
}

static inline struct kvm_gmem_inode *kvm_gmem_file_inode(struct file *file)
{
	return KVM_GMEM_I(file_inode(file));
}

/* Whether the host may mmap the file. */
static inline bool kvm_gmem_has_mmap(struct kvm_gmem_inode *gi)
{
	return gi->flags & GUEST_MEMFD_FLAG_MMAP;
}

/*
 * Whether the file, not the VM's memory attributes, says which of its pages
 * are shared and which private: files the host can map, and files whose
 * pages start shared. KVM then takes shared pages from the file too (a
 * memslot bound to it is served by guest_memfd alone), and the state
 * changes with KVM_SET_MEMORY_ATTRIBUTES2 on the file. Other files keep
 * 6.12's model: KVM_SET_MEMORY_ATTRIBUTES on the VM, shared pages from the
 * memslot's userspace address.
 */
static inline bool kvm_gmem_has_state(struct kvm_gmem_inode *gi)
{
	return gi->flags & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
}

/*
 * Whether KVM_SET_MEMORY_ATTRIBUTES2 may change the state of @kvm's files:
 * VM types with private memory that the host may read and write in place
 * (KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES).
 */
static inline bool kvm_gmem_supports_attributes(struct kvm *kvm)
{
	return kvm_arch_has_private_mem(kvm) && kvm_arch_gmem_supports_mmap(kvm);
}

/* Whether the host may map page @index (the one lookup, order 0). */
static inline bool kvm_gmem_page_shared(struct kvm_gmem_inode *gi,
					pgoff_t index)
{
	return kvm_gmem_state_lookup(&gi->state, index, 0, NULL) &
	       KVM_GMEM_STATE_SHARED;
}

/*
 * Whether page @index of @folio is poisoned. A hugetlb folio knows only
 * that some page of it is (a lookup for the host splits it, so that its
 * poison narrows to the exact pages); a piece of one, or a small folio,
 * knows each page: the flag of its first page is that page's alone.
 */
static inline bool kvm_gmem_page_poisoned(struct folio *folio,
					  pgoff_t index)
{
	return folio_test_hugetlb(folio) ? folio_test_hwpoison(folio) :
	       PageHWPoison(folio_file_page(folio, index));
}

/*
 * Whether a page of @folio is poisoned, for a piece of a split hugetlb
 * page too: memory failure marks only the page in a folio off the LRU
 * (guestmem_hugetlb.c), so a piece that is not marked as a whole is
 * looked at page by page.  Inline: KVM's fault path asks it for every
 * folio it maps.
 */
static inline bool kvm_gmem_piece_poisoned(struct folio *folio)
{
	long i;

	if (folio_contain_hwpoisoned_page(folio))
		return true;
	if (!folio_test_large(folio) || folio_test_hugetlb(folio))
		return false;
	for (i = 0; i < folio_nr_pages(folio); i++)
		if (PageHWPoison(folio_page(folio, i)))
			return true;
	return false;
}

void kvm_gmem_invalidate_begin(struct kvm_gmem_inode *gi, pgoff_t start,
			       pgoff_t end);
void kvm_gmem_invalidate_end(struct kvm_gmem_inode *gi, pgoff_t start,
			     pgoff_t end);
void kvm_gmem_invalidate(struct kvm_gmem_inode *gi, pgoff_t start,
			 pgoff_t end);

long kvm_gmem_set_attributes(struct file *file, void __user *argp);

/* inode.c */
extern const struct file_operations kvm_gmem_fops;
struct folio *kvm_gmem_get_folio(struct inode *inode, pgoff_t index);
void kvm_gmem_zero_folio(struct folio *folio);

/* mmap.c */
int kvm_gmem_mmap(struct file *file, struct vm_area_struct *vma);
vm_fault_t kvm_gmem_fault_error(struct kvm_gmem_inode *gi, int err);

#if defined(CONFIG_KVM_GMEM_USERFAULT) && defined(CONFIG_USERFAULTFD)
struct vm_uffd_ops;
extern const struct vm_uffd_ops kvm_gmem_uffd_ops;
vm_fault_t kvm_gmem_fault_userfault(struct vm_fault *vmf);
#else
static inline vm_fault_t kvm_gmem_fault_userfault(struct vm_fault *vmf)
{
	return 0;
}
#endif

#ifdef CONFIG_KVM_GMEM_USERFAULT
bool kvm_gmem_page_missing(struct kvm_gmem_inode *gi, pgoff_t index);
bool kvm_gmem_block_missing(struct kvm_gmem_inode *gi, pgoff_t index);
long kvm_gmem_userfault_ioctl(struct file *file, unsigned int ioctl,
			      void __user *argp);
int kvm_gmem_userfault_check_extension(long cap, u64 flags);
vm_fault_t kvm_gmem_fault_missing(struct vm_fault *vmf);
#else
/* No way to set a missing bit: no page is ever missing. */
static inline bool kvm_gmem_page_missing(struct kvm_gmem_inode *gi,
					 pgoff_t index)
{
	return false;
}

static inline bool kvm_gmem_block_missing(struct kvm_gmem_inode *gi,
					  pgoff_t index)
{
	return false;
}

static inline long kvm_gmem_userfault_ioctl(struct file *file,
					    unsigned int ioctl,
					    void __user *argp)
{
	return -ENOTTY;
}

static inline int kvm_gmem_userfault_check_extension(long cap, u64 flags)
{
	return 0;
}

static inline vm_fault_t kvm_gmem_fault_missing(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}
#endif

struct mempolicy *kvm_gmem_get_mpol(struct kvm_gmem_inode *gi, pgoff_t index,
				    unsigned int order, pgoff_t *ilx);

#ifdef CONFIG_GUESTMEM_HUGETLB
u64 kvm_gmem_hugetlb_flags(void);
int kvm_gmem_hugetlb_check_extension(long cap, u64 flags);
int kvm_gmem_hugetlb_setup(struct kvm_gmem_inode *gi, loff_t size, u64 flags);
void kvm_gmem_hugetlb_teardown(struct kvm_gmem_inode *gi);
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_inode *gi,
					 pgoff_t index);
struct folio *kvm_gmem_hugetlb_get_guest_folio(struct kvm_gmem_inode *gi,
					       pgoff_t index);
int kvm_gmem_hugetlb_split_range(struct kvm_gmem_inode *gi, pgoff_t start,
				 pgoff_t end, unsigned int attrs, pgoff_t *bad);
void kvm_gmem_hugetlb_merge_range(struct kvm_gmem_inode *gi, pgoff_t start,
				  pgoff_t end);
unsigned int kvm_gmem_hugetlb_block_order(struct kvm_gmem_inode *gi,
					  pgoff_t index, struct folio *folio,
					  unsigned int order,
					  unsigned int attrs);
void kvm_gmem_hugetlb_truncate(struct kvm_gmem_inode *gi, loff_t lstart,
			       loff_t lend);
unsigned long kvm_gmem_hugetlb_page_size(struct kvm_gmem_inode *gi);
#else
/*
 * Without hugetlb backing no flag asks for it, so no inode has it
 * (gi->hugetlb stays NULL) and none of these is reached with one.
 */
static inline u64 kvm_gmem_hugetlb_flags(void)
{
	return 0;
}

static inline int kvm_gmem_hugetlb_check_extension(long cap, u64 flags)
{
	return 0;
}

static inline int kvm_gmem_hugetlb_setup(struct kvm_gmem_inode *gi,
					 loff_t size, u64 flags)
{
	return 0;
}

static inline void kvm_gmem_hugetlb_teardown(struct kvm_gmem_inode *gi)
{
}

static inline struct folio *
kvm_gmem_hugetlb_get_folio(struct kvm_gmem_inode *gi, pgoff_t index)
{
	return ERR_PTR(-EINVAL);
}

static inline struct folio *
kvm_gmem_hugetlb_get_guest_folio(struct kvm_gmem_inode *gi, pgoff_t index)
{
	return ERR_PTR(-EINVAL);
}

static inline int kvm_gmem_hugetlb_split_range(struct kvm_gmem_inode *gi,
					       pgoff_t start, pgoff_t end,
					       unsigned int attrs, pgoff_t *bad)
{
	return 0;
}

static inline void kvm_gmem_hugetlb_merge_range(struct kvm_gmem_inode *gi,
						pgoff_t start, pgoff_t end)
{
}

static inline unsigned int
kvm_gmem_hugetlb_block_order(struct kvm_gmem_inode *gi, pgoff_t index,
			     struct folio *folio, unsigned int order,
			     unsigned int attrs)
{
	return min(order, folio_order(folio));
}

static inline void kvm_gmem_hugetlb_truncate(struct kvm_gmem_inode *gi,
					     loff_t lstart, loff_t lend)
{
}

static inline unsigned long
kvm_gmem_hugetlb_page_size(struct kvm_gmem_inode *gi)
{
	return PAGE_SIZE;
}
#endif

#endif /* __KVM_GMEM_H */
