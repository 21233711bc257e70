# SPDX-License-Identifier: Apache-2.0
"""Restart safety on the real rig: the source worker is killed (SIGKILL, as a
crash) while one migration runs inside libvirtd and another waits in its
queue.  The restarted worker re-adopts the running migration from its
journal and libvirt, starts the queued one, and each ends with exactly one
terminal notification, the guests running on the destination."""
import glob
import os
import tempfile
import time
import uuid as uuidlib

import pytest

import nova_peer
import rig
from conftest import Worker


@pytest.fixture
def crashing(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-restart-")
    w = Worker(tmp, "host9", "A", "127.0.0.2", bandwidth=6,
               extra="\tmax_concurrent_live_migrations = 1;")
    w.start()
    yield w
    w.stop()


def count(notifications, uuid, event_type):
    return sum(1 for m in notifications.events(uuid) if m["event_type"] == event_type)


def wait_no_inbound(host, timeout):
    """An earlier test's broken migration may hold the destination's one
    inbound slot until its lease ends (2 x rpc_response_timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        held = [m for m in nova_peer.list_migrations(host) if m["role"] == "destination"]
        if not held:
            return
        assert time.monotonic() < deadline, held
        time.sleep(1)


def test_worker_killed_mid_migration_carries_on_after_restart(crashing, workers,
                                                              notifications):
    wait_no_inbound("host2", timeout=60)
    guests = []
    for _ in range(2):
        name = "r" + uuidlib.uuid4().hex[:8]
        guests.append((rig.boot_guest("A", name=name, mem_mib=256, rate=4, ws=32), name))
    (u1, n1), (u2, n2) = guests
    nova_peer.cast_live_migration(u1, "host9", "host2")
    nova_peer.cast_live_migration(u2, "host9", "host2")
    assert notifications.wait_for("instance.live_migration_progress", u1, timeout=30), \
        crashing.log()[-3000:]
    phases = {m["instance_uuid"]: m["phase"] for m in nova_peer.list_migrations("host9")}
    assert phases.get(u1) == "precopy" and phases.get(u2) == "queued", phases

    journal = os.path.join(crashing.dir, "migrations")
    crashing.kill()
    records = sorted(os.path.basename(p) for p in glob.glob(os.path.join(journal, "*.json")))
    assert records == sorted(["source-%s.json" % u1, "source-%s.json" % u2]), records
    assert rig.domain_state("A", u1) == "running"  # libvirtd still migrates it

    crashing.start()
    crashing.wait_log("Re-adopted the running migration of '%s'" % u1, timeout=10)
    for u in (u1, u2):
        assert notifications.wait_for("instance.live_migration_post.end", u, timeout=120), \
            crashing.log()[-3000:]
    for u, name in guests:
        assert count(notifications, u, "instance.live_migration_post.end") == 1
        assert count(notifications, u, "instance.live_migration_rollback.end") == 0
        assert rig.domain_state("B", u) == "running"
        assert rig.domain_state("A", u) is None
        rig.wait_heartbeat_advances("B", name, timeout=15)
    assert glob.glob(os.path.join(journal, "*.json")) == []
