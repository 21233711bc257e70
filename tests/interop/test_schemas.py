# SPDX-License-Identifier: Apache-2.0
"""Issue 3.8 and 3.9: every message on the wire validates against schemas/,
and ferry's InstanceActionPayload is the one nova builds.

Two ferry workers (source hD-src, destination hD-dst) share a vhost of the
shared broker with nova's own ComputeAPI (tests/peers/nova_peer.py, run as a
child process so its RPC layer is on this vhost).  RabbitMQ's firehose
(rabbitmqctl trace_on) copies every message published in the vhost to
amq.rabbitmq.trace, where a raw kombu tap reads it: nova's casts, the calls
and casts ferry makes to its peer, the replies ferry sends, and the
notifications ferry emits.  libvirt's test driver has one running guest
("test"): its live migration gets through pre_live_migration, then fails
(the test driver cannot migrate), so the source rolls back and casts
rollback_live_migration_at_destination.  nova's ComputeAPI also calls the
destination directly (pre_live_migration then post_live_migration_at_
destination, and pre then rollback), so every method ferry accepts crosses
the wire.  An unknown instance, and force-complete / abort with no migration
running, give compute.exception.
Nova's InstanceActionPayload is built by nova's own code from the Instance
primitive ferry received, and compared field by field."""
import json
import os
import subprocess
import uuid as uuidlib

import pytest

from conftest import REPO, Vhost, Worker, ctl, url, wait_until

import listener  # tests/peers, on sys.path through conftest
import schemas

PY = "/usr/bin/python3"
PEER = os.path.join(REPO, "tests", "peers", "nova_peer.py")
TEST_GUEST = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # libvirt test:///default's "test"
DIRECT_POST = "3c9e1f6a-0d2b-4e8f-9a71-5b6c7d8e9f01"  # instances nova's calls name
DIRECT_ROLLBACK = "3c9e1f6a-0d2b-4e8f-9a71-5b6c7d8e9f02"
SAMPLES = os.path.join(REPO, "tests", "data", "reference", "oslo-fixtures",
                       "upstream_notification_samples_26.2.2", "resolved")

# nova's side, one child process on the test's vhost: casts and calls made by
# nova's ComputeAPI / RPCClient (tests/peers/nova_peer.py), and nova's own
# InstanceActionPayload (Debian's python3-nova) built for an Instance
# primitive and a context.  One JSON command per line in, one JSON answer
# per line out; os._exit at the end (oslo's threads would hold exit ~10 s).
NOVA_DRIVER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import nova_peer
nova_peer.setup(sys.argv[2])
import nova.context, nova.objects
from nova.notifications.objects import instance as ni
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd.pop("op")
    try:
        if op == "live_migration":
            out = nova_peer.cast_live_migration(**cmd)
        elif op == "force_complete":
            out = nova_peer.cast_force_complete(**cmd)
        elif op == "abort":
            out = nova_peer.cast_abort(**cmd)
        elif op == "list_migrations":
            out = nova_peer.list_migrations(**cmd)
        elif op in ("pre_live_migration", "post_live_migration_at_destination",
                    "rollback_live_migration_at_destination"):
            # ComputeAPI's own calls/casts to a destination, as the source
            # nova-compute makes them; results come back through nova's
            # serializer (a LiveMigrateData object for pre_live_migration).
            ctx = nova_peer.context()
            inst = nova_peer.instance(ctx, cmd["uuid"], cmd["source"])
            api = nova_peer.compute_api()
            if op == "pre_live_migration":
                md = api.pre_live_migration(ctx, inst, False, None, cmd["dest"],
                                            nova_peer.migrate_data())
                out = {"class": type(md).__name__,
                       "target_connect_addr": md.target_connect_addr}
            elif op == "post_live_migration_at_destination":
                out = api.post_live_migration_at_destination(ctx, inst, False, cmd["dest"])
            else:
                out = api.rollback_live_migration_at_destination(
                    ctx, inst, cmd["dest"], True, nova_peer.migrate_data())
        elif op == "payload":
            ctx = nova.context.RequestContext.from_dict(cmd["context"])
            inst = nova.objects.Instance.obj_from_primitive(cmd["instance"], ctx)
            for k, v in cmd["set"].items():  # what nova's manager changed
                setattr(inst, k, v)
            # Fields the primitive lacks nova would lazy-load from its
            # database; this peer has none: they are NULL columns here.
            unset = sorted(f for _, f in ni.InstancePayload.SCHEMA.values()
                           if not inst.obj_attr_is_set(f))
            for f in unset:
                setattr(inst, f, None)
            payload = ni.InstanceActionPayload(ctx, inst, None)
            payload.obj_reset_changes(recursive=True)  # as NotificationBase.emit
            out = {"payload": payload.obj_to_primitive(), "unset": unset}
        else:
            raise ValueError(op)
        print(json.dumps({"ok": out}), flush=True)
    except Exception as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}), flush=True)
