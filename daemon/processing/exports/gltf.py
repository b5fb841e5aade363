"""``<name>.motion.glb``: every track's motion as an animated skeleton (glTF 2.0 binary).

Layout, per track (``<id>`` is the track id, also in each node's ``extras.posed``):

- ``track_<id>``: a group node at the scene root. Its scale is animated with STEP
  interpolation: 1 while the person is in the frame, 0 while absent (hidden, not frozen).
- its joint nodes ``track_<id>_<joint>``: PHALP's SMPL 24-joint hierarchy (root translation and
  joint rotations animated) or MediaPipe's 33 landmarks (translations animated).
- ``track_<id>_skeleton``: the bones and joints as thin solids, a triangle mesh skinned to those
  joints (``bone_solids``), so a stock player animates it: three.js's GLTFLoader +
  AnimationMixer (tested), and any player that skins triangles as glTF specifies (three.js
  and Babylon.js do not skin LINES).
- ``track_<id>_body`` (PHALP, ``output.motion_mesh`` with the user's SMPL file): the SMPL body
  for the track's shape, a triangle mesh skinned to the same joints (``smpl_mesh``). Every
  player skins it, three.js included. Faces and skin weights are shared by all tracks.

Names use ``_`` only: three.js strips ``/ . : [ ]`` from node names (animation binding syntax).

One animation, ``motion``, holds every channel; its keyframes sit at the frames' own timestamps
(variable frame rates stay exact) plus one at the video's end, so the clip lasts as long as the
video (``motion_tracks`` says which frames get keyframes). Axes: x right, y up, z towards the viewer, metres (the camera frame turned 180 degrees
about x; see ``smpl_rig``). Keyframes stream to temporary files under a hidden folder next to
the target and are assembled at ``close``: memory does not grow with the video's length.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib

from daemon.processing.exports.base import ExportError, Exporter, ExportedFile, describe_file, fsync_file, remove_quietly
from daemon.processing.exports.bone_solids import skeleton_solids
from daemon.processing.exports.channels import RecordFile
from daemon.processing.exports.glb_writer import StreamedGlb
from daemon.processing.exports.motion_tracks import MotionTrack, SmplTrack, track_class_for
from daemon.processing.exports.smpl_mesh import SmplBody, load_smpl_body, vertex_normals
from daemon.records import BackendInfo, FrameResult, VideoMeta

KIND = "motion-gltf"
SUFFIX = ".motion.glb"
AXES = "x right, y up, z towards the viewer (camera frame turned 180 degrees about x), metres"
FALLBACK_FRAME_S = 1 / 30  # last frame's length when the video states no frame rate
TRACK_COLOURS = ((0.10, 0.85, 0.35), (0.95, 0.55, 0.10), (0.20, 0.55, 1.00), (0.90, 0.20, 0.70), (0.95, 0.90, 0.15))
FLOAT, UBYTE, USHORT = pygltflib.FLOAT, pygltflib.UNSIGNED_BYTE, pygltflib.UNSIGNED_SHORT


class GltfExporter(Exporter):
    """Streams ``FrameResult``s into an animated skeleton per track; writes the GLB at ``close``."""

    kind = KIND

    def __init__(self, target: Path, smpl_model: Path | None = None) -> None:
        super().__init__(target)
        self._smpl_model = smpl_model  # the user's SMPL file when a body mesh is asked for
        self._body: SmplBody | None = None
        self._folder: Path | None = None
        self._tracks: dict[int, MotionTrack] = {}
        self._last_times: list[float] = []
        self._frames = 0

    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        try:
            self._track_class = track_class_for(info)
        except ValueError as exc:
            raise ExportError(f"cannot export motion: {exc}") from exc
        self._meta, self._info = meta, info
        if self._smpl_model is not None:
            self._body = self._load_body(self._smpl_model)
        # The result's temp prefix and owner tag (see PreviewExporter): found by discard and sweep.
        self._folder = Path(tempfile.mkdtemp(prefix=f"{self.target.name}.rows-", dir=self.target.parent))

    def _load_body(self, path: Path) -> SmplBody | None:
        """The body mesh is a part of the export: without it the skeletons still go out, with a warning."""
        if self._track_class is not SmplTrack:
            self.warnings.append(f"the motion export has no body mesh: backend {self._info.name!r} has no SMPL output")
            return None
        try:
            return load_smpl_body(path)
        except ExportError as exc:
            self.warnings.append(f"the motion export has no body mesh: {exc}")
            return None

    def write(self, result: FrameResult) -> None:
        if self._folder is None:
            raise ExportError("GltfExporter.write before start (or after close/abort)")
        if self._last_times and result.timestamp_s <= self._last_times[-1]:
            raise ExportError(f"frame {result.index}: timestamp {result.timestamp_s} does not increase; keyframes need order")
        present = {person.track_id: person for person in result.people}
        if not self._last_times:
            self._video_start_s = result.timestamp_s
        for track_id, person in present.items():
            if track_id not in self._tracks and self._track_class.usable(person):
                self._tracks[track_id] = self._new_track(track_id)
        for track_id, track in self._tracks.items():
            track.write(present.get(track_id), result.timestamp_s)
        self._last_times = (self._last_times + [result.timestamp_s])[-2:]
        self._frames += 1

    def _new_track(self, track_id: int) -> MotionTrack:
        arguments = (track_id, self._frames, self._video_start_s, self._folder, self._info)
        return SmplTrack(*arguments, body=self._body) if self._track_class is SmplTrack else self._track_class(*arguments)

    def close(self) -> ExportedFile:
        if self._folder is None or self._frames == 0:
            self.abort()
            raise ExportError("no frames were written: there is no motion to export")
        if not self._tracks:
            self.abort()
            raise ExportError(f"nobody was tracked in {self._frames} frames: there is no motion to export")
        try:
            end = self._end_time()
            for track in self._tracks.values():
                track.finish(end)
            document = _Document(self._frames, end, self._body)
            for number, track in enumerate(self._tracks.values()):
                document.add_track(track, TRACK_COLOURS[number % len(TRACK_COLOURS)], self._info.name)
            document.finish(self._info, self._meta)
            document.glb.write(self.target)
            fsync_file(self.target)
            details = {
                "frames": self._frames,
                "duration_s": round(end, 6),
                "tracks": sorted(self._tracks),
                "rig": self._track_class.rig if self._track_class is SmplTrack else self._info.keypoint_format,
                "axes": AXES,
                "mesh": "smpl" if document.has_bodies else None,
            }
            return describe_file(self.target, KIND, details)
        except BaseException:
            remove_quietly(self.target)
            raise
        finally:
            self._remove_temporaries()

    def abort(self) -> None:
        self._remove_temporaries()
        remove_quietly(self.target)

    def _end_time(self) -> float:
        """The video's end: start of the last frame plus its length (as the result's duration_s)."""
        fps = self._meta.nominal_fps
        if fps > 0:
            step = 1.0 / fps
        elif len(self._last_times) == 2:
            step = self._last_times[1] - self._last_times[0]
        else:
            step = FALLBACK_FRAME_S
        return self._last_times[-1] + step

    def _remove_temporaries(self) -> None:
        for track in self._tracks.values():
            track.rows.remove()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class _Document:
    """The glTF mapping: nodes, skins, line meshes and animation channels for each track."""

    def __init__(self, frames: int, end_time_s: float, body: SmplBody | None = None) -> None:
        self.glb = StreamedGlb()
        self._body = body
        self._body_shared: dict[str, int] | None = None  # accessors every track's body mesh reuses
        self.has_bodies = False
        self._frames = frames
        self._channels: list[pygltflib.AnimationChannel] = []
        self._samplers: list[pygltflib.AnimationSampler] = []
        self._scene_nodes: list[int] = []
        self._end = end_time_s

    def add_track(self, track: MotionTrack, colour: tuple[float, float, float], backend: str) -> None:
        tag = {"posed": {"track_id": track.track_id, "backend": backend, "rig": track.rig,
                         "first_frame": track.start_frame, "hidden_when": "this node's scale is 0"}}  # fmt: skip
        joints = self._joint_nodes(track)
        roots = [joint for joint, parent in zip(joints, track.parents) if parent < 0]
        group = self.glb.add_node(pygltflib.Node(name=f"track_{track.track_id}", children=roots, extras=tag))
        skin = self._skin(track, joints, group)
        mesh = self._skeleton_mesh(track, colour)
        skeleton = self.glb.add_node(pygltflib.Node(name=f"track_{track.track_id}_skeleton", mesh=mesh, skin=skin, extras=tag))
        self._scene_nodes += [group, skeleton]
        if track.body_vertices is not None:
            body = self._body_mesh(track, colour)
            self._scene_nodes.append(self.glb.add_node(pygltflib.Node(name=f"track_{track.track_id}_body", mesh=body, skin=skin, extras=tag)))
            self.has_bodies = True
        self._animate(track, group, joints)

    def _joint_nodes(self, track: MotionTrack) -> list[int]:
        translations = track.bind_translations()
        nodes = [
            self.glb.add_node(pygltflib.Node(name=f"track_{track.track_id}_{name}", translation=[float(v) for v in translations[i]]))
            for i, name in enumerate(track.joint_names)
        ]
        for joint, parent in enumerate(track.parents):
            if parent >= 0:
                self.glb.gltf.nodes[nodes[parent]].children.append(nodes[joint])
        return nodes

    def _skin(self, track: MotionTrack, joints: list[int], group: int) -> int:
        """Bind pose = the rest translations with no rotation; each vertex follows one joint."""
        world = _bind_positions(track)
        inverse_bind = np.zeros((len(joints), 4, 4), dtype="<f4")
        inverse_bind[:] = np.eye(4)
        inverse_bind[:, 3, :3] = -world  # column-major: the translation is the 4th column
        view = self.glb.add_bytes(inverse_bind.tobytes())
        accessor = self.glb.add_accessor(pygltflib.Accessor(bufferView=view, componentType=FLOAT, count=len(joints), type=pygltflib.MAT4))
        self.glb.gltf.skins.append(pygltflib.Skin(name=f"track_{track.track_id}", joints=joints, skeleton=group, inverseBindMatrices=accessor))
        return len(self.glb.gltf.skins) - 1

    def _skeleton_mesh(self, track: MotionTrack, colour: tuple[float, float, float]) -> int:
        """The bones and joints as skinned triangles (``bone_solids``): every player animates them."""
        solids = skeleton_solids(_bind_positions(track), track.bone_pairs(), track.bones_follow)
        attributes = pygltflib.Attributes(
            POSITION=self._vertex_accessor(solids.positions, FLOAT, pygltflib.VEC3, with_range=True),
            NORMAL=self._vertex_accessor(solids.normals, FLOAT, pygltflib.VEC3),
            JOINTS_0=self._vertex_accessor(solids.joints, UBYTE, pygltflib.VEC4),
            WEIGHTS_0=self._vertex_accessor(solids.weights, FLOAT, pygltflib.VEC4),
        )
        material = pygltflib.Material(
            name=f"track_{track.track_id}",
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(baseColorFactor=[*colour, 1.0], metallicFactor=0.0, roughnessFactor=0.6),
        )
        self.glb.gltf.materials.append(material)
        primitive = pygltflib.Primitive(attributes=attributes, mode=pygltflib.TRIANGLES, material=len(self.glb.gltf.materials) - 1)
        self.glb.gltf.meshes.append(pygltflib.Mesh(name=f"track_{track.track_id}_skeleton", primitives=[primitive]))
        return len(self.glb.gltf.meshes) - 1

    def _body_mesh(self, track: MotionTrack, colour: tuple[float, float, float]) -> int:
        """The track's SMPL body in the bind pose (its pelvis at the root's bind position), skinned by SMPL's weights."""
        vertices = track.body_vertices + _bind_positions(track)[0]
        shared = self._shared_body_accessors()
        attributes = pygltflib.Attributes(
            POSITION=self._vertex_accessor(vertices.astype("<f4"), FLOAT, pygltflib.VEC3, with_range=True),
            NORMAL=self._vertex_accessor(vertex_normals(vertices, self._body.faces).astype("<f4"), FLOAT, pygltflib.VEC3),
            JOINTS_0=shared["joints"],
            WEIGHTS_0=shared["weights"],
        )
        material = pygltflib.Material(
            name=f"track_{track.track_id}_body",
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(baseColorFactor=[*colour, 1.0], metallicFactor=0.0, roughnessFactor=0.8),
        )
        self.glb.gltf.materials.append(material)
        primitive = pygltflib.Primitive(attributes=attributes, indices=shared["faces"], mode=pygltflib.TRIANGLES,
                                        material=len(self.glb.gltf.materials) - 1)  # fmt: skip
        self.glb.gltf.meshes.append(pygltflib.Mesh(name=f"track_{track.track_id}_body", primitives=[primitive]))
        return len(self.glb.gltf.meshes) - 1

    def _shared_body_accessors(self) -> dict[str, int]:
        if self._body_shared is None:
            faces = self._body.faces.astype("<u2" if len(self._body.template) < 65536 else "<u4").reshape(-1)
            view = self.glb.add_bytes(faces.tobytes(), target=pygltflib.ELEMENT_ARRAY_BUFFER)
            kind = USHORT if faces.dtype == np.dtype("<u2") else pygltflib.UNSIGNED_INT
            self._body_shared = {
                "faces": self.glb.add_accessor(pygltflib.Accessor(bufferView=view, componentType=kind, count=len(faces), type=pygltflib.SCALAR)),
                "joints": self._vertex_accessor(self._body.skin_joints, UBYTE, pygltflib.VEC4),
                "weights": self._vertex_accessor(self._body.skin_weights.astype("<f4"), FLOAT, pygltflib.VEC4),
            }
        return self._body_shared

    def _vertex_accessor(self, values: np.ndarray, component: int, kind: str, *, with_range: bool = False) -> int:
        view = self.glb.add_bytes(values.tobytes(), target=pygltflib.ARRAY_BUFFER)
        extent: dict[str, Any] = {}
        if with_range:
            extent = {"min": [float(v) for v in values.min(axis=0)], "max": [float(v) for v in values.max(axis=0)]}
        return self.glb.add_accessor(pygltflib.Accessor(bufferView=view, componentType=component, count=len(values), type=kind, **extent))

    def _animate(self, track: MotionTrack, group: int, joints: list[int]) -> None:
        """Row columns: 0 time, 1 visibility, then the pose (SMPL: root translation, 24 rotations)."""
        rows = track.rows
        low, high = rows.column_range(0, 1)
        times_view, count = self._column_view(rows, 0, 1)
        times = self.glb.add_accessor(
            pygltflib.Accessor(bufferView=times_view, componentType=FLOAT, count=count, type=pygltflib.SCALAR, min=low, max=high)
        )
        scale_view = self.glb.add_view(12 * count, lambda: (_repeat3(chunk) for chunk in rows.column_bytes(1, 2)))
        self._channel(group, "scale", times, scale_view, count, pygltflib.VEC3, "STEP")
        if isinstance(track, SmplTrack):
            self._channel(joints[0], "translation", times, *self._column_view(rows, 2, 3), pygltflib.VEC3)
            for i, node in enumerate(joints):
                self._channel(node, "rotation", times, *self._column_view(rows, 5 + 4 * i, 4), pygltflib.VEC4)
        else:
            for i, node in enumerate(joints):
                self._channel(node, "translation", times, *self._column_view(rows, 2 + 3 * i, 3), pygltflib.VEC3)

    def _column_view(self, rows: RecordFile, start: int, width: int) -> tuple[int, int]:
        view = self.glb.add_view(4 * width * rows.rows, lambda: rows.column_bytes(start, start + width))
        return view, rows.rows

    def _channel(self, node: int, path: str, times: int, view: int, count: int, kind: str, interpolation: str = "LINEAR") -> None:
        output = self.glb.add_accessor(pygltflib.Accessor(bufferView=view, componentType=FLOAT, count=count, type=kind))
        self._samplers.append(pygltflib.AnimationSampler(input=times, output=output, interpolation=interpolation))
        target = pygltflib.AnimationChannelTarget(node=node, path=path)
        self._channels.append(pygltflib.AnimationChannel(sampler=len(self._samplers) - 1, target=target))

    def finish(self, info: BackendInfo, meta: VideoMeta) -> None:
        gltf = self.glb.gltf
        gltf.animations = [pygltflib.Animation(name="motion", channels=self._channels, samplers=self._samplers,
                                               extras={"frames": self._frames, "duration_s": round(self._end, 6)})]  # fmt: skip
        gltf.scenes = [pygltflib.Scene(name="posed motion", nodes=self._scene_nodes)]
        gltf.scene = 0
        gltf.asset.extras = {
            "posed": {"backend": info.name, "model_version": info.model_version, "axes": AXES, "units": "metres",
                      "video": {"width": meta.width, "height": meta.height, "frames": self._frames, "duration_s": round(self._end, 6)}}
        }  # fmt: skip


def _bind_positions(track: MotionTrack) -> np.ndarray:
    """World position of each joint in the bind pose (rest translations, no rotations)."""
    local = track.bind_translations()
    world = np.zeros_like(local)
    for joint, parent in enumerate(track.parents):
        world[joint] = local[joint] + (world[parent] if parent >= 0 else 0.0)
    return world


def _repeat3(column: bytes) -> bytes:
    """A visibility column (one float per frame) as a uniform VEC3 scale per frame."""
    return np.repeat(np.frombuffer(column, dtype="<f4"), 3).tobytes()
