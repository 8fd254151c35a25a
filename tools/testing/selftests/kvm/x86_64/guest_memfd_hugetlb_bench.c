// SPDX-License-Identifier: GPL-2.0-only
/*
 * A guest touching 1 GiB of memory for the first time, one write per 4K
 * page, in one KVM_X86_SW_PROTECTED_VM per backing:
 *  - private memory in a guest_memfd of 4K pages,
 *  - private memory in a hugetlb guest_memfd of 2M and of 1G pages,
 *  - shared memory from plain 1G hugetlb pages in an ordinary memslot (the
 *    reference: what 1G pages cost without guest_memfd).
 * Prints the time of the guest run, its ratio to the 4K guest_memfd and to
 * the reference, KVM's page-size stats after the run, and the latency of
 * creating and closing a 1G-backed file. Then, for files the host can map
 * (GUEST_MEMFD_FLAG_MMAP), all of them allocated and private: the latency
 * of converting one 4K page to shared (which splits a 2M or 1G page) and
 * back to private (which merges it again), beside the same conversions in
 * a 4K guest_memfd. Needs one 2M pool of 1 GiB and two 1G pages.
 *
 * With -s, the first table is for shared memory instead, as a VMM that
 * keeps all guest RAM in guest_memfd uses it: files created with
 * GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED, the memslot's
 * address the file's own mapping (the plain 1G memslot is the same).
 *
 * Usage: guest_memfd_hugetlb_bench [-r rounds] [-s]
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define MEM_GPA		(4ULL << 30)
#define MEM_SLOT	10
#define SZ_1G		(1024UL << 20)

#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB	(30U << 26)
#endif

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

enum backing { GMEM_4K, GMEM_2M, GMEM_1G, PLAIN_1G, NR_BACKINGS };

static const char * const names[NR_BACKINGS] = {
	"guest_memfd, 4K pages", "guest_memfd, hugetlb 2M",
	"guest_memfd, hugetlb 1G", "plain hugetlb 1G memslot",
};

static const uint64_t gmem_flags[NR_BACKINGS] = {
	[GMEM_2M] = GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_2MB,
	[GMEM_1G] = GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_1GB,
};

static void guest_code(void)
{
	uint64_t gpa;

	for (gpa = MEM_GPA; gpa < MEM_GPA + SZ_1G; gpa += 4096)
		WRITE_ONCE(*(uint64_t *)gpa, gpa);
	GUEST_DONE();
}

struct result {
	double ns;
	uint64_t pages_4k, pages_2m, pages_1g;
};

static void run_one(enum backing b, bool shared, struct result *r)
{
	uint64_t s4k, s2m, s1g, t0;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	void *area, *hva;
	struct ucall uc;
	int fd = -1;

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	if (b == PLAIN_1G) {
		area = mmap(NULL, SZ_1G, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			    MAP_HUGE_1GB, -1, 0);
		TEST_ASSERT(area != MAP_FAILED, "no 1G hugetlb page");
		hva = area;
		vm_set_user_memory_region2(vm, MEM_SLOT, 0, MEM_GPA, SZ_1G,
					   hva, -1, 0);
	} else {
		/* 1G-aligned hva: KVM maps nothing huge where gfn and hva disagree. */
		area = mmap(NULL, 2 * SZ_1G, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		TEST_ASSERT(area != MAP_FAILED, "mmap failed");
		hva = (void *)(((uintptr_t)area + SZ_1G - 1) & ~(SZ_1G - 1));
		fd = vm_create_guest_memfd(vm, SZ_1G, gmem_flags[b] |
					   (shared ? GUEST_MEMFD_FLAG_MMAP |
					    GUEST_MEMFD_FLAG_INIT_SHARED : 0));
		if (shared)
			TEST_ASSERT(mmap(hva, SZ_1G, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_FIXED, fd, 0) == hva,
				    "mmap of the guest_memfd failed");
		vm_set_user_memory_region2(vm, MEM_SLOT, KVM_MEM_GUEST_MEMFD,
					   MEM_GPA, SZ_1G, hva, fd, 0);
		if (!shared)
			vm_mem_set_private(vm, MEM_GPA, SZ_1G);
	}
	virt_map_level(vm, MEM_GPA, MEM_GPA, SZ_1G, PG_LEVEL_1G);

	s4k = vm_get_stat(vm, "pages_4k");
	s2m = vm_get_stat(vm, "pages_2m");
	s1g = vm_get_stat(vm, "pages_1g");
	t0 = gmem_now_ns();
	vcpu_run(vcpu);
	r->ns = gmem_now_ns() - t0;
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_DONE);
	r->pages_4k = vm_get_stat(vm, "pages_4k") - s4k;
	r->pages_2m = vm_get_stat(vm, "pages_2m") - s2m;
	r->pages_1g = vm_get_stat(vm, "pages_1g") - s1g;

	kvm_vm_free(vm);
	if (fd >= 0)
		close(fd);
	munmap(area, b == PLAIN_1G ? SZ_1G : 2 * SZ_1G);
}

