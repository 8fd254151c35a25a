// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd: the file and inode, host mmap, and the in-kernel API the rest
 * of KVM calls (create, bind, unbind, get_pfn, populate).
 *
 * Every guest_memfd inode lives on a small pseudo filesystem of its own so
 * that it can carry a struct kvm_gmem_inode (flags, page state, files)
 * instead of bits stuffed into i_private. See gmem.h for the objects and
 * the lock order, and Documentation/virt/kvm/guest_memfd.rst.
 */
#include <linux/anon_inodes.h>
#include <linux/backing-dev.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/pseudo_fs.h>
#include <linux/workqueue.h>

#include "../kvm_mm.h"
#include "gmem.h"

/* The mm and fs symbols exported to KVM alone (EXPORT_SYMBOL_GPL_FOR_MODULES). */
MODULE_INFO(import_ns, "module:kvm");

/* "GMEM" */
#define KVM_GMEM_MAGIC	0x474d454d

static struct vfsmount *kvm_gmem_mnt;
static struct kmem_cache *kvm_gmem_inode_cache;
/*
 * The vendor module (kvm-amd, kvm-intel): every file pins it, as the VM
 * fd does, because the file's last reference can destroy the VM.
 */
static struct module *kvm_gmem_owner;

/**
 * folio_file_pfn - like folio_file_page, but return a pfn.
 * @folio: The folio which contains this index.
 * @index: The index we want to look up.
 *
 * Return: The pfn for this index.
 */
static inline kvm_pfn_t folio_file_pfn(struct folio *folio, pgoff_t index)
{
	return folio_pfn(folio) + (index & (folio_nr_pages(folio) - 1));
}

static int __kvm_gmem_prepare_folio(struct kvm *kvm, struct kvm_memory_slot *slot,
				    pgoff_t index, struct folio *folio)
{
#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_PREPARE
	kvm_pfn_t pfn = folio_file_pfn(folio, index);
	gfn_t gfn = slot->base_gfn + index - slot->gmem.pgoff;
	int rc = kvm_arch_gmem_prepare(kvm, gfn, pfn, folio_order(folio));

	if (rc) {
		pr_warn_ratelimited("gmem: Failed to prepare folio for index %lx GFN %llx PFN %llx error %d.\n",
				    index, gfn, pfn, rc);
		return rc;
	}
#endif

	return 0;
}

/*
 * The up-to-date flag means "zeroed (or populated) and prepared": the page
 * holds no stale host data. It stays set for the life of the folio, so
 * content survives shared <-> private conversion.
 */
void kvm_gmem_zero_folio(struct folio *folio)
{
	unsigned long i;

	for (i = 0; i < folio_nr_pages(folio); i++) {
		/* Never touch a poisoned page: it stays poisoned. */
		if (!PageHWPoison(folio_page(folio, i)))
			clear_highpage(folio_page(folio, i));
		/* A 1G folio is 262144 pages. */
		if ((i & 511) == 511)
			cond_resched();
	}
}

/*
 * Process @folio, which contains @gfn, so that the guest can use it.
 * The folio must be locked and the gfn must be contained in @slot.
 * On successful return the guest sees a zero page so as to avoid
 * leaking host data and the up-to-date flag is set.
 */
static int kvm_gmem_prepare_folio(struct kvm *kvm, struct kvm_memory_slot *slot,
				  gfn_t gfn, struct folio *folio)
{
	pgoff_t index;
	int r;

	kvm_gmem_zero_folio(folio);

	/*
	 * The base pgoff of memslots is naturally aligned with the folio
	 * order, so that huge folios can also use huge page table entries.
	 */
	WARN_ON(!IS_ALIGNED(slot->gmem.pgoff, 1 << folio_order(folio)));
	index = gfn - slot->base_gfn + slot->gmem.pgoff;
	index = ALIGN_DOWN(index, 1 << folio_order(folio));
	r = __kvm_gmem_prepare_folio(kvm, slot, index, folio);
	if (!r)
		folio_mark_uptodate(folio);

	return r;
}

/*
 * Returns a locked folio on success.  There is no backing storage for the
 * memory, so the folio stays up-to-date until it is removed.  Accessed,
 * referenced and dirty flags do not matter: the memory is unevictable.
 */
struct folio *kvm_gmem_get_folio(struct inode *inode, pgoff_t index)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct address_space *mapping = inode->i_mapping;
	gfp_t gfp = mapping_gfp_mask(mapping);
	struct mempolicy *mpol;
	struct folio *folio;
	pgoff_t ilx;
	int err;

	if (gi->hugetlb)
		return kvm_gmem_hugetlb_get_folio(gi, index);

	for (;;) {
		folio = filemap_lock_folio(mapping, index);
		if (!IS_ERR(folio))
			return folio;

		mpol = kvm_gmem_get_mpol(gi, index, 0, &ilx);
		folio = folio_alloc_mpol(gfp, 0, mpol, ilx, numa_node_id());
		mpol_cond_put(mpol);
		if (!folio)
			return ERR_PTR(-ENOMEM);

		/* Locked and in the page cache, or not added at all. */
		err = filemap_add_folio(mapping, folio, index, gfp);
		if (!err)
			return folio;
		folio_put(folio);
		/* Another fault added the folio first: take that one. */
		if (err != -EEXIST)
			return ERR_PTR(err);
	}
}

/**
 * kvm_gmem_get_mpol() - the memory policy to allocate a folio by
 * @gi: the inode
 * @index: the page index the folio is for
 * @order: the folio's order
 * @ilx: set to the interleave index of the folio
 *
 * What mbind() set on a mapping of the file for @index, else the policy of
 * the allocating task (upstream guest_memfd does the same).  KVM faults in
 * pages the host never maps, so the file's policy is the VMM's one way to
 * place them.
 *
 * Return: the policy; release it with mpol_cond_put().
 */
