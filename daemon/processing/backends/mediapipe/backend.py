"""The embedded CPU backend: BlazePose (MediaPipe 0.10.21's bundled networks) for everyone in
the frame, with a stable track id per person.

Per frame: the detector runs on a few tiles of the frame (``tiles.py``), the landmark network
looks at every tracked person's predicted region and at new finds (``people.py``), duplicates
are dropped, and ``identities.py`` names each person. ``max_people: 1`` is the one-person mode:
the most confident person only, as the legacy single-person graph gave.
"""

from __future__ import annotations

import cv2
import numpy as np

from daemon.config import MediapipeConfig
from daemon.processing.backends.base import Backend, LoadProgress
from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33, WORLD_FRAME
from daemon.processing.backends.mediapipe.confirmation import TrackConfirmation
from daemon.processing.backends.mediapipe.detector import PersonDetector, weighted_nms
from daemon.processing.backends.mediapipe.identities import IdentityTracker
from daemon.processing.backends.mediapipe.landmarks import LandmarkNetwork, Pose, confident_points
from daemon.processing.backends.mediapipe.models import DETECTOR_FILE, LANDMARK_FILE, Network, bundled_model
from daemon.processing.backends.mediapipe.people import distinct_people, has_face_in, is_body, regions_to_look
from daemon.processing.backends.mediapipe.roi import Roi
from daemon.processing.backends.mediapipe.tiles import TileSchedule, tile_pyramid
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, Person, VideoMeta

EXTRA_LOOKS = 4  # new finds examined per frame beyond max_people (some are duplicates or nobody)
# Second looks (below a find's face) per frame, each one more landmark run. Most finds that show
# nobody are not people; 1 a frame found as many people on the public stills as 2, 6 or 20.
FALLBACK_LOOKS = 1


