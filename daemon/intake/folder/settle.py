"""Knowing when a file in the inbox has been written completely.

Size stability alone is not enough: Windows Explorer sets a copy's final size before it
copies the data (snowtrack/snowfs PR#176), so a file counts as settled only when size and
mtime have both stood still for ``settle_s`` and it can then be opened and read. The open
also fails while a Windows writer holds the file without read sharing.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.log import get_logger

log = get_logger(__name__)

# As many bytes as daemon.processing.media.HEADER_BYTES, without importing OpenCV into the watcher.
PROBE_BYTES = 64

# O_NONBLOCK: a FIFO swapped in after lstat must not block the main loop in open().
_PROBE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass
class _FileState:
    signature: tuple[int, int, int]  # (size, mtime_ns, inode)
    since: float  # clock reading when this signature was first seen
    offered: bool = False
    probe_failure_logged: bool = False

    @property
    def mtime_ns(self) -> int:
        return self.signature[1]


class SettleTracker:
    """Tracks inbox files until their copy is complete; reports each file once.

    Args:
        settle_s: how long size and mtime must stay unchanged.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._settle_s = settle_s
        self._clock = clock
        self._files: dict[Path, _FileState] = {}
        self._rejected_known: set[Path] = set()
        self._rejected_new: list[Path] = []

    def observe(self, path: Path) -> None:
        """Record the current state of ``path``; any change restarts its settle timer."""
        try:
            info = os.lstat(path)  # lstat: a symlink is reported, never followed
        except (FileNotFoundError, NotADirectoryError):
            self.forget(path)
            return
        except OSError as exc:
            # EIO/ESTALE on a 9p or network mount are usually brief; keep the old state.
            log.debug("inbox.stat_failed", path=str(path), error=errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        if not stat.S_ISREG(info.st_mode):
            self._files.pop(path, None)
            self._note_not_regular(path, info.st_mode)
            return
        self._rejected_known.discard(path)
        self._update(path, (info.st_size, info.st_mtime_ns, info.st_ino))

    def _update(self, path: Path, signature: tuple[int, int, int]) -> None:
        state = self._files.get(path)
        if state is None or state.signature != signature:
            self._files[path] = _FileState(signature, since=self._clock())

    def _note_not_regular(self, path: Path, mode: int) -> None:
        if stat.S_ISDIR(mode) or path in self._rejected_known:
            return  # a directory is not an upload (done/, failed/ live here); say nothing
        self._rejected_known.add(path)
        self._rejected_new.append(path)
        kind = "symlink" if stat.S_ISLNK(mode) else "special file"
        log.warning("inbox.rejected", path=str(path), kind=kind)

    def poll(self) -> list[Path]:
        """Files newly settled and readable, oldest mtime first (then by name)."""
        now = self._clock()
        ready = [
            path
            for path, state in list(self._files.items())
            if not state.offered and now - state.since >= self._settle_s and self._opens(path, state)
        ]
        for path in ready:
            self._files[path].offered = True
        return sorted(ready, key=lambda path: (self._files[path].mtime_ns, path.name))

    def _opens(self, path: Path, state: _FileState) -> bool:
        try:
            fd = os.open(path, _PROBE_FLAGS)
        except OSError as exc:
            self._note_probe_failure(path, state, exc)
            return False
        try:
            info = os.fstat(fd)
            signature = (info.st_size, info.st_mtime_ns, info.st_ino)
            if not stat.S_ISREG(info.st_mode) or signature != state.signature:
                self.observe(path)  # replaced or written since the last stat: start over
                return False
            os.read(fd, PROBE_BYTES)
        except OSError as exc:
            self._note_probe_failure(path, state, exc)
            return False
        finally:
            os.close(fd)
        return True

    def _note_probe_failure(self, path: Path, state: _FileState, exc: OSError) -> None:
        if exc.errno == errno.ELOOP:
            self.observe(path)  # became a symlink after our lstat
            return
        if not state.probe_failure_logged:
            # e.g. EACCES while a Windows copy still holds the file without read sharing.
            state.probe_failure_logged = True
            log.info("inbox.not_openable", path=str(path), error=errno.errorcode.get(exc.errno or 0, str(exc)))

    def pending(self) -> list[Path]:
        """Tracked files not yet reported ready; re-stat these every tick."""
        return [path for path, state in self._files.items() if not state.offered]

    def tracked(self) -> list[Path]:
        return list(self._files)

    def forget(self, path: Path) -> None:
        """Drop all state for ``path``; if it is still there it settles and is reported again."""
        self._files.pop(path, None)
        self._rejected_known.discard(path)

    def rejected(self) -> list[Path]:
        """Symlinks and special files seen since the last call, each reported once."""
        rejected, self._rejected_new = self._rejected_new, []
        return rejected
