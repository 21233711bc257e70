# SPDX-License-Identifier: Apache-2.0
"""Post-copy recovery on the real rig (ferry issue 7, item 5).

A fast-dirtying guest is switched to post-copy by ferry's policy; the test
then breaks the QEMU-to-QEMU stream, either with libvirt's own API
(virDomainAbortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY)) or by destroying
the TCP socket (ss -K), right after the switch or seconds into a throttled
post-copy phase.  ferry resumes it (VIR_MIGRATE_POSTCOPY_RESUME): the guest
ends running on the destination with its memory intact and exactly one
post.end, never a rollback.  The same when the source worker is killed
while the stream is broken and adopts the migration from its journal.  An
unrecoverable break (the destination's QEMU killed) ends in the ERROR
notification instance.live_migration_postcopy_failed; the record stays.

Each test boots its own guest and destroys it at the end, whatever happened.
"""
import glob
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid as uuidlib

import libvirt
import pytest

import nova_peer
import rig
import schemas
from conftest import Worker

STRUGGLING = "instance.live_migration_struggling"
PROGRESS = "instance.live_migration_progress"
POST_END = "instance.live_migration_post.end"
POSTCOPY_FAILED = "instance.live_migration_postcopy_failed"

# Host B's migration_port_min/max (deploy/rig/hosts.sh host_ports): the
# source QEMU connects to one of these for the migration stream.
B_MIGRATION_PORTS = (49184, 49215)
SS_KILL_FILTER = "dst %s and dport >= :%d and dport <= :%d" % (
    rig.HOST_IP["B"], B_MIGRATION_PORTS[0], B_MIGRATION_PORTS[1])

# Post-copy permitted; completion timeout 3 s/GiB of (at least 2 GiB) RAM,
# force-completing: a guest that dirties faster than 32 MiB/s is switched to
# post-copy within ~6 s (with the default "abort" the deadline could abort
# it before the struggling ladder reached post-copy).
POLICY = ("\tlive_migration_permit_post_copy = true;\n"
          "\tlive_migration_completion_timeout = 3;\n"
          "\tlive_migration_timeout_action = \"force_complete\";\n")
RECOVERY_TIMEOUT_S = 20  # for the unrecoverable case


def data(msg):
    return msg["payload"]["nova_object.data"]


def types_of(notifications, uuid):
    return [m["event_type"] for m in notifications.events(uuid)]


def count(notifications, uuid, event_type):
    return types_of(notifications, uuid).count(event_type)


def validate_wire(wire, uuid):
    inners = wire.inners(uuid)
    assert inners
    for inner in inners:
        # an event type not (yet) in schemas/events.json has nothing to check against
        if inner.get("event_type") == POSTCOPY_FAILED and POSTCOPY_FAILED not in schemas.EVENTS:
            continue
        schemas.validate_notification(inner)


def _worker(workers, host, extra=""):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-pc-")
    return Worker(tmp, host, "A", "127.0.0.2", bandwidth=32, extra=POLICY + extra)


@pytest.fixture(scope="module")
def pc_source(workers):
    w = _worker(workers, "pcsrc1")
    w.start()
    yield w
    print("pcsrc1 exit code %s (log %s)" % (w.stop(), w.log_path))


@pytest.fixture(scope="module")
def pc_doomed(workers):
    w = _worker(workers, "pcsrc2",
                "\tlive_migration_postcopy_recovery_timeout = %d;\n" % RECOVERY_TIMEOUT_S)
    w.start()
    yield w
    print("pcsrc2 exit code %s (log %s)" % (w.stop(), w.log_path))


@pytest.fixture
def pc_crashing(workers):
    w = _worker(workers, "pcsrc3")
    w.start()
    yield w
    print("pcsrc3 exit code %s (log %s)" % (w.stop(), w.log_path))


def destroy_everywhere(uuid):
    """Destroys the guest on both hosts, whatever state it is in."""
    for host in rig.HOSTS:
        conn = rig.connect(host)
        try:
            try:
                dom = conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError:
                continue
            for op in (lambda: dom.abortJobFlags(libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY),
                       dom.abortJob, dom.destroy):
                try:
                    op()
                except libvirt.libvirtError:
                    pass
        finally:
            conn.close()


