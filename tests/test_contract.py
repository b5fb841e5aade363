"""JSON Schemas of the published documents: good examples pass, broken ones fail.

A result is a manifest (``result.schema.json``) plus a frames file of one JSON object per line
(``frame.schema.json``); the examples are a consistent pair.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator, ValidationError

from daemon.publishing.contract import (
    SCHEMA_NAMES,
    ResultFileError,
    iter_verified_frames,
    load_schema,
    published_files,
    schema_path,
    validate_document,
    validate_file,
    validate_frame,
    validate_outbox,
)
from daemon.errors import ErrorCode, JobError
from daemon.publishing.reader import open_result
from daemon.publishing.encoding import FrameEncoder
from daemon.records import BackendInfo, FrameResult, Person, SmplParams

EXAMPLES = Path(__file__).resolve().parents[1] / "daemon" / "schemas" / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.example.json").read_text(encoding="utf-8"))


def example_frames() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EXAMPLES / "frames.example.jsonl").read_text(encoding="utf-8").splitlines()]


def broken(doc: dict[str, Any], change) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema_path(name).is_file()


@pytest.mark.parametrize("name", [name for name in SCHEMA_NAMES if name != "frame"])
def test_examples_validate_against_their_schema(name: str) -> None:
    validate_file(EXAMPLES / f"{name}.example.json")


def test_the_example_manifest_and_frames_file_are_a_consistent_pair() -> None:
    manifest = example("result")
    entry = manifest["files"]["frames"]
    frames = list(iter_verified_frames(EXAMPLES / entry["name"], entry, validate=True))
    assert len(frames) == manifest["summary"]["frames"] == entry["lines"]
    assert len(frames[0]["people"][0]["keypoints"]) == len(manifest["backend"]["keypoint_names"])


def test_a_frames_file_that_disagrees_with_its_manifest_is_refused(tmp_path: Path) -> None:
    entry = example("result")["files"]["frames"]
    lines = (EXAMPLES / entry["name"]).read_bytes().splitlines(keepends=True)
    (tmp_path / entry["name"]).write_bytes(b"".join(lines[:-1]))  # cut short by one frame
    with pytest.raises(ResultFileError, match="does not match its manifest"):
        list(iter_verified_frames(tmp_path / entry["name"], entry))
    (tmp_path / entry["name"]).write_bytes(lines[0] + lines[2])  # a frame missing in the middle
    with pytest.raises(ResultFileError, match="follows frame"):
        list(iter_verified_frames(tmp_path / entry["name"], entry))


@pytest.mark.parametrize("where", ["last line", "middle line"])
def test_a_frames_file_cut_mid_line_is_refused_as_tampering_not_a_bare_decode_error(tmp_path: Path, where: str) -> None:
    manifest = example("result")
    entry = manifest["files"]["frames"]
    lines = (EXAMPLES / entry["name"]).read_bytes().splitlines(keepends=True)
    cut = len(lines) - 1 if where == "last line" else 1
    (tmp_path / entry["name"]).write_bytes(b"".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2] + b"".join(lines[cut + 1 :]))
    (tmp_path / "run.mp4.result.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultFileError, match=f"line {cut + 1} is not one whole JSON frame") as caught:
        list(open_result(tmp_path / "run.mp4.result.json").frames())  # the reader a consumer uses
    assert not isinstance(caught.value, json.JSONDecodeError)
    (tmp_path / entry["name"]).write_bytes(b"[1, 2]\n" + b"".join(lines[1:]))  # JSON, but not a frame
    with pytest.raises(ResultFileError, match="line 1 is not a frame object"):
        list(iter_verified_frames(tmp_path / entry["name"], entry))


def test_load_schema_accepts_the_document_type_and_returns_a_copy() -> None:
    schema = load_schema("posed.status")
    schema["title"] = "changed"
    assert load_schema("status")["title"] != "changed"
    with pytest.raises(KeyError):
        load_schema("nope")


def test_result_schemas_state_units_order_and_publication_order() -> None:
    manifest = json.dumps(load_schema("result"))
    for words in ("pixels", "y down", "metres", "the ONE name a consumer polls for", "published BEFORE this manifest"):
        assert words in manifest
    frame = json.dumps(load_schema("frame"))
    for words in ("exactly one line per decoded frame", "in that order", "0.1 px", "0.1 mm", "axis-angle", "PRIMARY person", "interpolated"):
        assert words in frame


FAKE_INFO = BackendInfo("fake", "1", "fake-1", "cpu", ("nose", "left_hip", "left_knee", "left_ankle"),
                        ("left_hip", "left_knee", "left_ankle"), "hip-centred", "fake-4")
FAKE_PEOPLE = [
    Person(2, "predicted", 0.99, (-5.0, 1.0, 20.0, 30.0), np.ones((4, 3)) * 0.5, None, frames_since_detection=3),
    Person(7, "detected", 0.5, (1.0, 2.0, 3.0, 4.0), np.ones((4, 3)) * 0.5, np.array([[0, 0, 0], [0, 0.4, 0], [0.1, 0.8, 0]]),
           smpl=SmplParams(np.eye(3)[None], np.stack([np.eye(3)] * 23), np.zeros(10)), camera_translation=np.array([0.1, 0.2, 5.0])),
]


@pytest.mark.parametrize("legacy_fields", [False, True], ids=["compact", "with legacy fields"])
def test_frames_made_by_the_real_encoder_validate(legacy_fields: bool) -> None:
    encoder = FrameEncoder(FAKE_INFO, (64, 48), include_raw=True, legacy_fields=legacy_fields)
    frames = [encoder.frame(result) for result in (FrameResult(0, 0.0, FAKE_PEOPLE, processing_ms=12.5), FrameResult(1, 0.04, []))]
    for frame in frames:
        validate_frame(frame)
    body = frames[0]["people"][1]
    assert body["keypoints"][0] == [0.5, 0.5, 0.5] and body["joints_3d"][1] == [0.0, 0.4, 0.0]
    assert body["smpl"]["global_orient"] == [0.0, 0.0, 0.0] and len(body["smpl"]["body_pose"]) == 23
    assert ("primary_track_id" in frames[0]) is legacy_fields
    if legacy_fields:
        assert frames[0]["primary_track_id"] == 7 and frames[0]["has_3d"] is True and frames[1]["keypoint_count"] == 0


FRAME_BREAKAGES = {
    "state unknown": lambda d: d["people"][0].update(state="guessed"),
    "confidence above 1": lambda d: d["people"][0].update(confidence=1.5),
    "bbox of three": lambda d: d["people"][0].update(bbox=[1, 2, 3]),
    "bbox negative width": lambda d: d["people"][0].update(bbox=[1, 2, -3, 4]),
    "keypoint without confidence": lambda d: d["people"][0]["keypoints"][0].pop(),
    "joints_3d a string": lambda d: d["people"][0].update(joints_3d="none"),
    "no frame index": lambda d: d.pop("frame_index"),
    "legacy fields half there": lambda d: d.update(frame_number=0),
}


@pytest.mark.parametrize("change", FRAME_BREAKAGES.values(), ids=FRAME_BREAKAGES.keys())
def test_broken_frame_lines_are_rejected(change) -> None:
    with pytest.raises(ValidationError):
        validate_frame(broken(example_frames()[0], change))


def test_error_report_made_from_a_job_error_validates() -> None:
    doc = example("error")
    for code in ErrorCode:
        doc["error"] = JobError(code, "message", stage="probe", frame_index=3, details={"k": 1}).to_dict()
        validate_document(doc)


def test_optional_and_forward_compatible_fields_are_allowed() -> None:
    result = example("result")
    result["schema_version"] = "2.7"
    result["new_top_level_field"] = {"anything": True}
    result["files"]["motion"] = {"name": "abc123.mp4.motion.glb", "bytes": 10, "sha256": "0" * 64}
    result["mesh_faces"] = [[0, 1, 2]]
    del result["client"]
    validate_document(result)
    frame = example_frames()[0]
    frame["people"][0]["smpl"] = {"global_orient": [3.14159, 0.0, 0.0], "body_pose": [[0.0, 0.0, 0.0]] * 23, "betas": [0.0] * 10}
    frame["people"][0]["camera_translation"] = [0.1, 0.2, 7.5]
    frame["people"][0]["extra"] = {"camera_intrinsics": {"focal_length_px": 6250.0, "principal_point_px": [160.0, 91.0]}}
    frame["people"][0]["raw"] = {"keypoints": frame["people"][0]["keypoints"]}
    frame["people"][0]["new_person_field"] = 1
    validate_frame(frame)
    status = example("status")
    status.update(state="loading-models", current_job=None, loading={"what": "weights", "since": "2025-01-31T12:00:00Z"}, backend=None, last_error=None)
    status["counters"]["new_counter"] = 4
    validate_document(status)


RESULT_BREAKAGES = {
    "version 1": lambda d: d.update(schema_version="1.0"),
    "status not ok": lambda d: d.update(status="error"),
    "no files": lambda d: d.pop("files"),
    "no frames file": lambda d: d["files"].pop("frames"),
    "frames file without hash": lambda d: d["files"]["frames"].pop("sha256"),
    "frames file of another format": lambda d: d["files"]["frames"].update(format="json"),
    "no tracks": lambda d: d.pop("tracks"),
    "no precision": lambda d: d.pop("precision"),
    "missing summary": lambda d: d.pop("summary"),
    "input without windows_path": lambda d: d["input"].pop("windows_path"),
    "negative bytes": lambda d: d["input"].update(bytes=-1),
    "keypoint names not strings": lambda d: d["backend"].update(keypoint_names=[1, 2]),
    "rotation unknown": lambda d: d["video"].update(rotation_degrees=45),
    "created_at not a timestamp": lambda d: d.update(created_at="yesterday"),
    "stage_seconds incomplete": lambda d: d["summary"]["stage_seconds"].pop("write"),
    "client metadata a list": lambda d: d["client"].update(metadata=[1]),
}


@pytest.mark.parametrize("change", RESULT_BREAKAGES.values(), ids=RESULT_BREAKAGES.keys())
def test_broken_results_are_rejected(change) -> None:
    with pytest.raises(ValidationError):
        validate_document(broken(example("result"), change))


ERROR_BREAKAGES = {
    "status ok": lambda d: d.update(status="ok"),
    "code not an E_ code": lambda d: d["error"].update(code="not_a_video"),
    "missing hint": lambda d: d["error"].pop("hint"),
    "missing attempts": lambda d: d.pop("attempts"),
    "frame_index negative": lambda d: d["error"].update(frame_index=-1),
    "details a list": lambda d: d["error"].update(details=[]),
}


@pytest.mark.parametrize("change", ERROR_BREAKAGES.values(), ids=ERROR_BREAKAGES.keys())
def test_broken_error_reports_are_rejected(change) -> None:
    with pytest.raises(ValidationError):
        validate_document(broken(example("error"), change))


STATUS_BREAKAGES = {
    "state unknown": lambda d: d.update(state="sleeping"),
    "pid zero": lambda d: d["daemon"].update(pid=0),
    "missing heartbeat": lambda d: d.pop("heartbeat_at"),
    "percent over 100": lambda d: d["current_job"].update(percent=120),
    "current_job without stage": lambda d: d["current_job"].pop("stage"),
    "counter negative": lambda d: d["counters"].update(results=-1),
    "missing counter": lambda d: d["counters"].pop("worker_crashes"),
    "queue_length missing": lambda d: d.pop("queue_length"),
    "degraded_reason a number": lambda d: d.update(degraded_reason=3),
    "loading without since": lambda d: d.update(loading={"what": "x"}),
}


@pytest.mark.parametrize("change", STATUS_BREAKAGES.values(), ids=STATUS_BREAKAGES.keys())
def test_broken_status_files_are_rejected(change) -> None:
    with pytest.raises(ValidationError):
        validate_document(broken(example("status"), change))


@pytest.mark.parametrize("doc", [[], "x", {"schema": "posed.other"}, {}], ids=["list", "string", "unknown", "no schema"])
def test_documents_of_unknown_type_are_rejected(doc: Any) -> None:
    with pytest.raises(ValidationError):
        validate_document(doc)


def test_validate_outbox_checks_results_errors_and_status_and_skips_temp_files(tmp_path: Path) -> None:
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "half.result.json").write_text("{", encoding="utf-8")
    (tmp_path / ".posed" / "status").mkdir(parents=True)
    (tmp_path / ".posed" / "status" / "d1.json").write_text(json.dumps(example("status")), encoding="utf-8")
    (tmp_path / "a.mp4.result.json").write_text(json.dumps(example("result")), encoding="utf-8")
    (tmp_path / "frames.example.jsonl").write_bytes((EXAMPLES / "frames.example.jsonl").read_bytes())
    (tmp_path / "x.mp4.error.json").write_text(json.dumps(example("error")), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a document", encoding="utf-8")
    files = validate_outbox(tmp_path)
    assert [p.name for p in files] == ["a.mp4.result.json", "x.mp4.error.json", "d1.json"]
    (tmp_path / "b.mp4~2.result.json").write_text(json.dumps(broken(example("result"), lambda d: d.pop("video"))), encoding="utf-8")
    with pytest.raises(ValidationError, match="b.mp4~2.result.json"):
        validate_outbox(tmp_path)
    assert len(published_files(tmp_path)) == 4


def test_the_error_schema_lists_every_error_code_the_daemon_can_publish():
    text = json.dumps(load_schema("error"))
    missing = [code.value for code in ErrorCode if code.value not in text]
    assert missing == [], f"document these codes in error.schema.json: {missing}"
