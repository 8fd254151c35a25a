// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_SET_MEMSLOT_HOLE: holes punched into a memslot and filled again
 * while the VM runs.
 *
 * A guest reads or writes every page of a memslot; the host handles its
 * MMIO exits by logging them (reads return MMIO_MARK).  After a punch,
 * exactly the pages of the holes exit, reads and writes alike, and the
 * memory behind a hole keeps what it held; after a fill they are memory
 * again.  Backed by anonymous memory, 2M hugetlb pages (a huge page next
 * to a hole is mapped 4K, one without a hole stays 2M) and a shared
 * guest_memfd.  Also: dirty logging keeps its bits outside holes, has
 * none inside (including a bitmap that starts set) and reports filled
 * holes dirty; a gfn->pfn cache (kvmclock) stops writing into a hole;
 * KVM_PRE_FAULT_MEMORY fails in a hole; a private access to a hole exits
 * as a private access to no memslot does; bad input and failures change
 * nothing; flags-only changes keep holes, a move is refused, a delete
 * drops them; and two vCPUs loop over memory while holes are punched and
 * filled around them, every MMIO exit inside a hole that existed at the
 * time and every page of a hole exiting once the punch has returned.
 * tests/mod.list runs it on the shadow MMU too.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define MEM_GPA		(4ULL << 30)
#define MEM_SLOT	10
#define PAGE		4096UL
#define SZ_2M		(2UL << 20)
#define MMIO_MARK	0xfeedfacecafef00dULL
#define MAX_MMIO	4096

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB	(21U << 26)
#endif

enum op { OP_NONE, OP_WRITE, OP_READ, OP_LOOP, OP_DONE };

/* Guest side: what to do next, set by the host before each run. */
static int g_op;
static uint64_t g_size, g_tag;
static uint64_t g_pass[2], g_stop;

/* @id: the vCPU's index, for its pass counter. */
static void guest_code(uint64_t id)
{
	uint64_t gpa, v;

	for (;;) {
		GUEST_SYNC(0);
		switch (READ_ONCE(g_op)) {
		case OP_WRITE:
			for (gpa = MEM_GPA; gpa < MEM_GPA + g_size; gpa += PAGE)
				WRITE_ONCE(*(uint64_t *)gpa, gpa ^ g_tag);
			break;
		case OP_READ:
		case OP_LOOP:
			do {
				for (gpa = MEM_GPA; gpa < MEM_GPA + g_size;
				     gpa += PAGE) {
					v = READ_ONCE(*(uint64_t *)gpa);
					if (v != MMIO_MARK)
						GUEST_ASSERT_EQ(v, gpa ^ g_tag);
					if (id)
						WRITE_ONCE(*(uint64_t *)gpa,
							   gpa ^ g_tag);
				}
				WRITE_ONCE(g_pass[id], g_pass[id] + 1);
			} while (g_op == OP_LOOP && !READ_ONCE(g_stop));
			break;
		case OP_DONE:
			GUEST_DONE();
		}
	}
}

struct test_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint8_t *hva;
	uint64_t size;
	int gmem_fd;
	/* The MMIO exits of the last op, in order. */
	uint64_t mmio[MAX_MMIO];
	bool mmio_write[MAX_MMIO];
	int nr_mmio;
};

enum backing { ANON, HUGETLB_2M, GMEM };

static const char * const backing_names[] = {
	"anonymous memory", "2M hugetlb pages", "a shared guest_memfd",
};

static const struct vm_shape protected_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

