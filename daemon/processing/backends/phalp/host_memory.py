"""Will loading the phalp models fit in this machine's (WSL VM's) memory? For ``posed doctor``.

WSL2 runs Linux in a VM whose memory is capped by ``[wsl2] memory=`` in the Windows user's
``%UserProfile%\\.wslconfig`` (default: half of the PC's RAM). When a load needs more than
the VM has, WSL can die with "Catastrophic failure" instead of a clean out-of-memory error, as
the seeds' 8 GB VM did while loading the detector after HMR 2.0. The expected peaks below were
measured by ``scripts/load_peak.py`` (synthetic checkpoints of the real sizes, the GPU stood
in for by torch's meta device; docs/gpu.md has the table). Everything is read from files
passed in, so tests use real ``meminfo`` and ``.wslconfig`` files.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from daemon.processing.check import Check, Verdict

GIB = 1024**3
PROC_MEMINFO = Path("/proc/meminfo")
WINDOWS_USERS = Path("/mnt/c/Users")
# Peak host memory of posed's load, GiB, keyed by (detector, checkpoints memory-mapped), as
# (anonymous memory, which the kernel cannot reclaim without swap; total resident, which adds
# mapped checkpoint pages it can drop). torch >= 2.1 memory-maps the zip checkpoints; the
# detectors' detectron2 pickles are read whole either way (2.77 GB for ViTDet-H). Measured by
# scripts/load_peak.py with torch 2.13 CPU, 2026-11-29; stock PHALP needs 5.26 (maskrcnn) and
# 8.19 GiB (vitdet), which is how an 8 GB VM died loading the detector after HMR 2.0.
LOAD_PEAK_GIB = {
    ("maskrcnn", True): (0.30, 2.74),
    ("maskrcnn", False): (2.66, 2.74),
    ("vitdet", True): (2.72, 2.80),
    ("vitdet", False): (2.72, 2.80),
}
# CUDA context, cuDNN/cuBLAS, detectron2, PHALP and the daemon itself. An estimate: no GPU was
# available to measure it (the benchmark's CPU-only process starts at 0.2 GiB).
RUNTIME_ALLOWANCE_GIB = 2.0
NATIVE_LINUX_FIX = "close memory-hungry programs or add swap; backend.phalp.detector=maskrcnn needs the least"
SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": GIB, "GB": GIB, "T": 1024**4, "TB": 1024**4}


@dataclass(frozen=True)
class MemInfo:
    total: int
    available: int
    swap_total: int


@dataclass(frozen=True)
class WslConfig:
    path: Path
    memory: int | None  # bytes; None = WSL's default (half of the PC's RAM)
    swap: int | None


@dataclass(frozen=True)
class HostFiles:
    """Where the facts come from; tests point these at files they wrote."""

    meminfo: Path = PROC_MEMINFO
    windows_users: Path = WINDOWS_USERS


def read_meminfo(path: Path) -> MemInfo:
    fields = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    available = fields.get("MemAvailable", fields.get("MemFree", 0))
    return MemInfo(total=fields["MemTotal"], available=available, swap_total=fields.get("SwapTotal", 0))


def parse_size(text: str) -> int | None:
    """A ``.wslconfig`` size (``8GB``, ``4096MB``, ``0`` for no swap) in bytes; None if unreadable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*", text.strip().strip('"'), flags=re.IGNORECASE)
    if match is None:
        return None
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def find_wslconfigs(windows_users: Path) -> list[Path]:
    """Every ``<user>/.wslconfig`` under the Windows users folder (which user runs WSL is unknown)."""
    try:
        return sorted(path for path in windows_users.glob("*/.wslconfig") if path.is_file())
    except OSError:
        return []


