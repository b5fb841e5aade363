"""The motion stage's maths: two-sided local polynomial fits and rotations (quaternions, sign
continuity, slerp)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daemon.processing.backends.phalp.geometry import axis_angle_to_rotmat
from daemon.processing.motion.local_fit import reach_s, weights
from daemon.processing.motion.rotations import (
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp,
    slerp_matrices,
)
from daemon.processing.motion.smoothing import FitParams, Sample, SmoothingParams, smooth_person
from daemon.records import Person, SmplParams
from tests.fakes.phalp_api import rotation_x, rotation_y

FPS = 30.0
SIGMA_S = 0.05
FIT = FitParams(sigma_s=SIGMA_S, degree=2)


def mean_acceleration(track: np.ndarray) -> float:
    """Mean norm of the second difference over frames and points: (T, K, D) -> px/frame^2."""
    return float(np.mean(np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=-1)))


def fitted(track: np.ndarray, timestamps: np.ndarray, fit: FitParams = FIT) -> np.ndarray:
    """Every sample of ``track`` (T, ...) fitted from the samples within reach on both sides."""
    out = []
    for t in timestamps:
        near = np.abs(timestamps - t) <= reach_s(fit.sigma_s) + 1e-9
        out.append(np.tensordot(weights(timestamps[near] - t, fit.sigma_s, fit.degree), track[near], axes=1))
    return np.stack(out)


def geodesic_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of the rotation between matrices a and b (batched)."""
    relative = np.einsum("...ji,...jk->...ik", a, b)
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


# --- local polynomial fits ------------------------------------------------------------------


def test_the_fit_halves_the_acceleration_of_a_noisy_track_and_stays_closer_to_the_truth():
    rng = np.random.default_rng(7)
    t = np.arange(300) / FPS
    phases = rng.uniform(0, 2 * math.pi, size=(17, 1))
    truth = np.stack([400 + 40 * np.sin(2 * math.pi * 0.3 * t + phases), 300 + 20 * np.cos(2 * math.pi * 0.2 * t + phases)], -1)
    truth = np.transpose(truth, (1, 0, 2))  # (T, 17, 2)
    noisy = truth + rng.normal(scale=3.0, size=truth.shape)
    smooth = fitted(noisy, t)
    raw_acc, smooth_acc = mean_acceleration(noisy), mean_acceleration(smooth)
    print(f"synthetic 2D: mean acceleration raw {raw_acc:.2f} -> smoothed {smooth_acc:.2f} px/frame^2")
    assert smooth_acc <= 0.5 * raw_acc
    raw_error = np.mean(np.linalg.norm(noisy - truth, axis=-1))
    smooth_error = np.mean(np.linalg.norm(smooth - truth, axis=-1))
    assert smooth_error < 0.8 * raw_error


def test_the_fit_has_no_lag_on_a_fast_limb_where_a_causal_filter_trails():
    """A wrist swinging 2 Hz, 80 px each way (15 px/frame at its fastest): the two-sided fit
    follows it to about a pixel; even a mild causal average (half of each new sample) trails
    by many pixels. No noise: what is measured is lag alone."""
    t = np.arange(120) / FPS
    truth = 80 * np.sin(2 * math.pi * 2.0 * t)[:, None]
    smooth = fitted(truth, t)
    inner = slice(10, -10)  # both sides within reach
    lag = np.abs(smooth - truth)[inner].max()
    causal = np.zeros_like(truth)
    causal[0] = truth[0]
    for i in range(1, len(t)):
        causal[i] = causal[i - 1] + 0.5 * (truth[i] - causal[i - 1])
    causal_lag = np.abs(causal - truth)[inner].max()
    print(f"2 Hz swing: two-sided fit off by at most {lag:.2f} px, a causal average by {causal_lag:.2f} px")
    assert lag < 3.0 < 10.0 < causal_lag


@pytest.mark.parametrize("degree", [1, 2])
def test_a_fit_reproduces_motion_of_its_degree_exactly_even_at_uneven_times(degree):
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.5, 1.5, size=40)) / FPS  # variable frame rate
    track = 3.0 + 200.0 * t + (150.0 * t**2 if degree == 2 else 0.0)
    inner = slice(1, -1) if degree == 2 else slice(None)  # a track's ends are fitted by lines
    assert np.allclose(fitted(track, t, FitParams(SIGMA_S, degree))[inner], track[inner], atol=1e-6)


