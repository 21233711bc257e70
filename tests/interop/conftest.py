# SPDX-License-Identifier: Apache-2.0
"""Interop fixtures: ferry-worker next to oslo.messaging's and nova's own
Python code on a real RabbitMQ.  Every test works in its own vhost of the
shared broker (so the e2e workers on vhost "/" never take its messages), or
on the extra broker nodes rabbit3 and rabbit4 these fixtures start themselves
(see below) for the tests that stop brokers, close connections or speak TLS.  The shared broker is
never restarted.  Workers use libvirt's test:///default driver: nothing here
migrates, so no libvirt host is needed.  Every process started here is
stopped here, by PID."""
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

import ferry_proc  # noqa: E402

SHARED_PORT = 5672

CONF = """
transport_url = "{url}";
host = "{host}";
state_dir = "{state}";
log_level = "debug";
rpc_response_timeout = 20;
control_exchange = "{exchange}";
alt_topic = "{alt_topic}";
notifications = {{ progress_interval = 0.25; }};
oslo_messaging_rabbit = {{
{rabbit}
}};
libvirt = {{ connection_uri = "test:///default"; }};
"""


def url(vhost="/", port=SHARED_PORT, host="127.0.0.1", scheme="rabbit", query=""):
    v = "" if vhost == "/" else vhost
    return "%s://nova:nova@%s:%d/%s%s" % (scheme, host, port, v, query)


