"""The SMPL file read without chumpy (issue 20): a restricted unpickler converts the original
once into plain numpy. The original cannot be redistributed, so these tests generate files of
its kind: SMPL's fields and shapes (the stand-in body), its arrays as chumpy ``Ch`` objects (a
pickle naming ``chumpy.ch.Ch`` written while a look-alike module stands in for chumpy, which is
not installed), its regressors as scipy sparse matrices, in Python 2's protocol 0 and 2 spelling."""

from __future__ import annotations

import os
import pickle
import pickletools
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from daemon.processing.backends.phalp import smpl_file, stand_in_smpl

CHUMPY_FIELDS = ("v_template", "weights", "shapedirs", "posedirs", "J")


def _chumpy_lookalike(class_names=("Ch",)) -> types.ModuleType:
    """A module importable as chumpy.ch while a test pickle is written; Ch pickles as chumpy's
    does (``__getstate__``: its __dict__ without the weak caches: x, _dirty_vars, _itr)."""
    module = types.ModuleType("chumpy.ch")
    for name in class_names:
        def getstate(self):
            return {"x": self.x, "_dirty_vars": set(), "_itr": None} if hasattr(self, "x") else {"a": 1, "b": 2}

        cls = type(name, (), {"__getstate__": getstate, "__module__": "chumpy.ch"})
        setattr(module, name, cls)
    return module


def _write_original_like(path: Path, protocol: int, *, extra: dict | None = None) -> dict:
    """An SMPL-shaped pickle as the original holds it; returns the arrays it should yield."""
    model = stand_in_smpl.stand_in_body_model()
    expected = {key: np.asarray(value) if not isinstance(value, str) else value for key, value in model.items()}
    chumpy, package = _chumpy_lookalike(("Ch", "Select")), types.ModuleType("chumpy")
    package.ch = chumpy
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": package, "chumpy.ch": chumpy})
    try:
        content = dict(model)
        for key in CHUMPY_FIELDS:
            wrapped = chumpy.Ch()
            wrapped.x = np.asarray(model[key])
            content[key] = wrapped
        content["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"] * (model["J_regressor"] > 0.05))
        expected["J_regressor"] = content["J_regressor"].toarray()
        content["J_regressor_prior"] = content["J_regressor"].copy()
        expected["J_regressor_prior"] = expected["J_regressor"]
        for key, build in (extra or {}).items():
            content[key] = build(chumpy)
        with path.open("wb") as handle:
            pickle.dump(content, handle, protocol=protocol)  # fix_imports: __builtin__, copy_reg as Python 2
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return expected


def _globals_named(path: Path) -> set[str]:
    named, strings = set(), []
    for opcode, arg, _ in pickletools.genops(path.read_bytes()):
        if opcode.name == "GLOBAL":
            named.add(arg.replace(" ", "."))
        elif opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            named.add(".".join(strings[-2:]))
    return named


@pytest.mark.parametrize("protocol", [0, 2])
def test_an_original_like_file_converts_to_plain_numpy_without_chumpy(tmp_path, protocol):
    assert "chumpy" not in sys.modules and smpl_file.CHUMPY_ARRAY[0] not in sys.modules
    original = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    expected = _write_original_like(original, protocol)
    assert {"chumpy.ch.Ch"} <= _globals_named(original)  # really a chumpy pickle
    assert any(name.endswith("csc_matrix") for name in _globals_named(original))
    assert smpl_file.foreign_fields(original) == sorted([*CHUMPY_FIELDS, "J_regressor", "J_regressor_prior"])
    converted = tmp_path / "smpl" / "SMPL_NEUTRAL.pkl"
    smpl_file.convert_smpl(original, converted)
    assert "chumpy" not in sys.modules
    assert {name.split(".")[0] for name in _globals_named(converted)} <= {"numpy", "_codecs"}  # nothing but arrays
    with converted.open("rb") as handle:  # how smplx reads it: plain pickle.load, chumpy absent
        model = pickle.load(handle, encoding="latin1")
    assert model.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, str):
            assert model[key] == value
        else:
            assert isinstance(model[key], np.ndarray) and model[key].dtype == value.dtype
            np.testing.assert_array_equal(model[key], value)
    assert model["shapedirs"].shape == (6890, 3, 10) and model["J_regressor"].shape == (24, 6890)
    assert smpl_file.foreign_fields(converted) == []
    assert not [p.name for p in converted.parent.iterdir() if p.name != converted.name]  # no .part left


class _RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_naming_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "SMPL_NEUTRAL.pkl"
    with hostile.open("wb") as handle:
        pickle.dump({"v_template": _RunsACommand(marker)}, handle, protocol=2)
    assert any(name.endswith(".system") for name in _globals_named(hostile))
    with pytest.raises(smpl_file.SmplFileError, match=r"refusing to unpickle (os|posix)\.system"):
        smpl_file.convert_smpl(hostile, tmp_path / "out" / "SMPL_NEUTRAL.pkl")
    assert not marker.exists() and not (tmp_path / "out" / "SMPL_NEUTRAL.pkl").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"extra": lambda chumpy: chumpy.Select()}, "refusing to unpickle chumpy.ch.Select"),
        ({"extra": lambda chumpy: chumpy.Ch()}, "field 'extra' is a chumpy object without a stored array"),
        ({"extra": lambda chumpy: [1, 2]}, "field 'extra' is a list, expected an array"),
        ({"extra": lambda chumpy: np.array([None, 1], dtype=object)}, "field 'extra' is a ndarray, expected an array"),
    ],
)
def test_anything_else_in_the_file_fails_loudly_naming_it(tmp_path, extra, message):
    original = tmp_path / "model.pkl"
    _write_original_like(original, 2, extra=extra)
    with pytest.raises(smpl_file.SmplFileError, match=message):
        smpl_file.read_smpl(original)


def test_a_file_without_smpls_fields_or_not_a_pickle_is_refused(tmp_path):
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
    with pytest.raises(smpl_file.SmplFileError, match="not an SMPL model .missing f, J_regressor"):
        smpl_file.read_smpl(partial)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(stand_in_smpl.write_body_model(tmp_path / "whole.pkl").read_bytes()[:5000])
    with pytest.raises(smpl_file.SmplFileError, match="not a readable pickle"):
        smpl_file.read_smpl(truncated)
