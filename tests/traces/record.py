#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Record libvirt job-stats traces of real live migrations on ferry's rig,
for the struggling-detection policy tests (worker/wk_policy.c,
tests/unit/test_wk_policy.c).

    /usr/bin/python3 tests/traces/record.py [SCENARIO ...] [--out DIR]

Scenarios (default: all): converging, converging_fast, nonconverging,
sawtooth, stalled, hot_small, large_ws, bursty, link_slowdown, issue10.  Each boots its own guest (ferry-trace-<scenario>) on
rig host A, starts a p2p live migration to qemu+tcp://127.0.0.3/system in a
thread (migrateToURI3, VIR_MIGRATE_LIVE|PEER2PEER, optional
VIR_MIGRATE_PARAM_BANDWIDTH, VIR_MIGRATE_PARAM_URI tcp://127.0.0.3), polls
jobStats() every 250 ms and writes JSON lines to DIR/<scenario>.jsonl
(default tests/data/traces):

    {"t_ms": 250, "type": 2, "memory_total": ..., <every jobStats field>}
    {"event": "iteration", "iteration": N, "t_ms": ...}   MIGRATION_ITERATION
    {"event": "freeze"|"thaw"|"abort", "t_ms": ...}       what the recorder did
    {"event": "slowdown", "t_ms": ..., "iteration": N, "bandwidth_mib_s": B}
    {"event": "done", "ok": true|false, "t_ms": ..., "error": "..."}

t_ms is milliseconds since the migrate call started (monotonic).  The first
line is {"event": "scenario", ...} with the guest and migration parameters
(max_downtime_ms: the max downtime QEMU used, libvirt's default 300).
The rig must be up (deploy/rig/hosts.sh start).  Only the recorder's own
guests are destroyed afterwards, on both hosts.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import rig  # noqa: E402

DEST_URI = rig.TCP_URI_B
MIGRATE_URI = "tcp://127.0.0.3"
POLL_S = 0.25

# name: guest cmdline, bandwidth MiB/s (0 = uncapped), abort after s, freeze at s for s.
SCENARIOS = {
    # Small working set, capped link: converges in a few iterations.
    "converging": dict(rate=4, ws=32, full=0, bw=32, abort_s=60),
    # Idle guest, uncapped loopback: converges in well under a second.
    "converging_fast": dict(rate=0, ratek=4, ws=1, full=0, bw=0, abort_s=60),
    # Whole 64 MiB working set re-dirtied in under a second, 24 MiB/s link: never converges.
    "nonconverging": dict(rate=96, ws=64, full=0, bw=24, abort_s=13),
    # Dirty rate just under the link rate: remaining rises at every dirty-log
    # sync and falls in between (saw-tooth), shrinking slowly until it fits
    # the 300 ms default max downtime.
    "sawtooth": dict(rate=24, ws=64, full=0, bw=32, abort_s=60),
    # Capped migration whose destination QEMU is SIGSTOPped for 6 s.
    # (32 MiB/s so that the socket buffers fill within ~0.25 s of the freeze.)
    "stalled": dict(rate=96, ws=64, full=0, bw=32, abort_s=None, freeze_at=4.0, freeze_s=6.0),
    # KubeVirt VEP 248's case: a small hot working set (8 MiB) re-dirtied far
    # faster than the link; the dirty rate QEMU reports is the link rate, yet
    # the whole set fits one 300 ms switch-over (9.6 MiB at 32 MiB/s).
    "hot_small": dict(rate=96, ws=8, full=0, bw=32, abort_s=30),
    # 192 MiB working set dirtied at 1.5x the link rate: never converges.
    "large_ws": dict(rate=48, ws=192, full=0, bw=32, abort_s=14),
    # Bursts: 128 MiB/s for 250 ms every second (32 MiB/s on average) over
    # 64 MiB on a 32 MiB/s link.
    "bursty": dict(rate=128, ws=64, full=0, bw=32, abort_s=14, extra="on=250 off=750"),
    # Converging at 64 MiB/s (32 MiB/s over 64 MiB) until the link is cut to
    # 16 MiB/s when iteration 3 starts: struggles from there on.
    "link_slowdown": dict(rate=32, ws=64, full=0, bw=64, abort_s=16, slow_at_iter=3,
                          slow_bw=16),
    # The case of issue 10: 256 MiB/s over 64 MiB on a 100 MiB/s link.
    "issue10": dict(rate=256, ws=64, full=0, bw=100, abort_s=10),
}

_event_loop_started = False


def _start_event_loop():
    global _event_loop_started
    if _event_loop_started:
        return
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-events", daemon=True).start()
    _event_loop_started = True


def _dest_qemu_pid(name):
    path = os.path.join(rig.RIG_DIR, "B", "run", "qemu", "%s.pid" % name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            time.sleep(0.05)
    raise TimeoutError("no destination QEMU pid file %s" % path)


def _destroy_own(name):
    for h in rig.HOSTS:
        try:
            conn = rig.connect(h)
        except libvirt.libvirtError:
            continue
        try:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            for op in (dom.abortJob, dom.destroy):
                try:
                    op()
                except libvirt.libvirtError:
                    pass
        finally:
            conn.close()


def record(scenario, out_dir):
    sc = SCENARIOS[scenario]
    name = "ferry-trace-%s" % scenario
    _start_event_loop()
    _destroy_own(name)
    rig.boot_guest("A", name, rate=sc["rate"], ws=sc["ws"], full=sc["full"],
                   ratek=sc.get("ratek"), extra=sc.get("extra", ""))
    time.sleep(1.5)  # let the guest reach its steady dirtying rate
    lines = []
    lock = threading.Lock()
    t0 = [time.monotonic()]

    def now_ms():
        return int(round((time.monotonic() - t0[0]) * 1000))

    def emit(obj):
        with lock:
            lines.append(obj)

    emit({"event": "scenario", "name": scenario, "guest_mem_mib": 256,
          "rate_mib_s": sc["rate"], "ratek": sc.get("ratek"), "ws_mib": sc["ws"],
          "full": sc["full"], "bandwidth_mib_s": sc["bw"], "poll_ms": int(POLL_S * 1000),
          "guest_extra": sc.get("extra", "")})

    conn = rig.connect("A")
    result = {}
    try:
        dom = conn.lookupByName(name)
        # The policy replays a trace under the max downtime it ran with.
        lines[0]["max_downtime_ms"] = int(dom.migrateGetMaxDowntime(0))

        last_iter = [0]

        def on_iter(_c, _d, iteration, _o):
            last_iter[0] = int(iteration)
            emit({"event": "iteration", "iteration": int(iteration), "t_ms": now_ms()})

        cb = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                                         on_iter, None)
        params = {libvirt.VIR_MIGRATE_PARAM_URI: MIGRATE_URI}
        if sc["bw"]:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = sc["bw"]
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER

        def migrate():
            try:
                dom.migrateToURI3(DEST_URI, params, flags)
                result["ok"] = True
            except libvirt.libvirtError as e:
                result["ok"] = False
                result["error"] = str(e)
            result["t_ms"] = now_ms()

        t0[0] = time.monotonic()
        th = threading.Thread(target=migrate, name="migrate")
        th.start()
        frozen_pid = None
        froze_at = None
        aborted = False
        slowed = False
        next_poll = time.monotonic() + POLL_S
        while th.is_alive():
            time.sleep(max(0.0, next_poll - time.monotonic()))
            next_poll += POLL_S
            if not th.is_alive():
                break
            t = now_ms()
            try:
                st = dom.jobStats()
            except libvirt.libvirtError:
                continue
            if st.get("type", 0) == 0:
                continue
            rec = {"t_ms": t}
            rec.update(st)
            emit(rec)
            el = t / 1000.0
            if "slow_at_iter" in sc and not slowed and last_iter[0] >= sc["slow_at_iter"]:
                dom.migrateSetMaxSpeed(sc["slow_bw"], 0)
                slowed = True
                emit({"event": "slowdown", "t_ms": now_ms(), "iteration": last_iter[0],
                      "bandwidth_mib_s": sc["slow_bw"]})
            if "freeze_at" in sc and froze_at is None and el >= sc["freeze_at"]:
                frozen_pid = _dest_qemu_pid(name)
                os.kill(frozen_pid, signal.SIGSTOP)
                froze_at = el
                emit({"event": "freeze", "t_ms": now_ms(), "pid": frozen_pid})
            if frozen_pid is not None and el >= froze_at + sc["freeze_s"]:
                os.kill(frozen_pid, signal.SIGCONT)
                frozen_pid = None
                emit({"event": "thaw", "t_ms": now_ms()})
                sc = dict(sc, abort_s=el)
            if not aborted and sc.get("abort_s") is not None and el >= sc["abort_s"]:
                emit({"event": "abort", "t_ms": now_ms()})
                try:
                    dom.abortJob()
                except libvirt.libvirtError as e:
                    emit({"event": "abort_failed", "t_ms": now_ms(), "error": str(e)})
                aborted = True
        th.join()
        if frozen_pid is not None:
            os.kill(frozen_pid, signal.SIGCONT)
        time.sleep(0.3)  # late iteration events
        try:
            conn.domainEventDeregisterAny(cb)
        except libvirt.libvirtError:
            pass
        done = {"event": "done", "ok": result.get("ok", False), "t_ms": result.get("t_ms")}
        if "error" in result:
            done["error"] = result["error"]
        emit(done)
    finally:
        conn.close()
        _destroy_own(name)

    head = [o for o in lines if o.get("event") == "scenario"]
    lines = head + sorted((o for o in lines if o.get("event") != "scenario"),
                          key=lambda o: o.get("t_ms") or 0)
    path = os.path.join(out_dir, "%s.jsonl" % scenario)
    with open(path, "w") as f:
        for o in lines:
            f.write(json.dumps(o, sort_keys=True) + "\n")
    return path, lines


def summarize(lines):
    samples = [o for o in lines if "event" not in o]
    iters = [o["iteration"] for o in lines if o.get("event") == "iteration"]
    done = [o for o in lines if o.get("event") == "done"][-1]
    return "%d samples, iterations %s, done ok=%s at %s ms%s" % (
        len(samples), iters[-1] if iters else 0, done["ok"], done["t_ms"],
        (" (%s)" % done["error"]) if "error" in done else "")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                    help="one of: %s (default: all)" % ", ".join(SCENARIOS))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "traces"))
    a = ap.parse_args(argv)
    for sc in a.scenarios:
        if sc not in SCENARIOS:
            ap.error("unknown scenario %r" % sc)
    os.makedirs(a.out, exist_ok=True)
    for sc in a.scenarios or list(SCENARIOS):
        path, lines = record(sc, a.out)
        print("%s: %s -> %s (%d bytes)" % (sc, summarize(lines), os.path.relpath(path),
                                          os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
