"""Two-sided smoothing of one person from its track's samples before and after it.

What is smoothed, and in which frame (each a local polynomial fit in time, ``local_fit``):

- 2D keypoints (x, y; confidences pass unchanged) and the box, in pixels;
- 3D joints: relative to the person's own origin when the backend gives a camera translation
  (PHALP), so the depth jitter of the translation, by far the largest, is smoothed once as
  the translation and not 45 times; as they come otherwise (MediaPipe: hip-centred);
- the camera translation;
- SMPL rotations (root and 23 joints) as unit quaternions, each sample's sign aligned to the
  smoothed frame's own (q and -q are one rotation), fitted, then renormalised.

SMPL shape (betas) and confidences are left as the model gave them. The samples are the
track's detected and interpolated people (never PHALP's predictions), as the backend and gap
filler gave them, never already-smoothed values: each output depends on inputs only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from daemon.processing.motion.interpolate import STATE_INTERPOLATED, without_derived_extras
from daemon.processing.motion.local_fit import reach_s, weights
from daemon.processing.motion.rotations import align_hemisphere, matrix_to_quaternion, normalise, quaternion_to_matrix
from daemon.records import Person, SmplParams


@dataclass(frozen=True)
class FitParams:
    sigma_s: float  # the Gaussian's width in time: larger = smoother, flatter peaks
    degree: int  # of the local polynomial: 2 follows swings, 0 is a plain weighted mean


@dataclass(frozen=True)
class SmoothingParams:
    keypoints_2d: FitParams  # also the box
    joints_3d: FitParams  # also the camera translation
    rotations: FitParams

    def reach_s(self) -> float:
        """How far in time, each side, any fit looks: the look-ahead smoothing needs."""
        return max(reach_s(p.sigma_s) for p in (self.keypoints_2d, self.joints_3d, self.rotations))


@dataclass(frozen=True)
class Sample:
    """One person of the track at one time: an input to the fit."""

    timestamp_s: float
    person: Person


@dataclass(frozen=True)
class _Window:
    offsets_s: np.ndarray  # each sample's time minus the smoothed sample's
    people: list[Person]
    centre: int  # the index of the smoothed person
    # Weights depend only on the width and which samples take part: keypoints, box and joints
    # of one person usually share them, so each is solved once.
    solved: dict[tuple, np.ndarray] = field(default_factory=dict)

    def weights(self, params: FitParams, usable: list[int]) -> np.ndarray:
        key = (params, tuple(usable))
        if key not in self.solved:
            self.solved[key] = weights(self.offsets_s[usable], params.sigma_s, params.degree)
        return self.solved[key]


def smooth_person(params: SmoothingParams, samples: Sequence[Sample], centre: int) -> Person:
    """``samples[centre].person`` smoothed from ``samples`` (the track's, in time order); its
    ``raw`` is the backend's person (for an interpolated one, what the backend said there)."""
    person = samples[centre].person
    window = _Window(np.array([s.timestamp_s - samples[centre].timestamp_s for s in samples]), [s.person for s in samples], centre)
    keypoints = np.array(person.keypoints, dtype=np.float64)
    keypoints[:, :2] = _fit(params.keypoints_2d, window, lambda p: np.asarray(p.keypoints, dtype=np.float64)[:, :2])
    bbox = _fit(params.keypoints_2d, window, lambda p: np.asarray(p.bbox_xywh, dtype=np.float64))
    translation = None
    if person.camera_translation is not None:
        translation = _fit(params.joints_3d, window, lambda p: p.camera_translation)
    return replace(
        person,
        keypoints=keypoints,
        bbox_xywh=tuple(float(v) for v in bbox),
        joints_3d=_smooth_joints(params.joints_3d, window, translation),
        camera_translation=translation,
        smpl=_smooth_smpl(params.rotations, window),
        extra=without_derived_extras(person.extra),
        raw=person.raw if person.state == STATE_INTERPOLATED else person,
    )


def _fit(params: FitParams, window: _Window, value: Callable[[Person], np.ndarray | None]) -> np.ndarray:
    """The fit at the centre of ``value(person)`` over the people whose value has the centre's
    shape and is finite (one odd sample must neither crash the job nor poison its neighbours)."""
    centre = np.asarray(value(window.people[window.centre]), dtype=np.float64)
    if not np.all(np.isfinite(centre)):
        return centre.copy()
    usable, values = [], []
    for index, person in enumerate(window.people):
        candidate = value(person)
        if candidate is None:
            continue
        candidate = np.asarray(candidate, dtype=np.float64)
        if candidate.shape == centre.shape and np.all(np.isfinite(candidate)):
            usable.append(index)
            values.append(candidate)
    return np.tensordot(window.weights(params, usable), np.stack(values), axes=1)


def _smooth_joints(params: FitParams, window: _Window, translation: np.ndarray | None) -> np.ndarray | None:
    person = window.people[window.centre]
    if person.joints_3d is None:
        return None
    if person.camera_translation is None or translation is None:
        return _fit(params, window, lambda p: p.joints_3d)

    def local(p: Person) -> np.ndarray | None:
        if p.joints_3d is None or p.camera_translation is None:
            return None
        return np.asarray(p.joints_3d, dtype=np.float64) - p.camera_translation

    return _fit(params, window, local) + translation


def _smooth_smpl(params: FitParams, window: _Window) -> SmplParams | None:
    person = window.people[window.centre]
    if person.smpl is None:
        return None
    reference = _quaternions(person)

    def aligned(p: Person) -> np.ndarray | None:
        q = _quaternions(p)
        return None if q is None or q.shape != reference.shape else align_hemisphere(q, reference)

    smoothed = quaternion_to_matrix(normalise(_fit(params, window, aligned)))
    roots = len(np.reshape(person.smpl.global_orient, (-1, 3, 3)))
    return SmplParams(global_orient=smoothed[:roots], body_pose=smoothed[roots:], betas=person.smpl.betas)


def _quaternions(person: Person) -> np.ndarray | None:
    if person.smpl is None:
        return None
    smpl = person.smpl
    matrices = np.concatenate([np.reshape(smpl.global_orient, (-1, 3, 3)), np.reshape(smpl.body_pose, (-1, 3, 3))])
    return matrix_to_quaternion(matrices)


__all__ = ["FitParams", "Sample", "SmoothingParams", "smooth_person"]
