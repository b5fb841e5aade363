"""The prepared device check (scripts/gpu-check/, issue 20), as far as a CPU machine can run it:
the assembler's plan and manifest, the GPU script's arguments, plan and fast failure without
CUDA, the joint comparison on a real result, the pyrender stand-in and NMR's build patch."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "gpu-check"
SHORT_CLIP = Path("/work/shared/media/running-2s-320.mp4")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_check_{name}", CHECK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK / script), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False)


def test_the_assemblers_dry_run_plans_cp312_wheels_pinned_sources_and_writes_nothing(tmp_path):
    out = tmp_path / "carry"
    done = run("assemble.py", "--dry-run", "--out", str(out), "--git-dir", f"shubham-goel/NMR={tmp_path / 'nmr.git'}")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["steps"]
    assert not out.exists()
    wheels = next(step["argv"] for step in plan if step["step"] == "wheels")
    assert wheels[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in wheels and "--no-deps" in wheels
    assert wheels[wheels.index("--python-version") + 1] == "3.12" and wheels[wheels.index("--dest") + 1] == str(out / "wheels")
    assert "manylinux_2_28_x86_64" in wheels and "smplx==0.1.28" in wheels and "setuptools==81.0.0" in wheels
    assert not any(name.startswith(("torch", "numpy", "opencv", "mediapipe", "scipy")) for name in wheels)  # in the image
    sources = {step["repo"]: step for step in plan if step["step"] == "source"}
    assert {repo: step["commit"][:7] for repo, step in sources.items()} == {
        "brjathu/PHALP": "96f7e6c", "shubham-goel/4D-Humans": "6ec7965", "facebookresearch/detectron2": "70f4543", "shubham-goel/NMR": "e990b3c"}
    assert sources["brjathu/PHALP"]["from"] == f"https://github.com/brjathu/PHALP/archive/{sources['brjathu/PHALP']['commit']}.tar.gz"
    assert sources["shubham-goel/NMR"]["from"] == str(tmp_path / "nmr.git")
    assert "configs/" in sources["facebookresearch/detectron2"]["keep"]
    manifest = plan[-1]
    assert manifest["step"] == "manifest" and manifest["limit_bytes"] < 64 * 2**20


def test_a_git_dir_for_an_unknown_repo_is_refused(tmp_path):
    done = run("assemble.py", "--dry-run", "--git-dir", "someone/else=/tmp/x")
    assert done.returncode == 1 and "expected REPO=PATH with REPO one of brjathu/PHALP" in done.stderr


def test_the_manifest_lists_every_file_and_refuses_a_set_over_the_limit(tmp_path):
    assemble = _module("assemble")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a.whl").write_bytes(b"wheel")
    manifest = assemble.write_manifest(tmp_path)
    assert [entry["path"] for entry in manifest["files"]] == ["wheels/a.whl"] and manifest["total_bytes"] == 5
    assert json.loads((tmp_path / "manifest.json").read_text())["files"][0]["sha256"] == hashlib.sha256(b"wheel").hexdigest()
    with (tmp_path / "wheels" / "big.whl").open("wb") as handle:
        handle.truncate(assemble.CARRY_LIMIT + 1)  # sparse: no disk used
    with pytest.raises(assemble.AssembleError, match="over the 56 MiB limit"):
        assemble.write_manifest(tmp_path)


def test_the_carry_folder_is_never_committed():
    done = subprocess.run(["git", "check-ignore", "-q", ".gpucarry/wheels/x.whl"], cwd=REPO, check=False)
    assert done.returncode == 0


def test_the_device_plan_puts_the_gates_first_and_the_first_priority_fits_nine_minutes():
    done = run("device_check.py", "--carry", "unused", "--out", "unused", "--plan")
    steps = json.loads(done.stdout)
    priorities = [step["priority"] for step in steps]
    assert priorities == sorted(priorities, key=["gate", "P1", "P2", "P3", "P4"].index)
    assert [step["step"] for step in steps][:5] == ["env", "install", "smoke", "cache", "bench_fp32_k8"]
    # later priorities run as the clock allows: each is skipped when its estimate exceeds the time left
    assert sum(step["estimate_s"] for step in steps if step["priority"] in ("gate", "P1")) <= 9 * 60 / 2


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_without_a_carry_set_the_check_stops_with_a_json_error(tmp_path):
    done = run("device_check.py", "--carry", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    summary = _summary(tmp_path / "out")
    assert summary["ok"] is False and summary["failed_step"] == "arguments"
    assert "no manifest.json (run scripts/gpu-check/assemble.py" in summary["steps"][0]["error"]
    done = run("device_check.py", "--carry", str(tmp_path), "--out", str(tmp_path / "out2"), "--budget-s", "5")
    assert done.returncode == 2 and "must exceed the 10 s kept in reserve" in _summary(tmp_path / "out2")["steps"][0]["error"]


def test_without_cuda_the_check_fails_at_its_first_gate_and_says_why(tmp_path):
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "manifest.json").write_text("{}")
    out = tmp_path / "out"
    done = run("device_check.py", "--carry", str(carry), "--out", str(out), "--work", str(tmp_path / "work"))
    assert done.returncode == 3
    summary = _summary(out)
    assert summary["ok"] is False and summary["failed_step"] == "env" and len(summary["steps"]) == 1
    assert summary["steps"][0]["error"].startswith("no CUDA device: torch 2.13.0")
    assert json.loads((out / "env.json").read_text())["cuda_available"] is False
    assert not (tmp_path / "work").exists()  # nothing installed, nothing built


def test_joint_differences_between_two_results_are_computed_in_mm(tmp_path):
    result = tmp_path / "clip.result.json"
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "process", str(SHORT_CLIP), "--out", str(result)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    compared = run("compare_joints.py", str(result), str(result))
    figures = json.loads(compared.stdout)
    assert figures["people_compared"] > 30 and figures["joints_compared"] == figures["people_compared"] * 33
    assert figures["mean_mm"] == figures["max_mm"] == 0.0 and figures["only_in_first"] == figures["only_in_second"] == 0


def test_the_pyrender_stand_in_imports_resolves_names_and_refuses_any_use(monkeypatch):
    monkeypatch.syspath_prepend(str(CHECK / "standins"))
    monkeypatch.delitem(sys.modules, "pyrender", raising=False)
    import pyrender

    assert pyrender.POSED_STAND_IN and List[pyrender.Node]  # annotations as upstream writes them
    with pytest.raises(RuntimeError, match="rendering is not available"):
        pyrender.OffscreenRenderer(256, 256)


def test_nmrs_dispatch_calls_are_patched_for_current_torch():
    parity = _module("parity")
    line = 'AT_DISPATCH_FLOATING_TYPES(faces.type(), "forward_face_index_map_cuda_1", ([&] {'
    assert parity.DISPATCH.sub(r"\1\2.scalar_type()", line) == 'AT_DISPATCH_FLOATING_TYPES(faces.scalar_type(), "forward_face_index_map_cuda_1", ([&] {'
    assert parity.DISPATCH.sub(r"\1\2.scalar_type()", "TORCH_CHECK(x.type().is_cuda())") == "TORCH_CHECK(x.type().is_cuda())"


def test_a_measurement_without_time_left_is_skipped_and_a_gate_without_time_left_fails(tmp_path):
    check = _module("device_check")
    clock = check.Run(tmp_path, budget_s=check.RESERVE_S + 30)
    ran = []
    assert not check._attempt(clock, None, "bench_fp32_k8", "P1", 120, lambda context, timeout: ran.append(1))
    assert not check._attempt(clock, None, "cache", "gate", 60, lambda context, timeout: ran.append(1))
    assert check._attempt(clock, None, "env", "gate", 5, lambda context, timeout: {"device": "x"})
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [("bench_fp32_k8", "skipped"), ("cache", "failed"), ("env", "ok")]
    assert steps[0]["error"].startswith("needs about 120 s,") and ran == []
