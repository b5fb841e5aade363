"""A result as two files (manifest + frames), published Maildir-style: sizes, order, crashes.

What a consumer relies on: it polls for ``<stem>.result.json``; when that exists, the frames
file it names is complete (line count, size and sha256 as stated), both share one stem, and a
crash between the two renames never leaves a manifest without its frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from daemon.config import load_config
from daemon.errors import PublishError
from daemon.publishing import publish
from daemon.publishing.encoding import FrameEncoder, dumps_line
from daemon.publishing.outcomes import OutcomeWriter, Receipt
from daemon.publishing.reader import open_result
from daemon.publishing.results import ResultWriter
from daemon.records import BackendInfo, FrameResult
from daemon.processing.backends.phalp.convert import PHALP_45
from tests.daemon_harness import FAST, REPO, SHORT_CLIP, DaemonProcess, OutboxReader, drop, outcomes, wait_outcome
from tests.fakes.phalp_api import FakeScene, ScriptedPerson
from tests.helpers import wait_until
from tests.long_result import write_long_result
from tests.test_phalp_backend import ALWAYS, make_driver, run

MAX_BYTES_PER_PERSON_FRAME = 2500  # the target for MediaPipe's 33 keypoints + 33 joints


def test_ten_minutes_at_30_fps_give_a_small_manifest_and_exactly_one_line_per_frame(tmp_path):
    manifest_path = write_long_result(tmp_path, 18_000)
    result = open_result(manifest_path)
    lines = sum(1 for _ in result.frames())  # also checks count, size and sha256 against the manifest
    per_person = result.manifest["summary"]["bytes_per_person_frame"]
    print(f"\n18,000 frames: manifest {manifest_path.stat().st_size} B, frames file {result.manifest['files']['frames']['bytes']} B, "
          f"{per_person} B per person-frame (MediaPipe-shaped, 33 keypoints + 33 joints)")
    assert lines == 18_000 == result.manifest["files"]["frames"]["lines"]
    assert manifest_path.stat().st_size < 64 * 1024
    assert per_person <= MAX_BYTES_PER_PERSON_FRAME


def test_writing_memory_does_not_grow_with_video_length(tmp_path):
    peaks = {}
    for frames in (1_800, 18_000):
        tracemalloc.start()
        write_long_result(tmp_path / str(frames), frames)
        peaks[frames] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"\npython heap peak while writing: {peaks[1_800] / 1e6:.2f} MB at 1,800 frames, {peaks[18_000] / 1e6:.2f} MB at 18,000")
    assert peaks[18_000] < peaks[1_800] * 1.5  # ten times the frames, not ten times the memory


def test_phalp_frames_are_compact_too():
    """The PHALP figure from the fakes: 45 keypoints, 45 joints, SMPL and camera per person."""
    scene = FakeScene([ScriptedPerson(1, ALWAYS), ScriptedPerson(2, ALWAYS)], height=720, width=1280)
    driver, _, _ = make_driver(scene)
    results = run(driver, scene, 12)
    info = BackendInfo("phalp", "0", "hmr2", "cpu", PHALP_45, PHALP_45, "camera frame", "phalp-45")
    encoder = FrameEncoder(info, (1280, 720), include_raw=False, legacy_fields=False)
    sizes = [len(dumps_line(encoder.frame(result))) / len(result.people) for result in results if result.people]
    per_person = sum(sizes) / len(sizes)
    print(f"\nPHALP (fakes): {per_person:.0f} B per person-frame compact, without legacy fields")
    assert per_person < 5000


def _draft(outbox: Path, frames: int = 3) -> Path:
    info = BackendInfo("fake", "1", "m", "cpu", ("a", "b"), (), "", "fake-2")
    draft = publish.new_tmp_path(outbox, "result")
    writer = ResultWriter(draft, {"schema": "posed.result", "job_id": "j"}, info, (10, 10))
    for index in range(frames):
        writer.write_frame(FrameResult(index, index / 30, []))
    writer.close({"summary": {"frames": frames}})
    return draft


def test_frames_are_published_before_the_manifest_and_both_share_the_stem_and_the_tilde_rule(tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    outcomes_writer = OutcomeWriter(load_config(overrides=[f"outbox.path={outbox}", f"inbox.path={tmp_path / 'in'}"]), outbox)
    seen = []
    real_link = publish._link_no_replace

    def watching_link(source, target):
        if target.name.endswith(".result.json"):  # the manifest: its frames must already be there
            seen.append(sorted(p.name for p in outbox.iterdir() if p.is_file()))
        real_link(source, target)

    monkeypatch.setattr(publish, "_link_no_replace", watching_link)
    first = outcomes_writer.publish_result(_draft(outbox), "clip.mp4")
    (outbox / "clip.mp4~2.frames.jsonl").write_text("an orphan of someone else's crash\n")  # a taken stem
    second = outcomes_writer.publish_result(_draft(outbox), "clip.mp4")
    assert seen == [["clip.mp4.frames.jsonl"], ["clip.mp4.frames.jsonl", "clip.mp4.result.json", "clip.mp4~2.frames.jsonl", "clip.mp4~3.frames.jsonl"]]
    assert (first.name, second.name) == ("clip.mp4.result.json", "clip.mp4~3.result.json")
    for manifest in (first, second):
        result = open_result(manifest, validate=False)
        assert result.manifest["files"]["frames"]["name"] == manifest.name.replace(".result.json", ".frames.jsonl")
        assert sum(1 for _ in result.frames()) == 3
    assert os.listdir(outbox / ".tmp") == []


def test_a_failed_manifest_takes_its_frames_back_so_nothing_half_published_stays(tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    outcomes_writer = OutcomeWriter(load_config(overrides=[f"outbox.path={outbox}", f"inbox.path={tmp_path / 'in'}"]), outbox)
    real_link = publish._link_no_replace

    def full_disk_for_manifests(source, target):
        if target.name.endswith(".result.json"):
            raise OSError(28, "No space left on device")
        real_link(source, target)

    monkeypatch.setattr(publish, "_link_no_replace", full_disk_for_manifests)
    draft = _draft(outbox)
    try:
        outcomes_writer.publish_result(draft, "clip.mp4")
    except PublishError as exc:
        assert "No space left" in str(exc)
    else:
        raise AssertionError("publishing into a full outbox must fail")
    assert [p.name for p in outbox.iterdir() if p.is_file()] == []  # frames taken back into .tmp
    monkeypatch.setattr(publish, "_link_no_replace", real_link)
    assert outcomes_writer.publish_result(draft, "clip.mp4").name == "clip.mp4.result.json"  # the retry works


CRASH_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from daemon.publishing import publish
marker = Path(sys.argv[1])
real = publish._link_no_replace
def link_then_die(source, target):
    real(source, target)
    if target.name.endswith(".frames.jsonl") and marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)  # the daemon dies between the two renames
publish._link_no_replace = link_then_die
sys.argv = ["posed", *sys.argv[2:]]
from daemon.cli import main
sys.exit(main())
"""


