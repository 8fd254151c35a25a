// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmark: a 4K hole in a 64 GiB memslot with dirty logging on, punched
 * with KVM_SET_MEMSLOT_HOLE against what VMMs do without it: read the
 * dirty log, delete the slot and create one on each side of the hole (and
 * later delete both and create the slot again).
 *
 * The guest writes a working set of the slot (64 MiB by default) before
 * each change and again after it.  Printed per method, medians over the
 * rounds: the time of the change and of its undo, the time the guest then
 * takes to write its working set again (re-faulting what the change
 * zapped), the exits on the way, the dirty bits KVM still has for the
 * pages written before the change, and the kernel memory the change
 * leaves allocated (vmalloc + unreclaimable slab, /proc/meminfo) plus the
 * copy of the dirty bitmap the VMM must keep to not lose it.
 *
 * Usage: memslot_hole_bench [-g slot GiB] [-w working set MiB] [-r rounds]
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define MEM_GPA		(4ULL << 30)
#define SLOT		10
#define SLOT_B		11
#define PAGE		4096UL
#define MAX_ROUNDS	16

static uint64_t g_size;

/* Write every page of the working set, once per run. */
static void guest_code(void)
{
	uint64_t gpa;

	for (;;) {
		for (gpa = MEM_GPA; gpa < MEM_GPA + g_size; gpa += PAGE)
			WRITE_ONCE(*(uint64_t *)gpa, gpa);
		GUEST_SYNC(0);
	}
}

struct bench {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint8_t *hva;
	uint64_t slot_size, ws, hole;	/* hole: its gpa */
	unsigned long *bitmap;
};

/* Run the guest over its working set; the exits on the way. */
static uint64_t guest_pass(struct bench *b)
{
	struct kvm_run *run = b->vcpu->run;
	uint64_t exits = 0;

	for (;;) {
		vcpu_run(b->vcpu);
		if (run->exit_reason != KVM_EXIT_MMIO)
			break;
		exits++;
	}
	gmem_expect_sync(b->vcpu);
	return exits;
}

