"""Perception ahead of tracking, on the fakes: windows of K frames give the same tracks as K = 1.

The fakes run PHALP's per-frame calls (tests/fakes/phalp_api.py); what a window changes is
only when and in which batches the detector and "HMR 2.0" run, so every number must match.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from daemon.processing.backends.phalp.backend import PhalpBackend, model_version
from daemon.processing.backends.phalp.convert import ConvertSettings, PersonConverter
from daemon.processing.backends.phalp.driver import StreamingDriver
from daemon.processing.backends.phalp.loader import LoadedModels
from daemon.processing.backends.phalp.precision import joint_differences_mm, precision_of
from daemon.processing.backends.phalp.window import WindowMismatch
from daemon.config import PhalpConfig, load_config
from daemon.errors import ConfigError
from daemon.records import Frame, FrameResult, JobOptions, Person, VideoMeta
from tests.fakes.phalp_api import FakeRuntime, FakeScene, FakeSmplModel, ScriptedPerson, ScriptedPhalp, fake_config

ALWAYS = lambda t: True  # noqa: E731


def busy_scene() -> FakeScene:
    """Three people: one missed for 5 frames, one arriving mid-window, one leaving for good."""
    return FakeScene(
        [
            ScriptedPerson(1, lambda t: not 20 <= t < 25, center_x=80, sway_px=40),
            ScriptedPerson(2, lambda t: t >= 9, center_x=200, sway_px=25, period=40),
            ScriptedPerson(3, lambda t: t < 30, center_x=300, sway_px=10),
        ],
        width=400,
    )


def make_driver(scene: FakeScene, *, batch_frames: int = 1, detect_every_n: int = 1, **phalp_overrides):
    phalp = ScriptedPhalp(fake_config(**phalp_overrides), scene)
    settings = ConvertSettings(focal_length=phalp.cfg.EXTRA.FOCAL_LENGTH, render_res=phalp.cfg.render.res, max_age=phalp.cfg.phalp.max_age_track)
    driver = StreamingDriver(phalp, PersonConverter(FakeSmplModel(), settings), batch_frames=batch_frames, detect_every_n=detect_every_n)
    driver.start()
    return driver, phalp


def run(driver: StreamingDriver, scene: FakeScene, frames: int) -> tuple[list[FrameResult], list[int]]:
    """All results, and how many frames each call released."""
    results, released = [], []
    for t in range(frames):
        out = driver.step(Frame(index=t, timestamp_s=t / 30, image=scene.image(t)))
        released.append(len(out))
        results.extend(out)
    tail = driver.finish()
    released.append(len(tail))
    return results + tail, released


def fingerprint(person: Person) -> tuple:
    return (
        person.track_id,
        person.state,
        person.frames_since_detection,
        person.confidence,
        tuple(person.bbox_xywh),
        person.keypoints.tobytes(),
        person.joints_3d.tobytes(),
        repr([person.smpl.global_orient.tolist(), person.smpl.body_pose.tolist(), person.smpl.betas.tolist()]),
        repr(person.camera_translation.tolist()),
    )


def fingerprints(results: list[FrameResult]) -> list[tuple]:
    return [(r.index, r.timestamp_s, tuple(fingerprint(p) for p in r.people)) for r in results]


def test_windows_of_eight_give_the_same_tracks_states_and_numbers_as_frame_by_frame():
    scene = busy_scene()
    single, _ = run(make_driver(scene, batch_frames=1, max_age_track=6)[0], scene, 64)
    driver, phalp = make_driver(scene, batch_frames=8, max_age_track=6)
    batched, _ = run(driver, scene, 64)
    assert fingerprints(batched) == fingerprints(single)  # bit for bit: the fakes are exact
    states = {(r.index, p.track_id): p.state for r in single for p in r.people}
    # the stream exercises what batching could break: back-fill, prediction, death, a new id
    assert states[(9, 3)] == "detected" and (8, 3) not in states  # person 2 back-filled to its first frame
    assert [states[(t, 1)] for t in (19, 20, 24, 25)] == ["detected", "predicted", "predicted", "detected"]
    assert (30, 2) in states and (37, 2) not in states  # person 3 predicted, then deleted after max_age
    assert list(phalp.detector_batches) == [8] * 8
    assert max(phalp.HMAR.batch_sizes) > 3  # crops of several frames in one HMR 2.0 call


def test_windows_of_eight_track_like_the_stock_per_frame_loop(tmp_path):
    """Against bench_stock.stock_loop: track.py's loop, no windows, no replay."""
    import pickle

    from daemon.bench.stock import stock_loop

    scene = busy_scene()
    stock_phalp = ScriptedPhalp(fake_config(max_age_track=6), scene)
    frames = (Frame(index=t, timestamp_s=t / 30, image=scene.image(t)) for t in range(40))
    stock_loop(stock_phalp, frames, tmp_path / "stock.pkl", dump=lambda value, path: path.write_bytes(pickle.dumps(value)))
    stock = pickle.loads((tmp_path / "stock.pkl").read_bytes())
    batched, _ = run(make_driver(scene, batch_frames=8, max_age_track=6)[0], scene, 40)
    for result in batched:
        record = stock[f"{result.index:06d}.jpg"]
        expected = sorted(zip(record["tid"], record["tracked_time"], record["camera"]), key=lambda entry: entry[0])
        assert [(p.track_id, p.frames_since_detection) for p in result.people] == [(tid, since) for tid, since, _ in expected]
        for person, (_, since, camera) in zip(result.people, expected):
            if since == 0:  # detected: the very detection the stock loop stored
                assert np.allclose(person.camera_translation, camera, atol=1e-5)


