"""Hand-made annotations and results for the posed eval tests, written by the real writers.

People are given as COCO-17 keypoints; results carry them in BlazePose-33 order (the default
backend's names), so every test also exercises the name mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from daemon.evaluation.skeleton import COCO_17
from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33
from daemon.publishing.results import ResultWriter, commit_local_result, header_precision
from daemon.records import BackendInfo, FrameResult, Person

WIDTH, HEIGHT = 640, 480
INFO = BackendInfo("mediapipe", "0.10.21", "blazepose-full", "cpu", BLAZEPOSE_33, (), "", "mediapipe-blazepose-33")


def body(x: float, y: float, scale: float = 1.0) -> np.ndarray:
    """A standing person's 17 COCO keypoints (x, y), feet near (x, y + 200 * scale)."""
    offsets = np.array([
        [0, 0], [-6, -6], [6, -6], [-12, -3], [12, -3], [-25, 30], [25, 30], [-35, 70], [35, 70],
        [-40, 105], [40, 105], [-15, 110], [15, 110], [-17, 160], [17, 160], [-18, 205], [18, 205],
    ], dtype=float)  # fmt: skip
    return np.array([x, y]) + offsets * scale


def annotation_document(frames: list[list[tuple[int, np.ndarray]]], sequence: str | None = "clip") -> dict:
    """PoseTrack-style document: frames[i] = [(track_id, (17, 2) keypoints), ...]; all labelled."""
    images, annotations = [], []
    for index, people in enumerate(frames):
        image = {"id": 100 + index, "file_name": f"frames/{index:06d}.png", "width": WIDTH, "height": HEIGHT}
        if sequence is not None:
            image["vid_id"] = sequence
        images.append(image)
        for track_id, points in people:
            low, high = points.min(axis=0), points.max(axis=0)
            annotations.append({
                "id": len(annotations) + 1, "image_id": 100 + index, "category_id": 1, "track_id": track_id,
                "keypoints": np.column_stack([points, np.full(17, 2)]).ravel().tolist(), "num_keypoints": 17,
                "bbox": [*low.tolist(), *(high - low).tolist()], "area": float(np.prod(high - low)), "iscrowd": 0,
            })  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17)}]}


def write_annotations(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def blazepose(points: np.ndarray) -> np.ndarray:
    """(33, 3) BlazePose keypoints: the COCO ones where the names match, the rest far off."""
    keypoints = np.column_stack([np.full((33, 2), 5.0), np.full(33, 0.9)])
    for coco_index, name in enumerate(COCO_17):
        keypoints[BLAZEPOSE_33.index(name), :2] = points[coco_index]
    return keypoints


def person(track_id: int, points: np.ndarray, raw_points: np.ndarray | None = None, state: str = "detected") -> Person:
    keypoints = blazepose(points)
    low, high = points.min(axis=0), points.max(axis=0)
    box = (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))
    raw = None if raw_points is None else Person(track_id, "detected", 0.9, box, blazepose(raw_points))
    return Person(track_id, state, 0.9, box, keypoints, raw=raw)


def write_result(out_dir: Path, frames: list[list[Person]], stem: str = "clip.mp4") -> Path:
    """A result as ``posed process`` writes it, through the real writer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    draft = out_dir / f".{stem}.result.partial"
    header = {"schema": "posed.result", "schema_version": "2.0", "status": "ok", "job_id": f"{stem}@test",
              "input": {"name": stem, "path": str(out_dir / stem), "windows_path": None, "bytes": 1},
              "backend": INFO.to_json(), "options": {"low_memory": False, "include_mesh": False, "start_frame": 0, "end_frame": None},
              "created_at": "2026-12-06T00:00:00.000Z", "precision": header_precision()}  # fmt: skip
    writer = ResultWriter(draft, header, INFO, (WIDTH, HEIGHT), include_raw=True)
    for index, people in enumerate(frames):
        writer.write_frame(FrameResult(index, index / 10, people))
    count = len(frames)
    summary = {"frames": count, "frames_with_person": writer.frames_with_person, "people_total": writer.people_written,
               "processing_seconds": 1.0, "frames_per_second": None, "stage_seconds": {"decode": 0.0, "backend": 0.0, "write": 0.0},
               "started_at": "2026-12-06T00:00:00.000Z", "finished_at": "2026-12-06T00:00:01.000Z", **writer.size_figures()}  # fmt: skip
    video = {"width": WIDTH, "height": HEIGHT, "coded_width": WIDTH, "coded_height": HEIGHT, "rotation_degrees": 0, "auto_rotated": False,
             "nominal_fps": 10.0, "frame_count_estimate": count, "duration_estimate_s": count / 10, "codec": "avc1", "container": ".mp4",
             "file_bytes": 1, "decoded_frame_count": count, "duration_s": count / 10}  # fmt: skip
    writer.close({"video": video, "summary": summary})
    return commit_local_result(draft, out_dir / f"{stem}.result.json")
