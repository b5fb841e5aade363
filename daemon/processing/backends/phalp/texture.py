"""The ``HMAR`` PHALP calls, built on HMR 2.0: pose, camera and the person's UV texture.

Split from ``wiring`` (which builds and wires everything) because it is one concept with its
own maths: placing HMR 2.0's mesh in the crop camera and sampling the visible texels, exactly
as 4D-Humans' ``HMR2023TextureSampler``. Imported only by ``wiring``, inside the import sandbox.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hmr2.models import HMR2

from daemon.processing.backends.phalp.batched import autocast
from daemon.processing.backends.phalp.depth_render import FAR, NEAR, render_depth

VISIBILITY_EPSILON = 1e-4  # a UV texel is visible if it is at most this far behind the rendered surface


class HMR2TextureSampler(torch.nn.Module):
    """The ``HMAR`` PHALP calls: HMR 2.0 for pose and camera, plus the person's UV texture.

    The same computation as 4D-Humans' ``HMR2023TextureSampler.forward``: place HMR 2.0's mesh
    in its crop camera, find each texel's surface point through the UV atlas (bmap/fmap),
    render a depth map to test visibility (``depth_render``'s pure torch z-buffer, or
    neural_renderer as upstream with ``depth_renderer="nmr"``), and sample the crop's colours
    at visible texels. The texture feeds PHALP's appearance cue.
    """

    def __init__(self, hmr2: HMR2, hmar_old: Any, bmap: np.ndarray, fmap: np.ndarray, precision: str, depth_renderer: str = "torch") -> None:
        super().__init__()
        self.model = hmr2
        self.hmar_old = hmar_old
        self.smpl = hmar_old.smpl
        self.precision = precision  # fp32 | fp16 | bf16, for HMR 2.0 and (StreamingPhalp) the detector
        self.crop_size = int(hmr2.cfg.MODEL.IMAGE_SIZE)
        self.focal_length = float(hmr2.cfg.EXTRA.FOCAL_LENGTH)
        self.register_buffer("tex_bmap", torch.tensor(bmap, dtype=torch.float))
        self.register_buffer("tex_fmap", torch.tensor(fmap, dtype=torch.long))
        self.register_buffer("smpl_faces", torch.tensor(np.asarray(self.smpl.faces, dtype=np.int64)))
        self.depth_renderer = depth_renderer
        self.neural_renderer = _nmr_renderer(self.crop_size) if depth_renderer == "nmr" else None

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        image, mask = x[:, :3], x[:, 3].clip(0, 1)
        with autocast(x.device.type, self.precision):
            out = self.model({"img": image, "mask": mask})
        vertices = (out["pred_vertices"] + out["pred_cam_t"].unsqueeze(1)).float()
        uv_image = self._sample_texture(image, mask, vertices)
        return {
            "uv_image": uv_image,
            "uv_vector": self.hmar_old.process_uv_image(uv_image),
            "pose_smpl": {key: value.float() for key, value in out["pred_smpl_params"].items()},
            "pred_cam": out["pred_cam"].float(),
        }

    def _sample_texture(self, image: torch.Tensor, mask: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
        batch = vertices.shape[0]
        texels = self.tex_fmap >= 0
        corners = vertices[:, self.smpl_faces[self.tex_fmap[texels]]]  # (B, N, 3 corners, xyz)
        points = torch.einsum("bnij,ni->bnj", corners, self.tex_bmap[texels])  # barycentric mix
        # grid_sample coordinates: the crop camera's projection in [-1, 1]
        grid = (self.focal_length / (self.crop_size / 2)) * points[..., :2] / points[..., 2:3]
        surface_depth = self._render_depth(vertices)
        depth_at_texel = F.grid_sample(surface_depth[:, None], grid[:, None], align_corners=False)[:, 0, 0]
        colours = F.grid_sample(torch.cat([image, mask[:, None]], dim=1), grid[:, None], align_corners=False)[:, :, 0]
        hidden = ~(points[..., 2] <= depth_at_texel + VISIBILITY_EPSILON)  # NaN counts as hidden
        colours[:, 3][hidden] = 0
        uv_image = torch.zeros((batch, 4, *self.tex_fmap.shape), dtype=torch.float, device=vertices.device)
        uv_image[:, :, texels] = colours
        return uv_image

    def _render_depth(self, vertices: torch.Tensor) -> torch.Tensor:
        if self.neural_renderer is None:
            return render_depth(vertices, self.smpl_faces, self.focal_length, self.crop_size)
        device, batch = vertices.device, vertices.shape[0]
        intrinsics = torch.eye(3, device=device)
        intrinsics[0, 0] = intrinsics[1, 1] = self.focal_length
        intrinsics[0, 2] = intrinsics[1, 2] = self.crop_size / 2  # neural_renderer wants square images
        faces = self.smpl_faces[None].expand(batch, -1, -1).int()
        return self.neural_renderer(
            vertices,
            faces,
            mode="depth",
            K=intrinsics[None],
            R=torch.eye(3, device=device)[None],
            t=torch.zeros(3, device=device)[None],
        )

    # PHALP calls these on its HMAR; with HMR 2.0 they still come from the old HMAR.
    def autoencoder_hmar(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.hmar_old.autoencoder_hmar(*args, **kwargs)

    def get_3d_parameters(self, *args: Any, **kwargs: Any):
        return self.hmar_old.get_3d_parameters(*args, **kwargs)


def _nmr_renderer(crop_size: int) -> Any:
    """neural_renderer as 4D-Humans builds it; imported only when selected (a compiled extension)."""
    import neural_renderer

    return neural_renderer.Renderer(
        dist_coeffs=None,
        orig_size=crop_size,
        image_size=crop_size,
        light_intensity_ambient=1,
        light_intensity_directional=0,
        anti_aliasing=False,
        near=NEAR,
        far=FAR,
    )
