#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The demo (README): on a fresh Debian 12 machine, as root.  Installs what is
# missing, builds ferry, brings up RabbitMQ and two libvirt hosts on
# loopback, boots a memory-dirtying guest on host1, starts one ferry-worker
# per host, and has nova's own ComputeAPI cast live_migration.  Progress is
# drawn from the notifications oslo's listener receives; at the end the guest
# is shown running on host2 and everything the demo started is stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
PY=/usr/bin/python3
DEMO_DIR=${DEMO_DIR:-/tmp/ferry-demo}
export RIG_DIR=${RIG_DIR:-/tmp/ferry-rig}

say() { printf '\n=== %s\n' "$*"; }

say "Installing dependencies (apt, only what is missing)"
bash deploy/rig/install-deps.sh
say "Building ferry"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j2 >/dev/null
make -s -C deploy/guest

pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [[ -n ${uuid:-} ]]; then
		virsh -q -c "qemu+unix:///system?socket=$RIG_DIR/A/sock/libvirt-sock" destroy "$uuid" >/dev/null 2>&1
		virsh -q -c "qemu+unix:///system?socket=$RIG_DIR/B/sock/libvirt-sock" destroy "$uuid" >/dev/null 2>&1
	fi
	if [[ -z ${FERRY_KEEP_RIG:-} ]]; then # set by developers sharing a running rig
		bash deploy/rig/hosts.sh stop >/dev/null
		bash deploy/rig/rabbit.sh stop >/dev/null
	fi
	echo "demo: everything stopped (worker logs in $DEMO_DIR)"
}
trap cleanup EXIT

say "Starting RabbitMQ on 127.0.0.1 and libvirt hosts on 127.0.0.2 (host1) / 127.0.0.3 (host2)"
bash deploy/rig/rabbit.sh status >/dev/null 2>&1 || bash deploy/rig/rabbit.sh start
bash deploy/rig/hosts.sh start

rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
for h in 1 2; do
	host=host$h
	letter=$([[ $h == 1 ]] && echo A || echo B)
	cat >"$DEMO_DIR/$host.conf" <<EOF
transport_url = "rabbit://nova:nova@127.0.0.1:5672/";
host = "$host";
state_dir = "$DEMO_DIR/$host";
notifications = { progress_interval = 0.5; };
libvirt = {
	connection_uri = "qemu+unix:///system?socket=$RIG_DIR/$letter/sock/libvirt-sock";
	live_migration_inbound_addr = "127.0.0.$((h + 1))";
	live_migration_bandwidth = 24;
};
EOF
	mkdir -p "$DEMO_DIR/$host"
	build/release/worker/ferry-worker --config "$DEMO_DIR/$host.conf" >"$DEMO_DIR/$host.log" 2>&1 &
	pids+=($!)
done
for h in host1 host2; do
	for _ in $(seq 100); do
		grep -q "Connected to the broker" "$DEMO_DIR/$h.log" && break
		sleep 0.1
	done
	grep -q "Connected to the broker" "$DEMO_DIR/$h.log" || {
		cat "$DEMO_DIR/$h.log"
		exit 1
	}
done
echo "ferry-worker running for host1 (pid ${pids[0]}) and host2 (pid ${pids[1]})"

say "Booting a 512 MiB guest on host1 that dirties 8 MiB/s over a 96 MiB working set"
uuid=$($PY tests/peers/rig.py boot --host A --name demo --mem 512 --rate 8 --ws 96)
echo "instance $uuid: $($PY tests/peers/rig.py hb A demo)"

say "nova's ComputeAPI casts live_migration(host1 -> host2); notifications as oslo's listener sees them"
$PY tests/peers/listener.py --until instance.live_migration_post.end --timeout 180 &
listener=$!
pids+=("$listener")
sleep 2
$PY tests/peers/nova_peer.py live-migration --uuid "$uuid" --source host1 --dest host2
wait "$listener"

say "Result"
echo "host1: $($PY tests/peers/rig.py state A "$uuid" || true)"
echo "host2: $($PY tests/peers/rig.py state B "$uuid")"
hb=$($PY tests/peers/rig.py wait-hb B demo --timeout 10)
echo "guest heartbeat on host2: $hb"
grep -E "Migration of|rolled back|finished" "$DEMO_DIR/host1.log" | cut -c1-200
