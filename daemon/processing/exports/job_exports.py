"""The optional exports of one job, run beside the result writer and failing soft.

An export is extra: if one cannot be made (a codec missing, a disk hiccup, nobody tracked) the
result is still published, with a warning naming the export and why, and the export's
temporary files are removed. With ``output.exports_required`` an export the *disk* refused
(full, read-only, over quota) fails the whole try instead, as an ``OSError`` the daemon treats
as an outbox fault: the video is retried later rather than published without it. Retrying
cannot help an export the video itself cannot give (nobody tracked): that stays a warning. Each finished export is listed in the manifest's ``files`` under
its kind, with size and sha256; publishing gives it its final name beside the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
import errno
import os
from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.log import get_logger
from daemon.processing.backends.phalp.manifest import resolve_path
from daemon.processing.exports.base import Exporter, ExportError
from daemon.processing.exports.gltf import GltfExporter
from daemon.processing.exports.preview import PreviewExporter
from daemon.publishing.publish import companion_tmp_path
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, VideoMeta

log = get_logger(__name__)
FORMATS = {"motion": "glb", "preview": "mp4"}
DISK_FAULTS = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system", errno.EDQUOT: "Disk quota exceeded"}


def disk_fault(exc: BaseException) -> int | None:
    """The errno when ``exc`` says the disk refused a write: as an OSError, or in the stderr text
    of the encoder subprocess (ffmpeg prints strerror, not a number)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FAULTS:
        return exc.errno
    text = str(exc)
    return next((code for code, words in DISK_FAULTS.items() if words in text), None)


class JobExports:
    def __init__(self, exporters: dict[str, Exporter], *, required: bool = False) -> None:
        self._live = dict(exporters)  # kind -> exporter still being fed
        self.required = required  # a disk fault in an export fails the try (output.exports_required)
        self.warnings: list[str] = []  # failed exports, and parts left out of exports that were made
        self.failed = 0

    @classmethod
    def for_job(cls, options: JobOptions, result_tmp: Path, cfg: PosedConfig) -> JobExports:
        """The exports this job asked for; their temp files sit beside the result's."""
        exporters: dict[str, Exporter] = {}
        if options.motion_glb:
            smpl_model = resolve_path(cfg.backend.phalp, cfg.backend.phalp.smpl_path) if options.motion_mesh else None
            exporters["motion"] = GltfExporter(companion_tmp_path(result_tmp, "motion"), smpl_model)
        elif options.motion_mesh:
            log.info("export.mesh_ignored", reason="motion_mesh is a part of the motion export, which this job did not ask for")
        if options.preview:
            exporters["preview"] = PreviewExporter(companion_tmp_path(result_tmp, "preview"), cfg.output.preview_max_height)
        return cls(exporters, required=cfg.output.exports_required)

    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        for kind, exporter in list(self._live.items()):
            self._guarded(kind, lambda: exporter.start(meta, info))

    def tap(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """The job's frames, each also handed to the exports that draw on the video (the preview)."""
        drawing = [exporter for exporter in self._live.values() if exporter.wants_frames]
        if not drawing:
            return frames
        return self._tapped(frames, drawing)

    @staticmethod
    def _tapped(frames: Iterator[Frame], drawing: list[Exporter]) -> Iterator[Frame]:
        for frame in frames:
            for exporter in drawing:
                exporter.frame(frame)  # never raises: a failed export is dropped by its next write
            yield frame

    def write(self, result: FrameResult) -> None:
        for kind, exporter in list(self._live.items()):
            self._guarded(kind, lambda: exporter.write(result))

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish every export still alive; returns the manifest's ``files`` entries by kind."""
        files = {}
        for kind, exporter in list(self._live.items()):
            finished = self._guarded(kind, exporter.close)
            for warning in exporter.warnings:
                log.warning("export.partial", kind=kind, warning=warning)
            self.warnings.extend(exporter.warnings)
            if finished is not None:
                files[kind] = {"name": None, "format": FORMATS[kind], "bytes": finished.bytes, "sha256": finished.sha256,
                               "details": finished.details}
        self._live.clear()
        return files

    def abort(self) -> None:
        for exporter in self._live.values():
            exporter.abort()
        self._live.clear()

    def summary(self, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"made": sorted(files), "failed": self.failed}

    def _guarded(self, kind: str, action):
        """Run one exporter step; a failure drops that export with a warning, never the result."""
        try:
            return action()
        except (ExportError, OSError, ValueError, RuntimeError) as exc:
            exporter = self._live.pop(kind)
            exporter.abort()
            if self.required and (code := disk_fault(exc)) is not None:
                log.warning("export.disk_fault", kind=kind, error=str(exc), retried=True)
                raise OSError(code, f"{os.strerror(code)}: the required {kind} export could not be written") from exc
            message = f"the {kind} export was not made: {exc}"
            self.failed += 1
            self.warnings.append(message)
            log.warning("export.failed", kind=kind, error=str(exc))
            return None
