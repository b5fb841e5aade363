"""The backend interface: load once, then per video start, feed frames, finish.

A backend may hold frames back (PHALP back-fills a newly confirmed track into the previous
``n_init - 1`` frames), so ``process`` returns the results that are now final, in frame
order, possibly none; ``finish`` returns the rest. Over one video the pipeline checks that
exactly one ``FrameResult`` comes back per frame fed, in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, VideoMeta

LoadProgress = Callable[[str], None]
"""Called with a human-readable description of what is being loaded (goes into status)."""


class Backend(ABC):
    """A pose backend. Not thread-safe: one instance per worker, one video at a time."""

    @abstractmethod
    def load(self, progress: LoadProgress) -> BackendInfo:
        """Load models. Raise ``BackendUnavailable`` with the fix when something is missing."""

    @abstractmethod
    def start_video(self, meta: VideoMeta, options: JobOptions) -> None:
        """Reset per-video state (tracker, ids) before the first frame."""

    @abstractmethod
    def process(self, frame: Frame) -> list[FrameResult]:
        """Consume one frame; return the results that are now final (in order)."""

    # Optional: ``preprocess(frame) -> Frame``. When a backend defines it, the pipeline runs it
    # on the decoder thread (colour conversion, resizing), overlapping the previous inference.

    def finish(self) -> list[FrameResult]:
        """Flush held-back results at the end of the video."""
        return []

    def summary(self) -> dict[str, int]:
        """Counts about the video just finished, merged into the result's ``summary``."""
        return {}

    def close(self) -> None:
        """Release models (process exit does it too)."""
