"""Hostile inputs, generated at test time (issue 5): nothing large is committed.

Media variants are made from the shared test clips with the ffmpeg binary of the
imageio-ffmpeg wheel (always an argument list, never a shell) or by cutting and corrupting
bytes in Python. Also the checks a Windows consumer needs of outbox names, and a drop helper
for names too long for the usual ``NAME.part`` + rename.
"""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
from pathlib import Path

from tests.daemon_harness import SHORT_CLIP

WINDOWS_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"
}


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str | os.PathLike[str]) -> None:
    """Run the wheel's ffmpeg with an argument list; raise with its stderr on failure."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(map(str, args))} failed: {done.stderr[-2000:]}")


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the top-level ISO BMFF boxes."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def box(data: bytes, kind: bytes) -> tuple[int, int]:
    for name, offset, size in top_level_boxes(data):
        if name == kind:
            return offset, size
    raise KeyError(kind)


def blank_avi_frames(data: bytes) -> bytes:
    """Every video frame of an AVI zeroed, chunk headers and index kept: opens, decodes nothing."""
    out = bytearray(data)
    offset = out.find(b"movi") + 4
    while offset + 8 <= len(out):
        ident, size = struct.unpack("<4sI", out[offset : offset + 8])
        if ident == b"idx1":
            break
        if ident[2:] in (b"dc", b"db"):
            out[offset + 8 : offset + 8 + size] = bytes(size)
        offset += 8 + size + (size & 1)
    return bytes(out)


def scramble(data: bytes, start: float, end: float) -> bytes:
    """Deterministically garble the bytes between two fractions of the file."""
    out = bytearray(data)
    for i in range(int(len(out) * start), int(len(out) * end)):
        out[i] = (out[i] * 7 + 13) & 0xFF
    return bytes(out)


def claim_width(data: bytes, width: int) -> bytes:
    """Rewrite the video track header (tkhd) so the file claims ``width`` pixels."""
    out = bytearray(data)
    at = out.find(b"tkhd")
    version = out[at + 4]
    width_offset = at + 4 + (76 if version == 0 else 88)
    struct.pack_into(">I", out, width_offset, width << 16)
    return bytes(out)


def make_media(directory: Path) -> dict[str, Path]:
    """Every media variant the corpus needs, by a short key."""
    directory.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}

    def path(name: str) -> Path:
        made[name] = directory / name
        return made[name]

    source = SHORT_CLIP  # 60 frames, 320x182, 30 fps, moov after mdat
    raw = source.read_bytes()
    ffmpeg("-i", source, "-c", "copy", "-movflags", "+faststart", path("faststart.mp4"))
    faststart = made["faststart.mp4"].read_bytes()
    mdat_offset, mdat_size = box(raw, b"mdat")
    path("cut-mid-mdat.mp4").write_bytes(raw[: mdat_offset + mdat_size // 2])  # moov (at the end) lost too
    path("cut-before-moov.mp4").write_bytes(raw[: mdat_offset + mdat_size])  # every box whole, no moov
    fs_mdat, fs_size = box(faststart, b"mdat")
    path("cut-faststart.mp4").write_bytes(faststart[: fs_mdat + fs_size // 2])  # index whole, data cut
    path("notes.mp4").write_bytes(b"This is a meeting note, renamed to .mp4 by mistake.\n" * 20)
    ffmpeg("-i", source, "-frames:v", "1", path("frame.png"))
    path("photo.mp4").write_bytes(made["frame.png"].read_bytes())
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", path("audio-only.mp4"))
    ffmpeg("-i", source, "-c:v", "mjpeg", "-q:v", "5", path("mjpeg.avi"))
    mjpeg = made["mjpeg.avi"].read_bytes()
    path("no-frames.avi").write_bytes(blank_avi_frames(mjpeg))
    path("cut.avi").write_bytes(mjpeg[: len(mjpeg) // 2])
    ffmpeg("-i", source, "-c:v", "mpeg4", "-q:v", "5", path("mp4v.avi"))
    path("damaged-middle.avi").write_bytes(scramble(made["mp4v.avi"].read_bytes(), 0.3, 0.55))
    ffmpeg("-i", source, "-c", "copy", path("movie.mov"))
    # A phone held upright: coded 320x182, display matrix "rotate 90 degrees clockwise".
    ffmpeg("-display_rotation", "-90", "-i", source, "-c", "copy", path("rotated.mp4"))
    # Variable frame rate: 30 fps for the first second, then every third frame (10 fps).
    ffmpeg("-i", source, "-vf", "select='lt(n\\,30)+not(mod(n\\,3))'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-bf", "0", path("vfr.mp4"))  # fmt: skip
    ffmpeg("-i", source, "-c:v", "libvpx", "-b:v", "200k", path("clip.webm"))
    ffmpeg("-i", source, "-vf", "scale=160:90", "-c:v", "libx264", path("small.mp4"))
    ffmpeg("-stream_loop", "1", "-i", made["small.mp4"], "-c", "copy", path("small-4s.mp4"))
    ffmpeg("-i", source, "-c", "copy", path("wide.mkv"))
    path("claims-huge.mp4").write_bytes(claim_width(made["small.mp4"].read_bytes(), 40000))
    # Decode bombs (issue 10): a few KB whose header announces 1000 frames/s, or many frames.
    tiny = ("-f", "lavfi", "-i", "color=c=gray:s=32x32:r={rate}", "-frames:v", "{frames}")
    for name, rate, frames, codec in (("bomb.mp4", 1000, 2000, "libx264"), ("bomb.mkv", 1000, 2000, "libx264"),
                                      ("many.mp4", 240, 480, "libx264"), ("many.avi", 240, 480, "mjpeg")):
        args = [arg.format(rate=rate, frames=frames) for arg in tiny]
        ffmpeg(*args, "-c:v", codec, "-pix_fmt", "yuvj420p" if codec == "mjpeg" else "yuv420p", path(name))
    return made


def windows_openable(name: str) -> bool:
    """Whether Windows can create and open a file of this name (NTFS via Explorer/Node)."""
    if not name or len(name.encode("utf-8")) > 255 or name[-1] in " .":
        return False
    if any(ch in WINDOWS_FORBIDDEN for ch in name):
        return False
    return name.split(".")[0].rstrip(" ").upper() not in WINDOWS_RESERVED


def drop_named(src: bytes | Path, inbox: Path, name: str | bytes) -> Path:
    """Write under a short hidden temp name, then rename to ``name`` (which may be 255 bytes
    long, or bytes that are not UTF-8)."""
    inbox.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes() if isinstance(src, Path) else src
    temp = inbox / f".drop-{uuid.uuid4().hex[:8]}.part"
    temp.write_bytes(data)
    final = os.path.join(os.fsencode(inbox), name if isinstance(name, bytes) else os.fsencode(name))
    os.rename(temp, final)
    return Path(os.fsdecode(final))
