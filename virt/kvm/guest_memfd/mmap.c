// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd host mappings: mmap() of the file, host page faults (shared
 * pages only; missing pages go to userfault.c) and the file's memory policy
 * through mbind().  Calls into inode.c for folios and hugetlb.c for huge
 * pages; the state of a page comes from the one lookup (state.h).
 */
#include <linux/kvm_host.h>
#include <linux/mempolicy.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#include "gmem.h"

/* Whether a page of the folio at @index, if any, is poisoned. */
static bool kvm_gmem_block_poisoned(struct kvm_gmem_inode *gi, pgoff_t index)
{
	struct folio *folio;
	bool poisoned;

	folio = filemap_get_folio(gi->vfs_inode.i_mapping, index);
	if (IS_ERR(folio))
		return false;
	poisoned = kvm_gmem_piece_poisoned(folio);
	folio_put(folio);
	return poisoned;
}

/**
 * kvm_gmem_fault_error() - what a host fault returns for a failed lookup
 * @gi: the inode
 * @err: the lookup's error
 *
 * Return: VM_FAULT_SIGBUS for a hugetlb pool without a page the policy
 * allows (not an out-of-memory condition the OOM killer could fix; as
 * hugetlbfs); VM_FAULT_NOPAGE for a split that others held up for a
 * moment (the access faults again); else vmf_error().
 */
vm_fault_t kvm_gmem_fault_error(struct kvm_gmem_inode *gi, int err)
{
	if (gi->hugetlb && err == -ENOMEM)
		return VM_FAULT_SIGBUS;
	if (err == -EAGAIN)
		return VM_FAULT_NOPAGE;
	return vmf_error(err);
}

/*
 * Host page fault on a guest_memfd mapping: only pages whose state is
 * shared may be mapped; a private page raises SIGBUS. The invalidate lock,
 * held shared across the state check and the lookup, and then the folio
 * lock, held until the page table entry is in place, keep a conversion to
 * private from slipping in between (it unmaps under the folio lock).
 */
static vm_fault_t kvm_gmem_fault(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct folio *folio;
	vm_fault_t ret = VM_FAULT_LOCKED;

	if (vmf->pgoff >= i_size_read(inode) >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;

	filemap_invalidate_lock_shared(inode->i_mapping);

	if (!kvm_gmem_page_shared(gi, vmf->pgoff)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}

	/* userfaultfd: missing pages, holes, pages not mapped yet. */
	ret = kvm_gmem_fault_userfault(vmf);
	if (ret)
		return ret;
	ret = VM_FAULT_LOCKED;

	/* Setting the bit takes the invalidate lock for write. */
	if (kvm_gmem_page_missing(gi, vmf->pgoff)) {
		filemap_invalidate_unlock_shared(inode->i_mapping);
		return kvm_gmem_fault_missing(vmf);
	}

	/*
	 * A 2M piece, shared throughout, maps with one PMD where the mapping
	 * is aligned (finish_fault()), unless a page of it is missing, which
	 * must fault on its own, or poisoned: then the page is mapped alone,
	 * with a page table, allocated before the folio lock is taken.
	 */
	if (gi->hugetlb && pmd_none(*vmf->pmd) &&
	    (kvm_gmem_block_missing(gi, vmf->pgoff) ||
	     kvm_gmem_block_poisoned(gi, vmf->pgoff)) &&
	    pte_alloc(vmf->vma->vm_mm, vmf->pmd)) {
		ret = VM_FAULT_OOM;
		goto out;
	}

	folio = kvm_gmem_get_folio(inode, vmf->pgoff);
	if (IS_ERR(folio)) {
		ret = kvm_gmem_fault_error(gi, PTR_ERR(folio));
		goto out;
	}

	if (kvm_gmem_page_poisoned(folio, vmf->pgoff)) {
		folio_unlock(folio);
		folio_put(folio);
		ret = VM_FAULT_HWPOISON;
		goto out;
	}

	/* The host gets no hugetlb folio: hugetlb.c splits it for us. */
	if (WARN_ON_ONCE(folio_test_hugetlb(folio))) {
		folio_unlock(folio);
		folio_put(folio);
		ret = VM_FAULT_SIGBUS;
		goto out;
	}

	if (!folio_test_uptodate(folio)) {
		kvm_gmem_zero_folio(folio);
		folio_mark_uptodate(folio);
	}

	vmf->page = folio_file_page(folio, vmf->pgoff);
out:
	/*
	 * On VM_FAULT_LOCKED the caller maps vmf->page under the folio lock;
	 * a conversion to private waits for the invalidate lock and then
	 * unmaps the page again before it checks the references.
	 */
	filemap_invalidate_unlock_shared(inode->i_mapping);
	return ret;
}

#ifdef CONFIG_NUMA
/* mbind() on a mapping sets the policy of the file's pages it maps. */
static int kvm_gmem_set_policy(struct vm_area_struct *vma,
			       struct mempolicy *mpol)
{
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(vma->vm_file);

	return mpol_set_shared_policy(&gi->policy, vma, mpol);
}

/*
 * NULL, not the task's policy, where mbind() set none: get_mempolicy()
 * then reports the default policy, as for shmem.  @ilx gets only the
 * interleave bias of the file (as in kvm_gmem_get_mpol()); the caller adds
 * the offset.
 */
static struct mempolicy *kvm_gmem_get_policy(struct vm_area_struct *vma,
					     unsigned long addr, pgoff_t *ilx)
{
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(vma->vm_file);

	*ilx = gi->vfs_inode.i_ino;
	return mpol_shared_policy_lookup(&gi->policy,
					 linear_page_index(vma, addr));
}
#endif

static const struct vm_operations_struct kvm_gmem_vm_ops = {
	.fault		= kvm_gmem_fault,
#if defined(CONFIG_KVM_GMEM_USERFAULT) && defined(CONFIG_USERFAULTFD)
	.uffd_ops	= &kvm_gmem_uffd_ops,
#endif
#ifdef CONFIG_NUMA
	.set_policy	= kvm_gmem_set_policy,
	.get_policy	= kvm_gmem_get_policy,
#endif
};

int kvm_gmem_mmap(struct file *file, struct vm_area_struct *vma)
{
	if (!kvm_gmem_has_mmap(kvm_gmem_file_inode(file)))
		return -ENODEV;

	/* A private copy of a page would survive conversion to private. */
	if ((vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) !=
	    (VM_SHARED | VM_MAYSHARE))
		return -EINVAL;

	vm_flags_set(vma, VM_DONTDUMP);
	vma->vm_ops = &kvm_gmem_vm_ops;
	return 0;
}
