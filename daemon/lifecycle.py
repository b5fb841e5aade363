"""One claimed input's life: prepare -> start in the worker -> settle with exactly one outcome.

The daemon loop owns time and signals; this object owns the job in flight and the jobs
waiting for a (restarted) worker, turns worker events into outcomes, and tells the intake
when an input is answered (settle) or given back (release). Every path through here ends in
a published result, a published error report, or the input released unanswered for a later
try: nothing is dropped.
"""

from __future__ import annotations

import stat
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daemon.clock import iso
from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError
from daemon.intake.base import ClaimedInput, Intake
from daemon.log import get_logger, job_context
from daemon.ops.status import StatusBoard
from daemon.processing.media import check_file
from daemon.processing.supervisor import WorkerEvent, WorkerSupervisor
from daemon.publishing.naming import ERROR_SUFFIX
from daemon.publishing.outcomes import OutcomeWriter, destination
from daemon.publishing.receipts import Receipt
from daemon.publishing.publish import companions_of, new_tmp_path, remove_tmp
from daemon.publishing.scheduled import ScheduledPublishes

log = get_logger(__name__)
# Failures of the run rather than of the input: an intake with its own retries (a queue's
# attempts) takes these back instead of an error report, except on the last attempt.
RETRYABLE_CODES = frozenset({ErrorCode.WORKER_CRASH.value, ErrorCode.STALLED.value, ErrorCode.OUT_OF_MEMORY.value})


@dataclass
class Job:
    """A claimed input and what is known about its run so far."""

    item: ClaimedInput
    attempt: int = 0
    result_tmp: Path | None = None
    started_at: float = 0.0
    started_iso: str = ""
    frames_done: int = 0
    frames_total: int | None = None
    cut_entered_at: float | None = None  # when the cut's first frame entered the model: the rate's start
    stage: str = "queued"
    video: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return self.item.job_id

    @property
    def client_job_id(self) -> str | None:
        """The producer's own id (sidecar or queue job data ``job_id``), if it gave one."""
        return (self.item.client or {}).get("job_id")

    @property
    def path(self) -> Path:
        return self.item.path


