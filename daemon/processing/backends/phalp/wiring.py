"""PHALP + HMR 2.0 built for streaming: local files only, no renderer, no unused models.

Imported only by ``loader.load_models`` after its checks, inside the import sandbox: this is
the one module that imports PHALP, 4D-Humans and detectron2 (and, through ``texture``, the depth renderer).

What differs from 4D-Humans' ``track.py`` (``HMR2_4dhuman`` + ``HMR2023TextureSampler``),
reference §1 and §2.7:

- ``cached_download_from_drive`` is a no-op and HMR 2.0 is built from the checkpoint path in
  ``configs/models.yaml`` instead of ``download_models()``/``load_hmr2()``; the old HMAR is built
  without its ImageNet ResNet-50 download (those weights are overwritten or unused anyway);
- no visualizer, no HMR2 mesh/skeleton renderers (each opens an EGL context), no ground-truth
  box detector (``detector_x``), no HMR2 discriminator, and the old HMAR's ResNet, texture and
  SMPL heads are dropped after loading (HMR 2.0 replaces them);
- the detector weights come from a local file, with our score threshold;
- HMR 2.0 and the detector can run under fp16/bf16 autocast (upstream inference is fp32);
- detection and HMR 2.0 run batched over windows of frames (``batched``, ``window``).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import phalp
import torch
from detectron2 import model_zoo
from detectron2.config import LazyConfig
from hmr2.configs import get_config
from hmr2.datasets.utils import expand_bbox_to_aspect_ratio
from hmr2.models import HMR2
from omegaconf import DictConfig, OmegaConf
from phalp.configs.base import FullConfig
from phalp.models.hmar import hmar as hmar_module
from phalp.models.predictor import Pose_transformer_v2
from phalp.trackers.PHALP import PHALP
from phalp.utils.utils_detectron2 import DefaultPredictor_Lazy

from daemon.processing.backends.base import LoadProgress
from daemon.processing.backends.phalp import weights
from daemon.processing.backends.phalp.batched import detect_images, hmr_over_crops
from daemon.processing.backends.phalp.loader import BuildRequest, LoadedModels
from daemon.processing.backends.phalp.precision import precision_of
from daemon.processing.backends.phalp.texture import HMR2TextureSampler
from daemon.errors import BackendUnavailable
from daemon.log import get_logger

log = get_logger(__name__)

HMR2_BBOX_SHAPE = (192, 256)  # (width, height) of HMR 2.0's ViT input; Human4DConfig.expand_bbox_shape
MASKRCNN_LAZY_CONFIG = "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ.py"
VITDET_LAZY_CONFIG = Path(phalp.__file__).parent / "configs" / "cascade_mask_rcnn_vitdet_h_75ep.py"
STAGE_SCORE_THRESHOLD = 0.5  # PHALP's per-stage detector threshold; low_th_c filters after it
MASKRCNN_NMS_THRESHOLD = 0.4  # as PHALP.setup_detectron2
HMR2_LEARNED_PREFIXES = ("backbone.", "smpl_head.")  # weights HMR2 cannot work without


def build_models(request: BuildRequest, progress: LoadProgress) -> LoadedModels:
    phalp_cfg = phalp_config(request)
    with weights.lean_torch_load(torch):
        tracker = StreamingPhalp(phalp_cfg, request, progress)
    sampler: HMR2TextureSampler = tracker.HMAR
    runtime = TorchRuntime(sampler, precision=precision_of(request.cfg), device=request.device)
    return LoadedModels(
        phalp=tracker,
        smpl_model=SmplEvaluator(sampler.smpl, request.device),
        runtime=runtime,
        device=_device_label(request.device),
        versions=_versions(),
        mesh_faces=np.asarray(sampler.smpl.faces, dtype=np.int64),
    )


def phalp_config(request: BuildRequest) -> DictConfig:
    """PHALP's FullConfig with every path explicit and our tracking settings."""
    cfg, paths = request.cfg, {key: str(path) for key, path in request.paths.items()}
    overrides = {
        "device": request.device,
        # track() and default_setup() would write here; neither runs, but keep it ours.
        "video": {"output_dir": str(request.sandbox / "phalp-output")},
        "phalp": {
            "detector": cfg.detector,
            "low_th_c": cfg.detection_score_threshold,
            "small_w": cfg.min_person_width_px,
            "small_h": cfg.min_person_height_px,
            "max_age_track": cfg.max_age_track,
            "n_init": cfg.n_init,
        },
        "render": {"enable": False},
        "hmr": {"hmar_path": paths["phalp_hmar_weights"]},
        "pose_predictor": {
            "config_path": paths["phalp_pose_predictor_config"],
            "weights_path": paths["phalp_pose_predictor_weights"],
            "mean_std": paths["phalp_mean_std"],
        },
        # smplx accepts the model file itself as model_path, so one SMPL file serves both stacks.
        "SMPL": {
            "MODEL_PATH": paths["smpl_neutral"],
            "JOINT_REGRESSOR_EXTRA": paths["phalp_smpl_to_j19"],
            "TEXTURE": paths["phalp_texture"],
        },
        "MODEL": {"SMPL_HEAD": {"SMPL_MEAN_PARAMS": paths["phalp_smpl_mean_params"]}},
    }
    merged = OmegaConf.merge(OmegaConf.structured(FullConfig), overrides)
    OmegaConf.set_struct(merged, False)
    merged.expand_bbox_shape = list(HMR2_BBOX_SHAPE)
    return merged


