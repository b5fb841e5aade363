"""The flat per-frame fields of the old HTTP service (``output.legacy_fields``, off by default).

The Node backend's storage code reads ``frame_number``, ``keypoints``, ``has_3d``, ... from
each frame (issue 4). Those names describe one person, so they are filled from the frame's
PRIMARY person: the detected person with the highest confidence, else the predicted one with
the highest confidence (ties: lowest track id), else nobody. ``primary_track_id`` says which
entry of ``people`` that was. The result writer merges these fields into every frame object,
next to the richer ``people`` list; the frame schema documents the same rule. These fields
name every keypoint and joint in every frame (v1's verbose form), which is why they are
opt-in since result schema version 2.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from daemon.records import BackendInfo, FrameResult, Person

ANGLE_DECIMALS = 2
# Interior angle at the middle joint, in degrees (180 = straight). Each position lists the
# accepted names, first found wins: BlazePose, COCO and SMPL share the snake_case names;
# the feet differ (BlazePose foot_index, SMPL foot, OpenPose big_toe).
ANGLE_TRIPLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    f"{side}_{joint}": (proximal, (f"{side}_{joint}",), distal)
    for side in ("left", "right")
    for joint, proximal, distal in (
        ("elbow", (f"{side}_shoulder",), (f"{side}_wrist",)),
        ("shoulder", (f"{side}_elbow",), (f"{side}_hip",)),
        ("hip", (f"{side}_shoulder",), (f"{side}_knee",)),
        ("knee", (f"{side}_hip",), (f"{side}_ankle",)),
        ("ankle", (f"{side}_knee",), (f"{side}_foot_index", f"{side}_foot", f"{side}_big_toe")),
    )
}
# OpenPose-style names ("LKnee", "OP RBigToe") mapped onto the snake_case ones above.
_SHORT_SIDE_NAME = re.compile(r"(?:op_)?([lr])_?(shoulder|elbow|wrist|hip|knee|ankle|big_?toe|foot)")


LEGACY_PIXEL_DECIMALS = 2
LEGACY_CONFIDENCE_DECIMALS = 4
LEGACY_METRE_DECIMALS = 5


def legacy_fields_for(result: FrameResult, info: BackendInfo, *, width: int, height: int) -> dict[str, Any]:
    """The legacy fields of one frame, straight from the backend's records."""
    frame = {"frame_index": result.index, "people": [_verbose_person(person, info) for person in result.people]}
    return legacy_frame_fields(frame, width=width, height=height, model_version=info.model_version, processing_ms=result.processing_ms)


def _verbose_person(person: Person, info: BackendInfo) -> dict[str, Any]:
    """A person in v1's named-points form, which the old service's fields were made of."""
    record: dict[str, Any] = {
        "track_id": int(person.track_id),
        "state": person.state,
        "confidence": round(float(person.confidence), LEGACY_CONFIDENCE_DECIMALS),
        "keypoints": [
            {"name": name, "x": round(float(x), LEGACY_PIXEL_DECIMALS), "y": round(float(y), LEGACY_PIXEL_DECIMALS),
             "confidence": round(float(c), LEGACY_CONFIDENCE_DECIMALS)}
            for name, (x, y, c) in zip(info.keypoint_names, person.keypoints, strict=True)
        ],
        "joints_3d": None if person.joints_3d is None else [
            {"name": name, "x": round(float(x), LEGACY_METRE_DECIMALS), "y": round(float(y), LEGACY_METRE_DECIMALS),
             "z": round(float(z), LEGACY_METRE_DECIMALS)}
            for name, (x, y, z) in zip(info.joint_names_3d, person.joints_3d, strict=True)
        ],
    }
    if person.camera_translation is not None:
        record["camera_translation"] = np.round(np.asarray(person.camera_translation, dtype=np.float64), LEGACY_METRE_DECIMALS).tolist()
    if "mesh_vertices" in person.extra:
        record["mesh_vertices"] = person.extra["mesh_vertices"]
    if "joint_angles_3d" in person.extra and person.raw is None:  # the backend's own, for its own joints
        record["joint_angles_3d"] = person.extra["joint_angles_3d"]
    return record


