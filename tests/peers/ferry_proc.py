# SPDX-License-Identifier: Apache-2.0
"""ferry-worker as a child process: writes its config, starts it, waits for
log lines, stops it by PID with SIGTERM.  Shared by the end-to-end tests and
the benchmarks."""
import json
import os
import signal
import subprocess
import time

import nova_peer
import rig

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORKER = os.environ.get("FERRY_WORKER", os.path.join(REPO, "build", "dev", "worker",
                                                      "ferry-worker"))

def journal_tuning(worker, uuid, timeout=20):
    """The "tuning" object of the worker's source record for uuid, read while
    the record exists (it goes when the migration ends); None if never seen."""
    path = os.path.join(worker.dir, "migrations", "source-%s.json" % uuid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                rec = json.load(f)
            if "tuning" in rec:
                return rec["tuning"]
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return None


CONF_TEMPLATE = """
transport_url = "{url}";
host = "{host}";
state_dir = "{state}";
log_level = "{log_level}";
rpc_response_timeout = {rpc_timeout};
notifications = {{ progress_interval = {interval}; }};
libvirt = {{
	connection_uri = "{uri}";
	live_migration_inbound_addr = "{inbound}";
{libvirt}
}};
{top}
"""


class Worker:
    """One ferry-worker process with its own config and log file.

    libvirt_host is a rig host ("A", "B") or None for libvirt's test driver;
    libvirt holds extra lines for the libvirt group (e.g. a bandwidth);
    top holds extra top-level settings or groups (e.g. a metrics group);
    conf_text, when given, is the whole config instead of the template.
    leak_check turns on LeakSanitizer's report at exit (ASan builds);
    wrapper is a command prefix it runs under (e.g. nsenter into a rig
    host's mount namespace), which must exec the worker in its place."""

    def __init__(self, tmp, host, libvirt_host=None, inbound="127.0.0.1", libvirt="",
                 interval=0.25, log_level="debug", url=nova_peer.DEFAULT_URL, binary=None,
                 conf_text=None, leak_check=False, env=None, rpc_timeout=20, top="",
                 wrapper=None):
        self.host = host
        self.binary = binary or WORKER
        self.wrapper = list(wrapper or [])
        self.dir = os.path.join(tmp, host)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "worker.conf")
        self.log_path = os.path.join(self.dir, "worker.log")
        self.leak_check = leak_check
        self.env = dict(env or {})
        with open(self.conf, "w") as f:
            f.write(conf_text if conf_text is not None else CONF_TEMPLATE.format(
                url=url, host=host, state=self.dir, log_level=log_level, interval=interval,
                rpc_timeout=rpc_timeout,
                uri=rig.host_uri(libvirt_host) if libvirt_host else "test:///default",
                inbound=inbound, libvirt=libvirt, top=top))
        os.chmod(self.conf, 0o600)  # it holds the broker password, as in production
        self.proc = None
        self._log = None

    def start(self, wait=True):
        # A restarted worker appends to the same log: wait for this run's line.
        mark = len(self.log()) if os.path.exists(self.log_path) else 0
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=%d" % int(self.leak_check),
                   **self.env)
        self.proc = subprocess.Popen(self.wrapper + [self.binary, "--config", self.conf],
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        if wait:
            try:
                self.wait_log("Connected to the broker", timeout=30, since=mark)
            except AssertionError:
                self.stop()  # the caller never gets a handle to stop it
                raise
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=30, since=0):
        """Waits for text in the log, from character offset since on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[since:]:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("worker %s exited (%s):\n%s" % (
                    self.host, self.proc.returncode, self.log()[-4000:]))
            time.sleep(0.1)
        raise AssertionError("worker %s never logged %r:\n%s" % (self.host, text,
                                                               self.log()[-4000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash: nothing of the worker runs after it."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self):
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
