"""What the daemon reads from the inbox (issue 10, items 1, 8, 12): nothing it reads may block,
loop or be read again and again.

A FIFO, a directory or any other non-regular file named like a sidecar gets its video an
``E_BAD_SIDECAR`` report; the sidecars of a long queue are read once per change, not once per
pick; a sidecar written in place is waited for until it stops changing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import JobError
from daemon.intake.folder import sidecar_cache
from daemon.intake.claim import ClaimIdentity
from daemon.intake.folder.intake import FolderIntake
from daemon.intake.sidecar import read_regular_file
from daemon.publishing.outcomes import OutcomeWriter
from tests.daemon_harness import SHORT_CLIP, drop, wait_outcome
from tests.helpers import wait_until

FAULT = ["backend.name=fault"]


def _heartbeat(daemon) -> str:
    return daemon.status().get("heartbeat_at", "")


@pytest.mark.parametrize("plant", ["fifo", "directory"])
def test_a_non_regular_sidecar_gets_its_video_an_error_report_and_never_freezes_the_loop(daemons, tmp_path: Path, plant: str) -> None:
    daemon = daemons(overrides=FAULT).wait_ready()
    sidecar = daemon.inbox / "planted.mp4.job.json"
    if plant == "fifo":
        os.mkfifo(sidecar)  # open() without O_NONBLOCK waits for a writer forever
    else:
        sidecar.mkdir()  # open() fails every time: the video looped claim/release
    drop(SHORT_CLIP, daemon.inbox, "planted.mp4")
    kind, report = wait_outcome(daemon.outbox, "planted.mp4", timeout=60)
    assert (kind, report["error"]["code"]) == ("error", "E_BAD_SIDECAR")
    assert "not a regular file" in report["error"]["message"]

    before = _heartbeat(daemon)
    drop(SHORT_CLIP, daemon.inbox, "after.mp4")  # the queue keeps flowing
    assert wait_outcome(daemon.outbox, "after.mp4", timeout=60)[0] == "result"
    wait_until(lambda: _heartbeat(daemon) > before, 20, "the status heartbeat stopped")
    wait_until(lambda: (daemon.inbox / "failed" / "planted.mp4").exists() and (daemon.inbox / "failed" / sidecar.name).exists(), 20)
    claims = [e for e in daemon.log_events() if e.get("event") == "claim.acquired" and e.get("video") == "planted.mp4"]
    assert len(claims) <= 2, f"claimed {len(claims)} times: it must not loop"
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0


def test_reading_a_fifo_or_directory_refuses_without_blocking(tmp_path: Path) -> None:
    fifo, directory = tmp_path / "a.job.json", tmp_path / "b.job.json"
    os.mkfifo(fifo)
    directory.mkdir()
    for path, words in ((fifo, "FIFO"), (directory, "directory")):
        with pytest.raises(JobError, match=words) as caught:
            read_regular_file(path, 1024)
        assert caught.value.code.value == "E_BAD_SIDECAR"
    big = tmp_path / "big.job.json"
    big.write_bytes(b" " * 10_000)
    assert len(read_regular_file(big, 100)) == 100, "reads are capped"


def _intake(tmp_path: Path) -> FolderIntake:
    cfg = load_config(overrides=[f"inbox.path={tmp_path / 'inbox'}", f"outbox.path={tmp_path / 'outbox'}"])
    (tmp_path / "inbox").mkdir()
    return FolderIntake(cfg, ClaimIdentity.current("test-instance"), OutcomeWriter(cfg, tmp_path / "outbox"))


def test_each_sidecar_is_read_once_per_change_however_long_the_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    intake = _intake(tmp_path)
    reads: list[Path] = []
    real_read = sidecar_cache.read_sidecar
    monkeypatch.setattr(sidecar_cache, "read_sidecar", lambda path, roots: reads.append(path) or real_read(path, roots))
    for i in range(1000):
        video = intake.inbox / f"v{i:04d}.mp4"
        video.write_bytes(b"x")
        (intake.inbox / f"{video.name}.job.json").write_text(json.dumps({"options": {"priority": i % 7}}))
        intake.pending.append(video)
    picked = [intake._next_by_priority() for _ in range(500)]
    assert len(reads) == 1000, "every sidecar read exactly once for 500 picks"
    priorities = [int(p.name[1:5]) % 7 for p in picked]
    assert priorities == sorted(priorities), "lowest priority number first, as in BullMQ"

    changed = intake.pending[0]
    (intake.inbox / f"{changed.name}.job.json").write_text(json.dumps({"options": {"priority": 0}}))
    os.utime(intake.inbox / f"{changed.name}.job.json", ns=(1, 1))  # a new mtime even on a coarse clock
    assert intake._next_by_priority() == changed
    assert len(reads) == 1001, "only the changed sidecar is read again"


def test_an_input_swapped_for_a_fifo_after_its_stat_is_refused_without_blocking(tmp_path: Path) -> None:
    from daemon.processing import media

    fifo = tmp_path / "swapped.mp4"
    os.mkfifo(fifo)
    signal.alarm(20)  # hang guard: a blocking open() would never return
    try:
        with pytest.raises(JobError) as caught:
            with open(fifo, "rb", opener=media._open_nofollow):
                pass
    finally:
        signal.alarm(0)
    assert caught.value.code.value == "E_UNSUPPORTED"


def test_a_video_name_too_long_to_have_a_sidecar_is_taken_without_one(tmp_path: Path) -> None:
    intake = _intake(tmp_path)
    video = intake.inbox / ("a" * 251 + ".mp4")  # 255 bytes: "<name>.job.json" cannot exist
    video.write_bytes(b"x")
    assert intake.sidecars.read(video) is None
    assert intake._priority(video) == 0
