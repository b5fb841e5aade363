"""posed eval end to end: a clip with identities becomes a video, the real daemon processes it
with the default (MediaPipe) backend, and ``posed eval`` prints and writes the figures.

Bounds only, never the figures themselves: they change whenever the backend gets better.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_crossing_clip.py"


def posed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _make_crossing_clip(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_crossing_clip", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_crossing_clip(out)


@pytest.mark.slow
def test_a_processed_clip_is_scored_with_coverage_oks_and_identities(tmp_path):
    annotations = _make_crossing_clip(tmp_path / "clip")
    document = json.loads(annotations.read_text())
    assert len({a["track_id"] for a in document["annotations"]}) == 4 and len(document["images"]) == 90

    videos = tmp_path / "videos"
    made = posed("eval-video", str(annotations), str(tmp_path / "clip"), str(videos))
    assert made.returncode == 0, made.stderr
    processed = posed("process", str(videos / "crossing.mp4"), "motion.include_raw=true", "--out", str(videos / "crossing.mp4.result.json"))
    assert processed.returncode == 0, processed.stderr[-2000:]

    scored = posed("eval", "--batch", str(videos / "eval-batch.json"), "--json", str(tmp_path / "report.json"))
    assert scored.returncode == 0, scored.stderr[-2000:]
    for label in ("coverage (OKS >= 0.1)", "mean OKS, matched people", "COCO AP", "ID switches", "IDF1", "crossing"):
        assert label in scored.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    (item,) = report["items"]
    assert item["clip"] and item["has_raw"]
    for view in ("smoothed", "raw"):
        figures = item[view]
        assert figures["annotated_people"] == len(document["annotations"])
        assert 0 < figures["coverage"] <= 1
        assert 0 < figures["mean_oks"] <= 1
        assert 0 <= figures["ap"] <= 1
        identity = figures["identity"]
        assert isinstance(identity["num_switches"], int) and identity["num_switches"] >= 0
        assert 0 <= identity["idf1"] <= 1
    assert report["aggregate"]["smoothed"]["matched_people"] == item["smoothed"]["matched_people"]
