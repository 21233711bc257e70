#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# hosts.sh start|stop|status|uris|restart-daemon: two root libvirtd "hosts" on one machine
# (libvirt-lab.md §3).  Each runs in its own mount namespace with
# /etc/libvirt, /var/lib/libvirt, /run/libvirt, /var/cache/libvirt and
# /var/log/libvirt bind-mounted from $RIG_DIR/<host>/, under reaper.py (a
# child-subreaper, gotcha 2).  No systemd, virtlogd, cgroups or LSM needed.
# /etc/pki/qemu (QEMU's native TLS for migrations, VIR_MIGRATE_TLS) is
# bind-mounted from $RIG_DIR/<host>/pki, made fresh at each start by pki.sh
# from the rig's CA in $RIG_DIR/ca (kept, like the capability cache).  The
# certificates name the compute host the e2e tests run on each libvirt host
# (A: host1, B: host2), not the IP: ferry passes that name as
# VIR_MIGRATE_PARAM_TLS_DESTINATION when it migrates to an address (by hand:
# virsh migrate --tls --tls-destination host2 ...).
#
#   A: qemu+tcp://127.0.0.2/system   qemu+unix:///system?socket=$RIG_DIR/A/sock/libvirt-sock
#   B: qemu+tcp://127.0.0.3/system   qemu+unix:///system?socket=$RIG_DIR/B/sock/libvirt-sock
#
# restart-daemon A|B [TERM|KILL]: stops only that host's libvirtd with the
# signal (default TERM; KILL after 60 s if it has not exited) and starts it
# again in the same namespace, leaving its QEMUs running (a libvirtd restart
# under a migration, as an operator or a crash does it); returns once the new
# daemon answers.
# Environment: RIG_DIR (default /tmp/ferry-rig), RIG_LOG_LEVEL (libvirtd log
# level 1..4, default 3), RIG_START_TIMEOUT (seconds, default 90), RIG_CLEAN=1
# (stop also deletes $RIG_DIR/A, $RIG_DIR/B and $RIG_DIR/ca; the QEMU capability cache in
# there makes the next start about 1 s faster).  Only one rig per machine:
# the addresses and ports are fixed.
# Everything outside $RIG_DIR is left alone, except that the five mount-point
# directories (six with /etc/pki/qemu) are created if they are missing.  Run as root.
set -euo pipefail

RIG_DIR=${RIG_DIR:-/tmp/ferry-rig}
RIG_LOG_LEVEL=${RIG_LOG_LEVEL:-3}
RIG_START_TIMEOUT=${RIG_START_TIMEOUT:-90}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOSTS="A B"
MOUNTS="etc:/etc/libvirt lib:/var/lib/libvirt run:/run/libvirt cache:/var/cache/libvirt log:/var/log/libvirt pki:/etc/pki/qemu"

die() {
	echo "hosts.sh: error: $*" >&2
	exit 1
}
say() { echo "hosts.sh: $*"; }

host_ip() { case $1 in A) echo 127.0.0.2 ;; B) echo 127.0.0.3 ;; esac; }
host_uuid() {
	case $1 in
	A) echo aaaaaaaa-aaaa-4aaa-8aaa-00000000000a ;;
	B) echo bbbbbbbb-bbbb-4bbb-8bbb-00000000000b ;;
	esac
}
# The names in host $1's QEMU TLS certificates: the compute host
# tests/e2e/conftest.py runs on it.
host_cert_names() { case $1 in A) echo host1 ;; B) echo host2 ;; esac; }
host_ports() { case $1 in A) echo "49152 49183" ;; B) echo "49184 49215" ;; esac; }
unix_uri() { echo "qemu+unix:///system?socket=$RIG_DIR/$1/sock/libvirt-sock"; }
tcp_uri() { echo "qemu+tcp://$(host_ip "$1")/system"; }

