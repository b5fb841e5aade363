"""Fakes of the PHALP / 4D-Humans API the phalp backend drives, for tests without a GPU stack.

Mirrored from PHALP 96f7e6c and 4D-Humans 6ec7965 (shared/reference/phalp-hmr2-api.md):

- names and argument order: ``PHALP.get_detections(image, frame_name, t_, additional_data,
  measurments)``, ``run_additional_models(...)``, ``get_human_features(image, seg_mask, bbox,
  bbox_pad, score, frame_name, cls_id, t_, measurments, gt, ann, extra_data)``,
  ``setup_deepsort()``, ``Tracker.predict()``, ``Tracker.update(detections, frame_t, image_name,
  shot)``, ``Track``, ``TrackState``, ``Detection``, ``NearestNeighborDistanceMetric``;
- the detection dict (§4.1): keys, shapes, dtypes and units, including ``Detection`` replacing
  ``scale`` and adding ``xy``; ``get_detections`` crashing on ``additional_data=None``;
- track bookkeeping (§2.4): hits, age, time_since_update, Tentative -> Confirmed at n_init
  hits, Tentative deleted on its first miss, Confirmed deleted once time_since_update >
  max_age, a history deque of track_history detections (seeded with 7 references to the first),
  prediction deques of n_init + 1, and ``tracked_cost`` growing by one entry per update;
- the camera maths of ``get_3d_parameters`` (§4.3) and the 229-d pose vector layout.

Simplified on purpose (and so never asserted about the real code):

- detections come from a scripted scene at the time stamped into the frame (``FakeScene.image(t)``),
  or, for frames without a stamp, at the detector's call count; the detector is reached through
  ``self.detector(image)`` and crops through ``get_croped_image``, as upstream, so the window
  driver's replay of both is exercised;
- association pairs a detection with the live track of the same scripted identity (carried in
  ``extra_data``, which is what ``run_additional_models`` is for) instead of PHALP's cost;
- a "crop" is (centre x, centre y, side) of the padded box and "HMR2" a smooth function of it,
  "SMPL" a cheap linear stand-in, the UV
  texture is not blended, and the pose predictor extrapolates the camera linearly.
"""

# No `from __future__ import annotations` here: OmegaConf reads the annotations of the config
# dataclasses that full_config_class defines locally, which string annotations would hide.
import copy
import math
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from omegaconf import OmegaConf

UV_SHAPE = (4, 256, 256)
APPEARANCE_SIZE = 4096
SMPL_VERTEX_COUNT = 6890
SMPL_FACE_COUNT = 13776
RECENT_CALLS = 1000  # the fakes remember this many calls: enough for a test, bounded for long runs
TIME_STAMP = b"posed-t:"  # marks a fake frame that carries its scene time
RPN_WEIGHTS_URL = "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x/139653917/model_final_2d9806.pkl"


# --- configuration: phalp.configs.base.FullConfig (field names and defaults as upstream) ----


def full_config_class(cache_dir: str) -> type:
    """Build FullConfig with its defaults derived from ``cache_dir``, as upstream derives them
    from ``$HOME`` when phalp.configs.base is imported."""

    @dataclass
    class VideoConfig:
        source: str = ""
        output_dir: str = "outputs/"
        extract_video: bool = True
        start_frame: int = -1
        end_frame: int = 1300

    @dataclass
    class PHALPConfig:
        predict: str = "TPL"
        pose_distance: str = "smpl"
        distance_type: str = "EQ_019"
        alpha: float = 0.1
        low_th_c: float = 0.8
        hungarian_th: float = 100.0
        track_history: int = 7
        max_age_track: int = 50
        n_init: int = 5
        encode_type: str = "4c"
        past_lookback: int = 1
        detector: str = "vitdet"
        shot: int = 0
        start_frame: int = -1
        end_frame: int = 10
        small_w: int = 50
        small_h: int = 100

    @dataclass
    class PosePredictorConfig:
        config_path: str = f"{cache_dir}/phalp/weights/pose_predictor.yaml"
        weights_path: str = f"{cache_dir}/phalp/weights/pose_predictor.pth"
        mean_std: str = f"{cache_dir}/phalp/3D/mean_std.npy"

    @dataclass
    class HMRConfig:
        hmar_path: str = f"{cache_dir}/phalp/weights/hmar_v2_weights.pth"

    @dataclass
    class RenderConfig:
        enable: bool = True
        res: int = 256
        head_mask_path: str = f"{cache_dir}/phalp/3D/head_faces.npy"

    @dataclass
    class SMPLConfig:
        MODEL_PATH: str = f"{cache_dir}/phalp/3D/models/smpl/"
        GENDER: str = "neutral"
        MODEL_TYPE: str = "smpl"
        NUM_BODY_JOINTS: int = 23
        JOINT_REGRESSOR_EXTRA: str = f"{cache_dir}/phalp/3D/SMPL_to_J19.pkl"
        TEXTURE: str = f"{cache_dir}/phalp/3D/texture.npz"

    @dataclass
    class SMPLHeadConfig:
        TYPE: str = "basic"
        POOL: str = "max"
        SMPL_MEAN_PARAMS: str = f"{cache_dir}/phalp/3D/smpl_mean_params.npz"
        IN_CHANNELS: int = 2048

    @dataclass
    class BackboneConfig:
        TYPE: str = "resnet"
        NUM_LAYERS: int = 50
        MASK_TYPE: str = "feat"

    @dataclass
    class ModelConfig:
        IMAGE_SIZE: int = 256
        SMPL_HEAD: SMPLHeadConfig = field(default_factory=SMPLHeadConfig)
        BACKBONE: BackboneConfig = field(default_factory=BackboneConfig)

    @dataclass
    class ExtraConfig:
        FOCAL_LENGTH: int = 5000

    @dataclass
    class FullConfig:
        seed: int = 42
        track_dataset: str = "demo"
        device: str = "cuda"
        base_tracker: str = "PHALP"
        train: bool = False
        debug: bool = False
        use_gt: bool = False
        overwrite: bool = True
        verbose: bool = False
        detect_shots: bool = False
        video: VideoConfig = field(default_factory=VideoConfig)
        phalp: PHALPConfig = field(default_factory=PHALPConfig)
        pose_predictor: PosePredictorConfig = field(default_factory=PosePredictorConfig)
        hmr: HMRConfig = field(default_factory=HMRConfig)
        render: RenderConfig = field(default_factory=RenderConfig)
        SMPL: SMPLConfig = field(default_factory=SMPLConfig)
        MODEL: ModelConfig = field(default_factory=ModelConfig)
        EXTRA: ExtraConfig = field(default_factory=ExtraConfig)

    return FullConfig