struct mempolicy *kvm_gmem_get_mpol(struct kvm_gmem_inode *gi, pgoff_t index,
				    unsigned int order, pgoff_t *ilx)
{
	struct mempolicy *mpol;

	/* Interleave folio by folio, each file from its own start. */
	*ilx = gi->vfs_inode.i_ino + (index >> order);
	mpol = mpol_shared_policy_lookup(&gi->policy, index);
	return mpol ? mpol : get_task_policy(current);
}

/*
 * Zap @f's VM's mappings of [@start, @end) and start an MMU invalidation;
 * with @end_too, end it in the same mmu_lock section.
 */
static void kvm_gmem_file_invalidate_begin(struct kvm_gmem_inode *gi,
					   struct kvm_gmem_file *f,
					   pgoff_t start, pgoff_t end,
					   bool end_too)
{
	bool flush = false, found_memslot = false;
	struct kvm_memory_slot *slot;
	struct kvm *kvm = f->kvm;
	unsigned long index;

	xa_for_each_range(&f->bindings, index, slot, start, end - 1) {
		pgoff_t pgoff = slot->gmem.pgoff;

		struct kvm_gfn_range gfn_range = {
			.start = slot->base_gfn + max(pgoff, start) - pgoff,
			.end = slot->base_gfn + min(pgoff + slot->npages, end) - pgoff,
			.slot = slot,
			.may_block = true,
			/*
			 * Without a state of its own only KVM's private
			 * mappings come from guest_memfd; with it, shared
			 * ones do too.
			 */
			.attr_filter = kvm_gmem_has_state(gi) ?
				       KVM_FILTER_PRIVATE | KVM_FILTER_SHARED :
				       KVM_FILTER_PRIVATE,
		};

		if (!found_memslot) {
			found_memslot = true;

			KVM_MMU_LOCK(kvm);
			kvm_mmu_invalidate_begin(kvm);
		}

		flush |= kvm_mmu_unmap_gfn_range(kvm, &gfn_range);
	}

	if (flush)
		kvm_flush_remote_tlbs(kvm);

	if (found_memslot) {
		if (end_too)
			kvm_mmu_invalidate_end(kvm);
		KVM_MMU_UNLOCK(kvm);
	}
}

/* kvm_gmem_file_invalidate_begin() for every file of the inode. */
static void kvm_gmem_invalidate_files(struct kvm_gmem_inode *gi,
				      pgoff_t start, pgoff_t end, bool end_too)
{
	struct kvm_gmem_file *f;

	lockdep_assert_held(&gi->vfs_inode.i_mapping->invalidate_lock);
	list_for_each_entry(f, &gi->files, entry)
		kvm_gmem_file_invalidate_begin(gi, f, start, end, end_too);
}

static void kvm_gmem_file_invalidate_end(struct kvm_gmem_file *f,
					 pgoff_t start, pgoff_t end)
{
	struct kvm *kvm = f->kvm;

	if (xa_find(&f->bindings, &start, end - 1, XA_PRESENT)) {
		KVM_MMU_LOCK(kvm);
		kvm_mmu_invalidate_end(kvm);
		KVM_MMU_UNLOCK(kvm);
	}
}

/**
 * kvm_gmem_invalidate_begin() - zap KVM's mappings of [@start, @end)
 * @gi: the inode
 * @start: first page
 * @end: page after the last one
 *
 * In every VM bound to the inode: zap the mappings and start an MMU
 * invalidation, so that no vCPU maps the range again until
 * kvm_gmem_invalidate_end(). Hold the invalidate lock across both.
 */
void kvm_gmem_invalidate_begin(struct kvm_gmem_inode *gi, pgoff_t start,
			       pgoff_t end)
{
	kvm_gmem_invalidate_files(gi, start, end, false);
}

/**
 * kvm_gmem_invalidate_end() - end what kvm_gmem_invalidate_begin() began
 * @gi: the inode
 * @start: first page
 * @end: page after the last one
 */
void kvm_gmem_invalidate_end(struct kvm_gmem_inode *gi, pgoff_t start,
			     pgoff_t end)
{
	struct kvm_gmem_file *f;

	lockdep_assert_held(&gi->vfs_inode.i_mapping->invalidate_lock);
	list_for_each_entry(f, &gi->files, entry)
		kvm_gmem_file_invalidate_end(f, start, end);
}

/**
 * kvm_gmem_invalidate() - zap KVM's mappings of [@start, @end) after the
 *	state of the range changed
 * @gi: the inode
 * @start: first page
 * @end: page after the last one
 *
 * In every VM bound to the inode, in one mmu_lock section: zap the
 * mappings and bump the MMU invalidation sequence. A vCPU fault that
 * looked up the old state either mapped before the zap, which removes
 * the mapping, or finds the sequence changed and retries. Only for
 * changes that free no page (conversion): anything that does needs
 * kvm_gmem_invalidate_begin() and kvm_gmem_invalidate_end() around it.
 * Hold the invalidate lock.
 */
void kvm_gmem_invalidate(struct kvm_gmem_inode *gi, pgoff_t start,
			 pgoff_t end)
{
	kvm_gmem_invalidate_files(gi, start, end, true);
}

static long kvm_gmem_punch_hole(struct inode *inode, loff_t offset, loff_t len)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	pgoff_t start = offset >> PAGE_SHIFT;
	pgoff_t end = (offset + len) >> PAGE_SHIFT;

	/*
	 * Bindings must be stable across invalidation to ensure the start+end
	 * are balanced.
	 */
	filemap_invalidate_lock(inode->i_mapping);

	kvm_gmem_invalidate_begin(gi, start, end);
	/* Also unmaps the host's mappings of the range. */
	if (gi->hugetlb)
		kvm_gmem_hugetlb_truncate(gi, offset, offset + len - 1);
	else
		truncate_inode_pages_range(inode->i_mapping, offset,
					   offset + len - 1);
	kvm_gmem_invalidate_end(gi, start, end);

	filemap_invalidate_unlock(inode->i_mapping);

	return 0;
}

