#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make series: export the whole series as a numbered "git format-patch" set
# with a cover letter in $BUILD/series/, built in a throw-away worktree so the
# build tree is not touched:
#
#   0001       the project's new in-tree files (nothing builds them yet,
#              so the series stays bisectable)
#   0002...    patches/series, in order
#
# then run scripts/checkpatch.pl --strict on every patch and on every new
# file.  Exit status 1 if checkpatch finds anything.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

wt=$BUILD/series-worktree
out=$BUILD/series
git -C "$SRC" worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
git -C "$SRC" worktree prune
git -C "$SRC" worktree add -q --detach "$wt" base
rm -rf "$out"
mkdir -p "$out"

cd "$wt"
mapfile -t new < <(cd "$TOP" && git ls-files --cached --others --exclude-standard \
	-- $OVERLAY_DIRS)
if [ "${#new[@]}" -gt 0 ]; then
	(cd "$TOP" && tar -cf - "${new[@]}") | tar -xf -
	git add -f -- "${new[@]}"
	git commit -q -s -F "$TOP/patches/new-files.msg"
fi
while read -r p; do
	case "$p" in ''|\#*) continue ;; esac
	am_patch "$TOP/patches/$p" || { git am --abort; die "$p does not apply"; }
done < "$TOP/patches/series"

n=$(git rev-list --count base..HEAD)
[ "$n" -gt 0 ] || die "the series is empty: no new files and no patches"
git format-patch -q -D --no-signature --zero-commit --cover-letter -o "$out" base..HEAD
# Fill the cover letter's subject and blurb from patches/cover-letter.
cover=$(ls "$out"/0000-cover-letter.patch)
python3 - "$cover" "$TOP/patches/cover-letter" <<'PY'
import sys
cover, src = sys.argv[1], sys.argv[2]
text = open(src).read().split('\n', 2)
subject, blurb = text[0], text[2] if len(text) > 2 else ''
c = open(cover).read()
c = c.replace('*** SUBJECT HERE ***', subject)
c = c.replace('*** BLURB HERE ***', blurb.rstrip())
open(cover, 'w').write(c)
PY

# checkpatch's SPDX check runs "python3" from PATH and needs Debian's
# python3-ply and python3-git: prefer the system interpreter.
export PATH=/usr/bin:$PATH
bad=0
for p in "$out"/0*.patch; do
	[ "$p" = "$cover" ] && continue
	# The new-files patch adds files by design; MAINTAINERS coverage of
	# virt/kvm/ and tools/testing/ is upstream's KVM entry.
	if ! ./scripts/checkpatch.pl --strict --no-summary -q \
		--ignore FILE_PATH_CHANGES "$p" >"$p.checkpatch" 2>&1; then
		bad=1
	fi
	[ -s "$p.checkpatch" ] && { echo "checkpatch: $(basename "$p")"; cat "$p.checkpatch"; }
	rm -f "$p.checkpatch"
done
for f in "${new[@]}"; do
	case "$f" in *.c|*.h) ;; *) continue ;; esac
	if ! ./scripts/checkpatch.pl --strict --no-summary -q -f "$f" >/tmp/cp.$$ 2>&1 ||
	   [ -s /tmp/cp.$$ ]; then
		echo "checkpatch -f: $f"; cat /tmp/cp.$$; bad=1
	fi
	rm -f /tmp/cp.$$
done
log "series: $n patch(es) + cover letter in $out"
[ "$bad" = 0 ] || die "checkpatch --strict is not clean (see above)"
log "checkpatch --strict: clean"