static void test_vm_create(struct test_vm *t, enum backing backing,
			   uint64_t size, uint32_t flags)
{
	memset(t, 0, sizeof(*t));
	t->size = size;
	t->gmem_fd = -1;

	if (backing == GMEM) {
		t->vm = vm_create_shape_with_one_vcpu(protected_shape, &t->vcpu,
						      guest_code);
		t->gmem_fd = vm_create_guest_memfd(t->vm, size,
						   GUEST_MEMFD_FLAG_MMAP |
						   GUEST_MEMFD_FLAG_INIT_SHARED);
		t->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			      t->gmem_fd, 0);
		flags |= KVM_MEM_GUEST_MEMFD;
	} else {
		t->vm = vm_create_with_one_vcpu(&t->vcpu, guest_code);
		t->hva = mmap(NULL, size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			      (backing == HUGETLB_2M ?
			       MAP_HUGETLB | MAP_HUGE_2MB : 0), -1, 0);
	}
	vcpu_args_set(t->vcpu, 1, 0);
	TEST_ASSERT(t->hva != MAP_FAILED, "mmap of %s failed",
		    backing_names[backing]);
	vm_set_user_memory_region2(t->vm, MEM_SLOT, flags, MEM_GPA, size,
				   t->hva, t->gmem_fd < 0 ? 0 : t->gmem_fd, 0);
	virt_map(t->vm, MEM_GPA, MEM_GPA, size / PAGE);
	write_guest_global(t->vm, g_size, size);

	/* To the guest's first GUEST_SYNC. */
	vcpu_run(t->vcpu);
	gmem_expect_sync(t->vcpu);
}

static void test_vm_free(struct test_vm *t)
{
	munmap(t->hva, t->size);
	kvm_vm_free(t->vm);
	if (t->gmem_fd >= 0)
		close(t->gmem_fd);
}

/* Run the vCPU to its next ucall, logging and completing MMIO exits. */
static uint64_t run_logging_mmio(struct test_vm *t)
{
	struct kvm_run *run = t->vcpu->run;
	uint64_t mark = MMIO_MARK;

	for (;;) {
		vcpu_run(t->vcpu);
		if (run->exit_reason != KVM_EXIT_MMIO)
			return gmem_expect_ucall(t->vcpu);
		TEST_ASSERT(t->nr_mmio < MAX_MMIO, "too many MMIO exits");
		TEST_ASSERT_EQ(run->mmio.len, 8);
		t->mmio[t->nr_mmio] = run->mmio.phys_addr;
		t->mmio_write[t->nr_mmio++] = run->mmio.is_write;
		if (!run->mmio.is_write)
			memcpy(run->mmio.data, &mark, 8);
	}
}

static void guest_op(struct test_vm *t, enum op op, uint64_t tag)
{
	write_guest_global(t->vm, g_op, op);
	write_guest_global(t->vm, g_tag, tag);
	t->nr_mmio = 0;
	TEST_ASSERT_EQ(run_logging_mmio(t), UCALL_SYNC);
}

struct range {
	uint64_t first, nr;	/* pages from MEM_GPA */
};

static bool in_ranges(const struct range *r, int n, uint64_t page)
{
	int i;

	for (i = 0; i < n; i++)
		if (page >= r[i].first && page < r[i].first + r[i].nr)
			return true;
	return false;
}

/*
 * The last op exited exactly once for each page of @holes (@n of them),
 * in the order of the pages, with the right direction.
 */
static void assert_mmio_exactly(struct test_vm *t, const struct range *holes,
				int n, bool write)
{
	uint64_t page, nr = 0;
	int i = 0;

	for (page = 0; page < t->size / PAGE; page++) {
		if (!in_ranges(holes, n, page))
			continue;
		TEST_ASSERT(i < t->nr_mmio,
			    "no MMIO exit for page %lu of a hole", page);
		TEST_ASSERT_EQ(t->mmio[i], MEM_GPA + page * PAGE);
		TEST_ASSERT_EQ(t->mmio_write[i], write);
		i++;
		nr++;
	}
	TEST_ASSERT(i == t->nr_mmio, "%d MMIO exits, the holes have %lu pages",
		    t->nr_mmio, nr);
}

static int __set_hole(struct kvm_vm *vm, uint32_t slot, uint32_t op,
		      uint64_t gpa, uint64_t size)
{
	struct kvm_memslot_hole hole = {
		.slot = slot,
		.op = op,
		.guest_phys_addr = gpa,
		.size = size,
	};

	return __vm_ioctl(vm, KVM_SET_MEMSLOT_HOLE, &hole);
}

static void set_hole(struct kvm_vm *vm, uint32_t op, const struct range *r)
{
	int ret = __set_hole(vm, MEM_SLOT, op, MEM_GPA + r->first * PAGE,
			     r->nr * PAGE);

	TEST_ASSERT(!ret, "%s of pages [%lu, %lu) failed, errno %d",
		    op == KVM_MEMSLOT_HOLE_PUNCH ? "punch" : "fill",
		    r->first, r->first + r->nr, errno);
}

