# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus scrapes both ferry-workers of a real migration.

Two workers of their own (source on libvirt A, destination on libvirt B)
serve metrics.listen on free loopback ports; a Prometheus server started
here (its own config and storage in a temporary directory, 1 s scrape
interval) scrapes both while nova's cast migrates a dirtying guest at a low
bandwidth, so the migration lasts several scrapes.  The series are read back
through Prometheus's HTTP API, and promtool checks a scraped exposition.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import ferry_proc
import nova_peer
import rig

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Slow enough that the migration spans several 1 s scrapes.
BANDWIDTH_MIB_S = 8


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


class Prometheus:
    """A Prometheus server as a child process, stopped by PID."""

    def __init__(self, tmp, targets):
        self.dir = os.path.join(tmp, "prometheus")
        os.makedirs(self.dir)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "prometheus.yml")
        static = "\n".join(
            "      - targets: ['%s']\n        labels: {host: '%s'}" % (addr, host)
            for host, addr in targets.items())
        with open(self.conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: ferry\n    static_configs:\n%s\n" % static)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited:\n" + self.log()
            try:
                if http_get(self.url + "/-/ready", timeout=2)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus not ready:\n" + self.log())

    def api(self, path, **params):
        _, _, body = http_get("%s/api/v1/%s?%s" % (self.url, path, urllib.parse.urlencode(params)))
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def query(self, q):
        return self.api("query", query=q)

    def wait_value(self, q, want, timeout=20):
        """Waits until the instant query q has one series of value want."""
        deadline = time.monotonic() + timeout
        res = None
        while time.monotonic() < deadline:
            res = self.query(q)
            if len(res) == 1 and float(res[0]["value"][1]) == want:
                return res
            time.sleep(0.5)
        raise AssertionError("%s: expected one series of %s, got %s" % (q, want, res))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def metered(rig_up):
    """Source mhost1 (libvirt A) and destination mhost2 (libvirt B), each
    with metrics.listen on a free loopback port, and Prometheus on both."""
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-metrics-")
    addrs = {"mhost1": "127.0.0.1:%d" % free_port(), "mhost2": "127.0.0.1:%d" % free_port()}
    ws = {}
    prom = None
    try:
        for host, lv, inbound in (("mhost1", "A", "127.0.0.2"), ("mhost2", "B", "127.0.0.3")):
            ws[host] = ferry_proc.Worker(
                tmp, host, lv, inbound,
                libvirt="\tlive_migration_bandwidth = %d;\n" % BANDWIDTH_MIB_S,
                top='metrics = { listen = "%s"; };' % addrs[host]).start()
        prom = Prometheus(tmp, addrs)
        prom.wait_ready()
        yield ws, addrs, prom
    finally:
        if prom is not None:
            prom.stop()
        codes = {h: w.stop() for h, w in ws.items()}
        print("metrics workers exit codes: %s (logs in %s)" % (codes, tmp))


def test_endpoint_answers_only_get_metrics(metered):
    _, addrs, _ = metered
    base = "http://%s" % addrs["mhost1"]
    status, ctype, body = http_get(base + "/metrics")
    assert status == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE ferry_migrations_total counter" in body
    assert "ferry_broker_connected 1" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        http_get(base + "/other")
    assert e.value.code == 404
    req = urllib.request.Request(base + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_prometheus_sees_a_migration(metered, notifications, guest):
    ws, addrs, prom = metered
    uuid, name = guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    # Both targets up before the migration, so the counters' 0 is recorded.
    prom.wait_value('count(up{job="ferry"} == 1)', 2, timeout=30)
    t0 = time.time()

    nova_peer.cast_live_migration(uuid, "mhost1", "mhost2")

    # While it runs: the source's exposition carries the migration's series,
    # and promtool accepts it.
    exposition = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, _, text = http_get("http://%s/metrics" % addrs["mhost1"])
        if 'ferry_migration_data_remaining_bytes{instance="%s"' % uuid in text:
            exposition = text
            break
        time.sleep(0.2)
    assert exposition is not None, "no migration series; log:\n" + ws["mhost1"].log()[-3000:]
    assert 'ferry_migration_phase{instance="%s",dest="mhost2",phase="precopy"} 1' % uuid \
        in exposition, exposition
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, text=True,
                           capture_output=True)
    assert check.returncode == 0, "promtool: %s%s\n%s" % (check.stdout, check.stderr, exposition)

    end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert end is not None, ws["mhost1"].log()[-3000:]
    assert notifications.wait_for("instance.live_migration_post_dest.end", uuid, 30)
    assert rig.domain_state("B", uuid) == "running"

    # The counters, as Prometheus scraped them (each worker counts its side).
    prom.wait_value('ferry_migrations_total{host="mhost1",role="source",outcome="completed"}', 1)
    prom.wait_value(
        'ferry_migrations_total{host="mhost2",role="destination",outcome="completed"}', 1)
    prom.wait_value('ferry_migrations_total{host="mhost1",role="source",outcome="rolled_back"}',
                    0)
    t1 = time.time()

    # The migration's own series.  Prometheus keeps the target's instance
    # label, so ours (the guest's uuid) is exported_instance.
    sel = '{host="mhost1",exported_instance="%s",dest="mhost2"}' % uuid
    rng = prom.api("query_range", query="ferry_migration_data_remaining_bytes" + sel,
                   start="%.3f" % t0, end="%.3f" % t1, step="1")
    assert len(rng) == 1, rng
    values = [float(v) for _, v in rng[0]["values"]]
    assert len(values) >= 3, "too few samples of a %d MiB/s migration: %s" % (
        BANDWIDTH_MIB_S, values)
    assert any(later < earlier for i, earlier in enumerate(values)
               for later in values[i + 1:]), "remaining never fell: %s" % values
    total = prom.query("max_over_time(ferry_migration_data_total_bytes%s[5m])" % sel)
    assert total and float(total[0]["value"][1]) >= max(values)
    precopy = prom.query('max_over_time(ferry_migration_phase{host="mhost1",'
                         'exported_instance="%s",phase="precopy"}[5m])' % uuid)
    assert precopy and float(precopy[0]["value"][1]) == 1
    inbound = prom.query('max_over_time(ferry_migration_phase{host="mhost2",'
                         'exported_instance="%s",phase="inbound"}[5m])' % uuid)
    assert inbound and float(inbound[0]["value"][1]) == 1, "destination never seen inbound"
    # Over: the migration's series are gone from the source's exposition.
    _, _, text = http_get("http://%s/metrics" % addrs["mhost1"])
    assert uuid not in text
    sent = prom.query('ferry_notifications_sent_total{host="mhost1",'
                      'event_type="instance.live_migration_post.end"}')
    assert sent and float(sent[0]["value"][1]) >= 1
