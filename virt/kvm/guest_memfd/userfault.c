// SPDX-License-Identifier: GPL-2.0-only
/*
 * Missing ("userfault") pages of a guest_memfd, for post-copy migration.
 *
 * A page whose missing bit is set has no contents yet.  The bit lives in the
 * inode's state (state.[ch]) beside the shared/private state, so every path
 * that looks a page up learns both from one lookup:
 *
 *  - a vCPU access exits to userspace with KVM_EXIT_MEMORY_FAULT and
 *    KVM_MEMORY_EXIT_FLAG_USERFAULT (kvm_gmem_get_pfn() fails with -ENODATA,
 *    the architecture turns that into the exit), and KVM never maps a huge
 *    page across a missing one (kvm_gmem_state_lookup() bounds the order);
 *  - a host access through a mapping of the file sleeps, killably and
 *    without the mmap lock, until the page is present, or gets SIGBUS if
 *    its fault cannot drop the lock (kvm_gmem_fault_missing()); KVM's own
 *    accesses to guest memory (gfn_to_pfn caches, the emulator) go through
 *    such a mapping and wait the same way;
 *  - unless the mapping is registered with userfaultfd (as upstream 7.1
 *    allows for guest_memfd): then a missing page raises a MINOR or
 *    MISSING event, as a page in the page cache that the mapping does not
 *    map yet or a hole would, and UFFDIO_CONTINUE, UFFDIO_COPY and
 *    UFFDIO_ZEROPAGE map the page and clear its bit (kvm_gmem_uffd_ops).
 *
 * Userspace sets and clears bits as deltas over vectors of ranges
 * (KVM_GMEM_SET_USERFAULT), reads them back (KVM_GMEM_GET_USERFAULT) and
 * fills missing pages in place (KVM_GMEM_RESOLVE).  Clearing takes no lock
 * and allocates nothing: a fully ordered test_and_clear_bit() per page,
 * then one wake-up if somebody waits.
 *
 * Wake-up protocol: a waiter announces itself (kvm_gmem_state_wait_prepare(),
 * a counter) before it re-checks the bit and sleeps on @uf_wq; a clearer
 * clears the bit (fully ordered) before it reads the counter.  Either the
 * waiter sees the page present or the clearer sees the waiter and wakes
 * @uf_wq; a resolved page's contents are written before its bit is cleared.
 *
 * Setting bits takes the invalidate lock for write: it excludes host faults
 * (which check the bit under the lock held shared), then zaps KVM's
 * mappings of the range and bumps the invalidation sequence, so that vCPU
 * faults that read the old bits retry, and unmaps every process's mappings
 * of it, which also invalidates KVM's gfn_to_pfn caches through the MMU
 * notifiers.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <linux/userfaultfd_k.h>
#include <linux/wait.h>

#include "gmem.h"
#include "missing.h"

/* Ranges copied from userspace at a time: no allocation on the clear path. */
#define KVM_GMEM_UF_BATCH	16

/* Page-aligned, non-empty, no overflow, inside a file of @nr_pages. */
static int kvm_gmem_uf_check_range(u64 offset, u64 size, pgoff_t nr_pages,
				   pgoff_t *start, pgoff_t *end)
{
	u64 last;

	if (!size || check_add_overflow(offset, size, &last))
		return -EINVAL;
	if (!PAGE_ALIGNED(offset) || !PAGE_ALIGNED(size))
		return -EINVAL;
	if (last >> PAGE_SHIFT > nr_pages)
		return -EINVAL;
	*start = offset >> PAGE_SHIFT;
	*end = last >> PAGE_SHIFT;
	return 0;
}

/* The files whose pages KVM takes from the file alone may have missing bits. */
static struct kvm_gmem_inode *kvm_gmem_uf_inode(struct file *file)
{
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(file);

	return kvm_gmem_has_state(gi) ? gi : NULL;
}

static pgoff_t kvm_gmem_nr_pages(struct kvm_gmem_inode *gi)
{
	return i_size_read(&gi->vfs_inode) >> PAGE_SHIFT;
}

