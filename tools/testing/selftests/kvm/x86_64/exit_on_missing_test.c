// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_MEM_EXIT_ON_MISSING: a memslot whose stage-2 faults use only what the
 * host page tables map already.  A guest writes every page of a memslot of
 * anonymous memory, shmem, 2M or 1G hugetlb pages that nobody populated;
 * each page (each huge page) the host does not map makes KVM_RUN fail with
 * a KVM_EXIT_MEMORY_FAULT exit for exactly that page and no flag, and the
 * vCPU thread itself makes it present (MADV_POPULATE_WRITE, UFFDIO_COPY on
 * a MISSING userfaultfd, UFFDIO_CONTINUE on a MINOR one) and runs again.
 * Also: a read maps a page the host maps read-only (a private mapping of a
 * file), so reading it again does not exit, and the write after it exits;
 * the flag set and cleared on a live memslot; KVM_PRE_FAULT_MEMORY; the
 * capability; the flag refused with KVM_MEM_GUEST_MEMFD and by the v1
 * ioctl, accepted with KVM_MEM_READONLY and dirty logging.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define MEM_GPA		(4ULL << 30)
#define MEM_SLOT	10
#define SZ_2M		(2UL << 20)
#define SZ_1G		(1024UL << 20)

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB	(21U << 26)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB	(30U << 26)
#endif

enum backing { ANON, SHMEM, HUGETLB_2M, HUGETLB_1G, SHMEM_PRIVATE };
enum resolve { POPULATE, UFFD_COPY, UFFD_CONTINUE };

static const char * const backing_names[] = {
	"anonymous", "shmem", "hugetlb 2M", "hugetlb 1G",
	"private mapping of shmem",
};

static const char * const resolve_names[] = {
	"MADV_POPULATE_WRITE", "UFFDIO_COPY", "UFFDIO_CONTINUE",
};

struct mem {
	enum backing backing;
	uint64_t size, page, stride;
	uint8_t *hva;		/* what the memslot maps */
	uint8_t *alias;		/* shmem: a second mapping, for MINOR */
	int fd, uffd;
	void *src;		/* UFFDIO_COPY source, one page */
};

/* Guest: write every @stride bytes, then check what it wrote. */
static void guest_code(uint64_t size, uint64_t tag, uint64_t stride)
{
	uint64_t gpa;

	for (gpa = MEM_GPA; gpa < MEM_GPA + size; gpa += stride)
		WRITE_ONCE(*(uint64_t *)gpa, gpa ^ tag);
	for (gpa = MEM_GPA; gpa < MEM_GPA + size; gpa += stride)
		GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)gpa), gpa ^ tag);
	GUEST_DONE();
}

/*
 * Guest: read every 4K page (it reads 0), again, then write each: three
 * phases that the host tells apart by the GUEST_SYNC between them.
 */
static void guest_rw_code(uint64_t size, uint64_t tag)
{
	uint64_t gpa;

	for (gpa = MEM_GPA; gpa < MEM_GPA + size; gpa += 4096)
		GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)gpa), 0);
	GUEST_SYNC(1);
	for (gpa = MEM_GPA; gpa < MEM_GPA + size; gpa += 4096)
		GUEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)gpa), 0);
	GUEST_SYNC(2);
	for (gpa = MEM_GPA; gpa < MEM_GPA + size; gpa += 4096)
		WRITE_ONCE(*(uint64_t *)gpa, gpa ^ tag);
	GUEST_DONE();
}

static void mem_create(struct mem *m, enum backing b, uint64_t size)
{
	int flags = MAP_SHARED;

	memset(m, 0, sizeof(*m));
	m->backing = b;
	m->size = size;
	m->fd = -1;
	m->uffd = -1;
	m->page = b == HUGETLB_2M ? SZ_2M : b == HUGETLB_1G ? SZ_1G : 4096;
	/* Every 4K page, but one touch per 2M of a 1G page is enough. */
	m->stride = b == HUGETLB_1G ? SZ_2M : 4096;
	switch (b) {
	case ANON:
		flags = MAP_PRIVATE | MAP_ANONYMOUS;
		break;
	case SHMEM:
	case SHMEM_PRIVATE:
		m->fd = memfd_create("exit_on_missing", 0);
		TEST_ASSERT(m->fd >= 0, "memfd_create");
		TEST_ASSERT(!ftruncate(m->fd, size), "ftruncate");
		if (b == SHMEM_PRIVATE)
			flags = MAP_PRIVATE;
		break;
	case HUGETLB_2M:
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
		break;
	case HUGETLB_1G:
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB;
		break;
	}
	m->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, m->fd, 0);
	TEST_ASSERT(m->hva != MAP_FAILED, "mmap of %s memory",
		    backing_names[b]);
	/* 4K pages where the backing has them: one exit per page. */
	if (b == ANON || b == SHMEM || b == SHMEM_PRIVATE)
		TEST_ASSERT(!madvise(m->hva, size, MADV_NOHUGEPAGE), "madvise");
}

