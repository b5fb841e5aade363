"""A generated stand-in for the SMPL body model, for the synthetic-weights bench.

The SMPL file cannot be redistributed (its licence requires registration), so a bench that
must run before anyone has fetched it needs a body model with SMPL's *array shapes*: 6890
vertices, 13776 triangles, 24 joints in SMPL's tree, 10 shape and 207 pose blend shapes. It
is written as the plain pickle of numpy arrays that smplx's ``SMPL`` (which both PHALP and
HMR 2.0 use) reads with ``pickle.load(f, encoding="latin1")``, with the same field names as
``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``. Its geometry is a body-sized ellipsoid, not a
person: good for timing and memory, meaningless as a pose.

The surface is a closed latitude-longitude sphere: 82 rings of 84 vertices plus two poles is
exactly 6890 vertices, and a closed genus-0 mesh has 2V - 4 = 13776 triangles, as SMPL does.
Its UV layout (``uv_atlas``) is the same grid, so PHALP's texture atlas can be generated too.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RINGS, SEGMENTS = 82, 84
VERTICES = RINGS * SEGMENTS + 2  # 6890
FACES = 2 * VERTICES - 4  # 13776
JOINTS = 24
SHAPE_BASIS, POSE_BASIS = 10, 207  # 10 betas; 23 joints x 9 rotation-matrix entries
EXTRA_JOINTS = 19  # SMPL_to_J19.pkl: the 19 extra joints PHALP and HMR 2.0 regress
# SMPL's kinematic tree: the parent of joints 1..23 (joint 0, the pelvis, is the root).
SMPL_PARENTS = (0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
ROOT_PARENT = 4294967295  # how the SMPL file marks the root (uint32 -1)
BODY_RADII = (0.22, 0.85, 0.13)  # metres: half-width, half-height, half-depth
# Rest positions of the 24 joints as fractions of BODY_RADII (T-pose pulled inside the body).
JOINT_LAYOUT = (
    (0, -0.15, 0), (0.3, -0.25, 0), (-0.3, -0.25, 0), (0, 0.0, 0), (0.3, -0.55, 0), (-0.3, -0.55, 0),
    (0, 0.15, 0), (0.3, -0.85, 0), (-0.3, -0.85, 0), (0, 0.3, 0), (0.3, -0.92, 0.5), (-0.3, -0.92, 0.5),
    (0, 0.55, 0), (0.3, 0.5, 0), (-0.3, 0.5, 0), (0, 0.75, 0), (0.6, 0.5, 0), (-0.6, 0.5, 0),
    (0.8, 0.4, 0), (-0.8, 0.4, 0), (0.9, 0.3, 0), (-0.9, 0.3, 0), (0.95, 0.25, 0), (-0.95, 0.25, 0),
)  # fmt: skip


@dataclass(frozen=True)
class UvAtlas:
    """For each texel of a square UV image: the triangle it lies on and its barycentric weights."""

    face: np.ndarray  # (size, size) int64, -1 = no triangle
    barycentric: np.ndarray  # (size, size, 3) float32


def sphere_faces() -> np.ndarray:
    """Triangles of the latitude-longitude sphere: top fan, ring quads (two each), bottom fan."""
    top, bottom = 0, VERTICES - 1
    faces = [(top, _ring(0, b + 1), _ring(0, b)) for b in range(SEGMENTS)]
    for a in range(RINGS - 1):
        for b in range(SEGMENTS):
            v00, v10, v11, v01 = _ring(a, b), _ring(a + 1, b), _ring(a + 1, b + 1), _ring(a, b + 1)
            faces += [(v00, v10, v11), (v00, v11, v01)]
    faces += [(bottom, _ring(RINGS - 1, b), _ring(RINGS - 1, b + 1)) for b in range(SEGMENTS)]
    return np.asarray(faces, dtype=np.uint32)


def _ring(ring: int, segment: int) -> int:
    return 1 + ring * SEGMENTS + segment % SEGMENTS


def sphere_angles() -> tuple[np.ndarray, np.ndarray]:
    """Polar and azimuth angle of every vertex (poles first and last)."""
    rings = np.repeat(np.arange(RINGS), SEGMENTS)
    segments = np.tile(np.arange(SEGMENTS), RINGS)
    theta = np.concatenate([[0.0], np.pi * (rings + 1) / (RINGS + 1), [np.pi]])
    phi = np.concatenate([[0.0], 2 * np.pi * segments / SEGMENTS, [0.0]])
    return theta, phi


def body_vertices() -> tuple[np.ndarray, np.ndarray]:
    """Vertices of a body-sized ellipsoid (y up, head at +y) and their unit normals."""
    theta, phi = sphere_angles()
    unit = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], axis=1)
    radii = np.asarray(BODY_RADII)
    normals = unit / radii
    return unit * radii, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def regressor_to(points: np.ndarray, vertices: np.ndarray, nearest: int = 8) -> np.ndarray:
    """(len(points), VERTICES) weights, each row an inverse-distance mix of the nearest vertices
    summing to 1, as SMPL's joint regressors are convex mixes of surface vertices."""
    distances = np.linalg.norm(points[:, None, :] - vertices[None, :, :], axis=2)
    regressor = np.zeros((len(points), len(vertices)))
    for row, ranked in enumerate(np.argsort(distances, axis=1)[:, :nearest]):
        weights = 1.0 / (distances[row, ranked] + 1e-3)
        regressor[row, ranked] = weights / weights.sum()
    return regressor


