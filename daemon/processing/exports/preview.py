"""``<name>.preview.mp4``: the input video with every tracked person drawn on it.

The frames are the pipeline's own: the job hands each decoded frame over (``frame``) as it
goes to the backend, and each result later (``write``); results come later than their frames
(the motion stage and PHALP hold results back), so frames wait, scaled down, until theirs
arrives. No second decoder: decoding a 1080p frame costs as much as encoding it.

Cost (issue 22): scaling, drawing and feeding x264 run on the preview's own thread
(``background``) behind a bounded queue, so the pipeline hands over and goes on; it waits only
if the preview falls ``QUEUE_ITEMS`` items behind (nothing is dropped). Frames taller than
``output.preview_max_height`` (720 by default) are scaled down first: x264's cost grows with
the pixels. Memory: the queue, plus one scaled frame per frame in flight between decoder and
result (pipeline queue, backend, motion stage latency: about 30 frames, 80 MB at 720p).

Timing: frame *i* of the preview is frame *i* of the input, shown at the input frame's own
timestamp (relative to the first processed frame): the frame times are kept on disk while
encoding and written into the file at the end (``mp4_timing``), so variable frame rates stay
exact. The last frame lasts one nominal frame, as in the result's ``duration_s``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from daemon.processing.exports.background import BackgroundWork
from daemon.processing.exports.base import ExportError, Exporter, ExportedFile, describe_file, fsync_file, remove_quietly
from daemon.processing.exports.channels import RecordFile
from daemon.processing.exports.encoder import H264Encoder, faststart, frame_rate
from daemon.processing.exports.mp4_timing import retime
from daemon.processing.exports.overlay import draw_people
from daemon.processing.exports.skeletons import skeleton_edges
from daemon.records import BackendInfo, Frame, FrameResult, VideoMeta

KIND = "preview-video"
SUFFIX = ".preview.mp4"
DEFAULT_MAX_HEIGHT = 720
QUEUE_ITEMS = 16  # frames (full size, until scaled) and results waiting for the preview thread


def preview_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """The preview's frame size: the input's, or scaled to ``max_height`` lines (0: no limit), widths even."""
    if max_height <= 0 or height <= max_height:
        return width, height
    return max(2, 2 * round(width * max_height / height / 2)), max_height - max_height % 2


class PreviewExporter(Exporter):
    """Draws each result onto its frame (handed over by the job) and encodes the video."""

    kind = KIND
    wants_frames = True

    def __init__(self, target: Path, max_height: int = DEFAULT_MAX_HEIGHT) -> None:
        super().__init__(target)
        self._max_height = max_height
        self._work: BackgroundWork | None = None
        self._encoder: H264Encoder | None = None
        self._waiting: dict[int, np.ndarray] = {}  # frame index -> scaled image, until its result comes
        # Named after the target (<owner>.<uuid>.preview.partial...): the result's temp prefix and
        # owner tag, so discarding a failed try and the temp sweeper both find them.
        self._partial = target.with_name(f"{target.name}.encoding")
        self._indexed = target.with_name(f"{target.name}.indexed")
        self._times: RecordFile | None = None

    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        self._edges = skeleton_edges(info.keypoint_names)
        self._fps = meta.nominal_fps
        self._size = preview_size(meta.width, meta.height, self._max_height)
        self._scale = self._size[1] / meta.height
        self._encoder = H264Encoder(self._partial, *self._size, meta.nominal_fps)
        self._times = RecordFile(self.target.parent, 1, prefix=f"{self.target.name}.times-", dtype="<f8")
        self._last_ts = 0.0
        self._work = BackgroundWork(self._handle, name="preview", capacity=QUEUE_ITEMS)

    def frame(self, frame: Frame) -> None:
        """A decoded frame, in order, before its result (called on the decoder's thread)."""
        if self._work is not None:
            self._work.offer(frame)  # a failed preview is reported by the next write, on the writer's thread

    def write(self, result: FrameResult) -> None:
        if self._work is None:
            raise ExportError("PreviewExporter.write before start")
        self._work.put(result)

    def _handle(self, item: Frame | FrameResult) -> None:
        """On the preview thread: keep a frame (scaled), or draw a result onto its frame and encode it."""
        if isinstance(item, Frame):
            self._waiting[item.index] = self._scaled(item.image)
            return
        image = self._waiting.pop(item.index, None)
        if image is None:
            raise ExportError(f"the preview has no frame {item.index}: results and video disagree")
        for index in [i for i in self._waiting if i < item.index]:
            del self._waiting[index]  # frames the job produced no result for (outside its range)
        self._times.append([item.timestamp_s])
        self._last_ts = item.timestamp_s
        draw_people(image, item.people, self._edges, scale=self._scale)
        self._encoder.write(image)

    def _scaled(self, image: np.ndarray) -> np.ndarray:
        """A copy at the preview's size (the pipeline's frame itself is never drawn on)."""
        if self._scale == 1.0:
            return image.copy()
        return cv2.resize(image, self._size, interpolation=cv2.INTER_LINEAR)

    def close(self) -> ExportedFile:
        try:
            if self._work is not None:
                self._work.finish()  # every queued frame drawn and handed to the encoder
                self._work = None
        except BaseException:
            self.abort()
            raise
        if self._encoder is None or self._encoder.frames == 0:
            self.abort()
            raise ExportError("no frames were written: there is no preview to encode")
        try:
            frames = self._encoder.frames
            self._encoder.close()
            self._encoder = None
            self._times.finish()
            end = self._last_ts + 1.0 / (self._fps if self._fps > 0 else 30.0)
            retime(self._partial, (float(t) for chunk in self._times.column_values(0) for t in chunk), end)
            faststart(self._partial, self._indexed)
            fsync_file(self._indexed)
            self._indexed.replace(self.target)
            self._remove_temporaries()
            details = {"frames": frames, "codec": "h264", "pix_fmt": "yuv420p", "nominal_frame_rate": frame_rate(self._fps),
                       "size": list(self._size), "timing": "per-frame timestamps of the input"}  # fmt: skip
            return describe_file(self.target, KIND, details)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._work is not None:
            if self._encoder is not None:
                self._encoder.kill()  # a thread blocked on the encoder's pipe gets an error, not a hang
            self._work.cancel()
            self._work = None
        if self._encoder is not None:
            self._encoder.abort()
            self._encoder = None
        self._waiting.clear()
        self._remove_temporaries()
        remove_quietly(self.target)

    def _remove_temporaries(self) -> None:
        remove_quietly(self._partial)
        remove_quietly(self._indexed)
        if self._times is not None:
            self._times.remove()
            self._times = None
