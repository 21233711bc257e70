# SPDX-License-Identifier: Apache-2.0
"""Block migration (issue 11.1): a guest whose qcow2 disk exists only on the
source host migrates with nova's block_migration=True cast.

The rig's hosts see /var/lib/libvirt (so /var/lib/libvirt/images) each from
their own directory ($RIG_DIR/<host>/lib); the workers here run inside their
host's mount namespace (nsenter) with libvirt.instances_path there, so the
destination worker creates the image where the destination's QEMU opens it,
at the same path as on the source.  From the root namespace the two images
are $RIG_DIR/A/lib/images/... and $RIG_DIR/B/lib/images/...
"""
import json
import os
import subprocess
import tempfile
import time
import uuid as uuidlib

import pytest

import ferry_proc
import nova_peer
import rig
import schemas
from conftest import started_workers

INSTANCES = "/var/lib/libvirt/images"  # libvirt.instances_path, inside each host
DISK_MIB = 64
PROGRESS = "instance.live_migration_progress"


def host_path(host, ns_path):
    """The root namespace's view of ns_path (below INSTANCES) on `host`."""
    assert ns_path.startswith(INSTANCES + "/")
    return os.path.join(rig.RIG_DIR, host, "lib", "images", ns_path[len(INSTANCES) + 1:])


def run(*cmd):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def block_workers(rig_up, notifications):
    """blk1 on libvirt A, blk2 on libvirt B, each in its host's namespace."""
    extra = "\tlive_migration_bandwidth = 32;\n\tinstances_path = \"%s\";\n" % INSTANCES

    def make(tmp):
        return {
            "blk1": ferry_proc.Worker(tmp, "blk1", "A", "127.0.0.2", libvirt=extra,
                                      wrapper=rig.ns_wrapper("A")),
            "blk2": ferry_proc.Worker(tmp, "blk2", "B", "127.0.0.3", libvirt=extra,
                                      wrapper=rig.ns_wrapper("B")),
        }
    with started_workers("ferry-e2e-block-", "block worker", make) as ws:
        yield ws


def boot_with_disk(rate, name_prefix):
    """A guest on A with a qcow2 disk (two written patterns) that exists
    only on A; returns (uuid, name, disk path inside the hosts)."""
    uuid = str(uuidlib.uuid4())
    name = name_prefix + uuid[:8]
    disk = "%s/%s/disk" % (INSTANCES, uuid)
    on_a = host_path("A", disk)
    os.makedirs(os.path.dirname(on_a))
    run("qemu-img", "create", "-q", "-f", "qcow2", on_a, "%dM" % DISK_MIB)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 4M", "-c", "write -P 0x5c 20M 1M",
        on_a)
    assert not os.path.exists(host_path("B", disk))
    rig.boot_guest("A", name=name, uuid=uuid, mem_mib=256, rate=rate, ws=32,
                   devices=rig.disk_xml(disk))
    return uuid, name, disk


def reference_copy(on_a):
    """A copy of the source image as it is before the migration (the guest
    does not write to its disk): the source removes its own after success."""
    ref = os.path.join(tempfile.mkdtemp(prefix="ferry-e2e-block-ref-"), "disk")
    run("cp", "--sparse=always", on_a, ref)
    return ref


def assert_source_cleaned(worker, uuid, disk, dest):
    """The source removed exactly the image it sent, and the instance
    directory it left empty, as nova's post_live_migration does."""
    on_a = host_path("A", disk)
    assert not os.path.exists(on_a), worker.log()[-3000:]
    assert not os.path.exists(os.path.dirname(on_a)), os.listdir(os.path.dirname(on_a))
    log = worker.log()
    assert "Removed local disk '%s' of '%s' from the source (migrated to '%s')" % (
        disk, uuid, dest) in log
    assert "Removed the empty instance directory of '%s' from the source" % uuid in log
    assert "Source cleanup of the block migration of '%s': 1 of 1 local disk(s) removed" % (
        uuid) in log