def skinning_weights(vertices: np.ndarray, joints: np.ndarray, width: float = 0.1) -> np.ndarray:
    """(VERTICES, JOINTS) linear-blend-skinning weights: a softmax of closeness, rows sum to 1."""
    squared = ((vertices[:, None, :] - joints[None, :, :]) ** 2).sum(axis=2)
    logits = -squared / (2 * width**2)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def stand_in_body_model(seed: int = 0) -> dict[str, object]:
    """The fields smplx's SMPL reads from an SMPL pickle, with SMPL's shapes and dtypes."""
    rng = np.random.default_rng(seed)
    vertices, normals = body_vertices()
    joints = np.asarray(JOINT_LAYOUT) * np.asarray(BODY_RADII)
    regressor = regressor_to(joints, vertices)
    # Shape blend shapes swell the body along its normals in smooth bands; pose correctives are small.
    theta, phi = sphere_angles()
    bands = np.stack([np.cos((k + 1) * theta + (k % 3) * phi) for k in range(SHAPE_BASIS)], axis=1)
    shapedirs = 0.01 * normals[:, :, None] * bands[:, None, :]
    posedirs = 1e-3 * rng.standard_normal((VERTICES, 3, POSE_BASIS))
    kintree = np.asarray([(ROOT_PARENT, *SMPL_PARENTS), tuple(range(JOINTS))], dtype=np.int64)
    return {
        "v_template": vertices,
        "f": sphere_faces(),
        "J_regressor": regressor,
        "J": regressor @ vertices,
        "weights": skinning_weights(vertices, joints),
        "kintree_table": kintree,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


def extra_joint_regressor() -> np.ndarray:
    """SMPL_to_J19.pkl's (19, 6890) regressor: 19 points spread over the stand-in body."""
    vertices, _ = body_vertices()
    heights = np.linspace(-0.9, 0.9, EXTRA_JOINTS)
    sides = np.where(np.arange(EXTRA_JOINTS) % 2 == 0, 0.4, -0.4)
    points = np.stack([sides, heights, np.zeros(EXTRA_JOINTS)], axis=1) * np.asarray(BODY_RADII)
    return regressor_to(points, vertices)


def uv_coordinates() -> np.ndarray:
    """(VERTICES, 2) UV of every vertex: the latitude-longitude grid (u around, v down)."""
    theta, phi = sphere_angles()
    return np.stack([phi / (2 * np.pi), theta / np.pi], axis=1)


def uv_atlas(size: int = 256) -> UvAtlas:
    """Which triangle of ``sphere_faces`` covers each texel, and where: PHALP's bmap/fmap."""
    centres = (np.arange(size) + 0.5) / size
    v, u = np.meshgrid(centres, centres, indexing="ij")
    along = u * SEGMENTS  # segment coordinate
    down = v * (RINGS + 1)  # ring coordinate: 0 = top pole, RINGS + 1 = bottom pole
    segment, x = np.floor(along).astype(np.int64), along % 1.0
    face = np.full((size, size), -1, dtype=np.int64)
    bary = np.zeros((size, size, 3), dtype=np.float32)
    top, bottom = down < 1, down >= RINGS
    middle = ~top & ~bottom
    y = np.where(top, down, np.where(bottom, down - RINGS, down % 1.0))
    face[top] = segment[top]
    bary[top] = np.stack([1 - y[top], y[top] * (1 - x[top]), y[top] * x[top]], axis=1)[:, [0, 2, 1]]  # (pole, b+1, b)
    face[bottom] = SEGMENTS + 2 * (RINGS - 1) * SEGMENTS + segment[bottom]
    bary[bottom] = np.stack([y[bottom], (1 - y[bottom]) * (1 - x[bottom]), (1 - y[bottom]) * x[bottom]], axis=1)
    ring = np.floor(down).astype(np.int64) - 1
    lower = middle & (y >= x)  # triangle (v00, v10, v11)
    upper = middle & (y < x)  # triangle (v00, v11, v01)
    quad = SEGMENTS + 2 * (ring * SEGMENTS + segment)
    face[lower], face[upper] = quad[lower], quad[upper] + 1
    bary[lower] = np.stack([1 - y[lower], y[lower] - x[lower], x[lower]], axis=1)
    bary[upper] = np.stack([1 - x[upper], y[upper], x[upper] - y[upper]], axis=1)
    return UvAtlas(face=face, barycentric=bary)


def write_body_model(path: Path, seed: int = 0) -> Path:
    """Write the stand-in where ``backend.phalp.smpl_path`` points (protocol 2, as the original)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(stand_in_body_model(seed), handle, protocol=2)
    return path