static void mem_destroy(struct mem *m)
{
	munmap(m->hva, m->size);
	if (m->alias)
		munmap(m->alias, m->size);
	if (m->src)
		munmap(m->src, m->page);
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->fd >= 0)
		close(m->fd);
}

static void mem_register_uffd(struct mem *m, uint64_t mode)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)m->hva, .len = m->size },
		.mode = mode,
	};

	if (mode == UFFDIO_REGISTER_MODE_MINOR)
		api.features = UFFD_FEATURE_MINOR_SHMEM;
	m->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	__TEST_REQUIRE(m->uffd >= 0, "userfaultfd not available");
	TEST_ASSERT(!ioctl(m->uffd, UFFDIO_API, &api), "UFFDIO_API");
	TEST_ASSERT(!ioctl(m->uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
	if (mode == UFFDIO_REGISTER_MODE_MISSING) {
		m->src = mmap(NULL, m->page, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		TEST_ASSERT(m->src != MAP_FAILED, "mmap of the copy source");
		memset(m->src, 0, m->page);
	} else {
		/* The page cache has the pages; the memslot's mapping not. */
		m->alias = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
				MAP_SHARED, m->fd, 0);
		TEST_ASSERT(m->alias != MAP_FAILED, "mmap of the alias");
		memset(m->alias, 0, m->size);
	}
}

/* Make the page at offset @off present in the memslot's mapping. */
static void mem_resolve(struct mem *m, enum resolve how, uint64_t off)
{
	uint64_t start = off & ~(m->page - 1);
	struct uffdio_continue cont = {
		.range = { .start = (uintptr_t)m->hva + start, .len = m->page },
	};
	struct uffdio_copy copy = {
		.dst = (uintptr_t)m->hva + start, .src = (uintptr_t)m->src,
		.len = m->page,
	};

	switch (how) {
	case POPULATE:
		TEST_ASSERT(!madvise(m->hva + start, m->page,
				     MADV_POPULATE_WRITE),
			    "MADV_POPULATE_WRITE at 0x%lx", start);
		break;
	case UFFD_COPY:
		TEST_ASSERT(!ioctl(m->uffd, UFFDIO_COPY, &copy),
			    "UFFDIO_COPY at 0x%lx", start);
		break;
	case UFFD_CONTINUE:
		TEST_ASSERT(!ioctl(m->uffd, UFFDIO_CONTINUE, &cont),
			    "UFFDIO_CONTINUE at 0x%lx", start);
		break;
	}
}

static void set_slot(struct kvm_vm *vm, struct mem *m, uint32_t flags)
{
	vm_set_user_memory_region2(vm, MEM_SLOT, flags, MEM_GPA, m->size,
				   m->hva, -1, 0);
}

/*
 * Run the guest to its next GUEST_SYNC or GUEST_DONE, resolving every exit
 * with @how, or with a host read of the page if @host_read.  Returns the
 * number of exits; *@cmd receives the ucall.
 */
static uint64_t run_to_ucall(struct kvm_vcpu *vcpu, struct mem *m,
			     enum resolve how, bool host_read, uint64_t *cmd)
{
	uint64_t exits = 0, off;
	struct kvm_run *run = vcpu->run;

	for (;;) {
		if (!_vcpu_run(vcpu))
			break;
		TEST_ASSERT(errno == EFAULT, "KVM_RUN: %s", strerror(errno));
		TEST_ASSERT_EQ(run->exit_reason, KVM_EXIT_MEMORY_FAULT);
		/* Where, not why. */
		TEST_ASSERT_EQ(run->memory_fault.flags, 0);
		TEST_ASSERT_EQ(run->memory_fault.size, 4096);
		TEST_ASSERT(run->memory_fault.gpa >= MEM_GPA &&
			    run->memory_fault.gpa < MEM_GPA + m->size &&
			    !(run->memory_fault.gpa & 4095),
			    "memory fault at 0x%llx", run->memory_fault.gpa);
		off = run->memory_fault.gpa - MEM_GPA;
		if (host_read)
			TEST_ASSERT_EQ(READ_ONCE(*(uint64_t *)(m->hva + off)), 0);
		else
			mem_resolve(m, how, off);
		exits++;
		TEST_ASSERT(exits <= m->size / 4096, "exits without end");
	}
	*cmd = gmem_expect_ucall(vcpu);
	return exits;
}

/* Run the guest to GUEST_DONE, resolving every exit with @how. */
static uint64_t run_resolving(struct kvm_vcpu *vcpu, struct mem *m,
			      enum resolve how)
{
	uint64_t cmd, exits = run_to_ucall(vcpu, m, how, false, &cmd);

	TEST_ASSERT_EQ(cmd, UCALL_DONE);
	return exits;
}

static void check_contents(struct mem *m, uint64_t tag)
{
	uint64_t off;

	for (off = 0; off < m->size; off += m->stride)
		TEST_ASSERT_EQ(*(uint64_t *)(m->hva + off),
			       (MEM_GPA + off) ^ tag);
}

static struct kvm_vm *vm_for(struct mem *m, struct kvm_vcpu **vcpu,
			     uint64_t tag)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, guest_code);

	vcpu_args_set(*vcpu, 3, m->size, tag, m->stride);
	set_slot(vm, m, KVM_MEM_EXIT_ON_MISSING);
	/* The guest's page tables of 1 GiB in 4K pages would not fit. */
	if (m->backing == HUGETLB_1G)
		virt_map_level(vm, MEM_GPA, MEM_GPA, m->size, PG_LEVEL_1G);
	else
		virt_map(vm, MEM_GPA, MEM_GPA, m->size / getpagesize());
	return vm;
}

