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
