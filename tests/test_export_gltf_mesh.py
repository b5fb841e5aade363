"""The SMPL body in the motion GLB: each PHALP track's body, skinned to its rig, from the user's own
SMPL file (never shipped: the tests write the generated stand-in with SMPL's shapes and fields).

The skinned vertices are evaluated twice, independently: the way a glTF player does (node
transforms from the animation, inverse bind matrices, JOINTS_0/WEIGHTS_0 read back from the file)
and the way SMPL does (linear blend skinning of the shaped template with the person's own
rotations, straight from the results and the model file). They must agree.
"""

from __future__ import annotations

import pickle

import numpy as np
import pygltflib
import pytest
import scipy.sparse

from daemon.config import PosedConfig
from daemon.processing.backends.phalp.skeleton import SMPL_24
from daemon.processing.backends.phalp.stand_in_smpl import FACES, VERTICES, stand_in_body_model, write_body_model
from daemon.processing.exports.gltf import GltfExporter
from daemon.processing.exports.job_exports import JobExports
from daemon.processing.exports.smpl_mesh import load_smpl_body
from daemon.processing.exports.smpl_rig import SMPL_PARENTS, smpl_joint_positions
from daemon.records import JobOptions
from tests.daemon_harness import SHORT_CLIP
from tests.export_support import export, mediapipe_results, node_tool, phalp_results
from tests.fakes.phalp_api import FakeScene, ScriptedPerson
from tests.test_export_gltf import Glb, _matrix

CAMERA_TO_GLTF = np.diag([1.0, -1.0, -1.0])
TRACK_2_VISIBLE = lambda t: 5 <= t < 20  # noqa: E731