FullConfig = full_config_class("/nonexistent-home/.cache")


@dataclass
class Human4DConfig(FullConfig):  # type: ignore[misc, valid-type]
    """4D-Humans track.py: FullConfig plus the ViT crop aspect ratio (width, height)."""

    expand_bbox_shape: list[int] = field(default_factory=lambda: [192, 256])


def fake_config(**phalp_overrides: Any) -> Any:
    """Type-checked like PHALP's OmegaConf config, returned as plain dataclasses (fast to read)."""
    cfg = OmegaConf.structured(Human4DConfig)
    cfg.device = "cpu"
    cfg.render.enable = False
    for key, value in phalp_overrides.items():
        cfg.phalp[key] = value
    return OmegaConf.to_object(cfg)


# --- a scripted scene ----------------------------------------------------------------------


@dataclass
class ScriptedPerson:
    identity: int
    visible: Callable[[int], bool]
    center_x: float = 160.0
    center_y: float = 120.0
    width: float = 70.0
    height: float = 180.0
    sway_px: float = 30.0  # horizontal motion amplitude
    period: int = 60
    score: float = 0.95

    def box_at(self, t: int) -> np.ndarray:
        cx = self.center_x + self.sway_px * math.sin(2 * math.pi * t / self.period)
        return np.array(
            [cx - self.width / 2, self.center_y - self.height / 2, cx + self.width / 2, self.center_y + self.height / 2],
            dtype=np.float32,
        )


@dataclass
class FakeScene:
    people: list[ScriptedPerson]
    height: int = 240
    width: int = 320

    def detections(self, t: int) -> list[ScriptedPerson]:
        return [person for person in self.people if person.visible(t)]

    def image(self, t: int | None = None) -> np.ndarray:
        """A blank frame; with ``t`` it carries scene time ``t`` for the scripted detector."""
        image = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        if t is not None:
            image[0, : len(TIME_STAMP), 0] = np.frombuffer(TIME_STAMP, dtype=np.uint8)
            image[0, len(TIME_STAMP) : len(TIME_STAMP) + 4, 0] = np.frombuffer(int(t).to_bytes(4, "big"), dtype=np.uint8)
        return image


def stamped_time(image: np.ndarray) -> int | None:
    """The scene time FakeScene.image(t) wrote into the frame, or None (a decoded video frame)."""
    row = image[0, : len(TIME_STAMP) + 4, 0]
    if len(row) < len(TIME_STAMP) + 4 or bytes(row[: len(TIME_STAMP)]) != TIME_STAMP:
        return None
    return int.from_bytes(bytes(row[len(TIME_STAMP) :]), "big")


class ScriptedDetector:
    """Stands in for detectron2's predictor: ``detector(image)`` -> ``{"instances": ...}``.

    The scene time is the one stamped into the image; frames without a stamp (a decoded video)
    are numbered by call, so they must be detected once each, in order: ``restart`` at each video.
    """

    def __init__(self, scene: "FakeScene") -> None:
        self.scene = scene
        self.unstamped_calls = 0
        self.times: deque[int] = deque(maxlen=RECENT_CALLS)  # scene times detected, in call order

    def restart(self) -> None:
        self.unstamped_calls = 0

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        t = stamped_time(image)
        if t is None:
            t, self.unstamped_calls = self.unstamped_calls, self.unstamped_calls + 1
        self.times.append(t)
        people = self.scene.detections(t)
        height, width = image.shape[:2]
        instances = SimpleNamespace(
            boxes=np.array([p.box_at(t) for p in people], dtype=np.float32).reshape(-1, 4),
            masks=np.zeros((len(people), height, width), dtype=bool),
            scores=np.array([p.score for p in people], dtype=np.float32),
            classes=np.zeros(len(people), dtype=np.int64),
            identities=[p.identity for p in people],
        )
        return {"instances": instances}


