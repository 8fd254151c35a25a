// SPDX-License-Identifier: GPL-2.0-only
/*
 * Holes in memslots: KVM_SET_MEMSLOT_HOLE.
 *
 * A hole is a page range of a memslot that is, for as long as it exists,
 * not guest memory: the guest's accesses there are handled as accesses to
 * no memslot (MMIO) and KVM's own accesses fail, as for an address no
 * memslot covers.  Punching and filling a hole changes nothing else about
 * the slot: its id, flags, host mapping, guest_memfd binding and the dirty
 * bits outside the hole stay, and vCPUs keep running.
 *
 * This file owns the holes of a slot and the two operations on them.  It
 * calls into the memslot code (kvm_memslots_bump_generation()) and the
 * architecture's MMU (kvm_arch_memslot_hole_*()).  The memslot lookups
 * themselves do not know about holes, so that KVM's bookkeeping of the
 * slot (rmaps, shadow pages) keeps working; what maps or touches guest
 * memory asks kvm_memslot_gfn_in_hole() or kvm_memslot_pages_to_hole():
 * the stage-2 fault, the gfn->hva translation under KVM's accesses and
 * its caches, visibility and dirty tracking.
 *
 * The holes are a maple tree in RCU mode, from page offset in the slot to
 * an xa_value of the hole's first offset, so that no two holes merge.
 * They change under kvm->slots_lock (the tree takes its own lock too);
 * lookups run under kvm->srcu and walk the tree under rcu_read_lock().  A
 * slot's tree is allocated by its first punch and freed with the slot; a
 * flags-only change or a move hands it to the new copy of the slot, and a
 * slot cannot move while it has holes.
 *
 * A punch, in this order:
 *
 *  1. the architecture keeps huge mappings from spanning the hole's edges
 *     and starts an invalidation of the hole, so that faults in it retry;
 *  2. the hole goes into the tree, so accesses from now on see it;
 *  3. the architecture zaps its mappings of the hole and ends the
 *     invalidation: a fault that did not see the hole retries, one that
 *     does now finds no memslot;
 *  4. the memslots are published under a new generation: this waits until
 *     no kvm->srcu reader can still use a translation made before step 2,
 *     and drops what was cached per generation (MMIO SPTEs, gfn->hva and
 *     gfn->pfn caches); then the hole's dirty bits are cleared (nobody can
 *     set them any more).
 *
 * A fill takes the hole out of the tree, marks its pages dirty if the slot
 * logs dirty pages (they are guest memory again, with whatever the host
 * memory holds now: a migration must send them), publishes a new
 * generation (which drops the MMIO SPTEs cached for the hole) and lets
 * huge mappings span the edges again.  The slot's last fill frees the
 * tree once no reader can see it.
 */
#include <linux/kvm_host.h>
#include <linux/maple_tree.h>

#include "kvm_mm.h"

/**
 * struct kvm_memslot_holes - the holes of one memslot
 * @mt: page offset range in the slot -> xa_mk_value(first offset)
 * @nr: number of holes, at most KVM_MEMSLOT_MAX_HOLES; kvm->slots_lock
 */
struct kvm_memslot_holes {
	struct maple_tree mt;
	unsigned int nr;
};

bool __kvm_memslot_gfn_in_hole(const struct kvm_memory_slot *slot, gfn_t gfn)
{
	struct kvm_memslot_holes *holes = READ_ONCE(slot->holes);

	return holes && mtree_load(&holes->mt, gfn - slot->base_gfn);
}
EXPORT_SYMBOL_GPL(__kvm_memslot_gfn_in_hole);

/**
 * __kvm_memslot_pages_to_hole - pages from @gfn up to the next hole
 * @slot: the memslot that contains @gfn
 * @gfn: a gfn of @slot
 *
 * Return: the number of pages from @gfn to the first hole at or after it,
 * or to the end of @slot if there is no such hole; 0 if @gfn is in a hole.
 */
