# SPDX-License-Identifier: Apache-2.0
"""libvirt.live_migration_with_native_tls: the migration stream is QEMU's
native TLS (VIR_MIGRATE_TLS) with the rig's certificates (deploy/rig/pki.sh,
/etc/pki/qemu in each libvirt host's namespace).

The certificates name compute hosts (B: host2), not addresses: the stream
goes to 127.0.0.3, so the worker must pass VIR_MIGRATE_PARAM_TLS_DESTINATION
= host2 for QEMU's check to pass.  The proof that the stream really is
encrypted comes from the source QEMU itself: while the migration runs, its
migration parameters name the TLS credentials libvirt created and the host
name it verifies; and from the wire: a string of the guest's kernel, in its
RAM, crosses the loopback in a plain migration and not in an encrypted one
(a packet socket on lo, migration ports of host B only).
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import libvirt
import libvirt_qemu
import pytest

import nova_peer
import rig
from conftest import REPO, Worker

PKI_B = os.path.join(rig.RIG_DIR, "B", "pki")
PKI_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem",
             "client-key.pem")
SOURCE = "host7"
# In deploy/guest/dirty.elf's rodata, so in every guest's RAM.
GUEST_STRING = b"WARN not booted by a multiboot loader"
B_MIGRATION_PORTS = range(49184, 49216)  # hosts.sh: host_ports B


class StreamProbe(threading.Thread):
    """Reads every packet on lo to 127.0.0.3's migration ports while it
    runs: how many payload bytes went by, and whether GUEST_STRING was among
    them (searched per TCP connection, across packet boundaries)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        # A page that the kernel dropped would hide the string: room for
        # seconds of the stream.
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.stop_ev = threading.Event()
        self.bytes = 0
        self.found = False
        self.tails = {}

    def run(self):
        keep = len(GUEST_STRING) - 1
        dst = socket.inet_aton(rig.HOST_IP["B"])
        while not self.stop_ev.is_set():
            try:
                pkt, addr = self.sock.recvfrom(262144)
            except socket.timeout:
                continue
            # lo shows each packet twice: skip the outgoing copy.
            if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 14 + 20:
                continue
            if struct.unpack("!H", pkt[12:14])[0] != 0x0800:
                continue
            ip = pkt[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6 or ip[16:20] != dst:
                continue
            tcp = ip[ihl:]
            sport, dport = struct.unpack("!HH", tcp[:4])
            if dport not in B_MIGRATION_PORTS:
                continue
            payload = tcp[(tcp[12] >> 4) * 4:struct.unpack("!H", ip[2:4])[0] - ihl]
            if not payload:
                continue
            self.bytes += len(payload)
            data = self.tails.get(sport, b"") + payload
            if GUEST_STRING in data:
                self.found = True
            self.tails[sport] = data[-keep:]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def tls_workers(workers):
    """host7 on libvirt A, TLS on, 16 MiB/s (a migration of seconds: time to
    look at QEMU's parameters while it runs); host2 is the destination (the
    destination needs no option: libvirt follows the source's flags)."""
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-tls-")
    w = Worker(tmp, SOURCE, "A", "127.0.0.2", bandwidth=16,
               extra="\tlive_migration_with_native_tls = true;\n")
    try:
        w.start()
        yield {SOURCE: w, "host2": workers["host2"]}
    finally:
        print("tls worker exit code: %s (log in %s)" % (w.stop(), tmp))


def migrate_parameters(host, uuid):
    """QEMU's query-migrate-parameters of the domain uuid on host, or None
    once the domain is gone."""
    conn = rig.connect(host)
    try:
        dom = conn.lookupByUUIDString(uuid)
        out = libvirt_qemu.qemuMonitorCommand(dom, '{"execute":"query-migrate-parameters"}', 0)
        return json.loads(out)["return"]
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def watch_tls_parameters(uuid, timeout=60):
    """Polls the source QEMU's migration parameters until they show TLS
    credentials (returns them) or the migration is over (returns the last
    parameters seen)."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = migrate_parameters("A", uuid)
        if p is None:
            break
        last = p
        if p.get("tls-creds"):
            return p
        time.sleep(0.05)
    return last


def test_encrypted_migration_completes(tls_workers, notifications, guest):
    uuid, name = guest
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    # Nothing set before the migration: a plain guest.
    assert not migrate_parameters("A", uuid).get("tls-creds")

    with StreamProbe() as probe:
        rid = nova_peer.cast_live_migration(uuid, SOURCE, "host2")

        params = watch_tls_parameters(uuid)
        assert params and params.get("tls-creds"), \
            "QEMU never had TLS credentials while migrating: %s" % params
        # libvirt's default is the URI's address; ferry named the certificate's host.
        assert params.get("tls-hostname") == "host2", params

        end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert probe.bytes > 4 << 20, "the probe saw only %d bytes of the stream" % probe.bytes
    assert not probe.found, "the guest's RAM crossed the wire in clear"
    log = tls_workers[SOURCE].log()
    assert end is not None, "no post.end\nlog:\n%s" % log[-3000:]
    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0
    start = [ln for ln in log.splitlines() if rid in ln and "Migrating '%s'" % uuid in ln]
    assert start and "native TLS, certificate name host2" in start[0], start
    # The destination QEMU runs without TLS parameters once it is done.
    assert not migrate_parameters("B", uuid).get("tls-creds")


def test_plain_stream_shows_guest_memory(workers, notifications, guest):
    """The probe's control: without TLS (host1, the option's default) the
    guest's RAM crosses the wire as it is."""
    uuid, _ = guest
    with StreamProbe() as probe:
        nova_peer.cast_live_migration(uuid, "host1", "host2")
        end = notifications.wait_for("instance.live_migration_post.end", uuid, timeout=120)
    assert end is not None, workers["host1"].log()[-3000:]
    assert probe.bytes > 4 << 20, "the probe saw only %d bytes of the stream" % probe.bytes
    assert probe.found, "a plain stream without the guest's kernel string"