static long kvm_gmem_allocate(struct inode *inode, loff_t offset, loff_t len)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct address_space *mapping = inode->i_mapping;
	pgoff_t start, index, end;
	int r;

	/* Dedicated guest is immutable by default. */
	if (offset + len > i_size_read(inode))
		return -EINVAL;

	filemap_invalidate_lock_shared(mapping);

	start = offset >> PAGE_SHIFT;
	end = (offset + len) >> PAGE_SHIFT;

	r = 0;
	for (index = start; index < end; ) {
		struct folio *folio;

		if (signal_pending(current)) {
			r = -EINTR;
			break;
		}

		/* Allocation only: shared hugetlb folios need not split. */
		if (gi->hugetlb)
			folio = kvm_gmem_hugetlb_get_guest_folio(gi, index);
		else
			folio = kvm_gmem_get_folio(inode, index);
		if (IS_ERR(folio)) {
			r = PTR_ERR(folio);
			break;
		}

		index = folio_next_index(folio);

		folio_unlock(folio);
		folio_put(folio);

		/* 64-bit only, wrapping the index should be impossible. */
		if (WARN_ON_ONCE(!index))
			break;

		cond_resched();
	}

	filemap_invalidate_unlock_shared(mapping);

	return r;
}

static long kvm_gmem_fallocate(struct file *file, int mode, loff_t offset,
			       loff_t len)
{
	unsigned long hsize;
	int ret;

	if (!(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;

	if (!PAGE_ALIGNED(offset) || !PAGE_ALIGNED(len))
		return -EINVAL;

	/*
	 * Huge folios are never split: a hole covers whole ones. Allocation
	 * just rounds out to the folios the range touches.
	 */
	hsize = kvm_gmem_hugetlb_page_size(kvm_gmem_file_inode(file));
	if ((mode & FALLOC_FL_PUNCH_HOLE) &&
	    (!IS_ALIGNED(offset, hsize) || !IS_ALIGNED(len, hsize)))
		return -EINVAL;

	if (mode & FALLOC_FL_PUNCH_HOLE)
		ret = kvm_gmem_punch_hole(file_inode(file), offset, len);
	else
		ret = kvm_gmem_allocate(file_inode(file), offset, len);

	if (!ret)
		file_modified(file);
	return ret;
}

static int kvm_gmem_release(struct inode *inode, struct file *file)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct kvm_gmem_file *f = file->private_data;
	struct kvm_memory_slot *slot;
	struct kvm *kvm = f->kvm;
	unsigned long index;
	bool bound;

	/*
	 * Prevent concurrent attempts to *unbind* a memslot.  This is the last
	 * reference to the file and thus no new bindings can be created, but
	 * dereferencing the slot for existing bindings needs to be protected
	 * against memslot updates, specifically so that unbind doesn't race
	 * and free the memslot.
	 */
	mutex_lock(&kvm->slots_lock);

	filemap_invalidate_lock(inode->i_mapping);

	bound = !xa_empty(&f->bindings);
	xa_for_each(&f->bindings, index, slot)
		WRITE_ONCE(slot->gmem.file, NULL);

	/*
	 * All in-flight operations are gone and new bindings can be created.
	 * Zap all SPTEs pointed at by this file.  Do not free the backing
	 * memory, as its lifetime is associated with the inode, not the file.
	 */
	kvm_gmem_file_invalidate_begin(gi, f, 0, -1ul, false);
	kvm_gmem_file_invalidate_end(f, 0, -1ul);

	list_del(&f->entry);

	filemap_invalidate_unlock(inode->i_mapping);

	mutex_unlock(&kvm->slots_lock);

	/*
	 * The fault path uses slot->gmem.file inside kvm->srcu without a
	 * reference (kvm_gmem_slot_file()): wait for every reader that may
	 * have loaded it before it was cleared, before @f goes.  Outside the
	 * invalidate lock, which a reader may wait for, and outside slots_lock:
	 * a reader can sleep for long (a KVM access through the file's mapping
	 * waiting for a missing page), and memslot updates need not wait for
	 * it too.  Every binding's pointer is NULL already, so unbind leaves @f
	 * alone.  A file that was never bound has no such reader.  Release
	 * never runs inside kvm->srcu: the last fput() defers it to task work,
	 * which the vCPU run loop handles outside kvm->srcu.
	 */
	if (bound)
		synchronize_srcu_expedited(&kvm->srcu);

	xa_destroy(&f->bindings);
	kfree(f);

	kvm_put_kvm(kvm);
	module_put(kvm_gmem_owner);

	return 0;
}

static inline struct file *kvm_gmem_get_file(struct kvm_memory_slot *slot)
{
	/*
	 * Do not return slot->gmem.file if it has already been closed;
	 * there might be some time between the last fput() and when
	 * kvm_gmem_release() clears slot->gmem.file.
	 */
	return get_file_active(&slot->gmem.file);
}

/**
 * kvm_gmem_slot_file() - the file bound to @slot, without a reference
 * @kvm: the VM of @slot
 * @slot: a memslot that can be private
 *
 * For the fault path, which must not touch the file's reference count (a
 * cache line every vCPU of every VM bound to the file would share): the
 * file and its inode stay valid until the caller leaves kvm->srcu, because
 * kvm_gmem_release() clears slot->gmem.file and then waits for kvm->srcu
 * readers, and a deleted memslot is unreachable (the memslot update waited
 * for the readers) before unbind runs.  The file may be in its last fput()
 * already; its pages are still there, and the release's invalidation makes
 * a racing fault retry.
 *
 * Context: inside kvm->srcu, or with kvm->slots_lock held.
 * Return: the file, or NULL if it was closed or unbound.
 */
static struct file *kvm_gmem_slot_file(struct kvm *kvm,
				       struct kvm_memory_slot *slot)
{
	lockdep_assert_once(srcu_read_lock_held(&kvm->srcu) ||
			    lockdep_is_held(&kvm->slots_lock));
	return READ_ONCE(slot->gmem.file);
}

static pgoff_t kvm_gmem_get_index(struct kvm_memory_slot *slot, gfn_t gfn)
{
	return gfn - slot->base_gfn + slot->gmem.pgoff;
}

/*
 * Whether a page of a piece of a split hugetlb page is poisoned. Memory
 * failure marks only the page in a folio off the LRU (guestmem_hugetlb.c),
 * so a piece that is not marked as a whole is looked at page by page.
 */
static bool kvm_gmem_piece_poisoned(struct folio *folio)
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

static int kvm_gmem_mmap(struct file *file, struct vm_area_struct *vma)
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

static long kvm_gmem_ioctl(struct file *file, unsigned int ioctl,
			   unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (ioctl) {
	case KVM_SET_MEMORY_ATTRIBUTES2:
		return kvm_gmem_set_attributes(file, argp);
	default:
		return kvm_gmem_userfault_ioctl(file, ioctl, argp);
	}
}

static const struct file_operations kvm_gmem_fops = {
	.mmap		= kvm_gmem_mmap,
	.open		= generic_file_open,
	.release	= kvm_gmem_release,
	.fallocate	= kvm_gmem_fallocate,
	.unlocked_ioctl	= kvm_gmem_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * guest_memfd pages never move: KVM maps them by pfn, without the core mm's
 * notifiers.  The mapping is inaccessible, so compaction skips its folios
 * and move_to_new_folio() refuses them before getting here; should another
 * path ever get here (mbind(MPOL_MF_MOVE) and move_pages() isolate the
 * folios first), fail quietly: userspace can ask for it.
 */
static int kvm_gmem_migrate_folio(struct address_space *mapping,
				  struct folio *dst, struct folio *src,
				  enum migrate_mode mode)
{
	return -EBUSY;
}

/* Zaps KVM's mappings of poisoned pages whose invalidate lock was busy. */
static struct workqueue_struct *kvm_gmem_wq;

struct kvm_gmem_error_work {
	struct work_struct work;
	struct inode *inode;
	pgoff_t start, end;
};

static void kvm_gmem_error_zap(struct inode *inode, pgoff_t start,
			       pgoff_t end)
{
	kvm_gmem_invalidate_begin(KVM_GMEM_I(inode), start, end);
	kvm_gmem_invalidate_end(KVM_GMEM_I(inode), start, end);
}

static void kvm_gmem_error_fn(struct work_struct *work)
{
	struct kvm_gmem_error_work *w =
		container_of(work, struct kvm_gmem_error_work, work);
	struct address_space *mapping = w->inode->i_mapping;

	filemap_invalidate_lock_shared(mapping);
	kvm_gmem_error_zap(w->inode, w->start, w->end);
	filemap_invalidate_unlock_shared(mapping);
	iput(w->inode);
	kfree(w);
}

static int kvm_gmem_error_folio(struct address_space *mapping, struct folio *folio)
{
	pgoff_t start = folio->index, end = start + folio_nr_pages(folio);
	struct kvm_gmem_error_work *w;

	/*
	 * Do not truncate the range, what action is taken in response to the
	 * error is userspace's decision (assuming the architecture supports
	 * gracefully handling memory errors).  If/when the guest attempts to
	 * access a poisoned page, kvm_gmem_get_pfn() will return -EHWPOISON,
	 * at which point KVM can either terminate the VM or propagate the
	 * error to userspace.
	 *
	 * memory_failure() calls this with the folio locked, while
	 * truncation and conversion lock folios under the invalidate lock:
	 * only try that lock here, and if it is taken, zap KVM's mappings
	 * from a work item (new faults on the page fail meanwhile).  An inode
	 * already being evicted needs no zap.
	 */
	if (filemap_invalidate_trylock_shared(mapping)) {
		kvm_gmem_error_zap(mapping->host, start, end);
		filemap_invalidate_unlock_shared(mapping);
		return MF_DELAYED;
	}
	w = kmalloc(sizeof(*w), GFP_KERNEL);
	if (!w)
		return MF_DELAYED;
	w->inode = igrab(mapping->host);
	if (!w->inode) {
		kfree(w);
		return MF_DELAYED;
	}
	w->start = start;
	w->end = end;
	INIT_WORK(&w->work, kvm_gmem_error_fn);
	queue_work(kvm_gmem_wq, &w->work);
	return MF_DELAYED;
}

#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_INVALIDATE
static void kvm_gmem_free_folio(struct folio *folio)
{
	struct page *page = folio_page(folio, 0);
	kvm_pfn_t pfn = page_to_pfn(page);
	int order = folio_order(folio);

	kvm_arch_gmem_invalidate(pfn, pfn + (1ul << order));
}
#endif

static const struct address_space_operations kvm_gmem_aops = {
	.dirty_folio = noop_dirty_folio,
	.migrate_folio	= kvm_gmem_migrate_folio,
	.error_remove_folio = kvm_gmem_error_folio,
#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_INVALIDATE
	.free_folio = kvm_gmem_free_folio,
#endif
};

static int kvm_gmem_getattr(struct mnt_idmap *idmap, const struct path *path,
			    struct kstat *stat, u32 request_mask,
			    unsigned int query_flags)
{
	struct inode *inode = path->dentry->d_inode;

	generic_fillattr(idmap, request_mask, inode, stat);
	return 0;
}

static int kvm_gmem_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			    struct iattr *attr)
{
	return -EINVAL;
}

static const struct inode_operations kvm_gmem_iops = {
	.getattr	= kvm_gmem_getattr,
	.setattr	= kvm_gmem_setattr,
};

static struct inode *kvm_gmem_alloc_inode(struct super_block *sb)
{
	struct kvm_gmem_inode *gi;

	gi = alloc_inode_sb(sb, kvm_gmem_inode_cache, GFP_KERNEL);
	if (!gi)
		return NULL;

	gi->flags = 0;
	gi->owner = NULL;
	gi->hugetlb = NULL;
	/* nr_pages == 0 marks a state that was never set up. */
	memset(&gi->state, 0, sizeof(gi->state));
	INIT_LIST_HEAD(&gi->files);
	init_waitqueue_head(&gi->uf_wq);
	mpol_shared_policy_init(&gi->policy, NULL);
	return &gi->vfs_inode;
}

static void kvm_gmem_destroy_inode(struct inode *inode)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);

	WARN_ON_ONCE(!list_empty(&gi->files));
	if (gi->state.nr_pages)
		kvm_gmem_state_destroy(&gi->state);
	/* Eviction emptied the page cache. */
	kvm_gmem_hugetlb_teardown(gi);
	mpol_free_shared_policy(&gi->policy);
}

