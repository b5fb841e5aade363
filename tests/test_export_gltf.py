"""The .motion.glb export: Khronos validator, and the numbers in the file against the results.

MediaPipe results come from the real CPU backend over running-1080p.mp4; PHALP results from the
fake PHALP API through the real driver and converter. The GLB is read back with pygltflib and
its animation evaluated here, independently of the exporter's code.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pygltflib
import pytest

from daemon.processing.exports.base import ExportError
from daemon.processing.exports.gltf import GltfExporter
from daemon.processing.exports.smpl_rig import SMPL_PARENTS, smpl_joint_positions
from daemon.records import FrameResult
from tests.daemon_harness import LONG_CLIP, SHORT_CLIP
from tests.export_support import Processed, export, mediapipe_results, node_tool, phalp_results
from tests.fakes.phalp_api import FakeScene, ScriptedPerson

CAMERA_TO_GLTF = np.array([1.0, -1.0, -1.0])
TRACK_2_VISIBLE = lambda t: 5 <= t < 20 or t >= 30  # noqa: E731


class Glb:
    """A GLB read back: accessors as numpy arrays, nodes by name, the animation's channels."""

    def __init__(self, path) -> None:
        self.gltf = pygltflib.GLTF2.load(str(path))
        self.blob = self.gltf.binary_blob()
        self.nodes = {node.name: index for index, node in enumerate(self.gltf.nodes)}

    def accessor(self, index: int) -> np.ndarray:
        accessor = self.gltf.accessors[index]
        view = self.gltf.bufferViews[accessor.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor.type]
        dtype = {pygltflib.FLOAT: "<f4", pygltflib.UNSIGNED_BYTE: "u1", pygltflib.UNSIGNED_SHORT: "<u2"}[accessor.componentType]
        start = view.byteOffset + (accessor.byteOffset or 0)
        values = np.frombuffer(self.blob, dtype=dtype, count=accessor.count * width, offset=start)
        return values.reshape(accessor.count, width)

    def channel(self, node_name: str, path: str) -> tuple[np.ndarray, np.ndarray, str]:
        animation = self.gltf.animations[0]
        node = self.nodes[node_name]
        for channel in animation.channels:
            if channel.target.node == node and channel.target.path == path:
                sampler = animation.samplers[channel.sampler]
                return self.accessor(sampler.input)[:, 0], self.accessor(sampler.output), sampler.interpolation
        raise KeyError(f"no {path} channel for {node_name}")

    def key_at(self, node_name: str, path: str, time_s: float) -> np.ndarray:
        """The channel's value at ``time_s``, which must be a keyframe time or follow one (STEP)."""
        times, values, _ = self.channel(node_name, path)
        return values[np.searchsorted(times, np.float32(time_s), side="right") - 1]


@pytest.fixture(scope="module")
def mediapipe_glb(tmp_path_factory):
    processed = mediapipe_results(LONG_CLIP)
    exported = export(GltfExporter(tmp_path_factory.mktemp("mp") / "running.motion.glb"), processed)
    return processed, exported


@pytest.fixture(scope="module")
def phalp_glb(tmp_path_factory):
    scene = FakeScene([ScriptedPerson(1, lambda t: True), ScriptedPerson(2, TRACK_2_VISIBLE, center_x=90.0, sway_px=10.0)])
    processed = phalp_results(scene, 45, max_age_track=3)  # track 2 is deleted in the gap, its person returns as 3
    exported = export(GltfExporter(tmp_path_factory.mktemp("phalp") / "scripted.motion.glb"), processed)
    return processed, exported


@pytest.mark.parametrize("which", ["mediapipe_glb", "phalp_glb"])
def test_khronos_validator_reports_no_errors_and_no_warnings(which, request):
    _, exported = request.getfixturevalue(which)
    report = node_tool("validate-gltf.mjs", str(exported.path))
    assert report["numErrors"] == 0, report["messages"]
    assert report["numWarnings"] == 0, report["messages"]
    assert report["info"]["animationCount"] == 1


