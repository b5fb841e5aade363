#!/usr/bin/env python3
"""A fast-moving clip with exact keypoints, made from one annotated COCO photo: for measuring lag.

    python scripts/make_swaying_clip.py OUT_DIR     # writes OUT_DIR/frames/*.png and swaying.json

The skier of COCO val2017 image 785 (CC BY 2.0, tests/data/eval/coco/; the annotation is
COCO's, CC BY 4.0) sways over a snow background as a rigid body: it swings sideways (up to
~25 px per frame at 30 fps, about a fifth of a second for one body width), tilts +-20 degrees,
and grows and shrinks by 15 %, each on its own period, so speeds and accelerations vary like a
fast limb's. Ground truth is COCO's keypoints under the same similarity transform as the pixels,
exact up to resampling. What it measures: whether smoothing lags fast motion (a causal filter
trails the swing and loses OKS; a two-sided one must not). What it does not: articulated motion
(the pose itself never changes). Deterministic: same bytes every run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

from make_crossing_clip import coco_annotation, crop_person  # run as a script: scripts/ is on sys.path

COCO_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "eval" / "coco"
SOURCE_IMAGE_ID = 785
WIDTH, HEIGHT, FPS, FRAMES = 960, 540, 30.0, 90
SNOW = (0, 200, 200, 350)  # x0, x1, y0, y1: plain snow in image 785, stretched as the background
SEQUENCE = "swaying"


def pose_at(t: float) -> tuple[float, float, float, float]:
    """Centre x, centre y (px), rotation (degrees), scale of the skier at time t (s)."""
    return (
        WIDTH / 2 + 220 * math.sin(2 * math.pi * 0.55 * t),
        HEIGHT / 2 + 25 * math.sin(2 * math.pi * 0.9 * t + 1.0),
        20 * math.sin(2 * math.pi * 0.8 * t + 0.5),
        1.0 + 0.15 * math.sin(2 * math.pi * 0.35 * t),
    )


def make_swaying_clip(out_dir: Path) -> Path:
    """Write the frames and the annotations; return the annotation file."""
    document = json.loads((COCO_DIR / "test_coco.json").read_text(encoding="utf-8"))
    image = cv2.imread(str(COCO_DIR / f"{SOURCE_IMAGE_ID:012d}.jpg"), cv2.IMREAD_COLOR)
    source = next(a for a in document["annotations"] if a["image_id"] == SOURCE_IMAGE_ID and a["num_keypoints"])
    patch, keypoints = crop_person(image, source)
    x0, x1, y0, y1 = SNOW
    background = cv2.resize(image[y0:y1, x0:x1], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(FRAMES):
        matrix, scale = _transform(patch.shape, index / FPS)
        canvas = _compose(background, patch, matrix)
        name = f"frames/{index:06d}.png"
        cv2.imwrite(str(out_dir / name), canvas)
        points = keypoints.copy()
        points[:, :2] = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        image_id = 2000 + index
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT,
                       "vid_id": SEQUENCE, "frame_id": image_id, "is_labeled": True})  # fmt: skip
        annotations.append(coco_annotation(index + 1, image_id, 1, points, source["area"] * scale * scale))
    out = {"images": images, "annotations": annotations, "categories": document["categories"]}
    path = out_dir / f"{SEQUENCE}.json"
    path.write_text(json.dumps(out) + "\n", encoding="utf-8")
    return path


def _transform(shape: tuple[int, ...], t: float) -> tuple[np.ndarray, float]:
    """The 2x3 matrix taking patch pixels to frame pixels at time t, and its scale."""
    x, y, degrees, scale = pose_at(t)
    height, width = shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    matrix[:, 2] += (x - width / 2, y - height / 2)
    return matrix, scale


def _compose(background: np.ndarray, patch: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    warped = cv2.warpAffine(patch, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones(patch.shape[:2], np.float32), matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)[..., None]
    return np.round(background * (1 - mask) + warped * mask).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    print(make_swaying_clip(parser.parse_args().out))


if __name__ == "__main__":
    main()
