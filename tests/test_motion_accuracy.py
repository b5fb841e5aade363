"""Smoothing costs no accuracy: raw vs smoothed against exact ground truth, with the real tools.

The swaying clip (scripts/make_swaying_clip.py: COCO's annotated skier moved as a rigid body,
up to 25 px per frame) goes through the same commands a user runs: the generator script,
``posed eval-video``, ``posed process`` with the default CPU backend, ``posed eval``. Figures
are printed; the thresholds are issue 19's (smoothed OKS >= raw OKS - 0.005, mean acceleration
-30 % or better).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def posed(*args: str | Path, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=900)


@pytest.mark.parametrize("fps", [30, 10])
def test_smoothed_is_as_accurate_as_raw_on_fast_motion_and_much_smoother(fps, tmp_path):
    subprocess.run([sys.executable, REPO / "scripts" / "make_swaying_clip.py", tmp_path], check=True, capture_output=True, timeout=300)
    annotations = tmp_path / "swaying.json"
    videos = tmp_path / "videos"
    posed("eval-video", annotations, tmp_path, videos, "--fps", str(fps), cwd=tmp_path)
    result = videos / "swaying.mp4.result.json"
    posed("process", videos / "swaying.mp4", "motion.include_raw=true", "--out", result, cwd=videos)
    report_path = tmp_path / "report.json"
    posed("eval", result, annotations, "--frame-map", videos / "swaying.mp4.frame-map.json", "--json", report_path, cwd=tmp_path)

    report = json.loads(report_path.read_text())["aggregate"]
    raw, smoothed = report["raw"], report["smoothed"]
    figures = json.loads(result.read_text())["summary"]["motion"]["keypoints_2d"]
    accel_raw, accel_smoothed = figures["raw_mean_acceleration_px"], figures["smoothed_mean_acceleration_px"]
    print(
        f"\nswaying clip at {fps} fps: OKS raw {raw['mean_oks']:.4f} -> smoothed {smoothed['mean_oks']:.4f}, "
        f"median error {raw['median_error_px']:.2f} -> {smoothed['median_error_px']:.2f} px, "
        f"mean acceleration {accel_raw:.3f} -> {accel_smoothed:.3f} px/frame^2 ({accel_smoothed / accel_raw - 1:+.0%})"
    )
    assert raw["coverage"] == smoothed["coverage"] >= 0.9  # the skier is found: the figures mean something
    assert smoothed["mean_oks"] >= raw["mean_oks"] - 0.005
    assert accel_smoothed <= 0.7 * accel_raw