# pid from a pid file, only if that process is alive.
live_pid() {
	local f=$1 pid
	[[ -r $f ]] || return 1
	pid=$(tr -dc 0-9 <"$f")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# The wrapper of host $1, if it is alive and really is our reaper.py.
reaper_pid() {
	local h=$1 pid
	pid=$(live_pid "$RIG_DIR/$h/reaper.pid") || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "reaper.py libvirtd --listen -f $RIG_DIR/$h/" ||
		return 1
	echo "$pid"
}

answers() {
	timeout 10 virsh -q -c "$(unix_uri "$1")" version >/dev/null 2>&1 &&
		timeout 10 virsh -q -c "$(tcp_uri "$1")" version >/dev/null 2>&1
}

# PIDs of every process in host $1's mount namespace (recorded at start).
ns_pids() {
	local h=$1 ns p
	[[ -r $RIG_DIR/$h/mntns ]] || return 0
	ns=$(cat "$RIG_DIR/$h/mntns")
	[[ -n $ns ]] || return 0
	[[ $ns != "$(readlink /proc/self/ns/mnt)" ]] || return 0
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$ns" ]] && echo "${p#/proc/}"
	done
	return 0
}

domains_destroy() {
	local h=$1 uri d
	uri=$(unix_uri "$h")
	for d in $(timeout 20 virsh -q -c "$uri" list --all --name 2>/dev/null); do
		timeout 30 virsh -q -c "$uri" domjobabort "$d" >/dev/null 2>&1 || true
		timeout 30 virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1 || true
		timeout 30 virsh -q -c "$uri" undefine "$d" >/dev/null 2>&1 || true
	done
}

# Terminate everything host $1 left running: daemon, wrapper, QEMUs.
stop_host() {
	local h=$1 pid left i
	if pid=$(reaper_pid "$h"); then
		domains_destroy "$h"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	# Stragglers (a killed earlier run, a hung daemon): by namespace, by PID.
	for i in 1 2 3 4 5 6 7 8 9 10; do
		left=$(ns_pids "$h")
		[[ -n $left ]] || break
		if ((i < 5)); then
			kill -TERM $left 2>/dev/null || true
		else
			kill -KILL $left 2>/dev/null || true
		fi
		sleep 0.3
	done
	left=$(ns_pids "$h")
	[[ -z $left ]] || die "host $h: processes still running in its namespace: $left"
	rm -f "$RIG_DIR/$h/reaper.pid" "$RIG_DIR/$h/libvirtd.pid" "$RIG_DIR/$h/mntns"
}

# The QEMU driver resolves its compiled-in default user and group
# (libvirt-qemu:libvirt-qemu) before it reads qemu.conf; on a full install
# libvirt-daemon-system creates them.  QEMU itself runs as root here.
ensure_qemu_user() {
	if ! getent group libvirt-qemu >/dev/null; then
		say "creating system group libvirt-qemu (needed by libvirt's QEMU driver)"
		groupadd --system libvirt-qemu || die "cannot create group libvirt-qemu"
	fi
	if ! getent passwd libvirt-qemu >/dev/null; then
		say "creating system user libvirt-qemu (needed by libvirt's QEMU driver)"
		useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
			--shell /usr/sbin/nologin libvirt-qemu || die "cannot create user libvirt-qemu"
	fi
}

write_config() {
	local h=$1 d=$RIG_DIR/$1 ip ports
	ip=$(host_ip "$h")
	read -r -a ports <<<"$(host_ports "$h")"
	cat >"$d/etc/libvirtd.conf" <<-EOF
		# generated by deploy/rig/hosts.sh: rig host $h
		listen_tls = 0
		listen_tcp = 1
		listen_addr = "$ip"
		tcp_port = "16509"
		auth_tcp = "none"
		auth_unix_ro = "none"
		auth_unix_rw = "none"
		unix_sock_group = "root"
		unix_sock_ro_perms = "0777"
		unix_sock_rw_perms = "0770"
		unix_sock_dir = "$d/sock"
		host_uuid = "$(host_uuid "$h")"
		log_outputs = "$RIG_LOG_LEVEL:file:$d/libvirtd.log"
		max_clients = 256
		max_anonymous_clients = 256
		max_workers = 40
	EOF
	cat >"$d/etc/qemu.conf" <<-EOF
		# generated by deploy/rig/hosts.sh: rig host $h
		user = "root"
		group = "root"
		dynamic_ownership = 0
		remember_owner = 0
		security_driver = "none"
		cgroup_controllers = [ ]
		namespaces = [ ]
		stdio_handler = "file"
		migration_address = "$ip"
		migration_host = "$ip"
		migration_port_min = ${ports[0]}
		migration_port_max = ${ports[1]}
		# libvirt's default, bind-mounted from $d/pki (pki.sh)
		migrate_tls_x509_cert_dir = "/etc/pki/qemu"
	EOF
}

start_host() {
	local h=$1 d=$RIG_DIR/$1 m sub mp bind=""
	stop_host "$h" # clears what a killed run left behind
	# Fresh state, but keep the QEMU capability cache: it saves ~1 s a start.
	rm -rf "${d:?}/etc" "$d/lib" "$d/run" "$d/log" "$d/sock" "$d/pki" "$d"/*.log "$d"/*.out "$d/restart.req"
	mkdir -p "$d/sock" "$d/cache"
	# shellcheck disable=SC2046 # one name per word
	bash "$HERE/pki.sh" "$RIG_DIR/ca" "$d/pki" $(host_cert_names "$h") ||
		die "host $h: cannot make its TLS certificates"
	for m in $MOUNTS; do
		sub=${m%%:*}
		mp=${m#*:}
		mkdir -p "$d/$sub" "$mp"
		bind+="mount --bind $d/$sub $mp && "
	done
	mkdir -p "$d/log/qemu" "$d/lib/qemu" "$d/lib/images"
	write_config "$h"
	# setsid: own session, so the caller's terminal signals do not reach it.
	setsid unshare --mount --propagation private -- /bin/sh -c "
		echo \$\$ >'$d/reaper.pid' && readlink /proc/self/ns/mnt >'$d/mntns' &&
		$bind REAPER_RESTART_FILE='$d/restart.req' exec /usr/bin/python3 '$HERE/reaper.py' libvirtd --listen -f '$d/etc/libvirtd.conf' -p '$d/libvirtd.pid'
	" </dev/null >"$d/daemon.out" 2>&1 &
}

cmd_start() {
	local h t0 t0ms ok all_up=1 ip port_owner
	t0ms=$(date +%s%3N)
	[[ $(id -u) == 0 ]] || die "must run as root"
	command -v libvirtd >/dev/null || die "libvirtd not installed (run deploy/rig/install-deps.sh)"
	command -v virsh >/dev/null || die "virsh not installed (run deploy/rig/install-deps.sh)"
	for h in $HOSTS; do
		ip=$(host_ip "$h")
		ip route get "$ip" 2>/dev/null | grep -q '^local ' ||
			ip addr add "$ip/32" dev lo ||
			die "$ip is not a local address and could not be added to lo"
	done
	ensure_qemu_user
	# sun_path holds 108 bytes; the longest socket libvirtd creates:
	local longest="$RIG_DIR/A/sock/libvirt-admin-sock"
	((${#longest} < 108)) || die "RIG_DIR too long for unix sockets: $longest (${#longest} >= 108)"
	mkdir -p "$RIG_DIR"
	for h in $HOSTS; do
		if reaper_pid "$h" >/dev/null && answers "$h"; then
			continue
		fi
		all_up=0
	done
	if ((all_up)); then
		say "already running"
		print_uris
		return 0
	fi
	for h in $HOSTS; do
		if reaper_pid "$h" >/dev/null && answers "$h"; then
			continue
		fi
		port_owner=$(ss -Htlnp "sport = :16509" 2>/dev/null |
			awk -v ip="$(host_ip "$h")" '$4 == ip":16509" || $4 ~ /^(0\.0\.0\.0|\*|\[::\]):16509$/' || true)
		if [[ -n $port_owner ]] && ! reaper_pid "$h" >/dev/null; then
			die "port 16509 on $(host_ip "$h") is taken by something this rig did not start: $port_owner"
		fi
		start_host "$h"
	done
	t0=$SECONDS
	for h in $HOSTS; do
		ok=0
		while ((SECONDS - t0 < RIG_START_TIMEOUT)); do
			if ! [[ -e $RIG_DIR/$h/reaper.pid ]] || live_pid "$RIG_DIR/$h/reaper.pid" >/dev/null; then
				if answers "$h"; then
					ok=1
					break
				fi
			else
				break # the wrapper died
			fi
			sleep 0.2
		done
		if ((!ok)); then
			say "host $h failed to start; stopping both hosts" >&2
			echo "--- $RIG_DIR/$h/daemon.out" >&2
			tail -n 20 "$RIG_DIR/$h/daemon.out" >&2 || true
			echo "--- $RIG_DIR/$h/libvirtd.log" >&2
			tail -n 20 "$RIG_DIR/$h/libvirtd.log" >&2 || true
			for x in $HOSTS; do stop_host "$x" || true; done
			die "host $h did not come up (wrapper exited, or no answer within ${RIG_START_TIMEOUT}s)"
		fi
	done
	say "started ($(($(date +%s%3N) - t0ms)) ms)"
	print_uris
}

cmd_stop() {
	local h
	[[ $(id -u) == 0 ]] || die "must run as root"
	for h in $HOSTS; do
		[[ -d $RIG_DIR/$h ]] || continue
		stop_host "$h" &
	done
	wait
	for h in $HOSTS; do
		if [[ -d $RIG_DIR/$h ]] && [[ -n $(ns_pids "$h") || -e $RIG_DIR/$h/reaper.pid ]]; then
			die "host $h did not stop"
		fi
	done
	if [[ ${RIG_CLEAN:-0} == 1 ]]; then
		rm -rf "${RIG_DIR:?}/A" "$RIG_DIR/B" "$RIG_DIR/ca"
		say "removed $RIG_DIR/A, $RIG_DIR/B and $RIG_DIR/ca"
	fi
	say "stopped"
}

cmd_restart_daemon() {
	local h=${1:-} sig=${2:-TERM} d pid old t0 i
	[[ $(id -u) == 0 ]] || die "must run as root"
	[[ $h == A || $h == B ]] || die "restart-daemon: want host A or B, got '$h'"
	[[ $sig == TERM || $sig == KILL ]] || die "restart-daemon: want TERM or KILL, got '$sig'"
	d=$RIG_DIR/$h
	reaper_pid "$h" >/dev/null || die "host $h is not running"
	old=$(live_pid "$d/libvirtd.pid") || die "host $h: no live libvirtd pid in $d/libvirtd.pid"
	ns_pids "$h" | grep -x "$old" >/dev/null || die "host $h: pid $old is not in the host's namespace"
	: >"$d/restart.req"
	kill -"$sig" "$old"
	for ((i = 0; i < 600; i++)); do
		kill -0 "$old" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$old" 2>/dev/null; then
		say "host $h: libvirtd $old still running 60 s after SIG$sig; killing it"
		kill -KILL "$old" 2>/dev/null || true
	fi
	t0=$SECONDS
	while ((SECONDS - t0 < RIG_START_TIMEOUT)); do
		pid=$(live_pid "$d/libvirtd.pid" 2>/dev/null) || pid=""
		if [[ -n $pid && $pid != "$old" ]] && answers "$h"; then
			say "host $h: libvirtd restarted after SIG$sig (pid $old -> $pid)"
			return 0
		fi
		reaper_pid "$h" >/dev/null || die "host $h: the wrapper exited instead of restarting libvirtd"
		sleep 0.2
	done
	die "host $h: libvirtd did not answer within ${RIG_START_TIMEOUT}s of its restart"
}

cmd_status() {
	local h pid rc=0
	for h in $HOSTS; do
		if pid=$(reaper_pid "$h"); then
			if answers "$h"; then
				say "host $h: running (wrapper pid $pid, libvirtd pid $(cat "$RIG_DIR/$h/libvirtd.pid" 2>/dev/null || echo ?)) $(tcp_uri "$h")"
			else
				say "host $h: wrapper pid $pid alive but libvirtd does not answer"
				rc=1
			fi
		else
			say "host $h: stopped"
			rc=3
		fi
	done
	return $rc
}

print_uris() {
	local h
	for h in $HOSTS; do
		echo "$h = $(tcp_uri "$h")  (local: $(unix_uri "$h"))"
		echo "$h serial logs: $RIG_DIR/$h/log/qemu/<name>-serial.log"
	done
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
uris) print_uris ;;
restart-daemon)
	shift
	cmd_restart_daemon "$@"
	;;
*)
	echo "usage: $0 start|stop|status|uris|restart-daemon A|B [TERM|KILL]   (RIG_DIR=$RIG_DIR)" >&2
	exit 2
	;;
esac
