#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The Debian package (debian/), end to end, as root: builds it with
# dpkg-buildpackage from a copy of this tree (uncommitted work included, the
# tree itself untouched), installs it with apt-get, checks what it installed
# (the installed worker validates the installed conffile, as the user ferry;
# the conffile's owner and mode; the user, in the group libvirt; the state
# directory; the unit, with systemd-analyze verify, offline), reinstalls it,
# runs lintian (no errors), purges it and checks that it is gone.  Whatever
# happens, it purges what it installed, removes the stand-in group libvirt
# it may have made and its temporary directory.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PKG=ferry-worker
CONF=/etc/ferry/worker.conf
STATE=/var/lib/ferry
UNIT=/lib/systemd/system/ferry-worker.service
# Present while this test may have the package installed: a run killed
# before its cleanup (a CTest timeout) is recognised by the next one.
MARK=/var/tmp/ferry-test-deb.installed
# Present while the group libvirt is this test's stand-in (below).
GROUP_MARK=/var/tmp/ferry-test-deb.libvirt-group
tmp=
made_libvirt_group=

fail() {
	echo "test_deb.sh: FAIL: $*" >&2
	exit 1
}
say() { echo "test_deb.sh: $*"; }

installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true) =~ ^(installed|half-installed|half-configured|unpacked|triggers-awaited|triggers-pending|config-files)$ ]]
}

purge() {
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=600 "$PKG" ||
		dpkg --purge --force-all "$PKG"
}

cleanup() {
	local rc=$?
	if [[ -e $MARK ]]; then
		if installed; then
			say "cleanup: purging $PKG"
			purge >/dev/null 2>&1 || echo "test_deb.sh: cleanup: cannot purge $PKG" >&2
		fi
		installed || rm -f "$MARK"
	fi
	if [[ -n $made_libvirt_group ]]; then
		groupdel libvirt || echo "test_deb.sh: cleanup: cannot remove the group libvirt" >&2
		getent group libvirt >/dev/null || rm -f "$GROUP_MARK"
	fi
	[[ -n $tmp ]] && rm -rf "$tmp"
	exit "$rc"
}

if [[ $(id -u) != 0 ]]; then
	echo "test_deb.sh: SKIP: installs a package, needs root"
	exit 77
fi
for t in dpkg-buildpackage dh lintian systemd-analyze setpriv flock; do
	command -v "$t" >/dev/null || fail "$t is missing (bash deploy/rig/install-deps.sh)"
done

# One run at a time on this machine: they would install the same package.
exec 9>/var/lock/ferry-test-deb.lock
flock 9
trap cleanup EXIT

if installed; then
	[[ -e $MARK ]] || fail "$PKG is installed, not by this test: not touching it"
	say "purging $PKG left by an earlier run of this test"
	purge >/dev/null
fi
tmp=$(mktemp -d /tmp/ferry-test-deb.XXXXXX)
start=$SECONDS

# The tree as it is, without build directories: git's view when it has one
# (tracked and untracked files, .gitignore'd ones left out), else tar's.
mkdir "$tmp/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$SRC" ls-files -z -c -o --exclude-standard |
		tar -C "$SRC" --null --ignore-failed-read -T - -cf - | tar -C "$tmp/src" -xf -
else
	tar -C "$SRC" --exclude-vcs --exclude=./build --exclude='./obj-*' \
		--exclude=./debian/.debhelper --exclude="./debian/$PKG" -cf - . |
		tar -C "$tmp/src" -xf -
fi
[[ -f $tmp/src/debian/control && -f $tmp/src/worker/main.c ]] || fail "copying the tree failed"

