# SPDX-License-Identifier: Apache-2.0
"""Migrations that always end: a guest that dirties memory faster than the
migration bandwidth, on the real two-host rig.  Struggling is detected and
reported before anything drastic happens; then post-copy (where permitted),
the timeout action, force-complete or abort ends the migration."""
import nova_peer
import rig
import schemas

STRUGGLING = "instance.live_migration_struggling"


def data(msg):
    return msg["payload"]["nova_object.data"]


def validate_wire(wire, uuid):
    inners = wire.inners(uuid)
    assert inners
    for inner in inners:
        schemas.validate_notification(inner)


def first_index(messages, pred):
    for i, m in enumerate(messages):
        if pred(m):
            return i
    return None


def test_struggling_migration_completes_through_post_copy(policy_workers, notifications,
                                                         wire, busy_guest):
    uuid, name = busy_guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    nova_peer.cast_live_migration(uuid, "host4", "host2")

    warn = notifications.wait_for(STRUGGLING, uuid, timeout=60)
    assert warn is not None, policy_workers["host4"].log()[-3000:]
    assert warn["priority"] == "WARN"
    assert data(warn)["reasons"], warn
    # detected within 2 iterations of the first measurable one (iteration 2)
    assert data(warn)["memory_iteration"] <= 4, data(warn)

    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert end is not None, policy_workers["host4"].log()[-3000:]
    events = notifications.events(uuid)
    warned = first_index(events, lambda m: m["event_type"] == STRUGGLING)
    postcopy = first_index(events, lambda m: m["event_type"] == STRUGGLING
                           and data(m)["action"] == "post_copy")
    assert postcopy is not None, [data(m) for m in events if m["event_type"] == STRUGGLING]
    assert warned <= postcopy
    assert any(m["event_type"] == "instance.live_migration_progress"
               and data(m)["phase"] == "postcopy" for m in events)
    assert "Switched the migration of '%s' to post-copy" % uuid in policy_workers["host4"].log()

    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0
    validate_wire(wire, uuid)


def test_post_copy_forbidden_by_flavor_ends_with_timeout_abort(policy_workers, notifications,
                                                              wire, busy_guest):
    uuid, name = busy_guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    # host4 permits post-copy; this instance's flavor forbids it
    nova_peer.cast_live_migration(
        uuid, "host4", "host2",
        extra_specs={"ferry:live_migration_permit_post_copy": "false"})

    warn = notifications.wait_for(STRUGGLING, uuid, timeout=60)
    assert warn is not None, policy_workers["host4"].log()[-3000:]
    end = notifications.wait_for("instance.live_migration_rollback.end", uuid, timeout=120)
    assert end is not None, policy_workers["host4"].log()[-3000:]
    struggles = [data(m) for m in notifications.events(uuid) if m["event_type"] == STRUGGLING]
    assert not any(s["action"] == "post_copy" for s in struggles), struggles
    assert any("post-copy" in (s["action_reason"] or "") for s in struggles), struggles
    assert any(s["action"] == "abort" for s in struggles), struggles
    types = [m["event_type"] for m in notifications.events(uuid)]
    assert "instance.live_migration_post.start" not in types
    assert types.index(STRUGGLING) < types.index("instance.live_migration_rollback.start")

    assert rig.domain_state("A", uuid) == "running"
    hb = rig.wait_heartbeat_advances("A", name, timeout=10)
    assert hb["errors"] == 0
    assert rig.domain_state("B", uuid) is None
    validate_wire(wire, uuid)


def test_nova_force_complete_on_running_migration(policy_workers, notifications, wire,
                                                 busy_guest):
    uuid, name = busy_guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    nova_peer.cast_live_migration(uuid, "host6", "host2")
    assert notifications.wait_for("instance.live_migration_progress", uuid, timeout=60)

    nova_peer.cast_force_complete(uuid, "host6")

    assert notifications.wait_for("instance.live_migration_force_complete.end", uuid, 30)
    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert end is not None, policy_workers["host6"].log()[-3000:]
    # host6 does not permit post-copy: the cap is lifted at once and the
    # guest paused after its first pass so the copy can finish (unless,
    # uncapped, it converged by itself first); it runs on the destination
    log = policy_workers["host6"].log()
    assert "Lifted the bandwidth cap of '%s'; it is paused once its first pass is over" \
        % uuid in log
    assert "Paused '%s'" % uuid in log or "Migration of '%s' ended: the guest runs on " \
        "the destination" % uuid in log
    assert rig.domain_state("B", uuid) == "running"
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0
    validate_wire(wire, uuid)


def test_nova_abort_on_running_migration(policy_workers, notifications, wire, busy_guest):
    uuid, name = busy_guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    nova_peer.cast_live_migration(uuid, "host6", "host2")
    assert notifications.wait_for("instance.live_migration_progress", uuid, timeout=60)

    nova_peer.cast_abort(uuid, "host6")

    assert notifications.wait_for("instance.live_migration_abort.end", uuid, 30)
    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, 60)
    assert notifications.wait_for("instance.live_migration_rollback_dest.end", uuid, 30)
    types = [m["event_type"] for m in notifications.events(uuid)]
    assert "instance.live_migration_post.start" not in types
    assert rig.domain_state("A", uuid) == "running"
    rig.wait_heartbeat_advances("A", name, timeout=10)
    assert rig.domain_state("B", uuid) is None
    validate_wire(wire, uuid)
