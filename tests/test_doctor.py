"""``posed doctor`` as CI runs it (no GPU stack at all), and on a simulated ready machine."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap

import pytest

from daemon.processing.backends.phalp import preflight
from daemon.processing.backends.phalp.manifest import load_manifest
from daemon.processing.backends.phalp.preflight import PROBE_MODULES, CommandResult
from daemon.config import load_config
from daemon.ops.doctor import EXIT_NOT_READY, EXIT_READY, run_doctor
from tests.fakes.phalp_stack import write_model_files


def config(tmp_path, *overrides: str):
    base = [
        f"inbox.path={tmp_path / 'inbox'}",
        f"outbox.path={tmp_path / 'outbox'}",
        f"backend.phalp.cache_dir={tmp_path / 'cache'}",
    ]
    return load_config(overrides=[*base, *overrides])


def doctor(cfg, *, show_all: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(cfg, out=out, show_all=show_all)
    return code, out.getvalue()


def test_on_a_machine_without_the_gpu_stack_the_report_names_every_missing_piece_and_exits_non_zero(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=phalp"))
    assert code == EXIT_NOT_READY
    assert report.rstrip().splitlines()[-1].startswith("NOT READY for backend.name=phalp")
    assert "NVIDIA driver (nvidia-smi)" in report
    for module in PROBE_MODULES[:-1]:
        assert f"import {module}:" in report
    assert "posed GPU wiring (all of the above together)" in report
    for model_file in load_manifest(config(tmp_path).backend.phalp).required("maskrcnn"):
        assert f"[FAIL] model file {model_file.key}: missing: {model_file.path}" in report
    failures = [line for line in report.splitlines() if "[FAIL]" in line]
    fixes = [line for line in report.splitlines() if line.strip().startswith("fix:")]
    assert len(fixes) >= len(failures) > 10  # every failure comes with its fix
    assert "smplify.is.tue.mpg.de" in report and "scripts/setup-gpu.sh" in report
    assert "inbox file system" in report


def test_with_the_cpu_backend_the_gpu_checks_are_information_not_blockers(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"), show_all=True)
    assert "not selected (backend.name=mediapipe), for information" in report
    assert "[miss] model file hmr2_checkpoint" in report and "[FAIL] model file" not in report
    assert "import mediapipe" in report
    assert code == EXIT_READY and report.rstrip().endswith("READY for backend.name=mediapipe")


def test_the_configured_backends_verdict_comes_first_and_the_other_backend_is_one_line(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    lines = report.rstrip().splitlines()
    assert code == EXIT_READY and lines[0] == "posed doctor: READY for backend.name=mediapipe"
    assert "[  ok] import mediapipe" in report
    [gpu] = [line for line in lines if line.startswith("GPU backend")]
    assert "not selected (backend.name=mediapipe)" in gpu and "posed doctor --all lists them" in gpu
    assert "model file" not in report and "[miss]" not in report and "fix:" not in report
    assert len(lines) <= 20, report  # was 60+ with every GPU check and its fix


def test_when_not_ready_the_first_line_says_so_and_names_the_problems(tmp_path):
    (tmp_path / "outbox").write_text("a file, not a directory")
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert code == EXIT_NOT_READY
    assert report.splitlines()[0] == "posed doctor: NOT READY for backend.name=mediapipe: 1 problem(s): outbox writable"


def test_an_outbox_that_is_a_file_fails_with_a_fix(tmp_path):
    (tmp_path / "outbox").write_text("not a folder")
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert code == EXIT_NOT_READY
    assert "[FAIL] outbox writable" in report and "point outbox.path at a directory" in report


def test_an_inbox_on_9p_with_inotify_forced_is_warned_about(tmp_path, monkeypatch):
    import daemon.intake.mounts

    monkeypatch.setattr(daemon.intake.mounts, "filesystem_type", lambda path, mountinfo=None: "9p")
    _, report = doctor(config(tmp_path, "backend.name=mediapipe", "inbox.observer=inotify"))
    assert "[warn] inbox file system: 9p" in report and "inbox.observer=auto" in report
    _, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert "[  ok] inbox file system: 9p" in report and "polling every 2 s" in report


def _ready_machine(tmp_path, monkeypatch, manifest_text: str | None = None):
    """Model files present, nvidia-smi and the import probe answering as on a working install."""
    overrides = ["backend.name=phalp"]
    if manifest_text is not None:
        manifest = tmp_path / "models.yaml"
        manifest.write_text(manifest_text)
        overrides.append(f"backend.phalp.models_manifest={manifest}")
    cfg = config(tmp_path, *overrides)
    write_model_files(load_manifest(cfg.backend.phalp).required("maskrcnn"))
    commands = []

    def runner(argv, timeout, env=None):
        commands.append(argv)
        if argv[0].endswith("nvidia-smi"):
            return CommandResult(0, "NVIDIA GeForce RTX 4060 Laptop GPU, 551.86, 8188, 7400\n", "")
        lines = [{"step": m, "ok": True, "version": "1.0"} for m in PROBE_MODULES]
        lines.append({"step": "cuda", "ok": True, "torch": "2.0.1+cu118", "torch_cuda": "11.8", "available": True,
                      "devices": [{"index": 0, "name": "RTX 4060", "free": 7.4 * 2**30, "total": 8 * 2**30}]})
        lines.append({"step": "smpl", "ok": True, "keys": ["J_regressor", "shapedirs"], "has_shapedirs": True})
        return CommandResult(0, "library noise\n" + "\n".join(json.dumps(line) for line in lines), "")

    monkeypatch.setattr(preflight.shutil, "which", lambda name: "/usr/lib/wsl/lib/nvidia-smi")
    monkeypatch.setattr(preflight, "run_command", runner)
    return cfg, commands


def test_a_working_install_is_ready_and_commands_are_argv_lists(tmp_path, monkeypatch):
    cfg, commands = _ready_machine(tmp_path, monkeypatch)
    code, report = doctor(cfg)
    assert code == EXIT_READY, report
    assert "RTX 4060 Laptop GPU, driver 551.86" in report and "7.2 GiB free" in report
    assert "[  ok] SMPL file readable" in report
    assert all(isinstance(argv, list) for argv in commands)
    probe = next(argv for argv in commands if "daemon.processing.backends.phalp.probe" in argv)
    assert "--smpl" in probe and "--cuda" in probe


def test_a_crash_while_importing_is_pinned_on_the_module_that_crashed(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    ready_runner = preflight.run_command

    def crashing(argv, timeout, env=None):
        if argv[0].endswith("nvidia-smi"):
            return ready_runner(argv, timeout, env)
        started = [{"step": "torch", "started": True}, {"step": "torch", "ok": True}, {"step": "torchvision", "started": True},
                   {"step": "torchvision", "ok": True}, {"step": "detectron2", "started": True}]
        return CommandResult(-11, "\n".join(json.dumps(line) for line in started), "Segmentation fault")

    monkeypatch.setattr(preflight, "run_command", crashing)
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY
    assert "[FAIL] import detectron2: the import crashed the process (exit -11)" in report
    assert "[FAIL] import phalp: not reached" in report and "[  ok] import torch" in report


def test_pinned_sizes_and_checksums_are_verified(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    write_model_files(load_manifest(cfg.backend.phalp).required("maskrcnn"))
    good = load_manifest(cfg.backend.phalp).required("maskrcnn")[0].path
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    manifest = textwrap.dedent(
        f"""
        files:
          - {{key: good, root: phalp_cache_dir, path: 3D/mean_std.npy, urls: [https://x.invalid/a], bytes: {good.stat().st_size}, sha256: "{digest}"}}
          - {{key: short, root: phalp_cache_dir, path: 3D/texture.npz, urls: [https://x.invalid/b], bytes: 999999}}
          - {{key: tampered, root: phalp_cache_dir, path: 3D/SMPL_to_J19.pkl, urls: [https://x.invalid/c], sha256: "{"0" * 64}"}}
        smpl: {{key: smpl_neutral, config_key: backend.phalp.smpl_path, how_to_get: register}}
        """
    )
    cfg, _ = _ready_machine(tmp_path, monkeypatch, manifest)
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY
    assert "[  ok] model file good:" in report and "sha256 verified" in report
    assert "[FAIL] model file short:" in report and "expected 999999 (truncated?)" in report
    assert "[FAIL] model file tampered:" in report and "delete it and run scripts/fetch-models.sh" in report


@pytest.mark.parametrize("detector", ["maskrcnn", "vitdet"])
def test_low_free_vram_is_a_warning_with_the_detector_advice(tmp_path, monkeypatch, detector):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    cfg.backend.phalp.detector = detector
    write_model_files(load_manifest(cfg.backend.phalp).required(detector))
    _, report = doctor(cfg)
    line = next(line for line in report.splitlines() if "free GPU memory" in line)
    assert ("[warn]" in line) == (detector == "vitdet")  # 7.2 GiB free


def test_an_unquoted_numeric_checksum_in_the_model_list_is_a_config_error_naming_the_file(tmp_path):
    manifest = tmp_path / "models.yaml"
    manifest.write_text(
        "files:\n  - {key: x, root: phalp_cache_dir, path: a, urls: [https://x.invalid/a], sha256: 1234}\n"
        "smpl: {key: smpl_neutral, config_key: backend.phalp.smpl_path, how_to_get: register}\n"
    )
    cfg = config(tmp_path, "backend.name=phalp", f"backend.phalp.models_manifest={manifest}")
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY and "[FAIL] model list:" in report and "sha256 must be 64 lower-case hex digits in quotes" in report
