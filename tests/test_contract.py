"""JSON Schemas of the published documents (issue 4): good examples pass, broken ones fail."""

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
    load_schema,
    published_files,
    schema_path,
    validate_document,
    validate_file,
    validate_outbox,
)
from daemon.errors import ErrorCode, JobError
from daemon.records import BackendInfo, FrameResult, Person
from daemon.publishing.results import RESULT_SCHEMA, RESULT_SCHEMA_VERSION, frame_to_json

EXAMPLES = Path(__file__).resolve().parents[1] / "daemon" / "schemas" / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.example.json").read_text(encoding="utf-8"))


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


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_examples_validate_against_their_schema(name: str) -> None:
    validate_file(EXAMPLES / f"{name}.example.json")


def test_load_schema_accepts_the_document_type_and_returns_a_copy() -> None:
    schema = load_schema("posed.status")
    schema["title"] = "changed"
    assert load_schema("status")["title"] != "changed"
    with pytest.raises(KeyError):
        load_schema("nope")


def test_result_schema_states_units_and_frames() -> None:
    text = json.dumps(load_schema("result"))
    for words in ("pixels", "origin at the top-left", "y down", "metres", "IN ORDER", "ROTATION MATRICES", "PRIMARY PERSON"):
        assert words in text


def test_result_made_by_the_real_serialisers_validates() -> None:
    info = BackendInfo("fake", "1", "fake-1", "cpu", ("nose", "left_hip", "left_knee", "left_ankle"), ("left_hip", "left_knee", "left_ankle"), "hip-centred", "fake-4")
    people = [
        Person(2, "predicted", 0.99, (-5.0, 1.0, 20.0, 30.0), np.ones((4, 3)) * 0.5, None, frames_since_detection=3),
        Person(7, "detected", 0.5, (1.0, 2.0, 3.0, 4.0), np.ones((4, 3)) * 0.5, np.array([[0, 0, 0], [0, 0.4, 0], [0.1, 0.8, 0]]), extra={"camera_translation": [0.1, 0.2, 5.0]}),
    ]
    frames = [frame_to_json(result, info, (64, 48)) for result in (FrameResult(0, 0.0, people, processing_ms=12.5), FrameResult(1, 0.04, []))]
    doc = example("result") | {"schema": RESULT_SCHEMA, "schema_version": RESULT_SCHEMA_VERSION, "backend": info.to_json(), "frames": frames}
    validate_document(doc)
    assert frames[0]["primary_track_id"] == 7 and frames[0]["has_3d"] is True
    assert frames[1]["keypoint_count"] == 0


def test_error_report_made_from_a_job_error_validates() -> None:
    doc = example("error")
    for code in ErrorCode:
        doc["error"] = JobError(code, "message", stage="probe", frame_index=3, details={"k": 1}).to_dict()
        validate_document(doc)


def test_optional_and_forward_compatible_fields_are_allowed() -> None:
    result = example("result")
    result["schema_version"] = "1.7"
    result["new_top_level_field"] = {"anything": True}
    result["frames"][0]["people"][0]["smpl"] = {
        "global_orient": [[[1, 0, 0], [0, -1, 0], [0, 0, -1]]],
        "body_pose": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]] * 23,
        "betas": [0.0] * 10,
        "global_orient_axis_angle": [[3.14159, 0.0, 0.0]],
        "body_pose_axis_angle": [[0.0, 0.0, 0.0]] * 23,
    }
    result["frames"][0]["people"][0]["camera_translation"] = [0.1, 0.2, 7.5]
    result["frames"][0]["people"][0]["camera_intrinsics"] = {"focal_length_px": 6250.0, "principal_point_px": [160.0, 91.0]}
    result["frames"][0]["people"][0]["joint_angles_3d"] = {"left_knee": 170.5, "trunk_lean": 4.2}
    result["mesh_faces"] = [[0, 1, 2]]
    del result["client"]
    validate_document(result)
    status = example("status")
    status.update(state="loading-models", current_job=None, loading={"what": "weights", "since": "2025-01-31T12:00:00Z"}, backend=None, last_error=None)
    status["counters"]["new_counter"] = 4
    validate_document(status)


RESULT_BREAKAGES = {
    "wrong schema version": lambda d: d.update(schema_version="2.0"),
    "status not ok": lambda d: d.update(status="error"),
    "missing frames": lambda d: d.pop("frames"),
    "missing summary": lambda d: d.pop("summary"),
    "input without windows_path": lambda d: d["input"].pop("windows_path"),
    "negative bytes": lambda d: d["input"].update(bytes=-1),
    "keypoint names not strings": lambda d: d["backend"].update(keypoint_names=[1, 2]),
    "state unknown": lambda d: d["frames"][0]["people"][0].update(state="guessed"),
    "confidence above 1": lambda d: d["frames"][0]["people"][0].update(confidence=1.5),
    "bbox of three": lambda d: d["frames"][0]["people"][0].update(bbox=[1, 2, 3]),
    "bbox of five": lambda d: d["frames"][0]["people"][0].update(bbox=[1, 2, 3, 4, 5]),
    "bbox negative width": lambda d: d["frames"][0]["people"][0].update(bbox=[1, 2, -3, 4]),
    "keypoint without y": lambda d: d["frames"][0]["people"][0]["keypoints"][0].pop("y"),
    "joints_3d a string": lambda d: d["frames"][0]["people"][0].update(joints_3d="none"),
    "frame without legacy keypoint_count": lambda d: d["frames"][0].pop("keypoint_count"),
    "legacy mesh_vertices a list": lambda d: d["frames"][0].update(mesh_vertices=[[0, 0, 0]]),
    "legacy angle over 180": lambda d: d["frames"][0].update(joint_angles_3d={"left_knee": 200}),
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
