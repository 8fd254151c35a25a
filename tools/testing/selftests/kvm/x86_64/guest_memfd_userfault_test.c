// SPDX-License-Identifier: GPL-2.0-only
/*
 * Missing ("userfault") pages of guest_memfd for post-copy
 * (KVM_GMEM_SET_USERFAULT, KVM_GMEM_GET_USERFAULT, KVM_GMEM_RESOLVE) on a
 * KVM_X86_SW_PROTECTED_VM:
 *  - the capability;
 *  - every bad input of the three calls fails and changes neither the
 *    missing bits nor any page;
 *  - set and clear are deltas over vectors of ranges, read back exactly,
 *    and leave contents and the shared/private state alone;
 *  - a vCPU touching missing pages exits with KVM_EXIT_MEMORY_FAULT and
 *    KVM_MEMORY_EXIT_FLAG_USERFAULT (and _PRIVATE for private pages) for
 *    exactly those pages, resolves them and reads the data, on 4K, 2M and
 *    1G files; KVM maps no huge page across a missing page (page-size
 *    stats) and maps huge again once none is missing;
 *  - a host thread reading a missing page through the file's mapping
 *    sleeps until the page is resolved; a process killed while waiting
 *    exits;
 *  - KVM's own access to guest memory (kvmclock through a gfn_to_pfn
 *    cache, steal time through a gfn_to_hva cache, both over the
 *    memslot's mapping of the file) waits for a missing page the same
 *    way, and writes it once resolved;
 *  - KVM_PRE_FAULT_MEMORY stops at a missing page;
 *  - userfaultfd on a mapping of the file (4K, 2M and 1G files): in MINOR
 *    mode missing pages and pages not mapped yet raise MINOR events and
 *    UFFDIO_CONTINUE maps them and clears the bit; in MISSING mode holes
 *    and missing pages raise MISSING events and UFFDIO_COPY and
 *    UFFDIO_ZEROPAGE fill them, never over a present page; WP and POISON
 *    are refused; KVM's own access to a missing page goes through the
 *    registered mapping and is resolved by the handler, in either mode;
 *    the handler may be another process (the userfaultfd passed over a
 *    unix socket); a reader whose handler closed the userfaultfd or died
 *    waits for the bit instead, killably, and the pools stay exact;
 *  - a race of set, clear, resolve (vCPU exits and a background push),
 *    host readers and conversions on one file: every read, guest or host,
 *    sees the page's data, nothing hangs, and every page is intact at the
 *    end.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <asm/kvm_para.h>
#include <asm/pvclock-abi.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/syscall.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define GMEM_GPA	BIT_ULL(32)
#define GMEM_SLOT	10
#define PAGE		4096UL
#define SZ_2M		(2UL << 20)
#define SZ_1G		BIT(30)

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

static int uf(int fd, uint32_t op, struct kvm_gmem_range *r, uint64_t n,
	      uint64_t *done)
{
	struct kvm_gmem_userfault u = {
		.op = op, .ranges = (uintptr_t)r, .nr_ranges = n,
		.done = -1ULL,
	};
	int ret = ioctl(fd, KVM_GMEM_SET_USERFAULT, &u);

	if (done)
		*done = u.done;
	return ret;
}

static void uf_range(int fd, uint32_t op, uint64_t offset, uint64_t size)
{
	struct kvm_gmem_range r = { offset, size };
	uint64_t done;

	TEST_ASSERT(!uf(fd, op, &r, 1, &done) && done == 1,
		    "userfault op %u on [0x%lx, +0x%lx) failed: %s", op,
		    offset, size, strerror(errno));
}

/* Whether page @i of a missing-bit bitmap is set. */
/* Clear [@offset, @offset + @size) with KVM_GMEM_USERFAULT_FLAG_COLLAPSE. */
static void uf_collapse(int fd, uint64_t offset, uint64_t size)
{
	struct kvm_gmem_range r = { offset, size };
	struct kvm_gmem_userfault u = {
		.op = KVM_GMEM_USERFAULT_CLEAR,
		.flags = KVM_GMEM_USERFAULT_FLAG_COLLAPSE,
		.ranges = (uintptr_t)&r, .nr_ranges = 1,
	};

	TEST_ASSERT(!ioctl(fd, KVM_GMEM_SET_USERFAULT, &u),
		    "collapse failed: %s", strerror(errno));
}

static bool bit(const uint8_t *bm, uint64_t i)
{
	return bm[i / 8] & (1 << (i % 8));
}

static void get_bitmap(int fd, uint64_t offset, uint64_t size, uint8_t *bm)
{
	struct kvm_gmem_userfault_bitmap b = {
		.offset = offset, .size = size, .bitmap = (uintptr_t)bm,
	};

	TEST_ASSERT(!ioctl(fd, KVM_GMEM_GET_USERFAULT, &b),
		    "KVM_GMEM_GET_USERFAULT failed: %s", strerror(errno));
}

/* The missing pages among the first @n of @fd, as a bit mask. */
static uint64_t missing_mask(int fd, unsigned int n)
{
	uint8_t bm[8] = {};
	uint64_t m = 0;
	unsigned int i;

	get_bitmap(fd, 0, n * PAGE, bm);
	for (i = 0; i < n; i++)
		if (bit(bm, i))
			m |= 1ULL << i;
	return m;
}

static int resolve(int fd, uint64_t offset, uint64_t size, const void *src,
		   uint64_t *resolved)
{
	struct kvm_gmem_resolve r = {
		.offset = offset, .size = size, .src = (uintptr_t)src,
		.resolved = -1ULL,
	};
	int ret = ioctl(fd, KVM_GMEM_RESOLVE, &r);

	if (resolved)
		*resolved = r.resolved;
	return ret;
}

/* A page whose every u64 is its offset xor @seed. */
static void fill_page(uint64_t *p, uint64_t offset, uint64_t seed)
{
	unsigned int i;

	for (i = 0; i < PAGE / 8; i++)
		p[i] = (offset + i * 8) ^ seed;
}

static void test_caps(void)
{
	struct kvm_vm *vm;

	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_GUEST_MEMFD_USERFAULT), 1);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_USERFAULT), 1);
	kvm_vm_free(vm);
	vm = vm_create_barebones();
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_USERFAULT), 1);
	kvm_vm_free(vm);
	ksft_test_result_pass("capability\n");
}

#define NPAGES	16
#define BASELINE ((1ULL << 2) | (1ULL << 3))

/* Pages 2 and 3 missing, page 5 shared with its pattern: unchanged? */
static void check_unchanged(int fd, uint64_t *mem, const char *what)
{
	TEST_ASSERT(missing_mask(fd, NPAGES) == BASELINE,
		    "%s changed the missing bits: 0x%lx", what,
		    missing_mask(fd, NPAGES));
	TEST_ASSERT(mem[5 * PAGE / 8] == ((5 * PAGE) ^ 0x55),
		    "%s changed page 5", what);
}

static void expect_err(int ret, int err, int fd, uint64_t *mem,
		       const char *what)
{
	TEST_ASSERT(ret == -1 && errno == err, "%s: expected %s, got %d (%s)",
		    what, strerror(err), ret, strerror(errno));
	check_unchanged(fd, mem, what);
}

