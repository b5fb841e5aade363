"""Structural facts about a video file, read from its headers without decoding anything.

The supervisor runs these checks before a worker ever sees the file (issue 5), so a file whose
header already says it cannot succeed costs no model time: an mp4/mov/m4v or avi that ends
inside its last box or chunk (the upload was cut short), an mp4 without its index (``moov``),
a container with no video track, a header that claims a frame size, a duration, a frame count
or a frame rate beyond the configured limits (a "decode bomb": a few hundred KB that decode to
tens of thousands of frames). The presented duration found here also lets the decoder notice when it
stops early (``daemon.processing.media``).

Parsing is bounded (boxes visited, bytes read: a few hundred bytes for a normal file) and
never trusts a size field beyond the file's end. What it does not understand (Matroska/WebM,
malformed boxes) comes back as unknown, and the decoder in the worker has the final word.
Box layouts: ISO/IEC 14496-12 (ISO BMFF) sections 4.2 (box), 8.2.2 (mvhd), 8.3.2 (tkhd),
8.4.2 (mdhd), 8.4.3 (hdlr), 8.5.2 (stsd), 8.6.6 (elst), 8.7.3.2 (stsz); AVI: Microsoft "AVI RIFF File Reference" (avih, strh).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAX_TOP_LEVEL = 4096  # a fragmented mp4 with more boxes is not checked for truncation
MAX_CHILDREN = 512
MAX_EDITS = 1024
MAX_HDRL_BYTES = 1 << 20

ISO_BMFF, RIFF, EBML = "isobmff", "riff", "ebml"


@dataclass(frozen=True)
class ContainerFacts:
    """What the header says; None means "not known", never "zero"."""

    kind: str = ""  # isobmff | riff | ebml | "" (not recognised)
    cut_short: str = ""  # why the file is incomplete, for a person; "" when it looks whole
    details: tuple[tuple[str, int], ...] = ()  # numbers behind cut_short (offsets, sizes)
    video_tracks: int | None = None
    other_tracks: tuple[str, ...] = ()  # handler/stream types of the non-video tracks
    width: int | None = None  # display size: rotation already applied
    height: int | None = None
    rotation: int | None = None
    duration_s: float | None = None  # presented duration of the (first) video track
    frames: int | None = None  # frames (samples) the video track declares
    fourcc: str = ""  # the video codec's FourCC as stored (mp4 sample entry, avi strh handler)
    fps: float | None = None  # mean frame rate: frames over the track's media duration


class _Malformed(Exception):
    """A box we cannot trust: stop and report what is known so far."""


class _Reader:
    """Bounded positional reads from an open file descriptor."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def read(self, offset: int, count: int) -> bytes:
        return os.pread(self.fd, max(0, min(count, self.size - offset)), offset)


