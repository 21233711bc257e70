#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Data-path benchmark (issue 11.5): one row per stream variant the dial can
produce on this rig, each migrated with nova's own casts between two
ferry-workers (source on host A, destination "host2" on host B, both in
their host's mount namespace with libvirt.instances_path there).

For each row it prints the outcome, the total time (cast to post.end), the
migration time and downtime libvirt reports for the completed job, the bytes
libvirt counted (completed job statistics, read on the destination:
data_processed = every byte QEMU sent, RAM and disk; memory_processed and
disk_processed its parts; XBZRLE's compressed bytes when XBZRLE ran), the
CPU both workers spent on that migration (utime + stime from /proc/<pid>/stat,
before the cast and after post.end), and the physical floor beside it: the
bytes that must move (guest RAM, plus the allocated disk for a block
migration) over the bandwidth the dial derived.  What the worker resolved
for the migration (its journal record's "tuning", read while the migration
runs) is printed with it; options the resolver refuses on this rig are
printed with the resolver's own reason, and an option the configuration
refuses with --check-config's own message.

    flock /tmp/ferry-rig.lock /usr/bin/python3 tests/bench/datapath_bench.py [--only 1G|tls]

Not a test: it asserts nothing; it prints figures.  It brings up the rig if
it is down (and then stops it again) and stops every process it started, by
PID.  Uses the release build when there is one."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

from benchlib import completed_stats, cpu_s, derived_bandwidth, rig_down, rig_up, sh  # noqa: E402
import ferry_proc  # noqa: E402
import listener  # noqa: E402
import nova_peer  # noqa: E402
import rig  # noqa: E402


INSTANCES = "/var/lib/libvirt/images"  # libvirt.instances_path, inside each host
DEST = "host2"  # the name host B's QEMU certificate carries (TLS rows)
TERMINAL = ("instance.live_migration_post.end", "instance.live_migration_rollback.end")
POST_COPY = {"ferry:live_migration_permit_post_copy": "true"}
MEM_MIB = 256
DISK_MIB = 256  # virtual size of the block rows' qcow2
DISK_DATA_MIB = 64  # written into it before the migration

# name, link_speed, extra libvirt options, flavor extra specs, block, dirty
# (None = idle, else the fraction of the derived bandwidth the guest dirties)
VARIANTS = [
    ("1G: one stream, XBZRLE", "1G", "", None, False, None),
    ("1G: one stream, XBZRLE, dirty 1/3", "1G", "", None, False, 1.0 / 3),
    ("10G: multifd", "10G", "", None, False, None),
    ("10G: multifd, dirty 1/3", "10G", "", None, False, 1.0 / 3),
    ("25G: multifd", "25G", "", None, False, None),
    ("10G: multifd, zstd asked", "10G", 'live_migration_multifd_compression = "zstd";', None,
     False, None),
    ("1G: native TLS, one stream", "1G", "live_migration_with_native_tls = true;", None, False,
     None),
    ("1G: native TLS, one stream, dirty 1/3", "1G", "live_migration_with_native_tls = true;",
     None, False, 1.0 / 3),
    ("10G: native TLS, multifd", "10G", "live_migration_with_native_tls = true;", None, False,
     None),
    ("1G: block migration, qcow2 %d MiB (%d MiB written)" % (DISK_MIB, DISK_DATA_MIB), "1G", "",
     None, True, None),
    ("10G: block migration, qcow2 %d MiB (%d MiB written)" % (DISK_MIB, DISK_DATA_MIB), "10G",
     "", None, True, None),
    ("10G: post-copy permitted, multifd asked", "10G", "", POST_COPY, False, None),
]


def host_path(host, ns_path):
    return os.path.join(rig.RIG_DIR, host, "lib", "images", ns_path[len(INSTANCES) + 1:])


def boot(name, uuid, rate, block):
    """The guest on A: idle (16 KiB/s over 1 MiB) or dirtying rate MiB/s over
    64 MiB; with a local qcow2 disk for a block row.  Returns the disk's
    allocated bytes (0 without a disk)."""
    devices, alloc = "", 0
    if block:
        disk = "%s/%s/disk" % (INSTANCES, uuid)
        on_a = host_path("A", disk)
        os.makedirs(os.path.dirname(on_a))
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", on_a, "%dM" % DISK_MIB],
                       check=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 %dM" % DISK_DATA_MIB,
                        on_a], check=True, capture_output=True)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", on_a],
                                         check=True, capture_output=True, text=True).stdout)
        alloc = info["actual-size"]
        devices = rig.disk_xml(disk)
    if rate:
        rig.boot_guest("A", name=name, uuid=uuid, mem_mib=MEM_MIB, rate=rate, ws=64,
                       devices=devices)
    else:
        rig.boot_guest("A", name=name, uuid=uuid, mem_mib=MEM_MIB, ratek=16, ws=1,
                       devices=devices)
    return alloc


