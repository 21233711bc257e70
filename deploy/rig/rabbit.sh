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
# ctl ARGS: rabbitmqctl with this node's environment (e.g. "ctl list_queues -p /").
# Environment: RIG_DIR (default /tmp/ferry-rig; state in $RIG_DIR/rabbit).
#
# Extra, independent nodes for tests (never touch the default node):
#   RABBIT_NODE=rabbit2 RABBIT_PORT=5673 RABBIT_DIST_PORT=25673 rabbit.sh start
# runs node rabbit2@localhost on 127.0.0.1:5673 with its own data, pid file,
# state dir ($RIG_DIR/rabbit2), config file and an empty plugin list; stop
# leaves epmd alone.  With RABBIT_KEEP_DATA=1 a restart keeps users, vhosts and
# durable entities.  TLS listener (extra nodes only):
#   RABBIT_TLS_PORT=5674 RABBIT_TLS_CA=ca.pem RABBIT_TLS_CERT=srv.pem RABBIT_TLS_KEY=srv.key
# (copied into the state dir for the rabbitmq user; peers are not verified
# unless RABBIT_TLS_VERIFY_PEER=1: then a client must present a certificate
# signed by RABBIT_TLS_CA).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_DIR=${RIG_DIR:-/tmp/ferry-rig}
STATE=$RIG_DIR/rabbit
# shellcheck source=rabbit-env.sh
. "$HERE/rabbit-env.sh"
MNESIA=/var/lib/rabbitmq/mnesia
EXTRA=0
if [[ -n ${RABBIT_NODE:-} && ${RABBIT_NODE} != rabbit ]]; then
	[[ $RABBIT_NODE =~ ^[a-z][a-z0-9_-]*$ ]] || {
		echo "rabbit.sh: error: bad RABBIT_NODE '$RABBIT_NODE'" >&2
		exit 2
	}
	[[ -n ${RABBIT_PORT:-} && -n ${RABBIT_DIST_PORT:-} ]] || {
		echo "rabbit.sh: error: RABBIT_NODE needs RABBIT_PORT and RABBIT_DIST_PORT" >&2
		exit 2
	}
	EXTRA=1
	STATE=$RIG_DIR/$RABBIT_NODE
	export RABBITMQ_NODENAME=$RABBIT_NODE@localhost
	export RABBITMQ_NODE_PORT=$RABBIT_PORT
	export RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT
	export RABBITMQ_PID_FILE=$MNESIA/$RABBITMQ_NODENAME.pid
	export RABBITMQ_CONFIG_FILE=$STATE/rabbitmq.conf
	export RABBITMQ_ENABLED_PLUGINS_FILE=$STATE/enabled_plugins
fi
NODE=${RABBITMQ_NODENAME}

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
	say "stopping node $NODE (pid $pid)"
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

# Config and plugin files of an extra node, written fresh on every start.
extra_files() {
	local f
	: >"$STATE/rabbitmq.conf"
	echo "[]." >"$STATE/enabled_plugins"
	if [[ -n ${RABBIT_TLS_PORT:-} ]]; then
		for f in RABBIT_TLS_CA RABBIT_TLS_CERT RABBIT_TLS_KEY; do
			[[ -r ${!f:-} ]] || die "RABBIT_TLS_PORT needs a readable $f"
		done
		install -m 0640 -o rabbitmq -g rabbitmq "$RABBIT_TLS_CA" "$STATE/tls-ca.pem"
		install -m 0640 -o rabbitmq -g rabbitmq "$RABBIT_TLS_CERT" "$STATE/tls-cert.pem"
		install -m 0600 -o rabbitmq -g rabbitmq "$RABBIT_TLS_KEY" "$STATE/tls-key.pem"
		cat >>"$STATE/rabbitmq.conf" <<-EOF
			listeners.ssl.default = 127.0.0.1:$RABBIT_TLS_PORT
			ssl_options.cacertfile = $STATE/tls-ca.pem
			ssl_options.certfile = $STATE/tls-cert.pem
			ssl_options.keyfile = $STATE/tls-key.pem
		EOF
		if [[ ${RABBIT_TLS_VERIFY_PEER:-0} == 1 ]]; then
			printf '%s\n' "ssl_options.verify = verify_peer" \
				"ssl_options.fail_if_no_peer_cert = true" >>"$STATE/rabbitmq.conf"
		else
			printf '%s\n' "ssl_options.verify = verify_none" \
				"ssl_options.fail_if_no_peer_cert = false" >>"$STATE/rabbitmq.conf"
		fi
	fi
	chmod 0755 "$STATE"
	chown rabbitmq:rabbitmq "$STATE/rabbitmq.conf" "$STATE/enabled_plugins" 2>/dev/null || true
}

