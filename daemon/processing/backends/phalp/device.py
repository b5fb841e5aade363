"""Device selection that fails loudly: CUDA named but unusable is an error, never a CPU fallback.

PHALP hard-codes ``.cuda()`` in several places (reference §7), which targets the *current* CUDA
device; selecting ``cuda:N`` therefore also makes N the current device so both agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

from daemon.errors import BackendUnavailable, ConfigError

CUDA_FIX = (
    "check that `nvidia-smi` works inside WSL (Windows NVIDIA driver installed; no Linux driver "
    "inside WSL), that .venv-gpu holds a CUDA build of torch (scripts/setup-gpu.sh), and that "
    "CUDA_VISIBLE_DEVICES does not hide the GPU; `posed doctor` checks all of this"
)


@dataclass(frozen=True)
class CudaFacts:
    available: bool
    device_count: int
    visible_devices: str | None
    torch_version: str
    torch_cuda_version: str | None

    def describe(self) -> str:
        return (
            f"torch.cuda.is_available()={self.available}, torch.cuda.device_count()={self.device_count}, "
            f"CUDA_VISIBLE_DEVICES={self.visible_devices!r}, torch {self.torch_version} "
            f"built for CUDA {self.torch_cuda_version}"
        )


def cuda_facts(torch: ModuleType) -> CudaFacts:
    available = bool(torch.cuda.is_available())
    return CudaFacts(
        available=available,
        device_count=int(torch.cuda.device_count()) if available else 0,
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        torch_version=str(getattr(torch, "__version__", "?")),
        torch_cuda_version=getattr(getattr(torch, "version", None), "cuda", None),
    )


def select_device(requested: str, torch: ModuleType) -> str:
    """Return the device string to use ("cpu" or "cuda:N"), or raise with the facts."""
    if requested == "cpu":
        return "cpu"
    index = _cuda_index(requested)
    facts = cuda_facts(torch)
    if not facts.available:
        raise BackendUnavailable(f"backend.phalp.device={requested!r} but CUDA is not usable: {facts.describe()}. Fix: {CUDA_FIX}")
    if index >= facts.device_count:
        raise BackendUnavailable(
            f"backend.phalp.device={requested!r} but only {facts.device_count} CUDA device(s) are visible: "
            f"{facts.describe()}. Fix: use cuda:0..cuda:{facts.device_count - 1}, or CUDA_VISIBLE_DEVICES"
        )
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def _cuda_index(requested: str) -> int:
    name, _, index = requested.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise ConfigError(f"config key 'backend.phalp.device': {requested!r} is not one of cuda, cuda:N, cpu")
    return int(index) if index else 0
