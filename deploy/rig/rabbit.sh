#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# rabbit.sh start|stop|status: the rig's RabbitMQ broker, without systemd
# (oslo-wire.md §1).  Node rabbit@localhost, AMQP on 127.0.0.1:5672 only,
# user nova/nova (administrator, all permissions on vhost "/").
#
# start: fresh data every time (a node this script started earlier is
#        stopped and wiped first); fails clearly if something else (e.g. a
#        node started by Debian's postinst) already holds 5672 or 25672.
# stop:  graceful `rabbitmqctl stop <pidfile>`; stops epmd only if start
#        found none running and so started it.  RABBIT_WIPE=1 also deletes the
#        node's data.
# Environment: RIG_DIR (default /tmp/ferry-rig; state in $RIG_DIR/rabbit).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_DIR=${RIG_DIR:-/tmp/ferry-rig}
STATE=$RIG_DIR/rabbit
# shellcheck source=rabbit-env.sh
. "$HERE/rabbit-env.sh"
MNESIA=/var/lib/rabbitmq/mnesia

die() {
	echo "rabbit.sh: error: $*" >&2
	exit 1
}
say() { echo "rabbit.sh: $*"; }
now_ms() { date +%s%3N; }

live_pid() {
	local pid
	[[ -r $1 ]] || return 1
	pid=$(tr -dc 0-9 <"$1")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# The node's OS pid, if our node (rabbit@localhost) is running.
node_pid() {
	local pid
	pid=$(live_pid "$RABBITMQ_PID_FILE") || return 1
	# The pid file is this node's own; the name is not on beam's command line.
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == beam.smp ]] || return 1
	echo "$pid"
}

# The epmd this script started (recorded PID, still an epmd).
our_epmd() {
	local pid
	pid=$(live_pid "$STATE/epmd.pid") || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == epmd ]] || return 1
	echo "$pid"
}

listeners() { ss -Htlnp "( sport = :$RABBITMQ_NODE_PORT or sport = :$RABBITMQ_DIST_PORT )" 2>/dev/null || true; }

stop_node() {
	local pid i
	pid=$(node_pid) || return 0
	say "stopping node rabbit@localhost (pid $pid)"
	timeout 60 rabbitmqctl -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "node did not stop gracefully; killing pid $pid"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$RABBITMQ_PID_FILE"
}

stop_epmd() {
	local pid
	if pid=$(our_epmd); then
		kill -TERM "$pid" 2>/dev/null || true
		say "stopped epmd (pid $pid, started by rabbit.sh)"
	fi
	rm -f "$STATE/epmd.pid"
}

cmd_start() {
	local t0 epmd_ours=0 pid l
	[[ $(id -u) == 0 ]] || die "must run as root"
	command -v rabbitmq-server >/dev/null || die "rabbitmq-server not installed (run deploy/rig/install-deps.sh)"
	t0=$(now_ms)
	mkdir -p "$STATE"
	# Decide about epmd before any rabbitmqctl/erl call: they all spawn it.
	if our_epmd >/dev/null; then
		epmd_ours=1
	elif [[ -n $(pgrep -x epmd || true) ]]; then
		rm -f "$STATE/epmd.pid"
	else
		rm -f "$STATE/epmd.pid"
		epmd_ours=2 # will be started by the node below
	fi
	if node_pid >/dev/null; then
		say "node rabbit@localhost already running: restarting it with fresh data"
		stop_node
	fi
	l=$(listeners)
	if [[ -n $l ]]; then
		echo "$l" >&2
		die "something this script did not start already listens on port $RABBITMQ_NODE_PORT or $RABBITMQ_DIST_PORT" \
			"(a RabbitMQ started by Debian's postinst or an init script? stop it, e.g." \
			"'/etc/init.d/rabbitmq-server stop' or 'rabbitmqctl -n rabbit@$(hostname -s) stop', then retry)"
	fi
	if [[ ${RABBIT_KEEP_DATA:-0} != 1 ]]; then
		rm -rf "$MNESIA/rabbit@localhost" "$MNESIA/rabbit@localhost-plugins-expand" \
			"$MNESIA/rabbit@localhost-feature_flags" "$RABBITMQ_PID_FILE"
	fi
	mkdir -p "$MNESIA"
	chown rabbitmq:rabbitmq "$MNESIA" 2>/dev/null || true
	rabbitmq-server -detached >"$STATE/server.out" 2>&1 || {
		cat "$STATE/server.out" >&2
		die "rabbitmq-server -detached failed"
	}
	if ! timeout 150 rabbitmqctl -q wait --timeout 120 "$RABBITMQ_PID_FILE" >"$STATE/wait.out" 2>&1; then
		cat "$STATE/wait.out" >&2
		tail -n 30 "/var/log/rabbitmq/rabbit@localhost.log" >&2 2>/dev/null || true
		stop_node
		die "node rabbit@localhost did not become ready (logs: /var/log/rabbitmq/rabbit@localhost.log)"
	fi
	if ((epmd_ours == 2)); then
		pid=$(pgrep -x epmd | head -n1 || true)
		[[ -n $pid ]] && echo "$pid" >"$STATE/epmd.pid"
	fi
	rabbitmqctl -q add_user nova nova >/dev/null
	rabbitmqctl -q set_user_tags nova administrator >/dev/null
	rabbitmqctl -q set_permissions -p / nova '.*' '.*' '.*' >/dev/null
	pid=$(node_pid) || die "node is not running after start"
	say "started rabbit@localhost (pid $pid) in $(($(now_ms) - t0)) ms:" \
		"amqp://nova:nova@127.0.0.1:5672/  (rabbitmqctl: . $HERE/rabbit-env.sh)"
}

cmd_stop() {
	local t0
	[[ $(id -u) == 0 ]] || die "must run as root"
	t0=$(now_ms)
	stop_node
	stop_epmd
	if [[ ${RABBIT_WIPE:-0} == 1 ]]; then
		rm -rf "$MNESIA/rabbit@localhost" "$MNESIA/rabbit@localhost-plugins-expand" \
			"$MNESIA/rabbit@localhost-feature_flags"
	fi
	say "stopped ($(($(now_ms) - t0)) ms)"
}

cmd_status() {
	local pid
	if pid=$(node_pid); then
		if timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
			say "running: rabbit@localhost pid $pid, amqp 127.0.0.1:$RABBITMQ_NODE_PORT"
			return 0
		fi
		say "pid $pid alive but the node does not answer"
		return 1
	fi
	if [[ -n $(listeners) ]]; then
		say "stopped (but something else listens on $RABBITMQ_NODE_PORT/$RABBITMQ_DIST_PORT)"
	else
		say "stopped"
	fi
	return 3
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
