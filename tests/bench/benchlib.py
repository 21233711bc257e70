# SPDX-License-Identifier: Apache-2.0
"""What the rig benchmarks share: running a command in the repository, the
rig brought up for a run (and stopped again only if the bench started it),
the bandwidth the dial derives, libvirt's completed-job statistics and a
process's CPU time."""
import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "peers"))

import rig  # noqa: E402

import libvirt  # noqa: E402


def sh(*cmd):
    return subprocess.run(list(cmd), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def rig_up():
    """Starts the rig's broker and hosts unless they run, builds the guest;
    True when the rig was already up (then rig_down leaves it alone)."""
    was_up = sh("bash", "deploy/rig/rabbit.sh", "status").returncode == 0
    if not was_up:
        for cmd in (("bash", "deploy/rig/rabbit.sh", "start"),
                    ("bash", "deploy/rig/hosts.sh", "start")):
            r = sh(*cmd)
            if r.returncode != 0:
                raise SystemExit(r.stdout)
    sh("make", "-s", "-C", "deploy/guest")
    return was_up


def rig_down(was_up):
    if not was_up:
        sh("bash", "deploy/rig/hosts.sh", "stop")
        sh("bash", "deploy/rig/rabbit.sh", "stop")


def derived_bandwidth(binary, conf):
    """The per-migration bandwidth (MiB/s) --show-tuning derives, and its text."""
    out = sh(binary, "--config", conf, "--show-tuning").stdout
    m = re.search(r"live_migration_bandwidth\s+(\d+) MiB/s", out)
    if not m:
        raise SystemExit("cannot read the derived bandwidth from --show-tuning:\n" + out)
    return int(m.group(1)), out


def completed_stats(host, uuid):
    """libvirt's statistics of the domain's completed migration job, or {}."""
    conn = rig.connect(host)
    try:
        return conn.lookupByUUIDString(uuid).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}
    finally:
        conn.close()


def cpu_s(pid):
    """utime + stime of pid, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