static void punch(struct kvm_vm *vm, uint64_t first, uint64_t nr)
{
	struct range r = { first, nr };

	set_hole(vm, KVM_MEMSLOT_HOLE_PUNCH, &r);
}

static void fill(struct kvm_vm *vm, uint64_t first, uint64_t nr)
{
	struct range r = { first, nr };

	set_hole(vm, KVM_MEMSLOT_HOLE_FILL, &r);
}

static uint64_t *page_word(struct test_vm *t, uint64_t page)
{
	return (uint64_t *)(t->hva + page * PAGE);
}

static void test_holes(enum backing backing)
{
	/* The first page, a range, the first page of 2M block 1, the last. */
	const uint64_t size = 6 * SZ_2M, last = size / PAGE - 1;
	const struct range holes[] = {
		{ 0, 1 }, { 300, 10 }, { 512, 1 }, { last, 1 },
	};
	const int n = ARRAY_SIZE(holes);
	const struct range others[] = { holes[0], holes[2], holes[3] };
	const uint64_t tag1 = 0x1111, tag2 = 0x2222;
	uint64_t page, pages_2m;
	struct test_vm t;
	bool huge;
	int i;

	pr_info("Holes in a memslot of %s\n", backing_names[backing]);
	test_vm_create(&t, backing, size, 0);

	/*
	 * With TDP, KVM maps the 2M pages 2M; the shadow MMU (npt=0, see
	 * tests/mod.list) follows the guest's 4K page tables.
	 */
	huge = backing == HUGETLB_2M && kvm_is_tdp_enabled();
	pages_2m = vm_get_stat(t.vm, "pages_2m");
	guest_op(&t, OP_WRITE, tag1);
	guest_op(&t, OP_READ, tag1);
	TEST_ASSERT_EQ(t.nr_mmio, 0);
	if (huge)
		TEST_ASSERT_EQ(vm_get_stat(t.vm, "pages_2m") - pages_2m,
			       size / SZ_2M);

	for (i = 0; i < n; i++)
		set_hole(t.vm, KVM_MEMSLOT_HOLE_PUNCH, &holes[i]);

	/*
	 * Reads in order: a huge page mapped at a neighbour of a hole would
	 * map the hole too, and its read would not exit.
	 */
	guest_op(&t, OP_READ, tag1);
	assert_mmio_exactly(&t, holes, n, false);
	guest_op(&t, OP_READ, tag1);
	assert_mmio_exactly(&t, holes, n, false);
	/* Blocks 0, 1 and 5 hold holes; the other three stay 2M. */
	if (huge)
		TEST_ASSERT_EQ(vm_get_stat(t.vm, "pages_2m") - pages_2m,
			       size / SZ_2M - 3);

	/* Writes to holes go nowhere: the memory behind them keeps tag1. */
	guest_op(&t, OP_WRITE, tag2);
	assert_mmio_exactly(&t, holes, n, true);
	for (page = 0; page <= last; page++)
		TEST_ASSERT_EQ(*page_word(&t, page),
			       (MEM_GPA + page * PAGE) ^
			       (in_ranges(holes, n, page) ? tag1 : tag2));

	/* Whatever the host puts behind a hole is there after the fill. */
	for (page = 0; page <= last; page++)
		*page_word(&t, page) = (MEM_GPA + page * PAGE) ^ tag2;
	set_hole(t.vm, KVM_MEMSLOT_HOLE_FILL, &holes[1]);
	guest_op(&t, OP_READ, tag2);
	assert_mmio_exactly(&t, others, ARRAY_SIZE(others), false);

	for (i = 0; i < n; i++)
		if (i != 1)
			set_hole(t.vm, KVM_MEMSLOT_HOLE_FILL, &holes[i]);
	guest_op(&t, OP_READ, tag2);
	TEST_ASSERT_EQ(t.nr_mmio, 0);

	/* A hole over a whole huge page, and one as big as the slot. */
	punch(t.vm, 1024, 512);
	guest_op(&t, OP_READ, tag2);
	assert_mmio_exactly(&t, &(struct range){ 1024, 512 }, 1, false);
	fill(t.vm, 1024, 512);
	punch(t.vm, 0, size / PAGE);
	guest_op(&t, OP_READ, tag2);
	assert_mmio_exactly(&t, &(struct range){ 0, size / PAGE }, 1, false);
	fill(t.vm, 0, size / PAGE);
	guest_op(&t, OP_READ, tag2);
	TEST_ASSERT_EQ(t.nr_mmio, 0);

	test_vm_free(&t);
}

