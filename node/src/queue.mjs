// posed queue producer: the Node side of posed's BullMQ intake (docs/queue.md). Tested with
// bullmq 6.7.0 and ioredis 6.0.0 (peer dependencies: `npm i bullmq@6.7.0 ioredis@6.0.0`).
//
// The backend enqueues a video as a BullMQ job named `pose` whose data follows
// daemon/schemas/queue-job.schema.json and the sidecar's rules (both checked here before anything
// reaches Redis); any number of `posed run --queue redis://...` daemons take the jobs. Progress
// arrives as QueueEvents `progress` events; the return value follows queue-result.schema.json; a
// failure's reason starts with posed's error code (`E_TRUNCATED: ...`).
import { Queue, QueueEvents } from 'bullmq';
import { PosedError } from './errors.mjs';
import { DEFAULT_SCHEMAS_DIR, loadSchemaValidator } from './schemas.mjs';
import { checkJobId, checkMetadata, checkOptions } from './sidecar.mjs';

export const JOB_NAME = 'pose';
export const DEFAULT_ATTEMPTS = 3; // crashes, stalls and OOM are retried by BullMQ; bad input never is
export const DEFAULT_BACKOFF = { type: 'exponential', delay: 10_000 };

/** A queue job's failure: `.code` is posed's E_* code from the failure reason, or E_CLIENT_*. */
export class PosedQueueError extends PosedError {
  constructor(code, message, extra = {}) {
    super(code, message, extra);
    this.name = 'PosedQueueError';
  }
}

/** The error code a posed failure reason starts with ("E_TRUNCATED: ..."), or null. */
export function failureCode(reason) {
  const match = /^(E_[A-Z0-9_]+):/.exec(reason ?? '');
  return match ? match[1] : null;
}

// The daemon's bounds (daemon/intake/queue/bounded_json.py): job data deeper or bigger than this
// is never parsed there, and is refused here before a recursive validator or encoder touches it.
export const MAX_JOB_DATA_BYTES = 256 * 1024;
export const MAX_JSON_DEPTH = 32;

/** Why `data` is out of bounds (too deep, too big), or null. Walks with its own stack: never recurses. */
export function jobDataBounds(data, { maxDepth = MAX_JSON_DEPTH, maxBytes = MAX_JOB_DATA_BYTES } = {}) {
  const stack = [[data, 1]];
  while (stack.length) {
    const [value, depth] = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (depth > maxDepth) return `nests deeper than ${maxDepth} levels`;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  const bytes = Buffer.byteLength(JSON.stringify(data) ?? '', 'utf8'); // safe now: the depth is bounded
  return bytes > maxBytes ? `is ${bytes} bytes of JSON; at most ${maxBytes} are accepted` : null;
}

/** data -> null | problem: its bounds, queue-job.schema.json, then the sidecar rules the schema cannot state. */
export function loadJobValidator(schemasDir = DEFAULT_SCHEMAS_DIR) {
  const schema = loadSchemaValidator('queue-job.schema.json', schemasDir);
  return (data) => {
    const bounds = jobDataBounds(data);
    if (bounds) return `data ${bounds}`;
    const problem = schema(data);
    if (problem) return problem;
    try {
      if (data.job_id !== undefined) checkJobId(data.job_id);
      checkOptions(data.options);
      checkMetadata(data.metadata);
    } catch (err) {
      return err.message.replace(/^job sidecar: /, '');
    }
    return null;
  };
}

/**
 * A producer for one queue. `url`: redis://[user:pass@]host:port/db, or rediss:// for TLS.
 * Call close() when done: it holds two Redis connections (the queue and its event stream).
 */
export function createProducer({ url = 'redis://127.0.0.1:6379/0', queue = 'posed', schemasDir } = {}) {
  const connection = { url };
  const jobs = new Queue(queue, { connection });
  const events = new QueueEvents(queue, { connection });
  const validateData = loadJobValidator(schemasDir);
  const ready = events.waitUntilReady(); // events sent before this would be missed

  /** Adds one job; its data is checked first (PosedQueueError E_CLIENT_BAD_JOB_DATA, nothing added). */
  async function enqueue(input, { jobId, metadata, options, attempts = DEFAULT_ATTEMPTS, backoff = DEFAULT_BACKOFF, priority, bullJobId } = {}) {
    const data = { input };
    if (jobId !== undefined) data.job_id = jobId;
    if (options !== undefined) data.options = options;
    if (metadata !== undefined) data.metadata = metadata;
    const problem = validateData(data);
    if (problem) throw new PosedQueueError('E_CLIENT_BAD_JOB_DATA', `job data: ${problem}`, { data });
    await ready;
    const opts = { attempts, backoff, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 30 * 24 * 3600 } };
    // One priority direction in both intakes (README, "Job sidecar"): BullMQ's, 1 before 2, none first.
    const order = priority ?? options?.priority;
    if (order) opts.priority = order;
    if (bullJobId !== undefined) opts.jobId = bullJobId;
    return jobs.add(JOB_NAME, data, opts);
  }

  /** Resolves with the return value; rejects with PosedQueueError(code from the failure reason). */
  async function wait(job, { timeoutMs = 3_600_000, onProgress } = {}) {
    const listener = ({ jobId, data }) => {
      if (jobId === job.id && onProgress) onProgress(data);
    };
    events.on('progress', listener);
    try {
      return await job.waitUntilFinished(events, timeoutMs);
    } catch (err) {
      const reason = err?.message ?? String(err);
      const code = failureCode(reason) ?? (/timed out/i.test(reason) ? 'E_CLIENT_TIMEOUT' : 'E_QUEUE_FAILED');
      const latest = await jobs.getJob(job.id);
      throw new PosedQueueError(code, reason, { jobId: job.id, report: latest?.progress?.error?.report ?? null });
    } finally {
      events.off('progress', listener);
    }
  }

  /** waiting / active / delayed / prioritized / completed / failed counts. */
  const counts = () => jobs.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');

  async function close() {
    await events.close();
    await jobs.close();
  }

  return { queue: jobs, events, enqueue, wait, counts, close };
}