static bool hugetlb_available(uint64_t page)
{
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		       (page == SZ_1G ? MAP_HUGE_1GB : MAP_HUGE_2MB), -1, 0);

	if (p == MAP_FAILED)
		return false;
	/* Fault it in: a pool without a free page fails here. */
	if (madvise(p, page, MADV_POPULATE_WRITE)) {
		munmap(p, page);
		return false;
	}
	munmap(p, page);
	return true;
}

/* Every page of @b exits once and is resolved by the vCPU thread. */
static void test_exits(enum backing b, enum resolve how, uint64_t size)
{
	uint64_t tag = 0x5a5a0000 + b * 16 + how, exits;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct mem m;

	mem_create(&m, b, size);
	if (how == UFFD_COPY)
		mem_register_uffd(&m, UFFDIO_REGISTER_MODE_MISSING);
	else if (how == UFFD_CONTINUE)
		mem_register_uffd(&m, UFFDIO_REGISTER_MODE_MINOR);
	vm = vm_for(&m, &vcpu, tag);
	exits = run_resolving(vcpu, &m, how);
	TEST_ASSERT_EQ(exits, size / m.page);
	check_contents(&m, tag);
	kvm_vm_free(vm);
	mem_destroy(&m);
	ksft_test_result_pass("%s, %s: %lu exits\n", backing_names[b],
			      resolve_names[how], exits);
}

/*
 * A host read maps a private file mapping's page read-only: the guest's
 * read takes it (a second pass of reads does not exit), its write exits.
 */
static void test_read_then_write(void)
{
	uint64_t size = 64 * 4096, cmd, off;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct mem m;

	mem_create(&m, SHMEM_PRIVATE, size);
	vm = vm_create_with_one_vcpu(&vcpu, guest_rw_code);
	vcpu_args_set(vcpu, 2, size, 0x77);
	set_slot(vm, &m, KVM_MEM_EXIT_ON_MISSING);
	virt_map(vm, MEM_GPA, MEM_GPA, size / getpagesize());

	TEST_ASSERT_EQ(run_to_ucall(vcpu, &m, POPULATE, true, &cmd),
		       size / 4096);
	TEST_ASSERT_EQ(cmd, UCALL_SYNC);
	/* Read-only host mappings were taken: no exit the second time. */
	TEST_ASSERT_EQ(run_to_ucall(vcpu, &m, POPULATE, true, &cmd), 0);
	TEST_ASSERT_EQ(cmd, UCALL_SYNC);
	TEST_ASSERT_EQ(run_to_ucall(vcpu, &m, POPULATE, false, &cmd),
		       size / 4096);
	TEST_ASSERT_EQ(cmd, UCALL_DONE);
	for (off = 0; off < size; off += 4096)
		TEST_ASSERT_EQ(*(uint64_t *)(m.hva + off),
			       (MEM_GPA + off) ^ 0x77);
	kvm_vm_free(vm);
	mem_destroy(&m);
	ksft_test_result_pass("reads take read-only host mappings, writes exit\n");
}