def inspect(fd: int, size: int, header: bytes) -> ContainerFacts:
    """Facts about the open file ``fd`` of ``size`` bytes whose first bytes are ``header``."""
    reader = _Reader(fd, size)
    try:
        if header[:4] == b"RIFF":
            return _inspect_riff(reader)
        if header[:4] == b"\x1a\x45\xdf\xa3":
            return ContainerFacts(kind=EBML)
        if header[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
            return _inspect_bmff(reader)
    except (OSError, _Malformed, struct.error):
        pass
    return ContainerFacts()


# -- ISO BMFF (mp4, mov, m4v) ----------------------------------------------------------------


def _printable(kind: bytes) -> bool:
    return len(kind) == 4 and all(0x20 <= byte <= 0x7E for byte in kind)


def _boxes(reader: _Reader, start: int, end: int, limit: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) for each box in [start, end).

    A box running past ``end`` is yielded as it is declared; the caller decides what that means.
    """
    offset, count = start, 0
    while offset + 8 <= end:
        count += 1
        if count > limit:
            raise _Malformed(f"more than {limit} boxes")
        head = reader.read(offset, 16)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                raise _Malformed("64-bit size cut off")
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:  # "extends to the end of the file"
            size = end - offset
        if not _printable(kind) or size < header:
            raise _Malformed(f"bad box at {offset}")
        yield kind, offset, offset + header, offset + size
        offset += size


def _inspect_bmff(reader: _Reader) -> ContainerFacts:
    moov: tuple[int, int] | None = None
    try:
        for kind, start, payload, end in _boxes(reader, 0, reader.size, MAX_TOP_LEVEL):
            if end > reader.size:
                name = kind.decode("ascii")
                why = (
                    f"its '{name}' box at byte {start} declares {end - start} bytes, "
                    f"but the file ends {end - reader.size} bytes early"
                )
                details = (("file_bytes", reader.size), ("box_offset", start), ("box_bytes", end - start))
                return ContainerFacts(kind=ISO_BMFF, cut_short=why, details=details)
            if kind == b"moov" and moov is None:
                moov = (payload, end)
    except _Malformed:
        return ContainerFacts(kind=ISO_BMFF, **(_moov_facts(reader, *moov) if moov else {}))
    if moov is None:
        why = "it has no index ('moov' box): the recording was not finalised or the upload stopped before the end"
        return ContainerFacts(kind=ISO_BMFF, cut_short=why, details=(("file_bytes", reader.size),))
    return ContainerFacts(kind=ISO_BMFF, **_moov_facts(reader, *moov))


def _moov_facts(reader: _Reader, start: int, end: int) -> dict:
    movie_timescale = 0
    tracks: list[dict] = []
    try:
        for kind, _, payload, box_end in _boxes(reader, start, end, MAX_CHILDREN):
            if box_end > end:
                raise _Malformed("child runs past moov")
            if kind == b"mvhd":
                movie_timescale, _ = _timescale_duration(reader.read(payload, 32))
            elif kind == b"trak":
                tracks.append(_track(reader, payload, box_end))
    except _Malformed:
        return {}  # a half-understood index could hide the video track: claim nothing
    video = [t for t in tracks if t.get("handler") == "vide"]
    others = tuple(sorted({_TRACK_NAMES.get(t.get("handler", ""), t.get("handler", "?")) for t in tracks if t not in video}))
    facts: dict = {"video_tracks": len(video), "other_tracks": others}
    if video:
        first = video[0]
        width, height, rotation = first.get("width", 0), first.get("height", 0), first.get("rotation", 0)
        if width and height:
            swap = rotation in (90, 270)
            facts.update(width=height if swap else width, height=width if swap else height)
        facts["rotation"] = rotation
        facts["duration_s"] = _presented_duration(first, movie_timescale)
        facts.update(_frame_facts(first))
        facts["fourcc"] = first.get("fourcc", "")
    return facts


def _frame_facts(track: dict) -> dict:
    samples = track.get("samples")
    if not samples:
        return {}  # 0: a fragmented mp4 keeps its samples in 'moof' boxes; not counted here
    timescale, duration = track.get("media_timescale"), track.get("media_duration")
    fps = samples * timescale / duration if timescale and duration else None
    return {"frames": samples, "fps": fps}


_TRACK_NAMES = {"soun": "audio", "text": "text", "sbtl": "subtitles", "subt": "subtitles", "meta": "metadata",
                "tmcd": "timecode", "hint": "hint"}


def _track(reader: _Reader, start: int, end: int) -> dict:
    track: dict = {}
    for kind, _, payload, box_end in _boxes(reader, start, end, MAX_CHILDREN):
        if box_end > end:
            raise _Malformed("child runs past trak")
        if kind == b"tkhd":
            track.update(_tkhd(reader.read(payload, 96)))
        elif kind == b"edts":
            for child, _, child_payload, child_end in _boxes(reader, payload, box_end, MAX_CHILDREN):
                if child == b"elst" and child_end <= box_end:
                    track["edits"] = _elst(reader.read(child_payload, min(child_end - child_payload, 8 + 20 * MAX_EDITS)))
        elif kind == b"mdia":
            for child, _, child_payload, child_end in _boxes(reader, payload, box_end, MAX_CHILDREN):
                if child_end > box_end:
                    raise _Malformed("child runs past mdia")
                if child == b"hdlr":
                    track["handler"] = reader.read(child_payload + 8, 4).decode("latin-1")
                elif child == b"mdhd":
                    track["media_timescale"], track["media_duration"] = _timescale_duration(reader.read(child_payload, 32))
                elif child == b"minf":
                    track.update(_sample_table(reader, child_payload, child_end))
    return track


def _sample_table(reader: _Reader, start: int, end: int) -> dict:
    """From minf/stbl: the sample (= frame, for video) count of stsz and the FourCC of the
    first sample entry in stsd ('avc1', 'hvc1', 'mp4v', ...)."""
    table: dict = {}
    for kind, _, payload, box_end in _boxes(reader, start, end, MAX_CHILDREN):
        if kind == b"stbl" and box_end <= end:
            for child, _, child_payload, child_end in _boxes(reader, payload, box_end, MAX_CHILDREN):
                if child == b"stsz" and child_end - child_payload >= 12:
                    table["samples"] = struct.unpack(">I", reader.read(child_payload + 8, 4))[0]
                elif child == b"stsd" and child_end - child_payload >= 16:
                    entry = reader.read(child_payload + 12, 4)
                    table["fourcc"] = entry.decode("latin-1") if _printable(entry) else ""
    return table


def _timescale_duration(payload: bytes) -> tuple[int, int]:
    """mvhd and mdhd share this layout: (version 0: 32-bit times, version 1: 64-bit)."""
    if payload[:1] == b"\x01":
        timescale, duration = struct.unpack(">IQ", payload[20:32])
    else:
        timescale, duration = struct.unpack(">II", payload[12:20])
        duration = 0 if duration == 0xFFFFFFFF else duration  # all ones: "unknown"
    return timescale, duration


def _tkhd(payload: bytes) -> dict:
    version = payload[0]
    base = 40 if version == 0 else 52  # matrix offset
    duration = struct.unpack(">I", payload[20:24])[0] if version == 0 else struct.unpack(">Q", payload[28:36])[0]
    a, b, _, c, d = struct.unpack(">5i", payload[base : base + 20])
    width, height = struct.unpack(">II", payload[base + 36 : base + 44])
    return {"width": round(width / 65536), "height": round(height / 65536), "rotation": _rotation(a, b, c, d),
            "track_duration": 0 if duration in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF) else duration}


def _rotation(a: int, b: int, c: int, d: int) -> int:
    """Clockwise display rotation of a tkhd matrix (how phones store portrait video)."""
    if a == 0 and d == 0:
        return 90 if b > 0 and c < 0 else 270 if b < 0 and c > 0 else 0
    return 180 if a < 0 and d < 0 else 0


def _elst(payload: bytes) -> list[tuple[int, int]]:
    """(segment duration in movie timescale, media time; -1 = an empty edit, i.e. a delay)."""
    version = payload[0]
    count = min(struct.unpack(">I", payload[4:8])[0], MAX_EDITS)
    entry = struct.Struct(">Qq4x" if version == 1 else ">Ii4x")
    edits = []
    for i in range(count):
        offset = 8 + i * entry.size
        if offset + entry.size > len(payload):
            break
        edits.append(entry.unpack_from(payload, offset))
    return edits


def _presented_duration(track: dict, movie_timescale: int) -> float | None:
    """Seconds of the track that a player presents: edit lists applied, empty edits (delays)
    left out, because decoded timestamps start at the first presented frame."""
    edits = track.get("edits")
    if edits and movie_timescale > 0:
        presented = sum(duration for duration, media_time in edits if media_time != -1)
        return presented / movie_timescale if presented > 0 else None
    if track.get("media_timescale") and track.get("media_duration"):
        return track["media_duration"] / track["media_timescale"]
    if movie_timescale > 0 and track.get("track_duration"):
        return track["track_duration"] / movie_timescale
    return None


# -- RIFF (avi) -------------------------------------------------------------------------------


def _chunks(reader: _Reader, start: int, end: int, limit: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(id, chunk start, payload start, chunk end incl. pad byte) for RIFF chunks in [start, end)."""
    offset, count = start, 0
    while offset + 8 <= end:
        count += 1
        if count > limit:
            raise _Malformed(f"more than {limit} chunks")
        ident, size = struct.unpack("<4sI", reader.read(offset, 8))
        if not _printable(ident):
            raise _Malformed(f"bad chunk at {offset}")
        yield ident, offset, offset + 8, offset + 8 + size + (size & 1)
        offset += 8 + size + (size & 1)


def _inspect_riff(reader: _Reader) -> ContainerFacts:
    first: tuple[int, int] | None = None
    riffs = 0
    try:
        for ident, start, payload, end in _chunks(reader, 0, reader.size, MAX_TOP_LEVEL):
            if ident != b"RIFF" or end - payload < 4:
                raise _Malformed("top-level chunk is not RIFF")
            riffs += 1
            # A chunk may lack its final pad byte; one byte short is not a cut-off file.
            if end - reader.size > 1:
                why = f"its RIFF chunk at byte {start} declares {end - start} bytes, but the file ends {end - reader.size} bytes early"
                details = (("file_bytes", reader.size), ("chunk_offset", start), ("chunk_bytes", end - start))
                return ContainerFacts(kind=RIFF, cut_short=why, details=details)
            if first is None:
                first = (payload + 4, min(end, reader.size))
    except _Malformed:
        pass
    if first is None:
        return ContainerFacts(kind=RIFF)
    try:
        return _avi_header(reader, *first, single_riff=riffs == 1)
    except _Malformed:
        return ContainerFacts(kind=RIFF)


def _avi_header(reader: _Reader, start: int, end: int, *, single_riff: bool) -> ContainerFacts:
    for ident, _, payload, chunk_end in _chunks(reader, start, end, MAX_CHILDREN):
        if ident == b"LIST" and reader.read(payload, 4) == b"hdrl":
            hdrl_end = min(chunk_end, payload + MAX_HDRL_BYTES, end)
            return _hdrl(reader, payload + 4, hdrl_end, single_riff=single_riff)
    return ContainerFacts(kind=RIFF)


def _hdrl(reader: _Reader, start: int, end: int, *, single_riff: bool) -> ContainerFacts:
    avih: tuple[int, ...] | None = None
    kinds: list[str] = []
    video_rate: tuple[int, int, int] | None = None  # strh scale, rate, length of the first video stream
    facts_fourcc = ""
    for ident, _, payload, chunk_end in _chunks(reader, start, end, MAX_CHILDREN):
        if ident == b"avih":
            avih = struct.unpack("<10I", reader.read(payload, 40))
        elif ident == b"LIST" and reader.read(payload, 4) == b"strl":
            for child, _, child_payload, _ in _chunks(reader, payload + 4, min(chunk_end, end), MAX_CHILDREN):
                if child == b"strh":
                    strh = reader.read(child_payload, 36)
                    kinds.append(strh[:4].decode("latin-1"))
                    if strh[:4] == b"vids" and len(strh) == 36 and video_rate is None:
                        video_rate = struct.unpack_from("<III", strh, 20)[:2] + struct.unpack_from("<I", strh, 32)
                        facts_fourcc = strh[4:8].decode("latin-1") if _printable(strh[4:8]) else ""
                    break
    names = {"auds": "audio", "txts": "text", "mids": "midi"}
    facts: dict = {"video_tracks": kinds.count("vids"), "other_tracks": tuple(sorted({names.get(k, k) for k in kinds if k != "vids"})),
                   "fourcc": facts_fourcc}
    if avih is not None:
        us_per_frame, total_frames, width, height = avih[0], avih[4], avih[8], avih[9]
        if width and height:
            facts.update(width=width, height=height, rotation=0)
        # OpenDML files continue in further RIFF chunks that avih does not count: there the
        # count is a lower bound, still enough to refuse a file above the limit.
        if single_riff and us_per_frame and total_frames:
            facts["duration_s"] = total_frames * us_per_frame / 1e6
        if total_frames:
            facts["frames"] = total_frames
        if us_per_frame:
            facts["fps"] = 1e6 / us_per_frame  # rounded to whole microseconds: strh is exact
    if video_rate is not None and video_rate[0] and video_rate[1]:
        scale, rate, length = video_rate
        facts["fps"] = rate / scale
        facts["frames"] = max(length, facts.get("frames", 0)) or None
    return ContainerFacts(kind=RIFF, **facts)


__all__ = ["ContainerFacts", "inspect", "ISO_BMFF", "RIFF", "EBML"]
