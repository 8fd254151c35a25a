#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install everything the pipeline needs from Debian's archive, when missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKGS="build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils
      ccache dwarves rsync kmod python3 git busybox-static
      qemu-system-x86 liburcu-dev valgrind shellcheck
      python3-ply python3-git"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done

have_src=$(dpkg-query -W -f='${Status} ${Version}' "$BASE_PACKAGE" 2>/dev/null || true)
case "$have_src" in
"install ok installed $BASE_DEB_VERSION") want_src="" ;;
*) want_src="$BASE_PACKAGE" ;;
esac

[ -z "$missing$want_src" ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
$SUDO apt-get update -q >/dev/null
if [ -n "$missing" ]; then
	log "installing:$missing"
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
if [ -n "$want_src" ]; then
	if apt-cache madison "$BASE_PACKAGE" | grep -q " $BASE_DEB_VERSION "; then
		log "installing $BASE_PACKAGE=$BASE_DEB_VERSION"
		$SUDO apt-get install -y -q --allow-downgrades \
			"$BASE_PACKAGE=$BASE_DEB_VERSION" >/dev/null
	else
		cat >&2 <<WARN
************************************************************************
*** WARNING: $BASE_PACKAGE $BASE_DEB_VERSION (see BASE) is no longer
*** offered by the archive.  Installing the newest 6.12 instead.  The
*** series was made against $BASE_KERNEL_VERSION; a patch that no longer
*** applies fails the build.  Update BASE once the series is rebased.
************************************************************************
WARN
		$SUDO apt-get install -y -q "$BASE_PACKAGE" >/dev/null
	fi
fi