static void test_bad_input(void)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	uint64_t size = NPAGES * PAGE, done, resolved;
	struct kvm_gmem_range r[2];
	struct kvm_gmem_userfault u;
	struct kvm_gmem_userfault_bitmap b;
	struct kvm_gmem_resolve res;
	uint64_t *mem, page[PAGE / 8], two[2 * PAGE / 8];
	int fd, other, i;
	uint8_t bm[4];

	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	fill_page(&mem[5 * PAGE / 8], 5 * PAGE, 0x55);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 2 * PAGE, 2 * PAGE);
	check_unchanged(fd, mem, "baseline");

	/* KVM_GMEM_SET_USERFAULT: the second range is bad, the first not. */
	for (i = 0; i < 2; i++) {
		uint32_t op = i ? KVM_GMEM_USERFAULT_CLEAR :
				  KVM_GMEM_USERFAULT_SET;
		struct kvm_gmem_range bad[] = {
			{ PAGE + 1, PAGE }, { PAGE, PAGE - 1 }, { PAGE, 0 },
			{ -PAGE, 2 * PAGE }, { size - PAGE, 2 * PAGE },
			{ size, PAGE },
		};
		unsigned int j, k;

		r[0] = (struct kvm_gmem_range){ i ? 2 * PAGE : 8 * PAGE, PAGE };
		for (j = 0; j < ARRAY_SIZE(bad); j++) {
			r[1] = bad[j];
			expect_err(uf(fd, op, r, 2, NULL), EINVAL, fd, mem,
				   "bad range");
		}
		r[1] = r[0];
		u = (struct kvm_gmem_userfault){ .op = op,
			.ranges = (uintptr_t)r, .nr_ranges = 1 };
		/* COLLAPSE only with CLEAR; no other flag. */
		u.flags = i ? 2 : KVM_GMEM_USERFAULT_FLAG_COLLAPSE;
		expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EINVAL, fd,
			   mem, "flags");
		u.flags = KVM_GMEM_USERFAULT_FLAG_COLLAPSE | 1U << 31;
		expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EINVAL, fd,
			   mem, "flags");
		u.flags = 0;
		for (k = 0; k < ARRAY_SIZE(u.reserved); k++) {
			u.reserved[k] = 1;
			expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u),
				   EINVAL, fd, mem, "reserved");
			u.reserved[k] = 0;
		}
		u.nr_ranges = 0;
		expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EINVAL, fd,
			   mem, "no range");
		u.nr_ranges = KVM_GMEM_USERFAULT_MAX_RANGES + 1ULL;
		expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EINVAL, fd,
			   mem, "too many ranges");
		u.nr_ranges = 1;
		u.ranges = 0;
		expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EFAULT, fd,
			   mem, "bad range array");
	}
	u = (struct kvm_gmem_userfault){ .op = 2, .ranges = (uintptr_t)r,
					 .nr_ranges = 1 };
	expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, &u), EINVAL, fd, mem,
		   "unknown op");
	expect_err(ioctl(fd, KVM_GMEM_SET_USERFAULT, NULL), EFAULT, fd, mem,
		   "bad argument");

	/* KVM_GMEM_GET_USERFAULT */
	b = (struct kvm_gmem_userfault_bitmap){ .size = size,
						.bitmap = (uintptr_t)bm };
	for (i = 0; i < ARRAY_SIZE(b.reserved); i++) {
		b.reserved[i] = 1;
		expect_err(ioctl(fd, KVM_GMEM_GET_USERFAULT, &b), EINVAL, fd,
			   mem, "get: reserved");
		b.reserved[i] = 0;
	}
	b.offset = 1;
	expect_err(ioctl(fd, KVM_GMEM_GET_USERFAULT, &b), EINVAL, fd, mem,
		   "get: unaligned");
	b.offset = 0;
	b.size = size + PAGE;
	expect_err(ioctl(fd, KVM_GMEM_GET_USERFAULT, &b), EINVAL, fd, mem,
		   "get: beyond the end");
	b.size = 0;
	expect_err(ioctl(fd, KVM_GMEM_GET_USERFAULT, &b), EINVAL, fd, mem,
		   "get: empty");
	b.size = size;
	b.bitmap = 0;
	expect_err(ioctl(fd, KVM_GMEM_GET_USERFAULT, &b), EFAULT, fd, mem,
		   "get: bad bitmap");

	/* KVM_GMEM_RESOLVE */
	fill_page(page, 2 * PAGE, 0x22);
	res = (struct kvm_gmem_resolve){ .offset = 2 * PAGE, .size = PAGE,
					 .src = (uintptr_t)page };
	res.flags = 1;
	expect_err(ioctl(fd, KVM_GMEM_RESOLVE, &res), EINVAL, fd, mem,
		   "resolve: flags");
	res.flags = 0;
	for (i = 0; i < ARRAY_SIZE(res.reserved); i++) {
		res.reserved[i] = 1;
		expect_err(ioctl(fd, KVM_GMEM_RESOLVE, &res), EINVAL, fd, mem,
			   "resolve: reserved");
		res.reserved[i] = 0;
	}
	expect_err(resolve(fd, 2 * PAGE + 8, PAGE, page, NULL), EINVAL, fd,
		   mem, "resolve: unaligned");
	expect_err(resolve(fd, 2 * PAGE, 0, page, NULL), EINVAL, fd, mem,
		   "resolve: empty");
	expect_err(resolve(fd, size, PAGE, page, NULL), EINVAL, fd, mem,
		   "resolve: beyond the end");
	expect_err(resolve(fd, -PAGE, 2 * PAGE, page, NULL), EINVAL, fd, mem,
		   "resolve: overflow");
	expect_err(resolve(fd, 2 * PAGE, PAGE, NULL, &resolved), EFAULT, fd,
		   mem, "resolve: bad source");
	TEST_ASSERT_EQ(resolved, 0);
	/* A present page is left as it is. */
	expect_err(resolve(fd, 5 * PAGE, PAGE, page, &resolved), EEXIST, fd,
		   mem, "resolve: present page");
	TEST_ASSERT_EQ(resolved, 0);

	/* A file without a state of its own, a memfd, the VM fd. */
	other = vm_create_guest_memfd(vm, size, 0);
	r[0] = (struct kvm_gmem_range){ 0, PAGE };
	TEST_ASSERT(uf(other, KVM_GMEM_USERFAULT_SET, r, 1, NULL) == -1 &&
		    errno == EINVAL, "userfault on a file without state");
	TEST_ASSERT(resolve(other, 0, PAGE, page, NULL) == -1 &&
		    errno == EINVAL, "resolve on a file without state");
	close(other);
	other = memfd_create("not-gmem", 0);
	TEST_ASSERT(uf(other, KVM_GMEM_USERFAULT_SET, r, 1, NULL) == -1 &&
		    errno == ENOTTY, "userfault on a memfd");
	close(other);
	TEST_ASSERT(uf(vm->fd, KVM_GMEM_USERFAULT_SET, r, 1, NULL) == -1 &&
		    errno == ENOTTY, "userfault on the VM fd");
	check_unchanged(fd, mem, "other files");

	/* Stops at the first present page, having resolved the ones before. */
	fill_page(page, 3 * PAGE, 0x33);
	fill_page(two, 3 * PAGE, 0x33);
	fill_page(two + PAGE / 8, 4 * PAGE, 0x44);
	TEST_ASSERT(resolve(fd, 3 * PAGE, 2 * PAGE, two, &resolved) == -1 &&
		    errno == EEXIST && resolved == PAGE,
		    "resolve across a present page: %d %s, resolved 0x%lx",
		    errno, strerror(errno), resolved);
	TEST_ASSERT_EQ(missing_mask(fd, NPAGES), 1ULL << 2);
	TEST_ASSERT(!memcmp(&mem[3 * PAGE / 8], page, PAGE),
		    "resolved page holds other data");
	TEST_ASSERT(!resolve(fd, 2 * PAGE, PAGE, two, &done) && done == PAGE,
		    "resolve failed");
	TEST_ASSERT_EQ(missing_mask(fd, NPAGES), 0);

	munmap(mem, size);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("bad input\n");
}

/* Set and clear are deltas over vectors; contents and state stay. */
static void test_vectors(void)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	struct kvm_gmem_range set[] = {
		{ 0, PAGE }, { 4 * PAGE, 5 * PAGE }, { 63 * PAGE, PAGE },
		{ 4 * PAGE, PAGE },
	};
	struct kvm_gmem_range clear[] = { { 5 * PAGE, 2 * PAGE },
					  { 63 * PAGE, PAGE } };
	uint64_t size = 64 * PAGE, done, expect;
	struct kvm_memory_attributes2 attrs = {
		.offset = 32 * PAGE, .size = 32 * PAGE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	uint8_t bm[8];
	uint64_t *mem;
	int fd, i;

	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	for (i = 0; i < 64; i++)
		fill_page(&mem[i * PAGE / 8], i * PAGE, 0x11);
	/* Pages 32-63 private. */
	TEST_ASSERT(!ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &attrs),
		    "conversion failed");

	TEST_ASSERT(!uf(fd, KVM_GMEM_USERFAULT_SET, set, ARRAY_SIZE(set),
			&done) && done == ARRAY_SIZE(set), "set failed");
	get_bitmap(fd, 0, size, bm);
	for (i = 0; i < 64; i++) {
		expect = i == 0 || (i >= 4 && i < 9) || i == 63;
		TEST_ASSERT(bit(bm, i) == expect, "page %d: missing %d", i,
			    bit(bm, i));
	}
	/* A bitmap of an unaligned page count and offset. */
	memset(bm, 0xff, sizeof(bm));
	get_bitmap(fd, 3 * PAGE, 3 * PAGE, bm);
	TEST_ASSERT((bm[0] & 7) == 6, "bitmap of pages 3-5: 0x%x", bm[0]);

	TEST_ASSERT(!uf(fd, KVM_GMEM_USERFAULT_CLEAR, clear, ARRAY_SIZE(clear),
			&done) && done == ARRAY_SIZE(clear), "clear failed");
	get_bitmap(fd, 0, size, bm);
	for (i = 0; i < 64; i++) {
		expect = i == 0 || i == 4 || (i >= 7 && i < 9);
		TEST_ASSERT(bit(bm, i) == expect, "page %d: missing %d", i,
			    bit(bm, i));
	}
	uf_range(fd, KVM_GMEM_USERFAULT_CLEAR, 0, size);
	TEST_ASSERT_EQ(missing_mask(fd, 64), 0);

	/* Contents and shared/private state as before. */
	for (i = 0; i < 32; i++)
		TEST_ASSERT(mem[i * PAGE / 8 + 1] == ((i * PAGE + 8) ^ 0x11),
			    "page %d lost its contents", i);
	attrs.attributes = 0;
	TEST_ASSERT(!ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &attrs),
		    "conversion back failed");
	for (i = 32; i < 64; i++)
		TEST_ASSERT(mem[i * PAGE / 8 + 1] == ((i * PAGE + 8) ^ 0x11),
			    "private page %d lost its contents", i);

	munmap(mem, size);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("set and clear vectors\n");
}

