"""The user's own SMPL body model, as a skinned triangle mesh that follows a track's SMPL rig.

posed never ships SMPL (its licence requires registration and forbids redistribution): the mesh
is made only when ``output.motion_mesh`` is on and ``backend.phalp.smpl_path`` names the user's
file, the one PHALP and HMR 2.0 already load. The GLB that carries the mesh then contains SMPL
geometry and falls under the SMPL licence too (the README says so).

**What the mesh is.** SMPL's template plus its shape blend shapes for the track's ``betas`` (of
the frame that fixes the rig's rest pose), skinned to the 24 joint nodes by SMPL's own blend
weights. glTF skins at most 4 joints per vertex (``JOINTS_0``/``WEIGHTS_0``): each vertex keeps
its 4 largest weights, renormalised; SMPL's weights beyond the fourth are tiny. SMPL's *pose*
blend shapes (the corrective ``posedirs``) are not in the file: a glTF player cannot compute
them, so elbows and knees bend as plain linear blend skinning does.

**Reading the file.** The original SMPL pickle holds chumpy arrays and a scipy sparse joint
regressor, so reading it needs the modules PHALP needs (scripts/setup-gpu.sh installs them); a
plain pickle of numpy arrays (what 4D-Humans converts it to) needs nothing. The file is the
user's configured model, unpickled as smplx does; point ``smpl_path`` only at a file you trust.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.processing.exports.base import ExportError
from daemon.processing.exports.smpl_rig import SMPL_PARENTS

VERTEX_JOINTS = 4  # glTF's JOINTS_0 / WEIGHTS_0 carry four influences per vertex
SETUP_HINT = "scripts/setup-gpu.sh installs the modules the original SMPL file needs (chumpy, scipy)"


@dataclass(frozen=True)
class SmplBody:
    """What a skinned mesh needs from an SMPL model file, as plain arrays."""

    template: np.ndarray  # (V, 3) metres, SMPL's canonical frame (y up, facing +z)
    shape_dirs: np.ndarray  # (V, 3, B)
    joint_regressor: np.ndarray  # (24, V)
    faces: np.ndarray  # (F, 3) uint32
    skin_joints: np.ndarray  # (V, 4) uint8: the 4 joints with the largest weights
    skin_weights: np.ndarray  # (V, 4) float32, rows sum to 1

    def shaped(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (V, 3) and rest joints (24, 3) of a body with these shape coefficients."""
        betas = np.asarray(betas, dtype=np.float64).reshape(-1)
        used = min(len(betas), self.shape_dirs.shape[2])
        vertices = self.template + self.shape_dirs[:, :, :used] @ betas[:used]
        return vertices, self.joint_regressor @ vertices


def load_smpl_body(path: Path) -> SmplBody:
    """Read an SMPL model file; an ``ExportError`` saying what is wrong and what to do otherwise."""
    if not path.is_file():
        raise ExportError(f"no SMPL model file at {path} (backend.phalp.smpl_path): the GLB has the skeleton only")
    try:
        with path.open("rb") as handle:
            raw = pickle.load(handle, encoding="latin1")
    except ModuleNotFoundError as exc:
        raise ExportError(f"reading the SMPL model {path} needs the module {exc.name!r}: {SETUP_HINT}") from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is the same advice
        raise ExportError(f"{path} is not a readable SMPL model file ({type(exc).__name__}: {exc})") from exc
    try:
        return _body_from_fields(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{path} is not an SMPL model with 24 joints: {exc}") from exc


def _body_from_fields(raw: dict) -> SmplBody:
    template = _array(raw["v_template"])
    shape_dirs = _array(raw["shapedirs"])
    regressor = _array(raw["J_regressor"])
    weights = _array(raw["weights"])
    faces = _array(raw["f"]).astype(np.int64)
    parents = tuple(int(p) for p in _array(raw["kintree_table"])[0, 1:])
    vertices = len(template)
    if template.shape != (vertices, 3) or shape_dirs.shape[:2] != (vertices, 3):
        raise ValueError(f"template {template.shape} and shape blend shapes {shape_dirs.shape} disagree")
    if regressor.shape != (24, vertices) or weights.shape != (vertices, 24) or parents != SMPL_PARENTS[1:]:
        raise ValueError(f"joint regressor {regressor.shape}, weights {weights.shape}, tree {parents[:4]}...")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= vertices:
        raise ValueError(f"faces {faces.shape} do not index the {vertices} vertices")
    skin_joints, skin_weights = strongest_influences(weights)
    return SmplBody(template, shape_dirs, regressor, faces.astype(np.uint32), skin_joints, skin_weights)


def _array(value) -> np.ndarray:
    """A numpy array from what SMPL pickles hold: numpy, chumpy (``.r``) or scipy sparse."""
    if hasattr(value, "toarray"):
        value = value.toarray()
    elif hasattr(value, "r"):
        value = value.r
    array = np.asarray(value)
    return array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float64)


def strongest_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vertex's ``VERTEX_JOINTS`` largest skinning weights, renormalised to sum to 1."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :VERTEX_JOINTS]
    kept = np.take_along_axis(weights, order, axis=1)
    kept = kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-12)
    return order.astype(np.uint8), kept.astype(np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals (V, 3): glTF players shade a mesh without normals flat."""
    corners = vertices[faces.astype(np.int64)]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner].astype(np.int64), face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)
