"""What ``posed bench`` hands back: the figures as JSON, a table on stdout, a PNG.

Everything is derived from one ``figures`` dict, so the table, the JSON and the plot can never
disagree. The JSON keys named in issue 6 (``fps``, ``decode_fps_floor``, ``backend_fps_floor``,
``overhead_ratio``, ``rss_peak_bytes``, ``rss_growth_bytes``, ``gpu_peak_bytes``,
``ready_seconds``, ``stage_seconds``) are a contract for scripts comparing runs: add, never rename.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import textwrap
import sys
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.bench.machine import describe as describe_machine
from daemon.bench.types import INSTALL_BENCH_EXTRA, BenchError, EndToEnd, Measured
from daemon.config import PosedConfig
from daemon.clock import utc_now
from daemon.records import BackendInfo, VideoMeta

MB = 1024 * 1024
FPS_WINDOW_S = 2.0  # frames/s in the plot is averaged over this much time: smooth, not flat
OVERHEAD_TARGET = 1.15  # issue 6, CPU backend on a 2-core machine


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise BenchError(f"--plot needs matplotlib, which is not installed; install it with: {INSTALL_BENCH_EXTRA}")


def build_figures(
    *,
    cfg: PosedConfig,
    video: Path,
    meta: VideoMeta,
    info: BackendInfo,
    end_to_end: EndToEnd,
    decode_floor: Measured,
    backend_floor: Measured,
    held_frames: int,
    sequential: Measured,
    timing: dict[str, float],
    baseline: dict[str, Any] | None,
    clip_frames: int | None,
) -> dict[str, Any]:
    floor_seconds = max(decode_floor.seconds, backend_floor.seconds)
    stages = {name: round(seconds, 3) for name, seconds in end_to_end.stats.stage_seconds.items()}
    growth = None
    if end_to_end.rss_early is not None and end_to_end.rss_end is not None:
        growth = end_to_end.rss_end - end_to_end.rss_early
    samples = end_to_end.sampler.ordered() if end_to_end.sampler else []
    return {
        "posed_version": __version__,
        "created_at": utc_now(),
        "video": str(video),
        "video_size": [meta.width, meta.height],
        "clip_frames": clip_frames,
        "frames": end_to_end.frames,
        "backend": info.name,
        "backend_version": info.version,
        "model_version": info.model_version,
        "device": info.device,
        "config": {"queue_frames": cfg.pipeline.queue_frames, "threaded": cfg.pipeline.threaded},
        "fps": round(end_to_end.fps, 3),
        "seconds": round(end_to_end.seconds, 3),
        "decode_fps_floor": round(decode_floor.fps, 3),
        "decode_floor_seconds": round(decode_floor.seconds, 3),
        "backend_fps_floor": round(backend_floor.fps, 3),
        "backend_floor_seconds": round(backend_floor.seconds, 3),
        "backend_floor_held_frames": held_frames,
        "overhead_ratio": round(end_to_end.seconds / floor_seconds, 4) if floor_seconds > 0 else None,
        "overhead_target": OVERHEAD_TARGET,
        "stage_seconds": stages,
        "bottleneck": max(stages, key=lambda name: stages[name]) if stages else None,
        "rss_peak_bytes": end_to_end.rss_peak,
        "rss_at_10pct_bytes": end_to_end.rss_early,
        "rss_at_100pct_bytes": end_to_end.rss_end,
        "rss_10pct_frame": end_to_end.early_frame,
        "rss_100pct_frame": end_to_end.end_frame,
        "rss_after_run_bytes": end_to_end.rss_after,
        "rss_growth_bytes": growth,
        "gpu_peak_bytes": end_to_end.gpu_peak,
        "ready_seconds": round(timing["ready_seconds"], 3),
        "load_seconds": round(timing["load_seconds"], 3),
        "warmup_seconds": round(timing["warmup_seconds"], 3),
        "load_rss_peak_bytes": timing.get("load_rss_peak"),
        "synthetic_weights": timing.get("synthetic_weights", False),
        "sequential_fps": round(sequential.fps, 3),
        "sequential_frames": sequential.frames,
        "result_bytes": end_to_end.result_bytes,
        "bytes_per_frame": round(end_to_end.result_bytes / max(end_to_end.frames, 1), 1),
        "bytes_per_person_frame": round(end_to_end.result_bytes / end_to_end.person_frames, 1) if end_to_end.person_frames else None,
        # Speed depends on how many people each frame holds: every person is one landmark pass.
        "people_per_frame": round(end_to_end.person_frames / max(end_to_end.frames, 1), 3),
        "baseline": baseline,
        "motion": end_to_end.motion,
        "machine": None,  # filled in by the runner once every measurement is done (bench.machine)
        "series": {
            "seconds": [round(sample.seconds, 3) for sample in samples],
            "rss_bytes": [sample.rss_bytes for sample in samples],
            "frames_done": [sample.frames_done for sample in samples],
            "gpu_bytes": [sample.gpu_bytes for sample in samples] if end_to_end.gpu_peak is not None else None,
        },
    }


def write_outputs(figures: dict[str, Any], args: argparse.Namespace) -> None:
    sys.stdout.write(render_table(figures))
    sys.stdout.flush()
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=1) + "\n")
    if args.plot is not None:
        plot(figures, args.plot)


def render_table(figures: dict[str, Any]) -> str:
    frames, width, height = figures["frames"], *figures["video_size"]
    config = figures["config"]
    clip_frames = figures["clip_frames"]
    loop_note = f"{clip_frames}-frame clip" + (", looped" if clip_frames and frames > clip_frames else "")
    lines = [
        f"posed bench  {Path(figures['video']).name}  {width}x{height}, {frames} frames ({loop_note})",
        f"backend      {figures['backend']} on {figures['device']}; "
        f"queue_frames={config['queue_frames']}, {'threaded' if config['threaded'] else 'sequential'}",
        f"machine      {describe_machine(figures['machine'])}",
        f"people       {figures['people_per_frame']:.2f} per frame on average (person-frames written / frames)",
        f"ready        {figures['ready_seconds']:.2f} s from process start "
        f"(model load {figures['load_seconds']:.2f} s, warm-up {figures['warmup_seconds']:.2f} s)",
        *(["weights      SYNTHETIC: real architectures, random weights (speed and memory only; poses are meaningless)"]
          if figures.get("synthetic_weights") else []),
        "",
        f"{'':24}{'frames/s':>10}{'seconds':>10}",
        _row("end to end", figures["fps"], figures["seconds"], "decode -> backend -> result file, overlapped"),
        _row("decode floor", figures["decode_fps_floor"], figures["decode_floor_seconds"], "decode only, same frames"),
        _row(
            "backend floor",
            figures["backend_fps_floor"],
            figures["backend_floor_seconds"],
            f"backend only, {figures['backend_floor_held_frames']} decoded frames held in memory, looped to {frames}",
        ),
        _row("sequential", figures["sequential_fps"], None, f"no overlap, first {figures['sequential_frames']} frames"),
    ]
    if figures["baseline"]:
        baseline = figures["baseline"]
        lines.append(_row("stock loop", baseline["fps"], baseline["seconds"], baseline["description"]))
    ratio = figures["overhead_ratio"]
    verdict = "" if ratio is None else ("  (within target)" if ratio <= OVERHEAD_TARGET else "  (ABOVE target)")
    lines += [
        "",
        f"overhead ratio  {_number(ratio, '.3f')}{verdict}: end-to-end time / max(decode floor, backend floor) time; "
        f"target <= {OVERHEAD_TARGET}",
        "",
        f"{'stage (busy time on its thread)':34}{'seconds':>9}{'of wall':>9}",
    ]
    for name, seconds in figures["stage_seconds"].items():
        share = seconds / figures["seconds"] if figures["seconds"] else 0.0
        mark = "  <- bottleneck" if name == figures["bottleneck"] else ""
        lines.append(f"{name:34}{seconds:9.2f}{share:9.0%}{mark}")
    lines += [
        "",
        _memory_row(f"RSS at 10% (frame {figures['rss_10pct_frame']})", figures["rss_at_10pct_bytes"]),
        _memory_row(f"RSS at 100% (frame {figures['rss_100pct_frame']})", figures["rss_at_100pct_bytes"], "last frame with full queues"),
        _memory_row("RSS growth 10% -> 100%", figures["rss_growth_bytes"]),
        _memory_row("RSS peak", figures["rss_peak_bytes"]),
        _memory_row("RSS peak while loading", figures.get("load_rss_peak_bytes"), "VmHWM from process start to a loaded backend"),
        _memory_row("RSS after the run", figures["rss_after_run_bytes"], "decoder closed, queues drained"),
        _memory_row("GPU peak", figures["gpu_peak_bytes"], "" if figures["gpu_peak_bytes"] is not None else "not on CUDA"),
        _memory_row("result files", figures["result_bytes"],
                    f"{figures['bytes_per_frame']:.0f} B/frame, {figures['bytes_per_person_frame'] or 0:.0f} B/person-frame"),
        "",
        *_motion_rows(figures.get("motion")),
    ]
    return "\n".join(lines)


def _motion_rows(motion: dict[str, Any] | None) -> list[str]:
    """Jitter raw vs smoothed and what smoothing costs (issue 13), as in the result summary."""
    if not motion:
        return []
    rows = [
        f"motion       smoothing {'on (two-sided, ' + str(motion['smoothing_frames']) + ' frames each way)' if motion['smoothing'] else 'off'}, gap filling "
        f"{'on' if motion['fill_gaps'] else 'off'} (up to {motion['max_gap_frames']} frames, latency {motion['latency_frames']} frames)"
    ]
    for label, key, unit in (("2D keypoints", "keypoints_2d", "px"), ("3D joints", "joints_3d", "mm")):
        block = motion[key]
        raw, smoothed = block[f"raw_mean_acceleration_{unit}"], block[f"smoothed_mean_acceleration_{unit}"]
        if raw is None:
            continue
        rows.append(
            f"  {label:14}mean acceleration raw {raw:.3f} -> smoothed {smoothed:.3f} {unit}/frame^2; "
            f"mean displacement {block[f'mean_displacement_{unit}']:.3f} {unit}"
        )
    states = {state: sum(track[state] for track in motion["tracks"]) for state in ("detected", "predicted", "interpolated")}
    rows += [
        f"  frames       {', '.join(f'{n} {state}' for state, n in states.items())} (all tracks); "
        f"{motion['identity_breaks']} identity breaks (jumps no body makes: new track ids)",
        "",
    ]
    return rows


def _row(label: str, fps: float, seconds: float | None, note: str) -> str:
    return f"{label:24}{fps:10.1f}{_number(seconds, '10.1f') if seconds is not None else '':>10}    {note}"


def _memory_row(label: str, value: int | None, note: str = "") -> str:
    return f"{label:34}{_mb(value):>11}    {note}".rstrip()


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MB:8.1f} MB"


def plot(figures: dict[str, Any], path: Path) -> None:
    """Two panels over the end-to-end run: RSS, and frames/s against both floors."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    series = figures["series"]
    seconds, rss, done = series["seconds"], [v / MB for v in series["rss_bytes"]], series["frames_done"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, constrained_layout=True)
    top.plot(seconds, rss, color="tab:blue", label="RSS")
    for frame, key, label in (
        (figures["rss_10pct_frame"], "rss_at_10pct_bytes", "10%"),
        (figures["rss_100pct_frame"], "rss_at_100pct_bytes", "100%"),
    ):
        at = next((s for s, d in zip(seconds, done) if d >= frame), None)
        if at is not None and figures[key] is not None:
            top.plot([at], [figures[key] / MB], "o", color="tab:red")
            top.annotate(f"{label}: {figures[key] / MB:.1f} MB", (at, figures[key] / MB), textcoords="offset points", xytext=(6, 6))
    top.set_ylabel("resident memory (MB)")
    top.set_ylim(bottom=0, top=max(rss + [1.0]) * 1.15)
    top.grid(alpha=0.3)
    if series["gpu_bytes"]:
        top.plot(seconds, [(v or 0) / MB for v in series["gpu_bytes"]], color="tab:purple", label="GPU allocated")
    top.legend(loc="lower right")

    times, rates = _rates(seconds, done)
    # Scale to the binding (slower) floor: a decode floor of thousands of frames/s on a small
    # clip would otherwise flatten everything else against the x axis.
    top_fps = max(rates + [min(figures["backend_fps_floor"], figures["decode_fps_floor"])]) * 1.25
    bottom.plot(times, rates, color="tab:green", label=f"end to end ({FPS_WINDOW_S:g} s average), mean {figures['fps']:.1f}")
    for key, name, style, colour in (("backend_fps_floor", "backend", "--", "tab:orange"), ("decode_fps_floor", "decode", ":", "tab:gray")):
        off_scale = " (off scale)" if figures[key] > top_fps else ""
        bottom.axhline(figures[key], color=colour, linestyle=style, label=f"{name} floor {figures[key]:.1f}{off_scale}")
    bottom.set_ylim(bottom=0, top=top_fps)
    bottom.set_xlabel("seconds since the end-to-end run started")
    bottom.set_ylabel("frames per second")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="lower right")
    growth = figures["rss_growth_bytes"]
    fig.suptitle(
        f"posed bench: {Path(figures['video']).name}, {figures['frames']} frames, {figures['backend']} on {figures['device']}\n"
        f"{figures['fps']:.1f} frames/s end to end (floors: backend {figures['backend_fps_floor']:.1f}, "
        f"decode {figures['decode_fps_floor']:.1f}); overhead ratio {_number(figures['overhead_ratio'], '.3f')}; "
        f"RSS growth 10%->100% {_number(None if growth is None else growth / MB, '.1f')} MB\n"
        + textwrap.fill(describe_machine(figures["machine"]), 160),
        fontsize=10,
    )
    # The machine line also as the PNG's Description: a script can read what the picture says.
    fig.savefig(path, dpi=100, metadata={"Description": describe_machine(figures["machine"])})
    plt.close(fig)


def _rates(seconds: list[float], done: list[int]) -> tuple[list[float], list[float]]:
    """Frames/s between each sample and the first one at least ``FPS_WINDOW_S`` before it."""
    times: list[float] = []
    rates: list[float] = []
    start = 0
    for end in range(1, len(seconds)):
        while start + 1 < end and seconds[end] - seconds[start + 1] >= FPS_WINDOW_S:
            start += 1
        span = seconds[end] - seconds[start]
        if span >= min(FPS_WINDOW_S, seconds[-1] / 4) and span > 0:
            times.append(seconds[end])
            rates.append((done[end] - done[start]) / span)
    return times, rates
