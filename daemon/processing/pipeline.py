"""The streaming engine: decode -> backend -> write, overlapped, with bounded hand-offs.

Three stages run at once: a decoder thread, the backend on the calling thread (models are not
thread-safe, and CUDA contexts prefer one thread), and a writer thread. Queues between them hold
at most ``queue_frames`` items, so a slow stage stalls the one before it (back-pressure) and
memory never grows with the video. Any stage failing stops the others and the first error is
re-raised on the calling thread; threads are always joined before returning.

A backend may define ``preprocess(frame) -> Frame`` (colour conversion, resizing): it runs on the
decoder thread, so that work overlaps inference instead of adding to it (issue 6). Its time is
reported as the ``preprocess`` stage.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from daemon.processing.backends.base import Backend
from daemon.errors import ErrorCode, JobCancelled, JobError
from daemon.records import Frame, FrameResult

_END = object()  # sentinel closing a queue
_PUT_POLL_S = 0.1
MAX_HELD_FRAMES = 512  # a backend holding back more than this is broken, not buffering


@dataclass
class PipelineStats:
    frames_decoded: int = 0
    frames_written: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "backend": 0.0, "write": 0.0})


class _Stop(Exception):
    """Internal: another stage failed; unwind quietly."""


class _Channel:
    """A bounded queue whose blocking calls give up when the pipeline is stopping."""

    def __init__(self, size: int, stopping: threading.Event) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stopping = stopping

    def put(self, item: object) -> None:
        while True:
            if self._stopping.is_set():
                raise _Stop
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> object:
        while True:
            if self._stopping.is_set():
                raise _Stop
            try:
                return self._queue.get(timeout=_PUT_POLL_S)
            except queue.Empty:
                continue


def run_pipeline(
    frames: Iterator[Frame],
    backend: Backend,
    sink: Callable[[FrameResult], None],
    *,
    queue_frames: int = 8,
    threaded: bool = True,
    cancelled: Callable[[], bool] = lambda: False,
    on_frame: Callable[[int], None] = lambda index: None,
) -> PipelineStats:
    """Feed every frame through ``backend`` and every result to ``sink``, in frame order.

    ``on_frame(index)`` runs on the backend's thread just before a frame enters the model: the
    progress heartbeat, and after a crash the exact frame that was in flight.
    """
    if not threaded:
        return _run_sequential(frames, backend, sink, cancelled, on_frame)
    preprocess = _preprocess_hook(backend)
    stats = _new_stats(preprocess)
    stopping = threading.Event()
    errors: list[BaseException] = []
    decoded = _Channel(queue_frames, stopping)
    finished = _Channel(queue_frames, stopping)
    order = _OrderCheck()

    def fail(exc: BaseException) -> None:
        if not isinstance(exc, _Stop):
            errors.append(exc)
        stopping.set()

    def decode() -> None:
        try:
            source = iter(frames)
            while (frame := _next_frame(source, preprocess, stats)) is not None:
                decoded.put(frame)
            decoded.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)

    def write() -> None:
        try:
            while (result := finished.get()) is not _END:
                start = time.perf_counter()
                sink(result)  # type: ignore[arg-type]
                stats.stage_seconds["write"] += time.perf_counter() - start
                stats.frames_written += 1
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    threads = [threading.Thread(target=decode, name="posed-decode"), threading.Thread(target=write, name="posed-write")]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        while (frame := decoded.get()) is not _END:
            if cancelled():
                raise JobCancelled("cancelled by the supervisor")
            on_frame(frame.index)  # type: ignore[attr-defined]
            start = time.perf_counter()
            results = backend.process(frame)  # type: ignore[arg-type]
            spent = time.perf_counter() - start
            stats.stage_seconds["backend"] += spent
            order.fed(frame.index, spent)  # type: ignore[attr-defined]
            for result in order.released(results):
                finished.put(result)
        start = time.perf_counter()
        results = backend.finish()
        stats.stage_seconds["backend"] += time.perf_counter() - start
        for result in order.released(results):
            finished.put(result)
        order.check_complete()
        finished.put(_END)
    except BaseException as exc:  # noqa: BLE001
        fail(exc)
    finally:
        for thread in threads:
            thread.join()
    stats.wall_seconds = time.perf_counter() - wall
    if errors:
        raise errors[0]
    return stats


def _run_sequential(
    frames: Iterator[Frame],
    backend: Backend,
    sink: Callable[[FrameResult], None],
    cancelled: Callable[[], bool],
    on_frame: Callable[[int], None],
) -> PipelineStats:
    """The same contract without overlap: the baseline the bench compares against."""
    preprocess = _preprocess_hook(backend)
    stats = _new_stats(preprocess)
    order = _OrderCheck()
    wall = time.perf_counter()

    def emit(results: list[FrameResult]) -> None:
        for result in order.released(results):
            start = time.perf_counter()
            sink(result)
            stats.stage_seconds["write"] += time.perf_counter() - start
            stats.frames_written += 1

    source = iter(frames)
    while (frame := _next_frame(source, preprocess, stats)) is not None:
        if cancelled():
            raise JobCancelled("cancelled by the supervisor")
        on_frame(frame.index)
        start = time.perf_counter()
        results = backend.process(frame)
        spent = time.perf_counter() - start
        stats.stage_seconds["backend"] += spent
        order.fed(frame.index, spent)
        emit(results)
    start = time.perf_counter()
    results = backend.finish()
    stats.stage_seconds["backend"] += time.perf_counter() - start
    emit(results)
    order.check_complete()
    stats.wall_seconds = time.perf_counter() - wall
    return stats


Preprocess = Callable[[Frame], Frame]


def _preprocess_hook(backend: Backend) -> Preprocess | None:
    hook = getattr(backend, "preprocess", None)
    return hook if callable(hook) else None


def _new_stats(preprocess: Preprocess | None) -> PipelineStats:
    stats = PipelineStats()
    if preprocess is not None:
        stats.stage_seconds["preprocess"] = 0.0
    return stats


def _next_frame(source: Iterator[Frame], preprocess: Preprocess | None, stats: PipelineStats) -> Frame | None:
    """Decode (and preprocess) one frame, timing each; None at the end of the video."""
    start = time.perf_counter()
    frame = next(source, None)
    stats.stage_seconds["decode"] += time.perf_counter() - start
    if frame is None:
        return None
    stats.frames_decoded += 1
    if preprocess is not None:
        start = time.perf_counter()
        frame = preprocess(frame)
        stats.stage_seconds["preprocess"] += time.perf_counter() - start
    return frame


class _OrderCheck:
    """Enforces the backend contract: one result per fed frame, in feed order.

    Also stamps each result with the backend time of the call that consumed its frame.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._spent: dict[int, float] = {}

    def fed(self, index: int, spent_s: float) -> None:
        self._pending.append(index)
        self._spent[index] = spent_s
        if len(self._pending) > MAX_HELD_FRAMES:
            raise JobError(ErrorCode.BACKEND, f"backend held back more than {MAX_HELD_FRAMES} frames", stage="inference", frame_index=index)

    def released(self, results: list[FrameResult]) -> list[FrameResult]:
        for result in results:
            expected = self._pending.popleft() if self._pending else None
            spent = self._spent.pop(expected, 0.0) if expected is not None else 0.0
            if not result.processing_ms:
                result.processing_ms = spent * 1000.0
            if result.index != expected:
                raise JobError(
                    ErrorCode.BACKEND,
                    f"backend returned frame {result.index} where frame {expected} was due",
                    stage="inference",
                    frame_index=result.index,
                )
        return results

    def check_complete(self) -> None:
        if self._pending:
            raise JobError(
                ErrorCode.BACKEND,
                f"backend never returned {len(self._pending)} frame(s), first {self._pending[0]}",
                stage="inference",
                frame_index=self._pending[0],
            )
