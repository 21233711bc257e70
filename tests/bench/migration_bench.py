#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Migration benchmark (issue 4): a scenario suite on the real two-host rig,
driven by nova's own rpcapi casts to two ferry-workers that run with ferry's
defaults plus the one dial, libvirt.link_speed.

For each scenario it prints the total migration time (cast to the terminal
notification) and its ratio to the physical floor (guest RAM / derived
bandwidth), the migration time and downtime libvirt reports for the
completed job, the iterations, and what ferry's policy did (struggling
warnings: the iteration and time of the first, the prediction it carried;
actions).  The "issue 10 case" scenarios (run with --link-speed 1G, about
100 MiB/s) also cast nova's force-complete or abort once the migration runs
and print the time from that cast to the terminal notification.

    /usr/bin/python3 tests/bench/migration_bench.py [--link-speed 1G] [--mem 256]

Not a test: it asserts nothing about time; it prints figures.  It brings up
the rig if it is down (and then stops it again) and stops every process it
started, by PID.  Uses the release build when there is one."""
import argparse
import datetime
import os
import sys
import tempfile
import threading
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

from benchlib import completed_stats, derived_bandwidth, rig_down, rig_up  # noqa: E402
import ferry_proc  # noqa: E402
import listener  # noqa: E402
import nova_peer  # noqa: E402
import rig  # noqa: E402


STRUGGLING = "instance.live_migration_struggling"
TERMINAL = ("instance.live_migration_post.end", "instance.live_migration_rollback.end")

# name, guest dirty rate as a fraction of the derived bandwidth (None = idle;
# a string "N MiB/s" is absolute), working set (MiB), full-page rewrites
# (defeats XBZRLE), flavor extra specs, and what nova does once the
# migration runs: None, "force_complete" or "abort" (issue 10's figures:
# cast to the end, with the physical floor beside it)
POST_COPY = {"ferry:live_migration_permit_post_copy": "true"}
NO_POST_COPY = {"ferry:live_migration_permit_post_copy": "false"}
SCENARIOS = [
    ("idle", None, 1, 0, None, None),
    ("dirty < bandwidth (1/3)", 1.0 / 3, 64, 1, None, None),
    ("dirty > bandwidth (2x)", 2.0, 64, 1, None, None),
    ("dirty > bandwidth (2x), post-copy permitted", 2.0, 64, 1, POST_COPY, None),
    # a dirty set no switch-over of max downtime can carry
    ("dirty > bandwidth (2x), big working set", 2.0, 128, 1, None, None),
    ("dirty > bandwidth (2x), big working set, post-copy permitted", 2.0, 128, 1, POST_COPY,
     None),
    # issue 10: 256 MiB/s over 64 MiB (run with --link-speed 1G: ~100 MiB/s)
    ("issue 10 case, post-copy permitted", "256 MiB/s", 64, 0, POST_COPY, None),
    ("issue 10 case, post-copy forbidden", "256 MiB/s", 64, 0, NO_POST_COPY, None),
    ("issue 10 case, force-complete by pause", "256 MiB/s", 64, 0, NO_POST_COPY,
     "force_complete"),
    ("issue 10 case, abort", "256 MiB/s", 64, 0, NO_POST_COPY, "abort"),
]


# heartbeat period of the guests whose stall is measured (force-complete)
HB_MS = 20


class HeartbeatWatch:
    """Watches a guest's serial logs on both hosts and records when each
    heartbeat line appears (host clock).  The guest prints one every HB_MS
    of its own run time, so the longest gap between two arrivals, less
    HB_MS, is the time the guest did not run: what it sees of the
    switch-over, from ferry's pause to running on the destination."""

    def __init__(self, name):
        self.paths = [rig.serial_log(h, name) for h in rig.HOSTS]
        self.arrivals = []  # (monotonic, host index, seq)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        offs = [0] * len(self.paths)
        rests = [""] * len(self.paths)
        while not self._stop.is_set():
            now = time.monotonic()
            for i, path in enumerate(self.paths):
                try:
                    with open(path, "rb") as f:
                        f.seek(offs[i])
                        chunk = f.read()
                except FileNotFoundError:
                    continue
                offs[i] += len(chunk)
                text = rests[i] + chunk.decode("ascii", "replace")
                lines = text.split("\n")
                rests[i] = lines.pop()
                for line in lines:
                    m = rig.HB_RE.match(line.strip())
                    if m:
                        self.arrivals.append((now, i, int(m.group(1))))
            time.sleep(0.002)

    def stall_ms(self, since):
        """Longest gap between two heartbeats after `since`, less the
        period, in ms; None without two heartbeats."""
        ts = [a[0] for a in self.arrivals if a[0] >= since]
        if len(ts) < 2:
            return None
        return max(0.0, max(b - a for a, b in zip(ts, ts[1:])) * 1000.0 - HB_MS)


