"""Predicted people (PHALP ghosts) that the pose predictor puts behind the camera, and crashes
inside PHALP's predictors (issue 10, item 15). On the fakes of tests/fakes/: no torch, no GPU."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.config import load_config
from daemon.errors import ErrorCode, JobError
from daemon.processing.backends.phalp.backend import PhalpBackend
from daemon.processing.backends.phalp.loader import LoadedModels
from daemon.records import Frame, JobOptions, VideoMeta
from tests.fakes.phalp_api import FakeRuntime, FakeScene, FakeSmplModel, ScriptedPerson, ScriptedPhalp, fake_config

MISSED = range(20, 25)  # the detector misses the person here: PHALP predicts them
FRAMES = 30
LOCATION_TRANSLATION = slice(90, 93)


def _backend(scene: FakeScene) -> tuple[PhalpBackend, ScriptedPhalp]:
    phalp = ScriptedPhalp(fake_config(), scene)
    backend = PhalpBackend(load_config(overrides=["backend.name=phalp"]).backend.phalp,
                           load=lambda cfg, progress: LoadedModels(phalp, FakeSmplModel(), FakeRuntime(), "cpu", {}, None))  # fmt: skip
    backend.load(lambda _: None)
    backend.start_video(VideoMeta("v.mp4", 1, ".mp4", "avc1", 320, 240, 320, 240, 0, False, 30.0, None, None), JobOptions())
    return backend, phalp


def _run(backend: PhalpBackend, scene: FakeScene) -> dict[int, list]:
    results = []
    for index in range(FRAMES):
        results += backend.process(Frame(index=index, timestamp_s=index / 30, image=scene.image()))
    results += backend.finish()
    assert [r.index for r in results] == list(range(FRAMES))
    return {r.index: r.people for r in results}


def _predictions_behind_the_camera(phalp: ScriptedPhalp, *, location_too: bool) -> dict[int, np.ndarray]:
    """Make the pose predictor put every missed track at depth -1 (and the location predictor
    too, if asked); return the location predictions the tracker made, by frame."""
    locations: dict[int, np.ndarray] = {}

    def patch(tracker):
        real = tracker.accumulate_vectors

        def accumulate(track_ids, features="APL"):
            real(track_ids, features)
            _behind(tracker, track_ids)

        tracker.accumulate_vectors = accumulate

    def _behind(tracker, track_ids):
        for index in track_ids:
            track = tracker.tracks[index]
            if track.time_since_update == 0:
                continue
            prediction = track.track_data["prediction"]
            pose = np.array(prediction["pose"][-1], dtype=np.float32)
            pose[-1] = -1.0 / 200.0  # the pose vector stores depth / 200
            prediction["pose"][-1] = pose
            loca = np.array(prediction["loca"][-1], dtype=np.float32)
            if location_too:
                loca[LOCATION_TRANSLATION.stop - 1] = -1.0
            prediction["loca"][-1] = loca
            locations[len(locations) + MISSED.start] = loca[LOCATION_TRANSLATION].astype(np.float64)

    setup = phalp.setup_deepsort

    def setup_and_patch():  # every video gets a fresh tracker
        setup()
        patch(phalp.tracker)

    phalp.setup_deepsort = setup_and_patch
    patch(phalp.tracker)
    return locations


def test_a_prediction_behind_the_camera_is_placed_by_the_trackers_location_prediction():
    scene = FakeScene([ScriptedPerson(1, lambda t: t not in MISSED, sway_px=40)])
    backend, phalp = _backend(scene)
    locations = _predictions_behind_the_camera(phalp, location_too=False)
    people = _run(backend, scene)
    for t in MISSED:
        [ghost] = people[t]
        assert ghost.state == "predicted" and ghost.frames_since_detection == t - MISSED.start + 1
        assert ghost.extra["predicted_from"] == "location_predictor"
        assert np.allclose(ghost.camera_translation, locations[t], atol=1e-4)
        assert np.all(np.isfinite(ghost.keypoints)) and ghost.joints_3d[:, 2].min() > 0
    assert people[19][0].extra.get("predicted_from") is None  # detected people carry no such field
    assert backend.summary() == {"people_dropped": 0, "people_predicted_from_location": len(MISSED)}


def test_a_prediction_that_cannot_be_placed_is_dropped_and_counted_in_the_summary(tmp_path):
    from daemon.processing.job import JobSpec, run_job
    from daemon.publishing.contract import validate_document
    from daemon.publishing.results import commit_local_result
    from tests.daemon_harness import SHORT_CLIP, read_outcome

    scene = FakeScene([ScriptedPerson(1, lambda t: t not in MISSED, sway_px=40)])
    backend, phalp = _backend(scene)
    _predictions_behind_the_camera(phalp, location_too=True)
    cfg = load_config(overrides=["backend.name=phalp", "motion.fill_gaps=false"])  # else the gap is interpolated over
    out = tmp_path / "result.json"
    spec = JobSpec("j", SHORT_CLIP, out, {"name": SHORT_CLIP.name, "path": str(SHORT_CLIP), "windows_path": None, "bytes": 1},
                   JobOptions(end_frame=FRAMES))  # fmt: skip
    info = backend.load(lambda _: None)
    summary = run_job(spec, backend, info, cfg)
    document = read_outcome(commit_local_result(out, tmp_path / "clip.mp4.result.json"))
    validate_document(document)
    assert [len(frame["people"]) for frame in document["frames"][18:27]] == [1, 1, 0, 0, 0, 0, 0, 1, 1]
    assert summary["people_dropped"] == len(MISSED) == document["summary"]["people_dropped"]
    assert document["summary"]["people_predicted_from_location"] == 0


def test_an_exception_in_phalps_pose_predictor_is_an_e_backend_report_naming_the_frame():
    scene = FakeScene([ScriptedPerson(1, lambda t: t not in MISSED)])
    backend, phalp = _backend(scene)
    real = phalp.tracker.accumulate_vectors

    def predict_next(track_ids):  # named as upstream's pose_transformer_v2.predict_next
        raise IndexError("index 0 is out of bounds for dimension 0 with size 0")

    def accumulate(track_ids, features="APL"):
        if any(phalp.tracker.tracks[i].time_since_update for i in track_ids):
            predict_next(track_ids)  # upstream crashes here for short frame_length
        real(track_ids, features)

    phalp.tracker.accumulate_vectors = accumulate
    with pytest.raises(JobError) as caught:
        for index in range(FRAMES):
            backend.process(Frame(index=index, timestamp_s=index / 30, image=scene.image()))
    error = caught.value
    assert error.code is ErrorCode.BACKEND and error.stage == "inference"
    assert error.frame_index == MISSED.start
    assert error.message.startswith(f"PHALP failed on frame {MISSED.start} in predict_next (test_phalp_predictions.py:")
    assert "IndexError: index 0 is out of bounds" in error.message and error.details["function"] == "predict_next"
