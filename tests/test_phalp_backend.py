"""The phalp backend on fakes of the PHALP/4D-Humans API: conversion, buffering, track states.

No torch, no GPU: the driver and converter only see numpy, and tests/fakes/phalp_api.py mirrors
the API they drive (names, argument order, shapes, units; see its docstring for what is not).
"""

from __future__ import annotations

import gc
import json
import math
import tracemalloc

import numpy as np
import pytest

from daemon.processing.backends.phalp.angles import joint_angles_deg
from daemon.processing.backends.phalp.backend import PhalpBackend
from daemon.processing.backends.phalp.convert import ConvertSettings, PersonConverter
from daemon.processing.backends.phalp.driver import StreamingDriver
from daemon.processing.backends.phalp.geometry import PaddedSquare, PinholeCamera, axis_angle_to_rotmat, pose_vector_to_smpl, rotmat_to_axis_angle
from daemon.processing.backends.phalp.loader import LoadedModels
from daemon.processing.backends.phalp.skeleton import COCO_17, COCO_17_FROM_PHALP_45, PHALP_45, SMPL_ORIGIN_INDEX
from daemon.config import PhalpConfig
from daemon.errors import ErrorCode, JobError
from daemon.records import BackendInfo, Frame, JobOptions, VideoMeta
from daemon.publishing.contract import validate_frame
from daemon.publishing.encoding import FrameEncoder
from daemon.publishing.results import commit_local_result
from tests.daemon_harness import read_outcome
from tests.fakes.phalp_api import FakeRuntime, FakeScene, FakeSmplModel, ScriptedPerson, ScriptedPhalp, fake_config

ALWAYS = lambda t: True  # noqa: E731


def make_driver(scene: FakeScene, *, include_mesh: bool = False, **phalp_overrides):
    phalp = ScriptedPhalp(fake_config(**phalp_overrides), scene)
    smpl = FakeSmplModel()
    settings = ConvertSettings(
        focal_length=phalp.cfg.EXTRA.FOCAL_LENGTH,
        render_res=phalp.cfg.render.res,
        max_age=phalp.cfg.phalp.max_age_track,
        include_mesh=include_mesh,
    )
    driver = StreamingDriver(phalp, PersonConverter(smpl, settings))
    driver.start()
    return driver, phalp, smpl


def run(driver: StreamingDriver, scene: FakeScene, frames: int, first_index: int = 0):
    results = []
    image = scene.image()
    for index in range(first_index, first_index + frames):
        results.extend(driver.step(Frame(index=index, timestamp_s=index / 30.0, image=image)))
    results.extend(driver.finish())
    return results


def people_of(results, track_id):
    return {r.index: p for r in results for p in r.people if p.track_id == track_id}


# --- geometry and conversion ---------------------------------------------------------------


def test_padded_square_matches_phalp_measurements_for_landscape_and_portrait():
    assert PaddedSquare.of_frame(1080, 1920).measurements() == [1080, 1920, 1920, 0, 420]
    assert PaddedSquare.of_frame(1920, 1080).measurements() == [1920, 1080, 1920, 420, 0]
    assert PaddedSquare.of_frame(101, 200).top == 49  # PHALP floors the offsets


def test_focal_length_is_5000_over_256_of_the_long_side():
    camera = PinholeCamera.for_frame(PaddedSquare.of_frame(1080, 1920), 5000, 256)
    assert camera.focal_length_px == pytest.approx(5000 / 256 * 1920)
    assert camera.principal_point_px == (960.0, 540.0)


def test_axis_angle_round_trips_through_rotation_matrices_including_near_pi_and_zero():
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(500, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, 494), [0.0, 1e-9, 1e-4, math.pi - 1e-6, math.pi - 1e-3, math.pi]])
    vectors = axes * angles[:, None]
    recovered = rotmat_to_axis_angle(axis_angle_to_rotmat(vectors))
    assert np.allclose(axis_angle_to_rotmat(recovered), axis_angle_to_rotmat(vectors), atol=1e-7)
    assert np.allclose(np.linalg.norm(recovered, axis=1), angles, atol=1e-6)


def test_pose_vector_split_leaves_the_trackers_vector_untouched():
    vector = np.arange(229, dtype=np.float32) / 1000
    before = vector.copy()
    smpl, camera = pose_vector_to_smpl(vector)
    assert np.array_equal(vector, before)  # phalp's pose_camera_vector_to_smpl rescales in place
    assert smpl["global_orient"].shape == (1, 3, 3) and smpl["body_pose"].shape == (23, 3, 3) and smpl["betas"].shape == (10,)
    assert camera[2] == pytest.approx(vector[228] * 200)