@pytest.fixture
def b_untrusted():
    """Host B's certificates replaced, in place (the bind mount follows the
    directory), by a set signed by a CA that host A does not know; restored
    after the test."""
    backup = tempfile.mkdtemp(prefix="ferry-pki-b-")
    for f in PKI_FILES:
        shutil.copy2(os.path.join(PKI_B, f), backup)
    other_ca = os.path.join(backup, "other-ca")
    try:
        subprocess.run(["bash", os.path.join(REPO, "deploy", "rig", "pki.sh"), other_ca, PKI_B,
                        "host2"], check=True)
        yield
    finally:
        for f in PKI_FILES:
            shutil.copy2(os.path.join(backup, f), os.path.join(PKI_B, f))
        shutil.rmtree(backup)


def test_untrusted_destination_rolls_back(tls_workers, notifications, guest, b_untrusted):
    uuid, name = guest
    rig.wait_heartbeat_advances("A", name, timeout=15)
    rid = nova_peer.cast_live_migration(uuid, SOURCE, "host2")

    end = notifications.wait_for("instance.live_migration_rollback.end", uuid, timeout=90)
    log = tls_workers[SOURCE].log()
    assert end is not None, "no rollback.end\nlog:\n%s" % log[-3000:]
    assert rig.domain_state("A", uuid) == "running"
    assert rig.domain_state("B", uuid) is None
    rig.wait_heartbeat_advances("A", name, timeout=10)

    lines = [ln for ln in log.splitlines()
             if rid in ln and "Migration of '%s' to 'host2' rolled back" % uuid in ln]
    assert lines, "no rollback line\nlog:\n%s" % log[-3000:]
    why = lines[0].split(" rolled back: ", 1)[1]
    assert "certificate" in why.lower() or "tls" in why.lower(), why
    fault = end["payload"]["nova_object.data"]["fault"]
    assert fault is not None, end["payload"]
    fault = fault["nova_object.data"]
    assert fault["exception"] == "MigrationError"
    assert fault["exception_message"] in why, (fault, why)
    assert "instance.live_migration_post.start" not in [
        m["event_type"] for m in notifications.events(uuid)]