def test_a_partial_last_window_is_flushed_by_finish_and_matches_frame_by_frame():
    scene = busy_scene()
    single, _ = run(make_driver(scene, batch_frames=1)[0], scene, 21)
    driver, phalp = make_driver(scene, batch_frames=8)
    batched, released = run(driver, scene, 21)
    assert list(phalp.detector_batches) == [8, 8, 5]
    assert [r.index for r in batched] == list(range(21))
    assert fingerprints(batched) == fingerprints(single)
    # a window releases on its K-th frame only; the last call (finish) releases the rest
    assert [i for i, n in enumerate(released[:-1]) if n] == [7, 15] and released[-1] == 21 - sum(released[:-1])


def test_output_waits_for_the_window_then_for_back_fill():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, _ = make_driver(scene, batch_frames=4, n_init=5)
    _, released = run(driver, scene, 12)
    # frames 0-3 run at the 4th frame, all held back (n_init - 1 = 4); at frame 7, 4 of 8 are final
    assert released == [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 4]


def test_ten_thousand_frames_at_k8_keep_buffers_and_traced_memory_flat():
    # Periodic scene, as in test_phalp_backend's long run: frames 1,000 and 10,000 are in the
    # same state, so a difference in traced memory is growth.
    scene = FakeScene(
        [
            ScriptedPerson(1, lambda t: 60 <= t % 300 < 120 and not 90 <= t % 300 < 96, center_x=100, sway_px=20),
            ScriptedPerson(2, lambda t: 200 <= t % 300 < 220, center_x=220, sway_px=20),
        ]
    )
    driver, phalp = make_driver(scene, batch_frames=8, max_age_track=10)
    image = scene.image()  # unstamped: the scripted detector numbers frames by call
    checkpoints = {1_000: 0, 10_000: 0}
    most_buffered = released = 0
    tracemalloc.start()
    try:
        for index in range(1, 10_001):
            released += len(driver.step(Frame(index=index, timestamp_s=index / 30, image=image)))
            most_buffered = max(most_buffered, driver.buffered)
            if index in checkpoints:
                gc.collect()
                checkpoints[index] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    released += len(driver.finish())
    assert released == 10_000 and driver.buffered == 0
    assert most_buffered == (8 - 1) + driver.hold_back  # a window being filled plus the held-back frames
    assert phalp.tracker._next_id == 1 + 2 * 33 + 1  # the scene's tracks were born and died as at K = 1
    growth = checkpoints[10_000] - checkpoints[1_000]
    assert growth < 64 * 1024, f"traced memory grew by {growth} bytes over 9,000 frames"


