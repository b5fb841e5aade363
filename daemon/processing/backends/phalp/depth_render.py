"""A z-buffer depth map of the HMR 2.0 mesh in its crop camera, in plain torch.

PHALP's appearance cue samples the crop's colours onto the SMPL UV atlas and keeps only texels
the depth map shows as visible (``texture.py``). 4D-Humans renders that map with
neural_renderer (NMR), a CUDA extension that must be compiled against the installed torch;
this module computes the same map with torch operations only, so the install needs no compiler
and the texture path runs (and is tested) on a CPU.

NMR's rules (shubham-goel/NMR@e990b3c ``projection.py``, ``rasterize_cuda_kernel.cu``,
``renderer.py:render_depth`` as ``texture.py`` configures it), reproduced here:

- projection ``u = f x / (z + 1e-9) + S/2``, ``v = f y / (z + 1e-9) + S/2``; depth is the camera z;
- pixel (row r, column c) is the point ``(c + 0.5, r + 0.5)`` of the y-down crop image;
- both windings are drawn (``fill_back``), so no face is culled; a pixel on an edge is inside;
- barycentric weights clamped to [0, 1] and renormalised; perspective-correct depth
  ``z = 1 / sum(w_i / z_i)``; kept only if ``near < z < far``; the nearest face wins;
- a zero-area face never writes (NMR's weights are NaN there); the background is ``far``.

One difference by design: NMR keeps at most 512 faces per 4x4-pixel block and silently drops
the rest; this keeps every face. Work is enumerated as (face, covered-pixel-centre) candidates,
processed ``max_candidates`` at a time, so memory is bounded by that number, not by the crop
count (NMR allocates a B x 64 x 64 x 512 face list).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

NEAR, FAR = 0.1, 100.0  # NMR rasterize_depth defaults (Renderer.render_depth passes none)
PROJECTION_EPS = 1e-9  # NMR projection.py: x / (z + eps)
MAX_CANDIDATES = 1 << 21  # (face, pixel) pairs per chunk: about 100 MB of temporaries in float32


class _Faces(NamedTuple):
    """Every face of every crop, flattened to (batch * F) entries."""

    corners: torch.Tensor  # (N, 3, 2) pixel-index coordinates
    depths: torch.Tensor  # (N, 3) camera z
    columns: torch.Tensor  # (N,) first candidate column
    rows: torch.Tensor  # (N,) first candidate row
    widths: torch.Tensor  # (N,) candidate columns
    counts: torch.Tensor  # (N,) candidate pixels (0: covers no pixel centre, degenerate or not finite)
    per_crop: int  # F


def render_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    focal_length: float,
    image_size: int,
    *,
    near: float = NEAR,
    far: float = FAR,
    max_candidates: int = MAX_CANDIDATES,
) -> torch.Tensor:
    """Depth (B, S, S) of ``vertices`` (B, V, 3, camera frame) with ``faces`` (F, 3) in a square
    pinhole camera of ``focal_length`` pixels centred on the image; ``far`` where nothing is."""
    with torch.no_grad():  # a visibility test: nothing flows back through it
        return _render_depth(vertices, faces, focal_length, image_size, near, far, max_candidates)


def _render_depth(vertices, faces, focal_length, image_size, near, far, max_candidates) -> torch.Tensor:
    batch = vertices.shape[0]
    corners, depths = _project(vertices.float(), faces.long(), focal_length, image_size)
    mesh = _Faces(corners, depths, *_candidate_boxes(corners, image_size), per_crop=faces.shape[0])
    depth = torch.full((batch * image_size * image_size,), far, dtype=torch.float32, device=vertices.device)
    face_ids = torch.nonzero(mesh.counts > 0).squeeze(1)  # the faces that cover a pixel centre
    for chunk in _chunks(face_ids, mesh.counts, max_candidates):
        _rasterize_chunk(depth, chunk, mesh, image_size, near, far)
    return depth.view(batch, image_size, image_size)


def _project(vertices: torch.Tensor, faces: torch.Tensor, focal_length: float, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per face corner: pixel-index coordinates (pixel centres at integers) and camera depth."""
    z = vertices[..., 2]
    scale = focal_length / (z + PROJECTION_EPS)
    half = image_size / 2
    x = vertices[..., 0] * scale + (half - 0.5)  # u - 0.5: column c's centre is at x = c
    y = vertices[..., 1] * scale + (half - 0.5)
    points = torch.stack([x, y], dim=-1)
    batch, faces_n = vertices.shape[0], faces.shape[0]
    corners = points[:, faces].reshape(batch * faces_n, 3, 2)
    depths = z[:, faces].reshape(batch * faces_n, 3)
    return corners, depths


