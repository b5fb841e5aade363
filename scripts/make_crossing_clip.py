#!/usr/bin/env python3
"""A multi-person clip with exact keypoints and identities, made from one annotated COCO photo.

    python scripts/make_crossing_clip.py OUT_DIR [--scale 0.667] [--mirror] [--shake 6] [--pan 100]   # writes OUT_DIR/frames/*.png and crossing.json

Four copies of the skier in COCO val2017 image 785 (CC BY 2.0, tests/data/eval/coco/; the
annotation is COCO's, CC BY 4.0) on a snow background: track 1 walks in from the left edge and
out at the right, track 2 (mirrored, larger: nearer the camera) crosses right to left in front of
it; two small ones in the distance, one standing, one strolling behind track 2. Ground truth moves with the pixels (scaled, mirrored with
left/right names swapped, shifted), so it is exact up to resampling (< 1 px). Keypoints under a
nearer person's patch or outside the frame are marked unlabelled; a person with none left is
out of that frame's annotation (hidden or gone, not missed).

The output is a PoseTrack-style document (vid_id, frame_id, track_id), so ``posed eval-video``
turns it into a video and ``posed eval`` scores identities on it. Deterministic: same bytes every run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

COCO_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "eval" / "coco"
SOURCE_IMAGE_ID = 785
WIDTH, HEIGHT, FRAMES = 960, 540, 90  # 3 s at 30 frames/s: the 7 px a frame of a jogger
CROP_MARGIN = 20
SNOW = (0, 200, 200, 350)  # x0, x1, y0, y1: plain snow in image 785, stretched as the background
PEOPLE = (  # far to near: track_id, scale, mirrored, (x, y) of the patch at the first and last frame
    (3, 0.4, False, (440, 0), (440, 0)),  # stands still
    (4, 0.5, True, (800, 20), (600, 20)),  # strolls left, passes behind track 2's head at the start
    (1, 0.85, False, (-150, 205), (830, 205)),  # walks in from the left edge and out at the right
    (2, 1.0, True, (700, 152), (30, 152)),  # nearest: crosses in front of track 1
)
SEQUENCE = "crossing"
SHAKE_SEED = 6
SHAKE_SMOOTH_FRAMES = 2.0
PAN_PERIOD_FRAMES = 30  # one swing a second at 30 frames/s


def make_crossing_clip(out_dir: Path, scale: float = 1.0, mirror: bool = False, shake: float = 0.0, pan: float = 0.0) -> Path:
    """Write the frames and the annotations; return the annotation file. ``scale`` resizes the
    finished frames and their keypoints (the tiles the detector sees depend on the frame size);
    ``mirror`` flips them left to right: track 4 then steps into the frame at its right edge,
    seen in part for its first frames; ``shake`` moves each whole frame as a hand-held camera
    does (``_shake_path``: px of standard deviation each way); ``pan`` swings the camera back and
    forth by that many px (``_pan_path``)."""
    size = (round(WIDTH * scale), round(HEIGHT * scale))
    document = json.loads((COCO_DIR / "test_coco.json").read_text(encoding="utf-8"))
    image = cv2.imread(str(COCO_DIR / f"{SOURCE_IMAGE_ID:012d}.jpg"), cv2.IMREAD_COLOR)
    source = next(a for a in document["annotations"] if a["image_id"] == SOURCE_IMAGE_ID and a["num_keypoints"])
    names = document["categories"][0]["keypoints"]
    patch, keypoints = crop_person(image, source)
    x0, x1, y0, y1 = SNOW
    background = cv2.resize(image[y0:y1, x0:x1], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    people = [_prepare(patch, keypoints, names, source["area"], *spec) for spec in PEOPLE]
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    offsets = _shake_path(shake) + _pan_path(pan)
    for index in range(FRAMES):
        canvas, placed = _compose(background, people, index / (FRAMES - 1))
        if mirror:
            canvas, placed = _mirrored(canvas, placed, names)
        if shake > 0 or pan > 0:
            canvas, placed = _camera_moved(canvas, placed, offsets[index])
        name = f"frames/{index:06d}.png"
        if scale != 1.0:
            canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        cv2.imwrite(str(out_dir / name), canvas)
        image_id = 1000 + index
        images.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1],
                       "vid_id": SEQUENCE, "frame_id": image_id, "is_labeled": True})
        for track_id, points, area in placed:
            if not (points[:, 2] > 0).any():
                continue  # wholly hidden behind a nearer person
            points[:, :2] *= scale
            annotations.append(coco_annotation(len(annotations) + 1, image_id, track_id, points, area * scale * scale))
    out = {"images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                           "skeleton": document["categories"][0]["skeleton"]}]}  # fmt: skip
    path = out_dir / f"{SEQUENCE}.json"
    path.write_text(json.dumps(out) + "\n", encoding="utf-8")
    return path


def crop_person(image: np.ndarray, annotation: dict) -> tuple[np.ndarray, np.ndarray]:
    """The annotated person's box plus a margin, and their keypoints in the crop's pixels."""
    x, y, w, h = annotation["bbox"]
    left, top = max(int(x) - CROP_MARGIN, 0), max(int(y) - CROP_MARGIN, 0)
    right, bottom = min(int(x + w) + CROP_MARGIN, image.shape[1]), min(int(y + h) + CROP_MARGIN, image.shape[0])
    keypoints = np.asarray(annotation["keypoints"], dtype=float).reshape(-1, 3)
    keypoints[:, 0] -= left
    keypoints[:, 1] -= top
    return image[top:bottom, left:right].copy(), keypoints


def _prepare(patch, keypoints, names, area, track_id, scale, mirrored, start, end):
    height, width = patch.shape[:2]
    size = (round(width * scale), round(height * scale))
    pixels = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    points = keypoints.copy()
    points[:, :2] *= (size[0] / width, size[1] / height)
    if mirrored:
        pixels = cv2.flip(pixels, 1)
        points[:, 0] = size[0] - points[:, 0]
        swap = [names.index(_other_side(name)) for name in names]
        points = points[swap]
    return {"track_id": track_id, "pixels": pixels, "points": points, "area": area * scale * scale,
            "start": np.array(start, float), "end": np.array(end, float)}  # fmt: skip


def _mirrored(canvas: np.ndarray, placed: list, names: list[str]) -> tuple[np.ndarray, list]:
    swap = [names.index(_other_side(name)) for name in names]
    flipped = []
    for track_id, points, area in placed:
        points = points.copy()
        points[:, 0] = WIDTH - points[:, 0]  # pixel i becomes WIDTH - 1 - i: its left edge x, WIDTH - x
        flipped.append([track_id, points[swap], area])
    return cv2.flip(canvas, 1), flipped


def _shake_path(shake: float) -> np.ndarray:
    """(FRAMES, 2) offsets of a hand-held camera: seeded white noise low-passed (Gaussian,
    sigma ``SHAKE_SMOOTH_FRAMES``: mostly under 5 Hz at 30 frames/s, as hands shake), scaled
    to a standard deviation of ``shake`` px each way."""
    if shake <= 0:
        return np.zeros((FRAMES, 2))
    noise = np.random.default_rng(SHAKE_SEED).normal(0.0, 1.0, (FRAMES, 2))
    noise = cv2.GaussianBlur(noise, (1, 0), sigmaX=0, sigmaY=SHAKE_SMOOTH_FRAMES, borderType=cv2.BORDER_REFLECT)  # along time
    return noise / noise.std(axis=0) * shake


def _pan_path(pan: float) -> np.ndarray:
    """(FRAMES, 2) offsets of a camera panning ``pan`` px either way, once a second, and tilting
    0.3 of that at 0.7 Hz: at 100 px, up to 21 px a frame sideways."""
    t = np.arange(FRAMES) / PAN_PERIOD_FRAMES
    return np.column_stack([pan * np.sin(2 * np.pi * t), 0.3 * pan * np.sin(2 * np.pi * 0.7 * t + 1.0)])


def _camera_moved(canvas: np.ndarray, placed: list, offset: np.ndarray) -> tuple[np.ndarray, list]:
    """The frame moved by ``offset`` (edge pixels repeat), keypoints with it; those leaving the
    frame are unlabelled."""
    moved = cv2.warpAffine(canvas, np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]]]), (WIDTH, HEIGHT),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    for _, points, _ in placed:
        points[:, :2] += offset
        _unlabel_outside(points)
    return moved, placed


def _unlabel_outside(points: np.ndarray) -> None:
    """Keypoints outside the frame are not labelled (v = 0)."""
    outside = (points[:, 0] < 0) | (points[:, 0] >= WIDTH) | (points[:, 1] < 0) | (points[:, 1] >= HEIGHT)
    points[outside, 2] = 0


def _other_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def _compose(background: np.ndarray, people: list[dict], progress: float):
    canvas = background.copy()
    placed, patches = [], []
    for person in people:  # later people are nearer: drawn over the earlier ones
        x, y = np.round(person["start"] + (person["end"] - person["start"]) * progress).astype(int)
        h, w = person["pixels"].shape[:2]
        left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, WIDTH), min(y + h, HEIGHT)
        if left < right and top < bottom:  # the part inside the frame
            canvas[top:bottom, left:right] = person["pixels"][top - y:bottom - y, left - x:right - x]
        points = person["points"].copy()
        points[:, :2] += (x, y)
        _unlabel_outside(points)
        patches.append((x, y, w, h))
        placed.append([person["track_id"], points, person["area"]])
    for i, (_, points, _) in enumerate(placed):
        for x, y, w, h in patches[i + 1:]:
            hidden = (points[:, 0] >= x) & (points[:, 0] < x + w) & (points[:, 1] >= y) & (points[:, 1] < y + h)
            points[hidden, 2] = 0
    return canvas, placed


def coco_annotation(annotation_id: int, image_id: int, track_id: int, points: np.ndarray, area: float) -> dict:
    """One person's COCO/PoseTrack annotation from (K, 3) keypoints, v = 0 for the unlabelled."""
    labelled = points[points[:, 2] > 0, :2]
    low, high = labelled.min(axis=0), labelled.max(axis=0)
    flat = np.column_stack([np.round(points[:, :2], 2), points[:, 2]])
    flat[points[:, 2] == 0] = 0
    return {"id": annotation_id, "image_id": image_id, "category_id": 1, "track_id": track_id, "iscrowd": 0,
            "keypoints": flat.ravel().tolist(), "num_keypoints": int((points[:, 2] > 0).sum()),
            "bbox": [round(float(low[0]), 2), round(float(low[1]), 2), round(float(high[0] - low[0]), 2), round(float(high[1] - low[1]), 2)],
            "area": round(float(area), 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="resize the 960x540 frames (and keypoints) by this factor")
    parser.add_argument("--mirror", action="store_true", help="flip the clip left to right (track 4 steps in at the right edge)")
    parser.add_argument("--shake", type=float, default=0.0, help="a hand-held camera: frames shaken by this many px (standard deviation, under ~5 Hz)")
    parser.add_argument("--pan", type=float, default=0.0, help="a camera panning back and forth by this many px, once a second")
    args = parser.parse_args()
    print(make_crossing_clip(args.out, args.scale, args.mirror, args.shake, args.pan))


if __name__ == "__main__":
    main()
