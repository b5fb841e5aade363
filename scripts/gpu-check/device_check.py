"""The one-call GPU device check (issue 20), run on the lent GPU machine by run.sh.

    python3 scripts/gpu-check/device_check.py --carry .gpucarry --out "$OUT" [--budget-s 540] [--plan]

Gates first, each failing fast with a JSON error: ``env`` (a CUDA device), ``install`` (the
carried wheels and sources, no network, no compiler), ``smoke`` (posed's GPU wiring imports),
``cache`` (the synthetic-weights model cache posed's bench uses). Then the measurements by
priority, each skipped when the time left is less than its estimate:

1. ``bench_fp32_k8``: ``posed bench`` at 1080p, fp32, batch_frames 8, with the stock loop;
2. ``bench_fp16_k8``, ``joints_fp16_vs_fp32``, ``bench_fp32_k1``, ``bench_fp16_k1``;
3. ``bench_cap7g``: fp32 K=8 with the allocator capped at 7 GiB (an 8 GB RTX 4060 stand-in);
4. ``depth_parity``: the torch depth renderer against NMR's rasteriser compiled there.

Every figure lands as JSON under ``--out``; ``summary.json`` is rewritten after every step, so
a run cut short still leaves a valid summary. The format is in docs/gpu.md ("Device check").
Exit status: 0 all gates passed, 2 bad arguments, 3-6 the gate that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TORCH_SERIES = "2.11"
BENCH_FRAMES, MATRIX_FRAMES = 120, 48
GATE_EXIT = {"env": 3, "install": 4, "smoke": 5, "cache": 6}
CAP_GIB = 7.0
RESERVE_S = 10.0


class Run:
    """The clock, the output folder and the summary every step reports into."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.budget_s, self.started = out, budget_s, time.monotonic()
        self.summary: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget_s": budget_s,
                              "ok": None, "failed_step": None, "steps": []}  # fmt: skip

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started) - RESERVE_S

    def record(self, entry: dict) -> None:
        self.summary["steps"].append(entry)
        self.write("summary.json", self.summary)

    def write(self, name: str, document: dict) -> None:
        temp = self.out / f".{name}.part"
        temp.write_text(json.dumps(document, indent=1) + "\n")
        os.replace(temp, self.out / name)

    def finish(self, failed_step: str | None) -> int:
        self.summary["ok"], self.summary["failed_step"] = failed_step is None, failed_step
        self.summary["seconds"] = round(time.monotonic() - self.started, 1)
        self.write("summary.json", self.summary)
        return GATE_EXIT.get(failed_step, 0) if failed_step else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="device_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--carry", type=Path, required=True, help="the folder assemble.py wrote")
    parser.add_argument("--out", type=Path, required=True, help="where every figure goes ($OUT)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget for everything (default 9 min)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: /tmp/posed-gpu-check)")
    parser.add_argument("--plan", action="store_true", help="print the steps and their estimates as JSON, run nothing")
    args = parser.parse_args(argv)
    if args.plan:
        print(json.dumps([{"step": name, "priority": priority, "estimate_s": estimate} for name, priority, estimate, _ in STEPS], indent=1))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.out, args.budget_s)
    problem = _argument_problem(args)
    if problem:
        run.record({"step": "arguments", "status": "failed", "error": problem})
        run.finish("arguments")
        return 2
    context = Context(args.carry.resolve(), (args.work or Path("/tmp/posed-gpu-check")).resolve(), run)
    for name, priority, estimate, action in STEPS:
        if not _attempt(run, context, name, priority, estimate, action) and priority == "gate":
            return run.finish(name)
    return run.finish(None)


def _argument_problem(args: argparse.Namespace) -> str | None:
    if args.budget_s <= RESERVE_S:
        return f"--budget-s {args.budget_s:g}: must exceed the {RESERVE_S:g} s kept in reserve"
    if not (args.carry / "manifest.json").is_file():
        return f"--carry {args.carry}: no manifest.json (run scripts/gpu-check/assemble.py on the CPU machine and carry its folder)"
    return None


