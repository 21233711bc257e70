#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Child-subreaper wrapper for the rig's libvirtd (libvirt-lab.md gotcha 2).

Usage: reaper.py PROGRAM [ARGS...]

Marks itself PR_SET_CHILD_SUBREAPER, starts PROGRAM, and reaps every process
reparented to it (the double-forked QEMUs) as soon as it exits, so libvirt's
"wait for QEMU to go away" polling ends at once instead of waiting for a slow
PID 1.  SIGTERM, SIGINT and SIGHUP are forwarded to PROGRAM.  When PROGRAM
exits, the remaining descendants get SIGTERM (then SIGKILL after 5 s), and the
wrapper exits with PROGRAM's status.

Restarting PROGRAM alone (hosts.sh restart-daemon: a libvirtd restart under
running guests): when the file named by $REAPER_RESTART_FILE exists at the
moment PROGRAM exits, the file is removed and PROGRAM is started again in
the same namespace; the QEMUs are left running.
"""
import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: reaper.py PROGRAM [ARGS...]\n")
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        sys.stderr.write("reaper: prctl(PR_SET_CHILD_SUBREAPER): %s\n" % os.strerror(err))
        return 1

    restart_file = os.environ.pop("REAPER_RESTART_FILE", "")
    child = _spawn()

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)

    status = 0
    main_alive = True
    while main_alive:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            if restart_file and _take(restart_file):
                child = _spawn()
                continue
            main_alive = False
            status = os.waitstatus_to_exitcode(st)

    # PROGRAM is gone: stop what it left behind (orphaned QEMUs), reap them.
    deadline = time.monotonic() + 5.0
    sig = signal.SIGTERM
    while True:
        kids = _children()
        if not kids:
            break
        for k in kids:
            try:
                os.kill(k, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
    return status if status >= 0 else 128 - status


def _spawn():
    child = os.fork()
    if child == 0:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        finally:
            os._exit(127)
    return child


def _take(path):
    """True (and the file removed) if a restart was requested."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _children():
    """PIDs whose parent is this process (reparented orphans included)."""
    me = os.getpid()
    out = []
    try:
        with open("/proc/%d/task/%d/children" % (me, me)) as f:
            out = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


if __name__ == "__main__":
    sys.exit(main())