def ctl(*args, node=None, check=True, timeout=60):
    """rabbitmqctl against the shared node (node=None) or an extra node."""
    env = dict(os.environ, **(node or {}))
    r = subprocess.run(["bash", os.path.join(REPO, "deploy/rig/rabbit.sh"), "ctl", "-q"]
                       + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("rabbitmqctl %s: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def ctl_json(*args, node=None):
    out = ctl(*args, "--formatter", "json", node=node)
    return json.loads(out) if out.strip() else []


def queues(vhost, node=None):
    """{name: row} of rabbitmqctl list_queues, arguments as a dict."""
    rows = ctl_json("list_queues", "-p", vhost, "name", "type", "durable", "auto_delete",
                    "arguments", "messages", "messages_unacknowledged", "consumers",
                    node=node)
    out = {}
    for r in rows:
        r["arguments"] = normalize_args(r.get("arguments"))
        out[r["name"]] = r
    return out


def exchanges(vhost, node=None):
    rows = ctl_json("list_exchanges", "-p", vhost, "name", "type", "durable", "auto_delete",
                    "arguments", node=node)
    return {r["name"]: r for r in rows if r["name"] and not r["name"].startswith("amq.")}


def normalize_args(a):
    """rabbitmqctl prints arguments as [[key, type, value]...] or {key: value}."""
    if not a:
        return {}
    if isinstance(a, dict):
        return dict(a)
    return {row[0]: row[-1] for row in a}


def wait_until(pred, timeout=30, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Vhost:
    def __init__(self, name, node=None):
        self.name, self.node = name, node
        ctl("delete_vhost", name, node=node, check=False)
        ctl("add_vhost", name, node=node)
        ctl("set_permissions", "-p", name, "nova", ".*", ".*", ".*", node=node)

    def delete(self):
        ctl("delete_vhost", self.name, node=self.node, check=False)


class Worker(ferry_proc.Worker):
    """A ferry-worker with the interop config (vhost URL, oslo options),
    LeakSanitizer on."""

    def __init__(self, tmp, host, transport_url, rabbit=None, exchange="nova",
                 alt_topic="compute-alt"):
        lines = []
        for k, v in (rabbit or {}).items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, str):
                v = '"%s"' % v
            lines.append("\t%s = %s;" % (k, v))
        state = os.path.join(tmp, host)
        super().__init__(tmp, host, leak_check=True, conf_text=CONF.format(
            url=transport_url, host=host, state=state, exchange=exchange,
            alt_topic=alt_topic, rabbit="\n".join(lines)))

    def count(self, text):
        return self.log().count(text)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        code = super().stop()
        log = self.log()
        assert "ERROR: AddressSanitizer" not in log, log[-4000:]
        assert "LeakSanitizer" not in log, log[-4000:]
        assert "runtime error:" not in log, log[-4000:]
        return code


class LogCapture(logging.Handler):
    """Keeps every log record of oslo.messaging / kombu / amqp."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self._lock = threading.Lock()

    def emit(self, record):
        with self._lock:
            self.records.append(record.getMessage())

    def text(self):
        with self._lock:
            return "\n".join(self.records)


@pytest.fixture(scope="session")
def oslo_log():
    cap = LogCapture()
    for name in ("oslo_messaging", "kombu", "amqp"):
        lg = logging.getLogger(name)
        lg.addHandler(cap)
        lg.setLevel(logging.INFO)
    yield cap


def oslo_conf(tmp, options=None, control_exchange="nova"):
    """An oslo ConfigOpts carrying [oslo_messaging_rabbit] options, as a
    deployment's config file would."""
    from oslo_config import cfg
    path = os.path.join(tmp, "oslo-%s.conf" % uuidlib.uuid4().hex[:8])
    with open(path, "w") as f:
        f.write("[DEFAULT]\ncontrol_exchange = %s\nrpc_response_timeout = 20\n"
                "[oslo_messaging_rabbit]\n" % control_exchange)
        for k, v in (options or {}).items():
            f.write("%s = %s\n" % (k, v))
    from oslo_messaging._metrics import client as metrics
    conf = cfg.ConfigOpts()
    conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")
    conf(["--config-file", path], project="ferry-interop")
    return conf


class OsloServer:
    """A real oslo.messaging RPC server (threading executor) on a topic."""

    def __init__(self, conf, transport_url, topic="compute", server="oslohost"):
        import oslo_messaging as messaging

        class Endpoint:
            target = messaging.Target(version="1.0")

            def ping(self, ctxt, **kw):
                return {"pong": server, "kw": kw}

        self.transport = messaging.get_rpc_transport(conf, url=transport_url)
        self.server = messaging.get_rpc_server(
            self.transport, messaging.Target(topic=topic, server=server), [Endpoint()],
            executor="threading")

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()
        self.server.wait()
        self.transport.cleanup()


def oslo_client(conf, transport_url, topic="compute", server=None, version="1.0",
                namespace=None, timeout=20, fanout=False, exmods=None):
    import oslo_messaging as messaging
    transport = messaging.get_rpc_transport(conf, url=transport_url,
                                            allowed_remote_exmods=exmods or [])
    target = messaging.Target(topic=topic, server=server, version=version,
                              namespace=namespace, fanout=fanout)
    return transport, messaging.get_rpc_client(transport, target, timeout=timeout)


class Raw:
    """kombu on a vhost: publishes raw bodies, reads a private reply queue."""

    def __init__(self, transport_url):
        import kombu
        self.kombu = kombu
        self.conn = kombu.Connection(transport_url.replace("rabbit://", "amqp://", 1))
        self.conn.connect()
        self.reply_q = "reply_" + uuidlib.uuid4().hex
        self.replies = []
        self._q = kombu.Queue(self.reply_q, exchange=None, routing_key=self.reply_q,
                              exclusive=True, auto_delete=True)
        self._q(self.conn.default_channel).declare()

    def publish(self, body, routing_key, exchange="nova", headers=None, raw=True):
        ch = self.conn.channel()
        msg = ch.prepare_message(body if isinstance(body, (bytes, str)) else json.dumps(body),
                                 content_type="application/json",
                                 content_encoding="utf-8" if raw else None,
                                 headers=headers or {})
        ch.basic_publish(msg, exchange=exchange, routing_key=routing_key)
        ch.close()

    def drain_replies(self, wait=1.0):
        deadline = time.monotonic() + wait
        ch = self.conn.channel()
        while time.monotonic() < deadline:
            m = ch.basic_get(self.reply_q, no_ack=True)
            if m is None:
                time.sleep(0.05)
                continue
            env = json.loads(m.body)
            self.replies.append(json.loads(env["oslo.message"]))
        ch.close()
        return self.replies

    def close(self):
        self.conn.release()


def envelope(inner):
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})


def inner_msg(method, args, version="6.0", call=False, reply_q=None, request_id=None,
              unique_id=None, namespace=None):
    m = {"method": method, "args": args, "version": version,
         "_unique_id": unique_id or uuidlib.uuid4().hex,
         "_context_request_id": request_id or "req-" + str(uuidlib.uuid4()),
         "_context_user_id": "u-1", "_context_project_id": "p-1",
         "_context_is_admin": True, "_context_roles": ["admin"]}
    if namespace is not None:
        m["namespace"] = namespace
    if call:
        m["_msg_id"] = uuidlib.uuid4().hex
        m["_reply_q"] = reply_q
        m["_timeout"] = None
    return m


@pytest.fixture(scope="session")
def tmp_root():
    d = tempfile.mkdtemp(prefix="ferry-interop-")
    yield d
    print("interop logs in %s" % d)


