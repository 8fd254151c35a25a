// SPDX-License-Identifier: GPL-2.0-only
/*
 * guest_memfd inodes live on guest_memfd's own filesystem, yet they must
 * get the same LSM treatment as 6.12's anonymous-inode guest_memfd files:
 * an inode made by anon_inode_make_secure_inode(), which runs the LSM hook
 * security_inode_init_security_anon() with the class name "[kvm-gmem]"
 * (and no context inode), so that an LSM can label (and deny) them.
 *
 * The hook's dispatcher cannot be kprobed (it starts with the static
 * branches of the LSM static calls) and no LSM of the test kernel
 * implements it (SELinux needs networking), so the test puts a kprobe
 * event on anon_inode_make_secure_inode(), whose call of the hook is
 * unconditional, recording the class name and the context inode. It
 * checks that
 *  - every successful KVM_CREATE_GUEST_MEMFD, of every kind (plain, with
 *    host mmap, initially shared, hugetlb), makes its inode there once,
 *    with "[kvm-gmem]" and no context inode;
 *  - a KVM_CREATE_GUEST_MEMFD that fails on its arguments makes none;
 *  - other anonymous files created meanwhile (the VM's own fd, a vCPU)
 *    do not count as guest_memfd ones.
 * Needs root, tracefs and CONFIG_KPROBE_EVENTS; skips without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"

#define TRACING		"/sys/kernel/tracing"
#define EVENT_GROUP	"gmem_lsm_test"
#define EVENT		"anon"
#define PROBE		"p:gmem_lsm_test/anon anon_inode_make_secure_inode name=+0(%si):string ctx=%dx:x64\n"

static int tracing_write(const char *file, const char *text, bool append)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), TRACING "/%s", file);
	fd = open(path, O_WRONLY | (append ? O_APPEND : O_TRUNC));
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -errno;
}

/* The probe: the class name is the second argument, the context the third. */
static bool probe_add(void)
{
	struct stat st;
	int err;

	if (stat(TRACING "/kprobe_events", &st) &&
	    mount("tracefs", TRACING, "tracefs", 0, NULL))
		return false;
	if (stat(TRACING "/kprobe_events", &st))
		return false;
	tracing_write("kprobe_events", "-:" EVENT_GROUP "/" EVENT "\n", true);
	err = tracing_write("kprobe_events", PROBE, true);
	if (err) {
		ksft_print_msg("cannot add the kprobe: %s\n", strerror(-err));
		return false;
	}
	TEST_ASSERT(!tracing_write("events/" EVENT_GROUP "/" EVENT "/enable",
				   "1\n", false), "cannot enable the probe");
	return true;
}

static void probe_remove(void)
{
	tracing_write("events/" EVENT_GROUP "/" EVENT "/enable", "0\n", false);
	TEST_ASSERT(!tracing_write("kprobe_events",
				   "-:" EVENT_GROUP "/" EVENT "\n", true),
		    "cannot remove the probe");
}

/* Empty the trace buffer. */
static void trace_clear(void)
{
	TEST_ASSERT(!tracing_write("trace", "", false),
		    "cannot clear the trace");
}

/*
 * Hits of the probe since the last trace_clear(): those with the
 * guest_memfd class name in *@gmem (each with a NULL context inode, or
 * the test fails), all of them returned.
 */
static int trace_count(int *gmem)
{
	char line[512];
	int all = 0;
	FILE *f;

	f = fopen(TRACING "/trace", "r");
	TEST_ASSERT(f, "cannot read the trace");
	*gmem = 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !strstr(line, EVENT ":"))
			continue;
		all++;
		if (!strstr(line, "name=\"[kvm-gmem]\""))
			continue;
		TEST_ASSERT(strstr(line, "ctx=0x0"),
			    "a guest_memfd inode with a context inode: %s",
			    line);
		(*gmem)++;
	}
	fclose(f);
	return all;
}

struct kind {
	const char *name;
	uint64_t size;
	uint64_t flags;
};

int main(int argc, char *argv[])
{
	const struct kind kinds[] = {
		{ "plain", 1UL << 21, 0 },
		{ "mmap", 1UL << 21, GUEST_MEMFD_FLAG_MMAP },
		{ "mmap, init shared", 1UL << 21,
		  GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED },
		{ "hugetlb 2M", 1UL << 21,
		  GUEST_MEMFD_FLAG_HUGETLB | GUEST_MEMFD_HUGETLB_2MB },
	};
	int fds[ARRAY_SIZE(kinds)], all, gmem, n, i;
	struct kvm_create_guest_memfd bad;
	struct kvm_vm *vm;

	ksft_print_header();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) &
		     BIT(KVM_X86_SW_PROTECTED_VM));
	if (geteuid() || !probe_add())
		ksft_exit_skip("no kprobe events (root, tracefs, CONFIG_KPROBE_EVENTS)\n");
	ksft_set_plan(3);

	/* Anonymous files that are not guest_memfd: the VM and a vCPU. */
	trace_clear();
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	__vm_vcpu_add(vm, 0);
	all = trace_count(&gmem);
	TEST_ASSERT(gmem == 0, "%d guest_memfd hits for a VM and a vCPU", gmem);
	ksft_test_result_pass("VM and vCPU files: %d hits, none guest_memfd\n",
			      all);

	/* One hit per guest_memfd, of every kind. */
	trace_clear();
	for (n = 0, i = 0; i < ARRAY_SIZE(kinds); i++) {
		fds[i] = __vm_create_guest_memfd(vm, kinds[i].size,
						 kinds[i].flags);
		if (fds[i] < 0) {
			/* A hugetlb pool may be empty; the others must work. */
			TEST_ASSERT(kinds[i].flags & GUEST_MEMFD_FLAG_HUGETLB,
				    "guest_memfd %s: %s", kinds[i].name,
				    strerror(errno));
			continue;
		}
		n++;
		all = trace_count(&gmem);
		TEST_ASSERT(gmem == n, "guest_memfd %s: %d hits after %d files",
			    kinds[i].name, gmem, n);
	}
	ksft_test_result_pass("%d guest_memfd files, each a secure anonymous inode\n", n);

	/* Failed creates make no inode: no hook. */
	trace_clear();
	memset(&bad, 0, sizeof(bad));
	bad.size = 4096;
	bad.flags = 1ULL << 40;
	TEST_ASSERT(__vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &bad) < 0 &&
		    errno == EINVAL, "unknown flag: %s", strerror(errno));
	bad.flags = 0;
	bad.size = 4095;
	TEST_ASSERT(__vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &bad) < 0 &&
		    errno == EINVAL, "unaligned size: %s", strerror(errno));
	bad.size = 0;
	TEST_ASSERT(__vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &bad) < 0 &&
		    errno == EINVAL, "zero size: %s", strerror(errno));
	all = trace_count(&gmem);
	TEST_ASSERT(gmem == 0, "%d inodes for failed creates", gmem);
	ksft_test_result_pass("failed creates: no inode\n");

	probe_remove();
	for (i = 0; i < ARRAY_SIZE(kinds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	kvm_vm_free(vm);
	ksft_finished();
}