/**
 * kvm_gmem_page_missing() - whether a page's contents are missing
 * @gi: the inode
 * @index: the page
 *
 * Context: any; lockless.
 * Return: true if the page's missing bit is set.
 */
bool kvm_gmem_page_missing(struct kvm_gmem_inode *gi, pgoff_t index)
{
	/* No bit was ever set: the common case, one load. */
	if (!READ_ONCE(gi->state.uf))
		return false;
	return kvm_gmem_state_lookup(&gi->state, index, 0, NULL) &
	       KVM_GMEM_STATE_MISSING;
}

/**
 * kvm_gmem_block_missing() - whether a page of a 2M block is missing
 * @gi: the inode
 * @index: a page of the block
 *
 * Context: any; lockless.
 * Return: true if a page of the 2M block around @index has its missing
 * bit set (or the block holds both shared and private pages).
 */
bool kvm_gmem_block_missing(struct kvm_gmem_inode *gi, pgoff_t index)
{
	unsigned int st = 0;

	if (!READ_ONCE(gi->state.uf))
		return false;
	return (kvm_gmem_state_lookup(&gi->state, index, PMD_ORDER, &st) &
		KVM_GMEM_STATE_MISSING) || st < PMD_ORDER;
}

/*
 * Unmap [@start, @end) from every process, and again under each cached
 * folio's lock: a host fault or UFFDIO_CONTINUE that looked the page up
 * before the bits were set holds the folio lock until its page table entry
 * is in (as in conversion).
 */
static void kvm_gmem_uf_unmap(struct address_space *mapping, pgoff_t start,
			      pgoff_t end)
{
	struct folio_batch fbatch;
	pgoff_t index = start;
	unsigned int i;

	unmap_mapping_pages(mapping, start, end - start, false);
	folio_batch_init(&fbatch);
	while (filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];

			folio_lock(folio);
			if (folio_mapped(folio))
				unmap_mapping_pages(mapping, folio->index,
						    folio_nr_pages(folio),
						    false);
			folio_unlock(folio);
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
}

/*
 * Mark [@start, @end) missing, 1G at a time (each step may allocate a
 * leaf and zaps, with the invalidate lock held), see the lock rules at the
 * top.  The bits are set before the zap and the invalidation sequence bump
 * (one mmu_lock section, as for conversion): a vCPU fault that looked up
 * the old bits, even for a neighbouring page of the same huge block,
 * either installed its mapping before the zap or retries.  On error the
 * range may be set in part, up to a 1G boundary.
 */
static int kvm_gmem_uf_set(struct kvm_gmem_inode *gi, pgoff_t start,
			   pgoff_t end)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	pgoff_t next;
	int ret = 0;

	for (; start < end && !ret; start = next) {
		next = min(end, round_down(start, KVM_GMEM_GIG_PAGES) +
				KVM_GMEM_GIG_PAGES);
		filemap_invalidate_lock(mapping);
		ret = kvm_gmem_state_set_missing(&gi->state, start, next);
		if (!ret) {
			kvm_gmem_invalidate(gi, start, next);
			kvm_gmem_uf_unmap(mapping, start, next);
		}
		filemap_invalidate_unlock(mapping);
		if (!ret && next < end && fatal_signal_pending(current))
			ret = -EINTR;
		cond_resched();
	}
	return ret;
}

/*
 * Mark [@start, @end) present: no lock, no allocation; 1G blocks without a
 * missing page are skipped, and in the others only set bits are visited.
 * Wakes waiters as it goes.  Return: 0, or -EINTR on a fatal signal.
 */