def read_wslconfig(path: Path) -> WslConfig:
    parser = configparser.ConfigParser(interpolation=None, strict=False, inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(path.read_text(encoding="utf-8-sig", errors="replace"))
    except (OSError, configparser.Error):
        return WslConfig(path, None, None)
    section = parser["wsl2"] if parser.has_section("wsl2") else {}
    memory, swap = section.get("memory"), section.get("swap")
    return WslConfig(path, parse_size(memory) if memory else None, parse_size(swap) if swap else None)


def expected_load_peak(detector: str, memory_mapped: bool) -> tuple[float, float]:
    """(unreclaimable, total) GiB the host needs while the models load, runtime included."""
    anon, total = LOAD_PEAK_GIB.get((detector, memory_mapped), LOAD_PEAK_GIB[("vitdet", memory_mapped)])
    return anon + RUNTIME_ALLOWANCE_GIB, total + RUNTIME_ALLOWANCE_GIB


def torch_memory_maps(torch_version: str | None) -> bool:
    """torch >= 2.1 reads zip checkpoints with mmap=True; unknown = what setup-gpu.sh installs (2.11)."""
    if not torch_version:
        return True
    match = re.match(r"(\d+)\.(\d+)", torch_version)
    return match is None or (int(match.group(1)), int(match.group(2))) >= (2, 1)


def load_memory_check(detector: str, torch_version: str | None, files: HostFiles) -> Check:
    """Compare the expected load peak with the VM's memory; warn with the .wslconfig fix."""
    name = "host memory for loading the models"
    try:
        meminfo = read_meminfo(files.meminfo)
    except (OSError, KeyError, ValueError) as exc:
        return Check(name, Verdict.WARN, f"cannot read {files.meminfo}: {exc}")
    mapped_ok = torch_memory_maps(torch_version)
    hard, total = expected_load_peak(detector, mapped_ok)
    configs = [read_wslconfig(path) for path in find_wslconfigs(files.windows_users)]
    detail = _describe(meminfo, configs, detector, hard, total, mapped_ok)
    fix = _fix(total, configs) if files.windows_users.is_dir() else NATIVE_LINUX_FIX
    if hard * GIB > meminfo.total + meminfo.swap_total:
        return Check(name, Verdict.FAIL, f"{detail}; the load cannot fit in this VM", fix)
    if total * GIB > meminfo.available:
        return Check(name, Verdict.WARN, f"{detail}; more than is available now", fix)
    return Check(name, Verdict.OK, detail)


def _describe(meminfo: MemInfo, configs: list[WslConfig], detector: str, hard: float, total: float, mapped: bool) -> str:
    how = "checkpoints memory-mapped" if mapped else "torch < 2.1 reads checkpoints whole"
    text = (
        f"{meminfo.total / GIB:.1f} GiB in this VM, {meminfo.available / GIB:.1f} GiB available, swap {meminfo.swap_total / GIB:.1f} GiB; "
        f"loading with detector={detector} peaks at about {total:.1f} GiB, {hard:.1f} GiB of it not reclaimable ({how}; "
        f"{RUNTIME_ALLOWANCE_GIB:.0f} GiB of it an estimate for CUDA and the libraries)"
    )
    for config in configs:
        memory = f"{config.memory / GIB:.1f} GiB" if config.memory is not None else "not set (half of the PC's RAM)"
        swap = f"{config.swap / GIB:.1f} GiB" if config.swap is not None else "not set"
        text += f"; {config.path}: memory={memory}, swap={swap}"
    return text


def _fix(needed_gib: float, configs: list[WslConfig]) -> str:
    target = int(needed_gib + 2.5)  # what loading needs, plus room for the decoder, queues and the shell
    where = str(configs[0].path) if configs else r"%UserProfile%\.wslconfig on Windows"
    return (
        f"give the WSL VM more memory: in {where} set [wsl2] memory={target}GB (and swap=8GB), then run "
        "`wsl --shutdown` in Windows and reopen WSL; or close memory-hungry programs; "
        "backend.phalp.detector=maskrcnn needs the least"
    )
