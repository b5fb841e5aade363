"""Camera geometry of PHALP's output, in numpy (reference §4.3).

PHALP pads every frame to a square of side ``S = max(H, W)`` (image centred, integer offsets
``left``/``top``) and runs its models at ``R = render.res`` (256) with focal length
``F = EXTRA.FOCAL_LENGTH`` (5000). In pixels of the original frame that is a pinhole camera with
focal length ``F * S / R`` and principal point ``(S/2 - left, S/2 - top)``; +x right, +y down,
+z forward. Everything here works on plain arrays so the driver never needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSE_VECTOR_SIZE = 229  # 9 global_orient + 207 body_pose + 10 betas + 3 camera
CAMERA_DEPTH_SCALE = 200.0  # the pose vector stores tz / 200 (smpl_to_pose_camera_vector)


@dataclass(frozen=True)
class PaddedSquare:
    """The square PHALP pads a frame into: ``measurments = [H, W, S, left, top]``."""

    height: int
    width: int
    side: int
    left: int
    top: int

    @classmethod
    def of_frame(cls, height: int, width: int) -> PaddedSquare:
        side = max(height, width)
        return cls(height=height, width=width, side=side, left=(side - width) // 2, top=(side - height) // 2)

    def measurements(self) -> list[int]:
        """The list ``get_detections``/``get_human_features`` take (PHALP's spelling: measurments)."""
        return [self.height, self.width, self.side, self.left, self.top]

    def normalised_to_pixels(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) coordinates in [0, 1] of the padded square -> pixels of the frame."""
        points = np.asarray(points, dtype=np.float64)
        return points * self.side - np.array([self.left, self.top], dtype=np.float64)


@dataclass(frozen=True)
class PinholeCamera:
    """The full-image camera PHALP's ``camera`` translation assumes."""

    focal_length_px: float
    principal_point_px: tuple[float, float]

    @classmethod
    def for_frame(cls, square: PaddedSquare, focal_length: float, render_res: int) -> PinholeCamera:
        return cls(
            focal_length_px=focal_length * square.side / render_res,
            principal_point_px=(square.side / 2 - square.left, square.side / 2 - square.top),
        )

    def project(self, points_camera: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame metres -> (N, 2) pixels. Points at or behind z=0 come back NaN."""
        points = np.asarray(points_camera, dtype=np.float64)
        depth = points[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            projected = self.focal_length_px * points[:, :2] / np.where(depth > 0, depth, np.nan)
        return projected + np.asarray(self.principal_point_px)


def pose_vector_to_smpl(pose_vector: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Split PHALP's 229-d pose vector into SMPL rotation matrices, betas and camera translation.

    Same layout as ``phalp.utils.utils.pose_camera_vector_to_smpl``, but on a copy: that
    function rescales the depth in place, which would corrupt the tracker's stored prediction.
    """
    vector = np.array(pose_vector, dtype=np.float64).reshape(-1)
    if vector.size != POSE_VECTOR_SIZE:
        raise ValueError(f"pose vector has {vector.size} values, expected {POSE_VECTOR_SIZE}")
    smpl = {
        "global_orient": vector[:9].reshape(1, 3, 3),
        "body_pose": vector[9:216].reshape(23, 3, 3),
        "betas": vector[216:226].copy(),
    }
    camera = vector[226:229].copy()
    camera[2] *= CAMERA_DEPTH_SCALE
    return smpl, camera


def rotmat_to_axis_angle(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis * angle in radians, stable near 0 and pi.

    Goes through the unit quaternion: K = 4 q q^T is built from the matrix entries, and the row
    of K with the largest diagonal entry gives q without dividing by a small number (Shepperd).
    """
    r = np.asarray(rotations, dtype=np.float64)
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    skew = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], axis=-1)
    xy, xz, yz = r[..., 0, 1] + r[..., 1, 0], r[..., 0, 2] + r[..., 2, 0], r[..., 1, 2] + r[..., 2, 1]
    diagonal = np.stack([1 + trace, 1 + 2 * r[..., 0, 0] - trace, 1 + 2 * r[..., 1, 1] - trace, 1 + 2 * r[..., 2, 2] - trace], axis=-1)
    k = np.stack(
        [
            np.stack([diagonal[..., 0], skew[..., 0], skew[..., 1], skew[..., 2]], axis=-1),
            np.stack([skew[..., 0], diagonal[..., 1], xy, xz], axis=-1),
            np.stack([skew[..., 1], xy, diagonal[..., 2], yz], axis=-1),
            np.stack([skew[..., 2], xz, yz, diagonal[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    best = np.argmax(diagonal, axis=-1)[..., None, None]
    row = np.take_along_axis(k, np.broadcast_to(best, (*best.shape[:-2], 1, 4)), axis=-2)[..., 0, :]
    quaternion = row / (2.0 * np.sqrt(np.take_along_axis(diagonal, best[..., 0], axis=-1)))
    quaternion *= np.where(quaternion[..., :1] < 0, -1.0, 1.0)  # w >= 0: angle in [0, pi]
    vector = quaternion[..., 1:]
    sin_half = np.linalg.norm(vector, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, quaternion[..., :1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # angle / sin(angle/2) -> 2 / w as the rotation vanishes
        factor = np.where(sin_half > 1e-12, angle / sin_half, 2.0 / quaternion[..., :1])
    return vector * factor


def axis_angle_to_rotmat(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3), Rodrigues' formula (used by tests and the fakes)."""
    vec = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(vec, axis=-1, keepdims=True)
    axis = np.divide(vec, angle, out=np.zeros_like(vec), where=angle > 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*vec.shape[:-1], 3, 3)
    sin = np.sin(angle)[..., None]
    cos = np.cos(angle)[..., None]
    return np.eye(3) + sin * cross + (1.0 - cos) * (cross @ cross)
