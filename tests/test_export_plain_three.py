"""A .motion.glb from the real CPU backend animates in plain three.js: no posed code in the page.

`posed process running-2s-320.mp4 output.motion_glb=true` makes the file; tests/browser/plain-three.html
loads it with three.js' GLTFLoader and plays it with an AnimationMixer, as any web app would, in
Debian's headless chromium. three.js itself skins the skeleton (SkinnedMesh.getVertexPosition):
at 30 % and 70 % of the clip the bones sit on that frame's landmarks from the frames file, the
skinned vertices follow them, and the two pictures differ.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.daemon_harness import REPO, SHORT_CLIP
from tests.export_support import node_tool
from tests.static_server import serve

CHROMIUM = "/usr/bin/chromium"
PAGE = REPO / "tests" / "browser" / "plain-three.html"
ARTEFACTS = REPO / "var" / "test-artifacts"
CAMERA_TO_GLTF = np.array([1.0, -1.0, -1.0])
FRACTIONS = (0.3, 0.7)


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    files = tmp_path_factory.mktemp("plain-three")
    out = files / "running.result.json"
    done = subprocess.run([sys.executable, "-m", "daemon", "process", str(SHORT_CLIP), "--out", str(out), "output.motion_glb=true"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    frames = [json.loads(line) for line in (files / result["files"]["frames"]["name"]).read_text().splitlines()]
    glb = files / result["files"]["motion"]["name"]
    duration = result["files"]["motion"]["details"]["duration_s"]
    # The frames nearest 30 % and 70 %: at a frame's own timestamp the bones must be its landmarks.
    chosen = [min(frames, key=lambda f: abs(f["timestamp_s"] - fraction * duration)) for fraction in FRACTIONS]
    shutil.copyfile(PAGE, files / PAGE.name)
    with serve(files) as base:
        times = ",".join(str(frame["timestamp_s"]) for frame in chosen)
        report = node_tool("check-plain-three.mjs", f"{base}/files/{PAGE.name}?src=/files/{glb.name}", str(files), CHROMIUM, times)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for shot, fraction in zip(report.get("shots", []), FRACTIONS):
        shutil.copyfile(shot["path"], ARTEFACTS / f"plain-three-{int(fraction * 100)}pct.png")
    return result, chosen, glb, report, base


def test_the_file_is_valid_gltf_and_loads_in_plain_three_js_from_the_test_server_only(played):
    _, _, glb, report, base = played
    validation = node_tool("validate-gltf.mjs", str(glb))
    assert (validation["numErrors"], validation["numWarnings"]) == (0, 0), validation["messages"]
    assert report["error"] is None and report["errors"] == []
    assert report["requests"] and all(url.startswith(base + "/") for url in report["requests"])
    assert len(report["shots"]) == 2 and all(len(shot["meshes"]) == 1 for shot in report["shots"])
    assert report["shots"][0]["meshes"][0]["name"] == "track_1_skeleton"


def test_three_js_poses_the_bones_on_each_frames_landmarks(played):
    result, chosen, _, report, _ = played
    names = result["backend"]["joint_names_3d"]
    for frame, shot in zip(chosen, report["shots"]):
        bones = shot["meshes"][0]["bones"]
        landmarks = np.asarray(frame["people"][0]["joints_3d"]) * CAMERA_TO_GLTF
        placed = np.array([bones[f"track_1_{name}"] for name in names])
        assert placed == pytest.approx(landmarks, abs=1e-4)


def test_three_js_skins_the_vertices_with_the_bones_and_the_pose_changes(played):
    """Every bone's world position has a skinned vertex on it (the tips of its bone solids):
    the mesh three.js draws follows the animation, it does not stand in its bind pose."""
    _, _, _, report, _ = played
    first, second = ([np.asarray(shot["meshes"][0]["vertices"]), np.asarray(list(shot["meshes"][0]["bones"].values()))]
                     for shot in report["shots"])  # fmt: skip
    for vertices, bones in (first, second):
        nearest = np.linalg.norm(vertices[None, :, :] - bones[:, None, :], axis=2).min(axis=1)
        assert nearest.max() < 1e-4
    moved = np.linalg.norm(first[0] - second[0], axis=1)
    assert moved.max() > 0.1 and np.median(moved) > 0.01  # the runner's limbs swing between 30 % and 70 %


def test_the_two_pictures_show_different_poses(played):
    _, _, _, report, _ = played
    a, b = (cv2.imread(shot["path"]).astype(int) for shot in report["shots"])
    for image in (a, b):
        assert (image.sum(axis=2) > 60).sum() > 1000, "the figure is drawn"
    assert (np.abs(a - b).sum(axis=2) > 60).sum() > 500
