"""The motion stage behind the PHALP backend, driven through the fakes of the PHALP/HMR2 API
(tests/fakes/phalp_api.py): predicted frames, long gaps, and the n_init back-fill."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from daemon.processing.backends.phalp.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from daemon.processing.backends.phalp.skeleton import PHALP_45
from daemon.config import MotionConfig
from daemon.processing.motion import MotionStage
from daemon.processing.motion.rotations import matrix_to_quaternion
from daemon.processing.motion.settings import smoothing_params
from daemon.processing.motion.smoothing import Sample, smooth_person
from daemon.records import Frame, FrameResult
from daemon.publishing.encoding import FrameEncoder
from daemon.records import BackendInfo
from scipy.spatial.transform import Rotation
from tests.fakes.phalp_api import FakeScene, ScriptedPerson
from tests.test_phalp_backend import make_driver

FPS = 30.0
INFO = BackendInfo("phalp", "0", "hmr2", "cpu", PHALP_45, PHALP_45, "camera frame", "phalp-45")


def backend_and_stage(visible, frames: int, **motion) -> tuple[list[FrameResult], list[FrameResult]]:
    """The backend's own results and the stage's, fed as the pipeline feeds them (streaming)."""
    scene = FakeScene([ScriptedPerson(1, visible, sway_px=40)])
    driver, _, _ = make_driver(scene, n_init=5)
    stage = MotionStage(dataclasses.replace(MotionConfig(), **{"include_raw": True, **motion}), FPS)  # raw kept: the tests compare with it
    image = scene.image()
    raw: list[FrameResult] = []
    out: list[FrameResult] = []
    for index in range(frames):
        for result in driver.step(Frame(index=index, timestamp_s=index / FPS, image=image)):
            raw.append(result)
            out.extend(stage.push(result))
    for result in driver.finish():
        raw.append(result)
        out.extend(stage.push(result))
    out.extend(stage.finish())
    return raw, out


def people(results: list[FrameResult]) -> dict:
    return {r.index: p for r in results for p in r.people if p.track_id == 1}


def fitted_from(backend: dict, index: int, frames: range):
    """What two-sided smoothing makes of ``backend[index]`` from the backend's ``frames`` alone."""
    samples = [Sample(t / FPS, backend[t]) for t in frames]
    return smooth_person(smoothing_params(MotionConfig(), FPS), samples, frames.index(index))


