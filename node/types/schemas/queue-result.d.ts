/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

/**
 * The return value of a completed `pose` job (job.returnvalue in Node, the value job.waitUntilFinished resolves with): the result's summary and where the full result was published. The result file itself follows result.schema.json, exactly as with the folder intake. A failed job has no return value: its failedReason starts with the error code (E_TRUNCATED: ...), names the error report's path when one was published, and its last progress value (see $defs/progress, stage "failed") carries the report's paths.
 */
export interface PosedQueueResult {
  schema: 'posed.queue-result';
  schema_version: string;
  status: 'ok';
  /**
   * posed's id for the job, as in the result file and the logs: bullmq:<queue>:<BullMQ id>:<enqueue timestamp ms>.
   */
  job_id: string;
  /**
   * Echo of the job data's job_id and metadata; absent when the data had neither.
   */
  client?: {
    job_id?: string | null;
    metadata?: {} | null;
  };
  result: Published;
  /**
   * Every file the result manifest lists, by kind (frames always; motion and preview when asked for), each in both path forms, so the backend can open them without reading the manifest first. Absent only if the manifest could not be read back when the job completed.
   */
  files?: {
    [k: string]: Published;
  };
  /**
   * The result's summary block (frames, frames_with_person, processing_seconds, frames_per_second, ...).
   */
  summary: {
    frames: number;
  };
  /**
   * Host name of the daemon that processed the job.
   */
  host: string;
  /**
   * daemon.name of that daemon.
   */
  daemon: string;
}
export interface Published {
  /**
   * The published file as the daemon names it (WSL/POSIX form).
   */
  path: string;
  /**
   * The same file as Windows names it (C:\\... or \\\\wsl$\\...); null when it has no Windows form.
   */
  windows_path: string | null;
}
