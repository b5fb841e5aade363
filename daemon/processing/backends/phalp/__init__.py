"""PHALP + HMR 2.0 (4D-Humans) backend.

Modules, one concept each:

- ``backend``: the ``Backend`` the worker sees;
- ``driver``: PHALP's per-frame steps on our frames, with bounded memory and back-fill buffering;
- ``convert``: a track on a frame -> ``Person`` (keypoints, 3D joints, SMPL, camera, angles);
- ``geometry``, ``angles``, ``skeleton``: numpy maths and joint names;
- ``loader``: checks, then builds (``manifest`` lists the model files, ``device`` and
  ``environment`` handle CUDA and process state); ``wiring`` is the only module that imports
  torch/PHALP/4D-Humans, and only at load time.
"""

from __future__ import annotations

from daemon.processing.backends.phalp.backend import PhalpBackend

__all__ = ["PhalpBackend"]
