# SPDX-License-Identifier: Apache-2.0
"""Issue 3.2-3.4: calls, topics and de-duplication, with oslo.messaging's own
RPCClient (and raw kombu where the wire itself is the point) against one
ferry-worker in this module's own vhost.

Calls: a result; NoSuchMethod and UnsupportedVersion as oslo's client sees
them (RemoteError with exc_type); a handler failure rebuilt client-side as
the nova.exception class with its kwargs; exactly one final reply with
oslo's keys, seen on a raw reply queue.

Call-monitor heartbeats (`_timeout`): every call ferry serves is answered
from the dispatch of its request, on the main thread, before the next
delivery is read: list_migrations reads memory, pre_live_migration only
reserves an inbound slot and echoes migrate_data (ferry's destination needs
no libvirt preparation: the source's libvirt connects to libvirtd
directly), post_/rollback_live_migration_at_destination emit notifications
and, at most, look up and resume one local domain.  So no call is ever busy
across a heartbeat period, the final reply always comes first, and
wk_bus_reply_heartbeat has no caller.  The heartbeat reply format itself is
checked against oslo's captured call-monitor replies by the Criterion test
rpc_reply/heartbeat_matches_oslo_call_monitor_replies; here a call carrying
`_timeout` = 2 is answered by one final reply, and oslo's RPCClient with
call_monitor_timeout=2 gets its result.

Topics: casts on `compute-alt` and on the `compute_fanout` exchange reach
ferry (an unknown instance's live_migration is rolled back with its
notifications); a worker configured with topic "compute2" consumes there.

Read-only replies: list_migrations is answered on a channel never put in
confirm mode (as kombu publishes oslo's replies); a reply the broker cannot
route comes back (mandatory) and is ignored without disturbing the
connection.

De-dup: one message published twice with the same _unique_id is handled
once ("Duplicate message") and both copies are acked.
"""
import json
import re
import time
import uuid as uuidlib

import pytest
import schemas

from conftest import (Raw, Vhost, Worker, ctl_json, envelope, inner_msg, oslo_client, oslo_conf,
                      queues, url)

HOST = "hA-calls"


# ---- helpers shared with test_bad_input.py ----

def nova_instance(uuid, host):
    """(Instance primitive, context dict) built with nova's own objects."""
    import nova.objects
    nova.objects.register_all()
    import nova_peer
    ctx = nova_peer.context()
    inst = nova_peer.instance(ctx, uuid, host)
    return inst.obj_to_primitive(), ctx.to_dict()


