// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest_memfd backed by hugetlb pages (GUEST_MEMFD_FLAG_HUGETLB) on a
 * KVM_X86_SW_PROTECTED_VM, with 2M and 1G pools on the kernel command line:
 *  - the flag and the page size field, with every failure case, and the
 *    pools untouched by each failed create;
 *  - the whole file is reserved at creation (HugePages_Rsvd), allocation
 *    and aligned hole punching move pages between reserved and in use,
 *    unaligned holes fail, and close gives everything back;
 *  - a file larger than what the pool has left fails with ENOMEM;
 *  - a memslot must bind the file at an offset aligned to the page size;
 *  - a guest writing and reading back all of a private 1G (or 2M) backed
 *    range is mapped with 1G (2M) entries only (KVM's page-size stats),
 *    again after a hole punch, which the guest sees as zeroes;
 *  - races: a vCPU sweeping the range against hole punches and refills,
 *    where every read finds zero or the guest's own last write;
 *  - a process killed while holding a file and a VM leaves the pool exact;
 * and with host mmap (GUEST_MEMFD_FLAG_MMAP), where every folio holds pages
 * of one state:
 *  - split and merge: a 4K conversion to shared inside a private, fully
 *    mapped huge page turns exactly one 2M range into 4K mappings (and 2M
 *    folios, /proc/meminfo's FileHugePages) while the rest stays 2M, and
 *    converting it back restores the huge folio and the huge mappings;
 *  - data integrity over many split/merge cycles with the guest and the
 *    host both writing, the expected value of every page checked by both;
 *  - a pinned page: conversion to private fails with EAGAIN and its
 *    offset, and a hole punch or close while it is pinned gives the huge
 *    page back to the pool as soon as the pin is gone, also when the
 *    process holding all of it is killed;
 *  - initially shared files: the host fills them, conversion to private
 *    merges them and the guest maps them huge and reads the host's data;
 *  - shared huge pages: a file shared throughout stays in 2M folios that
 *    the host maps with PMDs (smaps) and KVM maps 1G or 2M (its stats); a
 *    missing page takes only its block to page table entries; a 4K
 *    conversion to private splits only its 2M block, converting it back
 *    merges it; a page pinned in a shared block makes a conversion that
 *    must split the block fail with EAGAIN and change nothing;
 *  - the hugetlb cgroup: limits checked at creation, the whole file
 *    charged until it closes, and the charge moved to the parent when the
 *    cgroup is removed under the file;
 *  - races on a 1G-backed file: conversions, host faults, vCPU accesses
 *    and hole punches, with every value read checked.
 * After every test the free and reserved counts of both pools are exactly
 * what they were before it.
 *
 * With -p, memory failure instead (CONFIG_MEMORY_FAILURE, the hwpoison
 * injector in debugfs, root); it takes huge pages out of the pools for
 * good, so it runs last in a boot:
 *  - a page of a whole 2M or 1G hugetlb folio is poisoned: the vCPU's
 *    access to it fails with EHWPOISON and a memory fault exit, the other
 *    pages keep their data (the folio is split, so that only the exact
 *    page is lost, and the piece holding it is mapped with 4K pages); the
 *    host gets SIGBUS on it once it is shared; it is never merged back;
 *    closing the file gives the pool all but the one poisoned huge page,
 *    which hugetlb dissolves;
 *  - the same for pages poisoned after a split, in a 2M piece and in a
 *    single page of a 1G file;
 *  - a 4K guest_memfd page, for comparison, and post-copy over it: a
 *    missing poisoned page resolves to EHWPOISON and becomes present.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define GMEM_GPA	(4ULL << 30)
#define GMEM_SLOT	10
#define SZ_2M		(2UL << 20)
#define SZ_1G		(1024UL << 20)

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

struct hsize {
	const char *name;
	unsigned long size;
	uint64_t flag;
	const char *stat;	/* KVM's count of mappings of this size */
};

static const struct hsize sizes[] = {
	{ "2M", SZ_2M, GUEST_MEMFD_HUGETLB_2MB, "pages_2m" },
	{ "1G", SZ_1G, GUEST_MEMFD_HUGETLB_1GB, "pages_1g" },
};

struct pool {
	unsigned long free, resv;
};

static unsigned long read_ulong(const char *path)
{
	unsigned long v;
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f, "cannot open %s", path);
	TEST_ASSERT_EQ(fscanf(f, "%lu", &v), 1);
	fclose(f);
	return v;
}

static void pool_read(unsigned long size, struct pool *p)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages",
		 size >> 10);
	p->free = read_ulong(path);
	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/resv_hugepages",
		 size >> 10);
	p->resv = read_ulong(path);
}

/* The pool of @size moved by exactly @dfree and @dresv since @before. */
static void pool_expect(unsigned long size, const struct pool *before,
			long dfree, long dresv, const char *what)
{
	struct pool now;

	pool_read(size, &now);
	TEST_ASSERT(now.free == before->free + dfree &&
		    now.resv == before->resv + dresv,
		    "%s: %luK pool free %lu resv %lu, expected %lu and %lu",
		    what, size >> 10, now.free, now.resv,
		    before->free + dfree, before->resv + dresv);
}

/* Pages of @size neither in use nor reserved. */
static unsigned long pool_available(unsigned long size)
{
	struct pool p;

	pool_read(size, &p);
	return p.free - p.resv;
}

static void pools_read(struct pool *p)
{
	pool_read(SZ_2M, &p[0]);
	pool_read(SZ_1G, &p[1]);
}

static void pools_exact(const struct pool *p, const char *what)
{
	pool_expect(SZ_2M, &p[0], 0, 0, what);
	pool_expect(SZ_1G, &p[1], 0, 0, what);
}

static void expect_create_fails(struct kvm_vm *vm, uint64_t size,
				uint64_t flags, int err, const char *what)
{
	int fd = __vm_create_guest_memfd(vm, size, flags);

	TEST_ASSERT(fd < 0 && errno == err, "%s: got %d (errno %d), expected %s",
		    what, fd, errno, strerror(err));
}

static void test_flags(void)
{
	static const unsigned int bad_shifts[] = { 1, 12, 13, 20, 22, 29, 31, 63 };
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	struct pool p[2];
	unsigned int i;

	pools_read(p);
	/*
	 * KVM_CAP_GUEST_MEMFD_FLAGS has the flags that work alone (as
	 * upstream's guest_memfd_test expects); the hugetlb flag needs a page
	 * size, so KVM_CAP_GUEST_MEMFD_HUGETLB reports the sizes.
	 */
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS),
		       GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB),
		       BIT(21) | BIT(30));
	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB),
		       BIT(21) | BIT(30));

	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB, EINVAL,
			    "HUGETLB without a page size");
	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_HUGETLB_2MB, EINVAL,
			    "page size without HUGETLB");
	for (i = 0; i < ARRAY_SIZE(bad_shifts); i++)
		expect_create_fails(vm, SZ_1G, GUEST_MEMFD_FLAG_HUGETLB |
				    ((uint64_t)bad_shifts[i] << GUEST_MEMFD_HUGETLB_SHIFT),
				    EINVAL, "page size without a pool");
	expect_create_fails(vm, 4096, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB, EINVAL, "4K file of 2M pages");
	expect_create_fails(vm, SZ_2M + 4096, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB, EINVAL, "2M+4K file of 2M pages");
	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_1GB, EINVAL, "2M file of 1G pages");
	expect_create_fails(vm, 0, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB, EINVAL, "empty file");
	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB | BIT_ULL(3), EINVAL,
			    "HUGETLB with an unknown flag");
	kvm_vm_free(vm);

	/* The default VM type can have hugetlb-backed guest_memfd RAM too. */
	vm = vm_create_barebones();
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB),
		       BIT(21) | BIT(30));
	close(vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
				    GUEST_MEMFD_HUGETLB_2MB |
				    GUEST_MEMFD_FLAG_MMAP |
				    GUEST_MEMFD_FLAG_INIT_SHARED));
	kvm_vm_free(vm);

	pools_exact(p, "after failed creates");
	ksft_test_result_pass("flags\n");
}

static void punch(int fd, uint64_t offset, uint64_t len, int err)
{
	int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  offset, len);

	if (err)
		TEST_ASSERT(r < 0 && errno == err,
			    "hole [%#lx, +%#lx) must fail with %s", offset,
			    len, strerror(err));
	else
		TEST_ASSERT(!r, "hole [%#lx, +%#lx) failed", offset, len);
}

static void test_reserve(const struct hsize *hs)
{
	unsigned long n = hs->size == SZ_1G ? 2 : 16, hsz = hs->size;
	struct kvm_vm *vm;
	struct pool p[2], b;
	int fd;

	if (pool_available(hsz) < n) {
		ksft_test_result_skip("reserve %s: pool too small\n", hs->name);
		return;
	}
	pools_read(p);
	b = p[hsz == SZ_1G];

	vm = ____vm_create(protected_vm_shape);
	fd = vm_create_guest_memfd(vm, n * hsz, GUEST_MEMFD_FLAG_HUGETLB |
				   hs->flag);
	pool_expect(hsz, &b, 0, n, "create reserves the file");

	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096),
		    "fallocate of one page failed");
	pool_expect(hsz, &b, -1, n - 1, "one page allocates one huge page");

	TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, n * hsz),
		    "fallocate of the file failed");
	pool_expect(hsz, &b, -n, 0, "whole file allocated");

	punch(fd, 4096, hsz, EINVAL);
	punch(fd, 0, 4096, EINVAL);
	punch(fd, 0, hsz / 2, EINVAL);
	punch(fd, hsz, hsz + 4096, EINVAL);
	pool_expect(hsz, &b, -n, 0, "unaligned holes change nothing");

	punch(fd, hsz, hsz, 0);
	pool_expect(hsz, &b, -(n - 1), 1,
		    "an aligned hole returns its page to the file's reservation");

	close(fd);
	kvm_vm_free(vm);
	pools_exact(p, "after close");
	ksft_test_result_pass("reserve %s\n", hs->name);
}

static void test_short_pool(const struct hsize *hs)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	unsigned long n = pool_available(hs->size) + 1;
	struct pool p[2];

	pools_read(p);
	expect_create_fails(vm, n * hs->size, GUEST_MEMFD_FLAG_HUGETLB |
			    hs->flag, ENOMEM, "file larger than the pool");
	kvm_vm_free(vm);
	pools_exact(p, "after ENOMEM");
	ksft_test_result_pass("short pool %s\n", hs->name);
}

