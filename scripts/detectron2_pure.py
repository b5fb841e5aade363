"""detectron2 without a compiler: fetch its commit tarball and empty its extension list.

Used by scripts/setup-gpu.sh (and the device check, scripts/gpu-check/):

    detectron2_pure.py URL WORKDIR      # download (atomically), extract safely, patch setup.py
    detectron2_pure.py --patch SRC_DIR  # only patch an extracted source tree
    detectron2_pure.py --verify TORCH_VERSION

detectron2's compiled ``_C`` serves deformable convolution, rotated boxes and a fast COCO
evaluator; posed's two detectors (RegNetY-4GF Mask R-CNN, Cascade ViTDet-H) take ROIAlign and
NMS from torchvision instead (``detectron2/layers/roi_align.py``, ``nms.py``). So its
``setup.py`` gets ``ext_modules=[]`` and pip builds a pure-Python wheel with the model-zoo
configs. Nothing here passes through a shell; archive members that are absolute or climb out
(``..``) are refused, links are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

EXTENSIONS_LINE = "ext_modules=get_extensions(),"
PURE_LINE = "ext_modules=[],  # posed: no compiled extension (scripts/detectron2_pure.py)"
REGNETY_CONFIG = "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ.py"
TIMEOUT_S = 120


class SetupError(Exception):
    """A step failed; the message says which and why."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectron2_pure.py", description=__doc__.splitlines()[0])
    parser.add_argument("--patch", metavar="SRC_DIR", help="only patch this extracted source tree")
    parser.add_argument("--verify", metavar="TORCH_VERSION", help="check the installed stack instead")
    parser.add_argument("source", nargs="*", help="URL WORKDIR")
    args = parser.parse_args(argv)
    try:
        if args.verify:
            verify(args.verify)
        elif args.patch:
            patch_setup(Path(args.patch))
        elif len(args.source) == 2:
            source = fetch_source(args.source[0], Path(args.source[1]))
            patch_setup(source)
            print(f"detectron2_pure: {source} ready (ext_modules emptied)")
        else:
            parser.error("give URL WORKDIR, --patch SRC_DIR or --verify TORCH_VERSION")
    except SetupError as exc:
        print(f"detectron2_pure: {exc}", file=sys.stderr)
        return 1
    return 0


def fetch_source(url: str, workdir: Path) -> Path:
    """Download the tarball beside ``workdir`` and extract it there; returns the source root."""
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / "detectron2.tar.gz"
    handle, temp_name = tempfile.mkstemp(prefix=".detectron2.", suffix=".part", dir=workdir)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "posed-setup-gpu"})
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the pinned URL
            shutil.copyfileobj(response, out)
        os.replace(temp_name, archive)
    except OSError as exc:
        raise SetupError(f"downloading {url} failed: {exc}") from None
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return extract(archive, workdir)


def extract(archive: Path, workdir: Path) -> Path:
    """Regular files and folders only (the docs' symlinks are skipped); a member that is
    absolute or climbs out with ``..`` fails the whole extraction."""
    roots = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [member for member in tar.getmembers() if member.isfile() or member.isdir()]
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise SetupError(f"{archive}: refusing member {member.name!r} (absolute or climbing out)")
            for member in members:
                roots.add(PurePosixPath(member.name).parts[0])
                tar.extract(member, workdir, set_attrs=False)
    except (tarfile.TarError, OSError) as exc:
        raise SetupError(f"{archive}: cannot extract ({exc})") from None
    if len(roots) != 1:
        raise SetupError(f"{archive}: expected one top-level folder, found {sorted(roots)}")
    return workdir / roots.pop()


def patch_setup(source: Path) -> None:
    """Replace the one ``ext_modules=get_extensions(),`` of detectron2's setup.py."""
    setup = source / "setup.py"
    if not setup.is_file():
        raise SetupError(f"{setup}: no such file (not a detectron2 source tree?)")
    text = setup.read_text()
    if text.count(EXTENSIONS_LINE) != 1:
        if PURE_LINE in text:
            return  # already patched
        raise SetupError(f"{setup}: expected exactly one {EXTENSIONS_LINE!r} (found {text.count(EXTENSIONS_LINE)}); another commit?")
    setup.write_text(text.replace(EXTENSIONS_LINE, PURE_LINE))


def verify(torch_version: str) -> None:
    """What the GPU backend imports at load time, without building any model."""
    import torch

    if not torch.__version__.startswith(torch_version):
        raise SetupError(f"torch was replaced: {torch.__version__} installed, {torch_version} wanted")
    try:
        importlib.import_module("pkg_resources")
    except ImportError as exc:
        raise SetupError(f"pkg_resources does not import ({exc}): pip install 'setuptools<82'") from None
    try:
        from detectron2 import model_zoo
    except ImportError as exc:
        raise SetupError(f"detectron2's model_zoo does not import: {type(exc).__name__}: {exc}") from None

    if not Path(model_zoo.get_config_file(REGNETY_CONFIG)).is_file():
        raise SetupError(f"detectron2's model zoo has no {REGNETY_CONFIG}: the configs were not packaged")
    missing = [name for name in ("phalp", "hmr2", "smplx") if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(f"not installed: {', '.join(missing)}")
    extension = "present" if importlib.util.find_spec("detectron2._C") else "absent, as intended"
    print(f"detectron2_pure: torch {torch.__version__} (CUDA {torch.version.cuda}); detectron2._C {extension}; model zoo configs present")


if __name__ == "__main__":
    sys.exit(main())
