// SPDX-License-Identifier: GPL-2.0-only
/*
 * Post-copy demand paging, in the style of demand_paging_test: each vCPU
 * reads every 4K page of its own region once, every page missing at the
 * start, and the time until all vCPUs are done is measured for
 *  (a) userfaultfd MINOR on shmem (what VMMs do today), one uffd for all
 *      vCPUs with one handler thread, and one uffd and handler per vCPU;
 *  (b) guest_memfd missing bits: the vCPU exits (KVM_EXIT_MEMORY_FAULT,
 *      KVM_MEMORY_EXIT_FLAG_USERFAULT) and its own thread makes the page
 *      present, with KVM_GMEM_SET_USERFAULT (clear; contents already there,
 *      as for MINOR) or with KVM_GMEM_RESOLVE (copying the page in);
 *  (c) guest_memfd with nothing missing: the limit, KVM's own faults only;
 *  (d) as (c), but the guest exits to userspace (an I/O exit) after each
 *      page: what one exit per page costs whatever it is for, the floor
 *      of any design that exits per page;
 *  (a16), (b16) as (a) and (b), with the handler making the faulting page
 *      and the next 15 of its vCPU's region present at once, as a VMM
 *      that prefetches around a fault does;
 *  (e) shmem in a memslot with KVM_MEM_EXIT_ON_MISSING (ordinary memory,
 *      no guest_memfd): the vCPU exits where the host maps nothing and its
 *      own thread maps the page with UFFDIO_CONTINUE (the page cache has
 *      it, as for (a)), with no handler thread and no userfaultfd wait;
 *  (e16) as (e), CONTINUE of the faulting page and the next 15 of its
 *      vCPU's region, against (a16).
 * For (b) it also prints the exit-to-reentry time (from KVM_RUN returning
 * with the exit to the next KVM_RUN) at p50, p99 and max.
 *
 * Usage: guest_memfd_postcopy_bench [-m MiB per vCPU] [-v max vCPUs]
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "userfaultfd_util.h"

#define MEM_GPA		BIT_ULL(32)
#define MEM_SLOT	10
#define PAGE		4096UL
#define MAX_VCPUS	2

enum mode { UFFD_ONE, UFFD_PER_VCPU, GMEM_CLEAR, GMEM_RESOLVE, GMEM_NONE,
	    GMEM_SYNC, UFFD_BATCH, GMEM_BATCH, EXIT_ON_MISSING, EOM_BATCH,
	    NR_MODES };

static const char * const mode_names[NR_MODES] = {
	"(a) uffd MINOR on shmem, one uffd",
	"(a) uffd MINOR on shmem, uffd per vCPU",
	"(b) guest_memfd exits, clear",
	"(b) guest_memfd exits, resolve",
	"(c) guest_memfd, nothing missing",
	"(d) guest_memfd, nothing missing, an I/O exit per page",
	"(a16) uffd per vCPU, CONTINUE 16 pages per fault",
	"(b16) guest_memfd exits, clear 16 pages per exit",
	"(e) shmem, exit on missing, CONTINUE by the vCPU",
	"(e16) exit on missing, CONTINUE 16 pages per exit",
};

/* Pages a fault makes present in the batched modes: the prefetch. */
#define BATCH		16

static uint64_t region_size = 32UL << 20;

/* Read every page once; with @sync_each, exit to userspace after each. */
static void guest_code(uint64_t base, uint64_t size, uint64_t sync_each)
{
	uint64_t gpa, sum = 0;

	for (gpa = base; gpa < base + size; gpa += PAGE) {
		sum += READ_ONCE(*(uint64_t *)gpa);
		if (sync_each)
			GUEST_SYNC(gpa);
	}
	GUEST_SYNC(sum);
	GUEST_DONE();
}

struct worker {
	struct kvm_vcpu *vcpu;
	enum mode mode;
	int fd;			/* guest_memfd; for (e) the userfaultfd */
	uint8_t *mem;		/* (e): the memslot's mapping */
	uint64_t base;		/* its region's offset in the file */
	uint64_t exits;
	uint64_t *lat;		/* exit-to-reentry, ns */
	pthread_t thread;
};

/* A source page for KVM_GMEM_RESOLVE: the pattern the file already holds. */
static uint64_t src_page[PAGE / 8];

