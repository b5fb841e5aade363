/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

/**
 * @minItems 3
 * @maxItems 3
 */
export type Vector3 = [number, number, number];
/**
 * @minItems 3
 * @maxItems 3
 */
export type Triangle = [NonNegativeInteger, NonNegativeInteger, NonNegativeInteger];
export type NonNegativeInteger = number;

/**
 * One line of <stem>.frames.jsonl: exactly one line per decoded frame in the processed range, in frame order, each a complete JSON object. Names and units are in the result manifest (<stem>.result.json): backend.keypoint_names, backend.joint_names_3d, backend.joints_3d_frame, precision. When output.legacy_fields (config or sidecar) was on, each line also carries the old HTTP service's flat fields for the frame's PRIMARY person (the detected person with the highest confidence, else the predicted one, ties: lowest track_id): frame_number, frame_width, frame_height, keypoints, keypoint_count, has_3d, joints_3d_raw, joint_angles_3d, mesh_vertices, mesh_vertices_data, mesh_faces_data, camera_translation, tracking_confidence, processing_time_ms, model_version.
 */
export interface PosedFrame {
  /**
   * 0-based position of the frame in decode order of the whole video (not of the requested range).
   */
  frame_index: number;
  /**
   * Presentation time of the frame in seconds from the stream (frame rates may vary; do not assume frame_index / fps).
   */
  timestamp_s: number;
  people: Person[];
  /**
   * track_id of the person the legacy fields describe; null when the frame has nobody.
   */
  primary_track_id?: number | null;
  /**
   * Legacy: equal to frame_index (0-based).
   */
  frame_number?: number;
  /**
   * Legacy: width in pixels of the delivered (upright) frame; equal to video.width.
   */
  frame_width?: number;
  /**
   * Legacy: height in pixels of the delivered (upright) frame; equal to video.height.
   */
  frame_height?: number;
  /**
   * Legacy: the primary person's 2D keypoints (pixels, origin top-left, x right, y down), same objects as in people[].
   */
  keypoints?: Point2D[];
  /**
   * Legacy: number of entries in keypoints.
   */
  keypoint_count?: number;
  /**
   * Legacy: the primary person has 3D joints.
   */
  has_3d?: boolean;
  /**
   * Legacy: the primary person's joints_3d (metres, backend.joints_3d_frame), or [] without 3D.
   */
  joints_3d_raw?: Point3D[];
  joint_angles_3d?: JointAngles;
  /**
   * Legacy: the NUMBER of mesh vertices of the primary person (0 without a mesh). Note: inside a person object, mesh_vertices is the vertex list itself.
   */
  mesh_vertices?: number;
  /**
   * Legacy: the primary person's mesh vertices [x, y, z] in metres, camera frame; [] without a mesh.
   */
  mesh_vertices_data?: Vector3[];
  /**
   * Legacy: triangles [i, j, k] into mesh_vertices_data. Normally [] because the triangles are the same for every frame: read the top-level mesh_faces instead.
   */
  mesh_faces_data?: Triangle[];
  /**
   * Legacy: the primary person's camera_translation [tx, ty, tz] in metres (camera frame), or null.
   */
  camera_translation?: null | Vector3;
  /**
   * Legacy: the primary person's confidence; 0 when nobody.
   */
  tracking_confidence?: number;
  /**
   * Legacy: backend time spent on this frame, milliseconds.
   */
  processing_time_ms?: number;
  /**
   * Legacy: equal to backend.model_version.
   */
  model_version?: string;
  [k: string]: unknown;
}
/**
 * One tracked person in one frame. Readers must ignore fields they do not know.
 */
