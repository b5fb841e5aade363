"""One person's motion over a video, as rows of keyframe values streamed to a temporary file.

Two rigs: ``SmplTrack`` (PHALP: the SMPL 24-joint hierarchy, root translation and 24 joint
rotations per frame) and ``PointTrack`` (MediaPipe: every 3D landmark a joint node with its own
translation). A row is ``time, visibility, pose values``: one per frame with the person, one
(visibility 0, last pose repeated) on the first frame of each absence, one at the video's start
if the person appears later, and one at the video's end. With STEP interpolation on the
visibility the skeleton is hidden exactly while the person is absent, never frozen in view,
and absences cost no keyframes. Poses are stored in the glTF frame
(``smpl_rig.GLTF_FROM_CAMERA``: x right, y up, z towards the viewer, metres).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daemon.processing.backends.phalp.skeleton import SMPL_24
from daemon.processing.exports.bone_solids import Follow
from daemon.processing.exports.channels import RecordFile
from daemon.processing.exports.skeletons import skeleton_edges
from daemon.processing.exports.smpl_mesh import SmplBody
from daemon.processing.exports.smpl_rig import (
    GLTF_FROM_CAMERA,
    SMPL_PARENTS,
    continuous,
    local_rotations,
    quaternions_xyzw,
    rest_offsets,
    smpl_joint_positions,
)
from daemon.records import BackendInfo, Person

VISIBLE, HIDDEN = 1.0, 0.0


class MotionTrack:
    """Shared bookkeeping: rows on disk, the first frame, the last pose (for absent frames)."""

    rig = ""
    joint_names: tuple[str, ...] = ()
    parents: tuple[int, ...] = ()  # -1: child of the track's group node
    body_vertices: np.ndarray | None = None  # a skinned body's rest vertices (SMPL with the user's model)
    bones_follow = Follow.PARENT  # how a bone's solid is skinned (bone_solids)

    def __init__(self, track_id: int, start_frame: int, video_start_s: float, folder: Path, width: int) -> None:
        self.track_id = track_id
        self.start_frame = start_frame
        self.video_start_s = video_start_s
        self.rows = RecordFile(folder, 2 + width, prefix=f"track{track_id}-")
        self._last: np.ndarray | None = None
        self._last_row: np.ndarray | None = None
        self.frames_present = 0

    def write(self, person: Person | None, time_s: float) -> None:
        """Keyframes for this frame: the person's pose, or (once per absence) the last pose hidden."""
        values = self.pose_row(person) if person is not None and self.usable(person) else None
        if values is not None:
            if self._last is None and time_s > self.video_start_s:
                self._append(self.video_start_s, HIDDEN, values)  # not there yet: hidden from the start
            self._last = values
            self.frames_present += 1
            self._append(time_s, VISIBLE, values)
        elif self._last_row[1] == VISIBLE:
            self._append(time_s, HIDDEN, self._last)

    def finish(self, end_s: float) -> None:
        """A last keyframe at the video's end (as it was on the last frame), then close the file."""
        self._append(end_s, self._last_row[1], self._last)
        self.rows.finish()

    def _append(self, time_s: float, visibility: float, values: np.ndarray) -> None:
        self._last_row = np.concatenate([[time_s, visibility], values])
        self.rows.append(self._last_row)

    @staticmethod
    def usable(person: Person) -> bool:
        raise NotImplementedError

    def pose_row(self, person: Person) -> np.ndarray:
        raise NotImplementedError

    def bind_translations(self) -> np.ndarray:
        """Each joint node's rest translation relative to its parent (J, 3)."""
        raise NotImplementedError

    def bone_pairs(self) -> list[tuple[int, int]]:
        """Joint index pairs (head, tail) drawn as bones."""
        raise NotImplementedError