@pytest.fixture(scope="module")
def smpl_file(tmp_path_factory):
    return write_body_model(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def scripted():
    scene = FakeScene([ScriptedPerson(1, lambda t: True, sway_px=25.0), ScriptedPerson(2, TRACK_2_VISIBLE, center_x=90.0, sway_px=10.0)])
    return phalp_results(scene, 45, max_age_track=3)


@pytest.fixture(scope="module")
def bodies_glb(tmp_path_factory, scripted, smpl_file):
    exporter = GltfExporter(tmp_path_factory.mktemp("bodies") / "scripted.motion.glb", smpl_file)
    exported = export(exporter, scripted)
    assert exporter.warnings == []
    return exported


def test_khronos_validator_accepts_the_skinned_bodies(bodies_glb):
    report = node_tool("validate-gltf.mjs", str(bodies_glb.path))
    assert report["numErrors"] == 0, report["messages"]
    assert report["numWarnings"] == 0, report["messages"]
    assert bodies_glb.details["mesh"] == "smpl"


def test_each_track_has_a_triangle_body_sharing_faces_and_weights(bodies_glb):
    glb = Glb(bodies_glb.path)
    bodies = {name: glb.gltf.nodes[index] for name, index in glb.nodes.items() if name.endswith("_body")}
    assert sorted(bodies) == ["track_1_body", "track_2_body"]
    primitives = [glb.gltf.meshes[node.mesh].primitives[0] for node in bodies.values()]
    for node, primitive in zip(bodies.values(), primitives):
        assert primitive.mode == pygltflib.TRIANGLES
        assert glb.gltf.accessors[primitive.indices].count == 3 * FACES
        assert glb.gltf.accessors[primitive.attributes.POSITION].count == VERTICES
        skeleton = glb.gltf.nodes[glb.nodes[node.name.replace("_body", "_skeleton")]]
        assert node.skin == skeleton.skin  # the body follows the same 24 joints as the skeleton
        assert node.extras["posed"]["track_id"] == int(node.name.split("_")[1])
    a, b = primitives
    assert (a.indices, a.attributes.JOINTS_0, a.attributes.WEIGHTS_0) == (b.indices, b.attributes.JOINTS_0, b.attributes.WEIGHTS_0)
    assert a.attributes.POSITION != b.attributes.POSITION
    weights = glb.accessor(a.attributes.WEIGHTS_0)
    assert weights.sum(axis=1) == pytest.approx(np.ones(VERTICES), abs=1e-6)


def test_skinned_vertices_match_smpl_linear_blend_skinning(bodies_glb, scripted, smpl_file):
    """At every frame of track 1: the glTF skin lands each vertex where SMPL's LBS puts it."""
    glb = Glb(bodies_glb.path)
    model = stand_in_body_model()
    reference = next(p for r in scripted.results for p in r.people if p.track_id == 1 and p.state == "detected")
    checked = 0
    for result in scripted.results[::4]:
        person = next(p for p in result.people if p.track_id == 1)
        from_gltf = skinned_vertices(glb, 1, result.timestamp_s)
        by_smpl = smpl_skinning(model, person, reference, scripted.info.joint_names_3d)
        assert np.abs(from_gltf - by_smpl).max() < 1e-4, result.index
        checked += 1
    assert checked >= 10


def test_an_absent_track_body_collapses_instead_of_freezing(bodies_glb, scripted):
    glb = Glb(bodies_glb.path)
    absent = [r for r in scripted.results if not any(p.track_id == 2 for p in r.people)]
    present = [r for r in scripted.results if any(p.track_id == 2 for p in r.people)]
    assert absent and present
    for result in (absent[0], absent[-1]):
        vertices = skinned_vertices(glb, 2, result.timestamp_s)
        assert np.ptp(vertices, axis=0).max() < 1e-6, result.index  # every vertex on one point: nothing shown
    shown = skinned_vertices(glb, 2, present[3].timestamp_s)
    assert np.ptp(shown, axis=0).max() > 0.5  # a body-sized extent while present


def test_the_original_smpl_layout_with_a_sparse_regressor_loads(tmp_path):
    """The licensed file keeps J_regressor as a scipy sparse matrix; chumpy arrays expose ``.r``."""
    fields = stand_in_body_model()
    fields["J_regressor"] = scipy.sparse.csc_matrix(fields["J_regressor"])
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(pickle.dumps(fields, protocol=2))
    body = load_smpl_body(path)
    assert body.joint_regressor.shape == (24, VERTICES) and body.faces.shape == (FACES, 3)
    assert body.skin_joints.shape == (VERTICES, 4) and body.skin_joints.max() < 24


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no SMPL model file at"),
        (b"not a pickle", "is not a readable SMPL model file"),
        (pickle.dumps({"v_template": np.zeros((10, 3))}), "is not an SMPL model with 24 joints"),
    ],
)
def test_without_a_usable_smpl_file_the_glb_keeps_its_skeletons_and_says_why(tmp_path, scripted, content, expected):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    if content is not None:
        path.write_bytes(content)
    exporter = GltfExporter(tmp_path / "out" / "x.motion.glb", path)
    (tmp_path / "out").mkdir()
    exported = export(exporter, scripted)
    assert exported.details["mesh"] is None and exported.details["tracks"] == [1, 2]
    assert len(exporter.warnings) == 1 and expected in exporter.warnings[0] and str(path) in exporter.warnings[0]
    assert not any(name.endswith("_body") for name in Glb(exported.path).nodes)


def test_a_backend_without_smpl_gets_its_landmark_skeleton_and_a_warning(tmp_path, smpl_file):
    exporter = GltfExporter(tmp_path / "mp.motion.glb", smpl_file)
    exported = export(exporter, mediapipe_results(SHORT_CLIP))
    assert exported.details["mesh"] is None
    assert exporter.warnings == ["the motion export has no body mesh: backend 'mediapipe' has no SMPL output"]


def test_job_exports_read_the_smpl_path_and_report_a_missing_mesh_as_a_warning_not_a_failure(tmp_path, scripted, smpl_file):
    def run(smpl_path) -> tuple[JobExports, dict]:
        cfg = PosedConfig()
        cfg.backend.phalp.smpl_path = str(smpl_path)
        exports = JobExports.for_job(JobOptions(motion_glb=True, motion_mesh=True), tmp_path / f"{smpl_path.name}.result.json", cfg)
        exports.start(scripted.meta, scripted.info)
        for result in scripted.results:
            exports.write(result)
        return exports, exports.close()

    exports, files = run(smpl_file)
    assert files["motion"]["details"]["mesh"] == "smpl" and exports.warnings == []
    exports, files = run(tmp_path / "missing.pkl")
    assert files["motion"]["details"]["mesh"] is None and exports.summary(files) == {"made": ["motion"], "failed": 0}
    assert len(exports.warnings) == 1 and "missing.pkl" in exports.warnings[0]


