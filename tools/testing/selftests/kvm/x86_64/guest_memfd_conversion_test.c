// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest_memfd host mmap and in-place shared <-> private conversion
 * (GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_FLAG_INIT_SHARED,
 * KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd) on a
 * KVM_X86_SW_PROTECTED_VM:
 *  - the capabilities on /dev/kvm and per VM type, and the creation flags,
 *    with their failure cases;
 *  - mmap: MAP_SHARED only, zeroed pages, SIGBUS on private pages;
 *  - every bad input of KVM_SET_MEMORY_ATTRIBUTES2 fails and changes
 *    nothing;
 *  - the conversion matrix over 4K, 2M and the whole file, with the guest
 *    and the host each reading the other's data after every conversion;
 *  - refusal: a page pinned through vmsplice() or by direct I/O in flight
 *    fails conversion to private with EAGAIN and its offset, and state and
 *    data stay as they were;
 *  - conversion to private revokes every process's mappings: a forked
 *    child that maps a page gets SIGBUS afterwards;
 *  - memslots served by guest_memfd alone: no userspace address, shared
 *    and private pages both come from the file; a file that starts shared
 *    but cannot be mapped by the host (INIT_SHARED alone);
 *  - a private access whose guest_memfd is gone exits to userspace;
 *  - NUMA: the pages a guest faults in follow the file's policy set by
 *    mbind() on a host mapping, 4K and 2M hugetlb files alike;
 *  - races: conversions, hole punches, host faults and a running vCPU on
 *    one file, then a full conversion round trip with the data checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/loop.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest_memfd_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define GMEM_GPA	0x100000000ULL
#define GMEM_SLOT	10
#define GMEM_SIZE	(4UL << 20)
#define SZ_2M		(2UL << 20)
#define CHECK_STRIDE	256

static const struct vm_shape protected_vm_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

/* Guest parameters, set with sync_global_to_guest() before each run. */
static uint64_t guest_offset, guest_size;
static uint8_t guest_expect, guest_write;

static void guest_code(void)
{
	for (;;) {
		uint8_t *p = (uint8_t *)(GMEM_GPA + guest_offset);
		uint64_t i;

		for (i = 0; i < guest_size; i += CHECK_STRIDE)
			GUEST_ASSERT_EQ(READ_ONCE(p[i]), guest_expect);
		for (i = 0; i < guest_size; i += CHECK_STRIDE)
			WRITE_ONCE(p[i], guest_write);
		GUEST_SYNC(0);
	}
}

/* Per thread: the race test faults from several threads at once. */
static __thread sigjmp_buf sigbus_jmp;

static void sigbus_handler(int sig)
{
	siglongjmp(sigbus_jmp, 1);
}

/* Whether a host write of @val to @p raises SIGBUS. */
static bool host_write_faults(uint8_t *p, uint8_t val)
{
	if (sigsetjmp(sigbus_jmp, 1))
		return true;
	WRITE_ONCE(*p, val);
	return false;
}

/* Whether a host read of @p raises SIGBUS. */
static bool host_read_faults(uint8_t *p)
{
	if (sigsetjmp(sigbus_jmp, 1))
		return true;
	(void)READ_ONCE(*p);
	return false;
}

static void host_check(uint8_t *mem, uint64_t offset, uint64_t size,
		       uint8_t expect)
{
	uint64_t i;

	for (i = 0; i < size; i += CHECK_STRIDE)
		TEST_ASSERT(mem[offset + i] == expect,
			    "host read 0x%x at 0x%lx, expected 0x%x",
			    mem[offset + i], offset + i, expect);
}

static void host_fill(uint8_t *mem, uint64_t offset, uint64_t size,
		      uint8_t val)
{
	uint64_t i;

	for (i = 0; i < size; i += CHECK_STRIDE)
		mem[offset + i] = val;
}

static int __convert(int fd, bool to_private, struct kvm_memory_attributes2 *c)
{
	c->attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
	return ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, c);
}

static void convert(int fd, uint64_t offset, uint64_t size, bool to_private)
{
	struct kvm_memory_attributes2 c = { .offset = offset, .size = size };
	int r = __convert(fd, to_private, &c);

	TEST_ASSERT(!r, "conversion to %s of [0x%lx, +0x%lx) failed: %s",
		    to_private ? "private" : "shared", offset, size,
		    strerror(errno));
}

static void run_guest(struct kvm_vcpu *vcpu, uint64_t offset, uint64_t size,
		      uint8_t expect, uint8_t write)
{
	struct kvm_vm *vm = vcpu->vm;

	guest_offset = offset;
	guest_size = size;
	guest_expect = expect;
	guest_write = write;
	sync_global_to_guest(vm, guest_offset);
	sync_global_to_guest(vm, guest_size);
	sync_global_to_guest(vm, guest_expect);
	sync_global_to_guest(vm, guest_write);

	vcpu_run(vcpu);
	gmem_expect_sync(vcpu);
}

struct gmem_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	uint8_t *mem;
	int fd;
};

/*
 * A VM with one vCPU and GMEM_SIZE of guest_memfd at GMEM_GPA, mapped by
 * the host. With @no_uaddr the memslot has no userspace address: KVM takes
 * every page from the file (it does either way, the address only serves
 * KVM's own accesses).
 */
static void ___gmem_vm_create(struct gmem_vm *g, uint64_t flags, void *code,
			      bool no_uaddr)
{
	g->vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &g->vcpu,
					      code);
	g->fd = vm_create_guest_memfd(g->vm, GMEM_SIZE,
				      GUEST_MEMFD_FLAG_MMAP | flags);
	g->mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g->fd, 0);
	TEST_ASSERT(g->mem != MAP_FAILED, "mmap of guest_memfd failed");
	vm_set_user_memory_region2(g->vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, GMEM_SIZE,
				   no_uaddr ? NULL : g->mem, g->fd, 0);
	virt_map(g->vm, GMEM_GPA, GMEM_GPA, GMEM_SIZE / getpagesize());
}