# --- small maths, written independently of the code under test ---------------------------


def rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


# An upright body in SMPL's frame (metres, y up, facing +z): OpenPose BODY_25 then J19.
_BODY_25 = [
    (0, 0.60, 0.10), (0, 0.45, 0), (-0.18, 0.42, 0), (-0.20, 0.15, 0), (-0.22, -0.10, 0),
    (0.18, 0.42, 0), (0.20, 0.15, 0), (0.22, -0.10, 0), (0, -0.05, 0), (-0.09, -0.08, 0),
    (-0.10, -0.50, 0), (-0.10, -0.90, 0), (0.09, -0.08, 0), (0.10, -0.50, 0), (0.10, -0.90, 0),
    (-0.03, 0.63, 0.08), (0.03, 0.63, 0.08), (-0.07, 0.60, 0), (0.07, 0.60, 0),
    (0.10, -0.95, 0.15), (0.13, -0.95, 0.12), (0.10, -0.95, -0.05),
    (-0.10, -0.95, 0.15), (-0.13, -0.95, 0.12), (-0.10, -0.95, -0.05),
]  # fmt: skip
_J19_FROM_BODY_25 = [11, 10, 9, 12, 13, 14, 4, 3, 2, 5, 6, 7, 1, 0, 8, 1, 8, 0, 0]
_J19_OFFSETS = np.zeros((19, 3))
_J19_OFFSETS[13] = (0, 0.15, -0.1)  # head top above the nose
_J19_OFFSETS[15] = (0, -0.05, 0)  # thorax below the neck
_J19_OFFSETS[16] = (0, 0.25, 0)  # spine above the pelvis
_J19_OFFSETS[17] = (0, -0.08, -0.02)  # jaw below the nose
TEMPLATE_JOINTS = np.concatenate([np.array(_BODY_25), np.array(_BODY_25)[_J19_FROM_BODY_25] + _J19_OFFSETS])  # (44, 3)
_TEMPLATE_VERTICES = np.random.default_rng(7).uniform(-0.3, 0.3, size=(SMPL_VERTEX_COUNT, 3))


@dataclass
class FakeSmplOutput:
    joints: np.ndarray  # (B, 44, 3)
    global_orient: np.ndarray
    size: np.ndarray

    @property
    def vertices(self) -> np.ndarray:  # (B, 6890, 3), computed on demand: most callers never look
        return np.einsum("bij,bkj->bki", self.global_orient, _TEMPLATE_VERTICES[None] * self.size)


class FakeSmplLayer:
    """Stand-in for PHALP's ``SMPL(SMPLLayer)``: rotation-matrix input, 44 joints, 6890 vertices."""

    faces = np.arange(SMPL_FACE_COUNT * 3, dtype=np.int64).reshape(SMPL_FACE_COUNT, 3) % SMPL_VERTEX_COUNT

    def __call__(self, global_orient=None, body_pose=None, betas=None, pose2rot=True, **_: Any) -> FakeSmplOutput:
        assert pose2rot is False, "PHALP always calls its SMPL layer with rotation matrices"
        global_orient = np.asarray(global_orient, dtype=np.float64)
        body_pose = np.asarray(body_pose, dtype=np.float64)
        betas = np.asarray(betas, dtype=np.float64)
        size = 1.0 + 0.02 * betas[:, :1, None]  # (B, 1, 1)
        bend = 0.1 * (body_pose - np.eye(3)).reshape(len(body_pose), -1)[:, :132].reshape(-1, 44, 3)
        local = TEMPLATE_JOINTS[None] * size + bend
        joints = np.einsum("bij,bkj->bki", global_orient[:, 0], local)
        return FakeSmplOutput(joints=joints, global_orient=global_orient[:, 0], size=size)


class FakeRuntime:
    """The device runtime a PhalpBackend gets from its loader, on the CPU: out of memory is
    MemoryError; low-memory switches are recorded, nothing is cached to release."""

    oom_errors = (MemoryError,)

    def __init__(self) -> None:
        self.low_memory: list[bool] = []

    def set_low_memory(self, enabled: bool) -> None:
        self.low_memory.append(enabled)

    def release_cached_memory(self) -> None:
        pass


class FakeSmplModel:
    """The converter's ``SmplModel`` over the same fake layer (as wiring.SmplEvaluator wraps PHALP's)."""

    def __init__(self) -> None:
        self.layer = FakeSmplLayer()
        self.calls = 0

    def __call__(self, global_orient, body_pose, betas, *, with_vertices: bool):
        self.calls += 1
        out = self.layer(global_orient=global_orient, body_pose=body_pose, betas=betas, pose2rot=False)
        return out.joints, out.vertices if with_vertices else None


