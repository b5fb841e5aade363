"""Removing temp files in ``<outbox>/.tmp`` whose writer is provably gone, while running.

A daemon killed mid-job leaves its temp result behind. Temp names start with their writer's
tag (boot id, PID namespace, PID, PID start time, instance; see ``intake.liveness.owner_tag``),
so a daemon on the same boot and PID namespace can tell at once whether the writer is gone.
A file from another host, or from before tags existed, is removed only after WE have seen it
unchanged for ``silent_after_s`` on our monotonic clock: its mtime comes from another clock
and a live writer's result can sit still between frames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from daemon.clock import SilenceWatch
from daemon.log import get_logger
from daemon.publishing.publish import TMP_DIR, remove_tmp

log = get_logger(__name__)


class TempSweeper:
    """Args:
        outbox: the outbox whose ``.tmp/`` is swept.
        owner_gone: tag -> True (provably gone), False (running), None (cannot tell here).
        silent_after_s: how long a file we cannot judge by its tag must look unchanged.
        monotonic: our own clock; injectable.
    """

    def __init__(
        self,
        outbox: Path,
        owner_gone: Callable[[str], bool | None],
        silent_after_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tmp = outbox / TMP_DIR
        self._owner_gone = owner_gone
        self._silent_after_s = silent_after_s
        self._watch = SilenceWatch(monotonic)

    def sweep(self) -> int:
        """Remove what is provably abandoned; returns how many files were removed."""
        try:
            entries = list(os.scandir(self.tmp))
        except OSError:
            return 0  # no .tmp yet, or the outbox is away: nothing to judge
        removed = 0
        for entry in entries:
            reason = self._abandoned(entry)
            if reason is None:
                continue
            try:
                remove_tmp(Path(entry.path))  # a file, or an export's folder of row files
            except OSError:
                continue
            self._watch.forget(entry.name)
            removed += 1
            log.info("outbox.swept_tmp", file=entry.name, reason=reason)
        self._watch.keep_only(entry.name for entry in entries)
        return removed

    def _abandoned(self, entry: os.DirEntry[str]) -> str | None:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        if not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
            return None
        tag = entry.name.split(".", 1)[0]
        gone = self._owner_gone(tag)
        if gone is True:
            return "its writer's process is gone"
        if gone is False:
            return None
        silent = self._watch.silent_for(entry.name, (info.st_ino, info.st_size, info.st_mtime_ns))
        if silent > self._silent_after_s:
            return f"unchanged for {silent:.0f} s and its writer cannot be checked from here"
        return None
