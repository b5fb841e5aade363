"""Composing the layers (``configs/posed.yaml`` < ``--config FILE`` < ``key=value``) into the
schema with Hydra's compose API, and the plain-dict form sent to the worker process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from daemon.errors import ConfigError
from daemon.config.checks import validate
from daemon.config.schema import PosedConfig

CONFIG_DIR = Path(os.environ.get("POSED_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))
DEFAULT_CONFIG_NAME = "posed"


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    config_dir: Path | None = None,
) -> PosedConfig:
    """Compose the default YAML, an optional file and ``key=value`` overrides; validate."""
    base = _compose_defaults(config_dir or CONFIG_DIR)
    layers: list[Any] = [base]
    if config_file is not None:
        layers.append(_load_yaml(Path(config_file)))
    layers.append(_parse_overrides(overrides))
    schema = OmegaConf.structured(PosedConfig)
    try:
        merged = OmegaConf.merge(schema, *layers)
        OmegaConf.resolve(merged)
        cfg: PosedConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe_omegaconf_error(exc)) from exc
    validate(cfg)
    return cfg


def _compose_defaults(config_dir: Path) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not (config_dir / f"{DEFAULT_CONFIG_NAME}.yaml").is_file():
        raise ConfigError(f"default config {config_dir / DEFAULT_CONFIG_NAME}.yaml not found")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=DEFAULT_CONFIG_NAME)
    except Exception as exc:  # Hydra raises several unrelated types for a bad YAML
        raise ConfigError(f"cannot load {config_dir / DEFAULT_CONFIG_NAME}.yaml: {exc}") from exc
    finally:
        GlobalHydra.instance().clear()


def _load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError and OmegaConf errors
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def _parse_overrides(overrides: list[str] | tuple[str, ...]) -> DictConfig:
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key=value (e.g. inbox.settle_s=5)")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe_omegaconf_error(exc)) from exc
    except (yaml.YAMLError, IndexError, ValueError) as exc:
        # YAML cannot read the value (a lone quote, a control character) or the key ("[").
        raise ConfigError(f"override {_first_unreadable(overrides)!r} cannot be parsed: {str(exc).splitlines()[0]}") from exc


def _first_unreadable(overrides: list[str] | tuple[str, ...]) -> str:
    for item in overrides:
        try:
            OmegaConf.from_dotlist([item])
        except Exception:  # noqa: BLE001 - we are only locating the culprit for the message
            return item
    return " ".join(overrides)


def _describe_omegaconf_error(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if key:
        return f"config key '{key}': {first_line}"
    return f"config: {first_line}"


def to_dict(cfg: PosedConfig) -> dict[str, Any]:
    """Plain dict of a config, for sending to the worker process and for logs."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def from_dict(data: dict[str, Any]) -> PosedConfig:
    merged = OmegaConf.merge(OmegaConf.structured(PosedConfig), data)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
