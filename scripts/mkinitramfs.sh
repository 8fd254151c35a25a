#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh OUT LIST...: pack busybox, scripts/vm/init, the test lists
# and the selftest binaries the lists name into the initramfs OUT, with the
# kernel's own usr/gen_init_cpio (no root needed for /dev/console).  A
# command that names a script of scripts/vm/ (vmtool) takes that script.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$1; shift
st=$BUILD/selftests
gen=$BUILD/obj-test/usr/gen_init_cpio
[ -x "$gen" ] || gen=$(ls "$BUILD"/obj-*/usr/gen_init_cpio 2>/dev/null | head -1)
[ -x "$gen" ] || die "usr/gen_init_cpio missing: build a kernel first"
bb=$(command -v busybox) || die "busybox missing (busybox-static)"
file "$bb" | grep -q 'statically linked' || die "$bb is not static (install busybox-static)"

spec=$(mktemp)
trap 'rm -f "$spec"' EXIT
{
	for d in /bin /sbin /dev /proc /sys /tmp /tests /selftests /root /etc; do
		echo "dir $d 0755 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "file /bin/busybox $bb 0755 0 0"
	for a in $("$bb" --list); do
		[ "$a" = busybox ] || echo "slink /bin/$a busybox 0777 0 0"
	done
	echo "file /init $TOP/scripts/vm/init 0755 0 0"
	for l in "$@"; do
		echo "file /tests/$(basename "$l") $l 0644 0 0"
	done
	# The module kernel's KVM modules (GMEM_MODULES: its build directory).
	if [ -n "${GMEM_MODULES:-}" ]; then
		echo "dir /modules 0755 0 0"
		for m in irqbypass kvm kvm-amd kvm-intel; do
			ko=$(find "$GMEM_MODULES/arch/x86/kvm" "$GMEM_MODULES/virt" \
				-name "$m.ko" | head -1)
			[ -n "$ko" ] || die "$m.ko is not built in $GMEM_MODULES"
			echo "file /modules/$m.ko $ko 0644 0 0"
		done
	fi
	for t in $(grep -hEv '^\s*(#|$)' "$@" | awk '{print $3}' | sort -u); do
		if [ -x "$TOP/scripts/vm/$t" ]; then
			echo "file /selftests/$t $TOP/scripts/vm/$t 0755 0 0"
			continue
		fi
		[ -x "$st/$t" ] || die "selftest $t is not built ($st/$t)"
		[ "$(dirname "$t")" = . ] || echo "dir /selftests/$(dirname "$t") 0755 0 0"
		echo "file /selftests/$t $st/$t 0755 0 0"
	done
} > "$spec.raw"
# Directory entries first, each once.
{ grep '^dir ' "$spec.raw" | sort -u; grep -v '^dir ' "$spec.raw"; } > "$spec"
rm -f "$spec.raw"
"$gen" "$spec" | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
log "initramfs $out: $(du -h "$out" | cut -f1)"