/* Every failure gives its errno and leaves the holes as they were. */
static void test_bad_input(void)
{
	const uint64_t size = 4 * SZ_2M, npages = size / PAGE;
	struct kvm_memslot_hole hole;
	struct range held = { 10, 10 };
	struct test_vm t;
	uint64_t p;
	int r;

	pr_info("Bad input, failures, flags-only changes, move and delete\n");
	test_vm_create(&t, ANON, size, 0);
	guest_op(&t, OP_WRITE, 1);

	TEST_ASSERT(kvm_check_cap(KVM_CAP_MEMSLOT_HOLES) == 256,
		    "KVM_CAP_MEMSLOT_HOLES: %d",
		    kvm_check_cap(KVM_CAP_MEMSLOT_HOLES));
	set_hole(t.vm, KVM_MEMSLOT_HOLE_PUNCH, &held);

#define EXPECT_ERRNO(expr, err)						\
	do {								\
		int __err = (err);					\
									\
		r = (expr);						\
		TEST_ASSERT(r == -1 && errno == __err,			\
			    "%s: want errno %d, got %d/%d", #expr,	\
			    __err, r, errno);				\
	} while (0)

	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 2, MEM_GPA, PAGE), EINVAL);
	memset(&hole, 0, sizeof(hole));
	hole.slot = MEM_SLOT;
	hole.guest_phys_addr = MEM_GPA + 100 * PAGE;
	hole.size = PAGE;
	hole.flags = 1;
	EXPECT_ERRNO(__vm_ioctl(t.vm, KVM_SET_MEMSLOT_HOLE, &hole), EINVAL);
	hole.flags = 0;
	hole.reserved[3] = 1;
	EXPECT_ERRNO(__vm_ioctl(t.vm, KVM_SET_MEMSLOT_HOLE, &hole), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA, 0), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + 8, PAGE), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA, PAGE + 8), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA - PAGE, 2 * PAGE),
		     EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + size - PAGE,
				2 * PAGE), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + size, PAGE),
		     EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA, -PAGE), EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, -PAGE, 2 * PAGE), EINVAL);
	/* Address space 16, and KVM's own slot ids. */
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT | 16 << 16, 0, MEM_GPA, PAGE),
		     EINVAL);
	EXPECT_ERRNO(__set_hole(t.vm, 0x7fff, 0, MEM_GPA, PAGE), EINVAL);
	/* A slot id with no memslot. */
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT + 1, 0, MEM_GPA, PAGE), ENOENT);

	/* Overlaps: the same range, a part, across an edge; touching is fine. */
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + 10 * PAGE,
				10 * PAGE), EEXIST);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + 19 * PAGE, PAGE),
		     EEXIST);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + 5 * PAGE,
				10 * PAGE), EEXIST);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA, npages * PAGE),
		     EEXIST);
	punch(t.vm, 20, 1);
	punch(t.vm, 9, 1);

	/* A fill names exactly one hole. */
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 1, MEM_GPA + 10 * PAGE,
				9 * PAGE), ENOENT);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 1, MEM_GPA + 11 * PAGE,
				9 * PAGE), ENOENT);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 1, MEM_GPA + 10 * PAGE,
				11 * PAGE), ENOENT);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 1, MEM_GPA + 100 * PAGE,
				PAGE), ENOENT);
	fill(t.vm, 20, 1);
	fill(t.vm, 9, 1);

	/* After all that, the one hole is as it was. */
	guest_op(&t, OP_READ, 1);
	assert_mmio_exactly(&t, &held, 1, false);

	/* At most 256 holes: the 257th fails and changes nothing. */
	for (p = 0; p < 255; p++)
		punch(t.vm, 100 + 2 * p, 1);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 0, MEM_GPA + 1000 * PAGE,
				PAGE), ENOSPC);
	guest_op(&t, OP_READ, 1);
	TEST_ASSERT_EQ(t.nr_mmio, 10 + 255);
	TEST_ASSERT_EQ(t.mmio[t.nr_mmio - 1], MEM_GPA + (100 + 2 * 254) * PAGE);
	for (p = 0; p < 255; p++)
		fill(t.vm, 100 + 2 * p, 1);

	/* Flags-only changes keep the holes, a move is refused. */
	vm_set_user_memory_region2(t.vm, MEM_SLOT, KVM_MEM_LOG_DIRTY_PAGES,
				   MEM_GPA, size, t.hva, 0, 0);
	vm_set_user_memory_region2(t.vm, MEM_SLOT, 0, MEM_GPA, size, t.hva,
				   0, 0);
	guest_op(&t, OP_READ, 1);
	assert_mmio_exactly(&t, &held, 1, false);
	EXPECT_ERRNO(__vm_set_user_memory_region2(t.vm, MEM_SLOT, 0,
						  MEM_GPA + size, size, t.hva,
						  0, 0), EBUSY);

	/* A deleted slot takes its holes with it. */
	vm_set_user_memory_region2(t.vm, MEM_SLOT, 0, MEM_GPA, 0, NULL, 0, 0);
	vm_set_user_memory_region2(t.vm, MEM_SLOT, 0, MEM_GPA, size, t.hva,
				   0, 0);
	guest_op(&t, OP_READ, 1);
	TEST_ASSERT_EQ(t.nr_mmio, 0);
	EXPECT_ERRNO(__set_hole(t.vm, MEM_SLOT, 1, MEM_GPA + 10 * PAGE,
				10 * PAGE), ENOENT);
	/* And a slot can move once its holes are filled. */
	punch(t.vm, 10, 10);
	fill(t.vm, 10, 10);
	vm_set_user_memory_region2(t.vm, MEM_SLOT, 0, MEM_GPA + size, size,
				   t.hva, 0, 0);
