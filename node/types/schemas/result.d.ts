/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

/**
 * @minItems 3
 * @maxItems 3
 */
export type Triangle = [NonNegativeInteger, NonNegativeInteger, NonNegativeInteger];
export type NonNegativeInteger = number;
export type Timestamp = string;

/**
 * One processed video: <outbox>/<stem>.result.json, the ONE name a consumer polls for. <stem> is the sidecar's job_id if one was given, else the video file name, plus ~2, ~3... if any outcome file with that stem existed. The per-frame data is in files.frames.name (<stem>.frames.jsonl, one JSON object per line, see frame.schema.json); every file listed in files is published BEFORE this manifest and shares its stem, so when this file exists its companions are complete (check lines, bytes, sha256 if you like). Never overwritten. schema_version is MAJOR.MINOR: a minor bump only adds optional fields. Version 1 kept every frame inside this document; see the README's migration note. Units: 2D values are pixels of the delivered (upright) frame, origin top-left, y down; 3D values metres in backend.joints_3d_frame; confidences 0..1; times in seconds; timestamps RFC 3339 UTC.
 */
export interface PosedResult {
  schema: 'posed.result';
  /**
   * Version of this document's shape, MAJOR.MINOR; this schema accepts every 2.x.
   */
  schema_version: string;
  status: 'ok';
  /**
   * The daemon's id for this job (as in its logs and status file), e.g. abc123.mp4@<instance>-<n>. Opaque: match results by their file name or by client.job_id, not by parsing this.
   */
  job_id: string;
  input: Input;
  backend: Backend;
  options: Options;
  /**
   * When processing of this video started.
   */
  created_at: string;
  client?: Client;
  /**
   * Present only when a mesh backend ran with include_mesh: the SMPL triangle list (13776 triangles for SMPL), each [i, j, k] as 0-based indices into a person's mesh_vertices. Written once per result because it is the same for every person and frame.
   */
  mesh_faces?: Triangle[];
  /**
   * Rounding step of the numbers in the frames file, by unit.
   */
  precision: {
    /**
     * 2D coordinates and boxes
     */
    pixels: number;
    /**
     * 3D joints and translations
     */
    metres: number;
    /**
     * rotations
     */
    radians: number;
    /**
     * shape coefficients
     */
    betas?: number;
    /**
     * confidences
     */
    confidence: number;
    [k: string]: number | undefined;
  };
  video: Video;
  summary: Summary;
  /**
   * One entry per track id that appears in the frames file.
   */
  tracks: {
    track_id: number;
    first_frame: NonNegativeInteger;
    last_frame: NonNegativeInteger;
    frames_detected: NonNegativeInteger;
    frames_predicted: NonNegativeInteger;
    frames_interpolated: NonNegativeInteger;
    [k: string]: unknown;
  }[];
  /**
   * The result's other files, by kind, each in the same folder as this manifest. frames is always there; motion (<stem>.motion.glb) and preview (<stem>.preview.mp4) when asked for.
   */
  files: {
    frames: File & {
      format: 'jsonl';
      schema: 'posed.frame';
      /**
       * Number of lines = summary.frames.
       */
      lines: number;
    };
    [k: string]:
      | File
      | (File & {
          format: 'jsonl';
          schema: 'posed.frame';
          /**
           * Number of lines = summary.frames.
           */
          lines: number;
        });
  };
  /**
   * Things that went wrong without failing the result (an optional export that could not be made, or a part left out of one that was: the motion GLB's body mesh).
   */
  warnings?: string[];
  [k: string]: unknown;
}
/**
 * The video file this document is about, named both ways.
 */
export interface Input {
  /**
   * File name as dropped into the inbox, e.g. abc123.mp4.
   */
  name: string;
  /**
   * Absolute path as the daemon opened it, in WSL/Linux form, e.g. /mnt/c/Users/x/uploads/abc123.mp4.
   */
  path: string;
  /**
   * The same file in Windows form (C:\Users\x\uploads\abc123.mp4, or \\wsl$\<distro>\... for a Linux path); null when it has none (distro unknown, or a name Windows cannot express).
   */
  windows_path: string | null;
  /**
   * File size in bytes when processing started.
   */
  bytes: number;
  /**
   * Absolute path (WSL/Linux form) the input is moved to once this document is published: inbox/done/ for a result, inbox/failed/ for an error report, numbered name~2.ext if that name is taken. path is where it was read. Absent for a queue job, whose file stays.
   */
  moved_to?: string;
  /**
   * moved_to in Windows form, as windows_path.
   */
  moved_to_windows_path?: string | null;
  [k: string]: unknown;
}
/**
 * Which pose backend produced the numbers, and how to read them.
 */