static void test_bind(void)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	struct pool p[2];
	void *hva;
	int fd, r;

	if (pool_available(SZ_2M) < 2) {
		kvm_vm_free(vm);
		ksft_test_result_skip("bind: pool too small\n");
		return;
	}
	pools_read(p);
	fd = vm_create_guest_memfd(vm, 2 * SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
				   GUEST_MEMFD_HUGETLB_2MB);
	hva = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(hva != MAP_FAILED, "mmap failed");

	r = __vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
					 GMEM_GPA, SZ_2M, hva, fd, 4096);
	TEST_ASSERT(r < 0 && errno == EINVAL,
		    "binding at an offset not aligned to 2M must fail");
	r = __vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
					 GMEM_GPA, SZ_2M, hva, fd, SZ_2M);
	TEST_ASSERT(!r, "binding at an aligned offset failed");

	kvm_vm_free(vm);
	close(fd);
	munmap(hva, SZ_2M);
	pools_exact(p, "after bind");
	ksft_test_result_pass("bind\n");
}

/*
 * Guest: write a pattern to every 4K page of the range, read it back. With
 * guest_check, first check that each page holds the pattern of guest_prev
 * (zero if guest_prev is 0), except that the page at guest_extra_gpa holds
 * guest_extra_val (a value the host wrote).
 */
static uint64_t guest_size, guest_seed, guest_prev;
static uint64_t guest_extra_gpa, guest_extra_val;
static uint8_t guest_check;

static void guest_code(void)
{
	for (;;) {
		uint64_t gpa;

		for (gpa = GMEM_GPA; gpa < GMEM_GPA + guest_size; gpa += 4096) {
			uint64_t *p = (uint64_t *)gpa;

			if (guest_check)
				GUEST_ASSERT_EQ(READ_ONCE(*p),
						gpa == guest_extra_gpa ?
						guest_extra_val :
						guest_prev ? gpa ^ guest_prev : 0);
			WRITE_ONCE(*p, gpa ^ guest_seed);
		}
		for (gpa = GMEM_GPA; gpa < GMEM_GPA + guest_size; gpa += 4096)
			GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)gpa),
					gpa ^ guest_seed);
		GUEST_SYNC(0);
	}
}

/* Run @vcpu until its next GUEST_SYNC; a guest assertion fails the test. */
static void run_to_sync(struct kvm_vcpu *vcpu)
{
	vcpu_run(vcpu);
	gmem_expect_sync(vcpu);
}

/* One guest pass writing @seed's pattern, first checking @prev's if @check. */
static void run_guest_check(struct kvm_vcpu *vcpu, uint64_t seed, bool check,
			    uint64_t prev)
{
	guest_seed = seed;
	guest_check = check;
	guest_prev = prev;
	sync_global_to_guest(vcpu->vm, guest_seed);
	sync_global_to_guest(vcpu->vm, guest_check);
	sync_global_to_guest(vcpu->vm, guest_prev);
	run_to_sync(vcpu);
}

static void run_guest(struct kvm_vcpu *vcpu, uint64_t seed, bool zero)
{
	run_guest_check(vcpu, seed, zero, 0);
}

/*
 * A 1 GiB memslot at a 1G-aligned gpa whose hva is 1G-aligned too (KVM
 * allows no huge mapping where gfn and hva disagree), bound to a hugetlb
 * guest_memfd of @hs pages, all private.
 */
static void test_map_level(const struct hsize *hs)
{
	unsigned long n = SZ_1G / hs->size;
	uint64_t before, mapped;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct pool p[2];
	uint8_t *area, *hva;
	int fd;

	if (pool_available(hs->size) < n) {
		ksft_test_result_skip("map level %s: pool too small\n", hs->name);
		return;
	}
	pools_read(p);

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	fd = vm_create_guest_memfd(vm, SZ_1G, GUEST_MEMFD_FLAG_HUGETLB |
				   hs->flag);
	area = mmap(NULL, 2 * SZ_1G, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(area != MAP_FAILED, "mmap failed");
	hva = (uint8_t *)(((uintptr_t)area + SZ_1G - 1) & ~(SZ_1G - 1));
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, SZ_1G, hva, fd, 0);
	vm_mem_set_private(vm, GMEM_GPA, SZ_1G);
	virt_map_level(vm, GMEM_GPA, GMEM_GPA, SZ_1G, PG_LEVEL_1G);
	guest_size = SZ_1G;
	sync_global_to_guest(vm, guest_size);

	before = vm_get_stat(vm, hs->stat);
	run_guest(vcpu, 0x5a5a5a5a5a5a5a5aULL, false);
	mapped = vm_get_stat(vm, hs->stat) - before;
	TEST_ASSERT(mapped == n, "%s: %lu of %lu huge mappings after the guest touched all",
		    hs->name, mapped, n);
	pool_expect(hs->size, &p[hs->size == SZ_1G], -n, 0, "file in use");

	/* A hole: the pages go back, and the guest finds zeroes. */
	punch(fd, 0, SZ_1G, 0);
	pool_expect(hs->size, &p[hs->size == SZ_1G], 0, n, "hole punched");
	TEST_ASSERT_EQ(vm_get_stat(vm, hs->stat), before);
	run_guest(vcpu, 0xa5a5a5a5a5a5a5a5ULL, true);
	mapped = vm_get_stat(vm, hs->stat) - before;
	TEST_ASSERT(mapped == n, "%s: %lu of %lu huge mappings after the hole",
		    hs->name, mapped, n);

	kvm_vm_free(vm);
	close(fd);
	munmap(area, 2 * SZ_1G);
	pools_exact(p, "after the guest");
	ksft_test_result_pass("map level %s\n", hs->name);
}

/*
 * Race: a vCPU sweeps the range, each page read then written with a
 * pattern of (gpa, pass), while another thread punches aligned holes and
 * refills pages with fallocate(). A page read must hold zero (punched
 * since) or what the guest wrote there in the previous pass: never another
 * page's or an older pass's data.
 */
#define RACE_SIZE	(64UL << 20)

static uint64_t race_pattern(uint64_t gpa, uint64_t pass)
{
	return gpa ^ (pass * 0x9e3779b97f4a7c15ULL) ^ 1;
}

static void guest_race_code(void)
{
	uint64_t pass, gpa, v;

	for (pass = 1;; pass++) {
		for (gpa = GMEM_GPA; gpa < GMEM_GPA + RACE_SIZE; gpa += 4096) {
			v = READ_ONCE(*(uint64_t *)gpa);
			__GUEST_ASSERT(!v || v == race_pattern(gpa, pass - 1),
				       "gpa %lx pass %lu: read %lx", gpa, pass, v);
			WRITE_ONCE(*(uint64_t *)gpa, race_pattern(gpa, pass));
		}
		GUEST_SYNC(pass);
	}
}

struct race {
	struct kvm_vcpu *vcpu;
	const struct hsize *hs;
	int fd;
	bool stop;
	unsigned long passes;
	unsigned long punches;
};

static void *race_vcpu(void *arg)
{
	struct race *r = arg;

	while (!READ_ONCE(r->stop)) {
		run_to_sync(r->vcpu);
		WRITE_ONCE(r->passes, r->passes + 1);
	}
	return NULL;
}

static void test_race(const struct hsize *hs)
{
	unsigned long n = RACE_SIZE / hs->size;
	unsigned int seed = 1;
	struct race r = { .hs = hs };
	pthread_t thread;
	struct kvm_vm *vm;
	struct pool p[2];
	uint64_t t0;
	void *area;

	if (pool_available(hs->size) < n) {
		ksft_test_result_skip("race %s: pool too small\n", hs->name);
		return;
	}
	pools_read(p);
	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &r.vcpu,
					   guest_race_code);
	r.fd = vm_create_guest_memfd(vm, RACE_SIZE, GUEST_MEMFD_FLAG_HUGETLB |
				     hs->flag);
	area = mmap(NULL, RACE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(area != MAP_FAILED, "mmap failed");
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, RACE_SIZE, area, r.fd, 0);
	vm_mem_set_private(vm, GMEM_GPA, RACE_SIZE);
	virt_map_level(vm, GMEM_GPA, GMEM_GPA, RACE_SIZE, PG_LEVEL_2M);

	pthread_create(&thread, NULL, race_vcpu, &r);
	/* Bounded by passes and punches, not by time. */
	t0 = READ_ONCE(r.passes);
	while (READ_ONCE(r.passes) < t0 + 20 || r.punches < 40) {
		uint64_t off = (rand_r(&seed) % n) * hs->size;

		if (rand_r(&seed) % 4)
			punch(r.fd, off, hs->size, 0);
		else
			TEST_ASSERT(!fallocate(r.fd, FALLOC_FL_KEEP_SIZE, off,
					       hs->size), "fallocate failed");
		r.punches++;
		usleep(rand_r(&seed) % 20000);
	}
	WRITE_ONCE(r.stop, true);
	pthread_join(thread, NULL);

	kvm_vm_free(vm);
	close(r.fd);
	munmap(area, RACE_SIZE);
	pools_exact(p, "after the race");
	ksft_test_result_pass("race %s: %lu passes, %lu holes and refills\n",
			      hs->name, r.passes, r.punches);
}

/* A process killed with a VM and an allocated file leaves nothing behind. */
static void test_killed(void)
{
	struct pool p[2], now[2];
	int status, i;
	pid_t pid;

	if (pool_available(SZ_1G) < 1 || pool_available(SZ_2M) < 4) {
		ksft_test_result_skip("killed: pool too small\n");
		return;
	}
	pools_read(p);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork failed");
	if (!pid) {
		struct kvm_vm *vm = ____vm_create(protected_vm_shape);
		int a = vm_create_guest_memfd(vm, SZ_1G, GUEST_MEMFD_FLAG_HUGETLB |
					      GUEST_MEMFD_HUGETLB_1GB);
		int b = vm_create_guest_memfd(vm, 4 * SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
					      GUEST_MEMFD_HUGETLB_2MB);

		fallocate(a, FALLOC_FL_KEEP_SIZE, 0, SZ_1G);
		fallocate(b, FALLOC_FL_KEEP_SIZE, 0, SZ_2M);
		raise(SIGKILL);
		_exit(1);
	}
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "the child was not killed");

	/* Files close on exit; give deferred work a moment, not a deadline. */
	for (i = 0; i < 50; i++) {
		pools_read(now);
		if (!memcmp(now, p, sizeof(p)))
			break;
		usleep(100000);
	}
	pools_exact(p, "after the killed process");
	ksft_test_result_pass("killed process\n");
}

/* ---- Host mmap: split on shared pages, merge back ---- */

static __thread sigjmp_buf sigbus_jmp;

static void sigbus_handler(int sig)
{
	siglongjmp(sigbus_jmp, 1);
}

/* Read the u64 at @p; false if that raised SIGBUS (a private page). */
static bool host_read(uint64_t *p, uint64_t *val)
{
	if (sigsetjmp(sigbus_jmp, 1))
		return false;
	*val = READ_ONCE(*p);
	return true;
}

