"""The daemon: intake -> worker -> outbox, one main loop, nothing lost.

The loop (``tick_s``) drains worker events, lets the intake collect inputs, hands one job at a
time to the supervised worker through the job lifecycle, keeps claims alive, writes the status
file and feeds systemd's watchdog. Signal handlers only set flags. Every claimed input ends in
exactly one published result or error report before the intake lets it go; if neither can be
published the input stays where it is and is tried again later.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from daemon.clock import iso
from daemon.config import PosedConfig
from daemon.errors import PublishError
from daemon.intake.base import Intake
from daemon.intake.claim import ClaimIdentity
from daemon.intake.liveness import owner_tag, tagged_owner_gone
from daemon.intake.folder.intake import FolderIntake
from daemon.lifecycle import JobLifecycle
from daemon.log import get_logger
from daemon.ops.name_guard import live_holder
from daemon.ops.status import StatusBoard
from daemon.ops.systemd import notify, watchdog_interval_s
from daemon.processing.supervisor import WorkerEvent, WorkerState, WorkerSupervisor
from daemon.publishing.outcomes import OutcomeWriter
from daemon.publishing.publish import TMP_DIR
from daemon.publishing.tmp_sweep import TempSweeper

log = get_logger(__name__)
EXIT_NAME_IN_USE = 4  # another live daemon uses this daemon.name on this outbox
MAX_FAILED_TICKS = 50  # ~10 s of the same failure at the default tick
LOADING_STATES = (WorkerState.STARTING, WorkerState.LOADING, WorkerState.BACKOFF)
# The status file's state while nothing overrides it (stopping, degraded).
STATE_NAMES = {
    WorkerState.STOPPED: "starting",
    WorkerState.STARTING: "loading-models",
    WorkerState.LOADING: "loading-models",
    WorkerState.BACKOFF: "loading-models",
    WorkerState.READY: "ready",
    WorkerState.BUSY: "busy",
}


def temp_silence_s(cfg: PosedConfig) -> float:
    """How long another host's temp file must sit unchanged before it counts as abandoned:
    longer than its writer may legitimately be silent (waiting for a first frame)."""
    worker, stale = cfg.worker, cfg.claim.stale_after_s
    return max(2 * stale, worker.first_frame_timeout_s, worker.stall_timeout_s) + stale


def input_source(cfg: PosedConfig) -> str:
    """Where a daemon takes its work from, as its ready line says it (queue mode has no inbox)."""
    if cfg.intake.kind == "bullmq":
        scheme, _, rest = cfg.intake.url.partition("://")
        where = f"{scheme}://{rest.rpartition('@')[2]}"  # never the credentials
        return f"taking BullMQ jobs from queue {cfg.intake.queue!r} at {where}"
    return f"drop videos into {cfg.inbox.path}"


class Daemon:
    def __init__(self, cfg: PosedConfig) -> None:
        self.cfg = cfg
        self.inbox = Path(cfg.inbox.path)
        self.outbox = Path(cfg.outbox.path)
        self.instance_id = uuid.uuid4().hex
        self.name = cfg.daemon.name or socket.gethostname()
        self.status = StatusBoard(self.outbox, self.name, self.instance_id, status_interval_s=cfg.daemon.status_interval_s,
                                  last_error_ttl_s=cfg.daemon.last_error_ttl_s)
        self.supervisor = WorkerSupervisor(cfg)
        self.identity = ClaimIdentity.current(self.instance_id, self.name)
        self.outcomes = OutcomeWriter(cfg, self.outbox, tmp_owner=owner_tag(self.identity.process, self.instance_id))
        self.temps = TempSweeper(self.outbox, lambda tag: tagged_owner_gone(tag, self.identity.process), temp_silence_s(cfg))
        self.wake = threading.Event()
        self.intake = self._make_intake()
        self.jobs = JobLifecycle(cfg, self.intake, self.supervisor, self.outcomes, self.status)
        self.stop_requests = 0
        self._stop_deadline: float | None = None
        self._cancel_sent_at: float | None = None
        self._next_status = 0.0
        self._next_heartbeat = 0.0
        self._next_watchdog = 0.0
        self._next_temp_sweep = 0.0
        self._watchdog_every = watchdog_interval_s()
        self._ready_notified = False
        self._failed_ticks = 0
        self._status_write_failing = False

    def _make_intake(self) -> Intake:
        if self.cfg.intake.kind == "bullmq":
            from daemon.intake.queue.intake import QueueIntake

            return QueueIntake(self.cfg, self.name, wake=self.wake.set)
        return FolderIntake(self.cfg, self.identity, self.outcomes.answered)

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        if (holder := live_holder(self.outbox, self.name, self.cfg.daemon.status_interval_s)) is not None:
            return self._refuse_name(holder)
        self._prepare_dirs()
        previous = self._install_signal_handlers()
        log.info("daemon.start", name=self.name, instance=self.instance_id, inbox=str(self.inbox), outbox=str(self.outbox), backend=self.cfg.backend.name)
        self.intake.start()
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

    def _refuse_name(self, holder: dict[str, Any]) -> int:
        message = (
            f"another daemon named {self.name!r} is running on {self.outbox}: pid {holder.get('pid')} on host "
            f"{holder.get('host')} (instance {holder.get('instance_id')}). Two daemons with one name overwrite "
            "each other's status file: stop that one, or give this one its own daemon.name=..."
        )
        log.error("daemon.name_in_use", name=self.name, holder=holder, message=message)
        sys.stderr.write(f"posed: {message}\n")
        return EXIT_NAME_IN_USE

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
            self._on_worker_event(event)
        self.jobs.publishes.tick(now)  # outcomes Windows blocked: retried when due, never slept on
        self.intake.poll(now)
        if not self.stop_requests:
            self._dispatch(now)
        else:
            self._drain_for_stop(now)
        self._keep_claims(now)
        self.intake.sweep(now)
        self._sweep_temps(now)
        self._update_status(now)
        self._feed_watchdog(now)

    def request_stop(self, signum: int = signal.SIGTERM, _frame: Any = None) -> None:
        """Signal handler: first = warm stop (finish within grace), second = cold stop."""
        self.stop_requests += 1
        self.jobs.stopping = True
        self.wake.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self.request_stop)
        return previous

    def _finished(self) -> bool:
        return bool(self.stop_requests) and self.jobs.active is None

    def _prepare_dirs(self) -> None:
        os.umask(0o027)  # results and locks are not world-readable
        for directory in (self.outbox, self.outbox / TMP_DIR, Path(self.cfg.daemon.state_dir)):
            directory.mkdir(parents=True, exist_ok=True)
        self.outcomes.answered.sweep_stale_receipts(max_age_s=2 * self.cfg.claim.stale_after_s)

    def _sweep_temps(self, now: float) -> None:
        """Temp files of a daemon killed meanwhile go at run time, not only at the next start."""
        if now >= self._next_temp_sweep:
            self._next_temp_sweep = now + self.cfg.inbox.rescan_interval_s
            self.temps.sweep()

    def _dispatch(self, now: float) -> None:
        self.jobs.answer_refusals()  # no worker needed: not even a loaded one
        if self.jobs.active is not None or self.supervisor.state != WorkerState.READY:
            return
        job = self.jobs.next_job()
        if job is not None:
            self.jobs.start(job, now)

    # -- the worker ------------------------------------------------------------------------

    def _on_worker_event(self, event: WorkerEvent) -> None:
        kind, data = event.kind, event.data
        if kind == "loading":
            self.status.loading = {"what": data.get("what"), "since": iso()}
        elif kind == "ready":
            self._on_worker_ready()
        elif kind == "load_failed":
            self.status.record_error("E_BACKEND_LOAD", data.get("message", ""))
        elif kind == "died":
            self.status.counters.worker_restarts += 1
            if data.get("during_load") or self.jobs.active is None:
                self.status.record_error("E_BACKEND_LOAD", self.supervisor.last_load_error or data["description"])
            else:
                self.jobs.on_worker_died(data)
        else:
            self.jobs.on_job_event(event)

    def _on_worker_ready(self) -> None:
        info = self.supervisor.info or {}
        self.status.backend = {"name": info.get("name"), "device": info.get("device"), "model_version": info.get("model_version")}
        self.status.loading = None
        if not self._ready_notified:
            source = input_source(self.cfg)
            notify(f"READY=1\nSTATUS=models loaded, {source}")
            # The one line for a person at a terminal; stdout, so stderr stays JSON lines.
            print(f"posed: ready, {source} (outcomes appear in {self.outbox})", flush=True)
            self._ready_notified = True

    # -- periodic duties -------------------------------------------------------------------

    def _keep_claims(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.cfg.claim.heartbeat_interval_s
            self.jobs.keep_claims()

    def _drain_for_stop(self, now: float) -> None:
        """Warm stop: let the current video finish within the grace period, then cancel it."""
        self.jobs.release_waiting("shutdown before retry")
        active = self.jobs.active
        if active is None:
            return
        if self._stop_deadline is None:
            self._stop_deadline = now + self.cfg.worker.shutdown_grace_s
            log.info("daemon.stopping", grace_s=self.cfg.worker.shutdown_grace_s, input=active.path.name)
        cold = self.stop_requests > 1
        if (cold or now >= self._stop_deadline) and self._cancel_sent_at is None:
            log.warning("daemon.cancel_current", input=active.path.name, cold=cold)
            self.supervisor.cancel_job()
            self._cancel_sent_at = now
        elif self._cancel_sent_at is not None and now - self._cancel_sent_at > self.cfg.worker.kill_after_s:
            self.supervisor.kill("shutdown: worker did not stop after cancel")

    def _update_status(self, now: float) -> None:
        if now >= self._next_status:
            self._next_status = now + self.cfg.daemon.status_interval_s
            self.write_status(now)

    def write_status(self, now: float) -> None:
        board = self.status
        board.queue_length = self.intake.queue_length() + len(self.jobs.retry)
        board.counters.worker_restarts = self.supervisor.restarts
        board.degraded_reason = self._degraded_reason()
        board.warnings = getattr(self.intake, "warnings", list)()  # only the queue intake has any
        board.state = self._state_name()
        board.current_job = self.jobs.progress(now)
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
        if self.supervisor.state in LOADING_STATES and self.supervisor.last_load_error:
            return f"model load failing: {self.supervisor.last_load_error}; retrying in {self.supervisor.next_start_in:.0f} s"
        return self.intake.degraded_reason() or self.jobs.outbox_fault

    def _state_name(self) -> str:
        if self.stop_requests:
            return "stopping"
        if self.status.degraded_reason:
            return "degraded"
        return STATE_NAMES[self.supervisor.state]

    def _feed_watchdog(self, now: float) -> None:
        if self._watchdog_every is not None and now >= self._next_watchdog:
            notify("WATCHDOG=1")
            self._next_watchdog = now + self._watchdog_every

    def _shutdown(self) -> None:
        self.jobs.release_waiting("shutdown")
        if self.jobs.active is not None:
            self.supervisor.kill("daemon exiting")
            self.jobs.abandon(self.jobs.active, "daemon exiting")
        self.supervisor.stop(self.cfg.worker.kill_after_s)
        self.intake.stop()
        self.status.state = "stopped"
        self.status.current_job = None
        try:
            self.status.write()
        except (OSError, PublishError):
            pass
        notify("STOPPING=1")
