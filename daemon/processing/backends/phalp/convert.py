"""PHALP track state -> ``Person`` in the shared result vocabulary.

A confirmed track is read on a frame in one of two states:

- **detected**: the track was matched in that frame; its newest history entry is that frame's
  detection (HMR2 output placed in the full-image camera by PHALP).
- **predicted**: the track was not matched (a PHALP "ghost"). PHALP's own readout repeats the
  stale last detection; we use the tracker's prediction instead
  (``track_data['prediction']['pose'][-1]``: SMPL pose, shape and camera translation for this
  frame), evaluate SMPL on it for 3D joints, and project those with the same camera. When the
  pose predictor puts the person at a depth <= 0 (behind the camera: nothing to project), the
  tracker's own location prediction places it instead (``['prediction']['loca'][-1]``, whose
  elements 90-92 are the predicted camera translation; its depth is exp() of a regression, so
  always > 0). A predicted person that still cannot be placed is dropped, and counted
  (``counts``: the job summary and the log report them).

Main keypoints are the 45 PHALP joints (the same names as ``joints_3d``, so 2D and 3D line up
index by index and nothing the model produced is dropped; the COCO-17 subset is a selection of
those names, ``backend.keypoints_coco17_names`` in the result). SMPL parameters and the camera
translation go into ``Person.smpl`` / ``camera_translation`` as numbers; ``Person.extra`` holds
only what has no field of its own, JSON-ready and rounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from daemon.processing.backends.phalp.angles import joint_angles_deg
from daemon.processing.backends.phalp.geometry import PaddedSquare, PinholeCamera, pose_vector_to_smpl
from daemon.processing.backends.phalp.skeleton import PHALP_45, SMPL_ORIGIN_INDEX
from daemon.records import Person, SmplParams
from daemon.publishing.encoding import CONFIDENCE_DECIMALS, PIXEL_DECIMALS

STATE_DETECTED = "detected"
STATE_PREDICTED = "predicted"
# PHALP gives no confidence for a prediction. Halving the last detector score keeps every
# predicted person below every detected one (the detector threshold is 0.5 or more), and the
# linear fade reaches 0 when PHALP would delete the track (time_since_update > max_age).
PREDICTED_CONFIDENCE_SCALE = 0.5
ANGLE_DECIMALS = 2
VERTEX_DECIMALS = 4  # 0.1 mm; 6890 vertices per person per frame add up
LOCATION_TRANSLATION = slice(90, 93)  # PHALP's 99-d loca: 45 x 2 joints, then (tx, ty, tz), ...
PREDICTED_FROM_POSE = "pose_predictor"
PREDICTED_FROM_LOCATION = "location_predictor"


class SmplModel(Protocol):
    """Evaluates SMPL (rotation-matrix input) for a batch; the loader wraps PHALP's SMPL layer.

    Returns the 44 SMPL-layer joints (B, 44, 3) and, if asked, the vertices (B, 6890, 3), in
    metres with the global orientation applied and no translation: the frame of PHALP's
    ``3d_joints`` before the zero "smpl_origin" joint is appended.
    """

    def __call__(
        self, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray, *, with_vertices: bool
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


class NonFiniteOutput(ValueError):
    """The model produced NaN/inf for a detected person (PHALP would crash or write garbage)."""


@dataclass
class TrackRecord:
    """One confirmed track on one frame, as read from ``tracker.tracks``."""

    track_id: int
    frames_since_detection: int  # Track.time_since_update; 0 = detected in this frame
    detection: Mapping[str, Any]  # a Track.track_data['history'] entry (PHALP's detection dict)
    predicted_pose: np.ndarray | None = None  # 229-d, for predicted records only
    predicted_location: np.ndarray | None = None  # 99-d loca, for predicted records only


@dataclass(frozen=True)
class ConvertSettings:
    focal_length: float = 5000.0  # PHALP cfg.EXTRA.FOCAL_LENGTH
    render_res: int = 256  # PHALP cfg.render.res
    max_age: int = 50  # PHALP cfg.phalp.max_age_track
    include_mesh: bool = False


@dataclass
class _Estimate:
    record: TrackRecord
    square: PaddedSquare
    camera_model: PinholeCamera
    smpl: dict[str, np.ndarray]
    translation: np.ndarray  # (3,) camera-frame position of the SMPL origin, metres
    joints: np.ndarray | None = None  # (45, 3) model frame, origin last
    vertices: np.ndarray | None = None  # (6890, 3) model frame
    predicted_from: str = PREDICTED_FROM_POSE

    @property
    def predicted(self) -> bool:
        return self.record.frames_since_detection > 0


class PersonConverter:
    """Converts the records of one frame in a batch (one SMPL call for all that need it)."""

    def __init__(self, smpl_model: SmplModel, settings: ConvertSettings) -> None:
        self._smpl_model = smpl_model
        self._settings = settings
        # people_dropped: predictions that could not be placed; predicted_from_location: the
        # pose predictor's depth was <= 0 and the location prediction placed the person.
        self.counts: Counter[str] = Counter()

    def convert(self, records: Sequence[TrackRecord]) -> list[Person | None]:
        """One entry per record, in order; None for a prediction that cannot be placed."""
        estimates = [self._estimate(record) for record in records]
        self._evaluate_smpl(estimates)
        return [self._person(estimate) for estimate in estimates]

    def _estimate(self, record: TrackRecord) -> _Estimate:
        detection = record.detection
        height, width = (int(v) for v in detection["size"])  # PHALP stores [H, W]
        square = PaddedSquare.of_frame(height, width)
        camera_model = PinholeCamera.for_frame(square, self._settings.focal_length, self._settings.render_res)
        if record.frames_since_detection == 0:
            smpl = {key: np.asarray(detection["smpl"][key], dtype=np.float64) for key in ("global_orient", "body_pose", "betas")}
            joints = np.asarray(detection["3d_joints"], dtype=np.float64)
            translation = np.asarray(detection["camera"], dtype=np.float64).reshape(3)
            return _Estimate(record, square, camera_model, smpl, translation, joints=joints)
        if record.predicted_pose is None:
            raise ValueError(f"track {record.track_id}: a predicted record needs the tracker's predicted pose")
        smpl, translation = pose_vector_to_smpl(record.predicted_pose)
        if _in_front_of_camera(translation):
            return _Estimate(record, square, camera_model, smpl, translation)
        location = _location_translation(record.predicted_location)
        if location is None:
            return _Estimate(record, square, camera_model, smpl, translation)  # dropped in _person
        self.counts["predicted_from_location"] += 1
        return _Estimate(record, square, camera_model, smpl, location, predicted_from=PREDICTED_FROM_LOCATION)

    def _evaluate_smpl(self, estimates: list[_Estimate]) -> None:
        with_vertices = self._settings.include_mesh
        pending = [e for e in estimates if e.joints is None or with_vertices]
        if not pending:
            return
        joints, vertices = self._smpl_model(
            np.stack([e.smpl["global_orient"].reshape(1, 3, 3) for e in pending]).astype(np.float32),
            np.stack([e.smpl["body_pose"].reshape(23, 3, 3) for e in pending]).astype(np.float32),
            np.stack([e.smpl["betas"].reshape(10) for e in pending]).astype(np.float32),
            with_vertices=with_vertices,
        )
        for index, estimate in enumerate(pending):
            if estimate.joints is None:
                origin = np.zeros((1, 3))  # get_3d_parameters appends the SMPL origin as joint 44
                estimate.joints = np.concatenate([np.asarray(joints[index], dtype=np.float64), origin])
            if vertices is not None:
                estimate.vertices = np.asarray(vertices[index], dtype=np.float64)

    def _person(self, estimate: _Estimate) -> Person | None:
        record = estimate.record
        joints_camera = estimate.joints + estimate.translation
        if estimate.predicted:
            keypoints_xy = estimate.camera_model.project(joints_camera)  # NaN behind the camera
        else:
            keypoints_xy = estimate.square.normalised_to_pixels(np.asarray(record.detection["2d_joints"]).reshape(-1, 2))
        mesh = () if estimate.vertices is None else (estimate.vertices,)
        if not _all_finite(joints_camera, keypoints_xy, estimate.translation, *estimate.smpl.values(), *mesh):
            if estimate.predicted:
                self.counts["people_dropped"] += 1  # neither prediction can place it
                return None
            raise NonFiniteOutput(f"track {record.track_id}: the model produced NaN or infinite values")
        confidence = self._confidence(record)
        keypoints = np.column_stack([keypoints_xy, np.full(len(keypoints_xy), confidence)])
        keypoints[SMPL_ORIGIN_INDEX, 2] = 0.0  # a reference point, not a body landmark: never draw it
        return Person(
            track_id=int(record.track_id),
            state=STATE_PREDICTED if estimate.predicted else STATE_DETECTED,
            confidence=confidence,
            bbox_xywh=self._bbox(estimate, keypoints_xy),
            keypoints=keypoints,
            joints_3d=joints_camera,
            frames_since_detection=int(record.frames_since_detection),
            extra=self._extra(estimate, joints_camera),
            smpl=SmplParams(
                global_orient=estimate.smpl["global_orient"].reshape(1, 3, 3),
                body_pose=estimate.smpl["body_pose"].reshape(23, 3, 3),
                betas=estimate.smpl["betas"].reshape(-1),
            ),
            camera_translation=np.asarray(estimate.translation, dtype=np.float64).reshape(3),
        )

    def _confidence(self, record: TrackRecord) -> float:
        score = float(record.detection["conf"])
        if record.frames_since_detection == 0:
            return float(np.clip(score, 0.0, 1.0))
        fade = 1.0 - record.frames_since_detection / (self._settings.max_age + 1)
        return float(np.clip(score * PREDICTED_CONFIDENCE_SCALE * fade, 0.0, 1.0))

    def _bbox(self, estimate: _Estimate, keypoints_xy: np.ndarray) -> tuple[float, float, float, float]:
        """Detector box; for a prediction, the last box moved and scaled with the predicted origin."""
        x, y, w, h = (float(v) for v in np.asarray(estimate.record.detection["bbox"]).reshape(4))
        if not estimate.predicted:
            return (x, y, w, h)
        last = estimate.record.detection
        last_origin = estimate.square.normalised_to_pixels(np.asarray(last["2d_joints"]).reshape(-1, 2)[SMPL_ORIGIN_INDEX])
        last_depth = float(np.asarray(last["camera"]).reshape(3)[2])
        if not (np.all(np.isfinite(last_origin)) and last_depth > 0):
            return (x, y, w, h)
        scale = last_depth / float(estimate.translation[2])  # apparent size ~ 1 / depth
        origin = keypoints_xy[SMPL_ORIGIN_INDEX]
        return (
            float(origin[0] + scale * (x - last_origin[0])),
            float(origin[1] + scale * (y - last_origin[1])),
            float(scale * w),
            float(scale * h),
        )

    def _extra(self, estimate: _Estimate, joints_camera: np.ndarray) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "detector_score": round(float(estimate.record.detection["conf"]), CONFIDENCE_DECIMALS),
            "camera_intrinsics": {
                "focal_length_px": round(estimate.camera_model.focal_length_px, PIXEL_DECIMALS),
                "principal_point_px": [round(v, PIXEL_DECIMALS) for v in estimate.camera_model.principal_point_px],
            },
            # Only the legacy fields write these (they include PHALP's trunk_lean).
            "joint_angles_3d": {name: round(value, ANGLE_DECIMALS) for name, value in joint_angles_deg(joints_camera).items()},
        }
        if estimate.predicted:
            extra["predicted_from"] = estimate.predicted_from
        if estimate.vertices is not None:
            extra["mesh_vertices"] = _rounded(estimate.vertices + estimate.translation, VERTEX_DECIMALS)
        return extra


def _in_front_of_camera(translation: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(translation)) and translation[2] > 0)


def _location_translation(location: np.ndarray | None) -> np.ndarray | None:
    """The camera translation the tracker's location predictor expects, if it is usable."""
    if location is None:
        return None
    vector = np.asarray(location, dtype=np.float64).reshape(-1)
    if vector.size < LOCATION_TRANSLATION.stop:
        return None
    translation = vector[LOCATION_TRANSLATION].copy()
    return translation if _in_front_of_camera(translation) else None


def _all_finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.all(np.isfinite(array))) for array in arrays)


def _rounded(values: Any, decimals: int) -> Any:
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()



__all__ = [
    "PHALP_45",
    "ConvertSettings",
    "NonFiniteOutput",
    "PersonConverter",
    "SmplModel",
    "STATE_DETECTED",
    "STATE_PREDICTED",
    "TrackRecord",
]