def test_coco17_keypoints_are_the_same_named_phalp_joints():
    assert [PHALP_45[i] for i in COCO_17_FROM_PHALP_45] == list(COCO_17)
    assert len(PHALP_45) == 45 and len(set(PHALP_45)) == 45 and PHALP_45[SMPL_ORIGIN_INDEX] == "smpl_origin"


def test_joint_angles_of_a_straight_leg_and_a_right_angled_knee():
    joints = np.zeros((45, 3))
    index = {name: i for i, name in enumerate(PHALP_45)}
    joints[index["neck"]] = (0, -0.5, 5)
    joints[index["mid_hip"]] = (0, 0, 5)
    joints[index["left_hip"]] = (0.1, 0, 5)
    joints[index["left_knee"]] = (0.1, 0.45, 5)
    joints[index["left_ankle"]] = (0.1, 0.9, 5)  # straight down: a straight leg
    joints[index["right_hip"]] = (-0.1, 0, 5)
    joints[index["right_knee"]] = (-0.1, 0.45, 5)
    joints[index["right_ankle"]] = (-0.1, 0.45, 4.55)  # shank pointing at the camera
    angles = joint_angles_deg(joints)
    assert angles["left_knee"] == pytest.approx(180.0)
    assert angles["right_knee"] == pytest.approx(90.0)
    assert angles["left_hip"] == pytest.approx(180.0 - math.degrees(math.atan(0.1 / 0.5)))  # neck is mid-body
    assert angles["trunk_lean"] == pytest.approx(0.0)
    assert "left_elbow" not in angles  # arm joints all at one point: no angle, not NaN


def test_detected_keypoints_equal_the_projection_of_the_3d_joints():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)], height=480, width=640)
    driver, _, _ = make_driver(scene)
    person = run(driver, scene, 8)[6].people[0]
    camera = PinholeCamera(person.extra["camera_intrinsics"]["focal_length_px"], tuple(person.extra["camera_intrinsics"]["principal_point_px"]))
    projected = camera.project(person.joints_3d)
    assert np.allclose(projected, person.keypoints[:, :2], atol=0.05)
    assert np.allclose(person.joints_3d[SMPL_ORIGIN_INDEX], person.camera_translation, atol=1e-4)


def test_person_serialises_to_a_compact_frame_line_in_the_manifest_order():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, phalp, _ = make_driver(scene, include_mesh=True)
    result = run(driver, scene, 6)[0]
    info = BackendInfo("phalp", "0", "m", "cpu", PHALP_45, PHALP_45, "camera", "phalp-45")
    frame = FrameEncoder(info, (640, 480), include_raw=False, legacy_fields=True).frame(result)
    validate_frame(frame)
    record = frame["people"][0]
    json.dumps(record, allow_nan=False)  # serialisable, no NaN
    assert len(record["keypoints"]) == 45 and all(len(row) == 3 for row in record["keypoints"])
    assert len(record["smpl"]["body_pose"]) == 23 and len(record["smpl"]["global_orient"]) == 3
    assert len(record["extra"]["mesh_vertices"]) == 6890
    assert "keypoints_coco17" not in record  # derivable: COCO-17 is a subset of the 45 names
    assert set(COCO_17) <= set(PHALP_45)
    assert set(frame["joint_angles_3d"]) >= {"left_knee", "right_elbow", "left_shoulder", "right_hip", "trunk_lean"}
    assert all(0 <= v <= 180 for name, v in frame["joint_angles_3d"].items() if name != "trunk_lean")


# --- driver: buffering and track states ---------------------------------------------------


def test_a_new_person_is_held_back_then_back_filled_into_earlier_frames():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, _, _ = make_driver(scene, n_init=5)
    image = scene.image()
    released = [driver.step(Frame(index=i, timestamp_s=i / 30, image=image)) for i in range(6)]
    assert [len(r) for r in released] == [0, 0, 0, 0, 1, 1]  # n_init - 1 = 4 frames held
    first = released[4][0]
    assert first.index == 0 and [p.state for p in first.people] == ["detected"]
    tail = driver.finish()
    assert [r.index for r in tail] == [2, 3, 4, 5]
    everything = [first, released[5][0], *tail]
    boxes = [r.people[0].bbox_xywh[0] for r in everything]
    assert len(set(boxes)) == len(boxes)  # each back-filled frame carries its own detection