static int __convert(int fd, bool to_private, uint64_t offset, uint64_t size,
		     uint64_t *error_offset)
{
	struct kvm_memory_attributes2 c = {
		.offset = offset,
		.size = size,
		.attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &c);

	if (error_offset)
		*error_offset = c.error_offset;
	return r;
}

static void convert(int fd, uint64_t offset, uint64_t size, bool to_private)
{
	TEST_ASSERT(!__convert(fd, to_private, offset, size, NULL),
		    "conversion to %s of [%#lx, +%#lx) failed: %s",
		    to_private ? "private" : "shared", offset, size,
		    strerror(errno));
}

/* A /proc/meminfo field, in kB. */
static unsigned long meminfo_kb(const char *field)
{
	char line[128];
	unsigned long v = 0;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/meminfo", "r");

	TEST_ASSERT(f, "cannot open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			int r = sscanf(line + n + 1, "%lu", &v);

			TEST_ASSERT_EQ(r, 1);
			break;
		}
	fclose(f);
	return v;
}

/*
 * A VM with one vCPU and a memslot on an mmap'ed guest_memfd, hugetlb
 * backed unless @hs is NULL.
 */
struct mvm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint64_t size;
	int fd;
	void *resv;
	uint8_t *mem;
};

/*
 * The file is mapped at a 1G-aligned address, as the gpa is: KVM allows no
 * huge mapping where gfn and hva disagree.
 */
static void mvm_create(struct mvm *m, const struct hsize *hs, uint64_t size,
		       uint64_t flags, void *guest)
{
	uintptr_t aligned;

	m->size = size;
	m->vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &m->vcpu,
					      guest);
	m->fd = vm_create_guest_memfd(m->vm, size,
				      (hs ? GUEST_MEMFD_FLAG_HUGETLB | hs->flag : 0) |
				      GUEST_MEMFD_FLAG_MMAP | flags);
	m->resv = mmap(NULL, size + SZ_1G, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(m->resv != MAP_FAILED, "mmap failed");
	aligned = ((uintptr_t)m->resv + SZ_1G - 1) & ~(SZ_1G - 1);
	m->mem = mmap((void *)aligned, size, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_FIXED, m->fd, 0);
	TEST_ASSERT(m->mem == (void *)aligned, "mmap of the guest_memfd failed");
	vm_set_user_memory_region2(m->vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, size, m->mem, m->fd, 0);
	virt_map_level(m->vm, GMEM_GPA, GMEM_GPA, size,
		       size >= SZ_1G ? PG_LEVEL_1G : PG_LEVEL_2M);
	guest_size = size;
	sync_global_to_guest(m->vm, guest_size);
}

/*
 * The pools read into @p, then mvm_create() with a @size file of @hs
 * pages running guest_code; false, and test @name skipped, if the pool
 * is too small.
 */
static bool mvm_create_pooled(struct mvm *m, const struct hsize *hs,
			      uint64_t size, uint64_t flags, struct pool *p,
			      const char *name)
{
	if (pool_available(hs->size) < size / hs->size) {
		ksft_test_result_skip("%s %s: pool too small\n", name,
				      hs->name);
		return false;
	}
	pools_read(p);
	mvm_create(m, hs, size, flags, guest_code);
	return true;
}

static void mvm_destroy(struct mvm *m)
{
	kvm_vm_free(m->vm);
	munmap(m->resv, m->size + SZ_1G);
	close(m->fd);
}

struct stats {
	uint64_t pages_4k, pages_2m, pages_1g, file_huge_kb;
};

static void stats_read(struct kvm_vm *vm, struct stats *st)
{
	st->pages_4k = vm_get_stat(vm, "pages_4k");
	st->pages_2m = vm_get_stat(vm, "pages_2m");
	st->pages_1g = vm_get_stat(vm, "pages_1g");
	st->file_huge_kb = meminfo_kb("FileHugePages");
}

/*
 * A pass over nothing maps the guest's code and stack first; then the
 * guest's passes cover @size, and *@base is read for stats_expect().
 */
static void stats_after_warm_up(struct mvm *m, uint64_t size,
				struct stats *base)
{
	guest_size = 0;
	sync_global_to_guest(m->vm, guest_size);
	run_guest(m->vcpu, 0, false);
	guest_size = size;
	sync_global_to_guest(m->vm, guest_size);
	stats_read(m->vm, base);
}

/* KVM's mappings and the file's 2M folios moved by exactly this much. */
static void stats_expect(struct kvm_vm *vm, const struct stats *base,
			 long d4k, long d2m, long d1g, long dhuge_kb,
			 const char *what)
{
	struct stats now;

	stats_read(vm, &now);
	/*
	 * The guest's own code, stack and globals live in memslot 0 and may
	 * add a 4K mapping or two when a pass first reaches them.
	 */
	TEST_ASSERT(now.pages_4k >= base->pages_4k + d4k &&
		    now.pages_4k <= base->pages_4k + d4k + 2 &&
		    now.pages_2m == base->pages_2m + d2m &&
		    now.pages_1g == base->pages_1g + d1g &&
		    now.file_huge_kb == base->file_huge_kb + dhuge_kb,
		    "%s: 4k/2m/1g mappings %+ld/%+ld/%+ld and FileHugePages %+ld kB, expected %+ld/%+ld/%+ld and %+ld kB",
		    what, (long)(now.pages_4k - base->pages_4k),
		    (long)(now.pages_2m - base->pages_2m),
		    (long)(now.pages_1g - base->pages_1g),
		    (long)(now.file_huge_kb - base->file_huge_kb),
		    d4k, d2m, d1g, dhuge_kb);
}

/*
 * A private 1G range, all of it touched by the guest, then one 4K page
 * converted to shared: exactly that page's 2M block becomes 4K folios and
 * 4K mappings, the rest 2M (for a 1G page: 511 2M folios, FileHugePages).
 * Converting it back merges everything into the huge folio and the guest
 * maps it huge again. Data survives both ways, and the host sees the
 * guest's data in the shared page and the guest the host's.
 */
static void test_split_merge(const struct hsize *hs)
{
	uint64_t off = 5 * SZ_2M + 3 * 4096, v, seed = 0x1111;
	bool gig = hs->size == SZ_1G;
	struct stats base;
	struct pool p[2];
	struct mvm m;

	if (!mvm_create_pooled(&m, hs, SZ_1G, 0, p, "split and merge"))
		return;

	run_guest(m.vcpu, seed, true);
	run_guest_check(m.vcpu, seed, true, seed);
	stats_read(m.vm, &base);
	TEST_ASSERT(gig ? base.pages_1g >= 1 : base.pages_2m >= 512,
		    "%s: the private range is not mapped huge", hs->name);

	TEST_ASSERT(!host_read((uint64_t *)(m.mem + off), &v),
		    "a private page must raise SIGBUS on the host");
	convert(m.fd, off, 4096, false);
	TEST_ASSERT(host_read((uint64_t *)(m.mem + off), &v) &&
		    v == ((GMEM_GPA + off) ^ seed),
		    "shared page after split: read %#lx", v);
	stats_expect(m.vm, &base, 0, gig ? 0 : -1, gig ? -1 : 0,
		     gig ? 511 * 2048 : 0,
		     "split: the huge mapping of the page is zapped");
	pool_expect(hs->size, &p[gig], -(SZ_1G / hs->size), 0,
		    "a split keeps the huge page in use");

	/* The guest reaches the shared page through the host's mapping. */
	run_guest_check(m.vcpu, seed + 1, true, seed);
	stats_expect(m.vm, &base, 512, gig ? 511 : -1, gig ? -1 : 0,
		     gig ? 511 * 2048 : 0, "split: one 2M range at 4K");
	TEST_ASSERT(host_read((uint64_t *)(m.mem + off), &v) &&
		    v == ((GMEM_GPA + off) ^ (seed + 1)),
		    "the host does not see the guest's write: %#lx", v);
	WRITE_ONCE(*(uint64_t *)(m.mem + off), 0x5eed0f4057ULL);

	convert(m.fd, off, 4096, true);
	TEST_ASSERT(!host_read((uint64_t *)(m.mem + off), &v),
		    "a page converted back to private must raise SIGBUS");
	stats_expect(m.vm, &base, 0, gig ? 0 : -1, gig ? -1 : 0, 0,
		     "merge: the merged range is zapped");
	/* The page holds the host's value, the others the guest's. */
	guest_extra_gpa = GMEM_GPA + off;
	guest_extra_val = 0x5eed0f4057ULL;
	sync_global_to_guest(m.vm, guest_extra_gpa);
	sync_global_to_guest(m.vm, guest_extra_val);
	run_guest_check(m.vcpu, seed + 2, true, seed + 1);
	guest_extra_gpa = 0;
	sync_global_to_guest(m.vm, guest_extra_gpa);
	stats_expect(m.vm, &base, 0, 0, 0, 0, "merge: mapped huge again");

	mvm_destroy(&m);
	pools_exact(p, "after split and merge");
	ksft_test_result_pass("split and merge %s\n", hs->name);
}

/*
 * Many split/merge cycles. The guest checks every page against a table in
 * ordinary guest memory and writes a new value; between passes the host
 * converts random pages or 2M blocks to shared, checks them against the
 * table, writes values of its own, and converts most of them back.
 */
#define TABLE_GPA	(8ULL << 30)
#define TABLE_SLOT	11

static uint64_t *guest_table;

static uint64_t cycle_value(uint64_t page, uint64_t pass)
{
	return (page << 20) ^ (pass * 0x9e3779b97f4a7c15ULL) ^ 1;
}

static void guest_cycle_code(void)
{
	uint64_t pass, i, *p;

	for (pass = 1;; pass++) {
		for (i = 0; i < guest_size / 4096; i++) {
			p = (uint64_t *)(GMEM_GPA + i * 4096);
			__GUEST_ASSERT(READ_ONCE(*p) == guest_table[i],
				       "page %lu: read %lx, expected %lx", i,
				       READ_ONCE(*p), guest_table[i]);
			guest_table[i] = cycle_value(i, pass);
			WRITE_ONCE(*p, guest_table[i]);
		}
		GUEST_SYNC(pass);
	}
}

