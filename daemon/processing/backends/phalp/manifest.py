"""The list of model files (``configs/models.yaml``) resolved against the posed config.

One list serves three readers: the loader (what must exist before loading), ``posed doctor``
(present, size, checksum) and ``scripts/fetch-models.sh`` (where to download from). Paths come
from ``backend.phalp``; nothing here touches the network.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.config import CONFIG_DIR, PhalpConfig
from daemon.errors import ConfigError

MANIFEST_NAME = "models.yaml"
FETCH_COMMAND = "scripts/fetch-models.sh"
ROOT_KEYS = ("phalp_cache_dir", "hmr2_cache_dir", "detectron2_cache_dir")
DETECTORS = ("maskrcnn", "vitdet")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelFile:
    """One file the backend reads, where it must be, and how to get it."""

    key: str
    path: Path
    config_key: str  # the posed config key that decides where it lives
    used_for: str
    urls: tuple[str, ...] = ()
    archive: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    detector: str | None = None
    instructions: str = ""  # for files nobody may download for you (SMPL)

    def how_to_get(self) -> str:
        if self.instructions:
            return self.instructions
        source = f"extracts it from the {self.archive} archive" if self.archive else f"downloads it from {self.urls[0]}"
        return f"run {FETCH_COMMAND} (it {source}), or put the file there yourself"


@dataclass(frozen=True)
class Archive:
    key: str
    root: Path
    urls: tuple[str, ...]
    bytes: int | None
    sha256: str | None


@dataclass(frozen=True)
class Manifest:
    source: Path
    files: tuple[ModelFile, ...]
    archives: dict[str, Archive]

    def required(self, detector: str) -> list[ModelFile]:
        """Every file a model load with ``detector`` reads, SMPL included."""
        return [f for f in self.files if f.detector in (None, detector)]

    def members(self, archive: str) -> list[ModelFile]:
        return [f for f in self.files if f.archive == archive]


def manifest_path(cfg: PhalpConfig) -> Path:
    return Path(os.path.expanduser(cfg.models_manifest)) if cfg.models_manifest else CONFIG_DIR / MANIFEST_NAME


def load_manifest(cfg: PhalpConfig) -> Manifest:
    """Read the manifest and resolve every path against ``cfg``; errors name the file and key."""
    source = manifest_path(cfg)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config key 'backend.phalp.models_manifest': cannot read {source}: {exc}") from exc
    try:
        roots = {key: resolve_path(cfg, getattr(cfg, key)) for key in ROOT_KEYS}
        files = [_model_file(entry, roots) for entry in raw["files"]]
        files.append(_smpl_file(raw["smpl"], resolve_path(cfg, cfg.smpl_path)))
        archives = {key: _archive(key, entry, roots) for key, entry in (raw.get("archives") or {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: malformed model list ({type(exc).__name__}: {exc})") from exc
    for model_file in files:
        if model_file.archive is not None and model_file.archive not in archives:
            raise ConfigError(f"{source}: file {model_file.key} names unknown archive {model_file.archive!r}")
    return Manifest(source=source, files=tuple(files), archives=archives)


def resolve_path(cfg: PhalpConfig, value: str) -> Path:
    """Expand ``~`` and the ``${.cache_dir}`` interpolation (left unresolved in a bare dataclass)."""
    value = value.replace("${.cache_dir}", cfg.cache_dir)
    return Path(os.path.expanduser(value)).absolute()


def missing_files(files: list[ModelFile]) -> list[ModelFile]:
    return [f for f in files if not f.path.is_file()]


def describe_missing(missing: list[ModelFile]) -> str:
    """One paragraph per missing file: the path, what it is for, and the fix."""
    lines = [f"{len(missing)} model file(s) missing:"]
    for model_file in missing:
        lines.append(f"- {model_file.path} ({model_file.used_for}; location set by {model_file.config_key}): {model_file.how_to_get()}")
    return "\n".join(lines)


def _model_file(entry: dict[str, Any], roots: dict[str, Path]) -> ModelFile:
    root_key = entry["root"]
    if root_key not in roots:
        raise ValueError(f"file {entry['key']}: root must be one of {', '.join(ROOT_KEYS)}, got {root_key!r}")
    detector = entry.get("detector")
    if detector is not None and detector not in DETECTORS:
        raise ValueError(f"file {entry['key']}: detector must be one of {', '.join(DETECTORS)}")
    urls = tuple(entry.get("urls") or ())
    if not urls and not entry.get("archive"):
        raise ValueError(f"file {entry['key']}: needs urls or an archive")
    return ModelFile(
        key=entry["key"],
        path=roots[root_key] / entry["path"],
        config_key=f"backend.phalp.{root_key}",
        used_for=entry.get("used_for", ""),
        urls=urls,
        archive=entry.get("archive"),
        bytes=_size(entry),
        sha256=_checksum(entry),
        detector=detector,
    )


def _size(entry: dict[str, Any]) -> int | None:
    size = entry.get("bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ValueError(f"{entry['key']}: bytes must be a whole number or null, got {size!r}")
    return size


def _checksum(entry: dict[str, Any]) -> str | None:
    digest = entry.get("sha256")
    # YAML reads an unquoted all-digit (or 1e5-looking) digest as a number: insist on quotes.
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise ValueError(f"{entry['key']}: sha256 must be 64 lower-case hex digits in quotes, got {digest!r}")
    return digest


def _smpl_file(entry: dict[str, Any], path: Path) -> ModelFile:
    return ModelFile(
        key=entry["key"],
        path=path,
        config_key=entry["config_key"],
        used_for="SMPL body model (neutral), read by PHALP and HMR 2.0",
        instructions=" ".join(entry["how_to_get"].split()),
    )


def _archive(key: str, entry: dict[str, Any], roots: dict[str, Path]) -> Archive:
    return Archive(
        key=key,
        root=roots[entry["root"]],
        urls=tuple(entry["urls"]),
        bytes=_size({"key": key, **entry}),
        sha256=_checksum({"key": key, **entry}),
    )
