"""A long result written by the real writer: ``python -m tests.long_result OUT_DIR FRAMES``.

MediaPipe-shaped people (33 keypoints with confidences, 33 world joints) that move a little
every frame, one person per frame except a gap every 500 frames, through ``ResultWriter`` and
``commit_local_result`` exactly as ``posed process`` does. Used by the Python and the Node
streaming tests; no model, so an 18,000-frame result takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from daemon.publishing.results import ResultWriter, commit_local_result
from daemon.records import BackendInfo, FrameResult, Person

NAMES = tuple(f"landmark_{i}" for i in range(33))
INFO = BackendInfo("mediapipe", "0.10.21", "blazepose-full", "cpu", NAMES, NAMES, "hip-centred, metres", "mediapipe-blazepose-33")
WIDTH, HEIGHT, FPS = 1920, 1080, 30.0


def person_at(index: int, rng: np.random.Generator) -> Person:
    base = np.column_stack([np.linspace(800, 1100, 33), np.linspace(200, 900, 33)]) + index * 0.37 % 300
    keypoints = np.column_stack([base + rng.normal(0, 2, (33, 2)), rng.uniform(0.5, 1.0, 33)])
    joints = rng.normal(0, 0.4, (33, 3))
    return Person(1, "detected", 0.9, (780.0, 190.0, 340.0, 720.0), keypoints, joints)


def write_long_result(out_dir: Path, frames: int, stem: str = "long.mp4") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    draft = out_dir / f".{stem}.result.partial"
    header = {"schema": "posed.result", "schema_version": "2.0", "status": "ok", "job_id": f"{stem}@synthetic",
              "input": {"name": stem, "path": str(out_dir / stem), "windows_path": None, "bytes": 1},
              "backend": INFO.to_json(), "options": {"low_memory": False, "include_mesh": False, "start_frame": 0, "end_frame": None},
              "created_at": "2026-11-29T00:00:00.000Z", "precision": {"pixels": 0.1, "metres": 0.0001, "radians": 0.0001, "confidence": 0.001}}
    writer = ResultWriter(draft, header, INFO, (WIDTH, HEIGHT))
    for index in range(frames):
        people = [] if index % 500 == 499 else [person_at(index, rng)]
        writer.write_frame(FrameResult(index, index / FPS, people))
    summary = {"frames": writer.frames_written, "frames_with_person": writer.frames_with_person, "people_total": writer.people_written,
               "processing_seconds": 1.0, "frames_per_second": None, "stage_seconds": {"decode": 0.0, "backend": 0.0, "write": 0.0},
               "started_at": "2026-11-29T00:00:00.000Z", "finished_at": "2026-11-29T00:00:01.000Z", **writer.size_figures()}
    video = {"width": WIDTH, "height": HEIGHT, "coded_width": WIDTH, "coded_height": HEIGHT, "rotation_degrees": 0, "auto_rotated": False,
             "nominal_fps": FPS, "frame_count_estimate": frames, "duration_estimate_s": frames / FPS, "codec": "avc1", "container": ".mp4",
             "file_bytes": 1, "decoded_frame_count": frames, "duration_s": frames / FPS}
    writer.close({"video": video, "summary": summary})
    return commit_local_result(draft, out_dir / f"{stem}.result.json")


if __name__ == "__main__":
    print(write_long_result(Path(sys.argv[1]), int(sys.argv[2])))