export interface Backend {
  /**
   * Backend name, e.g. mediapipe or phalp.
   */
  name: string;
  /**
   * Version of the backend's library.
   */
  version: string;
  /**
   * Identifies the model weights; changes whenever numbers may change.
   */
  model_version: string;
  /**
   * Where inference ran, e.g. cpu or cuda:0.
   */
  device: string;
  /**
   * Name of the 2D keypoint set, e.g. mediapipe-blazepose-33.
   */
  keypoint_format: string;
  /**
   * Names of the 2D keypoints IN ORDER: every person's keypoints list has exactly these names in this order.
   */
  keypoint_names: string[];
  /**
   * Names of the 3D joints IN ORDER: every non-null joints_3d list has exactly these names in this order. Empty if the backend gives no 3D joints.
   */
  joint_names_3d: string[];
  /**
   * Human-readable statement of the 3D coordinate frame: origin, axes, units. For example mediapipe: hip-centred (origin midway between the hips), metres, x right, y down, z away from the camera. Camera-frame backends (phalp) use the camera axes: x right, y down, z forward along the optical axis (OpenCV convention), origin as stated here.
   */
  joints_3d_frame: string;
  [k: string]: unknown;
}
/**
 * The options this video was processed with (daemon defaults merged with the sidecar).
 */
export interface Options {
  /**
   * True when the video ran in low-memory mode (the daemon retries in that mode after the backend ran out of memory).
   */
  low_memory: boolean;
  /**
   * Whether mesh vertices were requested (mesh backends only).
   */
  include_mesh: boolean;
  /**
   * First frame index processed (0-based, inclusive).
   */
  start_frame: number;
  /**
   * Frame index where processing stopped (exclusive); null = to the end.
   */
  end_frame: number | null;
  /**
   * Whether the frames carry the old service's flat fields (output.legacy_fields).
   */
  legacy_fields?: boolean | null;
  /**
   * Whether <stem>.motion.glb was asked for.
   */
  motion_glb?: boolean | null;
  /**
   * Whether the motion GLB was asked to carry each track's SMPL body (PHALP, the user's SMPL file); files.motion.details.mesh says whether it does.
   */
  motion_mesh?: boolean | null;
  /**
   * Whether <stem>.preview.mp4 was asked for.
   */
  preview?: boolean | null;
  /**
   * motion.* settings this video overrode through its job sidecar (smoothing, fill_gaps, include_raw, max_gap_s); null = the daemon's settings. What ran is in summary.motion.
   */
  motion?: {} | null;
  [k: string]: unknown;
}
/**
 * Echo of the job sidecar (<video>.job.json); absent when there was none.
 */
export interface Client {
  /**
   * The sidecar's job_id, or null if it gave none.
   */
  job_id: string | null;
  /**
   * The sidecar's metadata object, unchanged (at most 64 KiB as JSON).
   */
  metadata: {} | null;
  [k: string]: unknown;
}
/**
 * What the container claimed (estimates) and what decoding found (decoded_frame_count, duration_s).
 */
