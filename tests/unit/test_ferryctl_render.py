# SPDX-License-Identifier: Apache-2.0
"""ferryctl's rendering without a bus (CTest, label unit): list_migrations
replies (schemas/examples, and a struggling migration seen from both hosts)
go through join_rows, the table, watch's frames and the --json outputs of
every subcommand, with a fake bus in place of oslo.messaging."""
import copy
import importlib.machinery
import importlib.util
import io
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

import schemas  # noqa: E402


def _load_ferryctl():
    path = os.path.join(REPO, "deploy", "ferryctl")
    loader = importlib.machinery.SourceFileLoader("ferryctl", path)
    spec = importlib.util.spec_from_loader("ferryctl", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


fc = _load_ferryctl()

UUID = "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21"


def example():
    with open(os.path.join(REPO, "schemas", "examples", "replies", "list_migrations.json")) as f:
        return json.load(f)


def stuck():
    """host1's and host2's replies for one migration that cannot converge:
    98.9 %, 44 MiB left, iteration 31, 95 s to its deadline."""
    src = example()[0]
    src.update(instance_uuid=UUID, percent=98.9, data_remaining_bytes=44 * 1048576,
               memory_iteration=31, eta_s=-1, seconds_left=95, struggling=True,
               reasons=["dirty_rate_exceeds_transfer_rate", "remaining_not_shrinking"],
               planned_action="none", last_action="raise_downtime",
               action_reason="post-copy forbidden for this instance and pause not permitted: "
               "waiting for the completion timeout",
               prediction={"outlook": "struggles", "confidence_pct": 90,
                           "dirty_set_bytes": 96 * 1048576, "shrink_pct": 104,
                           "iterations_needed": None, "expected_downtime_ms": 640,
                           "judged_max_downtime_ms": 500})
    dst = example()[1]
    dst.update(instance_uuid=UUID, source_host="host1")
    schemas.validate_reply("list_migrations", [src, dst])
    return {"host1": [src], "host2": [dst]}


class FakeBus:
    def __init__(self, replies, fail=()):
        self.replies = replies
        self.fail = set(fail)
        self.asked = []
        self.sent = []

    def migrations(self, host):
        self.asked.append(host)
        if host in self.fail or host not in self.replies:
            raise TimeoutError("Timed out waiting for a reply from compute.%s" % host)
        return copy.deepcopy(self.replies[host])

    def recover(self, host, uuid):
        return {"status": "recovering", "instance_uuid": uuid}

    def cast(self, host, method, **kwargs):
        self.sent.append((host, method, kwargs))

    def close(self):
        pass


class Out(io.StringIO):
    def __init__(self, tty=False):
        io.StringIO.__init__(self)
        self.tty = tty

    def isatty(self):
        return self.tty


def run(argv, bus, tty=False):
    out = Out(tty)
    rc = fc.run(fc.parse(argv), bus, out)
    return rc, out.getvalue()


def test_example_reply_validates_and_renders():
    rows = fc.join_rows([("host1", m) for m in example()])
    text = fc.table(rows)
    assert text.splitlines()[0].split()[:4] == ["HOST", "INSTANCE", "ROLE", "PHASE"]
    assert "STRUGGLING" in text and "1594s" in text


def test_destination_row_takes_the_source_figures_from_the_rows():
    r = stuck()
    bus = FakeBus(r)
    rows = fc.join_rows([("host1", r["host1"][0]), ("host2", r["host2"][0])], bus.migrations)
    dst = [m for m in rows if m["role"] == "destination"][0]
    assert bus.asked == []  # host1 was among the hosts asked
    assert dst["figures_from"] == "host1"
    assert dst["percent"] == 98.9 and dst["memory_iteration"] == 31
    assert dst["data_remaining_bytes"] == 44 * 1048576
    assert dst["struggling"] is True and dst["seconds_left"] == 95
    assert dst["phase"] == "inbound" and dst["source_phase"] == "precopy"


def test_destination_alone_asks_the_source_host_it_names():
    bus = FakeBus(stuck())
    rc, out = run(["--json", "list", "host2"], bus)
    assert rc == 0 and bus.asked == ["host2", "host1"]
    (dst,) = json.loads(out)
    assert dst["host"] == "host2" and dst["figures_from"] == "host1"
    assert dst["percent"] == 98.9 and dst["memory_iteration"] == 31


def test_destination_whose_source_cannot_be_asked_says_so():
    bus = FakeBus(stuck(), fail=["host1"])
    rows = fc.join_rows([("host2", stuck()["host2"][0])], bus.migrations)
    assert rows[0]["figures_from"] is None
    assert "TimeoutError" in rows[0]["figures_error"]
    assert rows[0]["percent"] == 0.0
    line = "\n".join(fc.watch_lines(rows))
    assert "no figures" in line


def test_watch_plain_block_shows_bar_verdict_plan_and_deadline():
    rows = fc.join_rows([("host1", stuck()["host1"][0]), ("host2", stuck()["host2"][0])])
    frame = fc.watch_frame(rows, tty=False, color=False, now=0)
    assert "\x1b" not in frame  # no escape codes when not a terminal
    lines = frame.splitlines()
    assert lines[0].startswith("ferryctl watch")
    src = [ln for ln in lines if ln.startswith("!! host1")]
    dst = [ln for ln in lines if ln.startswith("!! host2")]
    assert src and dst, frame
    assert fc.bar(98.9) in src[0] and "98.9%" in src[0] and "44.0 MiB left" in src[0]
    assert "1m35s to deadline" in src[0]
    assert "98.9%" in dst[0] and "iteration 31" in dst[0] and "figures from host1" in dst[0]
    verdicts = [ln for ln in lines if "STRUGGLING (dirty_rate_exceeds_transfer_rate, "
                "remaining_not_shrinking)" in ln]
    assert len(verdicts) == 2
    assert "next: none" in verdicts[0] and "post-copy forbidden" in verdicts[0]
    assert "last action: raise_downtime" in verdicts[0]
    assert frame.endswith("\n\n")  # blocks are appended, separated


def test_watch_tty_frame_redraws_in_place_and_colours_struggling():
    rows = fc.join_rows([("host1", stuck()["host1"][0])])
    frame = fc.watch_frame(rows, tty=True, color=True, now=0)
    assert frame.startswith(fc.CLEAR)
    assert frame.count(fc.CLEAR) == 1
    assert fc.RED in frame and fc.RESET in frame
    calm = copy.deepcopy(rows)
    calm[0].update(struggling=False, reasons=[], planned_action="raise_downtime",
                   action_reason="not struggling")
    frame = fc.watch_frame(calm, tty=True, color=True, now=0)
    assert fc.RED not in frame and "STRUGGLING" not in frame and "converging" in frame


def test_time_left_texts():
    assert fc.time_left({"seconds_left": 45}) == "45s to deadline"
    assert fc.time_left({"seconds_left": 3725}) == "1h02m to deadline"
    assert fc.time_left({"seconds_left": -7}) == "deadline passed 7s ago"
    assert fc.time_left({"seconds_left": None}) == "no deadline"
    assert fc.time_left({"seconds_left": None, "phase": "postcopy"}) == "post-copy, no deadline"


def test_watch_once_on_a_terminal_and_not():
    rc, out = run(["watch", "host1", "host2", "--once"], FakeBus(stuck()), tty=True)
    assert rc == 0 and out.startswith(fc.CLEAR) and "STRUGGLING" in out
    rc, out = run(["watch", "host1", "--once"], FakeBus(stuck()), tty=False)
    assert rc == 0 and "\x1b" not in out and "STRUGGLING" in out


def test_watch_json_is_one_object_per_line_per_refresh(monkeypatch):
    replies = stuck()
    bus = FakeBus(replies)
    monkeypatch.setattr(fc.time, "sleep", lambda s: replies.update(host1=[], host2=[]))
    rc, out = run(["watch", "host1", "host2", "--json", "--interval", "0"], bus, tty=True)
    assert rc == 0 and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 2, out  # the refresh with the migration, then the empty one
    first, last = (json.loads(ln) for ln in lines)
    assert {m["role"] for m in first["migrations"]} == {"source", "destination"}
    assert all(m["struggling"] and m["seconds_left"] == 95 for m in first["migrations"])
    assert first["errors"] == [] and last["migrations"] == []


def test_watch_json_reports_a_host_it_cannot_ask_and_fails():
    rc, out = run(["watch", "host1", "hostX", "--once", "--json"], FakeBus(stuck()))
    doc = json.loads(out)
    assert rc == 1 and doc["errors"][0]["host"] == "hostX"
    assert [m["host"] for m in doc["migrations"]] == ["host1"]


def test_show_json_and_every_other_subcommand_print_one_document():
    bus = FakeBus(stuck())
    rc, out = run(["--json", "show", "host2", UUID], bus)
    doc = json.loads(out)
    assert rc == 0 and doc["role"] == "destination" and doc["percent"] == 98.9
    for argv, key in ((["abort", "host1", UUID, "--json"], "sent"),
                      (["force-complete", "host1", UUID, "--json"], "sent"),
                      (["--json", "recover", "host1", UUID], "called")):
        rc, out = run(argv, bus)
        doc = json.loads(out)
        assert rc == 0 and doc[key] and doc["instance_uuid"] == UUID, argv
    assert [m for _, m, _ in bus.sent] == ["live_migration_abort",
                                           "live_migration_force_complete"]


def test_errors_are_json_with_a_nonzero_status(capsys):
    with pytest.raises(fc.Failure) as e:
        run(["--json", "show", "host1", "no-such-uuid"], FakeBus(stuck()))
    assert e.value.kind == "NotFound"
    # main() prints it: through the same path, with a bus that cannot connect
    monkey = fc.Bus
    fc.Bus = lambda url, timeout, exchange: FakeBus({}, fail=["nohost"])
    try:
        rc = fc.main(["--transport-url", "rabbit://127.0.0.1:5672/", "--json", "list", "nohost"])
    finally:
        fc.Bus = monkey
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert rc == 1 and doc["error"]["type"] == "TimeoutError" and "nohost" in doc["error"]["message"]
    assert "ferryctl: TimeoutError" in out.err
    with pytest.raises(SystemExit) as ex:
        fc.main(["--json", "list"])
    out = capsys.readouterr()
    assert ex.value.code == 2 and json.loads(out.out)["error"]["type"] == "Usage"


def test_watch_shows_the_disk_copy_of_a_block_migration_only():
    src = example()[0]
    src.update(disk_total_bytes=64 * 1048576, disk_processed_bytes=16 * 1048576,
               disk_remaining_bytes=48 * 1048576)
    schemas.validate_reply("list_migrations", [src])
    line = fc.watch_lines(fc.join_rows([("host1", src)]))[0]
    assert "disk 16.0 of 64.0 MiB copied" in line, line
    for k in ("disk_total_bytes", "disk_processed_bytes", "disk_remaining_bytes"):
        src[k] = -1
    assert "disk" not in fc.watch_lines(fc.join_rows([("host1", src)]))[0]


def test_prediction_compact_in_list_and_watch_full_in_show():
    bus = FakeBus(stuck())
    rc, out = run(["list", "host1", "host2"], bus)
    head, src, dst = out.splitlines()
    assert rc == 0 and "PREDICTION" in head.split()
    assert "struggles 90% ~640ms" in src
    assert "struggles 90% ~640ms" in dst  # the destination row has the source's
    frame = fc.watch_frame(fc.join_rows(fc.collect(bus, ["host1"])), now=0)
    assert "STRUGGLING (dirty_rate_exceeds_transfer_rate, remaining_not_shrinking); " \
        "predicted: struggles 90% ~640ms; next: none" in frame, frame
    rc, out = run(["--json", "show", "host1", UUID], bus)
    assert json.loads(out)["prediction"] == stuck()["host1"][0]["prediction"]


def test_prediction_texts_and_rows_without_one():
    assert fc.predicted({"prediction": {"outlook": "converges", "confidence_pct": 75,
                                        "expected_downtime_ms": 120}}) == "converges 75% ~120ms"
    assert fc.predicted({"prediction": {"outlook": "unknown", "confidence_pct": 0,
                                        "expected_downtime_ms": None}}) == "unknown 0%"
    assert fc.predicted({"prediction": None}) == ""
    # a 1.0 worker's reply has no prediction: the column shows "-"
    old = stuck()["host1"][0]
    del old["prediction"]
    schemas.validate_reply("list_migrations", [old])
    rows = fc.join_rows([("host1", old)])
    assert fc.predicted(rows[0]) == ""
    line = fc.table(rows).splitlines()[1].split()
    assert line[line.index("STRUGGLING") + 1] == "-"