static void kvm_gmem_free_inode(struct inode *inode)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct module *owner = gi->owner;

	kmem_cache_free(kvm_gmem_inode_cache, gi);
	/* kvm_gmem_exit()'s rcu_barrier() waits for this to return. */
	module_put(owner);
}

static void kvm_gmem_evict_inode(struct inode *inode)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);

	/* Through the backing, which dissolves poisoned huge pages. */
	if (gi->hugetlb && inode->i_size)
		kvm_gmem_hugetlb_truncate(gi, 0, inode->i_size - 1);
	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
}

static const struct super_operations kvm_gmem_sops = {
	.statfs		= simple_statfs,
	.alloc_inode	= kvm_gmem_alloc_inode,
	.evict_inode	= kvm_gmem_evict_inode,
	.destroy_inode	= kvm_gmem_destroy_inode,
	.free_inode	= kvm_gmem_free_inode,
	.drop_inode	= generic_delete_inode,
};

static int kvm_gmem_init_fs_context(struct fs_context *fc)
{
	struct pseudo_fs_context *ctx = init_pseudo(fc, KVM_GMEM_MAGIC);

	if (!ctx)
		return -ENOMEM;
	fc->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;
	ctx->ops = &kvm_gmem_sops;
	return 0;
}

static struct file_system_type kvm_gmem_fs = {
	.name		 = "kvm_guest_memory",
	.init_fs_context = kvm_gmem_init_fs_context,
	.kill_sb	 = kill_anon_super,
};

