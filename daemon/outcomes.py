"""What happens to a job's files once it has an outcome.

Builds error reports, publishes documents into the outbox, moves the input to ``done/`` or
``failed/`` (only after its outcome is published), notices an input that was replaced or
deleted mid-job, and sweeps temp files left by a daemon that was killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError
from daemon.job import utc_now
from daemon.log import get_logger
from daemon.publish import TMP_DIR, move_to, publish_document, write_json_tmp

log = get_logger(__name__)

ERROR_SCHEMA = "posed.error"
ERROR_SCHEMA_VERSION = "1.0"


class OutcomeWriter:
    def __init__(self, cfg: PosedConfig, outbox: Path) -> None:
        self._cfg = cfg
        self.outbox = outbox
        inbox = Path(cfg.inbox.path)
        self.dirs = {
            "done": Path(cfg.inbox.done_dir) if cfg.inbox.done_dir else inbox / "done",
            "failed": Path(cfg.inbox.failed_dir) if cfg.inbox.failed_dir else inbox / "failed",
        }

    def input_info(self, path: Path, stat: os.stat_result | None) -> dict[str, Any]:
        """The input as both sides name it: the WSL path and, where it maps, the Windows path."""
        absolute = os.path.abspath(path)
        return {
            "name": path.name,
            "path": absolute,
            "windows_path": _windows_form(absolute),
            "bytes": stat.st_size if stat is not None else None,
        }

    def error_document(
        self, job_id: str, input_info: dict[str, Any], error: dict[str, Any], attempts: int, client: dict[str, Any] | None
    ) -> dict[str, Any]:
        document = {
            "schema": ERROR_SCHEMA,
            "schema_version": ERROR_SCHEMA_VERSION,
            "status": "error",
            "job_id": job_id,
            "input": input_info,
            "error": error,
            "attempts": attempts,
            "created_at": utc_now(),
        }
        if client is not None:
            document["client"] = client
        return document

    def publish(self, tmp_path: Path, wanted_stem: str, suffix: str) -> Path:
        return publish_document(tmp_path, self.outbox, wanted_stem, suffix, deadline_s=self._cfg.outbox.publish_retry_s)

    def publish_json(self, document: dict[str, Any], wanted_stem: str, suffix: str) -> Path:
        tmp = write_json_tmp(self.outbox, suffix.strip("."), document)
        try:
            return self.publish(tmp, wanted_stem, suffix)
        finally:
            tmp.unlink(missing_ok=True)

    def move_input(self, path: Path, outcome: str) -> Path | None:
        """Move the input out of the inbox; its outcome is already published, so a failure
        here only leaves the file in place (logged), never loses anything."""
        try:
            return move_to(path, self.dirs[outcome], deadline_s=self._cfg.outbox.publish_retry_s)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("input.move_failed", input=path.name, to=str(self.dirs[outcome]), error=str(exc))
            return None

    def input_changed(self, path: Path, before: os.stat_result) -> JobError | None:
        """A result describes the bytes we read; refuse it if the input changed under us."""
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return JobError(ErrorCode.INPUT_VANISHED, f"{path.name} was deleted while it was being processed", stage="publish")
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            return JobError(ErrorCode.INPUT_CHANGED, f"{path.name} was replaced or modified while it was being processed", stage="publish")
        return None

    def sweep_stale_tmp(self, max_age_s: float) -> int:
        """Remove temp files nobody has written to for a while (their writer was killed)."""
        removed = 0
        cutoff = time.time() - max_age_s
        tmp = self.outbox / TMP_DIR
        for entry in os.scandir(tmp) if tmp.is_dir() else []:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("outbox.swept_tmp", removed=removed)
        return removed


def _windows_form(path: str) -> str | None:
    try:
        from daemon.paths import to_windows
    except ImportError:
        return None
    try:
        return to_windows(path)
    except Exception:  # noqa: BLE001 - a path that has no Windows form is simply reported as null
        return None
