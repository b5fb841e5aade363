"""Read the SMPL model file without chumpy, and convert it once into plain numpy.

The original ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` is a Python 2 pickle whose arrays
are chumpy ``Ch`` objects and whose joint regressors are scipy sparse matrices. smplx (which
PHALP and HMR 2.0 use) reads it with ``pickle.load``, so the file needs chumpy installed, and
chumpy's build is one of the install's failure points. ``fetch-models --smpl`` instead reads
it once with a *restricted* unpickler and writes a pickle of plain numpy arrays that smplx
reads unchanged.

The file comes from outside, and unpickling can run any callable a pickle names, so this
unpickler resolves only an allow-list of names: numpy's array reconstruction, ``set``,
``object``, ``copyreg._reconstructor`` and ``_codecs.encode`` (how Python 2 and protocol-2
pickles spell arrays, sets, plain objects and bytes), plus two classes it never imports:
``chumpy.ch.Ch`` and scipy's ``csc_matrix``. Those become inert records of their pickled state,
reduced afterwards to arrays (``Ch`` to its ``x``; the sparse matrix densified with numpy).
Any other name, a ``Ch`` without an array ``x``, or a field of another type fails loudly.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_FIELDS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs")
CHUMPY_ARRAY = ("chumpy.ch", "Ch")
SPARSE_CSC = {("scipy.sparse.csc", "csc_matrix"), ("scipy.sparse._csc", "csc_matrix"), ("scipy.sparse", "csc_matrix")}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric", "numpy")


class SmplFileError(ValueError):
    """The SMPL file is not what posed can read safely; the message says what was found."""


class _Recorded:
    """An allow-listed foreign object (chumpy array, sparse matrix): only its pickled state."""

    source: tuple[str, str] = ("", "")

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) from Python 2 pickles
            state = state[0]
        if not isinstance(state, dict):
            raise SmplFileError(f"{'.'.join(self.source)}: unexpected pickled state {type(state).__name__}")
        self.state = state


class _ChumpyArray(_Recorded):
    source = CHUMPY_ARRAY


class _SparseCsc(_Recorded):
    source = ("scipy.sparse", "csc_matrix")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; no other codec is reachable."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise SmplFileError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy 2 (the GPU machine's); numpy 1 has only numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:
        from numpy.core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {}
    for module in _NUMPY_MODULES:
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
        allowed[(module, "_frombuffer")] = numeric._frombuffer
        allowed[(module, "ndarray")] = np.ndarray
        allowed[(module, "dtype")] = np.dtype
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: io.BufferedIOBase) -> None:
        super().__init__(handle, encoding="latin1")  # the original is a Python 2 pickle
        import copyreg

        self._allowed = _numpy_globals()
        self._allowed.update({
            ("builtins", "set"): set,
            ("builtins", "object"): object,
            ("copyreg", "_reconstructor"): copyreg._reconstructor,
            ("_codecs", "encode"): _latin1_encode,
            CHUMPY_ARRAY: _ChumpyArray,
        })  # fmt: skip
        self._allowed.update({name: _SparseCsc for name in SPARSE_CSC})

    def find_class(self, module: str, name: str) -> Any:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # __builtin__, copy_reg
        found = self._allowed.get((module, name))
        if found is None:
            raise SmplFileError(
                f"refusing to unpickle {module}.{name}: an SMPL model file holds only numpy arrays, chumpy arrays and "
                "scipy sparse matrices (is this really basicModel_neutral_lbs_10_207_0_v1.0.0.pkl?)"
            )
        return found


def read_smpl(path: Path) -> dict[str, Any]:
    """The SMPL model at ``path`` as a dict of numpy arrays (and its two style strings)."""
    raw = _load(path)
    return {key: _plain(key, value, path) for key, value in raw.items()}


def foreign_fields(path: Path) -> list[str]:
    """The fields smplx could not read without chumpy or scipy (empty for a converted file)."""
    raw = _load(path)
    for key, value in raw.items():
        _plain(key, value, path)  # the same checks as read_smpl
    return sorted(key for key, value in raw.items() if isinstance(value, _Recorded))


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            model = _RestrictedUnpickler(handle).load()
    except SmplFileError as exc:
        raise SmplFileError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise SmplFileError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, dict):
        raise SmplFileError(f"{path}: holds a {type(model).__name__}, an SMPL model file holds a dict")
    missing = [key for key in REQUIRED_FIELDS if key not in model]
    if missing:
        raise SmplFileError(f"{path}: not an SMPL model (missing {', '.join(missing)})")
    return {str(key): value for key, value in model.items()}


def _plain(key: str, value: Any, path: Path) -> Any:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, str):
        return value  # bs_type, bs_style
    if isinstance(value, _ChumpyArray):
        array = value.state.get("x")
        if isinstance(array, np.ndarray) and array.dtype != object:
            return array
        raise SmplFileError(f"{path}: field {key!r} is a chumpy object without a stored array (a computed chumpy node?)")
    if isinstance(value, _SparseCsc):
        return _dense_csc(key, value.state, path)
    raise SmplFileError(f"{path}: field {key!r} is a {type(value).__name__}, expected an array")


def _dense_csc(key: str, state: dict[str, Any], path: Path) -> np.ndarray:
    """A compressed-sparse-column matrix from its pickled fields, densified with numpy only."""
    try:
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
        data, indices, indptr = (np.asarray(state[name]) for name in ("data", "indices", "indptr"))
        dense = np.zeros(shape, dtype=data.dtype)
        columns = np.repeat(np.arange(shape[1]), np.diff(indptr))
        dense[indices, columns] = data
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SmplFileError(f"{path}: field {key!r} is a malformed sparse matrix ({type(exc).__name__}: {exc})") from None
    return dense


def convert_smpl(source: Path, destination: Path) -> dict[str, Any]:
    """Read ``source`` safely and write it as a plain-numpy pickle at ``destination``, atomically.

    The result is read back with the same restricted unpickler before it replaces anything."""
    model = read_smpl(source)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            pickle.dump(model, out, protocol=2)  # smplx: pickle.load(f, encoding="latin1")
            out.flush()
            os.fsync(out.fileno())
        read_smpl(temp)
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return model
