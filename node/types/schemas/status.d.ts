/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

export type Timestamp = string;

/**
 * One running daemon's state: <outbox>/.posed/status/<daemon name>.json, rewritten atomically about every daemon.status_interval_s (2 s). Liveness (README, Health; one rule for every reader): state stopped = stopped cleanly; a daemon on the reader's kernel (same daemon.boot_id and daemon.pid_namespace) whose pid is gone or has another start_time is down at once; otherwise down when min(now - heartbeat_at, now - the file's mtime) exceeds 5 x status_interval_s. schema_version is MAJOR.MINOR: a minor bump only adds optional fields or states. Timestamps are RFC 3339 UTC.
 */
export interface PosedStatus {
  /**
   * Document type; selects this schema.
   */
  schema: 'posed.status';
  /**
   * Version of this document's shape, MAJOR.MINOR; this schema accepts every 1.x.
   */
  schema_version: string;
  daemon: {
    /**
     * daemon.name from the config (host name by default); also the file name.
     */
    name: string;
    /**
     * Unique per daemon start; a new value means the daemon restarted.
     */
    instance_id: string;
    host: string;
    pid: number;
    /**
     * posed package version.
     */
    version: string;
    started_at: Timestamp;
    /**
     * Kernel boot id of the daemon's host (/proc/sys/kernel/random/boot_id); with pid_namespace, tells a reader it can check the pid itself.
     */
    boot_id?: string;
    /**
     * The daemon's PID namespace, e.g. pid:[4026531836].
     */
    pid_namespace?: string;
    /**
     * The daemon process's start time in clock ticks after boot (/proc/<pid>/stat field 22): a reused pid has another.
     */
    start_time?: number;
    [k: string]: unknown;
  };
  /**
   * starting: reading config. loading-models: see loading. ready: idle, waiting for videos. busy: processing current_job. degraded: running but impaired, see degraded_reason (e.g. backend failing to load, outbox not writable). stopping: finishing the current video before exit. stopped: exited cleanly (last write).
   */
  state: 'starting' | 'loading-models' | 'ready' | 'busy' | 'degraded' | 'stopping' | 'stopped';
  /**
   * The configured backend; null before it is chosen.
   */
  backend: null | {
    name: string;
    /**
     * e.g. cpu or cuda:0; null until known.
     */
    device: string | null;
    /**
     * null until the models are loaded.
     */
    model_version: string | null;
    [k: string]: unknown;
  };
  /**
   * Last time the daemon's main loop was alive.
   */
  heartbeat_at: string;
  /**
   * daemon.status_interval_s: the liveness rule counts heartbeat age in these intervals (optional; 2 when absent).
   */
  status_interval_s?: number;
  /**
   * When this file was written.
   */
  updated_at: string;
  /**
   * The video being processed; null when idle.
   */
  current_job: null | {
    /**
     * The daemon's id for this job, the same as job_id in the result or error report that will follow. Opaque; input_name tells which video it is.
     */
    job_id: string;
    /**
     * The producer's own id: the job sidecar's or queue job data's job_id, the same as client.job_id in the outcome; null when none was given. Log lines of the job carry it as client_job_id.
     */
    client_job_id?: string | null;
    /**
     * Video file name in the inbox (queue mode: the input's file name).
     */
    input_name: string;
    frames_done: number;
    /**
     * Estimate from the container; null if unknown.
     */
    frames_total: number | null;
    /**
     * 0..100; null if frames_total is unknown.
     */
    percent: number | null;
    frames_per_second: number | null;
    /**
     * Estimated seconds left; null if unknown.
     */
    eta_seconds: number | null;
    /**
     * e.g. probe, decode, inference, publish.
     */
    stage: string;
    attempt: number;
    started_at: Timestamp;
    [k: string]: unknown;
  };
  /**
   * Videos seen in the inbox and waiting (not counting current_job).
   */
  queue_length: number;
  /**
   * Totals since this daemon instance started.
   */
  counters: {
    results: number;
    errors: number;
    retries: number;
    worker_restarts: number;
    worker_crashes: number;
    [k: string]: number;
  };
  last_error: null | {
    /**
     * An E_* code as in error reports.
     */
    code: string;
    message: string;
    at: Timestamp;
    [k: string]: unknown;
  };
  /**
   * Set while state is loading-models; null otherwise.
   */
  loading: null | {
    /**
     * Human-readable description of what is being loaded.
     */
    what: string;
    since: Timestamp;
    [k: string]: unknown;
  };
  /**
   * Why state is degraded; null otherwise.
   */
  degraded_reason: string | null;
  /**
   * Standing risks that do not stop work, e.g. a rediss:// URL with TLS verification turned off (ssl_cert_reqs=none). Empty when there are none.
   */
  warnings?: string[];
  [k: string]: unknown;
}