def _attempt(run: Run, context: Context, name: str, priority: str, estimate: float, action) -> bool:
    left = run.left()
    if left < estimate:
        status = "failed" if priority == "gate" else "skipped"
        run.record({"step": name, "priority": priority, "status": status, "error": f"needs about {estimate:.0f} s, {left:.0f} s left"})
        return False
    started = time.monotonic()
    try:
        extra = action(context, max(left, 1.0)) or {}
        entry = {"step": name, "priority": priority, "status": "ok", **extra}
    except subprocess.TimeoutExpired as exc:
        entry = {"step": name, "priority": priority, "status": "timed_out", "error": f"no result after {exc.timeout:.0f} s"}
    except CheckError as exc:
        entry = {"step": name, "priority": priority, "status": "failed", "error": str(exc)[-2000:]}
    entry["seconds"] = round(time.monotonic() - started, 1)
    run.record(entry)
    return entry["status"] == "ok"


class CheckError(Exception):
    """A step failed; the message is the evidence (exit status, stderr tail)."""


class Context:
    def __init__(self, carry: Path, work: Path, run: Run) -> None:
        self.carry, self.work, self.run = carry, work, run
        self.site, self.cache = work / "site", work / "cache"
        self.clip = carry / "media" / "running-1080p.mp4"
        self.short_clip = work / f"running-1080p-{MATRIX_FRAMES}.mp4"  # for the fp16/fp32 joint comparison
        self.cache_overrides: list[str] = []  # filled by the cache gate
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.site), str(ROOT), str(HERE / "standins")])
        self.env["PYTHONNOUSERSITE"] = "1"

    def python(self, argv: list[str], timeout: float, log: str) -> str:
        """Run ``python argv`` in the check's environment; its output goes to ``log`` under $OUT."""
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=self.env, cwd=ROOT, check=False)
        (self.run.out / log).write_text(done.stdout[-20000:] + "\n--- stderr ---\n" + done.stderr[-20000:])
        if done.returncode != 0:
            raise CheckError(f"exit {done.returncode}: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def overrides(self) -> list[str]:
        return ["backend.name=phalp", *self.cache_overrides]


# --- gates ------------------------------------------------------------------------------


def step_env(context: Context, timeout: float) -> dict:
    code = ("import json, sys, torch; ok = torch.cuda.is_available(); p = torch.cuda.get_device_properties(0) if ok else None; "
            "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__, 'torch_cuda': torch.version.cuda, "
            "'cuda_available': ok, 'device': p.name if p else None, 'total_bytes': p.total_memory if p else None}))")  # fmt: skip
    facts = json.loads(context.python(["-c", code], timeout, "env.log").strip().splitlines()[-1])
    context.run.write("env.json", facts)
    if not facts["cuda_available"]:
        raise CheckError(f"no CUDA device: torch {facts['torch']} says torch.cuda.is_available() is False; nothing was measured")
    if not facts["torch"].startswith(TORCH_SERIES):
        raise CheckError(f"torch {facts['torch']}: this check validates the {TORCH_SERIES} series setup-gpu.sh pins")
    return {"device": facts["device"], "torch": facts["torch"]}


def step_install(context: Context, timeout: float) -> dict:
    wheels = sorted(str(p) for p in (context.carry / "wheels").glob("*.whl"))
    pip = ["-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(context.site)]
    context.python([*pip, *wheels], timeout, "install_wheels.log")
    sources = []
    for archive in sorted((context.carry / "src").glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(context.work / "src", filter="data")
        sources.append(context.work / "src" / archive.name.removesuffix(".tar.gz"))
    detectron2 = next(s for s in sources if s.name.startswith("detectron2-"))
    context.python([str(ROOT / "scripts" / "detectron2_pure.py"), "--patch", str(detectron2)], 60, "detectron2_patch.log")
    installable = [str(s) for s in sources if not s.name.startswith("NMR-")]  # NMR is built by depth_parity only
    context.python([*pip, "--no-build-isolation", *installable], timeout, "install_sources.log")
    verified = context.python([str(ROOT / "scripts" / "detectron2_pure.py"), "--verify", TORCH_SERIES], 120, "install_verify.log")
    return {"wheels": len(wheels), "sources": [s.name for s in sources], "verify": verified.strip()[-300:]}


def step_smoke(context: Context, timeout: float) -> dict:
    code = ("import importlib.util, daemon.processing.backends.phalp.wiring as w, pyrender; "
            "print(importlib.util.find_spec('detectron2._C') is None, getattr(pyrender, 'POSED_STAND_IN', False))")  # fmt: skip
    absent, stand_in = context.python(["-c", code], timeout, "smoke.log").split()[-2:]
    return {"detectron2_C_absent": absent == "True", "pyrender_stand_in": stand_in == "True"}


def step_cache(context: Context, timeout: float) -> dict:
    """posed's own synthetic-weights cache (random weights, real architectures), built once."""
    code = ("import json, sys; from pathlib import Path; from daemon.processing.backends.phalp import synthetic; "
            "print(json.dumps(synthetic.synthetic_overrides(Path(sys.argv[1]))))")  # fmt: skip
    context.cache_overrides = json.loads(context.python(["-c", code, str(context.cache)], 60, "cache_overrides.log").splitlines()[-1])
    code = ("import sys; from daemon.config import load_config; from daemon.processing.backends.phalp import synthetic; "
            "o = sys.argv[1:]; synthetic.prepare_cache(load_config(overrides=o).backend.phalp, o)")  # fmt: skip
    context.python(["-c", code, *context.overrides()], timeout, "cache.log")
    code = ("import sys, cv2; r = cv2.VideoCapture(sys.argv[1]); fps = r.get(cv2.CAP_PROP_FPS); ok, f = r.read(); "
            "w = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter_fourcc(*'mp4v'), fps, (f.shape[1], f.shape[0])); n = 0\n"
            "while ok and n < int(sys.argv[3]):\n    w.write(f); n += 1; ok, f = r.read()\nw.release(); print(n)")  # fmt: skip
    context.python(["-c", code, str(context.clip), str(context.short_clip), str(MATRIX_FRAMES)], 60, "short_clip.log")
    return {"cache_bytes": sum(p.stat().st_size for p in context.cache.rglob("*") if p.is_file())}


# --- measurements -----------------------------------------------------------------------


def bench(precision: str, batch_frames: int, frames: int, *, baseline: bool = False, cap_gib: float | None = None):
    name = f"bench_cap{cap_gib:g}g" if cap_gib else f"bench_{precision}_k{batch_frames}"

    def action(context: Context, timeout: float) -> dict:
        out = context.run.out / f"{name}.json"
        settings = [f"backend.phalp.precision={precision}", f"backend.phalp.batch_frames={batch_frames}"]
        argv = [str(context.clip), *context.overrides(), *settings, "--frames", str(frames), "--json", str(out)]
        argv += ["--baseline", "stock"] if baseline else []
        prefix = ["-m", "daemon.cli", "bench"] if cap_gib is None else [str(HERE / "capped.py"), str(cap_gib), "bench"]
        context.python([*prefix, *argv], timeout, f"{name}.log")
        return {"file": out.name}

    return action


def step_joints(context: Context, timeout: float) -> dict:
    results = {}
    for precision in ("fp32", "fp16"):
        out = context.work / f"joints-{precision}.result.json"
        settings = [f"backend.phalp.precision={precision}", "motion.smoothing=false", "motion.fill_gaps=false"]
        context.python(["-m", "daemon.cli", "process", str(context.short_clip), "--out", str(out), *context.overrides(), *settings],
                       timeout / 2, f"joints_{precision}.log")  # fmt: skip
        results[precision] = str(out)
    figures = json.loads(context.python([str(HERE / "compare_joints.py"), results["fp32"], results["fp16"]], 120, "joints_compare.log"))
    context.run.write("joints_fp16_vs_fp32.json", figures)
    return {"file": "joints_fp16_vs_fp32.json"}


def step_parity(context: Context, timeout: float) -> dict:
    nmr = next((context.work / "src").glob("NMR-*"))
    context.python([str(HERE / "parity.py"), str(nmr), str(context.run.out / "depth_parity.json")], timeout, "depth_parity.log")
    return {"file": "depth_parity.json"}


STEPS = (
    ("env", "gate", 5, step_env),
    ("install", "gate", 40, step_install),
    ("smoke", "gate", 20, step_smoke),
    ("cache", "gate", 60, step_cache),
    ("bench_fp32_k8", "P1", 120, bench("fp32", 8, BENCH_FRAMES, baseline=True)),
    ("bench_fp16_k8", "P2", 60, bench("fp16", 8, MATRIX_FRAMES)),
    ("joints_fp16_vs_fp32", "P2", 90, step_joints),
    ("bench_fp32_k1", "P2", 60, bench("fp32", 1, MATRIX_FRAMES)),
    ("bench_fp16_k1", "P2", 60, bench("fp16", 1, MATRIX_FRAMES)),
    ("bench_cap7g", "P3", 60, bench("fp32", 8, MATRIX_FRAMES, cap_gib=CAP_GIB)),
    ("depth_parity", "P4", 120, step_parity),
)


if __name__ == "__main__":
    sys.exit(main())
