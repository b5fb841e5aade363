"""Who stays who: ID switches, fragmentations, IDF1 and MOTA on a clip, by ``motmetrics``.

Objects are the annotated identities (PoseTrack ``track_id``), hypotheses the result's
``track_id``; the distance of a pair is ``1 - OKS`` and pairs under OKS 0.1 cannot match (the same
rule as coverage). motmetrics keeps last frame's pairs while they stay valid (CLEAR-MOT), so a
switch is counted only when an annotated person really changes track id (or a track id changes
person). MOTP here is the mean ``1 - OKS`` of matched pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from daemon.errors import EvaluationError
from daemon.evaluation.matching import MATCH_OKS, EvaluatedFrame, oks_matrix

METRICS = ("num_switches", "num_fragmentations", "idf1", "idp", "idr", "mota", "motp", "mostly_tracked", "num_unique_objects")


def identity_summary(clips: Sequence[Sequence[EvaluatedFrame]], sigmas: np.ndarray) -> dict | None:
    """One figure over several clips (each in frame order); None without a clip."""
    try:
        import motmetrics
    except ImportError as exc:
        raise EvaluationError("identity metrics need motmetrics: pip install 'posed[eval]'") from exc
    accumulators = [_accumulate(clip, sigmas, motmetrics) for clip in clips if clip]
    if not accumulators:
        return None
    host = motmetrics.metrics.create()
    names = [str(i) for i in range(len(accumulators))]
    logging.disable(logging.INFO)  # motmetrics logs its timings on the root logger
    try:
        table = host.compute_many(accumulators, metrics=list(METRICS), names=names, generate_overall=True)
    finally:
        logging.disable(logging.NOTSET)
    overall = table.loc["OVERALL"]
    summary = {name: _plain(overall[name]) for name in METRICS}
    summary["clips"] = len(accumulators)
    return summary


def _accumulate(clip: Sequence[EvaluatedFrame], sigmas: np.ndarray, motmetrics):
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for frame in clip:
        similarity = oks_matrix([(p.keypoints, p.area) for p in frame.annotated], [p.keypoints for p in frame.predicted], sigmas)
        distance = 1.0 - similarity
        distance[similarity < MATCH_OKS] = np.nan  # motmetrics: nan = may not be paired
        accumulator.update([p.identity for p in frame.annotated], [p.track_id for p in frame.predicted], distance)
    return accumulator


def _plain(value) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None if value is None or np.isnan(value) else float(value)