def test_a_person_seen_for_fewer_than_n_init_frames_never_appears():
    scene = FakeScene([ScriptedPerson(1, lambda t: t < 4)])
    driver, _, _ = make_driver(scene, n_init=5)
    results = run(driver, scene, 12)
    assert len(results) == 12 and all(not r.people for r in results)


def test_one_result_per_frame_in_order_even_without_people():
    scene = FakeScene([ScriptedPerson(1, lambda t: 10 <= t < 20)])
    driver, _, _ = make_driver(scene)
    results = run(driver, scene, 30, first_index=100)
    assert [r.index for r in results] == list(range(100, 130))
    detected = [any(p.state == "detected" for p in r.people) for r in results]
    assert detected == [index in range(110, 120) for index in range(100, 130)]
    assert all(not r.people for r in results[:10])  # before the person, frames are empty but present
    assert all(p.state == "predicted" for r in results[20:] for p in r.people)  # after: the tracker's ghost


def test_a_confirmed_person_missed_by_the_detector_is_predicted_from_the_tracker():
    scene = FakeScene([ScriptedPerson(1, lambda t: not 20 <= t < 25, sway_px=40)])
    driver, phalp, smpl = make_driver(scene)
    predictions = {}
    original_update = phalp.tracker.update

    def update_and_capture(detections, frame_t, image_name, shot):
        matches = original_update(detections, frame_t, image_name, shot)
        for track in phalp.tracker.tracks:
            predictions[frame_t] = (np.array(track.track_data["prediction"]["pose"][-1]), track.track_data["history"][-1])
        return matches

    phalp.tracker.update = update_and_capture
    people = people_of(run(driver, scene, 30), 1)
    assert [people[t].state for t in range(18, 27)] == ["detected"] * 2 + ["predicted"] * 5 + ["detected"] * 2
    assert [people[t].frames_since_detection for t in range(20, 25)] == [1, 2, 3, 4, 5]
    for t in range(20, 25):
        ghost = people[t]
        pose, stale = predictions[t]
        smpl_params, camera = pose_vector_to_smpl(pose)
        assert np.allclose(ghost.camera_translation, camera, atol=1e-4)  # the prediction...
        assert not np.allclose(ghost.camera_translation, stale["camera"], atol=1e-3)  # ...not the stale copy
        assert np.allclose(ghost.smpl.body_pose, np.asarray(smpl_params["body_pose"]).reshape(23, 3, 3), atol=1e-4)
        assert ghost.confidence < people[19].confidence * 0.5 + 1e-9
        assert ghost.keypoints[0, 2] == pytest.approx(ghost.confidence)
    confidences = [people[t].confidence for t in range(20, 25)]
    assert confidences == sorted(confidences, reverse=True)
    assert people[25].frames_since_detection == 0 and people[25].track_id == 1


def test_a_predicted_person_is_placed_where_its_predicted_pose_projects():
    scene = FakeScene([ScriptedPerson(1, lambda t: t < 20, sway_px=40)], height=480, width=640)
    driver, _, smpl = make_driver(scene)
    people = people_of(run(driver, scene, 23), 1)
    ghost = people[21]
    joints, _ = smpl(
        ghost.smpl.global_orient[None],
        ghost.smpl.body_pose[None],
        ghost.smpl.betas[None],
        with_vertices=False,
    )
    expected = np.concatenate([joints[0], np.zeros((1, 3))]) + ghost.camera_translation
    assert np.allclose(ghost.joints_3d, expected, atol=1e-3)
    camera = PinholeCamera(ghost.extra["camera_intrinsics"]["focal_length_px"], tuple(ghost.extra["camera_intrinsics"]["principal_point_px"]))
    assert np.allclose(ghost.keypoints[:, :2], camera.project(ghost.joints_3d), atol=1e-6)
    x, y, w, h = ghost.bbox_xywh
    origin = ghost.keypoints[SMPL_ORIGIN_INDEX, :2]
    assert x < origin[0] < x + w and y < origin[1] < y + h  # the box travels with the person


