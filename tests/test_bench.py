"""``posed bench`` as users run it: a real subprocess on a real clip, JSON and PNG checked.

Figures are checked for presence and type, never for speed: CI machines vary.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from daemon.bench.machine import cpu_model, cpu_times, describe, steal_fraction
from daemon.bench.runner import held_frame_count, mark_frames
from daemon.bench.types import INSTALL_BENCH_EXTRA, BenchError, LoopedClip
from daemon.bench.report import require_matplotlib
from daemon.bench.stock import stock_loop
from daemon.config import PosedConfig
from daemon.records import Frame, VideoMeta
from tests.daemon_harness import REPO, SHORT_CLIP

_SCRIPT = Path(sys.executable).with_name("posed")  # the console script pip installed
POSED = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "daemon.cli"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BENCH_TIMEOUT_S = 120


def posed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSED, *args], cwd=REPO, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = posed("bench", str(SHORT_CLIP), "--frames", "120", "--json", str(out / "bench.json"), "--plot", str(out / "bench.png"))
    return done, out


def test_bench_writes_every_figure_named_in_issue_6(bench_run):
    done, out = bench_run
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads((out / "bench.json").read_text())
    for key in ("fps", "decode_fps_floor", "backend_fps_floor", "overhead_ratio", "ready_seconds"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    for key in ("rss_peak_bytes", "rss_at_10pct_bytes", "rss_at_100pct_bytes"):
        assert isinstance(figures[key], int) and figures[key] > 0, key
    assert isinstance(figures["rss_growth_bytes"], int)
    assert figures["rss_growth_bytes"] == figures["rss_at_100pct_bytes"] - figures["rss_at_10pct_bytes"]
    assert figures["gpu_peak_bytes"] is None  # CPU backend
    assert set(figures["stage_seconds"]) >= {"decode", "backend", "write"}
    assert all(isinstance(v, float) and v >= 0 for v in figures["stage_seconds"].values())
    assert figures["frames"] == 120
    assert 0.9 <= figures["people_per_frame"] <= 1.1  # the one runner, in (nearly) every frame
    assert (figures["rss_10pct_frame"], figures["rss_100pct_frame"]) == (12, 120 - (2 * 8 + 4))
    assert figures["video"].endswith(SHORT_CLIP.name)
    assert figures["backend"] == "mediapipe"
    assert figures["config"] == {"queue_frames": 8, "threaded": True}
    assert figures["backend_floor_held_frames"] == 60  # one pass of the 60-frame clip
    assert isinstance(figures["sequential_fps"], float) and figures["sequential_frames"] == 120
    series = figures["series"]
    assert len(series["seconds"]) == len(series["rss_bytes"]) == len(series["frames_done"]) >= 2
    assert series["frames_done"][-1] == 120


def test_bench_prints_a_table_and_draws_a_png(bench_run):
    done, out = bench_run
    for label in ("end to end", "decode floor", "backend floor", "overhead ratio", "RSS growth", "60 decoded frames held in memory"):
        assert label in done.stdout
    assert (out / "bench.png").read_bytes()[:8] == PNG_SIGNATURE


def test_bench_reports_the_motion_stages_quality_figures(bench_run):
    """Issue 13: jitter raw vs smoothed and the displacement, in the JSON and the table."""
    done, out = bench_run
    motion = json.loads((out / "bench.json").read_text())["motion"]
    figures = motion["keypoints_2d"]
    assert motion["smoothing"] and motion["fill_gaps"] and motion["latency_frames"] == 15
    assert 0 < figures["smoothed_mean_acceleration_px"] < figures["raw_mean_acceleration_px"]
    assert figures["acceleration_samples"] > 0 and figures["mean_displacement_px"] > 0
    assert sum(track["detected"] + track["interpolated"] for track in motion["tracks"]) <= 120
    assert "mean acceleration raw" in done.stdout and "mean displacement" in done.stdout
    assert motion["identity_breaks"] == 0 and "0 identity breaks" in done.stdout  # one runner, never split


def test_bench_records_the_machine_in_the_json_the_table_and_the_plot(bench_run):
    """Issue 22: figures from a busy or shared box must say so (CPU, cores, load, steal, versions)."""
    done, out = bench_run
    machine = json.loads((out / "bench.json").read_text())["machine"]
    assert machine["cpu_model"] == cpu_model() and machine["cpu_model"] != "unknown"
    assert machine["cpu_count"] == os.cpu_count() and 1 <= machine["usable_cores"] <= machine["cpu_count"]
    for key in ("load_average_before", "load_average_after"):
        assert len(machine[key]) == 3 and all(isinstance(v, float) and v >= 0 for v in machine[key])
    assert isinstance(machine["steal_percent"], float) and 0 <= machine["steal_percent"] <= 100
    assert machine["python"] == platform.python_version()
    assert machine["libraries"]["mediapipe"] == metadata.version("mediapipe")
    assert machine["libraries"]["numpy"] == metadata.version("numpy")
    line = describe(machine)
    assert machine["cpu_model"] in line and "load" in line and "steal" in line and "mediapipe" in line
    assert f"machine      {line}" in done.stdout
    assert _png_text((out / "bench.png").read_bytes())["Description"] == line  # the line drawn under the title


def test_steal_is_the_stolen_share_of_cpu_time_between_two_proc_stat_readings(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 10 0 0 40 7 0\ncpu0 1 2 3\nintr 5\n")
    before = cpu_times(stat)
    stat.write_text("cpu  200 0 80 1500 10 0 0 50 9 0\ncpu0 1 2 3\nintr 5\n")
    after = cpu_times(stat)
    assert (before.total, before.steal) == (1000, 40)
    assert steal_fraction(before, after) == pytest.approx(10 / 840)  # guest time is inside user time: not counted twice
    assert steal_fraction(None, after) is None and cpu_times(tmp_path / "missing") is None


def _png_text(data: bytes) -> dict[str, str]:
    """tEXt chunks of a PNG (keyword NUL text)."""
    out, at = {}, 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        at += 12 + length
    return out


def test_stock_baseline_refuses_clearly_without_the_gpu_stack(tmp_path):
    done = posed("bench", str(SHORT_CLIP), "--frames", "5", "--backend", "phalp", "--baseline", "stock")
    assert done.returncode == 1
    assert "GPU stack is not installed" in done.stderr
    done = posed("bench", str(SHORT_CLIP), "--frames", "5", "--baseline", "stock")
    assert done.returncode == 1
    assert "--backend phalp" in done.stderr


def test_plot_without_matplotlib_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec then reports it missing
    with pytest.raises(BenchError, match="pip install 'posed\\[bench\\]'"):
        require_matplotlib()
    assert INSTALL_BENCH_EXTRA == "pip install 'posed[bench]'"


def test_looped_clip_continues_indices_and_timestamps():
    clip = LoopedClip(SHORT_CLIP, PosedConfig(), limit=150, passes=None)
    frames = [(frame.index, frame.timestamp_s) for frame in clip.frames()]
    assert [index for index, _ in frames] == list(range(150))  # 60-frame clip: 2.5 passes
    stamps = [ts for _, ts in frames]
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:]))
    assert stamps[60] - stamps[59] == pytest.approx(1 / 30, abs=1e-3)


def test_looped_clip_plays_the_asked_number_of_passes():
    clip = LoopedClip(SHORT_CLIP, PosedConfig(), limit=None, passes=2)
    assert sum(1 for _ in clip.frames()) == 120


def test_backend_floor_holds_a_bounded_number_of_frames():
    def meta(width: int, height: int, clip_frames: int | None = None) -> VideoMeta:
        return VideoMeta("v.mp4", 1, ".mp4", "avc1", width, height, width, height, 0, True, 30.0, clip_frames, None)

    assert held_frame_count(meta(320, 182), 120) == 120
    assert held_frame_count(meta(320, 182), 18_000) == 300
    assert held_frame_count(meta(1920, 1088, clip_frames=180), 18_000) == 180  # one pass of the clip
    assert held_frame_count(meta(3840, 2160), 18_000) == 86  # 2 GiB of 4K frames


def test_memory_marks_leave_out_the_drain_at_the_end():
    assert mark_frames(18_000, 8) == {"early": 1_800, "end": 18_000 - 20}
    assert mark_frames(5, 8) == {"early": 1, "end": 1}


def test_stock_loop_keeps_every_frame_and_back_fills_like_phalp_track(tmp_path):
    from tests.fakes.phalp_api import FakeScene, ScriptedPerson, ScriptedPhalp, fake_config

    scene = FakeScene([ScriptedPerson(1, lambda t: True)])
    phalp = ScriptedPhalp(fake_config(), scene)
    frames = (Frame(index=t, timestamp_s=t / 30, image=scene.image()) for t in range(12))
    pkl = tmp_path / "stock.pkl"
    count = stock_loop(phalp, frames, pkl, dump=lambda value, path: path.write_bytes(pickle.dumps(value)))
    assert count == 12
    visuals = pickle.loads(pkl.read_bytes())
    assert len(visuals) == 12  # upstream keeps every frame's records until the end
    n_init = phalp.cfg.phalp.n_init
    assert all(visuals[f"{t:06d}.jpg"]["tid"] == [1] for t in range(12))  # back-filled before n_init
    assert visuals[f"{n_init - 2:06d}.jpg"]["tracked_time"] == [0]