static void test_cycles(const struct hsize *hs, uint64_t size,
			unsigned int cycles)
{
	unsigned int seed = 7, c, i, splits = 0;
	uint64_t *table, tpages, off, len, j, v;
	struct stats base;
	struct pool p[2];
	struct mvm m;

	if (pool_available(hs->size) < size / hs->size) {
		ksft_test_result_skip("cycles %s: pool too small\n", hs->name);
		return;
	}
	pools_read(p);
	mvm_create(&m, hs, size, 0, guest_cycle_code);
	/* The table, 8 bytes per page, in a memslot of ordinary memory. */
	tpages = size / 4096 * 8 / 4096;
	vm_userspace_mem_region_add(m.vm, VM_MEM_SRC_ANONYMOUS, TABLE_GPA,
				    TABLE_SLOT, tpages, 0);
	virt_map(m.vm, TABLE_GPA, TABLE_GPA, tpages);
	table = addr_gpa2hva(m.vm, TABLE_GPA);
	memset(table, 0, tpages * 4096);
	guest_table = (uint64_t *)TABLE_GPA;
	sync_global_to_guest(m.vm, guest_table);

	run_to_sync(m.vcpu);
	stats_read(m.vm, &base);
	for (c = 0; c < cycles; c++) {
		for (i = 0; i < 4; i++) {
			if (rand_r(&seed) % 3) {
				off = (rand_r(&seed) % (size / 4096)) * 4096;
				len = 4096;
			} else {
				off = (rand_r(&seed) % (size / SZ_2M)) * SZ_2M;
				len = SZ_2M;
			}
			convert(m.fd, off, len, false);
			splits++;
			for (j = off / 4096; j < (off + len) / 4096; j++) {
				TEST_ASSERT(host_read((uint64_t *)(m.mem + j * 4096), &v) &&
					    v == table[j],
					    "cycle %u page %lu: host read %lx, expected %lx",
					    c, j, v, table[j]);
				table[j] = ~cycle_value(j, c);
				WRITE_ONCE(*(uint64_t *)(m.mem + j * 4096), table[j]);
			}
			/* Leave one in four shared across the guest's pass. */
			if (rand_r(&seed) % 4)
				convert(m.fd, off, len, true);
		}
		run_to_sync(m.vcpu);
	}

	/* All private again: everything merges, and maps huge again. */
	convert(m.fd, 0, size, true);
	run_to_sync(m.vcpu);
	stats_expect(m.vm, &base, 0, 0, 0, 0, "after the cycles");

	mvm_destroy(&m);
	pools_exact(p, "after the cycles");
	ksft_test_result_pass("cycles %s: %u passes, %u conversions to shared\n",
			      hs->name, cycles, splits);
}

/* Wait (bounded) for the pools to be @want again, then insist. */
static void pools_settle(const struct pool *want, const char *what)
{
	struct pool now[2];
	int i;

	for (i = 0; i < 100; i++) {
		pools_read(now);
		if (!memcmp(now, want, sizeof(now)))
			break;
		usleep(100000);
	}
	pools_exact(want, what);
}

/*
 * A shared page of a split 1G page, pinned by a pipe: conversion to
 * private fails with EAGAIN at its offset and changes nothing; a hole
 * punch (and, the second time, closing the file) while it is pinned
 * cannot give the huge page back, and the pool gets it back once the pipe
 * lets go.
 */
static void test_pinned(void)
{
	uint64_t off = 7 * SZ_2M + 5 * 4096, eoff, v;
	struct pool p[2], b, punched[2];
	struct iovec iov;
	int pipefd[2], round;
	struct mvm m;

	if (pool_available(SZ_1G) < 1) {
		ksft_test_result_skip("pinned: pool too small\n");
		return;
	}
	pools_read(p);
	b = p[1];
	for (round = 0; round < 2; round++) {
		mvm_create(&m, &sizes[1], SZ_1G, 0, guest_code);
		run_guest(m.vcpu, 0x77, true);
		convert(m.fd, off, 4096, false);
		TEST_ASSERT(pipe(pipefd) == 0, "pipe failed");
		iov.iov_base = m.mem + off;
		iov.iov_len = 4096;
		TEST_ASSERT(vmsplice(pipefd[1], &iov, 1, 0) == 4096,
			    "vmsplice failed");

		TEST_ASSERT(__convert(m.fd, true, SZ_2M * 7, SZ_2M, &eoff) < 0 &&
			    errno == EAGAIN,
			    "conversion of a pinned page must fail with EAGAIN");
		TEST_ASSERT_EQ(eoff, off);
		TEST_ASSERT(host_read((uint64_t *)(m.mem + off), &v) &&
			    v == ((GMEM_GPA + off) ^ 0x77),
			    "the refused conversion changed the page: %#lx", v);

		if (!round) {
			punch(m.fd, 0, SZ_1G, 0);
			pool_expect(SZ_1G, &b, -1, 0,
				    "a pinned piece keeps the huge page");
			pools_read(punched);
			punched[1].free++;
			punched[1].resv++;
			close(pipefd[0]);
			close(pipefd[1]);
			pools_settle(punched, "unpinned after the punch");
			mvm_destroy(&m);
		} else {
			mvm_destroy(&m);
			pool_expect(SZ_1G, &b, -1, 0,
				    "a pinned piece outlives its file");
			close(pipefd[0]);
			close(pipefd[1]);
		}
		pools_settle(p, "unpinned");
	}
	ksft_test_result_pass("pinned page of a split 1G page\n");
}

/*
 * A process killed holding a split 1G page, with a piece of it mapped and
 * pinned by a pipe that dies with it: the pool ends exact (the file's
 * release and the pipe's may come in either order).
 */
static void test_killed_split(void)
{
	struct pool p[2];
	int status;
	pid_t pid;

	if (pool_available(SZ_1G) < 1) {
		ksft_test_result_skip("killed with a split page: pool too small\n");
		return;
	}
	pools_read(p);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork failed");
	if (!pid) {
		uint64_t off = 3 * SZ_2M + 4096;
		struct iovec iov;
		int pipefd[2];
		struct mvm m;

		mvm_create(&m, &sizes[1], SZ_1G, 0, guest_code);
		run_guest(m.vcpu, 0x99, true);
		convert(m.fd, off, 4096, false);
		m.mem[off] = 1;
		TEST_ASSERT(!pipe(pipefd), "pipe failed");
		iov.iov_base = m.mem + off;
		iov.iov_len = 4096;
		TEST_ASSERT(vmsplice(pipefd[1], &iov, 1, 0) == 4096,
			    "vmsplice failed");
		raise(SIGKILL);
		_exit(1);
	}
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "the child was not killed");
	pools_settle(p, "after the process killed with a split page");
	ksft_test_result_pass("killed with a split page\n");
}

/*
 * An initially shared 2M-backed file: the host fills every page (each 2M
 * page split into 4K folios, each a hole until written), conversion of
 * the whole file to private merges them, and the guest maps them 2M and
 * reads the host's data.
 */
static void test_init_shared(void)
{
	uint64_t size = 8 * SZ_2M, i, seed = 0x4242;
	struct stats base;
	struct pool p[2];
	struct mvm m;

	if (!mvm_create_pooled(&m, &sizes[0], size,
			       GUEST_MEMFD_FLAG_INIT_SHARED, p,
			       "initially shared"))
		return;
	stats_after_warm_up(&m, size, &base);
	for (i = 0; i < size; i += 4096)
		*(uint64_t *)(m.mem + i) = (GMEM_GPA + i) ^ seed;
	TEST_ASSERT(meminfo_kb("FileHugePages") == base.file_huge_kb,
		    "pages the host filled one by one are not single pages");
	convert(m.fd, 0, size, true);
	run_guest_check(m.vcpu, seed + 1, true, seed);
	/* The guest's first look at its globals may add a 4K mapping. */
	TEST_ASSERT(vm_get_stat(m.vm, "pages_2m") == base.pages_2m + 8,
		    "the merged file is not mapped 2M: %lu 2M mappings, expected %lu",
		    vm_get_stat(m.vm, "pages_2m"), base.pages_2m + 8);
	mvm_destroy(&m);
	pools_exact(p, "after the initially shared file");
	ksft_test_result_pass("initially shared 2M file\n");
}

/* The @field ("FilePmdMapped", ...) of the mapping at @addr in smaps, in kB. */
static unsigned long smaps_kb(void *addr, const char *field)
{
	unsigned long start, end, v = -1UL;
	size_t n = strlen(field);
	bool here = false;
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");

	TEST_ASSERT(f, "cannot open /proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			here = start == (uintptr_t)addr;
			continue;
		}
		if (here && !strncmp(line, field, n) && line[n] == ':') {
			int r = sscanf(line + n + 1, "%lu", &v);

			TEST_ASSERT_EQ(r, 1);
			break;
		}
	}
	fclose(f);
	TEST_ASSERT(v != -1UL, "no %s for the mapping at %p", field, addr);
	return v;
}

/* The host reads every page of [@off, @off + @len); false on a SIGBUS. */
static bool host_touch(uint8_t *mem, uint64_t off, uint64_t len)
{
	uint64_t i, v;

	for (i = off; i < off + len; i += 4096)
		if (!host_read((uint64_t *)(mem + i), &v))
			return false;
	return true;
}

static void set_missing(int fd, uint32_t op, uint64_t offset)
{
	struct kvm_gmem_range r = { offset, 4096 };
	struct kvm_gmem_userfault u = {
		.op = op, .ranges = (uintptr_t)&r, .nr_ranges = 1,
	};

	TEST_ASSERT(!ioctl(fd, KVM_GMEM_SET_USERFAULT, &u) && u.done == 1,
		    "userfault op %u at %#lx failed: %s", op, offset,
		    strerror(errno));
}

/*
 * A file shared throughout (INIT_SHARED), as a VMM backs ordinary guest
 * RAM with guest_memfd, mapped by the host at a 1G-aligned address:
 *  - the guest writes every page first, finding zeroes: KVM maps the file
 *    with entries of the huge page size (1G or 2M) and nothing else, and
 *    the huge pages stay hugetlb folios (no FileHugePages);
 *  - the host reads the guest's data and writes its own: its first access
 *    splits each huge page into 2M pieces (FileHugePages), one PMD per
 *    block (FilePmdMapped); KVM's mappings stay, and the guest reads the
 *    host's data through them;
 *  - a missing page in a block makes the host map that block with page
 *    table entries, and only that block;
 *  - one 4K page converted to private: only its 2M block is split (512
 *    single pages), the host gets SIGBUS on that page and maps the rest of
 *    the block with page table entries, the other blocks with PMDs, and
 *    KVM maps the mixed block 4K and the others 2M;
 *  - converted back: the block is one folio again, which a new mapping
 *    maps with a PMD (the old one kept a page table there), and KVM maps
 *    the whole file huge again.
 * Data is checked both ways at every step, and the pools are exact after.
 */
