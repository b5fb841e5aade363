"""motion.* settings: config validation, the sidecar's options.motion block, the way to the worker."""

from __future__ import annotations

import json

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError, ErrorCode, JobError
from daemon.processing.motion.settings import max_gap_frames, with_job_overrides
from daemon.records import JobOptions
from daemon.intake.sidecar import parse_sidecar

ROOTS = ["/home/posed/inbox"]


def test_defaults_and_overrides_load_and_bad_values_name_their_key():
    cfg = load_config(overrides=["motion.max_gap_s=0.25", "motion.keypoints_2d.sigma_s=0.08"])
    assert cfg.motion.smoothing and cfg.motion.fill_gaps and not cfg.motion.include_raw  # raw only on request
    assert cfg.motion.max_gap_s == 0.25 and cfg.motion.keypoints_2d.sigma_s == 0.08
    for override, key in (
        ("motion.max_gap_s=-1", "motion.max_gap_s"),
        ("motion.rotations.sigma_s=0", "motion.rotations.sigma_s"),
        ("motion.joints_3d.degree=4", "motion.joints_3d.degree"),
        ("motion.keypoints_2d.degree=-1", "motion.keypoints_2d.degree"),
        ("motion.smoothing=maybe", "motion.smoothing"),
        ("motion.max_body_speed=0", "motion.max_body_speed"),
        ("motion.max_scale_rate=-1", "motion.max_scale_rate"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(overrides=[override])


def test_max_gap_seconds_become_frames_of_the_videos_rate():
    assert max_gap_frames(0.5, 30.0) == 15
    assert max_gap_frames(0.5, 59.94) == 30
    assert max_gap_frames(0.5, 5.0) == 2
    assert max_gap_frames(0.5, 0.0) == 15  # no rate in the container: 30 fps assumed
    assert max_gap_frames(0.0, 30.0) == 0


def test_a_sidecar_switches_motion_per_job_and_the_choice_reaches_the_worker():
    raw = json.dumps({"options": {"motion": {"smoothing": False, "max_gap_s": 1}}})
    sidecar = parse_sidecar(raw, ROOTS)
    options = sidecar.job_options(JobOptions())
    assert options.motion == {"smoothing": False, "max_gap_s": 1.0}
    # the supervisor sends options.to_json() to the worker, which rebuilds JobOptions(**...)
    rebuilt = JobOptions(**json.loads(json.dumps(options.to_json())))
    settings = with_job_overrides(load_config().motion, rebuilt.motion)
    assert settings.smoothing is False and settings.max_gap_s == 1.0 and settings.fill_gaps is True
    assert with_job_overrides(load_config().motion, None) == load_config().motion


@pytest.mark.parametrize(
    ("motion", "field", "problem"),
    [
        ([], "options.motion", "JSON object"),
        ({"smooth": True}, "options.motion.smooth", "unknown key"),
        ({"smoothing": "yes"}, "options.motion.smoothing", "true or false"),
        ({"fill_gaps": 1}, "options.motion.fill_gaps", "true or false"),
        ({"max_gap_s": -0.1}, "options.motion.max_gap_s", "from 0 to 10"),
        ({"max_gap_s": 600}, "options.motion.max_gap_s", "from 0 to 10"),
        ({"max_gap_s": True}, "options.motion.max_gap_s", "number of seconds"),
        ({"max_gap_s": "0.5"}, "options.motion.max_gap_s", "number of seconds"),
    ],
)
def test_a_bad_motion_block_is_a_bad_sidecar_naming_the_field(motion, field, problem):
    with pytest.raises(JobError) as caught:
        parse_sidecar(json.dumps({"options": {"motion": motion}}), ROOTS)
    assert caught.value.code is ErrorCode.BAD_SIDECAR
    assert caught.value.details["field"] == field and problem in caught.value.message


def test_a_real_daemon_applies_a_sidecars_motion_block_to_that_video_only(daemons):
    """Through the real daemon and worker processes: the override rides in the job options."""
    from tests.daemon_harness import SHORT_CLIP, drop, wait_outcome, write_bytes

    daemon = daemons().wait_ready()
    sidecar = {"job_id": "raw-only", "options": {"motion": {"smoothing": False, "fill_gaps": False}}}
    write_bytes(daemon.inbox, "a.mp4.job.json", json.dumps(sidecar).encode())
    drop(SHORT_CLIP, daemon.inbox, "a.mp4")
    kind, plain = wait_outcome(daemon.outbox, "raw-only")
    assert kind == "result"
    assert plain["options"]["motion"] == {"smoothing": False, "fill_gaps": False}
    assert plain["summary"]["motion"]["smoothing"] is False and plain["summary"]["motion"]["latency_frames"] == 0
    assert all("raw" not in person for frame in plain["frames"] for person in frame["people"])

    drop(SHORT_CLIP, daemon.inbox, "b.mp4")  # no sidecar: the daemon's settings
    kind, smoothed = wait_outcome(daemon.outbox, "b.mp4")
    assert kind == "result" and smoothed["options"]["motion"] is None
    assert smoothed["summary"]["motion"]["smoothing"] is True
    people = [person for frame in smoothed["frames"] for person in frame["people"]]
    assert people and all("raw" not in person for person in people)  # raw values only on request

    write_bytes(daemon.inbox, "c.mp4.job.json", json.dumps({"options": {"motion": {"include_raw": True}}}).encode())
    drop(SHORT_CLIP, daemon.inbox, "c.mp4")
    kind, with_raw = wait_outcome(daemon.outbox, "c.mp4")
    people = [person for frame in with_raw["frames"] for person in frame["people"]]
    assert kind == "result" and people and all("raw" in person for person in people[1:])  # every person after the track's first frame
