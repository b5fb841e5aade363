"""How well people are found and placed: coverage, OKS, PCK, pixel error and COCO AP.

All figures take a list of evaluated frames, so one item and a whole batch are scored the same
way (a batch pools its frames). COCO AP is pycocotools' own ``COCOeval`` on those frames, each
frame a separate COCO image, with the sigmas of the shared keypoint names.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from daemon.errors import EvaluationError
from daemon.evaluation.matching import EvaluatedFrame

PCKH_FRACTION = 0.5  # PCKh@0.5: within half the head size
HEAD_SIZE_FROM_BOX = 0.6  # MPII's head size: 0.6 x the head box diagonal
PCK_TORSO_FRACTION = 0.2  # PCK@0.2: within a fifth of the torso diameter


def keypoint_summary(frames: Sequence[EvaluatedFrame], names: tuple[str, ...], sigmas: np.ndarray) -> dict:
    annotated = sum(len(frame.annotated) for frame in frames)
    matched = [(frame.annotated[m.annotated], frame.predicted[m.predicted], m.oks) for frame in frames for m in frame.matches]
    errors = _errors(matched)
    return {
        "frames": len(frames),
        "annotated_people": annotated,
        "predicted_people": sum(len(frame.predicted) for frame in frames),
        "matched_people": len(matched),
        "coverage": len(matched) / annotated if annotated else None,
        "mean_oks": float(np.mean([oks for _, _, oks in matched])) if matched else None,
        "pckh_0.5": _pckh(matched),
        "pck_0.2_torso": _pck_torso(matched, names),
        "median_error_px": float(np.median(errors)) if len(errors) else None,
        "mean_error_px": float(np.mean(errors)) if len(errors) else None,
        **coco_ap(frames, sigmas),
    }


def _errors(matched: list) -> np.ndarray:
    rows = [np.linalg.norm(person.keypoints[:, :2] - guess.keypoints[:, :2], axis=1)[person.labelled] for person, guess, _ in matched]
    return np.concatenate(rows) if rows else np.zeros(0)


def _pckh(matched: list) -> float | None:
    hits = []
    for person, guess, _ in matched:
        if person.head_box is None:
            continue
        head = HEAD_SIZE_FROM_BOX * float(np.hypot(person.head_box[2], person.head_box[3]))
        distance = np.linalg.norm(person.keypoints[:, :2] - guess.keypoints[:, :2], axis=1)[person.labelled]
        hits += list(distance <= PCKH_FRACTION * head)
    return float(np.mean(hits)) if hits else None


def _pck_torso(matched: list, names: tuple[str, ...]) -> float | None:
    diagonals = [("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")]
    pairs = [(names.index(a), names.index(b)) for a, b in diagonals if a in names and b in names]
    hits = []
    for person, guess, _ in matched:
        sizes = [np.linalg.norm(person.keypoints[a, :2] - person.keypoints[b, :2]) for a, b in pairs if person.labelled[a] and person.labelled[b]]
        if not sizes:
            continue  # no torso labelled: no scale to judge by
        distance = np.linalg.norm(person.keypoints[:, :2] - guess.keypoints[:, :2], axis=1)[person.labelled]
        hits += list(distance <= PCK_TORSO_FRACTION * float(np.mean(sizes)))
    return float(np.mean(hits)) if hits else None


def coco_ap(frames: Sequence[EvaluatedFrame], sigmas: np.ndarray) -> dict:
    """COCO keypoint AP / AP50 / AP75 / AR over the frames (pycocotools)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise EvaluationError("COCO AP needs pycocotools: pip install 'posed[eval]'") from exc
    ground_truth, detections = _coco_documents(frames, len(sigmas))
    if not detections or not any(not a["iscrowd"] for a in ground_truth["annotations"]):
        return {"ap": 0.0 if ground_truth["annotations"] else None, "ap50": None, "ap75": None, "ar": None}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its table
        truth = COCO()
        truth.dataset = ground_truth
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(detections), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(float(value), 0.0) for value in evaluation.stats]  # -1 = "no such people": shown as 0
    return {"ap": stats[0], "ap50": stats[1], "ap75": stats[2], "ar": stats[5]}


def _coco_documents(frames: Sequence[EvaluatedFrame], count: int) -> tuple[dict, list]:
    images, annotations, detections = [], [], []
    for image_id, frame in enumerate(frames, start=1):
        images.append({"id": image_id})
        for person in (*frame.annotated, *frame.ignored):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": person.keypoints.ravel().tolist(), "num_keypoints": int(person.labelled.sum()),
                "bbox": list(person.bbox), "area": person.area, "iscrowd": int(person.ignored),
            })  # fmt: skip
        for guess in frame.predicted:
            flat = np.column_stack([guess.keypoints[:, :2], np.ones(count)]).ravel().tolist()
            detections.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": guess.confidence})
    document = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    return document, detections
