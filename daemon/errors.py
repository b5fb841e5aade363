"""Error codes the Node backend can switch on, and the exceptions that carry them.

Codes are part of the outbox contract: never rename one, only add. Each code has a default
hint telling a person what to do about it.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    EMPTY_FILE = "E_EMPTY_FILE"
    NOT_A_VIDEO = "E_NOT_A_VIDEO"
    NO_VIDEO_STREAM = "E_NO_VIDEO_STREAM"
    NO_FRAMES = "E_NO_FRAMES"
    DECODE = "E_DECODE"
    UNSUPPORTED = "E_UNSUPPORTED"
    TOO_LARGE = "E_TOO_LARGE"
    TOO_LONG = "E_TOO_LONG"
    RESOLUTION_TOO_HIGH = "E_RESOLUTION_TOO_HIGH"
    INPUT_VANISHED = "E_INPUT_VANISHED"
    INPUT_CHANGED = "E_INPUT_CHANGED"
    UNREADABLE = "E_UNREADABLE"
    BAD_NAME = "E_BAD_NAME"
    BAD_SIDECAR = "E_BAD_SIDECAR"
    WORKER_CRASH = "E_WORKER_CRASH"
    STALLED = "E_STALLED"
    TIME_LIMIT = "E_TIME_LIMIT"
    OUT_OF_MEMORY = "E_OUT_OF_MEMORY"
    BACKEND = "E_BACKEND"
    INTERNAL = "E_INTERNAL"
    TRUNCATED = "E_TRUNCATED"  # issue 5: the header shows the file is cut short
    BAD_JOB_DATA = "E_BAD_JOB_DATA"  # issue 15: a queue job's data fails queue-job.schema.json
    QUEUE_STALLED = "E_QUEUE_STALLED"  # issue 21: BullMQ gave up on a job whose lock was lost too often
    TOO_MANY_FRAMES = "E_TOO_MANY_FRAMES"  # issue 10: decode bombs
    FRAME_RATE_TOO_HIGH = "E_FRAME_RATE_TOO_HIGH"


HINTS: dict[ErrorCode, str] = {
    ErrorCode.QUEUE_STALLED: "The job's lock ran out more than intake.max_stalled_count times (its daemons died, or lost Redis "
    "for longer than intake.lock_duration_s). Check the daemons and Redis, then enqueue it again.",
    ErrorCode.EMPTY_FILE: "The file has 0 bytes; the upload or copy probably failed. Upload it again.",
    ErrorCode.NOT_A_VIDEO: "The file is not a video container OpenCV/FFmpeg can open. Check the upload.",
    ErrorCode.NO_VIDEO_STREAM: "The container has no video stream (audio only?). Upload the video track.",
    ErrorCode.NO_FRAMES: "The video opened but no frame could be decoded. Re-encode it (H.264 mp4).",
    ErrorCode.DECODE: "Decoding failed part-way; the file is probably truncated. Upload it again.",
    ErrorCode.UNSUPPORTED: "The file type is not accepted. Use mp4, mov, m4v, avi, mkv or webm.",
    ErrorCode.TOO_LARGE: "The file exceeds limits.max_file_bytes. Trim or compress it, or raise the limit.",
    ErrorCode.TOO_LONG: "The video exceeds limits.max_duration_s. Trim it, or raise the limit.",
    ErrorCode.RESOLUTION_TOO_HIGH: "The frame size exceeds limits.max_width/max_height. Downscale it.",
    ErrorCode.INPUT_VANISHED: "The input was deleted while it was being processed. Submit it again.",
    ErrorCode.INPUT_CHANGED: "The input was replaced or modified while being processed. Submit it again.",
    ErrorCode.UNREADABLE: "The daemon may not read the file (permissions). Fix its permissions and resubmit.",
    ErrorCode.BAD_NAME: "The file name cannot be handled safely. Rename it and resubmit.",
    ErrorCode.BAD_SIDECAR: "The job sidecar (.job.json) is invalid. Fix it and resubmit both files.",
    ErrorCode.WORKER_CRASH: "The pose worker crashed on this video on every attempt. See signal and stderr tail.",
    ErrorCode.STALLED: "The pose worker made no progress within worker.stall_timeout_s and was stopped.",
    ErrorCode.TIME_LIMIT: "Processing exceeded worker.ceiling_base_s + ceiling_factor x the video's frames at 30 fps. Trim it, or raise the ceiling.",
    ErrorCode.OUT_OF_MEMORY: "The backend ran out of memory even in low-memory mode. Try a shorter or smaller video.",
    ErrorCode.BACKEND: "The pose backend failed on this video. See the message for details.",
    ErrorCode.INTERNAL: "An unexpected daemon error. Please report it with the log lines of this job id.",
    ErrorCode.TRUNCATED: "The file is incomplete: the upload or copy stopped before the end. Upload the whole file again.",
    ErrorCode.BAD_JOB_DATA: "The queue job's data is invalid (see daemon/schemas/queue-job.schema.json). Fix it and enqueue again.",
    ErrorCode.TOO_MANY_FRAMES: "The video declares more frames than limits.max_frames. Trim it, or raise the limit.",
    ErrorCode.FRAME_RATE_TOO_HIGH: "The video's frame rate exceeds limits.max_fps. Re-encode it at a lower rate (e.g. -r 60), or raise the limit.",
}


class PosedError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(PosedError):
    """Bad configuration: reported at start, names the key."""


class JobError(PosedError):
    """A video-level failure with a stable code; becomes ``<name>.error.json``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        stage: str = "",
        frame_index: int | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage
        self.frame_index = frame_index
        self.details = details or {}

    def to_dict(self) -> dict:
        return {
            "code": self.code.value,
            "message": self.message,
            "hint": HINTS[self.code],
            "stage": self.stage,
            "frame_index": self.frame_index,
            "details": self.details,
        }


class BackendUnavailable(PosedError):
    """The backend cannot load (missing weights, no CUDA, missing package): a daemon health problem."""


class JobCancelled(PosedError):
    """The supervisor asked the worker to stop the current video (shutdown)."""


class PublishError(PosedError):
    """The outbox refused a file (ENOSPC, read-only, held open too long); the job is retried later."""


class EvaluationError(PosedError):
    """``posed eval`` cannot score: unreadable annotations, a frame map that points nowhere, no shared keypoints."""