/* The guest reads a u64 at each offset of guest_offsets, checks it. */
#define MAX_TOUCH	16
static uint64_t guest_offsets[MAX_TOUCH];
static uint64_t guest_nr, guest_seed;

static void guest_code(void)
{
	for (;;) {
		uint64_t i;

		for (i = 0; i < guest_nr; i++) {
			uint64_t off = guest_offsets[i];

			GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)(GMEM_GPA + off)),
					off ^ guest_seed);
		}
		GUEST_SYNC(0);
	}
}

/*
 * Run the guest over @n offsets, resolving each missing page it exits on
 * with its pattern; return the number of exits.
 */
static int run_resolving(struct kvm_vcpu *vcpu, int fd, const uint64_t *off,
			 int n, uint64_t seed, bool private)
{
	static uint64_t page[PAGE / 8];
	struct kvm_run *run = vcpu->run;
	int exits = 0, r, i;

	for (i = 0; i < n; i++)
		guest_offsets[i] = off[i];
	guest_nr = n;
	guest_seed = seed;
	sync_global_to_guest(vcpu->vm, guest_offsets);
	sync_global_to_guest(vcpu->vm, guest_nr);
	sync_global_to_guest(vcpu->vm, guest_seed);

	for (;;) {
		uint64_t gpa, expect_flags;

		r = _vcpu_run(vcpu);
		if (!r)
			break;
		TEST_ASSERT(r == -1 && errno == EFAULT &&
			    run->exit_reason == KVM_EXIT_MEMORY_FAULT,
			    "KVM_RUN: %d errno %d exit %u", r, errno,
			    run->exit_reason);
		expect_flags = KVM_MEMORY_EXIT_FLAG_USERFAULT |
			       (private ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0);
		TEST_ASSERT(run->memory_fault.flags == expect_flags,
			    "exit flags 0x%llx, expected 0x%lx",
			    run->memory_fault.flags, expect_flags);
		TEST_ASSERT_EQ(run->memory_fault.size, PAGE);
		gpa = run->memory_fault.gpa;
		TEST_ASSERT(gpa >= GMEM_GPA && !(gpa % PAGE), "gpa 0x%lx", gpa);
		fill_page(page, gpa - GMEM_GPA, seed);
		TEST_ASSERT(!resolve(fd, gpa - GMEM_GPA, PAGE, page, NULL),
			    "resolve of 0x%lx failed: %s", gpa,
			    strerror(errno));
		TEST_ASSERT(++exits <= n, "more exits than pages");
	}
	gmem_expect_sync(vcpu);
	return exits;
}

struct backing {
	const char *name;
	uint64_t size;		/* file size */
	uint64_t page_size;	/* hugetlb page size, 0 for 4K pages */
	uint64_t flags;		/* hugetlb flags */
	const char *stat;	/* KVM's count of mappings of the page size */
};

static const struct backing backings[] = {
	{ "4K", 4 * SZ_2M, 0, 0, NULL },
	{ "2M", 4 * SZ_2M, SZ_2M,
	  GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_2MB, "pages_2m" },
	{ "1G", SZ_1G, SZ_1G,
	  GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_1GB, "pages_1g" },
};

/* Free pages of the hugetlb pool of @page_size. */
static unsigned long hugetlb_free(uint64_t page_size)
{
	char path[96];
	unsigned long n = 0;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages",
		 page_size / 1024);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%lu", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

static bool backing_usable(const struct backing *bk)
{
	if (!bk->page_size)
		return true;
	if (!(kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB) & bk->page_size))
		return false;
	return hugetlb_free(bk->page_size) * bk->page_size >= bk->size;
}

/*
 * Every page missing; the guest reads a few pages in different 2M blocks
 * and exits once for each; then the bits of the whole file are cleared and
 * the guest reads one more page of the first block, which KVM now maps at
 * the file's page size.
 */
static void test_vcpu_exits(const struct backing *bk, bool private)
{
	uint64_t off[] = { 0, PAGE, SZ_2M - PAGE, SZ_2M, 3 * SZ_2M + 5 * PAGE };
	uint64_t huge_before = 0, pages_4k, page9[1];
	struct kvm_vcpu *vcpu;
	int fd, exits, i, blocks;
	struct kvm_vm *vm;

	if (!backing_usable(bk)) {
		ksft_test_result_skip("vCPU exits %s %s: no pool\n", bk->name,
				      private ? "private" : "shared");
		return;
	}

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	fd = vm_create_guest_memfd(vm, bk->size, GUEST_MEMFD_FLAG_MMAP |
				   (private ? 0 : GUEST_MEMFD_FLAG_INIT_SHARED) |
				   bk->flags);
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, bk->size, NULL, fd, 0);
	virt_map_level(vm, GMEM_GPA, GMEM_GPA, bk->size,
		       bk->size >= SZ_1G ? PG_LEVEL_1G : PG_LEVEL_2M);

	uf_range(fd, KVM_GMEM_USERFAULT_SET, 0, bk->size);
	if (bk->stat)
		huge_before = vm_get_stat(vm, bk->stat);
	pages_4k = vm_get_stat(vm, "pages_4k");

	exits = run_resolving(vcpu, fd, off, ARRAY_SIZE(off), 0x1234, private);
	TEST_ASSERT(exits == ARRAY_SIZE(off), "%d exits for %lu missing pages",
		    exits, ARRAY_SIZE(off));
	/* Every block had missing pages: nothing mapped huge. */
	if (bk->stat)
		TEST_ASSERT_EQ(vm_get_stat(vm, bk->stat), huge_before);
	TEST_ASSERT(vm_get_stat(vm, "pages_4k") - pages_4k >= exits,
		    "the resolved pages are not mapped 4K");

	/*
	 * Nothing missing any more: the next fault maps a huge page (private
	 * memory: hugetlb files map shared pages 4K).  Page 9 was never
	 * written, so it reads zero: off ^ seed with seed == off.
	 */
	uf_range(fd, KVM_GMEM_USERFAULT_CLEAR, 0, bk->size);
	page9[0] = 9 * PAGE;
	exits = run_resolving(vcpu, fd, page9, 1, 9 * PAGE, private);
	TEST_ASSERT_EQ(exits, 0);
	if (bk->stat && private)
		TEST_ASSERT(vm_get_stat(vm, bk->stat) == huge_before + 1,
			    "%s: %lu huge mappings after the clear",
			    bk->name, vm_get_stat(vm, bk->stat) - huge_before);

	/*
	 * The pages of the other blocks stay mapped 4K: reading them again
	 * faults nothing.  A clear with KVM_GMEM_USERFAULT_FLAG_COLLAPSE
	 * zaps them, and the next reads map every block huge.
	 */
	pages_4k = vm_get_stat(vm, "pages_4k");
	exits = run_resolving(vcpu, fd, off, ARRAY_SIZE(off), 0x1234, private);
	TEST_ASSERT_EQ(exits, 0);
	TEST_ASSERT_EQ(vm_get_stat(vm, "pages_4k"), pages_4k);
	if (bk->stat && private)
		TEST_ASSERT_EQ(vm_get_stat(vm, bk->stat), huge_before + 1);
	uf_collapse(fd, 0, bk->size);
	exits = run_resolving(vcpu, fd, off, ARRAY_SIZE(off), 0x1234, private);
	TEST_ASSERT_EQ(exits, 0);
	if (bk->stat && private) {
		for (i = 0, blocks = 0; i < ARRAY_SIZE(off); i++)
			blocks += !i || off[i] / bk->page_size !=
					off[i - 1] / bk->page_size;
		TEST_ASSERT(vm_get_stat(vm, bk->stat) == huge_before + blocks,
			    "%s: %lu huge mappings after the collapse, %d blocks",
			    bk->name, vm_get_stat(vm, bk->stat) - huge_before,
			    blocks);
	}

	/*
	 * Setting a page missing zaps the mapping that covers it, the huge
	 * one just made included: the guest exits on it again.
	 */
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 300 * PAGE, PAGE);
	page9[0] = 300 * PAGE;
	exits = run_resolving(vcpu, fd, page9, 1, 0x4321, private);
	TEST_ASSERT(exits == 1, "%d exits for a page set missing under a mapping",
		    exits);

	kvm_vm_free(vm);
	close(fd);
	ksft_test_result_pass("vCPU exits %s %s\n", bk->name,
			      private ? "private" : "shared");
}

static uint64_t reader_value;
static bool reader_done;

static void *reader(void *arg)
{
	WRITE_ONCE(reader_value, READ_ONCE(*(uint64_t *)arg));
	WRITE_ONCE(reader_done, true);
	return NULL;
}

