"""Give an encoded MP4 the input's own frame times (variable frame rates stay exact).

Frames reach the encoder through a raw pipe, which carries no timestamps, so ffmpeg writes a
constant rate. Afterwards we rewrite the one table that holds the timing, the track's ``stts``
(time-to-sample: runs of sample count and duration, ISO/IEC 14496-12 8.6.1.2), and the durations
that follow from it (``mvhd``, ``tkhd``, ``mdhd``, the single ``elst`` entry). This is exact only
because the encoder runs without B-frames (no ``ctts``: presentation = decode order) and writes
the ``moov`` box last: it can grow without moving a single media byte, so the chunk offsets stay
valid. A copy remux (``ffmpeg -c copy -movflags +faststart``) then moves ``moov`` to the front
for browsers.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

from daemon.processing.exports.base import ExportError

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
_DURATION_AT = {  # (offset of the duration field, its size) after the 4-byte version/flags, per version
    b"mvhd": {0: (12, 4), 1: (20, 8)},
    b"mdhd": {0: (12, 4), 1: (20, 8)},
    b"tkhd": {0: (16, 4), 1: (24, 8)},
}
_TIMESCALE_AT = {0: 8, 1: 16}  # mvhd/mdhd timescale offset after version/flags


class _Box:
    def __init__(self, kind: bytes, payload: bytes = b"", children: list[_Box] | None = None) -> None:
        self.kind, self.payload, self.children = kind, payload, children

    def find(self, *path: bytes) -> _Box:
        box = self
        for kind in path:
            matches = [child for child in box.children or [] if child.kind == kind]
            if len(matches) != 1:
                raise ExportError(f"the encoded preview has {len(matches)} '{kind.decode()}' boxes where one was expected")
            box = matches[0]
        return box

    def to_bytes(self) -> bytes:
        body = self.payload if self.children is None else b"".join(child.to_bytes() for child in self.children)
        return struct.pack(">I4s", 8 + len(body), self.kind) + body


def _parse(data: bytes) -> list[_Box]:
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        if size < header or offset + size > len(data):
            raise ExportError(f"the encoded preview has a malformed '{kind!r}' box")
        body = data[offset + header : offset + size]
        boxes.append(_Box(kind, children=_parse(body)) if kind in CONTAINERS else _Box(kind, payload=body))
        offset += size
    return boxes


def _top_level(path: Path) -> list[tuple[bytes, int, int]]:
    """(kind, offset, size) of each top-level box, read from headers only (mdat is never loaded)."""
    out, offset, end = [], 0, os.path.getsize(path)
    with open(path, "rb") as handle:
        while offset < end:
            handle.seek(offset)
            size, kind = struct.unpack(">I4s", handle.read(8))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
            elif size == 0:
                size = end - offset
            out.append((kind, offset, size))
            offset += size
    return out


def stts_runs(ticks: Iterable[int]) -> list[tuple[int, int]]:
    """Run-length (count, delta) entries from each sample's start tick plus the end tick last."""
    runs: list[tuple[int, int]] = []
    previous = None
    for tick in ticks:
        if previous is not None:
            delta = max(1, tick - previous)
            if runs and runs[-1][1] == delta:
                runs[-1] = (runs[-1][0] + 1, delta)
            else:
                runs.append((1, delta))
        previous = tick
    return runs


def retime(path: Path, seconds: Iterable[float], end_s: float) -> None:
    """Rewrite the timing of the single video track of ``path``: frame i starts at ``seconds[i]``
    (relative to the first), the last frame ends at ``end_s``. ``moov`` must be the last box."""
    boxes = _top_level(path)
    kind, moov_at, moov_size = boxes[-1]
    if kind != b"moov" or any(k == b"moov" for k, _, _ in boxes[:-1]):
        raise ExportError("the encoded preview's index (moov) is not at its end: it cannot be retimed in place")
    with open(path, "rb") as handle:
        handle.seek(moov_at)
        moov = _parse(handle.read(moov_size))[0]
    track_scale = _timescale(moov.find(b"trak", b"mdia", b"mdhd"))
    movie_scale = _timescale(moov.find(b"mvhd"))
    first: list[float] = []

    def ticks() -> Iterable[int]:
        for value in seconds:
            first[:1] = first[:1] or [value]
            yield round((value - first[0]) * track_scale)
        yield round((end_s - first[0]) * track_scale)

    runs = stts_runs(ticks())
    _check_sample_count(moov, sum(count for count, _ in runs))
    total = sum(count * delta for count, delta in runs)
    moov.find(b"trak", b"mdia", b"minf", b"stbl", b"stts").payload = struct.pack(f">II{2 * len(runs)}I", 0, len(runs), *(v for run in runs for v in run))
    movie_total = round(total * movie_scale / track_scale)
    _set_duration(moov.find(b"trak", b"mdia", b"mdhd"), total)
    _set_duration(moov.find(b"mvhd"), movie_total)
    _set_duration(moov.find(b"trak", b"tkhd"), movie_total)
    _set_edit(moov, movie_total)
    with open(path, "r+b") as handle:
        handle.truncate(moov_at)
        handle.seek(moov_at)
        handle.write(moov.to_bytes())


def _timescale(box: _Box) -> int:
    return struct.unpack_from(">I", box.payload, 4 + _TIMESCALE_AT[box.payload[0]])[0]


def _set_duration(box: _Box, value: int) -> None:
    offset, size = _DURATION_AT[box.kind][box.payload[0]]
    offset += 4
    packed = struct.pack(">I" if size == 4 else ">Q", value)
    box.payload = box.payload[:offset] + packed + box.payload[offset + size :]


def _set_edit(moov: _Box, movie_total: int) -> None:
    """One edit starting at media time 0 spans the whole track: make it span the new length."""
    edits = [child for child in moov.find(b"trak").children if child.kind == b"edts"]
    if not edits:
        return
    payload = edits[0].find(b"elst").payload
    version, count = payload[0], struct.unpack_from(">I", payload, 4)[0]
    media_time = struct.unpack_from(">i" if version == 0 else ">q", payload, 8 + (4 if version == 0 else 8))[0]
    if count != 1 or media_time != 0:
        raise ExportError(f"the encoded preview has an edit list ({count} entries, media time {media_time}) this retiming cannot carry")
    packed = struct.pack(">I" if version == 0 else ">Q", movie_total)
    edits[0].find(b"elst").payload = payload[:8] + packed + payload[8 + len(packed) :]


def _check_sample_count(moov: _Box, timed: int) -> None:
    stbl = moov.find(b"trak", b"mdia", b"minf", b"stbl")
    samples = struct.unpack_from(">I", stbl.find(b"stsz").payload, 8)[0]
    if any(child.kind == b"ctts" for child in stbl.children):
        raise ExportError("the encoded preview reorders frames (ctts): it cannot be retimed")
    if samples != timed:
        raise ExportError(f"the encoded preview has {samples} frames, {timed} timestamps were recorded")
