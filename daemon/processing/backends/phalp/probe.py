"""Import probe for ``posed doctor``: ``python -m daemon.processing.backends.phalp.probe [--smpl PATH] MODULE...``.

Runs in a child process so that importing the GPU stack can neither crash the doctor (a CUDA
extension built for the wrong GPU dies with a signal) nor leave PHALP's logging, warning and
stdout changes behind. Prints one JSON object per line: ``{"step": ..., "ok": ..., ...}``; a
``{"step": X, "started": true}`` line before each step tells the parent which step a crash hit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

CUDA_STEP = "cuda"
SMPL_STEP = "smpl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posed-probe")
    parser.add_argument("--smpl", help="SMPL model file to check (read with the restricted unpickler of smpl_file.py)")
    parser.add_argument("--cuda", action="store_true", help="report torch.cuda facts after importing torch")
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args(argv)
    for name in args.modules:
        _step(name, lambda name=name: _import(name))
    if args.cuda:
        _step(CUDA_STEP, _cuda_facts)
    if args.smpl:
        _step(SMPL_STEP, lambda: _unpickle(args.smpl))
    return 0


def _step(name: str, action) -> None:
    _emit({"step": name, "started": True})
    try:
        result = {"step": name, "ok": True, **action()}
    except BaseException as exc:  # noqa: BLE001 - every failure is the report
        result = {"step": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:600]}
        missing = getattr(exc, "name", None)
        if isinstance(exc, ImportError) and missing:
            result["missing_module"] = missing
    _emit(result)


def _emit(record: dict[str, Any]) -> None:
    # The protocol goes to the real stdout; imported libraries may have replaced sys.stdout.
    sys.__stdout__.write(json.dumps(record) + "\n")
    sys.__stdout__.flush()


def _import(name: str) -> dict[str, Any]:
    module = importlib.import_module(name)
    return {"version": str(getattr(module, "__version__", "") or "")}


def _cuda_facts() -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "available": bool(torch.cuda.is_available()),
        "devices": [],
    }
    if facts["available"]:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            facts["devices"].append({"index": index, "name": torch.cuda.get_device_name(index), "free": free, "total": total})
    return facts


def _unpickle(path: str) -> dict[str, Any]:
    # The restricted reader: the file is never given to plain pickle, and chumpy is not needed.
    from daemon.processing.backends.phalp.smpl_file import foreign_fields, read_smpl

    model = read_smpl(Path(path))
    return {"keys": sorted(model)[:20], "has_shapedirs": "shapedirs" in model, "needs_conversion": foreign_fields(Path(path))}


if __name__ == "__main__":
    sys.exit(main())