#undef EXPECT_ERRNO
	test_vm_free(&t);
}

/* Exactly the pages outside @holes are dirty (@holes_dirty: inside). */
static void __assert_dirty(unsigned long *bitmap, uint64_t npages,
			   const struct range *holes, int n, bool holes_dirty)
{
	uint64_t p;

	for (p = 0; p < npages; p++)
		TEST_ASSERT(!!test_bit(p, bitmap) ==
			    (in_ranges(holes, n, p) == holes_dirty),
			    "page %lu: dirty %d, in a hole %d", p,
			    !!test_bit(p, bitmap), in_ranges(holes, n, p));
}

static void assert_dirty(unsigned long *bitmap, uint64_t npages,
			 const struct range *holes, int n)
{
	__assert_dirty(bitmap, npages, holes, n, false);
}

static void test_dirty_log(void)
{
	const uint64_t size = 4 * SZ_2M, npages = size / PAGE;
	/* Single bits at a word's edge, and two whole words. */
	const struct range holes[] = { { 5, 3 }, { 63, 2 }, { 128, 128 } };
	const int n = ARRAY_SIZE(holes);
	unsigned long *bitmap = calloc(npages / 8, 1);
	struct test_vm t;
	int i;

	pr_info("Dirty logging across punches and fills\n");
	test_vm_create(&t, ANON, size, KVM_MEM_LOG_DIRTY_PAGES);

	guest_op(&t, OP_WRITE, 3);
	for (i = 0; i < n; i++)
		set_hole(t.vm, KVM_MEMSLOT_HOLE_PUNCH, &holes[i]);
	/* The bits outside the holes are still there, none inside. */
	kvm_vm_get_dirty_log(t.vm, MEM_SLOT, bitmap);
	assert_dirty(bitmap, npages, holes, n);

	guest_op(&t, OP_WRITE, 4);
	assert_mmio_exactly(&t, holes, n, true);
	kvm_vm_get_dirty_log(t.vm, MEM_SLOT, bitmap);
	assert_dirty(bitmap, npages, holes, n);

	/*
	 * Nothing was written since the last get, but filled holes are
	 * reported dirty: a migration must send what is there now.
	 */
	for (i = 0; i < n; i++)
		set_hole(t.vm, KVM_MEMSLOT_HOLE_FILL, &holes[i]);
	kvm_vm_get_dirty_log(t.vm, MEM_SLOT, bitmap);
	__assert_dirty(bitmap, npages, holes, n, true);
	guest_op(&t, OP_WRITE, 5);
	kvm_vm_get_dirty_log(t.vm, MEM_SLOT, bitmap);
	assert_dirty(bitmap, npages, NULL, 0);
	test_vm_free(&t);

	/* A bitmap that starts set starts clear in the holes. */
	pr_info("Dirty logging that starts set, turned on with holes\n");
	test_vm_create(&t, ANON, size, 0);
	guest_op(&t, OP_WRITE, 0);
	vm_enable_cap(t.vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		      KVM_DIRTY_LOG_INITIALLY_SET);
	for (i = 0; i < n; i++)
		set_hole(t.vm, KVM_MEMSLOT_HOLE_PUNCH, &holes[i]);
	vm_set_user_memory_region2(t.vm, MEM_SLOT, KVM_MEM_LOG_DIRTY_PAGES,
				   MEM_GPA, size, t.hva, 0, 0);
	kvm_vm_get_dirty_log(t.vm, MEM_SLOT, bitmap);
	assert_dirty(bitmap, npages, holes, n);
	guest_op(&t, OP_READ, 0);
	assert_mmio_exactly(&t, holes, n, false);
	test_vm_free(&t);
	free(bitmap);
}

