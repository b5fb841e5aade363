#!/usr/bin/env python3
"""Peak host memory while the phalp backend's checkpoints load: stock order versus posed's.

    python scripts/load_peak.py [--dir /tmp/posed-load-peak] [--detector maskrcnn|vitdet] [--device meta|cpu|cuda] [--keep]

Needs torch (any build) and numpy; the GPU stack itself is not needed. It writes synthetic
checkpoint files of the real sizes and formats into ``--dir`` (HMR 2.0's Lightning checkpoint
with ViT-H's real tensor shapes, 2.7 GB; PHALP's appearance and pose-predictor weights; the
detector as detectron2's pickle of numpy arrays), deletes them afterwards unless ``--keep``,
and loads them in a fresh child process per scenario, reading the kernel's ``VmHWM`` (peak
resident memory) at the end and sampling ``RssAnon``/``RssFile`` every few milliseconds:

- ``stock``: upstream's order (reference §1.6): every model built on the CPU, each checkpoint
  read whole (no mmap), PHALP's extra X101 detector too, everything moved to the device at the
  end;
- ``posed-torch2.0``: posed's loader (``daemon/backends/phalp/weights.py``) with torch 2.0.1's
  abilities (no ``mmap``): built on the device, each model placed and its file freed in turn;
- ``posed``: the same with ``torch.load(mmap=True)`` (torch >= 2.1).

``--device meta`` (the default without CUDA) stands in for the GPU: the models' tensors take no
host memory, and the stand-in's ``load_state_dict`` reads every byte of the checkpoint as the
copy to the GPU would. ``RssFile`` is page cache of the mapped file, which the kernel can drop;
``RssAnon`` cannot be dropped (without swap) and is what exhausts a small WSL VM.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_MODULE = ROOT / "daemon" / "backends" / "phalp" / "weights.py"
GIB = 1024**3
SAMPLE_INTERVAL_S = 0.002
SCENARIOS = ("stock", "posed-torch2.0", "posed")


@dataclass(frozen=True)
class CheckpointSpec:
    """One weight file: its name, how it is stored, and its tensors' shapes."""

    name: str
    format: str  # "torch" (torch.save zip) or "detectron2" (pickle of numpy arrays)
    container: str  # the key that holds the weights
    shapes: dict[str, tuple[int, ...]]
    stock_only: bool = False  # PHALP's X101 RPN detector, which posed never builds

    @property
    def bytes(self) -> int:
        return sum(4 * _numel(shape) for shape in self.shapes.values())


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def vit_h_shapes() -> dict[str, tuple[int, ...]]:
    """HMR 2.0's backbone (ViT-H: 32 blocks, width 1280, MLP 5120, 16x16 patches, 256x192 input)."""
    shapes: dict[str, tuple[int, ...]] = {"backbone_patch_embed_weight": (1280, 3, 16, 16), "backbone_pos_embed": (1, 193, 1280)}
    for block in range(32):
        prefix = f"backbone_blocks_{block}_"
        shapes |= {
            prefix + "norm1": (2, 1280),
            prefix + "attn_qkv_weight": (3840, 1280),
            prefix + "attn_qkv_bias": (3840,),
            prefix + "attn_proj_weight": (1280, 1280),
            prefix + "norm2_and_proj_bias": (3, 1280),
            prefix + "mlp_fc1_weight": (5120, 1280),
            prefix + "mlp_fc1_bias": (5120,),
            prefix + "mlp_fc2_weight": (1280, 5120),
        }
    return shapes


def hmr2_shapes() -> dict[str, tuple[int, ...]]:
    """ViT-H (630.9 M parameters) + the SMPL head's transformer decoder (41.4 M) + SMPL's buffers:
    672.3 M parameters in all, as counted on the real model (reference, Appendix B)."""
    head = {f"smpl_head_decoder_{layer}": (1024, 6740) for layer in range(6)}
    smpl = {"smpl_shapedirs": (6890, 3, 10), "smpl_posedirs": (207, 20670), "smpl_v_template": (6890, 3), "smpl_J_regressor": (24, 6890)}
    return vit_h_shapes() | head | smpl