def data(msg):
    return msg["payload"]["nova_object.data"]


def run_scenario(name, frac, ws, full, specs, op, bw, mem, notes):
    if isinstance(frac, str):
        rate = int(frac.split()[0])
    else:
        rate = max(1, int(bw * frac)) if frac is not None else 0
    guest = "bench" + uuidlib.uuid4().hex[:6]
    hb = HB_MS if op == "force_complete" else 1000
    if frac is None:
        uuid = rig.boot_guest("A", name=guest, mem_mib=mem, ratek=16, ws=1, hb=hb)
    else:
        uuid = rig.boot_guest("A", name=guest, mem_mib=mem, rate=rate, ws=ws, full=full,
                              hb=hb)
    rig.wait_heartbeat_advances("A", guest, timeout=15)
    watch = HeartbeatWatch(guest).start() if op == "force_complete" else None
    t0 = time.monotonic()
    nova_peer.cast_live_migration(uuid, "bench-src", "bench-dst", extra_specs=specs)
    t_op = None
    if op is not None:
        # once the migration runs (first progress), as an operator would
        notes.wait_for("instance.live_migration_progress", uuid, timeout=60)
        t_op = time.monotonic()
        if op == "abort":
            nova_peer.cast_abort(uuid, "bench-src")
        else:
            nova_peer.cast_force_complete(uuid, "bench-src")
    end = None
    deadline = t0 + 600
    while end is None and time.monotonic() < deadline:
        for ev in TERMINAL:
            end = end or notes.wait_for(ev, uuid, timeout=0.2)
    # when the listener got it: the loop above polls each terminal event in
    # turn for 0.2 s, and its own clock would add up to that much
    t_end = end["received"] if end is not None else time.monotonic()
    total = t_end - t0
    stall = None
    if watch is not None:
        time.sleep(0.2)  # the first heartbeats on the destination
        watch.stop()
        stall = watch.stall_ms(t_op)
    events = notes.events(uuid)
    struggles = [data(m) for m in events if m["event_type"] == STRUGGLING]
    progress = [data(m) for m in events if m["event_type"] == "instance.live_migration_progress"]
    where = "B" if rig.domain_state("B", uuid) else "A"
    stats = completed_stats(where, uuid)
    outcome = ("timeout" if end is None else
               "completed" if end["event_type"].startswith("instance.live_migration_post")
               else "rolled back")
    row = {
        "scenario": name,
        "dirty": "idle" if frac is None else "%d MiB/s ws=%d MiB%s" % (
            rate, ws, " full pages" if full else ""),
        "outcome": outcome,
        "on": where,
        "state": rig.domain_state(where, uuid),
        "total_s": total,
        # after post-copy the destination's completed job reports no times
        "libvirt_s": stats["time_elapsed"] / 1000.0 if stats.get("time_elapsed") else None,
        "downtime_ms": stats.get("downtime") if stats else None,
        "stall_ms": stall,
        "iterations": max([p.get("memory_iteration") or 0 for p in progress] or [0]),
        "floor_s": mem / float(bw),
        "warnings": len(struggles),
        "first_warn_iter": struggles[0]["memory_iteration"] if struggles else None,
        # the worker's own elapsed time since its migrate call
        "first_warn_s": (struggles[0]["elapsed_ms"] / 1000.0
                         if struggles and struggles[0].get("elapsed_ms") is not None else None),
        "op": op,
        "op_s": (t_end - t_op) if t_op is not None else None,
        # the worker's own part: the op's .start notification to the end one
        "op_worker_s": worker_span(events, op, end),
        "predicted": ("%s %d%% %sms" % (struggles[0]["prediction"]["outlook"],
                                        struggles[0]["prediction"]["confidence_pct"],
                                        struggles[0]["prediction"]["expected_downtime_ms"])
                      if struggles and struggles[0].get("prediction") else None),
        "actions": ",".join(dict.fromkeys(s["action"] for s in struggles)) or "-",
    }
    rig.destroy_guest(uuid)
    return row


