# SPDX-License-Identifier: Apache-2.0
"""What the metrics endpoint costs: worker RSS with metrics.listen on and off,
the CPU while nobody scrapes (the main loop renders only when a scrape asks,
so this should match metrics off), and the worker's CPU per scrape (the
render it asks for and the copy it serves) over N sequential scrapes.
Prints figures; asserts nothing.

    /usr/bin/python3 tests/bench/metrics_bench.py [BINARY] [--scrapes N]

BINARY defaults to build/release/worker/ferry-worker.  The workers use
libvirt's test driver and a broker address that refuses connections (they
retry in the background), so no rig is needed; the exposition is the one of
an idle worker (about 4 KiB: no migration series).
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONF = """transport_url = "rabbit://guest:guest@127.0.0.1:1/";
host = "bench";
state_dir = "{dir}";
log_level = "warning";
libvirt = {{ connection_uri = "test:///default"; }};
{metrics}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_s(pid):
    """utime + stime of pid, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip())


class Worker:
    def __init__(self, binary, tmp, name, listen=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "worker.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(dir=self.dir, metrics='metrics = { listen = "%s"; };' % listen
                                if listen else ""))
        os.chmod(conf, 0o600)
        self.log = open(os.path.join(self.dir, "worker.log"), "wb")
        self.proc = subprocess.Popen([binary, "--config", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=40)
        self.log.close()


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?",
                    default=os.path.join(REPO, "build", "release", "worker", "ferry-worker"))
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ferry-metrics-bench-")
    listen = "127.0.0.1:%d" % free_port()
    off = Worker(a.binary, tmp, "off")
    on = Worker(a.binary, tmp, "on", listen)
    url = "http://%s/metrics" % listen
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                body = scrape(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(2)  # both past their start-up

        c_off0, c_on0, t0 = cpu_s(off.proc.pid), cpu_s(on.proc.pid), time.monotonic()
        time.sleep(a.idle)
        c_off1, c_on1, t1 = cpu_s(off.proc.pid), cpu_s(on.proc.pid), time.monotonic()
        idle_s = t1 - t0
        rss_off, rss_on_idle = rss_kib(off.proc.pid), rss_kib(on.proc.pid)

        c0, s0 = cpu_s(on.proc.pid), time.monotonic()
        n_bytes = 0
        for _ in range(a.scrapes):
            n_bytes += len(scrape(url))
        c1, s1 = cpu_s(on.proc.pid), time.monotonic()
        rss_on = rss_kib(on.proc.pid)
        # Subtract what the worker costs over the same time without scrapes.
        render_rate = (c_on1 - c_on0) / idle_s
        per_scrape = ((c1 - c0) - render_rate * (s1 - s0)) / a.scrapes

        print("binary: %s" % a.binary)
        print("exposition: %d bytes (idle worker, no migration series)" % len(body))
        print("RSS, metrics off:                %6d KiB" % rss_off)
        print("RSS, metrics on (idle):          %6d KiB (+%d KiB)" % (
            rss_on_idle, rss_on_idle - rss_off))
        print("RSS, metrics on after %d scrapes: %6d KiB (+%d KiB)" % (
            a.scrapes, rss_on, rss_on - rss_off))
        print("CPU over %.0f s idle, nobody scraping: metrics off %.3f s, metrics on %.3f s "
              "(%.2f ms/s)" % (idle_s, c_off1 - c_off0, c_on1 - c_on0, render_rate * 1000))
        print("%d sequential scrapes in %.2f s (%.0f/s, %d bytes in all): worker CPU %.3f s, "
              "%.0f us per scrape (clock tick %.0f ms, so +-%.0f us)" % (
                  a.scrapes, s1 - s0, a.scrapes / (s1 - s0), n_bytes, c1 - c0,
                  per_scrape * 1e6, 1000 / CLK_TCK, 1e6 / CLK_TCK / a.scrapes))
    finally:
        on.stop()
        off.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
