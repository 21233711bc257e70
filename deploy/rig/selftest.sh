#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# selftest.sh: proves the rig end to end with plain virsh (no ferry):
# start RabbitMQ and hosts A/B, build the guest, boot it on A, wait for its
# heartbeat, live-migrate it A -> B (p2p over qemu+tcp), check it runs on B
# and its heartbeat keeps counting with errors=0, migrate it back B -> A,
# check again, then stop everything.  Prints the time of each step.
# SELFTEST_STRESS=1 adds a flat-out guest (rate=0 ws=128) migrated A -> B,
# the TCG hot-page case of libvirt-lab.md gotcha 1.
# Environment: RIG_DIR (default /tmp/ferry-rig).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export RIG_DIR=${RIG_DIR:-/tmp/ferry-rig}
RIG="/usr/bin/python3 $REPO/tests/peers/rig.py"
URI_A="qemu+unix:///system?socket=$RIG_DIR/A/sock/libvirt-sock"
URI_B="qemu+unix:///system?socket=$RIG_DIR/B/sock/libvirt-sock"
NAME=selftest

now_ms() { date +%s%3N; }
T=$(now_ms)
step() {
	local t
	t=$(now_ms)
	printf 'selftest: %-34s %6d ms\n' "$1" $((t - T))
	T=$t
}
fail() {
	echo "selftest: FAIL: $*" >&2
	exit 1
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

cleanup() {
	local rc=$?
	set +e
	T=$(now_ms)
	$RIG destroy-all >/dev/null 2>&1
	"$HERE/hosts.sh" stop >/dev/null
	"$HERE/rabbit.sh" stop >/dev/null
	step "stop (hosts + rabbit)"
	if ((rc == 0)); then
		echo "selftest: PASS"
	else
		echo "selftest: FAILED (rc=$rc); logs in $RIG_DIR/{A,B}/" >&2
	fi
	exit $rc
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || fail "must run as root"

"$HERE/rabbit.sh" start >/dev/null
step "rabbit start"
"$HERE/hosts.sh" start >/dev/null
step "hosts start"
make -s -C "$REPO/deploy/guest"
step "guest build"

# Integrity checking is active from the second pass on: ws=4 MiB at
# 8 MiB/s makes two passes a second.
UUID=$($RIG boot --host A --name $NAME --rate 8 --ws 4 --hb 500)
step "boot on A + first heartbeat"
[[ $($RIG state A "$UUID") == running ]] || fail "guest not running on A"
HB=$($RIG wait-hb A $NAME --after 1 --timeout 10)
(($(field "$HB" pass) >= 1)) || fail "guest has not started verifying: $HB"
step "guest verifying on A"

migrate() { # $1 from-uri, $2 to-host tcp uri, $3 from, $4 to
	local seq hb
	seq=$(field "$($RIG hb "$3" $NAME)" seq)
	T=$(now_ms)
	virsh -q -c "$1" migrate --live --p2p $NAME "$2" || fail "virsh migrate $3 -> $4 failed"
	step "migrate $3 -> $4 (virsh)"
	[[ $($RIG state "$4" "$UUID") == running ]] || fail "guest not running on $4 after migration"
	if $RIG state "$3" "$UUID" >/dev/null; then
		fail "guest still present on $3 after migration"
	fi
	hb=$($RIG wait-hb "$4" $NAME --after $((seq + 2)) --timeout 10) ||
		fail "heartbeat does not continue on $4"
	[[ $(field "$hb" errors) == 0 && $(field "$hb" corrupt) == 0 ]] ||
		fail "guest memory corrupted after migration to $4: $hb"
	step "heartbeat continues on $4"
	echo "selftest:   $4 $hb"
}

migrate "$URI_A" qemu+tcp://127.0.0.3/system A B
migrate "$URI_B" qemu+tcp://127.0.0.2/system B A

if [[ ${SELFTEST_STRESS:-0} == 1 ]]; then
	$RIG destroy-all >/dev/null
	UUID=$($RIG boot --host A --name $NAME --rate 0 --ws 128 --hb 500)
	$RIG wait-hb A $NAME --after 2 --timeout 10 >/dev/null
	step "stress guest (rate=0 ws=128) on A"
	migrate "$URI_A" qemu+tcp://127.0.0.3/system A B
fi