/*
 * KVM's own writes: kvmclock's gfn->pfn cache writes the pvclock page at
 * every clock update; once a hole covers it, the page stays as the host
 * left it.
 */
static void test_pvclock(void)
{
	const uint64_t size = SZ_2M, page = 7;
	struct kvm_clock_data clock = {};
	uint32_t *version;
	struct test_vm t;

	pr_info("A gfn->pfn cache (kvmclock) in a hole\n");
	test_vm_create(&t, ANON, size, 0);
	version = (uint32_t *)page_word(&t, page);

	vcpu_set_msr(t.vcpu, MSR_KVM_SYSTEM_TIME_NEW,
		     (MEM_GPA + page * PAGE) | 1);
	guest_op(&t, OP_NONE, 0);
	TEST_ASSERT(READ_ONCE(*version), "kvmclock never wrote its page");

	punch(t.vm, page, 1);
	memset(version, 0, PAGE);
	vm_ioctl(t.vm, KVM_GET_CLOCK, &clock);
	clock.flags = 0;
	vm_ioctl(t.vm, KVM_SET_CLOCK, &clock);
	guest_op(&t, OP_NONE, 0);
	guest_op(&t, OP_NONE, 0);
	TEST_ASSERT(!READ_ONCE(*version), "kvmclock wrote into a hole");

	fill(t.vm, page, 1);
	vm_ioctl(t.vm, KVM_SET_CLOCK, &clock);
	guest_op(&t, OP_NONE, 0);
	TEST_ASSERT(READ_ONCE(*version), "kvmclock did not write after the fill");
	test_vm_free(&t);
}

/*
 * KVM_PRE_FAULT_MEMORY maps nothing in a hole (ENOENT, as where no memslot
 * is) and works next to it; a private access to a hole of a
 * software-protected VM's guest_memfd gets KVM_EXIT_MEMORY_FAULT, as a
 * private access to no memslot does, and the private page is read once
 * the hole is filled.
 */
