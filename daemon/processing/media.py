"""Opening and decoding videos: sequential reads, one frame in memory at a time.

OpenCV's FFmpeg backend does the work. We never trust the container's frame count or frame
rate: the frame count is what we decode, timestamps come from each frame's presentation time.
Rotation metadata (phone videos) is applied, so backends always see upright frames, and the
rotation is reported.

``check_file`` runs in the supervisor before any worker sees the file: besides size and magic
bytes it reads the container's header (``daemon.processing.container``), so a cut-short upload, a file
without a video track, and a header beyond the configured limits are refused before decoding.
A stream that stops decoding before the end its container announces fails with ``E_DECODE``;
no partial result is ever published (README, "Results").
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2

from daemon.config import LimitsConfig
from daemon.processing.container import ContainerFacts, inspect
from daemon.errors import ErrorCode, JobError
from daemon.paths import PathThroughLink, open_exact
from daemon.records import Frame, VideoMeta
from daemon.paths import unsupported_extension

# Leading bytes of the containers we accept; anything else is refused before FFmpeg sees it.
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # ISO BMFF: mp4, mov, m4v
    (4, b"moov"),  # old QuickTime without ftyp
    (4, b"mdat"),
    (4, b"wide"),
    (4, b"free"),
    (4, b"skip"),
    (0, b"RIFF"),  # avi
    (0, b"\x1a\x45\xdf\xa3"),  # EBML: mkv, webm
)
HEADER_BYTES = 64
DECODE_THREADS = 1  # FFmpeg decoder threads per video (0 = one per core)

# What people rename to .mp4 by mistake, so the report can say what the file really is.
_NOT_VIDEO_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio/video file"),
    (b"\x7fELF", "a Linux program"),
    (b"MZ", "a Windows program"),
    (b"<", "HTML or XML text"),
)
# OpenCV names some codecs rather than giving their FourCC (Matroska stores none): the
# conventional FourCC for those, so video.codec is always a FourCC as the schema promises.
_CODEC_NAME_FOURCC = {"h264": "avc1", "hevc": "hvc1", "h265": "hvc1", "av1": "av01", "vp8": "VP80", "vp9": "VP90",
                      "mpeg4": "mp4v", "mjpeg": "MJPG"}
# Tolerated gap between the last decoded frame and the end the container announces.
DECODE_GAP_MIN_S = 0.25
DECODE_GAP_FRAMES = 5
DECODE_GAP_FRACTION = 0.01


def looks_like_video(header: bytes) -> bool:
    return any(header[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def describe_non_video(header: bytes) -> str:
    """A guess at what a refused file is, for the error message."""
    for magic, what in _NOT_VIDEO_SIGNATURES:
        if header.startswith(magic):
            return what
    if header[4:8] == b"ftyp":
        return "an ISO media file"
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        return "not a video container"
    return "text" if all(ch.isprintable() or ch in "\r\n\t" for ch in text) else "not a video container"


def check_file(path: Path, limits: LimitsConfig, extensions: list[str], *, exact: bool = False) -> int:
    """Cheap checks before decoding; returns the file size. Raises ``JobError``.

    ``exact``: ``path`` is canonical (a queue job's, from ``paths.open_beneath``) and every open
    must prove it reached the file at exactly that path (``paths.open_exact``), so a folder on
    the way swapped for a link to a file outside the roots is never read, nor even measured."""
    return inspect_file(path, limits, extensions, exact=exact)[0]


def inspect_file(path: Path, limits: LimitsConfig, extensions: list[str], *, exact: bool = False) -> tuple[int, ContainerFacts]:
    """``check_file`` plus what the container header says. Raises ``JobError``."""
    try:
        info = _stat_exact(path) if exact else os.stat(path, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise JobError(ErrorCode.INPUT_VANISHED, f"{path.name} disappeared before it was processed", stage="probe") from exc
    if not stat.S_ISREG(info.st_mode):
        raise JobError(ErrorCode.UNSUPPORTED, f"{path.name} is not a regular file (symlinks are never followed)", stage="probe")
    if (unsupported := unsupported_extension(path, extensions)) is not None:
        raise unsupported
    if info.st_size == 0:
        raise JobError(ErrorCode.EMPTY_FILE, f"{path.name} is empty (0 bytes)", stage="probe")
    if info.st_size > limits.max_file_bytes:
        raise JobError(
            ErrorCode.TOO_LARGE,
            f"{path.name} is {info.st_size} bytes, more than limits.max_file_bytes={limits.max_file_bytes}",
            stage="probe",
        )
    try:
        with open(path, "rb", opener=_open_exact if exact else _open_nofollow) as handle:
            header = handle.read(HEADER_BYTES)
            if not looks_like_video(header):
                raise JobError(
                    ErrorCode.NOT_A_VIDEO,
                    f"{path.name} is {describe_non_video(header)}, not a video: it does not start like an "
                    f"mp4/mov/avi/mkv/webm file (first bytes {header[:12]!r})",
                    stage="probe",
                )
            facts = inspect(handle.fileno(), os.fstat(handle.fileno()).st_size, header)
    except PermissionError as exc:
        raise JobError(ErrorCode.UNREADABLE, f"{path.name} cannot be read: {exc.strerror}", stage="probe") from exc
    except FileNotFoundError as exc:
        raise JobError(ErrorCode.INPUT_VANISHED, f"{path.name} disappeared before it was processed", stage="probe") from exc
    _check_container(path.name, facts, limits)
    return info.st_size, facts


def _check_container(name: str, facts: ContainerFacts, limits: LimitsConfig) -> None:
    """Refuse what the header already proves hopeless, before any decoder or model runs."""
    if facts.cut_short:
        raise JobError(ErrorCode.TRUNCATED, f"{name} is cut short: {facts.cut_short}", stage="probe", details=dict(facts.details))
    if facts.video_tracks == 0:
        found = ", ".join(facts.other_tracks) or "none"
        raise JobError(ErrorCode.NO_VIDEO_STREAM, f"{name} has no video track (tracks found: {found})", stage="probe")
    if facts.width is not None and facts.height is not None:
        if facts.width > limits.max_width or facts.height > limits.max_height:
            raise JobError(
                ErrorCode.RESOLUTION_TOO_HIGH,
                f"{name}: its header declares {facts.width}x{facts.height}, beyond limits.max_width x limits.max_height = "
                f"{limits.max_width}x{limits.max_height}",
                stage="probe",
                details={"width": facts.width, "height": facts.height},
            )
    if facts.duration_s is not None and facts.duration_s > limits.max_duration_s:
        raise JobError(
            ErrorCode.TOO_LONG,
            f"{name}: its header declares {facts.duration_s:.0f} s, more than limits.max_duration_s={limits.max_duration_s:.0f}",
            stage="probe",
            details={"duration_s": round(facts.duration_s, 3)},
        )
    _check_frames(name, facts.frames, facts.fps, limits, "its header declares")


def _check_frames(name: str, frames: int | None, fps: float | None, limits: LimitsConfig, source: str) -> None:
    """Decode bombs: a tiny file whose header announces thousands of frames per second."""
    if fps is not None and fps > limits.max_fps:
        raise JobError(
            ErrorCode.FRAME_RATE_TOO_HIGH,
            f"{name}: {source} {fps:.0f} frames/s, more than limits.max_fps={limits.max_fps:g}",
            stage="probe",
            details={"fps": round(fps, 3), "frames": frames},
        )
    if frames is not None and frames > limits.max_frames:
        raise JobError(
            ErrorCode.TOO_MANY_FRAMES,
            f"{name}: {source} {frames} frames, more than limits.max_frames={limits.max_frames}",
            stage="probe",
            details={"frames": frames, "fps": round(fps, 3) if fps else None},
        )


def _stat_exact(path: Path) -> os.stat_result:
    fd = _open_exact(str(path), os.O_RDONLY)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _open_exact(path: str, flags: int) -> int:
    try:
        fd = open_exact(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except PathThroughLink as exc:
        raise JobError(ErrorCode.INPUT_CHANGED, str(exc), stage="probe") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JobError(ErrorCode.UNSUPPORTED, f"{os.path.basename(path)} is not a regular file", stage="probe")
    return fd


def _open_nofollow(path: str, flags: int) -> int:
    # O_NONBLOCK: a FIFO swapped in after the stat above must not block the main loop in open().
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JobError(ErrorCode.UNSUPPORTED, f"{os.path.basename(path)} is not a regular file", stage="probe")
    return fd


def _open_for_decoder(path: Path, exact: bool = False) -> tuple[int, str]:
    """An open descriptor of the input and the name to give OpenCV for it.

    OpenCV is handed ``/proc/self/fd/N`` rather than the file name: its Python binding
    segfaults on a name that is not valid Unicode (Linux allows any bytes; issue 5), and the
    decoder then reads the very file that was checked, opened without following a symlink.
    """
    try:
        if exact:
            fd = _open_exact(str(path), os.O_RDONLY)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise JobError(ErrorCode.INPUT_VANISHED, f"{path.name} disappeared before it was processed", stage="probe") from exc
    except PermissionError as exc:
        raise JobError(ErrorCode.UNREADABLE, f"{path.name} cannot be read: {exc.strerror}", stage="probe") from exc
    except OSError as exc:  # ELOOP: it became a symlink after the checks
        raise JobError(ErrorCode.UNSUPPORTED, f"{path.name} cannot be opened as a regular file: {exc.strerror}", stage="probe") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JobError(ErrorCode.UNSUPPORTED, f"{path.name} is not a regular file (symlinks are never followed)", stage="probe")
    by_fd = f"/proc/self/fd/{fd}"
    if os.path.exists(by_fd):
        return fd, by_fd
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        os.close(fd)
        raise JobError(ErrorCode.BAD_NAME, f"{path.name!r} is not valid Unicode and this system has no /proc", stage="probe") from None
    return fd, str(path)


class VideoSource:
    """An opened video. Use as a context manager; ``frames()`` streams decoded frames."""

    def __init__(self, path: Path, limits: LimitsConfig, extensions: list[str], *, exact: bool = False) -> None:
        self.path = path
        file_bytes, self.container = inspect_file(path, limits, extensions, exact=exact)
        self._fd, decoder_path = _open_for_decoder(path, exact)
        # One FFmpeg thread: decoding only has to outpace the model, and a second decoder
        # thread competes with inference for the cores (issue 6: overhead 1.21 -> 1.16 measured).
        self._capture = cv2.VideoCapture(decoder_path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])
        if not self._capture.isOpened():
            self.close()
            raise JobError(
                ErrorCode.NO_VIDEO_STREAM,
                f"{path.name} has a video container header but no decodable video stream "
                "(audio only, or the index is missing because the upload was cut short)",
                stage="probe",
            )
        # Read the coded size before turning auto-rotation on: from then on OpenCV (4.11)
        # reports the rotated size, and swapping it again turned portrait videos sideways.
        coded = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        try:
            self.meta = self._probe(file_bytes, coded)
            _check_limits(self.meta, limits)
        except BaseException:
            self.close()  # the worker lives on: leak no descriptor per refused video
            raise

    def _probe(self, file_bytes: int, coded: tuple[int, int]) -> VideoMeta:
        cap = self._capture
        coded_w, coded_h = coded
        rotation = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META))) % 360
        auto = bool(cap.get(cv2.CAP_PROP_ORIENTATION_AUTO))
        swap = auto and rotation in (90, 270)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        return VideoMeta(
            path=str(self.path),
            file_bytes=file_bytes,
            container=self.path.suffix.lower(),
            codec=self.container.fourcc or _codec_fourcc(fourcc),
            coded_width=coded_w,
            coded_height=coded_h,
            width=coded_h if swap else coded_w,
            height=coded_w if swap else coded_h,
            rotation_degrees=rotation,
            auto_rotated=auto,
            nominal_fps=fps if fps > 0 else 0.0,
            frame_count_estimate=count if count > 0 else None,
            duration_estimate_s=count / fps if count > 0 and fps > 0 else None,
        )

    def frames(self) -> Iterator[Frame]:
        """Decode sequentially; the index counts frames actually decoded."""
        index = 0
        fallback_step = 1.0 / self.meta.nominal_fps if self.meta.nominal_fps > 0 else 0.0
        last_ts = -1.0
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                self._check_decoded_to_the_end(index, last_ts)
                return
            ts = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if ts <= last_ts and index > 0:  # streams without timestamps report 0 or repeat
                ts = last_ts + fallback_step if fallback_step else float(index)
            last_ts = ts
            yield Frame(index=index, timestamp_s=ts, image=image)
            index += 1

    def _check_decoded_to_the_end(self, decoded: int, last_ts: float) -> None:
        """OpenCV reports a decoder that gives up like the end of the stream: compare where
        decoding stopped with the presented duration the container header announces.

        Zero frames is left to the caller (``E_NO_FRAMES``). Frames the decoder repairs by
        error concealment count as decoded; only missing frames are detectable.
        """
        expected = self.container.duration_s
        if decoded == 0 or expected is None:
            return
        step = 1.0 / self.meta.nominal_fps if self.meta.nominal_fps > 0 else 0.04
        reached = last_ts + step
        tolerance = max(DECODE_GAP_MIN_S, DECODE_GAP_FRAMES * step, DECODE_GAP_FRACTION * expected)
        if expected - reached <= tolerance:
            return
        raise JobError(
            ErrorCode.DECODE,
            f"{self.path.name}: decoding stopped after {decoded} frames, at {reached:.2f} s of the {expected:.2f} s "
            "the container announces; the rest of the video stream is damaged or missing. No partial result is published",
            stage="decode",
            frame_index=decoded,
            details={"frames_decoded": decoded, "decoded_until_s": round(reached, 3), "duration_s": round(expected, 3),
                     "frames_announced": self.meta.frame_count_estimate},
        )

    def close(self) -> None:
        self._capture.release()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _codec_fourcc(opencv_fourcc: int) -> str:
    """OpenCV's CAP_PROP_FOURCC as a FourCC: its codec names mapped to the usual tag."""
    if not opencv_fourcc:
        return ""
    text = "".join(chr((opencv_fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
    return _CODEC_NAME_FOURCC.get(text.lower(), text)


def _check_limits(meta: VideoMeta, limits: LimitsConfig) -> None:
    if meta.width <= 0 or meta.height <= 0:
        raise JobError(ErrorCode.NO_VIDEO_STREAM, f"{Path(meta.path).name} reports a {meta.width}x{meta.height} video stream", stage="probe")
    if meta.width > limits.max_width or meta.height > limits.max_height:
        raise JobError(
            ErrorCode.RESOLUTION_TOO_HIGH,
            f"{meta.width}x{meta.height} exceeds limits.max_width x limits.max_height = {limits.max_width}x{limits.max_height}",
            stage="probe",
        )
    if meta.duration_estimate_s is not None and meta.duration_estimate_s > limits.max_duration_s:
        raise JobError(
            ErrorCode.TOO_LONG,
            f"the video lasts about {meta.duration_estimate_s:.0f} s, more than limits.max_duration_s={limits.max_duration_s:.0f}",
            stage="probe",
        )
    fps = meta.nominal_fps if meta.nominal_fps > 0 else None
    _check_frames(Path(meta.path).name, meta.frame_count_estimate, fps, limits, "the decoder reports")