static void *vcpu_thread(void *arg)
{
	struct worker *w = arg;
	struct kvm_run *run = w->vcpu->run;
	struct ucall uc;
	uint64_t t;

	for (;;) {
		int r = _vcpu_run(w->vcpu);

		t = gmem_now_ns();
		if (!r) {
			if (get_ucall(w->vcpu, &uc) == UCALL_DONE)
				break;
			TEST_ASSERT(uc.cmd == UCALL_SYNC, "ucall %lu", uc.cmd);
			continue;
		}
		TEST_ASSERT(r == -1 && errno == EFAULT &&
			    run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
			    (w->mode == EXIT_ON_MISSING || w->mode == EOM_BATCH ?
			     !run->memory_fault.flags :
			     (run->memory_fault.flags &
			      KVM_MEMORY_EXIT_FLAG_USERFAULT)),
			    "unexpected exit %u, errno %d", run->exit_reason,
			    errno);
		if (w->mode == EXIT_ON_MISSING || w->mode == EOM_BATCH) {
			uint64_t off = run->memory_fault.gpa - MEM_GPA;
			uint64_t end = w->base + region_size;
			struct uffdio_continue cont = {
				.range.start = (uintptr_t)w->mem + off,
				.range.len = PAGE,
			};

			/* The prefetch stays in this vCPU's region. */
			if (w->mode == EOM_BATCH)
				cont.range.len = min(BATCH * PAGE, end - off);

			TEST_ASSERT(!ioctl(w->fd, UFFDIO_CONTINUE, &cont),
				    "UFFDIO_CONTINUE failed");
		} else if (w->mode == GMEM_CLEAR || w->mode == GMEM_BATCH) {
			uint64_t off = run->memory_fault.gpa - MEM_GPA;
			uint64_t end = w->base + region_size;
			struct kvm_gmem_range rg = { off, PAGE };
			struct kvm_gmem_userfault u = {
				.op = KVM_GMEM_USERFAULT_CLEAR,
				.ranges = (uintptr_t)&rg, .nr_ranges = 1 };

			/* The prefetch stays in this vCPU's region. */
			if (w->mode == GMEM_BATCH)
				rg.size = min(BATCH * PAGE, end - off);
			TEST_ASSERT(!ioctl(w->fd, KVM_GMEM_SET_USERFAULT, &u),
				    "clear failed");
		} else {
			struct kvm_gmem_resolve rs = {
				.offset = run->memory_fault.gpa - MEM_GPA,
				.size = PAGE, .src = (uintptr_t)src_page };

			TEST_ASSERT(!ioctl(w->fd, KVM_GMEM_RESOLVE, &rs),
				    "resolve failed");
		}
		w->lat[w->exits++] = gmem_now_ns() - t;
	}
	return NULL;
}

/* UFFDIO_CONTINUE for a MINOR fault: the page is in shmem's page cache. */
static int minor_handler(int mode, int uffd, struct uffd_msg *msg)
{
	struct uffdio_continue cont = {
		.range.start = msg->arg.pagefault.address & ~(PAGE - 1),
		.range.len = PAGE,
	};

	if (ioctl(uffd, UFFDIO_CONTINUE, &cont) && errno != EEXIST)
		return -1;
	return 0;
}

/* The mapping the batched handler's faults are in, and its vCPU regions. */
static uint64_t uffd_base;

/* CONTINUE the faulting page and the next ones of its vCPU's region. */
static int minor_handler_batch(int mode, int uffd, struct uffd_msg *msg)
{
	uint64_t addr = msg->arg.pagefault.address & ~(PAGE - 1);
	uint64_t end = uffd_base +
		       ((addr - uffd_base) / region_size + 1) * region_size;
	struct uffdio_continue cont = {
		.range.start = addr,
		.range.len = min(BATCH * PAGE, end - addr),
	};

	if (ioctl(uffd, UFFDIO_CONTINUE, &cont) && errno != EEXIST)
		return -1;
	return 0;
}

static bool mode_is_uffd(enum mode mode)
{
	return mode == UFFD_ONE || mode == UFFD_PER_VCPU || mode == UFFD_BATCH;
}

static bool mode_exits(enum mode mode)
{
	return mode == GMEM_CLEAR || mode == GMEM_RESOLVE ||
	       mode == GMEM_BATCH || mode == EXIT_ON_MISSING ||
	       mode == EOM_BATCH;
}

static bool mode_exit_on_missing(enum mode mode)
{
	return mode == EXIT_ON_MISSING || mode == EOM_BATCH;
}