def smpl_to_pose_camera_vector(smpl_params: dict[str, np.ndarray], camera: np.ndarray) -> np.ndarray:
    """phalp.utils.utils.smpl_to_pose_camera_vector, numpy in and out: (1, 229)."""
    location = np.array(camera, dtype=np.float64).reshape(1, -1)
    location[:, 2] = location[:, 2] / 200.0
    return np.concatenate(
        [
            smpl_params["global_orient"].reshape(1, -1),
            smpl_params["body_pose"].reshape(1, -1),
            smpl_params["betas"].reshape(1, -1),
            location,
        ],
        axis=1,
    )


def expand_bbox_to_aspect_ratio(bbox: np.ndarray, target_aspect_ratio=None) -> np.ndarray:
    """hmr2.datasets.utils.expand_bbox_to_aspect_ratio: grow (N, 4) xyxy boxes to width:height."""
    if target_aspect_ratio is None or len(bbox) == 0:
        return bbox
    target_w, target_h = target_aspect_ratio
    bbox = np.asarray(bbox, dtype=np.float64)
    center = (bbox[:, :2] + bbox[:, 2:]) / 2
    w, h = bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1]
    taller = h / w >= target_h / target_w
    new_w = np.where(taller, np.maximum(h * target_w / target_h, w), w)
    new_h = np.where(taller, h, np.maximum(w * target_h / target_w, h))
    half = np.stack([new_w, new_h], axis=1) / 2
    return np.concatenate([center - half, center + half], axis=1)


# --- HMAR: "HMR2" outputs and PHALP's get_3d_parameters ----------------------------------


class FakeHMAR:
    """What PHALP calls on ``self.HMAR``: forward, autoencoder_hmar, get_3d_parameters, smpl."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.smpl = FakeSmplLayer()
        self.batch_sizes: deque[int] = deque(maxlen=RECENT_CALLS)  # crops per forward call: what batching changes

    def __call__(self, crops: np.ndarray, **kwargs: Any) -> dict[str, Any]:
        return self.forward(crops, **kwargs)  # as torch.nn.Module.__call__: an instance's forward wins

    def forward(self, crops: np.ndarray, **_: Any) -> dict[str, Any]:
        """``crops``: (B, 3) of (centre x, centre y, side) of each padded box, from get_croped_image,
        instead of (B, 4, 256, 256) images. Outputs are smooth functions of where the person is."""
        self.batch_sizes.append(len(crops))
        x, y, side = crops[:, 0], crops[:, 1], crops[:, 2]
        batch = len(crops)
        global_orient = np.stack([rotation_x(math.pi) @ rotation_y(0.3 * math.sin(0.05 * a + 0.01 * b)) for a, b in zip(x, y)])
        bend = 0.2 * np.sin(0.02 * x[:, None] + np.arange(23)[None] + 0.01 * y[:, None])  # (B, 23) about z
        body_pose = np.zeros((batch, 23, 3, 3))
        body_pose[..., 0, 0] = body_pose[..., 1, 1] = np.cos(bend)
        body_pose[..., 0, 1], body_pose[..., 1, 0] = -np.sin(bend), np.sin(bend)
        body_pose[..., 2, 2] = 1.0
        betas = np.stack([np.full(10, 0.001 * s) for s in side])
        scale = 0.9 + 0.05 * np.sin(0.01 * x)
        pred_cam = np.stack([scale, 0.01 * np.cos(0.02 * x), 0.02 * np.sin(0.02 * y)], axis=1)
        return {
            "uv_vector": np.zeros((batch, *UV_SHAPE), dtype=np.float32),
            "pose_smpl": {
                "global_orient": global_orient[:, None].astype(np.float32),
                "body_pose": body_pose.astype(np.float32),
                "betas": betas.astype(np.float32),
            },
            "pred_cam": pred_cam.astype(np.float32),
        }

    def autoencoder_hmar(self, x: np.ndarray, en: bool = True) -> np.ndarray:
        return np.zeros((len(x), APPEARANCE_SIZE), dtype=np.float32)

    def get_3d_parameters(self, pred_smpl_params, pred_cam, center=np.array([128, 128]), img_size=256, scale=None):
        """PHALP's maths (hmar.py:104-133): full-image camera, 45 joints, 2D in [0, img_size]."""
        focal = float(self.cfg.EXTRA.FOCAL_LENGTH)
        pred_cam = np.asarray(pred_cam, dtype=np.float64)
        scale = np.ones((len(pred_cam), 1)) * 256 if scale is None else np.asarray(scale, dtype=np.float64)
        depth = 2 * focal / (pred_cam[:, 0] * scale[:, 0] + 1e-9)
        translation = np.stack([pred_cam[:, 1], pred_cam[:, 2], depth], axis=1)
        translation[:, :2] += (np.asarray(center, dtype=np.float64) - img_size / 2.0) * translation[:, [2]] / focal
        out = self.smpl(**{k: np.asarray(v, dtype=np.float64) for k, v in pred_smpl_params.items()}, pose2rot=False)
        joints = np.concatenate([out.joints, np.zeros((len(pred_cam), 1, 3))], axis=1)  # joint 44: SMPL origin
        points = joints + translation[:, None]
        projected = (focal / img_size) * points[..., :2] / points[..., 2:3]
        keypoints_2d = (projected + 0.5) * img_size
        return pred_smpl_params, keypoints_2d, joints, translation