def worker_span(events, op, end):
    """Seconds from the worker's live_migration_<op>.start notification to
    the terminal one, by the worker's own timestamps; None if unknown."""
    if op is None or end is None:
        return None
    start = [m for m in events if m["event_type"] == "instance.live_migration_%s.start" % op]
    def when(m):
        ts = m["timestamp"]  # the fraction is left out when it is 0
        return datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f" if "." in ts
                                          else "%Y-%m-%d %H:%M:%S")
    try:
        t = [when(m) for m in (start[0], end)]
    except (IndexError, KeyError, TypeError, ValueError):
        return None
    return (t[1] - t[0]).total_seconds()


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--link-speed", default="1G")
    ap.add_argument("--mem", type=int, default=256, help="guest RAM, MiB")
    ap.add_argument("--log-level", default="info", help="the workers' log level")
    ap.add_argument("--only", help="run the scenarios whose name contains this (alternatives separated by |)")
    args = ap.parse_args()

    release = os.path.join(REPO, "build", "release", "worker", "ferry-worker")
    binary = release if os.path.exists(release) else ferry_proc.WORKER
    rig_was_up = rig_up()
    tmp = tempfile.mkdtemp(prefix="ferry-bench-")
    dial = '\tlink_speed = "%s";' % args.link_speed
    workers = [ferry_proc.Worker(tmp, "bench-src", "A", "127.0.0.2", libvirt=dial,
                                 interval=1.0, log_level=args.log_level, binary=binary),
               ferry_proc.Worker(tmp, "bench-dst", "B", "127.0.0.3", libvirt=dial,
                                 interval=1.0, log_level=args.log_level, binary=binary)]
    bw, tuning = derived_bandwidth(binary, workers[0].conf)
    notes = listener.Collector(nova_peer.DEFAULT_URL).start()
    rows = []
    try:
        for w in workers:
            w.start()
        # nova's RPC layer boots on the first cast (imports, the broker
        # connection: seconds): not part of the first scenario's figure
        nova_peer.setup()
        nova_peer.cast_abort(str(uuidlib.uuid4()), "bench-warmup")
        print("ferry-worker %s, link_speed %s, guest %d MiB, TCG; ferry's defaults otherwise:"
              % (binary, args.link_speed, args.mem))
        print(tuning)
        for name, frac, ws, full, specs, op in SCENARIOS:
            if args.only and not any(o in name for o in args.only.split("|")):
                continue
            row = run_scenario(name, frac, ws, full, specs, op, bw, args.mem, notes)
            rows.append(row)
            print("  %-48s %s, %.1f s" % (name, row["outcome"], row["total_s"]), flush=True)
        rss = {}
        tick = os.sysconf("SC_CLK_TCK")
        for w in workers:
            with open("/proc/%d/status" % w.proc.pid) as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
            with open("/proc/%d/stat" % w.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / float(tick)
            rss[w.host] = (st["VmRSS"].strip(), st["VmHWM"].strip(), cpu)
    finally:
        notes.stop()
        for w in workers:
            w.stop()
        rig_down(rig_was_up)

    print()
    hdr = ("scenario", "guest dirtying", "outcome", "total s", "x floor", "libvirt s",
           "downtime ms", "guest stall ms", "floor s", "iters", "warns", "warn@iter", "warn@s", "predicted",
           "nova op to end s", "policy actions")
    print(" | ".join(hdr))
    print(" | ".join("---" for _ in hdr))
    for r in rows:
        print(" | ".join([r["scenario"], r["dirty"], "%s (on %s, %s)" % (
            r["outcome"], r["on"], r["state"]), fmt(r["total_s"], ".1f"),
            fmt(r["total_s"] / r["floor_s"], ".2f"),
            fmt(r["libvirt_s"], ".1f"), fmt(r["downtime_ms"], "d"), fmt(r["stall_ms"], ".0f"), fmt(r["floor_s"], ".2f"),
            str(r["iterations"]), str(r["warnings"]), fmt(r["first_warn_iter"], "d"),
            fmt(r["first_warn_s"], ".1f"), r["predicted"] or "-",
            "-" if r["op"] is None else "%s %s (worker %s)" % (
                r["op"], fmt(r["op_s"], ".3f"), fmt(r["op_worker_s"], ".3f")),
            r["actions"]]))
    print()
    for host, (cur, peak, cpu) in rss.items():
        print("%s ferry-worker RSS %s (peak %s), CPU %.2f s over the whole run"
              % (host, cur, peak, cpu))
    print("logs: %s" % tmp)


if __name__ == "__main__":
    main()
