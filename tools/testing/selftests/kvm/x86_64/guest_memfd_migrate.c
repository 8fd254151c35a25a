// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest_memfd_migrate - post-copy live migration of a running guest whose
 * memory is a hugetlb-backed guest_memfd, between two processes.
 *
 * The parent forks a source and a destination VMM, connected by two unix
 * socketpairs: the stream (source to destination: header, shared/private
 * map, pre-copied pages, background push) and the request channel
 * (destination asks for single pages, the source answers on the same
 * socket, so a request overtakes the background stream).
 *
 * The guest: one guest_memfd of private memory (1G hugetlb pages, else 2M,
 * else 4K) in a KVM_X86_SW_PROTECTED_VM.  Page 0 is a control page; the
 * other pages are split among the vCPUs, and each vCPU writes its pages in
 * turn, WORDS words per page, each word naming its offset, the vCPU and
 * the generation (pass) being written.  The control page holds each vCPU's
 * generation and next page, so it is all the guest's state.
 *
 * vCPU state is not migrated: the source stops its vCPUs at a page
 * boundary (a flag in the code memslot, polled by the guest before each
 * page, acknowledged with a ucall), and the destination starts its vCPUs
 * at guest_code(), which continues from the counters of the control page.
 *
 * Source: runs the guest, converting 1M ranges (2M-aligned) to shared and
 * back with KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd and checking the
 * shared ones through its mapping of the file.  The conversions (and so
 * the ranges shared at migration) stay in the last 1G block of memory, or
 * in its upper half below 2G: the blocks below stay uniformly private, so
 * KVM can map them with the file's largest pages.  It then stops the
 * vCPUs, takes the map, converts everything to shared (contents are kept)
 * to read it, sends the map, a pre-copy set (the pages each vCPU writes
 * next, up to a budget), then pushes the rest while answering requests.
 *
 * Destination: creates the VM and a guest_memfd of the same backing, marks
 * every page missing (KVM_GMEM_SET_USERFAULT), restores the map, resolves
 * the pre-copied pages (KVM_GMEM_RESOLVE) and starts the vCPUs.  A vCPU
 * exit on a missing page (KVM_EXIT_MEMORY_FAULT, USERFAULT) requests the
 * page and waits for it; receivers resolve what arrives (EEXIST: it came
 * the other way first).  The host checks shared pages through a mapping of
 * the file registered with userfaultfd (MISSING): the handler requests the
 * page and wakes the fault once it is resolved.  At the end every page is
 * checked: missing bits, shared/private state against the source's map
 * (every page up to 256M or with --map-all; else every shared page, the
 * edges of every private run and every MAP_SAMPLE-th private page, as a
 * private page costs a failing fault), and contents against the guest's
 * counters.  KVM's page-size stats are taken on the source when it stops,
 * on the destination when memory is complete, after a pass, right after
 * the collapse and after the collapse and a pass: once every page has
 * arrived, KVM_GMEM_USERFAULT_CLEAR with KVM_GMEM_USERFAULT_FLAG_COLLAPSE
 * over the whole file zaps KVM's mappings, so that the next faults map as
 * large as they can (1G for a uniformly private 1G block of a file of 1G
 * pages).  Without it, a block whose every page was mapped small while a
 * page of it was missing stays so; one with a page not mapped yet is
 * mapped huge again by the first fault on such a page once it is complete.
 *
 * The vCPU threads run at nice VCPU_NICE so that the migration threads
 * are not starved on the two CPUs of the test VM.
 *
 * The same migration is then done the way VMMs do it today: a memfd
 * (shmem) memslot, userfaultfd MINOR on the destination's guest mapping,
 * received pages written through a second mapping and UFFDIO_CONTINUE.
 *
 * Fault injection: --kill-source-at=P (the source SIGKILLs itself after
 * sending P% of the pages) and --drop-at=P (it closes the sockets), P or
 * P% from 0 to 100: the destination stops cleanly and exits with
 * EXIT_SOURCE_LOST.  With --expect-source-loss, that outcome (and the
 * hugetlb pools exact) is the test's success, exit status 0, and anything
 * else, a complete migration included, its failure.
 *
 * Usage: guest_memfd_migrate [-g GiB | -m MiB] [-v vCPUs] [-p precopy %]
 *	[-t source run ms] [-b 1g|2m|4k] [--short] [--no-shmem] [--map-all]
 *	[--kill-source-at=P | --drop-at=P [--expect-source-loss]]
 * Defaults: 2 GiB on 1G pages, 2 vCPUs, 25% pre-copy, 2 s on the source;
 * --short is 64 MiB on 2M pages, 1 s.
 *
 * Exit status: 0 when every page verified and the hugetlb pools are
 * exact (with --expect-source-loss: when the destination stopped cleanly
 * after the injected fault and the pools are exact), EXIT_SOURCE_LOST for
 * a clean stop after an injected fault without --expect-source-loss, 2
 * for bad arguments, other nonzero values on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/userfaultfd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define MEM_GPA		BIT_ULL(32)
#define MEM_SLOT	10
#define PAGE		4096UL
#define SZ_1M		BIT(20)
#define SZ_2M		BIT(21)
#define SZ_1G		BIT(30)
#define MAX_VCPUS	8
#define CHUNK		64		/* pages per stream message */
#define WORDS		8		/* pattern words per page */
#define WSTRIDE		(PAGE / WORDS)	/* bytes between them */
#define OFF_BITS	36		/* a word: offset, generation, vCPU */
#define GEN_BITS	22
#define TAG_SHIFT	(OFF_BITS + GEN_BITS)
#define OFF_MASK	(BIT_ULL(OFF_BITS) - 1)
#define GEN_MASK	(BIT_ULL(GEN_BITS) - 1)
#define KEEP_SHARED	4		/* ranges the source keeps shared */
#define RING		(KEEP_SHARED + 1)	/* and the one just shared */
#define VCPU_NICE	5		/* vCPU threads' nice value */
#define MAP_SAMPLE	16		/* private pages per one probed */
#define EXIT_SOURCE_LOST 10
#define MIG_MAGIC	0x6d6967726174650aULL

/* Guest side. */

/**
 * struct mig_ctl - the guest's state, page 0 of the migrated memory
 * @gen: per vCPU, the generation its current pass writes (0: not started)
 * @next: per vCPU, the index of the next page of its share to write
 */
struct mig_ctl {
	uint64_t gen[MAX_VCPUS];
	uint64_t next[MAX_VCPUS];
};

enum { SYNC_PASS = 1, SYNC_STOPPED };

static uint64_t guest_per_vcpu;		/* pages each vCPU owns */
static uint64_t guest_stop;		/* host: stop before the next page */

static inline uint64_t pattern(uint64_t off, uint64_t vcpu, uint64_t gen)
{
	if (!gen)
		return 0;
	return off | (gen & GEN_MASK) << OFF_BITS | (vcpu + 1) << TAG_SHIFT;
}

static void guest_code(uint64_t id)
{
	struct mig_ctl *ctl = (struct mig_ctl *)MEM_GPA;
	uint64_t first = 1 + id * guest_per_vcpu;

	if (!READ_ONCE(ctl->gen[id]))
		WRITE_ONCE(ctl->gen[id], 1);
	for (;;) {
		uint64_t gen = READ_ONCE(ctl->gen[id]), i, k;

		for (i = READ_ONCE(ctl->next[id]); i < guest_per_vcpu; i++) {
			uint64_t off = (first + i) * PAGE;
			uint64_t *p = (uint64_t *)(MEM_GPA + off);

			if (READ_ONCE(guest_stop))
				GUEST_SYNC2(SYNC_STOPPED, gen);
			/* What the last pass left, migrated or not. */
			for (k = 0; k < WORDS; k++)
				GUEST_ASSERT_EQ(READ_ONCE(p[k * WSTRIDE / 8]),
						pattern(off + k * WSTRIDE, id,
							gen - 1));
			for (k = 0; k < WORDS; k++)
				WRITE_ONCE(p[k * WSTRIDE / 8],
					   pattern(off + k * WSTRIDE, id, gen));
			WRITE_ONCE(ctl->next[id], i + 1);
		}
		/* No stop point between these two: the pair is atomic. */
		WRITE_ONCE(ctl->next[id], 0);
		WRITE_ONCE(ctl->gen[id], gen + 1);
		GUEST_SYNC2(SYNC_PASS, gen);
	}
}

/* Host side. */

enum mode { MODE_GMEM, MODE_SHMEM };

/* Wire messages (the stream). */
enum { MSG_PAGES = 1, MSG_PRECOPY_END, MSG_END };

struct mig_msg {
	uint32_t type;
	uint32_t npages;
	uint64_t offset;
};

/**
 * struct mig_hdr - what the source tells the destination first
 * @magic: MIG_MAGIC
 * @size: guest memory bytes
 * @nr_vcpus: vCPUs
 * @page_size: hugetlb page size of the source's backing, 0 for 4K
 * @gen: the guest's generations when it stopped (from the control page)
 * @next: the guest's next pages when it stopped
 * @stats: KVM pages_4k, pages_2m, pages_1g of the source when it stopped
 * @ran_ms: how long the source ran the guest
 * @passes: guest passes completed on the source, all vCPUs
 * @conversions: conversions the source made while it ran
 * @checks: pages the source checked through its mapping while it ran
 * @to_shared_ms: the source's conversion of everything to shared
 * @shared: pages shared when the source stopped
 * @precopy: pages the source pre-copies
 * @stop_ns: when the source's vCPUs stopped (CLOCK_MONOTONIC)
 */
struct mig_hdr {
	uint64_t magic;
	uint64_t size;
	uint64_t nr_vcpus;
	uint64_t page_size;
	uint64_t gen[MAX_VCPUS];
	uint64_t next[MAX_VCPUS];
	uint64_t stats[3];
	uint64_t ran_ms;
	uint64_t passes;
	uint64_t conversions;
	uint64_t checks;
	uint64_t to_shared_ms;
	uint64_t shared;
	uint64_t precopy;
	uint64_t stop_ns;
};