# --- deep_sort_: Detection, Track, Tracker, metric -------------------------------------


class Detection:
    """deep_sort_.detection.Detection: wraps the dict and mutates it (adds 'xy', replaces 'scale')."""

    def __init__(self, detection_data: dict[str, Any]) -> None:
        self.detection_data = detection_data
        self.tlwh = np.asarray(detection_data["bbox"], dtype=np.float64)
        height, width = (float(v) for v in detection_data["size"])
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        # PHALP's quirk: (x + w) / 2, not x + w / 2 (detection.py:40)
        self.xy = [((self.tlwh[0] + self.tlwh[2]) / 2.0 + left) / side, ((self.tlwh[1] + self.tlwh[3]) / 2.0 + top) / side]
        detection_data["xy"] = self.xy
        detection_data["scale"] = float(max(detection_data["scale"])) / side


class TrackState:
    Tentative = 1
    Confirmed = 2
    Deleted = 3


class Track:
    def __init__(self, cfg, track_id, n_init, max_age, detection_data, detection_id=None, dims=None):
        self.cfg = cfg
        self.track_id = track_id
        self.hits = 1
        self.age = 1
        self.time_since_update = 0
        self.time_init = detection_data["time"]
        self.state = TrackState.Tentative
        self._n_init = n_init
        self._max_age = max_age
        history: deque = deque(maxlen=cfg.phalp.track_history)
        history.extend([detection_data] * cfg.phalp.track_history)  # the same dict, as upstream
        prediction_length = cfg.phalp.n_init + 1
        self.track_data = {
            "history": history,
            "prediction": {
                key: deque([detection_data[key]], maxlen=prediction_length) for key in ("appe", "loca", "pose")
            }
            | {"uv": deque([copy.deepcopy(detection_data["uv"])], maxlen=prediction_length)},
        }
        if len(detection_data["annotations"]) > 0:
            self.state = TrackState.Confirmed

    def predict(self, phalp_tracker, increase_age=True):
        if increase_age:
            self.age += 1
            self.time_since_update += 1

    def add_predicted(self, appe=None, pose=None, loca=None, uv=None):
        last = self.track_data["history"][-1]
        for key, value in (("appe", appe), ("loca", loca), ("pose", pose)):
            self.track_data["prediction"][key].append(copy.deepcopy(value if value is not None else last[key]))

    def update(self, detection, detection_id, shot):
        self.track_data["history"].append(copy.deepcopy(detection.detection_data))
        self.track_data["prediction"]["uv"].append(self.track_data["history"][-1]["uv"])  # upstream blends here
        self.hits += 1
        self.time_since_update = 0
        if self.state == TrackState.Tentative and self.hits >= self._n_init:
            self.state = TrackState.Confirmed
        if len(detection.detection_data["annotations"]) > 0:
            self.state = TrackState.Confirmed

    def mark_missed(self):
        if self.state == TrackState.Tentative:
            self.state = TrackState.Deleted
        elif self.time_since_update > self._max_age:
            self.state = TrackState.Deleted

    def is_tentative(self):
        return self.state == TrackState.Tentative

    def is_confirmed(self):
        return self.state == TrackState.Confirmed

    def is_deleted(self):
        return self.state == TrackState.Deleted


class NearestNeighborDistanceMetric:
    def __init__(self, cfg, matching_threshold, budget=None):
        self.cfg = cfg
        self.matching_threshold = matching_threshold
        self.budget = budget
        self.samples: dict[int, list] = {}

    def partial_fit(self, appe_features, loca_features, pose_features, uv_maps, targets, active_targets):
        for sample in zip(appe_features, loca_features, pose_features, uv_maps, targets):
            target = sample[-1]
            self.samples.setdefault(target, []).append(list(sample[:-1]))
            if self.budget is not None:
                self.samples[target] = self.samples[target][-self.budget :]
        self.samples = {k: self.samples[k] for k in active_targets}


