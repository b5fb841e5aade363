"""Opening and decoding videos: sequential reads, one frame in memory at a time.

OpenCV's FFmpeg backend does the work. We never trust the container's frame count or frame
rate: the frame count is what we decode, timestamps come from each frame's presentation time.
Rotation metadata (phone videos) is applied, so backends always see upright frames, and the
rotation is reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2

from daemon.config import LimitsConfig
from daemon.errors import ErrorCode, JobError
from daemon.records import Frame, VideoMeta

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


def looks_like_video(header: bytes) -> bool:
    return any(header[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def check_file(path: Path, limits: LimitsConfig, extensions: list[str]) -> int:
    """Cheap checks before decoding; returns the file size. Raises ``JobError``."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise JobError(ErrorCode.INPUT_VANISHED, f"{path.name} disappeared before it was processed", stage="probe") from exc
    if not stat.S_ISREG(info.st_mode):
        raise JobError(ErrorCode.UNSUPPORTED, f"{path.name} is not a regular file (symlinks are never followed)", stage="probe")
    if path.suffix.lower() not in extensions:
        raise JobError(ErrorCode.UNSUPPORTED, f"{path.name}: extension {path.suffix!r} is not one of {', '.join(extensions)}", stage="probe")
    if info.st_size == 0:
        raise JobError(ErrorCode.EMPTY_FILE, f"{path.name} is empty (0 bytes)", stage="probe")
    if info.st_size > limits.max_file_bytes:
        raise JobError(
            ErrorCode.TOO_LARGE,
            f"{path.name} is {info.st_size} bytes, more than limits.max_file_bytes={limits.max_file_bytes}",
            stage="probe",
        )
    try:
        with open(path, "rb", opener=_open_nofollow) as handle:
            header = handle.read(HEADER_BYTES)
    except PermissionError as exc:
        raise JobError(ErrorCode.UNREADABLE, f"{path.name} cannot be read: {exc.strerror}", stage="probe") from exc
    if not looks_like_video(header):
        raise JobError(
            ErrorCode.NOT_A_VIDEO,
            f"{path.name} does not start like an mp4/mov/avi/mkv/webm file (first bytes {header[:12]!r})",
            stage="probe",
        )
    return info.st_size


def _open_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


class VideoSource:
    """An opened video. Use as a context manager; ``frames()`` streams decoded frames."""

    def __init__(self, path: Path, limits: LimitsConfig, extensions: list[str]) -> None:
        self.path = path
        file_bytes = check_file(path, limits, extensions)
        self._capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self._capture.isOpened():
            self._capture.release()
            raise JobError(
                ErrorCode.NO_VIDEO_STREAM,
                f"{path.name} has a video container header but no decodable video stream "
                "(audio only, or the index is missing because the upload was cut short)",
                stage="probe",
            )
        self._capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        self.meta = self._probe(file_bytes)
        _check_limits(self.meta, limits)

    def _probe(self, file_bytes: int) -> VideoMeta:
        cap = self._capture
        coded_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        coded_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        rotation = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META))) % 360
        auto = bool(cap.get(cv2.CAP_PROP_ORIENTATION_AUTO))
        # CAP_PROP_FRAME_WIDTH reports the coded size; a 90/270 rotation swaps what we deliver.
        swap = auto and rotation in (90, 270)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        return VideoMeta(
            path=str(self.path),
            file_bytes=file_bytes,
            container=self.path.suffix.lower(),
            codec="".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if fourcc else "",
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
                return
            ts = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if ts <= last_ts and index > 0:  # streams without timestamps report 0 or repeat
                ts = last_ts + fallback_step if fallback_step else float(index)
            last_ts = ts
            yield Frame(index=index, timestamp_s=ts, image=image)
            index += 1

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