/**
 * struct mig_result - what the destination tells the parent
 * @status: 0 verified, EXIT_SOURCE_LOST stopped after losing the source
 * @hdr: the source's header
 * @precopied: pages resolved before the vCPUs started
 * @pushed: pages resolved from the background stream
 * @pushed_dup: pushed pages that were already there
 * @demand: pages resolved from answers to requests
 * @demand_dup: answers for pages that were already there
 * @requests: requests sent
 * @exits: vCPU exits on missing pages
 * @uffd_faults: userfaultfd faults handled
 * @mismatch: vCPU exits on a shared/private mismatch (conversion races)
 * @stall_ns: total time the vCPUs spent between exit and re-entry
 * @lat: fault latency p50, p99, max (ns)
 * @ulat: userfaultfd fault latency p50, p99, max (ns)
 * @run_before_complete_ns: guest run time until every page was present
 * @checks: pages the destination host checked while the guest ran
 * @stats_complete: KVM pages_4k/2m/1g when memory was complete
 * @stats_pass: the same after memory was complete and a pass
 * @stats_collapse: the same after the collapse and a pass (guest_memfd)
 * @collapse_us: the collapse (KVM_GMEM_USERFAULT_FLAG_COLLAPSE)
 * @verify_ms: the final verification
 * @verify_map_ms: of which checking the shared/private state
 * @map_probed: pages whose shared/private state was probed
 * @verified: pages verified
 * @downtime_ns: from the source's stop to the destination's start
 * @poisoned: pages KVM_GMEM_RESOLVE found poisoned (present, lost)
 * @why: the reason of a failure or of the stop
 */
struct mig_result {
	int status;
	struct mig_hdr hdr;
	uint64_t precopied, pushed, pushed_dup, demand, demand_dup, requests;
	uint64_t exits, uffd_faults, mismatch, stall_ns;
	uint64_t lat[3], ulat[3];
	uint64_t run_before_complete_ns;
	uint64_t checks;
	uint64_t stats_complete[3], stats_pass[3];
	uint64_t stats_collapse[3], collapse_us;
	uint64_t downtime_ns, poisoned;
	uint64_t verify_ms, verify_map_ms, map_probed;
	uint64_t verified;
	char why[160];
};

/* Per-page state of the destination. */
#define PG_PRESENT	BIT(0)
#define PG_REQUESTED	BIT(1)
#define PG_UWAIT	BIT(2)		/* a userfaultfd fault waits for it */
#define PG_CLAIMED	BIT(3)		/* being written (shmem) */

/* A growing array of latencies, ns. */
struct samples {
	uint64_t *v;
	uint64_t n, cap;
};

struct vcpu_ctx {
	struct kvm_vcpu *vcpu;
	pthread_t thread;
	int id;
	bool exited;
	uint64_t passes;	/* passes the guest completed */
	uint64_t gen;		/* generation of its last completed pass */
	uint64_t exits;
	struct samples lat;	/* exit to re-entry */
};

static struct {
	/* configuration (parent) */
	uint64_t size;
	int nr_vcpus;
	int precopy_pct;
	int run_ms;
	bool map_all;
	int kill_at, drop_at;
	bool expect_loss;	/* the injected fault must stop the migration */
	bool shmem_run;
	uint64_t conv_start;	/* conversions stay in [conv_start, size) */
	uint64_t page_size;
	uint64_t gmem_flags;

	/* one VMM (source or destination) */
	enum mode mode;
	bool dest;
	struct kvm_vm *vm;
	struct vcpu_ctx vcpus[MAX_VCPUS];
	int fd;			/* guest_memfd or memfd */
	uint8_t *mem;		/* the memslot's mapping */
	uint8_t *alias;		/* shmem destination: where pages are written */
	uint64_t npages, per_vcpu;
	uint64_t *stop_hva;	/* guest_stop, seen from the host */
	uint8_t *shared;	/* shared/private map, a bit per page */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, quit, abort, checker_stop, uffd_stop;
	bool vcpus_running;
	int stopped;
	char why[128];

	/* source */
	uint64_t conversions, checks;
	uint8_t *sent;		/* a bit per page */
	uint64_t nr_sent;