class StreamingPhalp(PHALP):
    """PHALP with HMR 2.0, as 4D-Humans' ``HMR2_4dhuman``, minus downloads and unused parts."""

    def __init__(self, cfg: DictConfig, request: BuildRequest, progress: LoadProgress) -> None:
        # Set before PHALP.__init__, which calls the setup_* hooks below.
        self.posed_request = request
        self.posed_progress = progress
        super().__init__(cfg)

    def cached_download_from_drive(self, additional_urls: Any = None) -> None:
        """Never download: the loader checked every file before we got here."""

    def setup_hmr(self) -> None:
        self.posed_progress("HMR 2.0 (ViT-H) and PHALP's appearance model")
        with weights.built_on(torch, self.posed_request.device):
            self.HMAR = weights.place_on(build_texture_sampler(self.cfg, self.posed_request), self.posed_request.device)

    def setup_predictor(self) -> None:
        self.posed_progress("PHALP pose predictor")
        with weights.built_on(torch, self.posed_request.device):
            self.pose_predictor = Pose_transformer_v2(self.cfg, self)
        load_pose_predictor_weights(self.pose_predictor, self.cfg.pose_predictor.weights_path)
        weights.place_on(self.pose_predictor, self.posed_request.device)

    def setup_detectron2(self) -> None:
        self.posed_progress(f"person detector ({self.cfg.phalp.detector})")
        with weights.built_on(torch, self.posed_request.device):  # its pickle is read after the model is built
            self.detector = build_detector(self.cfg.phalp.detector, self.posed_request)
        weights.release_host_memory()
        # setup_detectron2_with_RPN is skipped: its X101 detector serves ground-truth boxes only.

    def setup_visualizer(self) -> None:
        self.visualizer = None  # rendering is off; building it would open an EGL context

    def default_setup(self) -> None:
        """track()'s output folders; we never write them."""

    def get_detections(self, image, frame_name, t_, additional_data=None, measurments=None):
        """PHALP's detections with boxes padded to HMR 2.0's aspect ratio, as HMR2_4dhuman does."""
        bbox, _, masks, scores, classes, gt_tids, gt_annots = super().get_detections(image, frame_name, t_, additional_data, measurments)
        padded = expand_bbox_to_aspect_ratio(bbox, self.cfg.expand_bbox_shape)
        return bbox, padded, masks, scores, classes, gt_tids, gt_annots

    # window.WindowModels: perception for a window of frames, replayed into the methods above

    def detect_window(self, images):
        return detect_images(self.detector, images, self.HMAR.precision)

    def features_window(self, crops_per_frame):
        return hmr_over_crops(self.HMAR, crops_per_frame, torch.device(self.cfg.device))

    def track(self):
        raise RuntimeError("posed drives PHALP per frame (driver.py); track() keeps every frame in memory")