def test_block_migration_copies_the_local_disk(block_workers, notifications, wire):
    uuid, name, disk = boot_with_disk(4, "k")
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    ref = reference_copy(host_path("A", disk))

    rid = nova_peer.cast_live_migration(uuid, "blk1", "blk2", block=True)

    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=180)
    assert end is not None, "no post.end; events: %s\nsource log:\n%s\ndest log:\n%s" % (
        [m["event_type"] for m in notifications.events(uuid)],
        block_workers["blk1"].log()[-3000:], block_workers["blk2"].log()[-3000:])
    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0

    # The destination's image is the source's, byte for byte (B's QEMU holds
    # it open: -U), and it is a qcow2 of the same virtual size.
    on_b = host_path("B", disk)
    assert os.path.isfile(on_b)
    cmp = subprocess.run(["qemu-img", "compare", "-U", ref, on_b], capture_output=True,
                         text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    info = json.loads(run("qemu-img", "info", "-U", "--output=json", on_b).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == DISK_MIB << 20
    # and the pattern really is there (not two empty images)
    out = run("qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -P 0x5c 20M 1M", on_b)
    assert "read 1048576/1048576 bytes" in out.stdout, out.stdout + out.stderr

    src, dst = block_workers["blk1"].log(), block_workers["blk2"].log()
    assert "local disk vda '%s'" % disk in src
    assert "1 local disk(s), full copy" in src
    assert "Created disk image '%s'" % disk in dst
    assert any(rid in ln and "Created disk image" in ln for ln in dst.splitlines())
    # The source's image and instance directory are gone (the shared
    # images directory itself stays).
    assert_source_cleaned(block_workers["blk1"], uuid, disk, "blk2")
    assert os.path.isdir(os.path.join(rig.RIG_DIR, "A", "lib", "images"))
    os.unlink(ref)

    # Progress reports the disk bytes as well as memory.
    progress = [m["payload"]["nova_object.data"] for m in notifications.events(uuid)
                if m["event_type"] == PROGRESS]
    assert progress, "no progress notification"
    assert any((p["disk_total_bytes"] or 0) > 0 for p in progress), progress[-1]
    assert any((p["memory_total_bytes"] or 0) > 0 for p in progress)
    for inner in wire.inners(uuid):
        schemas.validate_notification(inner)
    assert notifications.wait_for("instance.live_migration_post_dest.end", uuid, 30)


def test_aborted_block_migration_leaves_no_image(block_workers, notifications):
    # A guest that dirties far faster than 32 MiB/s never converges: the
    # abort comes while the migration runs.
    uuid, name, disk = boot_with_disk(160, "r")
    rig.wait_heartbeat_advances("A", name, timeout=15)

    nova_peer.cast_live_migration(uuid, "blk1", "blk2", block=True)
    assert notifications.wait_for(PROGRESS, uuid, timeout=60), block_workers["blk1"].log()[-3000:]
    # The destination made the image for the incoming migration.
    assert os.path.isfile(host_path("B", disk))
    listed = nova_peer.list_migrations("blk1")
    mine = [m for m in listed if m["instance_uuid"] == uuid]
    assert mine and mine[0]["disk_total_bytes"] >= 0, listed
    nova_peer.cast_abort(uuid, "blk1")

    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, 60)
    assert notifications.wait_for("instance.live_migration_rollback_dest.end", uuid, 30)
    deadline = time.monotonic() + 10
    while os.path.exists(os.path.dirname(host_path("B", disk))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(host_path("B", disk)), block_workers["blk2"].log()[-3000:]
    assert not os.path.exists(os.path.dirname(host_path("B", disk)))
    assert "Removed the 2 disk image(s) and directories created for '%s'" % uuid in \
        block_workers["blk2"].log()
    # The guest goes on at the source, with its disk.
    assert rig.domain_state("A", uuid) == "running"
    rig.wait_heartbeat_advances("A", name, timeout=10)
    # A rollback never touches the source's image.
    assert os.path.isfile(host_path("A", disk))
    assert not any(uuid in ln and "Removed local disk" in ln
                   for ln in block_workers["blk1"].log().splitlines())


def pre_live_migration(host, uuid, disk):
    nova_peer.setup()
    ctx = nova_peer.context()
    return nova_peer.compute_api().pre_live_migration(
        ctx, nova_peer.instance(ctx, uuid, "blk1"), True, json.dumps(disk), host,
        nova_peer.migrate_data(True))


@pytest.mark.parametrize("path,why", [
    ("/etc/ferry-should-not-exist", "not below libvirt.instances_path"),
    (INSTANCES + "/../ferry-should-not-exist", "component"),
    (INSTANCES + "/escape/disk", "outside libvirt.instances_path"),
])
def test_bad_disk_paths_are_refused(block_workers, path, why):
    uuid = str(uuidlib.uuid4())
    escape = os.path.join(rig.RIG_DIR, "B", "lib", "images", "escape")
    outside = tempfile.mkdtemp(prefix="ferry-e2e-outside-")
    if not os.path.islink(escape):
        os.symlink(outside, escape)
    try:
        disk = [{"type": "qcow2", "path": path, "virt_disk_size": 1 << 20, "backing_file": "",
                 "disk_size": 0, "over_committed_disk_size": 0}]
        with pytest.raises(Exception) as e:
            pre_live_migration("blk2", uuid, disk)
        assert why in str(e.value), str(e.value)
        assert os.listdir(outside) == []
        log = block_workers["blk2"].log()
        assert any(uuid in ln and why in ln for ln in log.splitlines())
        assert not any(m["instance_uuid"] == uuid for m in nova_peer.list_migrations("blk2"))
    finally:
        os.unlink(escape)
        os.rmdir(outside)


def in_ns(host, *cmd):
    """cmd inside `host`'s mount namespace, where backing paths resolve."""
    return run(*(rig.ns_wrapper(host) + list(cmd)))


def test_backing_file_on_both_hosts_copies_incrementally(block_workers, notifications):
    # nova's layout: a raw image in <instances>/_base on every host, the
    # instance's qcow2 overlay over it.  Only the overlay's own data moves.
    uuid = str(uuidlib.uuid4())
    name = "i" + uuid[:8]
    base = "%s/_base/%s.raw" % (INSTANCES, uuid[:8])
    disk = "%s/%s/disk" % (INSTANCES, uuid)
    for h in ("A", "B"):
        os.makedirs(os.path.dirname(host_path(h, base)), exist_ok=True)
        in_ns(h, "qemu-img", "create", "-q", "-f", "raw", base, "%dM" % DISK_MIB)
        in_ns(h, "qemu-io", "-f", "raw", "-c", "write -P 0x11 0 8M", base)
    os.makedirs(os.path.dirname(host_path("A", disk)))
    in_ns("A", "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, disk)
    in_ns("A", "qemu-io", "-f", "qcow2", "-c", "write -P 0x77 2M 1M", disk)
    rig.boot_guest("A", name=name, uuid=uuid, mem_mib=256, rate=4, ws=32,
                   devices=rig.disk_xml(disk))
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    ref = reference_copy(host_path("A", disk))

    nova_peer.cast_live_migration(uuid, "blk1", "blk2", block=True)

    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=180)
    assert end is not None, block_workers["blk1"].log()[-3000:]
    rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    src, dst = block_workers["blk1"].log(), block_workers["blk2"].log()
    assert "1 local disk(s), incremental copy" in src
    assert "Created disk image '%s' (qcow2, %d bytes, backing %s)" % (
        disk, DISK_MIB << 20, base) in dst
    info = json.loads(in_ns("B", "qemu-img", "info", "-U", "--output=json", disk).stdout)
    assert info["backing-filename"] == base
    # A's overlay (its copy from before: the source removed its own) seen
    # from B's namespace resolves its backing file to B's copy of the base,
    # which holds the same bytes: the guest's disks match.
    cmp = subprocess.run(rig.ns_wrapper("B") + ["qemu-img", "compare", "-U", ref, disk],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    # Only the overlay left the source; the image cache stays (nova's too).
    assert_source_cleaned(block_workers["blk1"], uuid, disk, "blk2")
    assert os.path.isfile(host_path("A", base))
    os.unlink(ref)