static void __gmem_vm_create(struct gmem_vm *g, uint64_t flags, void *code)
{
	___gmem_vm_create(g, flags, code, false);
}

static void gmem_vm_create(struct gmem_vm *g, uint64_t flags)
{
	__gmem_vm_create(g, flags, guest_code);
}

static void gmem_vm_destroy(struct gmem_vm *g)
{
	munmap(g->mem, GMEM_SIZE);
	kvm_vm_free(g->vm);
	close(g->fd);
}

/*
 * guest_memfd memslots take neither dirty logging nor read-only (upstream
 * since 6.8), and the memslot works once the flags are right.
 */
static void test_memslot_flags(struct kvm_vm *vm)
{
	int fd = vm_create_guest_memfd(vm, GMEM_SIZE, GUEST_MEMFD_FLAG_MMAP |
				       GUEST_MEMFD_FLAG_INIT_SHARED);
	static const uint32_t bad[] = {
		KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY,
	};
	int i, r;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		r = __vm_set_user_memory_region2(vm, GMEM_SLOT,
						 KVM_MEM_GUEST_MEMFD | bad[i],
						 GMEM_GPA, GMEM_SIZE, NULL, fd, 0);
		TEST_ASSERT(r && errno == EINVAL,
			    "guest_memfd memslot with flag 0x%x must fail",
			    bad[i]);
	}
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, GMEM_SIZE, NULL, fd, 0);
	vm_set_user_memory_region2(vm, GMEM_SLOT, 0, GMEM_GPA, 0, NULL, 0, 0);
	close(fd);
}

/* Whether creating a guest_memfd with @flags on @vm works. */
static bool create_works(struct kvm_vm *vm, uint64_t flags)
{
	int fd = __vm_create_guest_memfd(vm, GMEM_SIZE, flags);

	if (fd < 0) {
		TEST_ASSERT(errno == EINVAL, "flags 0x%lx: errno %d", flags,
			    errno);
		return false;
	}
	close(fd);
	return true;
}

/*
 * The capabilities as upstream reports them (KVM_CAP_GUEST_MEMFD_FLAGS on
 * /dev/kvm and per VM type, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) plus
 * this series' KVM_CAP_GUEST_MEMFD_HUGETLB, and which creation flags each
 * VM type takes.
 */
static void test_flags(void)
{
	const uint64_t both = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	uint64_t bit;
	int sizes;

	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_GUEST_MEMFD_FLAGS), both);
	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES),
		       KVM_MEMORY_ATTRIBUTE_PRIVATE);
	sizes = kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB);
	TEST_ASSERT(sizes & BIT(21), "2M hugetlb pages missing: 0x%x", sizes);
	TEST_ASSERT(!(sizes & ~(BIT(21) | BIT(30))),
		    "unexpected hugetlb page sizes: 0x%x", sizes);

	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS), both);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES),
		       KVM_MEMORY_ATTRIBUTE_PRIVATE);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB), sizes);

	/* Each flag the capability reports works alone and with the other. */
	TEST_ASSERT(create_works(vm, GUEST_MEMFD_FLAG_MMAP), "MMAP alone");
	TEST_ASSERT(create_works(vm, GUEST_MEMFD_FLAG_INIT_SHARED),
		    "INIT_SHARED alone");
	TEST_ASSERT(create_works(vm, both), "MMAP | INIT_SHARED");
	/*
	 * Every other bit alone fails: the hugetlb flag needs a page size and
	 * the page size field needs the flag (guest_memfd_hugetlb_test).
	 */
	for (bit = 0; bit < 64; bit++)
		if (!(BIT_ULL(bit) & both))
			TEST_ASSERT(!create_works(vm, BIT_ULL(bit)),
				    "flag bit %lu must be rejected", bit);
	TEST_ASSERT(__vm_create_guest_memfd(vm, GMEM_SIZE + 1,
					    GUEST_MEMFD_FLAG_MMAP) < 0 &&
		    errno == EINVAL, "unaligned size must fail");
	kvm_vm_free(vm);

	/*
	 * The default VM type has no private memory, so nothing to convert,
	 * but all its RAM can be guest_memfd (guest_memfd_test runs a guest).
	 */
	vm = vm_create_barebones();
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD), 1);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS), both);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), 0);
	TEST_ASSERT(create_works(vm, both), "default VM: MMAP | INIT_SHARED");
	test_memslot_flags(vm);
	kvm_vm_free(vm);
	vm = ____vm_create(protected_vm_shape);
	test_memslot_flags(vm);
	kvm_vm_free(vm);
	ksft_test_result_pass("flags\n");
}

