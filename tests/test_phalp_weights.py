"""What the phalp loader asks of torch when it reads a checkpoint (daemon/backends/phalp/weights.py).

torch is not installed here, so each test injects a torch stand-in whose ``load`` has the
signature of a real release (2.0.1: no ``mmap``; 2.1+: ``mmap``) and reads real files.
"""

from __future__ import annotations

import gc
import pickle
import platform
import weakref
import zipfile
from types import SimpleNamespace

import pytest

from daemon.processing.backends.phalp import weights


class StateDict(dict):
    """A dict that can be watched with a weak reference (plain dicts cannot)."""


class RecordingTorch:
    """The part of torch the loader uses, recording every call; files are real pickles."""

    def __init__(self, *, has_mmap: bool, device_context: bool = True) -> None:
        self.loads: list[dict] = []
        self.devices_entered: list[str] = []
        self.states: list[weakref.ref] = []
        self.device = self._device_context if device_context else str
        self.load = self._load_with_mmap if has_mmap else self._load_torch_2_0

    def _load_torch_2_0(self, f, map_location=None, pickle_module=None, *, weights_only=False, **pickle_load_args):
        return self._read(f, map_location=map_location, weights_only=weights_only)

    def _load_with_mmap(self, f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
        return self._read(f, map_location=map_location, weights_only=weights_only, mmap=mmap)

    def _read(self, f, **arguments):
        self.loads.append({"path": str(f), **arguments})
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as archive:
                content = pickle.loads(archive.read("data.pkl"))
        else:
            with open(f, "rb") as handle:
                content = pickle.load(handle)
        state = StateDict(content["state_dict"])
        self.states.append(weakref.ref(state))
        return {"state_dict": state}

    def _device_context(self, spec):
        torch = self

        class DeviceContext:
            def __enter__(self):
                torch.devices_entered.append(spec)

            def __exit__(self, *exc):
                return False

        return DeviceContext()


class Model:
    def __init__(self) -> None:
        self.loaded: dict | None = None
        self.moved_to: list[str] = []

    def load_state_dict(self, state, strict=True):
        self.loaded = dict(state)  # copies the values, as torch copies into parameters
        return SimpleNamespace(missing_keys=[], unexpected_keys=[], strict=strict)

    def to(self, device):
        self.moved_to.append(device)
        return self


STATE = {"encoder.layer.weight": [1.0, 2.0], "encoder.layer.bias": [0.5], "discriminator.w": [3.0]}


@pytest.fixture
def zip_checkpoint(tmp_path):
    """A file in torch.save's zip layout (what mmap=True can read)."""
    path = tmp_path / "model.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.pkl", pickle.dumps({"state_dict": STATE}))
    return path


@pytest.fixture
def legacy_checkpoint(tmp_path):
    """A pre-1.6 torch.save file: a bare pickle stream, which mmap=True refuses."""
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"state_dict": STATE}))
    return path


def test_a_zip_checkpoint_is_memory_mapped_to_the_cpu_where_torch_can(zip_checkpoint):
    torch = RecordingTorch(has_mmap=True)
    weights.load_checkpoint(torch, zip_checkpoint)
    assert torch.loads == [{"path": str(zip_checkpoint), "map_location": "cpu", "weights_only": False, "mmap": True}]


def test_torch_2_0_without_mmap_still_loads_to_the_cpu(zip_checkpoint):
    torch = RecordingTorch(has_mmap=False)
    assert weights.supports_mmap(torch) is False
    weights.load_checkpoint(torch, zip_checkpoint)
    assert torch.loads == [{"path": str(zip_checkpoint), "map_location": "cpu", "weights_only": False}]


def test_a_legacy_pickle_checkpoint_is_not_asked_to_be_memory_mapped(legacy_checkpoint):
    torch = RecordingTorch(has_mmap=True)
    weights.load_checkpoint(torch, legacy_checkpoint)
    assert torch.loads[0]["mmap"] is None and torch.loads[0]["map_location"] == "cpu"
    assert weights.is_zip_checkpoint(legacy_checkpoint) is False


def test_weights_go_into_the_model_and_no_copy_of_the_file_outlives_the_load(zip_checkpoint):
    torch = RecordingTorch(has_mmap=True)
    model = Model()
    result = weights.load_weights_into(torch, model, zip_checkpoint, select=lambda state: {k: v for k, v in state.items() if k.startswith("encoder.")})
    assert model.loaded == {"encoder.layer.weight": [1.0, 2.0], "encoder.layer.bias": [0.5]}
    assert result.strict is False  # the caller judges missing keys itself (HMR2's prefixes)
    gc.collect()
    assert [ref() for ref in torch.states] == [None]  # the loaded state dict is gone


def test_upstreams_bare_torch_load_gets_the_lean_arguments_and_is_restored(zip_checkpoint, legacy_checkpoint):
    torch = RecordingTorch(has_mmap=True)
    original = torch.load
    with weights.lean_torch_load(torch):
        torch.load(zip_checkpoint)  # PHALP's HMAR.load_weights: torch.load(path), nothing else
        torch.load(legacy_checkpoint, map_location="cuda")  # an explicit choice is kept
    assert torch.load == original
    assert torch.loads[0] | {"path": ""} == {"path": "", "map_location": "cpu", "weights_only": False, "mmap": True}
    assert torch.loads[1]["map_location"] == "cuda" and torch.loads[1]["mmap"] is None


def test_models_are_built_on_the_device_and_placed_there_at_once():
    torch = RecordingTorch(has_mmap=True)
    with weights.built_on(torch, "cuda:0"):
        model = Model()
    assert torch.devices_entered == ["cuda:0"]
    assert weights.place_on(model, "cuda:0") is model and model.moved_to == ["cuda:0"]


def test_a_torch_whose_device_is_not_a_context_manager_builds_as_before():
    torch = RecordingTorch(has_mmap=False, device_context=False)
    with weights.built_on(torch, "cuda:0"):
        pass
    assert torch.devices_entered == []


def test_freed_heap_is_handed_back_through_glibcs_malloc_trim():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is a glibc function; elsewhere only gc runs")
    assert weights._malloc_trim() is not None
    weights.release_host_memory()
