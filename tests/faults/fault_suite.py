#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fault suite on the real rig (issue 12): migrations of mixed kinds, each
with one fault injected at a seeded random point, and a table of what was
injected and how each migration ended.

    fault_suite.py [--seed S] [--short | -n N] [--end-timeout S]

Kinds: converging (a quiet guest), postcopy (a guest that dirties memory
faster than the bandwidth, post-copy permitted, 6 s completion deadline),
forbidden (the same guest, post-copy forbidden by the flavor's extra spec:
the deadline's abort ends it), abort (nova's live_migration_abort while it
runs).  Faults: kill -9 of the source or the destination worker (started
again on the same state dir), a broker restart, a libvirtd restart on the
source or the destination host (SIGTERM, or SIGKILL), and SIGTERM of the
source worker while another cast arrives (started again).

What is checked after each migration (ferry's promise, docs/faults.md):
exactly one terminal notification (post.end or rollback.end, or
postcopy_failed for a post-copy break), true to where the guest runs
(post.end: on B and not on A; rollback.end: on A and not on B), never on
both hosts, never lost, its heartbeat still advancing, and the migration no
longer listed by either worker.  Every wait is bounded.  Prints the seed
first, one row per migration, and `N passed, M failed`; exits 1 if any
failed.  Needs the rig (deploy/rig) and FERRY_WORKER; run it under the rig
lock."""
import argparse
import datetime
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

import ferry_proc  # noqa: E402
import libvirt  # noqa: E402
import listener  # noqa: E402
import nova_peer  # noqa: E402
import rig  # noqa: E402

POST_END = "instance.live_migration_post.end"
ROLLBACK_END = "instance.live_migration_rollback.end"
PC_FAILED = "instance.live_migration_postcopy_failed"
TERMINAL = (POST_END, ROLLBACK_END, PC_FAILED)
SHORT_NAME = {POST_END: "post.end", ROLLBACK_END: "rollback.end", PC_FAILED: "postcopy_failed"}

KINDS = ("converging", "postcopy", "forbidden", "abort")
FAULTS = ("kill9-src", "kill9-dst", "broker", "lvd-term-src", "lvd-kill-src",
          "lvd-term-dst", "lvd-kill-dst", "sigterm-src")
SHORT_FAULTS = ("kill9-src", "kill9-dst", "broker", "lvd-term-src", "lvd-kill-dst",
                "sigterm-src")
# Seconds after the cast within which the fault lands (about the length of
# an undisturbed migration of that kind on the rig).
WINDOW = {"converging": 7.0, "postcopy": 6.5, "forbidden": 7.0, "abort": 5.5}

# Source compute hosts (libvirt A), as tests/e2e/conftest.py's policy hosts;
# all migrate to "fdst" (libvirt B).  completion_timeout is per GiB (at least
# 2 GiB counted): 3 s/GiB is a 6 s deadline.
SOURCES = {
    # 8 MiB/s: the quiet guest's ~40 MiB take ~5 s, time for a fault to land
    "fconv": "\tlive_migration_bandwidth = 8;\n",
    "fpc": "\tlive_migration_bandwidth = 32;\n"
           "\tlive_migration_permit_post_copy = true;\n"
           "\tlive_migration_completion_timeout = 3;\n",
    "fab": "\tlive_migration_bandwidth = 32;\n"
           "\tlive_migration_completion_timeout = 0;\n",
}
SOURCE_OF = {"converging": "fconv", "postcopy": "fpc", "forbidden": "fpc", "abort": "fab"}
DEST = "fdst"

SIGTERM_EXIT_WAIT = 45.0  # ferry promises to exit within 30 s of SIGTERM


def log(msg):
    print(msg, flush=True)


def sh(*cmd, timeout=180, env=None):
    r = subprocess.run(list(cmd), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                   r.stdout.decode(errors="replace")[-800:]))
    return r.stdout.decode(errors="replace")


def destroy(uuid):
    """Abort the job and destroy domain uuid on both hosts (hosts that do not
    answer are skipped)."""
    for h in rig.HOSTS:
        try:
            conn = rig.connect(h)
        except libvirt.libvirtError:
            continue
        try:
            dom = conn.lookupByUUIDString(uuid)
            for op in (dom.abortJob, dom.destroy):
                try:
                    op()
                except libvirt.libvirtError:
                    pass
        except libvirt.libvirtError:
            pass
        finally:
            conn.close()


def list_migrations(host, tries=3):
    """ferry's list_migrations, retried: right after a broker restart the
    peer's own connection may still be reconnecting."""
    for n in range(tries):
        try:
            return nova_peer.rpc_client(host, version="1.0", namespace="ferry",
                                        timeout=15).call(nova_peer.context(), "list_migrations")
        except Exception:
            if n == tries - 1:
                raise
            time.sleep(2.0)


def state(host, uuid):
    try:
        return rig.domain_state(host, uuid)
    except libvirt.libvirtError as e:
        return "error(%s)" % e.get_error_code()


class Suite:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="ferry-faults-")
        self.workers = {}
        self.notes = None
        self.rows = []

    # --- rig and workers -------------------------------------------------

    def start(self):
        if subprocess.run(["bash", "deploy/rig/rabbit.sh", "status"], cwd=REPO,
                          stdout=subprocess.DEVNULL).returncode != 0:
            sh("bash", "deploy/rig/rabbit.sh", "start")
        sh("bash", "deploy/rig/hosts.sh", "start")
        sh("make", "-s", "-C", "deploy/guest")
        rig.destroy_all()
        self.notes = listener.Collector(nova_peer.DEFAULT_URL).start()
        for host, extra in SOURCES.items():
            self.workers[host] = ferry_proc.Worker(
                self.tmp, host, "A", "127.0.0.2", rpc_timeout=20,
                libvirt=extra or "\tlive_migration_bandwidth = 32;\n")
        self.workers[DEST] = ferry_proc.Worker(self.tmp, DEST, "B", "127.0.0.3", rpc_timeout=20,
                                               libvirt="\tlive_migration_bandwidth = 32;\n")
        for w in self.workers.values():
            w.start()
        log("worker logs in %s" % self.tmp)

    def stop(self):
        codes = {}
        for h, w in self.workers.items():
            if w.proc is not None:
                try:
                    codes[h] = w.stop()
                except Exception as e:  # keep stopping the others
                    codes[h] = "error: %s" % e
        if self.notes is not None:
            try:
                self.notes.stop()
            except Exception:
                pass
        try:
            rig.destroy_all()
        except Exception:
            pass
        log("worker exit codes: %s" % codes)

    def bus_ready(self, timeout=90.0):
        """Waits until every worker consumes its compute.<host> queue and
        the notification listener its queues again (after a broker restart:
        a cast or notification sent before would be dropped unrouted, which
        is the broker's way, not ferry's).  Returns the problems."""
        deadline = time.monotonic() + timeout
        missing = []
        while time.monotonic() < deadline:
            try:
                out = sh("bash", "deploy/rig/rabbit.sh", "ctl", "-q", "list_queues",
                         "name", "consumers", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                out = ""
            consumers = {}
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    consumers[parts[0]] = int(parts[1])
            missing = ["compute.%s" % h for h in self.workers
                       if consumers.get("compute.%s" % h, 0) < 1]
            notif = [q for q in consumers if q.startswith("versioned_notifications.")]
            if not notif or any(consumers[q] < 1 for q in notif):
                missing.append("versioned_notifications.*")
            if not missing:
                return []
            time.sleep(1.0)
        return ["no consumer on %s %.0fs after the broker restart"
                % (", ".join(missing), timeout)]

    def ensure_up(self):
        """After a migration: the broker, both hosts and every worker run
        again (a failed fault may have left one down).  Returns what had to
        be started, for the row's verdict."""
        fixed = []
        if subprocess.run(["bash", "deploy/rig/rabbit.sh", "status"], cwd=REPO,
                          stdout=subprocess.DEVNULL, timeout=60).returncode != 0:
            sh("bash", "deploy/rig/rabbit.sh", "start", env={"RABBIT_KEEP_DATA": "1"})
            fixed.append("broker was down")
            fixed += self.bus_ready()
        if subprocess.run(["bash", "deploy/rig/hosts.sh", "status"], cwd=REPO,
                          stdout=subprocess.DEVNULL, timeout=60).returncode != 0:
            sh("bash", "deploy/rig/hosts.sh", "start")
            fixed.append("a libvirt host was down")
        for h, w in self.workers.items():
            if not w.alive():
                code = w.proc.returncode if w.proc is not None else None
                fixed.append("worker %s had exited (%s)" % (h, code))
                if w.proc is not None and not w._log.closed:
                    w._log.close()
                w.start()
        return fixed

    # --- faults ----------------------------------------------------------

    def restart_worker_after_kill(self, w, delay):
        w.kill()
        time.sleep(delay)
        w.start()

    def inject(self, fault, m):
        """Injects fault; returns a list of problems seen while doing so."""
        problems = []
        delay = m["restart_delay"]
        src = self.workers[m["source"]]
        if fault == "kill9-src":
            self.restart_worker_after_kill(src, delay)
        elif fault == "kill9-dst":
            self.restart_worker_after_kill(self.workers[DEST], delay)
        elif fault == "broker":
            sh("bash", "deploy/rig/rabbit.sh", "stop", timeout=120)
            time.sleep(delay)
            sh("bash", "deploy/rig/rabbit.sh", "start", timeout=200,
               env={"RABBIT_KEEP_DATA": "1"})
            problems += self.bus_ready()
        elif fault.startswith("lvd-"):
            sig = "TERM" if fault.startswith("lvd-term") else "KILL"
            host = "A" if fault.endswith("src") else "B"
            sh("bash", "deploy/rig/hosts.sh", "restart-daemon", host, sig, timeout=200)
        elif fault == "sigterm-src":
            src.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # a cast arrives while the worker stops: it must stay queued for
            # the next start (issue 12.10), not be rolled back or lost
            nova_peer.cast_live_migration(m["extra_uuid"], m["source"], DEST,
                                          mig_id=m["mig_id"] + 1000)
            try:
                src.proc.wait(timeout=SIGTERM_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                problems.append("source worker still running %.0fs after SIGTERM"
                                % SIGTERM_EXIT_WAIT)
                src.proc.kill()
                src.proc.wait()
            if src.proc.returncode not in (0, None) and not problems:
                problems.append("source worker exited %s after SIGTERM" % src.proc.returncode)
            src._log.close()
            time.sleep(delay)
            src.start()
        else:
            raise ValueError(fault)
        return problems

    # --- one migration ---------------------------------------------------

    def phase_now(self, uuid):
        phase = "pre"
        for e in self.notes.events(uuid):
            if e["event_type"] in TERMINAL:
                return "ended"
            if e["event_type"] == "instance.live_migration_progress":
                phase = e["payload"]["nova_object.data"].get("phase") or phase
        return phase

    def terminals(self, uuid):
        return [e["event_type"] for e in self.notes.events(uuid) if e["event_type"] in TERMINAL]

    def ended_at(self, uuid, t0_wall):
        """Seconds from the cast to the first terminal notification, by the
        publisher's timestamp (oslo's UTC format), or None."""
        for e in self.notes.events(uuid):
            if e["event_type"] in TERMINAL:
                try:
                    ts = datetime.datetime.strptime(e["timestamp"].replace("T", " "),
                                                    "%Y-%m-%d %H:%M:%S.%f")
                except (TypeError, ValueError):
                    return None
                return ts.replace(tzinfo=datetime.timezone.utc).timestamp() - t0_wall
        return None

    def wait_terminal(self, uuid, deadline):
        while time.monotonic() < deadline:
            if self.terminals(uuid):
                return True
            time.sleep(0.2)
        return bool(self.terminals(uuid))

    def judge(self, m, uuid, name, source):
        """Problems with how migration uuid ended (empty: ok), its outcome
        and where the guest runs."""
        problems = []
        terms = self.terminals(uuid)
        outcome = "+".join(SHORT_NAME[t] for t in terms) or "none"
        a, b = state("A", uuid), state("B", uuid)
        where = {(True, False): "A", (False, True): "B", (True, True): "both"}.get(
            (a == "running", b == "running"), "none(A=%s,B=%s)" % (a, b))
        if not terms:
            problems.append("no terminal notification within %.0fs" % self.args.end_timeout)
        elif len(terms) > 1:
            problems.append("%d terminal notifications" % len(terms))
        if where == "both":
            problems.append("guest running on both hosts")
        elif where.startswith("none") and PC_FAILED not in terms:
            problems.append("guest runs nowhere (lost)")
        for e in self.notes.events(uuid):
            if e["event_type"] in (POST_END, ROLLBACK_END) and \
                    source not in (e.get("publisher_id") or ""):
                problems.append("%s published by %r, not the source host"
                                % (SHORT_NAME[e["event_type"]], e.get("publisher_id")))
        if len(terms) == 1:
            t = terms[0]
            if t == POST_END and where != "B":
                problems.append("post.end but guest on %s" % where)
            if t == ROLLBACK_END and where != "A":
                problems.append("rollback.end but guest on %s" % where)
            if t == PC_FAILED and where in ("A", "B", "both"):
                problems.append("postcopy_failed but guest running on %s" % where)
        if m["kind"] == "forbidden" and any(
                e["event_type"] == "instance.live_migration_progress"
                and e["payload"]["nova_object.data"].get("phase") == "postcopy"
                for e in self.notes.events(uuid)):
            problems.append("post-copy although the flavor forbids it")
        if where in ("A", "B"):
            try:
                rig.wait_heartbeat_advances(where, name, timeout=15)
            except TimeoutError:
                problems.append("heartbeat stuck on %s" % where)
        for host in (source, DEST):
            w = self.workers[host]
            if not w.alive():
                problems.append("worker %s not running" % host)
                continue
            try:
                listed = [x for x in list_migrations(host) if x.get("instance_uuid") == uuid]
            except Exception as e:  # a timeout is a finding, not a crash
                problems.append("list_migrations on %s failed: %s" % (host, type(e).__name__))
                continue
            for x in listed:
                if x.get("phase") != "postcopy_failed":
                    problems.append("still listed on %s (phase %s)" % (host, x.get("phase")))
        return outcome, where, problems

    def run_one(self, i, kind, fault):
        rng = self.rng
        m = {"i": i, "kind": kind, "fault": fault, "source": SOURCE_OF[kind],
             "mig_id": 100 + i, "at": rng.uniform(0.0, WINDOW[kind]),
             "restart_delay": rng.uniform(0.2, 3.0), "abort_after": rng.uniform(1.0, 4.0),
             "when": "", "outcome": "", "where": "", "problems": [], "uuid": None,
             "extra_uuid": None, "log_marks": {}}
        self.cur = m
        for h, w in self.workers.items():
            m["log_marks"][h] = len(w.log()) if os.path.exists(w.log_path) else 0
        busy = kind != "converging"
        name = "f%02d%s" % (i, uuidlib.uuid4().hex[:6])
        uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=160 if busy else 4, ws=32)
        m["uuid"], m["name"] = uuid, name
        extra_name = None
        if fault == "sigterm-src":
            extra_name = "x%02d%s" % (i, uuidlib.uuid4().hex[:6])
            m["extra_uuid"] = rig.boot_guest("A", name=extra_name, mem_mib=256, rate=4, ws=32)
        rig.wait_heartbeat_advances("A", name, timeout=15)
        specs = {"ferry:live_migration_permit_post_copy": "false"} if kind == "forbidden" else None
        t0 = time.monotonic()
        m["t0_wall"] = time.time()
        nova_peer.cast_live_migration(uuid, m["source"], DEST, extra_specs=specs,
                                      mig_id=m["mig_id"])
        injected = aborted = False
        first_progress = None
        bound = t0 + 60.0
        while not (injected and (aborted or kind != "abort")) and time.monotonic() < bound:
            now = time.monotonic()
            if not injected and now - t0 >= m["at"]:
                m["when"] = "+%.1fs %s%s" % (now - t0, self.phase_now(uuid), m["when"])
                m["problems"] += self.inject(fault, m)
                injected = True
                continue
            if kind == "abort" and not aborted:
                if first_progress is None and self.notes.wait_for(
                        "instance.live_migration_progress", uuid, timeout=0):
                    first_progress = now
                if first_progress is not None and now - first_progress >= m["abort_after"]:
                    nova_peer.cast_abort(uuid, m["source"], mig_id=m["mig_id"])
                    m["when"] += " (abort +%.1fs)" % (now - t0)
                    aborted = True
                    continue
            time.sleep(0.05)
        if kind == "abort" and not aborted:
            m["problems"].append("no progress within 60s, abort not sent")
        deadline = time.monotonic() + self.args.end_timeout
        self.wait_terminal(uuid, deadline)
        m["ended"] = self.ended_at(uuid, m["t0_wall"])
        if m["extra_uuid"]:
            self.wait_terminal(m["extra_uuid"], deadline)
        time.sleep(3.0)  # a duplicate terminal notification would come now
        m["outcome"], m["where"], probs = self.judge(m, uuid, name, m["source"])
        m["problems"] += probs
        if m["extra_uuid"]:
            out, where, probs = self.judge(m, m["extra_uuid"], extra_name, m["source"])
            if out == "rollback.end":
                # a quiet guest, nothing injected into its migration: the
                # cast must wait in its queue for the next start
                probs.append("rolled back instead of kept queued for the next start "
                             "(issue 12.10)")
            m["outcome"] += " | extra " + out
            m["where"] += " | " + where
            m["problems"] += ["extra cast: " + p for p in probs]
        m["terminal_counts"] = {u: len(self.terminals(u))
                                for u in (uuid, m["extra_uuid"]) if u}
        return m

    def run(self, plan):
        for i, (kind, fault) in enumerate(plan):
            log("[%d/%d] %s with %s ..." % (i + 1, len(plan), kind, fault))
            t = time.monotonic()
            self.cur = None
            try:
                m = self.run_one(i, kind, fault)
            except Exception as e:
                traceback.print_exc()
                m = self.cur or {"i": i, "kind": kind, "fault": fault, "when": "",
                                 "uuid": None, "extra_uuid": None, "problems": []}
                m.update(outcome="?", where="?", terminal_counts={})
                m["problems"].append("harness: %s: %s" % (type(e).__name__, e))
            try:
                fixed = self.ensure_up()
            except Exception as e:
                fixed = ["could not restore the rig: %s" % e]
            m["problems"] += fixed
            for u in (m.get("uuid"), m.get("extra_uuid")):
                if u:
                    destroy(u)
            m["secs"] = time.monotonic() - t
            self.rows.append(m)
            log("    %s" % self.format_row(m))
        # Late duplicates: a terminal notification for an already judged
        # migration (e.g. from a worker that re-adopted it) breaks the promise.
        time.sleep(2.0)
        for m in self.rows:
            for u, n in m.get("terminal_counts", {}).items():
                now_n = len(self.terminals(u))
                if now_n != n:
                    m["problems"].append("late terminal notification(s) for %s: %d -> %d"
                                         % (u[:8], n, now_n))

    @staticmethod
    def format_row(m):
        verdict = "ok" if not m["problems"] else "FAIL: " + "; ".join(
            " ".join(p.split()) for p in m["problems"])
        ended = "+%.1fs" % m["ended"] if m.get("ended") is not None else "-"
        return "%-3d %-10s %-12s %-26s %-7s %-30s %-14s %s" % (
            m["i"], m["kind"], m["fault"], m["when"], ended, m["outcome"], m["where"], verdict)

    def table(self):
        log("")
        log("%-3s %-10s %-12s %-26s %-7s %-30s %-14s %s" % (
            "#", "kind", "fault", "when", "ended", "outcome", "guest on", "verdict"))
        for m in self.rows:
            log(self.format_row(m))
        failed = sum(1 for m in self.rows if m["problems"])
        log("")
        log("%d passed, %d failed" % (len(self.rows) - failed, failed))
        return failed


def make_plan(rng, n, short):
    faults = SHORT_FAULTS if short else FAULTS
    fs = list(faults) * int(math.ceil(float(n) / len(faults)))
    ks = list(KINDS) * int(math.ceil(float(n) / len(KINDS)))
    rng.shuffle(fs)
    rng.shuffle(ks)
    return list(zip(ks[:n], fs[:n]))


def main():
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("oslo_messaging").setLevel(logging.ERROR)
    logging.getLogger("oslo.messaging").setLevel(logging.CRITICAL)  # reconnect chatter
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--short", action="store_true", help="about 6 migrations (CI)")
    ap.add_argument("-n", type=int, default=None, help="migrations (default 24, short 6)")
    ap.add_argument("--end-timeout", type=float, default=None,
                    help="seconds to wait for the terminal notification after the fault")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    log("seed: %d" % a.seed)
    n = a.n or (6 if a.short else 24)
    if a.end_timeout is None:
        a.end_timeout = 120.0 if a.short else 180.0
    if not os.access(ferry_proc.WORKER, os.X_OK):
        log("no ferry-worker at %s (set FERRY_WORKER)" % ferry_proc.WORKER)
        return 2
    suite = Suite(a)
    plan = make_plan(suite.rng, n, a.short)
    try:
        suite.start()
        suite.run(plan)
    finally:
        suite.stop()
    failed = suite.table()
    log("seed: %d (rerun: %s --seed %d%s)" % (a.seed, sys.argv[0], a.seed,
                                               " --short" if a.short else " -n %d" % n))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