static void test_shared_huge(const struct hsize *hs)
{
	bool gig = hs->size == SZ_1G;
	uint64_t size = gig ? SZ_1G : 32 * SZ_2M, i, v, seed = 0x5a5a;
	uint64_t off = 5 * SZ_2M + 3 * 4096, moff = 9 * SZ_2M + 7 * 4096;
	unsigned long kb = size >> 10;
	unsigned long huge_maps = size / hs->size;
	uint8_t *resv, *view;
	struct stats base;
	struct pool p[2];
	struct mvm m;

	if (!mvm_create_pooled(&m, hs, size, GUEST_MEMFD_FLAG_INIT_SHARED, p,
			       "shared huge"))
		return;
	stats_after_warm_up(&m, size, &base);

	/* The guest first: it finds zeroes, and KVM maps the file huge. */
	run_guest(m.vcpu, seed, true);
	stats_expect(m.vm, &base, 0, gig ? 0 : huge_maps, gig ? 1 : 0, 0,
		     "shared throughout: mapped huge by KVM, hugetlb folios");
	TEST_ASSERT_EQ(smaps_kb(m.mem, "FilePmdMapped"), 0);
	pool_expect(hs->size, &p[gig], -(long)(size / hs->size), 0,
		    "shared pages in their huge pages");
	for (i = 0; i < size; i += 4096) {
		TEST_ASSERT(host_read((uint64_t *)(m.mem + i), &v) &&
			    v == ((GMEM_GPA + i) ^ seed),
			    "page %#lx: the host read %#lx", i, v);
		*(uint64_t *)(m.mem + i) = (GMEM_GPA + i) ^ (seed + 1);
	}
	TEST_ASSERT_EQ(smaps_kb(m.mem, "FilePmdMapped"), kb);
	TEST_ASSERT_EQ(meminfo_kb("FileHugePages"), base.file_huge_kb + kb);
	pool_expect(hs->size, &p[gig], -(long)(size / hs->size), 0,
		    "shared pages stay in their huge pages");
	/* No zap, no fault: the guest sees the host's writes in place. */
	run_guest_check(m.vcpu, seed + 1, true, seed + 1);
	stats_expect(m.vm, &base, 0, gig ? 0 : huge_maps, gig ? 1 : 0, kb,
		     "shared throughout: still mapped huge");

	/* A missing page: its block, and only it, is mapped page by page. */
	set_missing(m.fd, KVM_GMEM_USERFAULT_SET, moff);
	TEST_ASSERT(host_touch(m.mem, moff + 4096, SZ_2M - 4096 - moff % SZ_2M),
		    "a present page of a block with a missing page");
	TEST_ASSERT_EQ(smaps_kb(m.mem, "FilePmdMapped"), kb - 2048);
	set_missing(m.fd, KVM_GMEM_USERFAULT_CLEAR, moff);
	TEST_ASSERT(host_read((uint64_t *)(m.mem + moff), &v) &&
		    v == ((GMEM_GPA + moff) ^ (seed + 1)),
		    "the page present again: read %#lx", v);

	/* 4K to private: only its 2M block splits. */
	convert(m.fd, off, 4096, true);
	TEST_ASSERT(!host_read((uint64_t *)(m.mem + off), &v),
		    "a private page must raise SIGBUS on the host");
	TEST_ASSERT_EQ(meminfo_kb("FileHugePages"),
		       base.file_huge_kb + kb - 2048);
	TEST_ASSERT(host_touch(m.mem, 0, off) &&
		    host_touch(m.mem, off + 4096, size - off - 4096),
		    "a shared page of the mixed file raised SIGBUS");
	TEST_ASSERT_EQ(smaps_kb(m.mem, "FilePmdMapped"), kb - 2 * 2048);
	run_guest_check(m.vcpu, seed + 2, true, seed + 1);
	stats_expect(m.vm, &base, 512, gig ? 511 : huge_maps - 1, 0,
		     kb - 2048, "one 2M block mixed: mapped 4K");

	/* Back to shared: one folio again, and huge everywhere. */
	convert(m.fd, off, 4096, false);
	TEST_ASSERT_EQ(meminfo_kb("FileHugePages"), base.file_huge_kb + kb);
	for (i = 0; i < size; i += 4096)
		TEST_ASSERT(host_read((uint64_t *)(m.mem + i), &v) &&
			    v == ((GMEM_GPA + i) ^ (seed + 2)),
			    "page %#lx after the merge: read %#lx", i, v);
	/*
	 * The blocks that were split keep their (empty) page tables in this
	 * mapping, so it maps them with page table entries; a new mapping
	 * maps every block with a PMD.
	 */
	TEST_ASSERT_EQ(smaps_kb(m.mem, "FilePmdMapped"), kb - 2 * 2048);
	resv = mmap(NULL, size + SZ_1G, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(resv != MAP_FAILED, "mmap failed");
	view = mmap((void *)(((uintptr_t)resv + SZ_1G - 1) & ~(SZ_1G - 1)),
		    size, PROT_READ, MAP_SHARED | MAP_FIXED, m.fd, 0);
	TEST_ASSERT(view != MAP_FAILED, "second mmap of the file failed");
	TEST_ASSERT(host_touch(view, 0, size), "SIGBUS on the second view");
	TEST_ASSERT_EQ(smaps_kb(view, "FilePmdMapped"), kb);
	munmap(resv, size + SZ_1G);
	run_guest_check(m.vcpu, seed + 3, true, seed + 2);
	stats_expect(m.vm, &base, 0, gig ? 0 : huge_maps, gig ? 1 : 0, kb,
		     "merged: mapped huge again");

	mvm_destroy(&m);
	pools_exact(p, "after the shared huge file");
	ksft_test_result_pass("shared huge %s: host PMDs, KVM %s mappings\n",
			      hs->name, hs->name);
}

/*
 * A page of a shared 2M block of a 1G page, pinned by a pipe: converting
 * another page of the block to private must split the block and cannot,
 * so it fails with EAGAIN at that page and changes nothing; a page of
 * another block converts; once the pin is gone the conversion works.
 */
static void test_shared_pinned(void)
{
	uint64_t pin = 9 * SZ_2M + 4096, off = 9 * SZ_2M + 100 * 4096, eoff, v;
	unsigned long base_kb;
	struct iovec iov;
	struct pool p[2];
	int pipefd[2];
	struct mvm m;

	if (!mvm_create_pooled(&m, &sizes[1], SZ_1G,
			       GUEST_MEMFD_FLAG_INIT_SHARED, p,
			       "shared huge pinned"))
		return;
	base_kb = meminfo_kb("FileHugePages");
	/*
	 * The guest uses the page first: it stays a hugetlb folio until the
	 * host's first access makes it 2M pieces, one per block.
	 */
	guest_size = SZ_2M;
	sync_global_to_guest(m.vm, guest_size);
	run_guest(m.vcpu, 1, true);
	TEST_ASSERT_EQ(meminfo_kb("FileHugePages"), base_kb);
	memset(m.mem + 9 * SZ_2M, 0x3c, SZ_2M);
	TEST_ASSERT_EQ(meminfo_kb("FileHugePages") - base_kb, SZ_1G >> 10);
	TEST_ASSERT(!pipe(pipefd), "pipe failed");
	iov.iov_base = m.mem + pin;
	iov.iov_len = 4096;
	TEST_ASSERT(vmsplice(pipefd[1], &iov, 1, 0) == 4096, "vmsplice failed");

	eoff = 0;
	TEST_ASSERT(__convert(m.fd, true, off, 4096, &eoff) < 0 &&
		    errno == EAGAIN,
		    "a conversion that must split a pinned block must fail");
	TEST_ASSERT_EQ(eoff, off);
	TEST_ASSERT(host_read((uint64_t *)(m.mem + off), &v) &&
		    v == 0x3c3c3c3c3c3c3c3cULL,
		    "the refused conversion changed the page: %#lx", v);
	convert(m.fd, 20 * SZ_2M, 4096, true);

	close(pipefd[0]);
	close(pipefd[1]);
	convert(m.fd, off, 4096, true);
	TEST_ASSERT(!host_read((uint64_t *)(m.mem + off), &v),
		    "the page converted after the unpin must be private");
	TEST_ASSERT(host_read((uint64_t *)(m.mem + pin), &v) &&
		    v == 0x3c3c3c3c3c3c3c3cULL, "the pinned page: %#lx", v);

	mvm_destroy(&m);
	pools_exact(p, "after the pinned shared block");
	ksft_test_result_pass("shared huge pinned: EAGAIN, nothing changed\n");
}

#define CG_ROOT	"/tmp/gmem-cgroup"
#define CG_A	CG_ROOT "/gmem"
#define CG_B	CG_A "/vm"

static void cg_write(const char *dir, const char *file, const char *val)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(write(fd, val, strlen(val)) == (ssize_t)strlen(val),
		    "write %s to %s: %s", val, path, strerror(errno));
	close(fd);
}

static unsigned long cg_read(const char *dir, const char *file)
{
	char path[256], buf[64] = "", *end;
	unsigned long v;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(read(fd, buf, sizeof(buf) - 1) > 0, "read %s", path);
	close(fd);
	errno = 0;
	v = strtoul(buf, &end, 10);
	TEST_ASSERT(!errno && end != buf, "%s: not a number: %s", path, buf);
	return v;
}

/* The nr_dying_descendants of @dir's cgroup.stat. */
static unsigned long cg_dying(const char *dir)
{
	char path[256], line[128];
	unsigned long v = -1UL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.stat", dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "nr_dying_descendants %lu", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void cg_enter(const char *dir)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	cg_write(dir, "cgroup.procs", pid);
}

/*
 * The hugetlb cgroup of the task creating a 2M-backed file:
 *  - a file over the usage limit, or over the reservation limit, or two
 *    files over the usage limit together, fail to create with ENOMEM and
 *    take nothing from the pools;
 *  - a file charges its whole size to both counters at creation, and
 *    using its pages, sharing them in 2M pieces or splitting them changes
 *    nothing;
 *  - removing the cgroup while the file lives, with split pages in it,
 *    moves its usage charge to the parent and completes once the file is
 *    closed (its reservation charge holds the cgroup until then): no
 *    charge is lost and the cgroup does not stay dying;
 *  - the pools and every counter are exact at the end.
 */
