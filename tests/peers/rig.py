#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Python side of ferry's test rig (deploy/rig): the two libvirt hosts A and B
started by deploy/rig/hosts.sh, and the dirtying guest of deploy/guest.

Run with /usr/bin/python3 (python3-libvirt).  Import it from tests, or use
the CLI:

    rig.py uris
    rig.py boot [--host A] [--name demo] [--uuid U] [--mem 256] [--rate 4]
                [--ratek K] [--ws 32] [--full 0] [--hb 1000]   -> prints the uuid
    rig.py state HOST UUID                 -> running|paused|...|absent (exit 1 if absent)
    rig.py hb HOST NAME                    -> last heartbeat as JSON (exit 1 if none)
    rig.py wait-hb HOST NAME [--timeout S] [--after SEQ]
    rig.py serial-log HOST NAME            -> host path of the guest's serial log
    rig.py destroy-all

Guests are transient, diskless <domain type='qemu'> (TCG) booting
deploy/guest/dirty.elf via <os><kernel>.  The serial console is a file
chardev with append='on' at /var/log/libvirt/qemu/<name>-serial.log inside
each host's mount namespace, i.e. $RIG_DIR/<host>/log/qemu/<name>-serial.log
seen from the root namespace.  The libvirt domain UUID is the Nova instance
uuid.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid as uuidlib

import libvirt

RIG_DIR = os.environ.get("RIG_DIR", "/tmp/ferry-rig")
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GUEST_DIR = os.path.join(REPO, "deploy", "guest")
GUEST_ELF = os.environ.get("RIG_GUEST_ELF", os.path.join(GUEST_DIR, "dirty.elf"))

HOSTS = ("A", "B")
HOST_IP = {"A": "127.0.0.2", "B": "127.0.0.3"}
HOST_UUID = {"A": "aaaaaaaa-aaaa-4aaa-8aaa-00000000000a",
             "B": "bbbbbbbb-bbbb-4bbb-8bbb-00000000000b"}

# Local control (root namespace) goes through each daemon's unix socket;
# migrations and the worker's peers use the TCP URIs.
URI_A = "qemu+unix:///system?socket=%s/A/sock/libvirt-sock" % RIG_DIR
URI_B = "qemu+unix:///system?socket=%s/B/sock/libvirt-sock" % RIG_DIR
TCP_URI_A = "qemu+tcp://127.0.0.2/system"
TCP_URI_B = "qemu+tcp://127.0.0.3/system"

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

HB_RE = re.compile(r"^HB seq=(\d+) t_ms=(\d+) dirtied=(\d+) pass=(\d+) "
                   r"rate_kib_s=(\d+) errors=(\d+)\s*$")
HB_KEYS = ("seq", "t_ms", "dirtied", "pass", "rate_kib_s", "errors")

# libvirt prints every error to stderr by default; callers get exceptions.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _check_host(host):
    if host not in HOSTS:
        raise ValueError("unknown rig host %r (want A or B)" % (host,))


def host_uri(name, tcp=False):
    """URI of rig host 'A' or 'B': the unix-socket one for local control,
    or with tcp=True the qemu+tcp:// one (migration destinations)."""
    _check_host(name)
    if tcp:
        return TCP_URI_A if name == "A" else TCP_URI_B
    return URI_A if name == "A" else URI_B


def connect(host):
    """New read-write libvirt connection to rig host 'A' or 'B' (caller closes)."""
    return libvirt.open(host_uri(host))


def serial_log(host, name):
    """Absolute path, in the root namespace, of guest `name`'s serial log on `host`."""
    _check_host(host)
    return os.path.join(RIG_DIR, host, "log", "qemu", "%s-serial.log" % name)