/* KVM_PRE_FAULT_MEMORY maps what the host maps and fails elsewhere. */
static void test_pre_fault(void)
{
	struct kvm_pre_fault_memory range = { .gpa = MEM_GPA, .size = 4096 };
	uint64_t size = 16 * 4096;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct mem m;
	int r;

	if (!kvm_has_cap(KVM_CAP_PRE_FAULT_MEMORY)) {
		ksft_test_result_skip("no KVM_PRE_FAULT_MEMORY\n");
		return;
	}
	mem_create(&m, ANON, size);
	vm = vm_for(&m, &vcpu, 0x99);
	r = __vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range);
	TEST_ASSERT(r && errno == EFAULT,
		    "pre-faulting a missing page: %d, %s", r, strerror(errno));
	mem_resolve(&m, POPULATE, 0);
	range = (struct kvm_pre_fault_memory){ .gpa = MEM_GPA, .size = 4096 };
	r = __vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range);
	TEST_ASSERT(!r && !range.size, "pre-faulting a present page: %d, %s",
		    r, strerror(errno));
	/* The guest's writes: one exit fewer, the page pre-faulted. */
	TEST_ASSERT_EQ(run_resolving(vcpu, &m, POPULATE), size / 4096 - 1);
	check_contents(&m, 0x99);
	kvm_vm_free(vm);
	mem_destroy(&m);
	ksft_test_result_pass("KVM_PRE_FAULT_MEMORY fails where the host maps nothing\n");
}

/* The flag set and cleared on a memslot the guest has used. */
static void test_toggle(void)
{
	uint64_t size = 256 * 4096;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct mem m;

	mem_create(&m, ANON, size);
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	set_slot(vm, &m, 0);
	virt_map(vm, MEM_GPA, MEM_GPA, size / getpagesize());

	/* Without the flag KVM faults the pages in itself. */
	vcpu_args_set(vcpu, 3, size, 1, 4096);
	TEST_ASSERT_EQ(run_resolving(vcpu, &m, POPULATE), 0);
	check_contents(&m, 1);

	/* Dropped (KVM's mappings with them), then the flag on. */
	TEST_ASSERT(!madvise(m.hva, size, MADV_DONTNEED), "MADV_DONTNEED");
	set_slot(vm, &m, KVM_MEM_EXIT_ON_MISSING);
	vcpu_arch_set_entry_point(vcpu, guest_code);
	vcpu_args_set(vcpu, 3, size, 2, 4096);
	TEST_ASSERT_EQ(run_resolving(vcpu, &m, POPULATE),
		       size / 4096);
	check_contents(&m, 2);

	/* Dropped again, the flag off: no exit. */
	TEST_ASSERT(!madvise(m.hva, size, MADV_DONTNEED), "MADV_DONTNEED");
	set_slot(vm, &m, 0);
	vcpu_arch_set_entry_point(vcpu, guest_code);
	vcpu_args_set(vcpu, 3, size, 3, 4096);
	TEST_ASSERT_EQ(run_resolving(vcpu, &m, POPULATE), 0);
	check_contents(&m, 3);

	kvm_vm_free(vm);
	mem_destroy(&m);
	ksft_test_result_pass("flag set and cleared on a live memslot\n");
}

/*
 * Refused with KVM_MEM_GUEST_MEMFD and by the v1 ioctl, with nothing
 * created; accepted with KVM_MEM_READONLY and dirty logging.  The
 * capability is there and the guest_memfd ones keep their values.
 */
