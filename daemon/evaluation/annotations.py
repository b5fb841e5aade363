"""Human annotations: COCO keypoints and PoseTrack 18/21 json, read into one shape.

Both formats are COCO-style documents (``images``, ``annotations``, ``categories``); PoseTrack adds
``vid_id``/``frame_id`` on images and ``track_id`` (the person's identity through the clip) on
annotations. A CVAT "COCO Keypoints" export is read the same way; with a ``track_id`` per person
(or ``attributes.track_id``) it is a clip with identities.

Everything in the file is checked before use: it comes from outside.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon.errors import EvaluationError

MAX_ANNOTATION_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class AnnotatedPerson:
    annotation_id: int
    identity: int  # track_id in a clip; the annotation id on a still (every person is someone else)
    keypoints: np.ndarray  # (K, 3) x, y, v in AnnotationSet.keypoint_names order; v = 0: not labelled
    bbox: tuple[float, float, float, float]  # x, y, w, h
    area: float  # the annotation's area (segment area in COCO); w*h of the bbox when it has none
    head_box: tuple[float, float, float, float] | None  # PoseTrack's bbox_head (x, y, w, h)
    ignored: bool  # crowd regions and people without a labelled keypoint: never counted as missed

    @property
    def labelled(self) -> np.ndarray:
        return self.keypoints[:, 2] > 0


@dataclass(frozen=True)
class AnnotatedImage:
    image_id: int
    file_name: str
    width: int
    height: int
    sequence: str  # PoseTrack's vid_id; "" for stills
    labelled: bool  # PoseTrack's is_labeled: frames between labelled ones are in the clip, not scored
    ignore_regions: tuple[np.ndarray, ...]  # PoseTrack's ignore_regions_x/_y: (N, 2) polygons of unlabelled crowds
    people: tuple[AnnotatedPerson, ...]

    @property
    def scored_people(self) -> tuple[AnnotatedPerson, ...]:
        return tuple(person for person in self.people if not person.ignored)


@dataclass(frozen=True)
class AnnotationSet:
    path: Path
    keypoint_names: tuple[str, ...]
    images: tuple[AnnotatedImage, ...]  # in playback order: by sequence, then file name
    has_identities: bool  # annotations carry track_id

    def image(self, image_id: int) -> AnnotatedImage:
        for image in self.images:
            if image.image_id == image_id:
                return image
        raise EvaluationError(f"{self.path.name}: no image with id {image_id}")

    def sequences(self) -> dict[str, tuple[AnnotatedImage, ...]]:
        """Images by clip: PoseTrack's vid_id, else the folder a file lies in (JHMDB keeps each
        clip's frames in a folder of its own; a CVAT export of one video has one folder)."""
        grouped: dict[str, list[AnnotatedImage]] = {}
        for image in self.images:
            folder = Path(image.file_name).parent.as_posix()
            grouped.setdefault(image.sequence or ("" if folder == "." else folder), []).append(image)
        return {name: tuple(images) for name, images in grouped.items()}


def load_annotations(path: str | Path) -> AnnotationSet:
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: no such annotation file")
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise EvaluationError(f"{path}: over {MAX_ANNOTATION_BYTES} bytes; split it per clip")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: not JSON: {exc}") from exc
    return parse_annotations(document, path)


def parse_annotations(document: Any, path: Path) -> AnnotationSet:
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in ("images", "annotations", "categories")):
        raise EvaluationError(f"{path.name}: not a COCO/PoseTrack document (needs lists images, annotations, categories)")
    category_id, names = _person_category(document["categories"], path)
    images = {image_id: image for image_id, image in (_image_header(raw, path) for raw in document["images"])}
    people: dict[int, list[AnnotatedPerson]] = {image_id: [] for image_id in images}
    has_identities = False
    for raw in document["annotations"]:
        if not isinstance(raw, dict) or raw.get("category_id", category_id) != category_id:
            continue
        if raw.get("image_id") not in people:
            raise EvaluationError(f"{path.name}: annotation {raw.get('id')!r} points at unknown image {raw.get('image_id')!r}")
        raw = _with_track_id(raw)
        has_identities |= _is_int(raw.get("track_id"))
        people[raw["image_id"]].append(_person(raw, len(names), path))
    ordered = sorted(images.values(), key=lambda image: (image["sequence"], image["file_name"], image["image_id"]))
    return AnnotationSet(
        path=path,
        keypoint_names=names,
        images=tuple(AnnotatedImage(**image, people=tuple(people[image["image_id"]])) for image in ordered),
        has_identities=has_identities,
    )


