"""A fake GPU stack (torch, PHALP, 4D-Humans, detectron2, neural_renderer) as importable modules.

Lets the loader's real import-and-build path run on CI. Modules are created when they are
imported (a meta-path finder), so import-time behaviour holds as upstream: ``phalp.configs.base``
and ``hmr2.configs`` derive their cache roots from ``$HOME`` at that moment, importing PHALP's
tracker installs a root log handler, silences warnings, sets numpy print options and forces
``PYOPENGL_PLATFORM``, and building PHALP's SMPL layer swaps ``sys.stdout`` (reference §8).
Every call that downloads upstream calls ``urllib`` here, so a test that blocks the network
proves the loader never reaches one. Names, signatures and call order follow PHALP 96f7e6c /
4D-Humans 6ec7965; tests/fakes/phalp_api.py provides the PHALP and HMAR classes themselves.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import pickle
import sys
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from tests.fakes import phalp_api

ROOTS = ("torch", "phalp", "hmr2", "detectron2", "neural_renderer")
PACKAGES = {
    "torch", "torch.nn", "phalp", "phalp.configs", "phalp.models", "phalp.models.hmar", "phalp.trackers",
    "phalp.utils", "hmr2", "hmr2.datasets", "detectron2", "detectron2.data",
}  # fmt: skip
RESNET_URL = "https://download.pytorch.org/models/resnet50-19c8e357.pth"
HMR2_DATA_URL = "https://people.eecs.berkeley.edu/~jathushan/projects/4dhumans/hmr2_data.tar.gz"
REGNETY_URL = "https://dl.fbaipublicfiles.com/detectron2/new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ/42045954/model_final_ef3a80.pkl"
VITDET_MAE_URL = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth"
HMR2_WEIGHT_KEYS = ("backbone.blocks.0.attn.qkv.weight", "smpl_head.decpose.weight", "smpl.joint_map")


@dataclass
class StackState:
    """What the fake stack saw; tests assert on it."""

    package_dir: Path
    cuda_available: bool = True
    cuda_devices: int = 1
    imported: list[str] = field(default_factory=list)
    home_at_import: dict[str, str | None] = field(default_factory=dict)
    torch_loads: list[tuple[str, Any, Any]] = field(default_factory=list)
    hmr2_models: list[Any] = field(default_factory=list)
    hmr2_configs: list[dict[str, Any]] = field(default_factory=list)
    detector_configs: list[Any] = field(default_factory=list)
    zoo_requests: list[tuple[str, bool]] = field(default_factory=list)
    renderers: list[dict[str, Any]] = field(default_factory=list)
    current_device: int | None = None
    empty_cache_calls: int = 0


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, state: StackState, builders: dict[str, Callable[[ModuleType, StackState], None]]) -> None:
        self._state = state
        self._builders = builders

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._builders:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=fullname in PACKAGES)
        if fullname == "phalp":
            spec.origin = str(self._state.package_dir / "phalp" / "__init__.py")
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        self._state.imported.append(module.__name__)
        if module.__name__ == "phalp":
            module.__file__ = str(self._state.package_dir / "phalp" / "__init__.py")
        self._builders[module.__name__](module, self._state)


@contextlib.contextmanager
def fake_gpu_stack(package_dir: Path) -> Iterator[StackState]:
    """Make the fake stack importable; afterwards remove every module it created."""
    state = StackState(package_dir=package_dir)
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_ours(name)}
    finder = _Finder(state, BUILDERS)
    sys.meta_path.insert(0, finder)
    try:
        yield state
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if _is_ours(name)]:
            del sys.modules[name]
        sys.modules.update(hidden)


# Our modules that import the GPU stack (the fakes, here): dropped with it after each use.
GPU_STACK_MODULES = tuple(f"daemon.processing.backends.phalp.{name}" for name in ("wiring", "batched", "texture"))


def _is_ours(name: str) -> bool:
    return name.split(".")[0] in ROOTS or name in GPU_STACK_MODULES


def write_model_files(files: list[Any], *, hmr2_keys: tuple[str, ...] = HMR2_WEIGHT_KEYS) -> None:
    """Create every manifest file with content the fakes can read."""
    for model_file in files:
        model_file.path.parent.mkdir(parents=True, exist_ok=True)
        if model_file.key == "phalp_bmap":
            np.save(model_file.path.with_suffix(""), np.full((8, 8, 3), 1 / 3, dtype=np.float32))
        elif model_file.key == "phalp_fmap":
            np.save(model_file.path.with_suffix(""), np.zeros((8, 8), dtype=np.int64))
        elif model_file.key == "hmr2_checkpoint":
            state = {key: 1.0 for key in hmr2_keys} | {"discriminator.D_conv1.weight": 1.0}
            model_file.path.write_bytes(pickle.dumps({"state_dict": state}))
        elif model_file.key == "phalp_pose_predictor_weights":
            keys = [f"encoder.{key}" for key in phalp_api.FakeLartEncoder.KEYS]
            model_file.path.write_bytes(pickle.dumps({"state_dict": {key: 1.0 for key in keys}}))
        elif model_file.path.suffix in (".pth", ".ckpt"):
            model_file.path.write_bytes(pickle.dumps({"state_dict": {}, "model": {}}))
        else:
            model_file.path.write_bytes(b"fake model file")


# --- builders, one per module ----------------------------------------------------------------


def _torch(module: ModuleType, state: StackState) -> None:
    module.__version__ = "2.0.1+fake"
    module.float = module.float32 = np.float32
    module.float16 = np.float16
    module.bfloat16 = "bfloat16"  # numpy has none; only compared, never computed with
    module.long = np.int64
    module.tensor = module.as_tensor = lambda data, dtype=None, device=None: np.asarray(data, dtype=dtype)
    module.device = lambda spec: str(spec)
    module.no_grad = contextlib.nullcontext
    module.autocast = lambda device_type, dtype=None, enabled=True: contextlib.nullcontext()

    def load(f, map_location=None, pickle_module=None, *, weights_only=False, **kwargs):
        state.torch_loads.append((str(f), map_location, weights_only))
        with open(f, "rb") as handle:
            return pickle.load(handle)

    def set_device(index):
        state.current_device = index

    def empty_cache():
        state.empty_cache_calls += 1

    module.load = load
    module.cuda = SimpleNamespace(
        is_available=lambda: state.cuda_available,
        device_count=lambda: state.cuda_devices if state.cuda_available else 0,
        set_device=set_device,
        get_device_name=lambda device=None: "Fake RTX 4060 Laptop GPU",
        empty_cache=empty_cache,
        OutOfMemoryError=type("OutOfMemoryError", (RuntimeError,), {}),
    )
    module.version = SimpleNamespace(cuda="11.8")


class _Module:
    """torch.nn.Module, as far as construction goes."""

    def __init__(self) -> None:
        self.training = True

    def register_buffer(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def to(self, *args: Any, **kwargs: Any) -> _Module:
        return self

    def eval(self) -> _Module:
        self.training = False
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)


def _torch_nn(module: ModuleType, state: StackState) -> None:
    module.Module = _Module


def _torch_nn_functional(module: ModuleType, state: StackState) -> None:
    module.grid_sample = lambda *args, **kwargs: None


def _package(module: ModuleType, state: StackState) -> None:
    pass


def _phalp_configs_base(module: ModuleType, state: StackState) -> None:
    state.home_at_import[module.__name__] = os.environ.get("HOME")
    module.CACHE_DIR = os.path.join(os.environ.get("HOME"), ".cache")  # TypeError without HOME, as upstream
    module.FullConfig = phalp_api.full_config_class(module.CACHE_DIR)


def _phalp_models_hmar_hmar(module: ModuleType, state: StackState) -> None:
    def resnet(pretrained=False, num_layers=50, **kwargs):
        if pretrained:
            urllib.request.urlopen(RESNET_URL)  # torch.utils.model_zoo.load_url upstream
        return f"resnet{num_layers}"

    class HMAR(phalp_api.FakeHMAR):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.backbone = module.resnet(pretrained=True, num_layers=cfg.MODEL.BACKBONE.NUM_LAYERS, cfg=cfg)
            self.texture_head = "texture head"
            self.smpl_head = "smpl head"
            # smpl_utils.blockPrinting: mutes stdout, then "restores" sys.__stdout__
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - leaked on purpose, as upstream
            sys.stdout = sys.__stdout__

        def load_weights(self, path):
            sys.modules["torch"].load(path)  # upstream: torch.load(path), no map_location

        def process_uv_image(self, uv_image):
            return uv_image

    module.resnet = resnet
    module.HMAR = HMAR


def _phalp_models_hmar(module: ModuleType, state: StackState) -> None:
    module.HMAR = importlib.import_module("phalp.models.hmar.hmar").HMAR


def _phalp_models_predictor(module: ModuleType, state: StackState) -> None:
    module.Pose_transformer_v2 = phalp_api.Pose_transformer_v2


def _phalp_trackers_phalp(module: ModuleType, state: StackState) -> None:
    importlib.import_module("phalp.configs.base")
    warnings.filterwarnings("ignore")  # PHALP.py:6
    logging.basicConfig(level="INFO", handlers=[logging.StreamHandler(sys.__stderr__)])  # get_pylogger
    np.set_printoptions(formatter={"float": "{: 0.3f}".format})  # tracker.py:13
    os.environ["PYOPENGL_PLATFORM"] = "egl"  # py_renderer.py:3
    module.PHALP = phalp_api.PHALP


def _phalp_utils_detectron2(module: ModuleType, state: StackState) -> None:
    class DefaultPredictor_Lazy:  # noqa: N801 - upstream's name
        def __init__(self, cfg):
            state.detector_configs.append(cfg)
            checkpoint = cfg.train.init_checkpoint
            if "://" in checkpoint:
                urllib.request.urlopen(checkpoint)  # iopath fetches URLs
            elif not Path(checkpoint).is_file():
                raise FileNotFoundError(checkpoint)

    module.DefaultPredictor_Lazy = DefaultPredictor_Lazy


class FakeCfgNode(dict):
    """yacs.config.CfgNode: attribute access, freeze/defrost."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            raise AttributeError(f"Attempted to set {name} to {value}, but CfgNode is immutable")
        self[name] = value

    def freeze(self) -> None:
        self.__dict__["_frozen"] = True

    def defrost(self) -> None:
        self.__dict__["_frozen"] = False