static void test_cgroup(void)
{
	const unsigned long size = 8 * SZ_2M;
	struct kvm_vm *vm;
	struct pool p[2];
	uint8_t *mem;
	int fd, i;

	if (pool_available(SZ_2M) < size / SZ_2M) {
		ksft_test_result_skip("hugetlb cgroup: pool too small\n");
		return;
	}
	mkdir(CG_ROOT, 0755);
	if (mount("none", CG_ROOT, "cgroup2", 0, NULL) && errno != EBUSY) {
		ksft_test_result_skip("hugetlb cgroup: no cgroup2: %s\n",
				      strerror(errno));
		return;
	}
	pools_read(p);
	cg_write(CG_ROOT, "cgroup.subtree_control", "+hugetlb");
	TEST_ASSERT(!mkdir(CG_A, 0755) && !mkdir(CG_B, 0755),
		    "mkdir of the cgroups failed: %s", strerror(errno));
	cg_write(CG_A, "cgroup.subtree_control", "+hugetlb");
	cg_enter(CG_B);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);

	/* Over either limit: ENOMEM, and nothing taken. */
	cg_write(CG_B, "hugetlb.2MB.max", "4194304");
	TEST_ASSERT(__vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_HUGETLB |
					    GUEST_MEMFD_HUGETLB_2MB) < 0 &&
		    errno == ENOMEM, "a file over the usage limit must fail");
	cg_write(CG_B, "hugetlb.2MB.max", "max");
	cg_write(CG_B, "hugetlb.2MB.rsvd.max", "4194304");
	TEST_ASSERT(__vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_HUGETLB |
					    GUEST_MEMFD_HUGETLB_2MB) < 0 &&
		    errno == ENOMEM, "a file over the reservation limit must fail");
	cg_write(CG_B, "hugetlb.2MB.rsvd.max", "max");
	/* The limit holds for all files together. */
	cg_write(CG_B, "hugetlb.2MB.max", "25165824");
	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_HUGETLB |
				   GUEST_MEMFD_HUGETLB_2MB);
	TEST_ASSERT(__vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_HUGETLB |
					    GUEST_MEMFD_HUGETLB_2MB) < 0 &&
		    errno == ENOMEM, "two files over the usage limit must fail");
	close(fd);
	cg_write(CG_B, "hugetlb.2MB.max", "max");
	pools_exact(p, "after the refused creations");
	TEST_ASSERT(!cg_read(CG_B, "hugetlb.2MB.current") &&
		    !cg_read(CG_B, "hugetlb.2MB.rsvd.current"),
		    "a refused creation left a charge");

	/* Reservation and usage, the whole file from its creation. */
	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_HUGETLB |
				   GUEST_MEMFD_HUGETLB_2MB |
				   GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	TEST_ASSERT_EQ(cg_read(CG_B, "hugetlb.2MB.rsvd.current"), size);
	TEST_ASSERT_EQ(cg_read(CG_B, "hugetlb.2MB.current"), size);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap of the guest_memfd failed");
	for (i = 0; i < 4; i++)
		mem[i * SZ_2M + 4096] = i + 1;
	TEST_ASSERT_EQ(cg_read(CG_B, "hugetlb.2MB.current"), size);
	/* Split pages stay charged. */
	convert(fd, SZ_2M + 8192, 4096, true);
	convert(fd, 2 * SZ_2M, SZ_2M, true);
	TEST_ASSERT_EQ(cg_read(CG_B, "hugetlb.2MB.current"), size);

	/* Remove the cgroup under the file: the charges go to the parent. */
	cg_enter(CG_ROOT);
	TEST_ASSERT(!rmdir(CG_B), "rmdir of the cgroup failed: %s",
		    strerror(errno));
	TEST_ASSERT_EQ(cg_read(CG_A, "hugetlb.2MB.current"), size);
	for (i = 4; i < 8; i++)
		mem[i * SZ_2M] = i + 1;
	TEST_ASSERT_EQ(cg_read(CG_A, "hugetlb.2MB.current"), size);
	TEST_ASSERT_EQ(cg_read(CG_A, "hugetlb.2MB.rsvd.current"), size);
	/* Block 2 is private now; the others kept their data. */
	for (i = 0; i < 4; i++)
		if (i != 2)
			TEST_ASSERT_EQ(mem[i * SZ_2M + 4096], i + 1);
	munmap(mem, size);
	close(fd);
	kvm_vm_free(vm);
	TEST_ASSERT_EQ(cg_read(CG_A, "hugetlb.2MB.current"), 0);
	TEST_ASSERT_EQ(cg_read(CG_A, "hugetlb.2MB.rsvd.current"), 0);
	for (i = 0; i < 100 && cg_dying(CG_A); i++)
		usleep(100000);
	TEST_ASSERT_EQ(cg_dying(CG_A), 0);
	TEST_ASSERT(!rmdir(CG_A), "rmdir of the parent failed: %s",
		    strerror(errno));
	pools_exact(p, "after the cgroup test");
	ksft_test_result_pass("hugetlb cgroup: limits at creation, charges moved on removal\n");
}

/*
 * Race on a 1G-backed file: a vCPU sweeps the first 64M (each page read,
 * then written with a pattern of (gpa, pass)), one thread converts random
 * pages and 2M blocks to shared and back, one reads shared pages through
 * the host mapping, and the main thread punches the whole file now and
 * then. Content survives conversion, so every value read anywhere is zero
 * or a pattern of the right gpa and a recent pass.
 */
#define MRACE_SIZE	(64UL << 20)

static const uint64_t golden = 0x9e3779b97f4a7c15ULL;

/* Whether @v is zero or race_pattern(@gpa, pass) with pass <= @max. */
static bool race_value_ok(uint64_t gpa, uint64_t v, uint64_t max)
{
	uint64_t inv = golden, pass;
	int i;

	if (!v)
		return true;
	/* The inverse of the odd golden constant modulo 2^64 (Newton). */
	for (i = 0; i < 6; i++)
		inv *= 2 - golden * inv;
	pass = (v ^ gpa ^ 1) * inv;
	return pass <= max;
}

struct mrace {
	struct mvm m;
	bool stop;
	unsigned long passes, conversions, eagain, host_reads, punches;
	unsigned long run_efault;
	/* Time spent in each kind of operation, for the report only. */
	uint64_t convert_ns, read_ns, punch_ns;
};

static void *mrace_vcpu(void *arg)
{
	struct mrace *r = arg;
	struct ucall uc;

	while (!READ_ONCE(r->stop)) {
		if (_vcpu_run(r->m.vcpu)) {
			/*
			 * A page that turned private between KVM's state
			 * check and its host lookup; the vCPU retries.
			 */
			TEST_ASSERT(errno == EFAULT, "KVM_RUN failed: %s",
				    strerror(errno));
			r->run_efault++;
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(r->m.vcpu, KVM_EXIT_IO);
		if (get_ucall(r->m.vcpu, &uc) == UCALL_ABORT)
			REPORT_GUEST_ASSERT(uc);
		WRITE_ONCE(r->passes, r->passes + 1);
	}
	return NULL;
}

static void *mrace_convert(void *arg)
{
	struct mrace *r = arg;
	unsigned int seed = 11;
	uint64_t off, len, t0;
	int ret;

	while (!READ_ONCE(r->stop)) {
		if (rand_r(&seed) % 2) {
			off = (rand_r(&seed) % (MRACE_SIZE / 4096)) * 4096;
			len = 4096;
		} else {
			off = (rand_r(&seed) % (MRACE_SIZE / SZ_2M)) * SZ_2M;
			len = SZ_2M;
		}
		/* The host reader may hold a page for a moment. */
		t0 = gmem_now_ns();
		ret = __convert(r->m.fd, rand_r(&seed) % 2, off, len, NULL);
		r->convert_ns += gmem_now_ns() - t0;
		if (ret) {
			TEST_ASSERT(errno == EAGAIN, "conversion failed: %s",
				    strerror(errno));
			r->eagain++;
		}
		r->conversions++;
		usleep(rand_r(&seed) % 5000);
	}
	return NULL;
}

static void *mrace_host(void *arg)
{
	struct mrace *r = arg;
	unsigned int seed = 13;
	uint64_t off, v, t0;
	bool ok;

	while (!READ_ONCE(r->stop)) {
		off = (rand_r(&seed) % (MRACE_SIZE / 4096)) * 4096;
		t0 = gmem_now_ns();
		ok = host_read((uint64_t *)(r->m.mem + off), &v);
		if (!ok)
			continue;
		r->read_ns += gmem_now_ns() - t0;
		TEST_ASSERT(race_value_ok(GMEM_GPA + off, v,
					  READ_ONCE(r->passes) + 1),
			    "host read %#lx at offset %#lx", v, off);
		r->host_reads++;
		usleep(rand_r(&seed) % 500);
	}
	return NULL;
}

static void test_mmap_race(void)
{
	pthread_t vcpu, conv, host;
	struct mrace r = {};
	unsigned int seed = 17;
	struct pool p[2];
	uint64_t t0, hole_us = 0;
	time_t start;

	if (pool_available(SZ_1G) < 1) {
		ksft_test_result_skip("race mmap 1G: pool too small\n");
		return;
	}
	pools_read(p);
	mvm_create(&r.m, &sizes[1], SZ_1G, 0, guest_race_code);
	pthread_create(&vcpu, NULL, mrace_vcpu, &r);
	pthread_create(&conv, NULL, mrace_convert, &r);
	pthread_create(&host, NULL, mrace_host, &r);

	/*
	 * Bounded by passes and holes, and by three minutes for slow
	 * emulators; past that, it goes on until the vCPU made two passes,
	 * for ten minutes at most: a livelock fails, a slow host does not.
	 * A hole costs a merge of the huge page and its refill a split (a
	 * second each on a debug kernel under TCG): the pause between holes
	 * is twice the last hole's time at least, so that the others get
	 * most of the time whatever the host's speed.
	 */
	start = time(NULL);
	while (((READ_ONCE(r.passes) < 8 || r.punches < 10) &&
		time(NULL) - start < 180) ||
	       (READ_ONCE(r.passes) < 2 && time(NULL) - start < 600)) {
		usleep(100000 + rand_r(&seed) % 400000 + 2 * hole_us);
		t0 = gmem_now_ns();
		punch(r.m.fd, 0, SZ_1G, 0);
		hole_us = (gmem_now_ns() - t0) / 1000;
		r.punch_ns += hole_us * 1000;
		r.punches++;
	}
	TEST_ASSERT(READ_ONCE(r.passes) >= 2,
		    "the vCPU made no progress: %lu passes in %ld s", r.passes,
		    (long)(time(NULL) - start));
	WRITE_ONCE(r.stop, true);
	pthread_join(conv, NULL);
	pthread_join(host, NULL);
	pthread_join(vcpu, NULL);

	mvm_destroy(&r.m);
	pools_settle(p, "after the mmap race");
	ksft_print_msg("race mmap 1G: %lu KVM_RUN EFAULT, %lu conversions EAGAIN\n",
		       r.run_efault, r.eagain);
	ksft_print_msg("race mmap 1G: %ld s; mean us per conversion %lu, host read %lu, hole %lu\n",
		       (long)(time(NULL) - start),
		       r.convert_ns / 1000 / (r.conversions ?: 1),
		       r.read_ns / 1000 / (r.host_reads ?: 1),
		       r.punch_ns / 1000 / (r.punches ?: 1));
	ksft_test_result_pass("race mmap 1G: %lu passes, %lu conversions, %lu reads, %lu holes\n",
			      r.passes, r.conversions, r.host_reads,
			      r.punches);
}

/*
 * Run the vCPU on one host CPU. QEMU's TCG emulation of SVM, on which these
 * tests run, does not tag its TLB with ASIDs: KVM flushes a vCPU's nested
 * translations after a zap by giving it a new ASID, which QEMU ignores, so
 * a vCPU that moves between CPUs can pick up a translation cached by the
 * other CPU before a hole punch and read a page that is gone (seen here as
 * stale data after the punch in "map level 2M" without the pin).
 */
static void pin_to_one_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sched_getcpu(), &set);
	TEST_ASSERT(!sched_setaffinity(0, sizeof(set), &set),
		    "sched_setaffinity failed");
}