class Notifications:
    """Reads the versioned notifications ferry publishes into the vhost's
    versioned_notifications.<priority> queues (declared by ferry), each
    validated against schemas/."""

    PRIOS = ("info", "warn", "error")

    def __init__(self, raw):
        self.raw, self.seen = raw, []

    def poll(self):
        ch = self.raw.conn.channel()
        for prio in self.PRIOS:
            while True:
                m = ch.basic_get("versioned_notifications." + prio, no_ack=True)
                if m is None:
                    break
                env = json.loads(m.body)
                inner = json.loads(env["oslo.message"])
                schemas.validate_notification(inner)  # issue 3.8: every message seen
                self.seen.append(inner)
        ch.close()
        return self.seen

    def find(self, event_type, pred=lambda n: True):
        return [n for n in self.poll() if n["event_type"] == event_type and pred(n)]

    def wait(self, event_type, pred=lambda n: True, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.find(event_type, pred)
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError("no %s notification; seen: %s" % (
            event_type, [n["event_type"] for n in self.seen]))


def with_request_id(rid):
    return lambda n: n.get("_context_request_id") == rid


def payload_uuid(uuid):
    return lambda n: n["payload"]["nova_object.data"].get("uuid") == uuid


def queue_settled(vhost, name, timeout=10):
    """The queue exists, holds nothing and has nothing unacked (every message
    was acked or rejected without requeue)."""
    deadline = time.monotonic() + timeout
    while True:
        q = queues(vhost).get(name)
        assert q is not None, "queue %s missing" % name
        if q["messages"] == 0 and q["messages_unacknowledged"] == 0:
            return q
        if time.monotonic() > deadline:
            raise AssertionError("queue %s not empty: %s" % (name, q))
        time.sleep(0.2)


def wait_count(worker, text, n=1, timeout=15):
    deadline = time.monotonic() + timeout
    while worker.count(text) < n:
        if not worker.alive():
            raise AssertionError("worker exited:\n" + worker.log()[-4000:])
        if time.monotonic() > deadline:
            raise AssertionError("%r logged %d times, want %d:\n%s" % (
                text, worker.count(text), n, worker.log()[-3000:]))
        time.sleep(0.1)


class Bus:
    """One vhost, one ferry-worker, oslo's RPCClient, raw kombu."""

    def __init__(self, tmp_root, name, host, **worker_kw):
        self.vhost = Vhost("%s-%s" % (name, uuidlib.uuid4().hex[:6]))
        self.url = url(self.vhost.name)
        self.host = host
        self.worker = Worker(tmp_root, host, self.url, **worker_kw)
        self.transport = self.raw = None
        try:
            self.worker.start()
            self.conf = oslo_conf(tmp_root)
            self.transport, self.client = oslo_client(
                self.conf, self.url, server=host, exmods=["nova.exception"], timeout=15)
            self.raw = Raw(self.url)
            self.notes = Notifications(self.raw)
        except BaseException:
            self.close()
            raise

    def nova(self, version="6.0", **kw):
        return self.client.prepare(version=version, **kw)

    def ferry(self, **kw):
        return self.client.prepare(version="1.0", namespace="ferry", **kw)

    def raw_call(self, method, args, wait=1.5, **kw):
        """Publishes a call to compute.<host>; returns (inner, replies to it)."""
        m = inner_msg(method, args, call=True, reply_q=self.raw.reply_q, **kw)
        self.raw.publish(envelope(m), "compute." + self.host)
        deadline = time.monotonic() + 15
        mine = []
        while time.monotonic() < deadline and not mine:
            mine = [r for r in self.raw.drain_replies(0.2) if r.get("_msg_id") == m["_msg_id"]]
        # anything more for this call would arrive now
        time.sleep(wait)
        mine = [r for r in self.raw.drain_replies(0.2) if r.get("_msg_id") == m["_msg_id"]]
        return m, mine

    def close(self):
        if self.transport is not None:
            self.transport.cleanup()
        if self.raw is not None:
            self.raw.close()
        try:
            self.worker.stop()
        finally:
            self.vhost.delete()


# ---- fixtures ----

@pytest.fixture(scope="module")
def bus(tmp_root, shared_broker):
    b = Bus(tmp_root, "hA-calls", HOST)
    yield b
    b.close()


def new_uuid():
    return str(uuidlib.uuid4())


# ---- calls ----

def test_list_migrations_returns_a_result(bus):
    got = bus.ferry().call({}, "list_migrations")
    assert got == []
    schemas.validate_reply("list_migrations", got)


def test_unknown_method_is_no_such_method(bus):
    import oslo_messaging as messaging
    with pytest.raises(messaging.RemoteError) as ei:
        bus.ferry().call({}, "no_such_thing")
    assert ei.value.exc_type == "NoSuchMethod"
    assert "Endpoint does not support RPC method no_such_thing" in ei.value.value
    # the nova namespace too: a 6.0 endpoint exists, the method does not
    with pytest.raises(messaging.RemoteError) as ei:
        bus.nova().call({}, "reboot_instance", instance={})
    assert ei.value.exc_type == "NoSuchMethod"


@pytest.mark.parametrize("version,namespace,method", [
    ("7.0", None, "live_migration"), ("6.2", None, "pre_live_migration"),
    ("2.0", "ferry", "list_migrations"), ("1.0", "other", "list_migrations")])
def test_unsupported_version(bus, version, namespace, method):
    import oslo_messaging as messaging
    with pytest.raises(messaging.RemoteError) as ei:
        bus.client.prepare(version=version, namespace=namespace).call({}, method)
    assert ei.value.exc_type == "UnsupportedVersion"
    assert ei.value.value == ("Endpoint does not support RPC version %s. Attempted method: %s"
                              % (version, method))


def test_old_nova_5x_version_accepted(bus):
    """nova pinned below 6.0 sends 5.x; nova-compute's proxy serves up to 5.13."""
    import nova.exception
    with pytest.raises(nova.exception.InvalidInput):
        bus.nova(version="5.13").call({}, "pre_live_migration", instance="x")


def test_handler_failure_rebuilt_as_nova_exception(bus):
    import nova.exception
    rid = "req-" + new_uuid()
    with pytest.raises(nova.exception.InvalidInput) as ei:
        bus.nova().call({"request_id": rid}, "pre_live_migration", instance="not-an-instance",
                        migrate_data=None)
    e = ei.value
    assert type(e).__name__ == "InvalidInput_Remote"
    assert e.kwargs["code"] == 400
    assert "argument 'instance' has the wrong type" in e.kwargs["reason"]
    assert str(e).startswith("pre_live_migration: argument 'instance' has the wrong type")
    log = bus.worker.log()
    assert re.search(r"ERROR worker\.dispatch \[%s .*argument 'instance' has the wrong type"
                     % re.escape(rid), log), log[-2000:]


def test_inbound_slots_exhausted_is_migration_precheck_error(bus):
    """pre_live_migration beyond the inbound limit: nova's MigrationPreCheckError
    with its kwargs; the reservations are then released by the rollback cast."""
    import nova.exception
    uuids = []
    try:
        with pytest.raises(nova.exception.MigrationPreCheckError) as ei:
            for _ in range(16):
                u = new_uuid()
                inst, ctx = nova_instance(u, "hA-src")
                got = bus.nova(timeout=15).call(ctx, "pre_live_migration", instance=inst,
                                                migrate_data=None)
                uuids.append(u)
                schemas.validate_reply("pre_live_migration", got)
                data = got["nova_object.data"]
                assert got["nova_object.name"] == "LibvirtLiveMigrateData"
                assert "target_connect_addr" in data
        assert ei.value.kwargs["code"] == 400
        assert "no free inbound migration slot" in ei.value.kwargs["reason"]
        assert uuids, "the first pre_live_migration must succeed"
        # an error text cut mid-UTF-8 (at 256 bytes) is still a failure, not None
        # (the uuid is refused before the slots are counted)
        inst, ctx = nova_instance(new_uuid(), "hA-src")
        inst["nova_object.data"]["uuid"] = "\u00e9" * 200
        with pytest.raises(nova.exception.InvalidInput) as ei:
            bus.nova(timeout=15).call(ctx, "pre_live_migration", instance=inst,
                                      migrate_data=None)
        assert "is not a uuid" in str(ei.value)
        listed = {m["instance_uuid"] for m in bus.ferry().call({}, "list_migrations")}
        assert listed == set(uuids)
    finally:
        for u in uuids:
            inst, ctx = nova_instance(u, "hA-src")
            bus.nova().cast(ctx, "rollback_live_migration_at_destination", instance=inst,
                            destroy_disks=True, migrate_data=None)
    deadline = time.monotonic() + 10
    while bus.ferry().call({}, "list_migrations") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bus.ferry().call({}, "list_migrations") == []


def test_call_monitor_timeout_call_succeeds(bus):
    """oslo's client with call_monitor_timeout=2: ferry's single final reply
    arrives before the monitor would need a heartbeat."""
    u = new_uuid()
    inst, ctx = nova_instance(u, "hA-src")
    got = bus.nova(timeout=20, call_monitor_timeout=2).call(
        ctx, "pre_live_migration", instance=inst, migrate_data=None)
    assert got["nova_object.data"]["target_connect_addr"]
    bus.nova().cast(ctx, "rollback_live_migration_at_destination", instance=inst,
                    destroy_disks=True, migrate_data=None)


REPLY_KEYS = {"result", "failure", "ending", "_msg_id", "_unique_id"}


def test_raw_call_gets_exactly_one_final_reply(bus):
    m, replies = bus.raw_call("list_migrations", {}, version="1.0", namespace="ferry")
    assert len(replies) == 1, replies
    r = replies[0]
    assert set(r) == REPLY_KEYS
    assert r["ending"] is True and r["failure"] is None and r["result"] == []
    assert r["_msg_id"] == m["_msg_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", r["_unique_id"]) and r["_unique_id"] != m["_unique_id"]


def test_raw_call_with_timeout_gets_one_reply_no_heartbeat(bus):
    m = inner_msg("list_migrations", {}, version="1.0", namespace="ferry", call=True,
                  reply_q=bus.raw.reply_q)
    m["_timeout"] = 2
    bus.raw.publish(envelope(m), "compute." + HOST)
    time.sleep(2.5)  # a heartbeat would be due after 1 s
    replies = [r for r in bus.raw.drain_replies(0.5) if r["_msg_id"] == m["_msg_id"]]
    assert len(replies) == 1 and replies[0]["ending"] is True, replies


def test_raw_call_failure_fields(bus):
    m, replies = bus.raw_call("pre_live_migration", {"instance": "x"})
    assert len(replies) == 1, replies
    r = replies[0]
    assert set(r) == REPLY_KEYS and r["ending"] is True and r["result"] is None
    assert isinstance(r["failure"], str)
    f = json.loads(r["failure"])
    assert list(f) == ["class", "module", "message", "tb", "args", "kwargs"]
    assert f["class"] == "InvalidInput" and f["module"] == "nova.exception"
    assert f["message"] == "pre_live_migration: argument 'instance' has the wrong type"
    assert f["args"] == [f["message"]]
    assert f["kwargs"] == {"code": 400, "reason": f["message"]}
    assert isinstance(f["tb"], list) and f["tb"] and all(isinstance(t, str) for t in f["tb"])
    assert f["tb"][-1] == "nova.exception.InvalidInput: %s\n" % f["message"]


def test_raw_call_no_such_method_fields(bus):
    m, replies = bus.raw_call("frobnicate", {})
    assert len(replies) == 1, replies
    f = json.loads(replies[0]["failure"])
    assert (f["class"], f["module"]) == ("NoSuchMethod", "oslo_messaging.rpc.dispatcher")
    assert f["message"] == "Endpoint does not support RPC method frobnicate"


def ferry_channels(bus):
    """{channel number: confirm mode} of the worker's broker connection."""
    conns = [c["pid"] for c in ctl_json("list_connections", "pid", "vhost", "client_properties")
             if c.get("vhost") == bus.vhost.name
             and "ferry" in json.dumps(c.get("client_properties"))]
    assert len(conns) == 1, conns
    return {c["number"]: c["confirm"] for c in ctl_json("list_channels", "connection", "number",
                                                        "confirm")
            if c.get("connection") == conns[0]}


def test_read_only_replies_have_a_channel_without_confirms(bus):
    """Channel 2 publishes with confirms (the outbox); channel 3, never in
    confirm mode, carries the replies to read-only calls."""
    assert bus.ferry().call({}, "list_migrations") == []
    assert ferry_channels(bus) == {1: False, 2: True, 3: False}


def test_unroutable_read_only_reply_comes_back_harmlessly(bus):
    """A list_migrations reply is mandatory on the unconfirmed channel: to a
    reply queue that does not exist the broker returns it (basic.return on
    channel 3); the worker ignores it, stays connected and keeps serving."""
    lost = bus.worker.count("Broker connection lost")
    m = inner_msg("list_migrations", {}, version="1.0", namespace="ferry", call=True,
                  reply_q="reply_" + uuidlib.uuid4().hex)
    bus.raw.publish(envelope(m), "compute." + HOST)
    queue_settled(bus.vhost.name, "compute." + HOST)
    time.sleep(0.5)  # the return reaches the worker
    assert bus.ferry().call({}, "list_migrations") == []
    assert bus.worker.count("Broker connection lost") == lost, bus.worker.log()[-3000:]
    assert ferry_channels(bus) == {1: False, 2: True, 3: False}


# ---- topics ----

def _unknown_guest_rolled_back(bus, u, rid):
    bus.notes.wait("instance.live_migration_rollback.end", payload_uuid(u))
    exc = bus.notes.wait("compute.exception", with_request_id(rid))
    assert exc[0]["priority"] == "ERROR"
    assert exc[0]["payload"]["nova_object.data"]["function_name"] == "live_migration"
    log = bus.worker.log()
    assert re.search(r"ERROR worker\.dispatch \[%s .*live_migration" % re.escape(rid), log)


def test_call_on_the_shared_topic_queue(bus):
    """A call to topic "compute" without a server lands on the shared queue
    "compute", which ferry consumes too (the only consumer in this vhost)."""
    assert bus.client.prepare(server=None, version="1.0", namespace="ferry").call(
        {}, "list_migrations") == []
    assert queues(bus.vhost.name)["compute"]["consumers"] == 1
    queue_settled(bus.vhost.name, "compute")


def _cast_live_migration_of_unknown_guest(bus, **target):
    """A live_migration cast by oslo's client aimed by target; ferry rolls it back."""
    u = new_uuid()
    inst, ctx = nova_instance(u, HOST)
    transport, client = oslo_client(bus.conf, bus.url, **target)
    try:
        client.prepare(version="6.0").cast(ctx, "live_migration", instance=inst,
                                           dest="hA-elsewhere", block_migration=False,
                                           migration=None, migrate_data=None)
    finally:
        transport.cleanup()
    _unknown_guest_rolled_back(bus, u, ctx["request_id"])


def test_cast_on_alt_topic_reaches_ferry(bus):
    _cast_live_migration_of_unknown_guest(bus, topic="compute-alt", server=HOST)
    queue_settled(bus.vhost.name, "compute-alt." + HOST)


def test_fanout_cast_reaches_ferry(bus):
    _cast_live_migration_of_unknown_guest(bus, topic="compute", fanout=True)
    fanout = [q for q in queues(bus.vhost.name) if q.startswith("compute_fanout_")]
    assert len(fanout) == 1, fanout
    queue_settled(bus.vhost.name, fanout[0])


def test_topic_is_configurable(tmp_root, shared_broker):
    class TopicWorker(Worker):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            with open(self.conf, "a") as f:
                f.write('topic = "compute2";\n')

    host = "hA-topic2"
    vh = Vhost("hA-topic-" + uuidlib.uuid4().hex[:6])
    u = url(vh.name)
    w = TopicWorker(tmp_root, host, u, alt_topic="")
    transport = None
    try:
        w.start()
        transport, client = oslo_client(oslo_conf(tmp_root), u, topic="compute2", server=host)
        assert client.prepare(namespace="ferry").call({}, "list_migrations") == []
        qs = queues(vh.name)
        assert qs["compute2." + host]["consumers"] == 1
        assert qs["compute2"]["consumers"] == 1
        assert not [q for q in qs if q.startswith("compute.") or q == "compute"], sorted(qs)
        assert not [q for q in qs if q.startswith("compute-alt")], sorted(qs)
    finally:
        if transport is not None:
            transport.cleanup()
        try:
            w.stop()
        finally:
            vh.delete()


# ---- de-duplication ----

def test_duplicate_cast_handled_once_both_acked(bus):
    u = new_uuid()
    inst, ctx = nova_instance(u, HOST)
    m = inner_msg("live_migration", {"instance": inst, "dest": "hA-elsewhere",
                                     "block_migration": False, "migration": None,
                                     "migrate_data": None})
    body = envelope(m)
    rid = m["_context_request_id"]
    before = bus.worker.count("Duplicate message '%s'" % m["_unique_id"])
    assert before == 0
    bus.raw.publish(body, "compute." + HOST)
    bus.raw.publish(body, "compute." + HOST)
    wait_count(bus.worker, "Duplicate message '%s'" % m["_unique_id"])
    queue_settled(bus.vhost.name, "compute." + HOST)
    # handled once: one failure, one compute.exception, one rollback
    time.sleep(0.5)
    assert len(bus.notes.find("compute.exception", with_request_id(rid))) == 1
    assert len(bus.notes.find("instance.live_migration_rollback.end", payload_uuid(u))) == 1
    assert bus.worker.count("Duplicate message '%s'" % m["_unique_id"]) == 1


def test_duplicate_call_answered_once(bus):
    m = inner_msg("list_migrations", {}, version="1.0", namespace="ferry", call=True,
                  reply_q=bus.raw.reply_q)
    body = envelope(m)
    bus.raw.publish(body, "compute." + HOST)
    bus.raw.publish(body, "compute." + HOST)
    wait_count(bus.worker, "Duplicate message '%s'" % m["_unique_id"])
    time.sleep(0.5)
    replies = [r for r in bus.raw.drain_replies(0.5) if r["_msg_id"] == m["_msg_id"]]
    assert len(replies) == 1, replies
    queue_settled(bus.vhost.name, "compute." + HOST)



@pytest.mark.parametrize("unique_id", ["", "u" * 200], ids=["empty", "long"])
def test_odd_unique_ids_are_not_duplicates(bus, unique_id):
    """A _unique_id equal to a free slot of the de-dup table (empty) or too
    long to keep never makes a message a duplicate: each call is answered."""
    for _ in range(2):
        m = inner_msg("list_migrations", {}, version="1.0", namespace="ferry", call=True,
                      reply_q=bus.raw.reply_q)
        m["_unique_id"] = unique_id
        bus.raw.publish(envelope(m), "compute." + HOST)
        deadline = time.monotonic() + 10
        replies = []
        while not replies and time.monotonic() < deadline:
            replies = [r for r in bus.raw.drain_replies(0.2) if r["_msg_id"] == m["_msg_id"]]
        assert len(replies) == 1, replies
    assert "Duplicate message '%s'" % unique_id not in bus.worker.log()
