#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fast userspace checks (seconds, no kernel build): the guest_memfd state
# map's userspace harness (tools/testing/guest_memfd, run in the prepared
# tree, so scripts/tree.sh runs first), the series' new-file hunks, the VM
# result parser's self-test and the pipeline scripts' lint.  Ends with "N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"

pass=0 fail=0 skip=0
# A suite that ends without its summary line counts as one failure.
count() { add_verdicts "$1" || fail=$((fail + 1)); }
one() {
	local name=$1
	shift
	if "$@"; then
		echo "PASS  $name"; pass=$((pass + 1))
	else
		echo "FAIL  $name"; fail=$((fail + 1))
	fi
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

harness=$SRC/tools/testing/guest_memfd
if [ -f "$TOP/tools/testing/guest_memfd/Makefile" ]; then
	[ -f "$harness/Makefile" ] || die "$harness missing: run scripts/tree.sh first"
	# From a clean harness: "make bench" must work as a fresh clone's
	# first command (it once needed headers only "make run" generated).
	make -s -C "$harness" clean
	one "harness: the benchmark builds first" \
		make -s -C "$harness" bench-gmem
	make -s -C "$harness" run 2>&1 | tee "$tmp" | grep -v '^[0-9]* passed'
	count "$tmp"
fi

# A fresh clone builds the series from patches/ and the repository's new
# files: every later patch's hunks must reverse-apply to them.
one "series: each patch's new files derive from the repository's" check_series

python3 "$TOP/scripts/test_vmresults.py" | tee "$tmp" | grep -v '^[0-9]* passed'
count "$tmp"

for f in "$TOP"/scripts/*.sh "$TOP"/scripts/vm/init "$TOP"/scripts/vm/gmem-profile "$TOP"/scripts/vm/gmem-latency "$TOP"/scripts/vm/gmem-modules "$TOP"/scripts/vm/kvm-reload "$TOP"/.ci/run; do
	case "$(head -1 "$f")" in
	*bash*) one "bash -n ${f#"$TOP"/}" bash -n "$f" ;;
	*) one "sh -n ${f#"$TOP"/}" sh -n "$f" ;;
	esac
	if command -v shellcheck >/dev/null; then
		one "shellcheck ${f#"$TOP"/}" shellcheck -x -S warning "$f"
	fi
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
