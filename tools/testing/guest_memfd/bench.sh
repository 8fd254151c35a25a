#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Run the guest_memfd state benchmark: timings and memory from bench-gmem,
# instructions per operation from callgrind (one operation kind per run).
set -eu
cd "$(dirname "$0")"

./bench-gmem table

if ! command -v valgrind >/dev/null; then
	echo "valgrind not found: no instruction counts"
	exit 0
fi

impls=(state xarray bitmap)
ops=(lookup convert convert_1g lookup_chunk uf_clear)
echo
echo "instructions/op (callgrind; loop overhead of about 20 Ir included; the"
echo "uf_clear rows call the state's inline fast path and clear_bit() alike"
echo "through one noinline wrapper; lookup hits whole 2M blocks, lookup_chunk"
echo "only 2M blocks with differing pages, read through their 1G leaf)"
for size in $((1 << 28)) $((1 << 20)); do
	[ "$size" = $((1 << 28)) ] && name="1 TiB" || name="4 GiB"
	printf "%s file\n  %-12s %14s %14s %14s\n" "$name" "Ir/op" "${impls[@]}"
	for op in 0 1 2 3 4; do
		printf "  %-12s" "${ops[$op]}"
		for impl in 0 1 2; do
			n=20000
			[ $op = 2 ] && n=8
			[ $op = 2 ] && [ $impl = 1 ] && n=2
			out=$(mktemp)
			valgrind --tool=callgrind --collect-atstart=no \
				--callgrind-out-file="$out" \
				./bench-gmem ops $size $impl $op $n >/dev/null 2>&1
			# Each dump has a "summary:" and an equal "totals:"
			# line: count one of them.
			ir=$(grep -h '^summary:' "$out"* | awk '{s += $2} END {print s}')
			rm -f "$out"*
			printf " %14.1f" "$(echo "$ir / $n" | bc -l)"
		done
		echo
	done
done
