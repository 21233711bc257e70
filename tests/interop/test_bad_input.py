# SPDX-License-Identifier: Apache-2.0
"""Issue 3.7 on the real broker: junk published raw (kombu) to
compute.<host> of one ferry-worker in this module's own vhost.

For every case: the worker keeps running and consuming (a valid call right
after gets its answer), it logs one clear line (with the request id when
the message carried one), a call gets exactly one oslo failure reply
whenever the message still says where to answer, a cast that names an
instance gets a compute.exception ERROR notification, and the queue ends
empty with nothing unacked and nothing redelivered (the log line is not
repeated after the next round trip: the message was acked, or rejected
without requeue)."""
import json
import re
import time
import uuid as uuidlib

import pytest

from conftest import envelope, inner_msg
from test_calls import Bus, nova_instance, payload_uuid, queue_settled, with_request_id

HOST = "hA-bad"
RK = "compute." + HOST
MAX_BODY = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def bus(tmp_root, shared_broker):
    b = Bus(tmp_root, "hA-bad", HOST)
    yield b
    b.close()


def instance(u=None):
    return nova_instance(u or str(uuidlib.uuid4()), HOST)


def survives(bus, log_re, publish, count=1):
    """Runs publish(), waits for log_re (a regex) to match `count` more lines,
    then checks the worker still answers, the queue is settled and the line
    did not come again (no redelivery)."""
    rx = re.compile(log_re)

    def n():
        return len(rx.findall(bus.worker.log()))

    before = n()
    publish()
    deadline = time.monotonic() + 15
    while n() < before + count:
        assert bus.worker.alive(), bus.worker.log()[-4000:]
        assert time.monotonic() < deadline, "no line %r:\n%s" % (log_re,
                                                                  bus.worker.log()[-3000:])
        time.sleep(0.1)
    assert isinstance(bus.ferry().call({}, "list_migrations"), list)
    queue_settled(bus.vhost.name, RK)
    assert bus.worker.alive()
    assert n() == before + count, bus.worker.log()[-3000:]


def call_replies(bus, m, wait=1.0):
    return [r for r in bus.raw.drain_replies(wait) if r.get("_msg_id") == m["_msg_id"]]


def one_failure(bus, m, cls="InvalidInput", module="nova.exception"):
    replies = call_replies(bus, m)
    assert len(replies) == 1, replies
    r = replies[0]
    assert r["ending"] is True and r["result"] is None
    f = json.loads(r["failure"])
    assert (f["class"], f["module"]) == (cls, module), f
    assert set(f) == {"class", "module", "message", "tb", "args", "kwargs"}
    return f


def call(bus, method, args, **kw):
    return inner_msg(method, args, call=True, reply_q=bus.raw.reply_q, **kw)


def exception_notified(bus, rid, uuid=None):
    n = bus.notes.wait("compute.exception", with_request_id(rid))
    assert len(n) == 1, n
    assert n[0]["priority"] == "ERROR"
    data = n[0]["payload"]["nova_object.data"]
    assert n[0]["payload"]["nova_object.name"] == "ExceptionPayload"
    assert data["exception_message"]
    if uuid is not None:
        bus.notes.wait("instance.live_migration_rollback.end", payload_uuid(uuid))
    return data


def undecodable(rid=None):
    prefix = r"\[%s " % re.escape(rid) if rid else r"\[-\] "
    return prefix + r".*Undecodable message on '%s'" % re.escape(RK)


# ---- bodies that are not oslo messages ----

