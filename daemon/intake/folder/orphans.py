"""Sidecars whose video never came, or came and went before them.

A sidecar is read with its video; one that arrives after its video was answered, or whose
video never arrives, would sit in the inbox forever. Once we have seen a sidecar without its
video, unchanged, for ``inbox.orphan_sidecar_s`` on our own clock (long: the video may still be
uploading as ``NAME.part``), it is moved to ``failed/`` and logged. No error report is
published: the outcome name belongs to the video, which may have its own outcome already.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from daemon.clock import SilenceWatch
from daemon.intake.sidecar import video_name_for_sidecar


class OrphanSidecars:
    def __init__(self, inbox: Path, after_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inbox = inbox
        self.after_s = after_s
        self._watch = SilenceWatch(monotonic)

    def due(self) -> list[Path]:
        """Sidecars alone and unchanged for ``after_s``, as far as we have watched them."""
        try:
            names = set(os.listdir(self.inbox))
        except OSError:
            return []  # inbox away or unreadable: every video would look missing
        alone = sorted(name for name in names if (video := video_name_for_sidecar(name)) is not None and video not in names)
        due = []
        for name in alone:
            try:
                info = os.lstat(self.inbox / name)
            except OSError:
                continue
            if self._watch.silent_for(name, (info.st_ino, info.st_size, info.st_mtime_ns)) > self.after_s:
                due.append(self.inbox / name)
        self._watch.keep_only(alone)  # a sidecar whose video showed up starts from zero again
        return due
