#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""RPC round-trip benchmark: ferry-worker against oslo.messaging's own RPC
server, both called by oslo's RPCClient on the shared broker.

It starts its own ferry-worker (libvirt test:///default, log level info) and
its own oslo.messaging RPC server (threading executor, in a child process so
its CPU time is its own) with an endpoint of the same shape as ferry's admin
query: list_migrations, namespace "ferry", version 1.0, returning [].  Both
listen on topic "compute" of exchange "nova" under different server names,
in a vhost of their own ("bench" by default) that it creates and deletes.
Then, for each server, it makes N sequential calls and N calls spread over
T threads, and prints calls/s and p50/p99/max latency, and for both server
processes the CPU time each run cost, both as utime + stime from
/proc/<pid>/stat (100 Hz ticks) and as the on-CPU ns of all its threads from
/proc/<pid>/task/*/schedstat (precise), and the memory (VmRSS / VmHWM from
/proc/<pid>/status).

    /usr/bin/python3 tests/bench/rpc_bench.py [ferry-worker] [-n 2000] [-t 8]

Not a test: it asserts nothing about time; it prints figures.  The worker
is argv[1], else $FERRY_WORKER, else the first release build found.  Every
process it starts is stopped by PID."""
import argparse
import importlib.metadata
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))
sys.path.insert(0, os.path.join(REPO, "tests", "interop"))

import conftest  # noqa: E402  (the interop harness: vhosts, oslo config, worker config)
import ferry_proc  # noqa: E402

TOPIC = "compute"
EXCHANGE = "nova"
FERRY_HOST = "bench-ferry"
OSLO_HOST = "bench-oslo"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def default_worker():
    for d in ("hC-rel", "release"):
        p = os.path.join(REPO, "build", d, "worker", "ferry-worker")
        if os.access(p, os.X_OK):
            return p
    return ferry_proc.WORKER


def cpu_seconds(pid):
    """utime + stime of @pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_ns(pid):
    """On-CPU time of every thread of @pid, in ns: the sum of the first
    field of /proc/<pid>/task/*/schedstat (the scheduler's own clock, not
    sampled in ticks).  A thread that ended in between takes its share
    with it; the servers measured here keep theirs."""
    total = 0
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def pin(pid, cpus):
    """Sets the CPU affinity of every thread of @pid (a process's own
    affinity call only moves the thread it names)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), cpus)


def broker_pid():
    """The rig broker's OS pid (deploy/rig/rabbit.sh starts it), or None."""
    try:
        with open("/var/lib/rabbitmq/mnesia/rabbit@localhost.pid") as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def mem_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def serve_oslo(url, tmp):
    """Child-process mode: an oslo RPC server until SIGTERM."""
    import oslo_messaging as messaging

    logging.getLogger("amqp").setLevel(logging.ERROR)

    class Endpoint:
        target = messaging.Target(namespace="ferry", version="1.0")

        def list_migrations(self, ctxt):
            return []

    conf = conftest.oslo_conf(tmp, control_exchange=EXCHANGE)
    transport = messaging.get_rpc_transport(conf, url=url)
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=TOPIC, server=OSLO_HOST), [Endpoint()],
        executor="threading")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    server.start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    server.wait()
    transport.cleanup()
    return 0


