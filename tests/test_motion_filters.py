"""The motion stage's maths: the One-Euro filter and rotations (quaternions, sign continuity, slerp)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daemon.processing.backends.phalp.geometry import axis_angle_to_rotmat
from daemon.processing.motion.one_euro import OneEuroFilter, OneEuroParams
from daemon.processing.motion.rotations import (
    QuaternionSmoother,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp,
    slerp_matrices,
)
from tests.fakes.phalp_api import rotation_x, rotation_y

FPS = 30.0
PARAMS = OneEuroParams(min_cutoff=3.0, beta=0.01, d_cutoff=3.0)  # beta per px/s


def mean_acceleration(track: np.ndarray) -> float:
    """Mean norm of the second difference over frames and points: (T, K, D) -> px/frame^2."""
    return float(np.mean(np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=-1)))


def filtered(track: np.ndarray, timestamps: np.ndarray, params: OneEuroParams = PARAMS) -> np.ndarray:
    one_euro = OneEuroFilter(params, fallback_dt_s=1 / FPS)
    return np.stack([one_euro(sample, t) for sample, t in zip(track, timestamps)])


def geodesic_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of the rotation between matrices a and b (batched)."""
    relative = np.einsum("...ji,...jk->...ik", a, b)
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


# --- One-Euro -------------------------------------------------------------------------------


def test_one_euro_halves_the_acceleration_of_a_noisy_track_and_stays_closer_to_the_truth():
    rng = np.random.default_rng(7)
    t = np.arange(300) / FPS
    phases = rng.uniform(0, 2 * math.pi, size=(17, 1))
    truth = np.stack([400 + 40 * np.sin(2 * math.pi * 0.3 * t + phases), 300 + 20 * np.cos(2 * math.pi * 0.2 * t + phases)], -1)
    truth = np.transpose(truth, (1, 0, 2))  # (T, 17, 2)
    noisy = truth + rng.normal(scale=3.0, size=truth.shape)
    smooth = filtered(noisy, t)
    raw_acc, smooth_acc = mean_acceleration(noisy), mean_acceleration(smooth)
    print(f"synthetic 2D: mean acceleration raw {raw_acc:.2f} -> smoothed {smooth_acc:.2f} px/frame^2")
    assert smooth_acc <= 0.5 * raw_acc
    raw_error = np.mean(np.linalg.norm(noisy - truth, axis=-1))
    smooth_error = np.mean(np.linalg.norm(smooth - truth, axis=-1))
    assert smooth_error < raw_error


def test_one_euro_first_sample_after_reset_passes_unchanged():
    one_euro = OneEuroFilter(PARAMS, fallback_dt_s=1 / FPS)
    assert np.array_equal(one_euro(np.array([10.0, 20.0]), 0.0), [10.0, 20.0])
    moved = one_euro(np.array([30.0, 20.0]), 1 / FPS)
    assert 10.0 < moved[0] < 30.0  # filtered: between the old value and the new sample
    one_euro.reset()
    assert not one_euro.started
    assert np.array_equal(one_euro(np.array([30.0, 20.0]), 2 / FPS), [30.0, 20.0])


def test_one_euro_steps_by_the_frames_timestamps_not_by_the_sample_count():
    """Variable frame rate: a sample after a long pause follows the input further than one
    after a short step, and a timestamp that does not advance uses the nominal step."""
    step = np.array([[0.0], [100.0]])
    after_short = filtered(step, np.array([0.0, 1 / 60]))[-1, 0]
    after_long = filtered(step, np.array([0.0, 1 / 10]))[-1, 0]
    after_nominal = filtered(step, np.array([0.0, 1 / FPS]))[-1, 0]
    after_stuck = filtered(step, np.array([0.0, 0.0]))[-1, 0]
    assert 0 < after_short < after_nominal < after_long < 100
    assert after_stuck == pytest.approx(after_nominal)


def test_one_euro_passes_a_non_finite_sample_and_restarts_after_it():
    one_euro = OneEuroFilter(PARAMS, fallback_dt_s=1 / FPS)
    one_euro(np.array([1.0, 1.0]), 0.0)
    out = one_euro(np.array([np.nan, 2.0]), 1 / FPS)
    assert np.isnan(out[0]) and out[1] == 2.0
    assert np.array_equal(one_euro(np.array([5.0, 5.0]), 2 / FPS), [5.0, 5.0])  # a fresh start, no NaN kept


