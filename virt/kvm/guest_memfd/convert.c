// SPDX-License-Identifier: GPL-2.0
/*
 * In-place shared <-> private conversion of guest_memfd pages:
 * KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd, as upstream has it.
 *
 * Protocol, all under the invalidate lock held exclusive:
 *  1. To private only: unmap the range from every process that maps it
 *     and make sure no page of it is still referenced by anyone but the
 *     page cache; a page that is (pinned, under I/O, being faulted in)
 *     fails the call with -EAGAIN and its offset, before anything
 *     changed.
 *  2. Update the state map: O(ranges touched), whatever the size.
 *  3. If a page changed state, zap KVM's mappings of the range in every VM
 *     bound to the file and bump the MMU invalidation sequence, in one
 *     mmu_lock section (kvm_gmem_invalidate()): a vCPU fault that looked
 *     up the old state retries. Nothing is freed, so the invalidation
 *     need not span the update; hugetlb files also keep one open across
 *     it (begin before step 2, end after it), then zap as well.
 * A range that already has the requested state changes nothing.
 * hugetlb files first split the folios the conversion would leave with
 * pages of both states, and merge the blocks it left with one state
 * throughout after step 3 (see hugetlb.c).
 * New host faults on the range wait for the invalidate lock and then see
 * the new state. The pages themselves are not touched: content survives.
 */
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/swap.h>
#include <linux/uaccess.h>

#include "gmem.h"

/*
 * Remove every process's mappings of [@start, @end): private pages are
 * for the guest only, whoever mapped them while they were shared (the VMM,
 * a forked child, a device backend). Later accesses raise SIGBUS.
 */
static void kvm_gmem_unmap(struct address_space *mapping, pgoff_t start,
			   pgoff_t end)
{
	unmap_mapping_pages(mapping, start, end - start, false);
}

/*
 * Unmap [@start, @end) from every process and check that nobody else holds
 * a page of it. On -EAGAIN, *@bad is the first busy page.
 */
static int kvm_gmem_unmap_check(struct kvm_gmem_inode *gi, pgoff_t start,
				pgoff_t end, pgoff_t *bad)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio_batch fbatch;
	pgoff_t index = start;
	bool unmapped = false;
	unsigned int i;
	int ret = 0;

	lockdep_assert_held_write(&mapping->invalidate_lock);

	folio_batch_init(&fbatch);
	while (!ret && filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];

			/*
			 * Only pages in the page cache can be mapped, and
			 * faults wait for the invalidate lock: unmap once,
			 * from the first mapped page on, and not at all if
			 * none is (the pages were never allocated, or the
			 * host never touched them).
			 */
			if (!unmapped && folio_mapped(folio)) {
				kvm_gmem_unmap(mapping, folio->index, end);
				unmapped = true;
			}
			/*
			 * A fault that passed the state check before we took
			 * the lock holds the folio lock until its page table
			 * entry is in place: wait for it, then unmap again.
			 */
			folio_lock(folio);
			if (folio_mapped(folio))
				kvm_gmem_unmap(mapping, folio->index,
					       folio_next_index(folio));
			/*
			 * The page cache's references, our batch's and a
			 * split huge page's anchor; anything else is a pin,
			 * I/O or a GUP reference in flight.
			 */
			if (folio_ref_count(folio) != folio_nr_pages(folio) + 1 +
			    guestmem_hugetlb_extra_refs(gi->hugetlb, folio)) {
				*bad = max(folio->index, start);
				ret = -EAGAIN;
			}
			folio_unlock(folio);
			if (ret)
				break;
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
	return ret;
}

/* Whether a page of [@start, @end) is not in the requested state yet. */
static bool kvm_gmem_needs_convert(struct kvm_gmem_state *s, pgoff_t start,
				   pgoff_t end, bool to_private)
{
	struct kvm_gmem_state_iter it;

	kvm_gmem_state_for_each_range(s, &it, start, end)
		if (!!(it.state & KVM_GMEM_STATE_SHARED) == to_private)
			return true;
	return false;
}

/*
 * Check @args of KVM_SET_MEMORY_ATTRIBUTES2 on @file, in upstream's order,
 * and turn its range into page indices [*@start, *@end).
 */