static void test_mmap(void)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape);
	uint8_t *mem;
	int fd;

	/* Without GUEST_MEMFD_FLAG_MMAP there is nothing to map. */
	fd = vm_create_guest_memfd(vm, GMEM_SIZE, 0);
	mem = mmap(NULL, GMEM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem == MAP_FAILED && errno == ENODEV,
		    "mmap without GUEST_MEMFD_FLAG_MMAP must fail");
	close(fd);

	fd = vm_create_guest_memfd(vm, GMEM_SIZE, GUEST_MEMFD_FLAG_MMAP |
				   GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	TEST_ASSERT(mem == MAP_FAILED && errno == EINVAL,
		    "MAP_PRIVATE must fail");

	mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "MAP_SHARED failed");
	host_check(mem, 0, GMEM_SIZE, 0);
	host_fill(mem, 0, GMEM_SIZE, 0x5a);
	host_check(mem, 0, GMEM_SIZE, 0x5a);
	munmap(mem, GMEM_SIZE);

	/* No read/write syscalls on guest memory. */
	TEST_ASSERT(pread(fd, &fd, 1, 0) < 0, "read() must fail");
	close(fd);

	/* Initially private: the host may map but not touch the pages. */
	fd = vm_create_guest_memfd(vm, GMEM_SIZE, GUEST_MEMFD_FLAG_MMAP);
	mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "MAP_SHARED failed");
	TEST_ASSERT(host_read_faults(mem), "private page: no SIGBUS");
	TEST_ASSERT(host_read_faults(mem + GMEM_SIZE - 1),
		    "private page: no SIGBUS");
	convert(fd, 0, getpagesize(), false);
	TEST_ASSERT(!host_read_faults(mem), "shared page: SIGBUS");
	TEST_ASSERT(host_read_faults(mem + getpagesize()),
		    "private neighbour: no SIGBUS");
	munmap(mem, GMEM_SIZE);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("mmap\n");
}

/* The first page is shared with 0x11 in it, the rest private. */
static void check_unchanged(int fd, uint8_t *mem)
{
	TEST_ASSERT(!host_read_faults(mem), "page 0 no longer shared");
	host_check(mem, 0, getpagesize(), 0x11);
	TEST_ASSERT(host_read_faults(mem + getpagesize()),
		    "page 1 no longer private");
}

static void expect_einval(int fd, uint8_t *mem,
			  struct kvm_memory_attributes2 c, const char *what)
{
	int r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &c);

	TEST_ASSERT(r < 0 && errno == EINVAL,
		    "%s: expected EINVAL, got %d (%s)", what, r,
		    strerror(errno));
	check_unchanged(fd, mem);
}

/* Page @tgt to @attributes: valid unless the caller breaks it. */
#define ATTRS(attrs, ...)						\
	((struct kvm_memory_attributes2){ .offset = tgt, .size = page,	\
					  .attributes = (attrs), __VA_ARGS__ })

static void test_bad_input(void)
{
	struct kvm_vm *vm = ____vm_create(protected_vm_shape), *def;
	uint64_t page = getpagesize(), tgt = page, attrs, bit;
	struct kvm_memory_attributes2 c;
	int fd, other, memfd, i, dir;
	uint8_t *mem;

	fd = vm_create_guest_memfd(vm, GMEM_SIZE, GUEST_MEMFD_FLAG_MMAP);
	mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap failed");
	convert(fd, 0, page, false);
	host_fill(mem, 0, page, 0x11);

	/* Page 0 shared, page 1 private: try to flip each, wrongly. */
	for (dir = 0; dir < 2; dir++) {
		attrs = dir ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
		tgt = dir ? page : 0;
		for (i = 0; i < ARRAY_SIZE(c.reserved); i++) {
			c = ATTRS(attrs);
			c.reserved[i] = 1;
			expect_einval(fd, mem, c, "reserved");
		}
		for (bit = 0; bit < 64; bit++) {
			expect_einval(fd, mem, ATTRS(attrs, .flags = BIT_ULL(bit)),
				      "flags");
			if (BIT_ULL(bit) != KVM_MEMORY_ATTRIBUTE_PRIVATE)
				expect_einval(fd, mem,
					      ATTRS(attrs | BIT_ULL(bit)),
					      "attributes");
		}
		expect_einval(fd, mem, ATTRS(attrs, .offset = tgt + page / 2),
			      "unaligned offset");
		expect_einval(fd, mem, ATTRS(attrs, .size = page + 1),
			      "unaligned size");
		expect_einval(fd, mem, ATTRS(attrs, .size = 0), "zero size");
		expect_einval(fd, mem, ATTRS(attrs, .offset = -page,
					     .size = 2 * page), "overflow");
		expect_einval(fd, mem, ATTRS(attrs, .offset = GMEM_SIZE - page,
					     .size = 2 * page),
			      "beyond the end");
		expect_einval(fd, mem, ATTRS(attrs, .offset = GMEM_SIZE),
			      "at the end");
	}

	/*
	 * A guest_memfd without a state of its own (neither MMAP nor
	 * INIT_SHARED) follows the VM's KVM_SET_MEMORY_ATTRIBUTES.
	 */
	tgt = 0;
	other = vm_create_guest_memfd(vm, GMEM_SIZE, 0);
	c = ATTRS(0);
	TEST_ASSERT(ioctl(other, KVM_SET_MEMORY_ATTRIBUTES2, &c) < 0 &&
		    errno == EINVAL,
		    "conversion of a file without its own state must fail");
	close(other);

	/* The default VM type has nothing private to convert to. */
	def = vm_create_barebones();
	other = vm_create_guest_memfd(def, GMEM_SIZE, GUEST_MEMFD_FLAG_MMAP |
				      GUEST_MEMFD_FLAG_INIT_SHARED);
	c = ATTRS(KVM_MEMORY_ATTRIBUTE_PRIVATE);
	TEST_ASSERT(ioctl(other, KVM_SET_MEMORY_ATTRIBUTES2, &c) < 0 &&
		    errno == EINVAL,
		    "conversion on a default VM must fail with EINVAL");
	close(other);
	kvm_vm_free(def);

	/* Not a guest_memfd at all, and not on the VM fd either. */
	memfd = memfd_create("not-gmem", 0);
	TEST_ASSERT(memfd >= 0, "memfd_create failed");
	TEST_ASSERT(ioctl(memfd, KVM_SET_MEMORY_ATTRIBUTES2, &c) < 0 &&
		    errno == ENOTTY,
		    "conversion on a memfd must fail with ENOTTY");
	close(memfd);
	TEST_ASSERT(ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES2, &c) < 0 &&
		    errno == ENOTTY,
		    "KVM_SET_MEMORY_ATTRIBUTES2 on a VM fd must fail with ENOTTY");
	TEST_ASSERT(ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, NULL) < 0 &&
		    errno == EFAULT, "a bad pointer must fail with EFAULT");
	check_unchanged(fd, mem);

	munmap(mem, GMEM_SIZE);
	close(fd);
	kvm_vm_free(vm);
	ksft_test_result_pass("bad input\n");
}