static int signals;

static void count_signal(int sig)
{
	WRITE_ONCE(signals, signals + 1);
}

/*
 * Host accesses to a missing page sleep until it is resolved, and take
 * signals meanwhile.
 */
static void test_host_wait(void)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	uint64_t size = 8 * PAGE, page[PAGE / 8];
	pthread_t t;
	uint64_t *mem;
	pid_t child;
	int fd, status;

	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	mem[3 * PAGE / 8] = 0xdead;
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 3 * PAGE, PAGE);

	pthread_create(&t, NULL, reader, &mem[3 * PAGE / 8]);
	usleep(300 * 1000);
	TEST_ASSERT(!READ_ONCE(reader_done),
		    "a host read of a missing page returned");
	/* The waiter takes a signal, and waits again. */
	signal(SIGUSR1, count_signal);
	pthread_kill(t, SIGUSR1);
	usleep(300 * 1000);
	TEST_ASSERT(READ_ONCE(signals) == 1 && !READ_ONCE(reader_done),
		    "%d signals handled, reader %s", signals,
		    reader_done ? "done" : "waiting");
	fill_page(page, 3 * PAGE, 0x77);
	TEST_ASSERT(!resolve(fd, 3 * PAGE, PAGE, page, NULL), "resolve failed");
	pthread_join(t, NULL);
	TEST_ASSERT(reader_value == ((3 * PAGE) ^ 0x77),
		    "the reader saw 0x%lx", reader_value);

	/*
	 * An access that cannot drop the mmap lock (remote access through
	 * /proc/self/mem) fails rather than wait with the lock held.
	 */
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 6 * PAGE, PAGE);
	status = open("/proc/self/mem", O_RDONLY);
	TEST_ASSERT(status >= 0, "open /proc/self/mem failed");
	TEST_ASSERT(pread(status, page, 8, (uintptr_t)&mem[6 * PAGE / 8]) < 0,
		    "a remote read of a missing page succeeded");
	close(status);
	TEST_ASSERT(missing_mask(fd, 8) == 1ULL << 6, "page 6 changed");
	uf_range(fd, KVM_GMEM_USERFAULT_CLEAR, 6 * PAGE, PAGE);

	/* A waiter that is killed goes away. */
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 4 * PAGE, PAGE);
	child = fork();
	TEST_ASSERT(child >= 0, "fork failed");
	if (!child) {
		(void)READ_ONCE(mem[4 * PAGE / 8]);
		_exit(0);
	}
	usleep(300 * 1000);
	TEST_ASSERT_EQ(waitpid(child, &status, WNOHANG), 0);
	kill(child, SIGKILL);
	TEST_ASSERT_EQ(waitpid(child, &status, 0), child);
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "the waiter ended with status 0x%x", status);
	TEST_ASSERT_EQ(missing_mask(fd, 8), 1ULL << 4);

	munmap(mem, size);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("host accesses wait for missing pages\n");
}

static void guest_kvmclock(void)
{
	struct pvclock_vcpu_time_info *pvti = (void *)GMEM_GPA;

	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, GMEM_GPA | KVM_MSR_ENABLED);
	GUEST_SYNC(READ_ONCE(pvti->version));
}

/*
 * Steal time: KVM writes the record through a gfn_to_hva cache (a user
 * access to the memslot's mapping) before it enters the guest again.
 */
static void guest_steal_time(void)
{
	struct kvm_steal_time *st = (void *)GMEM_GPA;

	wrmsr(MSR_KVM_STEAL_TIME, GMEM_GPA | KVM_MSR_ENABLED);
	GUEST_SYNC(READ_ONCE(st->version));
}

struct resolver {
	int fd;
	bool started;
};

static void *resolve_later(void *arg)
{
	struct resolver *r = arg;
	static uint64_t zero[PAGE / 8];

	usleep(300 * 1000);
	WRITE_ONCE(r->started, true);
	TEST_ASSERT(!resolve(r->fd, 0, PAGE, zero, NULL), "resolve failed");
	return NULL;
}

/*
 * The kvmclock (or steal time) page is missing when the guest enables it:
 * KVM's write of the record (through a gfn_to_pfn cache, or a gfn_to_hva
 * cache, over the memslot's mapping of the file) waits in the vCPU thread
 * until another thread resolves the page, then lands: the guest reads a
 * complete (even, non-zero) version.
 */
static void test_kvm_internal(bool steal)
{
	const char *what = steal ? "steal time" : "kvmclock";
	struct resolver r = {};
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	pthread_t t;
	void *mem;

	if (steal && !kvm_cpu_has(X86_FEATURE_KVM_STEAL_TIME)) {
		ksft_test_result_skip("%s: not supported\n", what);
		return;
	}
	vm = vm_create_with_one_vcpu(&vcpu, steal ? guest_steal_time :
						    guest_kvmclock);
	r.fd = vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP |
				     GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, SZ_2M, mem, r.fd, 0);
	virt_map(vm, GMEM_GPA, GMEM_GPA, SZ_2M / PAGE);

	uf_range(r.fd, KVM_GMEM_USERFAULT_SET, 0, PAGE);
	pthread_create(&t, NULL, resolve_later, &r);
	vcpu_run(vcpu);
	TEST_ASSERT(READ_ONCE(r.started),
		    "KVM_RUN returned before the %s page was resolved", what);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	TEST_ASSERT(uc.args[1] && !(uc.args[1] & 1),
		    "%s version %lu", what, uc.args[1]);
	pthread_join(t, NULL);

	kvm_vm_free(vm);
	munmap(mem, SZ_2M);
	close(r.fd);
	ksft_test_result_pass("KVM's own accesses wait for missing pages: %s\n",
			      what);
}

/*
 * A userfaultfd handler thread: CONTINUE every MINOR fault, COPY the page's
 * pattern (offset from @base xor @seed) into every MISSING one; record them.
 */
struct uffd_handler {
	int uffd;
	bool stop;
	int events;
	int missing_events;
	uint64_t addr[8];
	uintptr_t base;
	uint64_t seed;
	pthread_t thread;
};

static int uffd_open(void *addr, uint64_t len, uint64_t mode, int *err,
		     uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = {
		.range = { (uintptr_t)addr, len },
		.mode = mode,
	};
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	TEST_ASSERT(uffd >= 0, "userfaultfd failed: %s", strerror(errno));
	TEST_ASSERT(!ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API failed");
	*err = ioctl(uffd, UFFDIO_REGISTER, &reg) ? errno : 0;
	if (ioctls)
		*ioctls = reg.ioctls;
	return uffd;
}

static int uffd_minor_open(void *addr, uint64_t len, int *err)
{
	return uffd_open(addr, len, UFFDIO_REGISTER_MODE_MINOR, err, NULL);
}

/* Resolve one fault message: CONTINUE or COPY. */
static void uffd_answer(int uffd, const struct uffd_msg *msg, uintptr_t base,
			uint64_t seed)
{
	uint64_t addr = msg->arg.pagefault.address & ~(PAGE - 1);
	uint64_t page[PAGE / 8];

	if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		struct uffdio_continue cont = {
			.range = { addr, PAGE },
		};

		TEST_ASSERT(!ioctl(uffd, UFFDIO_CONTINUE, &cont) ||
			    errno == EEXIST, "UFFDIO_CONTINUE failed: %s",
			    strerror(errno));
	} else {
		struct uffdio_copy copy = {
			.dst = addr, .src = (uintptr_t)page, .len = PAGE,
		};

		fill_page(page, addr - base, seed);
		TEST_ASSERT(!ioctl(uffd, UFFDIO_COPY, &copy) ||
			    errno == EEXIST, "UFFDIO_COPY failed: %s",
			    strerror(errno));
	}
}