def test_detecting_every_third_frame_predicts_in_between_and_still_confirms_people():
    scene = FakeScene([ScriptedPerson(1, ALWAYS, sway_px=40)])
    driver, phalp = make_driver(scene, batch_frames=8, detect_every_n=3, n_init=3)
    results, _ = run(driver, scene, 30)
    assert list(phalp.detector.times) == list(range(0, 30, 3))  # the detector saw every 3rd frame only
    assert [r.index for r in results] == list(range(30))
    people = {r.index: r.people for r in results}
    # confirmed at its 3rd detection (t=6): back-filled into t=0 and t=3, the frames it was seen on
    assert [len(people[t]) for t in range(9)] == [1, 0, 0, 1, 0, 0, 1, 1, 1]
    assert [(p.state, p.frames_since_detection) for t in (9, 10, 11) for p in people[t]] == [("detected", 0), ("predicted", 1), ("predicted", 2)]
    assert {p.track_id for ps in people.values() for p in ps} == {1}  # never lost between detections
    assert driver.hold_back == (3 - 1) * 3


def test_every_frame_is_detected_by_default_and_stride_is_part_of_the_model_version():
    assert "detector every" not in model_version(PhalpConfig())
    assert "detector every 2 frames" in model_version(PhalpConfig(detect_every_n=2))
    assert "bf16" in model_version(PhalpConfig(precision="bf16")) and precision_of(PhalpConfig(fp16=True)) == "fp16"


def test_a_replayed_model_asked_for_something_else_fails_loudly():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    driver, phalp = make_driver(scene, batch_frames=2)
    real = phalp.get_human_features

    def crops_one_more(image, masks, bbox, *args):
        phalp.get_croped_image(image, bbox[0], bbox[0], masks[0])  # upstream changed: an extra crop
        return real(image, masks, bbox, *args)

    phalp.get_human_features = crops_one_more
    driver.step(Frame(index=0, timestamp_s=0.0, image=scene.image(0)))
    with pytest.raises(WindowMismatch):
        driver.step(Frame(index=1, timestamp_s=1 / 30, image=scene.image(1)))


def test_the_backend_runs_windows_of_the_configured_size():
    scene = FakeScene([ScriptedPerson(1, ALWAYS)])
    phalp = ScriptedPhalp(fake_config(), scene)

    backend = PhalpBackend(PhalpConfig(batch_frames=3), load=lambda cfg, progress: LoadedModels(phalp, FakeSmplModel(), FakeRuntime(), "cpu"))
    backend.load(lambda _: None)
    backend.start_video(VideoMeta("v.mp4", 1, ".mp4", "avc1", 320, 240, 320, 240, 0, False, 30.0, None, None), JobOptions())
    results = [r for t in range(7) for r in backend.process(Frame(index=t, timestamp_s=t / 30, image=scene.image(t)))]
    results += backend.finish()
    assert list(phalp.detector_batches) == [3, 3, 1] and [r.index for r in results] == list(range(7))


@pytest.mark.parametrize("override", ["backend.phalp.batch_frames=0", "backend.phalp.detect_every_n=0", "backend.phalp.precision=fp8"])
def test_window_settings_out_of_range_are_rejected_at_start(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(overrides=[override])


def test_the_defaults_batch_eight_frames_at_full_precision_detecting_every_frame():
    phalp = load_config().backend.phalp
    assert (phalp.batch_frames, phalp.precision, phalp.detect_every_n) == (8, "fp32", 1)


def test_joint_differences_are_reported_in_millimetres_per_matching_person():
    joints = np.random.default_rng(3).normal(size=(45, 3))

    def frame(index: int, offset_m: float, *track_ids: int) -> FrameResult:
        people = [Person(track_id=i, state="detected", confidence=1.0, bbox_xywh=(0, 0, 1, 1), keypoints=np.zeros((45, 3)), joints_3d=joints + offset_m) for i in track_ids]
        return FrameResult(index=index, timestamp_s=0.0, people=people)

    reference = [frame(0, 0.0, 1, 2), frame(1, 0.0, 1)]
    candidate = [frame(0, 0.002, 1, 2), frame(1, 0.002, 1, 5)]  # everything 2 mm along each axis
    report = joint_differences_mm(reference, candidate)
    assert report.people_compared == 3 and report.people_unmatched == 1
    assert report.mean_mm == pytest.approx(2 * np.sqrt(3)) and report.max_mm == pytest.approx(2 * np.sqrt(3))
    assert report.root_relative_mean_mm == pytest.approx(0.0, abs=1e-9)  # a shift, no change of pose
    assert "3 people compared" in report.summary()