def test_exported_file_is_described_by_size_and_sha256(mediapipe_glb):
    import hashlib

    processed, exported = mediapipe_glb
    data = exported.path.read_bytes()
    assert (exported.bytes, exported.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    tracked = sorted({person.track_id for result in processed.results for person in result.people})
    assert exported.kind == "motion-gltf" and exported.details["tracks"] == tracked and tracked[0] == 1  # 1: the runner
    assert not [p for p in exported.path.parent.iterdir() if p != exported.path], "temporary files left behind"


def test_mediapipe_landmarks_are_joint_nodes_at_the_frames_timestamps(mediapipe_glb):
    processed, exported = mediapipe_glb
    glb = Glb(exported.path)
    group = glb.gltf.nodes[glb.nodes["track_1"]]
    assert group.extras["posed"]["track_id"] == 1
    times, _, interpolation = glb.channel("track_1_left_knee", "translation")
    end = processed.results[-1].timestamp_s + 1 / processed.meta.nominal_fps
    assert interpolation == "LINEAR"
    assert times[-1] == pytest.approx(end, abs=1e-5)  # the clip lasts as long as the video
    assert times[0] == pytest.approx(processed.results[0].timestamp_s, abs=1e-6)
    knee = processed.info.joint_names_3d.index("left_knee")
    with_person = [r for r in processed.results if r.people and r.people[0].joints_3d is not None]
    assert len(with_person) > 100
    keyed = set(np.round(times, 4))
    for result in with_person:
        assert round(np.float32(result.timestamp_s), 4) in keyed  # a keyframe at every frame with the person
    for result in with_person[::17]:
        position = glb.key_at("track_1_left_knee", "translation", result.timestamp_s)
        assert position == pytest.approx(result.people[0].joints_3d[knee] * CAMERA_TO_GLTF, abs=1e-5)


def test_mediapipe_skeleton_is_skinned_triangles_whose_bones_end_on_the_landmarks(mediapipe_glb):
    """Triangles (every player skins those, three.js included), and skinned by glTF's own rule at
    sampled frames every bone's ends sit on the frame's landmarks: the bones follow the motion."""
    processed, exported = mediapipe_glb
    glb = Glb(exported.path)
    primitive, skin, positions, joints, weights = _skeleton(glb, "track_1")
    assert primitive.mode == pygltflib.TRIANGLES and primitive.indices is None and len(positions) % 3 == 0
    assert len(skin.joints) == 33
    names = processed.info.joint_names_3d
    with_person = [r for r in processed.results if r.people and r.people[0].joints_3d is not None]
    for result in with_person[::29]:
        landmarks = np.asarray(result.people[0].joints_3d) * CAMERA_TO_GLTF
        world = [(np.eye(3), glb.key_at(f"track_1_{name}", "translation", result.timestamp_s)) for name in names]
        skinned = _skin_vertices(glb, skin, positions, joints, weights, world)
        for joint in range(len(names)):
            own = skinned[(joints[:, 0] == joint) & (weights[:, 0] == 1.0)]
            assert np.linalg.norm(own - landmarks[joint], axis=1).min() < 1e-4  # a bone's tip, on the landmark
            assert np.linalg.norm(own - landmarks[joint], axis=1).max() < 0.03  # and the joint's own octahedron
    assert np.ptp(positions, axis=0).max() > 0.5  # a body-sized figure, not a speck


def test_phalp_skeleton_bones_run_from_each_joint_to_its_children(phalp_glb):
    """SMPL bones are rigid to their parent joint: skinned at a frame, some vertex of the parent's
    bone lands on each child joint (forward kinematics of the exported rig, computed here)."""
    processed, exported = phalp_glb
    glb = Glb(exported.path)
    primitive, skin, positions, joints, weights = _skeleton(glb, "track_1")
    assert primitive.mode == pygltflib.TRIANGLES and len(skin.joints) == 24
    assert set(weights[:, 0].tolist()) == {1.0}
    for result in processed.results[::11]:
        if not any(p.track_id == 1 for p in result.people):
            continue
        world = _forward_kinematics(glb, "track_1", result.timestamp_s)
        skinned = _skin_vertices(glb, skin, positions, joints, weights, world)
        for joint, parent in enumerate(SMPL_PARENTS):
            if parent >= 0:
                on_parent = skinned[joints[:, 0] == parent]
                assert np.linalg.norm(on_parent - world[joint][1], axis=1).min() < 1e-4, (result.index, joint)


def test_phalp_track_is_hidden_exactly_while_absent(phalp_glb):
    processed, exported = phalp_glb
    glb = Glb(exported.path)
    _, _, interpolation = glb.channel("track_2", "scale")
    assert interpolation == "STEP"
    present = {r.index for r in processed.results for p in r.people if p.track_id == 2}
    assert present and max(present) < 30 and max(present) + 1 < len(processed.results)
    assert glb.gltf.nodes[glb.nodes["track_3"]].extras["posed"]["first_frame"] >= 30
    for result in processed.results:
        scale = glb.key_at("track_2", "scale", result.timestamp_s)
        assert scale.tolist() == ([1.0] * 3 if result.index in present else [0.0] * 3), result.index
    times, _, _ = glb.channel("track_2", "scale")
    assert len(times) == len(present) + 3  # frames present, video start, first absent frame, video end


def test_phalp_rig_reproduces_the_reported_joints_on_its_reference_frame(phalp_glb):
    """Forward kinematics of the exported SMPL rig at the first detected frame lands on the joints."""
    processed, exported = phalp_glb
    glb = Glb(exported.path)
    reference = next(p for r in processed.results for p in r.people if p.track_id == 1 and p.state == "detected")
    at = next(r.timestamp_s for r in processed.results for p in r.people if p is reference)
    names = [f"track_1_{n}" for n in __import__("daemon.processing.backends.phalp.skeleton", fromlist=["SMPL_24"]).SMPL_24]
    world_rotation, world_position = [], []
    for joint, parent in enumerate(SMPL_PARENTS):
        node = glb.gltf.nodes[glb.nodes[names[joint]]]
        rotation = _matrix(glb.key_at(names[joint], "rotation", at))
        offset = glb.key_at(names[0], "translation", at) if parent < 0 else np.array(node.translation)
        if parent < 0:
            world_rotation.append(rotation)
            world_position.append(offset)
        else:
            world_rotation.append(world_rotation[parent] @ rotation)
            world_position.append(world_position[parent] + world_rotation[parent] @ offset)
    expected = smpl_joint_positions(reference.joints_3d, processed.info.joint_names_3d) * CAMERA_TO_GLTF
    assert np.array(world_position) == pytest.approx(expected, abs=1e-4)
    root = glb.key_at(names[0], "rotation", at)
    assert _matrix(root) == pytest.approx(np.diag(CAMERA_TO_GLTF) @ reference.smpl.global_orient[0], abs=1e-4)


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    """Keyframes stream to disk while writing; closing copies them out in bounded chunks."""
    base = mediapipe_results(SHORT_CLIP)

    def peaks(frames: int) -> tuple[int, int]:
        exporter = GltfExporter(tmp_path / f"{frames}.motion.glb")
        exporter.start(base.meta, base.info)
        tracemalloc.start()
        for index in range(frames):
            source = base.results[index % len(base.results)]
            exporter.write(replace(source, index=index, timestamp_s=index / 30.0))
        writing = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        exporter.close()
        closing = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return writing, closing

    short, long = peaks(3000), peaks(12000)
    print(f"\ntraced peaks (write, close): {short} B for 3000 frames, {long} B for 12000 frames")
    assert long[0] < 1.1 * short[0] + 100_000
    assert long[1] < 1.1 * short[1] + 100_000  # four times the frames, not four times the memory


def test_abort_removes_the_target_and_every_temporary_file(tmp_path):
    processed = mediapipe_results(SHORT_CLIP)
    exporter = GltfExporter(tmp_path / "x.motion.glb")
    exporter.start(processed.meta, processed.info)
    for result in processed.results[:20]:
        exporter.write(result)
    assert any(tmp_path.iterdir())
    exporter.abort()
    assert list(tmp_path.iterdir()) == []


def test_clear_errors_for_unusable_input(tmp_path):
    processed = mediapipe_results(SHORT_CLIP)
    exporter = GltfExporter(tmp_path / "x.motion.glb")
    exporter.start(processed.meta, processed.info)
    exporter.write(processed.results[5])
    with pytest.raises(ExportError, match="does not increase"):
        exporter.write(FrameResult(index=6, timestamp_s=processed.results[4].timestamp_s, people=[]))
    exporter.abort()
    nobody = GltfExporter(tmp_path / "z.motion.glb")
    nobody.start(processed.meta, processed.info)
    nobody.write(FrameResult(index=0, timestamp_s=0.0, people=[]))
    with pytest.raises(ExportError, match="nobody was tracked"):
        nobody.close()
    assert list(tmp_path.iterdir()) == []
    no_3d = Processed(processed.meta, replace(processed.info, joint_names_3d=()), processed.results)
    with pytest.raises(ExportError, match="no 3D joints"):
        GltfExporter(tmp_path / "y.motion.glb").start(no_3d.meta, no_3d.info)


def _skeleton(glb: Glb, track: str):
    node = glb.gltf.nodes[glb.nodes[f"{track}_skeleton"]]
    primitive = glb.gltf.meshes[node.mesh].primitives[0]
    attributes = primitive.attributes
    positions, joints, weights = (glb.accessor(a) for a in (attributes.POSITION, attributes.JOINTS_0, attributes.WEIGHTS_0))
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    return primitive, glb.gltf.skins[node.skin], positions.astype(np.float64), joints, weights


def _skin_vertices(glb: Glb, skin, positions, joints, weights, world) -> np.ndarray:
    """glTF skinning: sum of weight * joint world matrix * inverse bind matrix * vertex."""
    inverse_bind = glb.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # stored column-major
    matrices = []
    for (rotation, position), inverse in zip(world, inverse_bind):
        joint_world = np.eye(4)
        joint_world[:3, :3], joint_world[:3, 3] = rotation, position
        matrices.append(joint_world @ inverse)
    matrices = np.array(matrices)
    homogeneous = np.concatenate([positions, np.ones((len(positions), 1))], axis=1)
    out = np.zeros((len(positions), 3))
    for slot in range(4):
        out += weights[:, slot : slot + 1] * np.einsum("nij,nj->ni", matrices[joints[:, slot]], homogeneous)[:, :3]
    return out


def _forward_kinematics(glb: Glb, track: str, at: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """World rotation and position of each SMPL joint node at ``at`` (the group node is identity while shown)."""
    names = [f"{track}_{n}" for n in __import__("daemon.processing.backends.phalp.skeleton", fromlist=["SMPL_24"]).SMPL_24]
    world: list[tuple[np.ndarray, np.ndarray]] = []
    for joint, parent in enumerate(SMPL_PARENTS):
        rotation = _matrix(glb.key_at(names[joint], "rotation", at))
        if parent < 0:
            world.append((rotation, glb.key_at(names[0], "translation", at).astype(np.float64)))
        else:
            offset = np.array(glb.gltf.nodes[glb.nodes[names[joint]]].translation)
            world.append((world[parent][0] @ rotation, world[parent][1] + world[parent][0] @ offset))
    return world


def _matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
