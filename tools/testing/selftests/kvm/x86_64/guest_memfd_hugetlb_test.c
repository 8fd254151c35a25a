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
 *  - a process killed while holding a file and a VM leaves the pool exact.
 * After every test the free and reserved counts of both pools are exactly
 * what they were before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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
	/* The page size field does not fit in the capability's int. */
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS),
		       GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED |
		       GUEST_MEMFD_FLAG_HUGETLB);

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
			    GUEST_MEMFD_HUGETLB_2MB | GUEST_MEMFD_FLAG_MMAP,
			    EINVAL, "HUGETLB with MMAP (not supported yet)");
	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB | BIT_ULL(3), EINVAL,
			    "HUGETLB with an unknown flag");
	kvm_vm_free(vm);

	/* The default VM type has no private memory: no flags at all. */
	vm = vm_create_barebones();
	expect_create_fails(vm, SZ_2M, GUEST_MEMFD_FLAG_HUGETLB |
			    GUEST_MEMFD_HUGETLB_2MB, EINVAL, "default VM type");
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

/* Guest: write a pattern to every 4K page of the range, read it back. */
static uint64_t guest_size, guest_seed;
static uint8_t guest_zero;

static void guest_code(void)
{
	for (;;) {
		uint64_t gpa;

		for (gpa = GMEM_GPA; gpa < GMEM_GPA + guest_size; gpa += 4096) {
			uint64_t *p = (uint64_t *)gpa;

			if (guest_zero)
				GUEST_ASSERT_EQ(READ_ONCE(*p), 0);
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
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

static void run_guest(struct kvm_vcpu *vcpu, uint64_t seed, bool zero)
{
	guest_seed = seed;
	guest_zero = zero;
	sync_global_to_guest(vcpu->vm, guest_seed);
	sync_global_to_guest(vcpu->vm, guest_zero);
	run_to_sync(vcpu);
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

int main(int argc, char *argv[])
{
	unsigned int i;

	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_REQUIRE(!access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK));
	TEST_REQUIRE(!access("/sys/kernel/mm/hugepages/hugepages-1048576kB", F_OK));

	pin_to_one_cpu();
	ksft_print_header();
	if (!access("/proc/sys/vm/hugetlb_optimize_vmemmap", R_OK))
		ksft_print_msg("hugetlb vmemmap optimisation: %s\n",
			       read_ulong("/proc/sys/vm/hugetlb_optimize_vmemmap") ?
			       "on" : "off");
	ksft_set_plan(10);
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
	ksft_finished();
}