static void help(const char *name)
{
	printf("usage: %s [-r N] [-p] [-s N] [-m N] [-g]\n"
	       " -r N: run only the 1G mmap race, N times (stress mode)\n"
	       " -g: run only the hugetlb cgroup test\n"
	       " -p: run only the memory failure tests (they shrink the pools)\n"
	       " -s N: only N host-side split/merge cycles of a 1G page\n"
	       " -m N: only hold a guest_memfd mapping N s after its VM and fd\n",
	       name);
	exit(KSFT_FAIL);
}

/* Memory failure: see the top of this file. */
#define HWPOISON_INJECT	"/sys/kernel/debug/hwpoison/corrupt-pfn"

static uint64_t guest_target;
static struct kvm_regs guest_read_regs;

static void guest_read_code(void)
{
	for (;;)
		GUEST_SYNC(READ_ONCE(*(uint64_t *)guest_target));
}

/* The pfn behind the host mapping at @addr (root sees pfns in pagemap). */
static uint64_t host_pfn(void *addr)
{
	uint64_t e;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	TEST_ASSERT(fd >= 0, "cannot open pagemap");
	TEST_ASSERT_EQ(pread(fd, &e, sizeof(e),
			     ((uintptr_t)addr / getpagesize()) * sizeof(e)),
		       sizeof(e));
	close(fd);
	TEST_ASSERT((e >> 63) & 1, "page at %p not present", addr);
	TEST_ASSERT(e & ((1ULL << 55) - 1), "no pfn in pagemap (not root?)");
	return e & ((1ULL << 55) - 1);
}

static bool poison_ready(void)
{
	if (geteuid())
		return false;
	if (access(HWPOISON_INJECT, W_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	return !access(HWPOISON_INJECT, W_OK);
}

/*
 * Poison @pfn through the injector. What memory_failure() returns depends
 * on what it found; that the page is poisoned shows in HardwareCorrupted.
 */
static void poison(uint64_t pfn)
{
	unsigned long before = meminfo_kb("HardwareCorrupted");
	char text[32];
	int fd, n;

	fd = open(HWPOISON_INJECT, O_WRONLY);
	TEST_ASSERT(fd >= 0, "cannot open " HWPOISON_INJECT);
	n = snprintf(text, sizeof(text), "%#lx\n", pfn);
	if (write(fd, text, n) < 0)
		ksft_print_msg("injector: pfn %#lx: %s\n", pfn,
			       strerror(errno));
	close(fd);
	TEST_ASSERT_EQ(meminfo_kb("HardwareCorrupted"), before + 4);
}

static uint64_t poison_value(uint64_t off)
{
	return (GMEM_GPA + off) ^ 0xbad0bad0bad0ULL;
}

/*
 * The guest reads the u64 at @off: 0 and *@val, or -EHWPOISON (checked to
 * come with a memory fault exit for exactly that page). The vCPU starts
 * each read afresh, so that a failed access is not retried.
 */
static int guest_read(struct mvm *m, uint64_t off, uint64_t *val)
{
	struct kvm_run *run = m->vcpu->run;
	struct kvm_regs regs;
	struct ucall uc;

	guest_target = GMEM_GPA + off;
	sync_global_to_guest(m->vm, guest_target);
	regs = guest_read_regs;
	vcpu_regs_set(m->vcpu, &regs);
	if (__vcpu_run(m->vcpu)) {
		TEST_ASSERT(errno == EHWPOISON, "KVM_RUN at %#lx: %s", off,
			    strerror(errno));
		TEST_ASSERT(run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
			    run->memory_fault.gpa == GMEM_GPA + off,
			    "poison at %#lx: exit %u gpa %#llx", off,
			    run->exit_reason, run->memory_fault.gpa);
		return -EHWPOISON;
	}
	TEST_ASSERT_KVM_EXIT_REASON(m->vcpu, KVM_EXIT_IO);
	TEST_ASSERT_EQ(get_ucall(m->vcpu, &uc), UCALL_SYNC);
	*val = uc.args[1];
	return 0;
}

static void guest_expect(struct mvm *m, uint64_t off)
{
	uint64_t v = 0;

	TEST_ASSERT(!guest_read(m, off, &v) && v == poison_value(off),
		    "page at %#lx next to poison: %#lx, expected %#lx", off,
		    v, poison_value(off));
}

static void guest_expect_poison(struct mvm *m, uint64_t off)
{
	uint64_t v = 0;

	TEST_ASSERT(guest_read(m, off, &v) == -EHWPOISON,
		    "the guest read poisoned memory at %#lx: %#lx", off, v);
}

static unsigned long pool_total(unsigned long size)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/nr_hugepages",
		 size >> 10);
	return read_ulong(path);
}

/*
 * Give a page poisoned by the injector back (best effort): hugetlb took it
 * off the buddy allocator when it dissolved its huge page, and the page
 * is needed for that huge page's range to be allocated whole again.
 */
static void injector_unpoison(uint64_t pfn)
{
	char text[32];
	int fd, n;

	fd = open("/sys/kernel/debug/hwpoison/unpoison-pfn", O_WRONLY);
	if (fd < 0)
		return;
	n = snprintf(text, sizeof(text), "%#lx\n", pfn);
	if (write(fd, text, n) < 0)
		ksft_print_msg("unpoisoning %#lx: %s\n", pfn, strerror(errno));
	close(fd);
}

/* Try to give the pool back the huge pages poison took (best effort). */
static void pool_regrow(unsigned long size, unsigned long total)
{
	char path[128], text[32];
	int fd, n;

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/nr_hugepages",
		 size >> 10);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return;
	n = snprintf(text, sizeof(text), "%lu\n", total);
	if (write(fd, text, n) < 0)
		ksft_print_msg("cannot regrow the %luK pool\n", size >> 10);
	close(fd);
}

/*
 * Closing a file that held @lost poisoned huge pages of @hs: the pool has
 * exactly those fewer pages, all the others free and unreserved again.
 * Then the @n poisoned @pfns are unpoisoned and the pool regrown, so that
 * the next test finds it as it was (the test harness checks that).
 */
static void pool_expect_lost(const struct hsize *hs, const struct pool *p,
			     unsigned long total, unsigned long lost,
			     const uint64_t *pfns, int n)
{
	int i;

	struct pool now;

	pool_read(hs->size, &now);
	TEST_ASSERT(pool_total(hs->size) == total - lost &&
		    now.free == p->free - lost && now.resv == p->resv,
		    "%s pool after poison: total %lu free %lu resv %lu, expected %lu, %lu, %lu",
		    hs->name, pool_total(hs->size), now.free, now.resv,
		    total - lost, p->free - lost, p->resv);
	for (i = 0; i < n; i++)
		injector_unpoison(pfns[i]);
	pool_regrow(hs->size, total);
	TEST_ASSERT(pool_total(hs->size) == total,
		    "%s pool: %lu huge pages after unpoisoning, %lu before",
		    hs->name, pool_total(hs->size), total);
}

/* Host-write the poison pattern into the shared pages at @offs. */
static void poison_fill(struct mvm *m, const uint64_t *offs, int n)
{
	int i;

	for (i = 0; i < n; i++)
		WRITE_ONCE(*(uint64_t *)(m->mem + offs[i]),
			   poison_value(offs[i]));
}

/*
 * The VM of a poison test: an initially shared file of @size (4K pages
 * without @hs), the guest reading, the host's pattern in the pages at
 * @offs.
 */
static void poison_vm_create(struct mvm *m, const struct hsize *hs,
			     uint64_t size, const uint64_t *offs, int n)
{
	mvm_create(m, hs, size, GUEST_MEMFD_FLAG_INIT_SHARED, guest_read_code);
	vcpu_regs_get(m->vcpu, &guest_read_regs);
	poison_fill(m, offs, n);
}

/*
 * A page of a whole hugetlb folio: the file starts shared, the host
 * writes a few pages and learns the pfn of one, then converts everything
 * to private, which merges the folio back whole (the guest maps it huge).
 */
static void test_poison_whole(const struct hsize *hs)
{
	bool gig = hs->size == SZ_1G;
	uint64_t bad = (gig ? 3 * SZ_2M : 0) + 5 * 4096;
	uint64_t near = bad + 4096, far = gig ? 7 * SZ_2M + 4096 : near;
	uint64_t offs[] = { bad, near, far }, pfn, v = 0;
	unsigned long total = pool_total(hs->size);
	struct stats base;
	struct pool p;
	struct mvm m;

	if (pool_available(hs->size) < 1) {
		ksft_test_result_skip("poison %s: pool too small\n", hs->name);
		return;
	}
	pool_read(hs->size, &p);
	poison_vm_create(&m, hs, hs->size, offs, ARRAY_SIZE(offs));
	pfn = host_pfn(m.mem + bad);
	convert(m.fd, 0, hs->size, true);

	stats_read(m.vm, &base);
	guest_expect(&m, far);
	guest_expect(&m, bad);
	TEST_ASSERT(vm_get_stat(m.vm, hs->stat) == (gig ? base.pages_1g :
						    base.pages_2m) + 1,
		    "%s: the merged folio is not mapped huge", hs->name);

	poison(pfn);
	guest_expect_poison(&m, bad);
	guest_expect(&m, near);
	guest_expect(&m, far);

	/* Shared, the poisoned page gives the host SIGBUS; its neighbour not. */
	convert(m.fd, bad, 4096, false);
	convert(m.fd, near, 4096, false);
	TEST_ASSERT(!host_read((uint64_t *)(m.mem + bad), &v),
		    "the host read a poisoned shared page: %#lx", v);
	TEST_ASSERT(host_read((uint64_t *)(m.mem + near), &v) &&
		    v == poison_value(near), "shared neighbour: %#lx", v);
	/* Back to private: the block stays split, the data stays. */
	convert(m.fd, bad, 4096, true);
	convert(m.fd, near, 4096, true);
	guest_expect_poison(&m, bad);
	guest_expect(&m, near);

	mvm_destroy(&m);
	pool_expect_lost(hs, &p, total, 1, &pfn, 1);
	ksft_test_result_pass("poison in a whole %s folio\n", hs->name);
}