def _node(**values: Any) -> FakeCfgNode:
    return FakeCfgNode(**values)


def _hmr2_configs(module: ModuleType, state: StackState) -> None:
    state.home_at_import[module.__name__] = os.environ.get("HOME")
    module.CACHE_DIR = os.path.join(os.environ.get("HOME"), ".cache")
    module.CACHE_DIR_4DHUMANS = os.path.join(module.CACHE_DIR, "4DHumans")

    def get_config(config_file: str, merge: bool = True, update_cachedir: bool = False) -> FakeCfgNode:
        state.hmr2_configs.append({"config_file": config_file, "update_cachedir": update_cachedir})
        cfg = _node(
            SMPL=_node(MODEL_PATH="data/smpl", JOINT_REGRESSOR_EXTRA="data/SMPL_to_J19.pkl", MEAN_PARAMS="data/smpl_mean_params.npz"),
            MODEL=_node(IMAGE_SIZE=256, BACKBONE=_node(TYPE="vit", PRETRAINED_WEIGHTS="hmr2_training_data/vitpose_backbone.pth")),
            EXTRA=_node(FOCAL_LENGTH=5000),
            LOSS_WEIGHTS=_node(ADVERSARIAL=0.0005),
        )
        cfg.freeze()
        return cfg

    module.get_config = get_config