class JobLifecycle:
    def __init__(self, cfg: PosedConfig, intake: Intake, supervisor: WorkerSupervisor, outcomes: OutcomeWriter, status: StatusBoard) -> None:
        self.cfg = cfg
        self.outbox = Path(cfg.outbox.path)
        self.intake = intake
        self.supervisor = supervisor
        self.outcomes = outcomes
        self.status = status
        self.active: Job | None = None
        self.retry: deque[Job] = deque()  # claimed jobs waiting for a (restarted) worker
        self.publishes = ScheduledPublishes(cfg.outbox.publish_retry_s)  # outcomes Windows blocked
        self.outbox_fault: str | None = None
        self.stopping = False

    def held(self) -> list[Job]:
        return ([self.active] if self.active else []) + list(self.retry) + self.publishes.owners()

    # -- prepare and start ---------------------------------------------------------------------

    def answer_refusals(self) -> None:
        """Inputs the intake refuses without decoding get their error report now, whatever the
        worker is doing: they never wait behind a long video."""
        for item in self.intake.refused():
            self._refuse(item)

    def next_job(self) -> Job | None:
        """A job ready for the worker: a retry first, else the intake's next input. Inputs that
        are bad before any worker runs get their error report here."""
        self.answer_refusals()
        if self.retry:
            return self.retry.popleft()
        while (item := self.intake.take()) is not None:
            item.input_info = self.outcomes.input_info(item.path, item.input_stat)
            check_before_worker(item, self.cfg)
            if item.refusal is None:
                return Job(item, attempt=item.previous_attempts)  # counting on across a takeover
            self._refuse(item)
        return None

    def _refuse(self, item: ClaimedInput) -> None:
        if not item.input_info:
            regular = item.input_stat is not None and stat.S_ISREG(item.input_stat.st_mode)
            item.input_info = self.outcomes.input_info(item.path, item.input_stat if regular else None)
        assert item.refusal is not None
        self.finish_with_error(Job(item), item.refusal.to_dict())

    def start(self, job: Job, now: float) -> None:
        job.attempt += 1
        job.result_tmp = new_tmp_path(self.outbox, "result", self.outcomes.tmp_owner)
        job.started_at, job.started_iso, job.stage = now, iso(), "starting"
        job.frames_done, job.cut_entered_at = 0, None
        self.active = job
        with job_context(job.job_id, job.client_job_id):
            log.info("job.start", input=job.path.name, attempt=job.attempt)
        item = job.item
        self.supervisor.assign(
            {
                "job_id": job.job_id,
                "input_path": str(job.path),
                "result_tmp": str(job.result_tmp),
                "input_info": item.input_info | _destination(self.outcomes, item, "done"),
                "options": item.options.to_json(),
                "client": item.client,
                "exact_path": item.exact_path,
            },
            now,
        )

    # -- worker events about the job -----------------------------------------------------------

    def on_job_event(self, event: WorkerEvent) -> None:
        kind, data, job = event.kind, event.data, self.active
        if job is None or data.get("job_id") != job.job_id:
            return  # a late message about a job we already settled
        if kind in ("probed", "progress"):
            job.video = data.get("video", job.video)
            job.frames_total = data.get("frames_total", job.frames_total) or job.video.get("frame_count_estimate")
            job.frames_done, job.stage = data.get("frames_done", job.frames_done), data.get("stage", job.stage)
            now = time.monotonic()
            if job.cut_entered_at is None and job.stage == "inference":
                job.cut_entered_at = now  # decoding up to start_frame is over: frames/s counts from here
            self.intake.progress(job.item, job_progress(job, now))
        elif kind == "done":
            self._publish_result(job, data.get("summary", {}))
        elif kind == "failed":
            self._on_job_failed(job, data["error"])
        elif kind == "cancelled":
            self.abandon(job, "cancelled for shutdown")

    def _on_job_failed(self, job: Job, error: dict[str, Any]) -> None:
        """Out of memory gets one more attempt in the backend's low-memory mode."""
        if (outbox_fault := self.outcomes.outbox_fault(error)) is not None:
            self.active = None  # the result could not be written: not the video's fault
            self._defer(job, outbox_fault)
            return
        options = job.item.options
        if error.get("code") == ErrorCode.OUT_OF_MEMORY.value and not options.low_memory and job.attempt < self.cfg.worker.max_attempts:
            self.active = None
            discard_tmp(job)
            job.item.options = replace(options, low_memory=True)
            self.status.counters.retries += 1
            with job_context(job.job_id, job.client_job_id):
                log.warning("job.retry_low_memory", attempt=job.attempt, error=error.get("message"))
            self.retry.append(job)
            return
        self.finish_with_error(job, error)

    def on_worker_died(self, data: dict[str, Any]) -> None:
        job = self.active
        if job is None:
            return
        self.active = None
        discard_tmp(job)
        reason = data.get("kill_reason") or ""
        facts = {k: data.get(k) for k in ("signal", "exit_code", "stage", "last_frame", "stderr_tail", "pid")}
        where = {"stage": data.get("stage", ""), "frame_index": data.get("last_frame"), "details": facts}
        if reason.startswith("stalled"):
            self.finish_with_error(job, JobError(ErrorCode.STALLED, f"worker {reason}", **where).to_dict())
        elif reason.startswith("time_limit"):
            self.finish_with_error(job, JobError(ErrorCode.TIME_LIMIT, reason, **where).to_dict())
        elif self.stopping:
            self.abandon(job, "worker stopped during shutdown")
        else:
            self.status.counters.worker_crashes += 1
            self._retry_or_fail_crash(job, data, where)

    def _retry_or_fail_crash(self, job: Job, data: dict[str, Any], where: dict[str, Any]) -> None:
        crash = JobError(ErrorCode.WORKER_CRASH, f"the worker {data['description']} during {data.get('stage')} at frame {data.get('last_frame')}", **where)
        if self._retried_by_intake(job, crash.to_dict()):
            return
        with job_context(job.job_id, job.client_job_id):
            if job.attempt < self.cfg.worker.max_attempts:
                self.status.counters.retries += 1
                log.warning("job.retry", attempt=job.attempt, cause=data["description"], last_frame=data.get("last_frame"))
                self.retry.append(job)
                return
        message = (
            f"the worker {data['description']} during {data.get('stage')} at frame {data.get('last_frame')} "
            f"on each of {job.attempt} attempt(s)"
        )
        self.finish_with_error(job, JobError(ErrorCode.WORKER_CRASH, message, **where).to_dict())

    # -- outcomes ------------------------------------------------------------------------------

    # -- outcomes ------------------------------------------------------------------------------

    def _publish_result(self, job: Job, summary: dict[str, Any]) -> None:
        self.active = None
        item = job.item
        try:
            changed = self.outcomes.input_changed(item.path, item.input_stat) if item.input_stat is not None else None
        except OSError as exc:  # the inbox turned unreadable (chmod 000, unmounted): run it again later
            self._defer(job, f"cannot check {item.path.name}: {exc}", outbox=False)
            return
        if changed is not None:
            discard_tmp(job)
            self.finish_with_error(job, changed.to_dict())
            return
        if claim_lost_before_publish(self.intake, job):
            return
        tmp, receipt = job.result_tmp, receipt_for(job, "done")
        assert tmp is not None

        def published(final: Path) -> None:
            self.status.counters.results += 1
            self._settle(job, "done", final, summary, frames=summary.get("frames"), fps=summary.get("frames_per_second"))

        self.publishes.run(job, f"result of {item.path.name}", lambda: self.outcomes.publish_result(tmp, item.wanted_stem, receipt),
                           published, lambda exc: self._defer(job, str(exc)))  # fmt: skip

    def finish_with_error(self, job: Job, error: dict[str, Any]) -> None:
        """Publish ``<stem>.error.json``, then settle the input as failed."""
        if self.active is job:
            self.active = None
        discard_tmp(job)
        item = job.item
        if error.get("code") in RETRYABLE_CODES and self._retried_by_intake(job, error):
            return
        if claim_lost_before_publish(self.intake, job):
            return
        input_info = item.input_info | _destination(self.outcomes, item, "failed")
        document = self.outcomes.error_document(job.job_id, input_info, error, job.attempt, item.client)
        receipt = receipt_for(job, "failed")

        def published(final: Path) -> None:
            self.status.counters.errors += 1
            self.status.record_error(error["code"], error["message"])
            self._settle(job, "failed", final, error, code=error["code"], error=error["message"])

        self.publishes.run(job, f"error report for {item.path.name}", lambda: self.outcomes.publish_json(document, item.wanted_stem, ERROR_SUFFIX, receipt),
                           published, lambda exc: self._defer(job, str(exc)))  # fmt: skip

    def _retried_by_intake(self, job: Job, error: dict[str, Any]) -> bool:
        if not self.intake.retry_later(job.item, error):
            return False
        self.status.counters.retries += 1
        with job_context(job.job_id, job.client_job_id):
            log.warning("job.retry_by_intake", code=error.get("code"), error=error.get("message"))
        return True

    def _settle(self, job: Job, outcome: str, published: Path, details: dict[str, Any], **facts: Any) -> None:
        with job_context(job.job_id, job.client_job_id):
            detail = {"summary": details} if outcome == "done" else {"error": details}
            moved = self.intake.settle(job.item, outcome, published=published, **detail)
            self.outbox_fault = None  # a published outcome proves the outbox works again
            log.info("job.outcome", outcome=outcome, published=published.name, input_now=str(moved) if moved else None, attempts=job.attempt, **facts)

    def _defer(self, job: Job, reason: str, *, outbox: bool = True) -> None:
        """The outbox refused the outcome (or the inbox cannot be read): keep the input,
        release it, try again later."""
        with job_context(job.job_id, job.client_job_id):
            log.error("job.deferred", reason=reason, retry_in_s=self.cfg.outbox.publish_retry_s)
        discard_tmp(job)
        self.intake.release(job.item, retry_after_s=self.cfg.outbox.publish_retry_s)
        if outbox:
            self.outbox_fault = f"outbox not writable: {reason}"

    def abandon(self, job: Job, why: str) -> None:
        """Shutdown: leave the input where it is for the next start, unclaimed."""
        if self.active is job:
            self.active = None
        discard_tmp(job)
        self.intake.release(job.item)
        with job_context(job.job_id, job.client_job_id):
            log.warning("job.released", reason=why, input=job.path.name)

    # -- periodic duties -----------------------------------------------------------------------

    def keep_claims(self) -> None:
        for job in [j for j in self.held() if j.item in self.intake.keep_alive([j.item])]:
            if job is self.active:  # the queue intake knows what happened; a lock file is taken by another daemon
                why = getattr(self.intake, "lost_reason", lambda item: None)(job.item) or "taken over by another daemon"
                self.supervisor.kill(f"claim lost: {why}")
                self.active = None
            elif job in self.retry:
                self.retry.remove(job)
            self.publishes.cancel(job)  # a publish Windows blocked must not go out now
            discard_tmp(job)

    def release_waiting(self, why: str) -> None:
        while self.retry:
            self.abandon(self.retry.popleft(), why)
        for job in self.publishes.owners():
            self.publishes.cancel(job)
            self.abandon(job, why)

    def progress(self, now: float) -> dict[str, Any] | None:
        return None if self.active is None else job_progress(self.active, now)