static void *uffd_handler_thread(void *arg)
{
	struct uffd_handler *h = arg;
	struct pollfd pfd = { .fd = h->uffd, .events = POLLIN };

	while (!READ_ONCE(h->stop)) {
		struct uffd_msg msg;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (read(h->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		TEST_ASSERT(msg.event == UFFD_EVENT_PAGEFAULT,
			    "event %u", msg.event);
		if (h->events < ARRAY_SIZE(h->addr))
			h->addr[h->events] = msg.arg.pagefault.address & ~(PAGE - 1);
		if (!(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
			__atomic_add_fetch(&h->missing_events, 1,
					   __ATOMIC_RELAXED);
		/* The address before the count: see uffd_events(). */
		__atomic_store_n(&h->events, h->events + 1, __ATOMIC_RELEASE);
		uffd_answer(h->uffd, &msg, h->base, h->seed);
	}
	return NULL;
}

static int uffd_events(struct uffd_handler *h)
{
	return __atomic_load_n(&h->events, __ATOMIC_ACQUIRE);
}

static void uffd_handler_start(struct uffd_handler *h, int uffd,
			       void *base, uint64_t seed)
{
	memset(h, 0, sizeof(*h));
	h->uffd = uffd;
	h->base = (uintptr_t)base;
	h->seed = seed;
	pthread_create(&h->thread, NULL, uffd_handler_thread, h);
}

static void uffd_handler_stop(struct uffd_handler *h)
{
	WRITE_ONCE(h->stop, true);
	pthread_join(h->thread, NULL);
	close(h->uffd);
}

/*
 * A shared file of @bk's backing and two mappings of it: @fill, never
 * registered with userfaultfd, and @mem, for the test to register.
 */
static int shared_file_two_maps(struct kvm_vm *vm, const struct backing *bk,
				uint64_t size, uint64_t **fill, uint64_t **mem)
{
	int fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
				       GUEST_MEMFD_FLAG_INIT_SHARED |
				       bk->flags);

	*fill = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	*mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(*fill != MAP_FAILED && *mem != MAP_FAILED, "mmap failed");
	return fd;
}

static void test_uffd_minor(const struct backing *bk)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	uint64_t size = bk->page_size ? bk->page_size : 4 * SZ_2M;
	struct uffdio_continue cont;
	struct uffdio_poison poison;
	struct uffdio_move move;
	struct uffd_handler h;
	uint64_t *fill, *mem;
	uint64_t off, i, ioctls;
	int fd, uffd, err;

	if (!backing_usable(bk)) {
		ksft_test_result_skip("userfaultfd MINOR %s: no pool\n",
				      bk->name);
		return;
	}
	fd = shared_file_two_maps(vm, bk, size, &fill, &mem);
	for (off = 0; off < 8 * PAGE; off += PAGE)
		fill_page(&fill[off / 8], off, 0x99);

	/*
	 * The ioctls REGISTER reports are the ones that work: no POISON,
	 * MOVE or WRITEPROTECT (and WP mode is refused); POISON and MOVE
	 * fail.
	 */
	uffd = uffd_open(mem, size, UFFDIO_REGISTER_MODE_WP, &err, NULL);
	TEST_ASSERT(err == EINVAL, "WP registration: %s", strerror(err));
	close(uffd);
	uffd = uffd_open(mem, size, UFFDIO_REGISTER_MODE_MINOR, &err, &ioctls);
	TEST_ASSERT(!err, "MINOR registration failed: %s", strerror(err));
	TEST_ASSERT(ioctls == (BIT_ULL(_UFFDIO_WAKE) | BIT_ULL(_UFFDIO_COPY) |
			       BIT_ULL(_UFFDIO_ZEROPAGE) |
			       BIT_ULL(_UFFDIO_CONTINUE)),
		    "REGISTER reported ioctls 0x%lx", ioctls);
	poison = (struct uffdio_poison){
		.range = { (uintptr_t)&mem[7 * PAGE / 8], PAGE },
	};
	TEST_ASSERT(ioctl(uffd, UFFDIO_POISON, &poison) && errno == EINVAL,
		    "UFFDIO_POISON should fail with EINVAL");
	move = (struct uffdio_move){ .dst = (uintptr_t)&mem[7 * PAGE / 8],
				     .src = (uintptr_t)&fill[6 * PAGE / 8],
				     .len = PAGE };
	TEST_ASSERT(ioctl(uffd, UFFDIO_MOVE, &move) && errno == EINVAL,
		    "UFFDIO_MOVE should fail with EINVAL");
	/* A hole (on hugetlb files: a piece never written) has no page. */
	cont = (struct uffdio_continue){
		.range = { (uintptr_t)&mem[9 * PAGE / 8], PAGE },
	};
	TEST_ASSERT(ioctl(uffd, UFFDIO_CONTINUE, &cont) && errno == EFAULT,
		    "UFFDIO_CONTINUE of a hole: %s", strerror(errno));
	TEST_ASSERT_EQ(fill[7 * PAGE / 8], (7 * PAGE) ^ 0x99);

	uf_range(fd, KVM_GMEM_USERFAULT_SET, 3 * PAGE, PAGE);
	uffd_handler_start(&h, uffd, mem, 0x99);
	/* A missing page and a present one not mapped yet: MINOR each. */
	TEST_ASSERT(READ_ONCE(mem[3 * PAGE / 8 + 1]) == ((3 * PAGE + 8) ^ 0x99),
		    "missing page read wrong data");
	TEST_ASSERT(READ_ONCE(mem[5 * PAGE / 8 + 1]) == ((5 * PAGE + 8) ^ 0x99),
		    "present page read wrong data");
	/* Mapped now: no more events. */
	TEST_ASSERT_EQ(READ_ONCE(mem[3 * PAGE / 8]), (3 * PAGE) ^ 0x99);
	TEST_ASSERT(uffd_events(&h) == 2 &&
		    h.addr[0] == (uintptr_t)&mem[3 * PAGE / 8] &&
		    h.addr[1] == (uintptr_t)&mem[5 * PAGE / 8],
		    "%d MINOR events", h.events);
	TEST_ASSERT_EQ(missing_mask(fd, 8), 0);
	uffd_handler_stop(&h);

	/* The handler is gone with a fault pending: the reader waits for the bit. */
	uffd = uffd_minor_open(mem, size, &err);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 4 * PAGE, PAGE);
	reader_done = false;
	{
		pthread_t t;

		pthread_create(&t, NULL, reader, &mem[4 * PAGE / 8]);
		usleep(200 * 1000);
		close(uffd);
		usleep(200 * 1000);
		TEST_ASSERT(!READ_ONCE(reader_done),
			    "a reader of a missing page returned without it");
		uf_range(fd, KVM_GMEM_USERFAULT_CLEAR, 4 * PAGE, PAGE);
		pthread_join(t, NULL);
		TEST_ASSERT_EQ(reader_value, (4 * PAGE) ^ 0x99);
	}
	for (i = 0; i < 8; i++)
		TEST_ASSERT_EQ(fill[i * PAGE / 8], (i * PAGE) ^ 0x99);

	munmap(mem, size);
	munmap(fill, size);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("userfaultfd MINOR %s\n", bk->name);
}

/*
 * userfaultfd MISSING mode on a mapping of the file, with upstream 7.1's
 * semantics, on hugetlb files too: a page the page cache does not have (or
 * never had written), or whose missing bit is set, raises a MISSING event;
 * UFFDIO_COPY and UFFDIO_ZEROPAGE fill and map it and clear its bit, never
 * overwrite a present page, and leave everything as it was when they fail.
 */
static void test_uffd_missing(const struct backing *bk)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	uint64_t size = bk->page_size ? bk->page_size : 4 * SZ_2M;
	struct kvm_memory_attributes2 priv = {
		.offset = 6 * PAGE, .size = PAGE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	unsigned long pool = bk->page_size ? hugetlb_free(bk->page_size) : 0;
	uint64_t page[PAGE / 8], *fill, *mem, *src, ioctls;
	struct uffdio_zeropage zero;
	struct uffdio_copy copy;
	struct uffd_handler h;
	int fd, uffd, memfd, err;

	if (!backing_usable(bk)) {
		ksft_test_result_skip("userfaultfd MISSING %s: no pool\n",
				      bk->name);
		return;
	}
	fd = shared_file_two_maps(vm, bk, size, &fill, &mem);

	/* 1: present; 2 and 5: written, then missing; 6: private, missing. */
	fill_page(&fill[1 * PAGE / 8], 1 * PAGE, 0x99);
	fill_page(&fill[2 * PAGE / 8], 2 * PAGE, 0x99);
	fill_page(&fill[5 * PAGE / 8], 5 * PAGE, 0x99);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 2 * PAGE, PAGE);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 5 * PAGE, 2 * PAGE);
	TEST_ASSERT(!ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &priv),
		    "conversion of page 6 failed: %s", strerror(errno));

	uffd = uffd_open(mem, size, UFFDIO_REGISTER_MODE_MISSING, &err,
			 &ioctls);
	TEST_ASSERT(!err, "MISSING registration failed: %s", strerror(err));
	TEST_ASSERT(ioctls == (BIT_ULL(_UFFDIO_WAKE) | BIT_ULL(_UFFDIO_COPY) |
			       BIT_ULL(_UFFDIO_ZEROPAGE)),
		    "REGISTER reported ioctls 0x%lx", ioctls);

	/* A present page is not overwritten. */
	fill_page(page, 0, 0x11);
	copy = (struct uffdio_copy){ .dst = (uintptr_t)&mem[1 * PAGE / 8],
				     .src = (uintptr_t)page, .len = PAGE };
	TEST_ASSERT(ioctl(uffd, UFFDIO_COPY, &copy) && errno == EEXIST,
		    "UFFDIO_COPY onto a present page: %s", strerror(errno));
	zero = (struct uffdio_zeropage){
		.range = { (uintptr_t)&mem[1 * PAGE / 8], PAGE },
	};
	TEST_ASSERT(ioctl(uffd, UFFDIO_ZEROPAGE, &zero) && errno == EEXIST,
		    "UFFDIO_ZEROPAGE onto a present page: %s", strerror(errno));
	TEST_ASSERT_EQ(fill[1 * PAGE / 8 + 3], (1 * PAGE + 24) ^ 0x99);

	/*
	 * A source that faults in the very page through another mapping:
	 * the copy under the locks fails, the copy outside them makes the
	 * page present (zero), and the retry finds it so: EEXIST.
	 */
	copy.dst = (uintptr_t)&mem[0];
	copy.src = (uintptr_t)&fill[0];
	TEST_ASSERT(ioctl(uffd, UFFDIO_COPY, &copy) && errno == EEXIST,
		    "UFFDIO_COPY from the page itself: %s", strerror(errno));
	TEST_ASSERT_EQ(fill[1], 0);
	copy.src = (uintptr_t)page;

	/* A private page cannot be mapped: EFAULT, and it stays missing. */
	copy.dst = (uintptr_t)&mem[6 * PAGE / 8];
	TEST_ASSERT(ioctl(uffd, UFFDIO_COPY, &copy) && errno == EFAULT,
		    "UFFDIO_COPY into a private page: %s", strerror(errno));

	/* A source that cannot be read: EFAULT, page 3 is a hole still. */
	copy.dst = (uintptr_t)&mem[3 * PAGE / 8];
	copy.src = 8;
	TEST_ASSERT(ioctl(uffd, UFFDIO_COPY, &copy) && errno == EFAULT,
		    "UFFDIO_COPY from a bad source: %s", strerror(errno));
	TEST_ASSERT_EQ(missing_mask(fd, 8), (1ULL << 2) | (3ULL << 5));

	/*
	 * A source not faulted in yet (a file mapping): the copy under the
	 * locks fails and is done again outside them.
	 */
	memfd = memfd_create("src", 0);
	TEST_ASSERT(memfd >= 0, "memfd_create failed");
	fill_page(page, 4 * PAGE, 0x42);
	TEST_ASSERT_EQ(pwrite(memfd, page, PAGE, 0), PAGE);
	src = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, memfd, 0);
	TEST_ASSERT(src != MAP_FAILED, "mmap of the memfd failed");
	copy = (struct uffdio_copy){ .dst = (uintptr_t)&mem[4 * PAGE / 8],
				     .src = (uintptr_t)src, .len = PAGE };
	TEST_ASSERT(!ioctl(uffd, UFFDIO_COPY, &copy),
		    "UFFDIO_COPY from a file mapping: %s", strerror(errno));
	TEST_ASSERT_EQ(copy.copy, PAGE);
	TEST_ASSERT_EQ(mem[4 * PAGE / 8 + 7], (4 * PAGE + 56) ^ 0x42);
	munmap(src, PAGE);
	close(memfd);

	/* ZEROPAGE fills a missing page with zeroes and makes it present. */
	zero.range.start = (uintptr_t)&mem[5 * PAGE / 8];
	TEST_ASSERT(!ioctl(uffd, UFFDIO_ZEROPAGE, &zero),
		    "UFFDIO_ZEROPAGE: %s", strerror(errno));
	TEST_ASSERT_EQ(fill[5 * PAGE / 8 + 1], 0);
	TEST_ASSERT_EQ(missing_mask(fd, 8), (1ULL << 2) | (1ULL << 6));

	/*
	 * Faults: page 2 (missing, written before), page 3 (a hole after
	 * the failed copy) and page 7 (never touched) raise MISSING events
	 * and get the handler's data; page 1 (present) raises none.
	 */
	uffd_handler_start(&h, uffd, mem, 0x42);
	TEST_ASSERT_EQ(READ_ONCE(mem[2 * PAGE / 8 + 1]), (2 * PAGE + 8) ^ 0x42);
	TEST_ASSERT_EQ(READ_ONCE(mem[3 * PAGE / 8 + 1]), (3 * PAGE + 8) ^ 0x42);
	TEST_ASSERT_EQ(READ_ONCE(mem[7 * PAGE / 8 + 1]), (7 * PAGE + 8) ^ 0x42);
	TEST_ASSERT_EQ(READ_ONCE(mem[1 * PAGE / 8 + 1]), (1 * PAGE + 8) ^ 0x99);
	TEST_ASSERT(uffd_events(&h) == 3 && h.missing_events == 3 &&
		    h.addr[0] == (uintptr_t)&mem[2 * PAGE / 8] &&
		    h.addr[1] == (uintptr_t)&mem[3 * PAGE / 8] &&
		    h.addr[2] == (uintptr_t)&mem[7 * PAGE / 8],
		    "%d events, %d MISSING", h.events, h.missing_events);
	uffd_handler_stop(&h);
	TEST_ASSERT_EQ(missing_mask(fd, 8), 1ULL << 6);
	TEST_ASSERT_EQ(fill[3 * PAGE / 8 + 9], (3 * PAGE + 72) ^ 0x42);

	munmap(mem, size);
	munmap(fill, size);
	close(fd);
	kvm_vm_free(vm);
	if (bk->page_size)
		TEST_ASSERT_EQ(hugetlb_free(bk->page_size), pool);
	ksft_test_result_pass("userfaultfd MISSING %s\n", bk->name);
}

