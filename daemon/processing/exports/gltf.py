"""``<name>.motion.glb``: every track's motion as an animated skeleton (glTF 2.0 binary).

Layout, per track (``<id>`` is the track id, also in each node's ``extras.posed``):

- ``track_<id>``: a group node at the scene root. Its scale is animated with STEP
  interpolation: 1 while the person is in the frame, 0 while absent (hidden, not frozen).
- its joint nodes ``track_<id>_<joint>``: PHALP's SMPL 24-joint hierarchy (root translation and
  joint rotations animated) or MediaPipe's 33 landmarks (translations animated).
- ``track_<id>_skeleton``: a LINES mesh skinned to those joints, one vertex per joint, bones as
  segments. Blender skins it; three.js's GLTFLoader skins only triangles, so
  examples/viewer.html draws the segments between the joints itself (``followSkinnedLines``).

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
from daemon.processing.exports.channels import RecordFile
from daemon.processing.exports.glb_writer import StreamedGlb
from daemon.processing.exports.motion_tracks import MotionTrack, SmplTrack, track_class_for
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

    def __init__(self, target: Path) -> None:
        super().__init__(target)
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
        self._folder = Path(tempfile.mkdtemp(prefix=".motion-", dir=self.target.parent))

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
                self._tracks[track_id] = self._track_class(track_id, self._frames, self._video_start_s, self._folder, self._info)
        for track_id, track in self._tracks.items():
            track.write(present.get(track_id), result.timestamp_s)
        self._last_times = (self._last_times + [result.timestamp_s])[-2:]
        self._frames += 1

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
            document = _Document(self._frames, end)
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

    def __init__(self, frames: int, end_time_s: float) -> None:
        self.glb = StreamedGlb()
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
        mesh = self._line_mesh(track, colour)
        skeleton = self.glb.add_node(pygltflib.Node(name=f"track_{track.track_id}_skeleton", mesh=mesh, skin=skin, extras=tag))
        self._scene_nodes += [group, skeleton]
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

    def _line_mesh(self, track: MotionTrack, colour: tuple[float, float, float]) -> int:
        world = _bind_positions(track).astype("<f4")
        count = len(world)
        joints = np.zeros((count, 4), dtype=np.uint8)
        joints[:, 0] = np.arange(count)
        weights = np.zeros((count, 4), dtype="<f4")
        weights[:, 0] = 1.0
        indices = np.array(track.bone_pairs(), dtype="<u2").reshape(-1)
        attributes = pygltflib.Attributes(
            POSITION=self._vertex_accessor(world, FLOAT, pygltflib.VEC3, with_range=True),
            JOINTS_0=self._vertex_accessor(joints, UBYTE, pygltflib.VEC4),
            WEIGHTS_0=self._vertex_accessor(weights, FLOAT, pygltflib.VEC4),
        )
        index_view = self.glb.add_bytes(indices.tobytes(), target=pygltflib.ELEMENT_ARRAY_BUFFER)
        index_accessor = self.glb.add_accessor(
            pygltflib.Accessor(bufferView=index_view, componentType=USHORT, count=len(indices), type=pygltflib.SCALAR)
        )
        material = pygltflib.Material(
            name=f"track_{track.track_id}",
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(baseColorFactor=[*colour, 1.0], metallicFactor=0.0, roughnessFactor=1.0),
        )
        self.glb.gltf.materials.append(material)
        material_index = len(self.glb.gltf.materials) - 1
        primitive = pygltflib.Primitive(attributes=attributes, indices=index_accessor, mode=pygltflib.LINES, material=material_index)
        self.glb.gltf.meshes.append(pygltflib.Mesh(name=f"track_{track.track_id}_skeleton", primitives=[primitive]))
        return len(self.glb.gltf.meshes) - 1

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
