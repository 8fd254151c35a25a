/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Counting allocator for the guest_memfd harness, with failure injection. */
#ifndef __GMEM_ALLOC_H
#define __GMEM_ALLOC_H

struct gmem_alloc_stats {
	long allocs;		/* successful allocations so far */
	long frees;
	long live;		/* live objects */
	long live_bytes;	/* live bytes, rounded as the kernel would */
	long injected;		/* failures injected so far */
};

/*
 * Fail the @n-th allocation from now (1 = the next one) and all after it;
 * 0 disables.
 */
void gmem_alloc_fail_nth(long n);
/* Whether an armed failure is still pending (the call did not get there). */
bool gmem_alloc_fail_pending(void);
void gmem_alloc_stats(struct gmem_alloc_stats *st);

#endif /* __GMEM_ALLOC_H */
