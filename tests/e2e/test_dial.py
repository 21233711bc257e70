# SPDX-License-Identifier: Apache-2.0
"""The dial on the rig: each stream combination the dial can produce on this
rig (Debian 12: QEMU 7.2, libvirt 9.0) is migrated once, and what QEMU really
ran is read from the source QEMU during the migration (query-migrate-
capabilities and query-migrate-parameters through libvirt's monitor
passthrough), then compared with what the worker resolved (its journal record,
read while the migration runs, and its start log line).

  link_speed  instance            resolved on this rig
  1G          -                   one stream, XBZRLE
  5G          -                   2 multifd channels; zstd dropped (libvirt < 9.4),
                                  so zero-copy where memory locks (not here)
  5G          permits post-copy   one stream: multifd + post-copy needs QEMU 10.1
  25G         -                   4 multifd channels; zero-copy only where libvirt
                                  may let QEMU lock the guest's RAM (not here: no
                                  CAP_SYS_RESOURCE in the bounding set)
  10G + TLS   -                   2 multifd channels over TLS; zero-copy off (TLS)
"""
import glob
import json
import os
import tempfile
import threading
import time
import uuid as uuidlib

import libvirt
import libvirt_qemu
import pytest

import ferry_proc
import nova_peer
import rig
from conftest import Worker

POST_END = "instance.live_migration_post.end"
CAP_SYS_RESOURCE = 24

CASES = {
    # id: (source host, link_speed, flavor extra specs, native TLS)
    "1G-xbzrle": ("dial1", "1G", None, False),
    "5G-multifd": ("dial2", "5G", None, False),
    "5G-postcopy-one-stream": ("dial3", "5G", {"ferry:live_migration_permit_post_copy": "true"},
                               False),
    "25G-multifd-zero-copy": ("dial4", "25G", None, False),
    "10G-tls-multifd": ("dial5", "10G", None, True),
}


@pytest.fixture(scope="module")
def dial_workers(workers):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-dial-")
    ws = {}
    try:
        for host, speed, _, tls in CASES.values():
            ws[host] = Worker(tmp, host, "A", "127.0.0.2", bandwidth=8,
                              extra='\tlink_speed = "%s";\n\tlive_migration_completion_timeout = 0;'
                              '\n\tlive_migration_with_native_tls = %s;'
                              % (speed, "true" if tls else "false")).start()
        yield dict(ws, host2=workers["host2"])
    finally:
        codes = {h: w.stop() for h, w in ws.items() if w.proc is not None}
        print("dial worker exit codes: %s (logs in %s)" % (codes, tmp))


def host_can_lock_guest_ram(need_bytes):
    """The worker's own rule, recomputed here: CAP_SYS_RESOURCE in PID 1's
    bounding set, or an inherited memlock hard limit covering the guest (the
    test, the worker and libvirtd inherit the same one)."""
    with open("/proc/1/status") as f:
        bnd = int([ln for ln in f if ln.startswith("CapBnd:")][0].split()[1], 16)
    if bnd & (1 << CAP_SYS_RESOURCE):
        return True
    with open("/proc/self/limits") as f:
        hard = [ln for ln in f if ln.startswith("Max locked memory")][0].split()[4]
    return hard == "unlimited" or int(hard) >= need_bytes


class QemuWatch:
    """Samples the source QEMU's migration capabilities and parameters all
    through its migration (libvirt resets them when the job ends): caps holds
    each capability as true when any sample taken while QEMU migrated had it
    on, params the last such sample's parameters."""

    def __init__(self, uuid):
        self.uuid = uuid
        self.caps = None
        self.params = None
        self.samples = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def query(self, dom, cmd):
        return json.loads(libvirt_qemu.qemuMonitorCommand(
            dom, '{"execute":"%s"}' % cmd, 0))["return"]

    def run(self):
        conn = rig.connect("A")
        try:
            dom = conn.lookupByUUIDString(self.uuid)
            while not self.stop:
                try:
                    if dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE:
                        time.sleep(0.05)
                        continue
                    caps = self.query(dom, "query-migrate-capabilities")
                    params = self.query(dom, "query-migrate-parameters")
                    status = self.query(dom, "query-migrate").get("status")
                except libvirt.libvirtError:
                    return  # the domain left the source
                if status in ("active", "postcopy-active", "device"):
                    now = {c["capability"]: c["state"] for c in caps}
                    self.caps = {k: v or (self.caps or {}).get(k, False)
                                 for k, v in now.items()}
                    self.params = params
                    self.samples += 1
                time.sleep(0.05)
        finally:
            conn.close()

    def join(self):
        self.stop = True
        self.t.join(10)