/* Send @fd and @word over the unix socket @sock. */
static void send_fd(int sock, int fd, uint64_t word)
{
	char buf[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = { &word, sizeof(word) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = buf, .msg_controllen = sizeof(buf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	TEST_ASSERT(sendmsg(sock, &msg, 0) == sizeof(word), "sendmsg failed");
}

static int recv_fd(int sock, uint64_t *word)
{
	char buf[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = { word, sizeof(*word) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = buf, .msg_controllen = sizeof(buf),
	};
	struct cmsghdr *cmsg;
	int fd;

	TEST_ASSERT(recvmsg(sock, &msg, 0) == sizeof(*word), "recvmsg failed");
	cmsg = CMSG_FIRSTHDR(&msg);
	TEST_ASSERT(cmsg && cmsg->cmsg_type == SCM_RIGHTS, "no fd received");
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

#define REMOTE_SEED	0x3e3e3eULL

/*
 * The handler process: answers the faults of the userfaultfd it receives
 * on @sock until told to stop (a byte on @ctl, acknowledged).
 */
static void __noreturn remote_handler(int sock, int ctl)
{
	struct pollfd pfd[2] = { { .events = POLLIN },
				 { .fd = ctl, .events = POLLIN } };
	struct uffd_msg msg;
	uint64_t base;
	char c;

	pfd[0].fd = recv_fd(sock, &base);
	for (;;) {
		TEST_ASSERT(poll(pfd, 2, -1) > 0, "poll failed");
		if (pfd[1].revents) {
			if (read(ctl, &c, 1) != 1)
				_exit(0);
			pfd[0].events = 0;
			TEST_ASSERT_EQ(write(ctl, &c, 1), 1);
		}
		if ((pfd[0].revents & POLLIN) &&
		    read(pfd[0].fd, &msg, sizeof(msg)) == sizeof(msg))
			uffd_answer(pfd[0].fd, &msg, base, REMOTE_SEED);
	}
}

/*
 * The faulting process: maps the file, registers the mapping, hands the
 * userfaultfd to the handler over @sock, then reads the word at each
 * offset @cmd sends and sends back what it read.
 */
static void __noreturn remote_reader(int fd, uint64_t size, int sock,
				     int cmd)
{
	uint64_t *mem, off, val;
	int uffd, err;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	uffd = uffd_open(mem, size, UFFDIO_REGISTER_MODE_MISSING |
			 UFFDIO_REGISTER_MODE_MINOR, &err, NULL);
	TEST_ASSERT(!err, "registration failed: %s", strerror(err));
	send_fd(sock, uffd, (uintptr_t)mem);
	close(uffd);
	while (read(cmd, &off, sizeof(off)) == sizeof(off)) {
		val = READ_ONCE(mem[off / 8]);
		TEST_ASSERT_EQ(write(cmd, &val, sizeof(val)), sizeof(val));
	}
	_exit(0);
}

/* The reader's answer for @off, or false if none came in @ms. */
static bool remote_read(int cmd, uint64_t off, int ms, uint64_t *val,
			bool send)
{
	struct pollfd pfd = { .fd = cmd, .events = POLLIN };

	if (send)
		TEST_ASSERT_EQ(write(cmd, &off, sizeof(off)), sizeof(off));
	if (poll(&pfd, 1, ms) <= 0)
		return false;
	TEST_ASSERT_EQ(read(cmd, val, sizeof(*val)), sizeof(*val));
	return true;
}

/* Wait (up to 10 s) for @pid to end; return its status. */
static int reap(pid_t pid)
{
	int status, i;

	for (i = 0; i < 1000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(10 * 1000);
	}
	TEST_FAIL("process %d did not end", pid);
	return 0;
}

/*
 * The userfaultfd handled by another process, as a migration helper does:
 * the faulting process passes it over a unix socket, the handler copies
 * pages in.  Then the handler dies with a fault pending: the faulting
 * thread falls back to waiting for the missing bit (KVM_GMEM_RESOLVE wakes
 * it, a uffd wake-up would not), a process killed while waiting ends, and
 * once everything is closed the hugetlb pool is exact.
 */
static void test_uffd_remote(const struct backing *bk)
{
	uint64_t size = bk->page_size ? bk->page_size : 4 * SZ_2M;
	unsigned long pool = bk->page_size ? hugetlb_free(bk->page_size) : 0;
	uint64_t offs[] = { 0, 5 * PAGE, size - PAGE };
	int sock[2], ctl[2], cmd[2], fd, status, i;
	uint64_t page[PAGE / 8], val;
	struct kvm_vm *vm;
	pid_t handler, rd;
	char c = 's';

	if (!backing_usable(bk)) {
		ksft_test_result_skip("userfaultfd in another process %s: no pool\n",
				      bk->name);
		return;
	}
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED | bk->flags);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 0, size);
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sock) &&
		    !socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) &&
		    !socketpair(AF_UNIX, SOCK_STREAM, 0, cmd),
		    "socketpair failed");

	/* The children die with the test, whatever ends it. */
	handler = fork();
	TEST_ASSERT(handler >= 0, "fork failed");
	if (!handler) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		remote_handler(sock[1], ctl[1]);
	}
	rd = fork();
	TEST_ASSERT(rd >= 0, "fork failed");
	if (!rd) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		remote_reader(fd, size, sock[0], cmd[1]);
	}
	close(sock[0]);
	close(sock[1]);
	close(ctl[1]);
	close(cmd[1]);

	/* Faults in one process, answered by the other. */
	for (i = 0; i < ARRAY_SIZE(offs); i++) {
		TEST_ASSERT(remote_read(cmd[0], offs[i] + 8, 10000, &val, true),
			    "no answer for 0x%lx", offs[i]);
		TEST_ASSERT(val == ((offs[i] + 8) ^ REMOTE_SEED),
			    "read 0x%lx at 0x%lx", val, offs[i] + 8);
	}
	get_bitmap(fd, 0, 8 * PAGE, (uint8_t *)page);
	TEST_ASSERT_EQ(((uint8_t *)page)[0], 0xff & ~(1 | 1 << 5));

	/* The handler stops answering: the next fault stays pending. */
	TEST_ASSERT_EQ(write(ctl[0], &c, 1), 1);
	TEST_ASSERT_EQ(read(ctl[0], &c, 1), 1);
	TEST_ASSERT(!remote_read(cmd[0], 9 * PAGE, 300, &val, true),
		    "a fault returned without its handler");
	/* It dies: the fault now waits for the missing bit. */
	kill(handler, SIGKILL);
	status = reap(handler);
	TEST_ASSERT(WIFSIGNALED(status), "handler status 0x%x", status);
	TEST_ASSERT(!remote_read(cmd[0], 0, 300, &val, false),
		    "a fault returned after its handler died");
	TEST_ASSERT_EQ(missing_mask(fd, 10) >> 9, 1);
	fill_page(page, 9 * PAGE, 0x77);
	TEST_ASSERT(!resolve(fd, 9 * PAGE, PAGE, page, NULL), "resolve failed");
	TEST_ASSERT(remote_read(cmd[0], 0, 10000, &val, false),
		    "the fault did not end once the page was resolved");
	TEST_ASSERT_EQ(val, (9 * PAGE) ^ 0x77);

	/* A process killed while it waits for a page ends. */
	TEST_ASSERT(!remote_read(cmd[0], 10 * PAGE, 300, &val, true),
		    "a read of a missing page returned");
	kill(rd, SIGKILL);
	status = reap(rd);
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "reader status 0x%x", status);
	TEST_ASSERT_EQ(missing_mask(fd, 11) >> 9, 2);

	close(ctl[0]);
	close(cmd[0]);
	close(fd);
	kvm_vm_free(vm);
	if (bk->page_size)
		TEST_ASSERT_EQ(hugetlb_free(bk->page_size), pool);
	ksft_test_result_pass("userfaultfd in another process %s\n", bk->name);
}

