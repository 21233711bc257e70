#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# install-deps.sh: install everything ferry needs to build and test on a
# fresh Debian 12 (root, no systemd needed).  Idempotent: when every package
# is already installed it does not touch apt at all.
set -euo pipefail

PKGS=(
	# build (clang + libclang-rt: the libFuzzer target; openssl: the TLS tests and the rig's
	# QEMU certificates make their CAs)
	gcc make binutils cmake pkg-config clang clang-format libclang-rt-14-dev openssl
	librabbitmq-dev libjansson-dev libconfig-dev libcriterion-dev libvirt-dev
	libmicrohttpd-dev
	# the Debian package (debian/, tests/package: build, lint, systemd-analyze verify)
	dpkg-dev debhelper lintian systemd
	# the rig: broker, two libvirt hosts, TCG guests (deploy/rig, deploy/guest)
	rabbitmq-server libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-x86 qemu-utils iproute2 procps util-linux passwd
	# test peers and tools (run with /usr/bin/python3)
	python3 python3-libvirt python3-nova python3-oslo.messaging python3-jsonschema
	python3-pytest amqp-tools gcc-multilib
	# the metrics test scrapes the worker with a real Prometheus (and promtool)
	prometheus
)

die() {
	echo "install-deps.sh: error: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root"

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ $st == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps.sh: all ${#PKGS[@]} packages already installed"
else
	echo "install-deps.sh: installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	# Without systemd, rabbitmq-server's postinst may fail to start the
	# service; that is harmless (deploy/rig/rabbit.sh runs its own node), so a
	# failed configure step is retried once before giving up.
	# tests/package installs and purges a package: wait for its dpkg lock.
	if ! apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"; then
		dpkg --configure -a || true
		apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" ||
			die "apt-get install failed"
	fi
fi

# libvirt's QEMU driver looks up its compiled-in default user and group
# (libvirt-qemu) even when qemu.conf says root; libvirt-daemon-system, which
# we do not install, would create them.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
	useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
		--shell /usr/sbin/nologin libvirt-qemu
echo "install-deps.sh: done"