static int kvm_gmem_uf_clear(struct kvm_gmem_inode *gi, pgoff_t start,
			     pgoff_t end)
{
	/* Pairs with smp_store_release() of s->uf in set_missing. */
	struct kvm_gmem_uf *uf = smp_load_acquire(&gi->state.uf);
	bool wake = false;
	pgoff_t next, g, base;
	unsigned long *bits;
	unsigned long off;

	for (; uf && start < end; start = next) {
		g = start >> KVM_GMEM_STATE_ORDER_1G;
		next = min(end, (g + 1) << KVM_GMEM_STATE_ORDER_1G);
		if (g >= uf->nr_gigs)
			break;
		/* Pairs with smp_store_release() of the leaf in set_missing. */
		bits = smp_load_acquire(&uf->gig[g].bits);
		if (!bits || !test_bit(g, uf->sum1g))
			continue;
		base = g << KVM_GMEM_STATE_ORDER_1G;
		off = start - base;
		for_each_set_bit_from(off, bits, next - base) {
			if (kvm_gmem_state_clear_missing_one(&gi->state,
							     base + off) ==
			    KVM_GMEM_UF_WAKE)
				wake = true;
		}
		if (wake) {
			wake_up_all(&gi->uf_wq);
			wake = false;
		}
		if (next < end && fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * KVM_GMEM_USERFAULT_FLAG_COLLAPSE: zap KVM's mappings of [@start, @end)
 * (whole 2M blocks, see kvm_gmem_uf_blocks(); the ranges of one call are
 * merged where they touch), 1G at a time, so that the next faults map each
 * block as large as it now can be.  Pages mapped 4K while a neighbour was
 * missing stay so otherwise (clearing does not touch mmu_lock).  Nothing
 * is freed: the zap is a conversion's, under the invalidate lock held
 * shared (faults may run meanwhile; they retry or map after the zap).
 * Return: 0, or -EINTR on a fatal signal.
 */
static int kvm_gmem_uf_collapse(struct kvm_gmem_inode *gi, pgoff_t start,
				pgoff_t end)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	pgoff_t next;

	for (; start < end; start = next) {
		next = min(end, round_down(start, KVM_GMEM_GIG_PAGES) +
				KVM_GMEM_GIG_PAGES);
		filemap_invalidate_lock_shared(mapping);
		kvm_gmem_invalidate(gi, start, next);
		filemap_invalidate_unlock_shared(mapping);
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/* The 2M-aligned blocks around [@start, @end), inside the file. */
static void kvm_gmem_uf_blocks(struct kvm_gmem_inode *gi, pgoff_t *start,
			       pgoff_t *end)
{
	*start = round_down(*start, KVM_GMEM_BLOCK_PAGES);
	*end = min_t(pgoff_t, round_up(*end, KVM_GMEM_BLOCK_PAGES),
		     kvm_gmem_nr_pages(gi));
}

/*
 * Read the next batch of @u's ranges, from range @first on, and check each.
 * Return: the number read, or a negative error.
 */
static int kvm_gmem_uf_read_batch(struct kvm_gmem_inode *gi,
				  const struct kvm_gmem_userfault *u, u64 first,
				  struct kvm_gmem_range *r)
{
	u64 n = min_t(u64, u->nr_ranges - first, KVM_GMEM_UF_BATCH);
	void __user *src = u64_to_user_ptr(u->ranges) + first * sizeof(*r);
	pgoff_t start, end;
	u64 i;
	int ret;

	if (copy_from_user(r, src, n * sizeof(*r)))
		return -EFAULT;
	for (i = 0; i < n; i++) {
		ret = kvm_gmem_uf_check_range(r[i].offset, r[i].size,
					      kvm_gmem_nr_pages(gi), &start,
					      &end);
		if (ret)
			return ret;
	}
	return n;
}

/**
 * kvm_gmem_set_userfault() - KVM_GMEM_SET_USERFAULT on a guest_memfd
 * @file: the guest_memfd
 * @argp: user pointer to struct kvm_gmem_userfault
 *
 * Every range is checked before any changes, so bad input changes nothing;
 * ranges applied before a later failure (-ENOMEM, or a range that
 * userspace changed under the call) are counted in @done.
 *
 * Return: 0 or a negative error.
 */
static long kvm_gmem_set_userfault(struct file *file, void __user *argp)
{
	struct kvm_gmem_range r[KVM_GMEM_UF_BATCH];
	pgoff_t start, end, cstart = 0, cend = 0;
	struct kvm_gmem_userfault u;
	struct kvm_gmem_inode *gi;
	u64 i, done = 0;
	int n, j, ret = 0;

	if (copy_from_user(&u, argp, sizeof(u)))
		return -EFAULT;
	gi = kvm_gmem_uf_inode(file);
	if (!gi || memchr_inv(u.reserved, 0, sizeof(u.reserved)))
		return -EINVAL;
	if (u.op != KVM_GMEM_USERFAULT_SET && u.op != KVM_GMEM_USERFAULT_CLEAR)
		return -EINVAL;
	if (u.flags & ~KVM_GMEM_USERFAULT_FLAG_COLLAPSE ||
	    (u.flags && u.op != KVM_GMEM_USERFAULT_CLEAR))
		return -EINVAL;
	if (!u.nr_ranges || u.nr_ranges > KVM_GMEM_USERFAULT_MAX_RANGES)
		return -EINVAL;

	/* First pass: every range is valid. */
	for (i = 0; i < u.nr_ranges; i += n) {
		n = kvm_gmem_uf_read_batch(gi, &u, i, r);
		if (n < 0)
			return n;
	}

	/*
	 * Second pass: apply, re-checking what is read again.  Collapses of
	 * neighbouring ranges are merged: [cstart, cend) is pending.
	 */
	for (i = 0; i < u.nr_ranges && !ret; i += n) {
		n = kvm_gmem_uf_read_batch(gi, &u, i, r);
		if (n < 0) {
			ret = n;
			break;
		}
		for (j = 0; j < n; j++) {
			/* kvm_gmem_uf_read_batch() checked the range. */
			start = r[j].offset >> PAGE_SHIFT;
			end = (r[j].offset + r[j].size) >> PAGE_SHIFT;
			if (u.op == KVM_GMEM_USERFAULT_SET)
				ret = kvm_gmem_uf_set(gi, start, end);
			else
				ret = kvm_gmem_uf_clear(gi, start, end);
			if (ret)
				break;
			if (u.flags & KVM_GMEM_USERFAULT_FLAG_COLLAPSE) {
				kvm_gmem_uf_blocks(gi, &start, &end);
				if (cend && (end < cstart || start > cend)) {
					ret = kvm_gmem_uf_collapse(gi, cstart,
								   cend);
					cend = 0;
					if (ret)
						break;
				}
				cstart = cend ? min(cstart, start) : start;
				cend = max(cend, end);
			}
			done++;
			/* Up to 2^20 ranges, each maybe a zap: stay killable. */
			if (done < u.nr_ranges && fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
		}
	}

	if (!ret && cend)
		ret = kvm_gmem_uf_collapse(gi, cstart, cend);

	u.done = done;
	if (copy_to_user(argp, &u, sizeof(u)))
		return -EFAULT;
	return ret;
}

/**
 * kvm_gmem_get_userfault() - KVM_GMEM_GET_USERFAULT on a guest_memfd
 * @file: the guest_memfd
 * @argp: user pointer to struct kvm_gmem_userfault_bitmap
 *
 * Fills one bit per page of [offset, offset + size), page offset / 4096
 * bit (offset - @offset) / 4096, least significant bit first, set if the
 * page is missing.  The answer is a snapshot: bits may change under it.
 *
 * Return: 0 or a negative error.
 */
static long kvm_gmem_get_userfault(struct file *file, void __user *argp)
{
	u8 chunk[512 / 8];
	struct kvm_gmem_userfault_bitmap b;
	struct kvm_gmem_state_iter it;
	struct kvm_gmem_inode *gi;
	pgoff_t start, end, base, i;
	void __user *dst;
	u64 nbits;

	if (copy_from_user(&b, argp, sizeof(b)))
		return -EFAULT;
	gi = kvm_gmem_uf_inode(file);
	if (!gi || memchr_inv(b.reserved, 0, sizeof(b.reserved)))
		return -EINVAL;
	if (kvm_gmem_uf_check_range(b.offset, b.size, kvm_gmem_nr_pages(gi),
				    &start, &end))
		return -EINVAL;

	dst = u64_to_user_ptr(b.bitmap);
	for (base = start; base < end; base += 512) {
		nbits = min_t(u64, end - base, 512);
		memset(chunk, 0, sizeof(chunk));
		kvm_gmem_state_for_each_range(&gi->state, &it, base,
					      base + nbits) {
			if (!(it.state & KVM_GMEM_STATE_MISSING))
				continue;
			/* Bytes, LSB first: the layout is the same everywhere. */
			for (i = it.index; i < it.run_end; i++)
				chunk[(i - base) / 8] |= 1 << ((i - base) % 8);
		}
		if (copy_to_user(dst, chunk, DIV_ROUND_UP(nbits, 8)))
			return -EFAULT;
		dst += sizeof(chunk);
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * Fill missing page @index from @buf: its contents go in, with the folio
 * locked, before the bit is cleared.  Return: 0, -EEXIST if the page is
 * not missing, -EHWPOISON if it is poisoned (the bit is cleared all the
 * same), or an error from allocating the folio.
 */
static int kvm_gmem_resolve_one(struct kvm_gmem_inode *gi, pgoff_t index,
				const void *buf, bool *wake)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;
	struct folio *folio;
	int ret = 0;

	filemap_invalidate_lock_shared(mapping);
	if (!kvm_gmem_page_missing(gi, index)) {
		ret = -EEXIST;
		goto out;
	}
	/* A private page of a hugetlb file stays in its huge folio. */
	folio = kvm_gmem_get_folio(&gi->vfs_inode, index);
	if (IS_ERR(folio)) {
		ret = PTR_ERR(folio);
		goto out;
	}
	/*
	 * Again under the folio lock: a concurrent resolve of the page may
	 * have filled it, and a fault mapped it, while we waited for it.
	 */
	if (!kvm_gmem_page_missing(gi, index)) {
		ret = -EEXIST;
		goto out_folio;
	}
	/*
	 * A poisoned page has lost its contents for good: it is present,
	 * and whoever touches it gets the memory failure, rather than wait
	 * for contents that can never arrive.
	 */
	if (kvm_gmem_page_poisoned(folio, index)) {
		ret = -EHWPOISON;
		goto out_clear;
	}
	if (!folio_test_uptodate(folio)) {
		kvm_gmem_zero_folio(folio);
		folio_mark_uptodate(folio);
	}
	memcpy_to_page(folio_file_page(folio, index), 0, buf, PAGE_SIZE);
out_clear:

	/* Fully ordered: whoever sees the bit clear sees the contents. */
	if (kvm_gmem_state_clear_missing_one(&gi->state, index) ==
	    KVM_GMEM_UF_WAKE)
		*wake = true;
out_folio:
	folio_unlock(folio);
	folio_put(folio);
out:
	filemap_invalidate_unlock_shared(mapping);
	return ret;
}

/**
 * kvm_gmem_resolve() - KVM_GMEM_RESOLVE on a guest_memfd
 * @file: the guest_memfd
 * @argp: user pointer to struct kvm_gmem_resolve
 *
 * Copy size bytes from src into the missing pages [offset, offset + size),
 * page by page in order, and mark each present; works for shared and
 * private pages alike.  Stops at the first page that is not missing
 * (-EEXIST, the page left as it is) or cannot be filled; @resolved says
 * how many bytes were.
 *
 * Return: 0 if every page was resolved, else a negative error.
 */
static long kvm_gmem_resolve(struct file *file, void __user *argp)
{
	struct kvm_gmem_resolve r;
	struct kvm_gmem_inode *gi;
	pgoff_t start, end, i;
	const char __user *src;
	bool wake = false;
	void *buf;
	int ret = 0;

	if (copy_from_user(&r, argp, sizeof(r)))
		return -EFAULT;
	gi = kvm_gmem_uf_inode(file);
	if (!gi || r.flags || memchr_inv(r.reserved, 0, sizeof(r.reserved)))
		return -EINVAL;
	if (kvm_gmem_uf_check_range(r.offset, r.size, kvm_gmem_nr_pages(gi),
				    &start, &end))
		return -EINVAL;

	buf = (void *)__get_free_page(GFP_KERNEL_ACCOUNT);
	if (!buf)
		return -ENOMEM;

	src = u64_to_user_ptr(r.src);
	for (i = start; i < end; i++) {
		/*
		 * No lock held: the source may be any memory, this file's
		 * present pages too (a missing one waits, like any reader).
		 */
		if (copy_from_user(buf, src + ((i - start) << PAGE_SHIFT),
				   PAGE_SIZE)) {
			ret = fatal_signal_pending(current) ? -EINTR : -EFAULT;
			break;
		}
		ret = kvm_gmem_resolve_one(gi, i, buf, &wake);
		if (ret)
			break;
		if (wake) {
			wake_up_all(&gi->uf_wq);
			wake = false;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			i++;
			break;
		}
		cond_resched();
	}
	/* A poisoned page stops the loop with its bit cleared. */
	if (wake)
		wake_up_all(&gi->uf_wq);
	free_page((unsigned long)buf);

	r.resolved = (u64)(i - start) << PAGE_SHIFT;
	if (copy_to_user(argp, &r, sizeof(r)))
		return -EFAULT;
	return ret;
}

/*
 * Sleep until @index is present or a fatal signal arrives, or any signal
 * if @interruptible: a user-mode fault then returns to userspace, which
 * handles the signal and faults again (as userfaultfd does); a kernel-mode
 * fault would only retry, so it waits killably.
 */
static int kvm_gmem_wait_present(struct kvm_gmem_inode *gi, pgoff_t index,
				 bool interruptible)
{
	int ret;

	kvm_gmem_state_wait_prepare(&gi->state);
	if (interruptible)
		ret = wait_event_interruptible(gi->uf_wq,
					       !kvm_gmem_page_missing(gi, index));
	else
		ret = wait_event_killable(gi->uf_wq,
					  !kvm_gmem_page_missing(gi, index));
	kvm_gmem_state_wait_finish(&gi->state);
	return ret;
}

/**
 * kvm_gmem_fault_missing() - a host fault found its page missing
 * @vmf: the fault
 *
 * Wait for the page without the mmap (or VMA) lock, then have the fault
 * retried; a user-mode fault that may be interrupted also stops waiting
 * for a signal (so that the task can be stopped, traced or frozen).  A
 * fault that cannot drop the lock (plain GUP, remote access through
 * /proc/pid/mem or ptrace) gets SIGBUS, as with userfaultfd:
 * waiting with the lock held would stall every mmap writer of the process
 * until the page arrives.
 *
 * Context: the caller dropped the invalidate lock.
 * Return: VM_FAULT_RETRY or VM_FAULT_SIGBUS.
 */
vm_fault_t kvm_gmem_fault_missing(struct vm_fault *vmf)
{
	struct file *file = vmf->vma->vm_file;
	struct kvm_gmem_inode *gi = kvm_gmem_file_inode(file);
	bool intr = (vmf->flags & FAULT_FLAG_INTERRUPTIBLE) &&
		    (vmf->flags & FAULT_FLAG_USER);
	pgoff_t index = vmf->pgoff;

	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY))
		return VM_FAULT_SIGBUS;
	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;
	/* The VMA may go once its lock is dropped: keep the file. */
	get_file(file);
	release_fault_lock(vmf);
	kvm_gmem_wait_present(gi, index, intr);
	fput(file);
	return VM_FAULT_RETRY;
}

/**
 * kvm_gmem_userfault_ioctl() - the userfault ioctls of a guest_memfd
 * @file: the guest_memfd
 * @ioctl: the command
 * @argp: its user argument
 *
 * Return: what the command returns, -ENOTTY for another command.
 */
long kvm_gmem_userfault_ioctl(struct file *file, unsigned int ioctl,
			      void __user *argp)
{
	switch (ioctl) {
	case KVM_GMEM_SET_USERFAULT:
		return kvm_gmem_set_userfault(file, argp);
	case KVM_GMEM_GET_USERFAULT:
		return kvm_gmem_get_userfault(file, argp);
	case KVM_GMEM_RESOLVE:
		return kvm_gmem_resolve(file, argp);
	default:
		return -ENOTTY;
	}
}

/**
 * kvm_gmem_userfault_check_extension() - KVM_CAP_GUEST_MEMFD_USERFAULT
 * @cap: the capability asked for
 * @flags: the creation flags the VM (or some VM type) supports
 *
 * Return: 1 for KVM_CAP_GUEST_MEMFD_USERFAULT where files that keep their
 * own state can be created, else 0.
 */
int kvm_gmem_userfault_check_extension(long cap, u64 flags)
{
	if (cap != KVM_CAP_GUEST_MEMFD_USERFAULT)
		return 0;
	return !!(flags & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED));
}

#ifdef CONFIG_USERFAULTFD
/*
 * The folio at @index, if the page cache has one; on a hugetlb file, a
 * folio being split or merged is waited for, not taken for a hole.
 */
static struct folio *kvm_gmem_uf_lookup(struct kvm_gmem_inode *gi,
					pgoff_t index)
{
	struct address_space *mapping = gi->vfs_inode.i_mapping;

	if (gi->hugetlb)
		return guestmem_hugetlb_lookup(gi->hugetlb, mapping, index);
	return filemap_get_folio(mapping, index);
}

/**
 * kvm_gmem_fault_userfault() - raise a userfault for a host fault
 * @vmf: the fault, on a shared page
 *
 * As for shmem, a mapping registered with userfaultfd in MINOR mode gets a
 * MINOR event for a page in the page cache that it does not map yet, and
 * one registered in MISSING mode a MISSING event for a page that the page
 * cache does not have.  A folio that is not up to date (never written or
 * zeroed: e.g. the other pages of a 2M hugetlb page split for one shared
 * page) counts as a hole.  A page whose missing bit is set raises either,
 * MINOR first if the page cache has it: it is missing whatever the cache
 * holds.  A poisoned page raises none: the fault gets the memory failure,
 * as without userfaultfd.
 *
 * Context: the invalidate lock held shared; released unless 0 is
 * returned.
 * Return: 0 if the fault goes on as without userfaultfd, else what the
 * fault returns.
 */
vm_fault_t kvm_gmem_fault_userfault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct file *file = vma->vm_file;
	struct address_space *mapping = file->f_mapping;
	struct kvm_gmem_inode *gi = KVM_GMEM_I(mapping->host);
	bool missing, cached, poisoned;
	unsigned long reason;
	struct folio *folio;
	vm_fault_t ret;

	if (!userfaultfd_minor(vma) && !userfaultfd_missing(vma))
		return 0;
	missing = kvm_gmem_page_missing(gi, vmf->pgoff);
	folio = kvm_gmem_uf_lookup(gi, vmf->pgoff);
	/*
	 * A poisoned hugetlb folio knows only that some page of it is: the
	 * host's lookup splits it, narrowing the poison to the exact pages.
	 */
	if (!IS_ERR(folio) && folio_test_hugetlb(folio) &&
	    folio_test_hwpoison(folio)) {
		folio_put(folio);
		folio = kvm_gmem_get_folio(mapping->host, vmf->pgoff);
		if (IS_ERR(folio)) {
			filemap_invalidate_unlock_shared(mapping);
			return kvm_gmem_fault_error(gi, PTR_ERR(folio));
		}
		folio_unlock(folio);
	}
	cached = !IS_ERR(folio) && folio_test_uptodate(folio);
	poisoned = !IS_ERR(folio) && kvm_gmem_page_poisoned(folio, vmf->pgoff);
	if (!IS_ERR(folio))
		folio_put(folio);

	if (poisoned) {
		filemap_invalidate_unlock_shared(mapping);
		return VM_FAULT_HWPOISON;
	}
	if (cached && userfaultfd_minor(vma))
		reason = VM_UFFD_MINOR;
	else if ((missing || !cached) && userfaultfd_missing(vma))
		reason = VM_UFFD_MISSING;
	else if (missing && userfaultfd_minor(vma))
		reason = VM_UFFD_MINOR;
	else
		return 0;

	filemap_invalidate_unlock_shared(mapping);
	/* It sleeps without the mmap lock: keep the file, and this code. */
	get_file(file);
	ret = handle_userfault(vmf, reason);
	fput(file);
	return ret;
}

/*
 * The shared page at @pgoff for UFFDIO_CONTINUE (what the page cache has,
 * written; a hole gives -EFAULT), or for UFFDIO_COPY and UFFDIO_ZEROPAGE to fill (a
 * missing page, or one the page cache does not have yet).  The invalidate
 * lock stays held (shared) until kvm_gmem_uffd_put_folio(): no conversion,
 * hole or KVM_GMEM_SET_USERFAULT between the lookup and the bit being
 * cleared.
 */
static struct folio *kvm_gmem_uffd_get_folio(struct inode *inode,
					     pgoff_t pgoff, uffd_flags_t flags)
{
	bool cont = uffd_flags_mode_is(flags, MFILL_ATOMIC_CONTINUE);
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);
	struct address_space *mapping = inode->i_mapping;
	struct folio *folio;
	int err = -EFAULT;

	filemap_invalidate_lock_shared(mapping);
	if (pgoff >= i_size_read(inode) >> PAGE_SHIFT ||
	    !kvm_gmem_page_shared(gi, pgoff))
		goto out;
	if (cont) {
		folio = kvm_gmem_uf_lookup(gi, pgoff);
		if (IS_ERR(folio))
			goto out;
		folio_put(folio);
	}
	/* The host gets no hugetlb folio: hugetlb.c splits it for us. */
	folio = kvm_gmem_get_folio(inode, pgoff);
	if (IS_ERR(folio)) {
		err = PTR_ERR(folio);
		goto out;
	}
	/* As above: the lookup split it. */
	if (WARN_ON_ONCE(folio_test_hugetlb(folio)))
		goto out_folio;
	/* As shmem's, and before anything writes to the page. */
	if (kvm_gmem_page_poisoned(folio, pgoff)) {
		err = -EIO;
		goto out_folio;
	}
	/*
	 * COPY and ZEROPAGE fill one page and mark the folio up to date: the
	 * other pages of a 2M piece that was never used must hold zeroes.
	 */
	if (!cont && folio_test_large(folio) && !folio_test_uptodate(folio))
		kvm_gmem_zero_folio(folio);
	/* A folio never written is a hole: nothing to continue. */
	if (cont) {
		if (!folio_test_uptodate(folio))
			goto out_folio;
		return folio;
	}
	/* Under the folio lock: COPY never overwrites contents. */
	if (folio_test_uptodate(folio) && !kvm_gmem_page_missing(gi, pgoff)) {
		err = -EEXIST;
		goto out_folio;
	}
	return folio;
out_folio:
	folio_unlock(folio);
	folio_put(folio);
out:
	filemap_invalidate_unlock_shared(mapping);
	return ERR_PTR(err);
}

/*
 * CONTINUE, COPY or ZEROPAGE mapped the page (@mapped): what the page cache
 * holds is what the VMM wants, so the page is present.  Then let
 * conversions and the rest in.
 */
static void kvm_gmem_uffd_put_folio(struct inode *inode, pgoff_t pgoff,
				    struct folio *folio, bool mapped)
{
	struct kvm_gmem_inode *gi = KVM_GMEM_I(inode);

	if (mapped && kvm_gmem_state_clear_missing_one(&gi->state, pgoff) ==
		      KVM_GMEM_UF_WAKE)
		wake_up_all(&gi->uf_wq);
	filemap_invalidate_unlock_shared(inode->i_mapping);
}

/*
 * MINOR faults and UFFDIO_CONTINUE, MISSING faults and UFFDIO_COPY and
 * UFFDIO_ZEROPAGE on mappings of guest_memfd files.
 */
const struct vm_uffd_ops kvm_gmem_uffd_ops = {
	.uffd_flags	= VM_UFFD_MINOR | VM_UFFD_MISSING,
	.get_folio	= kvm_gmem_uffd_get_folio,
	.put_folio	= kvm_gmem_uffd_put_folio,
};
#endif /* CONFIG_USERFAULTFD */
