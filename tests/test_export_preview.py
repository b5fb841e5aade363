"""The .preview.mp4 export on every shared clip: H.264, yuv420p, the input's frame count and
duration, at most 720 lines by default, and the skeleton drawn where the backend reported the
keypoints. Drawing and encoding run on the preview's own thread: a stopped encoder does not
stop the writer (a real SIGSTOP to ffmpeg), and nothing is dropped.

The imageio-ffmpeg binary has no ffprobe: streams are read from ``ffmpeg -i X -map 0:v -c copy
-f null -`` (stream line, duration, packet count) and frames are decoded with OpenCV.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.config import PosedConfig
from daemon.processing.media import VideoSource
from daemon.processing.exports.base import ExportError
from daemon.processing.exports.encoder import H264Encoder, ffmpeg_binary
from daemon.processing.exports.mp4_timing import stts_runs
from daemon.processing.exports.overlay import INTERPOLATED_BGR, OUTLINE_BGR, PREDICTED_BGR, colour_for, draw_people
from daemon.processing.exports.preview import QUEUE_ITEMS, PreviewExporter
from daemon.records import Person
from tests.daemon_harness import LONG_CLIP, SHORT_CLIP, STREET_CLIP
from tests.export_support import Processed, decoded_frames, export, mediapipe_results, node_tool
from tests.static_server import serve

CLIPS = [LONG_CLIP, SHORT_CLIP, STREET_CLIP]
CHROMIUM = Path("/usr/bin/chromium")
CFG = PosedConfig()
# Preview frame size by clip (width, height; odd sizes are padded to even by the encoder): the
# 1920x1088 clip comes out at 720 lines, the others are no taller and keep their size.
PREVIEW_SIZES = {LONG_CLIP.name: (1270, 720), SHORT_CLIP.name: (320, 182), STREET_CLIP.name: (960, 540)}


def probe(path: Path) -> dict:
    """What ffmpeg says about the first video stream: codec line, duration, frame (packet) count."""
    done = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    stream = re.search(r"Stream #0:\d+.*?: Video: (.*)", done.stderr).group(1)
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", done.stderr).groups()
    frames = int(re.findall(r"frame=\s*(\d+)", done.stderr)[-1])
    return {"stream": stream, "duration_s": int(h) * 3600 + int(m) * 60 + float(s), "frames": frames}


def decoded_frame(path: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, image = capture.read()
            assert ok, f"{path.name} has no frame {index}"
        return image
    finally:
        capture.release()


def upright_frame(clip: Path, index: int) -> np.ndarray:
    """A frame of the input as the pipeline saw it (rotation applied)."""
    with VideoSource(clip, CFG.limits, CFG.inbox.extensions) as source:
        return next(frame.image for frame in source.frames() if frame.index == index)


def preview_of(processed: Processed, folder: Path):
    exporter = PreviewExporter(folder / f"{Path(processed.meta.path).name}.preview.mp4")
    return export(exporter, processed)


@pytest.fixture(scope="module", params=CLIPS, ids=lambda p: p.name)
def clip_preview(request, tmp_path_factory):
    processed = mediapipe_results(request.param)
    return request.param, processed, preview_of(processed, tmp_path_factory.mktemp("preview"))


def test_preview_is_h264_yuv420p_with_the_inputs_frame_count_and_duration(clip_preview):
    clip, processed, exported = clip_preview
    source, preview = probe(clip), probe(exported.path)
    assert preview["stream"].startswith("h264") and "yuv420p" in preview["stream"]
    assert preview["frames"] == source["frames"] == len(processed.results) == exported.details["frames"]
    assert abs(preview["duration_s"] - source["duration_s"]) <= 1 / processed.meta.nominal_fps
    capture = cv2.VideoCapture(str(exported.path))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == len(processed.results)


def test_the_preview_plays_in_chromium(clip_preview):
    """Debian's chromium (the browser test machine's) decodes and plays it through a <video> element."""
    _, processed, exported = clip_preview
    with serve(exported.path.parent) as base:
        seen = node_tool("check-video.mjs", f"{base}/files/{exported.path.name}", str(CHROMIUM))
    assert seen["error"] is None, seen
    assert (seen["width"], seen["height"]) == PREVIEW_SIZES[Path(processed.meta.path).name] == tuple(exported.details["size"])
    assert seen["duration"] == pytest.approx(processed.results[-1].timestamp_s + 1 / processed.meta.nominal_fps, abs=0.01)
    assert seen["playedTo"] > 0 or seen["duration"] <= 0.2


def test_the_skeleton_is_drawn_at_the_reported_keypoints(clip_preview):
    assert_skeleton_drawn(*clip_preview)


def test_a_phone_video_gets_an_upright_preview(tmp_path):
    """Rotation metadata is applied by the preview's own decoder exactly as by the pipeline."""
    rotated = tmp_path / "phone.mp4"
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-display_rotation", "-90", "-i", str(SHORT_CLIP),
                    "-c", "copy", str(rotated)], check=True, timeout=60)  # fmt: skip
    processed = mediapipe_results(rotated)
    assert processed.meta.rotation_degrees == 90 and (processed.meta.width, processed.meta.height) == (182, 320)
    exported = preview_of(processed, tmp_path)
    assert decoded_frame(exported.path, 0).shape[:2] == (320, 182)
    assert_skeleton_drawn(rotated, processed, exported)


