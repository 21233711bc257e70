# SPDX-License-Identifier: Apache-2.0
"""ferryctl, the operator's tool, against real workers: list and show a
running migration, watch draws its progress, abort ends it (the guest stays
on the source), and an unknown host is a clear error with exit status 1.
During a migration that cannot converge, --json show/list/watch carry the
policy's verdict, its reasons, the prediction and the deadline, and the
destination's row has the migration's figures, also when only the
destination is asked."""
import json
import os
import re
import subprocess
import tempfile
import time
import uuid as uuidlib

import pytest

import nova_peer
import rig
import schemas
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


# A source host whose policy cannot end a struggling migration before its
# deadline: no post-copy, no pause; abort at 60 s/GiB (2 GiB counted: 120 s).
STRUGGLING_HOST = ("live_migration_permit_post_copy = false;\n"
                   "\tlive_migration_permit_pause = false;\n"
                   "\tlive_migration_completion_timeout = 60;\n"
                   "\tlive_migration_timeout_action = \"abort\";")


@pytest.fixture(scope="module")
def stuck_source(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-ctl-stuck-")
    w = Worker(tmp, "host11", "A", "127.0.0.2", bandwidth=32, extra="\t" + STRUGGLING_HOST)
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


def json_of(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_json_during_a_struggling_migration(stuck_source, workers, notifications, busy_guest):
    uuid, name = busy_guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    nova_peer.cast_live_migration(uuid, "host11", "host2")
    warn = notifications.wait_for("instance.live_migration_struggling", uuid, timeout=90)
    assert warn is not None, stuck_source.log()[-3000:]

    # the verdict is per sample; wait (polling) until a show sees it
    give_up = time.monotonic() + 60
    while True:
        shown = json_of(ferryctl("--json", "show", "host11", uuid))
        if shown["struggling"] or time.monotonic() > give_up:
            break
    assert shown["struggling"] is True, shown
    assert shown["reasons"] and shown["planned_action"] is not None, shown
    assert shown["action_reason"], shown
    assert shown["deadline_ms"] == 120000, shown
    assert isinstance(shown["seconds_left"], int) and 0 < shown["seconds_left"] <= 120, shown
    assert shown["source_host"] == "host11" and shown["dest_host"] == "host2"
    # the predictor's view of the newest sample (list_migrations 1.1), the
    # same object as the struggling notification's
    pred = shown["prediction"]
    assert isinstance(pred, dict), shown
    assert set(pred) == set(warn["payload"]["nova_object.data"]["prediction"]), (pred, warn)
    assert pred["outlook"] in ("unknown", "converges", "struggles"), pred
    assert 0 <= pred["confidence_pct"] <= 100 and pred["judged_max_downtime_ms"] > 0, pred
    entry = {k: v for k, v in shown.items() if k != "host"}
    schemas.validate_reply("list_migrations", [entry])

    rows = json_of(ferryctl("list", "host11", "host2", "--json"))
    (src,) = [m for m in rows if m["instance_uuid"] == uuid and m["role"] == "source"]
    (dst,) = [m for m in rows if m["instance_uuid"] == uuid and m["role"] == "destination"]
    assert src["host"] == "host11" and dst["host"] == "host2"
    assert dst["source_host"] == "host11" and dst["figures_from"] == "host11", dst
    assert dst["percent"] > 0 and dst["memory_iteration"] > 0, dst
    assert dst["data_remaining_bytes"] > 0 and dst["deadline_ms"] == 120000, dst
    assert isinstance(src["prediction"], dict) and dst["prediction"] == src["prediction"], dst

    # only the destination host watched: ferryctl asks the source it names
    r = ferryctl("--json", "watch", "host2", "--once")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 1, (r.stdout, r.stderr)
    frame = json.loads(lines[0])
    (dst,) = [m for m in frame["migrations"] if m["instance_uuid"] == uuid]
    assert dst["role"] == "destination" and dst["figures_from"] == "host11", dst
    assert dst["percent"] > 0 and dst["memory_iteration"] > 0, dst
    assert "seconds_left" in dst and "struggling" in dst and frame["errors"] == []

    # plain (not a terminal): no escape codes, the time left beside the bar
    r = ferryctl("watch", "host11", "host2", "--once")
    assert r.returncode == 0 and "\x1b" not in r.stdout, r.stdout
    bars = [ln for ln in r.stdout.splitlines() if uuid in ln]
    assert len(bars) == 2 and all("deadline" in ln for ln in bars), r.stdout
    assert "figures from host11" in r.stdout

    # list's compact column: "<outlook> <confidence>%[ ~<downtime>ms]"
    r = ferryctl("list", "host11")
    assert r.returncode == 0, r.stderr
    head, *lines = r.stdout.splitlines()
    assert "PREDICTION" in head.split(), r.stdout
    (line,) = [ln for ln in lines if uuid in ln]
    assert re.search(r" (unknown|converges|struggles) \d{1,3}%( ~\d+ms)? ", line), r.stdout

    sent = json_of(ferryctl("--json", "abort", "host11", uuid))
    assert sent["sent"] == "live_migration_abort" and sent["instance_uuid"] == uuid
    assert notifications.wait_for("instance.live_migration_rollback.end", uuid, timeout=60)
    assert rig.domain_state("A", uuid) == "running"

    r = ferryctl("--json", "show", "host11", uuid)
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["type"] == "NotFound", r.stdout
