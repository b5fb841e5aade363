"""Streaming a result: frames to a JSON-lines temp file, then a small manifest draft.

While the video is processed every frame becomes one line of the frames file (memory stays
constant in video length); its byte count and sha256 are computed on the way. At the end the
manifest draft is written: everything that is not per-frame (job, input, backend with the
keypoint names, video, options, client echo, summary, per-track summary) and the frames
file's line count, size and hash. Its final name is filled in when the pair is published
(``outcomes.publish_result``): the frames file is renamed into the outbox first, the manifest
last, so a consumer polling for ``<name>.result.json`` never sees half a result.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from daemon.publishing.encoding import PRECISION, FrameEncoder, dumps_line
from daemon.publishing.naming import OUTPUT_SUFFIXES, RESULT_SUFFIX
from daemon.publishing.publish import companion_tmp_path
from daemon.records import BackendInfo, FrameResult

RESULT_SCHEMA = "posed.result"
RESULT_SCHEMA_VERSION = "2.0"
FRAME_SCHEMA = "posed.frame"


class TrackSummary:
    """Per track: first and last frame, and how many frames in each state."""

    def __init__(self) -> None:
        self._tracks: dict[int, dict[str, int]] = {}

    def add(self, result: FrameResult) -> None:
        for person in result.people:
            track = self._tracks.setdefault(
                int(person.track_id),
                {"first_frame": result.index, "frames_detected": 0, "frames_predicted": 0, "frames_interpolated": 0},
            )
            track["last_frame"] = result.index
            key = f"frames_{person.state}"
            track[key] = track.get(key, 0) + 1

    def to_json(self) -> list[dict[str, int]]:
        return [{"track_id": track_id} | counts for track_id, counts in sorted(self._tracks.items())]


class FramesFile:
    """The frames file being written: one line per frame, counted and hashed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO = open(path, "xb")  # never clobber: temp names are unique
        self._sha256 = hashlib.sha256()
        self.lines = 0
        self.bytes = 0

    def append(self, line: bytes) -> None:
        self._handle.write(line)
        self._sha256.update(line)
        self.lines += 1
        self.bytes += len(line)

    def finish(self) -> dict[str, Any]:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return {"name": None, "format": "jsonl", "schema": FRAME_SCHEMA, "lines": self.lines, "bytes": self.bytes,
                "sha256": self._sha256.hexdigest()}

    def discard(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass  # flushing the buffer fails on a full disk; the file goes anyway
        finally:
            self.path.unlink(missing_ok=True)


class ResultWriter:
    """Writes one result incrementally. ``close`` finishes both files and fsyncs them."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        info: BackendInfo,
        frame_size: tuple[int, int],
        *,
        include_raw: bool = False,
        legacy_fields: bool = False,
    ) -> None:
        self.path = path  # the manifest draft
        self.frames = FramesFile(companion_tmp_path(path, "frames"))
        self._header = header
        self._encoder = FrameEncoder(info, frame_size, include_raw=include_raw, legacy_fields=legacy_fields)
        self.tracks = TrackSummary()
        self.frames_written = 0
        self.frames_with_person = 0
        self.people_written = 0

    def write_frame(self, result: FrameResult) -> None:
        self.frames.append(dumps_line(self._encoder.frame(result)))
        self.tracks.add(result)
        self.frames_written += 1
        self.people_written += len(result.people)
        if result.people:
            self.frames_with_person += 1

    def size_figures(self) -> dict[str, float | None]:
        """Bytes per frame and per person-frame: what a consumer will have to read."""
        return {
            "frames_bytes": self.frames.bytes,
            "bytes_per_frame": round(self.frames.bytes / self.frames_written, 1) if self.frames_written else None,
            "bytes_per_person_frame": round(self.frames.bytes / self.people_written, 1) if self.people_written else None,
        }

    def close(self, trailer: dict[str, Any], files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Finish the frames file and write the manifest draft; ``files`` lists other finished
        companions (exports) by kind. Returns the draft."""
        manifest = dict(self._header)
        manifest.update(trailer)
        manifest["tracks"] = self.tracks.to_json()
        manifest["files"] = {"frames": self.frames.finish()} | (files or {})
        with open(self.path, "xb") as handle:
            handle.write(json.dumps(manifest, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return manifest

    def abort(self) -> None:
        """Drop a half-written result (the daemon also sweeps leftovers)."""
        self.frames.discard()
        self.path.unlink(missing_ok=True)


def commit_local_result(draft_tmp: Path, out: Path) -> Path:
    """``posed process``: give a finished result its names beside ``out`` (no outbox, no
    ``~N`` rule): ``<stem>.frames.jsonl`` (and exports) first, the manifest ``out`` last."""
    stem = out.name.removesuffix(RESULT_SUFFIX)
    manifest = json.loads(draft_tmp.read_bytes())
    for kind, entry in manifest.get("files", {}).items():
        entry["name"] = f"{stem}{OUTPUT_SUFFIXES[kind]}"
        os.replace(companion_tmp_path(draft_tmp, kind), out.with_name(entry["name"]))
    draft_tmp.write_bytes(json.dumps(manifest, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8"))
    os.replace(draft_tmp, out)
    return out


def header_precision() -> dict[str, float]:
    """Rounding steps of the numbers in the frames file, stated in the manifest."""
    return dict(PRECISION)


__all__ = ["FRAME_SCHEMA", "OUTPUT_SUFFIXES", "RESULT_SCHEMA", "RESULT_SCHEMA_VERSION", "ResultWriter", "TrackSummary"]