static void test_flags(void)
{
	uint64_t gmem = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
	struct kvm_vm *vm;
	void *hva;
	int fd, r;

	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_EXIT_ON_MISSING), 1);
	hva = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(hva != MAP_FAILED, "mmap");

	vm = vm_create_barebones();
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_EXIT_ON_MISSING), 1);
	r = __vm_set_user_memory_region(vm, MEM_SLOT, KVM_MEM_EXIT_ON_MISSING,
					MEM_GPA, SZ_2M, hva);
	TEST_ASSERT(r && errno == EINVAL,
		    "KVM_SET_USER_MEMORY_REGION (v1) must refuse the flag");
	r = __vm_set_user_memory_region2(vm, MEM_SLOT,
					 KVM_MEM_EXIT_ON_MISSING |
					 KVM_MEM_READONLY, MEM_GPA, SZ_2M,
					 hva, -1, 0);
	TEST_ASSERT(!r, "with KVM_MEM_READONLY: %s", strerror(errno));
	r = __vm_set_user_memory_region2(vm, MEM_SLOT + 1,
					 KVM_MEM_EXIT_ON_MISSING |
					 KVM_MEM_LOG_DIRTY_PAGES,
					 MEM_GPA + SZ_2M, SZ_2M, hva, -1, 0);
	TEST_ASSERT(!r, "with dirty logging: %s", strerror(errno));
	kvm_vm_free(vm);

	if (!(kvm_check_cap(KVM_CAP_VM_TYPES) &
	      BIT(KVM_X86_SW_PROTECTED_VM))) {
		munmap(hva, SZ_2M);
		ksft_test_result_pass("flags (no KVM_X86_SW_PROTECTED_VM)\n");
		return;
	}
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_EXIT_ON_MISSING), 1);
	/* The guest_memfd capabilities are theirs, not this one's. */
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & gmem,
		       gmem);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES),
		       KVM_MEMORY_ATTRIBUTE_PRIVATE);
	fd = vm_create_guest_memfd(vm, SZ_2M, 0);
	r = __vm_set_user_memory_region2(vm, MEM_SLOT,
					 KVM_MEM_GUEST_MEMFD |
					 KVM_MEM_EXIT_ON_MISSING,
					 MEM_GPA, SZ_2M, hva, fd, 0);
	TEST_ASSERT(r && errno == EINVAL,
		    "EXIT_ON_MISSING with GUEST_MEMFD must fail with EINVAL");
	/* Nothing was created: the same slot without the flag works. */
	r = __vm_set_user_memory_region2(vm, MEM_SLOT, KVM_MEM_GUEST_MEMFD,
					 MEM_GPA, SZ_2M, hva, fd, 0);
	TEST_ASSERT(!r, "the memslot without the flag: %s", strerror(errno));
	/* Nor can a guest_memfd memslot take it later. */
	r = __vm_set_user_memory_region2(vm, MEM_SLOT,
					 KVM_MEM_GUEST_MEMFD |
					 KVM_MEM_EXIT_ON_MISSING,
					 MEM_GPA, SZ_2M, hva, fd, 0);
	TEST_ASSERT(r && errno == EINVAL,
		    "adding EXIT_ON_MISSING to a guest_memfd slot: EINVAL");
	kvm_vm_free(vm);
	close(fd);
	munmap(hva, SZ_2M);
	ksft_test_result_pass("flags: refused with GUEST_MEMFD and by v1, %s\n",
			      "with READONLY and dirty logging");
}

int main(int argc, char *argv[])
{
	bool has_2m, has_1g;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_EXIT_ON_MISSING));
	has_2m = hugetlb_available(SZ_2M);
	has_1g = hugetlb_available(SZ_1G);

	ksft_print_header();
	ksft_set_plan(11);

	test_exits(ANON, POPULATE, 512 * 4096);
	test_exits(ANON, UFFD_COPY, 512 * 4096);
	test_exits(SHMEM, POPULATE, 512 * 4096);
	test_exits(SHMEM, UFFD_CONTINUE, 512 * 4096);
	if (has_2m) {
		test_exits(HUGETLB_2M, POPULATE, 4 * SZ_2M);
		test_exits(HUGETLB_2M, UFFD_COPY, 4 * SZ_2M);
	} else {
		ksft_test_result_skip("no free 2M hugetlb page\n");
		ksft_test_result_skip("no free 2M hugetlb page\n");
	}
	if (has_1g)
		test_exits(HUGETLB_1G, POPULATE, SZ_1G);
	else
		ksft_test_result_skip("no free 1G hugetlb page\n");
	test_read_then_write();
	test_toggle();
	test_pre_fault();
	test_flags();
	ksft_finished();
}
