"""Exports on a full outbox (issue 21, item 14): nothing left behind, and a configurable answer to
"is a requested export part of the result?".

A real tmpfs is the outbox (the status file has its own, so it can still say ``degraded``). Each
try on the full disk fails; the temp files of the result *and of its exports* (the GLB's row
files and folder, the preview's encoder output, timestamps and faststart copy) must be gone
after every failed try. With ``output.exports_required=true`` an export the disk refused makes
the whole try fail as an outbox fault, retried later; with the default ``false`` the result goes
out without it and ``warnings`` says why.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemon_harness import SHORT_CLIP, DaemonProcess, drop, outcomes, wait_outcome
from tests.helpers import wait_until
from tests.test_hostile_fs import fill, tmpfs

EXPORTS = ["output.preview=true", "output.motion_glb=true", "outbox.publish_retry_s=1"]


def _events(daemon: DaemonProcess, name: str) -> list[dict]:
    return [e for e in daemon.log_events() if e.get("event") == name]


def _tmp_entries(outbox: Path) -> list[str]:
    return sorted(os.listdir(outbox / ".tmp")) if (outbox / ".tmp").is_dir() else []


def _exports_of(result: dict) -> set[str]:
    return {kind for kind in ("motion", "preview") if kind in result["files"]}


def test_failed_tries_on_a_full_outbox_leave_no_export_temp_files(daemons, tmp_path) -> None:
    with tmpfs(tmp_path / "outbox", "4m") as outbox, tmpfs(outbox / ".posed", "1m"):
        daemon = daemons(overrides=EXPORTS).wait_ready(120)
        filler = fill(outbox)
        drop(SHORT_CLIP, daemon.inbox, "full.mp4")
        wait_until(lambda: len(_events(daemon, "job.deferred")) >= 3, 120, daemon.log_tail)
        # Between tries (the input released, waiting out publish_retry_s) nothing of a try remains.
        wait_until(lambda: not daemon.status().get("current_job") and not _tmp_entries(outbox), 30,
                   lambda: f"left in outbox/.tmp: {_tmp_entries(outbox)}")  # fmt: skip
        assert (daemon.inbox / "full.mp4").is_file() and "full.mp4.result.json" not in outcomes(outbox)

        filler.unlink()
        kind, result = wait_outcome(outbox, "full.mp4", timeout=120)
        assert kind == "result" and _exports_of(result) == {"motion", "preview"}
        wait_until(lambda: not _tmp_entries(outbox), 30, lambda: f"left in outbox/.tmp: {_tmp_entries(outbox)}")
        assert daemon.stop() == 0


def _room_for_the_result_only(outbox: Path) -> Path:
    """Fill the disk but for about the frames file and manifest of the short clip (~150 KB),
    well short of a preview's encoder output and its faststart copy."""
    filler = fill(outbox)
    with open(filler, "r+b") as handle:
        handle.truncate(os.path.getsize(filler) - 192 * 1024)
    return filler


def test_an_export_the_disk_refused_is_left_out_with_a_warning_by_default(daemons, tmp_path) -> None:
    with tmpfs(tmp_path / "outbox", "4m") as outbox, tmpfs(outbox / ".posed", "1m"):
        daemon = daemons(overrides=[*EXPORTS, "output.motion_glb=false"]).wait_ready(120)
        _room_for_the_result_only(outbox)
        drop(SHORT_CLIP, daemon.inbox, "optional.mp4")
        kind, result = wait_outcome(outbox, "optional.mp4", timeout=120)
        assert kind == "result" and "preview" not in result["files"]
        assert result["summary"]["exports"]["failed"] == 1
        assert any("preview" in warning and "No space left" in warning for warning in result["warnings"]), result.get("warnings")
        wait_until(lambda: not _tmp_entries(outbox), 30, lambda: f"left in outbox/.tmp: {_tmp_entries(outbox)}")


def test_a_required_export_the_disk_refused_retries_the_video_until_it_can_be_made(daemons, tmp_path) -> None:
    with tmpfs(tmp_path / "outbox", "4m") as outbox, tmpfs(outbox / ".posed", "1m"):
        daemon = daemons(overrides=[*EXPORTS, "output.motion_glb=false", "output.exports_required=true"]).wait_ready(120)
        filler = _room_for_the_result_only(outbox)
        drop(SHORT_CLIP, daemon.inbox, "required.mp4")
        wait_until(lambda: len(_events(daemon, "job.deferred")) >= 2, 120, daemon.log_tail)
        assert any("No space left" in e["reason"] for e in _events(daemon, "job.deferred"))
        assert "required.mp4.result.json" not in outcomes(outbox), "published without its required preview"
        assert daemon.status()["counters"]["errors"] == 0

        filler.unlink()
        kind, result = wait_outcome(outbox, "required.mp4", timeout=120)
        assert kind == "result" and "preview" in result["files"] and not result.get("warnings")
        wait_until(lambda: not _tmp_entries(outbox), 30, lambda: f"left in outbox/.tmp: {_tmp_entries(outbox)}")
