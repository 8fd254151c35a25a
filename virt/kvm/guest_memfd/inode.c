// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd: the file, its inode and their filesystem.
 *
 * Owns the pseudo filesystem every guest_memfd inode lives on (so that an
 * inode carries a struct kvm_gmem_inode: flags, page state, bound files),
 * file creation (KVM_CREATE_GUEST_MEMFD), the page cache (folio lookup,
 * fallocate, hole punching), the invalidation of the VMs bound to an inode,
 * memory failure and module init/exit.  Host faults are in mmap.c, the
 * binding to memslots and KVM's lookups in bind.c, conversion in
 * convert.c.  See gmem.h for the objects and the lock order, and
 * Documentation/virt/kvm/guest_memfd.rst.
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

const struct file_operations kvm_gmem_fops = {
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