def build_guest():
    """Build deploy/guest/dirty.elf if needed; return its path."""
    if "RIG_GUEST_ELF" not in os.environ:
        subprocess.run(["make", "-s", "-C", GUEST_DIR], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(GUEST_ELF):
        raise FileNotFoundError(GUEST_ELF)
    return GUEST_ELF


def disk_xml(path, fmt="qcow2", target="vda"):
    """A file-backed virtio disk for domain_xml's devices (the path as the
    host's namespace sees it)."""
    return """    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{path}'/>
      <target dev='{target}' bus='virtio'/>
    </disk>
""".format(path=path, fmt=fmt, target=target)


def ns_wrapper(host):
    """Command prefix that runs a program in rig host `host`'s mount
    namespace (where its /var/lib/libvirt is), e.g. a worker that creates
    disk images for that host's QEMU."""
    _check_host(host)
    with open(os.path.join(RIG_DIR, host, "reaper.pid")) as f:
        pid = f.read().strip()
    return ["nsenter", "--mount=/proc/%s/ns/mnt" % pid, "--"]


def domain_xml(name, uuid, mem_mib=256, cmdline="", kernel=None, devices=""):
    """XML of the rig's transient TCG guest: diskless unless devices (more
    <devices> children, e.g. disk_xml()) says otherwise."""
    kernel = kernel or GUEST_ELF
    return """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{mem}</memory>
  <currentMemory unit='MiB'>{mem}</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>{cmdline}</cmdline>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
{devices}  </devices>
</domain>
""".format(name=name, uuid=uuid, mem=int(mem_mib), kernel=kernel, cmdline=cmdline,
           devices=devices)


def boot_guest(host="A", name="demo", uuid=None, mem_mib=256, rate=4, ws=32, full=0,
               hb=1000, ratek=None, extra="", timeout=None, devices=""):
    """Create the transient guest `name` on `host`, wait for its first
    heartbeat, and return its UUID (a new uuid4 if `uuid` is None).

    rate is MiB/s (0 = flat out), ratek KiB/s (overrides rate), ws MiB,
    full 0|1, hb heartbeat ms; extra is appended to the guest command line.
    Old serial logs of that name are removed first on every host that has
    no domain of that name."""
    _check_host(host)
    uuid = str(uuid or uuidlib.uuid4())
    build_guest()
    args = ["rate=%d" % int(rate), "ws=%d" % int(ws), "full=%d" % int(full), "hb=%d" % int(hb)]
    if ratek is not None:
        args.append("ratek=%d" % int(ratek))
    if extra:
        args.append(extra)
    log = serial_log(host, name)
    _remove_stale_logs(name)
    conn = connect(host)
    try:
        conn.createXML(domain_xml(name, uuid, mem_mib, " ".join(args), devices=devices), 0)
    finally:
        conn.close()
    if timeout is None:
        timeout = 15.0 + 3.0 * hb / 1000.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if heartbeat(host, name) is not None:
            return uuid
        time.sleep(0.1)
    raise TimeoutError("guest %s on %s: no heartbeat in %s within %.0fs" %
                       (name, host, log, timeout))


def _remove_stale_logs(name):
    """Delete guest `name`'s serial log on every host that has no domain of
    that name, so old heartbeats and CORRUPT lines of an earlier guest do
    not mix with the new one's (the log is appended to, across migrations)."""
    for h in HOSTS:
        try:
            conn = connect(h)
        except libvirt.libvirtError:
            conn = None
        try:
            if conn is not None:
                try:
                    conn.lookupByName(name)
                    continue
                except libvirt.libvirtError:
                    pass
            try:
                os.unlink(serial_log(h, name))
            except FileNotFoundError:
                pass
        finally:
            if conn is not None:
                conn.close()


def heartbeat(host, name):
    """Last complete heartbeat line of guest `name` on `host` as a dict
    (seq, t_ms, dirtied, pass, rate_kib_s, errors, plus 'corrupt': the
    number of CORRUPT lines in the log), or None if there is none yet."""
    path = serial_log(host, name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    text = data.decode("ascii", "replace")
    complete = text[:text.rfind("\n") + 1]
    for line in reversed(complete.splitlines()):
        m = HB_RE.match(line.strip())
        if m:
            hb = {k: int(v) for k, v in zip(HB_KEYS, m.groups())}
            hb["corrupt"] = complete.count("CORRUPT page=")
            return hb
    return None


def wait_heartbeat_advances(host, name, timeout=10.0, after=None):
    """Wait until guest `name` on `host` prints a heartbeat with seq greater
    than `after` (default: the seq of its current last heartbeat, or -1 if
    none).  Returns that heartbeat; raises TimeoutError."""
    if after is None:
        cur = heartbeat(host, name)
        after = cur["seq"] if cur else -1
    deadline = time.monotonic() + timeout
    while True:
        cur = heartbeat(host, name)
        if cur is not None and cur["seq"] > after:
            return cur
        if time.monotonic() >= deadline:
            raise TimeoutError("guest %s on %s: heartbeat did not advance past seq %d "
                               "within %.1fs (last: %r)" % (name, host, after, timeout, cur))
        time.sleep(0.1)


def domain_state(host, uuid):
    """State name of domain `uuid` on `host` ('running', 'paused', 'shutoff',
    ...), or None if the host has no such domain."""
    conn = connect(host)
    try:
        try:
            dom = conn.lookupByUUIDString(str(uuid))
            return STATE_NAMES.get(dom.state()[0], "unknown")
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
    finally:
        conn.close()


def running_hosts():
    """Yields (host, connection) for each host that is running, the
    connection open while the caller's loop body runs and closed after;
    hosts that are not running are skipped."""
    for host in HOSTS:
        try:
            conn = connect(host)
        except libvirt.libvirtError:
            continue
        try:
            yield host, conn
        finally:
            conn.close()


def domain_names():
    """Names of every domain on the hosts that are running."""
    names = set()
    for _, conn in running_hosts():
        names.update(d.name() for d in conn.listAllDomains(0))
    return names


def destroy_guest(uuid):
    """Destroys domain `uuid` wherever it runs (both hosts, those running)."""
    for _, conn in running_hosts():
        try:
            conn.lookupByUUIDString(str(uuid)).destroy()
        except libvirt.libvirtError:
            pass


def destroy_all(keep=()):
    """Abort jobs and destroy (and undefine) every domain on both hosts
    whose name is not in keep.  Hosts that are not running are skipped.
    Returns the number destroyed."""
    n = 0
    for _, conn in running_hosts():
        for dom in conn.listAllDomains(0):
            if dom.name() in keep:
                continue
            for op in (dom.abortJob, dom.destroy):
                try:
                    op()
                except libvirt.libvirtError:
                    pass
            try:
                if dom.isPersistent():
                    dom.undefine()
            except libvirt.libvirtError:
                pass
            n += 1
    return n


def _main(argv):
    ap = argparse.ArgumentParser(prog="rig.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("uris")
    b = sub.add_parser("boot")
    b.add_argument("--host", default="A", choices=HOSTS)
    b.add_argument("--name", default="demo")
    b.add_argument("--uuid")
    b.add_argument("--mem", type=int, default=256)
    b.add_argument("--rate", type=int, default=4)
    b.add_argument("--ratek", type=int)
    b.add_argument("--ws", type=int, default=32)
    b.add_argument("--full", type=int, default=0)
    b.add_argument("--hb", type=int, default=1000)
    s = sub.add_parser("state")
    s.add_argument("host", choices=HOSTS)
    s.add_argument("uuid")
    for cmd in ("hb", "serial-log"):
        h = sub.add_parser(cmd)
        h.add_argument("host", choices=HOSTS)
        h.add_argument("name")
    w = sub.add_parser("wait-hb")
    w.add_argument("host", choices=HOSTS)
    w.add_argument("name")
    w.add_argument("--timeout", type=float, default=10.0)
    w.add_argument("--after", type=int)
    sub.add_parser("destroy-all")
    a = ap.parse_args(argv)

    if a.cmd == "uris":
        for h in HOSTS:
            print("%s %s %s" % (h, host_uri(h, tcp=True), host_uri(h)))
    elif a.cmd == "boot":
        print(boot_guest(a.host, a.name, a.uuid, a.mem, a.rate, a.ws, a.full, a.hb,
                         ratek=a.ratek))
    elif a.cmd == "state":
        st = domain_state(a.host, a.uuid)
        print(st or "absent")
        return 0 if st else 1
    elif a.cmd == "hb":
        hb = heartbeat(a.host, a.name)
        print(json.dumps(hb))
        return 0 if hb else 1
    elif a.cmd == "wait-hb":
        print(json.dumps(wait_heartbeat_advances(a.host, a.name, a.timeout, a.after)))
    elif a.cmd == "serial-log":
        print(serial_log(a.host, a.name))
    elif a.cmd == "destroy-all":
        print(destroy_all())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except (libvirt.libvirtError, TimeoutError, FileNotFoundError,
            subprocess.CalledProcessError) as e:
        sys.stderr.write("rig.py: error: %s\n" % e)
        sys.exit(2)
