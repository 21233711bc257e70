# SPDX-License-Identifier: Apache-2.0
"""Under systemd (Type=notify, WatchdogSec): the worker tells the socket in
$NOTIFY_SOCKET that it is ready, pings the watchdog from its main loop at
half the period, and says it is stopping on SIGTERM.  The socket here stands
in for systemd; the worker is the real binary on the real broker."""
import os
import socket
import tempfile

import ferry_proc


def test_ready_watchdog_and_stopping_reach_notify_socket(rig_up):
    tmp = tempfile.mkdtemp(prefix="ferry-e2e-service-")
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    w = ferry_proc.Worker(tmp, "svc1", env={"NOTIFY_SOCKET": path,
                                            "WATCHDOG_USEC": "1000000"})
    try:
        w.start(wait=False)
        first = sock.recv(256).decode()
        assert first.startswith("READY=1"), first
        pings = 0
        while pings < 4:
            if sock.recv(256).decode() == "WATCHDOG=1":
                pings += 1
        w.proc.send_signal(15)
        msgs = []
        while "STOPPING=1" not in msgs:
            msgs.append(sock.recv(256).decode())
        assert w.proc.wait(timeout=40) == 0
    finally:
        w.stop()
        sock.close()
