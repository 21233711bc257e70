# SPDX-License-Identifier: Apache-2.0
"""A nova cast really migrates a VM between two libvirt hosts through ferry.

Peers: nova's own ComputeAPI sends the casts, oslo's notification listener
receives ferry's notifications, oslo's RPCClient makes the admin call; the
guest is a real QEMU (TCG) domain that dirties memory and counts heartbeats.
"""
import time
import uuid as uuidlib

import oslo_messaging
import pytest

import nova_peer
import rig
import schemas

PROGRESS = "instance.live_migration_progress"


def validate_wire(wire, uuid, expected_min=1):
    """Every notification about uuid, as published, matches its schema.  The
    tap consumes its own queue: give it a moment to catch up with the
    listener that saw the notifications first."""
    deadline = time.time() + 10
    inners = wire.inners(uuid)
    while len(inners) < expected_min and time.time() < deadline:
        time.sleep(0.2)
        inners = wire.inners(uuid)
    assert len(inners) >= expected_min, "tap saw %d notifications" % len(inners)
    for inner in inners:
        schemas.validate_notification(inner)


def event_types(collector, uuid):
    return [m["event_type"] for m in collector.events(uuid)]


def test_nova_cast_migrates_running_guest(workers, notifications, wire, guest):
    uuid, name = guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)

    rid = nova_peer.cast_live_migration(uuid, "host1", "host2")

    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert end is not None, "no post.end; events: %s\nlog:\n%s" % (
        event_types(notifications, uuid), workers["host1"].log()[-3000:])
    assert end["publisher_id"] == "nova-compute:host1"
    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0

    assert notifications.wait_for("instance.live_migration_post_dest.end", uuid, 30)
    types = event_types(notifications, uuid)
    for ev in ("instance.live_migration_pre.start", "instance.live_migration_pre.end",
               "instance.live_migration_post.start", "instance.live_migration_post.end",
               "instance.live_migration_post_dest.start"):
        assert ev in types, "%s missing from %s" % (ev, types)
    assert not any("rollback" in t for t in types)
    assert types.index("instance.live_migration_pre.end") < types.index(
        "instance.live_migration_post.start")

    progress = [m for m in notifications.events(uuid) if m["event_type"] == PROGRESS]
    assert len(progress) >= 2, "expected progress notifications, got %s" % types
    percents = [m["payload"]["nova_object.data"]["percent"] for m in progress]
    assert percents == sorted(percents), "percentage ran backwards: %s" % percents
    assert percents[-1] == 100
    first = progress[0]["payload"]["nova_object.data"]
    assert first["memory_total_bytes"] > 0
    assert first["dest_host"] == "host2"
    assert all(m["priority"] == "INFO" for m in progress)

    validate_wire(wire, uuid, expected_min=len(types))
    assert rid in workers["host1"].log()
    assert "Migration of '%s' to 'host2' finished" % uuid in workers["host1"].log()


def test_unknown_instance_rolls_back_and_worker_keeps_consuming(workers, notifications, wire):
    uuid = str(uuidlib.uuid4())
    rid = nova_peer.cast_live_migration(uuid, "host1", "host2")

    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, 30)
    exc = notifications.wait_for("compute.exception", timeout=10)
    assert exc is not None and exc["priority"] == "ERROR"
    log = workers["host1"].log()
    line = [ln for ln in log.splitlines() if rid in ln and "ERROR" in ln]
    assert line, "no ERROR line with request id %s" % rid
    assert "find domain" in line[0] or "Domain not found" in line[0]
    validate_wire(wire, uuid, expected_min=2)

    # still consuming: oslo's RPCClient gets an answer from the admin query
    assert isinstance(nova_peer.list_migrations("host1"), list)
    assert workers["host1"].alive()


def test_absent_destination_rolls_back_guest_keeps_running(workers, notifications, guest):
    uuid, name = guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    rid = nova_peer.cast_live_migration(uuid, "host1", "host-nowhere")

    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, 30)
    assert "instance.live_migration_post.start" not in event_types(notifications, uuid)
    assert rig.domain_state("A", uuid) == "running"
    rig.wait_heartbeat_advances("A", name, timeout=10)
    assert any(rid in ln and "host-nowhere" in ln for ln in workers["host1"].log().splitlines())


def test_unreachable_destination_libvirt_rolls_back(workers, notifications, wire, guest):
    uuid, name = guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    rid = nova_peer.cast_live_migration(uuid, "host1", "host3")

    end = notifications.wait_for("instance.live_migration_rollback.end", uuid, 60)
    assert end is not None, workers["host1"].log()[-3000:]
    assert notifications.wait_for("instance.live_migration_rollback_dest.end", uuid, 30)
    assert rig.domain_state("A", uuid) == "running"
    rig.wait_heartbeat_advances("A", name, timeout=10)
    failed = [ln for ln in workers["host1"].log().splitlines()
              if rid in ln and "Migration of '%s' failed" % uuid in ln]
    assert failed, "no failure line with the request id"
    validate_wire(wire, uuid, expected_min=4)


def test_unknown_method_and_version_get_oslo_failures(workers):
    client = nova_peer.rpc_client("host1")
    with pytest.raises(oslo_messaging.RemoteError) as e:
        client.call(nova_peer.context(), "no_such_method")
    assert e.value.exc_type == "NoSuchMethod"
    with pytest.raises(oslo_messaging.RemoteError) as e:
        nova_peer.rpc_client("host1", version="7.0").call(nova_peer.context(), "live_migration")
    assert e.value.exc_type == "UnsupportedVersion"
    assert workers["host1"].alive()
