"""A BullMQ job as posed sees it: validated data, the input mapped to this host, its ids.

The job data is untrusted in the same way a sidecar is: anything wrong with it becomes
``JobError(E_BAD_JOB_DATA)`` naming the field, which the daemon turns into an error report
and a failure without retry (retrying cannot fix the data). The contract is the JSON Schema
``daemon/schemas/queue-job.schema.json``, which the Node side can validate against too; the
path rules (Windows or POSIX, confinement to ``intake.input_roots``) are ``daemon/paths.py``'s.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from daemon.errors import ErrorCode, JobError
from daemon.publishing.naming import safe_stem
from daemon.paths import BadPath, to_windows, to_wsl
from daemon.records import JobOptions
from daemon.config import VIDEO_EXTENSIONS
from daemon.intake.sidecar import (
    MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MESSAGE_PREFIX, JobSidecar, check_job_id, job_id_takes_a_video_name, parse_options,
    too_deep,
)

JOB_NAME = "pose"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "queue-job.schema.json"
_ERROR_CODE_PREFIX = re.compile(r"^(E_[A-Z0-9_]+):")


@dataclass(frozen=True)
class QueueJob:
    """One BullMQ job locked for this daemon.

    ``problem`` is set when the data is unusable; such a job is still ours to fail (with the
    problem's code, without retry), so it carries everything needed to report it.
    """

    queue: str
    id: str  # BullMQ's job id
    token: str  # BullMQ's lock token: every state change is fenced on it
    name: str
    job_id: str  # posed's id, in results and logs: unique per enqueue, shared by its retries
    stem: str  # outcome files: <outbox>/<stem>.result.json | .error.json
    attempts_made: int  # failed attempts before this one
    attempts: int  # the producer's ``attempts`` option (1 when unset)
    previous_error_code: str | None  # the code of the last failed attempt, if any
    input_path: Path | None = None  # WSL/POSIX form, already confined to the roots
    input_windows_path: str | None = None
    options: JobOptions = JobOptions()
    client: dict[str, Any] | None = None  # {"job_id", "metadata"} echoed in the outcome
    problem: JobError | None = None

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self.attempts_made + 1

    @property
    def last_attempt(self) -> bool:
        """A retryable failure now is final: its error report must be published."""
        return self.attempt >= self.attempts


def read_job(bull_job: Any, token: str, queue: str, roots: list[str], distro: str | None = None, *,
             unparsed: dict[str, str] | None = None, extensions: list[str] | None = None) -> QueueJob:
    """Map a ``bullmq.Job`` fetched with ``token`` to a ``QueueJob`` (never raises on bad data).

    ``unparsed``: the raw fields left unparsed because they were out of bounds (``bounded_json``)."""
    opts = bull_job.opts or {}
    attempts_made = int(bull_job.attemptsMade or 0)
    base = dict(
        queue=queue,
        id=str(bull_job.id),
        token=token,
        name=str(bull_job.name),
        job_id=f"bullmq:{queue}:{bull_job.id}:{bull_job.timestamp}",
        stem=safe_stem(f"{queue}-{bull_job.id}"),
        attempts_made=attempts_made,
        attempts=max(1, int(opts.get("attempts") or 1)),
        previous_error_code=_error_code(bull_job.failedReason) if attempts_made else None,
    )
    try:
        if unparsed:
            field, why = sorted(unparsed.items())[0]
            raise JobError(ErrorCode.BAD_JOB_DATA, f"queue job {field}: {why}", stage="intake", details={"field": field})
        parsed = _parse(bull_job.name, bull_job.data, roots, distro, extensions or list(VIDEO_EXTENSIONS))
    except JobError as problem:
        return QueueJob(**base, problem=problem)
    if getattr(bull_job, "deferredFailure", None):  # BullMQ's stalled checker gave up on it: answer, do not rerun
        problem = JobError(ErrorCode.QUEUE_STALLED, f"BullMQ failed the job: {bull_job.deferredFailure} (its lock ran out more "
                           "than intake.max_stalled_count times)", stage="intake", details={"stalled": getattr(bull_job, "stalledCounter", None)})  # fmt: skip
        return QueueJob(**(base | parsed), problem=problem)
    return QueueJob(**(base | parsed))


def failure_reason(code: str, message: str, report_path: str | None) -> str:
    """BullMQ's ``failedReason``: the code first, so Node can switch on ``reason.split(':')[0]``."""
    reason = f"{code}: {message}"
    return f"{reason} (report: {report_path})" if report_path else reason


def _parse(name: str, data: Any, roots: list[str], distro: str | None, extensions: list[str]) -> dict[str, Any]:
    if name != JOB_NAME:
        raise _bad(None, f"the job is named {name!r}; posed processes jobs named {JOB_NAME!r}")
    if isinstance(data, dict):
        _check_job_id(data.get("job_id"))  # before the schema: its words, not the schema's
    _check_schema(data)
    try:
        input_path = to_wsl(data["input"], roots, distro=distro)
        windows_path = to_windows(input_path, distro=distro)
    except BadPath as exc:
        raise _bad("input", str(exc)) from None
    client_id = data.get("job_id")
    if client_id is not None and job_id_takes_a_video_name(client_id, os.path.basename(input_path), extensions):
        raise _bad("job_id", f"{client_id!r} looks like a video file name; it may only be the input's own name "
                             f"({os.path.basename(input_path)!r}), or another upload's outcome could carry it")  # fmt: skip
    metadata = data.get("metadata")
    _check_metadata(metadata)
    try:  # the sidecar's own rules, so both intakes take exactly the same options
        sidecar = JobSidecar(job_id=client_id, options=parse_options(data.get("options")), metadata=metadata)
        options = sidecar.job_options(JobOptions())  # raises for end_frame <= start_frame
    except JobError as exc:  # reported as the queue's own error, not a sidecar's
        raise JobError(ErrorCode.BAD_JOB_DATA, f"queue job data: {exc.message.removeprefix(MESSAGE_PREFIX)}", stage="intake",
                       details=exc.details) from None  # fmt: skip
    parsed: dict[str, Any] = dict(input_path=Path(input_path), input_windows_path=windows_path, options=options)
    if client_id is not None or metadata is not None:
        parsed["client"] = sidecar.client_echo()
    if client_id is not None:
        parsed["stem"] = safe_stem(client_id)
    return parsed


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _check_job_id(value: Any) -> None:
    """The sidecar's rules (issue 21 item 5): device names COM0-9/LPT0-9 with any extension too."""
    try:
        check_job_id(value)
    except JobError as exc:
        raise _bad("job_id", exc.message.removeprefix(f"{MESSAGE_PREFIX}job_id ")) from None


def _check_schema(data: Any) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = ".".join(str(part) for part in first.absolute_path) or None
        raise _bad(field, first.message)


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if too_deep(metadata):
        raise _bad("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep")
    try:
        # Counted as the sidecar counts it (compact JSON), so one limit holds for both intakes.
        size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        raise _bad("metadata", "holds a value JSON cannot carry back (Infinity, NaN or a lone surrogate)") from None
    if size > MAX_METADATA_BYTES:
        raise _bad("metadata", f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are echoed back")


def _error_code(reason: Any) -> str | None:
    match = _ERROR_CODE_PREFIX.match(reason) if isinstance(reason, str) else None
    return match.group(1) if match else None


def _bad(field: str | None, problem: str) -> JobError:
    where = f"data.{field}" if field else "data"
    return JobError(ErrorCode.BAD_JOB_DATA, f"queue job {where}: {problem}", stage="intake", details={"field": field})