class OsloServerProc:
    def __init__(self, url, tmp):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-oslo", url, "--tmp", tmp],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise SystemExit("the oslo RPC server did not start")
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_calls(client, ctxt, n, threads):
    """n calls of list_migrations over @threads threads; (wall s, latencies s, errors)."""
    lat = []
    errors = []
    lock = threading.Lock()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(count):
        mine = []
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                r = client.call(ctxt, "list_migrations")
                if r != []:
                    raise AssertionError("unexpected reply %r" % (r,))
            except Exception as e:  # counted and printed, the run goes on
                with lock:
                    errors.append(repr(e))
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(c,)) for c in per]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, sorted(lat), errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("worker", nargs="?", default=os.environ.get("FERRY_WORKER"))
    ap.add_argument("-n", "--calls", type=int, default=2000)
    ap.add_argument("-t", "--threads", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--vhost", default="bench")
    ap.add_argument("--only", choices=("ferry", "oslo"),
                    help="measure only this server (both by default)")
    ap.add_argument("--perf", metavar="ARGS",
                    help="run `perf ARGS -p <ferry-worker pid>` during its timed runs, e.g. "
                    "--perf 'record -g -o rpc.data' or --perf 'stat -e "
                    "raw_syscalls:sys_enter,context-switches -o rpc.stat'")
    ap.add_argument("--isolate", action="store_true",
                    help="pin each server to the last CPU and this client and the rig's broker "
                         "to the others: the server's CPU figure is then its own work, not "
                         "softirq work of others' loopback traffic charged to it (kernels "
                         "without CONFIG_IRQ_TIME_ACCOUNTING)")
    ap.add_argument("--serve-oslo", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_oslo:
        return serve_oslo(a.serve_oslo, a.tmp)

    binary = os.path.abspath(a.worker or default_worker())
    if not os.access(binary, os.X_OK):
        raise SystemExit("no ferry-worker at %s (pass it as argv[1] or FERRY_WORKER)" % binary)
    if subprocess.run(["bash", "deploy/rig/rabbit.sh", "status"], cwd=REPO,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["bash", "deploy/rig/rabbit.sh", "start"], cwd=REPO, check=True)

    import oslo_messaging as messaging

    # py-amqp warns about deliveries racing the final channel close
    logging.getLogger("amqp").setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="ferry-rpc-bench-")
    vhost = conftest.Vhost(a.vhost)
    url = conftest.url(a.vhost)
    worker = oslo = transport = None
    try:
        conf_text = conftest.CONF.format(
            url=url, host=FERRY_HOST, state=os.path.join(tmp, FERRY_HOST), exchange=EXCHANGE,
            alt_topic="compute-alt", rabbit="").replace('log_level = "debug"',
                                                        'log_level = "info"')
        worker = ferry_proc.Worker(tmp, FERRY_HOST, binary=binary, conf_text=conf_text)
        worker.start()
        oslo = OsloServerProc(url, tmp)

        conf = conftest.oslo_conf(tmp, control_exchange=EXCHANGE)
        transport = messaging.get_rpc_transport(conf, url=url)
        ctxt = {"request_id": "req-bench", "user_id": "u-bench", "project_id": "p-bench"}
        servers = (("ferry-worker", FERRY_HOST, worker.proc.pid),
                   ("oslo.messaging server", OSLO_HOST, oslo.pid))

        print("ferry-worker: %s" % binary)
        print("broker: %s  calls per run: %d  threads in the concurrent run: %d" % (
            url.replace("nova:nova@", ""), a.calls, a.threads))
        print("client: oslo.messaging %s RPCClient, one transport, Python %s; "
              "%d CPUs, load average %.2f" % (
                  importlib.metadata.version("oslo.messaging"), sys.version.split()[0],
                  os.cpu_count(), os.getloadavg()[0]))
        print()
        rows = []
        if a.only:
            servers = servers[:1] if a.only == "ferry" else servers[1:]
        if a.isolate:
            ncpu = os.cpu_count()
            if ncpu < 2:
                raise SystemExit("--isolate needs 2 CPUs")
            rest, last = set(range(ncpu - 1)), {ncpu - 1}
            pin(os.getpid(), rest)
            if broker_pid():
                pin(broker_pid(), rest)
            for _, _, pid in servers:
                pin(pid, last)
            print("isolated: servers on CPU %d; client and broker (pid %s) on CPUs %s" % (
                ncpu - 1, broker_pid(), ",".join(map(str, sorted(rest)))))
            print()
        for label, server, pid in servers:
            client = messaging.get_rpc_client(transport, messaging.Target(
                topic=TOPIC, server=server, namespace="ferry", version="1.0"), timeout=30)
            run_calls(client, ctxt, a.warmup, 1)
            mem0 = mem_kib(pid)
            perf = None
            if a.perf and pid == worker.proc.pid:
                perf = subprocess.Popen(["perf"] + shlex.split(a.perf) + ["-p", str(pid)],
                                        stdout=subprocess.DEVNULL)
                time.sleep(0.5)  # attached before the first timed call
            for mode, threads in (("sequential", 1), ("%d threads" % a.threads, a.threads)):
                cpu0, ns0 = cpu_seconds(pid), sched_ns(pid)
                wall, lat, errors = run_calls(client, ctxt, a.calls, threads)
                cpu, ns = cpu_seconds(pid) - cpu0, sched_ns(pid) - ns0
                mem = mem_kib(pid)
                rows.append((label, mode, a.calls, len(lat), len(errors), len(lat) / wall,
                             percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3,
                             lat[-1] * 1e3 if lat else float("nan"), cpu,
                             cpu / max(1, len(lat)) * 1e6, ns / 1e3 / max(1, len(lat)),
                             mem0.get("VmRSS", 0), mem.get("VmRSS", 0), mem.get("VmHWM", 0)))
                for e in sorted(set(errors))[:3]:
                    print("  %s %s error: %s" % (label, mode, e))
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait()

        hdr = ("server", "run", "sent", "ok", "err", "calls/s", "p50 ms", "p99 ms", "max ms",
               "srv CPU s", "tick us/call", "sched us/call", "RSS before KiB",
               "RSS after KiB", "HWM KiB")
        fmt = "%-22s %-11s %5s %5s %4s %8s %7s %7s %7s %9s %12s %13s %14s %13s %8s"
        print(fmt % hdr)
        for r in rows:
            print(fmt % (r[0], r[1], r[2], r[3], r[4], "%.0f" % r[5], "%.2f" % r[6],
                         "%.2f" % r[7], "%.2f" % r[8], "%.2f" % r[9], "%.0f" % r[10],
                         "%.1f" % r[11], r[12], r[13], r[14]))
        print()
        print("sent: calls made; ok: answered with the expected result; err: failed or "
              "timed out.  srv CPU s and tick us/call: the server process's utime+stime "
              "during the run (%d Hz ticks; per call: divided by ok).  sched us/call: the "
              "on-CPU ns of all its threads (/proc/<pid>/task/*/schedstat, first field) "
              "during the run, divided by ok.  Latency is the client's call() round trip."
              % CLK_TCK)
    finally:
        if transport is not None:
            transport.cleanup()
        if oslo is not None:
            oslo.stop()
        if worker is not None:
            code = worker.stop()
            if code not in (0, None):
                print("ferry-worker exited with %s; log: %s" % (code, worker.log_path))
        vhost.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