	/* destination */
	int sock, req;
	pthread_mutex_t req_lock;
	uint8_t *state;
	uint64_t present;
	int uffd;
	uint64_t *uwait_t0;
	uint64_t t_complete;	/* when the last page became present */
	struct mig_ctl stop_ctl;	/* the guest's counters at the stop */
	struct samples ulat;	/* userfaultfd event to wake */
	struct mig_result res;
} mig = {
	.size = 2 * SZ_1G,
	.nr_vcpus = 2,
	.precopy_pct = 25,
	.run_ms = 2000,
	.kill_at = -1,
	.drop_at = -1,
	.shmem_run = true,
	.page_size = SZ_1G,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.req_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void lock(void)
{
	pthread_mutex_lock(&mig.lock);
}

static void unlock(void)
{
	pthread_mutex_unlock(&mig.lock);
}

static bool test_bit8(const uint8_t *map, uint64_t i)
{
	return __atomic_load_n(&map[i / 8], __ATOMIC_RELAXED) & BIT(i % 8);
}

/* Set bit @i of @map; whether it was clear. */
static bool set_bit8(uint8_t *map, uint64_t i)
{
	return !(__atomic_fetch_or(&map[i / 8], BIT(i % 8), __ATOMIC_RELAXED) &
		 BIT(i % 8));
}

static void clear_bit8(uint8_t *map, uint64_t i)
{
	__atomic_fetch_and(&map[i / 8], ~BIT(i % 8), __ATOMIC_RELAXED);
}

/* Send (@out) or read exactly @len bytes; false on EOF or error. */
static bool xfer(int fd, void *buf, size_t len, bool out)
{
	while (len) {
		ssize_t r = out ? send(fd, buf, len, MSG_NOSIGNAL) :
				  read(fd, buf, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		buf += r;
		len -= r;
	}
	return true;
}

static bool xread(int fd, void *buf, size_t len)
{
	return xfer(fd, buf, len, false);
}

static bool xsend(int fd, const void *buf, size_t len)
{
	return xfer(fd, (void *)buf, len, true);
}

/* KVM_GMEM_SET_USERFAULT @op with @flags on [@offset, +@size). */
static void set_userfault(int fd, uint32_t op, uint32_t flags,
			  uint64_t offset, uint64_t size)
{
	struct kvm_gmem_range r = { .offset = offset, .size = size };
	struct kvm_gmem_userfault u = {
		.op = op, .flags = flags, .ranges = (uintptr_t)&r,
		.nr_ranges = 1,
	};

	TEST_ASSERT(!ioctl(fd, KVM_GMEM_SET_USERFAULT, &u) && u.done == 1,
		    "KVM_GMEM_SET_USERFAULT op %u flags 0x%x [0x%lx, +0x%lx): %s",
		    op, flags, offset, size, strerror(errno));
}

static int resolve(int fd, uint64_t offset, uint64_t size, const void *src,
		   uint64_t *resolved)
{
	struct kvm_gmem_resolve r = {
		.offset = offset, .size = size, .src = (uintptr_t)src,
	};
	int ret = ioctl(fd, KVM_GMEM_RESOLVE, &r);

	*resolved = r.resolved;
	return ret;
}

/* Convert [@offset, +@size) in place; EAGAIN (a page is busy) retries. */
static void convert(uint64_t offset, uint64_t size, bool private)
{
	struct kvm_memory_attributes2 a = {
		.offset = offset, .size = size,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int i;

	for (i = 0; i < 10000; i++) {
		if (!ioctl(mig.fd, KVM_SET_MEMORY_ATTRIBUTES2, &a))
			return;
		TEST_ASSERT(errno == EAGAIN,
			    "KVM_SET_MEMORY_ATTRIBUTES2 [0x%lx, +0x%lx) to %s: %s",
			    offset, size, private ? "private" : "shared",
			    strerror(errno));
		usleep(1000);
	}
	TEST_FAIL("conversion of [0x%lx, +0x%lx) busy for 10 s", offset, size);
}

static void read_stats(uint64_t stats[3])
{
	stats[0] = vm_get_stat(mig.vm, "pages_4k");
	stats[1] = vm_get_stat(mig.vm, "pages_2m");
	stats[2] = vm_get_stat(mig.vm, "pages_1g");
}

/* The vCPU owning page @pg, or -1 for the control page and the tail. */
static int page_owner(uint64_t pg)
{
	if (!pg || pg >= 1 + mig.nr_vcpus * mig.per_vcpu)
		return -1;
	return (pg - 1) / mig.per_vcpu;
}

/*
 * A page read while the guest writes it: every pattern word is zero (not
 * written yet) or names this offset, the owner and a generation the owner
 * has reached; the words in between are zero.
 */
static void check_live(const uint64_t *p, uint64_t pg)
{
	uint64_t off = pg * PAGE, w, gen, max;
	int v = page_owner(pg), k;

	if (v < 0)
		return;
	for (k = 0; k < WORDS; k++) {
		w = READ_ONCE(p[k * WSTRIDE / 8]);
		if (!w)
			continue;
		gen = w >> OFF_BITS & GEN_MASK;
		max = __atomic_load_n(&mig.vcpus[v].gen, __ATOMIC_ACQUIRE) + 1;
		if (READ_ONCE(mig.abort))
			return;
		TEST_ASSERT((w & OFF_MASK) == off + k * WSTRIDE &&
			    w >> TAG_SHIFT == v + 1 && gen && gen <= max,
			    "%s host read 0x%lx at 0x%lx (vCPU %d at gen %lu)",
			    mig.dest ? "destination" : "source", w,
			    off + k * WSTRIDE, v, max);
	}
	TEST_ASSERT(!READ_ONCE(p[1]) || READ_ONCE(mig.abort),
		    "word 1 of page 0x%lx written: 0x%lx", off, p[1]);
}

/* A memfd has nothing to convert: check a random page, 100 a second. */
static void check_random(unsigned int *seed, uint64_t *checks)
{
	uint64_t pg = rand_r(seed) % mig.npages;

	check_live((uint64_t *)(mig.mem + pg * PAGE), pg);
	(*checks)++;
	usleep(10000);
}

/* The exact contents of page @pg for its owner's counters in @ctl. */
static void expect_page(uint64_t *buf, uint64_t pg, const struct mig_ctl *ctl)
{
	int v = page_owner(pg), k;
	uint64_t gen;

	memset(buf, 0, PAGE);
	if (v < 0)
		return;
	gen = ctl->gen[v];
	if (pg - 1 - v * mig.per_vcpu >= ctl->next[v])
		gen--;
	for (k = 0; k < WORDS; k++)
		buf[k * WSTRIDE / 8] = pattern(pg * PAGE + k * WSTRIDE, v, gen);
}

/* vCPUs */

static void kick_handler(int sig)
{
}

static void add_sample(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 4096;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		TEST_ASSERT(s->v, "out of memory");
	}
	s->v[s->n++] = ns;
}

static void request_page(uint64_t off)
{
	pthread_mutex_lock(&mig.req_lock);
	/* A dead source: the receivers see EOF and stop everything. */
	xsend(mig.req, &off, sizeof(off));
	mig.res.requests++;
	pthread_mutex_unlock(&mig.req_lock);
}

/*
 * A vCPU exited on the missing page at @off: ask for it unless someone
 * did, and wait until a receiver resolved it.  False if the source is
 * gone.
 */
static bool wait_for_page(uint64_t off)
{
	uint64_t pg = off / PAGE;
	bool req = false, present;

	TEST_ASSERT(off < mig.size, "exit at offset 0x%lx", off);
	lock();
	if (!(mig.state[pg] & (PG_PRESENT | PG_REQUESTED))) {
		mig.state[pg] |= PG_REQUESTED;
		req = true;
	}
	unlock();
	if (req)
		request_page(off);
	lock();
	while (!(mig.state[pg] & PG_PRESENT) && !mig.abort)
		pthread_cond_wait(&mig.cond, &mig.lock);
	present = mig.state[pg] & PG_PRESENT;
	unlock();
	return present;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_ctx *c = arg;
	struct kvm_run *run = c->vcpu->run;
	uint64_t t_exit = 0;
	struct ucall uc;

	/*
	 * Migration threads first, a bit: the test VM has two CPUs, and a
	 * guest that never idles would starve the pages it waits for.
	 */
	setpriority(PRIO_PROCESS, syscall(__NR_gettid), VCPU_NICE);
	while (!READ_ONCE(mig.quit)) {
		int r;

		if (t_exit) {
			add_sample(&c->lat, gmem_now_ns() - t_exit);
			t_exit = 0;
		}
		/*
		 * Not _vcpu_run(): it retries EINTR, so quit_vcpus()' kick
		 * (immediate_exit and a signal) would never get back here.
		 */
		r = __vcpu_run(c->vcpu);
		if (r && errno == EINTR) {
			if (READ_ONCE(mig.quit))
				break;
			continue;
		}
		assert_on_unhandled_exception(c->vcpu);
		if (r) {
			uint64_t t = gmem_now_ns();

			if (READ_ONCE(mig.quit))
				break;
			TEST_ASSERT(errno == EFAULT &&
				    run->exit_reason == KVM_EXIT_MEMORY_FAULT,
				    "KVM_RUN: errno %d, exit reason %u", errno,
				    run->exit_reason);
			/*
			 * A conversion raced with the fault: run again. Only
			 * the source converts while the guest runs (and only
			 * KVM_X86_SW_PROTECTED_VM may retry blindly: on a
			 * confidential VM this exit is the guest asking for
			 * a conversion).
			 */
			if (!(run->memory_fault.flags &
			      KVM_MEMORY_EXIT_FLAG_USERFAULT)) {
				TEST_ASSERT(!mig.dest,
					    "destination: memory fault exit at 0x%llx without a conversion",
					    run->memory_fault.gpa);
				__atomic_add_fetch(&mig.res.mismatch, 1,
						   __ATOMIC_RELAXED);
				continue;
			}
			TEST_ASSERT(mig.dest && mig.mode == MODE_GMEM &&
				    run->memory_fault.size == PAGE,
				    "userfault exit at 0x%llx, size 0x%llx",
				    run->memory_fault.gpa,
				    run->memory_fault.size);
			c->exits++;
			if (!wait_for_page(run->memory_fault.gpa - MEM_GPA))
				break;
			t_exit = t;
			continue;
		}
		switch (get_ucall(c->vcpu, &uc)) {
		case UCALL_SYNC:
			lock();
			if (uc.args[0] == SYNC_PASS) {
				c->passes++;
				__atomic_store_n(&c->gen, uc.args[1],
						 __ATOMIC_RELEASE);
			} else {
				mig.stopped++;
				pthread_cond_broadcast(&mig.cond);
				while (mig.stop && !mig.quit)
					pthread_cond_wait(&mig.cond, &mig.lock);
				mig.stopped--;
			}
			pthread_cond_broadcast(&mig.cond);
			unlock();
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("unexpected exit %u, ucall %lu",
				  run->exit_reason, uc.cmd);
		}
	}
	lock();
	c->exited = true;
	pthread_cond_broadcast(&mig.cond);
	unlock();
	return NULL;
}

static void start_vcpus(void)
{
	int i;

	for (i = 0; i < mig.nr_vcpus; i++)
		pthread_create(&mig.vcpus[i].thread, NULL, vcpu_thread,
			       &mig.vcpus[i]);
	mig.vcpus_running = true;
}

/* Stop every vCPU at a page boundary; false if the source went away. */
static bool stop_vcpus(void)
{
	bool ok;

	WRITE_ONCE(*mig.stop_hva, 1);
	lock();
	mig.stop = true;
	while (mig.stopped < mig.nr_vcpus && !mig.abort)
		pthread_cond_wait(&mig.cond, &mig.lock);
	ok = !mig.abort;
	unlock();
	return ok;
}

/*
 * End the vCPU threads wherever they are: waiting for a page or a resume
 * (the broadcast), or in KVM_RUN (immediate_exit and a signal, repeated
 * until the thread is out, so a signal sent just before KVM_RUN is not
 * lost).
 */
static void quit_vcpus(void)
{
	int i;

	if (!mig.vcpus_running)
		return;
	mig.vcpus_running = false;
	lock();
	mig.quit = true;
	pthread_cond_broadcast(&mig.cond);
	unlock();
	for (i = 0; i < mig.nr_vcpus; i++) {
		struct vcpu_ctx *c = &mig.vcpus[i];

		while (!__atomic_load_n(&c->exited, __ATOMIC_ACQUIRE)) {
			c->vcpu->run->immediate_exit = 1;
			pthread_kill(c->thread, SIGUSR1);
			usleep(10000);
		}
		pthread_join(c->thread, NULL);
	}
}

/* Wait until every vCPU completed @n more passes; false on abort. */
static bool wait_passes(uint64_t n)
{
	uint64_t target[MAX_VCPUS];
	bool done = false;
	int i;

	lock();
	for (i = 0; i < mig.nr_vcpus; i++)
		target[i] = mig.vcpus[i].passes + n;
	while (!done && !mig.abort) {
		done = true;
		for (i = 0; i < mig.nr_vcpus; i++)
			done &= mig.vcpus[i].passes >= target[i];
		if (!done)
			pthread_cond_wait(&mig.cond, &mig.lock);
	}
	unlock();
	return done;
}

static uint64_t total_passes(void)
{
	uint64_t n = 0;
	int i;

	lock();
	for (i = 0; i < mig.nr_vcpus; i++)
		n += mig.vcpus[i].passes;
	unlock();
	return n;
}

/*
 * The VM of one side: the guest memory at MEM_GPA, private guest_memfd
 * (MODE_GMEM) or a memfd (MODE_SHMEM), mapped at mig.mem.
 */
static void setup_vm(void)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = mig.mode == MODE_GMEM ? KVM_X86_SW_PROTECTED_VM :
						KVM_X86_DEFAULT_VM,
	};
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	struct sigaction sa = { .sa_handler = kick_handler };
	int i, level;

	sigaction(SIGUSR1, &sa, NULL);
	mig.npages = mig.size / PAGE;
	mig.per_vcpu = (mig.npages - 1) / mig.nr_vcpus;
	mig.vm = __vm_create_with_vcpus(shape, mig.nr_vcpus, 64, guest_code,
					vcpus);
	if (mig.mode == MODE_GMEM) {
		mig.fd = vm_create_guest_memfd(mig.vm, mig.size,
					       GUEST_MEMFD_FLAG_MMAP |
					       mig.gmem_flags);
	} else {
		mig.fd = memfd_create("guest_memfd_migrate", 0);
		TEST_ASSERT(mig.fd >= 0 && !ftruncate(mig.fd, mig.size),
			    "memfd: %s", strerror(errno));
	}
	mig.mem = mmap(NULL, mig.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       mig.fd, 0);
	TEST_ASSERT(mig.mem != MAP_FAILED, "mmap: %s", strerror(errno));
	if (mig.mode == MODE_GMEM)
		vm_set_user_memory_region2(mig.vm, MEM_SLOT,
					   KVM_MEM_GUEST_MEMFD, MEM_GPA,
					   mig.size, mig.mem, mig.fd, 0);
	else
		vm_set_user_memory_region(mig.vm, MEM_SLOT, 0, MEM_GPA,
					  mig.size, mig.mem);
	level = mig.size % SZ_1G ? PG_LEVEL_2M : PG_LEVEL_1G;
	virt_map_level(mig.vm, MEM_GPA, MEM_GPA, mig.size, level);

	guest_per_vcpu = mig.per_vcpu;
	sync_global_to_guest(mig.vm, guest_per_vcpu);
	mig.stop_hva = addr_gva2hva(mig.vm, (vm_vaddr_t)&guest_stop);
	for (i = 0; i < mig.nr_vcpus; i++) {
		mig.vcpus[i].vcpu = vcpus[i];
		mig.vcpus[i].id = i;
		vcpu_args_set(vcpus[i], 1, i);
	}
	mig.shared = calloc(mig.npages / 8 + 1, 1);
	TEST_ASSERT(mig.shared, "out of memory");
}

