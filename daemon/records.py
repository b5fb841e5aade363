"""The values that flow through a job: video metadata, decoded frames, per-frame results.

Plain dataclasses shared by the decoder, every backend and the result writer, so a backend
never needs to know how results are serialised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoMeta:
    """What we know about a video before and while decoding it."""

    path: str
    file_bytes: int
    container: str  # lower-case extension, e.g. ".mov"
    codec: str  # FourCC as reported by the demuxer, "" if unknown
    coded_width: int  # as stored in the stream
    coded_height: int
    width: int  # as delivered to the backend, i.e. after applying rotation
    height: int
    rotation_degrees: int  # display rotation from container metadata (0, 90, 180, 270)
    auto_rotated: bool  # frames are delivered upright (rotation applied)
    nominal_fps: float  # container's claim; real timing is per frame
    frame_count_estimate: int | None  # container's claim; often wrong, never trusted
    duration_estimate_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "coded_width": self.coded_width,
            "coded_height": self.coded_height,
            "rotation_degrees": self.rotation_degrees,
            "auto_rotated": self.auto_rotated,
            "nominal_fps": round(self.nominal_fps, 6),
            "frame_count_estimate": self.frame_count_estimate,
            "duration_estimate_s": None if self.duration_estimate_s is None else round(self.duration_estimate_s, 6),
            "codec": self.codec,
            "container": self.container,
            "file_bytes": self.file_bytes,
        }


@dataclass
class Frame:
    """One decoded frame, BGR uint8 HxWx3 in display orientation."""

    index: int  # 0-based position in decode order
    timestamp_s: float  # presentation time from the stream (variable frame rates exist)
    image: np.ndarray


@dataclass
class SmplParams:
    """SMPL body model parameters of one person in one frame, as numbers (never rounded here).

    Rotations are 3x3 matrices in SMPL's joint order: ``global_orient`` (1, 3, 3) for the root,
    ``body_pose`` (23, 3, 3) for the other joints, each relative to its parent; ``betas`` (10,).
    """

    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray


@dataclass
class Person:
    """One person in one frame, in the shared result vocabulary of all backends.

    Coordinates: ``bbox`` and ``keypoints`` in pixels of the delivered (upright) frame, origin
    top-left, x right, y down. ``joints_3d`` in metres in the frame named by the backend's
    ``BackendInfo.joints_3d_frame``. ``smpl`` and ``camera_translation`` (metres, camera frame,
    the SMPL origin) exist for body-model backends (PHALP). ``state`` is "detected",
    "predicted" (the tracker's guess while the detector misses) or "interpolated" (filled by
    the motion stage between two detections). ``raw`` holds the model's own values when the
    motion stage changed them (smoothing, interpolation), so nothing the model said is lost.
    """

    track_id: int
    state: str  # "detected" | "predicted" | "interpolated"
    confidence: float
    bbox_xywh: tuple[float, float, float, float]
    keypoints: np.ndarray  # (K, 3): x px, y px, confidence 0..1, names in BackendInfo.keypoint_names
    joints_3d: np.ndarray | None = None  # (J, 3) metres, names in BackendInfo.joint_names_3d
    frames_since_detection: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific, JSON-ready
    smpl: SmplParams | None = None
    camera_translation: np.ndarray | None = None  # (3,) metres
    raw: Person | None = None  # the backend's values before the motion stage changed them


@dataclass
class FrameResult:
    index: int
    timestamp_s: float
    people: list[Person]
    processing_ms: float = 0.0


@dataclass(frozen=True)
class BackendInfo:
    """Self-description a backend returns once its models are loaded."""

    name: str
    version: str
    model_version: str
    device: str
    keypoint_names: tuple[str, ...]
    joint_names_3d: tuple[str, ...] = ()
    joints_3d_frame: str = ""  # e.g. "hip-centred world, metres, y down" — stated in results
    keypoint_format: str = ""  # e.g. "mediapipe-blazepose-33"
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. mesh faces, written once per result

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "model_version": self.model_version,
            "device": self.device,
            "keypoint_format": self.keypoint_format,
            "keypoint_names": list(self.keypoint_names),
            "joint_names_3d": list(self.joint_names_3d),
            "joints_3d_frame": self.joints_3d_frame,
        }


@dataclass(frozen=True)
class JobOptions:
    """Per-video options (from defaults, a job sidecar, or a supervisor retry)."""

    low_memory: bool = False
    include_mesh: bool = False
    start_frame: int = 0
    end_frame: int | None = None  # exclusive; None = to the end
    # Optional outputs; None = the daemon's ``output.*`` default.
    legacy_fields: bool | None = None
    motion_glb: bool | None = None
    motion_mesh: bool | None = None  # the user's SMPL body in the motion GLB (PHALP)
    preview: bool | None = None
    motion: dict[str, Any] | None = field(default=None, hash=False)  # motion.* overrides, e.g. {"smoothing": False}

    def to_json(self) -> dict[str, Any]:
        return {
            "low_memory": self.low_memory,
            "include_mesh": self.include_mesh,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "legacy_fields": self.legacy_fields,
            "motion_glb": self.motion_glb,
            "motion_mesh": self.motion_mesh,
            "preview": self.preview,
            "motion": self.motion,
        }

    def resolved(self, defaults: dict[str, bool]) -> JobOptions:
        """With every optional output decided: the job's own choice, else ``defaults``."""
        return dataclasses.replace(self, **{key: bool(defaults.get(key, False)) if getattr(self, key) is None else getattr(self, key)
                                            for key in OPTIONAL_OUTPUTS})


OPTIONAL_OUTPUTS = ("legacy_fields", "motion_glb", "motion_mesh", "preview")
