"""The daemon: inbox -> claim -> worker -> outbox, one main loop, nothing lost.

The loop (``tick_s``) drains worker events, picks up settled inputs, dispatches one job at a
time to the supervised worker, refreshes claim heartbeats, writes the status file and feeds
systemd's watchdog. Signal handlers only set flags. Every claimed input ends in exactly one
published result or error report before it leaves the inbox; if neither can be published the
input stays where it is and is tried again later.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daemon.intake.claim import Claim, ClaimIdentity, ClaimLost, ClaimManager, lock_dir_for
from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError, PublishError
from daemon.intake.inbox import InboxWatcher
from daemon.log import get_logger, job_context
from daemon.processing.media import check_file
from daemon.publishing.naming import ERROR_SUFFIX, RESULT_SUFFIX, job_id_for
from daemon.publishing.outcomes import OutcomeWriter, Receipt
from daemon.publishing.publish import TMP_DIR, new_tmp_path
from daemon.records import JobOptions
from daemon.intake.sidecar import JobSidecar, read_sidecar
from daemon.paths import sidecar_path_for
from daemon.clock import iso
from daemon.ops.status import StatusBoard
from daemon.processing.supervisor import WorkerEvent, WorkerState, WorkerSupervisor
from daemon.ops.systemd import notify, watchdog_interval_s

log = get_logger(__name__)
MAX_FAILED_TICKS = 50  # ~10 s of the same failure at the default tick


@dataclass
class Job:
    """A claimed input on its way to exactly one outcome."""

    path: Path
    claim: Claim
    job_id: str
    input_stat: os.stat_result
    input_info: dict[str, Any]
    options: JobOptions = JobOptions()
    client: dict[str, Any] | None = None
    wanted_stem: str = ""
    attempt: int = 0
    result_tmp: Path | None = None
    started_at: float = 0.0
    started_iso: str = ""
    frames_done: int = 0
    frames_total: int | None = None
    stage: str = "queued"
    video: dict[str, Any] = field(default_factory=dict)


def _same_file(a: str | Path, b: Path) -> bool:
    """Same file, not same spelling: drive paths on /mnt/c are case-insensitive."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class Daemon:
    def __init__(self, cfg: PosedConfig) -> None:
        self.cfg = cfg
        self.inbox = Path(cfg.inbox.path)
        self.outbox = Path(cfg.outbox.path)
        self.instance_id = uuid.uuid4().hex
        self.name = cfg.daemon.name or socket.gethostname()
        self.status = StatusBoard(self.outbox, self.name, self.instance_id)
        self.watcher = InboxWatcher(cfg.inbox)
        self.claims = ClaimManager(
            lock_dir_for(self.inbox), ClaimIdentity.current(self.instance_id, self.name), cfg.claim.stale_after_s
        )
        self.supervisor = WorkerSupervisor(cfg)
        self.outcomes = OutcomeWriter(cfg, self.outbox)
        self.pending: deque[Path] = deque()  # settled inputs not yet claimed
        self.retry: deque[Job] = deque()  # claimed jobs waiting for a (restarted) worker
        self.active: Job | None = None
        self.not_before: dict[Path, float] = {}  # inputs to retry later (publish failed)
        self.wake = threading.Event()
        self.stop_requests = 0
        self._stop_deadline: float | None = None
        self._cancel_sent_at: float | None = None
        self._next_status = 0.0
        self._next_heartbeat = 0.0
        self._next_watchdog = 0.0
        self._next_lock_sweep = 0.0
        self._watchdog_every = watchdog_interval_s()
        self._ready_notified = False
        self._failed_ticks = 0
        self._outbox_fault: str | None = None
        self._status_write_failing = False

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        self._prepare_dirs()
        previous = self._install_signal_handlers()
        log.info("daemon.start", name=self.name, instance=self.instance_id, inbox=str(self.inbox), outbox=str(self.outbox), backend=self.cfg.backend.name)
        self.watcher.start()
        try:
            while not self._finished():
                self._guarded_tick(time.monotonic())
                self.wake.wait(self.cfg.daemon.tick_s)
                self.wake.clear()
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("daemon.stopped", results=self.status.counters.results, errors=self.status.counters.errors)
        return 0

    def _guarded_tick(self, now: float) -> None:
        """A bug hit in one tick is logged and the loop goes on; the same bug every tick for
        ``MAX_FAILED_TICKS`` in a row ends the daemon with an error, for systemd to restart."""
        try:
            self.tick(now)
        except Exception:
            self._failed_ticks += 1
            log.exception("daemon.tick_failed", consecutive=self._failed_ticks)
            if self._failed_ticks >= MAX_FAILED_TICKS:
                raise
        else:
            self._failed_ticks = 0

    def tick(self, now: float) -> None:
        if not self.stop_requests:
            self.supervisor.ensure_started(now)
        for event in self.supervisor.poll(now):
            self._on_worker_event(event, now)
        self._collect_inputs(now)
        if not self.stop_requests:
            self._dispatch(now)
        else:
            self._drain_for_stop(now)
        self._refresh_claims(now)
        self._sweep_locks(now)
        self._update_status(now)
        self._feed_watchdog(now)

    def request_stop(self, signum: int = signal.SIGTERM, _frame: Any = None) -> None:
        """Signal handler: first = warm stop (finish within grace), second = cold stop."""
        self.stop_requests += 1
        self.wake.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self.request_stop)
        return previous

    def _finished(self) -> bool:
        return bool(self.stop_requests) and self.active is None

    def _prepare_dirs(self) -> None:
        os.umask(0o027)  # results and locks are not world-readable
        for directory in (self.outbox, self.outbox / TMP_DIR, Path(self.cfg.daemon.state_dir)):
            directory.mkdir(parents=True, exist_ok=True)
        self.outcomes.sweep_stale_tmp(max_age_s=2 * self.cfg.claim.stale_after_s)

    # -- inputs ----------------------------------------------------------------------------

    def _collect_inputs(self, now: float) -> None:
        self.outcomes.retry_moves(now)
        for path in self.watcher.ready():
            if path not in self.pending and not self._is_held(path) and not self.outcomes.already_settled(path):
                self.pending.append(path)
        for path, until in list(self.not_before.items()):
            if now >= until:
                del self.not_before[path]
                self.watcher.forget(path)
        for path in self.watcher.rejected():
            self._refuse_unclaimable(path)

    def _is_held(self, path: Path) -> bool:
        return (self.active is not None and self.active.path == path) or any(job.path == path for job in self.retry)

    def _dispatch(self, now: float) -> None:
        if self.active is not None or self.supervisor.state != WorkerState.READY:
            return
        job = self.retry.popleft() if self.retry else self._claim_next()
        if job is None:
            return
        self._start(job, now)

    def _claim_next(self) -> Job | None:
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
                job = self._prepare_job(path, claim, job_id)
            if job is not None:
                return job
        return None

    def _next_by_priority(self) -> Path:
        """Highest sidecar priority first; arrival order among equals."""
        best = max(range(len(self.pending)), key=lambda i: (self._priority(self.pending[i]), -i))
        path = self.pending[best]
        del self.pending[best]
        return path

    def _priority(self, path: Path) -> int:
        try:
            return self._read_sidecar(path).options.priority if sidecar_path_for(path).exists() else 0
        except (JobError, OSError):
            return 0  # the problem is reported when the job is prepared

    def _read_sidecar(self, path: Path) -> JobSidecar:
        sidecar = sidecar_path_for(path)
        if sidecar.is_symlink():
            raise JobError(ErrorCode.BAD_SIDECAR, f"{sidecar.name} is a symlink; sidecars are never followed", stage="sidecar")
        return read_sidecar(sidecar, [str(self.inbox.resolve())])

    def _prepare_job(self, path: Path, claim: Claim, job_id: str) -> Job | None:
        """Cheap checks in the supervisor: bad inputs get their error without a worker."""
        try:
            stat = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self.claims.release(claim)  # gone before we started: nothing to account for
            self.watcher.forget(path)
            return None
        if self.outcomes.finish_if_published(path, stat):  # its daemon died between publish and move
            self.claims.release(claim)
            self.watcher.forget(path)
            return None
        job = Job(path=path, claim=claim, job_id=job_id, input_stat=stat,
                  input_info=self.outcomes.input_info(path, stat), wanted_stem=path.name)
        try:
            self._apply_sidecar(job)
            check_file(path, self.cfg.limits, self.cfg.inbox.extensions)
        except JobError as exc:
            self._finish_with_error(job, exc.to_dict())
            return None
        except OSError as exc:  # the sidecar is held open by Windows: try again shortly
            log.warning("sidecar.unreadable", input=path.name, error=str(exc))
            self.claims.release(claim)
            self.not_before[path] = time.monotonic() + 2.0
            return None
        return job

    def _apply_sidecar(self, job: Job) -> None:
        """Client job id, options and metadata from ``<video>.job.json``, if one was dropped."""
        if not os.path.lexists(sidecar_path_for(job.path)):
            return
        sidecar = self._read_sidecar(job.path)
        job.client = sidecar.client_echo()
        if sidecar.job_id:
            job.wanted_stem = sidecar.job_id
        if sidecar.input_path and not _same_file(sidecar.input_path, job.path):
            raise JobError(
                ErrorCode.BAD_SIDECAR,
                f"{sidecar_path_for(job.path).name}: input_path names {sidecar.input_path}, but the sidecar sits beside {job.path}",
                stage="sidecar",
            )
        job.options = sidecar.job_options(job.options)

    def _refuse_unclaimable(self, path: Path) -> None:
        """A symlink or other non-file named like an input: report it, never follow it."""
        claim = self.claims.try_claim(path.name)
        if claim is None:
            return
        job = Job(path=path, claim=claim, job_id=job_id_for(path.name, self.instance_id), input_stat=os.stat(path, follow_symlinks=False),
                  input_info=self.outcomes.input_info(path, None), wanted_stem=path.name)
        error = JobError(ErrorCode.UNSUPPORTED, f"{path.name} is not a regular file (symlinks are never followed)", stage="probe")
        self._finish_with_error(job, error.to_dict())

    # -- running a job ---------------------------------------------------------------------

    def _start(self, job: Job, now: float) -> None:
        job.attempt += 1
        job.result_tmp = new_tmp_path(self.outbox, "result")
        job.started_at, job.started_iso, job.stage = now, iso(), "starting"
        job.frames_done = 0
        self.active = job
        with job_context(job.job_id):
            log.info("job.start", input=job.path.name, attempt=job.attempt)
        self.supervisor.assign(
            {
                "job_id": job.job_id,
                "input_path": str(job.path),
                "result_tmp": str(job.result_tmp),
                "input_info": job.input_info,
                "options": job.options.to_json(),
                "client": job.client,
            },
            now,
        )

    def _on_worker_event(self, event: WorkerEvent, now: float) -> None:
        kind, data = event.kind, event.data
        job = self.active
        if kind == "loading":
            self.status.loading = {"what": data.get("what"), "since": iso()}
        elif kind == "ready":
            self._on_worker_ready()
        elif kind == "load_failed":
            self.status.record_error("E_BACKEND_LOAD", data.get("message", ""))
        elif kind == "died":
            self._on_worker_died(data, now)
        elif job is None or data.get("job_id") != job.job_id:
            return  # a late message about a job we already settled
        elif kind == "probed":
            job.video = data.get("video", {})
            job.frames_total = job.video.get("frame_count_estimate")
        elif kind == "progress":
            job.frames_done = data.get("frames_done", 0)
            job.frames_total = data.get("frames_total", job.frames_total)
            job.stage = data.get("stage", job.stage)
        elif kind == "done":
            self._publish_result(job, data.get("summary", {}))
        elif kind == "failed":
            self._on_job_failed(job, data["error"])
        elif kind == "cancelled":
            self._abandon(job, "cancelled for shutdown")

    def _on_job_failed(self, job: Job, error: dict[str, Any]) -> None:
        """Out of memory gets one more attempt in the backend's low-memory mode."""
        if (outbox_fault := self.outcomes.outbox_fault(error)) is not None:
            self.active = None  # the result could not be written: not the video's fault
            self._defer(job, outbox_fault)
            return
        if error.get("code") == ErrorCode.OUT_OF_MEMORY.value and not job.options.low_memory and job.attempt < self.cfg.worker.max_attempts:
            self.active = None
            self._discard_tmp(job)
            job.options = replace(job.options, low_memory=True)
            self.status.counters.retries += 1
            with job_context(job.job_id):
                log.warning("job.retry_low_memory", attempt=job.attempt, error=error.get("message"))
            self.retry.append(job)
            return
        self._finish_with_error(job, error)

    def _on_worker_ready(self) -> None:
        info = self.supervisor.info or {}
        self.status.backend = {"name": info.get("name"), "device": info.get("device"), "model_version": info.get("model_version")}
        self.status.loading = None
        if not self._ready_notified:
            notify("READY=1\nSTATUS=models loaded, watching " + str(self.inbox))
            self._ready_notified = True

    def _on_worker_died(self, data: dict[str, Any], now: float) -> None:
        self.status.counters.worker_restarts += 1
        job = self.active
        if data.get("during_load") or job is None:
            self.status.record_error("E_BACKEND_LOAD", self.supervisor.last_load_error or data["description"])
            return
        self.active = None
        self._discard_tmp(job)
        reason = data.get("kill_reason") or ""
        facts = {k: data.get(k) for k in ("signal", "exit_code", "stage", "last_frame", "stderr_tail", "pid")}
        if reason.startswith("stalled"):
            self._finish_with_error(job, JobError(ErrorCode.STALLED, f"worker {reason}", stage=data.get("stage", ""), frame_index=data.get("last_frame"), details=facts).to_dict())
        elif reason.startswith("time_limit"):
            self._finish_with_error(job, JobError(ErrorCode.TIME_LIMIT, reason, stage=data.get("stage", ""), frame_index=data.get("last_frame"), details=facts).to_dict())
        elif self.stop_requests:
            self._abandon(job, "worker stopped during shutdown")
        else:
            self.status.counters.worker_crashes += 1
            self._retry_or_fail_crash(job, data, facts)

    def _retry_or_fail_crash(self, job: Job, data: dict[str, Any], facts: dict[str, Any]) -> None:
        with job_context(job.job_id):
            if job.attempt < self.cfg.worker.max_attempts:
                self.status.counters.retries += 1
                log.warning("job.retry", attempt=job.attempt, cause=data["description"], last_frame=data.get("last_frame"))
                self.retry.append(job)
            else:
                message = (
                    f"the worker {data['description']} during {data.get('stage')} at frame {data.get('last_frame')} "
                    f"on each of {job.attempt} attempt(s)"
                )
                self._finish_with_error(job, JobError(ErrorCode.WORKER_CRASH, message, stage=data.get("stage", ""), frame_index=data.get("last_frame"), details=facts).to_dict())

    # -- outcomes --------------------------------------------------------------------------

    def _publish_result(self, job: Job, summary: dict[str, Any]) -> None:
        self.active = None
        changed = self.outcomes.input_changed(job.path, job.input_stat)
        if changed is not None:
            self._discard_tmp(job)
            self._finish_with_error(job, changed.to_dict())
            return
        assert job.result_tmp is not None
        try:
            published = self.outcomes.publish(job.result_tmp, job.wanted_stem, RESULT_SUFFIX, self._receipt(job, "done"))
        except PublishError as exc:
            self._defer(job, str(exc))
            return
        self.status.counters.results += 1
        self._settle(job, "done", published, frames=summary.get("frames"), fps=summary.get("frames_per_second"))

    def _finish_with_error(self, job: Job, error: dict[str, Any]) -> None:
        """Publish ``<stem>.error.json``, then move the input to failed/ and release the claim."""
        if self.active is job:
            self.active = None
        self._discard_tmp(job)
        document = self.outcomes.error_document(job.job_id, job.input_info, error, job.attempt, job.client)
        try:
            published = self.outcomes.publish_json(document, job.wanted_stem, ERROR_SUFFIX, self._receipt(job, "failed"))
        except PublishError as exc:
            self._defer(job, str(exc))
            return
        self.status.counters.errors += 1
        self.status.record_error(error["code"], error["message"])
        self._settle(job, "failed", published, code=error["code"], error=error["message"])

    def _receipt(self, job: Job, outcome: str) -> Receipt:
        return Receipt(job.path, job.input_stat, job.job_id, outcome)

    def _settle(self, job: Job, outcome: str, published: Path, **facts: Any) -> None:
        with job_context(job.job_id):
            moved = self.outcomes.move_input(job.path, outcome)
            if os.path.lexists(sidecar_path_for(job.path)):
                self.outcomes.move_input(sidecar_path_for(job.path), outcome)
            self.claims.release(job.claim)
            self.watcher.forget(job.path)
            self._outbox_fault = None  # a published outcome proves the outbox works again
            log.info("job.outcome", outcome=outcome, published=published.name, input_now=str(moved) if moved else None, attempts=job.attempt, **facts)

    def _defer(self, job: Job, reason: str) -> None:
        """The outbox refused the outcome: keep the input, release it, try again later."""
        with job_context(job.job_id):
            log.error("job.deferred", reason=reason, retry_in_s=self.cfg.outbox.publish_retry_s)
        self._discard_tmp(job)
        self.claims.release(job.claim)
        self._outbox_fault = f"outbox not writable: {reason}"
        self.not_before[job.path] = time.monotonic() + self.cfg.outbox.publish_retry_s

    def _abandon(self, job: Job, why: str) -> None:
        """Shutdown: leave the input in the inbox for the next start, unclaimed."""
        if self.active is job:
            self.active = None
        self._discard_tmp(job)
        self.claims.release(job.claim)
        with job_context(job.job_id):
            log.warning("job.released", reason=why, input=job.path.name)

    def _discard_tmp(self, job: Job) -> None:
        if job.result_tmp is not None:
            try:
                job.result_tmp.unlink(missing_ok=True)
            except OSError as exc:  # a read-only outbox (issue 5); the stale-tmp sweep removes it later
                log.warning("outbox.tmp_not_removed", path=str(job.result_tmp), error=str(exc))
            job.result_tmp = None

    # -- periodic duties -------------------------------------------------------------------

    def _refresh_claims(self, now: float) -> None:
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.cfg.claim.heartbeat_interval_s
        jobs = ([self.active] if self.active else []) + list(self.retry)
        for job in jobs:
            try:
                self.claims.heartbeat(job.claim)
            except ClaimLost as exc:
                log.error("job.abandoned_claim_lost", input=job.path.name, error=str(exc))
                if job is self.active:
                    self.supervisor.kill("claim lost to another daemon")
                    self.active = None
                else:
                    self.retry.remove(job)
                self._discard_tmp(job)

    def _sweep_locks(self, now: float) -> None:
        """Remove locks whose owner died after its video left the inbox: no lock is left behind."""
        if now >= self._next_lock_sweep:
            self._next_lock_sweep = now + self.cfg.inbox.rescan_interval_s
            self.claims.sweep_stale(self.watcher.path)

    def _drain_for_stop(self, now: float) -> None:
        """Warm stop: let the current video finish within the grace period, then cancel it."""
        for job in list(self.retry):
            self.retry.remove(job)
            self._abandon(job, "shutdown before retry")
        if self.active is None:
            return
        if self._stop_deadline is None:
            self._stop_deadline = now + self.cfg.worker.shutdown_grace_s
            log.info("daemon.stopping", grace_s=self.cfg.worker.shutdown_grace_s, input=self.active.path.name)
        cold = self.stop_requests > 1
        if (cold or now >= self._stop_deadline) and self._cancel_sent_at is None:
            log.warning("daemon.cancel_current", input=self.active.path.name, cold=cold)
            self.supervisor.cancel_job()
            self._cancel_sent_at = now
        elif self._cancel_sent_at is not None and now - self._cancel_sent_at > self.cfg.worker.kill_after_s:
            self.supervisor.kill("shutdown: worker did not stop after cancel")

    def _update_status(self, now: float) -> None:
        if now < self._next_status:
            return
        self._next_status = now + self.cfg.daemon.status_interval_s
        self.write_status(now)

    def write_status(self, now: float) -> None:
        board = self.status
        board.queue_length = len(self.pending) + len(self.retry)
        board.counters.worker_restarts = self.supervisor.restarts
        board.degraded_reason = self._degraded_reason()
        board.state = self._state_name()
        board.current_job = self._job_progress(self.active, now) if self.active else None
        worker = self.supervisor.worker
        board.worker = {"pid": worker.pid if worker else None, "state": self.supervisor.state.value, "restarts": self.supervisor.restarts}
        try:
            board.write()
        except (OSError, PublishError) as exc:
            if not self._status_write_failing:  # once per outage, not every interval
                log.error("status.write_failed", error=str(exc), path=str(board.path))
            self._status_write_failing = True
        else:
            if self._status_write_failing:
                log.info("status.write_recovered", path=str(board.path))
            self._status_write_failing = False

    def _degraded_reason(self) -> str | None:
        """Why the daemon cannot do its work right now; a failing model load comes first."""
        loading = self.supervisor.state in (WorkerState.STARTING, WorkerState.LOADING, WorkerState.BACKOFF)
        if loading and self.supervisor.last_load_error:
            return f"model load failing: {self.supervisor.last_load_error}; retrying in {self.supervisor.next_start_in:.0f} s"
        return self._outbox_fault

    def _state_name(self) -> str:
        if self.stop_requests:
            return "stopping"
        if self.status.degraded_reason:
            return "degraded"
        return {
            WorkerState.STOPPED: "starting",
            WorkerState.STARTING: "loading-models",
            WorkerState.LOADING: "loading-models",
            WorkerState.BACKOFF: "loading-models",
            WorkerState.READY: "ready",
            WorkerState.BUSY: "busy",
        }[self.supervisor.state]

    def _job_progress(self, job: Job, now: float) -> dict[str, Any]:
        elapsed = max(now - job.started_at, 1e-6)
        fps = job.frames_done / elapsed if job.frames_done else None
        total = job.frames_total
        percent = round(100.0 * min(job.frames_done / total, 1.0), 1) if total else None
        eta = round((total - job.frames_done) / fps, 1) if fps and total and total >= job.frames_done else None
        return {
            "job_id": job.job_id,
            "input_name": job.path.name,
            "frames_done": job.frames_done,
            "frames_total": total,
            "percent": percent,
            "frames_per_second": round(fps, 2) if fps else None,
            "eta_seconds": eta,
            "stage": job.stage,
            "attempt": job.attempt,
            "started_at": job.started_iso,
        }

    def _feed_watchdog(self, now: float) -> None:
        if self._watchdog_every is not None and now >= self._next_watchdog:
            notify("WATCHDOG=1")
            self._next_watchdog = now + self._watchdog_every

    def _shutdown(self) -> None:
        for job in list(self.retry):
            self._abandon(job, "shutdown")
        self.retry.clear()
        if self.active is not None:
            self.supervisor.kill("daemon exiting")
            self._abandon(self.active, "daemon exiting")
        self.supervisor.stop(self.cfg.worker.kill_after_s)
        self.watcher.stop()
        self.status.state = "stopped"
        self.status.current_job = None
        try:
            self.status.write()
        except (OSError, PublishError):
            pass
        notify("STOPPING=1")