def _with_track_id(raw: dict) -> dict:
    """CVAT's COCO export of tracked shapes puts the identity in ``attributes.track_id``."""
    attributes = raw.get("attributes")
    if "track_id" not in raw and isinstance(attributes, dict) and _is_int(attributes.get("track_id")):
        return {**raw, "track_id": attributes["track_id"]}
    return raw


def _person_category(categories: list, path: Path) -> tuple[int, tuple[str, ...]]:
    for category in categories:
        if isinstance(category, dict) and isinstance(category.get("keypoints"), list) and category["keypoints"]:
            names = category["keypoints"]
            if not all(isinstance(name, str) for name in names) or not _is_int(category.get("id")):
                raise EvaluationError(f"{path.name}: category {category.get('id')!r} has malformed keypoint names or id")
            return category["id"], tuple(_keypoint_name(name) for name in names)
    raise EvaluationError(f"{path.name}: no category with keypoint names (is this a COCO *keypoints* file?)")


def _keypoint_name(name: str) -> str:
    """COCO's spelling: AI Challenger writes "Right Shoulder", CVAT users write "Left-Knee"."""
    return re.sub(r"[\s-]+", "_", name.strip()).lower()


def _image_header(raw: Any, path: Path) -> tuple[int, dict]:
    if not isinstance(raw, dict) or not _is_int(raw.get("id")) or not isinstance(raw.get("file_name"), str):
        raise EvaluationError(f"{path.name}: an image entry lacks an integer id or a file_name: {str(raw)[:120]}")
    sequence = raw.get("vid_id", "")
    return raw["id"], {
        "image_id": raw["id"],
        "file_name": raw["file_name"],
        "width": int(raw.get("width") or 0),
        "height": int(raw.get("height") or 0),
        "sequence": str(sequence) if sequence is not None else "",
        "labelled": raw.get("is_labeled", True) is not False,
        "ignore_regions": _ignore_regions(raw, path),
    }


def _ignore_regions(raw: dict, path: Path) -> tuple[np.ndarray, ...]:
    xs, ys = raw.get("ignore_regions_x") or [], raw.get("ignore_regions_y") or []
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise EvaluationError(f"{path.name}: image {raw['id']}: ignore_regions_x and _y must be lists of the same length")
    regions = []
    for x, y in zip(xs, ys):
        if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or not all(_is_number(v) for v in (*x, *y)):
            raise EvaluationError(f"{path.name}: image {raw['id']}: an ignore region needs as many numeric x as y")
        if len(x) >= 3:
            regions.append(np.column_stack([x, y]).astype(np.float32))
    return tuple(regions)


def _person(raw: dict, count: int, path: Path) -> AnnotatedPerson:
    flat = raw.get("keypoints") or [0.0] * (3 * count)
    if isinstance(flat, list) and len(flat) != 3 * count and isinstance(raw.get(f"keypoints_{count}"), list):
        flat = raw[f"keypoints_{count}"]  # Human-Art: COCO's 17 in keypoints, all 21 it names in keypoints_21
    if not isinstance(flat, list) or len(flat) != 3 * count or not all(_is_number(value) for value in flat):
        raise EvaluationError(f"{path.name}: annotation {raw.get('id')!r}: keypoints must be {3 * count} numbers")
    keypoints = np.asarray(flat, dtype=float).reshape(count, 3)
    keypoints[keypoints[:, 2] < 0, 2] = 0
    bbox = _box(raw.get("bbox"), path, raw) or _keypoint_box(keypoints)
    area = raw.get("area")
    area = float(area) if _is_number(area) and area > 0 else max(bbox[2] * bbox[3], 1.0)
    identity = raw["track_id"] if _is_int(raw.get("track_id")) else raw.get("id")
    if not _is_int(identity):
        raise EvaluationError(f"{path.name}: an annotation has neither an integer id nor a track_id")
    return AnnotatedPerson(
        annotation_id=raw.get("id") if _is_int(raw.get("id")) else identity,
        identity=identity,
        keypoints=keypoints,
        bbox=bbox,
        area=area,
        head_box=_box(raw.get("bbox_head"), path, raw),
        ignored=bool(raw.get("iscrowd")) or not bool((keypoints[:, 2] > 0).any()),
    )


def _box(value: Any, path: Path, raw: dict) -> tuple[float, float, float, float] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) != 4 or not all(_is_number(v) for v in value) or value[2] < 0 or value[3] < 0:
        raise EvaluationError(f"{path.name}: annotation {raw.get('id')!r}: a box must be [x, y, w, h] with w, h >= 0")
    return tuple(float(v) for v in value)


def _keypoint_box(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if not len(labelled):
        return (0.0, 0.0, 0.0, 0.0)
    low, high = labelled.min(axis=0), labelled.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