def assert_skeleton_drawn(clip: Path, processed: Processed, exported) -> None:
    with_person = [r for r in processed.results if r.people]
    assert with_person, f"MediaPipe found nobody in {clip.name}"
    result = with_person[len(with_person) // 2]
    person = result.people[0]
    before, after = upright_frame(clip, result.index), decoded_frame(exported.path, result.index)
    to_preview = after.shape[0] / before.shape[0]  # 720 / 1088 for the 1080p clip, else 1
    if to_preview != 1:
        before = cv2.resize(before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_AREA)
        person = replace(person, keypoints=np.asarray(person.keypoints) * [to_preview, to_preview, 1],
                         bbox_xywh=tuple(np.asarray(person.bbox_xywh) * to_preview))  # fmt: skip
    assert before.shape == after.shape
    changed = np.abs(after.astype(int) - before.astype(int)).sum(axis=2) > 90
    radius = max(3, round(min(before.shape[:2]) / 150))
    confident = [kp for kp in person.keypoints if kp[2] >= 0.5 and 0 <= kp[0] < before.shape[1] and 0 <= kp[1] < before.shape[0]]
    near = [changed[max(0, int(y) - radius) : int(y) + radius + 1, max(0, int(x) - radius) : int(x) + radius + 1].any() for x, y, _ in confident]
    assert len(near) >= 5 and np.mean(near) >= 0.9
    away = changed.copy()
    for other in result.people:  # every person's skeleton is drawn: only pixels far from all of them stay
        x, y, w, h = np.asarray(other.bbox_xywh) * to_preview
        away[max(0, int(y - 0.3 * h) - 60) : int(y + 1.2 * h), max(0, int(x - 0.3 * w)) : int(x + 1.3 * w)] = False
    assert away.mean() < 0.01, "pixels far from the people should be the input's (up to compression)"


def test_each_track_state_has_its_own_style():
    """Detected solid, predicted dashed, interpolated hollow: told apart along a bone's midline."""
    keypoints = np.array([[20.0, 50.0, 1.0], [380.0, 50.0, 1.0]])
    midline = {}
    for state in ("detected", "predicted", "interpolated"):
        image = np.zeros((100, 400, 3), dtype=np.uint8)
        person = Person(track_id=1, state=state, confidence=1.0, bbox_xywh=(20, 40, 360, 20), keypoints=keypoints)
        draw_people(image, [person], [(0, 1)])
        midline[state] = image[50, 60:340].astype(int)
    detected = np.abs(midline["detected"] - colour_for(Person(1, "detected", 1, (0, 0, 0, 0), keypoints))).sum(axis=1) < 60
    assert detected.all()
    dashed = np.abs(midline["predicted"] - PREDICTED_BGR).sum(axis=1) < 60
    assert 0.3 < dashed.mean() < 0.8  # dashes and gaps
    hollow_centre = np.abs(midline["interpolated"] - OUTLINE_BGR).sum(axis=1) < 60
    assert hollow_centre.all()
    image = np.zeros((100, 400, 3), dtype=np.uint8)
    draw_people(image, [Person(1, "interpolated", 1.0, (20, 40, 360, 20), keypoints)], [(0, 1)])
    assert (np.abs(image[46:49, 60:340].astype(int) - INTERPOLATED_BGR).sum(axis=2) < 60).any()


def test_results_starting_later_skip_the_frames_the_job_did_not_process(tmp_path):
    processed = mediapipe_results(SHORT_CLIP)
    later = replace(processed, results=processed.results[10:])
    exported = preview_of(later, tmp_path)
    assert probe(exported.path)["frames"] == len(processed.results) - 10


def test_abort_leaves_nothing_and_results_beyond_the_video_are_an_error(tmp_path):
    processed = mediapipe_results(SHORT_CLIP)
    exporter = PreviewExporter(tmp_path / "x.preview.mp4")
    exporter.start(processed.meta, processed.info)
    for frame, result in zip(decoded_frames(processed), processed.results[:5]):
        exporter.frame(frame)
        exporter.write(result)
    encoder = exporter._encoder._process
    exporter.abort()
    assert encoder.poll() is not None and list(tmp_path.iterdir()) == []
    exporter = PreviewExporter(tmp_path / "y.preview.mp4")
    exporter.start(processed.meta, processed.info)
    exporter.write(replace(processed.results[0], index=999))  # found out on the preview's thread...
    with pytest.raises(ExportError, match="no frame 999"):
        exporter.close()  # ...and reported at the next call, which cleans up
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("max_height", "size"), [(0, (320, 182)), (400, (320, 182)), (120, (210, 120))])
def test_preview_max_height_scales_taller_videos_down_keeping_the_aspect(tmp_path, max_height, size):
    processed = mediapipe_results(SHORT_CLIP)
    exporter = PreviewExporter(tmp_path / "s.preview.mp4", max_height)
    exported = export(exporter, processed)
    assert decoded_frame(exported.path, 0).shape[:2] == size[::-1] and exported.details["size"] == list(size)
    assert probe(exported.path)["frames"] == len(processed.results)


