"""Keypoint names shared by annotations and backends, and COCO's per-keypoint sigmas.

Keypoints are compared by NAME, never by position: BlazePose-33, PHALP-45 and COCO-17 share the
COCO names (nose, left_eye ... right_ankle) with the same meaning, and any annotation whose
category lists COCO names (COCO, OCHuman, PoseTrack, CrowdPose, a CVAT export) is scored on the
names it has in common with the backend.
"""

from __future__ import annotations

import numpy as np

from daemon.errors import EvaluationError

# pycocotools' COCOeval sigmas (cocoeval.py, kpt_oks_sigmas), by name.
COCO_SIGMAS = {
    "nose": 0.026, "left_eye": 0.025, "right_eye": 0.025, "left_ear": 0.035, "right_ear": 0.035,
    "left_shoulder": 0.079, "right_shoulder": 0.079, "left_elbow": 0.072, "right_elbow": 0.072,
    "left_wrist": 0.062, "right_wrist": 0.062, "left_hip": 0.107, "right_hip": 0.107,
    "left_knee": 0.087, "right_knee": 0.087, "left_ankle": 0.089, "right_ankle": 0.089,
}  # fmt: skip
COCO_17 = tuple(COCO_SIGMAS)


def shared_names(annotated: tuple[str, ...], predicted: tuple[str, ...]) -> tuple[str, ...]:
    """COCO names both sides carry, in COCO order: what OKS, PCK and AP are computed on."""
    names = tuple(name for name in COCO_17 if name in annotated and name in predicted)
    if not names:
        raise EvaluationError(
            f"the annotations ({', '.join(annotated[:5])}, ...) and the result ({', '.join(predicted[:5])}, ...) "
            "share no COCO keypoint name"
        )
    return names


def sigmas(names: tuple[str, ...]) -> np.ndarray:
    return np.array([COCO_SIGMAS[name] for name in names])


def select(keypoints: np.ndarray, names: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray:
    """Rows of ``keypoints`` (laid out as ``names``) for the ``wanted`` names, in that order."""
    index = {name: i for i, name in enumerate(names)}
    return keypoints[[index[name] for name in wanted]]