/* Nanoseconds to create and close a 1G-backed file of 1 GiB. */
static double create_close_ns(int rounds)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	uint64_t t0 = gmem_now_ns();
	int i;

	for (i = 0; i < rounds; i++)
		close(vm_create_guest_memfd(vm, SZ_1G,
					    gmem_flags[GMEM_1G]));
	t0 = gmem_now_ns() - t0;
	kvm_vm_free(vm);
	return (double)t0 / rounds;
}

static int convert(int fd, uint64_t offset, bool to_private)
{
	struct kvm_memory_attributes2 c = {
		.offset = offset,
		.size = 4096,
		.attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	return ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &c);
}

/*
 * Mean nanoseconds of converting one 4K page of an allocated, private file
 * of backing @b to shared (*@split) and back (*@merge), a different 2M
 * block each round.
 */
static void convert_ns(enum backing b, int rounds, double *split,
		       double *merge)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	int fd = vm_create_guest_memfd(vm, SZ_1G, gmem_flags[b] |
				       GUEST_MEMFD_FLAG_MMAP);
	uint64_t off, t0, ts = 0, tp = 0;
	int i;

	for (i = 0; i < rounds; i++) {
		off = (uint64_t)(i * 37 % 512) << 21 | (i % 512) << 12;
		/* The 4K file allocates the block, the others all of it. */
		TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE,
				       off & ~((2UL << 20) - 1), 2UL << 20),
			    "fallocate failed");
		t0 = gmem_now_ns();
		TEST_ASSERT(!convert(fd, off, false), "conversion to shared failed");
		ts += gmem_now_ns() - t0;
		t0 = gmem_now_ns();
		TEST_ASSERT(!convert(fd, off, true), "conversion to private failed");
		tp += gmem_now_ns() - t0;
	}
	close(fd);
	kvm_vm_free(vm);
	*split = (double)ts / rounds;
	*merge = (double)tp / rounds;
}

int main(int argc, char *argv[])
{
	struct result res[NR_BACKINGS] = {};
	double split, merge, split4k = 0, merge4k = 0;
	int rounds = 3, opt, i, b;
	bool shared = false;
	struct result r;

	while ((opt = getopt(argc, argv, "r:s")) != -1) {
		if (opt == 's') {
			shared = true;
			continue;
		}
		if (opt != 'r') {
			printf("usage: %s [-r rounds] [-s]\n", argv[0]);
			exit(KSFT_FAIL);
		}
		rounds = max(1, atoi(optarg));
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));

	/* Best of @rounds: a shared, noisy machine only ever adds time. */
	for (i = 0; i < rounds; i++) {
		for (b = 0; b < NR_BACKINGS; b++) {
			run_one(b, shared, &r);
			if (!i || r.ns < res[b].ns)
				res[b] = r;
		}
	}

	printf("\nguest touching 1 GiB of %s memory once per 4K page, best of %d runs\n\n",
	       shared ? "shared" : "private", rounds);
	printf("| %-26s | %12s | %9s | %9s | %8s | %8s | %8s |\n", "backing",
	       "ms", "vs 4K", "vs plain", "4K maps", "2M maps", "1G maps");
	printf("|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------------",
	       "-------------:", "----------:", "----------:", "---------:",
	       "---------:", "---------:");
	for (b = 0; b < NR_BACKINGS; b++)
		printf("| %-26s | %12.1f | %8.1fx | %8.2fx | %8lu | %8lu | %8lu |\n",
		       names[b], res[b].ns / 1e6, res[GMEM_4K].ns / res[b].ns,
		       res[b].ns / res[PLAIN_1G].ns, res[b].pages_4k,
		       res[b].pages_2m, res[b].pages_1g);
	printf("\n| create + close of a 1G-backed 1 GiB file | %.0f ns |\n",
	       create_close_ns(100));

	printf("\none 4K page of an allocated private 1 GiB file, mean of %d\n\n",
	       20 * rounds);
	printf("| %-26s | %18s | %9s | %20s | %9s |\n", "backing",
	       "to shared, us", "x 4K", "back to private, us", "x 4K");
	printf("|%s|%s|%s|%s|%s|\n", "----------------------------",
	       "-------------------:", "----------:", "---------------------:",
	       "----------:");
	for (b = 0; b < PLAIN_1G; b++) {
		convert_ns(b, 20 * rounds, &split, &merge);
		if (b == GMEM_4K) {
			split4k = split;
			merge4k = merge;
		}
		printf("| %-26s | %18.1f | %8.1fx | %20.1f | %8.1fx |\n",
		       names[b], split / 1e3, split / split4k, merge / 1e3,
		       merge / merge4k);
	}
	return 0;
}