def run_variant(tmp, binary, dst, notes, variant, idx):
    name, speed, opts, specs, block, dirty = variant
    host = "dp%d" % idx
    extra = '\tlink_speed = "%s";\n\tinstances_path = "%s";\n\t%s\n' % (speed, INSTANCES, opts)
    src = ferry_proc.Worker(tmp, host, "A", "127.0.0.2", libvirt=extra, interval=1.0,
                            log_level="info", binary=binary, wrapper=rig.ns_wrapper("A"))
    bw, _ = derived_bandwidth(binary, src.conf)
    rate = max(1, int(bw * dirty)) if dirty else 0
    uuid = str(uuidlib.uuid4())
    guest = "dp" + uuid[:8]
    row = {"variant": name, "bw": bw, "dirty": "%d MiB/s" % rate if rate else "idle"}
    src.start()
    try:
        alloc = boot(guest, uuid, rate, block)
        rig.wait_heartbeat_advances("A", guest, timeout=15)
        cpu0 = cpu_s(src.proc.pid) + cpu_s(dst.proc.pid)
        t0 = time.monotonic()
        nova_peer.cast_live_migration(uuid, host, DEST, block=block, extra_specs=specs)
        tuning = ferry_proc.journal_tuning(src, uuid, timeout=30)
        end = None
        deadline = t0 + 600
        while end is None and time.monotonic() < deadline:
            for ev in TERMINAL:
                end = end or notes.wait_for(ev, uuid, timeout=0.2)
        total = time.monotonic() - t0
        cpu1 = cpu_s(src.proc.pid) + cpu_s(dst.proc.pid)
        where = "B" if rig.domain_state("B", uuid) else "A"
        stats = completed_stats(where, uuid)
        # libvirt's completed statistics leave out the NBD copy of a block
        # migration (disk_processed 0 on the destination; the source's job
        # is gone with the domain): the disk bytes come from ferry's own
        # samples of the source's job (progress notifications), the last
        # and largest.
        progress = [m["payload"]["nova_object.data"] for m in notes.events(uuid)
                    if m["event_type"] == "instance.live_migration_progress"]
        nbd = max([p.get("disk_processed_bytes") or 0 for p in progress] or [0])
        row.update({
            "outcome": ("timeout" if end is None else
                        "completed" if end["event_type"].endswith("post.end") else
                        "rolled back"),
            "total_s": total,
            "libvirt_s": stats["time_elapsed"] / 1000.0 if stats.get("time_elapsed") else None,
            "downtime_ms": stats.get("downtime"),
            "data": stats.get("data_processed"),
            "mem": stats.get("memory_processed"),
            "disk": stats.get("disk_processed"),
            "nbd": nbd if block else None,
            "wire": (stats.get("data_processed") or 0) + (nbd if block else 0),
            "xbzrle": stats.get("compression_bytes"),
            "cpu_s": cpu1 - cpu0,
            "must_move": (MEM_MIB << 20) + alloc,
            "tuning": tuning,
        })
        row["floor_s"] = row["must_move"] / float(bw << 20)
        start = [ln for ln in src.log().splitlines() if "Migrating '%s'" % uuid in ln]
        row["start_line"] = start[0].split("Migrating", 1)[1] if start else "-"
        if block:
            row["source_disk_gone"] = not os.path.exists(
                host_path("A", "%s/%s/disk" % (INSTANCES, uuid)))
    finally:
        rig.destroy_guest(uuid)
        src.stop()
        for h in ("A", "B"):
            d = host_path(h, "%s/%s" % (INSTANCES, uuid))
            subprocess.run(["rm", "-rf", "--one-file-system", d])
    return row


