"""The motion stage on real video through the real CPU pipeline (issue 13's acceptance tests).

``run_job`` with the MediaPipe backend, exactly as the worker runs it; result documents are
validated against the published schema. Figures are printed, never held to a time budget.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from daemon.processing.backends import create_backend
from daemon.config import load_config
from daemon.publishing.contract import validate_document, validate_frame
from daemon.publishing.results import commit_local_result
from tests.daemon_harness import read_outcome
from daemon.processing.job import JobSpec, run_job
from tests.daemon_harness import LONG_CLIP, SHORT_CLIP, STREET_CLIP
from tests.hostile_corpus import ffmpeg

BLACK_AT = 90  # the 6 black frames become frames 90..95 of the variant
CUT_AT = 90  # the spliced clip: the runner jumps to the bottom-right corner at half size here
BLACK_FRAMES = 6
PX_DECIMALS_TOLERANCE = 0.011  # the writer rounds pixels to 2 decimals


@pytest.fixture(scope="module")
def mediapipe():
    cfg = load_config()
    backend = create_backend(cfg)
    info = backend.load(lambda what: None)
    yield backend, info
    backend.close()


@pytest.fixture(scope="module")
def with_black_frames(tmp_path_factory) -> Path:
    """running-1080p.mp4 with 6 black frames inserted after frame 90 (186 frames, 30 fps)."""
    out = tmp_path_factory.mktemp("motion-media") / "running-black-gap.mp4"
    graph = (
        "[0:v]split=2[first][second];"
        f"[first]trim=end_frame={BLACK_AT},setpts=PTS-STARTPTS[before];"
        f"[second]trim=start_frame={BLACK_AT},setpts=PTS-STARTPTS[after];"
        f"color=c=black:s=1920x1088:r=30:d={BLACK_FRAMES / 30},format=yuv420p[black];"
        "[before][black][after]concat=n=3:v=1:a=0[out]"
    )
    ffmpeg("-i", LONG_CLIP, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-r", "30", out)
    return out


@pytest.fixture(scope="module")
def spliced(tmp_path_factory) -> Path:
    """running-1080p.mp4 cut at frame 90 to its second half shrunk to a quarter of the frame in
    the bottom-right corner: in one frame the runner moves ~550 px and halves in size, a jump
    no body makes in 1/30 s (180 frames, 30 fps)."""
    out = tmp_path_factory.mktemp("motion-media") / "running-spliced.mp4"
    graph = (
        "[0:v]split=2[first][second];"
        f"[first]trim=end_frame={CUT_AT},setpts=PTS-STARTPTS[before];"
        f"[second]trim=start_frame={CUT_AT},setpts=PTS-STARTPTS,scale=960:544,pad=1920:1088:960:544:black[after];"
        "[before][after]concat=n=2:v=1:a=0[out]"
    )
    ffmpeg("-i", LONG_CLIP, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-r", "30", out)
    return out


def process(video: Path, mediapipe, tmp_path: Path, *overrides: str) -> dict:
    backend, info = mediapipe
    cfg = load_config(overrides=list(overrides))
    out = tmp_path / f"{video.stem}-{len(list(tmp_path.iterdir()))}.result.json"
    spec = JobSpec("motion-test", video, out, {"name": video.name, "path": str(video), "windows_path": None, "bytes": video.stat().st_size})
    run_job(spec, backend, info, cfg)
    final = commit_local_result(out, out.with_name(out.name.replace(".result.json", ".final.result.json")))
    document = read_outcome(final)  # the manifest, with its frames file read back and checked
    validate_document(document)
    for frame in document["frames"]:
        validate_frame(frame)
    return document


def keypoints(person: dict) -> np.ndarray:
    return np.array(person["keypoints"])[:, :2]


def test_six_black_frames_are_filled_as_interpolated_and_absent_without_gap_filling(with_black_frames, mediapipe, tmp_path):
    gap = range(BLACK_AT, BLACK_AT + BLACK_FRAMES)
    without = process(with_black_frames, mediapipe, tmp_path, "motion.fill_gaps=false")
    assert len(without["frames"]) == 186
    assert all(without["frames"][i]["people"] == [] for i in gap)  # as before the motion stage
    before, after = BLACK_AT - 1, BLACK_AT + BLACK_FRAMES
    assert without["frames"][before]["people"] and without["frames"][after]["people"], "the runner is seen around the gap"

    filled = process(with_black_frames, mediapipe, tmp_path, "motion.include_raw=true")  # smoothing and gap filling on
    frames = filled["frames"]
    assert [f["frame_index"] for f in frames] == list(range(186))
    assert [[p["state"] for p in frames[i]["people"]] for i in gap] == [["interpolated"]] * BLACK_FRAMES
    assert all(frames[i]["people"][0]["track_id"] == frames[before]["people"][0]["track_id"] for i in gap)
    assert all("raw" not in frames[i]["people"][0] for i in gap)  # the backend reported nobody there
    # Interpolated, then smoothed: every coordinate stays within what the neighbouring detections
    # span (their smoothed and their raw values).
    neighbours = [frames[n]["people"][0] for n in (before, after)]
    span = np.stack([keypoints(p) for p in neighbours] + [keypoints(p["raw"]) for p in neighbours])
    low, high = span.min(0) - PX_DECIMALS_TOLERANCE, span.max(0) + PX_DECIMALS_TOLERANCE
    for i in gap:
        points = keypoints(frames[i]["people"][0])
        assert np.all((low <= points) & (points <= high)), f"frame {i} leaves the span of its neighbours"
    motion = filled["summary"]["motion"]
    assert motion["tracks"][0]["interpolated"] == BLACK_FRAMES
    assert motion["latency_frames"] == motion["max_gap_frames"] == 15


def test_without_smoothing_the_filled_frames_are_the_straight_line_between_the_detections(with_black_frames, mediapipe, tmp_path):
    document = process(with_black_frames, mediapipe, tmp_path, "motion.smoothing=false")
    frames = document["frames"]
    before, after = BLACK_AT - 1, BLACK_AT + BLACK_FRAMES
    first, last = keypoints(frames[before]["people"][0]), keypoints(frames[after]["people"][0])
    t0, t1 = frames[before]["timestamp_s"], frames[after]["timestamp_s"]
    for i in range(BLACK_AT, after):
        fraction = (frames[i]["timestamp_s"] - t0) / (t1 - t0)
        person = frames[i]["people"][0]
        assert person["state"] == "interpolated"
        assert np.allclose(keypoints(person), (1 - fraction) * first + fraction * last, atol=0.11)  # three values rounded to 0.1 px
    assert all("raw" not in p for f in frames for p in f["people"])  # nothing smoothed, nothing to keep


@pytest.mark.parametrize("clip", [LONG_CLIP, SHORT_CLIP], ids=lambda p: p.name)
def test_smoothing_halves_the_jitter_of_real_clips_and_stays_within_a_few_pixels(clip, mediapipe, tmp_path):
    document = process(clip, mediapipe, tmp_path, "motion.include_raw=true")
    figures = document["summary"]["motion"]["keypoints_2d"]
    joints = document["summary"]["motion"]["joints_3d"]
    height = document["video"]["height"]
    raw, smoothed = figures["raw_mean_acceleration_px"], figures["smoothed_mean_acceleration_px"]
    print(
        f"\n{clip.name} ({height} px high): 2D mean acceleration raw {raw:.3f} -> smoothed {smoothed:.3f} px/frame^2 "
        f"({smoothed / raw:.0%}), mean displacement {figures['mean_displacement_px']:.2f} px; "
        f"3D {joints['raw_mean_acceleration_mm']:.2f} -> {joints['smoothed_mean_acceleration_mm']:.2f} mm/frame^2, "
        f"displacement {joints['mean_displacement_mm']:.2f} mm"
    )
    assert smoothed <= 0.5 * raw
    assert figures["mean_displacement_px"] <= 0.01 * height  # a few px: 1 % of the frame height at most
    assert figures["acceleration_samples"] >= len(document["frames"]) - 3
    # The raw values in the document are the backend's: their jitter is the figure's raw side.
    first = document["frames"][10]["people"][0]
    assert first["state"] == "detected" and "raw" in first and first["raw"]["keypoints"] != first["keypoints"]


def test_the_street_clip_prints_its_figures(mediapipe, tmp_path):
    """Five frames at 5 fps: too few and too far apart to hold to the jitter target; printed."""
    document = process(STREET_CLIP, mediapipe, tmp_path)
    motion = document["summary"]["motion"]
    figures = motion["keypoints_2d"]
    print(f"\n{STREET_CLIP.name}: {json.dumps(figures)}; tracks {motion['tracks']}")
    assert len(document["frames"]) == 5
    assert sum(t["detected"] + t["interpolated"] for t in motion["tracks"]) == sum(len(f["people"]) for f in document["frames"])


class FollowsAnyone:
    """The real backend under a tracker that follows anyone anywhere, as the old single-person
    track did: every person it finds is track 1. The default tracker refuses a body of another
    size, so only such a tracker carries one id across the cut for the motion stage to split."""

    def __init__(self, backend) -> None:
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def process(self, frame):
        return self._one_id(self._backend.process(frame))

    def finish(self):
        return self._one_id(self._backend.finish())

    @staticmethod
    def _one_id(results):
        for result in results:
            result.people = [replace(person, track_id=1) for person in result.people]
        return results


def test_a_spliced_clip_where_the_track_jumps_gets_a_new_id_and_nothing_bridges_the_cut(spliced, tmp_path):
    """A tracker that keeps one id across the cut: the motion stage must split it."""
    overrides = ("backend.mediapipe.max_people=1", "motion.include_raw=true")
    cfg = load_config(overrides=list(overrides))
    backend = create_backend(cfg)
    info = backend.load(lambda what: None)
    try:
        document = process(spliced, (FollowsAnyone(backend), info), tmp_path, *overrides)
    finally:
        backend.close()
    frames = document["frames"]
    ids = [[p["track_id"] for p in f["people"]] for f in frames]
    before = {i for f in ids[:CUT_AT] for i in f}
    after = {i for f in ids[CUT_AT:] for i in f}
    assert len(before) == 1 and after and before.isdisjoint(after), f"ids before {before}, after {after}"
    assert all(p["state"] != "interpolated" for f in frames[CUT_AT - 15 : CUT_AT + 15] for p in f["people"])
    # Smoothing never pulls the last frames before the cut towards the runner after it.
    last = frames[CUT_AT - 1]["people"][0]
    assert np.abs(keypoints(last) - keypoints(last["raw"])).max() < 40
    motion = document["summary"]["motion"]
    print(f"\n{spliced.name}: ids before the cut {before}, after {after}; breaks {motion['identity_breaks']}; tracks {motion['tracks']}")
    assert motion["identity_breaks"] >= 1
    (new_track,) = [t for t in motion["tracks"] if "split_from" in t]
    assert new_track["split_from"] in before and new_track["track_id"] in after
    # Per-track figures and the manifest's track list describe the same tracks as the frames.
    seen = {i for f in ids for i in f}
    assert {t["track_id"] for t in motion["tracks"]} == seen == {t["track_id"] for t in document["tracks"]}
    manifest_tracks = {t["track_id"]: t for t in document["tracks"]}
    for entry in motion["tracks"]:
        assert entry["detected"] + entry["interpolated"] + entry["predicted"] == sum(f.count(entry["track_id"]) for f in ids)
        assert entry["detected"] == manifest_tracks[entry["track_id"]]["frames_detected"]


def test_with_the_default_tracker_the_spliced_clip_also_never_shares_an_id_across_the_cut(spliced, mediapipe, tmp_path):
    document = process(spliced, mediapipe, tmp_path)
    ids = [[p["track_id"] for p in f["people"]] for f in document["frames"]]
    before, after = {i for f in ids[:CUT_AT] for i in f}, {i for f in ids[CUT_AT:] for i in f}
    print(f"\ndefault tracker: ids before {before}, after {after}, breaks {document['summary']['motion']['identity_breaks']}")
    assert before and after and before.isdisjoint(after)