export interface Video {
  /**
   * Pixels, as delivered to the backend (after rotation); all 2D coordinates refer to this size.
   */
  width: number;
  /**
   * Pixels, as delivered to the backend (after rotation).
   */
  height: number;
  /**
   * Pixels as stored in the stream (before rotation).
   */
  coded_width: number;
  /**
   * Pixels as stored in the stream (before rotation).
   */
  coded_height: number;
  /**
   * Clockwise rotation that turns the coded frame upright for display, from the container metadata (phones): the convention of the legacy rotate tag; FFmpeg prints the display matrix counter-clockwise, so its rotation of 90 degrees is 270 here.
   */
  rotation_degrees: 0 | 90 | 180 | 270;
  /**
   * True when frames were rotated upright before pose estimation.
   */
  auto_rotated: boolean;
  /**
   * Frame rate the container claims; real timing is per frame (timestamp_s).
   */
  nominal_fps: number;
  /**
   * Frame count the container claims (often wrong); null if unknown.
   */
  frame_count_estimate: number | null;
  /**
   * Duration the container claims, seconds; null if unknown.
   */
  duration_estimate_s: number | null;
  /**
   * FourCC of the video codec: the sample entry of an mp4/mov (avc1, hvc1, hev1, mp4v, ...) or the stream handler of an avi (H264, MJPG, FMP4, ...) as stored; for Matroska/WebM, which store none, the usual one (avc1, hvc1, VP80, VP90, av01). Empty if unknown.
   */
  codec: string;
  /**
   * Lower-case file extension, e.g. .mp4.
   */
  container: string;
  file_bytes: NonNegativeInteger;
  /**
   * Frames actually decoded.
   */
  decoded_frame_count: number;
  /**
   * Start of the last processed frame plus one nominal frame length, seconds.
   */
  duration_s: number;
  [k: string]: unknown;
}
export interface Summary {
  /**
   * Number of frames = lines in the frames file.
   */
  frames: number;
  frames_with_person: NonNegativeInteger;
  /**
   * Sum over frames of len(people).
   */
  people_total: number;
  /**
   * phalp only: predicted people (tracker ghosts) that neither the pose predictor nor the location predictor could place in front of the camera, so they are missing from frames.
   */
  people_dropped?: number;
  /**
   * phalp only: predicted people whose pose-predictor depth was <= 0, placed by the tracker's location prediction instead (their predicted_from is location_predictor).
   */
  people_predicted_from_location?: number;
  /**
   * Wall-clock seconds for this attempt.
   */
  processing_seconds: number;
  /**
   * frames / processing_seconds.
   */
  frames_per_second: number | null;
  /**
   * Busy seconds per pipeline stage (the stages overlap, so they may add up to more than processing_seconds).
   */
  stage_seconds: {
    /**
     * Reading and decoding frames.
     */
    decode: number;
    /**
     * Pose inference.
     */
    backend: number;
    /**
     * Serialising the frames.
     */
    write: number;
    [k: string]: number;
  };
  started_at: Timestamp;
  finished_at: Timestamp;
  /**
   * Size of the frames file.
   */
  frames_bytes?: number;
  bytes_per_frame?: number | null;
  bytes_per_person_frame?: number | null;
  /**
   * What the motion stage did and its quality figures. Smoothing is two-sided (a local quadratic fit in time over the frames before and after), so smoothed values do not lag. Mean acceleration is the norm of the second difference x[t+1] - 2x[t] + x[t-1] per keypoint, averaged over keypoints and over every three consecutive frames in which the track was detected; raw (the backend's values) and smoothed on the same frames. Mean displacement is the distance between smoothed and raw positions over detected frames (what smoothing costs in faithfulness). 2D in pixels per frame^2 and pixels, 3D in millimetres per frame^2 and millimetres; null where nothing was measured.
   */
  motion?: {
    smoothing?: boolean;
    fill_gaps?: boolean;
    include_raw?: boolean;
    /**
     * motion.max_gap_s in frames of this video.
     */
    max_gap_frames?: number;
    /**
     * Frames the stage holds back: the larger of max_gap_frames (with gap filling) and smoothing_frames (with smoothing), else 0.
     */
    latency_frames?: number;
    /**
     * How far, in frames each way, two-sided smoothing looks (3 sigma); 0 with smoothing off.
     */
    smoothing_frames?: number;
    /**
     * Detections that moved or resized faster than motion.max_body_speed / max_scale_rate allow since their track's previous detection: each opened a new track (see tracks[].split_from).
     */
    identity_breaks?: number;
    keypoints_2d?: {};
    joints_3d?: {};
    /**
     * Frames per output state, per track.
     */
    tracks?: {
      track_id?: number;
      detected?: NonNegativeInteger;
      predicted?: NonNegativeInteger;
      interpolated?: NonNegativeInteger;
      /**
       * The track this one broke away from at an impossible jump (the backend had kept one id for both); absent otherwise.
       */
      split_from?: number;
    }[];
  };
  [k: string]: unknown;
}
export interface File {
  /**
   * File name in the outbox (same folder as the manifest).
   */
  name: string;
  bytes: NonNegativeInteger;
  sha256: string;
  [k: string]: unknown;
}