class SmplTrack(MotionTrack):
    """PHALP/HMR2: SMPL rotations per joint, root translation from the camera translation."""

    rig = "smpl-24"
    joint_names = SMPL_24
    parents = SMPL_PARENTS

    def __init__(self, track_id: int, start_frame: int, video_start_s: float, folder: Path, info: BackendInfo,
                 body: SmplBody | None = None) -> None:  # fmt: skip
        super().__init__(track_id, start_frame, video_start_s, folder, 3 + 4 * len(SMPL_24))
        self._names = info.joint_names_3d
        self._body = body
        self.body_vertices: np.ndarray | None = None  # (V, 3) the body's rest pose, relative to its pelvis
        self._offsets: np.ndarray | None = None
        self._offsets_from_detection = False
        self._pelvis_offset = np.zeros(3)  # SMPL pelvis minus SMPL origin, camera frame
        self._previous_quaternions: np.ndarray | None = None
        self._first_root: np.ndarray | None = None

    @staticmethod
    def usable(person: Person) -> bool:
        return (
            person.smpl is not None
            and person.camera_translation is not None
            and person.joints_3d is not None
            and bool(np.all(np.isfinite(person.camera_translation)))
        )

    def pose_row(self, person: Person) -> np.ndarray:
        rotations = local_rotations(person.smpl.global_orient, person.smpl.body_pose)
        self._measure_rest_pose(person, rotations)
        quaternions = continuous(quaternions_xyzw(rotations), self._previous_quaternions)
        self._previous_quaternions = quaternions
        # The SMPL origin (camera translation) plus the pelvis offset measured on the person.
        root = GLTF_FROM_CAMERA @ (np.asarray(person.camera_translation, dtype=np.float64) + self._pelvis_offset)
        if self._first_root is None:
            self._first_root = root
        return np.concatenate([root, quaternions.reshape(-1)])

    def _measure_rest_pose(self, person: Person, rotations: np.ndarray) -> None:
        """Bone offsets from the first detected frame (or the first frame, until one is detected).

        With the user's SMPL model the offsets are the model's own rest joints for this person's
        shape, so its mesh and the rig agree; without it they are measured on the person."""
        detected = person.state == "detected"
        if self._offsets is not None and (self._offsets_from_detection or not detected):
            return
        positions = smpl_joint_positions(np.asarray(person.joints_3d, dtype=np.float64), self._names)
        if self._body is None:
            self._offsets = rest_offsets(positions @ GLTF_FROM_CAMERA.T, rotations)
        else:
            vertices, joints = self._body.shaped(person.smpl.betas)
            self._offsets = model_offsets(joints)
            self.body_vertices = vertices - joints[0]
        self._pelvis_offset = positions[0] - np.asarray(person.camera_translation, dtype=np.float64)
        self._offsets_from_detection = detected

    def bind_translations(self) -> np.ndarray:
        translations = self._offsets.copy()
        translations[0] = self._first_root
        return translations

    def bone_pairs(self) -> list[tuple[int, int]]:
        return [(parent, joint) for joint, parent in enumerate(self.parents) if parent >= 0]


class PointTrack(MotionTrack):
    """MediaPipe: each world landmark is a joint node moved by its own translation channel."""

    bones_follow = Follow.ENDS  # joints never turn: a bone stretches between its two ends

    def __init__(self, track_id: int, start_frame: int, video_start_s: float, folder: Path, info: BackendInfo) -> None:
        super().__init__(track_id, start_frame, video_start_s, folder, 3 * len(info.joint_names_3d))
        self.rig = info.keypoint_format or info.name
        self.joint_names = tuple(info.joint_names_3d)
        self.parents = (-1,) * len(self.joint_names)
        self._bind: np.ndarray | None = None

    @staticmethod
    def usable(person: Person) -> bool:
        return person.joints_3d is not None and bool(np.all(np.isfinite(person.joints_3d)))

    def pose_row(self, person: Person) -> np.ndarray:
        points = np.asarray(person.joints_3d, dtype=np.float64) @ GLTF_FROM_CAMERA.T
        if self._bind is None:
            self._bind = points  # rest pose = the first pose seen (what Blender shows in edit mode)
        return points.reshape(-1)

    def bind_translations(self) -> np.ndarray:
        return self._bind

    def bone_pairs(self) -> list[tuple[int, int]]:
        return skeleton_edges(self.joint_names)


def model_offsets(joints: np.ndarray) -> np.ndarray:
    """Each SMPL joint's rest offset from its parent (24, 3), from a body model's rest joints."""
    offsets = np.zeros((len(SMPL_PARENTS), 3))
    for joint, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            offsets[joint] = joints[joint] - joints[parent]
    return offsets


def track_class_for(info: BackendInfo) -> type[MotionTrack]:
    """SMPL rig for backends with SMPL output, landmark joints for any other 3D joint set."""
    names = set(info.joint_names_3d)
    if {"mid_hip", "j19_head_top", "left_big_toe", "right_big_toe"} <= names:
        return SmplTrack
    if names:
        return PointTrack
    raise ValueError(f"backend {info.name!r} reports no 3D joints: there is no motion to export")