def _hmr2_models(module: ModuleType, state: StackState) -> None:
    class HMR2(_Module):
        def __init__(self, cfg, init_renderer: bool = True):
            super().__init__()
            self.cfg = cfg
            self.init_renderer = init_renderer
            if cfg.MODEL.BACKBONE.get("PRETRAINED_WEIGHTS"):
                sys.modules["torch"].load(cfg.MODEL.BACKBONE.PRETRAINED_WEIGHTS, map_location="cpu")
            self.has_discriminator = cfg.LOSS_WEIGHTS.ADVERSARIAL > 0
            self.smpl = phalp_api.FakeSmplLayer()
            self.loaded_keys: list[str] = []
            state.hmr2_models.append(self)

        @classmethod
        def load_from_checkpoint(cls, *args, **kwargs):
            raise AssertionError("load_from_checkpoint builds the renderers; the loader must not use it")

        def load_state_dict(self, state_dict, strict=True):
            expected = set(HMR2_WEIGHT_KEYS) | ({"discriminator.D_conv1.weight"} if self.has_discriminator else set())
            self.loaded_keys = sorted(state_dict)
            return SimpleNamespace(missing_keys=sorted(expected - set(state_dict)), unexpected_keys=sorted(set(state_dict) - expected))

    def download_models(folder=None):
        urllib.request.urlopen(HMR2_DATA_URL)

    def load_hmr2(checkpoint_path=None):
        raise AssertionError("load_hmr2 checks SMPL in CWD-relative places and builds renderers")

    module.HMR2 = HMR2
    module.download_models = download_models
    module.load_hmr2 = load_hmr2