def build_detector(detector: str, request: BuildRequest) -> DefaultPredictor_Lazy:
    threshold = min(STAGE_SCORE_THRESHOLD, request.cfg.detection_score_threshold)
    if detector == "maskrcnn":
        lazy_cfg = model_zoo.get_config(MASKRCNN_LAZY_CONFIG, trained=False)
        lazy_cfg.model.roi_heads.box_predictor.test_score_thresh = threshold
        lazy_cfg.model.roi_heads.box_predictor.test_nms_thresh = MASKRCNN_NMS_THRESHOLD
        lazy_cfg.model.roi_heads.box_predictor.test_topk_per_image = request.cfg.max_detections
        lazy_cfg.train.init_checkpoint = str(request.paths["detector_maskrcnn"])
    else:
        lazy_cfg = LazyConfig.load(str(VITDET_LAZY_CONFIG))
        for predictor in lazy_cfg.model.roi_heads.box_predictors:
            predictor.test_score_thresh = threshold
            predictor.test_topk_per_image = request.cfg.max_detections
        lazy_cfg.train.init_checkpoint = str(request.paths["detector_vitdet"])
    return DefaultPredictor_Lazy(lazy_cfg)


def build_texture_sampler(phalp_cfg: DictConfig, request: BuildRequest) -> HMR2TextureSampler:
    hmar_old = _build_hmar_without_imagenet(phalp_cfg)
    hmar_old.load_weights(phalp_cfg.hmr.hmar_path)
    # With HMR 2.0 only the appearance encoder, the UV post-processing and the SMPL layer of
    # the old HMAR run (autoencoder_hmar, process_uv_image, get_3d_parameters); free the rest.
    hmar_old.backbone = None
    hmar_old.texture_head = None
    hmar_old.smpl_head = None
    return HMR2TextureSampler(
        hmr2=build_hmr2(request),
        hmar_old=hmar_old,
        bmap=np.load(request.paths["phalp_bmap"]),
        fmap=np.load(request.paths["phalp_fmap"]),
        precision=precision_of(request.cfg),
        depth_renderer=request.cfg.depth_renderer,
    )


def _build_hmar_without_imagenet(phalp_cfg: DictConfig):
    original = hmar_module.resnet
    # HMAR hard-codes resnet(pretrained=True), a download through torch hub; the weights are
    # overwritten by hmar_v2_weights.pth, and with HMR 2.0 the ResNet never runs at all.
    hmar_module.resnet = functools.partial(_resnet_without_weights, original)
    try:
        return hmar_module.HMAR(phalp_cfg)
    finally:
        hmar_module.resnet = original


def _resnet_without_weights(resnet, pretrained: bool = False, **kwargs):
    return resnet(pretrained=False, **kwargs)


def build_hmr2(request: BuildRequest) -> HMR2:
    """HMR 2.0 from the local checkpoint, the way load_hmr2() configures it, minus its side trips."""
    model = HMR2(hmr2_model_config(request.paths), init_renderer=False)
    _load_hmr2_weights(model, request.paths["hmr2_checkpoint"])
    return model.eval()


def hmr2_model_config(paths: dict[str, Path]):
    """The checkpoint's model config with our file paths and nothing training-only (a yacs CfgNode)."""
    model_cfg = get_config(str(paths["hmr2_model_config"]), update_cachedir=False)
    model_cfg.defrost()
    model_cfg.SMPL.MODEL_PATH = str(paths["smpl_neutral"])
    model_cfg.SMPL.JOINT_REGRESSOR_EXTRA = str(paths["hmr2_smpl_to_j19"])
    model_cfg.SMPL.MEAN_PARAMS = str(paths["hmr2_smpl_mean_params"])
    if model_cfg.MODEL.BACKBONE.TYPE == "vit" and "BBOX_SHAPE" not in model_cfg.MODEL:
        model_cfg.MODEL.BBOX_SHAPE = [HMR2_BBOX_SHAPE[0], HMR2_BBOX_SHAPE[1]]
    if model_cfg.MODEL.BACKBONE.get("PRETRAINED_WEIGHTS"):
        model_cfg.MODEL.BACKBONE.PRETRAINED_WEIGHTS = ""  # a training-time file; the checkpoint has it all
    if "LOSS_WEIGHTS" in model_cfg and model_cfg.LOSS_WEIGHTS.get("ADVERSARIAL", 0) > 0:
        model_cfg.LOSS_WEIGHTS.ADVERSARIAL = 0.0  # no Discriminator: training only
    model_cfg.freeze()
    return model_cfg


