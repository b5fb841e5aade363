"""The streaming pipeline with real threads: back-pressure, shutdown, errors, order contract.

Fake backends and sinks are defined here. Nothing asserts on time: back-pressure is shown by
blocking one stage until the others have filled every bounded hand-off, then checking how far
the decoder got (exactly the bound, never more); each test fails on leaked ``posed-*`` threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from daemon.processing.backends.base import Backend
from daemon.errors import ErrorCode, JobCancelled, JobError
from daemon.processing.pipeline import run_pipeline
from daemon.records import BackendInfo, Frame, FrameResult
from tests.helpers import wait_until

QUEUE = 4
IMAGE = np.zeros((2, 2, 3), dtype=np.uint8)
DEADLINE_S = 10.0
MODES = [pytest.param(True, id="threaded"), pytest.param(False, id="sequential")]


class CountingFrames:
    """A frame source that counts what it yielded; ``total=None`` never ends."""

    def __init__(self, total: int | None, *, fail_at: int | None = None) -> None:
        self.total = total
        self.fail_at = fail_at
        self.decoded = 0

    def __iter__(self) -> Iterator[Frame]:
        for index in itertools.count() if self.total is None else range(self.total):
            if index == self.fail_at:
                raise OSError(f"decoder broke at frame {index}")
            self.decoded += 1
            yield Frame(index=index, timestamp_s=index / 30.0, image=IMAGE)


class EchoBackend(Backend):
    """One result per frame, immediately; hooks let a test block or break it."""

    def __init__(self, before_process: Callable[[Frame], None] = lambda frame: None) -> None:
        self.fed = 0
        self._before_process = before_process

    def load(self, progress):  # pragma: no cover - the pipeline never loads
        return BackendInfo(name="echo", version="0", model_version="0", device="cpu", keypoint_names=())

    def start_video(self, meta, options) -> None:  # pragma: no cover
        pass

    def process(self, frame: Frame) -> list[FrameResult]:
        self._before_process(frame)
        self.fed += 1
        return [FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, people=[])]


class HoldingBackend(EchoBackend):
    """Returns nothing until ``finish``, then everything: legal, the pipeline must keep order."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[FrameResult] = []

    def process(self, frame: Frame) -> list[FrameResult]:
        self._held.extend(super().process(frame))
        return []

    def finish(self) -> list[FrameResult]:
        held, self._held = self._held, []
        return held


class SwappingBackend(HoldingBackend):
    """Releases frames in pairs, second before first: breaks the order contract."""

    def process(self, frame: Frame) -> list[FrameResult]:
        super().process(frame)
        if len(self._held) < 2:
            return []
        first, second = self._held
        self._held = []
        return [second, first]


class PreprocessingBackend(EchoBackend):
    """Has the optional ``preprocess`` hook; records which thread ran it."""

    def __init__(self) -> None:
        super().__init__()
        self.preprocess_threads: set[str] = set()
        self.saw_preprocessed = True

    def preprocess(self, frame: Frame) -> Frame:
        self.preprocess_threads.add(threading.current_thread().name)
        return Frame(index=frame.index, timestamp_s=frame.timestamp_s, image=frame.image + 1)

    def process(self, frame: Frame) -> list[FrameResult]:
        self.saw_preprocessed &= bool(frame.image.min() == 1)
        return super().process(frame)


class RecordingSink:
    def __init__(self, before_write: Callable[[FrameResult], None] = lambda result: None) -> None:
        self.indices: list[int] = []
        self._before_write = before_write

    def __call__(self, result: FrameResult) -> None:
        self._before_write(result)
        self.indices.append(result.index)


def pipeline_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("posed-")]


@pytest.fixture(autouse=True)
def no_leaked_pipeline_threads():
    yield
    assert pipeline_threads() == [], "a pipeline thread outlived run_pipeline"


def test_slow_writer_stops_the_decoder_at_the_bound():
    # With the writer stuck on frame 0, every hand-off fills: QUEUE results queued + 1 held by
    # the backend thread (blocked on put) + QUEUE frames queued + 1 held by the decoder
    # (blocked on put), plus frame 0 itself: 2 * QUEUE + 3 frames decoded, and not one more.
    bound = 2 * QUEUE + 3
    frames = CountingFrames(200)
    leads: list[int] = []

    def stuck_then_slow(result: FrameResult) -> None:
        if result.index == 0:
            wait_until(lambda: frames.decoded >= bound, DEADLINE_S, "the pipeline never filled up")
            time.sleep(0.05)  # give an unbounded decoder the chance to overrun; not a timing check
        leads.append(frames.decoded - len(sink.indices))

    sink = RecordingSink(stuck_then_slow)
    stats = run_pipeline(iter(frames), EchoBackend(), sink, queue_frames=QUEUE)
    assert sink.indices == list(range(200))
    assert max(leads) == bound
    assert stats.frames_decoded == stats.frames_written == 200


def test_slow_backend_stops_the_decoder_at_the_bound():
    # Backend stuck on frame 0: QUEUE frames queued + 1 in the decoder's hand, beyond frame 0.
    bound = QUEUE + 1
    frames = CountingFrames(100)
    leads: list[int] = []
    backend: EchoBackend

    def stuck_then_slow(frame: Frame) -> None:
        if frame.index == 0:
            wait_until(lambda: frames.decoded >= bound + 1, DEADLINE_S, "the decoder never filled its queue")
            time.sleep(0.05)
        leads.append(frames.decoded - (backend.fed + 1))

    backend = EchoBackend(stuck_then_slow)
    run_pipeline(iter(frames), backend, RecordingSink(), queue_frames=QUEUE)
    assert max(leads) == bound