static void teardown_vm(void)
{
	kvm_vm_free(mig.vm);
	munmap(mig.mem, mig.size);
	if (mig.alias)
		munmap(mig.alias, mig.size);
	close(mig.fd);
}

/* Source */

/*
 * While the guest runs: share a 1M range (2M-aligned) of [conv_start,
 * size), check its pages through the mapping, keep it shared for a while
 * (the last KEEP_SHARED ranges stay shared), then make it private again.
 * With a memfd there is nothing to convert: check pages of all the memory.
 */
static void *source_checker(void *arg)
{
	uint64_t base = mig.conv_start / SZ_2M, nr = mig.size / SZ_2M - base;
	uint64_t ring[RING], r, pg, i;
	unsigned int seed = getpid();
	int n = 0, head = 0, keep = min_t(int, KEEP_SHARED, nr / 2);

	while (!READ_ONCE(mig.checker_stop)) {
		if (mig.mode == MODE_SHMEM) {
			check_random(&seed, &mig.checks);
			continue;
		}
		do {
			r = base + rand_r(&seed) % nr;
			for (i = 0; i < n; i++)
				if (ring[(head + i) % RING] == r)
					break;
		} while (i < n);
		convert(r * SZ_2M, SZ_1M, false);
		for (pg = r * SZ_2M / PAGE; pg < (r * SZ_2M + SZ_1M) / PAGE;
		     pg++) {
			set_bit8(mig.shared, pg);
			check_live((uint64_t *)(mig.mem + pg * PAGE), pg);
			mig.checks++;
		}
		mig.conversions++;
		ring[(head + n++) % RING] = r;
		if (n > keep) {
			r = ring[head];
			head = (head + 1) % RING;
			n--;
			for (pg = r * SZ_2M / PAGE;
			     pg < (r * SZ_2M + SZ_1M) / PAGE; pg++)
				clear_bit8(mig.shared, pg);
			convert(r * SZ_2M, SZ_1M, true);
			mig.conversions++;
		}
		usleep(20000);
	}
	return NULL;
}

static void source_fault_injection(int sock, int req)
{
	uint64_t pct = mig.nr_sent * 100 / mig.npages;

	if (mig.kill_at >= 0 && pct >= mig.kill_at) {
		printf("source: killing itself after sending %lu of %lu pages\n",
		       mig.nr_sent, mig.npages);
		fflush(stdout);
		raise(SIGKILL);
	}
	if (mig.drop_at >= 0 && pct >= mig.drop_at) {
		printf("source: dropping the connection after sending %lu of %lu pages\n",
		       mig.nr_sent, mig.npages);
		fflush(stdout);
		shutdown(sock, SHUT_RDWR);
		shutdown(req, SHUT_RDWR);
		close(sock);
		close(req);
		_exit(0);
	}
}

/* Send the @n pages at page @pg that are not sent yet, as one message. */
static bool send_pages(int sock, uint64_t pg, uint64_t n)
{
	struct mig_msg msg = {
		.type = MSG_PAGES, .npages = n, .offset = pg * PAGE,
	};
	uint64_t i;

	for (i = 0; i < n; i++)
		if (set_bit8(mig.sent, pg + i))
			__atomic_add_fetch(&mig.nr_sent, 1, __ATOMIC_RELAXED);
	return xsend(sock, &msg, sizeof(msg)) &&
	       xsend(sock, mig.mem + pg * PAGE, n * PAGE);
}

/* Send the unsent pages of [@pg, @end) in runs of at most CHUNK. */
static bool send_range(int sock, int req, uint64_t pg, uint64_t end)
{
	while (pg < end) {
		uint64_t n = 0;

		if (test_bit8(mig.sent, pg)) {
			pg++;
			continue;
		}
		while (pg + n < end && n < CHUNK &&
		       !test_bit8(mig.sent, pg + n))
			n++;
		if (!send_pages(sock, pg, n))
			return false;
		pg += n;
		source_fault_injection(sock, req);
	}
	return true;
}

/* Answer each requested page on the request socket, until EOF. */
static void *source_server(void *arg)
{
	int req = (long)arg;
	uint64_t off;

	while (xread(req, &off, sizeof(off))) {
		struct mig_msg msg = { .type = MSG_PAGES, .npages = 1 };

		TEST_ASSERT(off < mig.size && !(off % PAGE),
			    "request for 0x%lx", off);
		msg.offset = off;
		if (set_bit8(mig.sent, off / PAGE))
			__atomic_add_fetch(&mig.nr_sent, 1, __ATOMIC_RELAXED);
		if (!xsend(req, &msg, sizeof(msg)) ||
		    !xsend(req, mig.mem + off, PAGE))
			break;
	}
	return NULL;
}

static void __noreturn run_source(int sock, int req)
{
	struct mig_hdr hdr = { .magic = MIG_MAGIC };
	struct mig_msg msg = {};
	const struct mig_ctl *ctl;
	pthread_t checker, server;
	uint64_t t0, budget, per, pg, i;
	int v;

	mig.dest = false;
	setup_vm();
	mig.sent = calloc(mig.npages / 8 + 1, 1);
	TEST_ASSERT(mig.sent, "out of memory");

	t0 = gmem_now_ns();
	start_vcpus();
	pthread_create(&checker, NULL, source_checker, NULL);
	for (;;) {
		bool ran = true;

		usleep(100000);
		lock();
		for (v = 0; v < mig.nr_vcpus; v++)
			ran &= mig.vcpus[v].passes >= 1;
		unlock();
		if (ran && gmem_now_ns() - t0 >= mig.run_ms * 1000000ULL)
			break;
	}
	WRITE_ONCE(mig.checker_stop, true);
	pthread_join(checker, NULL);
	TEST_ASSERT(stop_vcpus(), "source vCPUs did not stop");
	hdr.stop_ns = gmem_now_ns();
	hdr.ran_ms = (hdr.stop_ns - t0) / 1000000;
	read_stats(hdr.stats);

	/* The map first, then everything shared to read it. */
	for (pg = 0; pg < mig.npages; pg++)
		hdr.shared += test_bit8(mig.shared, pg);
	if (mig.mode == MODE_GMEM) {
		t0 = gmem_now_ns();
		convert(0, mig.size, false);
		hdr.to_shared_ms = (gmem_now_ns() - t0) / 1000000;
	}
	ctl = (const struct mig_ctl *)mig.mem;
	hdr.size = mig.size;
	hdr.nr_vcpus = mig.nr_vcpus;
	hdr.page_size = mig.mode == MODE_GMEM ? mig.page_size : 0;
	for (v = 0; v < mig.nr_vcpus; v++) {
		hdr.gen[v] = ctl->gen[v];
		hdr.next[v] = ctl->next[v];
	}
	hdr.passes = total_passes();
	hdr.conversions = mig.conversions;
	hdr.checks = mig.checks;
	budget = mig.npages * mig.precopy_pct / 100;
	hdr.precopy = budget;
	printf("source: ran %lu ms, %lu passes, %lu conversions, %lu checks\n",
	       hdr.ran_ms, hdr.passes, hdr.conversions, hdr.checks);
	printf("source: %lu pages shared at the stop\n", hdr.shared);
	fflush(stdout);

	pthread_create(&server, NULL, source_server, (void *)(long)req);
	if (!xsend(sock, &hdr, sizeof(hdr)) ||
	    !xsend(sock, mig.shared, mig.npages / 8 + 1))
		goto out;

	/* Pre-copy: the control page and what each vCPU writes next. */
	if (budget && !send_range(sock, req, 0, 1))
		goto out;
	per = budget / mig.nr_vcpus;
	for (v = 0; v < mig.nr_vcpus; v++) {
		uint64_t first = 1 + v * mig.per_vcpu;
		uint64_t next = hdr.next[v], n = min(per, mig.per_vcpu);

		if (!send_range(sock, req, first + next,
				first + min(next + n, mig.per_vcpu)))
			goto out;
		if (next + n > mig.per_vcpu &&
		    !send_range(sock, req, first,
				first + next + n - mig.per_vcpu))
			goto out;
	}
	msg.type = MSG_PRECOPY_END;
	if (!xsend(sock, &msg, sizeof(msg)))
		goto out;

	/* Post-copy: push the rest; requests go on the other socket. */
	for (i = 0; i < mig.npages; i += CHUNK)
		if (!send_range(sock, req, i, min(i + CHUNK, mig.npages)))
			goto out;
	msg.type = MSG_END;
	xsend(sock, &msg, sizeof(msg));
out:
	/* The destination closes the request socket when it has it all. */
	pthread_join(server, NULL);
	close(sock);
	close(req);
	quit_vcpus();
	teardown_vm();
	exit(0);
}

/* Destination */

static void uffd_wake(uint64_t off)
{
	struct uffdio_range r = {
		.start = (uintptr_t)mig.mem + off, .len = PAGE,
	};

	TEST_ASSERT(!ioctl(mig.uffd, UFFDIO_WAKE, &r), "UFFDIO_WAKE: %s",
		    strerror(errno));
}

/* Map page @off of the shmem guest mapping (the page cache has it). */
static void uffd_continue(uint64_t off, uint64_t len)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)mig.mem + off, .len = len },
	};

	TEST_ASSERT(!ioctl(mig.uffd, UFFDIO_CONTINUE, &c) || errno == EEXIST,
		    "UFFDIO_CONTINUE [0x%lx, +0x%lx): %s", off, len,
		    strerror(errno));
}

/*
 * Pages [@pg, +@n) are present: count them, wake the vCPUs waiting for
 * them and the userfaultfd faults on them.
 */
static void mark_present(uint64_t pg, uint64_t n)
{
	uint64_t wake[CHUNK], nwake = 0, i, t = gmem_now_ns();

	lock();
	for (i = pg; i < pg + n; i++) {
		if (mig.state[i] & PG_PRESENT)
			continue;
		if (++mig.present == mig.npages)
			mig.t_complete = t;
		if (mig.state[i] & PG_UWAIT) {
			add_sample(&mig.ulat, t - mig.uwait_t0[i]);
			wake[nwake++] = i;
		}
		mig.state[i] = (mig.state[i] & ~PG_UWAIT) | PG_PRESENT;
	}
	pthread_cond_broadcast(&mig.cond);
	unlock();
	for (i = 0; i < nwake; i++)
		uffd_wake(wake[i] * PAGE);
}