class MediapipeBackend(Backend):
    def __init__(self, cfg: MediapipeConfig) -> None:
        self._cfg = cfg
        self._detector: PersonDetector | None = None
        self._landmarks: LandmarkNetwork | None = None
        self._schedule: TileSchedule | None = None
        self._identities: IdentityTracker | None = None
        self._tracked: list[Pose] = []
        self._counts: dict[str, int] = {}

    def load(self, progress: LoadProgress) -> BackendInfo:
        progress("mediapipe pose_detection + pose_landmark_full (bundled in the mediapipe wheel)")
        import mediapipe as mp

        threads = self._cfg.threads
        self._detector = PersonDetector(Network(bundled_model(DETECTOR_FILE), threads=threads),
                                        min_score=self._cfg.min_detection_confidence)
        self._landmarks = LandmarkNetwork(Network(bundled_model(LANDMARK_FILE), threads=threads))
        return BackendInfo(
            name="mediapipe",
            version=mp.__version__,
            model_version=f"mediapipe-{mp.__version__}-pose_detection+pose_landmark_full",
            device="cpu",
            keypoint_names=BLAZEPOSE_33,
            joint_names_3d=BLAZEPOSE_33,
            joints_3d_frame=WORLD_FRAME,
            keypoint_format="mediapipe-blazepose-33",
        )

    def start_video(self, meta: VideoMeta, options: JobOptions) -> None:
        # Nothing carries over between videos: tiles, tracks and ids start afresh.
        self._schedule = TileSchedule(tile_pyramid(meta.width, meta.height, self._cfg.tile_levels), self._cfg.tiles_per_frame)
        fps = meta.nominal_fps if meta.nominal_fps and meta.nominal_fps > 0 else 30.0
        self._identities = IdentityTracker(max_distance=self._cfg.max_track_distance,
                                           max_missing_frames=round(self._cfg.max_missing_s * fps), frame_size=(meta.width, meta.height), fps=fps)
        self._tracked = []
        self._confirmation = TrackConfirmation(self._cfg.confirm_frames)
        self._counts = {"detector_runs": 0, "landmark_runs": 0, "max_people_in_a_frame": 0, "readings_withheld": 0}

    def preprocess(self, frame: Frame) -> Frame:
        """BGR -> RGB; the pipeline runs this on its decoder thread, overlapping inference."""
        return _RgbFrame(index=frame.index, timestamp_s=frame.timestamp_s, image=cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB))

    def process(self, frame: Frame) -> list[FrameResult]:
        rgb = frame.image if isinstance(frame, _RgbFrame) else cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        poses = self._find_people(rgb)
        ids = self._identities.assign(poses)
        self._tracked = poses
        height, width = rgb.shape[:2]
        # A reading whose joints the network is unsure of is not published, but the person stays
        # followed (region, id): a frame without them is a gap the motion stage may fill.
        sure = [(pose, track_id) for pose, track_id in zip(poses, ids) if pose.certainty() >= self._cfg.min_keypoint_certainty]
        self._counts["readings_withheld"] += len(poses) - len(sure)
        people = sorted((_person(pose, track_id, width, height) for pose, track_id in sure), key=lambda p: p.track_id)
        released = self._confirmation.push(FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, people=people))
        self._count_people(released)
        return released

    def finish(self) -> list[FrameResult]:
        released = self._confirmation.finish()
        self._count_people(released)
        return released

    def _count_people(self, results: list[FrameResult]) -> None:
        for result in results:
            self._counts["max_people_in_a_frame"] = max(self._counts["max_people_in_a_frame"], len(result.people))

    def _find_people(self, rgb: np.ndarray) -> list[Pose]:
        found = []
        for tile in self._schedule.next_tiles(searching=not self._tracked):
            found.extend(self._detector.detect(rgb, tile))
            self._counts["detector_runs"] += 1
        if found:  # one person seen by several overlapping tiles is one find
            found = weighted_nms(np.array([d.score for d in found]), np.array([d.box for d in found]),
                                 np.array([d.keypoints for d in found]))
        limit = self._cfg.max_people
        looks = regions_to_look(self._tracked, found, limit + EXTRA_LOOKS)
        poses, tracked = [], []
        fallbacks = FALLBACK_LOOKS
        for number, look in enumerate(looks):  # the first len(self._tracked) follow last frame's people
            pose = self._look(rgb, look.region)
            if pose is None and look.face is not None and fallbacks > 0:
                fallbacks -= 1
                pose = self._look(rgb, look.fallback)
                pose = pose if pose is not None and has_face_in(pose, look.face) else None
            if pose is not None:
                poses.append(pose)
                tracked.append(number < len(self._tracked))
        return distinct_people(poses, limit, tracked=tracked)

    def _look(self, rgb: np.ndarray, region: Roi) -> Pose | None:
        """The person the landmark network sees in ``region``, or None."""
        pose = self._landmarks.estimate(rgb, region)
        self._counts["landmark_runs"] += 1
        if pose.presence < self._cfg.min_tracking_confidence or not is_body(pose):
            return None
        if self._cfg.mirror_average:  # a second reading only for a person found
            pose = self._landmarks.mirror_averaged(rgb, pose)
            self._counts["landmark_runs"] += 1
        return pose

    def summary(self) -> dict[str, int]:
        return dict(self._counts)

    def close(self) -> None:
        self._detector = self._landmarks = None


class _RgbFrame(Frame):
    """A frame ``preprocess`` already converted to RGB (frames from elsewhere are BGR)."""


def _person(pose: Pose, track_id: int, width: int, height: int) -> Person:
    keypoints = pose.keypoints
    return Person(
        track_id=track_id,
        state="detected",
        confidence=float(np.clip(keypoints[:, 2].mean(), 0.0, 1.0)),
        bbox_xywh=_bbox(keypoints, width, height),
        keypoints=keypoints,
        joints_3d=pose.world,
    )


def _bbox(keypoints: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    points = confident_points(keypoints[:, :2], keypoints[:, 2])
    x0, y0 = np.clip(points[:, 0].min(), 0, width), np.clip(points[:, 1].min(), 0, height)
    x1, y1 = np.clip(points[:, 0].max(), 0, width), np.clip(points[:, 1].max(), 0, height)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
