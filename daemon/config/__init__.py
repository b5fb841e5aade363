"""Structured configuration (a package: ``schema``, ``loading``, ``checks``): dataclasses are the schema, YAML in ``configs/`` the defaults.

Loading goes through Hydra's compose API (never ``@hydra.main``: it takes over logging and
argv). Layers, later wins: ``configs/posed.yaml`` < ``--config FILE`` < ``key=value``.
Every layer is merged into the structured schema, so an unknown key or a value of the wrong
type fails at start with a message naming the key; ``validate`` adds range checks.
"""

from __future__ import annotations

from daemon.config.checks import validate
from daemon.config.loading import CONFIG_DIR, DEFAULT_CONFIG_NAME, from_dict, load_config, to_dict
from daemon.config.schema import (
    BACKENDS,
    INTAKES,
    OBSERVERS,
    PRECISIONS,
    VIDEO_EXTENSIONS,
    BackendConfig,
    ClaimConfig,
    DaemonConfig,
    FaultConfig,
    InboxConfig,
    IntakeConfig,
    LimitsConfig,
    MediapipeConfig,
    MotionConfig,
    SmoothingFitConfig,
    OutboxConfig,
    OutputConfig,
    PhalpConfig,
    PipelineConfig,
    PosedConfig,
    WorkerConfig,
)

__all__ = [
    "BACKENDS",
    "CONFIG_DIR",
    "DEFAULT_CONFIG_NAME",
    "INTAKES",
    "OBSERVERS",
    "PRECISIONS",
    "VIDEO_EXTENSIONS",
    "BackendConfig",
    "ClaimConfig",
    "DaemonConfig",
    "FaultConfig",
    "InboxConfig",
    "IntakeConfig",
    "LimitsConfig",
    "MediapipeConfig",
    "MotionConfig",
    "SmoothingFitConfig",
    "OutboxConfig",
    "OutputConfig",
    "PhalpConfig",
    "PipelineConfig",
    "PosedConfig",
    "WorkerConfig",
    "from_dict",
    "load_config",
    "to_dict",
    "validate",
]