/* Resolve @n pages at @off from @buf; count them in @ok and @dup. */
static void apply_gmem(uint64_t off, uint64_t n, const uint8_t *buf,
		       uint64_t *ok, uint64_t *dup)
{
	uint64_t len = n * PAGE, done = 0, res;

	while (done < len) {
		int ret = resolve(mig.fd, off + done, len - done, buf + done,
				  &res);

		TEST_ASSERT(res <= len - done && !(res % PAGE),
			    "resolved 0x%lx of 0x%lx", res, len - done);
		if (res)
			mark_present((off + done) / PAGE, res / PAGE);
		__atomic_add_fetch(ok, res / PAGE, __ATOMIC_RELAXED);
		done += res;
		if (!ret) {
			TEST_ASSERT(done == len, "resolve stopped at 0x%lx",
				    off + done);
			break;
		}
		if (errno == EINTR)
			continue;
		/* A huge folio being split for a shared page: again. */
		if (errno == EAGAIN) {
			sched_yield();
			continue;
		}
		/* Poisoned: present for good, its contents lost. */
		if (errno == EHWPOISON) {
			mark_present((off + done) / PAGE, 1);
			__atomic_add_fetch(&mig.res.poisoned, 1,
					   __ATOMIC_RELAXED);
			done += PAGE;
			continue;
		}
		/* It came the other way first: present already. */
		TEST_ASSERT(errno == EEXIST, "KVM_GMEM_RESOLVE at 0x%lx: %s",
			    off + done, strerror(errno));
		mark_present((off + done) / PAGE, 1);
		__atomic_add_fetch(dup, 1, __ATOMIC_RELAXED);
		done += PAGE;
	}
}

/*
 * The shmem way: write each page that is not there yet through the alias
 * and map it in the guest mapping (UFFDIO_CONTINUE, which also wakes the
 * faults waiting on it).
 */
static void apply_shmem(uint64_t off, uint64_t n, const uint8_t *buf,
			uint64_t *ok, uint64_t *dup)
{
	uint64_t pg = off / PAGE, i = 0, run;

	while (i < n) {
		lock();
		for (run = 0; i + run < n; run++) {
			uint8_t *s = &mig.state[pg + i + run];

			if (*s & (PG_PRESENT | PG_CLAIMED))
				break;
			*s |= PG_CLAIMED;
		}
		unlock();
		if (!run) {
			__atomic_add_fetch(dup, 1, __ATOMIC_RELAXED);
			i++;
			continue;
		}
		memcpy(mig.alias + (pg + i) * PAGE, buf + i * PAGE,
		       run * PAGE);
		uffd_continue((pg + i) * PAGE, run * PAGE);
		mark_present(pg + i, run);
		__atomic_add_fetch(ok, run, __ATOMIC_RELAXED);
		i += run;
	}
}

/*
 * Every page that arrives holds exactly what the guest had written when
 * the source stopped (the control page: its counters), whichever way it
 * came: checked before it is put in place.
 */
static void check_arrival(uint64_t pg, const uint8_t *buf)
{
	uint64_t expect[PAGE / 8];

	if (pg) {
		expect_page(expect, pg, &mig.stop_ctl);
	} else {
		memset(expect, 0, PAGE);
		memcpy(expect, &mig.stop_ctl, sizeof(mig.stop_ctl));
	}
	TEST_ASSERT(!memcmp(buf, expect, PAGE),
		    "page %lu arrived with other contents (word 0 0x%lx, expected 0x%lx)",
		    pg, ((const uint64_t *)buf)[0], expect[0]);
}

static void apply_pages(uint64_t off, uint64_t n, const uint8_t *buf,
			uint64_t *ok, uint64_t *dup)
{
	uint64_t i;

	TEST_ASSERT(off < mig.size && n <= CHUNK &&
		    off + n * PAGE <= mig.size && !(off % PAGE),
		    "pages [0x%lx, +%lu) out of range", off, n);
	for (i = 0; i < n; i++)
		check_arrival(off / PAGE + i, buf + i * PAGE);
	if (mig.mode == MODE_GMEM)
		apply_gmem(off, n, buf, ok, dup);
	else
		apply_shmem(off, n, buf, ok, dup);
}

/* The source is gone: say why once, and wake everyone who waits. */
static void lost(const char *why)
{
	lock();
	if (!mig.abort) {
		mig.abort = true;
		snprintf(mig.why, sizeof(mig.why), "%s", why);
	}
	pthread_cond_broadcast(&mig.cond);
	unlock();
}

static uint8_t *chunk_buf(void)
{
	uint8_t *buf = malloc(CHUNK * PAGE);

	TEST_ASSERT(buf, "out of memory");
	return buf;
}

/* Read one stream message's pages and apply them; false on EOF. */
static bool receive_pages(int sock, const struct mig_msg *msg, uint8_t *buf,
			  uint64_t *ok, uint64_t *dup)
{
	TEST_ASSERT(msg->type == MSG_PAGES && msg->npages &&
		    msg->npages <= CHUNK, "bad message %u (%u pages)",
		    msg->type, msg->npages);
	if (!xread(sock, buf, msg->npages * PAGE))
		return false;
	apply_pages(msg->offset, msg->npages, buf, ok, dup);
	return true;
}

/*
 * Apply the stream's pages, counted in @ok, until a message of type
 * @until; if the stream ends first, the source is lost (@why).
 */
static void receive_stream(uint32_t until, uint64_t *ok, const char *why)
{
	uint8_t *buf = chunk_buf();
	struct mig_msg msg;
	bool done = false;

	while (!done && xread(mig.sock, &msg, sizeof(msg))) {
		done = msg.type == until;
		if (!done && !receive_pages(mig.sock, &msg, buf, ok,
					    &mig.res.pushed_dup))
			break;
	}
	if (!done)
		lost(why);
	free(buf);
}

static void *stream_receiver(void *arg)
{
	receive_stream(MSG_END, &mig.res.pushed,
		       "the migration stream ended before all pages were sent");
	return NULL;
}

static void *demand_receiver(void *arg)
{
	uint8_t *buf = chunk_buf();
	struct mig_msg msg;

	for (;;) {
		bool ok = xread(mig.req, &msg, sizeof(msg)) &&
			  receive_pages(mig.req, &msg, buf, &mig.res.demand,
					&mig.res.demand_dup);

		if (!ok) {
			lock();
			ok = mig.present == mig.npages;
			unlock();
			if (!ok)
				lost("the request channel closed");
			break;
		}
	}
	free(buf);
	return NULL;
}

/* The source is gone: let a fault waiting for page @off go on, wrongly. */
static void release_fault(uint64_t off)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)mig.mem + off, .len = PAGE },
	};

	/*
	 * If it fails with EAGAIN, the woken fault comes back and is released
	 * again; anything else would make it come back for ever.
	 */
	if (mig.mode == MODE_GMEM && ioctl(mig.uffd, UFFDIO_ZEROPAGE, &z))
		TEST_ASSERT(errno == EAGAIN || errno == EEXIST,
			    "UFFDIO_ZEROPAGE at 0x%lx: %s", off,
			    strerror(errno));
	else if (mig.mode != MODE_GMEM)
		uffd_continue(off, PAGE);
	uffd_wake(off);
}

static void handle_uffd_fault(uint64_t addr)
{
	uint64_t off = addr - (uintptr_t)mig.mem, pg = off / PAGE, t = gmem_now_ns();
	bool req = false, present, abort;

	TEST_ASSERT(off < mig.size, "fault at 0x%lx", addr);
	lock();
	mig.res.uffd_faults++;
	present = mig.state[pg] & PG_PRESENT;
	abort = mig.abort;
	if (!present && !abort) {
		/* A repeated event keeps the first one's time. */
		if (!(mig.state[pg] & PG_UWAIT))
			mig.uwait_t0[pg] = t;
		mig.state[pg] |= PG_UWAIT;
		if (!(mig.state[pg] & PG_REQUESTED)) {
			mig.state[pg] |= PG_REQUESTED;
			req = true;
		}
	}
	unlock();
	if (req)
		request_page(off);
	if (present) {
		/* Resolved since the fault was raised. */
		if (mig.mode == MODE_SHMEM)
			uffd_continue(off, PAGE);
		uffd_wake(off);
	} else if (abort) {
		release_fault(off);
	}
}

static void *uffd_thread(void *arg)
{
	struct pollfd pfd = { .fd = mig.uffd, .events = POLLIN };
	bool released = false;
	struct uffd_msg msg;
	uint64_t pg;

	while (!READ_ONCE(mig.uffd_stop)) {
		if (READ_ONCE(mig.abort) && !released) {
			/* Nothing will come: release every waiting fault. */
			for (pg = 0; pg < mig.npages; pg++) {
				bool w;

				lock();
				w = mig.state[pg] & PG_UWAIT;
				mig.state[pg] &= ~PG_UWAIT;
				unlock();
				if (w)
					release_fault(pg * PAGE);
			}
			released = true;
		}
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (read(mig.uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		TEST_ASSERT(msg.event == UFFD_EVENT_PAGEFAULT, "uffd event %u",
			    msg.event);
		handle_uffd_fault(msg.arg.pagefault.address & ~(PAGE - 1));
	}
	return NULL;
}

static void uffd_setup(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)mig.mem, .len = mig.size },
		.mode = mig.mode == MODE_GMEM ? UFFDIO_REGISTER_MODE_MISSING :
						UFFDIO_REGISTER_MODE_MINOR,
	};

	if (mig.mode == MODE_SHMEM)
		api.features = UFFD_FEATURE_MINOR_SHMEM;
	mig.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	TEST_ASSERT(mig.uffd >= 0, "userfaultfd: %s", strerror(errno));
	TEST_ASSERT(!ioctl(mig.uffd, UFFDIO_API, &api), "UFFDIO_API: %s",
		    strerror(errno));
	TEST_ASSERT(!ioctl(mig.uffd, UFFDIO_REGISTER, &reg),
		    "UFFDIO_REGISTER (%s): %s",
		    mig.mode == MODE_GMEM ? "MISSING" : "MINOR",
		    strerror(errno));
}

