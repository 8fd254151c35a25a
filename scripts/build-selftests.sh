#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the KVM selftests (upstream and this project's, both in the prepared
# tree) statically, against the UAPI headers of the built kernel, into
# $BUILD/selftests.  Incremental: make only rebuilds what changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

flavour=${1:-test}
hdr=$BUILD/obj-$flavour/usr/include
[ -d "$hdr/linux" ] || die "no UAPI headers in $hdr: build the $flavour kernel first"
out=$BUILD/selftests
mkdir -p "$out"
start=$(now)
log "building KVM selftests into $out"
if ! make -C "$SRC/tools/testing/selftests/kvm" -j"$NPROC" \
	OUTPUT="$out" KHDR_INCLUDES="-isystem $hdr" \
	CC="ccache gcc" LDFLAGS=-static > "$out/build.log" 2>&1; then
	grep -E -B2 -A6 'error' "$out/build.log" | tail -60 >&2
	die "selftests build failed; full log: $out/build.log"
fi
grep 'warning:' "$out/build.log" >&2 || true
log "KVM selftests built in $(( $(now) - start )) s"