static void kvm_gmem_inode_once(void *p)
{
	struct kvm_gmem_inode *gi = p;

	inode_init_once(&gi->vfs_inode);
}

int kvm_gmem_init(struct module *module)
{
	int r;

	kvm_gmem_owner = module;

	r = kvm_gmem_state_cache_init();
	if (r)
		return r;

	kvm_gmem_wq = alloc_workqueue("kvm_gmem", 0, 0);
	if (!kvm_gmem_wq) {
		r = -ENOMEM;
		goto err_state;
	}

	kvm_gmem_inode_cache = kmem_cache_create("kvm_gmem_inode",
						 sizeof(struct kvm_gmem_inode),
						 0, SLAB_ACCOUNT,
						 kvm_gmem_inode_once);
	if (!kvm_gmem_inode_cache) {
		r = -ENOMEM;
		goto err_wq;
	}

	kvm_gmem_mnt = kern_mount(&kvm_gmem_fs);
	if (IS_ERR(kvm_gmem_mnt)) {
		r = PTR_ERR(kvm_gmem_mnt);
		goto err_cache;
	}
	/* Guest memory must not be executed or become a device from the host. */
	kvm_gmem_mnt->mnt_flags |= MNT_NOEXEC | MNT_NODEV;
	return 0;

err_cache:
	kmem_cache_destroy(kvm_gmem_inode_cache);
err_wq:
	destroy_workqueue(kvm_gmem_wq);
err_state:
	kvm_gmem_state_cache_exit();
	return r;
}

void kvm_gmem_exit(void)
{
	/* Its work items drop inodes of the filesystem: first. */
	destroy_workqueue(kvm_gmem_wq);
	kern_unmount(kvm_gmem_mnt);
	kvm_gmem_mnt = NULL;
	rcu_barrier();
	kmem_cache_destroy(kvm_gmem_inode_cache);
	kvm_gmem_state_cache_exit();
}

/**
 * kvm_gmem_valid_flags() - the KVM_CREATE_GUEST_MEMFD flags of a VM
 * @kvm: the VM, or NULL for what some VM type supports (/dev/kvm)
 *
 * Host mmap needs the page content to be readable by the host when shared
 * and unchanged by conversion, which holds where the architecture does
 * not encrypt or own private memory (and trivially where there is no
 * private memory, for guests whose RAM is all guest_memfd).
 *
 * Return: the valid flags; KVM_CAP_GUEST_MEMFD_FLAGS reports those that
 * fit in its int, KVM_CAP_GUEST_MEMFD_HUGETLB the hugetlb ones.
 */
u64 kvm_gmem_valid_flags(struct kvm *kvm)
{
	if (!kvm || kvm_arch_gmem_supports_mmap(kvm))
		return GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED |
		       kvm_gmem_hugetlb_flags();
	return 0;
}

/**
 * kvm_gmem_check_extension() - the guest_memfd capabilities
 * @kvm: the VM, or NULL for /dev/kvm
 * @cap: KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES or
 *	KVM_CAP_GUEST_MEMFD_HUGETLB
 *
 * Return: KVM_CAP_GUEST_MEMFD_FLAGS: the creation flags that are single
 * bits (GUEST_MEMFD_FLAG_HUGETLB only works with a page size, so it has a
 * capability of its own); KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES: the
 * attributes KVM_SET_MEMORY_ATTRIBUTES2 can set on a guest_memfd;
 * KVM_CAP_GUEST_MEMFD_HUGETLB: the page sizes GUEST_MEMFD_FLAG_HUGETLB
 * takes, as a mask of 1 << log2(size).
 */