static void test_prefault_and_private(void)
{
	struct kvm_pre_fault_memory range = { .size = PAGE };
	struct kvm_memory_attributes2 attr = {
		.offset = 5 * PAGE,
		.size = PAGE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	struct kvm_run *run;
	struct test_vm t;
	int r;

	if (kvm_has_cap(KVM_CAP_PRE_FAULT_MEMORY) && kvm_is_tdp_enabled()) {
		pr_info("KVM_PRE_FAULT_MEMORY next to and in a hole\n");
		test_vm_create(&t, ANON, SZ_2M, 0);
		punch(t.vm, 5, 1);
		range.gpa = MEM_GPA + 4 * PAGE;
		TEST_ASSERT(!__vcpu_ioctl(t.vcpu, KVM_PRE_FAULT_MEMORY, &range),
			    "pre-fault next to a hole failed, errno %d", errno);
		range.gpa = MEM_GPA + 5 * PAGE;
		range.size = PAGE;
		r = __vcpu_ioctl(t.vcpu, KVM_PRE_FAULT_MEMORY, &range);
		TEST_ASSERT(r == -1 && errno == ENOENT,
			    "pre-fault in a hole: %d, errno %d", r, errno);
		fill(t.vm, 5, 1);
		range.size = PAGE;
		TEST_ASSERT(!__vcpu_ioctl(t.vcpu, KVM_PRE_FAULT_MEMORY, &range),
			    "pre-fault of a filled hole failed, errno %d", errno);
		test_vm_free(&t);
	}

	if (!(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)))
		return;
	pr_info("A private page of a guest_memfd in a hole\n");
	test_vm_create(&t, GMEM, SZ_2M, 0);
	run = t.vcpu->run;
	guest_op(&t, OP_WRITE, 9);
	TEST_ASSERT(!ioctl(t.gmem_fd, KVM_SET_MEMORY_ATTRIBUTES2, &attr),
		    "conversion to private failed, errno %d", errno);
	punch(t.vm, 5, 1);
	write_guest_global(t.vm, g_op, OP_READ);
	r = _vcpu_run(t.vcpu);
	TEST_ASSERT(r == -1 && errno == EFAULT &&
		    run->exit_reason == KVM_EXIT_MEMORY_FAULT,
		    "KVM_RUN: %d, errno %d, exit %u", r, errno, run->exit_reason);
	TEST_ASSERT_EQ(run->memory_fault.gpa, MEM_GPA + 5 * PAGE);
	TEST_ASSERT(run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE,
		    "flags 0x%llx", run->memory_fault.flags);
	fill(t.vm, 5, 1);
	t.nr_mmio = 0;
	TEST_ASSERT_EQ(run_logging_mmio(&t), UCALL_SYNC);
	TEST_ASSERT_EQ(t.nr_mmio, 0);
	test_vm_free(&t);
}

/*
 * The race: two vCPUs read every page in a loop (the second writes each
 * page back too) while the main thread punches and fills one hole at a
 * time.  Hole k exists between seq = 2k + 1 (before its punch) and
 * seq = 2k + 2 (after its fill), so an MMIO exit from a run that began at
 * seq s0 and ended at s1 is right only if some hole k with 2k + 1 <= s1
 * and 2k + 2 > s0 holds the page.  Outside holes no exit is right, and
 * the guests check every value they read.
 */
#define RACE_ROUNDS	100
#define RACE_PAGES	256
#define RACE_VCPUS	2

struct race_vcpu {
	struct race *rc;
	struct kvm_vcpu *vcpu;
	uint64_t *pass;
	/* The vCPU's pass when each page last exited. */
	uint64_t mmio_pass[RACE_PAGES];
};

struct race {
	struct test_vm t;
	struct range log[RACE_ROUNDS];
	uint64_t seq;
	bool stop;
	struct race_vcpu v[RACE_VCPUS];
};

static void *race_vcpu_run(void *arg)
{
	struct race_vcpu *v = arg;
	struct race *rc = v->rc;
	struct kvm_run *run = v->vcpu->run;
	uint64_t mark = MMIO_MARK, s0, s1, page, k;
	bool ok;

	for (;;) {
		s0 = __atomic_load_n(&rc->seq, __ATOMIC_ACQUIRE);
		vcpu_run(v->vcpu);
		s1 = __atomic_load_n(&rc->seq, __ATOMIC_ACQUIRE);
		if (run->exit_reason != KVM_EXIT_MMIO) {
			/* The loop's first GUEST_SYNC, or the one after it. */
			TEST_ASSERT_EQ(gmem_expect_ucall(v->vcpu), UCALL_SYNC);
			if (__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE))
				return NULL;
			continue;
		}
		page = (run->mmio.phys_addr - MEM_GPA) / PAGE;
		TEST_ASSERT(run->mmio.phys_addr >= MEM_GPA &&
			    page < RACE_PAGES, "MMIO exit at %llx",
			    run->mmio.phys_addr);
		ok = false;
		for (k = s0 >= 2 ? (s0 - 2) / 2 : 0; 2 * k + 1 <= s1; k++)
			if (2 * k + 2 > s0 && in_ranges(&rc->log[k], 1, page))
				ok = true;
		TEST_ASSERT(ok, "MMIO exit at page %lu outside a hole (seq %lu-%lu)",
			    page, s0, s1);
		if (run->mmio.is_write)
			continue;
		__atomic_store_n(&v->mmio_pass[page], READ_ONCE(*v->pass),
				 __ATOMIC_RELEASE);
		memcpy(run->mmio.data, &mark, 8);
	}
}