/*
 * Host checks on the destination while the guest runs, through the
 * registered mapping: the shared pages of the map (guest_memfd), or pages
 * all over the memory (memfd).
 */
static void *dest_checker(void *arg)
{
	unsigned int seed = getpid();
	uint64_t pg;

	while (!READ_ONCE(mig.checker_stop) && !READ_ONCE(mig.abort)) {
		if (mig.mode == MODE_SHMEM) {
			check_random(&seed, &mig.res.checks);
			continue;
		}
		for (pg = 0; pg < mig.npages && !READ_ONCE(mig.abort) &&
		     !READ_ONCE(mig.checker_stop); pg++) {
			if (!test_bit8(mig.shared, pg))
				continue;
			check_live((uint64_t *)(mig.mem + pg * PAGE), pg);
			mig.res.checks++;
		}
		usleep(50000);
	}
	return NULL;
}

static void progress(bool final)
{
	static int last_pct = -1;
	uint64_t present, demand;
	int pct, i;

	lock();
	present = mig.present;
	demand = mig.res.demand;
	unlock();
	pct = present * 100 / mig.npages;
	if (isatty(STDOUT_FILENO)) {
		printf("\r[");
		for (i = 0; i < 40; i++)
			putchar(i < pct * 40 / 100 ? '#' : ' ');
		printf("] %3d%% %lu/%lu pages, %lu on demand%s", pct, present,
		       mig.npages, demand, final ? "\n" : "");
		fflush(stdout);
	} else if (pct / 10 != last_pct / 10 || final) {
		printf("destination: %3d%% %lu/%lu pages present, %lu on demand\n",
		       pct, present, mig.npages, demand);
		fflush(stdout);
	}
	last_pct = pct;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(uint64_t *v, uint64_t n, uint64_t out[3])
{
	memset(out, 0, 3 * sizeof(*out));
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_u64);
	out[0] = v[n / 2];
	out[1] = v[n * 99 / 100];
	out[2] = v[n - 1];
}

static void collect_latencies(void)
{
	uint64_t n = 0, *all;
	int i;

	for (i = 0; i < mig.nr_vcpus; i++)
		n += mig.vcpus[i].lat.n;
	all = calloc(n + 1, sizeof(*all));
	TEST_ASSERT(all, "out of memory");
	n = 0;
	for (i = 0; i < mig.nr_vcpus; i++) {
		struct vcpu_ctx *c = &mig.vcpus[i];
		uint64_t j;

		for (j = 0; j < c->lat.n; j++)
			mig.res.stall_ns += c->lat.v[j];
		memcpy(all + n, c->lat.v, c->lat.n * sizeof(*all));
		n += c->lat.n;
		mig.res.exits += c->exits;
	}
	percentiles(all, n, mig.res.lat);
	percentiles(mig.ulat.v, mig.ulat.n, mig.res.ulat);
	free(all);
}

/*
 * Every page: nothing missing, shared exactly where the source's map says
 * (a host fault on a private page fails, MADV_POPULATE_READ says EFAULT),
 * and, everything made shared, each page exactly what the guest's
 * counters say.
 */
/* No missing bit is left once every page arrived (before any CLEAR). */
static void check_none_missing(void)
{
	struct kvm_gmem_userfault_bitmap b = { .size = mig.size };
	uint64_t pg;
	uint8_t *bm;

	bm = calloc(mig.npages / 8 + 1, 1);
	TEST_ASSERT(bm, "out of memory");
	b.bitmap = (uintptr_t)bm;
	TEST_ASSERT(!ioctl(mig.fd, KVM_GMEM_GET_USERFAULT, &b),
		    "KVM_GMEM_GET_USERFAULT: %s", strerror(errno));
	for (pg = 0; pg < mig.npages; pg++)
		TEST_ASSERT(!test_bit8(bm, pg),
			    "page %lu still missing with every page arrived", pg);
	free(bm);
}

static void verify(void)
{
	uint64_t expect[PAGE / 8], pg, bad = 0, t0 = gmem_now_ns();
	const struct mig_ctl *ctl;
	uint8_t *data;
	int v;

	if (mig.mode == MODE_GMEM) {
		for (pg = 0; pg < mig.npages; pg++) {
			bool shared = test_bit8(mig.shared, pg);
			int r;

			/*
			 * A private page takes a failing fault each (slow
			 * under TCG): unless every page is asked for, probe
			 * the edges of each run and every MAP_SAMPLE-th.
			 */
			if (!shared && !mig.map_all && pg % MAP_SAMPLE &&
			    pg && !test_bit8(mig.shared, pg - 1) &&
			    pg + 1 < mig.npages &&
			    !test_bit8(mig.shared, pg + 1))
				continue;
			r = madvise(mig.mem + pg * PAGE, PAGE,
				    MADV_POPULATE_READ);
			TEST_ASSERT(shared ? !r : r && errno == EFAULT,
				    "page %lu: %s on the source, populate says %s",
				    pg, shared ? "shared" : "private",
				    r ? strerror(errno) : "shared");
			mig.res.map_probed++;
		}
		mig.res.verify_map_ms = (gmem_now_ns() - t0) / 1000000;
		convert(0, mig.size, false);
	}
	data = mig.mode == MODE_GMEM ? mig.mem : mig.alias;
	/* Fault everything in at once rather than page by page. */
	TEST_ASSERT(!madvise(data, mig.size, MADV_POPULATE_READ),
		    "MADV_POPULATE_READ of all memory: %s", strerror(errno));
	ctl = (const struct mig_ctl *)data;
	for (v = 0; v < mig.nr_vcpus; v++)
		TEST_ASSERT(ctl->gen[v] > mig.res.hdr.gen[v] &&
			    ctl->next[v] < mig.per_vcpu,
			    "vCPU %d: generation %lu (%lu on the source), next %lu",
			    v, ctl->gen[v], mig.res.hdr.gen[v], ctl->next[v]);
	for (pg = 1; pg < mig.npages; pg++) {
		expect_page(expect, pg, ctl);
		if (!memcmp(data + pg * PAGE, expect, PAGE))
			continue;
		if (bad++ < 8) {
			const uint64_t *p = (const uint64_t *)(data + pg * PAGE);
			int k;

			for (k = 0; k < PAGE / 8 && p[k] == expect[k]; k++)
				;
			printf("page %lu (0x%lx): word %d is 0x%lx, expected 0x%lx\n",
			       pg, pg * PAGE, k, p[k], expect[k]);
		}
	}
	TEST_ASSERT(!bad, "%lu pages differ from the guest's counters", bad);
	mig.res.verified = mig.npages;
	mig.res.verify_ms = (gmem_now_ns() - t0) / 1000000;
}

static void __noreturn dest_exit(int result_fd, int status)
{
	mig.res.status = status;
	snprintf(mig.res.why, sizeof(mig.res.why), "%s", mig.why);
	TEST_ASSERT(write(result_fd, &mig.res, sizeof(mig.res)) ==
		    sizeof(mig.res), "writing the result failed");
	exit(status);
}

