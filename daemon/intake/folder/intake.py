"""The folder intake: videos dropped into an inbox, claimed with lock files.

Finds settled inputs (``InboxWatcher``), claims them (``ClaimManager``) in sidecar priority
order and reads each input's sidecar; a bad sidecar comes back as a ``ClaimedInput`` with its
``refusal`` set, to be reported like any other bad input. Once an outcome is published it moves the input (and its sidecar) to
``done/`` or ``failed/`` and drops the claim.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError
from daemon.intake.base import ClaimedInput, SettledInputs
from daemon.intake.claim import Claim, ClaimIdentity, ClaimLost, ClaimManager, lock_dir_for
from daemon.intake.folder.inbox import InboxWatcher
from daemon.intake.folder.orphans import OrphanSidecars
from daemon.intake.folder.sidecar_cache import SidecarCache
from daemon.intake.sidecar import answer_as, job_id_takes_a_video_name
from daemon.log import get_logger, job_context
from daemon.paths import sidecar_path_for, unsupported_extension
from daemon.publishing.naming import job_id_for

log = get_logger(__name__)
SIDECAR_BUSY_RETRY_S = 2.0  # a sidecar Windows still holds open is read again this soon


class FolderIntake:
    kind = "folder"

    def __init__(self, cfg: PosedConfig, identity: ClaimIdentity, settled: SettledInputs) -> None:
        self.cfg = cfg
        self.inbox = Path(cfg.inbox.path)
        self.instance_id = identity.instance_id
        self.watcher = InboxWatcher(cfg.inbox)
        self.claims = ClaimManager(lock_dir_for(self.inbox), identity, cfg.claim.stale_after_s)
        self.settled = settled
        self.pending: deque[Path] = deque()  # settled inputs not yet claimed
        self.screen_at: dict[Path, float] = {}  # pending inputs to check for a refusal needing no worker, and when
        self.not_before: dict[Path, float] = {}  # inputs not to take again before a time
        self.held: set[Path] = set()  # claimed by us and not yet settled or released
        self.sidecars = SidecarCache([str(self.inbox.resolve())])
        self.orphans = OrphanSidecars(self.watcher.path, cfg.inbox.orphan_sidecar_s)
        self._next_lock_sweep = 0.0

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    # -- finding and claiming ----------------------------------------------------------------

    def poll(self, now: float) -> None:
        self.settled.retry_moves(now)
        for path in self.watcher.ready():
            if path not in self.pending and path not in self.held and not self.settled.already_settled(path):
                self.pending.append(path)
                self.screen_at[path] = now
        for path, until in list(self.not_before.items()):
            if now >= until:
                del self.not_before[path]
                self.watcher.forget(path)

    def queue_length(self) -> int:
        return len(self.pending)

    def degraded_reason(self) -> str | None:
        return None  # an unavailable inbox is waited for and logged by the watcher

    def take(self) -> ClaimedInput | None:
        while self.pending:
            path = self._next_by_priority()
            if path in self.not_before:
                continue
            job_id = job_id_for(path.name, self.instance_id)
            with job_context(job_id):  # the claim's own log lines carry the job id too
                claim = self.claims.try_claim(path.name)
                if claim is None:
                    self.watcher.forget(path)  # another daemon has it; look again if it stays
                    continue
                item = self._prepare(path, claim, job_id)
            if item is not None:
                self.held.add(path)
                return item
        return None

    def refused(self) -> list[ClaimedInput]:
        """Inputs refused without any decoding, answered at once even while a long video is
        processed: a symlink or other non-file named like an input (never followed), an
        unsupported extension, a bad sidecar that has stood still ``inbox.settle_s``."""
        return self._refused_non_files() + self._refused_at_sight(time.monotonic())

    def _refused_at_sight(self, now: float) -> list[ClaimedInput]:
        items = []
        for path, due in list(self.screen_at.items()):
            if now < due:
                continue
            verdict = self._screen(path) if path in self.pending else "keep"
            if verdict == "later":  # a bad sidecar perhaps still being written in place
                self.screen_at[path] = now + self.cfg.inbox.settle_s
                continue
            del self.screen_at[path]
            if verdict == "refuse" and (item := self._claim_refusal(path)) is not None:
                items.append(item)
        return items

    def _screen(self, path: Path) -> str:
        """"refuse", "later" (look again once the sidecar may have settled) or "keep"."""
        if unsupported_extension(path, self.cfg.inbox.extensions) is not None:
            return "refuse"
        try:
            self.sidecars.read(path)
        except JobError:
            return "refuse" if self.sidecars.unchanged_for(path) >= self.cfg.inbox.settle_s else "later"
        except OSError:
            return "keep"  # held open by Windows: take() retries it
        return "keep"

    def _claim_refusal(self, path: Path) -> ClaimedInput | None:
        self.pending.remove(path)
        job_id = job_id_for(path.name, self.instance_id)
        with job_context(job_id):
            claim = self.claims.try_claim(path.name)
            if claim is None:
                self.watcher.forget(path)  # another daemon has it
                return None
            item = self._prepare(path, claim, job_id)
        if item is None:
            return None
        item.refusal = item.refusal or unsupported_extension(path, self.cfg.inbox.extensions)
        if item.refusal is None:  # its sidecar was repaired meanwhile: an ordinary input again
            self.claims.release(claim)
            self.pending.append(path)
            return None
        self.held.add(path)
        return item

    def _refused_non_files(self) -> list[ClaimedInput]:
        items = []
        for path in self.watcher.rejected():
            if self.settled.already_settled(path):
                continue  # answered already, only not movable (a planted symlink named "failed"): one report
            claim = self.claims.try_claim(path.name)
            if claim is None:
                continue
            try:
                link_stat = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                self._drop(path, claim)
                continue
            error = JobError(ErrorCode.UNSUPPORTED, f"{path.name} is not a regular file (symlinks are never followed)", stage="probe")
            self.held.add(path)
            items.append(ClaimedInput(path=path, job_id=job_id_for(path.name, self.instance_id), wanted_stem=path.name,
                                      input_stat=link_stat, refusal=error, ticket=claim))
        return items

    def _next_by_priority(self) -> Path:
        """Lowest sidecar priority number first (none = 0, as in BullMQ); arrival order among equals."""
        best = min(range(len(self.pending)), key=lambda i: (self._priority(self.pending[i]), i))
        path = self.pending[best]
        del self.pending[best]
        return path

    def _priority(self, path: Path) -> int:
        try:
            sidecar = self.sidecars.read(path)
        except (JobError, OSError):
            return 0  # the problem is reported when the job is prepared
        return sidecar.options.priority if sidecar is not None else 0

    def _prepare(self, path: Path, claim: Claim, job_id: str) -> ClaimedInput | None:
        """Cheap checks before any worker: bad inputs get their refusal here."""
        try:
            stat = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self._drop(path, claim)  # gone before we started: nothing to account for
            return None
        if self.settled.finish_if_published(path, stat):  # its daemon died between publish and move
            self._drop(path, claim)
            return None
        item = ClaimedInput(path=path, job_id=job_id, wanted_stem=path.name, input_stat=stat, ticket=claim,
                            previous_attempts=claim.attempt - 1)
        try:
            self._apply_sidecar(item)
        except JobError as exc:
            if self.sidecars.unchanged_for(path) < self.cfg.inbox.settle_s:
                # Perhaps written in place (not renamed) and caught half-written: a bad
                # sidecar is final only once it has stood still as long as a video must.
                log.info("sidecar.not_settled", input=path.name, error=exc.message)
                return self._put_back(path, claim, self.cfg.inbox.settle_s)
            item.refusal = exc
            if (client := answer_as(exc)) is not None:  # its job_id is valid: answer under it
                item.client, item.wanted_stem = client, client["job_id"]
        except OSError as exc:  # the sidecar is held open by Windows: try again shortly
            log.warning("sidecar.unreadable", input=path.name, error=str(exc))
            return self._put_back(path, claim, SIDECAR_BUSY_RETRY_S)
        return item

    def _put_back(self, path: Path, claim: Claim, retry_after_s: float) -> None:
        self.claims.release(claim)
        self.not_before[path] = time.monotonic() + retry_after_s

    def _apply_sidecar(self, item: ClaimedInput) -> None:
        """Client job id, options and metadata from ``<video>.job.json``, if one was dropped."""
        sidecar = self.sidecars.read(item.path)
        if sidecar is None:
            return
        if sidecar.job_id:
            _refuse_a_video_name(sidecar.job_id, item.path, self.cfg.inbox.extensions)  # an invalid id: the video's name
            item.wanted_stem = sidecar.job_id
        item.client = sidecar.client_echo()
        if sidecar.input_path and not _same_file(sidecar.input_path, item.path):
            raise JobError(
                ErrorCode.BAD_SIDECAR,
                f"{sidecar_path_for(item.path).name}: input_path names {sidecar.input_path}, but the sidecar sits beside {item.path}",
                stage="sidecar",
                details={"field": "input_path"},
            )
        item.options = sidecar.job_options(item.options)

    # -- holding and letting go ---------------------------------------------------------------

    def keep_alive(self, held: list[ClaimedInput]) -> list[ClaimedInput]:
        lost = []
        for item in held:
            try:
                self.claims.heartbeat(item.ticket)
            except ClaimLost as exc:
                log.error("job.abandoned_claim_lost", input=item.path.name, error=str(exc))
                self.held.discard(item.path)
                lost.append(item)
        return lost

    def still_ours(self, item: ClaimedInput) -> bool:
        # A heartbeat only notices a takeover every heartbeat_interval_s: read the lock itself.
        return self.claims.still_ours(item.ticket)

    def progress(self, item: ClaimedInput, progress: dict[str, Any]) -> None:
        """Nothing: the folder's consumer reads progress from the status file."""

    def retry_later(self, item: ClaimedInput, error: dict[str, Any]) -> bool:
        return False  # the lifecycle's own retries are the folder's

    def settle(self, item: ClaimedInput, outcome: str, **facts: Any) -> Path | None:
        moved = self.settled.move_input(item.path, outcome)
        if os.path.lexists(sidecar_path_for(item.path)):
            self.settled.move_input(sidecar_path_for(item.path), outcome)
        self._drop(item.path, item.ticket)
        return moved

    def release(self, item: ClaimedInput, *, retry_after_s: float | None = None) -> None:
        self.claims.release(item.ticket)
        self.held.discard(item.path)
        if retry_after_s is not None:
            self.not_before[item.path] = time.monotonic() + retry_after_s

    def _drop(self, path: Path, claim: Claim) -> None:
        self.screen_at.pop(path, None)
        self.claims.release(claim)
        self.held.discard(path)
        self.watcher.forget(path)
        self.sidecars.forget(path)

    def sweep(self, now: float) -> None:
        """Remove locks whose owner died after its video left the inbox: no lock is left behind."""
        if now >= self._next_lock_sweep:
            self._next_lock_sweep = now + self.cfg.inbox.rescan_interval_s
            self.claims.sweep_stale(self.watcher.path)
            for sidecar in self.orphans.due():
                log.warning("sidecar.orphaned", sidecar=sidecar.name, alone_for_s=self.orphans.after_s, moved_to="failed/")
                self.settled.move_input(sidecar, "failed")


def _refuse_a_video_name(job_id: str, video: Path, extensions: list[str]) -> None:
    """A job id that looks like a video file name would take another upload's outcome name
    (``hijack.mp4`` with job id ``victim.mp4``): allowed only as the video's own name."""
    if job_id_takes_a_video_name(job_id, video.name, extensions):
        raise JobError(
            ErrorCode.BAD_SIDECAR,
            f"{sidecar_path_for(video).name}: job sidecar: job_id {job_id!r} looks like a video file name; "
            f"it may only be the video's own name ({video.name!r}), or another upload's outcome could carry it",
            stage="sidecar",
            details={"field": "job_id"},
        )


def _same_file(a: str | Path, b: Path) -> bool:
    """Same file, not same spelling: drive paths on /mnt/c are case-insensitive."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