@pytest.mark.parametrize("threaded", MODES)
def test_backend_crash_mid_video_propagates_and_stops_every_stage(threaded):
    frames = CountingFrames(None)

    def crash(frame: Frame) -> None:
        if frame.index == 7:
            raise RuntimeError("model blew up at frame 7")

    sink = RecordingSink()
    with pytest.raises(RuntimeError, match="frame 7"):
        run_pipeline(iter(frames), EchoBackend(crash), sink, queue_frames=QUEUE, threaded=threaded)
    assert sink.indices == list(range(len(sink.indices)))
    assert len(sink.indices) <= 7
    assert frames.decoded <= 7 + QUEUE + 2  # the endless decoder was stopped, not drained


@pytest.mark.parametrize("threaded", MODES)
def test_decoder_crash_propagates_after_the_frames_before_it(threaded):
    frames = CountingFrames(50, fail_at=12)
    sink = RecordingSink()
    with pytest.raises(OSError, match="frame 12"):
        run_pipeline(iter(frames), EchoBackend(), sink, queue_frames=QUEUE, threaded=threaded)
    assert sink.indices == list(range(len(sink.indices)))
    assert frames.decoded == 12


@pytest.mark.parametrize("threaded", MODES)
def test_writer_crash_propagates_and_stops_an_endless_decoder(threaded):
    frames = CountingFrames(None)

    def crash(result: FrameResult) -> None:
        if result.index == 3:
            raise OSError(28, "No space left on device")

    sink = RecordingSink(crash)
    with pytest.raises(OSError, match="No space left"):
        run_pipeline(iter(frames), EchoBackend(), sink, queue_frames=QUEUE, threaded=threaded)
    assert sink.indices == [0, 1, 2]
    assert frames.decoded <= 2 * QUEUE + 3 + 3


@pytest.mark.parametrize("threaded", MODES)
def test_cancellation_stops_the_pipeline_with_job_cancelled(threaded):
    frames = CountingFrames(None)
    backend = EchoBackend()
    with pytest.raises(JobCancelled):
        run_pipeline(iter(frames), backend, RecordingSink(), queue_frames=QUEUE, threaded=threaded, cancelled=lambda: backend.fed >= 20)
    assert backend.fed == 20
    assert frames.decoded <= 20 + QUEUE + 2


@pytest.mark.parametrize("threaded", MODES)
def test_frames_held_back_until_finish_are_written_in_order(threaded):
    sink = RecordingSink()
    stats = run_pipeline(iter(CountingFrames(60)), HoldingBackend(), sink, queue_frames=QUEUE, threaded=threaded)
    assert sink.indices == list(range(60))
    assert stats.frames_written == 60


@pytest.mark.parametrize("threaded", MODES)
def test_results_out_of_order_fail_the_job(threaded):
    sink = RecordingSink()
    with pytest.raises(JobError) as caught:
        run_pipeline(iter(CountingFrames(10)), SwappingBackend(), sink, queue_frames=QUEUE, threaded=threaded)
    assert caught.value.code is ErrorCode.BACKEND
    assert "frame 1 where frame 0 was due" in caught.value.message
    assert sink.indices == []


@pytest.mark.parametrize("threaded", MODES)
def test_a_frame_never_returned_fails_the_job(threaded):
    class ForgetfulBackend(HoldingBackend):
        def finish(self) -> list[FrameResult]:
            return super().finish()[:-1]

    with pytest.raises(JobError, match="never returned 1 frame"):
        run_pipeline(iter(CountingFrames(5)), ForgetfulBackend(), RecordingSink(), queue_frames=QUEUE, threaded=threaded)


@pytest.mark.parametrize("threaded", MODES)
def test_preprocess_hook_runs_before_the_backend_and_is_timed(threaded):
    backend = PreprocessingBackend()
    sink = RecordingSink()
    stats = run_pipeline(iter(CountingFrames(30)), backend, sink, queue_frames=QUEUE, threaded=threaded)
    assert sink.indices == list(range(30))
    assert backend.saw_preprocessed
    assert set(stats.stage_seconds) == {"decode", "preprocess", "backend", "write"}
    expected_thread = "posed-decode" if threaded else threading.current_thread().name
    assert backend.preprocess_threads == {expected_thread}


def test_backends_without_preprocess_report_three_stages():
    stats = run_pipeline(iter(CountingFrames(3)), EchoBackend(), RecordingSink(), queue_frames=QUEUE)
    assert set(stats.stage_seconds) == {"decode", "backend", "write"}


def test_on_frame_sees_every_index_on_the_calling_thread():
    seen: list[tuple[int, str]] = []
    run_pipeline(
        iter(CountingFrames(25)),
        EchoBackend(),
        RecordingSink(),
        queue_frames=QUEUE,
        on_frame=lambda index: seen.append((index, threading.current_thread().name)),
    )
    assert [index for index, _ in seen] == list(range(25))
    assert {name for _, name in seen} == {threading.current_thread().name}
