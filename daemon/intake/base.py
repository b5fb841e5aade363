"""The seam between an intake and the rest of the daemon.

An intake finds inputs, claims them so no other daemon takes them, keeps the claim alive and,
once the input's outcome is published, settles it. The daemon loop and the job lifecycle only
ever talk to this interface, so the folder watcher and a job queue are interchangeable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from daemon.errors import JobError
from daemon.records import JobOptions


@dataclass
class ClaimedInput:
    """An input this daemon now holds, on its way to exactly one outcome."""

    path: Path
    job_id: str
    wanted_stem: str  # the outcome's name before the ``~N`` rule: the input's name or a client job id
    input_stat: os.stat_result | None = None
    options: JobOptions = JobOptions()
    client: dict[str, Any] | None = None  # echoed back in the outcome (sidecar or queue job data)
    refusal: JobError | None = None  # found bad before any worker ran: publish this error
    ticket: Any = None  # the intake's own handle: a lock-file claim, a queue job
    input_info: dict[str, Any] = field(default_factory=dict)  # filled by the lifecycle
    moves_input: bool = True  # settling moves the input away (folder); publish receipts make that exactly-once
    previous_attempts: int = 0  # started by daemons whose claim we took over: attempts count on
    exact_path: bool = False  # path is canonical and confined: every open proves it (paths.open_exact)


class SettledInputs(Protocol):
    """What a folder intake asks the publishing side about inputs it already answered."""

    def already_settled(self, path: Path) -> bool: ...

    def finish_if_published(self, path: Path, stat: os.stat_result) -> bool: ...

    def retry_moves(self, now: float) -> None: ...

    def move_input(self, path: Path, outcome: str) -> Path | None: ...


class Intake(Protocol):
    kind: str  # "folder" | "bullmq": shown in the status file

    def start(self) -> None:
        """Begin watching or connecting."""

    def stop(self) -> None:
        """Stop watching; claims still held are released by the lifecycle first."""

    def poll(self, now: float) -> None:
        """Collect inputs that became ready since the last tick."""

    def take(self) -> ClaimedInput | None:
        """The next input, claimed for this daemon (highest priority first), or None."""

    def refused(self) -> list[ClaimedInput]:
        """Claimed things that are not inputs at all (a symlink named like a video): each
        carries its ``refusal`` and gets an error report."""

    def keep_alive(self, held: list[ClaimedInput]) -> list[ClaimedInput]:
        """Refresh the claims of ``held``; return those another daemon has taken over."""

    def still_ours(self, item: ClaimedInput) -> bool:
        """The fence checked just before an outcome is published."""

    def settle(self, item: ClaimedInput, outcome: str, **facts: Any) -> Path | None:
        """The outcome is published: move the input on, drop the claim. Returns where the
        input is now, when it moved. ``facts``: ``published`` (the outcome's path) and the
        result's ``summary`` or the report's ``error``, for an intake that passes them on."""

    def progress(self, item: ClaimedInput, progress: dict[str, Any]) -> None:
        """Live progress of the input in the worker (frames done/total, frames/s, ETA, stage)."""

    def retry_later(self, item: ClaimedInput, error: dict[str, Any]) -> bool:
        """A crash, stall or out-of-memory: True when the intake has it run again later (a
        queue's attempts and backoff), so no error report is published for this attempt."""

    def release(self, item: ClaimedInput, *, retry_after_s: float | None = None) -> None:
        """Give the input back unanswered (shutdown, outbox fault); ``retry_after_s`` keeps
        this daemon from taking it again before then."""

    def sweep(self, now: float) -> None:
        """Periodic housekeeping: claims left by dead daemons."""

    def queue_length(self) -> int:
        """Inputs seen but not yet taken."""

    def degraded_reason(self) -> str | None:
        """Why the intake cannot deliver work right now (queue unreachable), or None."""
