"""scripts/fetch-models.sh: atomic, verified downloads driven by the model list (file:// URLs)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

import numpy as np

from daemon.processing.backends.phalp import smpl_file, stand_in_smpl
from daemon.processing.backends.phalp.manifest import load_manifest
from daemon.config import load_config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_models.py"


@pytest.fixture(scope="module")
def fetch():
    spec = importlib.util.spec_from_file_location("fetch_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve(tmp_path: Path, name: str, content: bytes) -> str:
    source = tmp_path / "server" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(content)
    return source.as_uri()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _setup(tmp_path: Path, *, good_sha: bool = True) -> list[str]:
    weights = b"weights" * 1000
    archive = _tar_gz({"./logs/model.ckpt": b"ckpt", "data/mean.npz": b"mean", "../evil": b"x", "other": b"y"})
    sha = hashlib.sha256(weights).hexdigest() if good_sha else "0" * 64
    missing = (tmp_path / "server" / "moved-away.pth").as_uri()  # the first mirror is dead: try the next
    (tmp_path / "models.yaml").write_text(
        f"""
files:
  - {{key: weights, root: phalp_cache_dir, path: w/weights.pth, urls: [{missing}, {_serve(tmp_path, 'weights.pth', weights)}], bytes: {len(weights)}, sha256: "{sha}"}}
  - {{key: ckpt, root: hmr2_cache_dir, path: logs/model.ckpt, archive: bundle}}
  - {{key: mean, root: hmr2_cache_dir, path: data/mean.npz, archive: bundle}}
  - {{key: vit, detector: vitdet, root: detectron2_cache_dir, path: vit.pkl, urls: [{_serve(tmp_path, 'vit.pkl', b'big')}]}}
archives:
  bundle: {{root: hmr2_cache_dir, urls: [{_serve(tmp_path, 'bundle.tar.gz', archive)}]}}
smpl: {{key: smpl_neutral, config_key: backend.phalp.smpl_path, how_to_get: register at the SMPL site}}
"""
    )
    return [f"backend.phalp.cache_dir={tmp_path / 'cache'}", f"backend.phalp.models_manifest={tmp_path / 'models.yaml'}"]


def test_every_file_lands_verified_and_the_archive_yields_only_listed_members(fetch, tmp_path, capsys):
    overrides = _setup(tmp_path)
    smpl = tmp_path / "Downloads" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    stand_in_smpl.write_body_model(smpl)  # SMPL's fields and shapes, plain numpy
    assert fetch.main(["--smpl", str(smpl), *overrides]) == 0
    cfg = load_config(overrides=overrides).backend.phalp
    files = {f.key: f.path for f in load_manifest(cfg).files}
    assert files["weights"].read_bytes() == b"weights" * 1000
    assert files["ckpt"].read_bytes() == b"ckpt" and files["mean"].read_bytes() == b"mean"
    converted, original = smpl_file.read_smpl(files["smpl_neutral"]), smpl_file.read_smpl(smpl)
    assert converted.keys() == original.keys() and all(np.array_equal(converted[k], original[k]) for k in original)
    assert not files["vit"].exists()  # only the configured detector (maskrcnn)
    hmr2_root = tmp_path / "cache" / "4DHumans"
    assert sorted(p.name for p in hmr2_root.rglob("*") if p.is_file()) == ["mean.npz", "model.ckpt"]  # no archive, no ../evil
    assert not (tmp_path / "cache" / "evil").exists()
    output = capsys.readouterr().out
    assert f'sha256: "{hashlib.sha256(b"ckpt").hexdigest()}"' in output  # printed for pinning
    assert fetch.main(overrides) == 0 and "present:" in capsys.readouterr().out  # second run: nothing to do


def test_a_checksum_mismatch_leaves_no_file_behind_and_fails(fetch, tmp_path, capsys):
    overrides = _setup(tmp_path, good_sha=False)
    assert fetch.main(overrides) == 1
    weights_dir = tmp_path / "cache" / "phalp" / "w"
    assert list(weights_dir.iterdir()) == []  # neither the file nor a .part leftover
    output = capsys.readouterr().out
    assert "FAILED weights" in output and "sha256" in output and "still missing" in output
    assert "register at the SMPL site" in output  # SMPL was not supplied: told how to get it


def test_dry_run_downloads_nothing(fetch, tmp_path, capsys):
    overrides = _setup(tmp_path)
    assert fetch.main(["--dry-run", "--detector", "all", *overrides]) == 1
    assert not (tmp_path / "cache").exists() or not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    assert "would fetch: vit" in capsys.readouterr().out


def test_a_non_pickle_smpl_file_is_refused(fetch, tmp_path):
    overrides = _setup(tmp_path)
    bogus = tmp_path / "smpl.zip"
    bogus.write_bytes(b"PK\x03\x04")
    with pytest.raises(SystemExit, match="not a pickle"):
        fetch.main(["--smpl", str(bogus), *overrides])


def test_the_shipped_model_list_parses_and_covers_both_detectors():
    cfg = load_config().backend.phalp
    manifest = load_manifest(cfg)
    for detector in ("maskrcnn", "vitdet"):
        keys = {f.key for f in manifest.required(detector)}
        assert {"hmr2_checkpoint", "phalp_hmar_weights", "smpl_neutral", f"detector_{detector}"} <= keys
    assert all(url.startswith("https://") for f in manifest.files for url in f.urls)
    assert set(manifest.archives) == {"hmr2_data"}


def test_a_hostile_smpl_pickle_is_refused_and_nothing_is_installed(fetch, tmp_path):
    overrides = _setup(tmp_path)
    hostile = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    # GLOBAL posix.system + REDUCE: what pickle.load would run as a shell command
    hostile.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x0b\x00\x00\x00touch /tmp/xq\x01\x85q\x02Rq\x03.")
    with pytest.raises(SystemExit, match=r"refusing to unpickle posix\.system"):
        fetch.main(["--smpl", str(hostile), *overrides])
    cfg = load_config(overrides=overrides).backend.phalp
    assert not {f.key: f.path for f in load_manifest(cfg).files}["smpl_neutral"].exists()
