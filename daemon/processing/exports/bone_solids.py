"""The skeleton as skinned triangles: a thin octahedral solid per bone and a small one per joint.

Why triangles: glTF players skin triangle meshes; three.js's GLTFLoader (and Babylon.js) do
not skin LINES, so a line skeleton stands still in its bind pose in a stock player. Solids
need no player code: three.js' GLTFLoader + AnimationMixer play them as they are
(tests/test_export_plain_three.py), as should any player that follows glTF skinning.

Two ways a solid follows the joints (``Follow``):

- ``PARENT`` (rotating rigs, SMPL): a bone belongs to its parent joint, every vertex weighted 1
  to it. The child sits at a fixed offset in the parent's frame, so the solid is exact.
- ``ENDS`` (translated landmarks, MediaPipe): joints only move, they never turn, so a bone's
  head follows one end, its tail the other, and its widest ring is blended 3:1 between them.
  The solid stretches and turns with the segment; its cross-section keeps its world axes
  (two perpendicular radii, so it never flattens to nothing).

Each joint also gets a small regular octahedron weighted 1 to it. Faces carry their own
vertices (flat normals, as a crisp low-poly bone should look), wound outwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

JOINT_RADIUS_M = 0.025
BONE_RADIUS_FRACTION = 0.1  # of the bone's length, clamped to the two below
BONE_RADIUS_MIN_M, BONE_RADIUS_MAX_M = 0.008, 0.03
RING_AT = 0.25  # the widest ring at a quarter of the bone, as Blender's octahedral bones
RING_WEIGHTS = (0.75, 0.25)  # ENDS: head and tail share of the ring (exact in float32: sums to 1)
SHORTEST_BONE_M = 1e-4  # shorter: no bone solid (its joints' octahedra still show)


class Follow(enum.Enum):
    PARENT = "parent"
    ENDS = "ends"


@dataclass(frozen=True)
class Solids:
    """Per-vertex arrays ready for glTF accessors; every three vertices are a face (no index buffer)."""

    positions: np.ndarray  # (N, 3) float32, bind pose
    normals: np.ndarray  # (N, 3) float32, unit
    joints: np.ndarray  # (N, 4) uint8, skin joint indices
    weights: np.ndarray  # (N, 4) float32, rows sum to 1


def skeleton_solids(bind: np.ndarray, bones: list[tuple[int, int]], follow: Follow) -> Solids:
    """Solids for joints at ``bind`` (J, 3, world, bind pose) and ``bones`` (head, tail) index pairs."""
    parts = [_joint_octahedron(bind[j], j) for j in range(len(bind))]
    parts += [_bone_octahedron(bind[head], bind[tail], head, tail, follow) for head, tail in bones]
    parts = [part for part in parts if part is not None]
    triangles = np.concatenate([p[0] for p in parts])  # (F, 3, 3)
    joints = np.concatenate([p[1] for p in parts])  # (F, 3, 4)
    weights = np.concatenate([p[2] for p in parts])
    normals = np.repeat(_face_normals(triangles)[:, None, :], 3, axis=1)
    return Solids(
        positions=triangles.reshape(-1, 3).astype("<f4"),
        normals=normals.reshape(-1, 3).astype("<f4"),
        joints=joints.reshape(-1, 4).astype(np.uint8),
        weights=weights.reshape(-1, 4).astype("<f4"),
    )


def _joint_octahedron(centre: np.ndarray, joint: int):
    axes = np.eye(3) * JOINT_RADIUS_M
    tips = (centre + axes[1], centre - axes[1])
    ring = [centre + axes[0], centre + axes[2], centre - axes[0], centre - axes[2]]
    triangles = _double_pyramid(tips, ring)
    return triangles, *_rigid(len(triangles), joint)


def _bone_octahedron(head: np.ndarray, tail: np.ndarray, head_joint: int, tail_joint: int, follow: Follow):
    length = float(np.linalg.norm(tail - head))
    if length < SHORTEST_BONE_M:
        return None
    direction = (tail - head) / length
    u, v = _perpendiculars(direction)
    radius = float(np.clip(BONE_RADIUS_FRACTION * length, BONE_RADIUS_MIN_M, BONE_RADIUS_MAX_M))
    centre = head + RING_AT * length * direction
    ring = [centre + radius * u, centre + radius * v, centre - radius * u, centre - radius * v]
    triangles = _double_pyramid((head, tail), ring)
    if follow is Follow.PARENT:
        return triangles, *_rigid(len(triangles), head_joint)
    # ENDS: per vertex, which end it follows. _double_pyramid gives (tip, ring, ring) per face.
    joints = np.zeros((len(triangles), 3, 4), dtype=np.uint8)
    weights = np.zeros((len(triangles), 3, 4))
    half = len(triangles) // 2
    joints[:half, 0, 0], joints[half:, 0, 0] = head_joint, tail_joint
    weights[:, 0, 0] = 1.0
    joints[:, 1:, 0], joints[:, 1:, 1] = head_joint, tail_joint
    weights[:, 1:, 0], weights[:, 1:, 1] = RING_WEIGHTS
    return triangles, joints, weights


def _double_pyramid(tips: tuple[np.ndarray, np.ndarray], ring: list[np.ndarray]) -> np.ndarray:
    """Eight faces (first tip's four, then the second's), each (tip, ring_i, ring_i+1), wound outwards."""
    centre = (tips[0] + tips[1] + sum(ring)) / 6
    faces = []
    for tip in tips:
        for i in range(4):
            a, b = ring[i], ring[(i + 1) % 4]
            normal = np.cross(a - tip, b - tip)
            outward = np.dot(normal, (tip + a + b) / 3 - centre) >= 0
            faces.append((tip, a, b) if outward else (tip, b, a))
    return np.array(faces, dtype=np.float64)


def _rigid(faces: int, joint: int) -> tuple[np.ndarray, np.ndarray]:
    joints = np.zeros((faces, 3, 4), dtype=np.uint8)
    joints[:, :, 0] = joint
    weights = np.zeros((faces, 3, 4))
    weights[:, :, 0] = 1.0
    return joints, weights


def _perpendiculars(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` and to each other."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def _face_normals(triangles: np.ndarray) -> np.ndarray:
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)