sys.stdout.flush()
os._exit(0)
"""


class Nova:
    """The nova child process (NOVA_DRIVER), stopped by closing its stdin."""

    def __init__(self, transport_url):
        self.proc = subprocess.Popen(
            [PY, "-c", NOVA_DRIVER, os.path.join(REPO, "tests", "peers"), transport_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, op, **args):
        self.proc.stdin.write(json.dumps(dict(args, op=op)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "nova peer exited: %s" % self.proc.stderr.read()[-3000:]
        r = json.loads(line)
        assert "error" not in r, "nova peer, %s: %s" % (op, r["error"])
        return r["ok"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Firehose(listener.RawTap):
    """Raw kombu tap on the vhost's firehose: (exchange, routing_key, inner)
    of every message published in the vhost, oslo envelope opened."""

    def __init__(self, vhost_name, transport_url):
        import kombu
        ctl("trace_on", "-p", vhost_name)
        super().__init__(transport_url,
                         kombu.Exchange("amq.rabbitmq.trace", type="topic", passive=True),
                         routing_key="publish.#")
        self.errors = []

    def _on_message(self, body, message):
        h = message.headers or {}
        try:
            env = json.loads(message.body)
            inner = json.loads(env["oslo.message"])
            assert env["oslo.version"] == "2.0"
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            with self._lock:
                self.errors.append("not an oslo 2.0 envelope (%s): %r" % (e, message.body[:200]))
        else:
            with self._lock:
                self.messages.append((h.get("exchange_name"), (h.get("routing_keys") or [""])[0],
                                      inner))
        message.ack()

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def requests(self, method=None):
        return [(ex, rk, m) for ex, rk, m in self.snapshot()
                if "method" in m and (method is None or m["method"] == method)]

    def notifications(self, event_type=None, uuid=None):
        return [m for ex, rk, m in self.snapshot() if "event_type" in m
                and (event_type is None or m["event_type"] == event_type)
                and (uuid is None or _payload_uuid(m) == uuid)]


def _payload_uuid(inner):
    return ((inner.get("payload") or {}).get("nova_object.data") or {}).get("uuid")


def _context(inner):
    return {k[len("_context_"):]: v for k, v in inner.items() if k.startswith("_context_")}


def worker(tmp, host, transport_url, empty_host=False):
    """A worker on libvirt's test driver.  empty_host: a node with no
    domains (a destination: pre_live_migration refuses a guest that already
    runs there, and test:///default always runs its "test" guest)."""
    w = Worker(tmp, host, transport_url)
    uri = "test:///default"
    if empty_host:
        node = os.path.join(w.dir, "empty-node.xml")
        with open(node, "w") as f:
            f.write("<node/>\n")
        uri = "test://" + node
    with open(w.conf) as f:
        text = f.read()
    # Loopback only: the destination answers pre_live_migration with 127.0.0.1.
    text = text.replace('connection_uri = "test:///default";',
                        'connection_uri = "%s"; '
                        'live_migration_inbound_addr = "127.0.0.1";' % uri)
    with open(w.conf, "w") as f:
        f.write(text)
    return w.start()


@pytest.fixture(scope="module")
def wire(shared_broker, tmp_root):
    """Firehose tap, source and destination workers, traffic from nova; both
    tests of this module read the one run."""
    vhost = Vhost("hD-schemas-" + uuidlib.uuid4().hex[:6])
    u = url(vhost.name)
    tap = Firehose(vhost.name, u).start()
    src = worker(tmp_root, "hD-src-" + vhost.name[-6:], u)
    dst = worker(tmp_root, "hD-dst-" + vhost.name[-6:], u, empty_host=True)
    nova = Nova(u)
    unknown = str(uuidlib.uuid4())
    try:
        nova("live_migration", uuid=TEST_GUEST, source=src.host, dest=dst.host)
        wait_until(lambda: tap.notifications("instance.live_migration_rollback_dest.end",
                                             TEST_GUEST), 30, what="rollback at destination")
        wait_until(lambda: tap.notifications("instance.live_migration_rollback.end",
                                             TEST_GUEST), 30, what="rollback at source")
        nova("live_migration", uuid=unknown, source=src.host, dest=dst.host)
        # nova's own source-side calls to the destination: pre then post, and
        # pre then rollback.
        for u_, end in ((DIRECT_POST, "post_live_migration_at_destination"),
                        (DIRECT_ROLLBACK, "rollback_live_migration_at_destination")):
            pre = nova("pre_live_migration", uuid=u_, source=src.host, dest=dst.host)
            assert pre == {"class": "LibvirtLiveMigrateData",
                           "target_connect_addr": "127.0.0.1"}, pre
            assert nova(end, uuid=u_, source=src.host, dest=dst.host) is None
        wait_until(lambda: tap.notifications("instance.live_migration_rollback_dest.end",
                                             DIRECT_ROLLBACK), 30, what="nova's rollback cast")
        nova("force_complete", uuid=TEST_GUEST, source=src.host)
        nova("abort", uuid=TEST_GUEST, source=src.host)
        listed = nova("list_migrations", host=src.host)
        wait_until(lambda: len(tap.notifications("compute.exception")) >= 3, 30,
                   what="three compute.exception")
        wait_until(lambda: tap.notifications("instance.live_migration_rollback.end", unknown),
                   30, what="rollback of the unknown instance")
        wait_until(lambda: [1 for ex, rk, m in tap.snapshot()
                            if m.get("ending") and isinstance(m.get("result"), list)], 30,
                   what="list_migrations reply on the wire")
        yield tap, src, dst, unknown, listed, nova
    finally:
        nova.close()
        src.stop()
        dst.stop()
        tap.stop()
        vhost.delete()


def test_every_message_on_the_wire_matches_its_schema(wire):
    tap, src, dst, unknown, listed, nova = wire
    assert not tap.errors, tap.errors
    msgs = tap.snapshot()
    requests, replies, notes = {}, [], []
    for ex, rk, m in msgs:
        if "method" in m:
            requests.setdefault(m["method"], []).append(m)
        elif "event_type" in m:
            notes.append((rk, m))
        elif "_msg_id" in m:
            replies.append(m)
    # What crossed the wire: nova's casts and call, ferry's own call and cast.
    counts = {m: len(ms) for m, ms in requests.items()}
    assert counts == {"live_migration": 2, "live_migration_force_complete": 1,
                      "live_migration_abort": 1, "list_migrations": 1,
                      "pre_live_migration": 3, "post_live_migration_at_destination": 1,
                      "rollback_live_migration_at_destination": 2}, counts
    # every method ferry accepts, but recover_migration: it needs a post-copy
    # migration that broke for good (tests/e2e/test_postcopy_recovery.py)
    assert sorted(set(schemas.METHODS) - {"recover_migration"}) == sorted(counts)
    checked = 0
    for method, ms in requests.items():
        for m in ms:
            schemas.validate_method_args(method, m["args"])
            checked += 1
    # Replies: the final one of each call ferry answered; its result has the
    # method's shape.
    calls = {m["_msg_id"]: method for method, ms in requests.items() for m in ms
             if "_msg_id" in m}
    final = [r for r in replies if r.get("ending")]
    assert sorted(calls[r["_msg_id"]] for r in final) == [
        "list_migrations", "post_live_migration_at_destination", "pre_live_migration",
        "pre_live_migration", "pre_live_migration"], final
    for r in final:
        assert r.get("failure") is None, r["failure"]
        schemas.validate_reply(calls[r["_msg_id"]], r["result"])
        checked += 1
    assert listed == [], listed
    # Notifications ferry emitted, on the routing key of their priority.
    events = sorted(m["event_type"] for rk, m in notes)
    for e, n in (("instance.live_migration_pre.start", 3),
                 ("instance.live_migration_pre.end", 3),
                 ("instance.live_migration_rollback_dest.start", 2),
                 ("instance.live_migration_rollback_dest.end", 2),
                 ("instance.live_migration_post_dest.start", 1),
                 ("instance.live_migration_post_dest.end", 1)):
        assert events.count(e) == n, (e, events)
    for e in ("instance.live_migration_rollback.start", "instance.live_migration_rollback.end"):
        assert events.count(e) == 2, (e, events)
    assert events.count("compute.exception") == 3, events
    for rk, m in notes:
        schemas.validate_notification(m)
        assert rk == "versioned_notifications." + m["priority"].lower(), (rk, m["priority"])
        checked += 1
    assert checked == len(msgs) - (len(replies) - len(final)), (checked, len(msgs))
    # The same validators refuse a message that is off by one field.
    bad = json.loads(json.dumps(requests["pre_live_migration"][0]["args"]))
    del bad["instance"]["nova_object.data"]["uuid"]
    with pytest.raises(schemas.SchemaError):
        schemas.validate_method_args("pre_live_migration", bad)
    bad = json.loads(json.dumps(notes[0][1]))
    bad["payload"]["nova_object.data"]["surprise"] = 1
    with pytest.raises(schemas.SchemaError):
        schemas.validate_notification(bad)


def _diff(got, want, path=""):
    """Field-by-field differences of two primitives (keys, types, values)."""
    out = []
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(got) | set(want)):
            if k not in got:
                out.append("%s%s: missing (nova: %r)" % (path, k, want[k]))
            elif k not in want:
                out.append("%s%s: not in nova's (ferry: %r)" % (path, k, got[k]))
            else:
                out += _diff(got[k], want[k], path + k + ".")
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (g, w) in enumerate(zip(got, want)):
            out += _diff(g, w, "%s[%d]." % (path, i))
    elif type(got) is not type(want) or got != want:
        out.append("%s: ferry %r, nova %r" % (path.rstrip("."), got, want))
    return out


