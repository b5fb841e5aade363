"""A real multi-person clip made from the shared runner: two people who run towards each other
and cross, one passing in front of the other.

Each copy of the runner is cut out of the shared 1080p clip with MediaPipe's selfie
segmentation (bundled in the wheel) and pasted onto a running-track background: copy A runs
left to right at the back, copy B (mirrored, a little larger, so nearer the camera) runs right to
left in front and hides A while they pass. Deterministic for a given size and length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

RUNNER = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "running-1080p.mp4"


@dataclass(frozen=True)
class Crossing:
    path: Path
    frames: int
    width: int
    height: int
    crossing_frame: int  # the frame where the two runners' centres pass each other

    def centre_x(self, runner: str, frame: int) -> float:
        """Where runner "A" (left to right) or "B" (right to left) is centred at ``frame``."""
        start, end = self.width * 0.15, self.width * 0.85
        t = frame / (self.frames - 1)
        return start + (end - start) * t if runner == "A" else end - (end - start) * t


def make_crossing_clip(path: Path, *, frames: int = 90, width: int = 1280, height: int = 720) -> Crossing:
    import mediapipe as mp

    clip = Crossing(path=path, frames=frames, width=width, height=height, crossing_frame=(frames - 1) // 2)
    background = _track_background(width, height)
    source = cv2.VideoCapture(str(RUNNER))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1) as segmenter:
        for index in range(frames):
            ok, bgr = source.read()
            if not ok:  # the runner clip is 180 frames; loop it for longer clips
                source.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = source.read()
            runner, mask = _cut_out(bgr, segmenter)
            canvas = background.copy()
            _paste(canvas, runner, mask, clip.centre_x("A", index), height * 0.78, scale=height * 0.42 / runner.shape[0])
            _paste(canvas, runner[:, ::-1], mask[:, ::-1], clip.centre_x("B", index), height * 0.86,
                   scale=height * 0.5 / runner.shape[0])
            writer.write(canvas)
    writer.release()
    source.release()
    return clip


def _track_background(width: int, height: int) -> np.ndarray:
    """A blue running track under a pale wall, with a little fixed noise (codecs dislike flat)."""
    image = np.empty((height, width, 3), np.uint8)
    image[: height // 2] = (215, 215, 210)
    image[height // 2 :] = (140, 80, 40)
    noise = np.random.default_rng(7).integers(-6, 7, size=image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def _cut_out(bgr: np.ndarray, segmenter) -> tuple[np.ndarray, np.ndarray]:
    """The runner's bounding crop and its soft mask (0..1)."""
    mask = segmenter.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).segmentation_mask
    # The segmenter also lights up bits of the hall (a cart, a door frame): keep the runner only,
    # the largest blob, so her crop, and so her place on the canvas, never jumps.
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8))
    runner = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, y0, w, h = stats[runner, :4]
    mask = np.where(labels == runner, mask, 0.0)
    return bgr[y0 : y0 + h, x0 : x0 + w], mask[y0 : y0 + h, x0 : x0 + w]


def _paste(canvas: np.ndarray, runner: np.ndarray, mask: np.ndarray, centre_x: float, feet_y: float, *, scale: float) -> None:
    """Alpha-blend the runner so that its crop is centred at ``centre_x`` with its bottom at ``feet_y``."""
    runner = cv2.resize(runner, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (runner.shape[1], runner.shape[0]), interpolation=cv2.INTER_LINEAR)
    h, w = runner.shape[:2]
    x0, y0 = int(round(centre_x - w / 2)), int(round(feet_y - h))
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + w, canvas.shape[1]), min(y0 + h, canvas.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return
    alpha = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    blended = alpha * runner[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].astype(np.float32) + (1 - alpha) * region
    canvas[cy0:cy1, cx0:cx1] = blended.astype(np.uint8)