def test_a_track_dies_after_max_age_track_missed_frames_and_returns_with_a_new_id():
    scene = FakeScene([ScriptedPerson(1, lambda t: t < 20 or t >= 40)])
    driver, _, _ = make_driver(scene, max_age_track=6)
    results = run(driver, scene, 50)
    first = people_of(results, 1)
    assert [first[t].frames_since_detection for t in range(20, 26)] == [1, 2, 3, 4, 5, 6]
    assert max(first) == 25  # time_since_update 7 > max_age 6: deleted
    second = people_of(results, 2)
    assert min(second) == 40 and all(p.state == "detected" for p in second.values())


def test_several_people_get_their_own_ids_sorted_in_each_frame():
    scene = FakeScene(
        [ScriptedPerson(7, ALWAYS, center_x=80), ScriptedPerson(3, lambda t: t >= 2, center_x=240), ScriptedPerson(5, ALWAYS, center_x=160)],
        width=400,
    )
    driver, _, _ = make_driver(scene)
    results = run(driver, scene, 12)
    assert [p.track_id for p in results[10].people] == [1, 2, 3]
    assert [p.track_id for p in results[1].people] == [1, 2]  # the third arrived at frame 2
    assert [p.track_id for p in results[2].people] == [1, 2, 3]  # ...and was back-filled there
    xs = {p.track_id: p.bbox_xywh[0] for p in results[10].people}
    assert xs[1] < xs[2] < xs[3]  # ids in order of first appearance (x=80, 160, then 240 at frame 2)


def test_people_below_the_minimum_size_are_ignored():
    scene = FakeScene([ScriptedPerson(1, ALWAYS, height=80), ScriptedPerson(2, ALWAYS, center_x=250)])
    driver, _, _ = make_driver(scene, small_h=100)
    results = run(driver, scene, 10)
    assert all(len(r.people) == 1 for r in results)


def test_start_resets_the_tracker_so_ids_restart_for_each_video():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, phalp, _ = make_driver(scene)
    run(driver, scene, 10)
    driver.start()
    results = run(driver, scene, 10)
    assert {p.track_id for r in results for p in r.people} == {1}


def test_out_of_memory_in_the_model_becomes_an_oom_job_error_after_freeing_memory():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    phalp = ScriptedPhalp(fake_config(), scene)
    freed = []

    def exhausted(*args, **kwargs):
        raise MemoryError("CUDA out of memory (fake)")

    phalp.get_human_features = exhausted
    driver = StreamingDriver(phalp, PersonConverter(FakeSmplModel(), ConvertSettings()), oom_errors=(MemoryError,), on_oom=lambda: freed.append(1))
    driver.start()
    with pytest.raises(JobError) as caught:
        driver.step(Frame(index=3, timestamp_s=0.1, image=scene.image()))
    assert caught.value.code is ErrorCode.OUT_OF_MEMORY and caught.value.frame_index == 3 and freed == [1]


def test_a_nonsense_camera_from_hmr2_fails_the_job_instead_of_crashing_the_tracker():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, phalp, _ = make_driver(scene)
    real = phalp.get_human_features

    def negative_depth(*args):
        detections = real(*args)
        for detection in detections:
            detection.detection_data["camera"] = np.array([0.0, 0.0, -3.0], dtype=np.float32)
        return detections

    phalp.get_human_features = negative_depth
    with pytest.raises(JobError) as caught:
        driver.step(Frame(index=0, timestamp_s=0.0, image=scene.image()))
    assert caught.value.code is ErrorCode.BACKEND and "depth" in caught.value.message


def test_the_driver_never_calls_track_and_gives_get_detections_a_dict():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, phalp, _ = make_driver(scene)
    run(driver, scene, 3)  # the fake's track() raises; its get_detections crashes on None
    assert "setup_detectron2_with_RPN" not in phalp.calls


# --- the Backend on an injected loader -----------------------------------------------------


def _meta() -> VideoMeta:
    return VideoMeta("v.mp4", 1, ".mp4", "avc1", 320, 240, 320, 240, 0, False, 30.0, None, None)


