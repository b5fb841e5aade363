"""An import-only stand-in for pyrender, used by the device check only.

PHALP's and HMR 2.0's renderer modules import pyrender at module level; posed never renders
(``init_renderer=False``, ``setup_visualizer`` overridden), and the real pyrender needs EGL or
OSMesa libraries the lent GPU image may lack. Any name resolves to a class (so annotations such
as ``List[pyrender.Node]`` work); building or calling one raises, so a use cannot go unnoticed.
The production install (scripts/setup-gpu.sh) installs the real pyrender.
"""

POSED_STAND_IN = True


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("pyrender stand-in (scripts/gpu-check): rendering is not available in the device check")


def __getattr__(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (_Unavailable,), {})
