# SPDX-License-Identifier: Apache-2.0
"""Concurrency limits on the real rig: a source host with
libvirt.max_concurrent_live_migrations = 1 runs one outbound migration at a
time; the others wait in a FIFO queue (phase "queued" in list_migrations),
and a queued one can be aborted without ever touching libvirt."""
import tempfile
import time
import uuid as uuidlib

import pytest

import nova_peer
import rig
from conftest import Worker


@pytest.fixture(scope="module")
def limited(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-limits-")
    w = Worker(tmp, "host7", "A", "127.0.0.2", bandwidth=8,
               extra="\tmax_concurrent_live_migrations = 1;")
    w.start()
    yield w
    w.stop()


def boot(n):
    names = ["q" + uuidlib.uuid4().hex[:8] for _ in range(n)]
    return [(rig.boot_guest("A", name=name, mem_mib=256, rate=4, ws=32), name)
            for name in names]


def phases(host):
    return {m["instance_uuid"]: m["phase"] for m in nova_peer.list_migrations(host)}


def test_outbound_fifo_queue_and_abort_while_queued(limited, workers, notifications):
    guests = boot(3)
    (u1, n1), (u2, n2), (u3, n3) = guests
    for u, _ in guests:
        nova_peer.cast_live_migration(u, "host7", "host2")

    # one runs, the other two wait in order
    seen = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = phases("host7")
        if seen.get(u2) == "queued" and seen.get(u3) == "queued" and u1 in seen:
            break
        time.sleep(0.1)
    assert seen.get(u1) in ("preparing", "precopy"), seen
    assert seen.get(u2) == "queued" and seen.get(u3) == "queued", seen

    # abort the last one while it waits: rolled back, never migrated
    nova_peer.cast_abort(u3, "host7")
    assert notifications.wait_for("instance.live_migration_rollback.end", u3, timeout=20)
    types3 = [m["event_type"] for m in notifications.events(u3)]
    assert "instance.live_migration_abort.end" in types3, types3
    assert "instance.live_migration_progress" not in types3, types3
    assert rig.domain_state("A", u3) == "running"

    # the first two complete, strictly one after the other
    for u in (u1, u2):
        assert notifications.wait_for("instance.live_migration_post.end", u, timeout=90), \
            limited.log()[-3000:]
    ev1 = [m["timestamp"] for m in notifications.events(u1)
           if m["event_type"] == "instance.live_migration_post.end"]
    ev2 = [m["timestamp"] for m in notifications.events(u2)
           if m["event_type"] == "instance.live_migration_progress"]
    assert ev2 and min(ev2) >= ev1[0], (ev1, ev2)
    assert "Live migration of '%s' to 'host2' leaves the queue" % u2 in limited.log()
    for u, name in ((u1, n1), (u2, n2)):
        assert rig.domain_state("B", u) == "running"
        assert rig.domain_state("A", u) is None
        rig.wait_heartbeat_advances("B", name, timeout=15)
    assert phases("host7") == {}


@pytest.fixture(scope="module")
def narrow_dest(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-limits-dest-")
    w = Worker(tmp, "host8", "B", "127.0.0.3",
               extra="\tmax_concurrent_inbound_migrations = 1;")
    w.start()
    yield w
    w.stop()


def test_inbound_slot_reserved_and_waited_for(limited, narrow_dest, workers, notifications):
    """Two sources migrate to a destination that takes one at a time: the
    second source is told there is no free inbound slot, keeps its migration
    queued and retries; both guests end up running on the destination."""
    (u1, n1), (u2, n2) = boot(2)
    nova_peer.cast_live_migration(u1, "host1", "host8")
    nova_peer.cast_live_migration(u2, "host7", "host8")
    for u in (u1, u2):
        assert notifications.wait_for("instance.live_migration_post.end", u, timeout=90), \
            narrow_dest.log()[-3000:]
    refused = "no free inbound migration slot on 'host8'"
    logs = workers["host1"].log() + limited.log()
    assert refused in narrow_dest.log() or refused in logs
    assert "has no free inbound slot for '%s'" % u1 in logs or \
        "has no free inbound slot for '%s'" % u2 in logs, logs[-3000:]
    for u, name in ((u1, n1), (u2, n2)):
        assert rig.domain_state("B", u) == "running"
        rig.wait_heartbeat_advances("B", name, timeout=15)
    assert not [e for e in notifications.events(u1) + notifications.events(u2)
                if e["event_type"].startswith("instance.live_migration_rollback")]


def test_stale_inbound_reservation_is_released(workers):
    """A destination whose one inbound slot was reserved by a source that
    then vanished (no migration arrives, no rollback comes) refuses others
    only until the reservation goes stale: then it is released."""
    import ferry_proc
    from nova import exception
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-limits-stale-")
    w = ferry_proc.Worker(tmp, "host11", "B", "127.0.0.3", rpc_timeout=5,
                          libvirt="\tmax_concurrent_inbound_migrations = 1;")
    w.start()
    try:
        nova_peer.setup()
        ctx = nova_peer.context()
        api = nova_peer.compute_api()

        def pre(uuid):
            return api.pre_live_migration(ctx, nova_peer.instance(ctx, uuid, "host7"), False,
                                          None, "host11", nova_peer.migrate_data())

        ghost, other = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        assert pre(ghost).target_connect_addr == "127.0.0.3"
        assert phases("host11") == {ghost: "inbound"}
        with pytest.raises(exception.MigrationPreCheckError) as e:
            pre(other)
        assert "no free inbound migration slot" in str(e.value)
        w.wait_log("Released the inbound reservation of '%s'" % ghost, timeout=60)
        assert phases("host11") == {}
        assert pre(other).target_connect_addr == "127.0.0.3"
    finally:
        w.stop()


@pytest.fixture(scope="module")
def leased_dest(workers):
    """host12 on libvirt B with one inbound slot and a 20 s lease
    (rpc_response_timeout 5 s: 2 * 5 s is below the 20 s floor)."""
    import ferry_proc
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-limits-lease-")
    w = ferry_proc.Worker(tmp, "host12", "B", "127.0.0.3", rpc_timeout=5,
                          libvirt="\tmax_concurrent_inbound_migrations = 1;")
    w.start()
    yield w
    w.stop()


def test_pre_refuses_bogus_uuids_and_guests_running_here_and_leases_end(
        leased_dest, workers, notifications):
    """pre_live_migration for what is not a uuid, or for a guest that already
    runs on the destination, is refused with a nova exception and reserves
    nothing; a reservation no migration arrives for holds the one inbound
    slot only until its lease ends, and a real migration then gets it."""
    from nova import exception
    nova_peer.setup()
    ctx = nova_peer.context()
    api = nova_peer.compute_api()

    def pre(uuid):
        return api.pre_live_migration(ctx, nova_peer.instance(ctx, uuid, "host1"), False,
                                      None, "host12", nova_peer.migrate_data())

    with pytest.raises(exception.InvalidInput) as e:
        pre("../../etc/not-a-uuid")
    assert "is not a uuid" in str(e.value)
    here = rig.boot_guest("B", name="h" + uuidlib.uuid4().hex[:8], mem_mib=256)
    try:
        with pytest.raises(exception.InstanceExists) as e:
            pre(here)
        assert "already runs on 'host12'" in str(e.value)
    finally:
        conn = rig.connect("B")
        try:
            conn.lookupByUUIDString(here).destroy()
        finally:
            conn.close()
    assert phases("host12") == {}

    ghost = str(uuidlib.uuid4())
    t0 = time.monotonic()
    assert pre(ghost).target_connect_addr == "127.0.0.3"
    (u, name), = boot(1)
    nova_peer.cast_live_migration(u, "host1", "host12")  # waits for the slot
    leased_dest.wait_log("Released the inbound reservation of '%s': no migration arrived "
                         "within its 20 s lease" % ghost, timeout=60)
    assert time.monotonic() - t0 >= 19
    assert notifications.wait_for("instance.live_migration_post.end", u, timeout=90), \
        leased_dest.log()[-3000:]
    assert "has no free inbound slot for '%s'" % u in workers["host1"].log()
    assert rig.domain_state("B", u) == "running"
    rig.wait_heartbeat_advances("B", name, timeout=15)
    assert phases("host12") == {}


def test_spellings_of_one_uuid_are_one_migration(workers, notifications):
    """libvirt takes a uuid in any case, with or without hyphens, padded with
    spaces: ferry too, and it stays one migration of one instance."""
    (u, name), = boot(1)
    shouting = u.upper().replace("-", "")
    nova_peer.cast_live_migration(shouting, "host1", "host2")
    nova_peer.cast_live_migration("  %s " % u.upper(), "host1", "host2")
    assert notifications.wait_for("instance.live_migration_post.end", u, timeout=90), \
        workers["host1"].log()[-3000:]
    log = workers["host1"].log()
    assert "Live migration of '%s' to 'host2' accepted" % u in log
    assert "instance '%s' is already migrating" % u in log
    posts = [m for m in notifications.events(u)
             if m["event_type"] == "instance.live_migration_post.end"]
    assert len(posts) == 1, posts
    assert rig.domain_state("B", u) == "running"
    assert rig.domain_state("A", u) is None
    rig.wait_heartbeat_advances("B", name, timeout=15)
