"""Judging lock files stale, removing them without racing their owner, and sweeping leftovers.

A lock is stale when its owner is provably gone (same host and PID namespace: the PID is gone
or reused; same host: rebooted), or when we have seen its content unchanged for
``stale_after_s`` on OUR monotonic clock. The heartbeat's own timestamp is never compared with
our clock: two hosts whose clocks differ by more than ``stale_after_s`` took over each other's
live claims. A consequence worth knowing: a daemon that just started waits ``stale_after_s``
before taking over another host's dead claim, because it must first watch it stay silent.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.clock import SilenceWatch
from daemon.intake.liveness import Verdict, judge_owner, process_start_time
from daemon.intake.lockfile import LOCK_SUFFIX, ClaimIdentity, LockRead, lock_name_for, read_lock, unlink_quietly
from daemon.log import get_logger

log = get_logger(__name__)

MUTEX_SUFFIX = ".claiming"  # held by whoever is creating or taking over the lock
_STALE_SIDE_FILE = re.compile(re.escape(LOCK_SUFFIX) + r"\.stale-[0-9A-Za-z]*-(\d+)$")


@dataclass(frozen=True)
class StaleLock:
    lock_path: Path
    video_name: str  # "" when the lock could not be parsed
    reason: str
    removed: bool


class StaleLocks:
    """Verdicts on lock files, and their safe removal, for one daemon.

    Args:
        identity: this daemon process.
        stale_after_s: how long a lock we cannot check by PID must look unchanged to us.
        monotonic: our own clock for silences; injectable.
        start_time_of: PID start time lookup; injectable to fake PID reuse.
    """

    def __init__(
        self,
        identity: ClaimIdentity,
        stale_after_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        start_time_of: Callable[[int], int | None] = process_start_time,
    ) -> None:
        self.identity = identity
        self.stale_after_s = stale_after_s
        self._watch = SilenceWatch(monotonic)
        self._start_time_of = start_time_of
        self._token = re.sub(r"[^0-9A-Za-z]", "", identity.instance_id)[:12]
        self.held: set[str] = set()  # claimed_at of the claims this daemon holds right now

    def judge(self, path: Path, current: LockRead) -> Verdict:
        owner = current.owner
        if owner is not None and owner.instance_id == self.identity.instance_id and owner.claimed_at not in self.held:
            # Ours, but given up: its deletion failed (an inbox turned unreadable). Our PID is
            # alive, so nobody else would ever take it over; without this it blocks its video.
            return Verdict(True, "our own claim, given up earlier")
        if owner is None:
            # Torn or garbage: only a change of the file itself shows someone is writing it.
            silent = self._watch.silent_for(path, current.signature)
            return Verdict(silent > self.stale_after_s, f"unreadable lock, unchanged for {silent:.0f} s")
        silent = self._watch.silent_for(path, (owner, current.signature))
        return judge_owner(owner.process, silent, self.identity.process, self.stale_after_s, self._start_time_of)

    def forget(self, path: Path) -> None:
        self._watch.forget(path)

    def remove_verified(self, path: Path, judged: LockRead) -> bool:
        """Rename ``path`` aside, check it is the lock judged stale, then delete it.

        Renaming first means we never delete a lock that changed after we looked at it.
        """
        side = path.with_name(f"{path.name}.stale-{self._token}-{time.time_ns()}")
        try:
            os.rename(path, side)
        except FileNotFoundError:
            return False
        moved = read_lock(side)
        if _is_same_lock(moved, judged):
            unlink_quietly(side)
            self._watch.forget(path)
            return True
        self._put_back(side, path)
        return False

    def _put_back(self, side: Path, path: Path) -> None:
        try:
            os.link(side, path)  # unlike rename, link never replaces a lock created meanwhile
        except FileExistsError:
            # A new lock appeared in the moment ours was aside; its owner wins and the
            # displaced owner learns so at its next heartbeat (ClaimLost).
            log.warning("claim.takeover_displaced", lock=str(path))
            unlink_quietly(side)
            return
        except OSError:  # hard links unsupported (some 9p servers): a tiny race remains
            if os.path.lexists(path):
                unlink_quietly(side)
            else:
                os.rename(side, path)
            return
        unlink_quietly(side)
        log.info("claim.takeover_aborted", lock=str(path), reason="lock changed after it was judged stale")

    def sweep(self, lock_dir: Path, inbox_dir: str | os.PathLike[str], *, remove: bool = True) -> list[StaleLock]:
        """Find (and by default delete) abandoned locks whose video has left the inbox.

        A lock whose video is still in the inbox is left for ``try_claim`` to take over,
        so that the attempt counter carries on. Live owners' locks are never touched.
        """
        try:
            present = {lock_name_for(name) for name in os.listdir(inbox_dir)}
            entries = sorted(os.listdir(lock_dir))
        except OSError:
            return []  # inbox unmounted: every video would look gone
        found = []
        for name in entries:
            path = lock_dir / name
            if name.endswith(LOCK_SUFFIX) and name not in present:
                found += self._sweep_lock(path, remove)
            elif name.endswith(LOCK_SUFFIX + MUTEX_SUFFIX):
                found += self._sweep_lock(path, remove)
            elif _STALE_SIDE_FILE.search(name):
                found += self._sweep_side_file(path, remove)
        self._watch.keep_only(lock_dir / name for name in entries)
        return found

    def _sweep_lock(self, path: Path, remove: bool) -> list[StaleLock]:
        current = read_lock(path)
        if current.missing or current.refused:
            return []
        verdict = self.judge(path, current)
        if not verdict.stale:
            return []
        removed = remove and self.remove_verified(path, current)
        video = current.owner.video_name if current.owner else ""
        if removed:
            log.info("claim.swept", lock=str(path), video=video, reason=verdict.reason)
        return [StaleLock(path, video, verdict.reason, removed)]

    def _sweep_side_file(self, path: Path, remove: bool) -> list[StaleLock]:
        """Left by a taker that died between rename and delete; its name's timestamp is the
        taker's clock, so only a silence we measured ourselves counts."""
        try:
            info = os.lstat(path)
        except OSError:
            return []
        if self._watch.silent_for(path, (info.st_ino, info.st_size, info.st_mtime_ns)) <= self.stale_after_s:
            return []
        if remove:
            unlink_quietly(path)
            self._watch.forget(path)
        return [StaleLock(path, "", "left over from an interrupted takeover", remove)]


def _is_same_lock(moved: LockRead, judged: LockRead) -> bool:
    """The very record judged stale: same claim, same heartbeat (its owner did not revive)."""
    if moved.missing or moved.refused:
        return False
    if moved.owner is None or judged.owner is None:
        return moved.owner is None and judged.owner is None and moved.signature == judged.signature
    return moved.owner == judged.owner