@pytest.fixture(scope="session")
def shared_broker():
    """The shared broker: started if not up (never restarted)."""
    if subprocess.run(["bash", "deploy/rig/rabbit.sh", "status"], cwd=REPO,
                      stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["bash", "deploy/rig/rabbit.sh", "start"], cwd=REPO, check=True)
    yield


@pytest.fixture
def vhost(shared_broker, request):
    v = Vhost("ferry-it-%s-%s" % (request.node.name[:40].replace("[", "-").strip("]"),
                                  uuidlib.uuid4().hex[:6]))
    yield v
    v.delete()


# --- Extra broker nodes of the connection and TLS tests ----------------------
# rabbit3: plain AMQP on 127.0.0.1:5674, stopped and started by the tests that
# restart a broker.  rabbit4: AMQP on 127.0.0.1:5675 plus a TLS listener on
# 127.0.0.1:5676 with a CA and certificates made here; it verifies client
# certificates against that CA.  Both are stopped by their fixture, with
# deploy/rig/rabbit.sh stop.

def make_tls_files(d):
    """A CA, a server certificate for localhost/127.0.0.1, a client
    certificate from the same CA, and an unrelated CA (all openssl, loopback
    names only)."""
    def run(*a):
        subprocess.run(list(a), cwd=d, check=True, capture_output=True)

    def leaf(name, cn, ext):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + cn)
        with open(os.path.join(d, name + ".cnf"), "w") as f:
            f.write(ext)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
            name + ".cnf")

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=ferry-test-ca")
    leaf("srv", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
         "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ferry-worker", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "wrong.key",
        "-out", "wrong-ca.pem", "-days", "2", "-subj", "/CN=not-the-ca")
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.pem"), ("cert", "srv.pem"), ("key", "srv.key"),
             ("client_cert", "client.pem"), ("client_key", "client.key"),
             ("wrong_ca", "wrong-ca.pem"))}


class ExtraNode:
    """One extra broker node run with deploy/rig/rabbit.sh (never the shared one)."""

    def __init__(self, name, port, dist_port, tls_port=None, certs=None):
        self.name, self.port, self.tls_port, self.certs = name, port, tls_port, certs
        self.env = {"RABBIT_NODE": name, "RABBIT_PORT": str(port),
                    "RABBIT_DIST_PORT": str(dist_port)}
        if tls_port:
            self.env.update(RABBIT_TLS_PORT=str(tls_port), RABBIT_TLS_CA=certs["ca"],
                            RABBIT_TLS_CERT=certs["cert"], RABBIT_TLS_KEY=certs["key"],
                            RABBIT_TLS_VERIFY_PEER="1")
        self.running = False

    def _rabbit(self, action, **extra):
        env = dict(os.environ, **self.env, **extra)
        subprocess.run(["bash", "deploy/rig/rabbit.sh", action], cwd=REPO, env=env,
                       check=True, timeout=200, stdout=subprocess.DEVNULL)

    def start(self, keep_data=False):
        self._rabbit("start", RABBIT_KEEP_DATA="1" if keep_data else "0")
        self.running = True

    def stop(self, wipe=False):
        self.running = False
        self._rabbit("stop", RABBIT_WIPE="1" if wipe else "0")

    def ensure_running(self):
        if not self.running:
            self.start()

    def url(self, vhost="/", port=None, **kw):
        return url(vhost, port=port or self.port, **kw)

    def ctl(self, *args, check=True):
        return ctl(*args, node=self.env, check=check)

    def connections(self, vhost=None):
        """rabbitmqctl list_connections of ferry's connections (pid, name)."""
        rows = ctl_json("list_connections", "pid", "name", "vhost", "client_properties",
                        "state", node=self.env)
        return [r for r in rows if "ferry" in json.dumps(r.get("client_properties"))
                and (vhost is None or r.get("vhost") == vhost)]


@pytest.fixture(scope="session")
def node3():
    n = ExtraNode("rabbit3", 5674, 25674)
    try:
        n.start()
        yield n
    finally:
        n.stop(wipe=True)


@pytest.fixture(scope="session")
def node4(tmp_root):
    d = os.path.join(tmp_root, "tls4")
    os.makedirs(d, exist_ok=True)
    n = ExtraNode("rabbit4", 5675, 25675, tls_port=5676, certs=make_tls_files(d))
    try:
        n.start()
        yield n
    finally:
        n.stop(wipe=True)


@pytest.fixture
def vhost3(node3):
    node3.ensure_running()
    v = Vhost("ferry-c-" + uuidlib.uuid4().hex[:8], node=node3.env)
    yield v
    if node3.running:
        v.delete()
