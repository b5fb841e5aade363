"""The embedded CPU backend: MediaPipe 0.10.21 legacy Pose (BlazePose, 33 landmarks).

Its weights ship inside the wheel (model_complexity=1 only), so it works offline on any
fresh machine. The legacy API tracks a single person; that person gets track id 1.
"""

from __future__ import annotations

import cv2
import numpy as np

from daemon.processing.backends.base import Backend, LoadProgress
from daemon.config import MediapipeConfig
from daemon.errors import BackendUnavailable
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, Person, VideoMeta

# BlazePose topology, in MediaPipe's landmark order (mp.solutions.pose.PoseLandmark).
BLAZEPOSE_33 = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

WORLD_FRAME = "hip-centred (origin midway between the hips), metres, x right, y down, z away from the camera"
VISIBLE = 0.5  # landmarks below this visibility do not shape the bounding box


class MediapipeBackend(Backend):
    def __init__(self, cfg: MediapipeConfig, *, max_people: int = 1) -> None:
        self._cfg = cfg
        self._pose = None
        self._meta: VideoMeta | None = None

    def load(self, progress: LoadProgress) -> BackendInfo:
        progress("mediapipe pose_landmark_full (bundled in the mediapipe wheel)")
        try:
            import mediapipe as mp
        except ImportError as exc:  # broken venv: say how to fix it
            raise BackendUnavailable(f"cannot import mediapipe ({exc}); run ./scripts/run.sh to rebuild .venv") from exc
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=self._cfg.model_complexity,
            smooth_landmarks=self._cfg.smooth_landmarks,
            min_detection_confidence=self._cfg.min_detection_confidence,
            min_tracking_confidence=self._cfg.min_tracking_confidence,
        )
        return BackendInfo(
            name="mediapipe",
            version=mp.__version__,
            model_version=f"mediapipe-{mp.__version__}-pose_landmark_full",
            device="cpu",
            keypoint_names=BLAZEPOSE_33,
            joint_names_3d=BLAZEPOSE_33,
            joints_3d_frame=WORLD_FRAME,
            keypoint_format="mediapipe-blazepose-33",
        )

    def start_video(self, meta: VideoMeta, options: JobOptions) -> None:
        # The legacy solution tracks across calls; reset so a video never inherits a pose.
        self._pose.reset()
        self._meta = meta

    def preprocess(self, frame: Frame) -> Frame:
        """BGR -> RGB; the pipeline runs this on its decoder thread, overlapping inference."""
        return _RgbFrame(index=frame.index, timestamp_s=frame.timestamp_s, image=cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB))

    def process(self, frame: Frame) -> list[FrameResult]:
        height, width = frame.image.shape[:2]
        rgb = frame.image if isinstance(frame, _RgbFrame) else cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        found = self._pose.process(rgb)
        people = []
        if found.pose_landmarks is not None:
            people.append(_person(found, width, height))
        return [FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, people=people)]

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None


class _RgbFrame(Frame):
    """A frame ``preprocess`` already converted to RGB (frames from elsewhere are BGR)."""


def _person(found, width: int, height: int) -> Person:
    landmarks = found.pose_landmarks.landmark
    keypoints = np.array([(lm.x * width, lm.y * height, lm.visibility) for lm in landmarks], dtype=np.float64)
    joints_3d = None
    if found.pose_world_landmarks is not None:
        joints_3d = np.array([(lm.x, lm.y, lm.z) for lm in found.pose_world_landmarks.landmark], dtype=np.float64)
    return Person(
        track_id=1,
        state="detected",
        confidence=float(np.clip(keypoints[:, 2].mean(), 0.0, 1.0)),
        bbox_xywh=_bbox(keypoints, width, height),
        keypoints=keypoints,
        joints_3d=joints_3d,
    )


def _bbox(keypoints: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    visible = keypoints[keypoints[:, 2] >= VISIBLE]
    points = visible if len(visible) >= 2 else keypoints
    x0, y0 = np.clip(points[:, 0].min(), 0, width), np.clip(points[:, 1].min(), 0, height)
    x1, y1 = np.clip(points[:, 0].max(), 0, width), np.clip(points[:, 1].max(), 0, height)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
