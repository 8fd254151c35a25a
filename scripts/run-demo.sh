#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-demo.sh [guest_memfd_migrate options]: the main job ("make run").
#
# Boots the built test kernel in the VM and runs a post-copy live migration
# of a running guest on 1G hugetlb-backed guest_memfd between two VMM
# processes (tools/testing/selftests/kvm/x86_64/guest_memfd_migrate.c),
# then the same migration the way VMMs do it today (shmem + userfaultfd
# MINOR), and prints the VMM's output: progress, then the tables.
#
# With --kill-source-at=P% or --drop-at=P% the source fails on purpose:
# the run passes if the destination stops cleanly (--expect-source-loss is
# added), and the output says what it did.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

args="$*"
case " $args " in
*" --kill-source-at="*|*" --drop-at="*)
	case " $args " in
	*" --expect-source-loss "*) ;;
	*) args="$args --expect-source-loss" ;;
	esac ;;
esac

list=$BUILD/demo.list
mkdir -p "$BUILD"
# One line: name, timeout (s), command relative to the selftests directory.
echo "guest_memfd_migrate 5400 x86_64/guest_memfd_migrate $args" > "$list"
log "main job: guest_memfd_migrate $args"
rc=0
"$TOP/scripts/run-vm.sh" -f test -l "$list" -a "kunit.enable=0 gmem.kmemleak=off" || rc=$?
echo
echo "guest_memfd_migrate $args, in the VM:"
echo
sed -n 's/^| //p' "$BUILD"/logs/latest/boot*.log
exit $rc
