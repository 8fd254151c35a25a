#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare $BUILD/linux, the kernel source tree the kernel and the selftests
# are built from:
#
#   base commit   Debian's linux-source-6.12 tarball, extracted once
#   + commits     the series: patches/series applied in order with "git am",
#                 each patch committed together with the new files it
#                 introduces (see build_series in lib.sh); rebuilt only when
#                 the series or one of its patches changed, or on
#                 "tree.sh rebuild"
#   + overlay     the repository's new in-tree files (see OVERLAY_DIRS)
#                 copied over the tip; unchanged files keep their mtime so
#                 that the kernel build stays incremental.  An edit that is
#                 not in the series yet shows as a change of the work tree.
#
# Any reject fails loudly.  "tree.sh export" writes the commits on top of
# the base back to patches/ and patches/series, and the new files of the
# tip back to the repository (after editing and committing in build/linux,
# e.g. "git commit --fixup" and "git rebase -i --autosquash base").
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
	(cd "$TOP/patches" && cat series && series_patches | xargs -r cat) |
		sha1sum | cut -d' ' -f1
}

apply_series() {
	cd "$SRC"
	git am --abort >/dev/null 2>&1 || true
	git reset -q --hard base
	build_series || die "the series does not build up to the repository's new files"
	log "applied $(git rev-list --count base..HEAD) patch(es) from patches/series"
}

# overlay_sums: "checksum  path" of the repository's new files.
overlay_sums() {
	(cd "$TOP" && overlay_files | tr '\n' '\0' | xargs -0 -r sha1sum)
}

sync_overlay() {
	local f new old
	new=$(mktemp)
	overlay_files > "$new"
	old="$stampdir/overlay-files"
	cd "$SRC"
	# The overlay only adds files: upstream files change through patches/.
	while read -r f; do
		if git cat-file -e "base:$f" 2>/dev/null; then
			rm -f "$new"
			die "overlay file $f exists upstream; change it with a patch in patches/"
		fi
	done < "$new"
	# Files dropped from the overlay since the last run go away.
	comm -23 "$old" "$new" | while read -r f; do rm -f "$SRC/$f"; done
	# No -t: a changed file gets a new mtime even when its source is older
	# than the last build (make compares mtimes); unchanged ones keep theirs.
	rsync -rlp --checksum --files-from="$new" "$TOP/" "$SRC/"
	mv "$new" "$old"
	# What was copied, so that "tree.sh export" can tell an edit of the
	# repository's copy since (which it must not overwrite) from one made
	# and committed in $SRC.
	overlay_sums > "$stampdir/overlay-sums"
	log "overlay: $(wc -l < "$old") new file(s)"
}