cmd_start() {
	local t0 epmd_ours=0 pid l
	[[ $(id -u) == 0 ]] || die "must run as root"
	command -v rabbitmq-server >/dev/null || die "rabbitmq-server not installed (run deploy/rig/install-deps.sh)"
	t0=$(now_ms)
	mkdir -p "$STATE"
	if ((EXTRA)); then
		cmd_start_extra "$t0"
		return
	fi
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
	if [[ ${RABBIT_KEEP_DATA:-0} == 1 ]]; then
		rabbitmqctl -q add_user nova nova >/dev/null 2>&1 || true # kept from the last run
	else
		rabbitmqctl -q add_user nova nova >/dev/null
	fi
	rabbitmqctl -q set_user_tags nova administrator >/dev/null
	rabbitmqctl -q set_permissions -p / nova '.*' '.*' '.*' >/dev/null
	pid=$(node_pid) || die "node is not running after start"
	say "started rabbit@localhost (pid $pid) in $(($(now_ms) - t0)) ms:" \
		"amqp://nova:nova@127.0.0.1:5672/  (rabbitmqctl: . $HERE/rabbit-env.sh)"
}

# An extra node: own data and ports; epmd is shared and left as found.
cmd_start_extra() {
	local t0=$1 pid l
	if node_pid >/dev/null; then
		say "node $NODE already running: restarting it"
		stop_node
	fi
	l=$(listeners)
	[[ -z ${RABBIT_TLS_PORT:-} ]] || l+=$(ss -Htlnp "( sport = :$RABBIT_TLS_PORT )" 2>/dev/null || true)
	if [[ -n $l ]]; then
		echo "$l" >&2
		die "something already listens on port $RABBITMQ_NODE_PORT, $RABBITMQ_DIST_PORT or ${RABBIT_TLS_PORT:-}"
	fi
	if [[ ${RABBIT_KEEP_DATA:-0} != 1 ]]; then
		rm -rf "${MNESIA:?}/$NODE" "$MNESIA/$NODE-plugins-expand" "$MNESIA/$NODE-feature_flags" \
			"$RABBITMQ_PID_FILE"
	fi
	extra_files
	mkdir -p "$MNESIA"
	rabbitmq-server -detached >"$STATE/server.out" 2>&1 || {
		cat "$STATE/server.out" >&2
		die "rabbitmq-server -detached failed"
	}
	if ! timeout 150 rabbitmqctl -q wait --timeout 120 "$RABBITMQ_PID_FILE" >"$STATE/wait.out" 2>&1; then
		cat "$STATE/wait.out" >&2
		tail -n 30 "/var/log/rabbitmq/$NODE.log" >&2 2>/dev/null || true
		stop_node
		die "node $NODE did not become ready (logs: /var/log/rabbitmq/$NODE.log)"
	fi
	rabbitmqctl -q add_user nova nova >/dev/null 2>&1 || true # kept with RABBIT_KEEP_DATA=1
	rabbitmqctl -q set_user_tags nova administrator >/dev/null
	rabbitmqctl -q set_permissions -p / nova '.*' '.*' '.*' >/dev/null
	pid=$(node_pid) || die "node is not running after start"
	say "started $NODE (pid $pid) in $(($(now_ms) - t0)) ms:" \
		"amqp://nova:nova@127.0.0.1:$RABBITMQ_NODE_PORT/${RABBIT_TLS_PORT:+ amqps on 127.0.0.1:$RABBIT_TLS_PORT}"
}

cmd_stop() {
	local t0
	[[ $(id -u) == 0 ]] || die "must run as root"
	t0=$(now_ms)
	stop_node
	if ((EXTRA)); then
		[[ ${RABBIT_WIPE:-0} != 1 ]] || rm -rf "${MNESIA:?}/$NODE" "$MNESIA/$NODE-plugins-expand" \
			"$MNESIA/$NODE-feature_flags"
		say "stopped $NODE ($(($(now_ms) - t0)) ms)"
		return
	fi
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
			say "running: $NODE pid $pid, amqp 127.0.0.1:$RABBITMQ_NODE_PORT"
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
ctl)
	shift
	exec rabbitmqctl "$@"
	;;
*)
	echo "usage: $0 start|stop|status|ctl ARGS" >&2
	exit 2
	;;
esac
