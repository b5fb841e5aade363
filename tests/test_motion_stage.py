"""The motion stage on synthetic tracks: one output per input in order, bounded delay, gap
filling, resets at birth and after gaps, raw values kept, constant memory over long videos."""

from __future__ import annotations

import dataclasses
import gc
import json
import math

import numpy as np
import pytest

from daemon.config import MotionConfig
from daemon.processing.motion import MotionStage
from daemon.records import FrameResult, Person, SmplParams
from tests.fakes.phalp_api import rotation_x, rotation_y

FPS = 30.0
KEYPOINTS = 33


def pose_at(t: float, track_id: int = 1, *, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """(K, 3) keypoints of a person swaying sideways: x px, y px, confidence."""
    base = np.stack([np.linspace(500, 700, KEYPOINTS), np.linspace(200, 900, KEYPOINTS)], -1) + 50 * track_id
    points = base + np.array([60 * math.sin(2 * math.pi * 0.5 * t), 10 * math.cos(2 * math.pi * 0.5 * t)])
    if noise:
        points = points + rng.normal(scale=noise, size=points.shape)
    return np.column_stack([points, np.full(KEYPOINTS, 0.9)])


def person(t: float, track_id: int = 1, state: str = "detected", **kwargs) -> Person:
    keypoints = pose_at(t, track_id, **kwargs)
    x0, y0 = keypoints[:, :2].min(0)
    x1, y1 = keypoints[:, :2].max(0)
    return Person(
        track_id=track_id,
        state=state,
        confidence=0.9,
        bbox_xywh=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        keypoints=keypoints,
        joints_3d=keypoints[:, :3] / 1000.0,
        extra={"detector_score": 0.9, "joint_angles_3d": {}},
    )


def frame(index: int, people: list[Person], timestamp_s: float | None = None) -> FrameResult:
    return FrameResult(index=index, timestamp_s=index / FPS if timestamp_s is None else timestamp_s, people=people)


def settings(**overrides) -> MotionConfig:
    return dataclasses.replace(MotionConfig(), **{"include_raw": True, **overrides})  # raw kept: these tests look at it


def run_stage(stage: MotionStage, frames: list[FrameResult]) -> list[FrameResult]:
    out = []
    for result in frames:
        out.extend(stage.push(result))
    return out + stage.finish()


def track(results: list[FrameResult], track_id: int = 1) -> dict[int, Person]:
    return {r.index: p for r in results for p in r.people if p.track_id == track_id}


# --- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("fill_gaps", [True, False])
def test_exactly_one_output_per_input_in_order_delayed_by_at_most_the_gap_window(fill_gaps):
    rng = np.random.default_rng(11)
    stage = MotionStage(settings(fill_gaps=fill_gaps, max_gap_s=0.2), FPS)
    window = stage.max_gap_frames
    assert window == 6 and stage.latency_frames == (window if fill_gaps else stage.smoothing_frames) > 0
    inputs = [frame(i, [person(i / FPS)] if rng.random() < 0.7 else []) for i in range(200)]
    released: list[FrameResult] = []
    for pushed, result in enumerate(inputs, start=1):
        released.extend(stage.push(result))
        assert len(released) == max(0, pushed - stage.latency_frames)  # the oldest frame leaves first
        assert stage.buffered_frames == pushed - len(released) <= stage.latency_frames + 1
    released.extend(stage.finish())
    assert stage.buffered_frames == 0
    assert [(r.index, r.timestamp_s) for r in released] == [(r.index, r.timestamp_s) for r in inputs]


def test_the_callers_results_and_people_are_never_modified():
    before = person(0.0)
    gap_frame = frame(1, [])
    after = person(2 / FPS)
    out = run_stage(MotionStage(settings(), FPS), [frame(0, [before]), gap_frame, frame(2, [after])])
    assert gap_frame.people == [] and out[1].people[0].state == "interpolated"
    assert before.raw is None and before.state == "detected"


# --- gap filling ----------------------------------------------------------------------------


def test_a_short_miss_is_filled_by_linear_interpolation_between_the_two_detections():
    frames = [frame(i, [] if 10 <= i < 15 else [person(i / FPS)]) for i in range(30)]
    out = run_stage(MotionStage(settings(smoothing=False), FPS), frames)
    people = track(out)
    assert sorted(people) == list(range(30))
    assert [people[i].state for i in range(8, 17)] == ["detected"] * 2 + ["interpolated"] * 5 + ["detected"] * 2
    before, after = people[9], people[15]
    for i in range(10, 15):
        fraction = (i - 9) / 6
        filled = people[i]
        assert np.allclose(filled.keypoints, (1 - fraction) * before.keypoints + fraction * after.keypoints)
        assert np.allclose(filled.joints_3d, (1 - fraction) * before.joints_3d + fraction * after.joints_3d)
        assert np.allclose(filled.bbox_xywh, (1 - fraction) * np.array(before.bbox_xywh) + fraction * np.array(after.bbox_xywh))
        assert filled.frames_since_detection == i - 9
        assert filled.raw is None  # the backend reported nobody here
        assert "joint_angles_3d" not in filled.extra and "detector_score" not in filled.extra


def test_interpolation_follows_timestamps_on_variable_frame_rate_video():
    # Two missed frames at 0.1 s and 0.4 s between detections at 0 and 0.5 s: 1/5 and 4/5 of
    # the way in time, though they are 1/3 and 2/3 of the way in frames.
    frames = [frame(0, [person(0.0)], 0.0), frame(1, [], 0.1), frame(2, [], 0.4), frame(3, [person(0.5)], 0.5)]
    out = run_stage(MotionStage(settings(smoothing=False), FPS), frames)
    before, after = frames[0].people[0].keypoints, frames[3].people[0].keypoints
    assert np.allclose(out[1].people[0].keypoints, before + 0.2 * (after - before))
    assert np.allclose(out[2].people[0].keypoints, before + 0.8 * (after - before))


def test_a_gap_longer_than_the_window_keeps_the_backends_output():
    predicted = {i: person(12 / FPS, state="predicted") for i in range(13, 13 + 20)}  # frozen, like PHALP's ghost
    frames = [frame(i, [predicted[i]] if i in predicted else [person(i / FPS)]) for i in range(40)]
    frames[5] = frame(5, [])  # and a short MediaPipe-style miss earlier
    out = run_stage(MotionStage(settings(max_gap_s=0.5), FPS), frames)
    people = track(out)
    assert people[5].state == "interpolated"
    for i in predicted:
        assert people[i] is predicted[i]  # untouched: no smoothing, no raw, same object


def test_a_predicted_track_redetected_inside_the_window_is_rewritten_and_keeps_the_prediction_as_raw():
    predicted = {i: person(9 / FPS, state="predicted") for i in range(10, 14)}
    frames = [frame(i, [predicted[i]] if i in predicted else [person(i / FPS)]) for i in range(20)]
    out = run_stage(MotionStage(settings(smoothing=False), FPS), frames)
    people = track(out)
    for i in predicted:
        assert people[i].state == "interpolated" and people[i].raw is predicted[i]


def test_gap_filling_and_smoothing_off_leave_misses_empty_and_release_each_frame_at_once():
    stage = MotionStage(settings(fill_gaps=False, smoothing=False), FPS)
    for i in range(20):
        released = stage.push(frame(i, [] if 5 <= i < 8 else [person(i / FPS)]))
        assert [r.index for r in released] == [i]
        assert all(p.state == "detected" for p in released[0].people) and len(released[0].people) == (0 if 5 <= i < 8 else 1)


def test_tracks_are_filled_independently():
    frames = []
    for i in range(30):
        people = [] if 10 <= i < 13 else [person(i / FPS, 1)]
        people += [] if 20 <= i < 24 else [person(i / FPS, 2)]
        frames.append(frame(i, people))
    out = run_stage(MotionStage(settings(), FPS), frames)
    assert [track(out, 1)[i].state for i in range(9, 14)] == ["detected", "interpolated", "interpolated", "interpolated", "detected"]
    assert [track(out, 2)[i].state for i in range(19, 25)] == ["detected"] + ["interpolated"] * 4 + ["detected"]
    assert all(len(r.people) == 2 for r in out)


# --- smoothing, resets, raw values ----------------------------------------------------------


def test_smoothing_never_reaches_across_an_unfilled_gap_and_looks_both_ways():
    rng = np.random.default_rng(2)
    frames = [frame(i, [] if 20 <= i < 50 else [person(i / FPS, noise=4.0, rng=rng)]) for i in range(70)]
    stage = MotionStage(settings(max_gap_s=0.5), FPS)
    assert stage.smoothing_frames == 5 and stage.latency_frames == 15  # 3 sigma = 0.15 s each way
    people = track(run_stage(stage, frames))
    assert all(i not in people for i in range(20, 50))  # 30 frames: too long to fill
    # The same frames with nothing before the gap: identical output, so nothing leaked across.
    after_only = [frame(i, [] if i < 50 else list(frames[i].people)) for i in range(70)]
    alone = track(run_stage(MotionStage(settings(max_gap_s=0.5), FPS), after_only))
    assert all(np.array_equal(people[i].keypoints, alone[i].keypoints) for i in range(50, 70))
    # Two-sided: a frame's output changes with the frames after it, not only with those before.
    changed_future = [frame(i, list(f.people)) for i, f in enumerate(frames)]
    changed_future[62] = frame(62, [person(62 / FPS, noise=40.0, rng=rng)])
    moved = track(run_stage(MotionStage(settings(max_gap_s=0.5), FPS), changed_future))
    assert not np.allclose(moved[60].keypoints, people[60].keypoints)
    assert np.array_equal(moved[57].keypoints, people[57].keypoints)  # 5 frames away: beyond 3 sigma


def test_smoothed_people_carry_the_backends_person_as_raw_unless_switched_off():
    rng = np.random.default_rng(4)
    frames = [frame(i, [person(i / FPS, noise=3.0, rng=rng)]) for i in range(10)]
    with_raw = track(run_stage(MotionStage(settings(), FPS), frames))
    assert all(with_raw[i].raw is frames[i].people[0] for i in range(10))
    assert "joint_angles_3d" not in with_raw[5].extra and with_raw[5].extra["detector_score"] == 0.9
    assert with_raw[5].raw.extra["joint_angles_3d"] == {}  # derived fields stay with the raw values
    without_raw = track(run_stage(MotionStage(settings(include_raw=False), FPS), frames))
    assert all(p.raw is None for p in without_raw.values())
    assert np.allclose(without_raw[5].keypoints, with_raw[5].keypoints)


def test_smoothing_off_and_gap_filling_off_passes_everything_through():
    frames = [frame(i, [person(i / FPS)] if i % 3 else []) for i in range(12)]
    out = run_stage(MotionStage(settings(smoothing=False, fill_gaps=False), FPS), frames)
    assert [r.people for r in out] == [f.people for f in frames]
    assert all(p.raw is None for r in out for p in r.people)


def test_smpl_rotations_are_smoothed_as_rotations_and_filled_by_slerp():
    def body(t: float, state: str = "detected") -> Person:
        base = person(t, state=state)
        base.smpl = SmplParams(
            global_orient=(rotation_x(math.pi) @ rotation_y(0.6 * math.sin(2 * t)))[None],
            body_pose=np.stack([rotation_y(0.02 * j * math.sin(3 * t)) for j in range(23)]),
            betas=np.zeros(10),
        )
        base.camera_translation = np.array([0.1, 0.2, 8.0 + math.sin(t)])
        return base

    frames = [frame(i, [] if 10 <= i < 14 else [body(i / FPS)]) for i in range(30)]
    out = track(run_stage(MotionStage(settings(), FPS), frames))
    for i in range(30):
        matrices = np.concatenate([out[i].smpl.global_orient, out[i].smpl.body_pose])
        assert np.allclose(np.einsum("nji,njk->nik", matrices, matrices), np.eye(3), atol=1e-9)  # still rotations
        assert np.allclose(np.linalg.det(matrices), 1.0)
    assert [out[i].state for i in range(9, 15)] == ["detected"] + ["interpolated"] * 4 + ["detected"]
    steps = [np.degrees(np.arccos(np.clip((np.trace(out[i].smpl.global_orient[0].T @ out[i + 1].smpl.global_orient[0]) - 1) / 2, -1, 1))) for i in range(29)]
    assert max(steps) < 3.0  # about 180 degrees from identity, yet never a flip to the other side


def test_the_summary_is_json_with_quality_figures_and_state_counts():
    rng = np.random.default_rng(9)
    frames = [frame(i, [] if 10 <= i < 13 else [person(i / FPS, noise=3.0, rng=rng)]) for i in range(60)]
    stage = MotionStage(settings(), FPS)
    run_stage(stage, frames)
    summary = json.loads(json.dumps(stage.summary(), allow_nan=False))
    assert summary["max_gap_frames"] == 15 and summary["latency_frames"] == 15 and summary["smoothing_frames"] == 5
    assert summary["identity_breaks"] == 0
    figures = summary["keypoints_2d"]
    assert figures["smoothed_mean_acceleration_px"] < figures["raw_mean_acceleration_px"]
    assert figures["mean_displacement_px"] > 0 and figures["displacement_samples"] == 57
    assert figures["acceleration_samples"] == (10 - 2) + (47 - 2)  # triples of consecutive detections
    assert summary["joints_3d"]["raw_mean_acceleration_mm"] > 0
    assert summary["tracks"] == [{"track_id": 1, "detected": 57, "predicted": 0, "interpolated": 3}]


# --- memory ---------------------------------------------------------------------------------


def test_buffered_state_stays_bounded_over_18000_frames_with_track_churn():
    """Half an hour of 10 fps video with a new track id every 40 frames (as PHALP hands out
    when people come and go), misses of every length: what the stage holds must not grow."""
    fps = 10.0
    stage = MotionStage(settings(max_gap_s=1.0), fps)
    window = stage.max_gap_frames
    rng = np.random.default_rng(0)
    keypoints = pose_at(0.0)
    held_tracks, buffered = [], []
    released = 0
    for index in range(18_000):
        people = []
        for lane in range(3):  # three people at a time, each replaced by a new id every 40 frames
            track_id = 1 + lane + 3 * (index // 40)
            if rng.random() < 0.8:
                people.append(Person(track_id, "detected", 0.9, (0.0, 0.0, 10.0, 10.0), keypoints + rng.normal(size=keypoints.shape)))
        released += len(stage.push(FrameResult(index, index / fps, people)))
        if index % 1000 == 999:
            gc.collect()
            held_tracks.append(stage.tracks_held)
            buffered.append(stage.buffered_frames)
    released += len(stage.finish())
    assert released == 18_000
    assert set(buffered) == {window}
    assert max(held_tracks) <= 3 * 2  # this frame's three tracks and at most the three before them
    summary = stage.summary()
    assert len(summary["tracks"]) == 3 * 450  # counters only, three ints per track ever seen
    print(f"18,000 frames: buffered {buffered[-1]} frames, per-track state for at most {max(held_tracks)} tracks")