int kvm_gmem_check_extension(struct kvm *kvm, long cap)
{
	u64 flags = kvm_gmem_valid_flags(kvm);

	switch (cap) {
	case KVM_CAP_GUEST_MEMFD_FLAGS:
		return flags & (GUEST_MEMFD_FLAG_MMAP |
				GUEST_MEMFD_FLAG_INIT_SHARED);
	case KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES:
		return !kvm || kvm_gmem_supports_attributes(kvm) ?
		       KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
	}
	/* The capabilities of later features, 0 where they are not built. */
	return kvm_gmem_hugetlb_check_extension(cap, flags) ?:
	       kvm_gmem_userfault_check_extension(cap, flags);
}

static struct inode *kvm_gmem_inode_create(loff_t size, u64 flags)
{
	struct kvm_gmem_inode *gi;
	struct inode *inode;
	int err;

	/* An anonymous inode that LSMs label, as 6.12's anon_inode files. */
	inode = anon_inode_make_secure_inode(kvm_gmem_mnt->mnt_sb,
					     "[kvm-gmem]", NULL);
	if (IS_ERR(inode))
		return inode;

	gi = KVM_GMEM_I(inode);
	/* Dropped when the inode is freed: its code runs until then. */
	__module_get(kvm_gmem_owner);
	gi->owner = kvm_gmem_owner;
	gi->flags = flags;
	/* Reserves the whole file in the hugetlb pool, or fails. */
	err = kvm_gmem_hugetlb_setup(gi, size, flags);
	if (err) {
		iput(inode);
		return ERR_PTR(err);
	}
	err = kvm_gmem_state_init(&gi->state, &inode->i_mapping->invalidate_lock,
				  size >> PAGE_SHIFT,
				  flags & GUEST_MEMFD_FLAG_INIT_SHARED ?
				  KVM_GMEM_STATE_SHARED : 0);
	if (err) {
		iput(inode);
		return ERR_PTR(err);
	}

	inode->i_op = &kvm_gmem_iops;
	inode->i_mapping->a_ops = &kvm_gmem_aops;
	inode->i_mode |= S_IFREG;
	inode->i_size = size;
	mapping_set_gfp_mask(inode->i_mapping, GFP_HIGHUSER);
	mapping_set_inaccessible(inode->i_mapping);
	/* Unmovable mappings are supposed to be marked unevictable as well. */
	WARN_ON_ONCE(!mapping_unevictable(inode->i_mapping));
	return inode;
}

static int __kvm_gmem_create(struct kvm *kvm, loff_t size, u64 flags)
{
	struct kvm_gmem_file *f;
	struct inode *inode;
	struct file *file;
	int fd, err;

	if (!try_module_get(kvm_gmem_owner))
		return -ENOENT;

	fd = get_unused_fd_flags(0);
	if (fd < 0) {
		err = fd;
		goto err_module;
	}

	f = kzalloc(sizeof(*f), GFP_KERNEL_ACCOUNT);
	if (!f) {
		err = -ENOMEM;
		goto err_fd;
	}

	inode = kvm_gmem_inode_create(size, flags);
	if (IS_ERR(inode)) {
		err = PTR_ERR(inode);
		goto err_f;
	}

	file = alloc_file_pseudo(inode, kvm_gmem_mnt, "[kvm-gmem]", O_RDWR,
				 &kvm_gmem_fops);
	if (IS_ERR(file)) {
		iput(inode);
		err = PTR_ERR(file);
		goto err_f;
	}

	file->f_flags |= O_LARGEFILE;
	file->private_data = f;

	kvm_get_kvm(kvm);
	f->kvm = kvm;
	xa_init(&f->bindings);
	/* Nobody else can see the inode yet, the lock is for lockdep. */
	filemap_invalidate_lock(inode->i_mapping);
	list_add(&f->entry, &KVM_GMEM_I(inode)->files);
	filemap_invalidate_unlock(inode->i_mapping);

	fd_install(fd, file);
	return fd;

err_f:
	kfree(f);
err_fd:
	put_unused_fd(fd);
err_module:
	module_put(kvm_gmem_owner);
	return err;
}

int kvm_gmem_create(struct kvm *kvm, struct kvm_create_guest_memfd *args)
{
	loff_t size = args->size;
	u64 flags = args->flags;

	/*
	 * Every flag works on its own: GUEST_MEMFD_FLAG_INIT_SHARED without
	 * GUEST_MEMFD_FLAG_MMAP is memory that only KVM maps, shared.
	 */
	if (flags & ~kvm_gmem_valid_flags(kvm))
		return -EINVAL;

	if (size <= 0 || !PAGE_ALIGNED(size))
		return -EINVAL;

	return __kvm_gmem_create(kvm, size, flags);
}

int kvm_gmem_bind(struct kvm *kvm, struct kvm_memory_slot *slot,
		  unsigned int fd, u64 offset)
{
	u64 size = slot->npages << PAGE_SHIFT;
	unsigned long start, end;
	struct kvm_gmem_file *f;
	struct inode *inode;
	struct file *file;
	int r = -EINVAL;

	BUILD_BUG_ON(sizeof(gpa_t) != sizeof(offset));
	BUILD_BUG_ON(sizeof(gfn_t) != sizeof(slot->gmem.pgoff));

	file = fget(fd);
	if (!file)
		return -EBADF;

	if (file->f_op != &kvm_gmem_fops)
		goto err;

	f = file->private_data;
	if (f->kvm != kvm)
		goto err;

	inode = file_inode(file);

	if (!PAGE_ALIGNED(offset) || offset + size > i_size_read(inode))
		goto err;

	/* Folios are naturally aligned in the file and in the slot's view. */
	if (!IS_ALIGNED(offset, kvm_gmem_hugetlb_page_size(KVM_GMEM_I(inode))))
		goto err;

	filemap_invalidate_lock(inode->i_mapping);

	start = offset >> PAGE_SHIFT;
	end = start + slot->npages;

	if (!xa_empty(&f->bindings) &&
	    xa_find(&f->bindings, &start, end - 1, XA_PRESENT)) {
		filemap_invalidate_unlock(inode->i_mapping);
		goto err;
	}

	/*
	 * memslots of flag KVM_MEM_GUEST_MEMFD are immutable to change, so
	 * kvm_gmem_bind() must occur on a new memslot.  Because the memslot
	 * is not visible yet, kvm_gmem_get_pfn() is guaranteed to see the file.
	 */
	WRITE_ONCE(slot->gmem.file, file);
	slot->gmem.pgoff = start;
	/* The file's state, not the VM's attributes, says what is private. */
	slot->gmem.has_state = kvm_gmem_has_state(KVM_GMEM_I(inode));

	r = xa_err(xa_store_range(&f->bindings, start, end - 1, slot, GFP_KERNEL));
	if (r) {
		xa_store_range(&f->bindings, start, end - 1, NULL, GFP_KERNEL);
		slot->gmem.file = NULL;
		slot->gmem.pgoff = 0;
		slot->gmem.has_state = false;
	}
	filemap_invalidate_unlock(inode->i_mapping);

	/*
	 * Drop the reference to the file, even on success.  The file pins KVM,
	 * not the other way 'round.  Active bindings are invalidated if the
	 * file is closed before memslots are destroyed.
	 */
err:
	fput(file);
	return r;
}

