"""Noticing videos in the inbox and offering each once its copy is complete.

Events only make us look sooner; they are never trusted to be complete. The polling
observer misses a file created and deleted between two scans, inotify drops events when its
queue overflows (gorakhargosh/watchdog#654) and sees nothing Windows writes to /mnt/c. So
the watcher also rescans the whole inbox at start and every ``rescan_interval_s``, and the
main loop re-stats every file that has not settled yet on each tick.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.config import InboxConfig
from daemon.log import get_logger
from daemon.intake.folder.mounts import choose_observer, filesystem_type, needs_polling, parse_mountinfo
from daemon.intake.folder.settle import SettleTracker

log = get_logger(__name__)

# Names that browsers, rclone, Office and copy tools use while a file is still being written.
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")
OFFICE_LOCK_PREFIX = "~$"
SIDECAR_SUFFIX = ".job.json"  # read together with its video, never a job on its own

# Our own reads produce these inotify events; they never change whether a file settled.
_IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})


def is_candidate(name: str) -> bool:
    """False for names that are never uploads: dotfiles, partial downloads, sidecars.

    Unsupported extensions are candidates: they get an error report downstream.
    """
    if not name or name.startswith((".", OFFICE_LOCK_PREFIX)):
        return False
    return not name.lower().endswith((*PARTIAL_SUFFIXES, SIDECAR_SUFFIX))


class ObserverFactory(Protocol):
    def __call__(self, path: Path, mode: str, poll_interval_s: float) -> BaseObserver: ...


class _MarkDirty(FileSystemEventHandler):
    """Runs on the observer thread; only hands names over to the main loop."""

    def __init__(self, note_path: Callable[[str], None]) -> None:
        self._note_path = note_path

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENT_TYPES:
            return
        for raw in (event.src_path, event.dest_path):
            if raw:
                self._note_path(os.fsdecode(raw))


class InboxWatcher:
    """Watches one inbox directory (not recursive) and offers files whose copy is complete.

    Call ``ready()`` from the main loop every tick. Survives the inbox disappearing
    (WSL's /mnt/c can vanish across Windows sleep) by retrying every ``poll_interval_s``.

    Args:
        cfg: the inbox section of the config.
        clock: monotonic seconds; injectable for tests.
        observer_factory: builds the watchdog observer; ``choose_observer`` by default.
    """

    def __init__(
        self,
        cfg: InboxConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer_factory: ObserverFactory = choose_observer,
    ) -> None:
        self.path = Path(os.path.abspath(cfg.path))
        self._cfg = cfg
        self._clock = clock
        self._observer_factory = observer_factory
        self._tracker = SettleTracker(cfg.settle_s, clock)
        self._handler = _MarkDirty(self._note_event_path)
        self._lock = threading.Lock()  # guards _dirty and _check_dir_now (observer thread)
        self._dirty: set[str] = set()
        self._check_dir_now = False
        self._observer: BaseObserver | None = None
        self._dir_identity: tuple[int, int] | None = None
        self._available: bool | None = None  # None until the first check
        self._next_dir_check = 0.0
        self._next_rescan = 0.0
        self._started = False
        self._stopped = False

    @property
    def available(self) -> bool:
        """Whether the inbox directory exists and is being watched."""
        return bool(self._available)

    def start(self) -> None:
        """Create the inbox if needed and start watching; safe to call twice."""
        if self._started:
            return
        self._started = True
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("inbox.mkdir_failed", path=str(self.path), error=str(exc))
        self._check_dir(self._clock(), force=True)

    def stop(self) -> None:
        """Stop and join the observer thread; safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_observer()

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def ready(self) -> list[Path]:
        """Files newly complete since the last call, oldest first; each offered once."""
        if not self._started or self._stopped:
            return []
        now = self._clock()
        self._check_dir(now)
        if not self._available:
            return []  # stat'ing now would make every tracked file look deleted
        if now >= self._next_rescan:
            self._rescan(now)
        names = self._take_dirty() | {path.name for path in self._tracker.pending()}
        for name in sorted(names):
            self._tracker.observe(self.path / name)
        return self._tracker.poll()

    def pending(self) -> list[Path]:
        """Files seen but not settled yet (still being copied); for status reports."""
        return self._tracker.pending()

    def rejected(self) -> list[Path]:
        """Symlinks and special files with candidate names, each reported once."""
        return self._tracker.rejected()

    def forget(self, path: str | os.PathLike[str]) -> None:
        """Drop a file's state, e.g. when its claim failed; it is offered again once settled."""
        name = Path(path).name
        self._tracker.forget(self.path / name)
        with self._lock:
            self._dirty.add(name)

    def _note_event_path(self, raw_path: str) -> None:
        with self._lock:
            if raw_path == str(self.path):
                self._check_dir_now = True  # the inbox itself was deleted or moved
            elif os.path.dirname(raw_path) == str(self.path):
                name = os.path.basename(raw_path)
                if is_candidate(name):
                    self._dirty.add(name)

    def _take_dirty(self) -> set[str]:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    def _rescan(self, now: float) -> None:
        self._next_rescan = now + self._cfg.rescan_interval_s
        try:
            with os.scandir(self.path) as entries:
                names = {entry.name for entry in entries if is_candidate(entry.name)}
        except OSError:
            with self._lock:
                self._check_dir_now = True
            return
        for path in self._tracker.tracked():
            if path.name not in names:
                self._tracker.forget(path)  # deleted between two polls: no event ever came
        with self._lock:
            self._dirty |= names
        log.debug("inbox.rescan", path=str(self.path), files=len(names))

    def _check_dir(self, now: float, *, force: bool = False) -> None:
        with self._lock:
            due = force or self._check_dir_now or now >= self._next_dir_check
            self._check_dir_now = False
        if not due:
            return
        self._next_dir_check = now + self._cfg.poll_interval_s
        identity, error = _dir_identity(self.path)
        if identity is None:
            self._mark_unavailable(error)
        elif identity != self._dir_identity or not self._observer_alive():
            self._watch(identity, now)

    def _mark_unavailable(self, error: str) -> None:
        if self._available is not False:
            log.warning("inbox.unavailable", path=str(self.path), error=error,
                        retry_s=self._cfg.poll_interval_s)
        self._available = False
        self._dir_identity = None
        self._stop_observer()

    def _watch(self, identity: tuple[int, int], now: float) -> None:
        self._stop_observer()
        observer = self._start_observer()
        if observer is None:
            self._mark_unavailable("cannot watch the directory")
            return
        if self._available is False:
            log.info("inbox.available", path=str(self.path), fstype=filesystem_type(self.path))
        elif self._available:
            reason = "directory replaced" if identity != self._dir_identity else "observer stopped"
            log.info("inbox.rewatch", path=str(self.path), reason=reason)
        self._observer = observer
        self._dir_identity = identity
        self._available = True
        self._next_rescan = now  # anything may have arrived while we were not watching

    def _start_observer(self) -> BaseObserver | None:
        observer: BaseObserver | None = None
        try:  # constructing the inotify observer can fail too (EMFILE from inotify_init)
            observer = self._observer_factory(self.path, self._cfg.observer, self._cfg.poll_interval_s)
            return _started(observer, self._handler, self.path)
        except OSError as exc:
            if isinstance(observer, PollingObserver) or not self.path.is_dir():
                return None
            # e.g. ENOSPC/EMFILE: fs.inotify.max_user_watches or max_user_instances exhausted.
            log.warning("inbox.observer_fallback", observer="polling", error=str(exc), path=str(self.path))
        try:
            return _started(PollingObserver(timeout=self._cfg.poll_interval_s), self._handler, self.path)
        except OSError:
            return None

    def _observer_alive(self) -> bool:
        observer = self._observer
        # The polling emitter stops itself when the directory vanishes between scans.
        return observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            _stop_and_join(observer)


def _dir_identity(path: Path) -> tuple[tuple[int, int] | None, str]:
    try:
        info = os.stat(path)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    if not stat.S_ISDIR(info.st_mode):
        return None, "not a directory"
    return (info.st_dev, info.st_ino), ""


def _started(observer: BaseObserver, handler: FileSystemEventHandler, path: Path) -> BaseObserver:
    try:
        observer.schedule(handler, str(path), recursive=False)
        observer.start()
    except BaseException:
        _stop_and_join(observer)
        raise
    return observer


def _stop_and_join(observer: BaseObserver) -> None:
    observer.stop()
    with contextlib.suppress(RuntimeError):  # never started
        observer.join()


__all__ = [
    "InboxWatcher",
    "SettleTracker",
    "choose_observer",
    "filesystem_type",
    "is_candidate",
    "needs_polling",
    "parse_mountinfo",
]