/*
 * KVM_PRE_FAULT_MEMORY can neither exit nor wait for a page: it maps up to
 * the first missing page and stops there (EFAULT if that is the first
 * page), and maps the rest once the page is resolved.
 */
static void test_pre_fault(void)
{
	struct kvm_pre_fault_memory range = {
		.gpa = GMEM_GPA, .size = 4 * PAGE,
	};
	uint64_t page[PAGE / 8];
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	void *mem;
	int fd;

	if (!kvm_has_cap(KVM_CAP_PRE_FAULT_MEMORY)) {
		ksft_test_result_skip("KVM_PRE_FAULT_MEMORY: not supported\n");
		return;
	}
	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	fd = vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, SZ_2M, mem, fd, 0);
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 2 * PAGE, PAGE);

	TEST_ASSERT(!__vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range),
		    "KVM_PRE_FAULT_MEMORY failed: %s", strerror(errno));
	TEST_ASSERT(range.gpa == GMEM_GPA + 2 * PAGE && range.size == 2 * PAGE,
		    "stopped at 0x%llx, 0x%llx left", range.gpa, range.size);
	TEST_ASSERT(__vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range) == -1 &&
		    errno == EFAULT, "pre-fault of a missing page: %s",
		    strerror(errno));
	TEST_ASSERT(range.gpa == GMEM_GPA + 2 * PAGE && range.size == 2 * PAGE,
		    "a failed pre-fault moved to 0x%llx", range.gpa);
	TEST_ASSERT_EQ(missing_mask(fd, 4), 1ULL << 2);

	fill_page(page, 2 * PAGE, 0x5);
	TEST_ASSERT(!resolve(fd, 2 * PAGE, PAGE, page, NULL), "resolve failed");
	TEST_ASSERT(!__vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range) &&
		    !range.size, "pre-fault after resolve: %s, 0x%llx left",
		    strerror(errno), range.size);

	kvm_vm_free(vm);
	munmap(mem, SZ_2M);
	close(fd);
	ksft_test_result_pass("KVM_PRE_FAULT_MEMORY stops at missing pages\n");
}

/*
 * KVM's own access to a missing page (kvmclock) goes through the
 * memslot's mapping, registered with userfaultfd: the handler gets the
 * event and continues the page (MINOR), or copies it in (MISSING: the page
 * was never allocated).
 */
static void test_uffd_kvm_internal(bool minor)
{
	const char *name = minor ? "MINOR" : "MISSING";
	struct uffd_handler h;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	int fd, uffd, err;
	uint64_t *mem;

	vm = vm_create_with_one_vcpu(&vcpu, guest_kvmclock);
	fd = vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, SZ_2M, mem, fd, 0);
	virt_map(vm, GMEM_GPA, GMEM_GPA, SZ_2M / PAGE);

	if (minor) {
		/* Allocated, then missing: a MINOR fault, not a hole. */
		mem[0] = 0;
		madvise(mem, SZ_2M, MADV_DONTNEED);
	}
	uffd = uffd_open(mem, SZ_2M, minor ? UFFDIO_REGISTER_MODE_MINOR :
					     UFFDIO_REGISTER_MODE_MISSING,
			 &err, NULL);
	TEST_ASSERT(!err, "%s registration failed: %s", name, strerror(err));
	uf_range(fd, KVM_GMEM_USERFAULT_SET, 0, PAGE);
	uffd_handler_start(&h, uffd, mem, 0);

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	TEST_ASSERT(uc.args[1] && !(uc.args[1] & 1),
		    "kvmclock version %lu", uc.args[1]);
	TEST_ASSERT(uffd_events(&h) >= 1 && h.addr[0] == (uintptr_t)mem,
		    "%d %s events, first at 0x%lx", h.events, name, h.addr[0]);
	TEST_ASSERT_EQ(__atomic_load_n(&h.missing_events, __ATOMIC_RELAXED) > 0,
		       !minor);
	TEST_ASSERT_EQ(missing_mask(fd, 1), 0);
	uffd_handler_stop(&h);

	kvm_vm_free(vm);
	munmap(mem, SZ_2M);
	close(fd);
	ksft_test_result_pass("KVM's own accesses through userfaultfd %s\n",
			      name);
}

/*
 * The race: every page always holds its pattern (offset ^ RACE_SEED):
 * setting a page missing keeps its contents, resolving writes the pattern
 * again and conversions keep contents, so any read of anything else is a
 * lost or torn update.
 */
#define RACE_SIZE	(4UL << 20)
#define RACE_SEED	0x5eed5eed5eedULL
#define RACE_OPS	2000

static __thread sigjmp_buf race_jmp;

static void race_sigbus(int sig)
{
	siglongjmp(race_jmp, 1);
}

struct race {
	int fd;
	uint64_t *mem;
	unsigned int seed;
	bool stop;
	int finished;		/* setter and converter done */
	int sets, clears, conversions, busy, reads, sigbus, exits, passes;
	int pushed, mismatch;
};

static uint64_t race_page(unsigned int *seed)
{
	return (rand_r(seed) % (RACE_SIZE / PAGE)) * PAGE;
}

