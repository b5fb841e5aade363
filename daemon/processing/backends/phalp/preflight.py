"""``posed doctor`` checks for the GPU backend: driver, VRAM, imports, CUDA, model files, SMPL.

Nothing here imports torch or PHALP into the doctor's own process: imports run in a child
(``probe.py``) and ``nvidia-smi`` is run as a list argv, never through a shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from daemon.processing.backends.phalp.environment import sandbox_dir
from daemon.processing.backends.phalp.manifest import FETCH_COMMAND, ModelFile, load_manifest, resolve_path
from daemon.processing.check import Check, Verdict
from daemon.processing.backends.phalp.host_memory import HostFiles, load_memory_check
from daemon.config import PhalpConfig
from daemon.errors import ConfigError

NVIDIA_SMI_WSL = Path("/usr/lib/wsl/lib/nvidia-smi")  # where WSL2 exposes the Windows driver's tool
NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version,memory.total,memory.free", "--format=csv,noheader,nounits"]
PROBE_MODULE = "daemon.processing.backends.phalp.probe"
WIRING_MODULE = "daemon.processing.backends.phalp.wiring"
PROBE_TIMEOUT_S = 300.0
SMI_TIMEOUT_S = 20.0
# Rough need per detector, GiB: 4D-Humans#117 measured 5.2 GB for RegNetY + HMR 2.0 and 9.5 GB for
# ViTDet + HMR 2.0 (image demo); the tracker adds its pose predictor and appearance model.
VRAM_NEEDED_GIB = {"maskrcnn": 6.0, "vitdet": 10.5}
SETUP = "scripts/setup-gpu.sh"
DRIVER_FIX = (
    "install the current NVIDIA driver on Windows (WSL2 uses the Windows driver; never install a Linux "
    "NVIDIA driver inside WSL), run `wsl --update`, then check that /usr/lib/wsl/lib/nvidia-smi works"
)
IMPORT_FIXES = {
    "torch": f"run {SETUP}: it installs torch 2.11 with its CUDA runtime into .venv-gpu (no CUDA toolkit needed); run posed from that venv",
    "torchvision": f"run {SETUP} (torchvision 0.26, matching torch)",
    "pkg_resources": f"pip install 'setuptools<82' into .venv-gpu ({SETUP} does): detectron2's model_zoo imports pkg_resources, which setuptools 82 removed",
    "detectron2": f"run {SETUP}: installs detectron2 70f4543 as a pure-Python package (no compiler)",
    "lap": f"run {SETUP} (pip install lap): PHALP's tracker uses it for assignment",
    "hmr2": f"run {SETUP}: installs 4D-Humans (hmr2) pinned to commit 6ec7965",
    "phalp": f"run {SETUP}: installs PHALP pinned to commit 96f7e6c (not the old PyPI phalp 0.1.3)",
    WIRING_MODULE: "fix the failures above first; the message names the module that is still missing",
}
DETECTRON2_EXTENSION = "detectron2._C"  # absent by design: see _extension_check
PROBE_MODULES = ("torch", "torchvision", "pkg_resources", "detectron2", DETECTRON2_EXTENSION, "lap", "hmr2", "phalp", WIRING_MODULE)
# The Windows driver branch each CUDA build of torch needs (NVIDIA's CUDA release notes, table 3).
DRIVER_FOR_CUDA = {"12.6": "R560", "12.8": "R570", "13.0": "R580"}
CUDA_VERSION_LINE = re.compile(r"CUDA Version:\s*(\d+)\.(\d+)")


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    def __call__(self, argv: list[str], timeout: float, env: Mapping[str, str] | None = None) -> CommandResult: ...


def run_command(argv: list[str], timeout: float, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run argv (a list: no shell, nothing to quote); a missing program or timeout is a result."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError as exc:
        return CommandResult(127, "", str(exc))
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"timed out after {timeout:.0f} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def phalp_checks(
    cfg: PhalpConfig, run: CommandRunner | None = None, *, blocking: bool = True, host: HostFiles | None = None
) -> Iterator[Check]:
    """Every check of the GPU stack, in the order a user would fix them."""
    run = run or run_command
    driver, driver_cuda = _driver_checks(cfg, run)
    probe, cuda = _probe_checks(cfg, run)
    coverage = [_driver_cuda_check(driver_cuda, cuda["torch_cuda"])] if cuda and cuda.get("torch_cuda") else []
    memory = load_memory_check(cfg.detector, cuda["torch"] if cuda else None, host or HostFiles())
    for check in (*driver, *coverage, *probe, memory, *_model_file_checks(cfg)):
        yield check if blocking else _informational(check)


def _informational(check: Check) -> Check:
    return Check(check.name, check.verdict, check.detail, check.fix, blocking=False)


# --- driver and VRAM ----------------------------------------------------------------------


def _driver_checks(cfg: PhalpConfig, run: CommandRunner) -> tuple[list[Check], tuple[int, int] | None]:
    """The driver and VRAM checks, and the CUDA version the driver supports (None if unknown)."""
    name = "NVIDIA driver (nvidia-smi)"
    program = shutil.which("nvidia-smi") or (str(NVIDIA_SMI_WSL) if NVIDIA_SMI_WSL.exists() else None)
    if program is None:
        return [Check(name, Verdict.FAIL, "nvidia-smi is not on PATH nor in /usr/lib/wsl/lib", DRIVER_FIX)], None
    result = run([program, *NVIDIA_SMI_QUERY], SMI_TIMEOUT_S)
    gpus = _parse_smi(result.stdout) if result.returncode == 0 else []
    if not gpus:
        detail = f"{program} failed (exit {result.returncode}): {_tail(result.stderr or result.stdout)}"
        return [Check(name, Verdict.FAIL, detail, DRIVER_FIX)], None
    listed = "; ".join(f"{gpu['name']}, driver {gpu['driver']}, {gpu['total_mib']} MiB" for gpu in gpus)
    banner = run([program], SMI_TIMEOUT_S)  # only the banner says which CUDA version the driver supports
    found = CUDA_VERSION_LINE.search(banner.stdout) if banner.returncode == 0 else None
    driver_cuda = (int(found.group(1)), int(found.group(2))) if found else None
    detail = listed + (f"; supports CUDA {driver_cuda[0]}.{driver_cuda[1]}" if driver_cuda else "")
    return [Check(name, Verdict.OK, detail), _vram_check(cfg, gpus)], driver_cuda


def _parse_smi(text: str) -> list[dict[str, str]]:
    gpus = []
    for line in text.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 4 and fields[2].isdigit() and fields[3].isdigit():
            gpus.append({"name": fields[0], "driver": fields[1], "total_mib": fields[2], "free_mib": fields[3]})
    return gpus


def _vram_check(cfg: PhalpConfig, gpus: list[dict[str, str]]) -> Check:
    free_gib = max(int(gpu["free_mib"]) for gpu in gpus) / 1024
    needed = VRAM_NEEDED_GIB.get(cfg.detector, VRAM_NEEDED_GIB["vitdet"])
    detail = f"{free_gib:.1f} GiB free; about {needed:.1f} GiB needed with detector={cfg.detector} (estimate)"
    if free_gib >= needed:
        return Check("free GPU memory", Verdict.OK, detail)
    fix = "close other GPU programs (browsers, games)"
    if cfg.detector == "vitdet":
        fix += "; or set backend.phalp.detector=maskrcnn (RegNetY, fits 8 GB cards)"
    return Check("free GPU memory", Verdict.WARN, detail, f"{fix}; backend.phalp.fp16=true also helps")


# --- imports, CUDA and SMPL, in a child process ------------------------------------------------


def _probe_checks(cfg: PhalpConfig, run: CommandRunner) -> tuple[list[Check], dict | None]:
    """The import/CUDA/SMPL checks, and the child's torch facts (None if torch did not import)."""
    smpl = resolve_path(cfg, cfg.smpl_path)
    argv = [sys.executable, "-m", PROBE_MODULE, "--cuda", *(["--smpl", str(smpl)] if smpl.is_file() else []), *PROBE_MODULES]
    result = run(argv, PROBE_TIMEOUT_S, _probe_environment(cfg))
    records, started = _parse_probe(result.stdout)
    checks = [_import_check(module, records.get(module), started, result) for module in PROBE_MODULES if module != DETECTRON2_EXTENSION]
    checks.insert(PROBE_MODULES.index(DETECTRON2_EXTENSION), _extension_check(records.get(DETECTRON2_EXTENSION)))
    checks.append(_cuda_check(cfg, records.get("cuda")))
    if smpl.is_file():
        checks.append(_smpl_check(smpl, records.get("smpl")))
    cuda = records.get("cuda") or {}
    return checks, cuda if cuda.get("ok") else None