class CrashingDaemon(DaemonProcess):
    """``posed run`` that kills itself right after renaming a frames file into the outbox."""

    def __init__(self, root: Path, marker: Path) -> None:
        super().__init__(root, "crashy")
        self.marker = marker

    def start(self) -> CrashingDaemon:
        command = [sys.executable, "-c", CRASH_BETWEEN_RENAMES, str(self.marker), "run", "--inbox", str(self.inbox),
                   "--outbox", str(self.outbox), f"daemon.name={self.name}", f"daemon.state_dir={self.root / 'state'}", *FAST]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "POSED_LOG_FORMAT": "json"})
        return self


def test_a_daemon_killed_between_the_two_renames_leaves_no_manifest_and_the_rerun_publishes_a_consistent_pair(tmp_path):
    marker = tmp_path / "crash-once"
    marker.touch()
    reader = OutboxReader(tmp_path / "outbox")
    reader.start()
    crashy = CrashingDaemon(tmp_path, marker).start().wait_ready(120)
    drop(SHORT_CLIP, crashy.inbox, "run.mp4")
    crashy.proc.wait(timeout=120)
    assert crashy.proc.returncode == -9 and not marker.exists()
    assert sorted(p.name for p in crashy.outbox.iterdir() if p.is_file()) == ["run.mp4.frames.jsonl"]  # no manifest
    again = DaemonProcess(tmp_path, "again").start()
    try:
        kind, result = wait_outcome(again.outbox, "run.mp4", 120)  # the same stem: the orphan was cleared
        assert kind == "result" and len(result["frames"]) == 60 == result["files"]["frames"]["lines"]
        wait_until(lambda: (again.inbox / "done" / "run.mp4").exists(), 30, "the input moved to done/")
    finally:
        assert again.stop() == 0
        reader.stop()
    assert sorted(p.name for p in again.outbox.iterdir() if p.is_file()) == ["run.mp4.frames.jsonl", "run.mp4.result.json"]
    assert list(outcomes(again.outbox)) == ["run.mp4.result.json"]
    assert reader.partial == [] and reader.reads > 0  # no consumer ever saw a manifest without its whole frames file
    assert [e for e in again.log_events() if e.get("event") == "outbox.orphan_removed"][0]["file"] == "run.mp4.frames.jsonl"