static void __noreturn run_dest(int sock, int req, int result_fd)
{
	pthread_t stream, demand, handler, checker;
	bool started = false, checking = false, ok;
	uint64_t t0, pg, n;
	struct mig_hdr *hdr = &mig.res.hdr;
	int v, status = EXIT_SOURCE_LOST;

	mig.dest = true;
	mig.sock = sock;
	mig.req = req;
	setup_vm();
	mig.state = calloc(mig.npages, 1);
	mig.uwait_t0 = calloc(mig.npages, sizeof(*mig.uwait_t0));
	TEST_ASSERT(mig.state && mig.uwait_t0, "out of memory");
	if (mig.mode == MODE_GMEM) {
		set_userfault(mig.fd, KVM_GMEM_USERFAULT_SET, 0, 0, mig.size);
	} else {
		/* Every page in the page cache, so every access is MINOR. */
		TEST_ASSERT(!fallocate(mig.fd, 0, 0, mig.size),
			    "fallocate: %s", strerror(errno));
		mig.alias = mmap(NULL, mig.size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, mig.fd, 0);
		TEST_ASSERT(mig.alias != MAP_FAILED, "mmap: %s",
			    strerror(errno));
	}
	uffd_setup();
	pthread_create(&handler, NULL, uffd_thread, NULL);

	if (!xread(sock, hdr, sizeof(*hdr)) ||
	    !xread(sock, mig.shared, mig.npages / 8 + 1)) {
		lost("the source went away before the header and map");
		goto abort;
	}
	TEST_ASSERT(hdr->magic == MIG_MAGIC && hdr->size == mig.size &&
		    hdr->nr_vcpus == mig.nr_vcpus,
		    "header: magic 0x%lx, %lu bytes, %lu vCPUs", hdr->magic,
		    hdr->size, hdr->nr_vcpus);
	for (v = 0; v < mig.nr_vcpus; v++) {
		mig.vcpus[v].gen = hdr->gen[v];
		mig.stop_ctl.gen[v] = hdr->gen[v];
		mig.stop_ctl.next[v] = hdr->next[v];
	}
	if (mig.mode == MODE_GMEM) {
		for (pg = 0; pg < mig.npages; pg += n) {
			for (n = 0; pg + n < mig.npages &&
			     test_bit8(mig.shared, pg + n); n++)
				;
			if (n)
				convert(pg * PAGE, n * PAGE, false);
			else
				n = 1;
		}
	}

	/* Pre-copy, before the vCPUs run. */
	t0 = gmem_now_ns();
	receive_stream(MSG_PRECOPY_END, &mig.res.precopied,
		       "the source went away during the pre-copy");
	if (mig.abort)
		goto abort;
	printf("destination: %lu pages pre-copied in %lu ms, starting the guest\n",
	       mig.res.precopied, (gmem_now_ns() - t0) / 1000000);
	fflush(stdout);

	pthread_create(&stream, NULL, stream_receiver, NULL);
	pthread_create(&demand, NULL, demand_receiver, NULL);
	started = true;
	t0 = gmem_now_ns();
	mig.res.downtime_ns = t0 - hdr->stop_ns;
	start_vcpus();
	pthread_create(&checker, NULL, dest_checker, NULL);
	checking = true;

	while (!mig.abort) {
		usleep(200000);
		progress(false);
		lock();
		ok = mig.present == mig.npages;
		unlock();
		if (ok)
			break;
	}
	if (mig.abort)
		goto abort;
	lock();
	mig.res.run_before_complete_ns = mig.t_complete - t0;
	unlock();
	read_stats(mig.res.stats_complete);
	if (mig.mode == MODE_GMEM)
		check_none_missing();
	progress(true);
	/* Nothing more to ask for: the source may go once its stream ended. */
	shutdown(req, SHUT_WR);
	pthread_join(stream, NULL);
	pthread_join(demand, NULL);
	started = false;
	if (mig.abort)
		goto abort;

	/*
	 * A pass that started after the last page came (two pass ends); then
	 * the end of post-copy: clear the (no longer set) missing bits of the
	 * whole file with COLLAPSE, which zaps KVM's mappings so that the
	 * next faults map as large as they can, while the guest runs, and
	 * again a pass that started after it.
	 */
	if (!wait_passes(2))
		goto abort;
	read_stats(mig.res.stats_pass);
	if (mig.mode == MODE_GMEM) {
		t0 = gmem_now_ns();
		set_userfault(mig.fd, KVM_GMEM_USERFAULT_CLEAR,
			      KVM_GMEM_USERFAULT_FLAG_COLLAPSE, 0, mig.size);
		mig.res.collapse_us = (gmem_now_ns() - t0) / 1000;
		if (!wait_passes(2))
			goto abort;
		read_stats(mig.res.stats_collapse);
	}
	if (!stop_vcpus())
		goto abort;
	WRITE_ONCE(mig.checker_stop, true);
	pthread_join(checker, NULL);
	checking = false;
	verify();
	status = 0;
	goto out;

abort:
	printf("\ndestination: migration source lost (%s): stopping the guest\n",
	       mig.why);
	fflush(stdout);
out:
	quit_vcpus();
	WRITE_ONCE(mig.checker_stop, true);
	if (checking)
		pthread_join(checker, NULL);
	shutdown(sock, SHUT_RDWR);
	shutdown(req, SHUT_RDWR);
	if (started) {
		pthread_join(stream, NULL);
		pthread_join(demand, NULL);
	}
	WRITE_ONCE(mig.uffd_stop, true);
	pthread_join(handler, NULL);
	collect_latencies();
	close(mig.uffd);
	close(sock);
	close(req);
	teardown_vm();
	if (status)
		printf("destination: stopped, %lu of %lu pages had arrived\n",
		       mig.present, mig.npages);
	dest_exit(result_fd, status);
}

/* Parent */

struct pools {
	unsigned long free_1g, free_2m, resv_1g, resv_2m;
};

static void read_pools(struct pools *p)
{
	p->free_1g = gmem_hugetlb_pool(SZ_1G, "free_hugepages");
	p->free_2m = gmem_hugetlb_pool(SZ_2M, "free_hugepages");
	p->resv_1g = gmem_hugetlb_pool(SZ_1G, "resv_hugepages");
	p->resv_2m = gmem_hugetlb_pool(SZ_2M, "resv_hugepages");
}

static const char *backing_name(uint64_t page_size)
{
	return page_size == SZ_1G ? "1G" : page_size == SZ_2M ? "2M" : "4K";
}

/*
 * Fork the source (@dest false) or the destination: it keeps its ends of
 * the stream @sv and the request channel @rq (0: the source's, 1: the
 * destination's) and, the destination, the write end of the result pipe
 * @rp.
 */
static pid_t fork_side(bool dest, int sv[2], int rq[2], int rp[2])
{
	pid_t pid = fork();

	TEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid)
		return pid;
	/* Never outlive the parent with the pools' pages. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(sv[!dest]);
	close(rq[!dest]);
	close(rp[0]);
	if (dest)
		run_dest(sv[1], rq[1], rp[1]);
	close(rp[1]);
	run_source(sv[0], rq[0]);
}

/*
 * Fork the source and the destination for one migration; collect the
 * destination's result and both statuses.  Kills both after @timeout_s.
 */
static void migrate(enum mode mode, struct mig_result *res, int *src_status,
		    int *dst_status, int timeout_s)
{
	int sv[2], rq[2], rp[2], fds = 0;
	uint64_t deadline = gmem_now_ns() + timeout_s * 1000000000ULL;
	pid_t src, dst;
	struct pollfd pfd;

	mig.mode = mode;
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv) &&
		    !socketpair(AF_UNIX, SOCK_STREAM, 0, rq) && !pipe(rp),
		    "socketpair: %s", strerror(errno));
	fflush(stdout);
	src = fork_side(false, sv, rq, rp);
	dst = fork_side(true, sv, rq, rp);
	close(sv[0]);
	close(sv[1]);
	close(rq[0]);
	close(rq[1]);
	close(rp[1]);

	memset(res, 0, sizeof(*res));
	res->status = -1;
	*src_status = *dst_status = -1;
	pfd = (struct pollfd){ .fd = rp[0], .events = POLLIN };
	while (fds < 2 && gmem_now_ns() < deadline) {
		int status;
		pid_t pid;

		if (pfd.fd >= 0 && poll(&pfd, 1, 100) > 0) {
			if (read(rp[0], res, sizeof(*res)) != sizeof(*res))
				res->status = -1;
			close(rp[0]);
			pfd.fd = -1;
		} else if (pfd.fd < 0) {
			usleep(100000);
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == src)
				*src_status = status;
			else if (pid == dst)
				*dst_status = status;
			fds++;
		}
	}
	if (fds < 2) {
		printf("# the migration hung for %d s: killing both sides\n",
		       timeout_s);
		/* Only the sides not reaped yet: a reaped pid may be reused. */
		if (*src_status == -1) {
			kill(src, SIGKILL);
			waitpid(src, src_status, 0);
		}
		if (*dst_status == -1) {
			kill(dst, SIGKILL);
			waitpid(dst, dst_status, 0);
		}
		res->status = -1;
		snprintf(res->why, sizeof(res->why), "timeout");
	}
	if (pfd.fd >= 0)
		close(pfd.fd);
}

static void print_stats(const char *what, const uint64_t s[3])
{
	printf("| KVM pages 1G / 2M / 4K, %s | %lu / %lu / %lu |\n", what,
	       s[2], s[1], s[0]);
}

static void print_table(enum mode mode, const struct mig_result *r,
			const struct pools *before, const struct pools *after,
			uint64_t wall_ms)
{
	const struct mig_hdr *h = &r->hdr;
	uint64_t pages = h->size / PAGE;

	printf("\n| %s | |\n|---|---|\n", mode == MODE_GMEM ?
	       "post-copy: guest_memfd missing pages" :
	       "post-copy: memfd + userfaultfd MINOR");
	printf("| guest memory | %lu MiB, %lu pages, %s pages, %lu vCPUs |\n",
	       h->size >> 20, pages,
	       mode == MODE_GMEM ? backing_name(h->page_size) : "4K shmem",
	       h->nr_vcpus);
	printf("| source ran | %lu ms, %lu passes, %lu conversions, %lu pages checked |\n",
	       h->ran_ms, h->passes, h->conversions, h->checks);
	if (mode == MODE_GMEM) {
		printf("| shared at the stop | %lu pages |\n", h->shared);
		printf("| source: all to shared to read it | %lu ms |\n",
		       h->to_shared_ms);
	}
	printf("| downtime, source stop to destination start | %.1f ms |\n",
	       r->downtime_ns / 1e6);
	printf("| sent during the downtime (pre-copy budget) | %lu pages (%lu%%) |\n",
	       r->precopied, r->precopied * 100 / pages);
	printf("| pushed in the background | %lu pages (+%lu already there) |\n",
	       r->pushed, r->pushed_dup);
	printf("| on demand | %lu pages (%lu requests, %lu answers already there) |\n",
	       r->demand, r->requests, r->demand_dup);
	if (mode == MODE_GMEM) {
		printf("| vCPU exits on missing pages | %lu (+%lu shared/private races) |\n",
		       r->exits, r->mismatch);
		printf("| vCPU stall, total | %.1f ms |\n", r->stall_ns / 1e6);
		printf("| fault latency p50/p99/max, exit to re-entry | %.0f / %.0f / %.0f us |\n",
		       r->lat[0] / 1e3, r->lat[1] / 1e3, r->lat[2] / 1e3);
	}
	printf("| userfaultfd faults (%s) | %lu |\n",
	       mode == MODE_GMEM ? "host checks, MISSING" :
				   "vCPUs and host checks, MINOR",
	       r->uffd_faults);
	printf("| userfaultfd latency p50/p99/max, first event to wake | %.0f / %.0f / %.0f us |\n",
	       r->ulat[0] / 1e3, r->ulat[1] / 1e3, r->ulat[2] / 1e3);
	printf("| guest ran before memory was complete | %.1f ms |\n",
	       r->run_before_complete_ns / 1e6);
	printf("| destination host checks while the guest ran | %lu pages |\n",
	       r->checks);
	print_stats("source before migration", h->stats);
	print_stats("destination, when memory was complete",
		    r->stats_complete);
	print_stats("destination, complete + a pass", r->stats_pass);
	if (mode == MODE_GMEM) {
		printf("| collapse (CLEAR + COLLAPSE, whole file) | %.1f ms |\n",
		       r->collapse_us / 1e3);
		print_stats("destination, collapsed + a pass",
			    r->stats_collapse);
	}
	printf("| hugetlb 1G free (reserved) before / after | %lu (%lu) / %lu (%lu) |\n",
	       before->free_1g, before->resv_1g, after->free_1g,
	       after->resv_1g);
	printf("| hugetlb 2M free (reserved) before / after | %lu (%lu) / %lu (%lu) |\n",
	       before->free_2m, before->resv_2m, after->free_2m,
	       after->resv_2m);
	if (r->poisoned)
		printf("| poisoned on arrival (lost) | %lu pages |\n",
		       r->poisoned);
	printf("| verified | %lu pages on arrival, %lu again at the end in %lu ms |\n",
	       pages - r->poisoned, r->verified, r->verify_ms);
	if (mode == MODE_GMEM)
		printf("| shared/private state probed | %lu pages in %lu ms |\n",
		       r->map_probed, r->verify_map_ms);
	printf("| wall time | %lu ms |\n\n", wall_ms);
}

