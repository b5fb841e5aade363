// Hand-written declarations for the posed-client API (src/index.mjs). The document types are
// generated from the daemon's JSON Schemas into ./schemas/ (npm run types).
import type { PosedResult } from './schemas/result.js';
import type { PosedErrorReport } from './schemas/error.js';
import type { PosedFrame, Person } from './schemas/frame.js';
import type { PosedStatus } from './schemas/status.js';

export type { PosedResult } from './schemas/result.js';
export type { PosedErrorReport } from './schemas/error.js';
export type { PosedFrame, Person } from './schemas/frame.js';
export type { PosedStatus } from './schemas/status.js';
export type { PosedQueueJobData } from './schemas/queue-job.js';
export type { PosedQueueResult } from './schemas/queue-result.js';

/** A problem found here (`E_CLIENT_*`) or a daemon's error report (`E_*`, with `.report`). */
export class PosedError extends Error {
  constructor(code: string, message: string, extra?: Record<string, unknown>);
  code: string;
  /** The whole error report, when the daemon answered with one. */
  report?: PosedErrorReport;
  hint?: string;
  /** The outcome file it came from (`<stem>.error.json`). */
  published?: string;
  /** Sidecar problems: the field the daemon's E_BAD_SIDECAR report would name. */
  field?: string | null;
  /** Frames damage: which kind (see FRAMES_ERRORS) and the 1-based line. */
  damage?: FramesDamage;
  line?: number;
}

export type FramesDamage = 'missing' | 'cut' | 'json' | 'schema' | 'order' | 'lines' | 'bytes' | 'sha256';
export const FRAMES_ERRORS: Readonly<Record<FramesDamage, string>>;

/** Per-video options, the daemon's names (sidecar `options`). */
export interface JobOptions {
  start_frame?: number;
  end_frame?: number;
  include_mesh?: boolean;
  backend?: string;
  priority?: number;
  legacy_fields?: boolean;
  motion_glb?: boolean;
  motion_mesh?: boolean;
  preview?: boolean;
  motion?: { smoothing?: boolean; fill_gaps?: boolean; include_raw?: boolean; max_gap_s?: number };
}

export interface SubmitOptions {
  /** Your id: names the outcome (`<jobId>.result.json`), comes back as `client.job_id`. */
  jobId?: string;
  metadata?: Record<string, unknown>;
  options?: JobOptions;
  /** The sidecar's `input_path` (the upload's original path, echoed in the outcome). */
  inputPath?: string;
  /** The inbox name; defaults to the file's base name (Windows or POSIX path). */
  name?: string;
}

export interface Liveness {
  verdict: 'alive' | 'stopped' | 'down';
  reason: string;
  /** Whether the pid half of the rule applied (false on Windows and on another kernel). */
  pidChecked: boolean;
}

export type StatusWithLiveness = PosedStatus & { liveness: Liveness };

/** A daemon's current_job for one of your jobs, with the daemon's name, state and liveness. */
export type JobProgress = NonNullable<PosedStatus['current_job']> & { daemon: string; state: PosedStatus['state']; liveness: Liveness };

/** A person as frames() yields it: its keypoints and 3D joints also by name. */
export type NamedPerson = Person & {
  named: {
    keypoints?: Record<string, [number, number, number]>;
    joints_3d?: Record<string, [number, number, number]>;
  };
};
export type NamedFrame = Omit<PosedFrame, 'people'> & { people: NamedPerson[] };

export interface WaitOptions {
  timeoutMs?: number;
  onProgress?: (progress: JobProgress) => void;
  signal?: AbortSignal;
}

export interface PosedClient {
  readonly inbox: string;
  readonly outbox: string;
  /** Copies the video (and its sidecar) into the inbox by .part + rename; resolves with the id to wait on. */
  submit(file: string, options?: SubmitOptions): Promise<string>;
  /** The validated manifest; rejects with PosedError (the report's code, or E_CLIENT_*). */
  wait(id: string, options?: WaitOptions): Promise<PosedResult>;
  frames(result: PosedResult, options?: { validate?: boolean; names?: true }): AsyncGenerator<NamedFrame, void, undefined>;
  frames(result: PosedResult, options: { validate?: boolean; names: false }): AsyncGenerator<PosedFrame, void, undefined>;
  status(): Promise<StatusWithLiveness[]>;
  progress(id: string): Promise<JobProgress | null>;
  validate(doc: unknown): string | null;
}

export interface ClientConfig {
  inbox: string;
  outbox: string;
  schemasDir?: string;
  pollMs?: number;
  maxPollMs?: number;
  brokenJsonGraceMs?: number;
}

export function createClient(config: ClientConfig): PosedClient;

export interface FramesEntry { name: string; lines: number; bytes: number; sha256: string }
export function readFrames(
  file: string,
  entry: FramesEntry,
  options?: { validate?: ((doc: unknown) => string | null) | null; backend?: { keypoint_names?: string[]; joint_names_3d?: string[] } | null },
): AsyncGenerator<PosedFrame | NamedFrame, void, undefined>;
export function nameJoints(person: Person, names: { keypoint_names?: string[]; joint_names_3d?: string[] }): NamedPerson['named'];

export interface Cleaned { removed: string[]; skipped: { file: string; reason: string }[] }
export function cleanInbox(inbox: string, options?: { olderThanMs?: number; failed?: boolean; now?: number }): Promise<Cleaned>;
export function cleanOutbox(outbox: string, options?: { olderThanMs?: number; now?: number }): Promise<Cleaned>;

export const DOWN_AFTER_INTERVALS: number;
export function heartbeatAgeMs(status: PosedStatus, now?: number): number;
export function liveness(status: PosedStatus, options?: { now?: number; mtimeMs?: number }): Liveness;

export function outcomeStem(id: string): string;
export function listOutcomes(outbox: string, stem: string): Promise<{ name: string; kind: 'result' | 'error'; copy: number }[]>;

export const DEFAULT_SCHEMAS_DIR: string;
export function loadValidator(schemasDir?: string): (doc: unknown) => string | null;
export function loadSchemaValidator(file: string, schemasDir?: string): (data: unknown) => string | null;

export function checkJobId(jobId: unknown, videoName?: string): void;
export function checkOptions(options: unknown): void;
export function checkMetadata(metadata: unknown): void;
/** Checks a sidecar document with the daemon's rules; returns its JSON text or throws PosedError. */
export function checkSidecar(doc: unknown, videoName: string): string;
export const MAX_JOB_ID_CHARS: number;
export const MAX_METADATA_BYTES: number;
export const MAX_METADATA_DEPTH: number;
export const MAX_SIDECAR_BYTES: number;
