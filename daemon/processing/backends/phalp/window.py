"""Perception ahead of tracking: detector and HMR 2.0 over a window of frames, replayed per frame.

Detection, HMR 2.0, the texture it samples and the appearance embedding of that texture depend
only on the frame, never on the tracker. So they can run for K frames at once (the detector
over K images, HMR 2.0 over every crop of the K frames: large GPU batches instead of one image
and one or two crops), and the tracker then consumes the frames strictly in order.

The tracker still receives what PHALP's own ``get_detections`` and ``get_human_features``
build: both run unchanged, once per frame, but the model calls inside them are *replayed* from
the window's results instead of computed (``replaying_detector``, ``replaying_features``). So
the detection dicts, their filtering and their maths stay upstream's code; only the batching is
ours. Every replayed call checks that it is asked for exactly what was computed (same image,
same box, same number of crops, the very UV tensor), so a change upstream fails loudly instead
of feeding the tracker another frame's features.

The batched model calls are methods of the PHALP object (``detect_window``,
``features_window``: ``wiring.StreamingPhalp`` on torch, the fakes in tests): see
``WindowModels``. This module itself handles Python objects only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

NO_ADDITIONAL_DATA: dict = {}  # get_detections calls .keys() on it; never filled (no ground truth)


class WindowMismatch(RuntimeError):
    """PHALP asked a replayed model for something other than what the window computed."""


class WindowModels(Protocol):
    """What the driver needs from the PHALP object beyond PHALP's own API."""

    def detect_window(self, images: Sequence[np.ndarray]) -> list[Any]:
        """The detector's raw output for each image, as ``self.detector(image)`` returns it."""

    def features_window(self, crops_per_frame: Sequence[Sequence[Any]]) -> list[tuple[dict, Any] | None]:
        """For each frame's crops (``get_croped_image``'s first value): ``(HMAR(stack(crops)),
        autoencoder_hmar(uv_vector, en=True))`` as one batched computation; ``None`` for a frame
        without crops."""


@dataclass
class PerceivedFrame:
    """One frame of a window after perception, before tracking."""

    t: int  # PHALP's t_
    frame_name: str
    image: np.ndarray
    measurements: list[int]
    detections: tuple = ()  # get_detections' 7 values; () when the detector skipped this frame
    extra: list = field(default_factory=list)  # run_additional_models' value
    crops: list[tuple] = field(default_factory=list)  # get_croped_image's values, kept people only
    features: tuple[dict, Any] | None = None  # features_window's value for this frame

    @property
    def detected(self) -> bool:
        return bool(self.detections)


def kept_people(phalp: Any, bbox: np.ndarray) -> list[int]:
    """The detections ``get_human_features`` crops: PHALP drops boxes narrower than ``small_w``
    or lower than ``small_h`` pixels (PHALP.py:394-395). Replay checks the two agree."""
    small_w, small_h = phalp.cfg.phalp.small_w, phalp.cfg.phalp.small_h
    return [p for p in range(len(bbox)) if not (bbox[p][2] - bbox[p][0] < small_w or bbox[p][3] - bbox[p][1] < small_h)]


def crop_people(phalp: Any, frame: PerceivedFrame) -> list[tuple]:
    bbox, bbox_pad, masks = frame.detections[0], frame.detections[1], frame.detections[2]
    return [phalp.get_croped_image(frame.image, bbox[p], bbox_pad[p], masks[p]) for p in kept_people(phalp, bbox)]


@contextmanager
def replaying_detector(phalp: Any, image: np.ndarray, output: Any) -> Iterator[None]:
    """``phalp.detector(image)`` returns ``output`` (computed in the window's batch), once."""
    original = phalp.detector
    pending = [output]

    def replay(asked: np.ndarray) -> Any:
        if asked is not image or not pending:
            raise WindowMismatch("the detector was asked for an image the window did not detect")
        return pending.pop()

    phalp.detector = replay
    try:
        yield
    finally:
        phalp.detector = original


@contextmanager
def replaying_features(phalp: Any, frame: PerceivedFrame) -> Iterator[None]:
    """Inside ``get_human_features``: crops, HMR 2.0 and the appearance encoder come from the window.

    Instance attributes shadow the methods for the duration (works on torch modules too: they are
    plain attributes, not submodules), and are removed afterwards.
    """
    hmar = phalp.HMAR
    crops = list(frame.crops)
    hmar_out, appearance = frame.features if frame.features is not None else (None, None)

    def replay_crop(image: np.ndarray, bbox: Any, bbox_pad: Any, seg_mask: Any) -> tuple:
        if not crops or image is not frame.image:
            raise WindowMismatch(f"{frame.frame_name}: get_human_features cropped more people than the window")
        crop = crops.pop(0)
        if not np.allclose(crop[1], [(bbox[2] + bbox[0]) / 2, (bbox[3] + bbox[1]) / 2]):
            raise WindowMismatch(f"{frame.frame_name}: get_human_features cropped another box than the window")
        return crop

    def replay_hmar(batch: Any, **_: Any) -> dict:
        if hmar_out is None or crops or len(batch) != len(frame.crops):
            raise WindowMismatch(f"{frame.frame_name}: HMR 2.0 asked for {len(batch)} crops, the window has {len(frame.crops)}")
        return hmar_out

    def replay_appearance(uv_vector: Any, en: bool = True) -> Any:
        if not en or hmar_out is None or uv_vector is not hmar_out["uv_vector"]:
            raise WindowMismatch(f"{frame.frame_name}: the appearance encoder was asked for another texture")
        return appearance

    phalp.get_croped_image = replay_crop
    hmar.forward = replay_hmar
    hmar.autoencoder_hmar = replay_appearance
    try:
        yield
    finally:
        del phalp.get_croped_image, hmar.forward, hmar.autoencoder_hmar
    if crops:
        raise WindowMismatch(f"{frame.frame_name}: get_human_features used fewer crops than the window computed")


def split_batch(value: Any, sizes: Sequence[int]) -> list[Any]:
    """Slice a batched model output (tensor, array, or dict of them, nested) into per-frame parts."""
    parts, start = [], 0
    for size in sizes:
        parts.append(_take(value, start, start + size))
        start += size
    return parts


def _take(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, dict):
        return {key: _take(item, start, stop) for key, item in value.items()}
    return value[start:stop]
