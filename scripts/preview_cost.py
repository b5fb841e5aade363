#!/usr/bin/env python3
"""What ``output.preview`` costs a job: the same video processed with the preview off and on, in one run.

    python scripts/preview_cost.py VIDEO [--rounds 3] [--json FILE] [key=value ...]

One process loads the backend once, then runs the real job (``run_job``: decode, backend, motion
stage, result writer, exports) alternately without and with the preview, ``--rounds`` times each
(off/on, then on/off, ... so a drifting machine load falls on both sides). Each time is the whole
job including the preview's finish (its queue drained, the file indexed), measured around
``run_job``, with the CPU time it took (this process and its children, the encoder
included): on a loaded machine the wall times swing with the neighbours, the CPU seconds much
less. Prints every run, the medians, their ratios, and the machine (as ``posed bench`` records
it: load average, steal).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.bench.machine import MachineRecord, describe  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.processing.backends import create_backend  # noqa: E402
from daemon.processing.job import JobSpec, run_job  # noqa: E402
from daemon.publishing.outcomes import OutcomeWriter  # noqa: E402
from daemon.records import JobOptions  # noqa: E402

TARGET_RATIO = 1.25  # issue 22: the preview adds at most 25 % to a 1080p job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, dest="json_out")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    machine = MachineRecord()
    cfg = load_config(None, args.overrides)
    backend = create_backend(cfg)
    info = backend.load(lambda what: None)
    runs: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory(prefix="posed-preview-cost-") as folder:
            for round_number in range(args.rounds):
                order = (False, True) if round_number % 2 == 0 else (True, False)
                for preview in order:
                    seconds, cpu_seconds = _timed_job(args.video, Path(folder), backend, info, cfg, preview)
                    runs[preview].append(seconds)
                    cpu[preview].append(cpu_seconds)
                    print(f"round {round_number + 1}  preview {'on ' if preview else 'off'}  {seconds:7.2f} s wall  {cpu_seconds:7.2f} s CPU", flush=True)
    finally:
        backend.close()
    off, on = statistics.median(runs[False]), statistics.median(runs[True])
    cpu_off, cpu_on = statistics.median(cpu[False]), statistics.median(cpu[True])
    figures = {"video": str(args.video), "preview_max_height": cfg.output.preview_max_height, "seconds_off": runs[False],
               "seconds_on": runs[True], "median_off": round(off, 3), "median_on": round(on, 3),
               "ratio": round(on / off, 4), "cpu_seconds_off": cpu[False], "cpu_seconds_on": cpu[True],
               "cpu_ratio": round(cpu_on / cpu_off, 4), "target_ratio": TARGET_RATIO, "machine": machine.finish()}  # fmt: skip
    verdict = "within" if figures["ratio"] <= TARGET_RATIO else "ABOVE"
    print(f"median wall: preview off {off:.2f} s, on {on:.2f} s; ratio {figures['ratio']:.3f} ({verdict} target {TARGET_RATIO})")
    print(f"median CPU:  preview off {cpu_off:.2f} s, on {cpu_on:.2f} s; ratio {figures['cpu_ratio']:.3f}")
    print(f"machine: {describe(figures['machine'])}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def _timed_job(video: Path, folder: Path, backend, info, cfg, preview: bool) -> tuple[float, float]:
    input_info = OutcomeWriter(cfg, Path(cfg.outbox.path)).input_info(video, video.stat())
    spec = JobSpec(job_id=f"preview-cost-{time.time_ns()}", input_path=video, result_tmp=folder / "r.result.json.partial",
                   input_info=input_info, options=JobOptions(preview=preview))  # fmt: skip
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    run_job(spec, backend, info, cfg)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    for leftover in folder.iterdir():
        leftover.unlink()
    return seconds, cpu_seconds


def _cpu_seconds() -> float:
    """User + system time of this process and its reaped children (the encoder, the remuxer)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
