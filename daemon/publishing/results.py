"""Streaming the result JSON to a temp file, one frame at a time.

The document is written in the order facts become known: what the job is, then the frames,
then what decoding revealed (decoded frame count, duration) and the totals. JSON objects are
unordered, so a consumer sees one ordinary document; memory stays constant in video length.
Publishing (fsync + rename into the outbox) is ``publish.py``'s job, not this module's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from daemon.publishing.legacy import legacy_frame_fields
from daemon.records import BackendInfo, FrameResult, Person

RESULT_SCHEMA = "posed.result"
RESULT_SCHEMA_VERSION = "1.0"

PIXEL_DECIMALS = 2
CONFIDENCE_DECIMALS = 4
METRE_DECIMALS = 5


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class ResultWriter:
    """Writes one result document incrementally. ``close`` finishes it and fsyncs."""

    def __init__(self, path: Path, header: dict[str, Any], info: BackendInfo, frame_size: tuple[int, int]) -> None:
        self.path = path
        self._info = info
        self._frame_size = frame_size
        self._handle: BinaryIO = open(path, "xb")  # never clobber: temp names are unique
        self._first_frame = True
        self.frames_written = 0
        self.frames_with_person = 0
        self.people_written = 0
        self._handle.write(_dump(header)[:-1])  # the header's fields, object left open
        self._handle.write(b',"frames":[')

    def write_frame(self, result: FrameResult) -> None:
        if not self._first_frame:
            self._handle.write(b",")
        self._first_frame = False
        self._handle.write(_dump(frame_to_json(result, self._info, self._frame_size)))
        self.frames_written += 1
        self.people_written += len(result.people)
        if result.people:
            self.frames_with_person += 1

    def close(self, trailer: dict[str, Any]) -> None:
        """Close the frames array, append the trailer's fields, flush and fsync."""
        self._handle.write(b"],")
        self._handle.write(_dump(trailer)[1:])  # the trailer's fields close the document
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def abort(self) -> None:
        """Drop a half-written document (the supervisor also sweeps leftovers)."""
        try:
            self._handle.close()
        finally:
            self.path.unlink(missing_ok=True)


def frame_to_json(result: FrameResult, info: BackendInfo, frame_size: tuple[int, int]) -> dict[str, Any]:
    """The rich per-person form plus, beside it, the old HTTP service's flat fields for the
    frame's primary person, so the Node backend's storage code keeps working unchanged."""
    frame = {
        "frame_index": result.index,
        "timestamp_s": round(result.timestamp_s, 6),
        "people": [person_to_json(person, info) for person in result.people],
    }
    width, height = frame_size
    legacy = legacy_frame_fields(
        frame, width=width, height=height, model_version=info.model_version, processing_ms=result.processing_ms
    )
    return frame | {key: value for key, value in legacy.items() if key not in frame}


def person_to_json(person: Person, info: BackendInfo) -> dict[str, Any]:
    record: dict[str, Any] = {
        "track_id": int(person.track_id),
        "state": person.state,
        "frames_since_detection": int(person.frames_since_detection),
        "confidence": round(float(person.confidence), CONFIDENCE_DECIMALS),
        "bbox": [round(float(v), PIXEL_DECIMALS) for v in person.bbox_xywh],
        "keypoints": _named_points_2d(person.keypoints, info.keypoint_names),
        "joints_3d": None if person.joints_3d is None else _named_points_3d(person.joints_3d, info.joint_names_3d),
    }
    record.update(person.extra)
    return record


def _named_points_2d(points: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "x": round(float(x), PIXEL_DECIMALS),
            "y": round(float(y), PIXEL_DECIMALS),
            "confidence": round(float(c), CONFIDENCE_DECIMALS),
        }
        for name, (x, y, c) in zip(names, points, strict=True)
    ]


def _named_points_3d(points: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "x": round(float(x), METRE_DECIMALS),
            "y": round(float(y), METRE_DECIMALS),
            "z": round(float(z), METRE_DECIMALS),
        }
        for name, (x, y, z) in zip(names, points, strict=True)
    ]