@pytest.fixture
def pc_guest(rig_up):
    """A 256 MiB guest on host A dirtying far faster than 32 MiB/s; destroyed
    on both hosts at the end so a broken migration disturbs no later test."""
    name = "p" + uuidlib.uuid4().hex[:8]
    uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=160, ws=32)
    yield uuid, name
    destroy_everywhere(uuid)


@pytest.fixture(scope="session")
def ss_kill():
    """ss -K destroys a socket only with the kernel's sock_destroy support
    (CONFIG_INET_DIAG_DESTROY) and CAP_NET_ADMIN: tried on a loopback pair."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port), timeout=5)
    acc, _ = srv.accept()
    try:
        r = subprocess.run(["ss", "-K", "-t", "dst 127.0.0.1 and dport = :%d" % port],
                           capture_output=True, text=True, timeout=10)
        try:
            cli.settimeout(2)
            cli.send(b"x")
            time.sleep(0.1)
            cli.send(b"x")
            killed = False
        except OSError:
            killed = True
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip("ss -K cannot run here: %s" % e)
    finally:
        for s in (cli, acc, srv):
            s.close()
    if not killed:
        pytest.skip("ss -K does not destroy sockets here (kernel without sock_destroy, "
                    "CONFIG_INET_DIAG_DESTROY, or no CAP_NET_ADMIN): %s" %
                    (r.stderr.strip() or r.stdout.strip()))


# ---- driving libvirt on the source host ----

def source_state(uuid):
    """(state, reason) of the guest on host A, or None when it is not there."""
    conn = rig.connect("A")
    try:
        try:
            return tuple(conn.lookupByUUIDString(uuid).state())
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
    finally:
        conn.close()


def wait_source(uuid, want, timeout, what):
    """Polls host A every 20 ms until the guest's (state, reason) is `want`;
    returns the monotonic time it was seen."""
    conn = rig.connect("A")
    deadline = time.monotonic() + timeout
    last = None
    try:
        dom = conn.lookupByUUIDString(uuid)
        while time.monotonic() < deadline:
            try:
                last = tuple(dom.state())
            except libvirt.libvirtError as e:
                raise AssertionError("guest %s left host A before %s (%s)" % (uuid, what, e))
            if last == want:
                return time.monotonic()
            time.sleep(0.02)
    finally:
        conn.close()
    raise AssertionError("guest %s on A never reached %s within %ss (last state %r)" % (
        uuid, what, timeout, last))


POSTCOPY = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY)
POSTCOPY_BROKEN = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)


def wait_dest_postcopy(uuid, timeout=10):
    """Until the guest runs on host B in post-copy.  A's post-copy state comes
    a moment before B's: a stream broken in between never reached post-copy on
    B, whose libvirt then drops the incoming domain, and nothing is left to
    resume (a true postcopy_failed, not what the recovery tests are after)."""
    want = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        conn = rig.connect("B")
        try:
            last = tuple(conn.lookupByUUIDString(uuid).state())
        except libvirt.libvirtError:
            last = None
        finally:
            conn.close()
        if last == want:
            return
        time.sleep(0.02)
    raise AssertionError("guest %s never ran on B in post-copy within %ss (last %r)" % (
        uuid, timeout, last))


def wait_job(uuid, timeout=30):
    """Until libvirt runs a migration job for the guest on A with memory measured."""
    conn = rig.connect("A")
    deadline = time.monotonic() + timeout
    try:
        dom = conn.lookupByUUIDString(uuid)
        while time.monotonic() < deadline:
            try:
                st = dom.jobStats()
            except libvirt.libvirtError:
                st = {}
            if st.get("memory_total", 0) > 0:
                return
            time.sleep(0.05)
    finally:
        conn.close()
    raise AssertionError("no migration job for %s on A within %ss" % (uuid, timeout))


def throttle_postcopy(uuid, mib_s):
    conn = rig.connect("A")
    try:
        conn.lookupByUUIDString(uuid).migrateSetMaxSpeed(
            mib_s, libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY)
    finally:
        conn.close()


def break_by_abort_api(uuid):
    conn = rig.connect("A")
    try:
        conn.lookupByUUIDString(uuid).abortJobFlags(libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
    finally:
        conn.close()


def break_by_socket_kill(uuid):
    r = subprocess.run(["ss", "-K", "-t", "-n", SS_KILL_FILTER], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    killed = [line for line in r.stdout.splitlines()[1:] if line.strip()]
    assert killed, "no migration socket matched %r: %s" % (SS_KILL_FILTER, r.stdout)


BREAKERS = {"abort_api": break_by_abort_api, "socket_kill": break_by_socket_kill}


def start_to_postcopy(uuid, source_host, postcopy_mib):
    """Casts the migration and returns when libvirt reports post-copy on A
    and B runs the guest in post-copy (the switch is done on both sides).

    The post-copy bandwidth is capped at postcopy_mib while still in
    pre-copy: on loopback an unthrottled post-copy of this guest ends within
    ~0.5 s of the switch, before a break made "right after" it could land."""
    nova_peer.cast_live_migration(uuid, source_host, "host2")
    wait_job(uuid)
    throttle_postcopy(uuid, postcopy_mib)
    seen = wait_source(uuid, POSTCOPY, timeout=60, what="post-copy")
    wait_dest_postcopy(uuid)
    return seen


def wait_broken(uuid, timeout=10):
    """The break is seen by libvirt: the source is paused (postcopy_failed),
    or ferry already resumed it (post-copy again) or it completed; returns
    True only when postcopy_failed was observed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = source_state(uuid)
        if st == POSTCOPY_BROKEN:
            return True
        time.sleep(0.02)
    return False