def test_writes_do_not_wait_on_a_stopped_encoder_and_nothing_is_dropped(tmp_path):
    """ffmpeg is stopped with SIGSTOP: the job still hands over a queue's worth of frames and
    results (the preview thread holds them); after SIGCONT every frame reaches the file."""
    processed = mediapipe_results(SHORT_CLIP)
    exporter = PreviewExporter(tmp_path / "q.preview.mp4")
    exporter.start(processed.meta, processed.info)
    encoder = exporter._encoder._process
    pairs = list(zip(decoded_frames(processed), processed.results))
    handed = QUEUE_ITEMS // 2
    os.kill(encoder.pid, signal.SIGSTOP)
    try:
        for frame, result in pairs[:handed]:
            exporter.frame(frame)
            exporter.write(result)  # would block on the full pipe if the writer fed x264 itself
        assert exporter._encoder.frames <= 1  # x264 took at most the frame in hand: the queue holds the rest
    finally:
        os.kill(encoder.pid, signal.SIGCONT)
    for frame, result in pairs[handed:]:
        exporter.frame(frame)
        exporter.write(result)
    exported = exporter.close()
    assert exported.details["frames"] == probe(exported.path)["frames"] == len(processed.results)


def test_a_variable_frame_rate_video_keeps_every_frame_at_its_own_time(tmp_path):
    """First second at 30 fps, then 15 fps: each preview frame is shown at its input frame's time."""
    vfr = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(SHORT_CLIP),
                    "-vf", "setpts='if(lt(N,30),N,30+(N-30)*2)/30/TB'", "-fps_mode", "vfr", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(vfr)], check=True, timeout=60)  # fmt: skip
    processed = mediapipe_results(vfr)
    source_times = [r.timestamp_s for r in processed.results]
    steps = np.diff(source_times)
    assert steps.min() == pytest.approx(1 / 30, abs=1e-3) and steps.max() == pytest.approx(2 / 30, abs=1e-3)
    exported = preview_of(processed, tmp_path)
    with VideoSource(exported.path, CFG.limits, CFG.inbox.extensions) as preview:
        preview_times = [frame.timestamp_s for frame in preview.frames()]
    assert preview_times == pytest.approx(source_times, abs=1e-3)
    source, encoded = probe(vfr), probe(exported.path)
    assert encoded["frames"] == source["frames"] == 60
    # the result's duration_s: the last frame's start plus one nominal frame
    assert encoded["duration_s"] == pytest.approx(source_times[-1] + 1 / processed.meta.nominal_fps, abs=0.011)


