"""sd_notify without a dependency: READY=1 after models load, WATCHDOG=1 from the main loop.

systemd passes a datagram socket in ``$NOTIFY_SOCKET``; outside systemd every call is a no-op.
Feeding the watchdog from the supervisor's loop (not a side thread) is the point: a wedged loop
stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the configured WatchdogSec, as sd_watchdog_enabled(3) recommends; None if off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
