# SPDX-License-Identifier: Apache-2.0
"""ferryctl, the operator's tool, against real workers: list and show a
running migration, watch draws its progress, abort ends it (the guest stays
on the source), and an unknown host is a clear error with exit status 1."""
import json
import os
import subprocess
import tempfile
import uuid as uuidlib

import pytest

import nova_peer
import rig
from conftest import REPO, Worker

FERRYCTL = os.path.join(REPO, "deploy", "ferryctl")


def ferryctl(*args, timeout=60):
    return subprocess.run(["/usr/bin/python3", FERRYCTL, "--transport-url", nova_peer.DEFAULT_URL,
                           "--timeout", "5"] + list(args),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def slow_source(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-ctl-")
    w = Worker(tmp, "host10", "A", "127.0.0.2", bandwidth=2)
    w.start()
    yield w
    w.stop()


def test_list_show_watch_abort(slow_source, workers, notifications):
    name = "c" + uuidlib.uuid4().hex[:8]
    uuid = rig.boot_guest("A", name=name, mem_mib=256, rate=4, ws=32)
    nova_peer.cast_live_migration(uuid, "host10", "host2")
    assert notifications.wait_for("instance.live_migration_progress", uuid, timeout=30)

    r = ferryctl("list", "host10", "host2")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0][:4] == ["HOST", "INSTANCE", "ROLE", "PHASE"]
    assert ["host10", uuid, "source", "precopy"] in [row[:4] for row in rows], r.stdout
    assert ["host2", uuid, "destination", "inbound"] in [row[:4] for row in rows], r.stdout

    r = ferryctl("show", "host10", uuid)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["dest_host"] == "host2" and 0 <= shown["percent"] < 100

    r = ferryctl("watch", "host10", "--once")
    assert r.returncode == 0 and uuid in r.stdout and "[" in r.stdout, r.stdout

    r = ferryctl("abort", "host10", uuid)
    assert r.returncode == 0, r.stderr
    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, timeout=30)
    types = [m["event_type"] for m in notifications.events(uuid)]
    assert "instance.live_migration_abort.end" in types, types
    assert rig.domain_state("A", uuid) == "running"
    assert ferryctl("show", "host10", uuid).returncode == 1

    r = ferryctl("list", "no-such-host")
    assert r.returncode == 1
    assert "ferryctl:" in r.stderr and ("Timeout" in r.stderr or "no compute" in r.stderr.lower()
                                        or "MessageUndeliverable" in r.stderr), r.stderr
