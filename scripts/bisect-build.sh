#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bisect: prove the series bisectable.  Builds the test-config kernel
# (warnings are errors) at every commit of the series as "make series"
# exports it (each patch with its new files), in the series
# worktree, incrementally in $BUILD/obj-bisect.  Run "make series" first.
# Ends with "N passed, N failed": one verdict per commit.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

wt=$BUILD/series-worktree
obj=$BUILD/obj-bisect
[ -d "$wt/.git" ] || [ -f "$wt/.git" ] || die "no $wt: run make series first"
[ -f "$BUILD/obj-test/.config" ] || die "no test kernel config: run make kernel first"
mkdir -p "$obj"

pass=0 fail=0
head=$(git -C "$wt" rev-parse HEAD)
for c in $(git -C "$wt" rev-list --reverse base.."$head"); do
	subject=$(git -C "$wt" log -1 --format=%s "$c")
	git -C "$wt" checkout -q --detach "$c" || die "cannot check out $c"
	cp "$BUILD/obj-test/.config" "$obj/.config"
	start=$(now)
	if kmake "$wt" "$obj" olddefconfig > "$obj/build.log" 2>&1 &&
	   kmake "$wt" "$obj" -j"$NPROC" bzImage >> "$obj/build.log" 2>&1; then
		echo "PASS  builds: $subject ($(( $(now) - start )) s)"
		pass=$((pass + 1))
	else
		grep -E -i -B2 -A6 'error|undefined reference' "$obj/build.log" | tail -30
		echo "FAIL  builds: $subject"
		fail=$((fail + 1))
	fi
done
git -C "$wt" checkout -q --detach "$head"
echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ]