def _hmr2_datasets_utils(module: ModuleType, state: StackState) -> None:
    module.expand_bbox_to_aspect_ratio = phalp_api.expand_bbox_to_aspect_ratio


def _detectron2_model_zoo(module: ModuleType, state: StackState) -> None:
    def get_config(config_path: str, trained: bool = False) -> SimpleNamespace:
        state.zoo_requests.append((config_path, trained))
        predictor = SimpleNamespace(test_score_thresh=0.05, test_nms_thresh=0.5)
        return SimpleNamespace(
            model=SimpleNamespace(roi_heads=SimpleNamespace(box_predictor=predictor)),
            train=SimpleNamespace(init_checkpoint=REGNETY_URL if trained else ""),
        )

    module.get_config = get_config


def _detectron2_data_transforms(module: ModuleType, state: StackState) -> None:
    module.AugInput = lambda image: SimpleNamespace(image=image)  # imported by wiring's batched detector


def _detectron2_config(module: ModuleType, state: StackState) -> None:
    class LazyConfig:
        @staticmethod
        def load(filename: str) -> SimpleNamespace:
            state.zoo_requests.append((filename, False))
            predictors = [SimpleNamespace(test_score_thresh=0.05) for _ in range(3)]
            return SimpleNamespace(
                model=SimpleNamespace(roi_heads=SimpleNamespace(box_predictors=predictors)),
                train=SimpleNamespace(init_checkpoint=VITDET_MAE_URL),
            )

    module.LazyConfig = LazyConfig


def _neural_renderer(module: ModuleType, state: StackState) -> None:
    class Renderer(_Module):
        def __init__(self, **kwargs):
            super().__init__()
            state.renderers.append(kwargs)

    module.Renderer = Renderer


BUILDERS: dict[str, Callable[[ModuleType, StackState], None]] = {
    "torch": _torch,
    "torch.nn": _torch_nn,
    "torch.nn.functional": _torch_nn_functional,
    "phalp": _package,
    "phalp.configs": _package,
    "phalp.configs.base": _phalp_configs_base,
    "phalp.models": _package,
    "phalp.models.hmar": _phalp_models_hmar,
    "phalp.models.hmar.hmar": _phalp_models_hmar_hmar,
    "phalp.models.predictor": _phalp_models_predictor,
    "phalp.trackers": _package,
    "phalp.trackers.PHALP": _phalp_trackers_phalp,
    "phalp.utils": _package,
    "phalp.utils.utils_detectron2": _phalp_utils_detectron2,
    "hmr2": _package,
    "hmr2.configs": _hmr2_configs,
    "hmr2.models": _hmr2_models,
    "hmr2.datasets": _package,
    "hmr2.datasets.utils": _hmr2_datasets_utils,
    "detectron2": _package,
    "detectron2.model_zoo": _detectron2_model_zoo,
    "detectron2.config": _detectron2_config,
    "detectron2.data": _package,
    "detectron2.data.transforms": _detectron2_data_transforms,
    "neural_renderer": _neural_renderer,
}
