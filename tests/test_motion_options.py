"""motion.* settings: config validation, the sidecar's options.motion block, the way to the worker."""

from __future__ import annotations

import json

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError, ErrorCode, JobError
from daemon.processing.motion.settings import max_gap_frames, with_job_overrides
from daemon.records import JobOptions
from daemon.sidecar import parse_sidecar

ROOTS = ["/home/posed/inbox"]


def test_defaults_and_overrides_load_and_bad_values_name_their_key():
    cfg = load_config(overrides=["motion.max_gap_s=0.25", "motion.keypoints_2d.beta=2.5"])
    assert cfg.motion.smoothing and cfg.motion.fill_gaps and cfg.motion.include_raw
    assert cfg.motion.max_gap_s == 0.25 and cfg.motion.keypoints_2d.beta == 2.5
    for override, key in (
        ("motion.max_gap_s=-1", "motion.max_gap_s"),
        ("motion.rotations.min_cutoff=0", "motion.rotations.min_cutoff"),
        ("motion.joints_3d.d_cutoff=-2", "motion.joints_3d.d_cutoff"),
        ("motion.keypoints_2d.beta=-0.1", "motion.keypoints_2d.beta"),
        ("motion.smoothing=maybe", "motion.smoothing"),
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