static void *race_setter(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 1;
	struct kvm_gmem_range v[4];
	int i, j;

	for (i = 0; i < RACE_OPS; i++) {
		uint32_t op = rand_r(&seed) % 3 ? KVM_GMEM_USERFAULT_SET :
						  KVM_GMEM_USERFAULT_CLEAR;
		uint64_t done;

		for (j = 0; j < ARRAY_SIZE(v); j++)
			v[j] = (struct kvm_gmem_range){ race_page(&seed),
						(1 + rand_r(&seed) % 4) * PAGE };
		for (j = 0; j < ARRAY_SIZE(v); j++)
			if (v[j].offset + v[j].size > RACE_SIZE)
				v[j].size = RACE_SIZE - v[j].offset;
		TEST_ASSERT(!uf(r->fd, op, v, ARRAY_SIZE(v), &done) &&
			    done == ARRAY_SIZE(v), "racing op %u failed: %s",
			    op, strerror(errno));
		if (op == KVM_GMEM_USERFAULT_SET)
			r->sets++;
		else
			r->clears++;
	}
	__atomic_add_fetch(&r->finished, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *race_converter(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 2;
	int i;

	for (i = 0; i < RACE_OPS / 4; i++) {
		struct kvm_memory_attributes2 c = {
			.offset = race_page(&seed) & ~(SZ_2M / 2 - 1),
			.size = SZ_2M / 2,
			.attributes = rand_r(&seed) & 1 ?
				      KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		};

		if (!ioctl(r->fd, KVM_SET_MEMORY_ATTRIBUTES2, &c))
			r->conversions++;
		else if (errno == EAGAIN)
			r->busy++;	/* a host reader holds the page */
		else
			TEST_FAIL("racing conversion failed: %s",
				  strerror(errno));
	}
	__atomic_add_fetch(&r->finished, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* The background push of post-copy: resolve pages, EEXIST if present. */
static void *race_pusher(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 4;
	uint64_t page[PAGE / 8];

	while (!READ_ONCE(r->stop)) {
		uint64_t off = race_page(&seed);

		fill_page(page, off, RACE_SEED);
		if (!resolve(r->fd, off, PAGE, page, NULL))
			r->pushed++;
		else
			TEST_ASSERT(errno == EEXIST, "racing push failed: %s",
				    strerror(errno));
	}
	return NULL;
}

/* Host reads wait for missing pages and see the pattern, or SIGBUS. */
static void *race_reader(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 3;
	struct sigaction sa = { .sa_handler = race_sigbus };

	sigaction(SIGBUS, &sa, NULL);
	while (!READ_ONCE(r->stop)) {
		uint64_t off = race_page(&seed), v;

		if (sigsetjmp(race_jmp, 1)) {
			r->sigbus++;
			continue;
		}
		v = READ_ONCE(r->mem[off / 8]);
		TEST_ASSERT(v == (off ^ RACE_SEED),
			    "host read 0x%lx at 0x%lx", v, off);
		r->reads++;
	}
	return NULL;
}

static void guest_race(void)
{
	for (;;) {
		uint64_t off;

		for (off = 0; off < RACE_SIZE; off += PAGE)
			GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)(GMEM_GPA + off)),
					off ^ RACE_SEED);
		GUEST_SYNC(0);
	}
}

/*
 * Run guest passes, resolving what the vCPU exits on, until the setter and
 * the converter are done and a pass has completed after that.
 */
static void race_vcpu(struct race *r, struct kvm_vcpu *vcpu)
{
	static uint64_t page[PAGE / 8];
	struct kvm_run *run = vcpu->run;
	bool last = false;
	struct ucall uc;

	for (;;) {
		int ret = _vcpu_run(vcpu);
		uint64_t off;

		if (ret) {
			TEST_ASSERT(errno == EFAULT &&
				    run->exit_reason == KVM_EXIT_MEMORY_FAULT,
				    "KVM_RUN: errno %d exit %u", errno,
				    run->exit_reason);
			/*
			 * A conversion between the fault's private/shared
			 * lookup and its check: run again (as in
			 * guest_memfd_conversion_test's race).
			 */
			if (!(run->memory_fault.flags &
			      KVM_MEMORY_EXIT_FLAG_USERFAULT)) {
				r->mismatch++;
				continue;
			}
			off = run->memory_fault.gpa - GMEM_GPA;
			fill_page(page, off, RACE_SEED);
			/* The clearer may have been first: EEXIST is fine. */
			if (resolve(r->fd, off, PAGE, page, NULL))
				TEST_ASSERT(errno == EEXIST,
					    "racing resolve failed: %s",
					    strerror(errno));
			r->exits++;
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		if (get_ucall(vcpu, &uc) == UCALL_ABORT)
			REPORT_GUEST_ASSERT(uc);
		r->passes++;
		if (last)
			break;
		last = __atomic_load_n(&r->finished, __ATOMIC_SEQ_CST) == 2;
	}
}

static void test_race(void)
{
	struct kvm_memory_attributes2 all = { .size = RACE_SIZE };
	pthread_t setter, converter, reader, pusher;
	struct race r = { .seed = time(NULL) };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t off;
	int i;

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_race);
	r.fd = vm_create_guest_memfd(vm, RACE_SIZE, GUEST_MEMFD_FLAG_MMAP |
				     GUEST_MEMFD_FLAG_INIT_SHARED);
	r.mem = mmap(NULL, RACE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r.fd, 0);
	TEST_ASSERT(r.mem != MAP_FAILED, "mmap failed");
	for (off = 0; off < RACE_SIZE; off += PAGE)
		fill_page(&r.mem[off / 8], off, RACE_SEED);
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, RACE_SIZE, r.mem, r.fd, 0);
	virt_map(vm, GMEM_GPA, GMEM_GPA, RACE_SIZE / PAGE);
	ksft_print_msg("race seed %u\n", r.seed);

	pthread_create(&setter, NULL, race_setter, &r);
	pthread_create(&converter, NULL, race_converter, &r);
	pthread_create(&reader, NULL, race_reader, &r);
	pthread_create(&pusher, NULL, race_pusher, &r);
	race_vcpu(&r, vcpu);
	pthread_join(setter, NULL);
	pthread_join(converter, NULL);
	/* Whatever is still missing comes back; waiting readers wake up. */
	uf_range(r.fd, KVM_GMEM_USERFAULT_CLEAR, 0, RACE_SIZE);
	WRITE_ONCE(r.stop, true);
	pthread_join(reader, NULL);
	pthread_join(pusher, NULL);
	ksft_print_msg("%d sets, %d clears, %d conversions (%d busy, %d mismatch exits)\n",
		       r.sets, r.clears, r.conversions, r.busy, r.mismatch);
	ksft_print_msg("%d host reads, %d SIGBUS, %d exits, %d pushed, %d guest passes\n",
		       r.reads, r.sigbus, r.exits, r.pushed, r.passes);

	/* Every page intact, seen by the host after a full conversion. */
	{
		static uint8_t bm[RACE_SIZE / PAGE / 8];

		get_bitmap(r.fd, 0, RACE_SIZE, bm);
		for (i = 0; i < sizeof(bm); i++)
			TEST_ASSERT(!bm[i], "pages %d-%d still missing: 0x%x",
				    i * 8, i * 8 + 7, bm[i]);
	}
	TEST_ASSERT(!ioctl(r.fd, KVM_SET_MEMORY_ATTRIBUTES2, &all),
		    "conversion to shared failed");
	for (off = 0; off < RACE_SIZE; off += PAGE)
		for (i = 0; i < PAGE / 8; i += 64)
			TEST_ASSERT(r.mem[off / 8 + i] == ((off + i * 8) ^ RACE_SEED),
				    "page 0x%lx word %d lost its data", off, i);
	TEST_ASSERT(r.sets && r.clears && r.reads && r.exits && r.passes > 1,
		    "the race did not exercise set, clear, reads, exits and the guest");

	kvm_vm_free(vm);
	munmap(r.mem, RACE_SIZE);
	close(r.fd);
	ksft_test_result_pass("race of set, clear, resolve, reads and conversions\n");
}

int main(int argc, char *argv[])
{
	int i;

	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD_USERFAULT));

	ksft_print_header();
	ksft_set_plan(10 + 5 * ARRAY_SIZE(backings));
	test_caps();
	test_bad_input();
	test_vectors();
	for (i = 0; i < ARRAY_SIZE(backings); i++) {
		test_vcpu_exits(&backings[i], true);
		test_vcpu_exits(&backings[i], false);
	}
	test_host_wait();
	test_kvm_internal(false);
	test_kvm_internal(true);
	test_pre_fault();
	for (i = 0; i < ARRAY_SIZE(backings); i++) {
		test_uffd_minor(&backings[i]);
		test_uffd_missing(&backings[i]);
		test_uffd_remote(&backings[i]);
	}
	test_uffd_kvm_internal(true);
	test_uffd_kvm_internal(false);
	test_race();
	ksft_finished();
}