# --- rotations ------------------------------------------------------------------------------


def test_matrices_and_quaternions_round_trip_as_unit_quaternions():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(400, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, 394), [0.0, 1e-9, 1e-4, math.pi - 1e-6, math.pi - 1e-3, math.pi]])
    matrices = axis_angle_to_rotmat(axes * angles[:, None])
    quaternions = matrix_to_quaternion(matrices)
    assert np.allclose(np.linalg.norm(quaternions, axis=-1), 1.0)
    assert np.allclose(quaternion_to_matrix(quaternions), matrices, atol=1e-9)
    assert np.allclose(axis_angle_to_rotmat(matrix_to_axis_angle(matrices)), matrices, atol=1e-9)


def test_slerp_halfway_is_half_the_rotation_and_takes_the_short_arc():
    start, end = matrix_to_quaternion(np.eye(3)), matrix_to_quaternion(rotation_y(1.2))
    assert np.allclose(quaternion_to_matrix(slerp(start, end, 0.5)), rotation_y(0.6), atol=1e-12)
    assert np.allclose(quaternion_to_matrix(slerp(start, end, 0.25)), rotation_y(0.3), atol=1e-12)
    assert np.allclose(quaternion_to_matrix(slerp(start, -end, 0.5)), rotation_y(0.6), atol=1e-12)  # sign is no rotation
    # 170 degrees to 190 degrees about x: halfway is 180, not 0 (the long way round)
    halfway = slerp_matrices(rotation_x(math.radians(170)), rotation_x(math.radians(190)), 0.5)
    assert np.allclose(halfway, rotation_x(math.pi), atol=1e-12)
    assert np.allclose(slerp_matrices(rotation_y(0.3), rotation_y(0.3 + 1e-9), 0.5), rotation_y(0.3), atol=1e-9)


def test_quaternion_smoothing_has_no_sign_flips_across_a_180_degree_wrap():
    """A body turning a full circle about x (through 180 degrees, where axis-angle flips its
    axis) with a wobble, given as quaternions of arbitrary sign, as any converter may return
    them: the filtered quaternions stay unit, never jump hemisphere, and follow the motion."""
    t = np.arange(240) / FPS
    angles = 2 * math.pi * t / t[-1]  # 0 -> 360 degrees, 1.5 degrees per frame
    raw = np.stack([rotation_x(a) @ rotation_y(0.2 * math.sin(3 * s)) for a, s in zip(angles, t)])
    signs = np.random.default_rng(5).choice([-1.0, 1.0], size=(len(t), 1))
    quaternions = matrix_to_quaternion(raw) * signs  # the same rotations
    assert np.any(np.sum(quaternions[1:] * quaternions[:-1], axis=-1) < 0), "the input must hold sign flips"
    smoother = QuaternionSmoother(OneEuroParams(min_cutoff=3.0, beta=1.0, d_cutoff=3.0), fallback_dt_s=1 / FPS)
    smoothed = np.stack([smoother(q, ts) for q, ts in zip(quaternions, t)])
    assert np.allclose(np.linalg.norm(smoothed, axis=-1), 1.0)
    assert np.all(np.sum(smoothed[1:] * smoothed[:-1], axis=-1) > 0.99)  # small steps, same hemisphere
    steps = geodesic_degrees(quaternion_to_matrix(smoothed[1:]), quaternion_to_matrix(smoothed[:-1]))
    assert steps.max() < 4.0  # the raw motion turns about 1.5 to 2 degrees per frame
    lag = geodesic_degrees(quaternion_to_matrix(smoothed), raw)
    print(f"rotation smoothing: mean lag {lag.mean():.2f} deg, max {lag.max():.2f} deg")
    assert lag.max() < 10.0  # follows the turn, never swings the other way round


def test_quaternion_smoothing_restarts_on_reset():
    smoother = QuaternionSmoother(OneEuroParams(min_cutoff=1.0, beta=0.0), fallback_dt_s=1 / FPS)
    smoother(matrix_to_quaternion(np.eye(3)), 0.0)
    lagging = quaternion_to_matrix(smoother(matrix_to_quaternion(rotation_y(1.0)), 1 / FPS))
    assert geodesic_degrees(lagging, rotation_y(1.0)) > 10
    smoother.reset()
    fresh = quaternion_to_matrix(smoother(matrix_to_quaternion(rotation_y(1.0)), 2 / FPS))
    assert np.allclose(fresh, rotation_y(1.0), atol=1e-12)
