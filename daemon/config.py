"""Structured configuration: dataclasses are the schema, YAML in ``configs/`` the defaults.

Loading goes through Hydra's compose API (never ``@hydra.main``: it takes over logging and
argv). Layers, later wins: ``configs/posed.yaml`` < ``--config FILE`` < ``key=value``.
Every layer is merged into the structured schema, so an unknown key or a value of the wrong
type fails at start with a message naming the key; ``validate`` adds range checks.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from daemon.errors import ConfigError

CONFIG_DIR = Path(os.environ.get("POSED_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))
DEFAULT_CONFIG_NAME = "posed"

VIDEO_EXTENSIONS = [".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"]


@dataclass
class DaemonConfig:
    name: str = ""  # "" = this host's name; distinguishes daemons sharing an inbox
    state_dir: str = "var/state"
    status_interval_s: float = 2.0
    tick_s: float = 0.2
    last_error_ttl_s: float = 3600.0  # the status file's last_error is dropped this long after it happened


@dataclass
class InboxConfig:
    path: str = "var/inbox"
    done_dir: str = ""  # "" = <inbox>/done (same file system, so the move is a rename)
    failed_dir: str = ""  # "" = <inbox>/failed
    observer: str = "auto"  # auto | inotify | polling
    poll_interval_s: float = 2.0
    rescan_interval_s: float = 30.0
    settle_s: float = 2.0
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS))
    done_retention_days: float = 0.0  # 0 = keep processed inputs forever


@dataclass
class IntakeConfig:
    """Where jobs come from (issue 15): the inbox folder, or a BullMQ queue on Redis."""

    kind: str = "folder"  # folder | bullmq
    url: str = ""  # bullmq: redis://[user:pass@]host:port/db, rediss:// for TLS
    queue: str = "posed"
    input_roots: list[str] = field(default_factory=lambda: ["/"])  # job inputs must lie below one
    lock_duration_s: float = 30.0  # BullMQ lock (renewed at half); a dead daemon's job waits this long
    stalled_interval_s: float = 30.0  # how often stalled jobs are looked for and handed over
    max_stalled_count: int = 1  # stalls (lost locks) a job survives before BullMQ fails it


@dataclass
class OutboxConfig:
    path: str = "var/outbox"
    publish_retry_s: float = 30.0  # give up a single publish attempt after this long (EPERM/EBUSY)


@dataclass
class OutputConfig:
    """Optional outputs of every result; a job sidecar may turn each on or off for its video."""

    legacy_fields: bool = False
    motion_glb: bool = False
    preview: bool = False


@dataclass
class ClaimConfig:
    heartbeat_interval_s: float = 5.0
    stale_after_s: float = 60.0


@dataclass
class WorkerConfig:
    stall_timeout_s: float = 60.0
    first_frame_timeout_s: float = 600.0
    max_attempts: int = 2
    restart_backoff_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    # Processing ceiling, on by default (decode bombs): base + factor x the video's frames / 30,
    # so a 240 fps video gets 8x the time of the same seconds at 30 fps. 0 turns it off.
    ceiling_base_s: float = 600.0
    ceiling_factor: float = 20.0
    load_timeout_s: float = 900.0  # a worker still loading models after this is killed and restarted
    shutdown_grace_s: float = 30.0
    kill_after_s: float = 5.0
    progress_interval_s: float = 0.0  # 0 = every frame (exact "last frame reached" in crash reports)


@dataclass
class LimitsConfig:
    max_file_bytes: int = 8 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 7680
    max_height: int = 7680
    max_people_per_frame: int = 20
    max_frames: int = 432_000  # 4 h at 30 fps
    max_fps: float = 240.0  # phone slow motion; a 1000 fps header is a decode bomb


@dataclass
class PipelineConfig:
    queue_frames: int = 8  # bounded hand-off between decode, backend and writer threads
    threaded: bool = True


@dataclass
class MediapipeConfig:
    model_complexity: int = 1  # only 1 ships inside the wheel
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True


@dataclass
class FaultConfig:
    """Test-only backend: makes every supervision path reachable with real processes."""

    trigger: str = ""  # faults apply to inputs whose name contains this ("" = every input)
    crash_signal: str = ""  # e.g. SIGSEGV, SIGKILL, SIGABRT
    crash_at_frame: int = -1
    exit_code: int = -1  # os._exit(code) at crash_at_frame when >= 0
    raise_at_frame: int = -1
    hang_at_frame: int = -1
    oom_at_frame: int = -1  # raise MemoryError unless the job runs in low-memory mode
    leak_mb_per_frame: float = 0.0
    slow_ms_per_frame: float = 0.0
    load_seconds: float = 0.0
    crash_on_load_while_exists: str = ""  # crash at load while this file exists
    hang_on_load_while_exists: str = ""  # hang in load (forever) while this file exists
    people: int = 1


@dataclass
class PhalpConfig:
    device: str = "cuda"  # cuda | cuda:N | cpu (cpu only for the test harness)
    detector: str = "maskrcnn"  # maskrcnn (RegNetY, <= 8 GB cards) | vitdet
    detection_score_threshold: float = 0.8
    min_person_width_px: int = 50
    min_person_height_px: int = 100
    max_detections: int = 100  # per frame, highest scores first (detectron2's test_topk_per_image)
    fp16: bool = False
    include_mesh: bool = False
    max_age_track: int = 50
    n_init: int = 5
    cache_dir: str = "~/.cache/posed"
    phalp_cache_dir: str = "${.cache_dir}/phalp"
    hmr2_cache_dir: str = "${.cache_dir}/4DHumans"
    detectron2_cache_dir: str = "${.cache_dir}/detectron2"
    smpl_path: str = "${.cache_dir}/smpl/SMPL_NEUTRAL.pkl"
    models_manifest: str = ""  # "" = configs/models.yaml: every model file, its URL and checksum


@dataclass
class BackendConfig:
    name: str = "mediapipe"  # mediapipe | phalp | fault
    mediapipe: MediapipeConfig = field(default_factory=MediapipeConfig)
    phalp: PhalpConfig = field(default_factory=PhalpConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class OneEuroConfig:
    """One-Euro filter parameters (daemon/processing/motion/one_euro.py); defaults measured on
    the running clips (README, motion): half the raw jitter at about 0.6 % of the frame height."""

    min_cutoff: float = 3.0  # Hz: the cutoff at rest; lower = smoother when still, more lag
    beta: float = 1.0  # cutoff increase per unit of speed; higher = less lag in fast motion
    d_cutoff: float = 3.0  # Hz: the cutoff of the speed estimate


@dataclass
class MotionConfig:
    """The motion stage between backend and writer (issue 13)."""

    smoothing: bool = True
    fill_gaps: bool = True
    include_raw: bool = False
    max_gap_s: float = 0.5  # gaps up to this long (in frames at the video's fps) are interpolated
    keypoints_2d: OneEuroConfig = field(default_factory=OneEuroConfig)  # speed unit: frame heights/s
    joints_3d: OneEuroConfig = field(default_factory=OneEuroConfig)  # m/s; also the camera translation
    rotations: OneEuroConfig = field(default_factory=OneEuroConfig)  # quaternion units/s


@dataclass
class PosedConfig:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    claim: ClaimConfig = field(default_factory=ClaimConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)


BACKENDS = ("mediapipe", "phalp", "fault")
OBSERVERS = ("auto", "inotify", "polling")
INTAKES = ("folder", "bullmq")


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


def validate(cfg: PosedConfig) -> None:
    """Range and choice checks that the type system cannot express."""
    positive = {
        "daemon.status_interval_s": cfg.daemon.status_interval_s,
        "daemon.tick_s": cfg.daemon.tick_s,
        "inbox.poll_interval_s": cfg.inbox.poll_interval_s,
        "inbox.rescan_interval_s": cfg.inbox.rescan_interval_s,
        "claim.heartbeat_interval_s": cfg.claim.heartbeat_interval_s,
        "claim.stale_after_s": cfg.claim.stale_after_s,
        "worker.stall_timeout_s": cfg.worker.stall_timeout_s,
        "worker.first_frame_timeout_s": cfg.worker.first_frame_timeout_s,
        "worker.restart_backoff_s": cfg.worker.restart_backoff_s,
        "worker.kill_after_s": cfg.worker.kill_after_s,
        "outbox.publish_retry_s": cfg.outbox.publish_retry_s,
        "limits.max_file_bytes": cfg.limits.max_file_bytes,
        "limits.max_duration_s": cfg.limits.max_duration_s,
        "limits.max_width": cfg.limits.max_width,
        "limits.max_height": cfg.limits.max_height,
        "limits.max_people_per_frame": cfg.limits.max_people_per_frame,
        "limits.max_frames": cfg.limits.max_frames,
        "limits.max_fps": cfg.limits.max_fps,
        "worker.load_timeout_s": cfg.worker.load_timeout_s,
        "pipeline.queue_frames": cfg.pipeline.queue_frames,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"config key '{key}': must be > 0, got {value!r}")
    non_negative = {
        "inbox.settle_s": cfg.inbox.settle_s,
        "inbox.done_retention_days": cfg.inbox.done_retention_days,
        "worker.shutdown_grace_s": cfg.worker.shutdown_grace_s,
        "worker.ceiling_base_s": cfg.worker.ceiling_base_s,
        "worker.ceiling_factor": cfg.worker.ceiling_factor,
        "worker.progress_interval_s": cfg.worker.progress_interval_s,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"config key '{key}': must be >= 0, got {value!r}")
    if cfg.worker.max_attempts < 1:
        raise ConfigError(f"config key 'worker.max_attempts': must be >= 1, got {cfg.worker.max_attempts}")
    if cfg.claim.stale_after_s <= 2 * cfg.claim.heartbeat_interval_s:
        raise ConfigError(
            "config key 'claim.stale_after_s': must exceed twice claim.heartbeat_interval_s "
            f"({cfg.claim.stale_after_s} <= 2 * {cfg.claim.heartbeat_interval_s}), or live claims look stale"
        )
    _check_choice("backend.name", cfg.backend.name, BACKENDS)
    _check_choice("inbox.observer", cfg.inbox.observer, OBSERVERS)
    _validate_intake(cfg.intake)
    if cfg.backend.mediapipe.model_complexity != 1:
        raise ConfigError(
            "config key 'backend.mediapipe.model_complexity': only 1 ships inside the mediapipe wheel; "
            "0 and 2 would be downloaded at run time, which posed never does"
        )
    for ext in cfg.inbox.extensions:
        if not ext.startswith("."):
            raise ConfigError(f"config key 'inbox.extensions': {ext!r} must start with a dot")
    if cfg.backend.fault.crash_signal and not hasattr(signal, cfg.backend.fault.crash_signal):
        raise ConfigError(f"config key 'backend.fault.crash_signal': unknown signal {cfg.backend.fault.crash_signal!r}")
    _validate_motion(cfg.motion)


def _validate_motion(motion: MotionConfig) -> None:
    if not motion.max_gap_s >= 0:
        raise ConfigError(f"config key 'motion.max_gap_s': must be >= 0, got {motion.max_gap_s!r}")
    for group in ("keypoints_2d", "joints_3d", "rotations"):
        params: OneEuroConfig = getattr(motion, group)
        for name in ("min_cutoff", "d_cutoff"):
            if not getattr(params, name) > 0:
                raise ConfigError(f"config key 'motion.{group}.{name}': must be > 0 Hz, got {getattr(params, name)!r}")
        if not params.beta >= 0:
            raise ConfigError(f"config key 'motion.{group}.beta': must be >= 0, got {params.beta!r}")


def _validate_intake(intake: IntakeConfig) -> None:
    _check_choice("intake.kind", intake.kind, INTAKES)
    if intake.kind == "bullmq" and not intake.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"config key 'intake.url': intake.kind=bullmq needs redis://[user:pass@]host:port/db (rediss:// for TLS), got {intake.url!r}")
    if not intake.queue or ":" in intake.queue:
        raise ConfigError(f"config key 'intake.queue': a BullMQ queue name, non-empty and without ':', got {intake.queue!r}")
    for key in ("lock_duration_s", "stalled_interval_s"):
        if not getattr(intake, key) > 0:
            raise ConfigError(f"config key 'intake.{key}': must be > 0, got {getattr(intake, key)!r}")
    if intake.max_stalled_count < 0:
        raise ConfigError(f"config key 'intake.max_stalled_count': must be >= 0, got {intake.max_stalled_count}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")


def to_dict(cfg: PosedConfig) -> dict[str, Any]:
    """Plain dict of a config, for sending to the worker process and for logs."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def from_dict(data: dict[str, Any]) -> PosedConfig:
    merged = OmegaConf.merge(OmegaConf.structured(PosedConfig), data)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


__all__ = ["PosedConfig", "load_config", "validate", "to_dict", "from_dict", "VIDEO_EXTENSIONS"]