def check_before_worker(item: ClaimedInput, cfg: PosedConfig) -> None:
    """Sets ``item.refusal`` for a file that is bad before any worker runs (header, limits)."""
    if item.refusal is None:
        try:
            check_file(item.path, cfg.limits, cfg.inbox.extensions, exact=item.exact_path)
        except JobError as exc:
            item.refusal = exc


def claim_lost_before_publish(intake: Intake, job: Job) -> bool:
    """The fence: if the intake no longer holds the input for us (another daemon took the
    lock over, the queue's lock ran out), that daemon runs it too, so publishing as well
    would give it two outcomes: discard our work instead."""
    if intake.still_ours(job.item):
        return False
    with job_context(job.job_id, job.client_job_id):
        log.error("job.discarded_claim_lost", input=job.path.name, attempt=job.attempt)
    discard_tmp(job)
    intake.release(job.item)  # forgets the input here; a lock that is not ours stays
    return True


def receipt_for(job: Job, outcome: str) -> Receipt | None:
    """What lets a restarted daemon see that this input's outcome went out (folder inputs)."""
    input_stat = job.item.input_stat
    return None if input_stat is None or not job.item.moves_input else Receipt(job.path, input_stat, job.job_id, outcome)


def discard_tmp(job: Job) -> None:
    """Remove an unpublished result: its manifest draft and every companion (frames, exports)."""
    if job.result_tmp is None:
        return
    for path in [job.result_tmp, *companions_of(job.result_tmp)]:
        try:
            remove_tmp(path)
        except OSError as exc:  # a read-only outbox; the stale-tmp sweep removes it later
            log.warning("outbox.tmp_not_removed", path=str(path), error=str(exc))
    job.result_tmp = None

