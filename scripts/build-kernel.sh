#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# build-kernel.sh {test|bench|prof|mod}: configure (x86_64_defconfig + configs/base.config
# + configs/<flavour>.config) and build the kernel in $BUILD/obj-<flavour>,
# incrementally and through ccache.  Every option a fragment asks for must end
# up in the final .config, or the build stops.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

flavour=${1:-test}
[ -f "$TOP/configs/$flavour.config" ] || die "no configs/$flavour.config"
obj=$BUILD/obj-$flavour
frags="$TOP/configs/base.config $TOP/configs/$flavour.config"
# The module kernel is the test kernel with KVM as modules.
[ "$flavour" = mod ] && frags="$TOP/configs/base.config $TOP/configs/test.config $TOP/configs/mod.config"
mkdir -p "$obj"

# Every option the fragments ask for is what the kernel got; a later
# fragment overrides an earlier one, as in merge_config.sh.
check_config() {
	local line opt have bad=0
	local -A want=()
	while read -r line; do
		case "$line" in
		CONFIG_*=*) opt=${line%%=*}; want[$opt]=${line#*=} ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want[$opt]=n ;;
		esac
	done < <(cat $frags)
	for opt in "${!want[@]}"; do
		have=$(grep -E "^$opt=|^# $opt is not set" "$obj/.config" || true)
		case "$have" in
		"$opt=${want[$opt]}") ;;
		"# $opt is not set"|"") [ "${want[$opt]}" = n ] || { echo "  $opt: want ${want[$opt]}, have ${have:-unset}"; bad=1; } ;;
		*) echo "  $opt: want ${want[$opt]}, have $have"; bad=1 ;;
		esac
	done
	return $bad
}

confhash=$(cat $frags "$SRC/arch/x86/configs/x86_64_defconfig" | sha1sum | cut -d' ' -f1)
if [ ! -f "$obj/.config" ] || [ "$(cat "$obj/.gmem-config-hash" 2>/dev/null)" != "$confhash" ]; then
	log "configuring $flavour kernel"
	kmake "$SRC" "$obj" -s x86_64_defconfig >/dev/null
	# shellcheck disable=SC2086
	(cd "$obj" && "$SRC/scripts/kconfig/merge_config.sh" -m -O "$obj" .config $frags >/dev/null)
	kmake "$SRC" "$obj" -s olddefconfig >/dev/null
	if ! check_config >&2; then
		die "configs/ asks for options the $flavour kernel cannot have (see above)"
	fi
	echo "$confhash" > "$obj/.gmem-config-hash"
fi

log "building $flavour kernel in $obj"
start=$(now)
targets=bzImage
[ "$flavour" = mod ] && targets="bzImage modules"
# shellcheck disable=SC2086 # two targets
if ! kmake "$SRC" "$obj" -j"$NPROC" $targets > "$obj/build.log" 2>&1; then
	grep -E -B2 -A6 'error|Error' "$obj/build.log" | tail -60 >&2
	die "kernel build failed; full log: $obj/build.log"
fi
grep -E 'warning:' "$obj/build.log" >&2 || true
kmake "$SRC" "$obj" -s headers_install >/dev/null
log "kernel $flavour built in $(( $(now) - start )) s: $obj/arch/x86/boot/bzImage"
