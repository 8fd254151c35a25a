#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The project's test command (README, .ci/run): fast userspace checks, the
# test kernel, the KVM selftests, then the VM run of tests/vm-tests.list,
# the hugetlb tests with HVO, and the module kernel's tests/mod.list.
# Every stage prints its own verdicts; the last line sums them all:
# "N passed, N failed, N skipped".  Exit status 1 on any failure.
#
#   GMEM_SKIP_VM=1   stop after the builds (no VM run)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

list=${1:-$TOP/tests/vm-tests.list}
pass=0 fail=0 skip=0
timings=""
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# stage NAME CMD...: run a stage, show its output, add up its verdicts.  A
# stage that prints no "N passed, N failed" line counts as one test.
stage() {
	local name=$1 t0 rc f0
	shift
	log "stage $name"
	t0=$(now)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	timings="$timings$(printf '  %-12s %5d s' "$name" $(( $(now) - t0 )))"$'\n'
	f0=$fail
	if add_verdicts "$out"; then
		# A stage that failed without failing a test fails once more.
		[ "$rc" = 0 ] || [ "$fail" != "$f0" ] || fail=$((fail + 1))
	elif [ "$rc" = 0 ]; then
		echo "PASS  $name"
		pass=$((pass + 1))
	else
		echo "FAIL  $name (exit status $rc)"
		fail=$((fail + 1))
	fi
	return "$rc"
}

stage deps "$TOP/scripts/deps.sh" || true
if stage tree "$TOP/scripts/tree.sh" &&
   stage check "$TOP/scripts/check.sh" &&
   stage kernel "$TOP/scripts/build-kernel.sh" test &&
   stage selftests "$TOP/scripts/build-selftests.sh" test &&
   [ -z "${GMEM_SKIP_VM:-}" ]; then
	# First prove the runner still tells failures apart: break tests on
	# purpose (exit status, WARN_ON, panic, timeout, leaked hugetlb page).
	stage pipeline "$TOP/scripts/run-vm.sh" -f test -l "$TOP/tests/pipeline.list" \
		-e "$TOP/tests/pipeline.expect" -a "gmem.kmemleak=off kunit.enable=0"
	stage vm "$TOP/scripts/run-vm.sh" -f test -l "$list"
	# hugetlb again with the vmemmap optimisation on (off in "vm"). The 1G
	# pages are allocated at run time: 6.12 warns (DEBUG_VM) when it
	# optimises boot-time gigantic pages (hugetlb_vmemmap.c:223).
	[ "$list" != "$TOP/tests/vm-tests.list" ] ||
		GMEM_POOLS="hugepagesz=2M hugepages=512 hugepagesz=1G hugepages=0" \
		stage vm-hvo "$TOP/scripts/run-vm.sh" -f test -l "$TOP/tests/hvo.list" \
			-a "hugetlb_free_vmemmap=on gmem.pool1g=4 kunit.enable=0"
	# KVM as modules: unloaded while guest_memfd files close.
	if [ "$list" = "$TOP/tests/vm-tests.list" ] &&
	   stage kernel-mod "$TOP/scripts/build-kernel.sh" mod; then
		stage vm-mod "$TOP/scripts/run-vm.sh" -f mod \
			-l "$TOP/tests/mod.list" -a "kunit.enable=0"
	fi
fi

echo
echo "stage timings:"
printf '%s' "$timings"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
