"""From ``motion.*`` configuration (plus a job's overrides) to the numbers the stage runs with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.config import MotionConfig, OneEuroConfig
from daemon.processing.motion.identity import IdentityBounds
from daemon.processing.motion.one_euro import OneEuroParams
from daemon.processing.motion.smoothing import SmoothingParams

FALLBACK_FPS = 30.0  # a container that states no frame rate: assume the common one
JOB_OVERRIDABLE = ("smoothing", "fill_gaps", "include_raw", "max_gap_s")


def max_gap_frames(max_gap_s: float, nominal_fps: float) -> int:
    """``motion.max_gap_s`` in frames of this video (0.5 s at 30 fps = 15 frames)."""
    return max(0, round(max_gap_s * effective_fps(nominal_fps)))


def effective_fps(nominal_fps: float) -> float:
    return nominal_fps if nominal_fps > 0 else FALLBACK_FPS


def smoothing_params(settings: MotionConfig, nominal_fps: float, frame_height: int | None) -> SmoothingParams:
    """2D speeds in the config are in frame heights per second, so one ``beta`` fits 320p and
    4K alike; the filter works in pixels, so its beta is divided by the frame height."""
    pixels_per_unit = float(frame_height) if frame_height else 1.0
    return SmoothingParams(
        keypoints_2d=_params(settings.keypoints_2d, beta_scale=1.0 / pixels_per_unit),
        joints_3d=_params(settings.joints_3d),
        rotations=_params(settings.rotations),
        fallback_dt_s=1.0 / effective_fps(nominal_fps),
    )


def identity_bounds(settings: MotionConfig, nominal_fps: float) -> IdentityBounds:
    return IdentityBounds(
        max_body_speed=settings.max_body_speed,
        max_scale_rate=settings.max_scale_rate,
        min_dt_s=1.0 / effective_fps(nominal_fps),
    )


def with_job_overrides(settings: MotionConfig, overrides: dict[str, Any] | None) -> MotionConfig:
    """The daemon's settings with what a job sidecar set (already validated by the sidecar)."""
    if not overrides:
        return settings
    return replace(settings, **{key: value for key, value in overrides.items() if key in JOB_OVERRIDABLE})


def _params(config: OneEuroConfig, *, beta_scale: float = 1.0) -> OneEuroParams:
    return OneEuroParams(min_cutoff=config.min_cutoff, beta=config.beta * beta_scale, d_cutoff=config.d_cutoff)


__all__ = ["JOB_OVERRIDABLE", "effective_fps", "identity_bounds", "max_gap_frames", "smoothing_params", "with_job_overrides"]