class Tracker:
    def __init__(self, cfg, metric, max_age=30, n_init=3, phalp_tracker=None, dims=None):
        self.cfg = cfg
        self.metric = metric
        self.max_age = max_age
        self.n_init = n_init
        self.tracks: list[Track] = []
        self._next_id = 1
        self.tracked_cost: dict[int, list] = {}
        self.phalp_tracker = phalp_tracker

    def predict(self):
        for track in self.tracks:
            track.predict(self.phalp_tracker, increase_age=True)

    def update(self, detections, frame_t, image_name, shot):
        matches, unmatched_tracks, unmatched_detections, statistics = self._match(detections)
        self.tracked_cost[frame_t] = [statistics[0], matches, unmatched_tracks, unmatched_detections]
        for track_idx, detection_idx in matches:
            self.tracks[track_idx].update(detections[detection_idx], detection_idx, shot)
        self.accumulate_vectors([m[0] for m in matches], features=self.cfg.phalp.predict)
        for track_idx in unmatched_tracks:
            self.tracks[track_idx].mark_missed()
        self.accumulate_vectors(unmatched_tracks, features=self.cfg.phalp.predict)
        for detection_idx in unmatched_detections:
            self._initiate_track(detections[detection_idx], detection_idx)
        self.tracks = [t for t in self.tracks if not t.is_deleted()]
        live = [t for t in self.tracks if t.is_confirmed() or t.is_tentative()]
        self.metric.partial_fit(
            [t.track_data["prediction"]["appe"][-1] for t in live],
            [t.track_data["prediction"]["loca"][-1] for t in live],
            [t.track_data["prediction"]["pose"][-1] for t in live],
            [t.track_data["prediction"]["uv"][-1] for t in live],
            [t.track_id for t in live],
            [t.track_id for t in live],
        )
        return matches

    def _match(self, detections):
        candidates = [i for i, t in enumerate(self.tracks) if t.is_confirmed() or t.is_tentative()]
        identity_of = {self.tracks[i].track_data["history"][-1]["extra_data"]: i for i in candidates}
        matches, matched_tracks = [], set()
        unmatched_detections = []
        for detection_idx, detection in enumerate(detections):
            track_idx = identity_of.get(detection.detection_data["extra_data"])
            if track_idx is None or track_idx in matched_tracks:
                unmatched_detections.append(detection_idx)
            else:
                matches.append((track_idx, detection_idx))
                matched_tracks.add(track_idx)
        unmatched_tracks = [i for i in candidates if i not in matched_tracks]
        cost = np.zeros((len(candidates), len(detections)))
        return matches, unmatched_tracks, unmatched_detections, [cost]

    def _initiate_track(self, detection, detection_id):
        track = Track(self.cfg, self._next_id, self.n_init, self.max_age, detection_data=detection.detection_data, detection_id=detection_id)
        track.add_predicted()
        self.tracks.append(track)
        self._next_id += 1

    def accumulate_vectors(self, track_ids, features="APL"):
        predictor = getattr(self.phalp_tracker, "pose_predictor", None)
        if "P" in features and track_ids and hasattr(predictor, "predict_next"):
            en_time = np.array([[entry["time"] for entry in self.tracks[i].track_data["history"]] for i in track_ids])
            predictor.predict_next(None, None, en_time, np.array([self.tracks[i].time_since_update for i in track_ids]))
        for track_idx in track_ids:
            track = self.tracks[track_idx]
            pose = _extrapolated_pose(track.track_data["history"], track.time_since_update)
            track.add_predicted(pose=pose, loca=track.track_data["history"][-1]["loca"])


def _extrapolated_pose(history, time_since_update: int) -> np.ndarray:
    """The fake pose predictor: last pose, camera moved on at its last velocity."""
    last, previous = history[-1], history[-2]
    pose = np.array(last["pose"], dtype=np.float32)
    steps = last["time"] - previous["time"]
    if steps > 0:
        velocity = (np.asarray(last["pose"][-3:]) - np.asarray(previous["pose"][-3:])) / steps
        pose[-3:] += velocity * (time_since_update + 1)
    return pose


# --- PHALP -------------------------------------------------------------------------------


class FakeLartEncoder:
    """The predictor's ``encoder`` (lart_transformer), as far as loading weights goes."""

    KEYS = ("pose_shape_encoder.0.weight", "transformer.layers.0.0.norm.weight", "loca_head.0.4.weight")

    def __init__(self):
        self.loaded: dict[str, Any] = {}

    def load_state_dict(self, state_dict, strict=True):
        self.loaded = dict(state_dict)
        return SimpleNamespace(missing_keys=[k for k in self.KEYS if k not in state_dict], unexpected_keys=[])


class Pose_transformer_v2:  # noqa: N801 - upstream's name
    """phalp.models.predictor.Pose_transformer_v2: reads its config and weights, uses HMAR.smpl."""

    def __init__(self, cfg, phalp_tracker):
        self.smpl = phalp_tracker.HMAR.smpl
        self.encoder = FakeLartEncoder()
        self.loaded_from = None
        self.device: str | None = None

    def to(self, device):  # an nn.Module upstream; the loader places it as soon as it is loaded
        self.device = device
        return self

    def load_weights(self, path):
        import torch  # the fake stack's torch in load-path tests

        checkpoint = torch.load(path)  # upstream: torch.load(path), no map_location
        # upstream's renaming, quirk included (see wiring.load_pose_predictor_weights)
        self.encoder.load_state_dict({k.replace("encoder.", ""): v for k, v in checkpoint["state_dict"].items()}, strict=False)
        self.loaded_from = path



