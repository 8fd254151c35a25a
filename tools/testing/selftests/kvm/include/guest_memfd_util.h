/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the guest_memfd selftests and benchmarks: a monotonic
 * clock, a number from sysfs (hugetlb pools), and the ucall check after a
 * vCPU run.
 */
#ifndef SELFTEST_KVM_GUEST_MEMFD_UTIL_H
#define SELFTEST_KVM_GUEST_MEMFD_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kvm_util.h"
#include "test_util.h"
#include "ucall_common.h"

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t gmem_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The number in the file the format names, 0 if it cannot be read. */
static inline unsigned long __printf(1, 2)
gmem_read_sysfs_ulong(const char *fmt, ...)
{
	unsigned long n = 0;
	char path[256];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%lu", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

/* A hugetlb pool's counter: "free_hugepages", "resv_hugepages", ... */
static inline unsigned long gmem_hugetlb_pool(unsigned long page_size,
					      const char *what)
{
	return gmem_read_sysfs_ulong("/sys/kernel/mm/hugepages/hugepages-%lukB/%s",
				     page_size >> 10, what);
}

/*
 * After a vCPU run that returned to userspace: the guest stopped at a
 * GUEST_SYNC or GUEST_DONE (returned), or failed an assertion (the test
 * fails).
 */
static inline uint64_t gmem_expect_ucall(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	return uc.cmd;
}

/* As gmem_expect_ucall(), and it must be a GUEST_SYNC. */
static inline void gmem_expect_sync(struct kvm_vcpu *vcpu)
{
	TEST_ASSERT_EQ(gmem_expect_ucall(vcpu), UCALL_SYNC);
}

#endif /* SELFTEST_KVM_GUEST_MEMFD_UTIL_H */
