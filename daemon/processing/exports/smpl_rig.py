"""The SMPL 24-joint rig in glTF terms: hierarchy, rest offsets, rotations as quaternions.

**Axes.** PHALP reports everything in the OpenCV camera frame (x right, y down, z forward, metres).
glTF is right-handed with y up. We turn the camera frame 180 degrees about its x axis:
``gltf = (x, -y, -z)`` (``GLTF_FROM_CAMERA``). That is a proper rotation (no mirroring), so
the result is x right, y up, z towards the viewer, and glTF's default camera (at the origin,
looking down -z) sees the scene as the video's camera did. Only the root rotation and the root
translation change; rotations relative to a parent (``body_pose``) stay as they are.

**Rest offsets.** SMPL's rest joints come from its template and shape blend shapes (the
licensed SMPL file), which posed cannot ship. Each bone's offset is instead measured on the
person: the camera-frame joint positions of one frame are "unposed" with that frame's own
rotations, ``offset_j = G_parent^T (P_j - P_parent)``, where ``G`` are the accumulated global
rotations. For the 14 SMPL joints PHALP reports directly this is exact (up to float error);
the other 10 (spine1-3, collars, head, feet, hands) are placed on the segments between reported
joints with SMPL-like proportions (``_DERIVED``).
"""

from __future__ import annotations

import numpy as np

from daemon.processing.backends.phalp.skeleton import SMPL_24

GLTF_FROM_CAMERA = np.diag([1.0, -1.0, -1.0])

# SMPL kinematic tree (parent of each of the 24 joints; -1 = root), as in smplx's kintree_table.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# SMPL joints PHALP reports under another name (its OpenPose reordering, reference 4.2).
_SAME_AS = {
    "pelvis": "mid_hip", "left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee",
    "right_knee": "right_knee", "left_ankle": "left_ankle", "right_ankle": "right_ankle", "neck": "neck",
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist",
}  # fmt: skip

# The others: start + fraction * (end - start), with names of reported (or derived) joints. The
# fractions follow the neutral SMPL template's proportions (spine joints along pelvis->neck,
# collars near the neck, hands a third of a forearm past the wrist, feet towards the toes).
_DERIVED = {
    "spine1": ("pelvis", "neck", 0.25),
    "spine2": ("pelvis", "neck", 0.5),
    "spine3": ("pelvis", "neck", 0.6),
    "left_collar": ("neck", "left_shoulder", 0.4),
    "right_collar": ("neck", "right_shoulder", 0.4),
    "head": ("neck", "j19_head_top", 0.5),
    "left_foot": ("left_ankle", "left_big_toe", 0.6),
    "right_foot": ("right_ankle", "right_big_toe", 0.6),
    "left_hand": ("left_elbow", "left_wrist", 1.35),
    "right_hand": ("right_elbow", "right_wrist", 1.35),
}


def smpl_joint_positions(joints: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The 24 SMPL joints (24, 3) from a backend's named 3D joints (PHALP-45), same frame."""
    index = {name: i for i, name in enumerate(names)}
    missing = [n for n in (*_SAME_AS.values(), "j19_head_top", "left_big_toe", "right_big_toe") if n not in index]
    if missing:
        raise ValueError(f"the backend's 3D joints lack {', '.join(missing)}: cannot place the SMPL rig")
    positions: dict[str, np.ndarray] = {smpl: joints[index[ours]] for smpl, ours in _SAME_AS.items()}
    for name, (start, end, fraction) in _DERIVED.items():
        a = positions.get(start, joints[index[start]] if start in index else None)
        b = positions.get(end, joints[index[end]] if end in index else None)
        positions[name] = a + fraction * (b - a)
    return np.stack([positions[name] for name in SMPL_24])


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Accumulate (24, 3, 3) parent-relative rotations down the tree into global ones."""
    out = np.empty_like(local)
    for joint, parent in enumerate(SMPL_PARENTS):
        out[joint] = local[joint] if parent < 0 else out[parent] @ local[joint]
    return out


def rest_offsets(positions: np.ndarray, local_rotations: np.ndarray) -> np.ndarray:
    """Each joint's offset from its parent in the parent's unposed frame (24, 3); root: zeros."""
    world = global_rotations(local_rotations)
    offsets = np.zeros((len(SMPL_PARENTS), 3))
    for joint, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            offsets[joint] = world[parent].T @ (positions[joint] - positions[parent])
    return offsets


def local_rotations(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """SMPL's (1,3,3) + (23,3,3) as one (24, 3, 3) stack, root turned into the glTF frame."""
    stack = np.concatenate([np.asarray(global_orient).reshape(1, 3, 3), np.asarray(body_pose).reshape(23, 3, 3)])
    stack = stack.astype(np.float64)
    stack[0] = GLTF_FROM_CAMERA @ stack[0]
    return stack


def nearest_rotations(matrices: np.ndarray) -> np.ndarray:
    """Project (N, 3, 3) matrices onto the nearest proper rotations (model output is float32)."""
    u, _, vt = np.linalg.svd(matrices)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return u @ vt


def quaternions_xyzw(matrices: np.ndarray) -> np.ndarray:
    """Unit quaternions (N, 4) in glTF's x, y, z, w order for (N, 3, 3) rotation matrices.

    Shepperd's method: pivot on the largest of w, x, y, z so no division is by a small number
    (a branch-free sign trick breaks for half-turns, which athletes' wrists do reach).
    """
    r = nearest_rotations(np.asarray(matrices, dtype=np.float64))
    m = lambda i, j: r[:, i, j]  # noqa: E731
    trace = m(0, 0) + m(1, 1) + m(2, 2)
    pivots = np.stack([trace, m(0, 0), m(1, 1), m(2, 2)], axis=1)
    case = np.argmax(pivots, axis=1)
    s = np.sqrt(np.maximum(1e-12, 1 + 2 * pivots[np.arange(len(r)), case] - trace)) * 2  # 4 * pivot component
    candidates = np.stack(
        [
            np.stack([m(2, 1) - m(1, 2), m(0, 2) - m(2, 0), m(1, 0) - m(0, 1), s * s / 4], axis=1),
            np.stack([s * s / 4, m(0, 1) + m(1, 0), m(0, 2) + m(2, 0), m(2, 1) - m(1, 2)], axis=1),
            np.stack([m(0, 1) + m(1, 0), s * s / 4, m(1, 2) + m(2, 1), m(0, 2) - m(2, 0)], axis=1),
            np.stack([m(0, 2) + m(2, 0), m(1, 2) + m(2, 1), s * s / 4, m(1, 0) - m(0, 1)], axis=1),
        ]
    )  # (4 cases, N, xyzw), each scaled by s
    q = candidates[case, np.arange(len(r))] / s[:, None]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def continuous(quaternions: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Flip signs so each quaternion is on the same side as the last keyframe's (no long-way turns)."""
    if previous is None:
        return quaternions
    flip = np.sum(quaternions * previous, axis=1) < 0
    return np.where(flip[:, None], -quaternions, quaternions)
