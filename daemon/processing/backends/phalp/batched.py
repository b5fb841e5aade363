"""The detector and HMR 2.0 over a window of frames in few large batches (torch).

Imported only by ``wiring`` (after the loader's checks); ``window.py`` explains how the results
are replayed into PHALP's per-frame methods. Two batched calls per window:

- the detector, in chunks of ``MAX_IMAGES_PER_BATCH`` images: detectron2 models take a list of
  images; each image is prepared exactly as
  PHALP's ``DefaultPredictor_Lazy.__call__`` prepares its single one (channel order, the test
  resize, CHW float), so the only change is that the model sees several together;
- HMR 2.0 with its texture sampling, then PHALP's appearance encoder: over every crop of the
  window, in chunks of at most ``MAX_CROPS_PER_BATCH`` so a crowded window cannot exhaust GPU
  memory.

Precision: ``fp16``/``bf16`` run these two under ``torch.autocast``; the detector's outputs are
cast back to fp32 so PHALP's box maths downstream stays in full precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from detectron2.data import transforms as T

from daemon.processing.backends.phalp.window import split_batch

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_CROPS_PER_BATCH = 64  # ViT-H activations grow with the batch: ~10 MB a crop at inference (estimate, unmeasured)
MAX_IMAGES_PER_BATCH = 4  # Mask R-CNN on 1024-px images needs far more per image (FPN maps); unmeasured, kept small for 8 GB


def autocast(device_type: str, precision: str) -> AbstractContextManager:
    dtype = AUTOCAST_DTYPES.get(precision)
    return nullcontext() if dtype is None else torch.autocast(device_type=device_type, dtype=dtype)


def detect_images(predictor: Any, images: Sequence[np.ndarray], precision: str) -> list[dict]:
    """``[predictor(image) for image in images]``, in forward passes of several images each."""
    if not images:
        return []
    inputs = [_detector_input(predictor, image) for image in images]
    device_type = next(predictor.model.parameters()).device.type
    outputs = []
    with torch.no_grad(), autocast(device_type, precision):
        for start in range(0, len(inputs), MAX_IMAGES_PER_BATCH):
            outputs.extend(predictor.model(inputs[start : start + MAX_IMAGES_PER_BATCH]))
    if precision != "fp32":
        for output in outputs:
            _instances_to_fp32(output["instances"])
    return outputs


def _detector_input(predictor: Any, image: np.ndarray) -> dict:
    """As DefaultPredictor_Lazy.__call__ builds its one input (phalp/utils/utils_detectron2.py)."""
    if predictor.input_format == "RGB":
        image = image[:, :, ::-1]
    height, width = image.shape[:2]
    resized = predictor.aug(T.AugInput(image)).apply_image(image)
    return {"image": torch.as_tensor(resized.astype("float32").transpose(2, 0, 1)), "height": height, "width": width}


def _instances_to_fp32(instances: Any) -> None:
    if instances.has("scores"):
        instances.scores = instances.scores.float()
    if instances.has("pred_boxes"):
        instances.pred_boxes.tensor = instances.pred_boxes.tensor.float()


def hmr_over_crops(hmar: Any, crops_per_frame: Sequence[Sequence[torch.Tensor]], device: torch.device) -> list[tuple[dict, torch.Tensor] | None]:
    """For each frame: ``(hmar(stack(crops)), hmar.autoencoder_hmar(uv_vector, en=True))``,
    computed over all frames' crops together; ``None`` for a frame without crops."""
    sizes = [len(crops) for crops in crops_per_frame]
    flat = [crop for crops in crops_per_frame for crop in crops]
    if not flat:
        return [None] * len(sizes)
    with torch.no_grad():
        chunks = [hmar(torch.stack(flat[i : i + MAX_CROPS_PER_BATCH]).to(device)) for i in range(0, len(flat), MAX_CROPS_PER_BATCH)]
        hmar_out = _concatenate(chunks)
        appearance = hmar.autoencoder_hmar(hmar_out["uv_vector"], en=True)
    parts = zip(split_batch(hmar_out, sizes), split_batch(appearance, sizes), sizes)
    return [(out, appe) if size else None for out, appe, size in parts]


def _concatenate(chunks: list[Any]) -> Any:
    if len(chunks) == 1:
        return chunks[0]
    if isinstance(chunks[0], dict):
        return {key: _concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    return torch.cat(chunks)