def degrees_between(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(np.linalg.norm(rotmat_to_axis_angle((a.T @ b)[None])[0]))


def test_a_missed_track_redetected_inside_the_window_gets_slerped_smpl_rotations():
    raw, out = backend_and_stage(lambda t: not 20 <= t < 25, 40, smoothing=False)
    backend, stage = people(raw), people(out)
    assert [backend[t].state for t in range(20, 25)] == ["predicted"] * 5
    assert [stage[t].state for t in range(19, 26)] == ["detected"] + ["interpolated"] * 5 + ["detected"]
    before, after = stage[19].smpl, stage[25].smpl
    for t in range(20, 25):
        person = stage[t]
        assert person.raw is backend[t]  # PHALP's prediction is kept
        fraction = (t - 19) / 6
        # slerp checked against an independent construction: R0 * exp(fraction * log(R0^T R1)), per joint
        for start, end, got in ((before.global_orient, after.global_orient, person.smpl.global_orient), (before.body_pose, after.body_pose, person.smpl.body_pose)):
            relative = rotmat_to_axis_angle(np.einsum("nji,njk->nik", start, end))
            expected = np.einsum("nij,njk->nik", start, axis_angle_to_rotmat(fraction * relative))
            assert np.allclose(got, expected, atol=1e-9)
        quaternions = matrix_to_quaternion(np.concatenate([person.smpl.global_orient, person.smpl.body_pose]))
        assert np.allclose(np.linalg.norm(quaternions, axis=-1), 1.0)
        assert np.allclose(person.camera_translation, (1 - fraction) * stage[19].camera_translation + fraction * stage[25].camera_translation)
    # The root turns at constant speed through the gap, never the long way round (the fake's
    # body faces the camera: about 180 degrees about x, where the quaternion's sign is arbitrary).
    steps = [degrees_between(stage[t].smpl.global_orient[0], stage[t + 1].smpl.global_orient[0]) for t in range(19, 25)]
    assert max(steps) - min(steps) < 1e-6 and max(steps) < 5.0


def test_with_smoothing_the_rotations_stay_rotations_without_flips_through_the_gap():
    raw, out = backend_and_stage(lambda t: not 20 <= t < 25, 60)
    stage = people(out)
    for t in sorted(stage):
        matrices = np.concatenate([stage[t].smpl.global_orient, stage[t].smpl.body_pose])
        assert np.allclose(np.einsum("nji,njk->nik", matrices, matrices), np.eye(3), atol=1e-9)
        assert np.allclose(np.linalg.det(matrices), 1.0)
    steps = [degrees_between(stage[t].smpl.global_orient[0], stage[t + 1].smpl.global_orient[0]) for t in sorted(stage)[:-1]]
    backend = [people(raw)[t] for t in sorted(stage)]
    raw_steps = [degrees_between(p.smpl.global_orient[0], q.smpl.global_orient[0]) for p, q in zip(backend, backend[1:])]
    assert max(steps) <= max(raw_steps) + 1e-6  # smoothing never adds a jump


def test_a_gap_longer_than_the_window_stays_predicted_exactly_as_the_backend_said():
    raw, out = backend_and_stage(lambda t: not 20 <= t < 40, 60)  # 20 frames > 15 (0.5 s)
    backend, stage = people(raw), people(out)
    for t in range(20, 40):
        assert backend[t].state == "predicted" and stage[t] is backend[t]
    assert stage[40].state == "detected"
    # Nothing from before the gap reaches after it: frame 40 is fitted from frames 40.. alone.
    assert np.allclose(stage[40].keypoints, fitted_from(backend, 40, range(40, 46)).keypoints)


def test_back_filled_frames_at_confirmation_are_smoothed_from_the_tracks_first_frame():
    raw, out = backend_and_stage(lambda t: t >= 10, 30)
    backend, stage = people(raw), people(out)
    assert [r.index for r in out] == list(range(30))
    assert sorted(stage) == sorted(backend) == list(range(10, 30))  # frames 10..13 back-filled by PHALP
    assert all(stage[t].state == "detected" and stage[t].raw is backend[t] for t in stage)
    assert np.allclose(stage[10].keypoints, fitted_from(backend, 10, range(10, 16)).keypoints)  # from its birth on
    boxes = [backend[t].bbox_xywh[0] for t in range(10, 15)]
    assert len(set(boxes)) == 5  # each back-filled frame carries its own detection...
    assert all(stage[t].bbox_xywh != backend[t].bbox_xywh for t in range(11, 15))  # ...and is smoothed from there
    assert all(abs(stage[t].bbox_xywh[0] - backend[t].bbox_xywh[0]) < 5.0 for t in stage)


def test_interpolated_and_smoothed_phalp_people_serialise_with_smpl_from_their_numbers():
    raw, out = backend_and_stage(lambda t: not 20 <= t < 23, 30)
    stage = people(out)
    encoder = FrameEncoder(INFO, (640, 480), include_raw=True, legacy_fields=False)
    filled = encoder.person(stage[21])
    assert filled["state"] == "interpolated" and stage[21].raw.state == "predicted"
    assert len(filled["smpl"]["body_pose"]) == 23 and len(filled["raw"]["smpl"]["body_pose"]) == 23
    assert np.allclose(Rotation.from_rotvec(filled["smpl"]["global_orient"]).as_matrix(), stage[21].smpl.global_orient[0], atol=1e-3)
    assert filled["camera_translation"] == pytest.approx(stage[21].camera_translation.tolist(), abs=1e-4)
    assert filled["raw"]["camera_translation"] == pytest.approx(stage[21].raw.camera_translation.tolist(), abs=1e-4)
    smoothed = encoder.person(stage[27])
    assert smoothed["state"] == "detected"
    assert np.allclose(Rotation.from_rotvec(smoothed["smpl"]["global_orient"]).as_matrix(), stage[27].smpl.global_orient[0], atol=1e-3)
    assert not np.allclose(smoothed["smpl"]["global_orient"], smoothed["raw"]["smpl"]["global_orient"], atol=1e-5)
