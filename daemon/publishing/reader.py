"""Reading a published result the way a consumer should: the manifest, then its frames, streamed.

For notebooks and scripts::

    from daemon.publishing.reader import open_result
    result = open_result("outbox/run.mp4.result.json")
    for frame in result.frames():          # one dict per frame, constant memory
        ...

``frames()`` checks, as it goes, that each line is one frame in order, and at the end that the
file has exactly the line count, size and sha256 the manifest states; ``validate=True`` also
checks every line against the frame schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.publishing.contract import ResultFileError, iter_verified_frames, validate_document

__all__ = ["PublishedResult", "ResultFileError", "open_result"]


@dataclass(frozen=True)
class PublishedResult:
    path: Path  # the manifest
    manifest: dict[str, Any]

    def file_path(self, kind: str) -> Path:
        """Where a companion file (frames, motion, preview) lies: beside the manifest."""
        return self.path.with_name(self.manifest["files"][kind]["name"])

    def frames(self, *, validate: bool = False) -> Iterator[dict[str, Any]]:
        return iter_verified_frames(self.file_path("frames"), self.manifest["files"]["frames"], validate=validate)


def open_result(path: str | Path, *, validate: bool = True) -> PublishedResult:
    """Read (and by default validate) a result manifest."""
    path = Path(path)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if validate:
        validate_document(manifest)
    return PublishedResult(path, manifest)
