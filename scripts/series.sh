#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make series: export the whole series as a numbered "git format-patch" set
# with a cover letter in $BUILD/series/, built in a throw-away worktree so the
# build tree is not touched: patches/series in order, each patch with the
# new files it introduces (build_series in lib.sh),
# then run scripts/checkpatch.pl --strict on every patch and on every new
# file as the tip has it.  Exit status 1 if checkpatch finds anything.
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
mapfile -t new < <(overlay_files)
build_series || die "the series does not build up to the repository's new files"

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
	# MAINTAINERS coverage of the new files under virt/kvm/, mm/ and
	# tools/testing/ is upstream's KVM and memory management entries.
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