/*
 * Over [offset, offset + size): host writes, to private, guest reads the
 * host's data and writes its own, to shared, host reads the guest's data,
 * guest reads it too; repeated so that every direction is crossed twice.
 */
static void test_matrix_one(struct gmem_vm *g, uint64_t offset,
			    uint64_t size, uint8_t seed)
{
	uint8_t a = seed, b = seed + 1, c = seed + 2;

	convert(g->fd, offset, size, false);
	host_fill(g->mem, offset, size, a);

	convert(g->fd, offset, size, true);
	TEST_ASSERT(host_read_faults(g->mem + offset),
		    "host read of private page did not fault");
	TEST_ASSERT(host_read_faults(g->mem + offset + size - 1),
		    "host read of private page did not fault");
	run_guest(g->vcpu, offset, size, a, b);

	convert(g->fd, offset, size, false);
	host_check(g->mem, offset, size, b);
	run_guest(g->vcpu, offset, size, b, c);
	host_check(g->mem, offset, size, c);

	convert(g->fd, offset, size, true);
	run_guest(g->vcpu, offset, size, c, a);
	convert(g->fd, offset, size, false);
	host_check(g->mem, offset, size, a);
}

static void test_matrix(void)
{
	uint64_t page = getpagesize();
	struct gmem_vm g;

	gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED);
	test_matrix_one(&g, 0, page, 0x10);
	test_matrix_one(&g, 5 * page, page, 0x20);
	test_matrix_one(&g, SZ_2M, SZ_2M, 0x30);
	/* A 2M range that straddles two 2M blocks. */
	test_matrix_one(&g, SZ_2M / 2, SZ_2M, 0x40);
	test_matrix_one(&g, 0, GMEM_SIZE, 0x50);
	gmem_vm_destroy(&g);
	ksft_test_result_pass("conversion matrix\n");
}

static void test_pinned(void)
{
	uint64_t page = getpagesize(), off = 3 * page;
	struct kvm_memory_attributes2 c = { .offset = 0, .size = GMEM_SIZE };
	struct iovec iov;
	struct gmem_vm g;
	int pipefd[2];

	gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED);
	host_fill(g.mem, 0, GMEM_SIZE, 0x77);

	TEST_ASSERT(!pipe(pipefd), "pipe failed");
	iov.iov_base = g.mem + off;
	iov.iov_len = page;
	/* The pipe keeps a reference on the page until it is read. */
	TEST_ASSERT(vmsplice(pipefd[1], &iov, 1, 0) == page, "vmsplice failed");

	TEST_ASSERT(__convert(g.fd, true, &c) < 0 && errno == EAGAIN,
		    "conversion of a pinned page must fail with EAGAIN");
	TEST_ASSERT_EQ(c.error_offset, off);

	/* Nothing changed: every page still shared, data intact. */
	TEST_ASSERT(!host_read_faults(g.mem), "page 0 became private");
	TEST_ASSERT(!host_read_faults(g.mem + GMEM_SIZE - 1),
		    "last page became private");
	host_check(g.mem, 0, GMEM_SIZE, 0x77);
	run_guest(g.vcpu, 0, GMEM_SIZE, 0x77, 0x78);
	host_check(g.mem, 0, GMEM_SIZE, 0x78);

	close(pipefd[0]);
	close(pipefd[1]);
	convert(g.fd, 0, GMEM_SIZE, true);
	run_guest(g.vcpu, 0, GMEM_SIZE, 0x78, 0x79);
	convert(g.fd, 0, GMEM_SIZE, false);
	host_check(g.mem, 0, GMEM_SIZE, 0x79);
	gmem_vm_destroy(&g);
	ksft_test_result_pass("pinned page refuses conversion\n");
}

/* An O_DIRECT read of a loop device, from a thread of its own. */
struct dio_read {
	int fd;
	void *buf;
	size_t len;
	ssize_t ret;
};

static void *dio_read_thread(void *arg)
{
	struct dio_read *d = arg;

	d->ret = pread(d->fd, d->buf, d->len, 0);
	return NULL;
}

#define DIO_BACKING	"/tmp/gmem-dio-backing"

/*
 * A loop device over a new file of @size bytes of @val, opened O_DIRECT
 * into *@dio (and plainly into *@loop, to detach it); false if there is no
 * loop device to have.
 */
