#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bisect: prove the series bisectable.  At every commit of the series
# as "make series" exports it (each patch with its new files), in the
# series worktree: the test-config kernel (warnings are errors),
# incrementally in $BUILD/obj-bisect, then the KVM selftests against that
# commit's UAPI headers and the state map's userspace harness where the
# commit has it.  Run "make series" first.  Ends with "N passed, N failed":
# one verdict per commit.
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
	   kmake "$wt" "$obj" -j"$NPROC" bzImage headers >> "$obj/build.log" 2>&1 &&
	   make -C "$wt/tools/testing/selftests/kvm" -j"$NPROC" \
		OUTPUT="$obj-selftests" KHDR_INCLUDES="-isystem $obj/usr/include" \
		CC="ccache gcc" LDFLAGS=-static >> "$obj/build.log" 2>&1 &&
	   { [ ! -d "$wt/tools/testing/guest_memfd" ] ||
	     make -s -C "$wt/tools/testing/guest_memfd" gmem >> "$obj/build.log" 2>&1; }; then
		echo "PASS  builds (kernel, selftests, harness): $subject ($(( $(now) - start )) s)"
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