static bool exited(int status, int code)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static void describe(const char *who, int status)
{
	if (status == -1)
		printf("# %s: not reaped\n", who);
	else if (WIFSIGNALED(status))
		printf("# %s: killed by signal %d\n", who, WTERMSIG(status));
	else
		printf("# %s: exit status %d\n", who, WEXITSTATUS(status));
}

/* One migration; returns 0, EXIT_SOURCE_LOST, or 1 on failure. */
static int run_one(enum mode mode)
{
	bool inject = mig.kill_at >= 0 || mig.drop_at >= 0;
	int src_status, dst_status, timeout, ret = 0;
	const char *name = mode == MODE_GMEM ? "guest_memfd" : "memfd+MINOR";
	struct pools before, after;
	struct mig_result res;
	uint64_t t0 = gmem_now_ns();

	timeout = 600 + (mig.size >> 20) * 2;
	read_pools(&before);
	migrate(mode, &res, &src_status, &dst_status, timeout);
	read_pools(&after);

	if (inject) {
		bool src_ok = mig.kill_at >= 0 ?
			      src_status != -1 && WIFSIGNALED(src_status) &&
			      WTERMSIG(src_status) == SIGKILL :
			      exited(src_status, 0);

		if (!src_ok || !exited(dst_status, EXIT_SOURCE_LOST) ||
		    res.status != EXIT_SOURCE_LOST) {
			describe("source", src_status);
			describe("destination", dst_status);
			if (exited(dst_status, 0) && !res.status)
				printf("# the migration completed: the source was never lost\n");
			ret = 1;
		} else {
			printf("# destination stopped cleanly: %s\n", res.why);
			ret = EXIT_SOURCE_LOST;
		}
	} else if (!exited(src_status, 0) || !exited(dst_status, 0) ||
		   res.status) {
		describe("source", src_status);
		describe("destination", dst_status);
		if (res.why[0])
			printf("# destination: %s\n", res.why);
		ret = 1;
	}
	if (memcmp(&before, &after, sizeof(before))) {
		printf("# hugetlb pools not exact: free 1G %lu -> %lu, 2M %lu -> %lu,",
		       before.free_1g, after.free_1g, before.free_2m,
		       after.free_2m);
		printf(" reserved 1G %lu -> %lu, 2M %lu -> %lu\n",
		       before.resv_1g, after.resv_1g, before.resv_2m,
		       after.resv_2m);
		ret = 1;
	}
	if (!ret)
		print_table(mode, &res, &before, &after,
			    (gmem_now_ns() - t0) / 1000000);
	if (inject)
		ksft_test_result(ret == EXIT_SOURCE_LOST,
				 "%s: source lost, destination stopped cleanly, pools exact\n",
				 name);
	else
		ksft_test_result(!ret, "%s: migrated, every page verified, pools exact\n",
				 name);
	return ret;
}

/*
 * The backing: the preferred hugetlb size if its pool holds both sides'
 * memory (source and destination exist at once), else the next smaller.
 */
static void choose_backing(uint64_t preferred)
{
	uint64_t sizes[] = { SZ_1G, SZ_2M }, caps;
	int i;

	caps = kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint64_t ps = sizes[i], have;

		if (ps > preferred)
			continue;
		have = gmem_hugetlb_pool(ps, "free_hugepages") * ps;
		if ((caps & ps) && !(mig.size % ps) && have >= 2 * mig.size) {
			mig.page_size = ps;
			mig.gmem_flags = GUEST_MEMFD_FLAG_HUGETLB |
					 (ps == SZ_1G ? GUEST_MEMFD_HUGETLB_1GB :
							GUEST_MEMFD_HUGETLB_2MB);
			return;
		}
		printf("# %s pool short (%lu MiB free, %lu MiB for both sides%s): falling back\n",
		       backing_name(ps), have >> 20, 2 * mig.size >> 20,
		       caps & ps ? "" : ", or not supported");
	}
	mig.page_size = 0;
	mig.gmem_flags = 0;
}

static void help(FILE *f, const char *name)
{
	fprintf(f, "usage: %s [-g GiB | -m MiB] [-v vCPUs] [-p precopy%%] [-t source ms]\n"
		"          [-b 1g|2m|4k] [--short] [--no-shmem] [--map-all]\n"
		"          [--kill-source-at=P | --drop-at=P [--expect-source-loss]]\n"
		"P is a percentage of the pages sent, 0 to 100, with or without '%%'.\n",
		name);
}

/* Bad arguments: say what, the usage, and exit 2. */
static void __noreturn bad_usage(const char *name, const char *what)
{
	fprintf(stderr, "%s: %s\n", name, what);
	help(stderr, name);
	exit(2);
}

/*
 * @arg as a decimal number from @min to @max, with an optional '%' after
 * it if @pct; bad_usage() if it is not.
 */
static uint64_t parse_num(const char *name, const char *opt, const char *arg,
			  uint64_t min, uint64_t max, bool pct)
{
	char *end, what[128];
	uint64_t v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (pct && *end == '%')
		end++;
	if (errno || end == arg || *end || *arg == '-' || v < min || v > max) {
		snprintf(what, sizeof(what), "bad value '%s' for %s (%lu to %lu%s)",
			 arg, opt, min, max, pct ? ", optionally with '%'" : "");
		bad_usage(name, what);
	}
	return v;
}

int main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "short", no_argument, NULL, 's' },
		{ "no-shmem", no_argument, NULL, 'n' },
		{ "map-all", no_argument, NULL, 'a' },
		{ "kill-source-at", required_argument, NULL, 'k' },
		{ "drop-at", required_argument, NULL, 'd' },
		{ "expect-source-loss", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	uint64_t preferred = SZ_1G, max_mib = BIT_ULL(OFF_BITS) >> 20;
	const char *me = argv[0];
	int opt, ret, plan;

	while ((opt = getopt_long(argc, argv, "g:m:v:p:t:b:h", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'g':
			mig.size = parse_num(me, "-g", optarg, 1,
					     max_mib >> 10, false) << 30;
			break;
		case 'm':
			mig.size = parse_num(me, "-m", optarg, 8, max_mib,
					     false) << 20;
			break;
		case 'v':
			mig.nr_vcpus = parse_num(me, "-v", optarg, 1, MAX_VCPUS,
						 false);
			break;
		case 'p':
			mig.precopy_pct = parse_num(me, "-p", optarg, 0, 100,
						    true);
			break;
		case 't':
			mig.run_ms = parse_num(me, "-t", optarg, 0, 3600000,
					       false);
			break;
		case 'b':
			if (!strcmp(optarg, "1g"))
				preferred = SZ_1G;
			else if (!strcmp(optarg, "2m"))
				preferred = SZ_2M;
			else if (!strcmp(optarg, "4k"))
				preferred = PAGE;
			else
				bad_usage(me, "-b takes 1g, 2m or 4k");
			break;
		case 's':
			mig.size = 64 * SZ_1M;
			mig.run_ms = 1000;
			preferred = SZ_2M;
			break;
		case 'n':
			mig.shmem_run = false;
			break;
		case 'a':
			mig.map_all = true;
			break;
		case 'k':
			mig.kill_at = parse_num(me, "--kill-source-at", optarg,
						0, 100, true);
			break;
		case 'd':
			mig.drop_at = parse_num(me, "--drop-at", optarg, 0,
						100, true);
			break;
		case 'e':
			mig.expect_loss = true;
			break;
		case 'h':
			help(stdout, me);
			return 0;
		default:
			help(stderr, me);
			return 2;
		}
	}
	if (optind < argc)
		bad_usage(me, "unexpected argument");
	if (mig.size % SZ_2M)
		bad_usage(me, "memory must be a multiple of 2M");
	if (mig.kill_at >= 0 && mig.drop_at >= 0)
		bad_usage(me, "one fault injection at a time");
	if (mig.expect_loss && mig.kill_at < 0 && mig.drop_at < 0)
		bad_usage(me, "--expect-source-loss needs --kill-source-at or --drop-at");
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD_USERFAULT));
	/*
	 * Conversions in the last 1G block (in the upper half of memory below
	 * 2G): the blocks below stay uniformly private, for huge mappings.
	 */
	if (mig.size >= 2 * SZ_1G)
		mig.conv_start = (mig.size - 1) / SZ_1G * SZ_1G;
	else
		mig.conv_start = (mig.size / 2 + SZ_2M - 1) / SZ_2M * SZ_2M;
	/* Every page's shared/private state up to 256M, else a sample. */
	if (mig.size <= 256 * SZ_1M)
		mig.map_all = true;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	choose_backing(preferred);
	if (mig.kill_at >= 0 || mig.drop_at >= 0)
		mig.shmem_run = false;
	plan = mig.shmem_run ? 2 : 1;
	ksft_print_header();
	ksft_set_plan(plan);
	ksft_print_msg("migrating %lu MiB on %s guest_memfd pages, %d vCPUs, pre-copy %d%%\n",
		       mig.size >> 20, backing_name(mig.page_size),
		       mig.nr_vcpus, mig.precopy_pct);

	ret = run_one(MODE_GMEM);
	if (mig.shmem_run && ret != 1 && run_one(MODE_SHMEM))
		ret = 1;
	if (ret == EXIT_SOURCE_LOST) {
		/* What the fault injection asked for. */
		if (mig.expect_loss)
			ksft_exit_pass();
		ksft_print_cnts();
		exit(EXIT_SOURCE_LOST);
	}
	if (ret)
		ksft_exit_fail();
	ksft_exit_pass();
}
