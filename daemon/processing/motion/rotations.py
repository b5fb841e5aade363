"""Rotations for motion: matrices <-> unit quaternions, sign continuity, slerp.

Why quaternions: SMPL rotations come as matrices, which cannot be averaged or filtered
element-wise (the result is no rotation). Axis-angle cannot be filtered either: near 180
degrees the axis flips and the angle wraps, so a filter would sweep through unrelated poses.
Unit quaternions are smooth in the rotation, except that q and -q are the same rotation;
aligning each quaternion to the hemisphere of a reference ("sign continuity") removes that,
and a weighted fit of aligned quaternions followed by renormalisation is a rotation average
that is accurate for the small steps between neighbouring video frames.

Quaternions are (w, x, y, z), arrays of shape (..., 4); matrices (..., 3, 3).
"""

from __future__ import annotations

import numpy as np

_NLERP_BELOW = 1e-6  # |sin(angle)| under which slerp's division is unstable; nlerp is exact enough


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """Unit quaternions of rotation matrices (Shepperd's method: stable for every angle)."""
    m = np.asarray(matrices, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate formulas, each accurate when its "largest component" is largest; pick per element.
    candidates = np.stack(
        [
            np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - trace, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - trace, m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - trace], -1),
        ],
        axis=-2,
    )  # (..., 4 candidates, 4 components); candidate k has component k = 4 q_k^2 (times 1)
    diagonal = np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = np.argmax(diagonal, axis=-1)
    chosen = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    return normalise(chosen)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions (normalised first, so the result is a rotation)."""
    w, x, y, z = np.moveaxis(normalise(quaternions), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (unit axis times radians, angle in [0, pi]) for output only."""
    q = matrix_to_quaternion(matrices)
    q = np.where(q[..., :1] < 0, -q, q)  # w >= 0: the angle is at most pi
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half > 1e-12, angle / np.where(sin_half > 1e-12, sin_half, 1.0), 2.0)
    return q[..., 1:] * scale


def normalise(quaternions: np.ndarray) -> np.ndarray:
    q = np.asarray(quaternions, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def align_hemisphere(quaternions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``quaternions`` with each sign chosen to lie in the hemisphere of ``reference`` (same rotation)."""
    dots = np.sum(quaternions * reference, axis=-1, keepdims=True)
    return np.where(dots < 0, -quaternions, quaternions)


def slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Constant-speed interpolation along the shorter arc; ``fraction`` 0 -> start, 1 -> end."""
    start = normalise(start)
    end = align_hemisphere(normalise(end), start)  # the shorter way round
    cos_angle = np.clip(np.sum(start * end, axis=-1, keepdims=True), -1.0, 1.0)
    angle = np.arccos(cos_angle)
    sin_angle = np.sin(angle)
    small = sin_angle < _NLERP_BELOW
    safe_sin = np.where(small, 1.0, sin_angle)
    weight_start = np.where(small, 1.0 - fraction, np.sin((1.0 - fraction) * angle) / safe_sin)
    weight_end = np.where(small, fraction, np.sin(fraction * angle) / safe_sin)
    return normalise(weight_start * start + weight_end * end)


def slerp_matrices(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    return quaternion_to_matrix(slerp(matrix_to_quaternion(start), matrix_to_quaternion(end), fraction))


__all__ = [
    "align_hemisphere",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "normalise",
    "quaternion_to_matrix",
    "slerp",
    "slerp_matrices",
]