def job_progress(job: Job, now: float) -> dict[str, Any]:
    """The running job as the status file and the intake's progress events show it."""
    elapsed = max(now - (job.started_at if job.cut_entered_at is None else job.cut_entered_at), 1e-6)
    done, total = frames_to_process(job)
    fps = done / elapsed if done else None
    percent = round(100.0 * min(done / total, 1.0), 1) if total else None
    eta = round((total - done) / fps, 1) if fps and total and total >= done else None
    return {
        "job_id": job.job_id,
        "client_job_id": job.client_job_id,
        "input_name": job.path.name,
        "frames_done": done,
        "frames_total": total,
        "percent": percent,
        "frames_per_second": round(fps, 2) if fps else None,
        "eta_seconds": eta,
        "stage": job.stage,
        "attempt": job.attempt,
        "started_at": job.started_iso,
    }


def frames_to_process(job: Job) -> tuple[int, int | None]:
    """(frames done, frames to do) of the job's cut ``[start_frame, end_frame)``: a 900-frame cut
    of an 18,000-frame video is 100 % at its 900th frame. The worker reports the index of the
    frame entering the model, which counts from the video's first frame."""
    options = job.item.options
    start = options.start_frame or 0
    end = job.frames_total
    if options.end_frame is not None:
        end = options.end_frame if end is None else min(end, options.end_frame)
    total = None if end is None else max(end - start, 0)
    done = max(job.frames_done - start, 0)
    return (done if total is None else min(done, total)), total


def _destination(outcomes: OutcomeWriter, item: ClaimedInput, outcome: str) -> dict[str, Any]:
    """input.moved_to, for an intake that moves its inputs on (a queue job's file stays put)."""
    return destination(outcomes.answered.dirs[outcome], item.path) if item.moves_input else {}


__all__ = ["Job", "JobLifecycle", "discard_tmp", "job_progress"]
