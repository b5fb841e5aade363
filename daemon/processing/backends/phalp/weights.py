"""Loading checkpoints with the least host memory the installed torch allows.

The seeds' WSL VM (8 GB) died with "Catastrophic failure" while the detector loaded after
HMR 2.0. Upstream's order makes that likely: ``PHALP.__init__`` builds every model on the CPU,
``torch.load``s each checkpoint whole into anonymous memory, and moves everything to the GPU
only at the end (reference §1.6), so the host holds all the weights, plus a full second copy
of the checkpoint being read, at once.

What posed does instead, each step only where the installed torch supports it:

- build each model *on the device* (``with torch.device(...)``, torch >= 2.0), so its random
  initialisation never occupies host memory;
- read zip-format checkpoints with ``torch.load(..., mmap=True)`` (torch >= 2.1): the tensors
  stay in the file's page cache, which the kernel can drop under pressure, instead of being
  copied into anonymous memory that it cannot;
- drop the state dict as soon as it has been copied into the model, and hand freed heap back
  to the kernel (``malloc_trim``), before the next model is read.

torch is passed in, never imported: this module is imported without the GPU stack (CI), and
tests inject a torch stand-in to check what is asked of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since 1.6; the only one mmap=True reads
StateFilter = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def is_zip_checkpoint(path: Any) -> bool:
    """True for a file written in torch's zip format (legacy pickles cannot be memory-mapped)."""
    if not isinstance(path, (str, Path)):
        return False  # an open file object: leave it to torch
    try:
        with open(path, "rb") as handle:
            return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def supports_mmap(torch: ModuleType) -> bool:
    """``torch.load(mmap=True)`` arrived in torch 2.1; 2.0.1 has no such argument."""
    return _accepts(torch.load, "mmap")


def load_arguments(torch: ModuleType, path: Any) -> dict[str, Any]:
    """The keyword arguments posed passes to ``torch.load`` for ``path``.

    Always to the CPU first: mapping straight to CUDA would hold a second copy of every
    weight in VRAM while ``load_state_dict`` copies it, twice HMR 2.0's 2.7 GB on an 8 GB card.
    """
    arguments: dict[str, Any] = {"map_location": "cpu"}
    if _accepts(torch.load, "weights_only"):
        arguments["weights_only"] = False  # Lightning checkpoints pickle a yacs config; torch >= 2.6 refuses by default
    if supports_mmap(torch) and is_zip_checkpoint(path):
        arguments["mmap"] = True
    return arguments


def load_checkpoint(torch: ModuleType, path: Any, **overrides: Any) -> Any:
    """``torch.load`` with ``load_arguments``; explicit ``overrides`` win (PHALP's bare calls pass none)."""
    return torch.load(path, **{**load_arguments(torch, path), **overrides})


def load_weights_into(
    torch: ModuleType, module: Any, path: Path, *, container: str = "state_dict", select: StateFilter | None = None
) -> Any:
    """Read ``path[container]`` into ``module`` (non-strict); nothing of the file outlives the call.

    Returns ``load_state_dict``'s result (missing and unexpected keys) for the caller to judge.
    """
    state = load_checkpoint(torch, path)[container]
    chosen = select(state) if select is not None else state
    del state
    try:
        return module.load_state_dict(chosen, strict=False)
    finally:
        del chosen
        release_host_memory()


@contextlib.contextmanager
def built_on(torch: ModuleType, device: str) -> Iterator[None]:
    """Create tensors on ``device`` while a model is constructed (a no-op where torch lacks it)."""
    context = torch.device(device)
    if not hasattr(context, "__enter__"):  # torch < 2.0: the device object is not a context manager
        yield
        return
    with context:
        yield


def place_on(module: Any, device: str) -> Any:
    """Move a freshly loaded model to ``device`` now, not after the next one has been read."""
    moved = module.to(device)
    release_host_memory()
    return moved


def release_host_memory() -> None:
    """Free unreachable tensors and return the freed heap to the kernel.

    glibc keeps freed small blocks in its arenas, where they still count against the WSL VM;
    ``malloc_trim(0)`` returns them. A no-op on a libc without it (musl, macOS).
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@contextlib.contextmanager
def lean_torch_load(torch: ModuleType) -> Iterator[None]:
    """Give upstream's bare ``torch.load(path)`` calls (PHALP's HMAR) posed's arguments."""
    original = torch.load

    def load(path: Any, *args: Any, **kwargs: Any) -> Any:
        for name, value in _arguments_for(original, path).items():
            kwargs.setdefault(name, value)
        return original(path, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _arguments_for(loader: Callable[..., Any], path: Any) -> dict[str, Any]:
    return load_arguments(_TorchLoad(loader), path)


class _TorchLoad:
    """Just enough of the torch module for ``load_arguments``: its original ``load``."""

    def __init__(self, loader: Callable[..., Any]) -> None:
        self.load = loader


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


_TRIM: list[Callable[[int], int] | None] = []


def _malloc_trim() -> Callable[[int], int] | None:
    if not _TRIM:
        function = None
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            function = ctypes.CDLL(None).malloc_trim  # the symbols this process already has
        _TRIM.append(function)
    return _TRIM[0]