def test_at_a_tracks_ends_the_fit_is_a_line_so_it_does_not_extrapolate_noise():
    offsets = np.arange(0, 6) / FPS  # the first frame of a track: only later samples
    w = weights(offsets, SIGMA_S, 2)
    assert math.isclose(w.sum(), 1.0)
    line = 5.0 + 90.0 * offsets
    assert math.isclose(w @ line, 5.0)  # a line through the samples is reproduced at the end
    assert np.allclose(w, weights(offsets, SIGMA_S, 1))  # the local-linear weights


def test_weights_sum_to_one_are_symmetric_and_ignore_samples_beyond_the_reach():
    offsets = np.arange(-10, 11) / FPS
    w = weights(offsets, SIGMA_S, 2)
    assert math.isclose(w.sum(), 1.0) and np.allclose(w, w[::-1])
    assert np.all(w[np.abs(offsets) > reach_s(SIGMA_S)] == 0)
    assert np.array_equal(weights(np.array([0.0]), SIGMA_S, 2), [1.0])  # alone: itself
    assert np.allclose(weights(np.zeros(3), SIGMA_S, 2), 1 / 3)  # timestamps that do not advance: a mean


def _person(x: float, keypoints: np.ndarray | None = None) -> Person:
    points = np.array([[x, 2 * x, 0.9], [x + 10, 2 * x + 10, 0.8]]) if keypoints is None else keypoints
    return Person(1, "detected", 0.9, (x, 2 * x, 10.0, 10.0), points, joints_3d=points / 100)


def test_a_non_finite_or_misshapen_sample_is_left_out_of_its_neighbours_fits():
    samples = [Sample(i / FPS, _person(10.0 * i)) for i in range(7)]
    broken = _person(0.0, np.array([[np.nan, 1.0, 0.1], [2.0, 2.0, 0.1]]))
    samples[2] = Sample(2 / FPS, broken)
    samples[4] = Sample(4 / FPS, _person(0.0, np.zeros((5, 3))))
    params = SmoothingParams(FIT, FIT, FIT)
    smoothed = smooth_person(params, samples, 3)
    assert np.allclose(smoothed.keypoints[:, :2], [[30.0, 60.0], [40.0, 70.0]])  # the line through the others
    assert np.allclose(smoothed.keypoints[:, 2], [0.9, 0.8])  # confidences are the frame's own
    passed = smooth_person(params, samples, 2)
    assert np.isnan(passed.keypoints[0, 0]) and passed.raw is broken  # cannot be fitted: passed as it came


def test_quaternion_fits_have_no_sign_flips_across_a_180_degree_wrap():
    """A body turning a full circle about x (through 180 degrees, where axis-angle flips its
    axis and quaternion converters flip sign) with a wobble: the smoothed rotations stay
    rotations, take small steps and follow the turn."""
    t = np.arange(240) / FPS
    angles = 2 * math.pi * t / t[-1]  # 0 -> 360 degrees, 1.5 degrees per frame
    raw = np.stack([rotation_x(a) @ rotation_y(0.2 * math.sin(3 * s)) for a, s in zip(angles, t)])
    quaternions = matrix_to_quaternion(raw)
    assert np.any(np.sum(quaternions[1:] * quaternions[:-1], axis=-1) < 0), "the input must hold sign flips"
    people = [
        Person(1, "detected", 1.0, (0.0, 0.0, 1.0, 1.0), np.zeros((1, 3)), smpl=SmplParams(r[None], np.stack([r] * 23), np.zeros(10)))
        for r in raw
    ]
    samples = [Sample(ts, p) for ts, p in zip(t, people)]
    params = SmoothingParams(FIT, FIT, FIT)
    reach = math.ceil(reach_s(SIGMA_S) * FPS)
    smoothed = np.stack(
        [smooth_person(params, samples[max(0, i - reach) : i + reach + 1], min(i, reach)).smpl.global_orient[0] for i in range(len(t))]
    )
    assert np.allclose(np.einsum("nji,njk->nik", smoothed, smoothed), np.eye(3), atol=1e-9)
    steps = geodesic_degrees(smoothed[1:], smoothed[:-1])
    assert steps.max() < 4.0  # the raw motion turns about 1.5 to 2 degrees per frame
    error = geodesic_degrees(smoothed, raw)
    print(f"rotation smoothing: mean error {error.mean():.3f} deg, max {error.max():.3f} deg")
    assert error.max() < 1.0  # no lag: follows the turn, never swings the other way round


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