say "dpkg-buildpackage -us -uc -b (log: build.log)"
if ! (cd "$tmp/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b) \
	>"$tmp/build.log" 2>&1; then
	tail -n 60 "$tmp/build.log"
	fail "dpkg-buildpackage failed"
fi
debs=("$tmp/${PKG}"_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "expected one ${PKG}_*.deb, got: ${debs[*]}"
say "built $(basename "${debs[0]}") in $((SECONDS - start)) s"

# postinst adds ferry to the group libvirt (libvirt-daemon-system's) when
# it exists: without that package here, a stand-in group shows it does.
if [[ -e $GROUP_MARK ]] || ! getent group libvirt >/dev/null; then
	touch "$GROUP_MARK"
	made_libvirt_group=1
	getent group libvirt >/dev/null || groupadd --system libvirt
fi
touch "$MARK"
say "apt-get install ${debs[0]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	-o DPkg::Lock::Timeout=600 "${debs[0]}" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "apt-get install failed"; }
[[ $(dpkg-query -W -f='${db:Status-Status}' "$PKG") == installed ]] || fail "$PKG not installed"

for f in /usr/sbin/ferry-worker /usr/bin/ferryctl "$UNIT" \
	/usr/share/man/man8/ferry-worker.8.gz /usr/share/man/man8/ferryctl.8.gz \
	/usr/share/man/man5/worker.conf.5.gz /usr/share/doc/$PKG/worker.conf.example; do
	[[ -f $f ]] || fail "$f is not installed"
done
dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q "^ $CONF " || fail "$CONF is not a conffile"

# The system user, its group, the state directory, the conffile's mode.
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd ferry) || fail "no user ferry"
((uid < 1000)) || fail "user ferry is not a system user (uid $uid)"
[[ $home == "$STATE" && $shell == /usr/sbin/nologin ]] || fail "user ferry: home $home, shell $shell"
[[ $(id -gn ferry) == ferry ]] || fail "user ferry's group is $(id -gn ferry)"
id -nG ferry | tr ' ' '\n' | grep -qx libvirt || fail "ferry is not in the group libvirt"
[[ $(stat -c '%a %U %G' "$CONF") == "640 root ferry" ]] ||
	fail "$CONF is $(stat -c '%a %U %G' "$CONF"), expected 640 root ferry"
[[ -d $STATE && $(stat -c '%a %U %G' "$STATE") == "750 ferry ferry" ]] ||
	fail "$STATE is $(stat -c '%a %U %G' "$STATE" 2>&1), expected a directory 750 ferry ferry"

# The installed worker accepts the installed configuration, as root and as
# the user the unit runs it as (group ferry reads it; no world-readable
# warning); others cannot read it.
out=$(/usr/sbin/ferry-worker --check-config --config "$CONF" 2>&1) ||
	fail "ferry-worker --check-config: $out"
[[ $out == "configuration OK" ]] || fail "ferry-worker --check-config said: $out"
out=$(setpriv --reuid ferry --regid ferry --init-groups \
	/usr/sbin/ferry-worker --check-config --config "$CONF" 2>&1) ||
	fail "ferry-worker --check-config as ferry: $out"
[[ $out == "configuration OK" ]] || fail "ferry-worker --check-config as ferry said: $out"
if out=$(setpriv --reuid nobody --regid nogroup --clear-groups \
	/usr/sbin/ferry-worker --check-config --config "$CONF" 2>&1); then
	fail "user nobody can read $CONF: $out"
fi
[[ $out == *"cannot open: Permission denied"* ]] || fail "as nobody: $out"
out=$(/usr/bin/ferryctl --help 2>&1) || fail "ferryctl --help: $out"
[[ $out == usage:\ ferryctl* ]] || fail "ferryctl --help said: $out"

# The unit: valid offline (no systemd as PID 1 needed), enabled, not started.
out=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify $UNIT: $out"
[[ -z $out ]] || fail "systemd-analyze verify $UNIT complained: $out"
[[ -L /etc/systemd/system/multi-user.target.wants/ferry-worker.service ]] ||
	fail "ferry-worker.service is not enabled"

# A reinstall (an upgrade's path) keeps the conffile's owner and mode.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall --no-install-recommends \
	-o DPkg::Lock::Timeout=600 "${debs[0]}" >>"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "apt-get install --reinstall failed"; }
[[ $(stat -c '%a %U %G' "$CONF") == "640 root ferry" ]] ||
	fail "after a reinstall $CONF is $(stat -c '%a %U %G' "$CONF")"

say "lintian"
lintian --fail-on error --display-info "$tmp"/ferry_*_*.changes >"$tmp/lintian.log" 2>&1 ||
	{ cat "$tmp/lintian.log"; fail "lintian failed"; }
cat "$tmp/lintian.log"
! grep -q '^E:' "$tmp/lintian.log" || fail "lintian reports errors"

say "apt-get purge $PKG"
purge >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "apt-get purge failed"; }
! installed || fail "$PKG is still known to dpkg after the purge"
for f in /usr/sbin/ferry-worker /usr/bin/ferryctl "$UNIT" "$CONF" "$STATE" \
	/etc/systemd/system/multi-user.target.wants/ferry-worker.service; do
	[[ ! -e $f && ! -L $f ]] || fail "$f is left after the purge"
done
! dpkg-statoverride --list | grep -qE " ($CONF|$STATE)\$" || fail "a statoverride is left after the purge"
# Debian keeps system users on purge (README.Debian).
getent passwd ferry >/dev/null || fail "the purge removed the user ferry"
rm -f "$MARK"
say "OK in $((SECONDS - start)) s"
