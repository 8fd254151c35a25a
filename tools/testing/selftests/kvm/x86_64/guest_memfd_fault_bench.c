// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cost of one stage-2 fault on guest_memfd, beside the same fault on
 * ordinary memory: a guest writes each 4K page of a region once, so every
 * write is one fault that KVM resolves in the kernel (no exit to
 * userspace), in one KVM_X86_SW_PROTECTED_VM per backing of 1 GiB (the
 * pages written are allocated beforehand, the rest is not):
 *  - anonymous memory in an ordinary memslot (the reference),
 *  - private memory in a guest_memfd without a state (6.12's model: the
 *    VM's attributes say private),
 *  - private memory in a guest_memfd that the host can map
 *    (GUEST_MEMFD_FLAG_MMAP: the file's state says private),
 *  - shared memory in a guest_memfd created shared
 *    (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED).
 * Prints the time per fault (the best of the rounds) and its ratio to the
 * reference.  Under QEMU's -icount shift=0 the guest clock counts
 * instructions, so the figures are instructions per fault ("make profile"
 * runs it so); otherwise they are nanoseconds.
 *
 * Usage: guest_memfd_fault_bench [-p pages] [-r rounds] [-b backing]
 *   -b N runs backing N (0-3, in the order above) alone, once per round.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
#define MEM_SIZE	(1024UL << 20)

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

enum backing { ANON, GMEM_PRIVATE, GMEM_MMAP_PRIVATE, GMEM_SHARED, NR_BACKINGS };

static const char * const names[NR_BACKINGS] = {
	"anonymous memory, ordinary memslot",
	"guest_memfd private, VM attributes",
	"guest_memfd private, file state (MMAP)",
	"guest_memfd shared (MMAP|INIT_SHARED)",
};

static const uint64_t gmem_flags[NR_BACKINGS] = {
	[GMEM_MMAP_PRIVATE] = GUEST_MEMFD_FLAG_MMAP,
	[GMEM_SHARED] = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
};

static void guest_code(uint64_t pages)
{
	uint64_t gpa;

	for (gpa = MEM_GPA; gpa < MEM_GPA + pages * 4096; gpa += 4096)
		WRITE_ONCE(*(uint64_t *)gpa, gpa);
	GUEST_DONE();
}

/* Time per fault of one run over the first @pages pages of backing @b. */
static double run_one(enum backing b, uint64_t pages)
{
	uint64_t size = pages * 4096, s4k, t0, t;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	void *hva;
	int fd = -1;

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	vcpu_args_set(vcpu, 1, pages);
	if (b == ANON) {
		hva = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		TEST_ASSERT(hva != MAP_FAILED, "mmap failed");
		/*
		 * 4K pages, as in the files, populated: the fault is KVM's
		 * alone, as with guest_memfd.
		 */
		TEST_ASSERT(!madvise(hva, MEM_SIZE, MADV_NOHUGEPAGE),
			    "madvise");
		memset(hva, 0, size);
		vm_set_user_memory_region2(vm, MEM_SLOT, 0, MEM_GPA, MEM_SIZE,
					   hva, -1, 0);
	} else {
		fd = vm_create_guest_memfd(vm, MEM_SIZE, gmem_flags[b]);
		/* A file with a state serves shared pages itself. */
		if (gmem_flags[b] & GUEST_MEMFD_FLAG_MMAP)
			hva = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0);
		else
			hva = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				   -1, 0);
		TEST_ASSERT(hva != MAP_FAILED, "mmap failed");
		/* Allocated: the fault maps, it does not allocate. */
		TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size),
			    "fallocate");
		vm_set_user_memory_region2(vm, MEM_SLOT, KVM_MEM_GUEST_MEMFD,
					   MEM_GPA, MEM_SIZE, hva, fd, 0);
		if (b == GMEM_PRIVATE)
			vm_mem_set_private(vm, MEM_GPA, MEM_SIZE);
	}
	virt_map(vm, MEM_GPA, MEM_GPA, pages);

	s4k = vm_get_stat(vm, "pages_4k");
	t0 = gmem_now_ns();
	vcpu_run(vcpu);
	t = gmem_now_ns() - t0;
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_DONE);
	/* Every page was one 4K mapping, i.e. one fault. */
	TEST_ASSERT(vm_get_stat(vm, "pages_4k") - s4k >= pages,
		    "%s: %lu 4K mappings for %lu pages", names[b],
		    vm_get_stat(vm, "pages_4k") - s4k, pages);

	kvm_vm_free(vm);
	munmap(hva, MEM_SIZE);
	if (fd >= 0)
		close(fd);
	return (double)t / pages;
}

int main(int argc, char *argv[])
{
	double best[NR_BACKINGS];
	uint64_t pages = 8192;
	int rounds = 3, only = -1, opt, i, b;

	while ((opt = getopt(argc, argv, "p:r:b:")) != -1) {
		switch (opt) {
		case 'p':
			pages = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'b':
			only = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-p pages] [-r rounds] [-b backing]\n",
				argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_ASSERT(pages && pages <= MEM_SIZE / 4096 && rounds > 0,
		    "pages: 1 to %lu; rounds: positive", MEM_SIZE / 4096);
	TEST_ASSERT(only < NR_BACKINGS, "backing %d: 0 to %d", only,
		    NR_BACKINGS - 1);

	if (only >= 0) {
		for (i = 0; i < rounds; i++)
			printf("%s: %.0f per fault\n", names[only],
			       run_one(only, pages));
		return 0;
	}

	for (b = 0; b < NR_BACKINGS; b++)
		best[b] = 0;
	/* Rounds interleave the backings: drift hits each alike. */
	for (i = 0; i < rounds; i++) {
		for (b = 0; b < NR_BACKINGS; b++) {
			double t = run_one(b, pages);

			if (!i || t < best[b])
				best[b] = t;
		}
	}

	printf("%lu faults per run, best of %d rounds\n", pages, rounds);
	printf("%-40s %14s %10s\n", "backing", "per fault", "vs anon");
	for (b = 0; b < NR_BACKINGS; b++)
		printf("%-40s %14.0f %9.2fx\n", names[b], best[b],
		       best[b] / best[ANON]);
	return 0;
}
