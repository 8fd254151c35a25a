#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare $BUILD/linux, the kernel source tree the kernel and the selftests
# are built from:
#
#   base commit   Debian's linux-source-6.12 tarball, extracted once
#   + commits     patches/series applied in order with "git am" (edits to
#                 existing upstream files), re-applied only when the series
#                 or one of its patches changed
#   + overlay     new in-tree files of this repository (see OVERLAY_DIRS),
#                 copied over as untracked files; unchanged files keep their
#                 mtime so that the kernel build stays incremental
#
# Any reject fails loudly.  "tree.sh export" writes the commits on top of
# the base back to patches/ (after editing upstream files in build/linux
# and committing there).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tarball=/usr/src/$BASE_PACKAGE.tar.xz
stampdir=$SRC/.git/gmem

extract() {
	local ver
	ver=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE")
	log "extracting $BASE_PACKAGE $ver into $SRC"
	rm -rf "$SRC" "$BUILD/linux.tmp"
	mkdir -p "$BUILD/linux.tmp"
	tar -xJf "$tarball" -C "$BUILD/linux.tmp"
	mv "$BUILD/linux.tmp/$BASE_PACKAGE" "$SRC"
	rmdir "$BUILD/linux.tmp"
	cd "$SRC"
	git init -q -b work
	git config user.name "guest_memfd pipeline"
	git config user.email "gmem@localhost"
	git config core.autocrlf false
	git config gc.auto 0
	git add -A -f
	git commit -q -m "Linux $(make -s kernelversion) from Debian $BASE_PACKAGE $ver"
	git tag base
	mkdir -p "$stampdir"
	echo "$ver" > "$stampdir/base-version"
	: > "$stampdir/series-hash"
	: > "$stampdir/overlay-files"
}

series_hash() {
	(cd "$TOP/patches" && cat series &&
		sed -e '/^\s*#/d' -e '/^\s*$/d' series | xargs -r cat) |
		sha1sum | cut -d' ' -f1
}

apply_series() {
	local p n=0
	cd "$SRC"
	git am --abort >/dev/null 2>&1 || true
	git reset -q --hard base
	while read -r p; do
		case "$p" in ''|\#*) continue ;; esac
		[ -f "$TOP/patches/$p" ] || die "patches/series names $p, which does not exist"
		if ! am_patch "$TOP/patches/$p"; then
			git am --abort >/dev/null 2>&1 || true
			die "patch $p does not apply to $(cat "$stampdir/base-version")"
		fi
		n=$((n + 1))
	done < "$TOP/patches/series"
	log "applied $n patch(es) from patches/series"
}

overlay_files() {
	(cd "$TOP" && git ls-files --cached --others --exclude-standard -- \
		$OVERLAY_DIRS | while read -r f; do [ -f "$f" ] && echo "$f"; done) |
		sort
}

sync_overlay() {
	local f new old
	new=$(mktemp)
	overlay_files > "$new"
	old="$stampdir/overlay-files"
	cd "$SRC"
	# The overlay only adds files: upstream files change through patches/.
	while read -r f; do
		if git cat-file -e "HEAD:$f" 2>/dev/null; then
			rm -f "$new"
			die "overlay file $f exists in the patched tree; change it with a patch in patches/"
		fi
	done < "$new"
	# Files dropped from the overlay since the last run go away.
	comm -23 "$old" "$new" | while read -r f; do rm -f "$SRC/$f"; done
	# No -t: a changed file gets a new mtime even when its source is older
	# than the last build (make compares mtimes); unchanged ones keep theirs.
	rsync -rlp --checksum --files-from="$new" "$TOP/" "$SRC/"
	mv "$new" "$old"
	log "overlay: $(wc -l < "$old") new file(s)"
}

export_series() {
	cd "$SRC"
	local out=$TOP/patches
	git diff --quiet HEAD -- || die "uncommitted changes to tracked files in $SRC"
	find "$out" -name '*.patch' -delete
	git format-patch -q -D --no-signature --zero-commit -N -o "$out" base..HEAD
	(echo "# Applied in order on top of BASE by scripts/tree.sh."
	 cd "$out" && ls -1 -- *.patch 2>/dev/null || true) > "$out/series"
	series_hash > "$stampdir/series-hash"
	log "exported $(grep -c '\.patch$' "$out/series" || true) patch(es) to patches/"
}


main() {
	"$TOP/scripts/deps.sh"
	[ -f "$tarball" ] || die "$tarball is missing"
	local want
	want=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE")
	if [ ! -d "$SRC/.git" ] || [ "$(cat "$stampdir/base-version" 2>/dev/null)" != "$want" ]; then
		extract
	fi
	if [ "$(series_hash)" != "$(cat "$stampdir/series-hash")" ]; then
		apply_series
		series_hash > "$stampdir/series-hash"
	fi
	sync_overlay
}

case "${1:-}" in
export) export_series ;;
"") main ;;
*) die "usage: $0 [export]" ;;
esac
