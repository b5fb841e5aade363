"""The optional exports of one job, run beside the result writer and failing soft.

An export is extra: if one cannot be made (a codec missing, a disk hiccup, nobody tracked) the
result is still published, with a warning naming the export and why, and the export's
temporary files are removed. Each finished export is listed in the manifest's ``files`` under
its kind, with size and sha256; publishing gives it its final name beside the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config import PosedConfig
from daemon.log import get_logger
from daemon.processing.exports.base import Exporter, ExportError
from daemon.processing.exports.gltf import GltfExporter
from daemon.processing.exports.preview import PreviewExporter
from daemon.publishing.publish import companion_tmp_path
from daemon.records import BackendInfo, FrameResult, JobOptions, VideoMeta

log = get_logger(__name__)
FORMATS = {"motion": "glb", "preview": "mp4"}


class JobExports:
    def __init__(self, exporters: dict[str, Exporter]) -> None:
        self._live = dict(exporters)  # kind -> exporter still being fed
        self.warnings: list[str] = []

    @classmethod
    def for_job(cls, options: JobOptions, result_tmp: Path, cfg: PosedConfig) -> JobExports:
        """The exports this job asked for; their temp files sit beside the result's."""
        exporters: dict[str, Exporter] = {}
        if options.motion_glb:
            exporters["motion"] = GltfExporter(companion_tmp_path(result_tmp, "motion"))
        if options.preview:
            exporters["preview"] = PreviewExporter(companion_tmp_path(result_tmp, "preview"), cfg.limits, cfg.inbox.extensions)
        return cls(exporters)

    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        for kind, exporter in list(self._live.items()):
            self._guarded(kind, lambda: exporter.start(meta, info))

    def write(self, result: FrameResult) -> None:
        for kind, exporter in list(self._live.items()):
            self._guarded(kind, lambda: exporter.write(result))

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish every export still alive; returns the manifest's ``files`` entries by kind."""
        files = {}
        for kind, exporter in list(self._live.items()):
            finished = self._guarded(kind, exporter.close)
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
        return {"made": sorted(files), "failed": len(self.warnings)}

    def _guarded(self, kind: str, action):
        """Run one exporter step; a failure drops that export with a warning, never the result."""
        try:
            return action()
        except (ExportError, OSError, ValueError, RuntimeError) as exc:
            exporter = self._live.pop(kind)
            exporter.abort()
            message = f"the {kind} export was not made: {exc}"
            self.warnings.append(message)
            log.warning("export.failed", kind=kind, error=str(exc))
            return None
