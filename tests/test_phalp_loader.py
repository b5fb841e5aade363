"""Loading the phalp backend: every file checked first, nothing downloaded, side effects contained.

The build path runs for real, on a fake GPU stack (tests/fakes/phalp_stack.py) whose download
points all go through urllib, which these tests block.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import urllib.request
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from daemon.processing.backends.phalp import loader
from daemon.processing.backends.phalp.environment import SANDBOX_DIR_NAME
from daemon.processing.backends.phalp.manifest import load_manifest
from daemon.config import PhalpConfig
from daemon.errors import BackendUnavailable, ConfigError
from tests.fakes.phalp_api import FakeLartEncoder
from tests.fakes.phalp_stack import HMR2_WEIGHT_KEYS, RESNET_URL, fake_gpu_stack, write_model_files


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def cfg(tmp_path) -> PhalpConfig:
    return PhalpConfig(cache_dir=str(tmp_path / "cache"), smpl_path=str(tmp_path / "licensed" / "SMPL_NEUTRAL.pkl"), detection_score_threshold=0.7)


@pytest.fixture
def stack(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with fake_gpu_stack(tmp_path / "site-packages") as state:
        yield state


def install_models(cfg: PhalpConfig, **kwargs) -> None:
    write_model_files(load_manifest(cfg).required(cfg.detector), **kwargs)


def test_missing_files_are_all_named_with_their_path_and_fix_before_anything_is_imported(cfg, stack):
    install_models(cfg)
    hmr2 = load_manifest(cfg).required("maskrcnn")
    missing = [f for f in hmr2 if f.key in ("hmr2_checkpoint", "smpl_neutral")]
    for model_file in missing:
        model_file.path.unlink()
    with pytest.raises(BackendUnavailable) as caught:
        loader.load_models(cfg, lambda _: None)
    message = str(caught.value)
    assert "2 model file(s) missing" in message
    for model_file in missing:
        assert str(model_file.path) in message
    assert "scripts/fetch-models.sh" in message and "hmr2_data" in message  # how to get the checkpoint
    assert "smplify.is.tue.mpg.de" in message and "backend.phalp.smpl_path" in message  # and SMPL
    assert stack.imported == []


def test_only_the_configured_detectors_weights_are_required(cfg):
    keys = {f.key for f in load_manifest(cfg).required("maskrcnn")}
    assert "detector_maskrcnn" in keys and "detector_vitdet" not in keys
    assert "smpl_neutral" in keys and "hmr2_checkpoint" in keys


def test_torch_missing_is_reported_by_name(cfg, tmp_path, no_network, monkeypatch):
    install_models(cfg)
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(BackendUnavailable, match="cannot import 'torch'.*setup-gpu.sh"):
        loader.load_models(cfg, lambda _: None)


def test_cuda_named_but_unavailable_fails_loudly_with_the_facts(cfg, stack, monkeypatch):
    install_models(cfg)
    stack.cuda_available = False
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(BackendUnavailable) as caught:
        loader.load_models(cfg, lambda _: None)
    message = str(caught.value)
    assert "torch.cuda.is_available()=False" in message and "torch.cuda.device_count()=0" in message
    assert "CUDA_VISIBLE_DEVICES=''" in message and "nvidia-smi" in message


def test_a_cuda_index_beyond_the_visible_devices_is_refused(cfg, stack):
    install_models(cfg)
    cfg.device = "cuda:1"
    with pytest.raises(BackendUnavailable, match="only 1 CUDA device"):
        loader.load_models(cfg, lambda _: None)


def test_bad_settings_name_their_config_key(cfg):
    cfg.n_init = 9
    with pytest.raises(ConfigError, match="backend.phalp.n_init"):
        loader.load_models(cfg, lambda _: None)
    cfg.n_init, cfg.detector = 5, "yolo"
    with pytest.raises(ConfigError, match="backend.phalp.detector"):
        loader.load_models(cfg, lambda _: None)
    cfg.detector, cfg.max_detections = "maskrcnn", 0
    with pytest.raises(ConfigError, match="backend.phalp.max_detections"):
        loader.load_models(cfg, lambda _: None)


def test_the_models_are_built_from_local_files_without_network_renderers_or_unused_models(cfg, stack):
    install_models(cfg)
    progress: list[str] = []
    models = loader.load_models(cfg, progress.append)
    phalp = models.phalp
    paths = {f.key: str(f.path) for f in load_manifest(cfg).required("maskrcnn")}

    # PHALP: no download hook, no ground-truth-box detector, no visualizer, never track()
    assert "cached_download_from_drive" not in phalp.calls and "setup_detectron2_with_RPN" not in phalp.calls
    assert phalp.visualizer is None and "default_setup" not in phalp.calls
    with pytest.raises(RuntimeError, match="per frame"):
        phalp.track()
    # HMR 2.0: our checkpoint, no renderer, no discriminator, no training-time backbone file
    (hmr2,) = stack.hmr2_models
    assert hmr2.init_renderer is False and hmr2.has_discriminator is False
    assert hmr2.cfg.MODEL.BACKBONE.PRETRAINED_WEIGHTS == ""
    assert hmr2.cfg.SMPL.MODEL_PATH == cfg.smpl_path and hmr2.cfg.SMPL.MEAN_PARAMS == paths["hmr2_smpl_mean_params"]
    assert stack.hmr2_configs == [{"config_file": paths["hmr2_model_config"], "update_cachedir": False}]
    assert not any(key.startswith("discriminator.") for key in hmr2.loaded_keys)
    # the old HMAR: built without ImageNet weights, heads HMR 2.0 replaces are dropped
    sampler = phalp.HMAR
    assert sampler.model is hmr2 and sampler.hmar_old.backbone is None and sampler.hmar_old.smpl_head is None
    assert stack.renderers == [] and sampler.depth_renderer == "torch"  # the pure-torch z-buffer by default: no neural_renderer
    # every checkpoint went to the CPU first and was allowed to hold pickled objects
    assert {path for path, _, _ in stack.torch_loads} >= {paths["phalp_hmar_weights"], paths["phalp_pose_predictor_weights"], paths["hmr2_checkpoint"]}
    assert all(location == "cpu" and weights_only is False for _, location, weights_only in stack.torch_loads)
    # each model goes to the device as soon as it is loaded, not after the next one is read
    assert phalp.pose_predictor.device == models.device.split(" ")[0]
    # the detector: RegNetY from the local file, our threshold below PHALP's 0.5 stage threshold
    (detector_cfg,) = stack.detector_configs
    assert stack.zoo_requests == [("new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ.py", False)]
    assert detector_cfg.train.init_checkpoint == paths["detector_maskrcnn"]
    assert detector_cfg.model.roi_heads.box_predictor.test_score_thresh == 0.5
    assert detector_cfg.model.roi_heads.box_predictor.test_nms_thresh == 0.4
    assert detector_cfg.model.roi_heads.box_predictor.test_topk_per_image == cfg.max_detections == 100
    # PHALP's config: our settings and paths, rendering off, one SMPL file for both stacks
    pcfg = phalp.cfg
    assert (pcfg.phalp.low_th_c, pcfg.phalp.small_w, pcfg.phalp.small_h) == (0.7, 50, 100)
    assert (pcfg.phalp.n_init, pcfg.phalp.max_age_track, pcfg.phalp.detector) == (5, 50, "maskrcnn")
    assert pcfg.render.enable is False and pcfg.SMPL.MODEL_PATH == cfg.smpl_path
    assert pcfg.hmr.hmar_path == paths["phalp_hmar_weights"] and list(pcfg.expand_bbox_shape) == [192, 256]
    # the pose predictor: every weight, including those upstream's key renaming would drop
    assert set(phalp.pose_predictor.encoder.loaded) == set(FakeLartEncoder.KEYS)
    # what the backend gets back
    assert models.device == "cuda:0 (Fake RTX 4060 Laptop GPU)" and stack.current_device == 0
    assert models.mesh_faces.shape == (13776, 3)
    assert progress[0] == "checking model files" and any("HMR 2.0" in p for p in progress)


def test_neural_renderer_is_built_only_when_selected_with_the_same_near_and_far(cfg, stack):
    cfg.depth_renderer = "nmr"
    install_models(cfg)
    models = loader.load_models(cfg, lambda _: None)
    [renderer] = stack.renderers
    assert renderer["anti_aliasing"] is False and (renderer["near"], renderer["far"]) == (0.1, 100.0)
    assert renderer["image_size"] == renderer["orig_size"] == models.phalp.HMAR.crop_size
    assert models.phalp.HMAR.depth_renderer == "nmr"


def test_vitdet_is_loaded_from_phalps_config_file_and_the_local_checkpoint(cfg, stack, tmp_path):
    cfg.detector = "vitdet"
    install_models(cfg)
    loader.load_models(cfg, lambda _: None)
    (detector_cfg,) = stack.detector_configs
    vitdet_path = str(tmp_path / "site-packages" / "phalp" / "configs" / "cascade_mask_rcnn_vitdet_h_75ep.py")
    assert stack.zoo_requests == [(vitdet_path, False)]
    assert detector_cfg.train.init_checkpoint.endswith("cascade_mask_rcnn_vitdet_h/model_final_f05665.pkl")
    assert [p.test_score_thresh for p in detector_cfg.model.roi_heads.box_predictors] == [0.5, 0.5, 0.5]


def test_imports_see_a_sandbox_home_and_global_side_effects_are_undone(cfg, stack, tmp_path):
    install_models(cfg)
    root = logging.getLogger()
    handlers, filters, stdout = list(root.handlers), list(warnings.filters), sys.stdout
    print_options = np.get_printoptions()
    os.environ.pop("PYOPENGL_PLATFORM", None)
    loader.load_models(cfg, lambda _: None)
    sandbox = str(tmp_path / "cache" / SANDBOX_DIR_NAME)
    assert stack.home_at_import == {"phalp.configs.base": sandbox, "hmr2.configs": sandbox}
    assert os.environ["HOME"] == str(tmp_path / "user-home")
    assert root.handlers == handlers and warnings.filters == filters and sys.stdout is stdout
    assert np.get_printoptions() == print_options and "PYOPENGL_PLATFORM" not in os.environ
    assert os.environ["PYTHONBREAKPOINT"] == "0" and os.environ["FVCORE_CACHE"] == str(tmp_path / "cache" / "detectron2")


def test_a_truncated_hmr2_checkpoint_fails_the_load_instead_of_running_with_random_weights(cfg, stack):
    install_models(cfg, hmr2_keys=tuple(k for k in HMR2_WEIGHT_KEYS if not k.startswith("backbone.")))
    with pytest.raises(BackendUnavailable, match="lacks 1 HMR 2.0 weights.*backbone"):
        loader.load_models(cfg, lambda _: None)


def test_the_fake_stack_would_have_downloaded_had_the_loader_let_it(cfg, stack):
    # Guards the guard: upstream's HMAR constructor downloads ImageNet weights.
    import phalp.models.hmar.hmar as hmar_module

    from tests.fakes.phalp_api import Human4DConfig

    with pytest.raises(AssertionError, match="network"):
        hmar_module.HMAR(Human4DConfig())
    assert RESNET_URL.startswith("https://")


def test_upstream_key_renaming_would_drop_the_pose_predictors_input_layer(cfg, stack):
    # Documents why the loader does not call Pose_transformer_v2.load_weights.
    install_models(cfg)
    from tests.fakes.phalp_api import Pose_transformer_v2

    predictor = Pose_transformer_v2(None, SimpleNamespace(HMAR=SimpleNamespace(smpl=None)))
    weights = next(f.path for f in load_manifest(cfg).files if f.key == "phalp_pose_predictor_weights")
    predictor.load_weights(str(weights))
    assert "pose_shape_encoder.0.weight" not in predictor.encoder.loaded


@pytest.mark.parametrize(("precision", "retry"), [("fp32", "fp16"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_configured_precision_reaches_hmr2_and_an_oom_retry_lowers_only_full_precision(cfg, stack, precision, retry):
    cfg.precision = precision
    install_models(cfg)
    models = loader.load_models(cfg, lambda _: None)
    sampler = models.phalp.HMAR
    assert sampler.precision == precision
    models.runtime.set_low_memory(True)
    assert sampler.precision == retry  # half the activation memory on the retry
    models.runtime.set_low_memory(False)
    assert sampler.precision == precision


def test_fp16_on_the_cpu_is_refused_but_bf16_is_allowed(cfg):
    cfg.device, cfg.precision = "cpu", "fp16"
    with pytest.raises(ConfigError, match="bf16 runs on the CPU"):
        loader.check_settings(cfg)
    cfg.precision = "bf16"
    loader.check_settings(cfg)


def test_the_batched_detector_prepares_each_image_as_phalps_predictor_and_keeps_their_order(stack):
    from daemon.processing.backends.phalp import batched

    seen_batches = []

    class Model:
        def parameters(self):
            yield SimpleNamespace(device=SimpleNamespace(type="cuda"))

        def __call__(self, inputs):
            seen_batches.append(inputs)
            return [{"instances": f"image {int(i['image'][0, 0, 0])}"} for i in inputs]

    halve = SimpleNamespace(apply_image=lambda image: image[::2, ::2])
    predictor = SimpleNamespace(model=Model(), aug=lambda aug_input: halve, input_format="RGB")
    images = []
    for n in range(9):
        image = np.zeros((40, 60, 3), dtype=np.uint8)
        image[0, 0, 2] = n  # BGR: the red channel, first after the flip to RGB
        images.append(image)
    outputs = batched.detect_images(predictor, images, "fp32")
    assert [o["instances"] for o in outputs] == [f"image {n}" for n in range(9)]
    assert [len(b) for b in seen_batches] == [4, 4, 1]  # chunks of MAX_IMAGES_PER_BATCH
    first = seen_batches[0][0]
    assert first["image"].shape == (3, 20, 30) and first["image"].dtype == np.float32  # resized, CHW, float
    assert (first["height"], first["width"]) == (40, 60)  # the original size, for the output boxes
    assert batched.detect_images(predictor, [], "fp32") == []
