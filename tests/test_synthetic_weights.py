"""``posed bench --synthetic-weights``: the stand-in body model, the support files, and the refusal
where the GPU stack is missing (as here and in CI). Real files, real processes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from daemon.processing.backends.phalp import stand_in_smpl as smpl
from daemon.processing.backends.phalp import synthetic
from daemon.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def body(tmp_path_factory) -> dict:
    """The stand-in as written to disk and read back the way smplx reads an SMPL file."""
    path = smpl.write_body_model(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl")
    with path.open("rb") as handle:
        return pickle.load(handle, encoding="latin1")


def test_the_stand_in_has_smpls_array_shapes(body):
    assert body["v_template"].shape == (6890, 3)
    assert body["f"].shape == (13776, 3) and body["f"].dtype == np.uint32
    assert body["J_regressor"].shape == (24, 6890)
    assert body["J"].shape == (24, 3)
    assert body["weights"].shape == (6890, 24)
    assert body["kintree_table"].shape == (2, 24)
    assert body["shapedirs"].shape == (6890, 3, 10)
    assert body["posedirs"].shape == (6890, 3, 207)
    # smplx flattens posedirs to (207, 20670) for its pose blend shapes
    assert np.reshape(body["posedirs"], [-1, 207]).T.shape == (207, 20670)


def test_the_stand_in_is_a_closed_surface_with_a_valid_skeleton(body):
    faces = body["f"].astype(np.int64)
    assert faces.min() == 0 and faces.max() == 6889 and len(np.unique(faces)) == 6890  # every vertex used
    edges = Counter(tuple(sorted(edge)) for face in faces for edge in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])))
    assert set(edges.values()) == {2}  # each edge between exactly two triangles: closed, manifold
    assert 6890 - len(edges) + 13776 == 2  # Euler characteristic of a sphere, as SMPL's mesh
    parents = body["kintree_table"][0]
    assert parents[0] == smpl.ROOT_PARENT and all(0 <= parents[j] < j for j in range(1, 24))
    np.testing.assert_allclose(body["weights"].sum(axis=1), 1.0)
    np.testing.assert_allclose(body["J_regressor"].sum(axis=1), 1.0)
    assert np.all(body["J_regressor"] >= 0) and np.all(body["weights"] >= 0)
    height = np.ptp(body["v_template"][:, 1])
    assert 1.6 < height < 1.8  # a person-sized body, in metres


def test_the_doctors_smpl_reader_accepts_the_stand_in(tmp_path):
    path = smpl.write_body_model(tmp_path / "SMPL_NEUTRAL.pkl")
    done = subprocess.run([sys.executable, "-m", "daemon.processing.backends.phalp.probe", "--smpl", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (record,) = [r for r in records if r.get("step") == "smpl" and "ok" in r]
    assert record["ok"] and record["has_shapedirs"], done.stderr


def test_the_uv_atlas_puts_every_texel_on_the_triangle_under_it():
    atlas = smpl.uv_atlas(64)
    faces = smpl.sphere_faces().astype(np.int64)
    assert atlas.face.min() >= 0 and atlas.face.max() < smpl.FACES
    np.testing.assert_allclose(atlas.barycentric.sum(axis=2), 1.0, atol=1e-6)
    assert atlas.barycentric.min() >= -1e-6
    # Away from the seam and the poles, mixing the triangle's vertex UVs gives back the texel centre.
    uv = smpl.uv_coordinates()
    centres = (np.arange(64) + 0.5) / 64
    v, u = np.meshgrid(centres, centres, indexing="ij")
    inside = (u < 1 - 1 / smpl.SEGMENTS) & (v > 1 / (smpl.RINGS + 1)) & (v < smpl.RINGS / (smpl.RINGS + 1))
    corners = uv[faces[atlas.face[inside]]]  # (N, 3, 2)
    mixed = np.einsum("nij,ni->nj", corners, atlas.barycentric[inside])
    np.testing.assert_allclose(mixed, np.stack([u[inside], v[inside]], axis=1), atol=1e-6)


@pytest.fixture
def synthetic_cfg(tmp_path):
    return load_config(overrides=synthetic.synthetic_overrides(tmp_path / "cache")).backend.phalp


def test_the_overrides_point_every_model_file_into_the_temporary_cache(tmp_path, synthetic_cfg):
    paths = synthetic.model_paths(synthetic_cfg)
    assert all(str(path).startswith(str(tmp_path / "cache")) for path in paths.values())
    assert synthetic_cfg.max_detections == synthetic.SYNTHETIC_PEOPLE_PER_FRAME
    chosen = synthetic.synthetic_overrides(tmp_path, ["backend.phalp.max_detections=7"])
    assert not any(item.startswith("backend.phalp.max_detections") for item in chosen)  # the user's cap stands


def test_support_files_are_written_in_the_formats_upstream_reads(synthetic_cfg):
    paths = synthetic.model_paths(synthetic_cfg)
    written = synthetic.write_support_files(paths)
    assert sorted(set(paths) - set(written)) == ["detector_maskrcnn", "hmr2_checkpoint", "phalp_hmar_weights", "phalp_pose_predictor_weights"]
    for key in ("phalp_smpl_mean_params", "hmr2_smpl_mean_params"):  # SMPLHead: mean_params['pose'|'shape'|'cam']
        means = np.load(paths[key])
        assert means["pose"].shape == (144,) and means["shape"].shape == (10,) and means["cam"].shape == (3,)
    mean, std = np.load(paths["phalp_mean_std"], allow_pickle=True)  # Pose_transformer_v2's unpacking
    assert mean.shape == std.shape == (1, 229)
    texture = np.load(paths["phalp_texture"])
    assert texture["smpl_faces"].shape == texture["ft"].shape == (13776, 3) and texture["vt"].shape[1] == 2
    assert np.load(paths["phalp_bmap"]).shape == (256, 256, 3) and np.load(paths["phalp_fmap"]).shape == (256, 256)
    for key in ("phalp_smpl_to_j19", "hmr2_smpl_to_j19"):
        with paths[key].open("rb") as handle:
            assert pickle.load(handle, encoding="latin1").shape == (19, 6890)
    hmr2 = yaml.safe_load(paths["hmr2_model_config"].read_text())
    assert hmr2["MODEL"]["BACKBONE"]["TYPE"] == "vit" and hmr2["MODEL"]["SMPL_HEAD"]["TRANSFORMER_DECODER"]["context_dim"] == 1280
    predictor = yaml.safe_load(paths["phalp_pose_predictor_config"].read_text())["configs"]
    assert predictor["extra_feat"]["pose_shape"]["en_dim"] == predictor["in_feat"]  # the transformer's width


def run_posed(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.skipif(not synthetic.missing_gpu_stack(), reason="the GPU stack is installed: the refusal cannot happen here")
def test_without_the_gpu_stack_the_bench_refuses_at_once_naming_what_is_missing(tmp_path):
    done = run_posed("bench", str(tmp_path / "never-opened.mp4"), "backend.name=phalp", f"backend.phalp.cache_dir={tmp_path / 'cache'}",
                     "--synthetic-weights")
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("posed bench: --synthetic-weights builds the real PHALP + HMR 2.0 stack, which is not installed here")
    assert f"(missing: {', '.join(synthetic.missing_gpu_stack())})" in message and "scripts/setup-gpu.sh" in message
    assert not list(tmp_path.iterdir())  # nothing written, the video never opened


def test_synthetic_weights_are_for_the_phalp_backend(tmp_path):
    done = run_posed("bench", str(tmp_path / "never-opened.mp4"), "backend.name=mediapipe", "--synthetic-weights")
    assert done.returncode == 1 and "add backend.name=phalp (configured: 'mediapipe')" in done.stderr


def test_a_forgotten_video_is_named_as_such_before_anything_is_checked_or_written(capsys, tmp_path, monkeypatch):
    from daemon import cli

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = cli.main(["bench", "backend.name=phalp", "--synthetic-weights"])  # the override taken for the video
    assert code == cli.EXIT_FAILED
    assert "posed bench: no such video: backend.name=phalp (the first argument is the video" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no synthetic cache was started


def test_with_the_stack_present_a_missing_video_is_refused_before_any_file_is_written(monkeypatch, capsys, tmp_path):
    from daemon import cli

    monkeypatch.setattr(synthetic, "missing_gpu_stack", lambda: [])  # as on a machine with the GPU stack
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = cli.main(["bench", str(tmp_path / "clip.mp4"), "backend.name=phalp", "--synthetic-weights"])
    assert code == cli.EXIT_FAILED
    assert f"no such video: {tmp_path / 'clip.mp4'}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no synthetic cache was started
