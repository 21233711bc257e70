#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Post-copy recovery benchmark (issue 7, item 6) on the real two-host rig.

A 256 MiB guest dirtying far faster than the migration bandwidth, post-copy
permitted: ferry's policy switches it to post-copy.  Per scenario it prints
the total migration time (cast to instance.live_migration_post.end), the
time to the switch, and for the scenarios that break the post-copy stream
(libvirt's abort API or ss -K on the QEMU-to-QEMU socket) the time from the
break to the destination leaving postcopy_failed (ferry's resume took), to
the guest running again there (a heartbeat newer than that moment), and to
post.end, plus the resume attempts ferry made.

    /usr/bin/python3 tests/bench/postcopy_bench.py [--repeat 1] [--bandwidth 32]
        [--late-throttle 2] [--worker PATH]

Not a test: it asserts nothing about time; it prints figures.  It brings up
the rig if it is down (and then stops it again) and stops every process it
started, by PID.  Run it under the rig lock."""
import argparse
import os
import sys
import tempfile
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

from benchlib import rig_down, rig_up, sh  # noqa: E402
import ferry_proc  # noqa: E402
import listener  # noqa: E402
import nova_peer  # noqa: E402
import rig  # noqa: E402

import libvirt  # noqa: E402

POST_END = "instance.live_migration_post.end"
TERMINAL = (POST_END, "instance.live_migration_rollback.end",
            "instance.live_migration_postcopy_failed")
B_PORTS = (49184, 49215)  # deploy/rig/hosts.sh: host B's migration ports
SS_FILTER = "dst %s and dport >= :%d and dport <= :%d" % (rig.HOST_IP["B"], B_PORTS[0], B_PORTS[1])
POSTCOPY = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY)
BROKEN_SRC = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
BROKEN_DST = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)

# name, how to break (None: no break), seconds into post-copy, post-copy MiB/s cap
SCENARIOS = [
    ("no break", None, 0, None),
    ("abort API at the switch", "abort", 0, None),
    ("ss -K at the switch", "ss", 0, None),
    ("no break, post-copy throttled", None, 0, "late"),
    ("abort API 2 s into throttled post-copy", "abort", 2, "late"),
    ("ss -K 2 s into throttled post-copy", "ss", 2, "late"),
]


def state(conn, uuid):
    try:
        return tuple(conn.lookupByUUIDString(uuid).state())
    except libvirt.libvirtError:
        return None


def ss_kill_works():
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port), timeout=5)
    acc, _ = srv.accept()
    try:
        sh("ss", "-K", "-t", "dst 127.0.0.1 and dport = :%d" % port)
        try:
            cli.send(b"x")
            time.sleep(0.1)
            cli.send(b"x")
            return False
        except OSError:
            return True
    finally:
        for s in (cli, acc, srv):
            s.close()


def do_break(how, dom):
    if how == "abort":
        dom.abortJobFlags(libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
    else:
        out = sh("ss", "-K", "-t", "-n", SS_FILTER).stdout
        if len([ln for ln in out.splitlines()[1:] if ln.strip()]) == 0:
            raise RuntimeError("no migration socket matched")


def run_scenario(name, how, after_s, throttle, args, src, notes):
    guest = "pcb" + uuidlib.uuid4().hex[:6]
    uuid = rig.boot_guest("A", name=guest, mem_mib=256, rate=160, ws=32)
    rig.wait_heartbeat_advances("A", guest, timeout=15)
    a, b = rig.connect("A"), rig.connect("B")
    row = {"scenario": name, "outcome": "timeout", "switch_s": None, "broke": None,
           "resumed_s": None, "hb_s": None, "break_end_s": None, "attempts": 0, "total_s": None}
    mark = len(src.log())
    try:
        dom = a.lookupByUUIDString(uuid)
        t0 = time.monotonic()
        nova_peer.cast_live_migration(uuid, "pcb-src", "pcb-dst")
        deadline = t0 + 150
        if throttle == "late":
            # capped during pre-copy: set at the switch it comes too late
            # (an unthrottled post-copy of this guest ends within ~0.5 s)
            while time.monotonic() < deadline and not dom.jobStats().get("memory_total"):
                time.sleep(0.05)
            dom.migrateSetMaxSpeed(args.late_throttle,
                                   libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY)
        while time.monotonic() < deadline and state(a, uuid) != POSTCOPY:
            if state(a, uuid) is None:
                break
            time.sleep(0.02)
        t_switch = time.monotonic()
        if state(a, uuid) == POSTCOPY:
            row["switch_s"] = t_switch - t0
            if after_s:
                time.sleep(after_s)
        t_break = None
        if how is not None and state(a, uuid) == POSTCOPY:
            do_break(how, dom)
            t_break = time.monotonic()
            row["broke"] = False
        elif how is not None:
            row["broke"] = "missed (post-copy already over)"
        # break -> destination leaves postcopy_failed -> a newer heartbeat there
        resumed_at = resumed_seq = None
        while t_break is not None and time.monotonic() < deadline:
            s_a, s_b = state(a, uuid), state(b, uuid)
            if s_a == BROKEN_SRC or s_b == BROKEN_DST:
                row["broke"] = True
            elif row["broke"] and resumed_at is None:
                resumed_at = time.monotonic()
                hb = rig.heartbeat("B", guest)
                resumed_seq = hb["seq"] if hb else -1
                row["resumed_s"] = resumed_at - t_break
            if resumed_at is not None:
                hb = rig.heartbeat("B", guest)
                if hb and hb["seq"] > resumed_seq:
                    row["hb_s"] = time.monotonic() - t_break
                    break
            if not row["broke"] and time.monotonic() - t_break > 5:
                break  # the break did not take: post-copy had ended
            time.sleep(0.02)
        end = None
        while end is None and time.monotonic() < deadline:
            for ev in TERMINAL:
                end = end or notes.wait_for(ev, uuid, timeout=0.1)
        now = time.monotonic()
        if end is not None:
            row["outcome"] = end["event_type"].split(".")[-1].replace("live_migration_", "")
            row["total_s"] = now - t0
            if t_break is not None:
                row["break_end_s"] = now - t_break
        row["attempts"] = src.log()[mark:].count(
            "Resuming the broken post-copy migration of '%s'" % uuid)
        row["on"] = "B" if rig.domain_state("B", uuid) else "A"
        hb = rig.heartbeat(row["on"], guest)
        row["errors"] = (hb["errors"], hb["corrupt"]) if hb else None
    finally:
        for conn in (a, b):
            try:
                conn.lookupByUUIDString(uuid).destroy()
            except libvirt.libvirtError:
                pass
            conn.close()
    return row


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--bandwidth", type=int, default=32, help="pre-copy MiB/s")
    ap.add_argument("--late-throttle", type=int, default=2,
                    help="post-copy MiB/s cap of the throttled scenarios")
    ap.add_argument("--only", help="run the scenarios whose name contains this")
    ap.add_argument("--worker", default=ferry_proc.WORKER)
    args = ap.parse_args()

    rig_was_up = rig_up()
    tmp = tempfile.mkdtemp(prefix="ferry-pcbench-")
    dial = ("\tlive_migration_bandwidth = %d;\n\tlive_migration_permit_post_copy = true;\n"
            "\tlive_migration_completion_timeout = 3;" % args.bandwidth)
    src = ferry_proc.Worker(tmp, "pcb-src", "A", "127.0.0.2", libvirt=dial, interval=1.0,
                            log_level="info", binary=args.worker)
    dst = ferry_proc.Worker(tmp, "pcb-dst", "B", "127.0.0.3", libvirt=dial, interval=1.0,
                            log_level="info", binary=args.worker)
    can_ss = ss_kill_works()
    notes = listener.Collector(nova_peer.DEFAULT_URL).start()
    rows = []
    try:
        for w in (src, dst):
            w.start()
        print("ferry-worker %s; guest 256 MiB dirtying 160 MiB/s over 32 MiB (TCG); "
              "pre-copy %d MiB/s, post-copy permitted, completion timeout 3 s/GiB; "
              "throttled post-copy %d MiB/s" % (args.worker, args.bandwidth, args.late_throttle))
        for _ in range(args.repeat):
            for name, how, after_s, throttle in SCENARIOS:
                if args.only and args.only not in name:
                    continue
                if how == "ss" and not can_ss:
                    print("  %-42s skipped: ss -K cannot destroy sockets here" % name)
                    continue
                row = run_scenario(name, how, after_s, throttle, args, src, notes)
                rows.append(row)
                print("  %-42s %s, %s s" % (name, row["outcome"], fmt(row["total_s"])),
                      flush=True)
    finally:
        notes.stop()
        for w in (src, dst):
            w.stop()
        rig_down(rig_was_up)

    print()
    hdr = ("scenario", "outcome", "total s (cast->post.end)", "switch s", "broke",
           "break->resumed s", "break->guest running on B s", "break->post.end s",
           "resume attempts", "guest errors/corrupt")
    print(" | ".join(hdr))
    print(" | ".join("---" for _ in hdr))
    for r in rows:
        print(" | ".join([r["scenario"], "%s (on %s)" % (r["outcome"], r.get("on", "?")),
                          fmt(r["total_s"]), fmt(r["switch_s"]), fmt(r["broke"]),
                          fmt(r["resumed_s"], ".2f"), fmt(r["hb_s"], ".2f"),
                          fmt(r["break_end_s"]), str(r["attempts"]),
                          "%s/%s" % r["errors"] if r.get("errors") else "-"]))
    print("logs: %s" % tmp)


if __name__ == "__main__":
    main()
