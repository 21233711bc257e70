# SPDX-License-Identifier: Apache-2.0
"""Issue 3.6: TLS against a real RabbitMQ TLS listener on loopback (rabbit4,
conftest.py), with a CA, a server and a client certificate this suite makes
with openssl.  The node requires a client certificate signed by the CA.

ferry connects with amqps:// (or ssl = true) and ssl_ca_file and serves an
oslo RPCClient call; a wrong CA, or no client certificate, gives a clear
error line and ferry keeps retrying without crashing."""
import uuid as uuidlib

import pytest

from conftest import Vhost, Worker, ctl_json, oslo_client, oslo_conf

TLS_PORT = 5676


@pytest.fixture
def vhost4(node4):
    v = Vhost("ferry-tls-" + uuidlib.uuid4().hex[:8], node=node4.env)
    yield v
    v.delete()


def tls_connections(node, vhost):
    rows = ctl_json("list_connections", "vhost", "ssl", "ssl_protocol", "peer_cert_subject",
                    "client_properties", node=node.env)
    return [r for r in rows if r["vhost"] == vhost and "ferry" in str(r["client_properties"])]


def client_files(certs):
    return {"ssl_cert_file": certs["client_cert"], "ssl_key_file": certs["client_key"]}


@pytest.mark.parametrize("how", ["amqps_localhost", "ssl_option_ip"])
def test_tls_serves_call(how, node4, vhost4, tmp_root):
    """amqps://localhost (chain and name verified) and rabbit://127.0.0.1
    with ssl = true (chain verified): both serve a call over TLS."""
    certs = node4.certs
    rabbit = dict(client_files(certs), ssl_ca_file=certs["ca"])
    if how == "amqps_localhost":
        u = "amqps://nova:nova@localhost:%d/%s" % (TLS_PORT, vhost4.name)
    else:
        u = "rabbit://nova:nova@127.0.0.1:%d/%s" % (TLS_PORT, vhost4.name)
        rabbit["ssl"] = True
    w = Worker(tmp_root, "tls-" + how, u, rabbit=rabbit).start()
    try:
        (conn,) = tls_connections(node4, vhost4.name)
        assert conn["ssl"] is True
        assert conn["ssl_protocol"].startswith("tlsv1.")
        assert "ferry-worker" in conn["peer_cert_subject"]  # our client certificate
        transport, client = oslo_client(oslo_conf(tmp_root), node4.url(vhost4.name),
                                        timeout=15)
        try:
            got = client.prepare(server=w.host, namespace="ferry").call({}, "list_migrations")
        finally:
            transport.cleanup()
        assert got == []
    finally:
        code = w.stop()
    assert code == 0


def test_wrong_ca_is_reported_and_retried(node4, vhost4, tmp_root):
    certs = node4.certs
    u = "amqps://nova:nova@127.0.0.1:%d/%s" % (TLS_PORT, vhost4.name)
    w = Worker(tmp_root, "tls-wrong-ca", u,
               rabbit=dict(client_files(certs), ssl_ca_file=certs["wrong_ca"]))
    try:
        w.start(wait=False)
        w.wait_log("retrying in 2s", timeout=20)  # failed twice, still running
        assert w.alive()
        log = w.log()
        assert ("TLS: the broker's certificate is not signed by the configured CA "
                "(CA file '%s')" % certs["wrong_ca"]) in log, log[-2000:]
        assert "Connected to the broker" not in log
        assert tls_connections(node4, vhost4.name) == []
    finally:
        code = w.stop()
    assert code == 0


def test_missing_client_certificate_is_reported(node4, vhost4, tmp_root):
    """The broker requires a client certificate: without one the handshake
    fails, ferry says so and keeps retrying."""
    u = "amqps://nova:nova@127.0.0.1:%d/%s" % (TLS_PORT, vhost4.name)
    w = Worker(tmp_root, "tls-no-client-cert", u, rabbit={"ssl_ca_file": node4.certs["ca"]})
    try:
        w.start(wait=False)
        w.wait_log("retrying in 2s", timeout=20)
        assert w.alive()
        log = w.log()
        assert ("Cannot connect to the broker: broker 127.0.0.1:%d: TLS: " % TLS_PORT +
                "the broker ended the TLS session at login (does it require a client "
                "certificate? ssl_cert_file is not set)") in log, log[-2000:]
        assert "Connected to the broker" not in log
    finally:
        code = w.stop()
    assert code == 0


def test_tls_port_without_tls_is_reported(node4, vhost4, tmp_root):
    """Plain AMQP aimed at the TLS port fails with an error, not a hang or a
    crash (the connect timeout bounds it), and ferry retries."""
    u = "rabbit://nova:nova@127.0.0.1:%d/%s" % (TLS_PORT, vhost4.name)
    w = Worker(tmp_root, "tls-plain-on-tls", u)
    try:
        w.start(wait=False)
        w.wait_log("retrying in 2s", timeout=30)
        assert w.alive()
        assert ("Cannot connect to the broker: broker 127.0.0.1:%d: login: the broker closed "
                "the connection without an AMQP answer (a TLS port? then use amqps:// or "
                "ssl = true)" % TLS_PORT) in w.log(), w.log()[-2000:]
    finally:
        code = w.stop()
    assert code == 0


def test_no_ca_file_verifies_against_the_system_store(node4, vhost4, tmp_root):
    """Issue 12.13: amqps:// without ssl_ca_file used to verify nothing.  Now
    the chain is checked against the system CA store, which does not know
    the suite's private CA: refused, with a line that says what to set."""
    u = "amqps://nova:nova@localhost:%d/%s" % (TLS_PORT, vhost4.name)
    w = Worker(tmp_root, "tls-system-store", u, rabbit=client_files(node4.certs))
    try:
        w.start(wait=False)
        w.wait_log("retrying in 2s", timeout=20)  # failed twice, still running
        assert w.alive()
        log = w.log()
        assert ("Cannot connect to the broker: broker localhost:%d: TLS: the broker's "
                "certificate is not signed by a CA of the system store "
                "'/etc/ssl/certs/ca-certificates.crt' (set ssl_ca_file to the broker's CA, "
                "or ssl_verify = false to not verify it)" % TLS_PORT) in log, log[-2000:]
        assert "Connected to the broker" not in log
        assert tls_connections(node4, vhost4.name) == []
    finally:
        code = w.stop()
    assert code == 0


def test_ssl_verify_false_connects_with_a_warning(node4, vhost4, tmp_root):
    """ssl_verify = false: the same broker is accepted unverified, and the
    worker says so once at start."""
    u = "amqps://nova:nova@127.0.0.1:%d/%s" % (TLS_PORT, vhost4.name)
    w = Worker(tmp_root, "tls-no-verify", u,
               rabbit=dict(client_files(node4.certs), ssl_verify=False)).start()
    try:
        (conn,) = tls_connections(node4, vhost4.name)
        assert conn["ssl"] is True
        log = w.log()
        assert w.count("ssl_verify = false: the broker's TLS certificate is not verified; "
                       "anyone on the path can pose as the broker") == 1, log[-2000:]
        assert log.index("ssl_verify = false") < log.index("Connected to the broker")
    finally:
        code = w.stop()
    assert code == 0
