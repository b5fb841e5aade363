/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

/**
 * A video that could not be processed: <outbox>/<stem>.error.json, where <stem> is the sidecar's job_id if one was given, else the video file name, plus ~2, ~3... if that name was taken. Published atomically and never overwritten; a video gets either a result or an error report. schema_version is MAJOR.MINOR: a minor bump only adds optional fields or new error codes; anything that could break a reader bumps the major version. Timestamps are RFC 3339 UTC.
 */
export interface PosedErrorReport {
  /**
   * Document type; selects this schema.
   */
  schema: 'posed.error';
  /**
   * Version of this document's shape, MAJOR.MINOR; this schema accepts every 1.x.
   */
  schema_version: string;
  status: 'error';
  /**
   * The daemon's id for this job (as in its logs and status file). Opaque: match reports by their file name or by client.job_id, not by parsing this.
   */
  job_id: string;
  input: Input;
  error: Error;
  /**
   * How many times the daemon tried this video (worker crashes are retried up to worker.max_attempts).
   */
  attempts: number;
  /**
   * When this report was written.
   */
  created_at: string;
  /**
   * Echo of the job sidecar; absent when there was none or no valid job_id could be read from it (then the report is published under the video's name). A refused sidecar with a valid job_id is answered under that id, with its metadata only where the metadata is valid itself (README, "Job sidecar").
   */
  client?: {
    job_id: string | null;
    /**
     * The sidecar's metadata object, unchanged.
     */
    metadata: {} | null;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
/**
 * The video file this report is about, named both ways.
 */
export interface Input {
  /**
   * File name as dropped into the inbox.
   */
  name: string;
  /**
   * Absolute path as the daemon saw it, WSL/Linux form.
   */
  path: string;
  /**
   * The same file in Windows form, or null when it has none.
   */
  windows_path: string | null;
  /**
   * File size in bytes; null when the file could not be examined (for example it vanished).
   */
  bytes: number | null;
  /**
   * Absolute path (WSL/Linux form) the input is moved to once this report is published: inbox/failed/ (numbered name~2.ext if that name is taken). path is where it was read.
   */
  moved_to?: string;
  /**
   * moved_to in Windows form, as windows_path.
   */
  moved_to_windows_path?: string | null;
  [k: string]: unknown;
}
export interface Error {
  /**
   * Stable machine-readable code to switch on; codes are never renamed, only added (so treat an unknown code like E_INTERNAL). Current codes: E_EMPTY_FILE, E_NOT_A_VIDEO, E_NO_VIDEO_STREAM, E_NO_FRAMES, E_DECODE, E_UNSUPPORTED, E_TOO_LARGE, E_TOO_LONG, E_RESOLUTION_TOO_HIGH, E_INPUT_VANISHED, E_INPUT_CHANGED, E_UNREADABLE, E_BAD_NAME, E_BAD_SIDECAR, E_WORKER_CRASH, E_STALLED, E_TIME_LIMIT, E_OUT_OF_MEMORY, E_BACKEND, E_INTERNAL, E_TRUNCATED, E_BAD_JOB_DATA, E_QUEUE_STALLED, E_TOO_MANY_FRAMES, E_FRAME_RATE_TOO_HIGH.
   */
  code: string;
  /**
   * What went wrong with this video, for people (not for parsing).
   */
  message: string;
  /**
   * What a person can do about it; fixed per code.
   */
  hint: string;
  /**
   * Where it failed, e.g. sidecar, probe, decode, inference, publish; empty if not known.
   */
  stage: string;
  /**
   * 0-based frame where it failed, or null.
   */
  frame_index: number | null;
  /**
   * Code-specific facts, e.g. {"field": "options.start_frame"} for E_BAD_SIDECAR or the exit signal for E_WORKER_CRASH.
   */
  details: {};
  [k: string]: unknown;
}