/*
 * Poison after a split, on a 1G file: a page of a 2M piece and a page of
 * a 2M block held as single pages (a shared page keeps it split). KVM
 * has not mapped either block yet (see guestmem_hugetlb.c).
 */
static void test_poison_split(void)
{
	const struct hsize *hs = &sizes[1];
	uint64_t a = 3 * SZ_2M + 5 * 4096, a1 = a + 4096;
	uint64_t b = 5 * SZ_2M + 9 * 4096, b1 = b + 4096;
	uint64_t shared = 5 * SZ_2M + 100 * 4096;
	uint64_t offs[] = { a, a1, b, b1, shared }, pa, pb, pfns[2], v = 0;
	unsigned long total = pool_total(hs->size);
	struct pool p;
	struct mvm m;

	if (pool_available(hs->size) < 1) {
		ksft_test_result_skip("poison after a split: pool too small\n");
		return;
	}
	pool_read(hs->size, &p);
	poison_vm_create(&m, hs, hs->size, offs, ARRAY_SIZE(offs));
	pa = host_pfn(m.mem + a);
	pb = host_pfn(m.mem + b);
	convert(m.fd, 0, shared, true);
	convert(m.fd, shared + 4096, hs->size - shared - 4096, true);

	poison(pa);
	poison(pb);
	guest_expect_poison(&m, a);
	guest_expect(&m, a1);
	guest_expect_poison(&m, b);
	guest_expect(&m, b1);
	TEST_ASSERT(host_read((uint64_t *)(m.mem + shared), &v) &&
		    v == poison_value(shared), "shared page: %#lx", v);

	/* Converting the last shared page back cannot merge the block. */
	convert(m.fd, shared, 4096, true);
	guest_expect_poison(&m, b);
	guest_expect(&m, b1);

	mvm_destroy(&m);
	pfns[0] = pa;
	pfns[1] = pb;
	pool_expect_lost(hs, &p, total, 1, pfns, 2);
	ksft_test_result_pass("poison after a split: a 2M piece and a page\n");
}

/*
 * Post-copy over a poisoned page (@bad, @bad + 4096 healthy): both marked
 * missing, KVM_GMEM_RESOLVE of the two stops at the poisoned one with
 * EHWPOISON and makes it present (its contents can never come), the
 * guest's access then fails as for any poisoned page; the healthy one
 * takes the new contents.
 */
static void poison_missing(struct mvm *m, uint64_t bad)
{
	struct kvm_gmem_range range = { .offset = bad, .size = 2 * 4096 };
	struct kvm_gmem_userfault uf = {
		.op = KVM_GMEM_USERFAULT_SET,
		.ranges = (uintptr_t)&range,
		.nr_ranges = 1,
	};
	uint64_t buf[2 * 4096 / 8] = {}, bm = 0, v = 0;
	struct kvm_gmem_userfault_bitmap get = {
		.offset = bad, .size = 2 * 4096, .bitmap = (uintptr_t)&bm,
	};
	struct kvm_gmem_resolve r = {
		.offset = bad, .size = 2 * 4096, .src = (uintptr_t)buf,
	};

	TEST_ASSERT(!ioctl(m->fd, KVM_GMEM_SET_USERFAULT, &uf),
		    "KVM_GMEM_SET_USERFAULT: %s", strerror(errno));
	buf[4096 / 8] = 0x600d600dULL;
	TEST_ASSERT(ioctl(m->fd, KVM_GMEM_RESOLVE, &r) == -1 &&
		    errno == EHWPOISON && !r.resolved,
		    "resolve over a poisoned page: %s, %llu resolved",
		    strerror(errno), r.resolved);
	TEST_ASSERT(!ioctl(m->fd, KVM_GMEM_GET_USERFAULT, &get) && bm == 2,
		    "missing bits after EHWPOISON: %#lx", bm);
	guest_expect_poison(m, bad);
	r.offset = bad + 4096;
	r.size = 4096;
	r.src = (uintptr_t)&buf[4096 / 8];
	TEST_ASSERT(!ioctl(m->fd, KVM_GMEM_RESOLVE, &r) && r.resolved == 4096,
		    "resolve of the healthy page: %s", strerror(errno));
	TEST_ASSERT(!guest_read(m, bad + 4096, &v) && v == 0x600d600dULL,
		    "resolved page: %#lx", v);
}

/* The same on a 4K guest_memfd page. */
static void test_poison_small(void)
{
	uint64_t bad = 5 * 4096, near = bad + 4096, offs[] = { bad, near };
	uint64_t pfn, v = 0;
	struct mvm m;

	poison_vm_create(&m, NULL, SZ_2M, offs, ARRAY_SIZE(offs));
	pfn = host_pfn(m.mem + bad);
	convert(m.fd, 0, SZ_2M, true);
	poison(pfn);
	guest_expect_poison(&m, bad);
	guest_expect(&m, near);
	poison_missing(&m, bad);
	convert(m.fd, bad, 4096, false);
	TEST_ASSERT(!host_read((uint64_t *)(m.mem + bad), &v),
		    "the host read a poisoned shared page: %#lx", v);
	mvm_destroy(&m);
	ksft_test_result_pass("poison in a 4K guest_memfd\n");
}

static void test_poison(void)
{
	unsigned int i;

	if (!poison_ready())
		ksft_exit_skip("no hwpoison injector (root, debugfs, CONFIG_HWPOISON_INJECT)\n");
	ksft_set_plan(ARRAY_SIZE(sizes) + 2);
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_poison_whole(&sizes[i]);
	test_poison_split();
	test_poison_small();
	ksft_finished();
}

/*
 * -s N: N cycles of splitting and merging a 1G page from the host alone
 * (no vCPU runs): a host write to a page of an initially shared 1G file
 * splits it down to that page, converting the file to private merges it
 * back. For measuring how long the kernel runs non-preemptible meanwhile
 * (scripts/vm/gmem-latency); checks the data and the pool like a test.
 */
static uint64_t cycle_off(unsigned int i)
{
	return (uint64_t)(i * 37 % 512) * SZ_2M + 4096 * (i % 7);
}

static void split_cycles(unsigned int n)
{
	const struct hsize *hs = &sizes[1];
	struct kvm_vm *vm;
	struct pool p[2];
	unsigned int i;
	uint8_t *mem;
	int fd;

	TEST_REQUIRE(pool_available(hs->size) >= 1);
	pools_read(p);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(vm, SZ_1G, GUEST_MEMFD_FLAG_HUGETLB |
				   hs->flag | GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, SZ_1G, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap of the guest_memfd failed");
	ksft_set_plan(1);
	convert(fd, 0, SZ_1G, true);
	for (i = 0; i < n; i++) {
		uint64_t v = 0;

		/* Split down to one page, which the host writes. */
		convert(fd, cycle_off(i), 4096, false);
		WRITE_ONCE(*(uint64_t *)(mem + cycle_off(i)), cycle_off(i) ^ i);
		/* The previous cycle's page kept its data through a merge. */
		if (i) {
			convert(fd, cycle_off(i - 1), 4096, false);
			TEST_ASSERT(host_read((uint64_t *)(mem + cycle_off(i - 1)),
					      &v) &&
				    v == (cycle_off(i - 1) ^ (i - 1)),
				    "cycle %u: %#lx", i, v);
		}
		/* Everything private: merged back into the 1G folio. */
		convert(fd, 0, SZ_1G, true);
	}
	munmap(mem, SZ_1G);
	close(fd);
	kvm_vm_free(vm);
	pools_exact(p, "after the split cycles");
	ksft_test_result_pass("%u split and merge cycles of a 1G page\n", n);
	ksft_finished();
}

/*
 * -m N (for scripts/vm/gmem-modules): a guest_memfd whose VM and fd are
 * gone while its mapping stays N seconds, the page it holds intact; the
 * vendor module must not unload meanwhile. Prints "holding" once alone
 * with its mapping.
 */
static void hold_mapping(unsigned int secs)
{
	struct kvm_vm *vm;
	uint64_t *mem;
	int fd;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap of the guest_memfd failed");
	WRITE_ONCE(mem[512], 0x686f6c64ULL);
	close(fd);
	kvm_vm_free(vm);
	printf("holding\n");
	fflush(stdout);
	sleep(secs);
	TEST_ASSERT_EQ(READ_ONCE(mem[512]), 0x686f6c64ULL);
	munmap(mem, SZ_2M);
	exit(KSFT_PASS);
}

int main(int argc, char *argv[])
{
	unsigned int i, races = 0, cycles = 0;
	bool hwpoison = false, cgroup_only = false;
	int opt;

	while ((opt = getopt(argc, argv, "r:ps:m:gh")) != -1) {
		switch (opt) {
		case 'g':
			cgroup_only = true;
			break;
		case 'm':
			hold_mapping(atoi_positive("Seconds", optarg));
			break;
		case 's':
			cycles = atoi_positive("Number of cycles", optarg);
			break;
		case 'r':
			races = atoi_positive("Number of races", optarg);
			break;
		case 'p':
			hwpoison = true;
			break;
		default:
			help(argv[0]);
		}
	}

	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_REQUIRE(!access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK));
	TEST_REQUIRE(!access("/sys/kernel/mm/hugepages/hugepages-1048576kB", F_OK));

	pin_to_one_cpu();
	/* Results as they happen, also when a later test hangs the VM. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (!access("/proc/sys/vm/hugetlb_optimize_vmemmap", R_OK))
		ksft_print_msg("hugetlb vmemmap optimisation: %s\n",
			       read_ulong("/proc/sys/vm/hugetlb_optimize_vmemmap") ?
			       "on" : "off");
	signal(SIGBUS, sigbus_handler);
	if (hwpoison)
		test_poison();
	if (cycles)
		split_cycles(cycles);
	if (cgroup_only) {
		ksft_set_plan(1);
		test_cgroup();
		ksft_finished();
	}
	if (races) {
		ksft_set_plan(races);
		for (i = 0; i < races; i++)
			test_mmap_race();
		ksft_finished();
	}
	ksft_set_plan(22);
	test_flags();
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_reserve(&sizes[i]);
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_short_pool(&sizes[i]);
	test_bind();
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_map_level(&sizes[i]);
	test_race(&sizes[0]);
	test_killed();
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_split_merge(&sizes[i]);
	test_cycles(&sizes[0], 32 * SZ_2M, 30);
	test_cycles(&sizes[1], SZ_1G, 12);
	test_pinned();
	test_killed_split();
	test_init_shared();
	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		test_shared_huge(&sizes[i]);
	test_shared_pinned();
	test_cgroup();
	test_mmap_race();
	ksft_finished();
}
