"""``parity.py NMR_SRC OUT.json``: posed's torch depth renderer against NMR's rasteriser, on a GPU.

Builds only NMR's ``rasterize`` extension (JIT, for this GPU; its ``AT_DISPATCH_*(x.type(), ...)``
calls patched to ``x.scalar_type()``, which current torch requires), loads NMR's own
``projection.py``, ``vertices_to_faces.py`` and ``rasterize.py`` from NMR_SRC around it, and renders
the stand-in SMPL body, posed and placed as HMR 2.0 places people in its 256-pixel crop, both ways.
Writes: per batch size, pixels covered by one renderer only, the largest depth difference where
both cover, texel-visibility flips through posed's texture sampler, and milliseconds per call.
"""

import importlib.util
import json
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.processing.backends.phalp import stand_in_smpl  # noqa: E402
from daemon.processing.backends.phalp.depth_render import FAR, NEAR, render_depth  # noqa: E402

FOCAL, SIZE = 5000.0, 256
DISPATCH = re.compile(r"(AT_DISPATCH_[A-Z_]+\()\s*([A-Za-z_][A-Za-z_0-9]*)\.type\(\)")


def load_nmr(source: Path, build: Path):
    cuda_dir = source / "neural_renderer" / "cuda"
    build.mkdir(parents=True, exist_ok=True)
    sources = []
    for name in ("rasterize_cuda.cpp", "rasterize_cuda_kernel.cu"):
        patched = build / name
        patched.write_text(DISPATCH.sub(r"\1\2.scalar_type()", (cuda_dir / name).read_text()))
        sources.append(str(patched))
    from torch.utils.cpp_extension import load

    extension = load(name="rasterize_cuda", sources=sources, build_directory=str(build), verbose=False)
    package, cuda = types.ModuleType("neural_renderer"), types.ModuleType("neural_renderer.cuda")
    package.__path__, cuda.__path__, cuda.rasterize = [], [], extension
    sys.modules.update({"neural_renderer": package, "neural_renderer.cuda": cuda, "neural_renderer.cuda.rasterize": extension})
    modules = {}
    for name in ("projection", "vertices_to_faces", "rasterize"):
        spec = importlib.util.spec_from_file_location(f"neural_renderer.{name}", source / "neural_renderer" / f"{name}.py")
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = modules[name]
        spec.loader.exec_module(modules[name])
    return modules


def nmr_depth(nmr, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """renderer.py render_depth as texture.py configures it: fill_back, projection camera, no AA."""
    batch = vertices.shape[0]
    k = torch.tensor([[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]], device=vertices.device)[None].expand(batch, -1, -1)
    r = torch.eye(3, device=vertices.device)[None].expand(batch, -1, -1)
    t = torch.zeros(batch, 1, 3, device=vertices.device)
    faces = faces[None].expand(batch, -1, -1).int()
    faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)
    projected = nmr["projection"].projection(vertices, k, r, t, torch.zeros(batch, 5, device=vertices.device), SIZE)
    return nmr["rasterize"].rasterize_depth(nmr["vertices_to_faces"].vertices_to_faces(projected, faces), SIZE, False, NEAR, FAR)


def people(batch: int, seed: int) -> torch.Tensor:
    """The stand-in body, turned and bent at random, at HMR 2.0's crop distance (~43 m)."""
    rng = np.random.default_rng(seed)
    vertices, _ = stand_in_smpl.body_vertices()
    placed = []
    for _ in range(batch):
        angle = rng.uniform(-np.pi, np.pi)
        turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        bent = vertices + 0.05 * np.sin(vertices[:, 1:2] * rng.uniform(2, 8)) * rng.normal(size=(1, 3))
        placed.append(bent @ turn.T + np.array([rng.normal(0, 0.05), rng.normal(0, 0.05), rng.uniform(35, 50)]))
    return torch.tensor(np.stack(placed), dtype=torch.float32, device="cuda")


def timed(function, repeats: int = 5) -> float:
    function()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats * 1000


def visibility_flips(vertices, faces, ours, theirs) -> dict:
    atlas = stand_in_smpl.uv_atlas(SIZE)
    fmap = torch.tensor(atlas.face, device="cuda")
    bary = torch.tensor(atlas.barycentric, device="cuda")
    texels = fmap >= 0
    corners = vertices[:, faces[fmap[texels]]]
    points = torch.einsum("bnij,ni->bnj", corners, bary[texels])
    grid = (FOCAL / (SIZE / 2)) * points[..., :2] / points[..., 2:3]
    visible = []
    for depth in (ours, theirs):  # texture.py's test, VISIBILITY_EPSILON 1e-4
        at_texel = torch.nn.functional.grid_sample(depth[:, None], grid[:, None], align_corners=False)[:, 0, 0]
        visible.append(points[..., 2] <= at_texel + 1e-4)
    return {"texels": int(visible[0].numel()), "visibility_flips": int((visible[0] != visible[1]).sum())}


def main() -> int:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    started = time.perf_counter()
    nmr = load_nmr(source, Path("/tmp/posed-gpu-check/nmr-build"))
    report = {"nmr_build_s": round(time.perf_counter() - started, 1), "batches": []}
    faces = torch.tensor(stand_in_smpl.sphere_faces().astype(np.int64), device="cuda")
    for batch in (8, 64):
        vertices = people(batch, seed=batch)
        ours, theirs = render_depth(vertices, faces, FOCAL, SIZE), nmr_depth(nmr, vertices, faces)
        both = (ours < FAR) & (theirs < FAR)
        torch.cuda.reset_peak_memory_stats()
        ms_torch = timed(lambda: render_depth(vertices, faces, FOCAL, SIZE))
        peak_torch = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        ms_nmr = timed(lambda: nmr_depth(nmr, vertices, faces))
        report["batches"].append({
            "batch": batch, "pixels": int(ours.numel()), "covered_torch_only": int(((ours < FAR) & ~(theirs < FAR)).sum()),
            "covered_nmr_only": int((~(ours < FAR) & (theirs < FAR)).sum()),
            "max_abs_depth_diff_m": float((ours - theirs)[both].abs().max()) if both.any() else None,
            "ms_torch": round(ms_torch, 3), "ms_nmr": round(ms_nmr, 3), "peak_bytes_torch": int(peak_torch),
            "peak_bytes_nmr": int(torch.cuda.max_memory_allocated()), **visibility_flips(vertices, faces, ours, theirs),
        })  # fmt: skip
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
