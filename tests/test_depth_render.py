"""The pure-torch depth renderer against an independent float64 brute-force rasteriser (issue 20).

The reference below follows neural_renderer's code path literally (NMR@e990b3c): projection to
its [-1, 1] coordinates with v flipped up, fill_back (every face twice, reversed), the kernel's
backside test, its inclusive edge test at pixel centres (2i + 1 - S) / S, barycentrics from the
inverse face matrix in pixel units, clamped and renormalised, perspective-correct depth, the
near/far test, nearest wins, rows flipped back, background = far. It checks every pixel against
every face; the renderer under test enumerates (face, pixel) candidates in bounded chunks.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the test extra installs it: CI runs these

from daemon.processing.backends.phalp import stand_in_smpl  # noqa: E402
from daemon.processing.backends.phalp.depth_render import FAR, NEAR, render_depth  # noqa: E402


def nmr_reference(vertices: np.ndarray, faces: np.ndarray, focal: float, size: int, near=NEAR, far=FAR) -> np.ndarray:
    """(B, S, S) float64 depth, by NMR's rules, every pixel x every face."""
    out = np.full((len(vertices), size, size), far)
    faces = np.concatenate([faces, faces[:, ::-1]])  # renderer.py: fill_back
    centres = (2 * np.arange(size) + 1 - size) / size
    yp, xp = np.meshgrid(centres, centres, indexing="ij")  # row yi: y up
    yi, xi = np.meshgrid(np.arange(size, dtype=float), np.arange(size, dtype=float), indexing="ij")
    for b, verts in enumerate(vertices.astype(np.float64)):
        x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
        u = focal * x / (z + 1e-9) + size / 2  # projection.py with K = [[f, 0, S/2], [0, f, S/2]]
        v = size - (focal * y / (z + 1e-9) + size / 2)
        ndc = np.stack([2 * (u - size / 2) / size, 2 * (v - size / 2) / size, z], axis=1)
        depth = np.full((size, size), far)
        for face in faces:
            f = ndc[face].reshape(9)
            if (f[7] - f[1]) * (f[3] - f[0]) < (f[4] - f[1]) * (f[6] - f[0]):
                continue  # backside: its reversed copy is drawn instead
            inside = ~(((yp - f[1]) * (f[3] - f[0]) < (xp - f[0]) * (f[4] - f[1]))
                       | ((yp - f[4]) * (f[6] - f[3]) < (xp - f[3]) * (f[7] - f[4]))
                       | ((yp - f[7]) * (f[0] - f[6]) < (xp - f[6]) * (f[1] - f[7])))  # fmt: skip
            p = 0.5 * (np.array([[f[0], f[1]], [f[3], f[4]], [f[6], f[7]]]) * size + size - 1)
            inv = np.array([
                [p[1, 1] - p[2, 1], p[2, 0] - p[1, 0], p[1, 0] * p[2, 1] - p[2, 0] * p[1, 1]],
                [p[2, 1] - p[0, 1], p[0, 0] - p[2, 0], p[2, 0] * p[0, 1] - p[0, 0] * p[2, 1]],
                [p[0, 1] - p[1, 1], p[1, 0] - p[0, 0], p[0, 0] * p[1, 1] - p[1, 0] * p[0, 1]],
            ])  # fmt: skip
            denominator = p[2, 0] * (p[0, 1] - p[1, 1]) + p[0, 0] * (p[1, 1] - p[2, 1]) + p[1, 0] * (p[2, 1] - p[0, 1])
            if denominator == 0:
                continue  # NMR: NaN weights, never written
            w = np.stack([inv[k, 0] * xi + inv[k, 1] * yi + inv[k, 2] for k in range(3)]) / denominator
            w = np.clip(w, 0, 1)
            w = w / w.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                zp = 1 / (w[0] / f[2] + w[1] / f[5] + w[2] / f[8])
            write = inside & (zp > near) & (zp < far) & (zp < depth)
            depth[write] = zp[write]
        out[b] = depth[::-1]  # rasterize.py flips the rows back to y down
    return out


def render(vertices: np.ndarray, faces: np.ndarray, focal: float, size: int, **kwargs) -> np.ndarray:
    result = render_depth(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces), focal, size, **kwargs)
    assert result.dtype == torch.float32 and result.shape == (len(vertices), size, size)
    return result.numpy().astype(np.float64)