class WindowedPosePredictor:
    """Pose_transformer_v2.predict_next's time window, and only that (pose_transformer_v2.py:370-392).

    Upstream places each of a track's ``track_history`` detections at its frame offset from the
    first one, ``t = min(offset, frame_length - 1)``, then calls ``t.item()`` on the last: when
    the offset is clamped ``t`` is Python's int and the call raises. So a track whose history
    spans more than ``frame_length - 1`` frames (a gap) crashes the predictor. ``frame_length``
    is read from the predictor's config file, as upstream reads ``cfg.pose_predictor.config_path``.
    """

    def __init__(self, frame_length: int):
        self.frame_length = frame_length
        self.spans: list[int] = []  # the history span of every track it was asked about

    def predict_next(self, en_pose, en_data, en_time, time_to_predict):
        for times in np.asarray(en_time):
            span = int(times.max() - times.min())
            self.spans.append(span)
            if span > self.frame_length - 1:
                raise AttributeError("'int' object has no attribute 'item'")
        return None


class PHALP:
    """phalp.trackers.PHALP.PHALP: construction order and per-frame methods."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.device = cfg.device
        self.calls: list[str] = []
        self.cached_download_from_drive()
        self.setup_hmr()
        self.setup_predictor()
        self.setup_detectron2()
        self.setup_visualizer()
        self.to(self.device)
        self.train() if cfg.train else self.eval()
        self.default_setup()

    def cached_download_from_drive(self, additional_urls=None):
        self.calls.append("cached_download_from_drive")
        urllib.request.urlopen("https://www.cs.utexas.edu/~pavlakos/phalp/3D/mean_std.npy")

    def setup_hmr(self):
        self.calls.append("setup_hmr")
        self.HMAR = FakeHMAR(self.cfg)

    def setup_predictor(self):
        self.calls.append("setup_predictor")
        self.pose_predictor = Pose_transformer_v2(self.cfg, self)
        self.pose_predictor.load_weights(self.cfg.pose_predictor.weights_path)

    def setup_detectron2(self):
        self.calls.append("setup_detectron2")
        self.detector = None
        self.setup_detectron2_with_RPN()

    def setup_detectron2_with_RPN(self):
        self.calls.append("setup_detectron2_with_RPN")
        urllib.request.urlopen(RPN_WEIGHTS_URL)  # the X101 weights come from the model zoo

    def setup_deepsort(self):
        self.calls.append("setup_deepsort")
        metric = NearestNeighborDistanceMetric(self.cfg, self.cfg.phalp.hungarian_th, self.cfg.phalp.past_lookback)
        self.tracker = Tracker(
            self.cfg, metric, max_age=self.cfg.phalp.max_age_track, n_init=self.cfg.phalp.n_init, phalp_tracker=self, dims=[4096, 4096, 99]
        )

    def setup_visualizer(self):
        self.calls.append("setup_visualizer")
        raise RuntimeError("pyrender.OffscreenRenderer: EGL is not available (fake)")

    def default_setup(self):
        self.calls.append("default_setup")

    def to(self, device):
        return self

    def eval(self):
        self.calls.append("eval")
        return self

    def train(self, mode=True):
        return self

    def track(self):
        raise AssertionError("the daemon must never call PHALP.track()")

    def get_detections(self, image, frame_name, t_, additional_data=None, measurments=None):
        if frame_name in additional_data.keys():  # upstream: crashes on additional_data=None
            raise AssertionError("ground-truth boxes are not used")
        instances = self.detector(image)["instances"]
        people = [i for i in range(len(instances.scores)) if instances.classes[i] == 0 and instances.scores[i] > self.cfg.phalp.low_th_c]
        pred_bbox = instances.boxes[people].reshape(-1, 4)
        self.last_identities = [instances.identities[i] for i in people]
        return pred_bbox, pred_bbox, instances.masks[people], instances.scores[people], instances.classes[people], [1] * len(people), [[] for _ in people]

    def run_additional_models(self, image_frame, pred_bbox, pred_masks, pred_scores, pred_classes, frame_name, t_, measurments, gt_tids, gt_annots):
        return list(self.last_identities)  # upstream default: list(range(N)); the hook attaches data per detection

    def get_croped_image(self, image, bbox, bbox_pad, seg_mask):
        """Upstream's return values; the "crop" is (centre x, centre y, side) of the padded box."""
        center = np.array([(bbox[2] + bbox[0]) / 2, (bbox[3] + bbox[1]) / 2])
        scale = np.array([bbox[2] - bbox[0], bbox[3] - bbox[1]])
        center_pad = np.array([(bbox_pad[2] + bbox_pad[0]) / 2, (bbox_pad[3] + bbox_pad[1]) / 2])
        scale_pad = np.array([bbox_pad[2] - bbox_pad[0], bbox_pad[3] - bbox_pad[1]])
        crop = np.array([center_pad[0], center_pad[1], np.max(scale_pad)], dtype=np.float64)
        return crop, center, scale, [{"size": list(seg_mask.shape), "counts": ""}], center_pad, scale_pad

    def get_human_features(self, image, seg_mask, bbox, bbox_pad, score, frame_name, cls_id, t_, measurments, gt=1, ann=None, extra_data=None):
        if len(score) == 0:
            return []
        img_height, img_width, new_image_size, left, top = measurments
        ratio = 1.0 / int(new_image_size) * self.cfg.render.res
        crops, center_list, scale_list, rles_list, kept = [], [], [], [], []
        for p in range(len(score)):
            if bbox[p][2] - bbox[p][0] < self.cfg.phalp.small_w or bbox[p][3] - bbox[p][1] < self.cfg.phalp.small_h:
                continue
            crop, _, _, rles, center_pad, scale_pad = self.get_croped_image(image, bbox[p], bbox_pad[p], seg_mask[p])
            crops.append(crop)
            center_list.append(center_pad)
            scale_list.append(scale_pad)
            rles_list.append(rles)
            kept.append(p)
        if not crops:
            return []
        hmar_out = self.HMAR(np.stack(crops))
        appe = self.HMAR.autoencoder_hmar(hmar_out["uv_vector"], en=True)
        center_pad, scale_pad = np.array(center_list), np.array(scale_list)
        smpl_params, joints_2d, joints_3d, camera = self.HMAR.get_3d_parameters(
            hmar_out["pose_smpl"],
            hmar_out["pred_cam"],
            center=(center_pad + np.array([left, top])) * ratio,
            img_size=self.cfg.render.res,
            scale=np.max(scale_pad, axis=1, keepdims=True) * ratio,
        )
        detections = []
        for i, p in enumerate(kept):
            smpl = {k: np.asarray(v[i]) for k, v in smpl_params.items()}
            joints_2d_norm = (joints_2d[i] / self.cfg.render.res).reshape(-1).astype(np.float32)
            cam = camera[i].astype(np.float32)
            data = {
                "bbox": np.array([bbox[p][0], bbox[p][1], bbox[p][2] - bbox[p][0], bbox[p][3] - bbox[p][1]]),
                "mask": rles_list[i],
                "conf": score[p],
                "appe": appe[i],
                "pose": smpl_to_pose_camera_vector(smpl, cam)[0].astype(np.float32),
                "loca": np.concatenate([joints_2d_norm, cam, cam, cam]),
                "uv": hmar_out["uv_vector"][i],
                "embedding": np.zeros(4424, dtype=np.float32),  # a torch tensor upstream
                "center": center_pad[i],
                "scale": scale_pad[i],
                "smpl": smpl,
                "camera": cam,
                "camera_bbox": hmar_out["pred_cam"][i],
                "3d_joints": joints_3d[i].astype(np.float32),
                "2d_joints": joints_2d_norm,
                "size": [img_height, img_width],
                "img_path": frame_name,
                "img_name": frame_name.split("/")[-1] if isinstance(frame_name, str) else None,
                "class_name": cls_id[p],
                "time": t_,
                "ground_truth": gt[p],
                "annotations": ann[p],
                "extra_data": extra_data[p] if extra_data is not None else None,
            }
            detections.append(Detection(data))
        return detections


