"""One video, start to finish, inside whichever process holds the backend.

Opens and checks the video, streams every frame through the pipeline into a result document
at a temp path, and returns a short summary. The caller publishes the temp file; on failure the
temp file is removed and a ``JobError`` says why. Used by the worker and by ``posed process``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from daemon.processing.backends.base import Backend
from daemon.clock import utc_now
from daemon.config import PosedConfig
from daemon.errors import ErrorCode, JobCancelled, JobError
from daemon.processing.exports.job_exports import JobExports
from daemon.processing.media import VideoSource
from daemon.processing.pipeline import run_pipeline
from daemon.processing.motion import MotionStage
from daemon.processing.motion.settings import with_job_overrides
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions
from daemon.publishing.results import RESULT_SCHEMA, RESULT_SCHEMA_VERSION, ResultWriter, header_precision

ProgressCallback = Callable[[int, int | None, str], None]
"""(frames_done, frames_total_estimate, stage); frames_done is also the index of the frame
now entering the backend, so after a crash it names the frame in flight."""


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    input_path: Path
    result_tmp: Path
    input_info: dict[str, Any]  # names and paths as reported in the result (both path forms)
    options: JobOptions = JobOptions()
    client: dict[str, Any] | None = None  # echoed back from a job sidecar
    exact_path: bool = False  # input_path is canonical: refuse it if reached through a link (media.check_file)


def run_job(
    spec: JobSpec,
    backend: Backend,
    info: BackendInfo,
    cfg: PosedConfig,
    *,
    progress: ProgressCallback = lambda done, total, stage: None,
    cancelled: Callable[[], bool] = lambda: False,
    probed: Callable[[dict[str, Any]], None] = lambda video: None,
) -> dict[str, Any]:
    """Process one video into a manifest draft at ``spec.result_tmp`` and its frames file beside it
    (``publish.companion_tmp_path``); return the summary written into the manifest."""
    started_at, started = utc_now(), time.perf_counter()
    spec = replace(spec, options=spec.options.resolved(asdict(cfg.output)))
    progress(0, None, "probe")
    with VideoSource(spec.input_path, cfg.limits, cfg.inbox.extensions, exact=spec.exact_path) as source:
        meta = source.meta
        total = meta.frame_count_estimate
        probed(meta.to_json())
        progress(0, total, "decode")
        backend.start_video(meta, spec.options)
        wants_mesh = spec.options.include_mesh or (cfg.backend.name == "phalp" and cfg.backend.phalp.include_mesh)
        # Between backend and writer: smoothing and gap filling; holds frames back.
        motion_settings = with_job_overrides(cfg.motion, spec.options.motion)
        motion = MotionStage(motion_settings, meta.nominal_fps)
        writer = ResultWriter(spec.result_tmp, _header(spec, info, started_at, wants_mesh), info, (meta.width, meta.height),
                              legacy_fields=bool(spec.options.legacy_fields), include_raw=motion_settings.include_raw)
        exports = JobExports.for_job(spec.options, spec.result_tmp, cfg)
        exports.start(meta, info)
        last_ts = [0.0]
        max_people = cfg.limits.max_people_per_frame

        def write(result: FrameResult) -> None:
            writer.write_frame(result)
            exports.write(result)
            last_ts[0] = result.timestamp_s

        def sink(result: FrameResult) -> None:
            if len(result.people) > max_people:
                raise JobError(
                    ErrorCode.UNSUPPORTED,
                    f"frame {result.index} has {len(result.people)} people, more than limits.max_people_per_frame={max_people}",
                    stage="inference",
                    frame_index=result.index,
                )
            for final in motion.push(result):
                write(final)

        try:
            stats = run_pipeline(
                exports.tap(_frame_range(source.frames(), spec.options)),  # the preview draws on the same frames
                backend,
                sink,
                queue_frames=cfg.pipeline.queue_frames,
                threaded=cfg.pipeline.threaded,
                cancelled=cancelled,
                on_frame=lambda index: progress(index, total, "inference"),
            )
            for final in motion.finish():
                write(final)
        except BaseException:
            _abort(writer, exports)
            raise
        if writer.frames_written == 0:
            _abort(writer, exports)
            raise JobError(ErrorCode.NO_FRAMES, f"{spec.input_path.name}: the video stream decoded to 0 frames", stage="decode", frame_index=0)
        elapsed = time.perf_counter() - started
        summary = {
            "frames": writer.frames_written,
            "frames_with_person": writer.frames_with_person,
            "people_total": writer.people_written,
            "processing_seconds": round(elapsed, 3),
            "frames_per_second": round(writer.frames_written / elapsed, 3) if elapsed > 0 else None,
            "stage_seconds": {k: round(v, 3) for k, v in stats.stage_seconds.items()},
            **writer.size_figures(),
            "motion": motion.summary(),
            "started_at": started_at,
            "finished_at": utc_now(),
        } | backend.summary()
        try:
            files = exports.close()  # raises OSError for a required export the disk refused
            summary["exports"] = exports.summary(files)
            video = meta.to_json() | {
                "decoded_frame_count": stats.frames_decoded,
                "duration_s": round(_duration(last_ts[0], meta.nominal_fps), 6),
            }
            trailer = {"video": video, "summary": summary} | ({"warnings": exports.warnings} if exports.warnings else {})
            writer.close(trailer, files=files)
        except BaseException:
            _abort(writer, exports)  # finished exports are companions: the daemon discards them
            raise
    return summary


def _header(spec: JobSpec, info: BackendInfo, started_at: str, wants_mesh: bool) -> dict[str, Any]:
    header: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "schema_version": RESULT_SCHEMA_VERSION,
        "status": "ok",
        "job_id": spec.job_id,
        "input": spec.input_info,
        "backend": info.to_json(),
        "options": spec.options.to_json(),
        "created_at": started_at,
        "precision": header_precision(),
    }
    if spec.client is not None:
        header["client"] = spec.client
    # Per-result extras (e.g. the mesh's faces, written once rather than per frame); the faces
    # only matter to a job that asked for meshes.
    extras = {k: v for k, v in info.extras.items() if k not in header}
    if not wants_mesh:
        extras.pop("mesh_faces", None)
    header.update(extras)
    return header


def _duration(last_timestamp_s: float, nominal_fps: float) -> float:
    """Duration = start of the last frame plus that frame's nominal length."""
    return last_timestamp_s + (1.0 / nominal_fps if nominal_fps > 0 else 0.0)


def _abort(writer: ResultWriter, exports: JobExports) -> None:
    """Remove every temp file of this try; one removal failing (a full disk) never skips another."""
    try:
        writer.abort()
    finally:
        exports.abort()


def _frame_range(frames, options: JobOptions):
    for frame in frames:
        if frame.index < options.start_frame:
            continue
        if options.end_frame is not None and frame.index >= options.end_frame:
            return
        yield frame


__all__ = ["JobSpec", "run_job", "JobCancelled", "Frame"]
