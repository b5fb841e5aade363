"""Range and choice checks the schema's types cannot express; each failure names its key."""

from __future__ import annotations

import signal


from daemon.errors import ConfigError
from daemon.config.schema import (
    BACKENDS,
    INTAKES,
    OBSERVERS,
    PRECISIONS,
    DEPTH_RENDERERS,
    IntakeConfig,
    MotionConfig,
    SmoothingFitConfig,
    PosedConfig,
)


def validate(cfg: PosedConfig) -> None:
    """Range and choice checks that the type system cannot express."""
    positive = {
        "daemon.status_interval_s": cfg.daemon.status_interval_s,
        "daemon.tick_s": cfg.daemon.tick_s,
        "inbox.poll_interval_s": cfg.inbox.poll_interval_s,
        "inbox.rescan_interval_s": cfg.inbox.rescan_interval_s,
        "inbox.orphan_sidecar_s": cfg.inbox.orphan_sidecar_s,
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
        "backend.phalp.batch_frames": cfg.backend.phalp.batch_frames,
        "backend.phalp.detect_every_n": cfg.backend.phalp.detect_every_n,
        "backend.mediapipe.max_people": cfg.backend.mediapipe.max_people,
        "backend.mediapipe.tiles_per_frame": cfg.backend.mediapipe.tiles_per_frame,
        "backend.mediapipe.max_track_distance": cfg.backend.mediapipe.max_track_distance,
        "backend.mediapipe.max_missing_s": cfg.backend.mediapipe.max_missing_s,
        "backend.mediapipe.threads": cfg.backend.mediapipe.threads,
        "backend.mediapipe.confirm_frames": cfg.backend.mediapipe.confirm_frames,
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
        "backend.mediapipe.tile_levels": cfg.backend.mediapipe.tile_levels,
        "output.preview_max_height": cfg.output.preview_max_height,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"config key '{key}': must be >= 0, got {value!r}")
    scores = {  # scores the networks give are in [0, 1]: a bound outside keeps everyone or no one
        "backend.mediapipe.min_detection_confidence": cfg.backend.mediapipe.min_detection_confidence,
        "backend.mediapipe.min_tracking_confidence": cfg.backend.mediapipe.min_tracking_confidence,
        "backend.mediapipe.min_keypoint_certainty": cfg.backend.mediapipe.min_keypoint_certainty,
    }
    for key, value in scores.items():
        if not 0 <= value <= 1:
            raise ConfigError(f"config key '{key}': must be between 0 and 1, got {value!r}")
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
    _check_choice("backend.phalp.precision", cfg.backend.phalp.precision, PRECISIONS)
    _check_choice("backend.phalp.depth_renderer", cfg.backend.phalp.depth_renderer, DEPTH_RENDERERS)
    if cfg.backend.mediapipe.model_complexity != 1:
        raise ConfigError(
            "config key 'backend.mediapipe.model_complexity': only 1 ships inside the mediapipe wheel; "
            "0 and 2 would be downloaded at run time, which posed never does"
        )
    if cfg.backend.name == "mediapipe" and cfg.backend.mediapipe.max_people > cfg.limits.max_people_per_frame:
        raise ConfigError(
            f"config key 'backend.mediapipe.max_people': {cfg.backend.mediapipe.max_people} exceeds "
            f"limits.max_people_per_frame={cfg.limits.max_people_per_frame}"
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
    for key in ("max_body_speed", "max_scale_rate"):
        if not getattr(motion, key) > 0:
            raise ConfigError(f"config key 'motion.{key}': must be > 0, got {getattr(motion, key)!r}")
    for group in ("keypoints_2d", "joints_3d", "rotations"):
        params: SmoothingFitConfig = getattr(motion, group)
        if not params.sigma_s > 0:
            raise ConfigError(f"config key 'motion.{group}.sigma_s': must be > 0 s, got {params.sigma_s!r}")
        if params.degree not in (0, 1, 2, 3):
            raise ConfigError(f"config key 'motion.{group}.degree': must be 0, 1, 2 or 3, got {params.degree!r}")


def _validate_intake(intake: IntakeConfig) -> None:
    _check_choice("intake.kind", intake.kind, INTAKES)
    if intake.kind == "bullmq" and not intake.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"config key 'intake.url': intake.kind=bullmq needs redis://[user:pass@]host:port/db (rediss:// for TLS), got {intake.url!r}")
    if not intake.queue or ":" in intake.queue:
        raise ConfigError(f"config key 'intake.queue': a BullMQ queue name, non-empty and without ':', got {intake.queue!r}")
    for key in ("lock_duration_s", "stalled_interval_s"):
        if not getattr(intake, key) > 0:
            raise ConfigError(f"config key 'intake.{key}': must be > 0, got {getattr(intake, key)!r}")
    if intake.kind == "bullmq" and not intake.input_roots:
        raise ConfigError(
            "config key 'intake.input_roots': queue mode reads the files jobs name, so it needs the folders they may "
            "lie in, set explicitly (for example intake.input_roots='[/mnt/share/posed/uploads]'); none is set"
        )
    for root in intake.input_roots:
        if not isinstance(root, str) or not (root.startswith("/") or root[1:3] in (":\\", ":/") or root.startswith("\\\\")):
            raise ConfigError(f"config key 'intake.input_roots': each root must be an absolute Windows or WSL path, got {root!r}")
    if intake.max_stalled_count < 0:
        raise ConfigError(f"config key 'intake.max_stalled_count': must be >= 0, got {intake.max_stalled_count}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")
