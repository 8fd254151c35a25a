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

# The series.  patches/series lists the patches in order; a line indented
# under a patch names a new in-tree file (an overlay file) that the patch
# introduces.  A patch file holds the patch's edits of upstream files and of
# new files introduced by earlier patches; the files it introduces are not
# in it: the repository holds each new file as the tip of the series has
# it, and the version a patch introduces is the tip with the later
# patches' hunks on it reversed (series_snapshots).

# overlay_files: the repository's new in-tree files, sorted.
overlay_files() {
	(cd "$TOP" && git ls-files --cached --others --exclude-standard -- \
		$OVERLAY_DIRS | while read -r f; do [ -f "$f" ] && echo "$f"; done) |
		sort
}

# series_patches: the patch file names, in order.
series_patches() {
	awk '/^[^ \t#]/ { print $1 }' "$TOP/patches/series"
}

# series_introduces PATCH: the new files PATCH introduces.
series_introduces() {
	awk -v p="$1" '/^[^ \t#]/ { cur = $1; next }
		       /^[ \t]+[^ \t#]/ && cur == p { print $1 }' "$TOP/patches/series"
}

# series_snapshots DIR: check the manifest against the overlay and write,
# for the i-th patch (from 0), DIR/i/ with the files it introduces as they
# are at that patch.  Nothing else is touched.  Returns 1 on any error
# (callers use "|| die", under which set -e does not act).
series_snapshots() {
	local dir=$1 cur=$1/cur i f p
	local -a patches inc
	mkdir -p "$cur" || return 1
	overlay_files > "$dir/overlay" || return 1
	awk '/^[ \t]+[^ \t#]/ { print $1 }' "$TOP/patches/series" | sort > "$dir/manifest" || return 1
	f=$(uniq -d "$dir/manifest")
	[ -z "$f" ] || { log "patches/series introduces more than once: $f"; return 1; }
	f=$(comm -23 "$dir/overlay" "$dir/manifest")
	[ -z "$f" ] || { log "no patch in patches/series introduces: $f"; return 1; }
	f=$(comm -13 "$dir/overlay" "$dir/manifest")
	[ -z "$f" ] || { log "patches/series introduces files the repository does not have: $f"; return 1; }
	f=$(grep -n '[[:space:]*?[]' "$dir/overlay" || true)
	[ -z "$f" ] || { log "new file names with blanks or glob characters are not supported: $f"; return 1; }
	# -m: extracted files get the current time, never the repository's
	# older mtimes (make would keep stale objects).
	(cd "$TOP" && tar -cf - -T "$dir/overlay") | tar -xmf - -C "$cur" || return 1
	while read -r f; do inc+=("--include=$f"); done < "$dir/overlay"
	mapfile -t patches < <(series_patches)
	for ((i = ${#patches[@]} - 1; i >= 0; i--)); do
		p=${patches[i]}
		[ -f "$TOP/patches/$p" ] || { log "patches/series names $p, which does not exist"; return 1; }
		mkdir -p "$dir/$i" || return 1
		while read -r f; do
			[ -n "$f" ] || continue
			mkdir -p "$dir/$i/$(dirname "$f")" || return 1
			mv "$cur/$f" "$dir/$i/$f" || return 1
		done < <(series_introduces "$p")
		# Outside any git repository (whatever the environment says),
		# git apply works like patch(1).
		if ! (cd "$cur" && env -u GIT_DIR -u GIT_WORK_TREE \
			GIT_CEILING_DIRECTORIES="$dir" git apply -R "${inc[@]}" \
			"$TOP/patches/$p") >&2; then
			log "$p: its hunks on new files do not reverse-apply to the files of the tip"
			return 1
		fi
	done
	f=$(cd "$cur" && find . -type f | head -5)
	[ -z "$f" ] || { log "files left after reversing every patch: $f"; return 1; }
	rm -rf "$cur"
}

# check_series: series_snapshots into a scratch directory, as a check.
check_series() {
	local scratch rc=0
	scratch=$(mktemp -d)
	series_snapshots "$scratch" || rc=1
	rm -rf "$scratch"
	return $rc
}

# __build_series SCRATCH: build_series with its snapshots in SCRATCH.
__build_series() {
	local scratch=$1 i=0 p f rc=0
	series_snapshots "$scratch" || return 1
	while read -r p; do
		if ! am_patch "$TOP/patches/$p"; then
			git am --abort >/dev/null 2>&1 || true
			log "patch $p does not apply"
			return 1
		fi
		if [ -n "$(ls -A "$scratch/$i")" ]; then
			while read -r f; do
				if git cat-file -e "base:$f" 2>/dev/null; then
					log "$p introduces $f, which exists upstream"
					return 1
				fi
			done < <(cd "$scratch/$i" && find . -type f | sed 's|^\./||')
			# No -a: the files get the current time (see above).
			cp -R --preserve=mode "$scratch/$i/." . &&
			(cd "$scratch/$i" && find . -type f -print0 | sed -z 's|^\./||') |
				xargs -0 git add -f -- &&
			git commit -q --amend --no-edit || return 1
		fi
		i=$((i + 1))
	done < <(series_patches)
	while read -r f; do
		cmp -s "$TOP/$f" "$f" && git cat-file -e "HEAD:$f" 2>/dev/null ||
			{ log "the series ends with a different $f, or without it"; rc=1; }
	done < "$scratch/overlay"
	return $rc
}

# build_series: in the current directory, a git tree at the series' base
# with nothing to commit, commit the series: each patch with the new files
# it introduces.  The new files end as the repository has them.
build_series() {
	local scratch rc=0
	scratch=$(mktemp -d)
	__build_series "$scratch" || rc=1
	rm -rf "$scratch"
	return $rc
}
