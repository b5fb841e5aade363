"""Backend selection: one function, lazy imports, so the CPU path never imports torch."""

from __future__ import annotations

from daemon.processing.backends.base import Backend
from daemon.config import PosedConfig
from daemon.errors import ConfigError


def create_backend(cfg: PosedConfig) -> Backend:
    name = cfg.backend.name
    if name == "mediapipe":
        from daemon.processing.backends.mediapipe import MediapipeBackend

        return MediapipeBackend(cfg.backend.mediapipe)
    if name == "fault":
        from daemon.processing.backends.fault import FaultBackend

        return FaultBackend(cfg.backend.fault)
    if name == "phalp":
        from daemon.processing.backends.phalp import PhalpBackend

        return PhalpBackend(cfg.backend.phalp)
    raise ConfigError(f"config key 'backend.name': unknown backend {name!r}")


__all__ = ["Backend", "create_backend"]
