"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per call.

Outside systemd (no $NOTIFY_SOCKET) every call is a no-op, so the daemon runs the same everywhere.
"""

from __future__ import annotations

import os
import socket

NOTIFY_ENV = "NOTIFY_SOCKET"


def notify(*fields: str) -> bool:
    """Send `READY=1`-style fields in one message; False if there is no socket or it failed."""
    address = os.environ.get(NOTIFY_ENV, "")
    if not address or not fields:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def watchdog_seconds() -> float | None:
    """The watchdog period systemd expects pings within, or None if there is no watchdog."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