def test_stts_runs_compress_equal_frame_durations_and_end_with_the_last_frame():
    assert stts_runs([0, 3000, 6000, 9000, 15000, 18000]) == [(3, 3000), (1, 6000), (1, 3000)]
    assert stts_runs([0, 1]) == [(1, 1)]


def test_odd_sizes_are_padded_with_one_black_line_and_pixels_stay_in_place(tmp_path):
    """yuv420p needs even sizes: a 321x181 frame becomes 322x182, the picture unmoved and unscaled."""
    image = np.zeros((181, 321, 3), dtype=np.uint8)
    image[:, :160] = (40, 200, 90)
    image[:, 160:] = (220, 60, 30)
    encoder = H264Encoder(tmp_path / "odd.mp4", 321, 181, 30.0)
    for _ in range(3):
        encoder.write(image)
    encoder.close()
    decoded = decoded_frame(tmp_path / "odd.mp4", 2).astype(int)
    assert decoded.shape == (182, 322, 3)
    assert np.abs(decoded[:181, :321] - image).max(axis=2)[4:-4, 4:-4].mean() < 8  # same picture (up to compression)
    grey = cv2.cvtColor(decoded.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(int)
    assert grey[181, 2:318].max() < 50 and grey[4:176, 321].max() < 50  # the added line and column: black (their chroma is shared)
    assert grey[178, 2:318].min() > 60 and grey[4:176, 318].min() > 50  # the picture's own edge is not


def test_a_dead_encoder_fails_the_preview_without_holding_up_the_job(tmp_path):
    """SIGKILL to x264 mid-video: handing frames over returns at once (the decoder is never held
    up by a dead preview), the next write or close raises, and nothing is left behind."""
    processed = mediapipe_results(SHORT_CLIP)
    exporter = PreviewExporter(tmp_path / "k.preview.mp4")
    exporter.start(processed.meta, processed.info)
    pairs = list(zip(decoded_frames(processed), processed.results))
    for frame, result in pairs[:5]:
        exporter.frame(frame)
        exporter.write(result)
    os.kill(exporter._encoder._process.pid, signal.SIGKILL)
    with pytest.raises(ExportError, match="the preview encoder stopped"):
        for frame, result in pairs[5:]:
            exporter.frame(frame)  # never raises, never blocks on a stopped preview thread
            exporter.write(result)
        exporter.close()
    assert exporter._work is None or not exporter._work._thread.is_alive()
    exporter.abort()
    assert list(tmp_path.iterdir()) == []
