"""The production backend: HMR 2.0 inside PHALP's tracker, streamed frame by frame on the GPU."""

from __future__ import annotations

from collections.abc import Callable

from daemon.errors import JobError
from daemon.log import get_logger
from daemon.processing.backends.base import Backend, LoadProgress
from daemon.processing.backends.phalp.convert import ConvertSettings, PersonConverter
from daemon.processing.backends.phalp.driver import StreamingDriver, tracker_failure
from daemon.processing.backends.phalp.loader import LoadedModels, load_models
from daemon.processing.backends.phalp.precision import precision_of
from daemon.processing.backends.phalp.skeleton import COCO_17, KEYPOINT_FORMAT, PHALP_45, SMPL_BODY_POSE_JOINTS
from daemon.config import PhalpConfig
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, VideoMeta

CAMERA_FRAME = (
    "camera frame: origin at the camera centre, metres, x right, y down, z forward along the optical axis "
    "(OpenCV convention); pinhole camera per person in camera_intrinsics, with PHALP's assumed focal length "
    "5000/256 * max(width, height) px, so depth is only meaningful relative to that focal length"
)
PREDICTED_STATE = (
    "state 'predicted': PHALP kept the track alive without a detection; pose, shape and camera come from "
    "its pose predictor, confidence is 0.5 * last detector score, fading to 0 at max_age_track"
)

ModelLoader = Callable[[PhalpConfig, LoadProgress], LoadedModels]
log = get_logger(__name__)


class PhalpBackend(Backend):
    """PHALP + HMR 2.0. ``load_models`` is injectable so tests can run it on fakes."""

    def __init__(self, cfg: PhalpConfig, *, load: ModelLoader = load_models) -> None:
        self._cfg = cfg
        self._load = load
        self._models: LoadedModels | None = None
        self._driver: StreamingDriver | None = None
        self._converter: PersonConverter | None = None

    def load(self, progress: LoadProgress) -> BackendInfo:
        self._models = self._load(self._cfg, progress)
        return backend_info(self._cfg, self._models)

    def start_video(self, meta: VideoMeta, options: JobOptions) -> None:
        models = self._loaded()
        models.runtime.set_low_memory(options.low_memory)
        phalp_cfg = models.phalp.cfg
        settings = ConvertSettings(
            focal_length=float(phalp_cfg.EXTRA.FOCAL_LENGTH),
            render_res=int(phalp_cfg.render.res),
            max_age=int(phalp_cfg.phalp.max_age_track),
            include_mesh=self._cfg.include_mesh or options.include_mesh,
        )
        self._converter = PersonConverter(models.smpl_model, settings)
        self._driver = StreamingDriver(
            models.phalp,
            self._converter,
            batch_frames=self._cfg.batch_frames,
            detect_every_n=self._cfg.detect_every_n,
            oom_errors=models.runtime.oom_errors,
            on_oom=models.runtime.release_cached_memory,
        )
        self._driver.start()

    def process(self, frame: Frame) -> list[FrameResult]:
        driver = self._started()
        try:
            return driver.step(frame)
        except JobError:
            raise
        except Exception as exc:
            if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
                raise  # the driver's own OOM handling, or the worker's, reports those
            raise tracker_failure(exc, frame.index) from exc

    def finish(self) -> list[FrameResult]:
        results = self._started().finish()
        self._driver = None
        counts = self.summary()
        if counts.get("people_dropped") or counts.get("people_predicted_from_location"):
            log.warning("phalp.predictions_unplaceable", **counts)
        return results

    def summary(self) -> dict[str, int]:
        counts = self._converter.counts if self._converter is not None else {}
        return {
            "people_dropped": int(counts.get("people_dropped", 0)),
            "people_predicted_from_location": int(counts.get("predicted_from_location", 0)),
        }

    def close(self) -> None:
        if self._models is not None:
            self._models.runtime.release_cached_memory()
        self._driver = None
        self._models = None

    def _loaded(self) -> LoadedModels:
        if self._models is None:
            raise RuntimeError("PhalpBackend.load() must run before start_video()")
        return self._models

    def _started(self) -> StreamingDriver:
        if self._driver is None:
            raise RuntimeError("PhalpBackend.start_video() must run before process()/finish()")
        return self._driver


def backend_info(cfg: PhalpConfig, models: LoadedModels) -> BackendInfo:
    versions = models.versions
    extras: dict = {
        "phalp": {
            "keypoints_coco17_names": list(COCO_17),
            "smpl_body_pose_joints": list(SMPL_BODY_POSE_JOINTS),
            "predicted_state": PREDICTED_STATE,
        }
    }
    if models.mesh_faces is not None:  # job.py keeps them only for jobs that want meshes
        extras["mesh_faces"] = models.mesh_faces.tolist()
    return BackendInfo(
        name="phalp",
        version=f"phalp {versions.get('phalp', 'unknown')}; hmr2 {versions.get('hmr2', 'unknown')}; torch {versions.get('torch', 'unknown')}",
        model_version=model_version(cfg),
        device=models.device,
        keypoint_names=PHALP_45,
        joint_names_3d=PHALP_45,
        joints_3d_frame=CAMERA_FRAME,
        keypoint_format=KEYPOINT_FORMAT,
        extras=extras,
    )


def model_version(cfg: PhalpConfig) -> str:
    """Everything that changes the numbers: weights, detector, precision, tracking settings, and
    the z-buffer behind texel visibility (torch or NMR: equal up to float ties on edges).

    ``batch_frames`` is not in it: batching changes results only by floating-point noise."""
    stride = f"; detector every {cfg.detect_every_n} frames" if cfg.detect_every_n > 1 else ""
    return (
        f"hmr2.0 epoch=35-step=1000000 + phalp pose_predictor_40006 + {cfg.detector} detector{stride}; {precision_of(cfg)}; "
        f"score>{cfg.detection_score_threshold}; min {cfg.min_person_width_px}x{cfg.min_person_height_px}px; "
        f"n_init {cfg.n_init}; max_age {cfg.max_age_track}; depth {cfg.depth_renderer}"
    )
