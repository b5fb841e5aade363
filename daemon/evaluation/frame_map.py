"""Which video frame shows which annotated image.

A result's ``frame_index`` counts decoded frames; annotations count images. ``posed eval-video``
writes the map beside each video it builds (``<video>.frame-map.json``)::

    {"format": "posed.eval-frame-map", "version": 1, "annotations": "clip.json",
     "frames": [{"frame_index": 0, "image_id": 10128340000}, ...]}

A still repeated N times maps N frames to one image: each frame is scored, so a still counts as
the mean of its frames. Without a map, frame i is the i-th annotated image in playback order (by
sequence, then file name; PoseTrack frames with ``is_labeled: false`` are in the video, not scored):
right for a video cut from exactly those images.
"""

from __future__ import annotations

import json
from pathlib import Path

from daemon.errors import EvaluationError
from daemon.evaluation.annotations import AnnotationSet

FORMAT = "posed.eval-frame-map"
SUFFIX = ".frame-map.json"


def default_frame_map(annotations: AnnotationSet) -> dict[int, int]:
    return {index: image.image_id for index, image in enumerate(annotations.images) if image.labelled}


def default_map_warning(annotations: AnnotationSet, frame_count: int) -> str | None:
    """Why the default map is likely wrong: a result with another number of frames than the
    annotations have images (labels on every 5th frame, a frame range, another cut) would be
    scored frame i against image i, each against the wrong picture, without any error."""
    if frame_count == len(annotations.images):
        return None
    return (
        f"the result has {frame_count} frames but {annotations.path.name} has {len(annotations.images)} images, and no frame map "
        "says which frame shows which image: frame i is scored against the i-th image, right only for a video cut from "
        "exactly those images. Build the video with posed eval-video, or give --frame-map"
    )


def write_frame_map(path: Path, annotations_name: str, image_ids: list[int | None]) -> None:
    """``image_ids[i]``: the image frame i shows; None for a frame in the clip that is not scored."""
    document = {
        "format": FORMAT,
        "version": 1,
        "annotations": annotations_name,
        "frames": [{"frame_index": index, "image_id": image_id} for index, image_id in enumerate(image_ids) if image_id is not None],
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def load_frame_map(path: Path) -> dict[int, int]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: unreadable frame map: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("frames"), list):
        raise EvaluationError(f"{path}: not a {FORMAT} document")
    mapping: dict[int, int] = {}
    for entry in document["frames"]:
        index = entry.get("frame_index") if isinstance(entry, dict) else None
        image_id = entry.get("image_id") if isinstance(entry, dict) else None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, image_id)) or index < 0 or index in mapping:
            raise EvaluationError(f"{path}: each frame needs a unique frame_index >= 0 and an integer image_id: {str(entry)[:80]}")
        mapping[index] = image_id
    return mapping


def check_frame_map(mapping: dict[int, int], annotations: AnnotationSet, frame_indexes: frozenset[int], source: str) -> None:
    """Every mapped frame must exist in the result and every image in the annotations."""
    known = {image.image_id for image in annotations.images}
    unknown = sorted({image_id for image_id in mapping.values() if image_id not in known})
    if unknown:
        raise EvaluationError(f"{source}: image ids not in {annotations.path.name}: {unknown[:5]}")
    absent = sorted(index for index in mapping if index not in frame_indexes)
    if absent:
        first, last = (min(frame_indexes), max(frame_indexes)) if frame_indexes else (None, None)
        raise EvaluationError(
            f"{source}: frames {absent[:5]} are not in the result (it holds frames {first}..{last}; "
            "was it made from this video? was a frame range set?)"
        )
