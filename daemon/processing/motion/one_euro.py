"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised over numpy arrays.

A first-order low-pass filter whose cutoff rises with speed: at rest it removes jitter
(cutoff ``min_cutoff`` Hz), in fast motion it follows with little lag (cutoff grows by ``beta``
per unit of speed). It is causal (each output depends only on the past), so it adds no latency,
and it needs only the previous value and derivative per element: constant memory.

The time step comes from the frames' own timestamps, not from the nominal frame rate, so
variable-frame-rate video (phones) is filtered correctly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` and ``d_cutoff`` in Hz; ``beta`` in 1 / (unit of the signal)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


def smoothing_factor(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff_hz`` for one step."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One filter per element of an array of fixed shape; ``reset`` forgets the past."""

    def __init__(self, params: OneEuroParams, *, fallback_dt_s: float) -> None:
        """``fallback_dt_s`` is used when a timestamp does not advance (duplicated or
        out-of-order timestamps in damaged files must not divide by zero)."""
        self.params = params
        self._fallback_dt_s = fallback_dt_s
        self._value: np.ndarray | None = None
        self._derivative: np.ndarray | None = None
        self._timestamp_s = 0.0

    @property
    def started(self) -> bool:
        return self._value is not None

    def reset(self) -> None:
        self._value = None
        self._derivative = None

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter one sample; the first sample after a reset (or of another shape) passes through."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._value.shape != value.shape or not np.all(np.isfinite(value)):
            return self._start(value, timestamp_s)
        dt = timestamp_s - self._timestamp_s
        if not dt > 0:
            dt = self._fallback_dt_s
        params = self.params
        speed = (value - self._value) / dt
        self._derivative = self._derivative + smoothing_factor(params.d_cutoff, dt) * (speed - self._derivative)
        cutoff = params.min_cutoff + params.beta * _speed(self._derivative)
        self._value = self._value + smoothing_factor(cutoff, dt) * (value - self._value)
        self._timestamp_s = timestamp_s
        return self._value.copy()

    def _start(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        # A non-finite sample cannot seed a filter (NaN would stick forever): pass it and restart.
        finite = bool(np.all(np.isfinite(value)))
        self._value = value.copy() if finite else None
        self._derivative = np.zeros_like(value) if finite else None
        self._timestamp_s = timestamp_s
        return value.copy()


def _speed(derivative: np.ndarray) -> np.ndarray:
    """Speed of each point (the norm over the last axis: x, y[, z]), so a point's cutoff does
    not depend on which way the image axes happen to point; scalars use their magnitude."""
    if derivative.ndim == 0:
        return np.abs(derivative)
    return np.linalg.norm(derivative, axis=-1, keepdims=True)


__all__ = ["OneEuroFilter", "OneEuroParams", "smoothing_factor"]