static bool loop_dio_open(size_t size, uint8_t val, int *loop, int *dio)
{
	char dev[32], *data = malloc(size);
	int ctl, nr, bfd;

	TEST_ASSERT(data, "malloc failed");
	memset(data, val, size);
	bfd = open(DIO_BACKING, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(bfd >= 0 && write(bfd, data, size) == (ssize_t)size,
		    "cannot write %s", DIO_BACKING);
	free(data);

	ctl = open("/dev/loop-control", O_RDWR);
	nr = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	if (ctl >= 0)
		close(ctl);
	if (nr < 0) {
		close(bfd);
		unlink(DIO_BACKING);
		return false;
	}
	snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
	*loop = open(dev, O_RDWR);
	TEST_ASSERT(*loop >= 0, "cannot open %s", dev);
	TEST_ASSERT(!ioctl(*loop, LOOP_SET_FD, bfd), "LOOP_SET_FD failed");
	close(bfd);
	*dio = open(dev, O_RDONLY | O_DIRECT);
	TEST_ASSERT(*dio >= 0, "cannot open %s with O_DIRECT", dev);
	return true;
}

static void loop_dio_close(int loop, int dio)
{
	close(dio);
	TEST_ASSERT(!ioctl(loop, LOOP_CLR_FD, 0), "LOOP_CLR_FD failed");
	close(loop);
	unlink(DIO_BACKING);
}

/*
 * Direct I/O in flight into a shared page refuses its conversion to
 * private. To hold the I/O in flight for as long as the test needs, the
 * read's buffer is the guest_memfd page followed by an anonymous page
 * that userfaultfd leaves missing: the read pins the guest_memfd page,
 * then waits in the fault on the next one, until the test fills it.
 */
static void test_pinned_direct_io(void)
{
	uint64_t page = getpagesize(), off = 7 * page;
	struct kvm_memory_attributes2 c = { .offset = 0, .size = GMEM_SIZE };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { };
	struct uffd_msg msg;
	struct dio_read d;
	struct gmem_vm g;
	int loop, uffd;
	pthread_t thr;
	uint8_t *win;

	if (!loop_dio_open(2 * page, 0xab, &loop, &d.fd)) {
		ksft_test_result_skip("pinned by direct I/O: no loop device\n");
		return;
	}
	gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED);
	host_fill(g.mem, 0, GMEM_SIZE, 0x77);

	/* [page @off of the file, mapped again][a missing anonymous page] */
	win = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(win != MAP_FAILED, "mmap failed");
	TEST_ASSERT(mmap(win, page, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, g.fd, off) == win,
		    "mmap of the guest_memfd page failed");
	TEST_ASSERT_EQ(win[0], 0x77);

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	TEST_ASSERT(uffd >= 0, "userfaultfd failed");
	TEST_ASSERT(!ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API failed");
	reg.range.start = (uint64_t)win + page;
	reg.range.len = page;
	TEST_ASSERT(!ioctl(uffd, UFFDIO_REGISTER, &reg),
		    "UFFDIO_REGISTER failed");

	d.buf = win;
	d.len = 2 * page;
	TEST_ASSERT(!pthread_create(&thr, NULL, dio_read_thread, &d),
		    "pthread_create failed");
	/* Once the read faults on its second page it holds the first. */
	TEST_ASSERT(read(uffd, &msg, sizeof(msg)) == sizeof(msg),
		    "read of userfaultfd failed");
	TEST_ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	TEST_ASSERT_EQ(msg.arg.pagefault.address, (uint64_t)win + page);

	TEST_ASSERT(__convert(g.fd, true, &c) < 0 && errno == EAGAIN,
		    "conversion of a page under direct I/O must fail with EAGAIN");
	TEST_ASSERT_EQ(c.error_offset, off);
	TEST_ASSERT(!host_read_faults(g.mem), "page 0 became private");
	host_check(g.mem, 0, GMEM_SIZE, 0x77);

	zp.range.start = (uint64_t)win + page;
	zp.range.len = page;
	TEST_ASSERT(!ioctl(uffd, UFFDIO_ZEROPAGE, &zp), "UFFDIO_ZEROPAGE failed");
	TEST_ASSERT(!pthread_join(thr, NULL), "pthread_join failed");
	TEST_ASSERT_EQ(d.ret, 2 * page);
	/* The I/O landed in the page, which stayed shared throughout. */
	host_check(g.mem, off, page, 0xab);
	host_check(g.mem, 0, off, 0x77);

	close(uffd);
	munmap(win, 2 * page);
	loop_dio_close(loop, d.fd);

	convert(g.fd, 0, GMEM_SIZE, true);
	run_guest(g.vcpu, off, page, 0xab, 0xac);
	convert(g.fd, 0, GMEM_SIZE, false);
	host_check(g.mem, off, page, 0xac);
	gmem_vm_destroy(&g);
	ksft_test_result_pass("page under direct I/O refuses conversion\n");
}

/* The child's side of test_other_process(): map one page, then check. */
static void other_process_child(uint8_t *page_va, int cmd_fd, int ack_fd)
{
	bool ok = !host_read_faults(page_va) && *page_va == 0x33;
	char cmd;

	while (read(cmd_fd, &cmd, 1) == 1) {
		switch (cmd) {
		case 'p':	/* the page must be private now */
			ok = ok && host_read_faults(page_va);
			break;
		case 's':	/* shared again, with the guest's data */
			ok = ok && !host_read_faults(page_va) &&
			     *page_va == 0x34;
			break;
		}
		TEST_ASSERT(write(ack_fd, &cmd, 1) == 1, "write failed");
	}
	_exit(ok ? 0 : 1);
}

static void other_process_cmd(int cmd_fd, int ack_fd, char cmd)
{
	char b;

	TEST_ASSERT(write(cmd_fd, &cmd, 1) == 1, "write failed");
	TEST_ASSERT(read(ack_fd, &b, 1) == 1 && b == cmd, "child is gone");
}

/*
 * Conversion to private revokes the mappings of every process, a forked
 * child's included (upstream's semantics): it succeeds although the child
 * maps a page, and the child's next access raises SIGBUS. A mapping is
 * no reference that refuses conversion; pins are (test_pinned()).
 */
static void test_other_process(void)
{
	uint64_t page = getpagesize(), off = 5 * page;
	int cmd[2], ack[2], status;
	struct gmem_vm g;
	pid_t pid;

	gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED);
	host_fill(g.mem, 0, GMEM_SIZE, 0x33);
	TEST_ASSERT(!pipe(cmd) && !pipe(ack), "pipe failed");

	pid = fork();
	TEST_ASSERT(pid >= 0, "fork failed");
	if (!pid) {
		close(cmd[1]);
		close(ack[0]);
		other_process_child(g.mem + off, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	/* The child has mapped its page once it answers. */
	other_process_cmd(cmd[1], ack[0], 'r');

	convert(g.fd, 0, GMEM_SIZE, true);
	TEST_ASSERT(host_read_faults(g.mem), "caller's mapping survived");
	TEST_ASSERT(host_read_faults(g.mem + off), "caller's mapping survived");
	other_process_cmd(cmd[1], ack[0], 'p');
	run_guest(g.vcpu, 0, GMEM_SIZE, 0x33, 0x34);

	convert(g.fd, 0, GMEM_SIZE, false);
	other_process_cmd(cmd[1], ack[0], 's');
	close(cmd[1]);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid failed");
	TEST_ASSERT(WIFEXITED(status) && !WEXITSTATUS(status),
		    "the child saw a wrong value or kept access to a private page");
	close(ack[0]);

	host_check(g.mem, 0, GMEM_SIZE, 0x34);
	gmem_vm_destroy(&g);
	ksft_test_result_pass("conversion revokes another process's mapping\n");
}

/*
 * Memslots served by guest_memfd alone (upstream 6.18): with no userspace
 * address KVM still maps shared and private pages from the file, and the
 * host sees the guest's data through its own mapping of the file. A file
 * created with INIT_SHARED alone cannot be mapped by the host at all; its
 * pages are KVM's, shared or private, and keep their data across
 * conversions.
 */
static void test_gmem_only(void)
{
	uint64_t page = getpagesize();
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct gmem_vm g;
	void *mem;
	int fd;

	___gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED, guest_code, true);
	run_guest(g.vcpu, 0, GMEM_SIZE, 0, 0x8f);
	host_check(g.mem, 0, GMEM_SIZE, 0x8f);
	test_matrix_one(&g, 0, page, 0x90);
	test_matrix_one(&g, SZ_2M / 2, SZ_2M, 0xa0);
	gmem_vm_destroy(&g);

	vm = vm_create_shape_with_one_vcpu(protected_vm_shape, &vcpu,
					   guest_code);
	fd = vm_create_guest_memfd(vm, GMEM_SIZE, GUEST_MEMFD_FLAG_INIT_SHARED);
	mem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(mem == MAP_FAILED && errno == ENODEV,
		    "INIT_SHARED alone must not be mappable by the host");
	vm_set_user_memory_region2(vm, GMEM_SLOT, KVM_MEM_GUEST_MEMFD,
				   GMEM_GPA, GMEM_SIZE, NULL, fd, 0);
	virt_map(vm, GMEM_GPA, GMEM_GPA, GMEM_SIZE / page);
	run_guest(vcpu, 0, GMEM_SIZE, 0, 0xb1);
	convert(fd, 0, GMEM_SIZE, true);
	run_guest(vcpu, 0, GMEM_SIZE, 0xb1, 0xb2);
	convert(fd, SZ_2M, page, false);
	run_guest(vcpu, 0, GMEM_SIZE, 0xb2, 0xb3);
	convert(fd, 0, GMEM_SIZE, false);
	run_guest(vcpu, 0, GMEM_SIZE, 0xb3, 0xb4);
	kvm_vm_free(vm);
	close(fd);
	ksft_test_result_pass("memslots served by guest_memfd alone\n");
}

static uint64_t run_vcpu_expect_fault(struct kvm_vcpu *vcpu)
{
	int r = _vcpu_run(vcpu);

	TEST_ASSERT(r && errno == EFAULT, "expected EFAULT, got %d", r);
	TEST_ASSERT_EQ(vcpu->run->exit_reason, KVM_EXIT_MEMORY_FAULT);
	return vcpu->run->memory_fault.flags;
}

static void test_file_gone(void)
{
	struct gmem_vm g;

	gmem_vm_create(&g, 0);
	/* Private page, but the file behind it is closed. */
	munmap(g.mem, GMEM_SIZE);
	g.mem = NULL;
	close(g.fd);
	guest_size = 8;
	guest_offset = 0;
	sync_global_to_guest(g.vm, guest_size);
	sync_global_to_guest(g.vm, guest_offset);
	TEST_ASSERT_EQ(run_vcpu_expect_fault(g.vcpu),
		       KVM_MEMORY_EXIT_FLAG_PRIVATE);
	TEST_ASSERT_EQ(g.vcpu->run->memory_fault.gpa, GMEM_GPA);
	kvm_vm_free(g.vm);
	ksft_test_result_pass("private access without its file exits\n");
}

#define RACE_OPS	3000

static void guest_race_code(void)
{
	uint64_t i, n;

	for (n = 1;; n++) {
		for (i = 0; i < GMEM_SIZE; i += 7 * PAGE_SIZE)
			WRITE_ONCE(*(uint64_t *)(GMEM_GPA + i), n);
		GUEST_SYNC(n);
	}
}

#define CLOSE_ROUNDS	12

struct close_race {
	struct kvm_vcpu *vcpu;
	int passes;		/* READ_ONCE()/WRITE_ONCE() */
	bool closed;		/* READ_ONCE()/WRITE_ONCE() */
};

/*
 * Run the guest until the file is gone: faults see the file or -EFAULT,
 * never anything else, and no pass that starts after close() returned
 * completes (closing zapped what KVM had mapped).
 */
static void *close_race_vcpu(void *arg)
{
	struct close_race *c = arg;
	struct ucall uc;

	for (;;) {
		bool closed = READ_ONCE(c->closed);

		if (_vcpu_run(c->vcpu)) {
			TEST_ASSERT(errno == EFAULT, "KVM_RUN failed: %s",
				    strerror(errno));
			TEST_ASSERT_EQ(c->vcpu->run->exit_reason,
				       KVM_EXIT_MEMORY_FAULT);
			if (closed)
				break;
			continue;
		}
		TEST_ASSERT(!closed, "a guest pass after the file was closed");
		TEST_ASSERT_KVM_EXIT_REASON(c->vcpu, KVM_EXIT_IO);
		if (get_ucall(c->vcpu, &uc) == UCALL_ABORT)
			REPORT_GUEST_ASSERT(uc);
		WRITE_ONCE(c->passes, c->passes + 1);
	}
	return NULL;
}

/*
 * KVM's fault path uses the memslot's file without a reference; closing
 * the file waits for the faults in flight.  Close it (the last reference)
 * while the vCPU faults its pages in, at a random point of the first pass
 * or later.
 */
static void test_close_race(void)
{
	unsigned int seed = time(NULL), round;

	ksft_print_msg("close race seed %u\n", seed);
	for (round = 0; round < CLOSE_ROUNDS; round++) {
		struct close_race c = {};
		struct gmem_vm g;
		pthread_t vcpu;

		___gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED,
				  guest_race_code, true);
		munmap(g.mem, GMEM_SIZE);
		c.vcpu = g.vcpu;
		pthread_create(&vcpu, NULL, close_race_vcpu, &c);
		/*
		 * Even rounds close during the first pass (faults in flight),
		 * odd ones after two passes (the close zaps mapped pages).
		 */
		if (round & 1)
			while (READ_ONCE(c.passes) < 2)
				usleep(100);
		usleep(rand_r(&seed) % 20000);
		close(g.fd);
		WRITE_ONCE(c.closed, true);
		pthread_join(vcpu, NULL);
		kvm_vm_free(g.vm);
	}
	ksft_test_result_pass("closing the file while vCPUs fault on it\n");
}