def _candidate_boxes(corners: torch.Tensor, image_size: int) -> tuple[torch.Tensor, ...]:
    """Per face: the first column and row of pixel centres its bounding box covers, the box
    width, and how many centres it covers (0 for faces off the image, degenerate or NaN)."""
    low = torch.ceil(corners.amin(dim=1)).clamp(min=0)
    high = torch.floor(corners.amax(dim=1)).clamp(max=image_size - 1)
    size = (high - low + 1).clamp(min=0)
    area = _edge(corners[:, 0], corners[:, 1], corners[:, 2])
    usable = torch.isfinite(corners).all(dim=(1, 2)) & (area != 0)
    size = torch.where(usable[:, None], size, torch.zeros_like(size))
    size = torch.nan_to_num(size, nan=0.0).long()
    low = torch.nan_to_num(low, nan=0.0).long()
    return low[:, 0], low[:, 1], size[:, 0], size[:, 0] * size[:, 1]


def _chunks(face_ids: torch.Tensor, counts: torch.Tensor, max_candidates: int):
    """Consecutive runs of faces whose candidates add up to at most ``max_candidates`` (a single
    face larger than that is a run of its own: at most the whole crop, S * S candidates)."""
    if face_ids.numel() == 0:
        return
    totals = torch.cumsum(counts[face_ids], dim=0).cpu()
    start, done = 0, 0
    while start < face_ids.numel():
        stop = int(torch.searchsorted(totals, done + max_candidates, right=True))
        stop = max(stop, start + 1)
        yield face_ids[start:stop]
        done = int(totals[stop - 1])
        start = stop


def _rasterize_chunk(depth: torch.Tensor, chunk: torch.Tensor, mesh: _Faces, image_size: int, near: float, far: float) -> None:
    """Depth of every (face, pixel-centre) candidate of ``chunk``; the minimum goes into ``depth``."""
    corners, depths, widths = mesh.corners, mesh.depths, mesh.widths
    per_face = mesh.counts[chunk]
    owner = torch.repeat_interleave(chunk, per_face)  # one entry per (face, pixel) candidate
    first = torch.cumsum(per_face, dim=0) - per_face
    local = torch.arange(owner.numel(), device=owner.device) - torch.repeat_interleave(first, per_face)
    column = mesh.columns[owner] + local % widths[owner]
    row = mesh.rows[owner] + local // widths[owner]
    point = torch.stack([column, row], dim=-1).to(corners.dtype)
    a, b, c = corners[owner, 0], corners[owner, 1], corners[owner, 2]
    # Edge functions: the same sign for all three (zero allowed) means inside, in either winding.
    w0, w1, w2 = _edge(b, c, point), _edge(c, a, point), _edge(a, b, point)
    inside = ((w0 >= 0) & (w1 >= 0) & (w2 >= 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0))
    weights = torch.stack([w0, w1, w2], dim=-1) / _edge(a, b, c)[:, None]
    weights = weights.clamp(0, 1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    z = 1 / (weights / depths[owner]).sum(dim=-1)
    keep = inside & (z > near) & (z < far)
    crop = torch.div(owner, mesh.per_crop, rounding_mode="floor")
    target = (crop * image_size + row) * image_size + column
    depth.scatter_reduce_(0, target[keep], z[keep], reduce="amin")


def _edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Twice the signed area of (a, b, p): positive when p is left of a->b (y down: clockwise)."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])