def assert_recovered(worker, notifications, wire, uuid, name, before_seq):
    end = notifications.wait_for(POST_END, uuid, timeout=120)
    assert end is not None, worker.log()[-4000:]
    events = notifications.events(uuid)
    types = [m["event_type"] for m in events]
    broken = [m for m in events if m["event_type"] == STRUGGLING
              and "postcopy_stream_broken" in data(m)["reasons"]]
    assert broken, ([data(m) for m in events if m["event_type"] == STRUGGLING],
                    worker.log()[-3000:])
    assert broken[0]["priority"] == "WARN"
    assert data(broken[0])["action"] == "recover_postcopy", data(broken[0])
    assert types.index(STRUGGLING) < types.index(POST_END)
    assert any(m["event_type"] == PROGRESS and data(m)["phase"] == "postcopy_recovering"
               for m in events), [data(m)["phase"] for m in events
                                  if m["event_type"] == PROGRESS]
    assert "Post-copy migration of '%s' broke" % uuid in worker.log()

    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before_seq)
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=after["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0, after

    # exactly one terminal notification, read after the guest was checked
    assert count(notifications, uuid, POST_END) == 1, types_of(notifications, uuid)
    types = types_of(notifications, uuid)
    assert not [t for t in types if t.startswith("instance.live_migration_rollback")], types
    assert POSTCOPY_FAILED not in types, types
    validate_wire(wire, uuid)


@pytest.mark.parametrize("how", sorted(BREAKERS))
def test_break_right_after_switch_is_recovered(how, pc_source, notifications, wire, pc_guest,
                                               request):
    if how == "socket_kill":
        request.getfixturevalue("ss_kill")
    uuid, name = pc_guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    start_to_postcopy(uuid, "pcsrc1", 16)
    BREAKERS[how](uuid)
    assert wait_broken(uuid), "the source never showed postcopy_failed after the break"
    assert_recovered(pc_source, notifications, wire, uuid, name, before["seq"])


@pytest.mark.parametrize("how", sorted(BREAKERS))
def test_break_late_in_throttled_postcopy_is_recovered(how, pc_source, notifications, wire,
                                                       pc_guest, request):
    if how == "socket_kill":
        request.getfixturevalue("ss_kill")
    uuid, name = pc_guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    # ~30 MiB are left at the switch: at 2 MiB/s post-copy lasts ~15 s
    start_to_postcopy(uuid, "pcsrc1", 2)
    time.sleep(2)
    assert source_state(uuid) == POSTCOPY, "post-copy ended before the break"
    # the guest runs on the destination during post-copy
    rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    BREAKERS[how](uuid)
    assert wait_broken(uuid), "the source never showed postcopy_failed after the break"
    assert_recovered(pc_source, notifications, wire, uuid, name, before["seq"])


def test_worker_killed_while_broken_adopts_and_recovers(pc_crashing, notifications, wire,
                                                         pc_guest):
    uuid, name = pc_guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    start_to_postcopy(uuid, "pcsrc3", 2)  # post-copy outlives the kill and the break
    journal = os.path.join(pc_crashing.dir, "migrations")
    pc_crashing.kill()
    assert os.path.exists(os.path.join(journal, "source-%s.json" % uuid)), \
        os.listdir(journal)
    assert source_state(uuid) == POSTCOPY, "post-copy ended before the break"
    break_by_abort_api(uuid)
    assert wait_broken(uuid), "the source never showed postcopy_failed after the break"
    time.sleep(1.5)
    assert source_state(uuid) == POSTCOPY_BROKEN  # nobody resumes it while the worker is down

    mark = len(pc_crashing.log())
    pc_crashing.start()
    pc_crashing.wait_log("Re-adopted the running migration of '%s'" % uuid, timeout=15,
                         since=mark)
    assert_recovered(pc_crashing, notifications, wire, uuid, name, before["seq"])
    assert "Resuming the broken post-copy migration of '%s'" % uuid in pc_crashing.log()[mark:]
    assert glob.glob(os.path.join(journal, "*.json")) == []


def dest_qemu_pid(name):
    """PID of the guest's QEMU on host B, from B's /run/libvirt/qemu (bind-mounted
    from $RIG_DIR/B/run by deploy/rig/hosts.sh)."""
    path = os.path.join(rig.RIG_DIR, "B", "run", "qemu", "%s.pid" % name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            assert "qemu" in cmdline and name in cmdline, cmdline
            return pid
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
    raise AssertionError("no QEMU pid file %s" % path)


def call_with_timeout(fn, timeout):
    """fn() on a thread; its result, or AssertionError when it hangs."""
    box = {}

    def run():
        try:
            box["ok"] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            box["err"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("no answer within %ss" % timeout)
    if "err" in box:
        raise box["err"]
    return box["ok"]


def test_unrecoverable_break_reports_postcopy_failed(pc_doomed, notifications, wire, pc_guest):
    uuid, name = pc_guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    start_to_postcopy(uuid, "pcsrc2", 4)
    pid = dest_qemu_pid(name)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    failed = notifications.wait_for(POSTCOPY_FAILED, uuid, timeout=RECOVERY_TIMEOUT_S + 30)
    assert failed is not None, pc_doomed.log()[-4000:]
    assert time.monotonic() - killed_at <= RECOVERY_TIMEOUT_S + 15
    assert failed["priority"] == "ERROR"
    d = data(failed)
    assert d["instance_uuid"] == uuid
    assert d["migration_uuid"]
    assert d["source_host"] == "pcsrc2" and d["dest_host"] == "host2", d
    assert d["source_state"].startswith("paused"), d
    assert d["dest_state"] == "absent" or d["dest_state"].startswith("shut off"), d
    assert isinstance(d["errors"], list) and d["errors"], d
    assert all(isinstance(e, str) and e for e in d["errors"]), d
    assert isinstance(d["tried"], list) and all(isinstance(t, str) for t in d["tried"]), d
    assert isinstance(d["recovery_attempts"], int) and d["recovery_attempts"] >= 0, d
    assert d["broke_at"], d

    time.sleep(3)  # nothing terminal may follow
    types = types_of(notifications, uuid)
    assert POST_END not in types, types
    assert "instance.live_migration_rollback.end" not in types, types
    assert not [t for t in types if t.startswith("instance.live_migration_rollback")], types
    assert types.count(POSTCOPY_FAILED) == 1, types
    assert rig.domain_state("B", uuid) is None

    # the worker still consumes, and still holds the record
    listed = call_with_timeout(lambda: nova_peer.list_migrations("pcsrc2"), 40)
    schemas.validate_reply("list_migrations", listed)
    mine = [m for m in listed if m["instance_uuid"] == uuid]
    assert len(mine) == 1 and mine[0]["phase"] == "postcopy_failed", listed
    assert mine[0]["role"] == "source" and mine[0]["dest_host"] == "host2", mine
    assert pc_doomed.alive()
    validate_wire(wire, uuid)