struct race {
	struct kvm_vcpu *vcpu;
	uint8_t *mem;
	int fd;
	unsigned int seed;
	bool stop;
	/* What happened, printed so that a run shows the races took place. */
	int converted, busy, sigbus, guest_passes, run_efault;
};

static uint64_t race_range(unsigned int *seed, uint64_t *size)
{
	uint64_t page = getpagesize(), npages = GMEM_SIZE / page;
	uint64_t first = rand_r(seed) % npages;

	/* Mostly single pages, sometimes up to a 2M block or more. */
	*size = (rand_r(seed) % 4 ? 1 : 1 + rand_r(seed) % 768) * page;
	if (first * page + *size > GMEM_SIZE)
		*size = GMEM_SIZE - first * page;
	return first * page;
}

static void *race_convert(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed;
	int i;

	for (i = 0; i < RACE_OPS; i++) {
		struct kvm_memory_attributes2 c = {};
		bool to_private = rand_r(&seed) & 1;
		uint64_t size;

		c.offset = race_range(&seed, &size);
		c.size = size;
		/* A page being faulted in by the host may be busy. */
		if (!__convert(r->fd, to_private, &c))
			r->converted++;
		else if (errno == EAGAIN)
			r->busy++;
		else
			TEST_FAIL("racing conversion failed: %s",
				  strerror(errno));
	}
	return NULL;
}