/* Each vCPU's pass counter when the last one reached its @pass. */
static void wait_passes(struct race *rc, const uint64_t *pass)
{
	uint64_t deadline = gmem_now_ns() + 60 * 1000000000ULL;
	int i;

	for (i = 0; i < RACE_VCPUS; i++)
		while (READ_ONCE(*rc->v[i].pass) < pass[i]) {
			TEST_ASSERT(gmem_now_ns() < deadline,
				    "vCPU %d stopped at pass %lu", i,
				    READ_ONCE(*rc->v[i].pass));
			usleep(100);
		}
}

static void test_race(void)
{
	struct race *rc = calloc(1, sizeof(*rc));
	pthread_t thread[RACE_VCPUS];
	uint64_t k, p, pass[RACE_VCPUS], want[RACE_VCPUS];
	int i;

	pr_info("%d vCPUs reading while %d holes are punched and filled\n",
		RACE_VCPUS, RACE_ROUNDS);
	test_vm_create(&rc->t, ANON, RACE_PAGES * PAGE, 0);
	guest_op(&rc->t, OP_WRITE, 7);
	rc->v[0].vcpu = rc->t.vcpu;
	for (i = 1; i < RACE_VCPUS; i++) {
		rc->v[i].vcpu = vm_vcpu_add(rc->t.vm, i, guest_code);
		vcpu_args_set(rc->v[i].vcpu, 1, i);
	}
	write_guest_global(rc->t.vm, g_op, OP_LOOP);
	for (i = 0; i < RACE_VCPUS; i++) {
		rc->v[i].rc = rc;
		rc->v[i].pass = addr_gva2hva(rc->t.vm, (vm_vaddr_t)&g_pass[i]);
		pthread_create(&thread[i], NULL, race_vcpu_run, &rc->v[i]);
	}

	srandom(1);
	for (k = 0; k < RACE_ROUNDS; k++) {
		struct range *r = &rc->log[k];

		r->nr = 1 + random() % 16;
		r->first = random() % (RACE_PAGES - r->nr + 1);
		__atomic_store_n(&rc->seq, 2 * k + 1, __ATOMIC_RELEASE);
		set_hole(rc->t.vm, KVM_MEMSLOT_HOLE_PUNCH, r);

		/* A whole pass after the punch exits at every page of it. */
		for (i = 0; i < RACE_VCPUS; i++) {
			pass[i] = READ_ONCE(*rc->v[i].pass);
			want[i] = pass[i] + 2;
		}
		wait_passes(rc, want);
		for (i = 0; i < RACE_VCPUS; i++)
			for (p = r->first; p < r->first + r->nr; p++)
				TEST_ASSERT(__atomic_load_n(&rc->v[i].mmio_pass[p],
							    __ATOMIC_ACQUIRE) >=
					    pass[i] + 1,
					    "vCPU %d read page %lu of hole %lu as memory",
					    i, p, k);

		set_hole(rc->t.vm, KVM_MEMSLOT_HOLE_FILL, r);
		__atomic_store_n(&rc->seq, 2 * k + 2, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&rc->stop, true, __ATOMIC_RELEASE);
	write_guest_global(rc->t.vm, g_stop, 1);
	for (i = 0; i < RACE_VCPUS; i++) {
		pthread_join(thread[i], NULL);
		pr_info("  vCPU %d: %lu passes\n", i, READ_ONCE(*rc->v[i].pass));
	}
	test_vm_free(&rc->t);
	free(rc);
}

int main(int argc, char *argv[])
{
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_MEMSLOT_HOLES));

	test_bad_input();
	test_holes(ANON);
	test_holes(HUGETLB_2M);
	if (kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM))
		test_holes(GMEM);
	test_dirty_log();
	test_pvclock();
	test_prefault_and_private();
	test_race();
	return 0;
}
