"""Real multi-person clips made from the shared runner: people who run past each other and
cross, the nearer one hiding the other while they pass.

    python scripts/make_crowd_clip.py OUT.mp4 [--people 4] [--width 1920 --height 1080] [--frames 300]

Each copy of the runner is cut out of ``../shared/media/running-1080p.mp4`` with MediaPipe's
selfie segmentation (bundled in the wheel) and pasted onto a running-track background. Runner
0 runs left to right at the back; each next runner is nearer the camera (lower, larger) and runs
the other way, mirrored, so every pair crosses with the nearer one in front. Their scripted
centres (``Crowd.centre_x``) say who is where in every frame: the identity ground truth of the
multi-person tests and the 4-person clip of ``posed bench``. Deterministic for given arguments.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

TRAVEL = 0.6  # of the width, over the clip
RUNNER = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "running-1080p.mp4"


@dataclass(frozen=True)
class Crowd:
    path: Path
    people: int
    frames: int
    width: int
    height: int

    def centre_x(self, runner: int, frame: int) -> float:
        """Where ``runner`` is centred at ``frame``: even ones run left to right, odd ones back,
        each pair of the same direction a fifth of the width apart, so nobody runs inside
        anybody but everyone crosses everyone going the other way."""
        t = frame / max(self.frames - 1, 1)
        lane = runner // 2
        if runner % 2 == 0:
            return self.width * (0.1 + 0.2 * lane + TRAVEL * t)
        return self.width * (0.9 - 0.2 * lane - TRAVEL * t)

    def crossing_frame(self, a: int = 0, b: int = 1) -> int:
        """The frame where runners ``a`` and ``b`` are closest."""
        return min(range(self.frames), key=lambda f: abs(self.centre_x(a, f) - self.centre_x(b, f)))

    def depth(self, runner: int) -> float:
        """0 at the back, 1 at the front."""
        return runner / max(self.people - 1, 1)


def make_crowd_clip(path: Path, *, people: int = 2, frames: int = 90, width: int = 1280, height: int = 720) -> Crowd:
    import mediapipe as mp

    crowd = Crowd(path=path, people=people, frames=frames, width=width, height=height)
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
            for number in range(people):  # back to front, so the nearer runner hides the farther
                depth = crowd.depth(number)
                crop, alpha = (runner, mask) if number % 2 == 0 else (runner[:, ::-1], mask[:, ::-1])
                _paste(canvas, crop, alpha, crowd.centre_x(number, index), height * (0.72 + 0.16 * depth),
                       scale=height * (0.36 + 0.16 * depth) / runner.shape[0])
            writer.write(canvas)
    writer.release()
    source.release()
    return crowd


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    crowd = make_crowd_clip(args.out, people=args.people, frames=args.frames, width=args.width, height=args.height)
    print(f"{crowd.path}: {crowd.people} runners, {crowd.frames} frames, {crowd.width}x{crowd.height}")


if __name__ == "__main__":
    main()