export interface Person {
  /**
   * Stable identity of this person across the frames of this video (not across videos).
   */
  track_id: number;
  /**
   * detected: seen in this frame. predicted: not detected; the tracker's prediction (coordinates are a guess). interpolated: not detected; filled by posed's motion stage between two detections of the same track (see the manifest's motion settings).
   */
  state: 'detected' | 'predicted' | 'interpolated';
  /**
   * 0 when detected in this frame; otherwise frames since the last detection.
   */
  frames_since_detection: number;
  /**
   * Detection/track confidence 0..1 (0.001).
   */
  confidence: number;
  /**
   * [x, y, width, height] in pixels of the delivered frame (0.1 px): top-left corner (origin top-left, x right, y down) and size; x and y may be negative when the box is cut by the image border.
   *
   * @minItems 4
   */
  bbox: never[];
  /**
   * 2D keypoints as [x, y, confidence] rows, exactly the manifest's backend.keypoint_names in that order. x, y: pixels of the delivered (upright) frame, origin top-left, y down, 0.1 px; may lie outside the frame for occluded or cut-off points. confidence: 0..1, 0.001.
   */
  keypoints: [number, number, number][];
  /**
   * 3D joints as [x, y, z] rows in metres (0.1 mm), exactly backend.joint_names_3d in that order, in the frame stated by backend.joints_3d_frame; null when the backend gave none for this person.
   */
  joints_3d: null | [number, number, number][];
  /**
   * Body-model backends (phalp): SMPL parameters. Rotations are axis-angle vectors in radians (direction = axis, length = angle, 1e-4), each relative to its parent joint in SMPL's kinematic tree; 24 joints in SMPL order.
   */
  smpl?: {
    /**
     * Root (pelvis) orientation in the camera frame.
     *
     * @minItems 3
     * @maxItems 3
     */
    global_orient: [number, number, number];
    /**
     * Joints 1..23 relative to their parents.
     *
     * @minItems 23
     * @maxItems 23
     */
    body_pose: [
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number],
      [number, number, number]
    ];
    /**
     * Shape coefficients (10 for SMPL), 1e-4.
     */
    betas: number[];
    [k: string]: unknown;
  };
  /**
   * Body-model backends: position of the SMPL origin in the camera frame (x right, y down, z forward), metres, 0.1 mm.
   *
   * @minItems 3
   * @maxItems 3
   */
  camera_translation?: [number, number, number];
  /**
   * Backend-specific values (phalp: detector_score, camera_intrinsics, mesh_vertices when requested).
   */
  extra?: {};
  /**
   * Present when the motion stage changed this person's values and raw output was asked for (motion.include_raw): the backend's own bbox, keypoints, joints_3d (and smpl, camera_translation), same layout as above.
   */
  raw?: {
    /**
     * [x, y, width, height] in pixels of the delivered frame (0.1 px): top-left corner (origin top-left, x right, y down) and size; x and y may be negative when the box is cut by the image border.
     *
     * @minItems 4
     */
    bbox?: never[];
    /**
     * 2D keypoints as [x, y, confidence] rows, exactly the manifest's backend.keypoint_names in that order. x, y: pixels of the delivered (upright) frame, origin top-left, y down, 0.1 px; may lie outside the frame for occluded or cut-off points. confidence: 0..1, 0.001.
     */
    keypoints?: [number, number, number][];
    /**
     * 3D joints as [x, y, z] rows in metres (0.1 mm), exactly backend.joint_names_3d in that order, in the frame stated by backend.joints_3d_frame; null when the backend gave none for this person.
     */
    joints_3d?: null | [number, number, number][];
    /**
     * Body-model backends (phalp): SMPL parameters. Rotations are axis-angle vectors in radians (direction = axis, length = angle, 1e-4), each relative to its parent joint in SMPL's kinematic tree; 24 joints in SMPL order.
     */
    smpl?: {
      /**
       * Root (pelvis) orientation in the camera frame.
       *
       * @minItems 3
       * @maxItems 3
       */
      global_orient: [number, number, number];
      /**
       * Joints 1..23 relative to their parents.
       *
       * @minItems 23
       * @maxItems 23
       */
      body_pose: [
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number],
        [number, number, number]
      ];
      /**
       * Shape coefficients (10 for SMPL), 1e-4.
       */
      betas: number[];
      [k: string]: unknown;
    };
    /**
     * Body-model backends: position of the SMPL origin in the camera frame (x right, y down, z forward), metres, 0.1 mm.
     *
     * @minItems 3
     * @maxItems 3
     */
    camera_translation?: [number, number, number];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
export interface Point2D {
  /**
   * Keypoint name from backend.keypoint_names.
   */
  name: string;
  /**
   * Pixels from the left edge of the delivered frame (may lie outside 0..width for occluded or cut-off points).
   */
  x: number;
  /**
   * Pixels from the top edge of the delivered frame, y grows downwards (may lie outside 0..height).
   */
  y: number;
  /**
   * 0..1; visibility/likelihood as the backend defines it.
   */
  confidence: number;
  [k: string]: unknown;
}
export interface Point3D {
  /**
   * Joint name from backend.joint_names_3d.
   */
  name: string;
  /**
   * Metres, along the x axis of backend.joints_3d_frame.
   */
  x: number;
  /**
   * Metres, along the y axis of backend.joints_3d_frame.
   */
  y: number;
  /**
   * Metres, along the z axis of backend.joints_3d_frame.
   */
  z: number;
  [k: string]: unknown;
}
/**
 * Joint angles in DEGREES (0..180), keyed by name, computed from the 3D joint positions (not from SMPL rotations). Interior angles: <side>_knee (hip, knee, ankle), <side>_elbow (shoulder, elbow, wrist), <side>_shoulder (hip, shoulder, elbow), <side>_hip (trunk, hip, knee; the trunk point is the neck where the skeleton has one, else the shoulder), <side>_ankle (knee, ankle, toe) where a toe joint exists; 180 = straight. A backend may add others, e.g. trunk_lean (angle between mid-hip->neck and the camera's up axis, 0 = upright as filmed). Only angles whose joints exist are present.
 */
export interface JointAngles {
  [k: string]: number;
}