unsigned long __kvm_memslot_pages_to_hole(const struct kvm_memory_slot *slot,
					  gfn_t gfn)
{
	struct kvm_memslot_holes *holes = READ_ONCE(slot->holes);
	unsigned long offset = gfn - slot->base_gfn, index = offset;
	unsigned long first;
	void *entry;

	if (!holes)
		return slot->npages - offset;

	/* The entry of a hole is its first offset. */
	entry = mt_find(&holes->mt, &index, slot->npages - 1);
	if (!entry)
		return slot->npages - offset;
	first = xa_to_value(entry);
	return first > offset ? first - offset : 0;
}

/*
 * Clear (@set false) or set the dirty bits of pages [first, first + nr)
 * of @slot.  vCPUs and KVM may set other bits at the same time: the words
 * at the edges change bit by bit, atomically.  Whole words hold bits of
 * the hole alone: nobody sets them while it is a hole (clear), and a
 * concurrent set_bit_le() after the fill leaves them all set too (set);
 * the dirty log ioctls, which clear bits, hold kvm->slots_lock as we do.
 */
static void kvm_memslot_hole_dirty(struct kvm_memory_slot *slot,
				   unsigned long first, unsigned long nr,
				   bool set)
{
	unsigned long *bitmap = slot->dirty_bitmap;
	unsigned long i = first, end = first + nr;

	if (!bitmap)
		return;

	for (; i < end && i % BITS_PER_LONG; i++)
		set ? set_bit_le(i, bitmap) : clear_bit_le(i, bitmap);
	for (; i + BITS_PER_LONG <= end; i += BITS_PER_LONG)
		WRITE_ONCE(bitmap[i / BITS_PER_LONG], set ? ~0UL : 0);
	for (; i < end; i++)
		set ? set_bit_le(i, bitmap) : clear_bit_le(i, bitmap);
}

/**
 * kvm_memslot_holes_clear_dirty - clear the dirty bits of all holes
 * @slot: a memslot whose dirty bitmap was just set in full
 *
 * For a bitmap that dirty logging starts with every bit set
 * (KVM_DIRTY_LOG_INITIALLY_SET): pages in holes are not guest memory.
 */
void kvm_memslot_holes_clear_dirty(struct kvm_memory_slot *slot)
{
	struct kvm_memslot_holes *holes = slot->holes;
	unsigned long index = 0;
	void *entry;

	if (!holes)
		return;

	mt_for_each(&holes->mt, entry, index, slot->npages - 1)
		kvm_memslot_hole_dirty(slot, xa_to_value(entry),
				       index - xa_to_value(entry), false);
}

/* Whether @slot has a hole now; kvm->slots_lock. */
bool kvm_memslot_has_holes(const struct kvm_memory_slot *slot)
{
	return slot->holes && slot->holes->nr;
}

void kvm_memslot_holes_free(struct kvm_memory_slot *slot)
{
	if (!slot->holes)
		return;

	mtree_destroy(&slot->holes->mt);
	kfree(slot->holes);
	slot->holes = NULL;
}

static int kvm_memslot_hole_punch(struct kvm *kvm, struct kvm_memory_slot *slot,
				  unsigned long first, unsigned long last)
{
	struct kvm_memslot_holes *holes = slot->holes;
	gfn_t start = slot->base_gfn + first;
	gfn_t end = slot->base_gfn + last + 1;
	unsigned long index = first;
	int r;

	if (!holes) {
		holes = kzalloc(sizeof(*holes), GFP_KERNEL_ACCOUNT);
		if (!holes)
			return -ENOMEM;
		mt_init_flags(&holes->mt, MT_FLAGS_USE_RCU);
		/* Lookups may see the pointer at once: publish an empty tree. */
		smp_store_release(&slot->holes, holes);
	}

	if (holes->nr >= KVM_MEMSLOT_MAX_HOLES)
		return -ENOSPC;
	if (mt_find(&holes->mt, &index, last))
		return -EEXIST;

	kvm_arch_memslot_hole_prepare(kvm, slot, start, end);

	r = mtree_insert_range(&holes->mt, first, last, xa_mk_value(first),
			       GFP_KERNEL_ACCOUNT);
	if (r) {
		/* Nothing saw a hole: end the invalidation, undo the edges. */
		kvm_arch_memslot_hole_punched(kvm, slot, start, end);
		kvm_arch_memslot_hole_filled(kvm, slot, start, end);
		return r;
	}
	holes->nr++;

	kvm_arch_memslot_hole_punched(kvm, slot, start, end);
	kvm_memslots_bump_generation(kvm, slot->as_id);
	kvm_memslot_hole_dirty(slot, first, last - first + 1, false);
	return 0;
}

