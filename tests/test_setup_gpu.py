"""scripts/setup-gpu.sh, the pip-only GPU install (issue 20), as far as CI can check it without
downloading the stack: its steps (--dry-run), its constraints, the extras in pyproject.toml, and
the detectron2 step on a generated commit tarball served from a file:// URL."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "setup-gpu.sh"
D2_COMMIT = "70f454304e1a38378200459dd2dbca0f0f4a5ab4"
PINNED = {
    "brjathu/PHALP": "96f7e6c09fb858ec3f597d59246c151ab4394bc3",
    "shubham-goel/4D-Humans": "6ec79656a23c33237c724742ca2a0ec00b398b53",
    "facebookresearch/detectron2": D2_COMMIT,
}


def setup_gpu(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "POSED_GPU_VENV": str(tmp_path / "venv-gpu"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=environment, check=False)


def steps(done: subprocess.CompletedProcess) -> list[str]:
    """Each printed step, unquoted (the script prints argv with printf %q)."""
    return [" ".join(shlex.split(line[2:])) for line in done.stdout.splitlines() if line.startswith("+ ") and not line.startswith("+ write ")]


def test_the_dry_run_lists_a_pip_only_install_and_changes_nothing(tmp_path):
    done = setup_gpu("--dry-run", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = steps(done)
    assert not (tmp_path / "venv-gpu").exists()
    text = done.stdout + done.stderr
    for never in ("nvcc", "CUDA_HOME", "build-essential", "g++", "python3.10-dev", "git+", "chumpy", "neural", "apt-get install"):
        assert never not in text, never
    pip_steps = [c for c in commands if " -m pip install " in c]
    torch_step = next(i for i, c in enumerate(pip_steps) if "torch==2.11.0" in c)
    posed_step = next(i for i, c in enumerate(pip_steps) if "[gpu]" in c)
    d2_step = next(i for i, c in enumerate(pip_steps) if f"detectron2-{D2_COMMIT}" in c)
    assert torch_step < posed_step < d2_step  # detectron2's setup.py imports the installed torch
    assert "--index-url https://download.pytorch.org/whl/cu128" in pip_steps[torch_step]
    assert "--no-deps" in pip_steps[d2_step] and "--no-build-isolation" in pip_steps[d2_step]
    for repo, commit in PINNED.items():
        [step] = [c for c in commands if f"https://github.com/{repo}/archive/{commit}.tar.gz" in c]
        assert "--no-deps" in step or "detectron2_pure.py" in step
    assert any(c.endswith(f"detectron2_pure.py --verify 2.11.0") for c in commands)
    assert all(" -c " in c for c in pip_steps[posed_step:])  # every later step under the constraints


@pytest.mark.parametrize(("cuda", "ok"), [("cu126", True), ("cu130", True), ("cu118", False)])
def test_the_cuda_build_is_chosen_from_a_known_list(tmp_path, cuda, ok):
    done = setup_gpu("--dry-run", tmp_path=tmp_path, POSED_GPU_CUDA=cuda)
    assert (done.returncode == 0) is ok
    if ok:
        assert any(f"https://download.pytorch.org/whl/{cuda} " in c for c in steps(done))
    else:
        assert done.returncode == 2 and "choose cu126, cu128 or cu130" in done.stderr


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_constraints_parse_and_agree_with_the_gpu_extra(tmp_path):
    done = setup_gpu("--print-constraints", tmp_path=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    constraints = {req.name: req for req in map(Requirement, lines)}
    assert set(constraints) == {"torch", "torchvision", "setuptools", "numpy", "opencv-python", "opencv-python-headless"}
    assert not constraints["setuptools"].specifier.contains("82.0.0") and constraints["setuptools"].specifier.contains("81.0.0")
    extra = {req.name: req for req in map(Requirement, _pyproject()["project"]["optional-dependencies"]["gpu"])}
    for name in ("torch", "torchvision"):
        (pinned,) = constraints[name].specifier
        assert pinned.operator == "==" and extra[name].specifier.contains(pinned.version), name
    assert extra["setuptools"].specifier == constraints["setuptools"].specifier


def test_torch_stays_out_of_the_default_install_and_the_test_extra_pins_the_cpu_build():
    project = _pyproject()["project"]
    default = [Requirement(line).name for line in project["dependencies"]]
    assert "torch" not in default and "torchvision" not in default
    test = {req.name: req for req in map(Requirement, project["optional-dependencies"]["test"])}
    assert str(test["torch"].specifier) == "==2.13.0"
    for line in project["optional-dependencies"]["gpu"]:
        requirement = Requirement(line)
        assert requirement.url is None, line  # PyPI names only: the git commits come as tarballs
    assert {"smplx", "setuptools", "pyrender", "lap"} <= {Requirement(line).name for line in project["optional-dependencies"]["gpu"]}
    assert not {"chumpy", "neural-renderer-pytorch", "detectron2"} & {Requirement(line).name for line in project["optional-dependencies"]["gpu"]}


# --- the detectron2 step --------------------------------------------------------------------


def _tarball(tmp_path: Path, members: dict[str, bytes | None], links: dict[str, str] = ()) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    path = tmp_path / "served" / f"{D2_COMMIT}.tar.gz"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path.as_uri()


SETUP_PY = b"""setup(
    name="detectron2",
    ext_modules=get_extensions(),
    cmdclass={"build_ext": torch.utils.cpp_extension.BuildExtension},
)
"""


def run_pure(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "detectron2_pure.py"), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_the_detectron2_tarball_is_extracted_and_its_extension_list_emptied(tmp_path):
    root = f"detectron2-{D2_COMMIT}"
    url = _tarball(tmp_path, {root: None, f"{root}/setup.py": SETUP_PY, f"{root}/detectron2/__init__.py": b""},
                   links={f"{root}/docs/install.md": "../INSTALL.md"})  # fmt: skip
    done = run_pure(url, str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    setup = (tmp_path / "work" / root / "setup.py").read_text()
    assert "get_extensions()" not in setup and "ext_modules=[]," in setup and "cmdclass" in setup
    assert not (tmp_path / "work" / root / "docs" / "install.md").exists()  # links are skipped
    assert run_pure("--patch", str(tmp_path / "work" / root)).returncode == 0  # patching twice is harmless


def test_a_tarball_member_climbing_out_is_refused_before_anything_is_written(tmp_path):
    url = _tarball(tmp_path, {f"detectron2-{D2_COMMIT}/setup.py": SETUP_PY, "../escaped.py": b"x"})
    done = run_pure(url, str(tmp_path / "work"))
    assert done.returncode == 1 and "refusing member '../escaped.py'" in done.stderr
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "work" / f"detectron2-{D2_COMMIT}").exists()


def test_a_setup_py_of_another_shape_fails_naming_what_it_expected(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "setup.py").write_text("setup(ext_modules=build_them())\n")
    done = run_pure("--patch", str(source))
    assert done.returncode == 1 and "expected exactly one 'ext_modules=get_extensions(),'" in done.stderr
