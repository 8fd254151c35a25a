// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmark, not a test: shared <-> private conversion of guest memory
 * through KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd (in place)
 * against the stock path (KVM_SET_MEMORY_ATTRIBUTES on a VM whose
 * guest_memfd cannot be mapped), in one run, as a table of nanoseconds per
 * operation and their ratio. Both sides have one 1 GiB memslot bound to a
 * 1 GiB guest_memfd of a KVM_X86_SW_PROTECTED_VM.
 *
 * Usage: guest_memfd_convert_bench [-r rounds] [-p single-page ops]
 *
 * With GMEM_BENCH_HOOK set, "$GMEM_BENCH_HOOK <phase>" runs after each
 * timed phase (scripts/vm/gmem-profile prints a function profile there).
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

#define BENCH_GPA	0x100000000ULL
#define BENCH_SIZE	(1024UL * 1024 * 1024)
#define BENCH_SLOT	10

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

struct side {
	struct kvm_vm *vm;
	int fd;
	void *hva;
	bool gmem_state;
};

static void side_create(struct side *s, bool gmem_state)
{
	int prot = PROT_READ | PROT_WRITE;

	s->gmem_state = gmem_state;
	s->vm = ____vm_create(protected_vm_shape);
	s->fd = vm_create_guest_memfd(s->vm, BENCH_SIZE,
				      gmem_state ? GUEST_MEMFD_FLAG_MMAP : 0);
	if (gmem_state)
		s->hva = mmap(NULL, BENCH_SIZE, prot, MAP_SHARED, s->fd, 0);
	else
		s->hva = mmap(NULL, BENCH_SIZE, prot,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(s->hva != MAP_FAILED, "mmap failed");
	vm_set_user_memory_region2(s->vm, BENCH_SLOT, KVM_MEM_GUEST_MEMFD,
				   BENCH_GPA, BENCH_SIZE, s->hva, s->fd, 0);
}

static void side_destroy(struct side *s)
{
	kvm_vm_free(s->vm);
	munmap(s->hva, BENCH_SIZE);
	close(s->fd);
}

static void side_convert(struct side *s, uint64_t off, uint64_t size,
			 bool to_private)
{
	if (s->gmem_state) {
		struct kvm_memory_attributes2 c = {
			.offset = off,
			.size = size,
			.attributes = to_private ?
				      KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		};

		TEST_ASSERT(!ioctl(s->fd, KVM_SET_MEMORY_ATTRIBUTES2, &c),
			    "KVM_SET_MEMORY_ATTRIBUTES2 failed");
	} else {
		vm_set_memory_attributes(s->vm, BENCH_GPA + off, size,
					 to_private ?
					 KVM_MEMORY_ATTRIBUTE_PRIVATE : 0);
	}
}

/*
 * Nanoseconds per conversion of [0, size), shared then private, @rounds
 * times (even): the range is private before and after.
 */
static double time_range(struct side *s, uint64_t size, int rounds)
{
	uint64_t t0 = gmem_now_ns();
	int i;

	for (i = 0; i < rounds; i++)
		side_convert(s, 0, size, i & 1);
	return (double)(gmem_now_ns() - t0) / rounds;
}

/*
 * Nanoseconds per single-page conversion of @ops random pages (the same on
 * both sides), to @to_private; the pages have the other state before.
 */
static double time_pages(struct side *s, int ops, bool to_private)
{
	uint64_t page = getpagesize(), t0, npages = BENCH_SIZE / page;
	unsigned int seed = 1;
	int i;

	t0 = gmem_now_ns();
	for (i = 0; i < ops; i++)
		side_convert(s, (rand_r(&seed) % npages) * page, page,
			     to_private);
	return (double)(gmem_now_ns() - t0) / ops;
}

static void phase_done(const char *phase)
{
	const char *hook = getenv("GMEM_BENCH_HOOK");
	char cmd[256];

	if (!hook)
		return;
	snprintf(cmd, sizeof(cmd), "%s '%s'", hook, phase);
	TEST_ASSERT(!system(cmd), "%s failed", cmd);
}

static void row(const char *what, double gmem, double stock)
{
	printf("| %-44s | %16.0f | %16.0f | %8.1fx |\n", what, gmem, stock,
	       stock / gmem);
}

int main(int argc, char *argv[])
{
	int rounds = 20, pages = 2000, opt;
	double g1, s1, gs, ss, gp, sp, gf, sf;
	struct side g, s;

	while ((opt = getopt(argc, argv, "r:p:")) != -1) {
		switch (opt) {
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'p':
			pages = atoi(optarg);
			break;
		default:
			printf("usage: %s [-r rounds] [-p single-page ops]\n",
			       argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	rounds = max(2, rounds + (rounds & 1));

	side_create(&g, true);
	side_create(&s, false);

	g1 = time_range(&g, BENCH_SIZE, rounds);
	phase_done("guest_memfd 1 GiB range");
	s1 = time_range(&s, BENCH_SIZE, rounds);
	phase_done("stock 1 GiB range");
	/* time_range() leaves everything private. */
	gs = time_pages(&g, pages, false);
	phase_done("guest_memfd single pages to shared");
	ss = time_pages(&s, pages, false);
	phase_done("stock single pages to shared");
	gp = time_pages(&g, pages, true);
	phase_done("guest_memfd single pages to private");
	sp = time_pages(&s, pages, true);
	phase_done("stock single pages to private");

	/* Every page allocated: conversion to private checks each one. */
	TEST_ASSERT(!fallocate(g.fd, FALLOC_FL_KEEP_SIZE, 0, BENCH_SIZE),
		    "fallocate failed");
	TEST_ASSERT(!fallocate(s.fd, FALLOC_FL_KEEP_SIZE, 0, BENCH_SIZE),
		    "fallocate failed");
	gf = time_range(&g, BENCH_SIZE, rounds);
	phase_done("guest_memfd 1 GiB range, allocated");
	sf = time_range(&s, BENCH_SIZE, rounds);
	phase_done("stock 1 GiB range, allocated");

	printf("\nshared <-> private conversion, ns per operation (%d rounds, %d single pages)\n\n",
	       rounds, pages);
	printf("| %-44s | %16s | %16s | %9s |\n", "operation",
	       "SET_MEM_ATTRS2", "SET_MEM_ATTRS", "speedup");
	printf("|%s|%s|%s|%s|\n", "----------------------------------------------",
	       "-----------------:", "-----------------:", "----------:");
	row("1 GiB range, no page allocated", g1, s1);
	row("single 4K page to shared, random, unallocated", gs, ss);
	row("single 4K page to private, random, unallocated", gp, sp);
	row("1 GiB range, every page allocated", gf, sf);

	side_destroy(&g);
	side_destroy(&s);
	return 0;
}
