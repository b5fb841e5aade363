"""The daemon's health, as a file the Node backend polls and ``posed status`` renders.

``<outbox>/.posed/status/<daemon name>.json`` is rewritten atomically every few seconds and on
every state change. Whether the daemon is alive at all is decided by one rule,
``daemon.ops.health.judge``; the document carries what it needs (the daemon's boot id, PID
namespace, pid start time and ``status_interval_s``). ``last_error`` is dropped from the
document ``daemon.last_error_ttl_s`` after it happened (default 1 h): an old error must not
look current forever.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.clock import iso
from daemon.intake.liveness import ProcessIdentity
from daemon.ops.health import judge
from daemon.publishing.publish import replace_json

STATUS_SCHEMA = "posed.status"
STATUS_SCHEMA_VERSION = "1.1"  # 1.1: liveness fields (daemon.boot_id, pid_namespace, start_time; status_interval_s)
STATES = ("starting", "loading-models", "ready", "busy", "degraded", "stopping", "stopped")


def status_dir(outbox: Path) -> Path:
    return outbox / ".posed" / "status"


@dataclass
class Counters:
    results: int = 0
    errors: int = 0
    retries: int = 0
    worker_restarts: int = 0
    worker_crashes: int = 0


@dataclass
class StatusBoard:
    """Mutable daemon state that the service updates and ``write`` publishes."""

    outbox: Path
    name: str
    instance_id: str
    started_at: str = field(default_factory=iso)
    state: str = "starting"
    backend: dict[str, Any] | None = None
    current_job: dict[str, Any] | None = None
    queue_length: int = 0
    counters: Counters = field(default_factory=Counters)
    last_error: dict[str, Any] | None = None
    loading: dict[str, Any] | None = None
    degraded_reason: str | None = None
    warnings: list[str] = field(default_factory=list)  # standing risks that do not stop work (TLS unverified)
    worker: dict[str, Any] | None = None
    status_interval_s: float = 2.0
    last_error_ttl_s: float = 3600.0
    _last_error_at: float = 0.0  # monotonic: expiry must not follow wall-clock jumps
    _me: ProcessIdentity = field(default_factory=ProcessIdentity.current)

    @property
    def path(self) -> Path:
        return status_dir(self.outbox) / f"{self.name}.json"

    def record_error(self, code: str, message: str) -> None:
        self.last_error = {"code": code, "message": message, "at": iso()}
        self._last_error_at = time.monotonic()

    def _current_error(self) -> dict[str, Any] | None:
        if self.last_error is not None and time.monotonic() - self._last_error_at > self.last_error_ttl_s:
            self.last_error = None
        return self.last_error

    def document(self) -> dict[str, Any]:
        now = iso()
        me = self._me
        return {
            "schema": STATUS_SCHEMA,
            "schema_version": STATUS_SCHEMA_VERSION,
            "daemon": {
                "name": self.name,
                "instance_id": self.instance_id,
                "host": me.host,
                "pid": os.getpid(),
                "version": __version__,
                "started_at": self.started_at,
                # For the liveness rule: a reader on this kernel can check the pid directly.
                "boot_id": me.boot_id,
                "pid_namespace": me.pid_ns,
                "start_time": me.start_time,
            },
            "status_interval_s": self.status_interval_s,
            "state": self.state,
            "backend": self.backend,
            "heartbeat_at": now,
            "updated_at": now,
            "current_job": self.current_job,
            "queue_length": self.queue_length,
            "counters": vars(self.counters).copy(),
            "last_error": self._current_error(),
            "loading": self.loading,
            "degraded_reason": self.degraded_reason,
            "warnings": list(self.warnings),
            "worker": self.worker,
        }

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_json(self.path, self.document())


def read_statuses(outbox: Path) -> list[dict[str, Any]]:
    """Every daemon's status document in this outbox (unreadable files are skipped)."""
    return [doc for doc, _ in read_status_files(outbox)]


def read_status_files(outbox: Path) -> list[tuple[dict[str, Any], float]]:
    """(document, file modification time) of every daemon's status file."""
    found = []
    directory = status_dir(outbox)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            mtime = path.stat().st_mtime
            found.append((json.loads(path.read_text(encoding="utf-8")), mtime))
        except (OSError, ValueError):
            continue
    return found


def render(doc: dict[str, Any], *, file_mtime: float | None = None, now: float | None = None, width: int = 30) -> str:
    """A few human lines for ``posed status``; the first says alive, stopped or down, and why."""
    daemon = doc.get("daemon", {})
    liveness = judge(doc, file_mtime=file_mtime, now=now)
    verdict = {"alive": "alive", "stopped": "stopped", "down": "DOWN"}[liveness.verdict]
    state = doc.get("state") if liveness.verdict == "alive" else f"last state {doc.get('state')}"
    lines = [f"{daemon.get('name')} [{state}] pid {daemon.get('pid')} on {daemon.get('host')}: {verdict} ({liveness.reason})"]
    backend = doc.get("backend") or {}
    if backend:
        lines.append(f"  backend: {backend.get('name')} on {backend.get('device')} ({backend.get('model_version')})")
    if doc.get("loading"):
        lines.append(f"  loading: {doc['loading'].get('what')} since {doc['loading'].get('since')}")
    if doc.get("degraded_reason"):
        lines.append(f"  degraded: {doc['degraded_reason']}")
    lines.extend(f"  WARNING: {warning}" for warning in doc.get("warnings") or [])
    job = doc.get("current_job")
    if job:
        lines.append("  " + _job_line(job, width))
    counters = doc.get("counters", {})
    lines.append(
        f"  queue {doc.get('queue_length', 0)}; results {counters.get('results', 0)}, errors {counters.get('errors', 0)}, "
        f"retries {counters.get('retries', 0)}, worker crashes {counters.get('worker_crashes', 0)}"
    )
    if doc.get("last_error"):
        err = doc["last_error"]
        lines.append(f"  last error {err.get('code')} at {err.get('at')}: {err.get('message')}")
    return "\n".join(lines)


def _job_line(job: dict[str, Any], width: int) -> str:
    done, total, percent = job.get("frames_done") or 0, job.get("frames_total"), job.get("percent")
    if percent is not None:
        filled = int(width * min(percent, 100) / 100)
        bar = "#" * filled + "-" * (width - filled)
        progress = f"[{bar}] {percent:5.1f}% {done}/{total}"
    else:
        progress = f"{done} frames"
    fps, eta = job.get("frames_per_second"), job.get("eta_seconds")
    extra = f" {fps:.1f} fps" if fps else ""
    extra += f" ETA {eta:.0f} s" if eta is not None else ""
    client = f" [{job['client_job_id']}]" if job.get("client_job_id") else ""
    return f"{job.get('input_name')}{client} ({job.get('stage')}, attempt {job.get('attempt')}): {progress}{extra}"
