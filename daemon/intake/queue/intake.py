"""The daemon's ``Intake`` for a BullMQ queue: ``BullmqIntake`` behind the seam in ``base``.

One job at a time: a job is fetched only when the daemon asks for its next input. What the
lifecycle publishes is reported back to BullMQ: a result completes the job with the small
summary and the result's paths (``queue-result.schema.json``); an error report fails it with
the code first in the reason and without retry; a crash, stall or out-of-memory before the
last attempt fails it *retryably* and publishes nothing, so BullMQ's attempts and backoff
decide, and only the last attempt leaves an error report.

Exactly one outcome per job, also across ``kill -9``: the lifecycle fences on ``still_ours``
(the lock extended by a full lease) just before publishing, and a job whose outcome is
already in the outbox (its daemon died between publishing and telling BullMQ) is settled
from that file instead of being processed again.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.intake.base import ClaimedInput
from daemon.intake.queue.loop_thread import QueueUnavailable
from daemon.intake.queue.redis_client import insecure_tls
from daemon.intake.queue.worker import BullmqIntake
from daemon.intake.queue.job import QueueJob
from daemon.log import get_logger, job_context
from daemon.errors import ErrorCode, JobError
from daemon.paths import BadPath, PathThroughLink, open_beneath, path_forms
from daemon.publishing.naming import ERROR_SUFFIX, RESULT_SUFFIX, safe_stem

log = get_logger(__name__)
RESULT_SCHEMA = "posed.queue-result"
RESULT_SCHEMA_VERSION = "1.0"
HEAD_BYTES = 64 * 1024  # a published document names its job id in its first lines


class QueueIntake:
    kind = "bullmq"

    def __init__(self, cfg: PosedConfig, daemon_name: str, wake: Any = None) -> None:
        intake = cfg.intake
        self.outbox = Path(cfg.outbox.path)
        self.queue = BullmqIntake(
            intake.url, intake.queue, daemon_name=daemon_name, input_roots=list(intake.input_roots),
            lock_duration_s=intake.lock_duration_s, stalled_interval_s=intake.stalled_interval_s,
            max_stalled_count=intake.max_stalled_count, wake=wake, extensions=list(cfg.inbox.extensions),
        )  # fmt: skip
        self.unconfirmed: list[tuple[QueueJob, str, dict[str, Any]]] = []  # published, BullMQ not yet told

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.queue.close()

    def poll(self, now: float) -> None:
        """Tell BullMQ about outcomes published while Redis did not answer."""
        for entry in list(self.unconfirmed):
            if self._confirm(*entry):
                self.unconfirmed.remove(entry)

    def queue_length(self) -> int:
        return 0  # the queue's depth is BullMQ's: posed status --queue shows it

    def warnings(self) -> list[str]:
        """Standing problems that do not stop work, for the status file (``insecure_tls``)."""
        why = insecure_tls(self.queue.url)
        return [why] if why else []

    def degraded_reason(self) -> str | None:
        health = self.queue.health()
        return health.reason if health.state == "degraded" else None

    def refused(self) -> list[ClaimedInput]:
        return []

    def sweep(self, now: float) -> None:
        """Nothing: BullMQ's stalled checker hands over the jobs of dead daemons."""

    # -- taking ------------------------------------------------------------------------------

    def take(self) -> ClaimedInput | None:
        if self.unconfirmed:
            return None  # one job at a time: the last one is not settled in BullMQ yet
        job = self.queue.take()
        while job is not None and self._settled_before(job):
            job = self.queue.take()
        return None if job is None else _claimed(job, self.queue.input_roots)

    def _settled_before(self, job: QueueJob) -> bool:
        """Its daemon published an outcome and died before telling BullMQ: tell it now."""
        found = find_published(self.outbox, job.stem, job.job_id)
        if found is None:
            return False
        path, document = found
        with job_context(job.job_id, (job.client or {}).get("job_id")):
            log.warning("queue.already_published", bullmq_id=job.id, published=path.name)
        if document.get("status") == "error":
            error = document.get("error", {})
            self._confirm(job, "failed", {"published": path, "error": error})
        else:
            self._confirm(job, "done", {"published": path, "summary": document.get("summary", {}), "client": document.get("client")})
        return True

    # -- holding -----------------------------------------------------------------------------

    def lost_reason(self, item: ClaimedInput) -> str | None:
        """What happened to a job ``keep_alive`` reported lost, in words (``lock_recovery``)."""
        return self.queue.lost_reason(item.ticket)

    def keep_alive(self, held: list[ClaimedInput]) -> list[ClaimedInput]:
        """BullMQ's lock manager renews the locks; report the jobs whose renewal it refused."""
        return [item for item in held if self.queue.is_lost(item.ticket)]

    def still_ours(self, item: ClaimedInput) -> bool:
        try:
            return self.queue.still_ours(item.ticket)
        except QueueUnavailable:
            log.error("queue.fence_unavailable", job=item.job_id)
            return False  # cannot prove it: discard; the job comes back when its lock runs out

    def progress(self, item: ClaimedInput, progress: dict[str, Any]) -> None:
        self.queue.progress(item.ticket, progress.get("frames_done") or 0, progress.get("frames_total"),
                            progress.get("frames_per_second"), progress.get("eta_seconds"), stage=progress.get("stage") or "running")

    def retry_later(self, item: ClaimedInput, error: dict[str, Any]) -> bool:
        """A crash, stall or OOM before the last attempt: BullMQ retries it, no report now."""
        job: QueueJob = item.ticket
        if job.last_attempt:
            return False
        try:
            self.queue.fail(job, error["code"], error["message"], retryable=True)
        except QueueUnavailable:
            pass  # the failure is on its way; if it never lands, the lock runs out and BullMQ retries anyway
        return True

    # -- letting go --------------------------------------------------------------------------

    def settle(self, item: ClaimedInput, outcome: str, **facts: Any) -> Path | None:
        if not self._confirm(item.ticket, outcome, facts | {"client": item.client}):
            self.unconfirmed.append((item.ticket, outcome, facts | {"client": item.client}))
        return None  # the input stays where the producer put it

    def release(self, item: ClaimedInput, *, retry_after_s: float | None = None) -> None:
        try:
            self.queue.release(item.ticket)
        except QueueUnavailable:
            log.warning("queue.release_unconfirmed", job=item.job_id)  # its lock runs out: BullMQ hands it on

    def _confirm(self, job: QueueJob, outcome: str, facts: dict[str, Any]) -> bool:
        """Complete or fail the job in BullMQ; False while Redis does not answer."""
        published = path_forms(facts["published"])
        try:
            if outcome == "done":
                self.queue.complete(job, self._return_value(job, published, facts))
            else:
                error = facts.get("error") or {}
                self.queue.fail(job, error.get("code", "E_INTERNAL"), error.get("message", ""), published, retryable=False)
        except QueueUnavailable as exc:
            log.warning("queue.settle_pending", job=job.job_id, error=str(exc))
            return False
        return True

    def _return_value(self, job: QueueJob, published: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
        value = {"schema": RESULT_SCHEMA, "schema_version": RESULT_SCHEMA_VERSION, "status": "ok", "job_id": job.job_id,
                 "result": published, "summary": facts.get("summary") or {"frames": 0},
                 "host": self.queue.host, "daemon": self.queue.daemon_name}
        if (files := published_files(Path(facts["published"]))) is not None:
            value["files"] = files
        if facts.get("client") is not None:
            value["client"] = facts["client"]
        return value


def published_files(manifest: Path) -> dict[str, dict[str, Any]] | None:
    """Both path forms of every file the published manifest lists (frames, motion, preview), so a
    Node consumer can open them without reading the manifest first; None if it cannot be read."""
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        return {kind: path_forms(manifest.with_name(entry["name"])) for kind, entry in listed.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("queue.files_unlisted", manifest=manifest.name, error=str(exc))
        return None


def _claimed(job: QueueJob, roots: list[str]) -> ClaimedInput:
    path = job.input_path or Path(safe_stem(f"{job.queue}-{job.id}"))
    options = job.options
    if job.previous_error_code == "E_OUT_OF_MEMORY":  # the last attempt ran out of memory
        options = replace(options, low_memory=True)
    input_stat, refusal = None, job.problem
    if refusal is None:
        path, input_stat, refusal = _confined(path, roots)
    return ClaimedInput(path=path, job_id=job.job_id, wanted_stem=job.stem, input_stat=input_stat, options=options,
                        client=job.client, refusal=refusal, ticket=job, moves_input=False, exact_path=True)


def _confined(path: Path, roots: list[str]) -> tuple[Path, os.stat_result | None, JobError | None]:
    """The input's canonical path and stat (bytes in the outcome, and a result refused if the
    file changes while it is processed), walked down from its root without following a link
    (``paths.open_beneath``): nothing outside the roots is ever stat'ed, opened or measured."""
    try:
        fd, canonical = open_beneath(str(path), roots, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except PathThroughLink as exc:
        return path, None, JobError(ErrorCode.BAD_JOB_DATA, f"queue job data.input: {exc}", stage="intake", details={"field": "input"})
    except (BadPath, OSError):
        return path, None, None  # missing or unreadable: the lifecycle's file check reports it
    try:
        return Path(canonical), os.fstat(fd), None
    finally:
        os.close(fd)


def find_published(outbox: Path, stem: str, job_id: str) -> tuple[Path, dict[str, Any]] | None:
    """An outcome in the outbox written for ``job_id`` (among ``stem``, ``stem~2``, ...)."""
    needle = json.dumps(job_id).encode()
    for n in range(1, 10_000):
        candidate = stem if n == 1 else f"{stem}~{n}"
        paths = [outbox / (candidate + suffix) for suffix in (RESULT_SUFFIX, ERROR_SUFFIX)]
        existing = [path for path in paths if os.path.exists(path)]
        if not existing:
            return None
        for path in existing:
            with open(path, "rb") as handle:
                if needle in handle.read(HEAD_BYTES):
                    return path, json.loads(path.read_bytes())
    return None
