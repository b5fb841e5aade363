"""Joint angles in degrees from camera-frame 3D joints (PHALP-45 order).

Angles come from joint positions, not from SMPL's local rotations: they are what a coach reads
off a skeleton drawing and do not depend on SMPL's rest-pose conventions. They follow the result
schema's ``jointAngles``: interior angles, 0..180, 180 = straight.

- ``*_knee``: angle at the knee between thigh and shank (hip, knee, ankle).
- ``*_elbow``: angle at the elbow between upper arm and forearm (shoulder, elbow, wrist).
- ``*_hip``: angle at the hip between trunk and thigh (neck, hip, knee); 180 = standing straight.
- ``*_shoulder``: angle at the shoulder between trunk and upper arm (hip, shoulder, elbow);
  0 = arm along the trunk, 90 = arm raised to the side or front, 180 = arm overhead.
- ``trunk_lean``: angle between mid-hip -> neck and the camera's up axis (-y); 0 = upright for
  a level camera. The camera's tilt is unknown, so this is the lean *as filmed*.
"""

from __future__ import annotations

import math

import numpy as np

from daemon.processing.backends.phalp.skeleton import PHALP_45

_J = {name: index for index, name in enumerate(PHALP_45)}
CAMERA_UP = np.array([0.0, -1.0, 0.0])

# name -> (a, vertex, b): the angle at `vertex` between the rays to `a` and `b`
INTERIOR_ANGLES = {
    "left_knee": ("left_hip", "left_knee", "left_ankle"),
    "right_knee": ("right_hip", "right_knee", "right_ankle"),
    "left_hip": ("neck", "left_hip", "left_knee"),
    "right_hip": ("neck", "right_hip", "right_knee"),
    "left_elbow": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_elbow": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_shoulder": ("left_hip", "left_shoulder", "left_elbow"),
    "right_shoulder": ("right_hip", "right_shoulder", "right_elbow"),
}
ANGLE_NAMES = (*INTERIOR_ANGLES, "trunk_lean")
# (a, vertex, b) index triples in ANGLE_NAMES order; trunk_lean uses (neck, mid_hip) and CAMERA_UP
_A = np.array([_J[a] for a, _, _ in INTERIOR_ANGLES.values()])
_VERTEX = np.array([_J[v] for _, v, _ in INTERIOR_ANGLES.values()])
_B = np.array([_J[b] for _, _, b in INTERIOR_ANGLES.values()])


def joint_angles_deg(joints: np.ndarray) -> dict[str, float]:
    """Angles for one person; an angle whose limb has zero length is left out."""
    joints = np.asarray(joints, dtype=np.float64)
    first = np.vstack([joints[_A] - joints[_VERTEX], joints[_J["neck"]] - joints[_J["mid_hip"]]])
    second = np.vstack([joints[_B] - joints[_VERTEX], CAMERA_UP])
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.einsum("ij,ij->i", first, second) / norms
    degrees = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    valid = norms > 1e-12  # also false for NaN
    return {name: float(value) for name, value, ok in zip(ANGLE_NAMES, degrees, valid) if ok and math.isfinite(value)}
