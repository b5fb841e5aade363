"""The configuration schema: one dataclass per section, defaults that ``configs/posed.yaml``
restates with comments, and the allowed choices that ``checks`` enforces."""

from __future__ import annotations

from dataclasses import dataclass, field



VIDEO_EXTENSIONS = [".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"]


@dataclass
class DaemonConfig:
    name: str = ""  # "" = this host's name; distinguishes daemons sharing an inbox
    state_dir: str = "var/state"
    status_interval_s: float = 2.0
    tick_s: float = 0.2
    last_error_ttl_s: float = 3600.0  # the status file's last_error is dropped this long after it happened


@dataclass
class InboxConfig:
    path: str = "var/inbox"
    done_dir: str = ""  # "" = <inbox>/done (same file system, so the move is a rename)
    failed_dir: str = ""  # "" = <inbox>/failed
    observer: str = "auto"  # auto | inotify | polling
    poll_interval_s: float = 2.0
    rescan_interval_s: float = 30.0
    settle_s: float = 2.0
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS))
    done_retention_days: float = 0.0  # 0 = keep processed inputs forever
    orphan_sidecar_s: float = 3600.0  # a sidecar with no video beside it this long goes to failed/


@dataclass
class IntakeConfig:
    """Where jobs come from (issue 15): the inbox folder, or a BullMQ queue on Redis."""

    kind: str = "folder"  # folder | bullmq
    url: str = ""  # bullmq: redis://[user:pass@]host:port/db, rediss:// for TLS
    queue: str = "posed"
    input_roots: list[str] = field(default_factory=list)  # job inputs must lie below one; bullmq needs them set
    lock_duration_s: float = 30.0  # BullMQ lock (renewed at half); a dead daemon's job waits this long
    stalled_interval_s: float = 30.0  # how often stalled jobs are looked for and handed over
    max_stalled_count: int = 1  # stalls (lost locks) a job survives before BullMQ fails it


@dataclass
class OutboxConfig:
    path: str = "var/outbox"
    publish_retry_s: float = 30.0  # give up a single publish attempt after this long (EPERM/EBUSY)


@dataclass
class OutputConfig:
    """Optional outputs of every result; a job sidecar may turn each on or off for its video."""

    legacy_fields: bool = False
    motion_glb: bool = False
    motion_mesh: bool = False  # with motion_glb: each track's SMPL body from backend.phalp.smpl_path (PHALP)
    preview: bool = False
    preview_max_height: int = 720  # taller videos get a preview scaled down to this many lines (0: full size)
    # A requested export the disk refused (full, read-only, over quota): False = the result goes
    # out without it, with a warning; True = the try fails like any outbox fault and the video
    # is retried later, so a result never lacks an export it asked for because of the disk.
    exports_required: bool = False


@dataclass
class ClaimConfig:
    heartbeat_interval_s: float = 5.0
    stale_after_s: float = 60.0


@dataclass
class WorkerConfig:
    stall_timeout_s: float = 60.0
    first_frame_timeout_s: float = 600.0
    max_attempts: int = 2
    restart_backoff_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    # Processing ceiling, on by default (decode bombs): base + factor x the video's frames / 30,
    # so a 240 fps video gets 8x the time of the same seconds at 30 fps. 0 turns it off.
    ceiling_base_s: float = 600.0
    ceiling_factor: float = 20.0
    load_timeout_s: float = 900.0  # a worker still loading models after this is killed and restarted
    shutdown_grace_s: float = 30.0
    kill_after_s: float = 5.0
    progress_interval_s: float = 0.0  # 0 = every frame (exact "last frame reached" in crash reports)


@dataclass
class LimitsConfig:
    max_file_bytes: int = 8 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 7680
    max_height: int = 7680
    max_people_per_frame: int = 20
    max_frames: int = 432_000  # 4 h at 30 fps
    max_fps: float = 240.0  # phone slow motion; a 1000 fps header is a decode bomb


@dataclass
class PipelineConfig:
    queue_frames: int = 8  # bounded hand-off between decode, backend and writer threads
    threaded: bool = True


@dataclass
class MediapipeConfig:
    model_complexity: int = 1  # only 1 ships inside the wheel
    max_people: int = 10  # people per frame; 1 = one-person mode (the most confident person)
    min_detection_confidence: float = 0.3  # person detector score for a new find (the landmark network confirms it)
    min_tracking_confidence: float = 0.5  # landmark network's presence score to keep a person
    min_keypoint_certainty: float = 0.58  # mean heatmap peak at a pose's visible keypoints to publish it (it stays tracked)
    tile_levels: int = 3  # detector tiles: 0 = whole frame only; each level halves the tile size
    tiles_per_frame: int = 2  # detector runs per frame after the first (which runs every tile)
    max_track_distance: float = 0.5  # body sizes between a pose and a track's prediction to match
    max_missing_s: float = 1.0  # a person unseen this long loses their track id
    confirm_frames: int = 4  # a person is published once seen in this many frames (not necessarily in a row)
    mirror_average: bool = False  # read each person found again in the mirrored region and average the two (slower)
    threads: int = 2  # LiteRT (XNNPACK) threads per network; the decoder thread is mostly idle


