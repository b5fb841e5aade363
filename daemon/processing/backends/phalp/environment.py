"""Process state PHALP and 4D-Humans change on import and construction, and how we contain it.

Importing them computes cache roots from ``$HOME`` (``TypeError`` if unset, as under a bare
systemd unit), installs a Rich handler on the root logger, silences all warnings process-wide,
sets numpy print options and forces ``PYOPENGL_PLATFORM=egl``; building PHALP's SMPL layer
replaces ``sys.stdout`` and "restores" it to ``sys.__stdout__`` (reference §8, items 5-12).
We import with ``$HOME`` pointing at a posed-owned sandbox, so any cache path we did not set
explicitly lands somewhere empty and harmless instead of in the user's ``~/.cache``, and undo
the rest once the models are built.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from daemon.processing.backends.phalp.manifest import resolve_path
from daemon.config import PhalpConfig

SANDBOX_DIR_NAME = "home-sandbox"
_RESTORED_ENV = ("PYOPENGL_PLATFORM", "HOME")


def sandbox_dir(cfg: PhalpConfig) -> Path:
    """A directory posed owns: the ``$HOME`` PHALP/HMR2 see while they are imported."""
    return resolve_path(cfg, cfg.cache_dir) / SANDBOX_DIR_NAME


def set_cache_environment(cfg: PhalpConfig) -> None:
    """Point every library cache that could be touched at the posed cache, before any import."""
    cache_dir = resolve_path(cfg, cfg.cache_dir)
    # torch hub: PHALP's HMAR asks for ImageNet ResNet-50 weights; we build it without them,
    # but anything else that slips through must not write to the user's ~/.cache/torch.
    os.environ["TORCH_HOME"] = str(cache_dir / "torch")
    # detectron2 resolves checkpoints through iopath, which caches in $FVCORE_CACHE.
    os.environ["FVCORE_CACHE"] = str(resolve_path(cfg, cfg.detectron2_cache_dir))
    # PHALP and 4D-Humans keep breakpoint() calls in library code; a worker must never block.
    os.environ["PYTHONBREAKPOINT"] = "0"


@contextmanager
def sandboxed_home(home: Path) -> Iterator[None]:
    """Run an import with ``$HOME`` = ``home``; their module-level cache roots derive from it."""
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        _restore_env("HOME", previous)


@contextmanager
def contained_side_effects() -> Iterator[None]:
    """Undo global changes the model stack makes while it is imported and built."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_filters = list(warnings.filters)
    saved_stdout, saved_stderr = sys.stdout, sys.stderr
    saved_print_options = np.get_printoptions()
    saved_env = {name: os.environ.get(name) for name in _RESTORED_ENV}
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        warnings.resetwarnings()  # bumps the filter version, so stale "already shown" caches go
        warnings.filters[:] = saved_filters
        sys.stdout, sys.stderr = saved_stdout, saved_stderr
        np.set_printoptions(**saved_print_options)
        for name, value in saved_env.items():
            _restore_env(name, value)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
