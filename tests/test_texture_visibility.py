"""posed's texture sampler with the torch depth renderer, on the CPU (issue 20).

With neural_renderer the sampler could only run on CUDA; with ``depth_renderer: torch`` its
visibility test runs anywhere. Here it samples a camera-facing stand-in SMPL body placed as HMR
2.0 places a person (f = 5000, 256-pixel crop, about 43 m): texels on the near half must take
the crop's colour and mask, texels on the far half must be hidden.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from daemon.processing.backends.phalp import stand_in_smpl  # noqa: E402
from daemon.processing.backends.phalp.depth_render import FAR, render_depth  # noqa: E402


@pytest.fixture
def sampler(monkeypatch):
    # Names texture.py (and batched.py beside it) import but this path never calls; 4D-Humans
    # and detectron2 are not installed in CI.
    stand_ins = {name: types.ModuleType(name) for name in ("hmr2", "hmr2.models", "detectron2", "detectron2.data", "detectron2.data.transforms")}
    stand_ins["hmr2.models"].HMR2 = object
    stand_ins["detectron2.data"].transforms = stand_ins["detectron2.data.transforms"]
    for name, module in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, module)
    ours = ("daemon.processing.backends.phalp.texture", "daemon.processing.backends.phalp.batched")
    saved = {name: sys.modules.pop(name) for name in ours if name in sys.modules}
    from daemon.processing.backends.phalp.texture import HMR2TextureSampler

    atlas = stand_in_smpl.uv_atlas(256)
    hmr2 = SimpleNamespace(cfg=SimpleNamespace(MODEL=SimpleNamespace(IMAGE_SIZE=256), EXTRA=SimpleNamespace(FOCAL_LENGTH=5000)))
    hmar_old = SimpleNamespace(smpl=SimpleNamespace(faces=stand_in_smpl.sphere_faces()))
    yield HMR2TextureSampler(hmr2, hmar_old, atlas.barycentric, atlas.face, "fp32")
    for name in ours:  # built on the stand-ins: never let another test import these copies
        sys.modules.pop(name, None)
    sys.modules.update(saved)


def test_the_near_half_of_the_body_is_visible_and_the_far_half_hidden(sampler):
    assert sampler.depth_renderer == "torch" and sampler.neural_renderer is None
    vertices, _ = stand_in_smpl.body_vertices()
    placed = torch.tensor(vertices + np.array([0.0, 0.0, 43.4]), dtype=torch.float32)[None]
    image = torch.full((1, 3, 256, 256), 0.25)
    mask = torch.ones((1, 256, 256))
    uv = sampler._sample_texture(image, mask, placed)
    assert uv.shape == (1, 4, 256, 256)
    texels = sampler.tex_fmap >= 0
    corners = placed[:, sampler.smpl_faces[sampler.tex_fmap[texels]]]
    points = torch.einsum("bnij,ni->bnj", corners, sampler.tex_bmap[texels])[0]
    # The body is convex: a point is visible exactly when its surface faces the camera.
    normals = (points - torch.tensor([0.0, 0.0, 43.4])) / torch.tensor(stand_in_smpl.BODY_RADII) ** 2
    facing = -(normals * points).sum(dim=1) / (normals.norm(dim=1) * points.norm(dim=1))
    # Within a pixel or two of the silhouette the sampled depth mixes in the background (as with
    # neural_renderer): compare only texels that project 2+ pixels inside it.
    covered = (render_depth(placed, sampler.smpl_faces, 5000.0, 256)[0] < FAR).float()
    inner = -torch.nn.functional.max_pool2d(-covered[None, None], 5, stride=1, padding=2)[0, 0] > 0.5
    pixel = (5000.0 * points[:, :2] / points[:, 2:3] + 128).long().clamp(0, 255)
    inside = inner[pixel[:, 1], pixel[:, 0]]
    alpha = uv[0, 3][texels]
    near, far = inside & (facing > 0.05), inside & (facing < -0.05)
    assert near.sum() > 10_000 and far.sum() > 10_000
    assert (alpha[near] > 0.99).all()  # the crop's mask, sampled where visible
    assert (alpha[far] == 0).all()  # the back of the body never takes the crop's pixels
    assert torch.allclose(uv[0, :3][:, texels][:, near], torch.tensor(0.25), atol=1e-6)
