"""``posed bench``: how fast and how lean the real pipeline is, against its own floors.

One run measures, on the same frames and in the same process (issue 6):

1. ready: process start to a loaded, warmed-up backend;
2. end to end: the real pipeline (``VideoSource`` decode -> backend -> ``ResultWriter`` into a
   temp file), with an RSS sampler and RSS marks at 10% and 100% of the frames;
3. the decode floor: decoding the same frames and nothing else;
4. the backend floor: the backend alone on pre-decoded frames (a bounded set held in memory,
   looped to the same frame count);
5. optionally a sequential run (no overlap) on a short slice, and PHALP's stock loop (GPU).

The overhead ratio is end-to-end time / max(decode floor time, backend floor time): 1.0 means
the pipeline is as fast as its slowest part alone. Floors run after the end-to-end run so that
the frames they hold never inflate its memory figures.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from daemon.processing.backends import create_backend
from daemon.processing.backends.base import Backend
from daemon.config import PosedConfig
from daemon.clock import utc_now
from daemon.log import get_logger
from daemon.bench.machine import MachineRecord
from daemon.bench.memory import MemorySampler, peak_rss_bytes, reset_peak_rss
from daemon.processing.pipeline import PipelineStats, run_pipeline
from daemon.bench.types import (
    EARLY_MARK_FRACTION,
    EXIT_OK,
    FLOOR_MAX_HELD_BYTES,
    FLOOR_MAX_HELD_FRAMES,
    SEQUENTIAL_MAX_FRAMES,
    BenchError,
    EndToEnd,
    LoopedClip,
    Measured,
)
from daemon.processing.motion import MotionStage
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, VideoMeta
from daemon.publishing.results import RESULT_SCHEMA, RESULT_SCHEMA_VERSION, ResultWriter

log = get_logger("posed.bench")

def run_bench(cfg: PosedConfig, args: argparse.Namespace) -> int:
    """Measure, then print the table and write the JSON and plot that were asked for."""
    from daemon.bench import report as bench_report
    from daemon.bench import stock as bench_stock

    if args.frames is not None and args.frames < 1 or args.loop < 1:
        raise BenchError("--frames and --loop must be at least 1")
    if args.plot is not None:
        bench_report.require_matplotlib()
    if args.baseline == "stock":
        bench_stock.check_stock_baseline(cfg)  # fail before minutes of measuring, not after
    machine = MachineRecord()  # load average and CPU times before anything is measured
    clip = LoopedClip(args.video, cfg, limit=args.frames, passes=None if args.frames else args.loop)
    with clip.open() as probe:
        meta = probe.meta
    backend = create_backend(cfg)
    try:
        figures = _measure(cfg, clip, meta, backend, args)
    finally:
        backend.close()
    figures["machine"] = machine.finish()
    bench_report.write_outputs(figures, args)
    return EXIT_OK


def _measure(cfg: PosedConfig, clip: LoopedClip, meta: VideoMeta, backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    from daemon.bench import report as bench_report
    from daemon.bench import stock as bench_stock

    load_started = time.perf_counter()
    info = backend.load(lambda what: log.info("bench.loading", what=what))
    load_seconds = time.perf_counter() - load_started
    load_rss_peak = peak_rss_bytes()  # VmHWM since process start: imports and model loading
    warmup_seconds = _warm_up(backend, clip, meta)
    ready_seconds = time.time() - psutil.Process().create_time()
    expected = _expected_frames(clip, meta)
    log.info("bench.end_to_end", frames=expected, video=str(clip.path))
    end_to_end = measure_end_to_end(cfg, clip, meta, backend, info, expected)
    frames = end_to_end.frames
    log.info("bench.decode_floor", frames=frames)
    decode_floor = measure_decode_floor(clip, frames)
    log.info("bench.backend_floor", frames=frames)
    backend_floor, held = measure_backend_floor(clip, meta, backend, frames)
    sequential = measure_sequential(cfg, clip, meta, backend, info, min(frames, SEQUENTIAL_MAX_FRAMES))
    baseline = None
    if args.baseline == "stock":
        baseline = bench_stock.measure_stock_baseline(backend, clip, frames)
    return bench_report.build_figures(
        cfg=cfg,
        video=clip.path,
        meta=meta,
        info=info,
        end_to_end=end_to_end,
        decode_floor=decode_floor,
        backend_floor=backend_floor,
        held_frames=held,
        sequential=sequential,
        timing={"ready_seconds": ready_seconds, "load_seconds": load_seconds, "warmup_seconds": warmup_seconds,
                "load_rss_peak": load_rss_peak, "synthetic_weights": bool(getattr(args, "synthetic_weights", False))},
        baseline=baseline,
        clip_frames=meta.frame_count_estimate,
    )


def _expected_frames(clip: LoopedClip, meta: VideoMeta) -> int | None:
    if clip.limit is not None:
        return clip.limit
    if meta.frame_count_estimate is not None and clip.passes is not None:
        return meta.frame_count_estimate * clip.passes  # an estimate: marks fall back to samples
    return None


def _warm_up(backend: Backend, clip: LoopedClip, meta: VideoMeta) -> float:
    """One frame through the backend, so the first measured frame is not a cold start."""
    started = time.perf_counter()
    backend.start_video(meta, JobOptions())
    for frame in clip.frames(limit=1):
        backend.process(_preprocessed(backend, frame))
    backend.finish()
    return time.perf_counter() - started


def _preprocessed(backend: Backend, frame: Frame) -> Frame:
    preprocess: Callable[[Frame], Frame] | None = getattr(backend, "preprocess", None)
    return preprocess(frame) if preprocess is not None else frame


class _ResultFile:
    """A real result document in a temp dir, written as the daemon writes one."""

    def __init__(self, directory: Path, name: str, meta: VideoMeta, info: BackendInfo) -> None:
        header = {
            "schema": RESULT_SCHEMA,
            "schema_version": RESULT_SCHEMA_VERSION,
            "status": "ok",
            "job_id": f"bench-{name}",
            "input": {"name": Path(meta.path).name, "path": meta.path, "windows_path": None, "bytes": meta.file_bytes},
            "backend": info.to_json(),
            "options": JobOptions().to_json(),
            "created_at": utc_now(),
        }
        self.path = directory / f"{name}.result.json"
        self.writer = ResultWriter(self.path, header, info, (meta.width, meta.height))

    def close(self, meta: VideoMeta, stats: PipelineStats) -> int:
        video = meta.to_json() | {"decoded_frame_count": stats.frames_decoded}
        self.writer.close({"video": video, "summary": {"frames": self.writer.frames_written} | self.writer.size_figures()})
        self.people_written = self.writer.people_written
        return self.path.stat().st_size + self.writer.frames.bytes  # manifest + frames file


def mark_frames(total: int, queue_frames: int) -> dict[str, int]:
    """The written-frame counts at which RSS is read for "10%" and "100%" of ``total``.

    "100%" is the last frame written while the pipeline is still full: after it the decoder
    closes the video and the queues drain, which frees tens of MB (1080p) and would hide that
    much growth. 2 * queue_frames + 4 frames before the end, both marks see the same state:
    full queues, an open decoder.
    """
    early = max(1, math.ceil(total * EARLY_MARK_FRACTION))
    return {"early": early, "end": max(early, total - (2 * queue_frames + 4))}


class _MarkingSink:
    """The daemon's sink (the motion stage, then one frame into the result file) plus what the
    bench watches: a written-frames counter for the sampler, and RSS read at the ``marks``."""

    def __init__(self, writer: ResultWriter, marks: dict[str, int], motion: MotionStage) -> None:
        self._writer = writer
        self.motion = motion
        self._mark_at = {frame: name for name, frame in marks.items()}
        self.written = 0
        self.marks: dict[str, int] = {}
        self.sampler: MemorySampler | None = None

    def __call__(self, frame_result: FrameResult) -> None:
        for final in self.motion.push(frame_result):
            self._write(final)

    def flush(self) -> None:
        for final in self.motion.finish():
            self._write(final)

    def _write(self, frame_result: FrameResult) -> None:
        self._writer.write_frame(frame_result)
        self.written += 1
        name = self._mark_at.get(self.written)
        if name is not None and self.sampler is not None:
            self.marks[name] = self.sampler.sample().rss_bytes


def measure_end_to_end(
    cfg: PosedConfig, clip: LoopedClip, meta: VideoMeta, backend: Backend, info: BackendInfo, expected: int | None
) -> EndToEnd:
    """The real pipeline with memory sampling; RSS marks at 10% and 100% of ``expected``."""
    gpu = _CudaMemory.for_device(info.device)
    with tempfile.TemporaryDirectory(prefix="posed-bench-") as tmp:
        result = _ResultFile(Path(tmp), "end-to-end", meta, info)
        motion = MotionStage(cfg.motion, meta.nominal_fps)
        sink = _MarkingSink(result.writer, mark_frames(expected, cfg.pipeline.queue_frames) if expected else {}, motion)
        sampler = sink.sampler = MemorySampler(lambda: sink.written, gpu_bytes=gpu.allocated if gpu else None)
        backend.start_video(meta, JobOptions())
        has_kernel_peak = reset_peak_rss()
        sampler.start()
        started = time.perf_counter()
        try:
            stats = run_pipeline(
                clip.frames(), backend, sink, queue_frames=cfg.pipeline.queue_frames, threaded=cfg.pipeline.threaded
            )
            sink.flush()
            result_bytes = result.close(meta, stats)
            person_frames = result.people_written
        except BaseException:
            result.writer.abort()
            raise
        finally:
            seconds = time.perf_counter() - started
            sampler.stop()
    run = EndToEnd(frames=sink.written, seconds=seconds, stats=stats, sampler=sampler, result_bytes=result_bytes,
                   person_frames=person_frames, motion=motion.summary())
    # A wrong container frame count puts the live marks at the wrong frames: use the series.
    live_marks = sink.marks if expected == run.frames else {}
    _fill_memory_marks(run, live_marks, mark_frames(run.frames, cfg.pipeline.queue_frames), has_kernel_peak)
    run.gpu_peak = gpu.peak() if gpu else None
    return run


def _fill_memory_marks(run: EndToEnd, live_marks: dict[str, int], wanted: dict[str, int], has_kernel_peak: bool) -> None:
    sampler = run.sampler
    assert sampler is not None
    samples = sampler.ordered()
    for name, frame in wanted.items():
        if name not in live_marks:
            sample = sampler.first_at(frame)
            live_marks[name] = (sample or samples[-1]).rss_bytes
    run.early_frame, run.end_frame = wanted["early"], wanted["end"]
    run.rss_early, run.rss_end = live_marks["early"], live_marks["end"]
    run.rss_after = samples[-1].rss_bytes
    kernel_peak = peak_rss_bytes() if has_kernel_peak else None
    run.rss_peak = max(max(sample.rss_bytes for sample in samples), kernel_peak or 0)


def measure_decode_floor(clip: LoopedClip, frames: int) -> Measured:
    """Decode the same frames (same looping, same reader), doing nothing with them."""
    count = 0
    started = time.perf_counter()
    for _ in clip.frames(limit=frames):
        count += 1
    return Measured(frames=count, seconds=time.perf_counter() - started)


def held_frame_count(meta: VideoMeta, frames: int) -> int:
    """At most one pass of the clip (so the floor loops it as the end-to-end run does), 300
    frames and 2 GiB of images."""
    frame_bytes = max(1, meta.width * meta.height * 3)
    clip = meta.frame_count_estimate or frames
    return max(1, min(frames, clip, FLOOR_MAX_HELD_FRAMES, FLOOR_MAX_HELD_BYTES // frame_bytes))


def measure_backend_floor(clip: LoopedClip, meta: VideoMeta, backend: Backend, frames: int) -> tuple[Measured, int]:
    """The backend alone on frames decoded beforehand, looped to ``frames``.

    A backend ``preprocess`` hook (which the pipeline runs on the decode thread) is timed here
    as backend work, so moving work off the backend thread never flatters this floor.
    """
    held = list(clip.frames(limit=held_frame_count(meta, frames)))
    step = 1.0 / meta.nominal_fps if meta.nominal_fps > 0 else 1.0 / 30.0
    backend.start_video(meta, JobOptions())
    returned = 0
    started = time.perf_counter()
    for index in range(frames):
        image = held[index % len(held)].image
        returned += len(backend.process(_preprocessed(backend, Frame(index=index, timestamp_s=index * step, image=image))))
    returned += len(backend.finish())
    seconds = time.perf_counter() - started
    return Measured(frames=returned, seconds=seconds), len(held)


def measure_sequential(
    cfg: PosedConfig, clip: LoopedClip, meta: VideoMeta, backend: Backend, info: BackendInfo, frames: int
) -> Measured:
    """The same pipeline with ``threaded=False`` on the first ``frames`` frames: context only."""
    with tempfile.TemporaryDirectory(prefix="posed-bench-") as tmp:
        result = _ResultFile(Path(tmp), "sequential", meta, info)
        backend.start_video(meta, JobOptions())
        started = time.perf_counter()
        try:
            stats = run_pipeline(clip.frames(limit=frames), backend, result.writer.write_frame, threaded=False)
            result.close(meta, stats)
        except BaseException:
            result.writer.abort()
            raise
        seconds = time.perf_counter() - started
    return Measured(frames=stats.frames_written, seconds=seconds)


class _CudaMemory:
    """torch's CUDA allocator counters; only consulted when the backend runs on CUDA, so the
    CPU path never imports torch (reference: cpu-backend-and-media.md)."""

    def __init__(self, cuda: Any) -> None:
        self._cuda = cuda
        cuda.reset_peak_memory_stats()

    @classmethod
    def for_device(cls, device: str) -> _CudaMemory | None:
        if not device.startswith("cuda"):
            return None
        try:
            import torch
        except ImportError:
            return None
        return cls(torch.cuda) if torch.cuda.is_available() else None

    def allocated(self) -> int:
        return int(self._cuda.memory_allocated())

    def peak(self) -> int:
        return int(self._cuda.max_memory_allocated())


__all__ = ["BenchError", "LoopedClip", "run_bench"]
