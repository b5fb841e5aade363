"""What a result says about its video (issue 10, item 16): the codec is always a FourCC, and
rotation_degrees is the clockwise rotation, the same in the header check and in the decoder."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from daemon.config import VIDEO_EXTENSIONS, LimitsConfig
from daemon.processing.media import VideoSource, inspect_file
from tests.daemon_harness import SHORT_CLIP
from tests.hostile_corpus import ffmpeg

CODECS = {  # file name: (ffmpeg arguments, the FourCC the result must report)
    "h264.mp4": (["-c", "copy"], "avc1"),
    "h264.mov": (["-c", "copy"], "avc1"),
    "h264.mkv": (["-c", "copy"], "avc1"),
    "h264.avi": (["-c:v", "libx264"], "H264"),
    "hevc.mp4": (["-c:v", "libx265", "-x265-params", "log-level=error"], "hev1"),
    "hevc.mkv": (["-c:v", "libx265", "-x265-params", "log-level=error"], "hvc1"),
    "mpeg4.mp4": (["-c:v", "mpeg4"], "mp4v"),
    "mpeg4.avi": (["-c:v", "mpeg4"], "FMP4"),
    "msmpeg4.avi": (["-c:v", "msmpeg4v3"], "MP43"),
    "vp8.webm": (["-c:v", "libvpx", "-b:v", "200k"], "VP80"),
    "vp9.webm": (["-c:v", "libvpx-vp9", "-b:v", "200k"], "VP90"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    directory = tmp_path_factory.mktemp("codecs")
    for name, (args, _) in CODECS.items():
        ffmpeg("-i", SHORT_CLIP, "-frames:v", "5", *args, directory / name)
    return directory


@pytest.mark.parametrize("name", list(CODECS))
def test_the_codec_is_reported_as_a_fourcc_whatever_the_container(clips, name):
    with VideoSource(clips / name, LimitsConfig(), VIDEO_EXTENSIONS) as source:
        assert source.meta.codec == CODECS[name][1]
        assert re.fullmatch(r"[\x20-\x7e]{4}", source.meta.codec)


@pytest.mark.parametrize(
    ("display_rotation", "clockwise", "turn"),
    [("-90", 90, cv2.ROTATE_90_CLOCKWISE), ("90", 270, cv2.ROTATE_90_COUNTERCLOCKWISE), ("180", 180, cv2.ROTATE_180)],
)
def test_rotation_degrees_is_clockwise_and_agrees_between_header_and_decoder(tmp_path, display_rotation, clockwise, turn):
    # FFmpeg's -display_rotation counts counter-clockwise: "90" is a 270-degree clockwise turn.
    rotated = tmp_path / f"rotated{display_rotation}.mp4"
    ffmpeg("-display_rotation", display_rotation, "-i", SHORT_CLIP, "-c", "copy", rotated)
    _, facts = inspect_file(rotated, LimitsConfig(), VIDEO_EXTENSIONS)
    with VideoSource(SHORT_CLIP, LimitsConfig(), VIDEO_EXTENSIONS) as plain, VideoSource(rotated, LimitsConfig(), VIDEO_EXTENSIONS) as source:
        assert facts.rotation == source.meta.rotation_degrees == clockwise
        assert np.array_equal(next(source.frames()).image, cv2.rotate(next(plain.frames()).image, turn))
        assert (source.meta.width, source.meta.height) == ((facts.width, facts.height))
