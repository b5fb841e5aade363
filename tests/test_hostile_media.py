"""Hostile media (issue 5): each broken file gets its own stable code and an actionable message,
ends in the right folder, and leaves the daemon healthy; odd but valid files give correct results.

The corpus is generated once per module from the shared clips (``tests/hostile_corpus.py``).
Every case is dropped into a real ``posed run`` up front, so the daemon works through the queue
while the cases are checked one by one. Decoding is what is tested, so the media daemon runs
the real MediaPipe backend; the limits daemon refuses before any model runs, so it uses the
fault backend, which loads in a fraction of the time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon.publishing.contract import validate_document
from daemon.errors import HINTS, ErrorCode
from tests.daemon_harness import SHORT_CLIP, DaemonProcess, OutboxReader, wait_outcome
from tests.helpers import wait_until
from tests.hostile_corpus import drop_named, make_media


@dataclass(frozen=True)
class Case:
    name: str  # as dropped into the inbox
    source: str  # corpus key, or "" for an empty file
    code: str | None  # None: a result is expected
    says: tuple[str, ...] = ()  # substrings of the message
    before_worker: bool = False  # refused by the supervisor: the worker never sees it
    extra: dict = field(default_factory=dict)


MEDIA_CASES = [
    Case("empty.mp4", "", "E_EMPTY_FILE", ("empty (0 bytes)",), before_worker=True),
    # Truncated, moov at the end: the cut lands in the media data and the index is gone too.
    Case("cut-mid-mdat.mp4", "cut-mid-mdat.mp4", "E_TRUNCATED", ("is cut short", "'mdat' box", "ends"), before_worker=True),
    # Truncated exactly where the index would start: every box is whole, but there is no moov.
    Case("cut-before-moov.mp4", "cut-before-moov.mp4", "E_TRUNCATED", ("no index ('moov' box)",), before_worker=True),
    # Index first (faststart), cut in the media data: the header still proves it is incomplete.
    Case("cut-faststart.mp4", "cut-faststart.mp4", "E_TRUNCATED", ("'mdat' box", "bytes early"), before_worker=True),
    Case("cut.avi", "cut.avi", "E_TRUNCATED", ("RIFF chunk", "bytes early"), before_worker=True),
    Case("notes.mp4", "notes.mp4", "E_NOT_A_VIDEO", ("is text, not a video",), before_worker=True),
    Case("photo.mp4", "photo.mp4", "E_NOT_A_VIDEO", ("is a PNG image, not a video",), before_worker=True),
    Case("audio-only.mp4", "audio-only.mp4", "E_NO_VIDEO_STREAM", ("no video track", "audio"), before_worker=True),
    Case("no-frames.avi", "no-frames.avi", "E_NO_FRAMES", ("decoded to 0 frames",)),
    Case("damaged-middle.avi", "damaged-middle.avi", "E_DECODE", ("decoding stopped after", "No partial result is published")),
    Case("UPPER.MOV", "movie.mov", None),
    Case("Mixed.Mp4", "faststart.mp4", None),
    Case("movie.mov", "movie.mov", None),
    Case("rotated.mp4", "rotated.mp4", None),
    Case("vfr.mp4", "vfr.mp4", None),
    Case("clip.webm", "clip.webm", None),
]

LIMITS = ["backend.name=fault", "limits.max_file_bytes=300000", "limits.max_width=200", "limits.max_height=200",
          "limits.max_duration_s=3", "limits.max_frames=200"]  # fmt: skip  (limits.max_fps: the default 240)
LIMIT_CASES = [
    Case("big.avi", "mjpeg.avi", "E_TOO_LARGE", ("386212 bytes", "limits.max_file_bytes=300000"), before_worker=True),
    Case("wide.mp4", "short", "E_RESOLUTION_TOO_HIGH", ("320x182", "limits.max_width"), before_worker=True),
    Case("claims-huge.mp4", "claims-huge.mp4", "E_RESOLUTION_TOO_HIGH", ("40000x90",), before_worker=True),
    Case("long.mp4", "small-4s.mp4", "E_TOO_LONG", ("4 s", "limits.max_duration_s=3"), before_worker=True),
    # Matroska headers are not parsed by the supervisor: the worker's probe refuses it, before
    # any frame reaches the model.
    Case("wide.mkv", "wide.mkv", "E_RESOLUTION_TOO_HIGH", ("320x182", "limits.max_width")),
    # Decode bombs: 2000 frames at 1000 fps in 53 KB; 480 frames at 240 fps (mp4 and avi headers).
    Case("bomb.mp4", "bomb.mp4", "E_FRAME_RATE_TOO_HIGH", ("declares 1000 frames/s", "limits.max_fps=240"), before_worker=True),
    Case("many.mp4", "many.mp4", "E_TOO_MANY_FRAMES", ("declares 480 frames", "limits.max_frames=200"), before_worker=True),
    Case("many.avi", "many.avi", "E_TOO_MANY_FRAMES", ("declares 480 frames",), before_worker=True),
    Case("bomb.mkv", "bomb.mkv", "E_FRAME_RATE_TOO_HIGH", ("decoder reports 1000 frames/s",)),
    Case("small.mp4", "small.mp4", None),
]


def _source_bytes(corpus: dict[str, Path], key: str) -> bytes:
    if key == "":
        return b""
    if key == "short":
        return SHORT_CLIP.read_bytes()
    return corpus[key].read_bytes()


def _start(root: Path, name: str, overrides: list[str], cases: list[Case], corpus: dict[str, Path]):
    daemon = DaemonProcess(root, name, overrides).start().wait_ready(120)
    reader = OutboxReader(daemon.outbox, validate_document)
    reader.start()
    for case in cases:
        drop_named(_source_bytes(corpus, case.source), daemon.inbox, case.name)
    return daemon, reader


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def media_daemon(tmp_path_factory, corpus):
    daemon, reader = _start(tmp_path_factory.mktemp("media"), "media", [], MEDIA_CASES, corpus)
    yield daemon
    reader.stop()
    assert reader.partial == [], "a consumer read a partial outcome"
    assert daemon.stop() == 0


@pytest.fixture(scope="module")
def limits_daemon(tmp_path_factory, corpus):
    daemon, reader = _start(tmp_path_factory.mktemp("limits"), "limits", LIMITS, LIMIT_CASES, corpus)
    yield daemon
    reader.stop()
    assert reader.partial == []
    assert daemon.stop() == 0


def _check_case(daemon: DaemonProcess, case: Case) -> dict:
    kind, document = wait_outcome(daemon.outbox, case.name, timeout=120)
    validate_document(document)
    # The input leaves the inbox only after its outcome is published, to the matching folder.
    place = "done" if case.code is None else "failed"
    wait_until(lambda: (daemon.inbox / place / case.name).is_file(), 20, f"{case.name} in inbox/{place}")
    assert not (daemon.inbox / case.name).exists()
    starts = [e for e in daemon.log_events() if e.get("event") == "job.start" and e.get("input") == case.name]
    if case.code is None:
        assert kind == "result", document
        assert starts, "a result without a job.start"
    else:
        assert kind == "error", document
        error = document["error"]
        assert error["code"] == case.code
        for text in case.says:
            assert text in error["message"], error["message"]
        assert error["hint"] == HINTS[ErrorCode(case.code)]  # says what to do about it
        assert not (daemon.outbox / f"{case.name}.result.json").exists()
        if case.before_worker:
            assert error["stage"] == "probe"
            assert starts == [], f"{case.name} reached the worker: {starts}"
    # Still healthy: alive, and nothing here crashed or restarted the worker.
    status = daemon.status()
    assert daemon.alive() and status["state"] in ("ready", "busy"), status
    assert status["counters"]["worker_crashes"] == 0 and status["counters"]["worker_restarts"] == 0
    return document


@pytest.mark.parametrize("case", MEDIA_CASES, ids=[c.name for c in MEDIA_CASES])
def test_hostile_media_gets_its_code_message_and_place(media_daemon, case):
    document = _check_case(media_daemon, case)
    if case.name == "damaged-middle.avi":
        # Decision (README, Results): no partial result; the report says how far decoding got.
        details = document["error"]["details"]
        assert 0 < details["frames_decoded"] < 60 and document["error"]["frame_index"] == details["frames_decoded"]
        assert details["duration_s"] == pytest.approx(2.0, abs=0.01) and details["decoded_until_s"] < 1.9
        assert document["error"]["stage"] == "decode"
    if case.name == "no-frames.avi":
        assert document["error"]["stage"] == "decode" and document["error"]["frame_index"] == 0
    if case.name in ("UPPER.MOV", "Mixed.Mp4", "movie.mov", "clip.webm"):
        assert len(document["frames"]) == 60 and document["video"]["container"] == Path(case.name).suffix.lower()


def test_a_phone_video_rotated_90_degrees_is_reported_upright(media_daemon):
    _, result = wait_outcome(media_daemon.outbox, "rotated.mp4", timeout=120)
    video = result["video"]
    assert video["rotation_degrees"] == 90 and video["auto_rotated"] is True
    assert (video["coded_width"], video["coded_height"]) == (320, 182)
    assert (video["width"], video["height"]) == (182, 320), "upright size is the coded size swapped"
    assert len(result["frames"]) == 60
    for frame in result["frames"]:
        for person in frame["people"]:
            for x, y, _confidence in person["keypoints"]:
                assert -1 <= x <= 183 and -1 <= y <= 321, (x, y)


def test_rotation_turns_frames_clockwise_as_the_metadata_says(corpus):
    import cv2
    import numpy as np

    from daemon.config import VIDEO_EXTENSIONS, LimitsConfig
    from daemon.processing.media import VideoSource

    with VideoSource(SHORT_CLIP, LimitsConfig(), VIDEO_EXTENSIONS) as plain, VideoSource(
        corpus["rotated.mp4"], LimitsConfig(), VIDEO_EXTENSIONS
    ) as rotated:
        upright = next(rotated.frames()).image
        assert np.array_equal(upright, cv2.rotate(next(plain.frames()).image, cv2.ROTATE_90_CLOCKWISE))
        assert (rotated.meta.width, rotated.meta.height) == (upright.shape[1], upright.shape[0])


def test_variable_frame_rate_keeps_real_timestamps(media_daemon):
    _, result = wait_outcome(media_daemon.outbox, "vfr.mp4", timeout=120)
    stamps = [frame["timestamp_s"] for frame in result["frames"]]
    assert len(stamps) == 40 == result["video"]["decoded_frame_count"]
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(step > 0 for step in steps), "timestamps must strictly increase"
    assert min(steps) == pytest.approx(1 / 30, abs=0.002) and max(steps) == pytest.approx(0.1, abs=0.002)
    assert stamps[-1] == pytest.approx(1.9, abs=0.01)


def test_the_media_daemon_ends_ready_with_every_case_counted(media_daemon):
    errors = sum(1 for case in MEDIA_CASES if case.code)
    wait_until(lambda: media_daemon.status().get("counters", {}).get("errors") == errors, 60)
    status = media_daemon.wait_state("ready")
    assert status["counters"]["results"] == len(MEDIA_CASES) - errors
    assert not list((media_daemon.outbox / ".tmp").glob("*.partial")), "a partial result was left behind"
    assert not list((media_daemon.inbox / ".posed" / "locks").glob("*.lock"))
    names = sorted(p.name for p in media_daemon.outbox.glob("*.json"))
    assert len(names) == len(MEDIA_CASES), names


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c.name for c in LIMIT_CASES])
def test_files_beyond_the_configured_limits_are_refused_before_the_model(limits_daemon, case):
    document = _check_case(limits_daemon, case)
    if case.name in ("wide.mkv", "bomb.mkv"):
        assert document["error"]["stage"] == "probe" and document["error"]["frame_index"] is None
    if case.name == "bomb.mkv":  # refused when the worker opened it: no frame reached the model
        assert document["error"]["details"] == {"fps": 1000.0, "frames": 2000}


def test_more_people_than_the_limit_fails_the_video_not_the_daemon(daemons):
    daemon = daemons(overrides=["backend.name=fault", "backend.fault.people=3", "limits.max_people_per_frame=2"]).wait_ready()
    drop_named(SHORT_CLIP, daemon.inbox, "crowd.mp4")
    kind, report = wait_outcome(daemon.outbox, "crowd.mp4")
    assert kind == "error" and report["error"]["code"] == "E_UNSUPPORTED"
    assert "3 people, more than limits.max_people_per_frame=2" in report["error"]["message"]
    assert report["error"]["stage"] == "inference" and report["error"]["frame_index"] == 0
    wait_until(lambda: (daemon.inbox / "failed" / "crowd.mp4").exists(), 10)
    assert daemon.wait_state("ready")["counters"]["worker_crashes"] == 0
    assert json.loads((daemon.outbox / "crowd.mp4.error.json").read_text())["input"]["name"] == "crowd.mp4"