static void __kvm_gmem_unbind(struct kvm_memory_slot *slot,
			      struct kvm_gmem_file *f)
{
	unsigned long start = slot->gmem.pgoff;
	unsigned long end = start + slot->npages;

	xa_store_range(&f->bindings, start, end - 1, NULL, GFP_KERNEL);

	/*
	 * synchronize_srcu(&kvm->srcu) ensured that kvm_gmem_get_pfn()
	 * cannot see this memslot.
	 */
	WRITE_ONCE(slot->gmem.file, NULL);
}

void kvm_gmem_unbind(struct kvm_memory_slot *slot)
{
	struct file *file;

	/*
	 * Nothing to do if the underlying file was _already_ closed, as
	 * kvm_gmem_release() invalidates and nullifies all bindings.
	 */
	if (!slot->gmem.file)
		return;

	file = kvm_gmem_get_file(slot);

	/*
	 * However, if the file is _being_ closed, then the bindings need to be
	 * removed as kvm_gmem_release() might not run until after the memslot
	 * is freed.  Note, modifying the bindings is safe even though the file
	 * is dying as kvm_gmem_release() nullifies slot->gmem.file under
	 * slots_lock, and only puts its reference to KVM after destroying all
	 * bindings.  I.e. reaching this point means kvm_gmem_release() hasn't
	 * yet destroyed the bindings or freed the file, and can't do so
	 * until the caller drops slots_lock.
	 */
	if (!file) {
		__kvm_gmem_unbind(slot, slot->gmem.file->private_data);
		return;
	}

	filemap_invalidate_lock(file->f_mapping);
	__kvm_gmem_unbind(slot, file->private_data);
	filemap_invalidate_unlock(file->f_mapping);

	fput(file);
}

/**
 * kvm_gmem_is_private() - whether the file bound at @gfn says private
 * @kvm: the VM of @slot
 * @slot: a memslot with slot->gmem.has_state
 * @gfn: a gfn of @slot
 *
 * Context: inside kvm->srcu (see kvm_gmem_slot_file()); no reference taken.
 * Return: true if the page is private, or if the file is gone (so that
 * the fault goes to kvm_gmem_get_pfn() and exits to userspace).
 */
bool kvm_gmem_is_private(struct kvm *kvm, struct kvm_memory_slot *slot,
			 gfn_t gfn)
{
	struct file *file = kvm_gmem_slot_file(kvm, slot);

	if (!file)
		return true;
	return !kvm_gmem_page_shared(kvm_gmem_file_inode(file),
				     kvm_gmem_get_index(slot, gfn));
}
EXPORT_SYMBOL_GPL(kvm_gmem_is_private);

/*
 * The largest order KVM may map @index of @slot with: at most @state_order
 * (that of the block around @index with one state, @attrs, and no missing
 * page) and the folio's, or for hugetlb files the largest block of the
 * huge page that is ready to be mapped whole
 * (kvm_gmem_hugetlb_block_order()); with the gfn and the index equally
 * aligned and the block inside the slot.
 */
static int kvm_gmem_mapping_order(struct kvm_gmem_inode *gi,
				  struct kvm_memory_slot *slot, pgoff_t index,
				  struct folio *folio, unsigned int state_order,
				  unsigned int attrs)
{
	gfn_t gfn = slot->base_gfn + index - slot->gmem.pgoff;
	unsigned int order;
	unsigned long n;

	if (kvm_gmem_piece_poisoned(folio))
		return 0;
	if (gi->hugetlb)
		order = kvm_gmem_hugetlb_block_order(gi, index, folio,
						     state_order, attrs);
	else
		order = min(folio_order(folio), state_order);
	while (order) {
		n = 1UL << order;
		if (!((gfn ^ index) & (n - 1)) &&
		    round_down(gfn, n) >= slot->base_gfn &&
		    round_down(gfn, n) + n <= slot->base_gfn + slot->npages)
			break;
		order = order > PMD_ORDER ? PMD_ORDER : 0;
	}
	return order;
}

/*
 * Returns a locked folio on success.  @file is slot->gmem.file, read once
 * by the caller, who keeps it valid (a reference, kvm->srcu or slots_lock).
 */