def skinned_vertices(glb: Glb, track: int, time_s: float) -> np.ndarray:
    """glTF skinning: sum of weight x (joint world matrix @ inverse bind matrix) @ bind position."""
    node = glb.gltf.nodes[glb.nodes[f"track_{track}_body"]]
    primitive = glb.gltf.meshes[node.mesh].primitives[0]
    skin = glb.gltf.skins[node.skin]
    inverse_bind = glb.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    worlds = joint_world_matrices(glb, track, time_s)
    skinning = np.einsum("jab,jbc->jac", worlds, inverse_bind.astype(np.float64))
    bind = glb.accessor(primitive.attributes.POSITION).astype(np.float64)
    joints = glb.accessor(primitive.attributes.JOINTS_0).astype(int)
    weights = glb.accessor(primitive.attributes.WEIGHTS_0).astype(np.float64)
    homogeneous = np.concatenate([bind, np.ones((len(bind), 1))], axis=1)
    blended = np.einsum("vk,vkab->vab", weights, skinning[joints])
    return np.einsum("vab,vb->va", blended, homogeneous)[:, :3]


def joint_world_matrices(glb: Glb, track: int, time_s: float) -> np.ndarray:
    """(24, 4, 4) world matrices of a track's joints at a keyframe time (group scale included)."""
    scale = glb.key_at(f"track_{track}", "scale", time_s)
    group = np.diag([*scale, 1.0])
    worlds = []
    for joint, parent in enumerate(SMPL_PARENTS):
        name = f"track_{track}_{SMPL_24[joint]}"
        local = np.eye(4)
        local[:3, :3] = _matrix(glb.key_at(name, "rotation", time_s))
        local[:3, 3] = glb.key_at(name, "translation", time_s) if parent < 0 else glb.gltf.nodes[glb.nodes[name]].translation
        worlds.append((group if parent < 0 else worlds[parent]) @ local)
    return np.array(worlds)


def smpl_skinning(model: dict, person, reference, joint_names) -> np.ndarray:
    """SMPL's LBS (no pose correctives) of the shape fixed at ``reference``, posed as ``person``,
    with the 4 strongest weights per vertex (what glTF can carry), in the glTF frame."""
    vertices = model["v_template"] + model["shapedirs"] @ np.asarray(reference.smpl.betas, dtype=np.float64)
    joints = model["J_regressor"] @ vertices
    rotations = np.concatenate([np.asarray(person.smpl.global_orient).reshape(1, 3, 3), np.asarray(person.smpl.body_pose).reshape(23, 3, 3)])
    rotations = rotations.astype(np.float64)
    rotations[0] = CAMERA_TO_GLTF @ rotations[0]
    pelvis_offset = smpl_joint_positions(np.asarray(reference.joints_3d, float), joint_names)[0] - reference.camera_translation
    world_rotation, world_position = [], []
    for joint, parent in enumerate(SMPL_PARENTS):
        if parent < 0:
            world_rotation.append(rotations[0])
            world_position.append(CAMERA_TO_GLTF @ (np.asarray(person.camera_translation, float) + pelvis_offset))
        else:
            world_rotation.append(world_rotation[parent] @ rotations[joint])
            world_position.append(world_position[parent] + world_rotation[parent] @ (joints[joint] - joints[parent]))
    order = np.argsort(-model["weights"], axis=1, kind="stable")[:, :4]
    weights = np.take_along_axis(model["weights"], order, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    posed = np.zeros_like(vertices)
    for k in range(4):
        chosen = order[:, k]
        moved = np.einsum("vab,vb->va", np.array(world_rotation)[chosen], vertices - joints[chosen]) + np.array(world_position)[chosen]
        posed += weights[:, k : k + 1] * moved
    return posed

