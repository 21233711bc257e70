# SPDX-License-Identifier: Apache-2.0
"""End-to-end fixtures: the rig (RabbitMQ + libvirt hosts A and B, started by
deploy/rig if not yet up), ferry-worker processes for compute hosts
host1 (libvirt A) and host2 (libvirt B), and oslo's notification listener.
Every process started here is stopped here, by PID."""
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid as uuidlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

import ferry_proc  # noqa: E402
import listener  # noqa: E402
import nova_peer  # noqa: E402
import rig  # noqa: E402

URL = nova_peer.DEFAULT_URL


def Worker(tmp, host, libvirt_host, inbound, bandwidth=32, extra=""):
    """A ferry-worker for the rig: 0.25 s progress, the given bandwidth."""
    return ferry_proc.Worker(tmp, host, libvirt_host, inbound,
                             libvirt="\tlive_migration_bandwidth = %d;\n%s" % (bandwidth, extra))


def _run(*cmd):
    subprocess.run(list(cmd), check=True, cwd=REPO)


@pytest.fixture(scope="session")
def rig_up():
    """Brings the rig up unless the caller (tests/run.sh) already did."""
    if subprocess.run(["bash", "deploy/rig/rabbit.sh", "status"], cwd=REPO,
                      stdout=subprocess.DEVNULL).returncode != 0:
        _run("bash", "deploy/rig/rabbit.sh", "start")
    _run("bash", "deploy/rig/hosts.sh", "start")
    _run("make", "-s", "-C", "deploy/guest")
    yield
    rig.destroy_all()


@pytest.fixture(autouse=True)
def reap_test_guests(rig_up):
    """Destroys the guests a test booted (in its body or its function-scoped
    fixtures; module and session fixtures are set up before this one): TCG
    guests left running piled up to 30+ by the end of the suite, a load of
    ~45 on 2 cores that slowed every later migration past its deadline."""
    before = rig.domain_names()
    yield
    rig.destroy_all(keep=before)


@pytest.fixture(scope="session")
def notifications(rig_up):
    c = listener.Collector(URL).start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def wire(rig_up):
    """Raw copies of every notification as it crossed the wire."""
    t = listener.RawTap(URL).start()
    yield t
    t.stop()


@contextlib.contextmanager
def started_workers(prefix, label, make):
    """The workers make(tmp) returns ({host: ferry_proc.Worker}, tmp a fresh
    directory named prefix...), started; yields them and stops each (by
    PID) at the end, printing their exit codes under `label`.  The body of
    a worker fixture: `with started_workers(...) as ws: yield ws`."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    ws = make(tmp)
    try:
        for w in ws.values():
            w.start()
        yield ws
    finally:
        codes = {h: w.stop() for h, w in ws.items() if w.proc is not None}
        print("%s exit codes: %s (logs in %s)" % (label, codes, tmp))


@pytest.fixture(scope="session")
def workers(rig_up, notifications, wire):
    def make(tmp):
        return {
            "host1": Worker(tmp, "host1", "A", "127.0.0.2"),
            "host2": Worker(tmp, "host2", "B", "127.0.0.3"),
            # a compute host whose libvirt listener address leads nowhere
            "host3": Worker(tmp, "host3", "B", "127.0.0.9"),
        }
    with started_workers("ferry-e2e-", "worker", make) as ws:
        yield ws


# Source hosts on libvirt A with policies for the "migrations that always end"
# tests; all migrate to host2.  completion_timeout is per GiB of guest RAM
# (at least 2 GiB, as nova counts), so 3 s/GiB gives a 6 s deadline.
POLICY_HOSTS = {
    "host4": "live_migration_permit_post_copy = true;\n"
             "\tlive_migration_completion_timeout = 3;",
    "host5": "live_migration_permit_post_copy = false;\n"
             "\tlive_migration_completion_timeout = 3;\n"
             "\tlive_migration_timeout_action = \"abort\";",
    "host6": "live_migration_completion_timeout = 0;",
}


@pytest.fixture(scope="session")
def policy_workers(workers):
    def make(tmp):
        return {h: Worker(tmp, h, "A", "127.0.0.2", bandwidth=32, extra="\t" + extra)
                for h, extra in POLICY_HOSTS.items()}
    with started_workers("ferry-e2e-policy-", "policy worker", make) as ws:
        yield dict(ws, host2=workers["host2"])


@pytest.fixture
def busy_guest(rig_up):
    """A guest on host A that dirties memory far faster than 32 MiB/s."""
    name = "b" + uuidlib.uuid4().hex[:8]
    uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=160, ws=32)
    yield uuid, name


@pytest.fixture
def guest(rig_up):
    """A fresh dirtying guest on host A; yields (uuid, name)."""
    name = "g" + uuidlib.uuid4().hex[:8]
    uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=4, ws=32)
    yield uuid, name
