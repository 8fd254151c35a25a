/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Everything the guest_memfd state code needs from the rest of the kernel.
 *
 * tools/testing/guest_memfd/internal.h replaces this header (same include
 * guard) to build state.c in userspace, like mm/vma_internal.h.
 */
#ifndef __KVM_GMEM_INTERNAL_H
#define __KVM_GMEM_INTERNAL_H

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/container_of.h>
#include <linux/err.h>
#include <linux/lockdep.h>
#include <linux/maple_tree.h>
#include <linux/minmax.h>
#include <linux/overflow.h>
#include <linux/rcupdate.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/xarray.h>

#include "state.h"

#endif /* __KVM_GMEM_INTERNAL_H */