static int kvm_memslot_hole_fill(struct kvm *kvm, struct kvm_memory_slot *slot,
				 unsigned long first, unsigned long last)
{
	struct kvm_memslot_holes *holes = slot->holes;
	unsigned long index = first;
	void *entry;

	if (!holes)
		return -ENOENT;

	/* Exactly one hole: it starts at @first and mt_find() steps past it. */
	entry = mt_find(&holes->mt, &index, first);
	if (!entry || xa_to_value(entry) != first || index != last + 1)
		return -ENOENT;

	mtree_erase(&holes->mt, first);
	kvm_memslot_hole_dirty(slot, first, last - first + 1, true);
	if (!--holes->nr)
		WRITE_ONCE(slot->holes, NULL);

	kvm_memslots_bump_generation(kvm, slot->as_id);

	/* No lookup can see the tree any more. */
	if (!holes->nr) {
		mtree_destroy(&holes->mt);
		kfree(holes);
	}

	kvm_arch_memslot_hole_filled(kvm, slot, slot->base_gfn + first,
				     slot->base_gfn + last + 1);
	return 0;
}

/**
 * kvm_vm_ioctl_set_memslot_hole - punch a hole into a memslot or fill one
 * @kvm: the VM
 * @hole: the arguments of KVM_SET_MEMSLOT_HOLE
 *
 * Return: 0, or -EINVAL for bad arguments or a range outside the slot,
 * -ENOENT for no such slot or (for a fill) no hole exactly at the range,
 * -EEXIST if a punch overlaps a hole, -ENOSPC if the slot has
 * KVM_MEMSLOT_MAX_HOLES holes, -ENOMEM.  Nothing changes on failure.
 */
int kvm_vm_ioctl_set_memslot_hole(struct kvm *kvm,
				  const struct kvm_memslot_hole *hole)
{
	struct kvm_memory_slot *slot;
	unsigned long first, last;
	int as_id, id, r;
	gfn_t gfn;

	if (hole->flags || memchr_inv(hole->reserved, 0, sizeof(hole->reserved)))
		return -EINVAL;
	if (hole->op != KVM_MEMSLOT_HOLE_PUNCH && hole->op != KVM_MEMSLOT_HOLE_FILL)
		return -EINVAL;
	if (!hole->size || !PAGE_ALIGNED(hole->size) ||
	    !PAGE_ALIGNED(hole->guest_phys_addr) ||
	    hole->guest_phys_addr + hole->size < hole->guest_phys_addr)
		return -EINVAL;

	as_id = hole->slot >> 16;
	id = (u16)hole->slot;
	if (as_id >= kvm_arch_nr_memslot_as_ids(kvm) || id >= KVM_USER_MEM_SLOTS)
		return -EINVAL;

	gfn = gpa_to_gfn(hole->guest_phys_addr);

	mutex_lock(&kvm->slots_lock);
	slot = id_to_memslot(__kvm_memslots(kvm, as_id), id);
	r = -ENOENT;
	if (!slot)
		goto out;

	r = -EINVAL;
	if (gfn < slot->base_gfn || gfn - slot->base_gfn >= slot->npages ||
	    (hole->size >> PAGE_SHIFT) > slot->npages - (gfn - slot->base_gfn))
		goto out;

	first = gfn - slot->base_gfn;
	last = first + (hole->size >> PAGE_SHIFT) - 1;
	if (hole->op == KVM_MEMSLOT_HOLE_PUNCH)
		r = kvm_memslot_hole_punch(kvm, slot, first, last);
	else
		r = kvm_memslot_hole_fill(kvm, slot, first, last);
out:
	mutex_unlock(&kvm->slots_lock);
	return r;
}
