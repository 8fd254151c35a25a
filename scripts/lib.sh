# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: GPL-2.0
# Common settings for the build scripts.  Source it, do not run it.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${GMEM_BUILD_DIR:-$TOP/build}
SRC=$BUILD/linux
# Top-level kernel directories whose files in this repository are new
# in-tree files ("the overlay").  Our own pipeline scripts live in scripts/
# at the repository top and are deliberately not part of it.
OVERLAY_DIRS="arch block Documentation drivers fs include init kernel lib mm security virt tools"

# shellcheck source=../BASE
. "$TOP/BASE"

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=$TOP
export CCACHE_NOHASHDIR=1
export CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
export KBUILD_BUILD_TIMESTAMP="2024-11-17 00:00:00"
export KBUILD_BUILD_USER=gmem
export KBUILD_BUILD_HOST=gmem

NPROC=$(nproc)

log() { printf '>>> %s\n' "$*" >&2; }
die() { printf '*** ERROR: %s\n' "$*" >&2; exit 1; }

# stamp NAME: seconds since the epoch, for the stage timings.
now() { date +%s; }

# kmake SRC OBJ ARGS...: make in kernel tree SRC with objects in OBJ,
# through ccache.
kmake() {
	local src=$1 obj=$2
	shift 2
	make -C "$src" O="$obj" CC="ccache gcc" HOSTCC="ccache gcc" "$@"
}

# add_verdicts FILE: add the last "N passed, N failed[, N skipped]" line of
# FILE to the caller's pass/fail/skip counters; return 1 if there is none.
# shellcheck disable=SC2034 # the counters belong to the caller
add_verdicts() {
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
	[ -n "$line" ] || return 1
	set -- $line
	pass=$((pass + $1)) fail=$((fail + $3)) skip=$((skip + ${5:-0}))
}

# deleted_files PATCH: "path blob" for each file that PATCH deletes
# without its text (git format-patch -D, --irreversible-delete).
deleted_files() {
	awk '/^diff --git a\// { path = substr($3, 3); del = 0; next }
	     /^deleted file mode/ { del = 1; next }
	     del && /^index [0-9a-f]+\.\.0+$/ {
		split($2, h, "."); print path, h[1]; del = 0 }' "$1"
}

# am_patch PATCH: git am, except that files deleted without their text are
# checked against the blob the patch names and removed by hand.
am_patch() {
	local path blob ex=() dels
	dels=$(deleted_files "$1")
	while read -r path blob; do
		[ -n "$path" ] || continue
		[ "$(git rev-parse "HEAD:$path" 2>/dev/null)" = "$(git rev-parse "$blob" 2>/dev/null)" ] ||
			{ log "$1 deletes $path, which is not blob $blob here"; return 1; }
		ex+=("--exclude=$path")
	done <<< "$dels"
	git am -q --keep-cr "${ex[@]}" "$1" >&2 || return 1
	[ ${#ex[@]} = 0 ] && return 0
	while read -r path blob; do git rm -q -- "$path"; done <<< "$dels"
	git commit -q --amend --no-edit
}
