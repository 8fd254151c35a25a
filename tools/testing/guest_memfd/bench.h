/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Operation kinds of the guest_memfd benchmark (bench.c). */
#ifndef __GMEM_BENCH_H
#define __GMEM_BENCH_H

enum bench_impl { IMPL_STATE, IMPL_XARRAY, IMPL_BITMAP, NR_IMPLS };
enum bench_op { OP_LOOKUP, OP_CONVERT, OP_CONVERT_1G, OP_LOOKUP_CHUNK,
		OP_UF_CLEAR, NR_OPS };

#endif /* __GMEM_BENCH_H */
