"""Is a daemon alive? One rule for ``posed status``, the Node client and anyone reading status files.

The rule (README, "Health"; ``liveness()`` in node/src/liveness.mjs is the same):

1. ``state`` is ``stopped``: the daemon stopped cleanly and said so ("stopped").
2. The daemon ran on this kernel (same boot id and PID namespace in ``daemon``): it is down at
   once when its pid is gone or now belongs to another process (different start time).
3. Otherwise it is down when its heartbeat is older than ``DOWN_AFTER_INTERVALS`` status
   intervals (``status_interval_s`` in the document; 5 x 2 s = 10 s by default). The age is the
   smaller of "now - heartbeat_at" and "now - the file's modification time", so a clock that
   differs between the daemon and the reader (WSL's lags after Windows sleeps) does not make a
   live daemon look dead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.intake.liveness import START_TIME_UNKNOWN, ProcessIdentity, process_start_time

DOWN_AFTER_INTERVALS = 5
DEFAULT_STATUS_INTERVAL_S = 2.0  # documents written before status_interval_s was recorded


@dataclass(frozen=True)
class Liveness:
    verdict: str  # "alive" | "stopped" | "down"
    reason: str  # for people: "pid 4711 is gone", "no heartbeat for 14 s (limit 10 s)"


def judge(doc: dict[str, Any], *, file_mtime: float | None = None, now: float | None = None,
          me: ProcessIdentity | None = None) -> Liveness:  # fmt: skip
    """The verdict on one status document (``file_mtime``: its file's st_mtime, if known)."""
    now = time.time() if now is None else now
    if doc.get("state") == "stopped":
        return Liveness("stopped", f"stopped cleanly at {doc.get('updated_at')}")
    gone = _pid_gone(doc.get("daemon") or {}, me or ProcessIdentity.current())
    if gone:
        return Liveness("down", gone)
    interval = doc.get("status_interval_s") or DEFAULT_STATUS_INTERVAL_S
    limit = DOWN_AFTER_INTERVALS * interval
    ages = [now - stamp for stamp in (_parse_iso(doc.get("heartbeat_at")), file_mtime) if stamp is not None]
    age = min(ages) if ages else float("inf")
    if age > limit:
        return Liveness("down", f"no heartbeat for {age:.0f} s (limit {DOWN_AFTER_INTERVALS} x {interval:g} s)")
    return Liveness("alive", f"heartbeat {max(age, 0.0):.0f} s ago")


def _pid_gone(daemon: dict[str, Any], me: ProcessIdentity) -> str | None:
    """Why the daemon's process is provably gone, or None when we cannot tell or it runs."""
    pid = daemon.get("pid")
    if not isinstance(pid, int) or not me.boot_id or daemon.get("boot_id") != me.boot_id:
        return None
    if daemon.get("pid_namespace") != me.pid_ns:
        return None
    started = process_start_time(pid)
    if started is None:
        return f"pid {pid} is gone"
    recorded = daemon.get("start_time")
    if isinstance(recorded, int) and started not in (recorded, START_TIME_UNKNOWN):
        return f"pid {pid} now belongs to another process"
    return None


def _parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
