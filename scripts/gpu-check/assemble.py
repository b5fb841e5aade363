"""Assemble the carry set for the one-call GPU device check (issue 20), on the CPU machine.

    python3 scripts/gpu-check/assemble.py [--out .gpucarry] [--dry-run]
        [--git-dir brjathu/PHALP=PATH ...]   # take a source tree from a local git mirror

The lent GPU machine has no network, Python 3.12 with torch 2.11 (CUDA 13.0), torchvision,
timm, pytorch-lightning, einops, opencv-python-headless, scipy, scikit-learn and scikit-image,
and takes at most 64 MiB of carried files. This writes, into ``--out`` (git-ignored, never
committed):

- ``wheels/``: every other package posed's GPU path imports, as cp312 manylinux or pure wheels
  (``pip download --only-binary``), plus the three pure-Python sdists built into wheels here;
- ``src/``: PHALP, 4D-Humans, detectron2 and NMR at their pinned commits, as tarballs holding
  only what installs (the packages, ``setup.py``, detectron2's model-zoo ``configs/``);
- ``media/running-1080p.mp4``: the 1080p clip the figures are measured on;
- ``manifest.json``: every file with its size and sha256, posed's commit, and the total, which
  must stay under ``CARRY_LIMIT`` (posed's own tree travels beside it as the working copy).

``--dry-run`` prints the plan (each command as an argv list) as JSON and writes nothing.
Nothing passes through a shell.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARRY_LIMIT = 56 * 2**20  # of the 64 MiB a call carries; the rest is posed's tracked tree and headroom
PYTHON_TAG = ("--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
# Imported on posed's GPU path and not in the lent image. Pure or cp312 wheels on PyPI.
WHEELS = (
    # posed itself (bench, pipeline, publishing)
    "structlog>=24.1", "omegaconf==2.3.0", "hydra-core==1.3.2", "pygltflib>=1.16,<2", "dataclasses-json",
    "marshmallow>=3.18,<4", "typing-inspect", "mypy-extensions", "jsonschema>=4.20", "attrs", "referencing", "rpds-py",
    "jsonschema-specifications", "watchdog>=4.0",
    # PHALP, 4D-Humans and detectron2's Python package
    "smplx==0.1.28", "yacs==0.1.8", "iopath==0.1.9", "termcolor", "tabulate", "pycocotools", "lap==0.5.12",
    "scenedetect==0.6.2", "platformdirs", "click", "pytube==15.0.0", "webdataset==0.2.86", "braceexpand==0.1.7",
    "dill", "trimesh", "portalocker", "cloudpickle",
    # pkg_resources for detectron2's model_zoo, installed only if the image's setuptools lacks it
    "setuptools==81.0.0",
)  # fmt: skip
SDISTS = ("antlr4-python3-runtime==4.9.3", "fvcore==0.1.5.post20221221")  # pure Python, no wheel on PyPI
SOURCES = {
    "brjathu/PHALP": ("96f7e6c09fb858ec3f597d59246c151ab4394bc3", ("setup.py", "phalp/")),
    "shubham-goel/4D-Humans": ("6ec79656a23c33237c724742ca2a0ec00b398b53", ("setup.py", "hmr2/")),
    "facebookresearch/detectron2": ("70f454304e1a38378200459dd2dbca0f0f4a5ab4", (
        "setup.py", "detectron2/", "configs/",  # setup.py also packages three projects as detectron2.projects.*
        "projects/PointRend/point_rend/", "projects/DeepLab/deeplab/", "projects/Panoptic-DeepLab/panoptic_deeplab/")),
    "shubham-goel/NMR": ("e990b3c70f48d39231f607c79d76ce3db4bf7483", ("setup.py", "neural_renderer/")),
}
SKIPPED_SUFFIXES = (".pkl", ".pth", ".ckpt", ".npy", ".npz", ".gif", ".png", ".jpg", ".mp4", ".egg")
CLIP = Path("/work/shared/media/running-1080p.mp4")


class AssembleError(Exception):
    """A step failed; the message says which."""


def plan(out: Path, git_dirs: dict[str, Path], clip: Path) -> list[dict]:
    """Every step, in order: a command (argv) or a file operation, with where its output goes."""
    pip = [sys.executable, "-m", "pip"]
    steps = [{"step": "wheels", "argv": [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", *PYTHON_TAG,
                                         *(arg for p in PLATFORMS for arg in ("--platform", p)), "--dest", str(out / "wheels"), *WHEELS]},
             {"step": "sdists", "argv": [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out / "wheels"), *SDISTS]}]  # fmt: skip
    for repo, (commit, keep) in SOURCES.items():
        origin = str(git_dirs[repo]) if repo in git_dirs else f"https://github.com/{repo}/archive/{commit}.tar.gz"
        steps.append({"step": "source", "repo": repo, "commit": commit, "from": origin, "keep": list(keep),
                      "to": str(out / "src" / f"{repo.split('/')[1]}-{commit}.tar.gz")})  # fmt: skip
    steps.append({"step": "media", "from": str(clip), "to": str(out / "media" / clip.name)})
    steps.append({"step": "manifest", "to": str(out / "manifest.json"), "limit_bytes": CARRY_LIMIT})
    return steps


def assemble(steps: list[dict], out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)  # a stale wheel would travel otherwise
    (out / "wheels").mkdir(parents=True)
    for step in steps:
        if "argv" in step:
            done = subprocess.run(step["argv"], capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                raise AssembleError(f"{step['step']}: exit {done.returncode}: {done.stderr.strip()[-1500:]}")
        elif step["step"] == "source":
            _write_source(step)
        elif step["step"] == "media":
            Path(step["to"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(step["from"], step["to"])
    return write_manifest(out)


def _write_source(step: dict) -> None:
    """A tarball of only the kept paths of the tree at the pinned commit (links skipped)."""
    origin, prefix = step["from"], f"{step['repo'].split('/')[1]}-{step['commit']}"
    if origin.startswith("https://"):
        with urllib.request.urlopen(origin, timeout=120) as response:  # noqa: S310 - pinned GitHub archive URL
            data = response.read()
    else:
        paths = [keep.rstrip("/") for keep in step["keep"]]  # only these: a partial mirror may lack other blobs
        argv = ["git", "--git-dir", origin, "archive", "--format=tar.gz", f"--prefix={prefix}/", step["commit"], "--", *paths]
        done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
        if done.returncode != 0:
            raise AssembleError(f"git archive {step['repo']}: {done.stderr.decode(errors='replace')[-500:]}")
        data = done.stdout
    target = Path(step["to"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as source, tarfile.open(target, "w:gz") as kept:
        for member in source.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else ""
            wanted = any(inner == keep or inner.startswith(keep) for keep in step["keep"])
            if wanted and member.isfile() and not inner.endswith(SKIPPED_SUFFIXES):
                member.name = f"{prefix}/{inner}"
                kept.addfile(member, source.extractfile(member))


def write_manifest(out: Path) -> dict:
    files = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"):
        files.append({"path": path.relative_to(out).as_posix(), "bytes": path.stat().st_size, "sha256": _sha256(path)})
    total = sum(entry["bytes"] for entry in files)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    manifest = {"posed_commit": commit or None, "total_bytes": total, "limit_bytes": CARRY_LIMIT, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if total > CARRY_LIMIT:
        raise AssembleError(f"the carry set is {total / 2**20:.1f} MiB, over the {CARRY_LIMIT / 2**20:.0f} MiB limit")
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_dirs(pairs: list[str]) -> dict[str, Path]:
    found = {}
    for pair in pairs:
        repo, _, path = pair.partition("=")
        if repo not in SOURCES or not path:
            raise AssembleError(f"--git-dir {pair!r}: expected REPO=PATH with REPO one of {', '.join(SOURCES)}")
        found[repo] = Path(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="assemble.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpucarry")
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON; write nothing")
    parser.add_argument("--git-dir", action="append", default=[], metavar="REPO=PATH", help="a local git mirror of a pinned repo")
    parser.add_argument("--clip", type=Path, default=CLIP, help="the 1080p clip to measure on")
    args = parser.parse_args(argv)
    try:
        steps = plan(args.out, _git_dirs(args.git_dir), args.clip)
        if args.dry_run:
            print(json.dumps({"out": str(args.out), "steps": steps}, indent=1))
            return 0
        if not args.clip.is_file():
            raise AssembleError(f"--clip {args.clip}: no such file")
        manifest = assemble(steps, args.out)
    except (AssembleError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"assemble: {exc}", file=sys.stderr)
        return 1
    print(f"assemble: {len(manifest['files'])} files, {manifest['total_bytes'] / 2**20:.1f} MiB in {args.out}; "
          f"carry it: run(carry=['{args.out.name}'], command='bash scripts/gpu-check/run.sh {args.out.name}')")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
