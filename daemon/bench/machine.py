"""The machine a bench ran on, so its figures can be judged: a busy or shared box runs slower.

Recorded: CPU model, logical and physical cores and the cores this process may use, the load
average before and after the run, the share of CPU time the hypervisor took away (steal, from
/proc/stat over the run), Python and the versions of the libraries that set the speed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

PROC_STAT = Path("/proc/stat")
PROC_CPUINFO = Path("/proc/cpuinfo")
# Distributions whose versions change the figures (decoder, backend, numerics, encoder).
LIBRARIES = ("numpy", "opencv-contrib-python", "mediapipe", "torch", "scipy", "imageio-ffmpeg", "pygltflib", "psutil")


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks (None off Linux)."""

    total: int
    steal: int


def cpu_times(stat: Path = PROC_STAT) -> CpuTimes | None:
    try:
        for line in stat.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "cpu":
                ticks = [int(v) for v in fields[1:]]
                # user nice system idle iowait irq softirq steal guest guest_nice; guest time is
                # already inside user and nice, so it is not added again.
                return CpuTimes(total=sum(ticks[:8]), steal=ticks[7] if len(ticks) > 7 else 0)
    except (OSError, ValueError):
        pass
    return None


def steal_fraction(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """Stolen share of all CPU time between two readings; None where /proc/stat is missing."""
    if before is None or after is None or after.total <= before.total:
        return None
    return (after.steal - before.steal) / (after.total - before.total)


def cpu_model(cpuinfo: Path = PROC_CPUINFO) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class MachineRecord:
    """Start before anything is measured, ``finish`` after the last measurement."""

    def __init__(self) -> None:
        self._load_before = _load_average()
        self._times_before = cpu_times()

    def finish(self) -> dict[str, Any]:
        steal = steal_fraction(self._times_before, cpu_times())
        return {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_average_before": self._load_before,
            "load_average_after": _load_average(),
            "steal_percent": None if steal is None else round(100 * steal, 2),
            "memory_bytes": psutil.virtual_memory().total,
            "os": platform.platform(),
            "python": platform.python_version(),
            "libraries": library_versions(),
        }


def describe(machine: dict[str, Any] | None) -> str:
    """One line for the table and the plot."""
    if machine is None:
        return "not recorded"
    steal = machine.get("steal_percent")
    libraries = ", ".join(f"{name} {version}" for name, version in machine.get("libraries", {}).items()
                          if name in ("mediapipe", "torch", "numpy", "opencv-contrib-python"))  # fmt: skip
    return (
        f"{machine['cpu_model']}, {machine['cpu_count']} logical cores ({machine['usable_cores']} usable); "
        f"load {_triple(machine['load_average_before'])} before, {_triple(machine['load_average_after'])} after; "
        f"steal {'n/a' if steal is None else f'{steal:.1f} %'}; Python {machine['python']}"
        + (f"; {libraries}" if libraries else "")
    )


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _triple(values: list[float] | None) -> str:
    return "n/a" if values is None else "/".join(f"{v:.2f}" for v in values)
