"""An H.264 encoder process fed raw frames through a pipe (argument list, never a shell).

Frames go in as yuv420p, converted by OpenCV on the caller's thread: ffmpeg's own BGR
conversion cost more CPU than x264 itself at the ultrafast preset. yuv420p needs even sizes:
an odd edge is padded with one black line (never scaled, so pixels stay where they were).

The ffmpeg binary comes from the imageio-ffmpeg wheel (built with libx264). Output: H.264 High
profile, yuv420p: what browsers and Windows' player decode. No B-frames and the index written
last, so ``mp4_timing`` can give the file the input's exact frame times afterwards; ``faststart``
then moves the index to the front so a browser starts playing before the whole file arrived.
A separate process also means an encoder crash costs the preview, never the worker and its result.
"""

from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from daemon.processing.exports.base import ExportError

STDERR_TAIL_BYTES = 2000
CLOSE_TIMEOUT_S = 120
# The cheapest preset: the preview runs beside the model on the same cores (issue 22: veryfast
# took 2.2 s of CPU for 180 720p frames, ultrafast 0.9 s; its files are ~3x larger, ~4 Mbit/s at 720p).
X264_PRESET = "ultrafast"
X264_CRF = "23"
TRACK_TIMESCALE = "90000"  # ticks per second of the video track: frame times to 11 microseconds
REMUX_TIMEOUT_S = 300


def ffmpeg_binary() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # a broken venv; the wheel is a main dependency
        raise ExportError(f"the preview needs imageio-ffmpeg ({exc}); run ./scripts/run.sh to rebuild .venv") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def faststart(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with its index first (no re-encoding, timing kept)."""
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(source), "-map", "0", "-c", "copy",
               "-video_track_timescale", TRACK_TIMESCALE, "-movflags", "+faststart", "-f", "mp4", "-y", str(target)]  # fmt: skip
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=REMUX_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(f"moving the preview's index to the front failed: {exc}") from exc
    if done.returncode != 0:
        raise ExportError(f"moving the preview's index to the front failed (exit {done.returncode}): {done.stderr[-STDERR_TAIL_BYTES:].decode('utf-8', 'replace')}")


def frame_rate(fps: float) -> str:
    """The rate as an exact fraction string for ffmpeg (29.97 -> 30000/1001); 30 if unknown."""
    rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
    return f"{rate.numerator}/{rate.denominator}"


class H264Encoder:
    """Frames (BGR uint8, all one size) in, an .mp4 file out."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        self.path = path
        self.frames = 0
        self._size = (width, height)
        self._pad = (height % 2, width % 2)  # bottom, right
        coded = f"{width + width % 2}x{height + height % 2}"
        self._stderr = tempfile.TemporaryFile()
        command = [
            ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", coded, "-framerate", frame_rate(fps), "-i", "pipe:0", "-an",
            "-c:v", "libx264", "-preset", X264_PRESET, "-crf", X264_CRF, "-bf", "0", "-pix_fmt", "yuv420p",
            "-video_track_timescale", TRACK_TIMESCALE, "-f", "mp4", "-y", str(path),
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise ExportError(f"cannot start the preview encoder {command[0]}: {exc}") from exc

    def write(self, image: np.ndarray) -> None:
        if image.shape[1::-1] != self._size or image.dtype != np.uint8:
            raise ExportError(f"frame {self.frames} is {image.shape[1]}x{image.shape[0]}, the preview is {self._size[0]}x{self._size[1]}")
        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_CONSTANT, value=(0, 0, 0))
        planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        try:
            self._process.stdin.write(planes.data)
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ExportError(f"the preview encoder stopped at frame {self.frames}: {self._stderr_tail()}") from exc
        self.frames += 1

    def close(self) -> None:
        """End of input; wait for the encoder to finish the file. Raises if it failed."""
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self._process.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.abort()
            raise ExportError(f"the preview encoder did not finish within {CLOSE_TIMEOUT_S} s") from exc
        tail = self._stderr_tail()
        self._stderr.close()
        if code != 0:
            raise ExportError(f"the preview encoder failed (exit {code}): {tail}")

    def kill(self) -> None:
        """Stop the encoder process now (another thread may be writing to it); ``abort`` reaps it."""
        if self._process.poll() is None:
            self._process.kill()

    def abort(self) -> None:
        """Kill the encoder (it is ours alone) and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._process.wait()
        self._stderr.close()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0, 2)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
        return self._stderr.read().decode("utf-8", "replace").strip() or "no message"