def legacy_frame_fields(
    frame_json: dict[str, Any],
    *,
    width: int,
    height: int,
    model_version: str,
    processing_ms: float,
    mesh_faces: list[list[int]] | None = None,
) -> dict[str, Any]:
    """The old service's flat fields for one frame, for its primary person.

    Args:
        frame_json: a frame as serialised by ``results.frame_to_json`` (``frame_index``,
            ``people`` with ``keypoints``, ``joints_3d`` and backend extras).
        width: delivered (upright) frame width in pixels.
        height: delivered (upright) frame height in pixels.
        model_version: the backend's model version.
        processing_ms: backend time for this frame.
        mesh_faces: triangles to copy into ``mesh_faces_data`` when the primary person has a
            mesh. Normally left out: the faces are the same for every frame and the result
            carries them once, at the top level (``mesh_faces``).
    """
    fields: dict[str, Any] = {
        "frame_number": int(frame_json["frame_index"]),
        "frame_width": int(width),
        "frame_height": int(height),
    }
    person = primary_person(frame_json.get("people") or [])
    fields.update(_nobody() if person is None else _describe(person, mesh_faces))
    fields["processing_time_ms"] = round(max(float(processing_ms), 0.0), 3)
    fields["model_version"] = model_version
    return fields


def primary_person(people: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Detected beats predicted, then higher confidence, then lower track id."""
    if not people:
        return None
    return max(people, key=lambda p: (p.get("state") == "detected", p.get("confidence", 0.0), -p.get("track_id", 0)))


def joint_angles(joints_3d: list[dict[str, Any]]) -> dict[str, float]:
    """Interior angles in degrees at elbows, shoulders, hips, knees and ankles, where present."""
    points = _points_by_canonical_name(joints_3d)
    angles = {}
    for angle_name, (proximal, vertex, distal) in ANGLE_TRIPLES.items():
        a, b, c = (_first_present(points, names) for names in (proximal, vertex, distal))
        if a is not None and b is not None and c is not None:
            angle = _angle_at(a, b, c)
            if angle is not None:
                angles[angle_name] = angle
    return angles


def _nobody() -> dict[str, Any]:
    return {
        "keypoints": [],
        "keypoint_count": 0,
        "has_3d": False,
        "joints_3d_raw": [],
        "joint_angles_3d": {},
        "mesh_vertices": 0,
        "mesh_vertices_data": [],
        "mesh_faces_data": [],
        "camera_translation": None,
        "tracking_confidence": 0.0,
        "primary_track_id": None,
    }


def _describe(person: dict[str, Any], mesh_faces: list[list[int]] | None) -> dict[str, Any]:
    keypoints = person.get("keypoints") or []
    joints = person.get("joints_3d") or []
    vertices = person.get("mesh_vertices")
    vertices = vertices if isinstance(vertices, list) else []
    angles = person.get("joint_angles_3d")  # a backend may compute its own; trust it then
    camera = person.get("camera_translation")
    return {
        "keypoints": keypoints,
        "keypoint_count": len(keypoints),
        "has_3d": bool(joints),
        "joints_3d_raw": joints,
        "joint_angles_3d": angles if isinstance(angles, dict) else joint_angles(joints),
        "mesh_vertices": len(vertices),
        "mesh_vertices_data": vertices,
        "mesh_faces_data": list(mesh_faces) if (vertices and mesh_faces) else [],
        "camera_translation": list(camera) if isinstance(camera, (list, tuple)) and len(camera) == 3 else None,
        "tracking_confidence": float(person.get("confidence", 0.0)),
        "primary_track_id": person.get("track_id"),
    }


def _points_by_canonical_name(joints_3d: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    points: dict[str, tuple[float, float, float]] = {}
    for joint in joints_3d:
        name = _canonical_name(str(joint.get("name", "")))
        if name not in points:  # PHALP lists some joints twice (OpenPose and SMPL): first wins
            points[name] = (float(joint["x"]), float(joint["y"]), float(joint["z"]))
    return points


def _first_present(points: dict[str, tuple[float, float, float]], names: tuple[str, ...]) -> tuple[float, float, float] | None:
    return next((points[name] for name in names if name in points), None)


def _canonical_name(name: str) -> str:
    snake = re.sub(r"[\s\-]+", "_", name.strip()).lower()
    short = _SHORT_SIDE_NAME.fullmatch(snake)
    if short:
        side, part = short.groups()
        part = "big_toe" if part.startswith("big") else part
        return f"{'left' if side == 'l' else 'right'}_{part}"
    return snake


def _angle_at(a: tuple[float, ...], b: tuple[float, ...], c: tuple[float, ...]) -> float | None:
    u = [ai - bi for ai, bi in zip(a, b)]
    v = [ci - bi for ci, bi in zip(c, b)]
    norm = math.hypot(*u) * math.hypot(*v)
    if not math.isfinite(norm) or norm < 1e-12:  # coincident joints (PHALP pads with zeros)
        return None
    cosine = sum(ui * vi for ui, vi in zip(u, v)) / norm
    return round(math.degrees(math.acos(max(-1.0, min(1.0, cosine)))), ANGLE_DECIMALS)
