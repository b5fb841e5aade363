"""One frame as one compact JSON line of ``<name>.frames.jsonl`` (result schema version 2).

Names are written once, in the manifest (``backend.keypoint_names``, ``joint_names_3d``); a
person carries plain arrays in that order. Numbers are rounded to what the models resolve,
so a one-person MediaPipe frame is about 1.5 KB instead of v1's ~9 KB:

- pixels (keypoints, boxes): 0.1 px — landmark noise is several pixels;
- metres (3D joints, translations): 1e-4 m = 0.1 mm — HMR 2.0's error is tens of mm;
- rotations (SMPL axis-angle, radians) and shape coefficients: 1e-4;
- confidences: 1e-3.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from daemon.publishing.legacy import legacy_fields_for
from daemon.records import BackendInfo, FrameResult, Person, SmplParams

PIXEL_DECIMALS = 1
METRE_DECIMALS = 4
ROTATION_DECIMALS = 4
BETAS_DECIMALS = 4
CONFIDENCE_DECIMALS = 3
PRECISION = {
    "pixels": 10**-PIXEL_DECIMALS,
    "metres": 10**-METRE_DECIMALS,
    "radians": 10**-ROTATION_DECIMALS,
    "betas": 10**-BETAS_DECIMALS,
    "confidence": 10**-CONFIDENCE_DECIMALS,
}
# Person.extra keys only the legacy fields carry (v2 frames leave angles to the consumer).
_LEGACY_ONLY_EXTRAS = frozenset({"joint_angles_3d"})


def dumps_line(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON and a newline: one frame, one line, never a NaN."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


class FrameEncoder:
    """Turns ``FrameResult`` records into frame-line objects for one video."""

    def __init__(self, info: BackendInfo, frame_size: tuple[int, int], *, include_raw: bool, legacy_fields: bool) -> None:
        self._info = info
        self._frame_size = frame_size
        self._include_raw = include_raw
        self._legacy_fields = legacy_fields

    def frame(self, result: FrameResult) -> dict[str, Any]:
        line: dict[str, Any] = {
            "frame_index": result.index,
            "timestamp_s": round(result.timestamp_s, 6),
            "people": [self.person(person) for person in result.people],
        }
        if self._legacy_fields:
            width, height = self._frame_size
            line.update(legacy_fields_for(result, self._info, width=width, height=height))
        return line

    def person(self, person: Person) -> dict[str, Any]:
        record: dict[str, Any] = {
            "track_id": int(person.track_id),
            "state": person.state,
            "frames_since_detection": int(person.frames_since_detection),
            "confidence": round(float(person.confidence), CONFIDENCE_DECIMALS),
        }
        record.update(_measurements(person))
        extra = {key: value for key, value in person.extra.items() if key not in _LEGACY_ONLY_EXTRAS}
        if extra:
            record["extra"] = extra
        if self._include_raw and person.raw is not None:
            record["raw"] = _measurements(person.raw)
        return record


def _measurements(person: Person) -> dict[str, Any]:
    """The numbers a motion stage may change: box, keypoints, joints, body model."""
    values: dict[str, Any] = {
        "bbox": _rounded(np.asarray(person.bbox_xywh, dtype=np.float64), PIXEL_DECIMALS),
        "keypoints": keypoint_rows(person.keypoints),
        "joints_3d": None if person.joints_3d is None else _rounded(person.joints_3d, METRE_DECIMALS),
    }
    if person.smpl is not None:
        values["smpl"] = smpl_json(person.smpl)
    if person.camera_translation is not None:
        values["camera_translation"] = _rounded(person.camera_translation, METRE_DECIMALS)
    return values


def keypoint_rows(points: np.ndarray) -> list[list[float]]:
    """``[[x, y, confidence], ...]``: pixels to 0.1, confidence to 0.001."""
    points = np.asarray(points, dtype=np.float64)
    rows = np.empty_like(points)
    rows[:, :2] = np.round(points[:, :2], PIXEL_DECIMALS)
    rows[:, 2] = np.round(points[:, 2], CONFIDENCE_DECIMALS)
    return rows.tolist()


def smpl_json(smpl: SmplParams) -> dict[str, Any]:
    """SMPL as axis-angle vectors (radians; direction = axis, length = angle), the form SMPL
    code takes as input; 24 joints: ``global_orient`` for the root, ``body_pose`` for 1..23."""
    global_orient = Rotation.from_matrix(np.asarray(smpl.global_orient, dtype=np.float64).reshape(1, 3, 3)).as_rotvec()
    body_pose = Rotation.from_matrix(np.asarray(smpl.body_pose, dtype=np.float64).reshape(-1, 3, 3)).as_rotvec()
    return {
        "global_orient": _rounded(global_orient[0], ROTATION_DECIMALS),
        "body_pose": _rounded(body_pose, ROTATION_DECIMALS),
        "betas": _rounded(np.asarray(smpl.betas).reshape(-1), BETAS_DECIMALS),
    }


def _rounded(values: np.ndarray, decimals: int) -> Any:
    # +0.0 turns the -0.0 that rounding leaves into 0.0: shorter, and what a reader expects.
    return (np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0).tolist()
