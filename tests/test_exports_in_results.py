"""Exports ride with the result: asked for per job, published with it, listed in its manifest
with size and sha256, and failing soft (a warning in the result, never a lost result)."""

from __future__ import annotations

import hashlib
import json

from daemon.publishing.contract import validate_document
from tests.daemon_harness import SHORT_CLIP, drop, outcomes, wait_outcome, write_bytes
from tests.helpers import wait_until
from tests.hostile_corpus import ffmpeg


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sidecar_asks_for_both_exports_and_they_are_published_before_the_manifest_that_lists_them(daemons):
    daemon = daemons().wait_ready()
    write_bytes(daemon.inbox, "run.mp4.job.json", json.dumps({"options": {"motion_glb": True, "preview": True}}).encode())
    drop(SHORT_CLIP, daemon.inbox, "run.mp4")
    kind, result = wait_outcome(daemon.outbox, "run.mp4", 120)
    assert kind == "result" and result["options"]["motion_glb"] is True and result["options"]["preview"] is True
    files = result["files"]
    assert {kind: entry["name"] for kind, entry in files.items()} == {
        "frames": "run.mp4.frames.jsonl", "motion": "run.mp4.motion.glb", "preview": "run.mp4.preview.mp4"}
    for entry in files.values():
        path = daemon.outbox / entry["name"]
        assert path.stat().st_size == entry["bytes"] and sha256(path) == entry["sha256"]
    assert (daemon.outbox / "run.mp4.motion.glb").read_bytes()[:4] == b"glTF"
    assert files["preview"]["details"]["frames"] == 60 and files["motion"]["details"]["tracks"] == [1]
    assert result["summary"]["exports"] == {"made": ["motion", "preview"], "failed": 0} and "warnings" not in result

    drop(SHORT_CLIP, daemon.inbox, "plain.mp4")  # no sidecar: exports are off by default
    kind, plain = wait_outcome(daemon.outbox, "plain.mp4", 120)
    assert kind == "result" and list(plain["files"]) == ["frames"]
    assert sorted(p.name for p in daemon.outbox.iterdir() if p.name.startswith("plain")) == ["plain.mp4.frames.jsonl", "plain.mp4.result.json"]


def test_an_export_that_cannot_be_made_is_a_warning_in_a_published_result(daemons, tmp_path):
    """Nobody in the video: no skeleton to animate. The result still comes, with a warning."""
    empty = tmp_path / "empty-room.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x180:r=30:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", empty)
    daemon = daemons(overrides=["output.motion_glb=true"]).wait_ready()
    drop(empty, daemon.inbox, "empty-room.mp4")
    kind, result = wait_outcome(daemon.outbox, "empty-room.mp4", 120)
    validate_document(result)
    assert kind == "result" and result["summary"]["frames"] == 30 and result["summary"]["frames_with_person"] == 0
    assert list(result["files"]) == ["frames"] and result["summary"]["exports"] == {"made": [], "failed": 1}
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith("the motion export was not made: ")
    assert not (daemon.outbox / "empty-room.mp4.motion.glb").exists()
    assert list(outcomes(daemon.outbox)) == ["empty-room.mp4.result.json"]
    # The result's draft is linked to its final name, then unlinked: wait for that, then nothing may be left.
    wait_until(lambda: not (daemon.inbox / "empty-room.mp4").exists(), 30)  # the job settled after publishing
    assert sorted(p.name for p in (daemon.outbox / ".tmp").iterdir()) == []  # the failed export left nothing behind


def test_a_body_mesh_asked_of_a_backend_without_smpl_is_a_warning_beside_a_made_glb(daemons):
    """motion_mesh needs PHALP's SMPL output: on MediaPipe the GLB still comes, skeletons only."""
    daemon = daemons().wait_ready()
    write_bytes(daemon.inbox, "run.mp4.job.json", json.dumps({"options": {"motion_glb": True, "motion_mesh": True}}).encode())
    drop(SHORT_CLIP, daemon.inbox, "run.mp4")
    kind, result = wait_outcome(daemon.outbox, "run.mp4", 120)
    validate_document(result)
    assert kind == "result" and result["options"]["motion_mesh"] is True
    assert result["files"]["motion"]["details"]["mesh"] is None and result["summary"]["exports"] == {"made": ["motion"], "failed": 0}
    assert result["warnings"] == ["the motion export has no body mesh: backend 'mediapipe' has no SMPL output"]
