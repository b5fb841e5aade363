"""Wall-clock timestamps as written into results, reports and the status file.

UTC, ISO 8601 with milliseconds and a ``Z``: what JavaScript's ``Date`` parses and sorts.
Durations and deadlines never use these; they use ``time.monotonic``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso(ts: float | None = None) -> str:
    """``ts`` (seconds since the epoch, default now) as ``2026-11-29T22:03:56.123Z``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso()