class ScriptedPhalp(PHALP):
    """The fake counterpart of 4D-Humans' HMR2_4dhuman with the daemon's offline hooks:
    boxes padded to HMR 2.0's aspect ratio, no downloads, no RPN detector, no visualizer."""

    def __init__(self, cfg, scene: FakeScene):
        self.scene = scene
        self.detector_batches: deque[int] = deque(maxlen=RECENT_CALLS)  # images per detect_window call
        super().__init__(cfg)

    def cached_download_from_drive(self, additional_urls=None):
        self.calls.append("cached_download_from_drive")

    def setup_predictor(self):
        self.calls.append("setup_predictor")
        self.pose_predictor = None  # the fake Tracker predicts by itself

    def setup_detectron2(self):
        self.calls.append("setup_detectron2")
        self.detector = ScriptedDetector(self.scene)

    def setup_visualizer(self):
        self.visualizer = None

    def setup_deepsort(self):
        super().setup_deepsort()
        self.detector.restart()  # a new video: unstamped frames count from 0 again

    # window.WindowModels, as wiring.StreamingPhalp offers it on torch

    def detect_window(self, images):
        self.detector_batches.append(len(images))
        return [self.detector(image) for image in images]

    def features_window(self, crops_per_frame):
        from daemon.processing.backends.phalp.window import split_batch

        sizes = [len(crops) for crops in crops_per_frame]
        if not any(sizes):
            return [None] * len(sizes)
        hmar_out = self.HMAR(np.stack([crop for crops in crops_per_frame for crop in crops]))
        appearance = self.HMAR.autoencoder_hmar(hmar_out["uv_vector"], en=True)
        per_frame = zip(split_batch(hmar_out, sizes), split_batch(appearance, sizes), sizes)
        return [(out, appe) if size else None for out, appe, size in per_frame]

    def get_detections(self, image, frame_name, t_, additional_data=None, measurments=None):
        bbox, _, masks, scores, classes, gt_tids, gt_annots = super().get_detections(image, frame_name, t_, additional_data, measurments)
        return bbox, expand_bbox_to_aspect_ratio(bbox, self.cfg.expand_bbox_shape), masks, scores, classes, gt_tids, gt_annots
