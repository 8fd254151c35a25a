#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-vm.sh [-f flavour] [-l list] [-t whole-run timeout] [-a "kernel args"]
#           [-e expect]  (judge the verdicts against an expectation file,
#                         for lists that break tests on purpose)
#           [-s]         (interactive shell instead of the tests)
#           [-i]         (QEMU -icount shift=0: the guest clock counts
#                         instructions, 1 ns each; for instruction counts)
#
# Boot the built kernel in QEMU under single-threaded TCG with nested SVM and
# run the tests of a list (tests/vm-tests.list by default).  A boot that dies
# inside a test (panic, hang) fails that test and the next boot goes on with
# the following one.  Prints the per-test verdicts and ends with
# "N passed, N failed, N skipped"; exits nonzero on any failure.  Logs are
# kept in $BUILD/logs/<time>-<list>/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

flavour="test"
list=$TOP/tests/vm-tests.list
whole=""
extra_args=${GMEM_KERNEL_ARGS:-}
shell=0
expect=""
icount=0
while getopts "f:l:t:a:e:si" o; do
	case $o in
	f) flavour=$OPTARG ;;
	l) list=$(realpath "$OPTARG") ;;
	t) whole=$OPTARG ;;
	a) extra_args="$extra_args $OPTARG" ;;
	e) expect=$(realpath "$OPTARG") ;;
	s) shell=1 ;;
	i) icount=1 ;;
	*) die "usage: $0 [-f flavour] [-l list] [-t seconds] [-a kernel-args] [-e expect] [-s] [-i]" ;;
	esac
done

kernel=$BUILD/obj-$flavour/arch/x86/boot/bzImage
[ -f "$kernel" ] || die "$kernel missing: run scripts/build-kernel.sh $flavour"
[ -f "$list" ] || die "no test list $list"
initrd=$BUILD/initramfs-$(basename "$list" .list).cpio.gz
# The module kernel needs its KVM modules in the initramfs.
if [ "$flavour" = mod ]; then
	GMEM_MODULES=$BUILD/obj-mod "$TOP/scripts/mkinitramfs.sh" "$initrd" "$list"
else
	"$TOP/scripts/mkinitramfs.sh" "$initrd" "$list"
fi

# Whole-run budget: every test's own timeout plus time to boot.
if [ -z "$whole" ]; then
	whole=$(grep -Ev '^\s*(#|$)' "$list" | awk '{s += $2} END {print s + 600}')
fi

# 1G and 2M hugetlb pools for the tests (GMEM_POOLS overrides them); RCU's stall detector gets more
# slack because TCG runs the guest far slower than hardware.
cmdline="console=ttyS0,115200 panic=-1 oops=panic rcupdate.rcu_cpu_stall_timeout=120"
cmdline="$cmdline ${GMEM_POOLS:-hugepagesz=1G hugepages=4 hugepagesz=2M hugepages=512}"
# The test kernel runs fully preemptible (PREEMPT_DYNAMIC), so that
# DEBUG_ATOMIC_SLEEP and lockdep see what a PREEMPT kernel would do.
case $flavour in test|mod) cmdline="$cmdline preempt=full" ;; esac
cmdline="$cmdline gmem.list=$(basename "$list") $extra_args"

# Two NUMA nodes of 6G with a vCPU each, each vCPU its own socket (so its
# own cache; a cache shared across nodes makes the kernel warn at boot):
# guest_memfd's memory policy tests (mbind() on its mapping) need a second
# node.  The hugetlb pools spread over both.
# shellcheck disable=SC2054
qemu=(qemu-system-x86_64 -accel tcg,thread=single
      -cpu EPYC,+svm,+npt,+pdpe1gb -smp 2,sockets=2,cores=1,threads=1 -m 12G
      -object memory-backend-ram,id=ram0,size=6G
      -object memory-backend-ram,id=ram1,size=6G
      -numa node,nodeid=0,cpus=0,memdev=ram0
      -numa node,nodeid=1,cpus=1,memdev=ram1
      -kernel "$kernel" -initrd "$initrd" -no-reboot)
# The clock then advances with executed instructions only (sleep=off: not
# while idle either), which makes a time measured in the guest an
# instruction count that the host's load does not disturb.
# shellcheck disable=SC2054
if [ "$icount" = 1 ]; then qemu+=(-icount shift=0,sleep=off); fi

if [ "$shell" = 1 ]; then
	exec "${qemu[@]}" -nographic -append "$cmdline gmem.mode=shell"
fi

logdir=$BUILD/logs/$(date +%Y%m%d-%H%M%S)-$(basename "$list" .list)
mkdir -p "$logdir"
ln -sfn "$logdir" "$BUILD/logs/latest"
deadline=$(( $(now) + whole ))
start=1
boot=0
logs=()
while :; do
	boot=$((boot + 1))
	log="$logdir/boot$boot.log"
	logs+=("$log")
	left=$(( deadline - $(now) ))
	[ "$left" -gt 0 ] || { echo "whole-run timeout reached" > "$log"; break; }
	log "boot $boot: tests from #$start of $(basename "$list") (up to ${left}s); log: $log"
	t0=$(now)
	rc=0
	timeout -k 10 "$left" "${qemu[@]}" -display none -monitor none \
		-serial "file:$log" -append "$cmdline gmem.start=$start" \
		</dev/null 2>"$logdir/qemu$boot.err" || rc=$?
	log "boot $boot: QEMU exited with $rc after $(( $(now) - t0 )) s"
	start=$("$TOP/scripts/vmresults.py" next "$list" "${logs[@]}")
	[ "$start" != 0 ] || break
	[ "$boot" -lt 10 ] || break
done
if [ -n "$expect" ]; then
	"$TOP/scripts/vmresults.py" report "$list" "${logs[@]}" > "$logdir/results.txt" || true
	"$TOP/scripts/vmresults.py" expect "$expect" "$list" "${logs[@]}"
	exit
fi
"$TOP/scripts/vmresults.py" report "$list" "${logs[@]}" | tee "$logdir/results.txt"
exit "${PIPESTATUS[0]}"