def _load_hmr2_weights(model: HMR2, checkpoint: Path) -> None:
    # A Lightning checkpoint pickles its hyper-parameters (a yacs CfgNode) next to the weights.
    result = weights.load_weights_into(torch, model, checkpoint, select=_without_discriminator)
    # load_hmr2 uses strict=False too, which would let a truncated file load silently.
    lacking = [key for key in result.missing_keys if key.startswith(HMR2_LEARNED_PREFIXES)]
    if lacking:
        raise BackendUnavailable(
            f"{checkpoint} lacks {len(lacking)} HMR 2.0 weights (e.g. {', '.join(lacking[:3])}): the file is truncated "
            "or not the HMR 2.0 checkpoint. Fix: delete it and run scripts/fetch-models.sh"
        )
    if result.unexpected_keys:
        log.warning("phalp.hmr2_unexpected_weights", count=len(result.unexpected_keys), first=result.unexpected_keys[:3])


def _without_discriminator(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if not key.startswith("discriminator.")}


def load_pose_predictor_weights(predictor: Pose_transformer_v2, path: str) -> None:
    """Load the pose predictor's checkpoint by stripping the ``encoder.`` prefix.

    Upstream's ``load_weights`` renames keys with ``str.replace("encoder.", "")``, which also
    turns ``encoder.pose_shape_encoder.0.weight`` into ``pose_shape_0.weight``; with
    ``strict=False`` those weights are then skipped without a word and the predictor's input
    layer keeps its random initialisation (different in every process: nothing seeds it).
    """
    result = weights.load_weights_into(torch, predictor.encoder, Path(path), select=_encoder_weights)
    if result.missing_keys:
        log.warning("phalp.pose_predictor_missing_weights", count=len(result.missing_keys), first=result.missing_keys[:3])


def _encoder_weights(state: dict[str, Any]) -> dict[str, Any]:
    prefix = "encoder."
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


class SmplEvaluator:
    """PHALP's SMPL layer (the one behind ``3d_joints``) as a numpy function for the converter."""

    def __init__(self, smpl_layer: Any, device: str) -> None:
        self._smpl = smpl_layer
        self._device = torch.device(device)

    def __call__(
        self, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray, *, with_vertices: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        def tensor(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float32, device=self._device)

        with torch.no_grad():
            out = self._smpl(global_orient=tensor(global_orient), body_pose=tensor(body_pose), betas=tensor(betas), pose2rot=False)
        joints = out.joints.cpu().numpy()
        return joints, out.vertices.cpu().numpy() if with_vertices else None


class TorchRuntime:
    """Low-memory mode and cache release for the backend, without it importing torch."""

    def __init__(self, sampler: HMR2TextureSampler, *, precision: str, device: str) -> None:
        self._sampler = sampler
        self._precision = precision
        self._cuda = device.startswith("cuda")
        self.oom_errors: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)

    def set_low_memory(self, enabled: bool) -> None:
        # A retry after an OOM runs HMR 2.0 and the detector in fp16 (about half the activation
        # memory), unless a reduced precision was configured anyway.
        reduce = enabled and self._cuda and self._precision == "fp32"
        self._sampler.precision = "fp16" if reduce else self._precision

    def release_cached_memory(self) -> None:
        if self._cuda:
            torch.cuda.empty_cache()


def _device_label(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _versions() -> dict[str, str]:
    versions = {}
    for distribution in ("phalp", "hmr2", "torch", "detectron2", "neural-renderer-pytorch"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = "unknown"
    return versions
