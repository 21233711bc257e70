# SPDX-License-Identifier: Apache-2.0
"""The source worker reads the destination's libvirt at the end of every
migration (what both hosts really run decides the outcome), on a connection
it keeps open from one migration to the next.  When the destination's
libvirtd restarts (SIGTERM) or is killed (SIGKILL) in between, the kept
connection is dead; the next migration's end must still be read from what
the destination runs, on a fresh connection, never decided from the dead
connection's error ("read from this host only")."""
import subprocess
import uuid as uuidlib

import pytest

import nova_peer
import rig

from conftest import REPO

POST_END = "instance.live_migration_post.end"
FRESH = "read '%s' there again on a fresh connection"


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
    assert FRESH % second in log, log[-3000:]
    assert "Cannot read '%s' on the destination" % second not in log, log[-3000:]
    assert "read from this host only" not in log, log[-3000:]
    assert rig.domain_state("B", second) == "running"
    assert rig.domain_state("A", second) is None
    assert [m["event_type"] for m in notifications.events(second)].count(POST_END) == 1

    # And the fresh connection is the one kept: the third end reuses it.
    third = boot("t")
    log = migrate_to_b(workers, notifications, third)
    assert "source absent, destination running" in ended_line(log, third)
    assert FRESH % third not in log
