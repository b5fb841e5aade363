"""Legacy flat frame fields of the old HTTP service (issue 4), for the primary person."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.publishing.legacy import joint_angles, legacy_frame_fields, primary_person

LEGACY_NAMES = {
    "frame_number", "frame_width", "frame_height", "keypoints", "keypoint_count", "has_3d",
    "joints_3d_raw", "joint_angles_3d", "mesh_vertices", "mesh_vertices_data", "mesh_faces_data",
    "camera_translation", "tracking_confidence", "processing_time_ms", "model_version",
}  # fmt: skip


def person(track_id: int, state: str = "detected", confidence: float = 0.9, **extra: Any) -> dict[str, Any]:
    return {
        "track_id": track_id,
        "state": state,
        "frames_since_detection": 0 if state == "detected" else 2,
        "confidence": confidence,
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "keypoints": [{"name": "nose", "x": 10.0 + track_id, "y": 20.0, "confidence": 0.8}],
        "joints_3d": None,
        **extra,
    }


def fields(people: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    frame = {"frame_index": 41, "timestamp_s": 1.37, "people": people}
    options = {"width": 1920, "height": 1080, "model_version": "m-1", "processing_ms": 12.3456} | kwargs
    return legacy_frame_fields(frame, **options)


def test_a_frame_without_people_has_empty_legacy_fields() -> None:
    assert fields([]) == {
        "frame_number": 41,
        "frame_width": 1920,
        "frame_height": 1080,
        "keypoints": [],
        "keypoint_count": 0,
        "has_3d": False,
        "joints_3d_raw": [],
        "joint_angles_3d": {},
        "mesh_vertices": 0,
        "mesh_vertices_data": [],
        "mesh_faces_data": [],
        "camera_translation": None,
        "tracking_confidence": 0.0,
        "primary_track_id": None,
        "processing_time_ms": 12.346,
        "model_version": "m-1",
    }


def test_every_legacy_name_is_present() -> None:
    assert LEGACY_NAMES <= set(fields([person(1)]))
    assert LEGACY_NAMES <= set(fields([]))


@pytest.mark.parametrize(
    ("people", "expected_track"),
    [
        ([person(1, confidence=0.5), person(2, confidence=0.7)], 2),
        ([person(1, "predicted", 0.99), person(2, "detected", 0.3)], 2),
        ([person(1, "predicted", 0.4), person(2, "predicted", 0.6)], 2),
        ([person(5, confidence=0.8), person(3, confidence=0.8)], 3),
        ([person(9)], 9),
    ],
    ids=["higher confidence", "detected beats predicted", "best predicted", "tie lowest id", "single"],
)
def test_the_primary_person_is_chosen_by_state_then_confidence_then_track_id(people, expected_track) -> None:
    assert primary_person(people)["track_id"] == expected_track
    assert fields(people)["primary_track_id"] == expected_track


def test_fields_describe_the_primary_person() -> None:
    joints = [
        {"name": "left_hip", "x": 0.0, "y": 0.0, "z": 0.0},
        {"name": "left_knee", "x": 0.0, "y": 0.4, "z": 0.0},
        {"name": "left_ankle", "x": 0.0, "y": 0.8, "z": 0.0},
    ]
    vertices = [[0.0, 0.1, 5.0], [0.1, 0.1, 5.0], [0.0, 0.2, 5.0]]
    chosen = person(4, confidence=0.95, joints_3d=joints, camera_translation=[0.1, 0.2, 5.5], mesh_vertices=vertices)
    out = fields([person(1, confidence=0.2), chosen], mesh_faces=[[0, 1, 2]])
    assert out["keypoints"] == chosen["keypoints"]
    assert out["keypoint_count"] == 1
    assert out["has_3d"] is True
    assert out["joints_3d_raw"] == joints
    assert out["joint_angles_3d"] == {"left_knee": 180.0}
    assert out["mesh_vertices"] == 3
    assert out["mesh_vertices_data"] == vertices
    assert out["mesh_faces_data"] == [[0, 1, 2]]
    assert out["camera_translation"] == [0.1, 0.2, 5.5]
    assert out["tracking_confidence"] == 0.95


def test_mesh_faces_are_left_out_unless_given_and_there_is_a_mesh() -> None:
    assert fields([person(1, mesh_vertices=[[0, 0, 0]])])["mesh_faces_data"] == []
    assert fields([person(1)], mesh_faces=[[0, 1, 2]])["mesh_faces_data"] == []


def test_a_backend_supplied_joint_angle_table_is_passed_through() -> None:
    assert fields([person(1, joint_angles_3d={"left_knee": 91.5})])["joint_angles_3d"] == {"left_knee": 91.5}


def test_joint_angles_are_interior_angles_in_degrees() -> None:
    joints = [
        {"name": "right_hip", "x": 0.0, "y": 0.0, "z": 0.0},
        {"name": "right_knee", "x": 0.0, "y": 1.0, "z": 0.0},
        {"name": "right_ankle", "x": 1.0, "y": 1.0, "z": 0.0},
        {"name": "right_shoulder", "x": 0.0, "y": -1.0, "z": 0.0},
    ]
    assert joint_angles(joints) == {"right_knee": 90.0, "right_hip": 180.0}


def test_openpose_style_names_are_understood_and_the_first_duplicate_wins() -> None:
    joints = [
        {"name": "OP LHip", "x": 0.0, "y": 0.0, "z": 0.0},
        {"name": "OP LKnee", "x": 0.0, "y": 1.0, "z": 0.0},
        {"name": "LAnkle", "x": 0.0, "y": 1.0, "z": 1.0},
        {"name": "left_knee", "x": 9.0, "y": 9.0, "z": 9.0},
    ]
    assert joint_angles(joints) == {"left_knee": 90.0}


def test_coincident_joints_give_no_angle() -> None:
    zero = {"x": 0.0, "y": 0.0, "z": 0.0}
    joints = [{"name": n, **zero} for n in ("left_hip", "left_knee", "left_ankle")]
    assert joint_angles(joints) == {}


def test_mediapipe_names_give_ten_angles() -> None:
    from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33

    joints = [{"name": n, "x": float(i % 5), "y": float(i), "z": float(i % 3)} for i, n in enumerate(BLAZEPOSE_33)]
    angles = joint_angles(joints)
    assert len(angles) == 10
    assert all(0.0 <= a <= 180.0 for a in angles.values())
