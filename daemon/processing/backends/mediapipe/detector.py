"""BlazePose's person detector, run on tiles of the frame.

The network sees 224x224 pixels. On a whole 1080p frame a person 300 px tall shrinks to ~60 px
and its face, which the detector keys on, to a few pixels: it misses everyone but the largest
person. So the frame is also cut into overlapping tiles (``tiles.py``) and the detector runs on
each, a couple of tiles per frame in turn. Decoding follows MediaPipe's
``pose_detection_cpu.pbtxt`` (SSD anchors, 12 values per anchor: box centre and size, then the
four alignment keypoints; scores through a sigmoid; weighted non-maximum suppression).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from daemon.processing.backends.mediapipe.models import Network

INPUT = 224
STRIDES = (8, 16, 32, 32, 32)  # one anchor grid per stride; equal strides share a grid
MIN_SCALE, MAX_SCALE = 0.1484375, 0.75


@dataclass(frozen=True)
class Detection:
    """A person candidate in frame pixels: score, box (x0, y0, x1, y1), alignment keypoints (4, 2).

    Keypoint 0 is the hip centre, keypoint 1 a point that with it spans the whole body; the
    landmark crop is built from those two (``roi.Roi.from_alignment``).
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], as MediaPipe's SsdAnchorsCalculator makes them.

    With ``fixed_anchor_size`` every anchor is 1x1, so only centres matter; each layer adds two
    anchors per cell (aspect 1.0 and the interpolated scale), and layers with the same stride
    are stacked onto the same grid.
    """
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        per_cell = 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            per_cell += 2
            layer += 1
        cells = int(np.ceil(INPUT / stride))
        grid = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class PersonDetector:
    def __init__(self, network: Network, *, min_score: float) -> None:
        self._network = network
        self._anchors = ssd_anchors()
        self._min_score = min_score

    def detect(self, rgb: np.ndarray, tile: tuple[int, int, int, int]) -> list[Detection]:
        """People in ``tile`` (x0, y0, x1, y1) of the frame ``rgb``, in frame pixels."""
        image, scale, offset = _letterbox(rgb, tile)
        raw_boxes, raw_scores = self._network(image)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[:, 0].astype(np.float64), -100.0, 100.0)))
        keep = np.flatnonzero(scores >= self._min_score)
        if len(keep) == 0:
            return []
        decoded = raw_boxes[keep] / INPUT
        centres = np.tile(self._anchors[keep], 6)  # box centre + 4 keypoints + (w, h) placeholder
        points = decoded.copy()
        points[:, 0:2] += centres[:, 0:2]
        points[:, 4:12] += centres[:, 4:12]
        boxes = np.concatenate([points[:, 0:2] - points[:, 2:4] / 2, points[:, 0:2] + points[:, 2:4] / 2], axis=1)
        keypoints = points[:, 4:12].reshape(-1, 4, 2)
        # Letterboxed [0, 1] -> frame pixels.
        boxes = boxes * INPUT / scale + np.tile(offset, 2)
        keypoints = keypoints * INPUT / scale + offset
        return weighted_nms(scores[keep], boxes, keypoints)


def _letterbox(rgb: np.ndarray, tile: tuple[int, int, int, int]) -> tuple[np.ndarray, float, np.ndarray]:
    """The tile scaled to fit 224x224, centred on black, as floats in [-1, 1].

    Returns the image, the scale (network pixels per frame pixel) and the frame position of the
    network image's top-left corner, to map detections back.
    """
    x0, y0, x1, y1 = tile
    crop = rgb[y0:y1, x0:x1]
    height, width = crop.shape[:2]
    scale = INPUT / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(crop, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((INPUT, INPUT, 3), np.float32)
    pad_x, pad_y = (INPUT - new_w) // 2, (INPUT - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized.astype(np.float32) / 127.5 - 1.0
    offset = np.array([x0 - pad_x / scale, y0 - pad_y / scale], np.float32)
    return canvas, scale, offset


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, *, iou: float = 0.3) -> list[Detection]:
    """MediaPipe's WEIGHTED suppression: overlapping candidates are averaged by score."""
    order = np.argsort(-scores)
    remaining = list(order)
    detections = []
    while remaining:
        best = remaining[0]
        overlaps = box_iou(boxes[best], boxes[remaining])
        group = [remaining[i] for i in np.flatnonzero(overlaps > iou)]
        weights = scores[group] / scores[group].sum()
        detections.append(
            Detection(
                score=float(scores[best]),
                box=(boxes[group] * weights[:, None]).sum(axis=0),
                keypoints=(keypoints[group] * weights[:, None, None]).sum(axis=0),
            )
        )
        remaining = [i for i in remaining if i not in group]
    return detections


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of ``boxes``."""
    boxes = np.atleast_2d(boxes)
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)
