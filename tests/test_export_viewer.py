"""examples/viewer.html in a real headless chromium, on a GLB made from running-1080p.mp4.

The page is served by a localhost server started here (three.js from tests/browser/node_modules);
playwright-core drives Debian's /usr/bin/chromium. The screenshots are kept in var/test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.processing.backends.phalp.stand_in_smpl import write_body_model
from daemon.processing.exports.gltf import GltfExporter
from tests.daemon_harness import LONG_CLIP, REPO
from tests.export_support import export, mediapipe_results, node_tool, phalp_results
from tests.fakes.phalp_api import FakeScene, ScriptedPerson
from tests.static_server import serve

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = REPO / "var" / "test-artifacts"
BACKGROUND_BGR = np.array([0x28, 0x20, 0x1B])  # viewer.html's #1b2028
MIN_POSE_CHANGE_M = 0.05


@pytest.fixture(scope="module")
def viewer_run(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    files = tmp_path_factory.mktemp("viewer")
    processed = mediapipe_results(LONG_CLIP, max_people=1)  # the runner alone: one skeleton to find on screen
    exported = export(GltfExporter(files / "running.motion.glb"), processed)
    with serve(files) as base:
        report = node_tool("check-viewer.mjs", f"{base}/examples/viewer.html?src=/files/{exported.path.name}", str(files), str(CHROMIUM))
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for shot in report.get("shots", []):
        shutil.copyfile(shot["path"], ARTEFACTS / f"viewer-running-1080p-{Path(shot['path']).name}")
    return processed, report, base


def test_viewer_loads_the_glb_and_plays_one_animation_as_long_as_the_video(viewer_run):
    processed, report, _ = viewer_run
    assert report["error"] is None and report["errors"] == []
    assert len(report["clips"]) == 1
    fps = processed.meta.nominal_fps
    video_duration = processed.results[-1].timestamp_s + 1 / fps
    assert abs(report["duration"] - video_duration) <= 1 / fps
    assert report["playedTo"] > 0.2  # the mixer advanced by itself


def test_viewer_loads_nothing_from_outside_the_test_server(viewer_run):
    _, report, base = viewer_run
    assert report["requests"] and all(url.startswith(base + "/") for url in report["requests"])
    assert any("/vendor/three/build/three.module.js" in url for url in report["requests"])


def test_the_skeleton_is_on_screen_where_the_joints_project(viewer_run):
    _, report, _ = viewer_run
    for shot in report["shots"]:
        image = cv2.imread(shot["path"])
        box = shot["box"]
        assert box["joints"] == 33
        x0, y0 = max(0, int(box["x0"]) - 10), max(0, int(box["y0"]) - 10)
        x1, y1 = min(image.shape[1], int(box["x1"]) + 10), min(image.shape[0], int(box["y1"]) + 10)
        assert (x1 - x0) > 40 and (y1 - y0) > 100, "the figure should fill a good part of the view"
        drawn = np.abs(image.astype(int) - BACKGROUND_BGR).sum(axis=2) > 60
        inside = drawn[y0:y1, x0:x1].mean()
        outside = (drawn.sum() - drawn[y0:y1, x0:x1].sum()) / (drawn.size - drawn[y0:y1, x0:x1].size)
        assert inside > 0.03, f"only {inside:.3%} of the figure's box is drawn"
        assert inside > 5 * outside


def test_the_pose_differs_between_two_times(viewer_run):
    _, report, _ = viewer_run
    first, second = report["shots"]
    assert first["time"] < second["time"]
    moved = [np.linalg.norm(np.subtract(first["joints"][name], second["joints"][name])) for name in first["joints"]]
    assert max(moved) > MIN_POSE_CHANGE_M
    a, b = (cv2.imread(shot["path"]).astype(int) for shot in report["shots"])
    assert (np.abs(a - b).sum(axis=2) > 60).sum() > 500  # the pictures differ, not only the numbers


def test_phalp_tracks_show_as_smpl_skeletons_and_an_absent_track_disappears(tmp_path):
    """Two scripted PHALP tracks; track 2's person leaves after frame 19, PHALP predicts it for 3
    frames and then deletes it: from frame 24 on it must vanish, not freeze."""
    scene = FakeScene([ScriptedPerson(1, lambda t: True), ScriptedPerson(2, lambda t: 5 <= t < 20, center_x=90.0)])
    processed = phalp_results(scene, 45, max_age_track=3)
    assert not any(p.track_id == 2 for r in processed.results[24:] for p in r.people)
    export(GltfExporter(tmp_path / "two.motion.glb"), processed)
    both_present, one_absent = 13 / 45, 25 / 45  # fractions of the 1.5 s clip: frames 13 and 25
    with serve(tmp_path) as base:
        report = node_tool("check-viewer.mjs", f"{base}/examples/viewer.html?src=/files/two.motion.glb", str(tmp_path), str(CHROMIUM),
                           f"{both_present},{one_absent}")  # fmt: skip
    assert report["error"] is None and report["errors"] == []
    together, alone = report["shots"]
    assert together["box"]["joints"] == 2 * 24 and alone["box"]["joints"] == 24
    assert {name.split("_")[1] for name in together["joints"]} == {"1", "2"}


def test_smpl_bodies_are_skinned_by_three_js_and_follow_their_tracks(tmp_path):
    """With the user's SMPL file (here the generated stand-in) each track carries a body mesh;
    three.js skins it itself: on screen around the track's joints, moving, gone while absent."""
    scene = FakeScene([ScriptedPerson(1, lambda t: True, sway_px=40.0), ScriptedPerson(2, lambda t: 5 <= t < 20, center_x=90.0)])
    processed = phalp_results(scene, 45, max_age_track=3)
    smpl = write_body_model(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    export(GltfExporter(tmp_path / "bodies.motion.glb", smpl), processed)
    both_present, one_absent = 13 / 45, 33 / 45
    with serve(tmp_path) as base:
        report = node_tool("check-viewer.mjs", f"{base}/examples/viewer.html?src=/files/bodies.motion.glb", str(tmp_path), str(CHROMIUM),
                           f"{both_present},{one_absent}")  # fmt: skip
    assert report["error"] is None and report["errors"] == []
    together, alone = report["shots"]
    assert {b["name"]: b["shown"] for b in together["bodies"]} == {"track_1_body": True, "track_2_body": True}
    assert {b["name"]: b["shown"] for b in alone["bodies"]} == {"track_1_body": True, "track_2_body": False}
    for shot in (together, alone):
        shown = [b["screen"] for b in shot["bodies"] if b["shown"]]
        x0, x1 = min(b["x0"] for b in shown), max(b["x1"] for b in shown)
        y0, y1 = min(b["y0"] for b in shown), max(b["y1"] for b in shown)
        joints = shot["box"]  # every shown joint on screen
        assert x0 <= joints["x0"] + 1 and x1 >= joints["x1"] - 1 and y0 <= joints["y0"] + 1 and y1 >= joints["y1"] - 1  # bodies wrap their skeletons
        assert all(b["x1"] - b["x0"] > 20 and b["x0"] >= 0 and b["x1"] <= 960 for b in shown)  # and are on screen
    first = np.array(next(b for b in together["bodies"] if b["name"] == "track_1_body")["min"])
    later = np.array(next(b for b in alone["bodies"] if b["name"] == "track_1_body")["min"])
    assert np.abs(first - later).max() > 0.01  # skinned by the animation, not standing in its bind pose
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(together["path"], ARTEFACTS / "viewer-smpl-bodies.png")
    image = cv2.imread(together["path"]).astype(int)
    assert (np.abs(image - BACKGROUND_BGR).sum(axis=2) > 60).sum() > 5000  # filled bodies, not only lines
