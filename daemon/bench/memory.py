"""Measuring this process's memory while it works: RSS (and CUDA memory) over time.

A sampler thread reads RSS at a fixed interval together with a progress counter, so a run
yields a series (seconds, RSS, frames done) from which ``posed bench`` derives frames/s over
time, RSS at given fractions of the frames, and the peak. A sampled peak can miss a short
spike, so the kernel's own high-water mark (``VmHWM``) is reset before a run and read after
it where Linux allows (``/proc/self/clear_refs``, proc(5)).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_INTERVAL_S = 0.2  # 5 samples/s: ~1000 points for an 18,000-frame run at ~90 frames/s
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_RESET_PEAK_RSS = "5"  # proc(5): writing 5 to clear_refs resets the peak RSS (VmHWM)


@dataclass(frozen=True)
class MemorySample:
    seconds: float  # since the sampler started
    rss_bytes: int
    frames_done: int
    gpu_bytes: int | None = None  # CUDA memory allocated by torch, when measured


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    """``VmHWM`` from /proc/self/status: the highest RSS since start or the last reset."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        return None
    return None


class MemorySampler:
    """Samples RSS every ``interval_s`` on a daemon thread named ``posed-memory``.

    ``frames_done`` is read at each sample (it must be cheap and thread-safe to call, e.g. a
    counter read); ``gpu_bytes`` likewise, or None when no GPU is measured.
    """

    def __init__(
        self,
        frames_done: Callable[[], int],
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        gpu_bytes: Callable[[], int] | None = None,
    ) -> None:
        self._frames_done = frames_done
        self._gpu_bytes = gpu_bytes
        self._interval_s = interval_s
        self._should_exit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="posed-memory", daemon=True)
        self._lock = threading.Lock()
        self._started = 0.0
        self.samples: list[MemorySample] = []

    def start(self) -> MemorySampler:
        self._started = time.perf_counter()
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._should_exit.set()
        self._thread.join()
        self.sample()

    def sample(self) -> MemorySample:
        """Take one sample now (also called at marks, e.g. 10% and 100% of the frames)."""
        sample = MemorySample(
            seconds=time.perf_counter() - self._started,
            rss_bytes=rss_bytes(),
            frames_done=self._frames_done(),
            gpu_bytes=self._gpu_bytes() if self._gpu_bytes is not None else None,
        )
        with self._lock:
            self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._should_exit.wait(self._interval_s):
            self.sample()

    def ordered(self) -> list[MemorySample]:
        with self._lock:
            return sorted(self.samples, key=lambda sample: sample.seconds)

    def first_at(self, frames: int) -> MemorySample | None:
        """The earliest sample taken once at least ``frames`` frames were done."""
        return next((sample for sample in self.ordered() if sample.frames_done >= frames), None)

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
