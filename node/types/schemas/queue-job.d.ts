/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */

/**
 * What a producer passes as `data` to `queue.add('pose', data, opts)`. Everything else about the job (attempts, backoff, priority, delay, removeOnComplete) is a BullMQ job option, not data. The same options and client metadata as the folder intake's job sidecar (`<video>.job.json`). A job whose data fails this schema is failed at once, without retry, with E_BAD_JOB_DATA first in its failure reason.
 */
export interface PosedQueueJobData {
  /**
   * The video, as an absolute path on storage every posed host mounts: a Windows path (C:\\posed\\uploads\\a.mov, \\\\wsl$\\<distro>\\...) or a POSIX path (/mnt/c/posed/uploads/a.mov, /srv/share/a.mov). Mapped with posed's path rules (no '..', no NUL, Windows-legal names on drives) and confined to intake.input_roots.
   */
  input: string;
  /**
   * The client's own id. Echoed as client.job_id in the result and error report, and used as the outcome file's stem in the outbox (else <queue>-<BullMQ job id>). Not a Windows device name (CON, PRN, AUX, NUL, COM0-COM9, LPT0-LPT9, with any extension). One that looks like a video file name (ends in a video extension) may only be the input's own file name.
   */
  job_id?: string;
  /**
   * Per-video options, as in the job sidecar.
   */
  options?: {
    /**
     * First frame to process (0-based).
     */
    start_frame?: number;
    /**
     * Frame to stop before (exclusive); greater than start_frame.
     */
    end_frame?: number;
    /**
     * Write mesh vertices (body-model backends only).
     */
    include_mesh?: boolean;
    /**
     * A hint; the daemon runs one backend and names it in the result.
     */
    backend?: string;
    /**
     * The sidecar's priority, one direction in both intakes: 0 (or none) runs first, then 1, 2, ...; a lower number runs sooner. In queue mode the order is BullMQ's `priority` job option, which the Node producer (node/src/queue.mjs) sets from this when its own `priority` argument is not given.
     */
    priority?: number;
    /**
     * Add the old HTTP service's flat fields to every frame line (output.legacy_fields).
     */
    legacy_fields?: boolean;
    /**
     * Also publish <stem>.motion.glb (output.motion_glb).
     */
    motion_glb?: boolean;
    /**
     * With motion_glb, PHALP: each track's SMPL body in the GLB, from the daemon's SMPL file (output.motion_mesh).
     */
    motion_mesh?: boolean;
    /**
     * Also publish <stem>.preview.mp4 (output.preview).
     */
    preview?: boolean;
    /**
     * motion.* settings for this video.
     */
    motion?: {
      smoothing?: boolean;
      fill_gaps?: boolean;
      include_raw?: boolean;
      max_gap_s?: number;
    };
  };
  /**
   * Anything the client wants back (at most 64 KiB as JSON); echoed as client.metadata in the result and error report.
   */
  metadata?: {};
}
