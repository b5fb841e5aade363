"""Receipts, and moving answered inputs on: exactly one outcome per input, even across crashes.

A daemon can die (``kill -9``) between publishing an outcome and moving its input. So, just
before an outcome takes its final name, a receipt ``<outbox>/.posed/receipts/<key>.json``
records the input's identity, the final name, the job id and the companion files published
before it; it is deleted once the input has moved. Whoever claims the input next finds the
receipt, sees the published outcome, and only moves the input: a second outcome is never made
for the same file. If the manifest never came, the companions it lists are orphans of the dead
publish and are removed, so the rerun publishes a consistent set under the same name.

An input whose outcome is published but which cannot be moved (Windows holds it open, the
outcome folder is a symlink or unwritable) is remembered and the move retried; it is never
processed again while it is the same file.
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
from daemon.errors import PublishError
from daemon.log import get_logger
from daemon.paths import sidecar_path_for
from daemon.publishing.publish import TRANSIENT, PublishBlocked, move_to, replace_json

log = get_logger(__name__)

RECEIPTS_DIR = Path(".posed") / "receipts"
RECEIPT_SCAN_BYTES = 64 * 1024  # a result names its job id in the header, at the very start


@dataclass(frozen=True)
class Receipt:
    """Which input an outcome being published belongs to, and where it goes afterwards."""

    input_path: Path
    input_stat: os.stat_result
    job_id: str
    outcome: str  # "done" | "failed"


class AnsweredInputs:
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

    def _receipt_path(self, input_path: Path) -> Path:
        key = hashlib.sha1(os.fsencode(os.path.abspath(input_path))).hexdigest()
        return self.outbox / RECEIPTS_DIR / f"{key}.json"

    def write_receipt(self, receipt: Receipt, final: Path, companions: list[str] | None = None) -> None:
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
            replace_json(path, document)
        except OSError as exc:  # without a receipt, exactly-once cannot be promised: do not publish
            kind = PublishBlocked if exc.errno in TRANSIENT else PublishError
            raise kind(f"writing the publish receipt failed: {exc}") from exc

    def drop_receipt(self, input_path: Path) -> None:
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
            self.drop_receipt(path)  # the publish never happened, or it was about another file
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
            moved = move_to(path, self.dirs[outcome], deadline_s=0.0)  # blocked: retry_moves, later
        except OSError as exc:
            if _vanished(path):
                self.drop_receipt(path)
                return None  # gone already: nothing to move, nothing that could be processed twice
            retry_in = self._cfg.outbox.publish_retry_s
            log.error("input.move_failed", input=path.name, to=str(self.dirs[outcome]), error=str(exc), retry_in_s=retry_in)
            try:
                self.unmoved[path] = (outcome, _signature(os.stat(path, follow_symlinks=False)), time.monotonic() + retry_in)
            except OSError:
                pass
            return None  # the receipt stays: after a restart the input is still not processed twice
        self.drop_receipt(path)
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
                moved = move_to(path, self.dirs[outcome], deadline_s=0.0)
            except OSError as exc:
                if _vanished(path):
                    del self.unmoved[path]
                    self.drop_receipt(path)
                    continue
                retry_in = self._cfg.outbox.publish_retry_s
                self.unmoved[path] = (outcome, self.unmoved[path][1], now + retry_in)
                log.warning("input.move_failed", input=path.name, to=str(self.dirs[outcome]), error=str(exc), retry_in_s=retry_in)
                continue
            del self.unmoved[path]
            self.drop_receipt(path)
            if os.path.lexists(sidecar_path_for(path)):
                self.move_input(sidecar_path_for(path), outcome)
            log.info("input.moved_late", input=path.name, input_now=str(moved) if moved else None)


    def sweep_stale_receipts(self, max_age_s: float) -> int:
        """Remove receipts whose input has left the inbox (temp files: ``publishing.tmp_sweep``)."""
        removed = 0
        cutoff = time.time() - max_age_s
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
            log.info("outbox.swept_receipts", removed=removed)
        return removed


def _vanished(path: Path) -> bool:
    """Provably gone. ``os.path.lexists`` says False for an inbox we may not read (chmod 000),
    and dropping the receipt then would let the input be processed a second time."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _signature(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _names_job(published: Path, job_id: str) -> bool:
    """Whether a published document is the one written for ``job_id`` (job ids are unique)."""
    with open(published, "rb") as handle:
        head = handle.read(RECEIPT_SCAN_BYTES)
    return json.dumps(job_id, ensure_ascii=False).encode("utf-8", "replace") in head
