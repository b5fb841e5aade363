"""Real results for the export tests: the MediaPipe backend run over a real clip, PHALP through fakes.

Nothing here is a stand-in for the exporters: results come from the real CPU backend decoding the
shared clips with ``VideoSource`` (the job's decoder), and PHALP results from the fake PHALP API
driving the real PHALP driver and converter (tests/fakes, no weights). Node tools (the Khronos
validator, playwright-core) live in tests/browser and are installed with ``npm ci`` there.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.processing.backends.mediapipe import MediapipeBackend
from daemon.processing.backends.phalp.backend import CAMERA_FRAME
from daemon.processing.backends.phalp.convert import ConvertSettings, PersonConverter
from daemon.processing.backends.phalp.driver import StreamingDriver
from daemon.processing.backends.phalp.skeleton import KEYPOINT_FORMAT, PHALP_45
from daemon.config import PosedConfig
from daemon.processing.media import VideoSource
from daemon.processing.exports.base import ExportedFile, Exporter
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, VideoMeta
from tests.daemon_harness import REPO
from tests.fakes.phalp_api import FakeScene, FakeSmplModel, ScriptedPhalp, fake_config

BROWSER_TOOLS = REPO / "tests" / "browser"
NODE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Processed:
    meta: VideoMeta
    info: BackendInfo
    results: tuple[FrameResult, ...]


@functools.lru_cache(maxsize=4)
def mediapipe_results(video: Path, max_people: int | None = None) -> Processed:
    """Every frame of ``video`` through the real MediaPipe backend, as the job feeds it
    (``max_people``: the backend's setting, e.g. 1 for the one-person mode)."""
    cfg = PosedConfig()
    if max_people is not None:
        cfg.backend.mediapipe.max_people = max_people
    backend = MediapipeBackend(cfg.backend.mediapipe)
    info = backend.load(lambda what: None)
    results: list[FrameResult] = []
    try:
        with VideoSource(video, cfg.limits, cfg.inbox.extensions) as source:
            backend.start_video(source.meta, JobOptions())
            for frame in source.frames():
                results.extend(backend.process(frame))
            results.extend(backend.finish())
            meta = source.meta
    finally:
        backend.close()
    return Processed(meta, info, tuple(results))


def phalp_results(scene: FakeScene, frames: int, fps: float = 30.0, **phalp_overrides) -> Processed:
    """PHALP output for a scripted scene: fake PHALP API, real driver and converter."""
    phalp = ScriptedPhalp(fake_config(**phalp_overrides), scene)
    settings = ConvertSettings(focal_length=phalp.cfg.EXTRA.FOCAL_LENGTH, render_res=phalp.cfg.render.res, max_age=phalp.cfg.phalp.max_age_track)
    driver = StreamingDriver(phalp, PersonConverter(FakeSmplModel(), settings))
    driver.start()
    image = scene.image()
    results = []
    for index in range(frames):
        results.extend(driver.step(Frame(index=index, timestamp_s=index / fps, image=image)))
    results.extend(driver.finish())
    info = BackendInfo(name="phalp", version="fake", model_version="fake", device="cpu", keypoint_names=PHALP_45,
                       joint_names_3d=PHALP_45, joints_3d_frame=CAMERA_FRAME, keypoint_format=KEYPOINT_FORMAT)  # fmt: skip
    meta = VideoMeta(path="scripted.mp4", file_bytes=0, container=".mp4", codec="", coded_width=scene.width, coded_height=scene.height,
                     width=scene.width, height=scene.height, rotation_degrees=0, auto_rotated=True, nominal_fps=fps,
                     frame_count_estimate=frames, duration_estimate_s=frames / fps)  # fmt: skip
    return Processed(meta, info, tuple(results))


def export(exporter: Exporter, processed: Processed) -> ExportedFile:
    """The call sequence the job uses: start, one write per result in order, close; an exporter
    that draws on the video also gets each decoded frame (VideoSource, as the job) before its result."""
    exporter.start(processed.meta, processed.info)
    frames = decoded_frames(processed) if exporter.wants_frames else iter(())
    for result in processed.results:
        for frame in frames:
            exporter.frame(frame)
            if frame.index >= result.index:
                break
        exporter.write(result)
    return exporter.close()


def decoded_frames(processed: Processed) -> Iterator[Frame]:
    cfg = PosedConfig()
    with VideoSource(Path(processed.meta.path), cfg.limits, cfg.inbox.extensions) as source:
        yield from source.frames()


def node_tool(script: str, *args: str) -> dict:
    """Run a Node script of tests/browser and return the JSON it prints on its last line."""
    node = shutil.which("node")
    if node is None or not (BROWSER_TOOLS / "node_modules").is_dir():
        raise RuntimeError("Node tooling missing: install Node >= 18 and run `npm ci` in tests/browser")
    done = subprocess.run([node, str(BROWSER_TOOLS / script), *args], cwd=BROWSER_TOOLS, capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    if done.returncode != 0:
        raise AssertionError(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
