# SPDX-License-Identifier: Apache-2.0
"""Graceful stop on the real rig: SIGTERM reaches a worker while one of its
migrations runs inside libvirtd and live_migration casts keep arriving.  The
worker stops consuming at once (basic.cancel), so no cast is refused with a
rollback while it waits for the migration; the casts sent after the signal
stay queued in the broker and the next worker started on the same host
takes each of them, exactly once.  The running migration ends once, too."""
import tempfile
import time
import uuid as uuidlib

import pytest

import nova_peer
import rig
from conftest import Worker

STOPPING = "the worker is stopping"


@pytest.fixture
def stopping_host(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-stop-")
    w = Worker(tmp, "host7", "A", "127.0.0.2", bandwidth=1)
    w.start()
    yield w
    w.stop()


def count(notifications, uuid, event_type):
    return sum(1 for m in notifications.events(uuid) if m["event_type"] == event_type)


def cast_unknown(host):
    """A cheap cast: an instance libvirt does not have, rolled back by whoever takes it."""
    u = str(uuidlib.uuid4())
    nova_peer.cast_live_migration(u, host, "host2")
    return u


def test_sigterm_leaves_new_casts_queued_for_the_next_start(stopping_host, workers,
                                                           notifications):
    w = stopping_host
    name = "s" + uuidlib.uuid4().hex[:8]
    # 32 MiB of data at 1 MiB/s, dirtied at 64 KiB/s: it keeps the stopping worker a while, then converges
    u0 = rig.boot_guest("A", name=name, mem_mib=256, ratek=64, ws=32)
    nova_peer.cast_live_migration(u0, "host7", "host2")
    assert notifications.wait_for("instance.live_migration_progress", u0, timeout=30), \
        w.log()[-3000:]

    before = [cast_unknown("host7") for _ in range(3)]
    mark = len(w.log())
    w.proc.send_signal(15)
    w.wait_log("Signal 15 received", timeout=10, since=mark)
    # Casts keep coming for as long as the old worker runs (its migration
    # keeps it, at most 30 s), and one more once it is gone.
    after, while_alive = [], 0
    deadline = time.monotonic() + 45
    while w.alive() and time.monotonic() < deadline:
        after.append(cast_unknown("host7"))
        while_alive += w.alive()  # sent, and routed, while it still ran
        time.sleep(0.05)
    after.append(cast_unknown("host7"))
    assert while_alive >= 3, "the worker stopped too soon to test anything"
    assert w.proc.wait(timeout=45) == 0, w.log()[-3000:]
    stop_log = w.log()[mark:]
    assert STOPPING not in stop_log, stop_log[-3000:]
    for u in after:
        assert notifications.events(u) == [], "cast for %s handled while stopping" % u
        assert u not in stop_log
    w._log.close()

    mark = len(w.log())
    w.start()
    assert notifications.wait_for("instance.live_migration_post.end", u0, timeout=120), \
        w.log()[mark:][-3000:]
    for u in before + after:
        assert notifications.wait_for("instance.live_migration_rollback.end", u, timeout=30), \
            "cast for %s was lost:\n%s" % (u, w.log()[mark:][-3000:])
    time.sleep(2)  # a duplicate would come right behind the first outcome
    for u in before + after:
        assert count(notifications, u, "instance.live_migration_rollback.end") == 1, u
    for u in after:
        assert u in w.log()[mark:]
    assert STOPPING not in w.log()
    assert count(notifications, u0, "instance.live_migration_post.end") == 1
    assert count(notifications, u0, "instance.live_migration_rollback.end") == 0
    assert rig.domain_state("B", u0) == "running"
    rig.wait_heartbeat_advances("B", name, timeout=15)
