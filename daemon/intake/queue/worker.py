"""The BullMQ intake: posed as a worker of a BullMQ queue on Redis (issue 15).

BullMQ's Python package (the ``bullmq`` wheel, by BullMQ's maintainers, running the same Lua
scripts as the npm package) is asyncio-only, and the daemon's main loop is synchronous. So
the adapter owns one asyncio event loop on a dedicated thread, and the main loop talks to it
through a small synchronous API. It uses BullMQ's *manual processing* mode (a ``Worker``
without a processor, ``getNextJob(token)``, then ``moveToCompleted`` / ``moveToFailed`` with
the same token) because posed decides when it is free for the next job and when an outcome
may be published; BullMQ still provides the locks, lock renewal (its ``LockManager``), the
stalled-job checker, retries with backoff, priorities and progress events.

Fencing. Every state change is a Lua script that checks the job's lock token, so a daemon
that lost its lock (it was stopped in a debugger, Redis lost the key, another daemon took the
job over) is told so (``complete``/``fail``/``release`` return False) instead of changing a
job it no longer owns. ``still_ours`` extends the lock by a full lock duration before the
caller publishes, so the publish that follows happens inside a fresh lease.

Nothing here blocks the main loop for long: ``take`` and ``progress`` never wait for Redis;
the fenced calls wait at most ``op_timeout_s`` and raise ``QueueUnavailable`` if Redis does
not answer, leaving the operation running: calling again for the same job waits for that
same operation, so a slow answer is never mistaken for a lost lock by issuing it twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from daemon.intake.queue.bounded_json import defuse
from daemon.intake.queue.lock_recovery import look_into
from daemon.intake.queue.loop_thread import LoopThread, QueueUnavailable
from daemon.intake.queue.held import BACKOFF_S, HeldJob
from daemon.intake.queue.job import QueueJob, failure_reason, read_job
from daemon.intake.queue.redis_client import HealthWatch, QueueHealth, connect, connect_blocking, insecure_tls, is_connection_error, redact
from daemon.log import get_logger

log = get_logger(__name__)


class BullmqIntake:
    """Takes ``pose`` jobs from one BullMQ queue, one at a time, for the daemon's main loop."""

    def __init__(
        self,
        url: str,
        queue: str = "posed",
        *,
        daemon_name: str = "",
        input_roots: list[str] | None = None,
        lock_duration_s: float = 30.0,
        stalled_interval_s: float = 30.0,
        max_stalled_count: int = 1,
        op_timeout_s: float = 10.0,
        wake: Callable[[], None] | None = None,
        distro: str | None = None,
        extensions: list[str] | None = None,
    ) -> None:
        self.url = url
        self.queue = queue
        self.host = socket.gethostname()
        self.daemon_name = daemon_name or self.host
        self.input_roots = list(input_roots or [])  # none: every input is outside (config requires them)
        self.lock_ms = int(lock_duration_s * 1000)
        self.stalled_ms = int(stalled_interval_s * 1000)
        self.max_stalled_count = max_stalled_count
        self.op_timeout_s = op_timeout_s
        self._wake = wake or (lambda: None)
        self._distro = distro
        self._extensions = extensions  # a job_id that looks like a video name must be its input's own
        self._thread = LoopThread("posed-bullmq")
        self._worker: Any = None
        self._held: dict[str, HeldJob] = {}
        self._ready: list[HeldJob] = []  # fetched and locked, not yet handed to the main loop
        self._fetching: concurrent.futures.Future | None = None
        self._tokens = 0
        self._health = HealthWatch(redact(url))
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the BullMQ worker; never waits for Redis to be up."""
        self._thread.start()
        self._thread.run(self._start_worker(), timeout=self.op_timeout_s)
        log.info("queue.start", url=redact(self.url), queue=self.queue, worker=worker_name(self.host, self.daemon_name))
        if (why := insecure_tls(self.url)) is not None:
            log.warning("queue.tls_unverified", reason=why, url=redact(self.url))

    async def _start_worker(self) -> None:
        from bullmq import Worker
        from bullmq.timer import Timer

        opts = {"connection": connect(self.url), "name": worker_name(self.host, self.daemon_name), "lockDuration": self.lock_ms,
                "stalledInterval": self.stalled_ms, "maxStalledCount": self.max_stalled_count, "autorun": False}  # fmt: skip
        self._worker = _bounded(Worker)(self.queue, None, opts)
        _block_on_own_client(self._worker, self.url)
        self._worker.on("lockRenewalFailed", self._on_lock_renewal_failed)
        self._worker.on("error", self._on_worker_error)
        self._worker.lockManager.start()
        self._stalled_timer = Timer(self.stalled_ms / 1000, self._worker.runStalledJobsCheck, self._worker.emit)
        self._tasks.append(asyncio.ensure_future(self._health.watch(self._worker.client)))

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop fetching, return fetched-but-untaken jobs to the queue, close the connections."""
        if not self._thread.running:
            return
        try:
            self._thread.run(self._close(), timeout=timeout_s)
        except QueueUnavailable:
            log.warning("queue.close_timeout", timeout_s=timeout_s)
        self._thread.stop(timeout_s)
        self._health.close()
        log.info("queue.closed", queue=self.queue)

    async def _close(self) -> None:
        worker = self._worker
        worker.closing = True
        if worker.waiting is not None:
            worker.waiting.cancel()  # getNextJob returns None instead of raising
        if self._fetching is not None:
            await asyncio.wait([asyncio.wrap_future(self._fetching)], timeout=self.op_timeout_s)
        for held in list(self._ready):
            await self._fenced(held, self._release)
        self._ready.clear()
        self._stalled_timer.stop()
        for task in self._tasks:
            task.cancel()
        await worker.close()

    # -- taking a job --------------------------------------------------------------------

    def take(self) -> QueueJob | None:
        """A job locked for this daemon, or None; starts fetching one if none is on its way.

        Call it only when the daemon is free: a fetched job is locked and active in BullMQ
        from that moment. Never blocks; ``wake`` is called when a job arrives.
        """
        if self._ready:
            held = self._ready.pop(0)
            self._held[held.job.id] = held
            log_taken(held.job)
            self.progress(held.job, stage="taken")
            return held.job
        if self._fetching is not None and self._fetching.done() and self._fetching.exception() is not None:
            log.error("queue.fetch_failed", error=repr(self._fetching.exception()))
        if self._fetching is None or self._fetching.done():
            self._fetching = self._thread.submit(self._fetch_one())
        return None

    async def _fetch_one(self) -> None:
        """Fetch until one job is locked for us, backing off while Redis is unreachable."""
        pause = BACKOFF_S[0]
        worker = self._worker
        while not worker.closing:
            self._tokens += 1
            token = f"{worker.id}:{self._tokens}"
            try:
                bull_job = await worker.getNextJob(token)
            except Exception as exc:  # noqa: BLE001 - classified below; the loop must survive
                if is_connection_error(exc):
                    self._health.degrade(exc)
                else:  # a bug or a refused command, not an outage: say so, never "unreachable"
                    log.error("queue.fetch_error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_S[1])
                continue
            pause = BACKOFF_S[0]
            if bull_job is None:
                continue  # the blocking wait timed out (drainDelay): look again
            worker.lockManager.track_job(bull_job.id, token, int(time.time() * 1000))
            unparsed = worker.unparsed.pop(str(bull_job.id), None)
            job = read_job(bull_job, token, self.queue, self.input_roots, self._distro, unparsed=unparsed,
                           extensions=self._extensions)
            self._ready.append(HeldJob(bull_job, job))
            self._wake()
            return

    # -- while it runs -------------------------------------------------------------------

    def progress(self, job: QueueJob, frames_done: int = 0, frames_total: int | None = None,
                 fps: float | None = None, eta_s: float | None = None, *, stage: str = "running",
                 error: dict[str, Any] | None = None) -> None:
        """Publish progress (``job.updateProgress``) without waiting (throttled: ``held``)."""
        held = self._held.get(job.id)
        if held is None or held.lost:
            return
        percent = round(100.0 * min(frames_done / frames_total, 1.0), 1) if frames_total else None
        value = {"stage": stage, "frames_done": frames_done, "frames_total": frames_total, "percent": percent,
                 "frames_per_second": fps, "eta_seconds": eta_s, "host": self.host, "daemon": self.daemon_name,
                 "attempt": job.attempt}
        if error is not None:
            value["error"] = error
        self._thread.call_soon(held.queue_progress, value)

    def still_ours(self, job: QueueJob) -> bool:
        """Extend the lock by a full lock duration if it is still ours: the fence just before
        publishing. False means discard the work; QueueUnavailable means ask again later."""
        held = self._held.get(job.id)
        if held is None or held.lost:
            return False
        ok = self._thread.run(self._worker.backend.extendLock(job.id, job.token, self.lock_ms), timeout=self.op_timeout_s)
        if not ok:
            self._lose(held, "lock no longer ours before publishing")
        return bool(ok)

    # -- settling ------------------------------------------------------------------------

    def complete(self, job: QueueJob, return_value: dict[str, Any]) -> bool:
        """Move the job to completed with ``return_value``; False if the lock was lost."""
        return self._settle(job, lambda held: held.bull_job.moveToCompleted(return_value, job.token), "completed")

    def fail(self, job: QueueJob, code: str, message: str, report: dict[str, Any] | None = None, *,
             retryable: bool) -> bool:
        """Fail this attempt. ``retryable`` lets BullMQ retry it (attempts, backoff) unless
        attempts are used up; otherwise it fails for good (UnrecoverableError). ``report`` is
        ``{"path", "windows_path"}`` of a published error report, named in the reason and in
        the last progress value. False if the lock was lost."""
        from bullmq import UnrecoverableError

        if report is not None:
            self.progress(job, stage="failed", error={"code": code, "report": report})
        reason = failure_reason(code, message, (report or {}).get("windows_path") or (report or {}).get("path"))
        error = Exception(reason) if retryable else UnrecoverableError(reason)
        return self._settle(job, lambda held: held.bull_job.moveToFailed(error, job.token), "failed", code=code, retryable=retryable)

    def release(self, job: QueueJob) -> bool:
        """Shutdown: hand the job back to the queue at once, without counting an attempt."""
        return self._settle(job, self._release, "released")

    async def _release(self, held: HeldJob) -> None:
        # moveToDelayed with delay 0 and skipAttempt: the job is waiting again, attemptsMade unchanged.
        await held.bull_job.moveToDelayed(int(time.time() * 1000), held.job.token)

    def _settle(self, job: QueueJob, operation: Callable[[HeldJob], Coroutine], outcome: str, **facts: Any) -> bool:
        held = self._held.get(job.id)
        if held is None:
            return False
        if held.settling is None:
            held.settling = self._thread.submit(self._fenced(held, operation))
        try:
            ok = held.settling.result(self.op_timeout_s)
        except concurrent.futures.TimeoutError:
            raise QueueUnavailable(f"Redis did not confirm '{outcome}' for job {job.id} within {self.op_timeout_s:g} s") from None
        self._held.pop(job.id, None)
        if ok:
            log.info("queue.job_" + outcome, job=job.job_id, bullmq_id=job.id, attempt=job.attempt, **facts)
        else:
            log.error("queue.lock_lost", job=job.job_id, bullmq_id=job.id, wanted=outcome)
        return ok

    async def _fenced(self, held: HeldJob, operation: Callable[[HeldJob], Coroutine]) -> bool:
        try:
            return await held.change_state(operation, self._health.degrade)
        finally:
            self._worker.lockManager.untrack_job(held.job.id)

    # -- health --------------------------------------------------------------------------

    def health(self) -> QueueHealth:
        return self._health.now

    # -- callbacks from BullMQ (on the loop thread) --------------------------------------

    def _on_lock_renewal_failed(self, job_ids: list[str]) -> None:
        """BullMQ refused to renew: find out why before giving the work up (``lock_recovery``)."""
        for job_id in job_ids:
            held = self._held.get(str(job_id))
            if held is not None and not held.lost and not held.reclaiming:
                held.reclaiming = True
                self._tasks.append(asyncio.ensure_future(look_into(held, self._worker, self.queue, self.lock_ms, self._lose)))

    def _on_worker_error(self, error: Any, *_: Any) -> None:
        if isinstance(error, BaseException) and is_connection_error(error):
            self._health.degrade(error)
        else:
            log.warning("queue.worker_error", error=str(error))

    def _lose(self, held: HeldJob, why: str) -> None:
        held.lost, held.lost_why = True, why
        log.error("queue.lock_lost", job=held.job.job_id, bullmq_id=held.job.id, reason=why)

    def lost_reason(self, job: QueueJob) -> str | None:
        held = self._held.get(job.id)
        return held.lost_why if held is not None else None

    def is_lost(self, job: QueueJob) -> bool:
        """True once BullMQ refused to renew or extend this job's lock: stop and discard."""
        held = self._held.get(job.id)
        return held is None or held.lost


def _bounded(worker_class: type) -> type:
    """BullMQ's Worker, but job fields out of bounds are never parsed (``bounded_json``).

    ``Worker.nextJobFromJobData`` runs ``Job.fromJSON`` (``json.loads``) on the job hash right
    after the job was moved to active and locked for us; deep data made it raise there, so
    the job was never handed over, never failed, and cycled waiting <-> active forever. Here
    the raw fields are measured first and replaced by empty stand-ins; the job is handed over
    with the reasons, and the daemon fails it with ``E_BAD_JOB_DATA`` like any bad data."""

    class BoundedWorker(worker_class):
        unparsed: dict[str, dict[str, str]]

        async def nextJobFromJobData(self, job_data=None, job_id=None, *args, **kwargs):  # noqa: ANN001
            if job_data and job_id is not None:
                problems = defuse(job_data)
                if problems:
                    self.unparsed[str(job_id)] = problems
            return await super().nextJobFromJobData(job_data, job_id, *args, **kwargs)

    BoundedWorker.unparsed = {}
    return BoundedWorker


def _block_on_own_client(worker: Any, url: str) -> None:
    """Give BullMQ's blocking wait a client whose read timeout outlasts the wait itself
    (``redis_client.connect_blocking``); BullMQ shares the one client it is given otherwise."""
    from bullmq.redis_connection import RedisConnection

    blocking = RedisConnection(connect_blocking(url))
    worker.backend.blocking_connection = blocking
    worker.blockingRedisConnection = blocking
    worker.bclient = blocking.conn


def worker_name(host: str, daemon_name: str) -> str:
    """Shown by CLIENT LIST / getWorkers: host, daemon and pid (no spaces allowed)."""
    raw = f"{host}.{daemon_name}.{os.getpid()}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in raw)


def log_taken(job: QueueJob) -> None:
    log.info("queue.job_taken", job=job.job_id, bullmq_id=job.id, attempt=job.attempt, attempts=job.attempts,
             input=str(job.input_path) if job.input_path else None, problem=job.problem.code.value if job.problem else None)
