"""``posed eval``: one result against its annotations, or a batch of such pairs.

A batch list is JSON: ``[{"result": "a.mp4.result.json", "annotations": "a.json",
"frame_map": "a.mp4.frame-map.json", "name": "a"}, ...]`` (paths relative to the list; frame_map
and name optional). The aggregate pools every item's frames, so it weighs each annotated person
once, whichever item it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from daemon.errors import EvaluationError
from daemon.evaluation import skeleton
from daemon.evaluation.annotations import AnnotatedImage, AnnotationSet, load_annotations
from daemon.evaluation.frame_map import check_frame_map, default_frame_map, default_map_warning, load_frame_map
from daemon.evaluation.identity_metrics import identity_summary
from daemon.evaluation.keypoint_metrics import keypoint_summary
from daemon.evaluation.matching import MATCH_OKS, EvaluatedFrame, evaluate_frame
from daemon.evaluation.motion_metrics import acceleration
from daemon.evaluation.predictions import VIEWS, Predictions, read_predictions

RULES = {
    "match": f"per frame, Hungarian matching on OKS; a pair with OKS >= {MATCH_OKS} is a match",
    "coverage": "matched annotated person-frames / annotated person-frames (crowd regions and people without labelled keypoints not counted)",
    "oks": "COCO formula and sigmas on the COCO keypoint names both sides have; area from the annotation (bbox w*h where it has none)",
    "pckh_0.5": "share of labelled keypoints of matched people within 0.5 x head size (0.6 x head box diagonal); only where head boxes exist",
    "pck_0.2_torso": "share of labelled keypoints of matched people within 0.2 x torso diagonal (shoulder to opposite hip)",
    "ap": "pycocotools COCOeval keypoints, every evaluated frame a COCO image, score = person confidence",
    "identity": "motmetrics on clips with identities: objects = annotated track_id, hypotheses = result track_id, distance 1 - OKS, no pair under OKS 0.1",
    "oks_both_views": "mean OKS over the person-frames that both views match: the same people on both sides, so it says what smoothing does to accuracy (filled frames exist in the smoothed view only and move its own mean)",
    "raw": "the backend's own output: person.raw where present (motion.include_raw), else the main fields; interpolated people left out",
    "acceleration": "per track, |p[t+1] - 2 p[t] + p[t-1]| in px/frame^2 over every three consecutive frames of the result, mean over the shared keypoints, then over triples",
}


@dataclass(frozen=True)
class EvalItem:
    result: Path
    annotations: Path
    frame_map: Path | None = None
    name: str | None = None


@dataclass(frozen=True)
class ItemFrames:
    names: tuple[str, ...]
    is_clip: bool
    frames: dict[str, list[EvaluatedFrame]]  # view -> frames in frame order
    acceleration: dict[str, tuple[float, int]]  # view -> (sum, triples) over all of the result's frames
    warnings: tuple[str, ...] = ()


def evaluate(items: list[EvalItem]) -> dict:
    scored = [(item, _score_item(item)) for item in items]
    return {
        "format": "posed.eval",
        "version": 1,
        "rules": RULES,
        "items": [_item_report(item, item_frames, predictions) for item, (item_frames, predictions) in scored],
        "aggregate": {view: _view_report([frames for _, (frames, _) in scored], view) for view in VIEWS},
    }


def load_batch(path: Path) -> list[EvalItem]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: unreadable batch list: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise EvaluationError(f"{path}: a batch list is a non-empty JSON list of {{result, annotations[, frame_map, name]}}")
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("result", "annotations")):
            raise EvaluationError(f"{path}: each entry needs string paths result and annotations: {str(entry)[:100]}")
        frame_map = entry.get("frame_map")
        items.append(EvalItem(
            result=path.parent / entry["result"],
            annotations=path.parent / entry["annotations"],
            frame_map=path.parent / frame_map if isinstance(frame_map, str) else None,
            name=entry.get("name") if isinstance(entry.get("name"), str) else None,
        ))  # fmt: skip
    return items


def _score_item(item: EvalItem) -> tuple[ItemFrames, Predictions]:
    annotations = load_annotations(item.annotations)
    predictions = read_predictions(item.result)
    mapping = load_frame_map(item.frame_map) if item.frame_map else default_frame_map(annotations)
    check_frame_map(mapping, annotations, predictions.frame_indexes, str(item.frame_map or "the default frame map"))
    names = skeleton.shared_names(annotations.keypoint_names, predictions.keypoint_names)
    sigmas = skeleton.sigmas(names)
    images = {image.image_id: _cut_image(image, annotations, names) for image in annotations.images}
    frames = {
        view: [
            evaluate_frame(index, images[mapping[index]], _cut_people(predictions.people(view, index), predictions, names), sigmas)
            for index in sorted(mapping)
        ]
        for view in VIEWS
    }
    is_clip = annotations.has_identities and len(set(mapping.values())) > 1
    steadiness = {view: acceleration(predictions.frames[view], predictions.keypoint_names, names) for view in VIEWS}
    warning = None if item.frame_map else default_map_warning(annotations, len(predictions.frame_indexes))
    return ItemFrames(names, is_clip, frames, steadiness, (warning,) if warning else ()), predictions


def _cut_image(image: AnnotatedImage, annotations: AnnotationSet, names: tuple[str, ...]) -> AnnotatedImage:
    people = []
    for person in image.people:
        keypoints = skeleton.select(person.keypoints, annotations.keypoint_names, names)
        # A person labelled only on keypoints the backend lacks cannot be scored: ignore, not miss.
        people.append(replace(person, keypoints=keypoints, ignored=person.ignored or not (keypoints[:, 2] > 0).any()))
    return replace(image, people=tuple(people))


def _cut_people(people: tuple, predictions: Predictions, names: tuple[str, ...]) -> tuple:
    return tuple(replace(person, keypoints=skeleton.select(person.keypoints, predictions.keypoint_names, names)) for person in people)


def _item_report(item: EvalItem, frames: ItemFrames, predictions: Predictions) -> dict:
    return {
        "name": item.name or item.result.name,
        "result": str(item.result),
        "annotations": str(item.annotations),
        "frame_map": str(item.frame_map) if item.frame_map else None,
        "keypoints": list(frames.names),
        "clip": frames.is_clip,
        "has_raw": predictions.has_raw,
        "warnings": list(frames.warnings),
        **{view: _view_report([frames], view) for view in VIEWS},
    }


def _view_report(items: list[ItemFrames], view: str) -> dict:
    groups: dict[tuple[str, ...], list[EvaluatedFrame]] = {}
    for item in items:
        groups.setdefault(item.names, []).extend(item.frames[view])
    summaries = [keypoint_summary(frames, names, skeleton.sigmas(names)) for names, frames in groups.items()]
    report = _pool(summaries)
    report["mean_oks_both_views"] = _oks_in_both_views(items, view)
    total, triples = (sum(values) for values in zip(*(item.acceleration[view] for item in items)))
    report["mean_acceleration_px"] = total / triples if triples else None
    clips = [(item.frames[view], item.names) for item in items if item.is_clip]
    report["identity"] = _pooled_identity(clips)
    return report


def _oks_in_both_views(items: list[ItemFrames], view: str) -> float | None:
    """Mean OKS of ``view`` over the annotated person-frames both views matched."""
    values = []
    for item in items:
        for frames in zip(*(item.frames[each] for each in VIEWS)):
            matched = [{m.annotated: m.oks for m in frame.matches} for frame in frames]
            mine = matched[VIEWS.index(view)]
            values += [mine[person] for person in set.intersection(*(set(m) for m in matched))]
    return float(np.mean(values)) if values else None


def _pool(summaries: list[dict]) -> dict:
    """One summary per keypoint set; sets differ (CrowdPose lacks the face) so AP cannot be pooled
    across them: AP is then their mean weighted by annotated people, and the other figures
    (medians included) their mean weighted by matched people."""
    if len(summaries) == 1:
        return summaries[0]
    total = {key: sum(s[key] for s in summaries) for key in ("frames", "annotated_people", "predicted_people", "matched_people")}
    total["coverage"] = total["matched_people"] / total["annotated_people"] if total["annotated_people"] else None
    for key, weight in (("mean_oks", "matched_people"), ("pckh_0.5", "matched_people"), ("pck_0.2_torso", "matched_people"),
                        ("median_error_px", "matched_people"), ("mean_error_px", "matched_people"),
                        ("ap", "annotated_people"), ("ap50", "annotated_people"), ("ap75", "annotated_people"), ("ar", "annotated_people")):
        pairs = [(s[key], s[weight]) for s in summaries if s[key] is not None and s[weight]]
        total[key] = float(np.average([v for v, _ in pairs], weights=[w for _, w in pairs])) if pairs else None
    names = {name for s in summaries for name in s["median_error_px_by_keypoint"]}
    total["median_error_px_by_keypoint"] = {name: _weighted(summaries, name) for name in skeleton.COCO_17 if name in names}
    return total


def _weighted(summaries: list[dict], name: str) -> float | None:
    pairs = [(s["median_error_px_by_keypoint"][name], s["matched_people"]) for s in summaries
             if s["median_error_px_by_keypoint"].get(name) is not None and s["matched_people"]]  # fmt: skip
    return float(np.average([v for v, _ in pairs], weights=[w for _, w in pairs])) if pairs else None


def _pooled_identity(clips: list[tuple[list[EvaluatedFrame], tuple[str, ...]]]) -> dict | None:
    if not clips:
        return None
    by_names: dict[tuple[str, ...], list[list[EvaluatedFrame]]] = {}
    for frames, names in clips:
        by_names.setdefault(names, []).append(frames)
    if len(by_names) == 1:
        names, frame_lists = next(iter(by_names.items()))
        return identity_summary(frame_lists, skeleton.sigmas(names))
    parts = [identity_summary(lists, skeleton.sigmas(names)) for names, lists in by_names.items()]
    return {key: sum(p[key] for p in parts) for key in ("num_switches", "num_fragmentations", "clips")}