@pytest.mark.parametrize("body,why", [
    (b'{"oslo.version": "2.0", "oslo.message": "{\\"method\\": ', "malformed JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b'"just a string"', "not a JSON object"),
    (b"", "malformed JSON"),
    (b'{"oslo.version": "2.0", "oslo.message": "this is not json"}', "oslo.message: malformed"),
    (b'{"oslo.version": "2.0", "oslo.message": {"method": "x"}}', "oslo.message"),
    (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "version"),
], ids=["truncated", "list", "string", "empty", "message-not-json", "message-not-string",
        "envelope-3.0"])
def test_not_an_oslo_message(bus, body, why):
    survives(bus, undecodable() + r".*%s.*, rejected" % re.escape(why),
             lambda: bus.raw.publish(body, RK))


def test_object_that_is_not_an_rpc_request(bus):
    survives(bus, r"Invalid RPC message on '%s': .*method.*, rejected" % re.escape(RK),
             lambda: bus.raw.publish(b'{"hello": "world"}', RK))


def test_invalid_utf8(bus):
    body = b'{"oslo.version": "2.0", "oslo.message": "{\\"method\\": \\"\xff\xfe\\"}"}'
    survives(bus, undecodable() + r".*rejected", lambda: bus.raw.publish(body, RK))
    # the log line stays printable
    line = [l for l in bus.worker.log().splitlines() if "Undecodable" in l][-1]
    assert line.isprintable(), line


def test_lone_surrogate_in_a_call_gets_a_failure(bus):
    inst, ctx = instance()
    m = call(bus, "pre_live_migration", {"instance": inst, "migrate_data": None,
                                         "junk": "\udc80"})
    body = envelope(m)  # Python writes the lone surrogate as \udc80
    survives(bus, undecodable(m["_context_request_id"]) + r".*failure sent",
             lambda: bus.raw.publish(body, RK))
    f = one_failure(bus, m)
    assert "undecodable" in f["message"]


def test_deep_nesting_bare(bus):
    survives(bus, undecodable() + r".*(deep|nesting).*rejected",
             lambda: bus.raw.publish(b"[" * 10000 + b"]" * 10000, RK))


def test_deep_nesting_in_a_call_gets_a_failure(bus):
    deep = "[" * 10000 + "]" * 10000
    m = call(bus, "pre_live_migration", {"instance": "@DEEP@"})
    text = json.dumps(m).replace('"@DEEP@"', deep)
    body = json.dumps({"oslo.version": "2.0", "oslo.message": text})
    survives(bus, undecodable(m["_context_request_id"]) + r".*(deep|nesting).*failure sent",
             lambda: bus.raw.publish(body, RK))
    f = one_failure(bus, m)
    assert re.search("deep|nesting", f["message"]), f


def test_deep_nesting_in_a_cast(bus):
    deep = "[" * 10000 + "]" * 10000
    m = inner_msg("live_migration", {"instance": "@DEEP@"})
    text = json.dumps(m).replace('"@DEEP@"', deep)
    body = json.dumps({"oslo.version": "2.0", "oslo.message": text})
    survives(bus, undecodable(m["_context_request_id"]) + r".*, rejected\n",
             lambda: bus.raw.publish(body, RK))


def test_body_above_the_limit(bus):
    inst, ctx = instance()
    m = call(bus, "pre_live_migration", {"instance": inst, "pad": "x" * (9 * 1024 * 1024)})
    body = envelope(m)
    assert len(body) > MAX_BODY
    survives(bus, r"Message on '%s' is %d bytes, above the %d-byte limit: rejected"
             % (re.escape(RK), len(body), MAX_BODY), lambda: bus.raw.publish(body, RK))
    # nothing of it was read: no reply can be sent
    assert call_replies(bus, m, 0.5) == []


def test_body_at_the_limit_is_read(bus):
    """Just below the limit is still a message: it is decoded and answered."""
    m = call(bus, "pre_live_migration", {"instance": "x"})
    pad = MAX_BODY - len(envelope(dict(m, pad=""))) - 64
    m["pad"] = "y" * pad
    body = envelope(m)
    assert MAX_BODY - 128 < len(body) <= MAX_BODY
    bus.raw.publish(body, RK)
    f = one_failure(bus, m)
    assert "argument 'instance' has the wrong type" in f["message"]
    queue_settled(bus.vhost.name, RK)


# ---- oslo messages with bad content ----

def test_wrong_arg_type_cast(bus):
    m = inner_msg("live_migration", {"instance": "i-am-a-string", "dest": "x"})
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*live_migration: argument 'instance' has the wrong type"
             % re.escape(rid), lambda: bus.raw.publish(envelope(m), RK))
    exception_notified(bus, rid)


def test_wrong_arg_type_cast_names_instance(bus):
    u = str(uuidlib.uuid4())
    inst, ctx = instance(u)
    m = inner_msg("live_migration", {"instance": inst, "dest": 42})
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*argument 'dest' has the wrong type" % re.escape(rid),
             lambda: bus.raw.publish(envelope(m), RK))
    data = exception_notified(bus, rid, u)
    assert "dest" in data["exception_message"]


def test_wrong_arg_type_call(bus):
    m = call(bus, "pre_live_migration", {"instance": ["not", "an", "instance"]})
    survives(bus, r"\[%s .*argument 'instance' has the wrong type"
             % re.escape(m["_context_request_id"]), lambda: bus.raw.publish(envelope(m), RK))
    f = one_failure(bus, m)
    assert f["kwargs"]["code"] == 400


def test_missing_args_cast(bus):
    u = str(uuidlib.uuid4())
    inst, ctx = instance(u)
    m = inner_msg("live_migration", {"instance": inst})
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*missing argument 'dest'" % re.escape(rid),
             lambda: bus.raw.publish(envelope(m), RK))
    exception_notified(bus, rid, u)


