// SPDX-License-Identifier: GPL-2.0
/*
 * In-place shared <-> private conversion of guest_memfd pages
 * (KVM_GMEM_CONVERT_SHARED and KVM_GMEM_CONVERT_PRIVATE).
 *
 * Protocol, all under the invalidate lock held exclusive:
 *  1. To private only: unmap every host mapping of the range and make sure
 *     no page of it is still referenced by anyone but the page cache; a
 *     page that is (pinned, under I/O, being faulted in) fails the call with
 *     -EAGAIN and its offset, before anything changed.
 *  2. Zap KVM's mappings of the range in every VM bound to the file and
 *     start an MMU invalidation, so vCPU faults on the range retry.
 *  3. Update the state map: O(ranges touched), whatever the size.
 * A range that already has the requested state returns at once.
 *  4. End the invalidation.
 * hugetlb files split the huge folios of the range before step 2 of a
 * conversion to shared (a shared page is a folio of its own), and merge
 * the blocks a conversion to private left private throughout after step 4
 * (see hugetlb.c).
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
 * Unmap the host's mappings of [@start, @end) and check that nobody else
 * holds a page of it. On -EAGAIN, *@bad is the first busy page.
 */
static int kvm_gmem_unmap_check(struct kvm_gmem_inode *gi, pgoff_t start,
				pgoff_t end, pgoff_t *bad)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio_batch fbatch;
	pgoff_t index = start;
	unsigned int i;
	int ret = 0;

	lockdep_assert_held_write(&mapping->invalidate_lock);

	/* Faults wait for the invalidate lock: no new mapping appears. */
	unmap_mapping_pages(mapping, start, end - start, false);

	folio_batch_init(&fbatch);
	while (!ret && filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];

			/*
			 * A fault that passed the state check before we took
			 * the lock holds the folio lock until its page table
			 * entry is in place: wait for it, then unmap again.
			 */
			folio_lock(folio);
			if (folio_mapped(folio))
				unmap_mapping_pages(mapping, folio->index,
						    folio_nr_pages(folio), false);
			/*
			 * The page cache's references, our batch's and a
			 * split huge page's anchor.
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

/**
 * kvm_gmem_convert() - KVM_GMEM_CONVERT_SHARED / KVM_GMEM_CONVERT_PRIVATE
 * @file: a guest_memfd file
 * @to_private: the direction
 * @argp: user pointer to struct kvm_gmem_convert
 *
 * Return: 0; -EINVAL for bad arguments or a file created without
 * GUEST_MEMFD_FLAG_MMAP; -EAGAIN with error_offset set if a page is still
 * referenced (to private), -EAGAIN with error_offset unchanged if a huge
 * folio stayed referenced (to shared); -ENOMEM; -EINTR; -EFAULT. On error
 * the state is unchanged.
 */
long kvm_gmem_convert(struct file *file, bool to_private, void __user *argp)
{
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(file);
	struct address_space *mapping = file->f_mapping;
	struct kvm_gmem_convert args;
	pgoff_t start, end, bad;
	u64 last;
	int ret, i;

	if (copy_from_user(&args, argp, sizeof(args)))
		return -EFAULT;

	for (i = 0; i < ARRAY_SIZE(args.reserved); i++)
		if (args.reserved[i])
			return -EINVAL;

	if (!kvm_gmem_has_mmap(gi))
		return -EINVAL;

	if (!args.size || !PAGE_ALIGNED(args.offset) ||
	    !PAGE_ALIGNED(args.size) ||
	    check_add_overflow(args.offset, args.size, &last) ||
	    last > i_size_read(file_inode(file)))
		return -EINVAL;

	start = args.offset >> PAGE_SHIFT;
	end = last >> PAGE_SHIFT;

	filemap_invalidate_lock(mapping);

	/* Nothing to unmap, zap or store: O(ranges) and done. */
	if (!kvm_gmem_needs_convert(&gi->state, start, end, to_private)) {
		filemap_invalidate_unlock(mapping);
		return 0;
	}

	if (to_private) {
		ret = kvm_gmem_unmap_check(gi, start, end, &bad);
		if (ret == -EAGAIN) {
			/* Per-CPU LRU batches hold references of their own. */
			lru_add_drain_all();
			ret = kvm_gmem_unmap_check(gi, start, end, &bad);
		}
		if (ret) {
			filemap_invalidate_unlock(mapping);
			args.error_offset = (u64)bad << PAGE_SHIFT;
			if (copy_to_user(argp, &args, sizeof(args)))
				return -EFAULT;
			return ret;
		}
	}

	/* A shared page of a hugetlb file is a folio of its own. */
	if (!to_private && gi->hugetlb) {
		ret = kvm_gmem_hugetlb_split_range(gi, start, end);
		if (ret) {
			filemap_invalidate_unlock(mapping);
			return ret;
		}
	}

	kvm_gmem_invalidate_begin(gi, start, end);
	ret = kvm_gmem_state_update(&gi->state, start, end,
				    to_private ? 0 : KVM_GMEM_STATE_SHARED,
				    to_private ? KVM_GMEM_STATE_SHARED : 0);
	kvm_gmem_invalidate_end(gi, start, end);

	/* Blocks that are private throughout can be huge again. */
	if (!ret && to_private && gi->hugetlb)
		kvm_gmem_hugetlb_merge_range(gi, start, end);

	filemap_invalidate_unlock(mapping);
	return ret;
}
