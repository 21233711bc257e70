# SPDX-License-Identifier: Apache-2.0
"""Issue 3.1: for every oslo.messaging 14 option that changes what is
declared, a real oslo RPC server and ferry share one topic in one vhost
without PRECONDITION_FAILED on either side, whichever declares first, and
the broker shows identical declarations for ferry's and oslo's queues."""
import pytest

from conftest import (OsloServer, Worker, exchanges, oslo_client, oslo_conf, queues, url,
                      wait_until)

# oslo option -> value, exactly as in an [oslo_messaging_rabbit] section; ferry's
# oslo_messaging_rabbit group takes the same names.
VARIANTS = {
    "default": {},
    "durable": {"amqp_durable_queues": True},
    "auto_delete": {"amqp_auto_delete": True},
    "ha": {"rabbit_ha_queues": True},
    "quorum": {"rabbit_quorum_queue": True},
    "quorum_limits": {"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 3,
                      "rabbit_quroum_max_memory_length": 1000,
                      "rabbit_quroum_max_memory_bytes": 1048576},
    "ttl60": {"rabbit_transient_queues_ttl": 60},
    "prefetch": {"rabbit_qos_prefetch_count": 10},
    "heartbeat": {"heartbeat_timeout_threshold": 10},
    "control_exchange": {},
}


def _oslo_value(v):
    return str(v) if not isinstance(v, bool) else ("true" if v else "false")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_declarations_as_oslo(variant, vhost, tmp_root, oslo_log):
    opts = VARIANTS[variant]
    exchange = "ferry_ctl" if variant == "control_exchange" else "nova"
    u = url(vhost.name)
    conf = oslo_conf(tmp_root, {k: _oslo_value(v) for k, v in opts.items()}, exchange)
    mark = len(oslo_log.records)

    w = Worker(tmp_root, "fhost-" + variant, u, rabbit=opts, exchange=exchange).start()
    server = OsloServer(conf, u, server="ohost").start()
    transport, client = oslo_client(conf, u)
    try:
        # oslo declared after ferry: its server works ...
        assert client.prepare(server="ohost").call({}, "ping", x=1)["pong"] == "ohost"
        # ... and so does ferry, through oslo's RPCClient.
        got = client.prepare(server=w.host, namespace="ferry").call({}, "list_migrations")
        assert isinstance(got, (list, dict))
        # ferry redeclares against oslo's entities (restart = reconnect path).
        # With amqp_auto_delete its compute.<host> queue goes away with it, so
        # a call is only delivered once the restarted worker has declared it
        # again: start() waits for this run's "Connected" line.
        w.stop()
        w.start()
        assert client.prepare(server="ohost").call({}, "ping", x=2)["pong"] == "ohost"
        got = client.prepare(server=w.host, namespace="ferry").call({}, "list_migrations")
        assert isinstance(got, (list, dict))

        qs = queues(vhost.name)
        ex = exchanges(vhost.name)
        assert exchange in ex, ex
        assert ex[exchange]["type"] == "topic"
        durable = bool(opts.get("amqp_durable_queues") or opts.get("rabbit_quorum_queue"))
        assert ex[exchange]["durable"] == durable
        assert ex[exchange]["auto_delete"] == bool(opts.get("amqp_auto_delete"))
        assert ex["compute_fanout"]["auto_delete"] is True
        keys = ("type", "durable", "auto_delete", "arguments")
        ours, theirs = qs["compute.%s" % w.host], qs["compute.ohost"]
        assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}
        assert {k: qs["compute"][k] for k in keys} == {k: theirs[k] for k in keys}
        assert qs["compute"]["type"] == ("quorum" if opts.get("rabbit_quorum_queue")
                                         else "classic")
        fanouts = [q for n, q in qs.items() if n.startswith("compute_fanout_")]
        assert len(fanouts) == 2, sorted(qs)
        assert fanouts[0]["arguments"] == fanouts[1]["arguments"]
        assert fanouts[0]["arguments"]["x-expires"] == \
            1000 * opts.get("rabbit_transient_queues_ttl", 1800)
        if opts.get("rabbit_ha_queues"):
            assert ours["arguments"].get("x-ha-policy") == "all"
            assert fanouts[0]["arguments"].get("x-ha-policy") == "all"
        if "rabbit_quorum_delivery_limit" in opts:
            assert ours["arguments"]["x-delivery-limit"] == 3
            assert ours["arguments"]["x-max-in-memory-length"] == 1000
            assert ours["arguments"]["x-max-in-memory-bytes"] == 1048576
        # The notification queues ferry declares are the ones oslo's notifier would.
        n = qs["versioned_notifications.info"]
        assert {k: n[k] for k in keys} == {k: theirs[k] for k in keys}
        # Both consume: 2 consumers on the shared topic queue.
        wait_until(lambda: queues(vhost.name)["compute"]["consumers"] == 2, 10,
                   what="two consumers on 'compute'")
    finally:
        server.stop()
        transport.cleanup()
        code = w.stop()
    assert code == 0
    log = w.log()
    assert "PRECONDITION_FAILED" not in log, log[-3000:]
    assert "inequivalent" not in log
    assert "PRECONDITION_FAILED" not in "\n".join(oslo_log.records[mark:])


@pytest.mark.parametrize("variant", ["durable", "quorum_limits"])
def test_oslo_first_then_ferry(variant, vhost, tmp_root, oslo_log):
    """The other order: oslo's server owns the entities, ferry joins."""
    opts = VARIANTS[variant]
    u = url(vhost.name)
    conf = oslo_conf(tmp_root, {k: _oslo_value(v) for k, v in opts.items()})
    mark = len(oslo_log.records)
    server = OsloServer(conf, u, server="ohost").start()
    transport, client = oslo_client(conf, u)
    w = Worker(tmp_root, "fhost2-" + variant, u, rabbit=opts)
    try:
        assert client.prepare(server="ohost").call({}, "ping")["pong"] == "ohost"
        w.start()
        got = client.prepare(server=w.host, namespace="ferry").call({}, "list_migrations")
        assert isinstance(got, (list, dict))
    finally:
        server.stop()
        transport.cleanup()
        w.stop()
    assert "PRECONDITION_FAILED" not in w.log()
    assert "PRECONDITION_FAILED" not in "\n".join(oslo_log.records[mark:])


def test_mismatch_is_reported(vhost, tmp_root):
    """The negative control: ferry configured differently from the entities
    already there gets PRECONDITION_FAILED, names the argument, and keeps
    retrying without crashing."""
    u = url(vhost.name)
    conf = oslo_conf(tmp_root, {"amqp_durable_queues": "true"})
    server = OsloServer(conf, u, server="ohost").start()
    w = Worker(tmp_root, "fhost-mismatch", u, rabbit={})
    try:
        w.start(wait=False)
        w.wait_log("PRECONDITION_FAILED", timeout=20)
        w.wait_log("retrying in", timeout=10)
        assert w.alive()
        assert "inequivalent arg 'durable'" in w.log()
    finally:
        server.stop()
        w.stop()