def test_missing_args_object_call(bus):
    m = call(bus, "pre_live_migration", {})
    del m["args"]
    survives(bus, r"\[%s .*Invalid RPC message on '%s': .*args"
             % (re.escape(m["_context_request_id"]), re.escape(RK)),
             lambda: bus.raw.publish(envelope(m), RK))
    f = one_failure(bus, m)
    assert "args" in f["message"]


def test_invalid_field_in_a_cast_naming_an_instance(bus):
    """version is a number: the message is refused before dispatch, but the
    instance it names still gets its ERROR notification."""
    u = str(uuidlib.uuid4())
    inst, ctx = instance(u)
    m = inner_msg("live_migration", {"instance": inst, "dest": "x"})
    m["version"] = 6
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*Invalid RPC message on '%s': .*version"
             % (re.escape(rid), re.escape(RK)), lambda: bus.raw.publish(envelope(m), RK))
    data = exception_notified(bus, rid)
    assert data["function_name"] == "live_migration"
    assert "version" in data["exception_message"]


def test_unknown_method_cast(bus):
    inst, ctx = instance()
    m = inner_msg("frobnicate", {"instance": inst})
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*Cannot dispatch 'frobnicate'" % re.escape(rid),
             lambda: bus.raw.publish(envelope(m), RK))
    data = exception_notified(bus, rid)
    assert "frobnicate" in data["exception_message"]


def test_unknown_method_call(bus):
    m = call(bus, "frobnicate", {})
    survives(bus, r"\[%s .*Cannot dispatch 'frobnicate'" % re.escape(m["_context_request_id"]),
             lambda: bus.raw.publish(envelope(m), RK))
    f = one_failure(bus, m, "NoSuchMethod", "oslo_messaging.rpc.dispatcher")
    assert f["message"] == "Endpoint does not support RPC method frobnicate"


def test_unsupported_version_call(bus):
    m = call(bus, "pre_live_migration", {}, version="9.3")
    survives(bus, r"\[%s .*Cannot dispatch 'pre_live_migration' version '9.3'"
             % re.escape(m["_context_request_id"]), lambda: bus.raw.publish(envelope(m), RK))
    f = one_failure(bus, m, "UnsupportedVersion", "oslo_messaging.rpc.dispatcher")
    assert f["message"] == ("Endpoint does not support RPC version 9.3. "
                            "Attempted method: pre_live_migration")


def test_unsupported_version_cast(bus):
    inst, ctx = instance()
    m = inner_msg("live_migration", {"instance": inst, "dest": "x"}, version="4.0")
    rid = m["_context_request_id"]
    survives(bus, r"\[%s .*Cannot dispatch 'live_migration' version '4.0'" % re.escape(rid),
             lambda: bus.raw.publish(envelope(m), RK))
    exception_notified(bus, rid)


def test_many_bad_messages_in_a_row(bus):
    """A burst of junk neither loops nor stalls the consumer."""
    bodies = [b"{", b"[]", b"\xff", b'{"a": 1}', b"[" * 5000] * 20
    rx = r"(Undecodable|Invalid RPC) message on '%s'" % re.escape(RK)

    def publish():
        for b in bodies:
            bus.raw.publish(b, RK)

    survives(bus, rx, publish, count=len(bodies))


def test_unknown_non_ascii_method_cast_is_notified(bus):
    """The error text names the method and is cut at a fixed size, possibly
    inside a UTF-8 sequence: the ERROR notification still goes out."""
    inst, ctx = instance()
    for name in ("\u00e9" * 150, "x" + "\u00e9" * 150):  # cut at either byte of an é
        m = inner_msg(name, {"instance": inst})
        rid = m["_context_request_id"]
        survives(bus, r"\[%s .*Cannot dispatch" % re.escape(rid),
                 lambda: bus.raw.publish(envelope(m), RK))
        data = exception_notified(bus, rid)
        assert data["exception_message"].startswith(
            "Endpoint does not support RPC method " + name[:20])


def test_compressed_body_is_rejected(bus):
    """kombu_compression set on the sender: the body is gzip, not JSON."""
    import zlib
    m = call(bus, "list_migrations", {}, version="1.0", namespace="ferry")
    body = zlib.compress(envelope(m).encode())
    survives(bus, r"Message on '%s' is compressed \(kombu_compression\), unsupported: rejected"
             % re.escape(RK), lambda: bus.raw.publish(
                 body, RK, headers={"compression": "application/x-gzip"}))