def flat_shapes(prefix: str, total_floats: int, row: int = 4096) -> dict[str, tuple[int, ...]]:
    """Weights of a given total size in 16 MB matrices: what matters for memory is the total and
    the largest tensor, not the architecture."""
    rows_per_tensor = 1024
    shapes, left, index = {}, total_floats, 0
    while left > 0:
        rows = min(rows_per_tensor, -(-left // row))
        shapes[f"{prefix}_{index}"] = (rows, row)
        left -= rows * row
        index += 1
    return shapes


def checkpoint_specs(detector: str) -> list[CheckpointSpec]:
    detector_bytes = {"maskrcnn": 167_792_431, "vitdet": 2_770_000_000}[detector]
    return [
        CheckpointSpec("hmr2.ckpt", "torch", "state_dict", hmr2_shapes()),
        CheckpointSpec("hmar_v2_weights.pth", "torch", "model", flat_shapes("hmar", 166_000_000 // 4)),
        CheckpointSpec("pose_predictor.pth", "torch", "state_dict", flat_shapes("predictor", 140_000_000 // 4)),
        CheckpointSpec(f"detector_{detector}.pkl", "detectron2", "model", flat_shapes("detector", detector_bytes // 4)),
        CheckpointSpec("detector_x101_rpn.pkl", "detectron2", "model", flat_shapes("x101", 431_000_000 // 4), stock_only=True),
    ]


# --- writing the files ----------------------------------------------------------------------


def write_checkpoints(directory: Path, specs: list[CheckpointSpec]) -> None:
    import numpy as np
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        path = directory / spec.name
        if path.exists():
            continue
        print(f"writing {path} ({spec.bytes / 1e6:.0f} MB)", flush=True)
        if spec.format == "torch":
            state = {name: torch.full(shape, 0.01) for name, shape in spec.shapes.items()}
            torch.save({spec.container: state, "hyper_parameters": {"cfg": "yacs CfgNode in the real file"}}, path)
        else:  # detectron2's checkpoint format: {"model": {name: ndarray}, "__author__": ...}
            arrays = {name: np.full(shape, 0.01, dtype=np.float32) for name, shape in spec.shapes.items()}
            with path.open("wb") as handle:
                pickle.dump({spec.container: arrays, "__author__": "synthetic"}, handle, protocol=4)
        del path


# --- the child: one scenario in a fresh process ------------------------------------------------


class PeakSampler(threading.Thread):
    """Reads /proc/self/status every few ms; the kernel's VmHWM is the exact total peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            time.sleep(SAMPLE_INTERVAL_S)

    def sample(self) -> None:
        for name, value in read_status().items():
            if name in self.peaks:
                self.peaks[name] = max(self.peaks[name], value)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


def read_status() -> dict[str, int]:
    """Memory fields of /proc/self/status, in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def stand_in_model(torch, spec: CheckpointSpec):
    """A module with the checkpoint's parameters, initialised (pages touched) as a real model is."""

    class StandIn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, shape in spec.shapes.items():
                self.register_parameter(name, torch.nn.Parameter(torch.empty(shape).fill_(0.0), requires_grad=False))

        def load_state_dict(self, state, strict=True, **kwargs):
            if next(self.parameters()).is_meta:  # the GPU stand-in: read every byte, as the copy to the device would
                for value in state.values():
                    torch.as_tensor(value).sum()
            return super().load_state_dict(state, strict=strict, **kwargs)

    return StandIn()


def detectron2_state(torch, path: Path) -> dict:
    """What detectron2's checkpointer does with its pickle: read it whole, wrap the arrays."""
    with path.open("rb") as handle:
        arrays = pickle.load(handle, encoding="latin1")["model"]
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def load_stock(torch, directory: Path, specs: list[CheckpointSpec], device: str) -> list:
    models = []
    for spec in specs:
        model = stand_in_model(torch, spec)
        if spec.format == "torch":
            state = torch.load(directory / spec.name, map_location="cpu", weights_only=False)[spec.container]
        else:
            state = detectron2_state(torch, directory / spec.name)
        model.load_state_dict(state)
        del state
        models.append(model)
    return [model.to(device) for model in models]  # PHALP.__init__: self.to(device) after every setup_*


def load_posed(torch, directory: Path, specs: list[CheckpointSpec], device: str) -> list:
    weights = posed_weights()
    models = []
    for spec in specs:
        if spec.stock_only:
            continue
        with weights.built_on(torch, device):
            model = stand_in_model(torch, spec)
        if spec.format == "torch":
            weights.load_weights_into(torch, model, directory / spec.name, container=spec.container)
        else:
            state = detectron2_state(torch, directory / spec.name)
            model.load_state_dict(state)
            del state
        models.append(weights.place_on(model, device))
    return models


def posed_weights():
    """posed's loading module, by file: it needs only the standard library, while importing the
    ``daemon`` package would pull in the daemon's own dependencies (a bare torch venv lacks them)."""
    if "posed_weights" not in sys.modules:
        spec = importlib.util.spec_from_file_location("posed_weights", WEIGHTS_MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["posed_weights"] = module
        spec.loader.exec_module(module)
    return sys.modules["posed_weights"]


def run_child(scenario: str, directory: Path, detector: str, device: str) -> dict:
    import torch

    weights = posed_weights()
    if scenario == "posed-torch2.0":
        weights.supports_mmap = lambda torch: False  # what torch 2.0.1 allows
    weights.release_host_memory()
    baseline = read_status()
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    loader = load_stock if scenario == "stock" else load_posed
    models = loader(torch, directory, checkpoint_specs(detector), device)
    seconds = time.perf_counter() - started
    sampler.stop()
    end = read_status()
    on_host = sum(p.numel() * p.element_size() for model in models for p in model.parameters() if p.device.type == "cpu")
    return {
        "scenario": scenario,
        "device": device,
        "torch": torch.__version__,
        "seconds": round(seconds, 2),
        "baseline_rss": baseline["VmRSS"],
        "peak_total": end["VmHWM"],
        "peak_anon": sampler.peaks["RssAnon"],
        "peak_file": sampler.peaks["RssFile"],
        "weights_on_host_after": on_host,
        "rss_after": end["VmRSS"],
    }


# --- the parent: files, one child per scenario, the table ---------------------------------------


def measure(scenario: str, directory: Path, detector: str, device: str) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, "--dir", str(directory), "--detector", detector, "--device", device]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{scenario} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], specs: list[CheckpointSpec]) -> None:
    sizes = ", ".join(f"{spec.name} {spec.bytes / 1e9:.2f} GB" + (" (stock only)" if spec.stock_only else "") for spec in specs)
    print(f"\ncheckpoints: {sizes}")
    print(f"torch {rows[0]['torch']}, device {rows[0]['device']}; GiB of host memory in a fresh process")
    header = f"{'scenario':<16} {'baseline':>8} {'peak total (VmHWM)':>19} {'peak anon':>10} {'peak file':>10} {'load s':>7}"
    print(header)
    for row in rows:
        print(
            f"{row['scenario']:<16} {row['baseline_rss'] / GIB:>8.2f} {row['peak_total'] / GIB:>19.2f} "
            f"{row['peak_anon'] / GIB:>10.2f} {row['peak_file'] / GIB:>10.2f} {row['seconds']:>7.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/posed-load-peak"))
    parser.add_argument("--detector", choices=["maskrcnn", "vitdet"], default="maskrcnn")
    parser.add_argument("--device", choices=["meta", "cpu", "cuda"], help="default: cuda if available, else meta")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic files (several GB)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.dir, args.detector, args.device)))
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "meta")
    specs = checkpoint_specs(args.detector)
    try:
        write_checkpoints(args.dir, specs)
        rows = [measure(scenario, args.dir, args.detector, device) for scenario in SCENARIOS]
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    print_table(rows, specs)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
