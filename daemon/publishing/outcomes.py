"""What happens to a job's files once it has an outcome.

Builds error reports, publishes documents into the outbox, moves the input to ``done/`` or
``failed/`` (only after its outcome is published), notices an input that was replaced or
deleted mid-job, and sweeps temp files left by a daemon that was killed.

An input whose outcome is published but which cannot be moved (Windows holds it open, the
outcome folder is a symlink or unwritable) is remembered and the move retried; it is never
processed again while it is the same file, or it would get a second outcome (issue 5).

A daemon can also die (``kill -9``) between publishing an outcome and moving the input. So,
just before an outcome takes its final name, a receipt ``<outbox>/.posed/receipts/<key>.json``
records the input's identity, the final name and the job id; it is deleted once the input has
moved. Whoever claims the input next finds the receipt, sees the published outcome, and only
moves the input: a second outcome is never made for the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobError, PublishError
from daemon.clock import utc_now
from daemon.log import get_logger
from daemon.publishing.naming import OUTPUT_SUFFIXES, RESULT_SUFFIX, printable_name
from daemon.publishing.publish import (
    FATAL,
    TMP_DIR,
    companion_tmp_path,
    free_name_in,
    move_to,
    publish_document,
    publish_set,
    replace_json,
    write_json_tmp,
)
from daemon.paths import sidecar_path_for

log = get_logger(__name__)

ERROR_SCHEMA = "posed.error"
ERROR_SCHEMA_VERSION = "1.0"
RECEIPTS_DIR = Path(".posed") / "receipts"
RECEIPT_SCAN_BYTES = 64 * 1024  # a result names its job id in the header, at the very start
# How an OSError looks once the worker has turned it into an error message: "[Errno 28] ...".
_OUTBOX_FAULT_MARKS = tuple(f"[Errno {code}]" for code in sorted(FATAL))


@dataclass(frozen=True)
class Receipt:
    """Which input an outcome being published belongs to, and where it goes afterwards."""

    input_path: Path
    input_stat: os.stat_result
    job_id: str
    outcome: str  # "done" | "failed"


class OutcomeWriter:
    def __init__(self, cfg: PosedConfig, outbox: Path) -> None:
        self._cfg = cfg
        self.outbox = outbox
        inbox = Path(cfg.inbox.path)
        self.dirs = {
            "done": Path(cfg.inbox.done_dir) if cfg.inbox.done_dir else inbox / "done",
            "failed": Path(cfg.inbox.failed_dir) if cfg.inbox.failed_dir else inbox / "failed",
        }
        # input -> (outcome folder, (inode, size, mtime_ns), next attempt): published, not moved
        self.unmoved: dict[Path, tuple[str, tuple[int, int, int], float]] = {}

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
                self._write_receipt(receipt, final)

        try:
            return publish_document(
                tmp_path, self.outbox, wanted_stem, suffix, deadline_s=self._cfg.outbox.publish_retry_s, before_link=write_receipt
            )
        except PublishError:
            if receipt is not None:
                self._drop_receipt(receipt.input_path)
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
            written.append(write_json_tmp(self.outbox, "manifest", draft))
            return RESULT_SUFFIX, written[-1]

        def write_receipt(stem: str) -> None:
            if receipt is not None:
                companions = [f"{stem}{OUTPUT_SUFFIXES[kind]}" for kind in kinds]
                self._write_receipt(receipt, self.outbox / f"{stem}{RESULT_SUFFIX}", companions)

        try:
            _, final = publish_set(parts, self.outbox, wanted_stem, last=manifest_for,
                                   deadline_s=self._cfg.outbox.publish_retry_s, before_link=write_receipt)
        except PublishError:
            if receipt is not None:
                self._drop_receipt(receipt.input_path)
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
        tmp = write_json_tmp(self.outbox, suffix.strip("."), document)
        try:
            return self.publish(tmp, wanted_stem, suffix, receipt)
        finally:
            with contextlib.suppress(OSError):  # read-only outbox: the stale-tmp sweep gets it
                tmp.unlink(missing_ok=True)

    # -- receipts: exactly one outcome even when a daemon dies between publish and move --------

    def _receipt_path(self, input_path: Path) -> Path:
        key = hashlib.sha1(os.fsencode(os.path.abspath(input_path))).hexdigest()
        return self.outbox / RECEIPTS_DIR / f"{key}.json"

    def _write_receipt(self, receipt: Receipt, final: Path, companions: list[str] | None = None) -> None:
        path = self._receipt_path(receipt.input_path)
        document = {
            "input_path": os.fsencode(os.path.abspath(receipt.input_path)).hex(),
            "signature": list(_signature(receipt.input_stat)),
            "job_id": receipt.job_id,
            "outcome": receipt.outcome,
            "final": final.name,
            "companions": companions or [],  # published before ``final``: orphans if it never came
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_json(path, document, deadline_s=self._cfg.outbox.publish_retry_s)
        except OSError as exc:  # without a receipt, exactly-once cannot be promised: do not publish
            raise PublishError(f"writing the publish receipt failed: {exc}") from exc

    def _drop_receipt(self, input_path: Path) -> None:
        with contextlib.suppress(OSError):
            self._receipt_path(input_path).unlink(missing_ok=True)

    def published_before(self, path: Path, stat: os.stat_result) -> str | None:
        """The outcome folder for an input whose outcome a daemon published but did not get to
        move (it was killed in between); None when it still needs processing."""
        try:
            raw = self._receipt_path(path).read_bytes()
        except OSError:
            return None  # no receipt: nobody published anything for it
        receipt = None
        try:
            receipt = json.loads(raw)
            same_file = receipt["signature"] == list(_signature(stat))
            published = same_file and _names_job(self.outbox / receipt["final"], receipt["job_id"])
        except (OSError, ValueError, KeyError, TypeError):
            published = False
        if not published:
            self._remove_orphans(receipt)
            self._drop_receipt(path)  # the publish never happened, or it was about another file
            return None
        log.warning("job.already_published", input=path.name, published=receipt["final"], job_id=receipt["job_id"])
        return str(receipt["outcome"])

    def _remove_orphans(self, receipt: Any) -> None:
        """Companions a daemon published before dying ahead of their manifest: no manifest names
        them, and their stem stayed reserved by them, so no other result can own them. Removing
        them lets the rerun publish a consistent set under the same name."""
        if not isinstance(receipt, dict) or (self.outbox / str(receipt.get("final", ""))).exists():
            return
        for name in receipt.get("companions") or []:
            orphan = self.outbox / str(name)
            if orphan.parent == self.outbox and orphan.is_file():
                with contextlib.suppress(OSError):
                    orphan.unlink()
                    log.warning("outbox.orphan_removed", file=orphan.name, job_id=receipt.get("job_id"))

    def finish_if_published(self, path: Path, stat: os.stat_result) -> bool:
        """Move an input whose outcome is already published (see ``published_before``)."""
        outcome = self.published_before(path, stat)
        if outcome not in self.dirs:
            return False
        self.move_input(path, outcome)
        if os.path.lexists(sidecar_path_for(path)):
            self.move_input(sidecar_path_for(path), outcome)
        return True

    def move_input(self, path: Path, outcome: str) -> Path | None:
        """Move the input out of the inbox; its outcome is already published, so a failure
        here only leaves the file in place (logged), never loses anything."""
        try:
            moved = move_to(path, self.dirs[outcome], deadline_s=self._cfg.outbox.publish_retry_s)
        except OSError as exc:
            if not os.path.lexists(path):
                self._drop_receipt(path)
                return None  # gone already: nothing to move, nothing that could be processed twice
            retry_in = self._cfg.outbox.publish_retry_s
            log.error("input.move_failed", input=path.name, to=str(self.dirs[outcome]), error=str(exc), retry_in_s=retry_in)
            try:
                self.unmoved[path] = (outcome, _signature(os.stat(path, follow_symlinks=False)), time.monotonic() + retry_in)
            except OSError:
                pass
            return None  # the receipt stays: after a restart the input is still not processed twice
        self._drop_receipt(path)
        return moved

    def already_settled(self, path: Path) -> bool:
        """True for an input whose outcome is published but which is still in the inbox.

        A file with a different identity under the same name is a new upload and is not held.
        """
        entry = self.unmoved.get(path)
        if entry is None:
            return False
        try:
            now = _signature(os.stat(path, follow_symlinks=False))
        except OSError:
            now = None
        if now != entry[1]:
            del self.unmoved[path]
            return False
        return True

    def retry_moves(self, now: float) -> None:
        """Try again to move published inputs that could not be moved earlier."""
        for path, (outcome, _, due) in list(self.unmoved.items()):
            if now < due or not self.already_settled(path):
                continue
            try:
                moved = move_to(path, self.dirs[outcome], deadline_s=1.0)
            except OSError as exc:
                if not os.path.lexists(path):
                    del self.unmoved[path]
                    self._drop_receipt(path)
                    continue
                retry_in = self._cfg.outbox.publish_retry_s
                self.unmoved[path] = (outcome, self.unmoved[path][1], now + retry_in)
                log.warning("input.move_failed", input=path.name, to=str(self.dirs[outcome]), error=str(exc), retry_in_s=retry_in)
                continue
            del self.unmoved[path]
            self._drop_receipt(path)
            if os.path.lexists(sidecar_path_for(path)):
                self.move_input(sidecar_path_for(path), outcome)
            log.info("input.moved_late", input=path.name, input_now=str(moved) if moved else None)

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
        receipts = self.outbox / RECEIPTS_DIR
        for entry in os.scandir(receipts) if receipts.is_dir() else []:
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                input_path = os.fsdecode(bytes.fromhex(json.loads(Path(entry.path).read_bytes())["input_path"]))
                if not os.path.lexists(input_path):  # moved after all; the receipt outlived its daemon
                    os.unlink(entry.path)
                    removed += 1
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if removed:
            log.info("outbox.swept_tmp", removed=removed)
        return removed


def destination(dest_dir: Path, path: Path) -> dict[str, Any]:
    """Where ``path`` will be once its outcome is published and it is moved into ``dest_dir``
    (done/ or failed/), for ``input.moved_to``: the document outlives the input's inbox place."""
    moved_to = os.path.abspath(dest_dir / free_name_in(dest_dir, path.name))
    return {"moved_to": printable_name(moved_to), "moved_to_windows_path": _windows_form(moved_to)}


def _signature(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _names_job(published: Path, job_id: str) -> bool:
    """Whether a published document is the one written for ``job_id`` (job ids are unique)."""
    with open(published, "rb") as handle:
        head = handle.read(RECEIPT_SCAN_BYTES)
    return json.dumps(job_id, ensure_ascii=False).encode("utf-8", "replace") in head


def _windows_form(path: str) -> str | None:
    try:
        from daemon.paths import to_windows
    except ImportError:
        return None
    try:
        return to_windows(path)
    except Exception:  # noqa: BLE001 - a path that has no Windows form is simply reported as null
        return None