export_series() {
	cd "$SRC"
	local out=$TOP/patches tmp c f i=0 name
	local -a added gone ex
	git diff --quiet HEAD -- || die "uncommitted changes to tracked files in $SRC"
	# A new file that only the work tree has would be lost.
	f=$(git status --porcelain -uall -- $OVERLAY_DIRS | grep '^??' || true)
	[ -z "$f" ] || die "untracked files in $SRC: commit them into the series or remove them: $f"
	# The export overwrites the repository's copies: each must be what
	# the last sync copied, or what the series' tip has already, or an
	# edit made there since would be lost.
	[ -f "$stampdir/overlay-sums" ] || die "no record of the last sync: run scripts/tree.sh first"
	while read -r sum f; do
		grep -qxF "$sum  $f" "$stampdir/overlay-sums" && continue
		git cat-file -e "HEAD:$f" 2>/dev/null &&
			[ "$(git rev-parse "HEAD:$f")" = "$(git hash-object "$TOP/$f")" ] && continue
		die "$TOP/$f changed since the last scripts/tree.sh and differs from the series: run scripts/tree.sh, commit the change in $SRC, then export"
	done < <(overlay_sums)
	tmp=$(mktemp -d)
	echo "# Applied in order on top of BASE by scripts/tree.sh; an indented line" > "$tmp/series"
	echo "# names a new file the patch above introduces." >> "$tmp/series"
	for c in $(git rev-list --reverse base..HEAD); do
		i=$((i + 1))
		mapfile -t added < <(git diff-tree -r --no-commit-id --no-renames \
			--diff-filter=A --name-only "$c")
		# A new file lives from the patch that introduces it to the tip.
		mapfile -t gone < <(git diff-tree -r --no-commit-id --no-renames \
			--diff-filter=D --name-only "$c")
		for f in "${gone[@]}"; do
			git cat-file -e "base:$f" 2>/dev/null ||
				die "$(git log -1 --format=%s "$c"): removes $f, which an earlier patch introduced; fold the removal into that patch"
		done
		ex=()
		for f in "${added[@]}"; do ex+=(":(exclude)$f"); done
		# "$c^!": this commit alone (with -1, a path limit would walk
		# back to an older commit that touches the paths).
		git format-patch -q -D --no-renames --no-signature --zero-commit -N \
			--start-number "$i" -o "$tmp" "$c^!" -- . "${ex[@]}"
		name=$(cd "$tmp" && ls -1 -- "$(printf %04d "$i")"-*.patch 2>/dev/null) ||
			die "$(git log -1 --format=%s "$c"): only adds files; commit them with the change that builds them"
		echo "$name" >> "$tmp/series"
		for f in "${added[@]}"; do printf '\t%s\n' "$f" >> "$tmp/series"; done
	done
	# The tip's new files, checked before anything in the repository changes.
	mapfile -t added < <(git diff --no-renames --diff-filter=A --name-only base HEAD)
	while read -r f; do
		(cd "$TOP" && git ls-files --error-unmatch -- "$f" >/dev/null 2>&1) ||
			die "$f is in no commit of the series and not tracked by the repository"
	done < <(comm -23 <(overlay_files) <(printf '%s\n' "${added[@]}" | sort))
	find "$out" -maxdepth 1 -name '*.patch' -delete
	mv "$tmp"/*.patch "$out/"
	mv "$tmp/series" "$out/series"
	rmdir "$tmp"
	for f in "${added[@]}"; do
		if ! cmp -s "$f" "$TOP/$f"; then
			mkdir -p "$TOP/$(dirname "$f")"
			cp "$f" "$TOP/$f"
			log "updated $f"
		fi
	done
	# Tracked by the repository (checked above), so git keeps them.
	comm -23 <(overlay_files) <(printf '%s\n' "${added[@]}" | sort) |
		while read -r f; do rm -f "$TOP/$f"; log "removed $f (in no commit)"; done
	series_hash > "$stampdir/series-hash"
	overlay_sums > "$stampdir/overlay-sums"
	log "exported $i patch(es) to patches/"
}

main() {
	"$TOP/scripts/deps.sh"
	[ -f "$tarball" ] || die "$tarball is missing"
	local want
	want=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE")
	if [ ! -d "$SRC/.git" ] || [ "$(cat "$stampdir/base-version" 2>/dev/null)" != "$want" ]; then
		extract
	fi
	if [ "$(series_hash)" != "$(cat "$stampdir/series-hash" 2>/dev/null)" ]; then
		apply_series
		series_hash > "$stampdir/series-hash"
	elif ! check_series; then
		# An edit of a new file broke a later patch's hunks on it: the
		# tree still gets the edit (to build and test it), but a fresh
		# clone would fail, and so does scripts/check.sh.
		log "WARNING: the series no longer builds up to the repository's new files (see above):"
		log "WARNING: commit the edit in $SRC into the right patch and run scripts/tree.sh export"
	fi
	sync_overlay
}

case "${1:-}" in
export) export_series ;;
rebuild) rm -f "$stampdir/series-hash"; main ;;
"") main ;;
*) die "usage: $0 [export|rebuild]" ;;
esac
