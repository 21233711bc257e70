#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The test command (README): on a fresh Debian 12 machine, as root.
# Installs what is missing (apt), builds with ASan+UBSan and -Werror, starts
# the rig (RabbitMQ on 127.0.0.1, libvirt hosts on 127.0.0.2/.3), runs every
# test through CTest (unit, schema, end-to-end with nova and oslo peers) and
# stops everything it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash deploy/rig/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev
# The release build must stay warning-free too (-O2 finds other warnings).
cmake --preset release -DFERRY_WERROR=ON >/dev/null
cmake --build --preset release
# The threaded modules under ThreadSanitizer (tests/tsan).
cmake --preset tsan >/dev/null
cmake --build --preset tsan
ctest --preset tsan

cleanup() {
	bash deploy/rig/hosts.sh stop || true
	bash deploy/rig/rabbit.sh stop || true
}
trap cleanup EXIT
bash deploy/rig/rabbit.sh start
bash deploy/rig/hosts.sh start
make -s -C deploy/guest

ctest --preset dev --output-on-failure
