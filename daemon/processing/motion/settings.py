"""From ``motion.*`` configuration (plus a job's overrides) to the numbers the stage runs with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.config import MotionConfig, SmoothingFitConfig
from daemon.processing.motion.identity import IdentityBounds
from daemon.processing.motion.smoothing import FitParams, SmoothingParams

FALLBACK_FPS = 30.0
MIN_SIGMA_FRAMES = 1.0  # the narrowest smoothing width, in frames: the fit always reaches 3 frames each way  # a container that states no frame rate: assume the common one
JOB_OVERRIDABLE = ("smoothing", "fill_gaps", "include_raw", "max_gap_s")


def max_gap_frames(max_gap_s: float, nominal_fps: float) -> int:
    """``motion.max_gap_s`` in frames of this video (0.5 s at 30 fps = 15 frames)."""
    return max(0, round(max_gap_s * effective_fps(nominal_fps)))


def effective_fps(nominal_fps: float) -> float:
    return nominal_fps if nominal_fps > 0 else FALLBACK_FPS


def smoothing_params(settings: MotionConfig, nominal_fps: float) -> SmoothingParams:
    """Widths are in seconds, so one setting fits every resolution and most frame rates. Below
    1 / sigma_s frames per second (20 fps at the default 0.05 s) a width is raised to one frame:
    a quadratic through the 3 samples within a narrower reach is the samples themselves, so it
    would smooth nothing at all."""
    frame_s = 1.0 / effective_fps(nominal_fps)
    return SmoothingParams(
        keypoints_2d=_fit(settings.keypoints_2d, frame_s),
        joints_3d=_fit(settings.joints_3d, frame_s),
        rotations=_fit(settings.rotations, frame_s),
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


def _fit(config: SmoothingFitConfig, frame_s: float) -> FitParams:
    return FitParams(sigma_s=max(config.sigma_s, MIN_SIGMA_FRAMES * frame_s), degree=config.degree)


__all__ = ["JOB_OVERRIDABLE", "effective_fps", "identity_bounds", "max_gap_frames", "smoothing_params", "with_job_overrides"]
