"""Types and limits shared by ``posed bench``'s runner, report and stock baseline.

They live below all three so none of them imports another in a circle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.bench.memory import MemorySampler
from daemon.config import PosedConfig
from daemon.errors import PosedError
from daemon.processing.media import VideoSource
from daemon.processing.pipeline import PipelineStats
from daemon.records import Frame

EXIT_OK = 0  # same values as daemon.cli; cli imports this module lazily
EXIT_FAILED = 1
EXIT_USAGE = 2
FLOOR_MAX_HELD_FRAMES = 300  # the backend floor loops over at most this many decoded frames...
FLOOR_MAX_HELD_BYTES = 2 * 1024**3  # ...and at most this much image memory (300 4K frames would be 7 GB)
SEQUENTIAL_MAX_FRAMES = 300  # the sequential comparison runs on a short slice: it is only context
EARLY_MARK_FRACTION = 0.10  # RSS growth is measured from 10% of the frames (after warm-up churn)
INSTALL_BENCH_EXTRA = "pip install 'posed[bench]'"


class BenchError(PosedError):
    """The bench cannot run as asked (missing extra, bad arguments, no GPU stack)."""


@dataclass
class Measured:
    """Frames through one measured loop and the wall time it took."""

    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EndToEnd(Measured):
    stats: PipelineStats = field(default_factory=PipelineStats)
    sampler: MemorySampler | None = None
    rss_early: int | None = None  # RSS at 10% of the frames (see mark_frames)
    rss_end: int | None = None  # RSS at 100% of the frames (see mark_frames)
    early_frame: int = 0
    end_frame: int = 0
    rss_after: int = 0  # RSS once the pipeline had drained and returned
    rss_peak: int = 0
    gpu_peak: int | None = None
    result_bytes: int = 0  # manifest + frames file
    person_frames: int = 0  # people written, summed over frames
    motion: dict[str, Any] | None = None  # the motion stage's summary


class LoopedClip:
    """The clip as one long video: re-opened for each pass, never held in memory.

    Frame indices continue across passes and timestamps keep rising: pass ``k`` starts one
    nominal frame after the last frame of pass ``k - 1``.
    """

    def __init__(self, path: Path, cfg: PosedConfig, *, limit: int | None, passes: int | None) -> None:
        self.path = path
        self._cfg = cfg
        self.limit = limit
        self.passes = passes

    def open(self) -> VideoSource:
        return VideoSource(self.path, self._cfg.limits, self._cfg.inbox.extensions)

    def frames(self, limit: int | None = None) -> Iterator[Frame]:
        limit = self.limit if limit is None else limit
        index, offset, done_passes = 0, 0.0, 0
        while self.passes is None or done_passes < self.passes:
            last_ts: float | None = None
            with self.open() as source:
                step = 1.0 / source.meta.nominal_fps if source.meta.nominal_fps > 0 else 1.0 / 30.0
                for frame in source.frames():
                    if limit is not None and index >= limit:
                        return
                    yield Frame(index=index, timestamp_s=offset + frame.timestamp_s, image=frame.image)
                    index += 1
                    last_ts = frame.timestamp_s
            if last_ts is None:
                return  # a clip that decodes to nothing cannot be looped
            offset += last_ts + step
            done_passes += 1