@dataclass
class FaultConfig:
    """Test-only backend: makes every supervision path reachable with real processes."""

    trigger: str = ""  # faults apply to inputs whose name contains this ("" = every input)
    crash_signal: str = ""  # e.g. SIGSEGV, SIGKILL, SIGABRT
    crash_at_frame: int = -1
    exit_code: int = -1  # os._exit(code) at crash_at_frame when >= 0
    raise_at_frame: int = -1
    hang_at_frame: int = -1
    oom_at_frame: int = -1  # raise MemoryError unless the job runs in low-memory mode
    leak_mb_per_frame: float = 0.0
    slow_ms_per_frame: float = 0.0
    load_seconds: float = 0.0
    crash_on_load_while_exists: str = ""  # crash at load while this file exists
    hang_on_load_while_exists: str = ""  # hang in load (forever) while this file exists
    people: int = 1


@dataclass
class PhalpConfig:
    device: str = "cuda"  # cuda | cuda:N | cpu (cpu only for the test harness)
    detector: str = "maskrcnn"  # maskrcnn (RegNetY, <= 8 GB cards) | vitdet
    detection_score_threshold: float = 0.8
    min_person_width_px: int = 50
    min_person_height_px: int = 100
    max_detections: int = 100  # per frame, highest scores first (detectron2's test_topk_per_image)
    fp16: bool = False  # legacy spelling of precision=fp16; true overrides precision
    precision: str = "fp32"  # fp32 | fp16 | bf16: autocast for HMR 2.0 and the detector
    batch_frames: int = 8  # K: detection and HMR 2.0 run over windows of K frames; 1 = frame by frame
    detect_every_n: int = 1  # run the detector on every n-th frame only; PHALP predicts in between
    depth_renderer: str = "torch"  # torch | nmr: the z-buffer behind PHALP's texel visibility (texture.py)
    include_mesh: bool = False
    max_age_track: int = 50
    n_init: int = 5
    cache_dir: str = "~/.cache/posed"
    phalp_cache_dir: str = "${.cache_dir}/phalp"
    hmr2_cache_dir: str = "${.cache_dir}/4DHumans"
    detectron2_cache_dir: str = "${.cache_dir}/detectron2"
    smpl_path: str = "${.cache_dir}/smpl/SMPL_NEUTRAL.pkl"
    models_manifest: str = ""  # "" = configs/models.yaml: every model file, its URL and checksum


@dataclass
class BackendConfig:
    name: str = "mediapipe"  # mediapipe | phalp | fault
    mediapipe: MediapipeConfig = field(default_factory=MediapipeConfig)
    phalp: PhalpConfig = field(default_factory=PhalpConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class SmoothingFitConfig:
    """Two-sided smoothing (daemon/processing/motion/local_fit.py): a local polynomial fit in
    time around each frame; defaults measured against public annotations (README, motion)."""

    sigma_s: float = 0.05  # s: width of the Gaussian time weights; larger = smoother, flatter peaks
    degree: int = 2  # of the local polynomial: 2 follows swings, 0 is a weighted mean


@dataclass
class MotionConfig:
    """The motion stage between backend and writer (issue 13)."""

    smoothing: bool = True
    fill_gaps: bool = True
    include_raw: bool = False
    max_gap_s: float = 0.5  # gaps up to this long (in frames at the video's fps) are interpolated
    # A track that moves or resizes faster than this is two people (motion/identity.py): new id.
    max_body_speed: float = 10.0  # body sizes per second (fastest sprinters: ~6.4)
    max_scale_rate: float = 2.0  # |ln(size ratio)| per second, beyond a 1.5x allowance for keypoint noise
    keypoints_2d: SmoothingFitConfig = field(default_factory=SmoothingFitConfig)  # also the box
    joints_3d: SmoothingFitConfig = field(default_factory=SmoothingFitConfig)  # also the camera translation
    rotations: SmoothingFitConfig = field(default_factory=SmoothingFitConfig)  # SMPL, as quaternions


@dataclass
class PosedConfig:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    claim: ClaimConfig = field(default_factory=ClaimConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)


BACKENDS = ("mediapipe", "phalp", "fault")
OBSERVERS = ("auto", "inotify", "polling")
INTAKES = ("folder", "bullmq")
PRECISIONS = ("fp32", "fp16", "bf16")
DEPTH_RENDERERS = ("torch", "nmr")