def _probe_environment(cfg: PhalpConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(sandbox_dir(cfg))  # import-time cache roots, as the loader sets them
    env["PYTHONBREAKPOINT"] = "0"
    return env


def _parse_probe(stdout: str) -> tuple[dict[str, dict], set[str]]:
    records, started = {}, set()
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a library printed something
        if record.get("started"):
            started.add(record["step"])
        elif "step" in record:
            records[record["step"]] = record
    return records, started


def _import_check(module: str, record: dict | None, started: set[str], result: CommandResult) -> Check:
    name = "posed GPU wiring (all of the above together)" if module == WIRING_MODULE else f"import {module}"
    fix = IMPORT_FIXES[module]
    if record is None:
        crashed = module in started
        why = f"the import crashed the process (exit {result.returncode})" if crashed else "not reached"
        return Check(name, Verdict.FAIL, f"{why}: {_tail(result.stderr)}", fix)
    if not record["ok"]:
        return Check(name, Verdict.FAIL, record["error"], fix)
    version = record.get("version")
    return Check(name, Verdict.OK, f"version {version}" if version else "imported")


def _driver_cuda_check(driver_cuda: tuple[int, int] | None, torch_cuda: str) -> Check:
    """Does the driver run the CUDA runtime that came inside torch's wheel? (No toolkit is used.)"""
    name = "driver covers torch's CUDA"
    wanted = tuple(int(part) for part in torch_cuda.split(".")[:2])
    branch = DRIVER_FOR_CUDA.get(torch_cuda, "the branch NVIDIA lists for it")
    fix = f"update the Windows NVIDIA driver to {branch} or newer (then `wsl --shutdown`), or install torch for an older CUDA (see docs/gpu.md)"
    if driver_cuda is None:
        return Check(name, Verdict.WARN, f"torch is built for CUDA {torch_cuda}; the driver's CUDA version is unknown (nvidia-smi gave no banner)", fix)
    have = f"{driver_cuda[0]}.{driver_cuda[1]}"
    if driver_cuda >= wanted:
        return Check(name, Verdict.OK, f"driver supports CUDA {have}, torch is built for CUDA {torch_cuda}")
    if driver_cuda[0] == wanted[0]:  # CUDA minor-version compatibility: runs, newer features may not
        return Check(name, Verdict.WARN, f"driver supports CUDA {have}, older than torch's {torch_cuda} (same major: usually runs)", fix)
    return Check(name, Verdict.FAIL, f"driver supports CUDA {have}, torch is built for CUDA {torch_cuda}: torch cannot use the GPU", fix)


def _extension_check(record: dict | None) -> Check:
    name = "detectron2 compiled extension (_C)"
    if record is not None and record["ok"]:
        return Check(name, Verdict.INFO, "present (a compiled build); posed does not need it")
    return Check(name, Verdict.INFO, "absent, as expected: posed's detectors take ROIAlign and NMS from torchvision")


def _cuda_check(cfg: PhalpConfig, record: dict | None) -> Check:
    name = "CUDA from torch"
    if record is None or not record["ok"]:
        return Check(name, Verdict.FAIL, "torch is not importable (see above)", IMPORT_FIXES["torch"])
    facts = (
        f"torch {record['torch']} built for CUDA {record['torch_cuda']}, torch.cuda.is_available()={record['available']}, "
        f"devices={len(record['devices'])}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}"
    )
    if not record["available"]:
        fix = "install the CUDA build of torch (scripts/setup-gpu.sh), check nvidia-smi and the driver/CUDA check above, and unset CUDA_VISIBLE_DEVICES"
        verdict = Verdict.FAIL if cfg.device.startswith("cuda") else Verdict.WARN
        return Check(name, verdict, facts, fix)
    devices = "; ".join(f"cuda:{d['index']} {d['name']} ({d['free'] / 2**30:.1f} of {d['total'] / 2**30:.1f} GiB free)" for d in record["devices"])
    return Check(name, Verdict.OK, f"{facts}; {devices}")


def _smpl_check(path: Path, record: dict | None) -> Check:
    name = "SMPL file readable"
    convert = "convert it once: scripts/fetch-models.sh --smpl PATH/TO/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    if record is not None and record["ok"] and record.get("needs_conversion"):
        detail = f"{path} still holds chumpy/scipy objects ({', '.join(record['needs_conversion'][:4])}...), which need chumpy to load"
        return Check(name, Verdict.FAIL, detail, convert)
    if record is not None and record["ok"] and record.get("has_shapedirs"):
        return Check(name, Verdict.OK, f"{path}: plain numpy ({len(record['keys'])}+ fields)")
    error = record["error"] if record is not None and not record["ok"] else "not an SMPL model (no shapedirs)"
    return Check(name, Verdict.FAIL, f"{path}: {error}", convert)


# --- model files --------------------------------------------------------------------------


def _model_file_checks(cfg: PhalpConfig) -> list[Check]:
    try:
        manifest = load_manifest(cfg)
    except ConfigError as exc:
        return [Check("model list", Verdict.FAIL, str(exc), "restore configs/models.yaml or fix backend.phalp.models_manifest")]
    return [_file_check(model_file) for model_file in manifest.required(cfg.detector)]


def _file_check(model_file: ModelFile) -> Check:
    name = f"model file {model_file.key}"
    path = model_file.path
    if not path.is_file():
        return Check(name, Verdict.FAIL, f"missing: {path} ({model_file.used_for})", model_file.how_to_get())
    if not os.access(path, os.R_OK):
        return Check(name, Verdict.FAIL, f"not readable: {path}", f"fix its permissions: chmod a+r '{path}'")
    size = path.stat().st_size
    refetch = f"delete it and run {FETCH_COMMAND}" if model_file.urls or model_file.archive else model_file.how_to_get()
    if model_file.bytes is not None and size != model_file.bytes:
        return Check(name, Verdict.FAIL, f"{path}: {size} bytes, expected {model_file.bytes} (truncated?)", refetch)
    if model_file.sha256:
        digest = _sha256(path)
        if digest != model_file.sha256:
            return Check(name, Verdict.FAIL, f"{path}: sha256 {digest}, expected {model_file.sha256}", refetch)
        return Check(name, Verdict.OK, f"{path} ({_megabytes(size)}, sha256 verified)")
    return Check(name, Verdict.OK, f"{path} ({_megabytes(size)}; checksum not pinned in the model list)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _tail(text: str, limit: int = 300) -> str:
    text = " ".join(text.strip().split())
    return text[-limit:] if text else "(no output)"