/* (e): one userfaultfd for the whole mapping, without a handler thread. */
static int uffd_minor_no_handler(void *mem, uint64_t size)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)mem, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MINOR,
	};
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	TEST_ASSERT(uffd >= 0, "userfaultfd");
	TEST_ASSERT(!ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API");
	TEST_ASSERT(!ioctl(uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
	return uffd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double ms;
	uint64_t exits;
	uint64_t p50, p99, max;
};

static void run_mode(enum mode mode, int nr_vcpus, struct result *res)
{
	uint64_t size = region_size * nr_vcpus, t0, i, nlat = 0;
	struct uffd_desc *uffd[MAX_VCPUS] = {};
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	struct worker w[MAX_VCPUS] = {};
	uint64_t *lat_all;
	struct kvm_vm *vm;
	int fd, v, nr_uffds, uffd_fd = -1;
	void *mem, *fill;

	vm = vm_create_with_vcpus(nr_vcpus, guest_code, vcpus);
	if (mode_is_uffd(mode) || mode_exit_on_missing(mode)) {
		fd = memfd_create("postcopy-shmem", 0);
		TEST_ASSERT(fd >= 0 && !ftruncate(fd, size), "memfd failed");
	} else {
		fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
					   GUEST_MEMFD_FLAG_INIT_SHARED);
	}
	/* Contents in place first: MINOR faults and clears find them. */
	fill = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(fill != MAP_FAILED, "mmap failed");
	for (i = 0; i < size; i += PAGE)
		*(uint64_t *)(fill + i) = i;
	munmap(fill, size);

	if (mode_exit_on_missing(mode)) {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			   0);
		TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
		vm_set_user_memory_region2(vm, MEM_SLOT,
					   KVM_MEM_EXIT_ON_MISSING, MEM_GPA,
					   size, mem, -1, 0);
		uffd_fd = uffd_minor_no_handler(mem, size);
	} else if (mode_is_uffd(mode)) {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			   0);
		TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
		vm_set_user_memory_region(vm, MEM_SLOT, 0, MEM_GPA, size, mem);
		uffd_base = (uintptr_t)mem;
		nr_uffds = mode == UFFD_ONE ? 1 : nr_vcpus;
		for (v = 0; v < nr_uffds; v++) {
			uint64_t len = size / nr_uffds;

			uffd[v] = uffd_setup_demand_paging(UFFDIO_REGISTER_MODE_MINOR,
							   0, mem + v * len,
							   len, 1,
							   mode == UFFD_BATCH ?
							   minor_handler_batch :
							   minor_handler);
		}
	} else {
		mem = NULL;
		vm_set_user_memory_region2(vm, MEM_SLOT, KVM_MEM_GUEST_MEMFD,
					   MEM_GPA, size, NULL, fd, 0);
		if (mode_exits(mode)) {
			struct kvm_gmem_range rg = { 0, size };
			struct kvm_gmem_userfault u = {
				.op = KVM_GMEM_USERFAULT_SET,
				.ranges = (uintptr_t)&rg, .nr_ranges = 1 };

			TEST_ASSERT(!ioctl(fd, KVM_GMEM_SET_USERFAULT, &u),
				    "set missing failed");
		}
	}
	virt_map(vm, MEM_GPA, MEM_GPA, size / PAGE);

	for (v = 0; v < nr_vcpus; v++) {
		w[v].vcpu = vcpus[v];
		w[v].mode = mode;
		w[v].fd = mode_exit_on_missing(mode) ? uffd_fd : fd;
		w[v].mem = mem;
		w[v].base = v * region_size;
		w[v].lat = calloc(region_size / PAGE + 1, sizeof(uint64_t));
		TEST_ASSERT(w[v].lat, "out of memory");
		vcpu_args_set(vcpus[v], 3, MEM_GPA + v * region_size,
			      region_size, mode == GMEM_SYNC);
	}

	t0 = gmem_now_ns();
	for (v = 0; v < nr_vcpus; v++)
		pthread_create(&w[v].thread, NULL, vcpu_thread, &w[v]);
	for (v = 0; v < nr_vcpus; v++)
		pthread_join(w[v].thread, NULL);
	res->ms = (gmem_now_ns() - t0) / 1e6;

	res->exits = 0;
	for (v = 0; v < nr_vcpus; v++)
		res->exits += w[v].exits;
	lat_all = calloc(res->exits + 1, sizeof(uint64_t));
	for (v = 0; v < nr_vcpus; v++) {
		memcpy(lat_all + nlat, w[v].lat, w[v].exits * sizeof(uint64_t));
		nlat += w[v].exits;
		free(w[v].lat);
	}
	qsort(lat_all, nlat, sizeof(uint64_t), cmp_u64);
	res->p50 = nlat ? lat_all[nlat / 2] : 0;
	res->p99 = nlat ? lat_all[nlat * 99 / 100] : 0;
	res->max = nlat ? lat_all[nlat - 1] : 0;
	free(lat_all);
	if (mode == GMEM_CLEAR || mode == GMEM_RESOLVE ||
	    mode == EXIT_ON_MISSING)
		TEST_ASSERT(res->exits == size / PAGE,
			    "%lu exits for %lu pages", res->exits, size / PAGE);
	if (mode == GMEM_BATCH || mode == EOM_BATCH)
		TEST_ASSERT(res->exits == size / PAGE / BATCH,
			    "%lu exits for %lu pages", res->exits, size / PAGE);

	for (v = 0; v < MAX_VCPUS; v++)
		if (uffd[v])
			uffd_stop_demand_paging(uffd[v]);
	kvm_vm_free(vm);
	if (mem)
		munmap(mem, size);
	if (uffd_fd >= 0)
		close(uffd_fd);
	close(fd);
}

