"""Lock-file claims, so several daemons can share one inbox.

A claim is a file ``<inbox>/.posed/locks/<video name>.lock`` created with
``O_CREAT|O_EXCL``; ``flock`` is no use because it silently does nothing on 9p
(gastownhall/beads#3613). The file holds the owner's identity and a heartbeat that the
owner rewrites in place. Locks are created and taken over only while holding a short-lived
``.claiming`` mutex file (itself made with ``O_EXCL``). A lock whose owner is provably gone,
or silent for longer than ``stale_after_s`` on our own clock (``stale_locks``), is renamed to
a unique name, re-read to check it is still the lock judged stale, then deleted and created
afresh. Lock paths are never followed: a symlink there is refused.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import PosedError
from daemon.intake.liveness import Verdict, process_start_time
from daemon.intake.lockfile import (
    WRITE_FLAGS,
    ClaimIdentity,
    LockOwner,
    LockRead,
    create_exclusive,
    lock_dir_for,
    lock_name_for,
    parse_owner,
    read_all,
    read_lock,
    unlink_quietly,
    write_all,
)
from daemon.intake.stale_locks import MUTEX_SUFFIX, StaleLock, StaleLocks
from daemon.log import get_logger

log = get_logger(__name__)


class ClaimError(PosedError):
    """A claim could not be used as expected."""


class ClaimLost(ClaimError):
    """Our lock was taken over or removed: stop working on the video at once."""

    def __init__(self, video_name: str, reason: str) -> None:
        super().__init__(f"claim on {video_name} lost: {reason}")
        self.video_name = video_name
        self.reason = reason


@dataclass
class Claim:
    """A lock we hold. ``owner`` is what the file says, refreshed by each heartbeat."""

    video_name: str
    lock_path: Path
    owner: LockOwner

    @property
    def attempt(self) -> int:
        return self.owner.attempt


class ClaimManager:
    """Creates, refreshes, releases and takes over lock files in one lock directory.

    Thread-safe in the sense that matters here: every decision is made by the file system
    (``O_EXCL``, rename), never by state in this object.

    Args:
        lock_dir: usually ``lock_dir_for(inbox)``; created on first claim.
        identity: this daemon process.
        stale_after_s: a lock we cannot check by PID is gone once we have seen it unchanged
            this long.
        clock: wall-clock seconds written into the lock for people to read; injectable.
        monotonic: our own clock for judging silence; injectable.
        start_time_of: PID start time lookup; injectable to fake PID reuse.
    """

    def __init__(
        self,
        lock_dir: str | os.PathLike[str],
        identity: ClaimIdentity,
        stale_after_s: float,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        start_time_of: Callable[[int], int | None] = process_start_time,
    ) -> None:
        self.lock_dir = Path(lock_dir)
        self.identity = identity
        self.stale_after_s = stale_after_s
        self._clock = clock
        self.stale = StaleLocks(identity, stale_after_s, monotonic=monotonic, start_time_of=start_time_of)

    def lock_path_for(self, video_name: str) -> Path:
        return self.lock_dir / lock_name_for(video_name)

    def try_claim(self, video_name: str) -> Claim | None:
        """Claim a video; None when a live owner holds it, or on an I/O error (logged)."""
        lock_path = self.lock_path_for(video_name)
        try:
            current = read_lock(lock_path)
            planted = current.refused == "symlink"  # removed under the mutex, below
            if not current.missing and not planted and self._takeover_reason(lock_path, video_name, current) is None:
                return None  # held: decided without touching the mutex
            mutex = lock_path.with_name(lock_path.name + MUTEX_SUFFIX)
            mutex_owner = self._acquire_mutex(mutex, video_name)
            if mutex_owner is None:
                return None  # another daemon is claiming this video right now
            try:
                return self._claim_holding_mutex(lock_path, video_name)
            finally:
                self._release_mutex(mutex, mutex_owner)
        except OSError as exc:
            log.warning("claim.io_error", video=video_name, lock=str(lock_path), error=str(exc))
        return None

    def _claim_holding_mutex(self, lock_path: Path, video_name: str) -> Claim | None:
        # Every claimer holds the mutex from its look at the lock until its new lock exists,
        # so nobody slips into the moment a stale lock is gone and the new one not yet made
        # (which would also lose the attempt count).
        current = read_lock(lock_path)
        if current.refused == "symlink":
            self._remove_planted_link(lock_path, video_name)
            current = read_lock(lock_path)
        if current.missing:
            return self._create(lock_path, video_name, attempt=1)
        reason = self._takeover_reason(lock_path, video_name, current)
        if reason is None or not self.stale.remove_verified(lock_path, current):
            return None
        attempt = current.owner.attempt + 1 if current.owner else 2
        claim = self._create(lock_path, video_name, attempt=attempt)
        if claim is not None:
            previous = current.owner.describe() if current.owner else "unreadable lock"
            log.warning("claim.takeover", video=video_name, previous_owner=previous, reason=reason, attempt=attempt)
        return claim

    def _remove_planted_link(self, lock_path: Path, video_name: str) -> None:
        """A symlink in our private lock folder is never a lock: drop it (unlink does not
        follow links, so its target is untouched) instead of leaving the video stuck."""
        try:
            target = os.readlink(lock_path)
            os.unlink(lock_path)
        except OSError as exc:
            log.warning("claim.lock_refused", video=video_name, lock=str(lock_path), reason=f"symlink: {exc}")
            return
        log.warning("claim.planted_link_removed", video=video_name, lock=str(lock_path), target=target)

    def _takeover_reason(self, lock_path: Path, video_name: str, current: LockRead) -> str | None:
        """Why an existing lock may be taken over; None when it must be left alone."""
        if current.refused:
            log.warning("claim.lock_refused", video=video_name, lock=str(lock_path), reason=current.refused)
            return None
        verdict = self._judge(lock_path, current)
        if not verdict.stale:
            owner = current.owner.describe() if current.owner else "unknown"
            log.debug("claim.held_by_other", video=video_name, owner=owner, reason=verdict.reason)
            return None
        return verdict.reason

    def _acquire_mutex(self, mutex: Path, video_name: str) -> LockOwner | None:
        for _ in range(2):
            owner = LockOwner.new(self.identity, video_name, self._clock(), attempt=1)
            if create_exclusive(mutex, owner):
                return owner
            # A mutex is held for milliseconds; a stale one was left by a claimer that died.
            current = read_lock(mutex)
            if current.missing:
                continue
            if current.refused or not self._judge(mutex, current).stale or not self.stale.remove_verified(mutex, current):
                return None
        return None

    def _release_mutex(self, mutex: Path, owner: LockOwner) -> None:
        current = read_lock(mutex)
        if current.owner is not None and current.owner.same_claim(owner):
            unlink_quietly(mutex)

    def _create(self, lock_path: Path, video_name: str, attempt: int) -> Claim | None:
        owner = LockOwner.new(self.identity, video_name, self._clock(), attempt)
        if not create_exclusive(lock_path, owner):
            return None
        self.stale.held.add(owner.claimed_at)
        log.info("claim.acquired", video=video_name, lock=str(lock_path), attempt=attempt)
        return Claim(video_name=video_name, lock_path=lock_path, owner=owner)

    def heartbeat(self, claim: Claim) -> bool:
        """Refresh the heartbeat with one in-place write.

        Returns False on an I/O error worth retrying at the next interval.
        Raises ClaimLost when the lock is gone or now belongs to someone else.
        """
        try:
            fd = os.open(claim.lock_path, WRITE_FLAGS)
        except FileNotFoundError:
            raise self._lost(claim, "the lock file is gone") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._lost(claim, "the lock path is now a symlink") from None
            log.warning("claim.heartbeat_failed", video=claim.video_name, error=str(exc))
            return False
        try:
            return self._refresh(fd, claim)
        except OSError as exc:
            log.warning("claim.heartbeat_failed", video=claim.video_name, error=str(exc))
            return False
        finally:
            os.close(fd)

    def _refresh(self, fd: int, claim: Claim) -> bool:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise self._lost(claim, "the lock path is not a regular file")
        raw = read_all(fd)
        current = parse_owner(raw)
        if current is None or not current.same_claim(claim.owner):
            holder = current.describe() if current else "an unreadable lock"
            raise self._lost(claim, f"the lock now holds {holder}")
        fresh = claim.owner.with_heartbeat(self._clock())
        data = fresh.to_json()
        # Pad instead of truncating first: a reader never sees an empty or shortened file.
        data += b" " * max(0, len(raw) - len(data))
        write_all(fd, data, offset=0)
        claim.owner = fresh
        return True

    def _lost(self, claim: Claim, reason: str) -> ClaimLost:
        self.stale.held.discard(claim.owner.claimed_at)
        log.error("claim.lost", video=claim.video_name, lock=str(claim.lock_path), reason=reason)
        return ClaimLost(claim.video_name, reason)

    def release(self, claim: Claim) -> bool:
        """Delete the lock if it is still ours; True when it was deleted."""
        self.stale.held.discard(claim.owner.claimed_at)  # given up, even if the delete fails
        current = read_lock(claim.lock_path)
        if current.owner is None or not current.owner.same_claim(claim.owner):
            holder = current.owner.describe() if current.owner else current.refused or "no readable lock"
            log.warning("claim.release_not_ours", video=claim.video_name, lock=str(claim.lock_path), holder=holder)
            return False
        unlink_quietly(claim.lock_path)
        log.info("claim.released", video=claim.video_name, attempt=claim.attempt)
        return True

    def owner_of(self, video_name: str) -> LockOwner | None:
        """Who the lock file names, or None when there is no readable lock."""
        return read_lock(self.lock_path_for(video_name)).owner

    def verdict_for(self, video_name: str) -> Verdict | None:
        """The verdict on a video's lock; None when there is no lock or it is refused."""
        current = read_lock(self.lock_path_for(video_name))
        path = self.lock_path_for(video_name)
        return None if current.missing or current.refused else self._judge(path, current)

    def still_ours(self, claim: Claim) -> bool:
        """Whether the lock still names this very claim: the fence checked just before an
        outcome is published, so a daemon whose claim was taken over never publishes."""
        current = read_lock(claim.lock_path)
        if current.owner is not None:
            return current.owner.same_claim(claim.owner)
        if current.missing:
            # Deleted by whoever took it over and finished, unless the whole inbox is away
            # (an unmounted /mnt/c): then nobody can have it, and the heartbeat will tell.
            return not os.path.isdir(self.lock_dir)  # a folder we may not read counts as away
        return False  # refused or unreadable: not provably ours

    def sweep_stale(self, inbox_dir: str | os.PathLike[str], *, remove: bool = True) -> list[StaleLock]:
        """Abandoned locks whose video has left the inbox (see ``StaleLocks.sweep``)."""
        return self.stale.sweep(self.lock_dir, inbox_dir, remove=remove)

    def _judge(self, path: Path, current: LockRead) -> Verdict:
        return self.stale.judge(path, current)


__all__ = [
    "Claim",
    "ClaimError",
    "ClaimIdentity",
    "ClaimLost",
    "ClaimManager",
    "LockOwner",
    "StaleLock",
    "lock_dir_for",
    "lock_name_for",
]
