"""One daemon per ``daemon.name`` per outbox: a second one refuses to start and says why.

Two daemons with the same name write the same status file and silently overwrite each other's
health. The status file itself is the liveness signal: a holder is live when its document
(another instance, not ``stopped``) keeps changing its ``heartbeat_at``. On our own host a
holder whose PID is gone is down at once; otherwise we watch the heartbeat, on our own
monotonic clock, for three status intervals (never comparing its clock with ours).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.log import get_logger
from daemon.ops.status import status_dir

log = get_logger(__name__)
WATCH_INTERVALS = 3  # a live daemon rewrites its status every interval; allow two misses


def live_holder(
    outbox: Path,
    name: str,
    status_interval_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any] | None:
    """The ``daemon`` block of another live daemon using ``name`` on ``outbox``, or None."""
    path = status_dir(outbox) / f"{name}.json"
    first = _read(path)
    if first is None or first.get("state") == "stopped":
        return None
    holder = first.get("daemon") or {}
    if holder.get("host") == socket.gethostname() and not _pid_runs(holder.get("pid")):
        return None  # killed on this host: its PID is gone
    deadline = clock() + WATCH_INTERVALS * status_interval_s
    while clock() < deadline:
        sleep(min(status_interval_s / 4, 0.5))
        now = _read(path)
        if now is None or now.get("state") == "stopped":
            return None
        if now.get("heartbeat_at") != first.get("heartbeat_at") or (now.get("daemon") or {}) != holder:
            return now.get("daemon") or holder  # still being rewritten: someone is alive
    log.info("daemon.name_was_stale", name=name, previous=holder, silent_s=WATCH_INTERVALS * status_interval_s)
    return None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _pid_runs(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