def test_instance_action_payload_is_novas(wire):
    tap, src, dst, unknown, listed, nova = wire
    def request(method, uuid):
        ms = [m for ex, rk, m in tap.requests(method)
              if m["args"]["instance"]["nova_object.data"]["uuid"] == uuid]
        assert len(ms) == 1, (method, uuid, len(ms))
        return ms[0]

    cast = request("live_migration", TEST_GUEST)  # from nova
    pre = request("pre_live_migration", TEST_GUEST)  # from ferry, the source
    rollback = request("rollback_live_migration_at_destination", TEST_GUEST)  # ferry
    post = request("post_live_migration_at_destination", DIRECT_POST)  # from nova
    # Each notification, the request whose Instance it reports, and what
    # nova's manager changes on the Instance before notifying:
    # _rollback_live_migration resets task_state before rollback.end;
    # post_live_migration_at_destination moves the instance before
    # post_dest.end (host, node; task_state reset).
    none = {}
    moved = {"host": dst.host, "node": dst.host, "task_state": None}
    cases = [
        ("instance.live_migration_rollback.start", TEST_GUEST, src, cast, none),
        ("instance.live_migration_rollback.end", TEST_GUEST, src, cast, {"task_state": None}),
        ("instance.live_migration_pre.start", TEST_GUEST, dst, pre, none),
        ("instance.live_migration_pre.end", TEST_GUEST, dst, pre, none),
        ("instance.live_migration_rollback_dest.start", TEST_GUEST, dst, rollback, none),
        ("instance.live_migration_rollback_dest.end", TEST_GUEST, dst, rollback, none),
        ("instance.live_migration_post_dest.start", DIRECT_POST, dst, post, none),
        ("instance.live_migration_post_dest.end", DIRECT_POST, dst, post, moved),
    ]
    # ferry forwards nova's Instance primitive untouched.
    assert pre["args"]["instance"] == cast["args"]["instance"]
    assert rollback["args"]["instance"] == cast["args"]["instance"]
    want = [nova("payload", instance=req["args"]["instance"], context=_context(req), set=set_)
            for _, _, _, req, set_ in cases]
    # nova_peer's Instance leaves these to a database: null columns on both
    # sides (ferry emits null for a field the primitive lacks).
    assert all(n["unset"] == want[0]["unset"] for n in want)
    assert set(want[0]["unset"]) <= {"created_at", "updated_at", "deleted_at",
                                     "terminated_at", "locked_by"}, want[0]["unset"]
    want = [n["payload"] for n in want]
    for (event, uuid, w, req, set_), nova in zip(cases, want):
        got = tap.notifications(event, uuid)
        assert len(got) == 1, (event, len(got))
        got = got[0]
        assert got["publisher_id"] == "nova-compute:" + w.host, got["publisher_id"]
        payload = got["payload"]
        if event == "instance.live_migration_rollback.end" and \
                payload["nova_object.data"].get("fault") is not None:
            # ferry's one addition: a rollback.end after libvirt failed the
            # migration carries libvirt's error as the (nullable) fault,
            # where nova's manager sends null; it must be nova's own
            # ExceptionPayload, which is all the comparison can hold it to.
            from nova.notifications.objects.exception import ExceptionPayload
            fault = payload["nova_object.data"]["fault"]
            assert (fault["nova_object.name"], fault["nova_object.namespace"],
                    fault["nova_object.version"]) == ("ExceptionPayload", "nova",
                                                      ExceptionPayload.VERSION), fault
            assert set(fault["nova_object.data"]) == set(ExceptionPayload.fields), fault
            assert "p2p migration" in fault["nova_object.data"]["exception_message"], fault
            nova = json.loads(json.dumps(nova))
            nova["nova_object.data"]["fault"] = fault
        problems = _diff(payload, nova)
        assert not problems, "%s differs from nova's InstanceActionPayload:\n  %s" % (
            event, "\n  ".join(problems))
        # The same keys, object names and versions as nova's published sample.
        sample_path = os.path.join(SAMPLES, event.replace(".", "-", 1).replace(".", "-") + ".json")
        with open(sample_path) as f:
            sample = json.load(f)["payload"]
        for k in ("nova_object.name", "nova_object.namespace", "nova_object.version"):
            assert payload[k] == sample[k], (event, k)
        assert sorted(payload["nova_object.data"]) == sorted(sample["nova_object.data"])
        for k in ("flavor",):
            assert sorted(payload["nova_object.data"][k]["nova_object.data"]) == \
                sorted(sample["nova_object.data"][k]["nova_object.data"])
    # The Instance-derived values, spelled out: the source host on both sides.
    d = tap.notifications("instance.live_migration_pre.start", TEST_GUEST)[0]["payload"]
    d = d["nova_object.data"]
    assert d["host"] == src.host and d["node"] == src.host
    assert d["uuid"] == TEST_GUEST and d["state"] == "active" and d["power_state"] == "running"
    assert d["image_uuid"] == "155d900f-4e14-4e4c-a73d-069cbf4541e6"
    assert d["flavor"]["nova_object.data"]["name"] == "ferry.tiny"
    assert [ip["nova_object.data"]["address"] for ip in d["ip_addresses"]] == ["127.0.100.5"]
    end = tap.notifications("instance.live_migration_rollback.end", TEST_GUEST)[0]
    assert end["payload"]["nova_object.data"]["task_state"] is None
    end = tap.notifications("instance.live_migration_post_dest.end", DIRECT_POST)[0]
    assert end["payload"]["nova_object.data"]["host"] == dst.host
