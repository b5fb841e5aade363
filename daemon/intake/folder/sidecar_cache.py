"""Each pending video's sidecar, read once per change of the sidecar file.

Choosing the next video ranks every pending one by its sidecar's priority; reading every
sidecar on every pick made the pick quadratic in the queue (seconds per claim at 5,000
pending on 9p). A sidecar is re-read only when its (inode, size, mtime_ns, mode) changed, and
the cache also remembers, on our monotonic clock, since when the sidecar looked like this, so
a sidecar written in place (not renamed) can be waited for until it stops changing.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import JobError
from daemon.intake.sidecar import JobSidecar, read_sidecar
from daemon.paths import sidecar_path_for


@dataclass
class _Entry:
    signature: tuple[int, int, int, int]
    seen_since: float  # monotonic time this signature was first seen
    parsed: JobSidecar | JobError


class SidecarCache:
    def __init__(self, roots: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._roots = list(roots)
        self._clock = clock
        self._entries: dict[Path, _Entry] = {}

    def read(self, video: Path) -> JobSidecar | None:
        """The sidecar beside ``video``; None when there is none.

        Raises:
            JobError: E_BAD_SIDECAR (cached like a good sidecar until the file changes).
            OSError: it could not be read now (held open by Windows); not cached.
        """
        entry = self._current(video)
        if entry is None:
            return None
        if isinstance(entry.parsed, JobError):
            raise entry.parsed
        return entry.parsed

    def unchanged_for(self, video: Path) -> float:
        """Seconds the sidecar has looked the same to us (0 when absent or never read)."""
        entry = self._entries.get(video)
        return 0.0 if entry is None else self._clock() - entry.seen_since

    def forget(self, video: Path) -> None:
        self._entries.pop(video, None)

    def _current(self, video: Path) -> _Entry | None:
        try:
            info = os.lstat(sidecar_path_for(video))
        except OSError as exc:
            # ENAMETOOLONG: a video name of 247+ bytes cannot have a sidecar at all.
            if exc.errno not in (errno.ENOENT, errno.ENAMETOOLONG):
                raise
            self._entries.pop(video, None)
            return None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)
        entry = self._entries.get(video)
        if entry is not None and entry.signature == signature:
            return entry
        try:
            parsed: JobSidecar | JobError = read_sidecar(sidecar_path_for(video), self._roots)
        except JobError as exc:
            parsed = exc
        entry = _Entry(signature, self._clock(), parsed)
        self._entries[video] = entry
        return entry