static long meminfo_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	TEST_ASSERT(f, "no /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) &&
		    line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static long kernel_kb(void)
{
	return meminfo_kb("VmallocUsed") + meminfo_kb("SUnreclaim");
}

static uint64_t dirty_pages(struct bench *b, uint32_t slot, uint64_t npages)
{
	uint64_t n = 0, i;

	kvm_vm_get_dirty_log(b->vm, slot, b->bitmap);
	for (i = 0; i < npages; i++)
		n += !!test_bit(i, b->bitmap);
	return n;
}

struct result {
	double change_us, undo_us, retouch_ms;
	uint64_t exits, dirty_kept;
	long kernel_kb, vmm_kb;
};

static void set_slot(struct bench *b, uint32_t slot, uint64_t gpa,
		     uint64_t size)
{
	vm_set_user_memory_region2(b->vm, slot, size ? KVM_MEM_LOG_DIRTY_PAGES : 0,
				   gpa, size, size ? b->hva + (gpa - MEM_GPA) : NULL,
				   0, 0);
}

static void hole_op(struct bench *b, uint32_t op)
{
	struct kvm_memslot_hole hole = {
		.slot = SLOT, .op = op,
		.guest_phys_addr = b->hole, .size = PAGE,
	};

	vm_ioctl(b->vm, KVM_SET_MEMSLOT_HOLE, &hole);
}

/*
 * A round: the dirty log is read (clean start), the guest writes its
 * working set, the change is made and timed, KVM's dirty bits are counted
 * (those of the pages written before the change), the guest writes the
 * working set again (timed), the change is undone (timed).
 */
static void round_hole(struct bench *b, struct result *r)
{
	uint64_t t0;
	long kb;

	dirty_pages(b, SLOT, b->ws / PAGE);
	guest_pass(b);
	kb = kernel_kb();
	t0 = gmem_now_ns();
	hole_op(b, KVM_MEMSLOT_HOLE_PUNCH);
	r->change_us = (gmem_now_ns() - t0) / 1e3;
	r->kernel_kb = kernel_kb() - kb;
	r->vmm_kb = 0;
	r->dirty_kept = dirty_pages(b, SLOT, b->ws / PAGE);

	t0 = gmem_now_ns();
	r->exits = guest_pass(b);
	r->retouch_ms = (gmem_now_ns() - t0) / 1e6;

	t0 = gmem_now_ns();
	hole_op(b, KVM_MEMSLOT_HOLE_FILL);
	r->undo_us = (gmem_now_ns() - t0) / 1e3;
}

static void round_recreate(struct bench *b, struct result *r)
{
	uint64_t t0, below = b->hole - MEM_GPA;
	long kb;

	dirty_pages(b, SLOT, b->ws / PAGE);
	guest_pass(b);
	kb = kernel_kb();
	t0 = gmem_now_ns();
	/* What the VMM must save first, or the dirty bits are gone. */
	kvm_vm_get_dirty_log(b->vm, SLOT, b->bitmap);
	set_slot(b, SLOT, MEM_GPA, 0);
	set_slot(b, SLOT, MEM_GPA, below);
	set_slot(b, SLOT_B, b->hole + PAGE, b->slot_size - below - PAGE);
	r->change_us = (gmem_now_ns() - t0) / 1e3;
	r->kernel_kb = kernel_kb() - kb;
	r->vmm_kb = b->slot_size / PAGE / 8 / 1024;
	r->dirty_kept = dirty_pages(b, SLOT, below / PAGE) +
			dirty_pages(b, SLOT_B, (b->ws - below - PAGE) / PAGE);

	t0 = gmem_now_ns();
	r->exits = guest_pass(b);
	r->retouch_ms = (gmem_now_ns() - t0) / 1e6;

	t0 = gmem_now_ns();
	set_slot(b, SLOT, MEM_GPA, 0);
	set_slot(b, SLOT_B, b->hole + PAGE, 0);
	set_slot(b, SLOT, MEM_GPA, b->slot_size);
	r->undo_us = (gmem_now_ns() - t0) / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void summarize(const char *name, struct result *r, int n,
		      struct result *out)
{
	double c[MAX_ROUNDS], u[MAX_ROUNDS], t[MAX_ROUNDS];
	int i;

	for (i = 0; i < n; i++) {
		c[i] = r[i].change_us;
		u[i] = r[i].undo_us;
		t[i] = r[i].retouch_ms;
	}
	out->change_us = median(c, n);
	out->undo_us = median(u, n);
	out->retouch_ms = median(t, n);
	out->exits = r[n - 1].exits;
	out->dirty_kept = r[n - 1].dirty_kept;
	out->kernel_kb = r[n - 1].kernel_kb;
	out->vmm_kb = r[n - 1].vmm_kb;
	printf("| %-30s | %10.0f | %10.0f | %12.1f | %6lu | %10lu | %9ld | %9ld |\n",
	       name, out->change_us, out->undo_us, out->retouch_ms, out->exits,
	       out->dirty_kept, out->kernel_kb, out->vmm_kb);
}

int main(int argc, char *argv[])
{
	struct result hole[MAX_ROUNDS], recreate[MAX_ROUNDS], h, d;
	uint64_t gib = 64, ws_mib = 64;
	struct bench b = {};
	int rounds = 3, opt, i;

	while ((opt = getopt(argc, argv, "g:w:r:")) != -1) {
		switch (opt) {
		case 'g':
			gib = atoi_positive("slot GiB", optarg);
			break;
		case 'w':
			ws_mib = atoi_positive("working set MiB", optarg);
			break;
		case 'r':
			rounds = atoi_positive("rounds", optarg);
			break;
		default:
			printf("usage: %s [-g slot GiB] [-w working set MiB] [-r rounds]\n",
			       argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_MEMSLOT_HOLES));
	TEST_ASSERT(rounds <= MAX_ROUNDS && ws_mib < gib * 1024,
		    "at most %d rounds, a working set smaller than the slot",
		    MAX_ROUNDS);

	b.slot_size = gib << 30;
	b.ws = ws_mib << 20;
	b.hole = MEM_GPA + b.ws / 2;
	b.bitmap = calloc(b.slot_size / PAGE / 8, 1);
	b.hva = mmap(NULL, b.slot_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(b.hva != MAP_FAILED && b.bitmap, "out of memory");
	/* Only the working set is ever touched: 4K pages, no THP. */
	madvise(b.hva, b.slot_size, MADV_NOHUGEPAGE);

	b.vm = vm_create_with_one_vcpu(&b.vcpu, guest_code);
	set_slot(&b, SLOT, MEM_GPA, b.slot_size);
	virt_map(b.vm, MEM_GPA, MEM_GPA, b.ws / PAGE);
	write_guest_global(b.vm, g_size, b.ws);
	guest_pass(&b);

	for (i = 0; i < rounds; i++) {
		round_hole(&b, &hole[i]);
		round_recreate(&b, &recreate[i]);
	}

	printf("\nA 4K hole in a %lu GiB memslot with dirty logging;", gib);
	printf(" the guest writes %lu MiB around it (%d rounds, medians)\n\n",
	       ws_mib, rounds);
	printf("| %-30s | %10s | %10s | %12s | %6s | %10s | %9s | %9s |\n",
	       "method", "change us", "undo us", "re-write ms", "exits",
	       "dirty kept", "kernel KiB", "VMM KiB");
	printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------------------------",
	       "------------", "------------", "--------------", "--------",
	       "------------", "-----------", "-----------");
	summarize("KVM_SET_MEMSLOT_HOLE", hole, rounds, &h);
	summarize("delete + 2 new slots", recreate, rounds, &d);
	printf("\nchange: delete + recreate / hole = %.1fx; undo %.1fx; guest re-write %.1fx\n",
	       d.change_us / h.change_us, d.undo_us / h.undo_us,
	       d.retouch_ms / h.retouch_ms);
	printf("dirty pages KVM still has after the change: %lu of %lu (hole)",
	       h.dirty_kept, b.ws / PAGE - 1);
	printf(" vs %lu (recreate; the VMM must merge its %ld KiB copy)\n",
	       d.dirty_kept, d.vmm_kb);

	kvm_vm_free(b.vm);
	munmap(b.hva, b.slot_size);
	free(b.bitmap);
	return 0;
}