def mib(v):
    return "-" if v is None else "%.1f" % (v / 1048576.0)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def resolved(t):
    if t is None:
        return "no journal record seen"
    par = "parallel %d" % t["parallel_connections"] if t["parallel_connections"] else \
        "one stream"
    return "%s, xbzrle %s, multifd comp %s, zero-copy %s, tls %s" % (
        par, "on" if t["xbzrle"] else "off", t["multifd_compression"],
        "on" if t["zero_copy"] else "off", "on" if t["tls"] else "off")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run the variants whose name contains one of these "
                    "(separated by |)")
    ap.add_argument("--no-dirty", action="store_true", help="idle guests only")
    args = ap.parse_args()

    release = os.path.join(REPO, "build", "release", "worker", "ferry-worker")
    binary = os.environ.get("FERRY_WORKER") or (
        release if os.path.exists(release) else ferry_proc.WORKER)
    rig_was_up = rig_up()
    tmp = tempfile.mkdtemp(prefix="ferry-dpbench-")
    # The configuration's own refusal: multifd compression other than zstd.
    zconf = os.path.join(tmp, "zlib.conf")
    with open(zconf, "w") as f:
        f.write(ferry_proc.CONF_TEMPLATE.format(
            url=nova_peer.DEFAULT_URL, host="zlib", state=tmp, log_level="info",
            interval=1.0, rpc_timeout=20, uri=rig.host_uri("A"), inbound="127.0.0.2",
            libvirt='\tlink_speed = "10G";\n\tlive_migration_multifd_compression = "zlib";',
            top=""))
    os.chmod(zconf, 0o600)
    zlib = sh(binary, "--config", zconf, "--check-config")
    zlib_msg = zlib.stdout.strip().splitlines()[-1] if zlib.stdout.strip() else "accepted"

    dst = ferry_proc.Worker(tmp, DEST, "B", "127.0.0.3", interval=1.0, log_level="info",
                            binary=binary, wrapper=rig.ns_wrapper("B"),
                            libvirt='\tlink_speed = "25G";\n\tinstances_path = "%s";\n'
                            % INSTANCES)
    notes = listener.Collector(nova_peer.DEFAULT_URL).start()
    rows = []
    try:
        dst.start()
        print("ferry-worker %s; guests %d MiB RAM, TCG; date %s" % (
            binary, MEM_MIB, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), flush=True)
        for i, v in enumerate(VARIANTS):
            if args.only and not any(o in v[0] for o in args.only.split("|")):
                continue
            if args.no_dirty and v[5] is not None:
                continue
            row = run_variant(tmp, binary, dst, notes, v, i)
            rows.append(row)
            print("  %-52s %s, %.1f s; resolved: %s" % (
                row["variant"], row["outcome"], row["total_s"], resolved(row["tuning"])),
                flush=True)
    finally:
        notes.stop()
        dst.stop()
        rig_down(rig_was_up)

    print()
    hdr = ("variant", "guest", "outcome", "total s", "libvirt s", "downtime ms",
           "sent MiB", "data MiB", "RAM MiB", "disk (libvirt) MiB", "disk (NBD) MiB",
           "XBZRLE MiB", "worker CPU s (both)",
           "must move MiB", "bandwidth MiB/s", "floor s", "x floor")
    print(" | ".join(hdr))
    print(" | ".join("---" for _ in hdr))
    for r in rows:
        print(" | ".join([
            r["variant"], r["dirty"], r["outcome"], fmt(r["total_s"], ".1f"),
            fmt(r["libvirt_s"], ".1f"), fmt(r["downtime_ms"], "d"), mib(r["wire"]),
            mib(r["data"]), mib(r["mem"]), mib(r["disk"]), mib(r["nbd"]), mib(r["xbzrle"]),
            fmt(r["cpu_s"], ".2f"),
            mib(r["must_move"]), str(r["bw"]), fmt(r["floor_s"], ".2f"),
            fmt(r["total_s"] / r["floor_s"], ".1f")]))
    print()
    print("sent = data (libvirt's data_processed: RAM and device state QEMU sent, after\n"
          "zero-page elision and XBZRLE) + disk (NBD): the largest disk_processed_bytes of\n"
          "ferry's progress notifications (block rows): QEMU's mirror progress, which\n"
          "counts the whole virtual size (unallocated ranges cross as NBD write-zeroes\n"
          "requests, not data).  XBZRLE MiB: libvirt's\n"
          "compression_bytes.  TLS framing is not counted.  must move = guest RAM (+ the\n"
          "qcow2's allocated bytes); floor = must move / the derived bandwidth.")
    print()
    print("What each migration ran (the source worker's journal record), and why:")
    refusals = []
    for r in rows:
        t = r["tuning"]
        print("- %s: %s%s" % (r["variant"], resolved(t),
                              "; source disk removed after success: %s" % r["source_disk_gone"]
                              if "source_disk_gone" in r else ""))
        if t is None:
            continue
        for k in ("parallel", "xbzrle", "multifd_compression", "zero_copy"):
            print("    %-20s %s" % (k, t["why"].get(k)))
        why = t["why"]
        if "zero_copy" in why and why["zero_copy"].startswith("off: ") and \
                t["parallel_connections"]:
            refusals.append(("zero-copy (%s)" % r["variant"], why["zero_copy"][5:]))
        if "zstd asked" in r["variant"] and t["multifd_compression"] == "none":
            refusals.append(("multifd zstd (%s)" % r["variant"], why["multifd_compression"]))
        if r["variant"].startswith("10G: post-copy") and not t["parallel_connections"]:
            refusals.append(("multifd with post-copy (%s)" % r["variant"], why["parallel"]))
    print()
    print("Refused on this rig:")
    for what, reason in refusals:
        print("- %s: refused by the resolver: %s" % (what, reason))
    print("- multifd compression zlib: refused by the configuration (--check-config): %s"
          % zlib_msg)
    print("logs: %s" % tmp)


if __name__ == "__main__":
    main()
