# SPDX-License-Identifier: Apache-2.0
"""The source worker reads the destination's libvirt at the end of every
migration (what both hosts really run decides the outcome), on a connection
it keeps open from one migration to the next.  When the destination's
libvirtd restarts (SIGTERM) or is killed (SIGKILL) in between, the kept
connection is dead; the next migration's end must still be read from what
the destination runs, on a fresh connection, never decided from the dead
connection's error ("read from this host only").  When the destination's
libvirtd restarts while the migration runs, the migrate call fails and its
end is read on a fresh connection, not the kept one."""
import subprocess
import uuid as uuidlib

import pytest

import nova_peer
import rig

from conftest import REPO

POST_END = "instance.live_migration_post.end"
ROLLBACK_END = "instance.live_migration_rollback.end"
PROGRESS = "instance.live_migration_progress"
DEAD = "The connection kept to the destination's libvirt was dead"
# the end's read made once more (read_both_hosts)
FRESH = "read '%s' there again on a fresh connection"
# a failed migrate call's end is read on a fresh connection from the start
FAILED_FRESH = "The migrate call of '%s' failed: reading the destination on a fresh connection"


def replaced(log, uuid):
    return [ln for ln in log.splitlines() if DEAD in ln and FRESH % uuid in ln]


def migrate_to_b(workers, notifications, uuid):
    """Migrates uuid host1 (A) -> host2 (B); returns host1's log from the cast on."""
    mark = len(workers["host1"].log())
    nova_peer.cast_live_migration(uuid, "host1", "host2")
    end = notifications.wait_for(POST_END, uuid, timeout=120)
    log = workers["host1"].log()[mark:]
    assert end is not None, "no post.end for %s; log:\n%s" % (uuid, log[-3000:])
    workers["host1"].wait_log("Migration of '%s' to 'host2' finished" % uuid, timeout=30,
                              since=mark)
    return workers["host1"].log()[mark:]


def ended_line(log, uuid):
    lines = [ln for ln in log.splitlines() if "Migration of '%s' ended:" % uuid in ln]
    assert len(lines) == 1, log[-3000:]
    return lines[0]


def boot(name_prefix):
    name = name_prefix + uuidlib.uuid4().hex[:8]
    uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=4, ws=32)
    rig.wait_heartbeat_advances("A", name, timeout=15)
    return uuid


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_destination_read_after_its_libvirtd_restarted(workers, notifications, sig):
    # The first migration leaves host1 a connection to B's libvirtd.
    first = boot("k")
    log = migrate_to_b(workers, notifications, first)
    assert "destination running" in ended_line(log, first)

    subprocess.run(["bash", "deploy/rig/hosts.sh", "restart-daemon", "B", sig],
                   check=True, cwd=REPO)

    # The next migration's end finds the kept connection dead: read again
    # on a fresh one, so the outcome comes from what B really runs.
    second = boot("r")
    log = migrate_to_b(workers, notifications, second)
    line = ended_line(log, second)
    assert "the guest runs on the destination" in line, line
    assert "source absent, destination running" in line, line
    assert len(replaced(log, second)) == 1, log[-3000:]
    assert "Cannot read '%s' on the destination" % second not in log, log[-3000:]
    assert "read from this host only" not in log, log[-3000:]
    assert rig.domain_state("B", second) == "running"
    assert rig.domain_state("A", second) is None
    assert [m["event_type"] for m in notifications.events(second)].count(POST_END) == 1

    # And the fresh connection is the one kept: the third end reuses it.
    third = boot("t")
    log = migrate_to_b(workers, notifications, third)
    assert "source absent, destination running" in ended_line(log, third)
    assert DEAD not in log, log[-3000:]


def test_destination_read_after_its_libvirtd_restarted_mid_migration(workers, notifications,
                                                                     busy_guest):
    """B's libvirtd restarts while a migration to it runs (a guest that
    never converges at host1's 32 MiB/s, so the restart lands mid-way):
    the migration fails, and its end is read on a fresh connection, not
    the one kept from the first migration: the guest is on A, and B is read
    as not having it, or as unreachable when its libvirtd is not back yet
    (seen: the migrate call fails the moment B's libvirtd goes, before the
    new one listens)."""
    uuid, name = busy_guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    w = workers["host1"]
    mark = len(w.log())
    nova_peer.cast_live_migration(uuid, "host1", "host2")
    assert notifications.wait_for(PROGRESS, uuid, timeout=60), w.log()[mark:][-3000:]
    subprocess.run(["bash", "deploy/rig/hosts.sh", "restart-daemon", "B", "TERM"],
                   check=True, cwd=REPO)

    end = notifications.wait_for(ROLLBACK_END, uuid, timeout=120)
    log = w.log()[mark:]
    assert end is not None, [m["event_type"] for m in notifications.events(uuid)]
    line = ended_line(log, uuid)
    assert "the guest is on the source" in line, line
    assert "source running" in line, line
    # The end was read on a fresh connection, the kept one dropped first:
    # B answered (absent), or its libvirtd was not back yet (refused), never
    # a dead connection's own error.
    assert FAILED_FRESH % uuid in log, log[-3000:]
    assert "the kept one was dead" not in log, log[-3000:]
    assert "destination absent" in line or "destination unknown" in line, line
    assert rig.domain_state("A", uuid) == "running"
    assert rig.domain_state("B", uuid) is None
    assert [m["event_type"] for m in notifications.events(uuid)].count(POST_END) == 0