def random_triangles(seed: int, batch: int, count: int, size: int, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping triangles at depths 2-6 whose corners land around (and past) the image."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(2, 6, (batch, count, 1)).repeat(3, axis=1).reshape(batch, count * 3)
    depth = depth + rng.uniform(-0.5, 0.5, depth.shape)  # tilted faces
    pixels = rng.uniform(-0.2 * size, 1.2 * size, (batch, count * 3, 2))
    xy = (pixels - size / 2) * depth[..., None] / focal
    vertices = np.concatenate([xy, depth[..., None]], axis=-1)
    return vertices, np.arange(count * 3).reshape(count, 3)


def test_random_overlapping_triangles_match_the_reference_pixel_for_pixel():
    vertices, faces = random_triangles(0, batch=2, count=60, size=32, focal=40.0)
    expected, got = nmr_reference(vertices, faces, 40.0, 32), render(vertices, faces, 40.0, 32)
    covered = expected < FAR
    assert 0.3 < covered.mean() < 1.0  # a real mix of coverage and background
    np.testing.assert_array_equal(got < FAR, covered)  # coverage, pixel for pixel
    np.testing.assert_allclose(got[covered], expected[covered], rtol=2e-6)  # the nearest face's depth
    assert np.all(got[~covered] == FAR)  # background = far


def test_the_nearest_of_stacked_faces_wins_in_either_winding():
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    quads = []
    # half-widths in pixels (f = 20 puts x = w * z / 20 at w pixels): 19.3, 8 and 14, at depths
    # 8, 3 and 5, drawn farthest first
    for depth, half_width in ((8.0, 19.3), (3.0, 8.0), (5.0, 14.0)):
        quads.append(np.concatenate([square * half_width * depth / 20, np.full((4, 1), depth)], axis=1))
    vertices = np.concatenate(quads)[None]
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6], [8, 9, 10], [8, 10, 11]])  # mixed windings
    got = render(vertices, faces, 20.0, 40)
    np.testing.assert_allclose(got, nmr_reference(vertices, faces, 20.0, 40), rtol=1e-6)
    depth = got[0]
    assert depth[20, 20] == pytest.approx(3.0) and depth[20, 8] == pytest.approx(5.0) and depth[20, 2] == pytest.approx(8.0)
    assert depth[1, 1] == pytest.approx(8.0) and depth[0, 0] == FAR  # 19.3 px: the outermost centres are outside
    # Edges exactly through the outermost pixel centres (19.5 px): inside, as NMR's inclusive
    # test decides in float32, where its 1e-9 added to z vanishes (the float64 reference would
    # put those centres a hair outside, so this tie is checked on the renderer alone).
    vertices[0, :4, :2] = square * 19.5 * 8.0 / 20
    edge = render(vertices, faces, 20.0, 40)[0]
    assert edge[0, 0] == edge[39, 39] == edge[0, 39] == pytest.approx(8.0)


def test_faces_behind_the_camera_before_near_or_past_far_draw_nothing():
    triangle = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0]])
    for depth in (-4.0, 0.05, 150.0):  # behind the camera, nearer than near, beyond far
        vertices = (triangle * [abs(depth) / 4, abs(depth) / 4, depth])[None]
        got = render(vertices, np.array([[0, 1, 2]]), 30.0, 24)
        assert np.all(got == FAR), depth
        np.testing.assert_array_equal(got, nmr_reference(vertices, np.array([[0, 1, 2]]), 30.0, 24))
    crossing = np.array([[[-1.03, -0.91, -2.1], [1.07, -0.97, 4.3], [0.02, 1.11, 3.9]]])  # one corner behind
    np.testing.assert_allclose(render(crossing, np.array([[0, 1, 2]]), 30.0, 24),
                               nmr_reference(crossing, np.array([[0, 1, 2]]), 30.0, 24), rtol=1e-6)  # fmt: skip


def test_degenerate_faces_draw_nothing_and_leave_no_nan():
    vertices = np.array([[[0, 0, 4], [1, 1, 4], [2, 2, 4], [0.5, 0, 4], [-1, -1, 2.0]]])  # a line, and points
    faces = np.array([[0, 1, 2], [3, 3, 3], [0, 0, 4], [1, 2, 2]])
    got = render(vertices, faces, 30.0, 24)
    assert np.all(got == FAR) and not np.isnan(got).any()
    np.testing.assert_array_equal(got, nmr_reference(vertices, faces, 30.0, 24))


def test_chunking_bounds_the_work_without_changing_a_pixel():
    vertices, faces = random_triangles(1, batch=3, count=40, size=32, focal=40.0)
    whole = render(vertices, faces, 40.0, 32)
    np.testing.assert_array_equal(render(vertices, faces, 40.0, 32, max_candidates=7), whole)
    np.testing.assert_array_equal(render(vertices, faces, 40.0, 32, max_candidates=1000), whole)


def test_the_stand_in_body_at_hmr2s_crop_scale_matches_the_reference():
    """HMR 2.0 places the mesh about 43 m away with f = 5000 in a 256-pixel crop."""
    vertices, _ = stand_in_smpl.body_vertices()
    faces = stand_in_smpl.sphere_faces().astype(np.int64)
    placed = vertices + np.array([0.05, 0.1, 43.4])
    band = faces[2000:3400]  # a band around the body (the reference is slow): both sides overlap
    got, expected = render(placed[None], band, 5000.0, 256), nmr_reference(placed[None], band, 5000.0, 256)
    covered = expected < FAR
    assert covered.sum() > 400
    np.testing.assert_array_equal(got < FAR, covered)
    np.testing.assert_allclose(got[covered], expected[covered], atol=1e-5)  # metres
    whole = render(placed[None], faces, 5000.0, 256)[0]
    radii_px = np.asarray(stand_in_smpl.BODY_RADII[:2]) * 5000.0 / 43.4
    assert (whole < FAR).sum() == pytest.approx(np.pi * radii_px[0] * radii_px[1], rel=0.03)  # the ellipse's silhouette
    assert whole[whole < FAR].min() > 43.4 - stand_in_smpl.BODY_RADII[2] - 1e-3  # only the front surface shows


def test_the_depth_renderer_setting_is_checked_and_defaults_to_torch():
    from daemon.config import load_config
    from daemon.errors import ConfigError

    assert load_config().backend.phalp.depth_renderer == "torch"
    assert load_config(overrides=["backend.phalp.depth_renderer=nmr"]).backend.phalp.depth_renderer == "nmr"
    with pytest.raises(ConfigError, match="backend.phalp.depth_renderer"):
        load_config(overrides=["backend.phalp.depth_renderer=opengl"])
