#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""oslo.messaging's own notification listener as ferry's peer: every
notification ferry publishes is received here exactly as Nova's consumers
receive it.  Library use (tests) and a CLI (the demo) that prints one line per
notification and draws progress.

    listener.py [--url URL] [--until EVENT_TYPE] [--timeout S] [--json]
"""
import argparse
import json
import os
import sys
import threading
import time

DEFAULT_URL = os.environ.get("FERRY_TRANSPORT_URL", "rabbit://nova:nova@127.0.0.1:5672/")
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class Collector:
    """Runs an oslo notification listener on a thread and keeps what it hears."""

    def __init__(self, url=DEFAULT_URL, exchange="nova", topic="versioned_notifications",
                 on_message=None):
        from oslo_config import cfg
        import oslo_messaging as messaging

        self.messages = []
        self._cond = threading.Condition()
        self._on_message = on_message
        conf = cfg.ConfigOpts()
        conf([], project="ferry-listener")
        transport = messaging.get_notification_transport(conf, url=url)
        targets = [messaging.Target(topic=topic, exchange=exchange)]
        endpoint = type("Endpoint", (), {p: self._make(p) for p in PRIORITIES})()
        self._listener = messaging.get_notification_listener(
            transport, targets, [endpoint], executor="threading", allow_requeue=False)

    def _make(self, priority):
        def handler(_self, ctxt, publisher_id, event_type, payload, metadata):
            msg = {"message_id": metadata.get("message_id"), "publisher_id": publisher_id,
                   "event_type": event_type, "priority": priority.upper(), "payload": payload,
                   "timestamp": metadata.get("timestamp"), "context": ctxt,
                   "received": time.monotonic()}
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()
            if self._on_message:
                self._on_message(msg)
        return handler

    def start(self):
        self._listener.start()
        return self

    def stop(self):
        self._listener.stop()
        self._listener.wait()

    def events(self, instance_uuid=None):
        with self._cond:
            return [m for m in self.messages
                    if instance_uuid is None or payload_uuid(m) == instance_uuid]

    def wait_for(self, event_type, instance_uuid=None, timeout=60):
        """Returns the first matching notification, or None after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m["event_type"] == event_type and (
                            instance_uuid is None or payload_uuid(m) == instance_uuid):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


class RawTap:
    """A raw AMQP tap on the control exchange: sees exactly the bytes ferry
    published (envelope, inner message with _unique_id and _context_*), so
    tests can check the wire format, not only what oslo hands a consumer."""

    def __init__(self, url=DEFAULT_URL, exchange="nova",
                 routing_key="versioned_notifications.*"):
        import kombu
        import uuid as uuidlib

        self.messages = []  # (routing_key, properties, envelope, inner)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn = kombu.Connection(url.replace("rabbit://", "amqp://", 1))
        # a name, or a kombu.Exchange for taps elsewhere (e.g. the firehose)
        ex = exchange if isinstance(exchange, kombu.Exchange) else kombu.Exchange(
            exchange, type="topic", durable=False, auto_delete=False)
        self._queue = kombu.Queue("ferry-tap-" + uuidlib.uuid4().hex, ex,
                                  routing_key=routing_key, exclusive=True, auto_delete=True)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_message(self, body, message):
        envelope = json.loads(message.body)
        inner = json.loads(envelope["oslo.message"])
        with self._lock:
            self.messages.append((message.delivery_info.get("routing_key"),
                                  dict(message.properties), envelope, inner))
        message.ack()

    def _run(self):
        with self._conn.Consumer(self._queue, callbacks=[self._on_message], accept=None):
            while not self._stop.is_set():
                try:
                    self._conn.drain_events(timeout=0.3)
                except Exception:  # socket.timeout: nothing arrived
                    pass

    def start(self):
        self._conn.connect()
        self._queue(self._conn.default_channel).declare()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._conn.release()

    def inners(self, instance_uuid=None):
        with self._lock:
            return [m[3] for m in self.messages
                    if instance_uuid is None or payload_uuid(m[3]) == instance_uuid]


def payload_uuid(msg):
    data = (msg.get("payload") or {}).get("nova_object.data") or {}
    return data.get("uuid") or data.get("instance_uuid")


def bar(percent, width=30):
    filled = int(round(width * min(max(percent, 0), 100) / 100.0))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def describe(msg):
    data = (msg.get("payload") or {}).get("nova_object.data") or {}
    if msg["event_type"] == "instance.live_migration_progress":
        rem = data.get("data_remaining_bytes")
        return "%s %5.1f%% %-10s iter=%s remaining=%s MiB" % (
            bar(data.get("percent") or 0), data.get("percent") or 0, data.get("phase"),
            data.get("memory_iteration"),
            "?" if rem is None else "%.1f" % (rem / 1048576.0))
    return "host=%s state=%s" % (data.get("host"), data.get("state") or data.get("exception"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--until", help="exit after this event type")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--json", action="store_true", help="print raw JSON lines")
    a = ap.parse_args()
    done = threading.Event()

    def show(m):
        if a.json:
            print(json.dumps(m, default=str), flush=True)
        else:
            print("%s %-5s %-45s %s" % (time.strftime("%H:%M:%S"), m["priority"],
                                        m["event_type"], describe(m)), flush=True)
        if a.until and m["event_type"] == a.until:
            done.set()

    c = Collector(a.url, on_message=show).start()
    print("listening for notifications on %s" % a.url.split("@")[-1], flush=True)
    ok = done.wait(a.timeout) if a.until else (time.sleep(a.timeout) or True)
    c.stop()
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
