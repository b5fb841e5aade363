"""Getting a job's outcome into the outbox: error reports, results with their companions.

Builds error reports, publishes documents (a result: its frames and exports first, the
manifest last), notices an input that was replaced or deleted mid-job, and tells an outbox
fault from a failure of the video. What happens to the input afterwards (receipts, moving it
to ``done/`` or ``failed/``) is ``receipts.AnsweredInputs``, reached as ``.answered``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError, PublishError
from daemon.clock import utc_now
from daemon.log import get_logger
from daemon.publishing.naming import OUTPUT_SUFFIXES, RESULT_SUFFIX, printable_name
from daemon.publishing.publish import (
    FATAL,
    companion_tmp_path,
    free_name_in,
    publish_document,
    publish_set,
    write_json_tmp,
)
from daemon.publishing.receipts import AnsweredInputs, Receipt

log = get_logger(__name__)

ERROR_SCHEMA = "posed.error"
ERROR_SCHEMA_VERSION = "1.0"
# How an OSError looks once the worker has turned it into an error message: "[Errno 28] ...".
_OUTBOX_FAULT_MARKS = tuple(f"[Errno {code}]" for code in sorted(FATAL))


class OutcomeWriter:
    def __init__(self, cfg: PosedConfig, outbox: Path, tmp_owner: str = "") -> None:
        self._cfg = cfg
        self.outbox = outbox
        self.tmp_owner = tmp_owner  # starts every temp file name: see publishing.tmp_sweep
        self.answered = AnsweredInputs(cfg, outbox)  # receipts, and moving answered inputs on

    def input_info(self, path: Path, stat: os.stat_result | None) -> dict[str, Any]:
        """The input as both sides name it: the WSL path and, where it maps, the Windows path."""
        absolute = os.path.abspath(path)
        return {
            "name": printable_name(path.name),
            "path": printable_name(absolute),
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

    def publish(self, tmp_path: Path, wanted_stem: str, suffix: str, receipt: Receipt | None = None) -> Path:
        def write_receipt(final: Path) -> None:
            if receipt is not None:
                self.answered.write_receipt(receipt, final)

        try:
            return publish_document(
                # deadline 0: a rename Windows blocks raises PublishBlocked at once; the caller
                # schedules the retry (publishing.scheduled) instead of sleeping on the main loop.
                tmp_path, self.outbox, wanted_stem, suffix, deadline_s=0.0, before_link=write_receipt
            )
        except PublishError:
            if receipt is not None:
                self.answered.drop_receipt(receipt.input_path)
            raise

    def publish_result(self, draft_tmp: Path, wanted_stem: str, receipt: Receipt | None = None) -> Path:
        """Publish a result's companions (frames, exports), then its manifest, under one stem.

        The manifest draft (written by the worker) gets the companions' final names here, the
        only moment they are known. Returns the manifest's published path.
        """
        draft = json.loads(draft_tmp.read_bytes())
        kinds = list(draft.get("files", {}))
        parts = [(OUTPUT_SUFFIXES[kind], companion_tmp_path(draft_tmp, kind)) for kind in kinds]
        written: list[Path] = []

        def manifest_for(stem: str) -> tuple[str, Path]:
            for kind in kinds:
                draft["files"][kind]["name"] = f"{stem}{OUTPUT_SUFFIXES[kind]}"
            self._discard(written)  # from an earlier stem that another daemon took first
            written.append(write_json_tmp(self.outbox, "manifest", draft, self.tmp_owner))
            return RESULT_SUFFIX, written[-1]

        def write_receipt(stem: str) -> None:
            if receipt is not None:
                companions = [f"{stem}{OUTPUT_SUFFIXES[kind]}" for kind in kinds]
                self.answered.write_receipt(receipt, self.outbox / f"{stem}{RESULT_SUFFIX}", companions)

        try:
            # deadline 0: a rename Windows blocks raises PublishBlocked at once; the caller
            # schedules the retry (publishing.scheduled) instead of sleeping on the main loop.
            _, final = publish_set(parts, self.outbox, wanted_stem, last=manifest_for, deadline_s=0.0, before_link=write_receipt)
        except PublishError:
            if receipt is not None:
                self.answered.drop_receipt(receipt.input_path)
            raise
        finally:
            self._discard(written)
        self._discard([draft_tmp])
        return final

    @staticmethod
    def _discard(paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):  # read-only outbox: the stale-tmp sweep gets it
                path.unlink(missing_ok=True)
        paths.clear()

    def publish_json(self, document: dict[str, Any], wanted_stem: str, suffix: str, receipt: Receipt | None = None) -> Path:
        tmp = write_json_tmp(self.outbox, suffix.strip("."), document, self.tmp_owner)
        try:
            return self.publish(tmp, wanted_stem, suffix, receipt)
        finally:
            with contextlib.suppress(OSError):  # read-only outbox: the stale-tmp sweep gets it
                tmp.unlink(missing_ok=True)

    def input_changed(self, path: Path, before: os.stat_result) -> JobError | None:
        """A result describes the bytes we read; refuse it if the input changed under us."""
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return JobError(ErrorCode.INPUT_VANISHED, f"{path.name} was deleted while it was being processed", stage="publish")
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            return JobError(ErrorCode.INPUT_CHANGED, f"{path.name} was replaced or modified while it was being processed", stage="publish")
        return None

    def outbox_fault(self, error: dict[str, Any]) -> str | None:
        """The reason, when a job failed only because its result could not be written into the
        outbox (full, read-only, over quota): such a job is retried later, not reported.

        The worker reports an unexpected ``OSError`` as ``E_BACKEND`` with its text, so that
        text is where the errno shows (``[Errno 28] No space left on device``).
        """
        if error.get("code") not in (ErrorCode.BACKEND.value, ErrorCode.INTERNAL.value):
            return None
        message = str(error.get("message", ""))
        if any(mark in message for mark in _OUTBOX_FAULT_MARKS):
            return message
        return None

def destination(dest_dir: Path, path: Path) -> dict[str, Any]:
    """Where ``path`` will be once its outcome is published and it is moved into ``dest_dir``
    (done/ or failed/), for ``input.moved_to``: the document outlives the input's inbox place."""
    moved_to = os.path.abspath(dest_dir / free_name_in(dest_dir, path.name))
    return {"moved_to": printable_name(moved_to), "moved_to_windows_path": _windows_form(moved_to)}



def _windows_form(path: str) -> str | None:
    try:
        from daemon.paths import to_windows
    except ImportError:
        return None
    try:
        return to_windows(path)
    except Exception:  # noqa: BLE001 - a path that has no Windows form is simply reported as null
        return None
