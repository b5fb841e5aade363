"""``<name>.preview.mp4``: the input video with every tracked person drawn on it.

Results may reach the exporter later than their frames (PHALP holds frames back), so the
exporter does not get images from the pipeline: it opens its own decoder of the input
(``VideoSource``, which applies rotation exactly as the pipeline does) and advances it in
lockstep with the results, one frame in memory at a time. Frames go to an H.264 encoder
process (``encoder``).

Timing: frame *i* of the preview is frame *i* of the input, shown at the input frame's own
timestamp (relative to the first processed frame): the frame times are kept on disk while
encoding and written into the file at the end (``mp4_timing``), so variable frame rates stay
exact. The last frame lasts one nominal frame, as in the result's ``duration_s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from daemon.config import LimitsConfig
from daemon.errors import JobError
from daemon.processing.media import VideoSource
from daemon.processing.exports.base import ExportError, Exporter, ExportedFile, describe_file, fsync_file, remove_quietly
from daemon.processing.exports.channels import RecordFile
from daemon.processing.exports.encoder import H264Encoder, faststart, frame_rate
from daemon.processing.exports.mp4_timing import retime
from daemon.processing.exports.overlay import draw_people
from daemon.processing.exports.skeletons import skeleton_edges
from daemon.records import BackendInfo, Frame, FrameResult, VideoMeta

KIND = "preview-video"
SUFFIX = ".preview.mp4"


class PreviewExporter(Exporter):
    """Decodes the input a second time, draws each result onto its frame, encodes the video."""

    kind = KIND

    def __init__(self, target: Path, limits: LimitsConfig, extensions: list[str]) -> None:
        super().__init__(target)
        self._limits, self._extensions = limits, extensions
        self._source: VideoSource | None = None
        self._frames: Iterator[Frame] | None = None
        self._encoder: H264Encoder | None = None
        # Named after the target (<owner>.<uuid>.preview.partial...): the result's temp prefix and
        # owner tag, so discarding a failed try and the temp sweeper both find them.
        self._partial = target.with_name(f"{target.name}.encoding")
        self._indexed = target.with_name(f"{target.name}.indexed")
        self._times: RecordFile | None = None

    def start(self, meta: VideoMeta, info: BackendInfo) -> None:
        try:
            self._source = VideoSource(Path(meta.path), self._limits, self._extensions)
        except JobError as exc:
            raise ExportError(f"the preview cannot reopen the input: {exc}") from exc
        own = self._source.meta
        if (own.width, own.height) != (meta.width, meta.height):
            self.abort()
            raise ExportError(f"the preview decoder delivers {own.width}x{own.height}, the job {meta.width}x{meta.height}")
        self._frames = self._source.frames()
        self._edges = skeleton_edges(info.keypoint_names)
        self._fps = meta.nominal_fps
        self._encoder = H264Encoder(self._partial, meta.width, meta.height, meta.nominal_fps)
        self._times = RecordFile(self.target.parent, 1, prefix=f"{self.target.name}.times-", dtype="<f8")
        self._last_ts = 0.0

    def write(self, result: FrameResult) -> None:
        if self._encoder is None:
            raise ExportError("PreviewExporter.write before start")
        frame = self._frame_for(result)
        self._times.append([frame.timestamp_s])
        self._last_ts = frame.timestamp_s
        draw_people(frame.image, result.people, self._edges)
        self._encoder.write(frame.image)

    def close(self) -> ExportedFile:
        if self._encoder is None or self._encoder.frames == 0:
            self.abort()
            raise ExportError("no frames were written: there is no preview to encode")
        try:
            self._close_decoder()
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
                       "timing": "per-frame timestamps of the input"}  # fmt: skip
            return describe_file(self.target, KIND, details)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._encoder is not None:
            self._encoder.abort()
            self._encoder = None
        self._close_decoder()
        self._remove_temporaries()
        remove_quietly(self.target)

    def _frame_for(self, result: FrameResult) -> Frame:
        """Advance the decoder to the result's frame (skipping frames the job did not process)."""
        for frame in self._frames:
            if frame.index == result.index:
                return frame
            if frame.index > result.index:
                break
        raise ExportError(f"the preview decoder has no frame {result.index}: results and video disagree")

    def _remove_temporaries(self) -> None:
        remove_quietly(self._partial)
        remove_quietly(self._indexed)
        if self._times is not None:
            self._times.remove()
            self._times = None

    def _close_decoder(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        if self._source is not None:
            self._source.close()
            self._source = None
