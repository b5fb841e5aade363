"""Wall-clock timestamps as written into results, reports and the status file.

UTC, ISO 8601 with milliseconds and a ``Z``: what JavaScript's ``Date`` parses and sorts.
Durations and deadlines never use these; they use ``time.monotonic``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime, timezone


def iso(ts: float | None = None) -> str:
    """``ts`` (seconds since the epoch, default now) as ``2026-11-29T22:03:56.123Z``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso()


class SilenceWatch:
    """How long something has looked the same, measured on OUR monotonic clock.

    Another host's timestamps (a lock's heartbeat, a file's mtime) say nothing about how long
    it has been silent: its clock may be minutes off ours (WSL2 lags after a laptop sleeps).
    What we can measure is how long, on our own clock, we have seen the same value; the first
    sighting counts as "just changed", so nothing is ever judged silent before we watched it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[Hashable, tuple[Hashable, float]] = {}

    def silent_for(self, key: Hashable, look: Hashable) -> float:
        """Seconds ``key`` has shown ``look``; 0.0 when it is new or just changed."""
        now = self._clock()
        previous = self._seen.get(key)
        if previous is None or previous[0] != look:
            self._seen[key] = (look, now)
            return 0.0
        return now - previous[1]

    def forget(self, key: Hashable) -> None:
        self._seen.pop(key, None)

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        """Drop what is no longer there, so the memory stays as small as what is watched."""
        wanted = set(keys)
        for key in [key for key in self._seen if key not in wanted]:
            del self._seen[key]