def test_backend_describes_45_keypoints_and_writes_mesh_faces_only_with_mesh_on():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    runtime = FakeRuntime()

    def load(cfg, progress):
        progress("fake models")
        faces = np.zeros((13776, 3), dtype=np.int64)
        return LoadedModels(ScriptedPhalp(fake_config(), scene), FakeSmplModel(), runtime, "cpu", {"phalp": "0.1.3"}, faces)

    plain = PhalpBackend(PhalpConfig(), load=load).load(lambda _: None)
    assert len(plain.keypoint_names) == 45 and plain.joint_names_3d == plain.keypoint_names
    backend = PhalpBackend(PhalpConfig(include_mesh=True), load=load)
    info = backend.load(lambda _: None)
    assert len(info.extras["mesh_faces"]) == 13776
    backend.start_video(_meta(), JobOptions(low_memory=True))
    results = []
    for i in range(7):
        results += backend.process(Frame(index=i, timestamp_s=i / 30, image=scene.image()))
    results += backend.finish()
    assert runtime.low_memory == [True] and len(results) == 7
    person = results[0].people[0]
    assert person.keypoints.shape == (45, 3) and person.joints_3d.shape == (45, 3) and "mesh_vertices" in person.extra


# --- memory over a long stream ----------------------------------------------------------


def test_ten_thousand_frames_run_in_bounded_memory():
    # Periodic scene (period 300 divides 9,000): frames 1,000 and 10,000 see the same people in
    # the same states, so any difference in traced memory is growth. Each period person 1 is
    # missed for 6 frames (predicted), then both people leave for longer than max_age_track
    # (their tracks die, new ones are born next period): creation, back-fill, prediction and
    # deletion repeat 33 times; at both checkpoints person 1 is being tracked. The scene is sparse
    # to keep the traced run short.
    scene = FakeScene(
        [
            ScriptedPerson(1, lambda t: 60 <= t % 300 < 120 and not 90 <= t % 300 < 96, center_x=100, sway_px=20),
            ScriptedPerson(2, lambda t: 200 <= t % 300 < 220, center_x=220, sway_px=20),
        ]
    )
    driver, phalp, _ = make_driver(scene, max_age_track=10)
    image = scene.image()
    checkpoints = {1_000: 0, 10_000: 0}
    longest_cost_log = most_tracks = released = 0
    tracemalloc.start()
    try:
        for index in range(1, 10_001):
            released += len(driver.step(Frame(index=index, timestamp_s=index / 30, image=image)))
            longest_cost_log = max(longest_cost_log, len(phalp.tracker.tracked_cost))
            most_tracks = max(most_tracks, len(phalp.tracker.tracks))
            if index in checkpoints:
                gc.collect()
                checkpoints[index] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    released += len(driver.finish())
    assert released == 10_000
    assert longest_cost_log == 0  # PHALP's per-frame cost log is cleared after every update
    assert most_tracks <= 2 and phalp.tracker._next_id == 1 + 2 * 33 + 1  # a new track per person per period
    growth = checkpoints[10_000] - checkpoints[1_000]
    assert growth < 64 * 1024, f"traced memory grew by {growth} bytes over 9,000 frames"


def test_a_phalp_result_document_validates_and_carries_faces_only_when_meshes_are_wanted(tmp_path):
    """Through run_job, as the worker runs it: the document must satisfy the published schema."""

    from daemon.config import load_config
    from daemon.publishing.contract import validate_document
    from daemon.processing.job import JobSpec, run_job
    from tests.daemon_harness import SHORT_CLIP

    scene = FakeScene([ScriptedPerson(1, ALWAYS)])

    def load(cfg, progress):
        faces = np.zeros((13776, 3), dtype=np.int64)
        return LoadedModels(ScriptedPhalp(fake_config(), scene), FakeSmplModel(), FakeRuntime(), "cpu", {"phalp": "0.1.3"}, faces)

    cfg = load_config(overrides=["backend.name=phalp"])
    backend = PhalpBackend(cfg.backend.phalp, load=load)
    info = backend.load(lambda _: None)
    for include_mesh in (False, True):
        out = tmp_path / f"mesh-{include_mesh}.json"
        spec = JobSpec("j", SHORT_CLIP, out, {"name": SHORT_CLIP.name, "path": str(SHORT_CLIP), "windows_path": None, "bytes": 1},
                       JobOptions(include_mesh=include_mesh, end_frame=8))  # 8 frames: meshes are big to validate
        run_job(spec, backend, info, cfg)
        document = read_outcome(commit_local_result(out, tmp_path / f"mesh-{include_mesh}.result.json"))
        validate_document(document)
        assert [frame["frame_index"] for frame in document["frames"]] == list(range(8))
        assert ("mesh_faces" in document) is include_mesh
        assert all(("mesh_vertices" in person.get("extra", {})) is include_mesh for frame in document["frames"] for person in frame["people"])