def journal_tuning(worker, uuid):
    tuning = ferry_proc.journal_tuning(worker, uuid)
    assert tuning is not None, "no journal record with tuning at %s: %s" % (
        worker.dir, glob.glob(os.path.join(worker.dir, "migrations", "*")))
    return tuning


@pytest.mark.parametrize("case", list(CASES))
def test_dial_combination_runs_as_resolved(dial_workers, notifications, case):
    host, speed, extra_specs, tls = CASES[case]
    w = dial_workers[host]
    name = "d" + uuidlib.uuid4().hex[:8]
    mem_mib = 128
    uuid = rig.boot_guest("A", name=name, mem_mib=mem_mib, rate=4, ws=16)
    before = rig.wait_heartbeat_advances("A", name, timeout=15)
    mark = len(w.log())

    watch = QemuWatch(uuid)
    nova_peer.cast_live_migration(uuid, host, "host2", extra_specs=extra_specs)
    tuning = journal_tuning(w, uuid)
    end = notifications.wait_for(POST_END, uuid, timeout=120)
    watch.join()
    log = w.log()[mark:]
    assert end is not None, "no post.end; log:\n%s" % log[-3000:]
    assert rig.domain_state("B", uuid) == "running"
    assert rig.domain_state("A", uuid) is None
    after = rig.wait_heartbeat_advances("B", name, timeout=15, after=before["seq"])
    assert after["errors"] == 0 and after["corrupt"] == 0

    # What the worker resolved, against this rig's versions.
    assert tuning["qemu_version"] >= 7002000 and tuning["libvirt_version"] >= 9000000, tuning
    why = tuning["why"]
    par, xbzrle, zc = (tuning["parallel_connections"], tuning["xbzrle"], tuning["zero_copy"])
    if case == "1G-xbzrle":
        assert (par, xbzrle, zc) == (0, True, False), tuning
    elif case == "5G-multifd":
        assert (par, xbzrle) == (2, False), tuning
        if tuning["libvirt_version"] < 9004000:
            # zstd dropped; its channels run uncompressed, so zero-copy comes
            # back where the guest's RAM can be locked
            assert tuning["multifd_compression"] == "none", tuning
            assert "needs 9.4.0" in why["multifd_compression"], why
            assert zc == host_can_lock_guest_ram(mem_mib << 20), tuning
        else:
            assert tuning["multifd_compression"] == "zstd", tuning
            assert not zc, tuning
    elif case == "5G-postcopy-one-stream":
        assert (par, xbzrle, zc) == (0, False, False), tuning
        assert tuning["multifd_compression"] == "none", tuning
        if tuning["qemu_version"] < 10001000:
            assert "cannot run multifd with post-copy" in why["parallel"], why
    elif case == "10G-tls-multifd":
        assert (par, xbzrle, zc) == (2, False, False), tuning
        assert tuning["tls"] is True, tuning
        assert "TLS" in why["zero_copy"], why
    elif case == "25G-multifd-zero-copy":
        assert par == 4 and not xbzrle, tuning
        lockable = host_can_lock_guest_ram(mem_mib << 20)
        assert zc == lockable, (lockable, tuning)
        if not lockable:
            assert "no CAP_SYS_RESOURCE" in why["zero_copy"], why
    assert "Migrating '%s' to 'host2'" % uuid in log
    line = [ln for ln in log.splitlines() if "Migrating '%s'" % uuid in ln][0]
    assert ("parallel %d" % par if par else "one stream") in line, line
    assert "zero-copy %s" % ("on" if zc else "off") in line, line

    # What QEMU really ran.
    caps, params = watch.caps, watch.params
    assert caps is not None, "never saw the migration running on the source QEMU"
    assert caps["multifd"] == (par > 0), caps
    assert caps["xbzrle"] == xbzrle, caps
    assert caps.get("zero-copy-send", False) == zc, caps
    assert caps["postcopy-ram"] == (extra_specs is not None), caps
    # TLS: QEMU names the credentials libvirt made for the stream
    assert bool(params.get("tls-creds")) == tls, params
    if par > 0:
        assert params["multifd-channels"] == par, params
        assert params.get("multifd-compression", "none") == tuning["multifd_compression"], params