int main(int argc, char *argv[])
{
	struct result res[MAX_VCPUS + 1][NR_MODES];
	int opt, max_vcpus = MAX_VCPUS, n, m;
	uint64_t i;

	while ((opt = getopt(argc, argv, "m:v:")) != -1) {
		switch (opt) {
		case 'm':
			region_size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'v':
			max_vcpus = atoi(optarg);
			break;
		default:
			printf("usage: %s [-m MiB per vCPU] [-v max vCPUs]\n",
			       argv[0]);
			return 1;
		}
	}
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD_USERFAULT));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_EXIT_ON_MISSING));
	TEST_REQUIRE(max_vcpus >= 1 && max_vcpus <= MAX_VCPUS);
	for (i = 0; i < PAGE / 8; i++)
		src_page[i] = 0;

	printf("Post-copy demand paging: each vCPU reads %lu MiB (%lu pages),\n",
	       region_size >> 20, region_size / PAGE);
	printf("every page missing at the start\n\n");
	for (n = 1; n <= max_vcpus; n++)
		for (m = 0; m < NR_MODES; m++)
			run_mode(m, n, &res[n][m]);

	printf("| vCPUs | mode | ms | pages/s | vs (a) | of (c) |\n");
	printf("|---|---|---|---|---|---|\n");
	for (n = 1; n <= max_vcpus; n++) {
		double a = res[n][UFFD_ONE].ms < res[n][UFFD_PER_VCPU].ms ?
			   res[n][UFFD_ONE].ms : res[n][UFFD_PER_VCPU].ms;
		double c = res[n][GMEM_NONE].ms;

		for (m = 0; m < NR_MODES; m++) {
			double ms = res[n][m].ms;
			double rate = n * (region_size / PAGE) / (ms / 1000);

			printf("| %d | %s | %.1f | %.0f |", n, mode_names[m],
			       ms, rate);
			/* (b), (e) against the best (a); (b16), (e16) against (a16). */
			if (m == GMEM_CLEAR || m == GMEM_RESOLVE ||
			    m == EXIT_ON_MISSING)
				printf(" %.2fx faster |", a / ms);
			else if (m == GMEM_BATCH || m == EOM_BATCH)
				printf(" %.2fx faster |",
				       res[n][UFFD_BATCH].ms / ms);
			else
				printf(" |");
			if (mode_exits(m) || m == GMEM_SYNC)
				printf(" %.0f %% |\n", 100 * c / ms);
			else
				printf(" |\n");
		}
	}

	/*
	 * Where a page's time goes, per vCPU: (c) faults in the kernel only,
	 * (d) adds an exit to userspace and back per page, (b) adds the
	 * missing-bit exit and the clear instead.
	 */
	printf("\nPer page and vCPU (us): the in-kernel fault of (c), what an\n");
	printf("I/O exit to userspace adds ((d) - (c)), what the missing-bit\n");
	printf("exit and clear add beyond that ((b) clear - (d)):\n\n");
	printf("| vCPUs | (c) | (d) - (c) | (b) clear - (d) |\n");
	printf("|---|---|---|---|\n");
	for (n = 1; n <= max_vcpus; n++) {
		double pages = region_size / PAGE;

		printf("| %d | %.1f | %.1f | %.1f |\n", n,
		       res[n][GMEM_NONE].ms * 1e3 / pages,
		       (res[n][GMEM_SYNC].ms - res[n][GMEM_NONE].ms) * 1e3 /
		       pages,
		       (res[n][GMEM_CLEAR].ms - res[n][GMEM_SYNC].ms) * 1e3 /
		       pages);
	}

	printf("\nExit-to-reentry (guest_memfd: the vCPU thread's time between\n");
	printf("KVM_RUN calls):\n\n");
	printf("| vCPUs | mode | exits | p50 us | p99 us | max us |\n");
	printf("|---|---|---|---|---|---|\n");
	for (n = 1; n <= max_vcpus; n++)
		for (m = 0; m < NR_MODES; m++) {
			if (!mode_exits(m))
				continue;
			printf("| %d | %s | %lu | %.1f | %.1f | %.1f |\n", n,
			       mode_names[m], res[n][m].exits,
			       res[n][m].p50 / 1e3, res[n][m].p99 / 1e3,
			       res[n][m].max / 1e3);
		}
	return 0;
}
