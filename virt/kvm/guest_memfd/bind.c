// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd and KVM: binding files to memslots and the lookups of KVM's
 * MMU (kvm_gmem_get_pfn(), kvm_gmem_is_private(), the mapping order) and of
 * the vendor code (kvm_gmem_populate()).  The arch "prepare" hook runs here,
 * on a page's first use by a VM.  Calls into inode.c for folios and into
 * hugetlb.c for hugetlb files.
 */
#include <linux/kvm_host.h>
#include <linux/pagemap.h>

#include "../kvm_mm.h"
#include "gmem.h"

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

