#!/usr/bin/env python3
"""Score the current backend on the public annotated data in tests/data/eval, end to end.

    python scripts/eval_public.py OUT_DIR [key=value ...]    # overrides go to posed process

Builds the videos (``posed eval-video``: each still of the eight public sets, MPII's converted to
COCO keypoints first, its own 10-frame video; the generated
crossing clip, ``scripts/make_crossing_clip.py``, one 90-frame video at 30 frames/s), runs ``posed process`` on
each with ``motion.include_raw=true`` (so raw and smoothed are compared) plus your overrides,
then ``posed eval --batch`` twice: the clip(s), then the stills. Reports: OUT_DIR/clips.report.json
and OUT_DIR/stills.report.json. Results already in OUT_DIR are reused (delete them to redo).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "eval"
STILLS = {  # folder -> (annotations, image folder)
    "coco": ("coco/test_coco.json", "coco"),
    "crowdpose": ("crowdpose/test_crowdpose.json", "crowdpose"),
    "ochuman": ("ochuman/test_ochuman.json", "ochuman"),
    "posetrack18": ("posetrack18/test_posetrack18_val.json", "posetrack18"),
    "aic": ("aic/test_aic.json", "aic"),
    "jhmdb": ("jhmdb/test_jhmdb_sub1.json", "jhmdb"),
    "humanart": ("humanart/test_humanart.json", "humanart"),
    "mpii": (None, "mpii"),  # mmpose's own json: converted to COCO keypoints first (mpii_as_coco)
}
# MPII's 16 joints in mmpose's order, under COCO's names where COCO has the joint.
MPII_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
               "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist")


def mpii_as_coco(source: Path, out: Path) -> Path:
    """mmpose's MPII list (one person per entry: image, joints, joints_vis) as a COCO keypoints file."""
    entries = json.loads(source.read_text(encoding="utf-8"))
    names = sorted({entry["image"] for entry in entries})
    images = [{"id": number, "file_name": name} for number, name in enumerate(names, 1)]
    annotations = [
        {"id": number, "image_id": names.index(entry["image"]) + 1, "category_id": 1, "iscrowd": 0,
         "keypoints": [value for (x, y), seen in zip(entry["joints"], entry["joints_vis"]) for value in (x, y, 2 if seen else 0)]}
        for number, entry in enumerate(entries, 1)
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "person", "keypoints": list(MPII_JOINTS)}]}), encoding="utf-8")
    return out


def posed(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, check=True)


def build_set(name: str, annotations: Path, images: Path, out: Path, overrides: list[str]) -> list[dict]:
    videos = out / name
    if not (videos / "eval-batch.json").is_file():
        posed("eval-video", str(annotations), str(images), str(videos))
    entries = json.loads((videos / "eval-batch.json").read_text(encoding="utf-8"))
    for entry in entries:
        result = videos / entry["result"]
        if not result.is_file():
            posed("process", str(videos / entry["video"]), "motion.include_raw=true", *overrides, "--out", str(result))
        entry.update({key: str((videos / entry[key]).resolve()) for key in ("result", "annotations", "frame_map")})
        entry["name"] = f"{name}/{entry['name']}"
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "scripts"))
    from make_crossing_clip import make_crossing_clip

    clip = out / "crossing-source"
    annotations = clip / "crossing.json" if (clip / "crossing.json").is_file() else make_crossing_clip(clip)
    batches = {
        "clips": build_set("crossing", annotations, clip, out, args.overrides),
        "stills": [entry for name, (file, images) in STILLS.items()
                   for entry in build_set(name, DATA / file if file else mpii_as_coco(DATA / "mpii" / "test_mpii.json", out / "mpii-coco.json"),
                                          DATA / images, out, args.overrides)],
    }
    for label, entries in batches.items():
        batch = out / f"{label}.batch.json"
        batch.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
        print(f"\n=== {label} ===", flush=True)
        posed("eval", "--batch", str(batch), "--json", str(out / f"{label}.report.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
