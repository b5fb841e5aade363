"""The synthetic bench's pose predictor survives a track gap (issue 20).

Upstream ``predict_next`` crashes once a track's history spans more frames than the predictor's
``frame_length`` window, and the random detections of ``posed bench --synthetic-weights`` make
such gaps likely. The config file the bench writes is read back as upstream reads it and drives
the fake tracker's pose predictor (the window rule of tests/fakes/phalp_api.py) through a gap.
"""

from __future__ import annotations

import pytest
import yaml

from daemon.config import load_config
from daemon.errors import ErrorCode, JobError
from daemon.processing.backends.phalp import synthetic
from daemon.processing.backends.phalp.backend import PhalpBackend
from daemon.processing.backends.phalp.loader import LoadedModels
from daemon.records import Frame, JobOptions, VideoMeta
from tests.fakes.phalp_api import FakeRuntime, FakeScene, FakeSmplModel, ScriptedPerson, ScriptedPhalp, WindowedPosePredictor, fake_config

GAP = range(12, 40)  # the detector loses the runner for 28 frames, well inside max_age_track (50)
FRAMES = 60


def _frame_length_the_bench_writes(tmp_path) -> int:
    cfg = load_config(overrides=synthetic.synthetic_overrides(tmp_path / "cache")).backend.phalp
    paths = synthetic.model_paths(cfg)
    synthetic.write_support_files(paths)
    return yaml.safe_load(paths["phalp_pose_predictor_config"].read_text())["configs"]["frame_length"]


def _run_through_a_gap(frame_length: int) -> tuple[list, WindowedPosePredictor]:
    scene = FakeScene([ScriptedPerson(1, lambda t: t not in GAP, sway_px=30)])
    phalp = ScriptedPhalp(fake_config(), scene)
    predictor = WindowedPosePredictor(frame_length)
    phalp.pose_predictor = predictor
    backend = PhalpBackend(load_config(overrides=["backend.name=phalp"]).backend.phalp,
                           load=lambda cfg, progress: LoadedModels(phalp, FakeSmplModel(), FakeRuntime(), "cpu", {}, None))  # fmt: skip
    backend.load(lambda _: None)
    backend.start_video(VideoMeta("v.mp4", 1, ".mp4", "avc1", 320, 240, 320, 240, 0, False, 30.0, None, None), JobOptions())
    results = []
    for index in range(FRAMES):
        results += backend.process(Frame(index=index, timestamp_s=index / 30, image=scene.image()))
    results += backend.finish()
    return results, predictor


def test_the_bench_pose_predictor_window_covers_a_track_gap(tmp_path):
    frame_length = _frame_length_the_bench_writes(tmp_path)
    assert frame_length >= fake_config().phalp.max_age_track + fake_config().phalp.track_history
    results, predictor = _run_through_a_gap(frame_length)
    assert [r.index for r in results] == list(range(FRAMES))
    assert max(predictor.spans) > len(GAP)  # the history really spanned the gap
    after = [r.people for r in results if r.index >= GAP.stop + 8]  # back and re-confirmed
    assert all(len(people) == 1 for people in after)


def test_the_old_window_of_seven_frames_crashes_on_the_same_gap():
    with pytest.raises(JobError) as caught:
        _run_through_a_gap(7)
    error = caught.value
    assert error.code is ErrorCode.BACKEND and error.details["function"] == "predict_next"
    assert "'int' object has no attribute 'item'" in error.message
    assert error.frame_index >= GAP.stop  # when the returning runner's history spans the gap