static struct folio *__kvm_gmem_get_pfn(struct file *file,
					struct kvm_memory_slot *slot,
					pgoff_t index, kvm_pfn_t *pfn,
					bool *is_prepared, int *max_order)
{
	struct file *gmem_file = READ_ONCE(slot->gmem.file);
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(file);
	struct kvm_gmem_file *f = file->private_data;
	unsigned int state_order = KVM_GMEM_STATE_ORDER_1G, attrs = 0;
	struct folio *folio;

	if (file != gmem_file) {
		WARN_ON_ONCE(gmem_file);
		return ERR_PTR(-EFAULT);
	}

	if (xa_load(&f->bindings, index) != slot) {
		WARN_ON_ONCE(xa_load(&f->bindings, index));
		return ERR_PTR(-EIO);
	}

	/*
	 * The one lookup of the fault, in files with a state: the missing
	 * bit and the order of the uniform block around @index, up to the
	 * file's page size.  Contents not here yet: the vCPU exits to
	 * userspace.  A racing conversion or KVM_GMEM_SET_USERFAULT zaps
	 * inside an invalidation, so a fault that read the old state retries.
	 */
	if (kvm_gmem_has_state(gi)) {
		unsigned int max = ilog2(kvm_gmem_hugetlb_page_size(gi) >>
					 PAGE_SHIFT);

		/* 4K folios and no missing bit ever set: nothing to ask. */
		state_order = max;
		if (max || READ_ONCE(gi->state.uf)) {
			attrs = kvm_gmem_state_lookup(&gi->state, index, max,
						      &state_order);
			if (attrs & KVM_GMEM_STATE_MISSING)
				return ERR_PTR(-ENODATA);
		}
	}

	if (gi->hugetlb)
		folio = kvm_gmem_hugetlb_get_guest_folio(gi, index);
	else
		folio = kvm_gmem_get_folio(file_inode(file), index);
	if (IS_ERR(folio))
		return folio;

	/*
	 * A piece with a poisoned page is mapped a page at a time
	 * (kvm_gmem_mapping_order()).
	 */
	if (kvm_gmem_page_poisoned(folio, index)) {
		folio_unlock(folio);
		folio_put(folio);
		return ERR_PTR(-EHWPOISON);
	}

	*pfn = folio_file_pfn(folio, index);
	if (max_order)
		*max_order = kvm_gmem_mapping_order(gi, slot, index, folio,
						    state_order, attrs);

	*is_prepared = folio_test_uptodate(folio);
	return folio;
}

/**
 * kvm_gmem_get_pfn() - the page of guest_memfd behind @gfn, for a mapping
 * @kvm: the VM
 * @slot: a memslot bound to a guest_memfd
 * @gfn: a gfn of @slot
 * @pfn: receives the page frame
 * @max_order: if not NULL, receives the largest order KVM may map it with
 *
 * Context: inside kvm->srcu (or with slots_lock held); no reference to the
 * file is taken (kvm_gmem_slot_file()).
 * Return: 0 with a reference to the folio, or a negative error: -EFAULT if
 * the file is gone, -ENODATA if the page is missing, -EHWPOISON for a
 * poisoned page, -EIO for a gfn the file does not bind to @slot, or what
 * allocating the folio or preparing it for the VM type returned.
 */
int kvm_gmem_get_pfn(struct kvm *kvm, struct kvm_memory_slot *slot,
		     gfn_t gfn, kvm_pfn_t *pfn, int *max_order)
{
	pgoff_t index = kvm_gmem_get_index(slot, gfn);
	struct file *file = kvm_gmem_slot_file(kvm, slot);
	struct folio *folio;
	bool is_prepared = false;
	int r = 0;

	if (!file)
		return -EFAULT;

	folio = __kvm_gmem_get_pfn(file, slot, index, pfn, &is_prepared, max_order);
	if (IS_ERR(folio))
		return PTR_ERR(folio);

	if (!is_prepared)
		r = kvm_gmem_prepare_folio(kvm, slot, gfn, folio);

	folio_unlock(folio);
	if (r < 0)
		folio_put(folio);

	return r;
}
EXPORT_SYMBOL_GPL(kvm_gmem_get_pfn);

#ifdef CONFIG_KVM_GENERIC_PRIVATE_MEM
long kvm_gmem_populate(struct kvm *kvm, gfn_t start_gfn, void __user *src, long npages,
		       kvm_gmem_populate_cb post_populate, void *opaque)
{
	struct file *file;
	struct kvm_memory_slot *slot;
	void __user *p;

	int ret = 0, max_order;
	long i;

	lockdep_assert_held(&kvm->slots_lock);
	if (npages < 0)
		return -EINVAL;

	slot = gfn_to_memslot(kvm, start_gfn);
	if (!kvm_slot_can_be_private(slot))
		return -EINVAL;

	file = kvm_gmem_get_file(slot);
	if (!file)
		return -EFAULT;

	filemap_invalidate_lock(file->f_mapping);

	npages = min_t(ulong, slot->npages - (start_gfn - slot->base_gfn), npages);
	for (i = 0; i < npages; i += (1 << max_order)) {
		struct folio *folio;
		gfn_t gfn = start_gfn + i;
		pgoff_t index = kvm_gmem_get_index(slot, gfn);
		bool is_prepared = false;
		kvm_pfn_t pfn;

		if (signal_pending(current)) {
			ret = -EINTR;
			break;
		}

		folio = __kvm_gmem_get_pfn(file, slot, index, &pfn, &is_prepared, &max_order);
		if (IS_ERR(folio)) {
			ret = PTR_ERR(folio);
			break;
		}

		if (is_prepared) {
			folio_unlock(folio);
			folio_put(folio);
			ret = -EEXIST;
			break;
		}

		folio_unlock(folio);
		WARN_ON(!IS_ALIGNED(gfn, 1 << max_order) ||
			(npages - i) < (1 << max_order));

		ret = -EINVAL;
		while (!kvm_range_has_memory_attributes(kvm, gfn, gfn + (1 << max_order),
							KVM_MEMORY_ATTRIBUTE_PRIVATE,
							KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
			if (!max_order)
				goto put_folio_and_exit;
			max_order--;
		}

		p = src ? src + i * PAGE_SIZE : NULL;
		ret = post_populate(kvm, gfn, pfn, p, max_order, opaque);
		if (!ret)
			folio_mark_uptodate(folio);

put_folio_and_exit:
		folio_put(folio);
		if (ret)
			break;
	}

	filemap_invalidate_unlock(file->f_mapping);

	fput(file);
	return ret && !i ? ret : i;
}
EXPORT_SYMBOL_GPL(kvm_gmem_populate);
#endif
