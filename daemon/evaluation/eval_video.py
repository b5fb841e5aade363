"""``posed eval-video``: videos built from annotated images, so ``posed eval`` can score them.

A clip (several images of one PoseTrack ``vid_id``, or of a file with ``track_id`` and no
``vid_id``) becomes one video, its images in order, one frame each. Every other image (a still) becomes its own short video, the image repeated
``still_frames`` times: a tracker and the motion stage see a steady scene and never carry a
person from one still into the next. Each video gets a frame map and all of them one
``eval-batch.json`` for ``posed eval --batch``.

H.264 at CRF 12 from imageio-ffmpeg's bundled ffmpeg: visually lossless, so the model sees what
the annotators saw; odd sizes are padded by one black pixel on the right/bottom (yuv420p needs
even sizes), which moves no coordinate.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from daemon.errors import EvaluationError
from daemon.evaluation.annotations import AnnotatedImage, load_annotations
from daemon.evaluation.frame_map import SUFFIX, write_frame_map

CRF = "12"
BATCH_NAME = "eval-batch.json"


def build_eval_videos(annotations_path: Path, images_dir: Path, out_dir: Path, *, fps: float = 30.0, still_frames: int = 10) -> list[Path]:
    if fps <= 0 or still_frames < 1:
        raise EvaluationError("--fps must be > 0 and --still-frames >= 1")
    annotations = load_annotations(annotations_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch, videos = [], []
    for sequence, images in annotations.sequences().items():
        # A clip: several images of one PoseTrack vid_id, or of one folder in a file with
        # identities (CVAT's COCO export of one video; JHMDB). Anything else is a set of stills.
        if len(images) > 1 and (images[0].sequence or annotations.has_identities):
            plans = [(_safe(sequence or annotations_path.stem), list(images), 1)]
        else:
            plans = [(name, [image], still_frames) for name, image in _still_names(images, sequence)]
        for stem, frames, repeat in plans:
            video = out_dir / f"{stem}.mp4"
            _encode([_read(images_dir, image) for image in frames], repeat, fps, video)
            write_frame_map(video.with_name(video.name + SUFFIX), annotations_path.name,
                            [image.image_id if image.labelled else None for image in frames for _ in range(repeat)])
            batch.append({
                "name": stem,
                "video": video.name,
                "result": f"{video.name}.result.json",
                "annotations": os.path.relpath(annotations_path.resolve(), out_dir.resolve()),
                "frame_map": video.name + SUFFIX,
            })  # fmt: skip
            videos.append(video)
    (out_dir / BATCH_NAME).write_text(json.dumps(batch, indent=1) + "\n", encoding="utf-8")
    return videos


def _still_names(images: tuple[AnnotatedImage, ...], sequence: str) -> list[tuple[str, AnnotatedImage]]:
    """A video name per still: its file's path without the suffix (JHMDB's stills are all
    ``00001.png`` in folders named after their clips), the image id added if two still collide."""
    named, taken = [], set()
    for image in images:
        file = Path(image.file_name).with_suffix("").as_posix()
        name = _safe(file if file.startswith(sequence) else f"{sequence}_{file}")
        if name in taken:
            name = f"{name}_{image.image_id}"
        taken.add(name)
        named.append((name, image))
    return named


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def _read(images_dir: Path, image: AnnotatedImage) -> np.ndarray:
    path = _image_path(images_dir.resolve(), image.file_name)
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise EvaluationError(f"{path}: missing or not an image")
    if image.width and image.height and pixels.shape[:2] != (image.height, image.width):
        raise EvaluationError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]}, the annotations say {image.width}x{image.height}")
    return pixels


def _image_path(root: Path, file_name: str) -> Path:
    """``file_name`` under ``root``, or its shortest tail that is there: datasets name files from
    their own root (Human-Art: ``HumanArt/images/real_human/...``), users keep the images anywhere."""
    parts = Path(file_name).parts
    candidates = [(root / Path(*parts[start:])).resolve() for start in range(len(parts))] or [root / file_name]
    for path in candidates:
        if root not in path.parents:
            raise EvaluationError(f"image {file_name!r} lies outside {root}")
    return next((path for path in candidates if path.is_file()), candidates[0])


def _encode(frames: list[np.ndarray], repeat: int, fps: float, video: Path) -> None:
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    if any(frame.shape != frames[0].shape for frame in frames):
        raise EvaluationError(f"{video.name}: the clip's images differ in size")
    padded = (width + width % 2, height + height % 2)
    writer = imageio_ffmpeg.write_frames(
        str(video), padded, fps=fps, codec="libx264", pix_fmt_in="rgb24", quality=None, macro_block_size=1,
        output_params=["-crf", CRF, "-preset", "medium", "-bf", "0"],
    )  # fmt: skip
    writer.send(None)
    try:
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            rgb = np.pad(rgb, ((0, padded[1] - height), (0, padded[0] - width), (0, 0)))
            for _ in range(repeat):
                writer.send(np.ascontiguousarray(rgb))
    finally:
        writer.close()