static int kvm_gmem_check_attributes(struct file *file,
				     const struct kvm_memory_attributes2 *args,
				     pgoff_t *start, pgoff_t *end)
{
	struct kvm_gmem_file *f = file->private_data;
	u64 last;
	int i;

	/* No flags are defined (upstream dropped its content modes). */
	if (args->flags)
		return -EINVAL;

	for (i = 0; i < ARRAY_SIZE(args->reserved); i++)
		if (args->reserved[i])
			return -EINVAL;

	if (!kvm_gmem_supports_attributes(f->kvm))
		return -EINVAL;

	if (args->attributes & ~KVM_MEMORY_ATTRIBUTE_PRIVATE)
		return -EINVAL;

	if (!args->size || check_add_overflow(args->offset, args->size, &last))
		return -EINVAL;

	if (!PAGE_ALIGNED(args->offset) || !PAGE_ALIGNED(args->size))
		return -EINVAL;

	if (last > i_size_read(file_inode(file)))
		return -EINVAL;

	/* A file without a state of its own follows the VM's attributes. */
	if (!kvm_gmem_has_state(kvm_gmem_file_inode(file)))
		return -EINVAL;

	*start = args->offset >> PAGE_SHIFT;
	*end = last >> PAGE_SHIFT;
	return 0;
}

/**
 * kvm_gmem_set_attributes() - KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd
 * @file: a guest_memfd file
 * @argp: user pointer to struct kvm_memory_attributes2
 *
 * Make [offset, offset + size) private (attributes ==
 * KVM_MEMORY_ATTRIBUTE_PRIVATE) or shared (attributes == 0), in place.
 *
 * Return: 0; -EINVAL for bad arguments, a VM type without private memory
 * or a file that does not own its pages' state; -EAGAIN with error_offset
 * set if a page is still referenced beyond its mappings (to private;
 * for hugetlb files, a page of a 2M block the conversion must split),
 * -EAGAIN with error_offset unchanged if a huge folio stayed referenced
 * (to shared, hugetlb files); -ENOMEM; -EINTR; -EFAULT. On error the
 * state is unchanged.
 */
long kvm_gmem_set_attributes(struct file *file, void __user *argp)
{
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(file);
	struct address_space *mapping = file->f_mapping;
	struct kvm_memory_attributes2 args;
	bool to_private, drained = false;
	pgoff_t start, end, bad;
	int ret;

	if (copy_from_user(&args, argp, sizeof(args)))
		return -EFAULT;

	ret = kvm_gmem_check_attributes(file, &args, &start, &end);
	if (ret)
		return ret;

	to_private = args.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE;

again:
	filemap_invalidate_lock(mapping);

	/*
	 * Nothing to unmap, check, split or store: O(ranges) and done. (A
	 * conversion to shared of a 4K file finds out from the update.)
	 */
	if ((to_private || gi->hugetlb) &&
	    !kvm_gmem_needs_convert(&gi->state, start, end, to_private)) {
		ret = 0;
		goto out;
	}

	/* Folios the conversion would leave mixed, before anything else. */
	if (gi->hugetlb) {
		ret = kvm_gmem_hugetlb_split_range(gi, start, end,
						   to_private ? 0 :
						   KVM_GMEM_STATE_SHARED, &bad);
		if (ret == -EAGAIN && to_private)
			goto busy;
		if (ret)
			goto out;
	}

	if (to_private) {
		ret = kvm_gmem_unmap_check(gi, start, end, &bad);
		/*
		 * Per-CPU LRU batches hold references of their own on small
		 * folios (hugetlb folios and their pieces are never on the
		 * LRU): drain them, system-wide work, once per conversion and
		 * without the lock, then start again.
		 */
		if (ret == -EAGAIN && !gi->hugetlb && !drained) {
			filemap_invalidate_unlock(mapping);
			lru_add_drain_all();
			drained = true;
			goto again;
		}
		if (ret)
			goto busy;
	}

	/*
	 * hugetlb files keep an invalidation open across the update, so that
	 * vCPU faults on the range, which may split folios according to the
	 * state they see (kvm_gmem_hugetlb_get_guest_folio()), wait until it
	 * is final. All files zap after the update (kvm_gmem_invalidate()): a
	 * fault elsewhere that read the old state may have mapped a block
	 * across the range meanwhile (KVM maps hugetlb blocks across
	 * folios); it is zapped, or retries on the new sequence.
	 */
	if (gi->hugetlb)
		kvm_gmem_invalidate_begin(gi, start, end);
	ret = kvm_gmem_state_update(&gi->state, start, end,
				    to_private ? 0 : KVM_GMEM_STATE_SHARED,
				    to_private ? KVM_GMEM_STATE_SHARED : 0);
	if (gi->hugetlb)
		kvm_gmem_invalidate_end(gi, start, end);
	if (ret > 0)
		kvm_gmem_invalidate(gi, start, end);
	if (ret > 0) {
		/* Blocks that have one state throughout can be huge again. */
		if (gi->hugetlb)
			kvm_gmem_hugetlb_merge_range(gi, start, end);
		ret = 0;
	}
out:
	filemap_invalidate_unlock(mapping);
	return ret;

busy:
	filemap_invalidate_unlock(mapping);
	args.error_offset = (u64)bad << PAGE_SHIFT;
	if (copy_to_user(argp, &args, sizeof(args)))
		return -EFAULT;
	return ret;
}
