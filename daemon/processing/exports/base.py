"""The exporter interface shared by every export file, and what a finished export reports.

An exporter lives for one video: ``start`` once (before the first result), ``write`` once per
``FrameResult`` in frame order, then ``close`` (the file is complete) or ``abort`` (nothing is
left behind). Exporters raise ``ExportError`` with a message a person can act on; deciding that
an export failure is only a warning (fail-soft) is the caller's job.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.records import BackendInfo, Frame, FrameResult, VideoMeta

HASH_BLOCK_BYTES = 1 << 20


class ExportError(Exception):
    """An export could not be produced; the message says why and what to do."""


@dataclass(frozen=True)
class ExportedFile:
    """A finished export: the temporary file publishing moves, and what the manifest lists."""

    path: Path
    kind: str  # "motion-gltf" | "preview-video"
    bytes: int
    sha256: str
    details: dict[str, Any] = field(default_factory=dict)  # JSON-ready facts (frames, tracks, codec...)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path.name, "kind": self.kind, "bytes": self.bytes, "sha256": self.sha256, "details": self.details}


class Exporter(ABC):
    """One export file of one video, written while the video is processed."""

    kind: str = ""
    wants_frames = False  # True: the job hands it every decoded frame (``frame``) too

    def __init__(self, target: Path) -> None:
        self.target = Path(target)  # the finished file; the caller picks a temporary folder
        self.warnings: list[str] = []  # parts left out of a file that was still made

    @abstractmethod
    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        """Prepare for one video, before its first result."""

    def frame(self, frame: Frame) -> None:
        """A decoded frame, in order, before its result; on the decoder's thread. Must not raise."""

    @abstractmethod
    def write(self, result: FrameResult) -> None:
        """Consume the next result (frame order, exactly one per decoded frame)."""

    @abstractmethod
    def close(self) -> ExportedFile:
        """Finish the file, fsync it and describe it."""

    @abstractmethod
    def abort(self) -> None:
        """Stop and remove every file this exporter created. Safe to call at any time, twice."""


def describe_file(path: Path, kind: str, details: dict[str, Any]) -> ExportedFile:
    """Size and sha256 of a finished file, read back from disk (what consumers will read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return ExportedFile(path=path, kind=kind, bytes=os.stat(path).st_size, sha256=digest.hexdigest(), details=details)


def fsync_file(path: Path) -> None:
    """Flush a file we wrote to disk, so a published export survives a power cut like the result."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