static void *race_punch(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 1;
	uint64_t off, size;
	int i;

	for (i = 0; i < RACE_OPS / 4; i++) {
		off = race_range(&seed, &size);
		TEST_ASSERT(!fallocate(r->fd, FALLOC_FL_KEEP_SIZE |
				       FALLOC_FL_PUNCH_HOLE, off, size),
			    "racing punch hole failed: %s", strerror(errno));
	}
	return NULL;
}

static void *race_host(void *arg)
{
	struct race *r = arg;
	unsigned int seed = r->seed + 2;
	uint64_t off, size;
	int i;

	for (i = 0; i < RACE_OPS * 4; i++) {
		off = race_range(&seed, &size);
		/* Shared pages map, private ones raise SIGBUS: both fine. */
		if (i & 1 ? host_write_faults(r->mem + off + 8, 0xee) :
			    host_read_faults(r->mem + off))
			r->sigbus++;
	}
	return NULL;
}

static void *race_vcpu(void *arg)
{
	struct race *r = arg;
	struct ucall uc;
	int ret;

	while (!READ_ONCE(r->stop)) {
		ret = _vcpu_run(r->vcpu);
		if (ret) {
			struct kvm_run *run = r->vcpu->run;

			/*
			 * A page of the file the fault could not take right
			 * now: a memory fault exit for exactly that page of
			 * guest_memfd, nothing else.
			 */
			TEST_ASSERT(errno == EFAULT,
				    "KVM_RUN failed: %s", strerror(errno));
			TEST_ASSERT_EQ(run->exit_reason, KVM_EXIT_MEMORY_FAULT);
			TEST_ASSERT(run->memory_fault.gpa >= GMEM_GPA &&
				    run->memory_fault.gpa < GMEM_GPA + GMEM_SIZE &&
				    run->memory_fault.size == PAGE_SIZE,
				    "memory fault exit at 0x%llx, size 0x%llx",
				    run->memory_fault.gpa,
				    run->memory_fault.size);
			TEST_ASSERT(!(run->memory_fault.flags &
				      ~KVM_MEMORY_EXIT_FLAG_PRIVATE),
				    "memory fault flags 0x%llx",
				    run->memory_fault.flags);
			r->run_efault++;
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(r->vcpu, KVM_EXIT_IO);
		if (get_ucall(r->vcpu, &uc) == UCALL_ABORT)
			REPORT_GUEST_ASSERT(uc);
		r->guest_passes++;
	}
	return NULL;
}

static void test_races(void)
{
	pthread_t conv, punch, host, vcpu;
	struct race r = {};
	struct gmem_vm g;

	__gmem_vm_create(&g, GUEST_MEMFD_FLAG_INIT_SHARED, guest_race_code);

	r.vcpu = g.vcpu;
	r.mem = g.mem;
	r.fd = g.fd;
	r.seed = time(NULL);
	ksft_print_msg("race seed %u\n", r.seed);

	pthread_create(&vcpu, NULL, race_vcpu, &r);
	pthread_create(&conv, NULL, race_convert, &r);
	pthread_create(&punch, NULL, race_punch, &r);
	pthread_create(&host, NULL, race_host, &r);
	pthread_join(conv, NULL);
	pthread_join(punch, NULL);
	pthread_join(host, NULL);
	WRITE_ONCE(r.stop, true);
	pthread_join(vcpu, NULL);
	ksft_print_msg("%d conversions, %d busy, %d SIGBUS, %d guest passes, %d EFAULT\n",
		       r.converted, r.busy, r.sigbus, r.guest_passes,
		       r.run_efault);
	TEST_ASSERT(r.converted && r.sigbus && r.guest_passes,
		    "the race did not exercise conversion, SIGBUS and the guest");

	/* The file still works as a whole: a full round trip with data. */
	convert(g.fd, 0, GMEM_SIZE, false);
	host_fill(g.mem, 0, GMEM_SIZE, 0x61);
	convert(g.fd, 0, GMEM_SIZE, true);
	TEST_ASSERT(host_read_faults(g.mem + GMEM_SIZE / 2),
		    "private page readable after the races");
	convert(g.fd, 0, GMEM_SIZE, false);
	host_check(g.mem, 0, GMEM_SIZE, 0x61);
	gmem_vm_destroy(&g);
	ksft_test_result_pass("races\n");
}

/* The nodes this task may allocate from, as a mask. */
static unsigned long allowed_nodes(void)
{
	unsigned long mask = 0;

	TEST_ASSERT(!syscall(__NR_get_mempolicy, NULL, &mask, BITS_PER_LONG,
			     NULL, MPOL_F_MEMS_ALLOWED),
		    "get_mempolicy(MPOL_F_MEMS_ALLOWED) failed: %s",
		    strerror(errno));
	return mask;
}

static unsigned long free_2m_on(int node)
{
	return gmem_read_sysfs_ulong("/sys/devices/system/node/node%d/%s", node,
				     "hugepages/hugepages-2048kB/free_hugepages");
}

/*
 * A private file the host never touches: the guest faults every page in
 * with the first half bound to node @a and the second to node @b, the file
 * is converted to shared in place, and move_pages() on the host's mapping
 * tells where KVM put each page.
 */
static void numa_one(uint64_t flags, int a, int b)
{
	unsigned long i, n = GMEM_SIZE / getpagesize();
	unsigned long mask;
	struct gmem_vm g;
	void **pages;
	int *status;

	pages = calloc(n, sizeof(*pages));
	status = calloc(n, sizeof(*status));
	TEST_ASSERT(pages && status, "out of memory");

	gmem_vm_create(&g, flags);
	mask = 1UL << a;
	TEST_ASSERT(!syscall(__NR_mbind, g.mem, GMEM_SIZE / 2, MPOL_BIND,
			     &mask, BITS_PER_LONG, 0), "mbind failed: %s",
		    strerror(errno));
	mask = 1UL << b;
	TEST_ASSERT(!syscall(__NR_mbind, g.mem + GMEM_SIZE / 2, GMEM_SIZE / 2,
			     MPOL_BIND, &mask, BITS_PER_LONG, 0),
		    "mbind failed: %s", strerror(errno));

	run_guest(g.vcpu, 0, GMEM_SIZE, 0, 0x3c);
	convert(g.fd, 0, GMEM_SIZE, false);
	host_check(g.mem, 0, GMEM_SIZE, 0x3c);

	for (i = 0; i < n; i++) {
		pages[i] = g.mem + i * getpagesize();
		status[i] = -1;
	}
	TEST_ASSERT(!syscall(__NR_move_pages, 0, n, pages, NULL, status, 0),
		    "move_pages() query failed: %s", strerror(errno));
	for (i = 0; i < n; i++)
		TEST_ASSERT(status[i] == (i < n / 2 ? a : b),
			    "page %lu faulted in by the guest is on node %d, policy says %d",
			    i, status[i], i < n / 2 ? a : b);

	gmem_vm_destroy(&g);
	free(pages);
	free(status);
}

static void test_numa(void)
{
	unsigned long nodes = allowed_nodes();
	int a, b;

	if (__builtin_popcountl(nodes) < 2) {
		ksft_test_result_skip("NUMA policy: fewer than two nodes\n");
		return;
	}
	a = __builtin_ctzl(nodes);
	b = __builtin_ctzl(nodes & ~(1UL << a));

	/* Both ways round, so the local node cannot pass for the policy. */
	numa_one(0, a, b);
	numa_one(0, b, a);

	if (free_2m_on(a) && free_2m_on(b) &&
	    (kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB) & SZ_2M)) {
		numa_one(GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_2MB,
			 a, b);
		numa_one(GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_2MB,
			 b, a);
	} else {
		ksft_print_msg("NUMA policy: no free 2M pages on nodes %d and %d, 4K only\n",
			       a, b);
	}
	ksft_test_result_pass("NUMA policy places the pages the guest faults in\n");
}

int main(int argc, char *argv[])
{
	struct sigaction sa = { .sa_handler = sigbus_handler };

	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL), "sigaction failed");

	ksft_print_header();
	ksft_set_plan(12);
	test_flags();
	test_mmap();
	test_bad_input();
	test_matrix();
	test_pinned();
	test_pinned_direct_io();
	test_other_process();
	test_gmem_only();
	test_file_gone();
	test_races();
	test_close_race();
	test_numa();
	ksft_finished();
}
