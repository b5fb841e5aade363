// posed queue producer: the Node side of posed's BullMQ intake (issue 15).
//
// The backend enqueues a video as a BullMQ job named `pose` whose data follows
// daemon/schemas/queue-job.schema.json (checked here before anything reaches Redis); any number of
// `posed run --queue redis://...` daemons, on any number of GPU hosts, take the jobs. Progress
// arrives as QueueEvents `progress` events; the return value follows queue-result.schema.json; a
// failure's reason starts with posed's error code (`E_TRUNCATED: ...`).
//
//   const posed = createProducer({ url: 'redis://:secret@10.0.0.5:6379/0' });
//   const job = await posed.enqueue('C:\\posed\\uploads\\a.mov', { jobId: 'upload-4711', metadata: { user: 12 } });
//   const result = await posed.wait(job, { onProgress: (p) => console.log(p.percent) });
//
// CLI (prints one JSON line per event; exit 1 if any job failed):
//   node queue-producer.mjs --url redis://127.0.0.1:6379/0 [--queue posed] [--job-id ID]
//        [--metadata JSON] [--options JSON] [--attempts 3] [--no-wait] FILE...
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Ajv2020 from 'ajv/dist/2020.js';
import { Queue, QueueEvents } from 'bullmq';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_SCHEMAS = path.resolve(HERE, '..', '..', 'daemon', 'schemas');
export const JOB_NAME = 'pose';
export const DEFAULT_ATTEMPTS = 3; // crashes, stalls and OOM are retried by BullMQ; bad input never is
export const DEFAULT_BACKOFF = { type: 'exponential', delay: 10_000 };

export class PosedQueueError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'PosedQueueError';
    this.code = code; // posed's E_* code, or E_CLIENT_* for problems found here
    Object.assign(this, extra);
  }
}

/** The error code a posed failure reason starts with ("E_TRUNCATED: ..."), or null. */
export function failureCode(reason) {
  const match = /^(E_[A-Z0-9_]+):/.exec(reason ?? '');
  return match ? match[1] : null;
}

export function loadJobValidator(schemasDir = DEFAULT_SCHEMAS) {
  const schema = JSON.parse(readFileSync(path.join(schemasDir, 'queue-job.schema.json'), 'utf8'));
  const validate = new Ajv2020({ allErrors: false, strict: false }).compile(schema);
  return (data) => (validate(data) ? null : `${validate.errors[0].instancePath || 'data'} ${validate.errors[0].message}`);
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

  async function enqueue(input, { jobId, metadata, options, attempts = DEFAULT_ATTEMPTS, backoff = DEFAULT_BACKOFF, priority, bullJobId } = {}) {
    const data = { input };
    if (jobId !== undefined) data.job_id = jobId;
    if (options !== undefined) data.options = options;
    if (metadata !== undefined) data.metadata = metadata;
    const problem = validateData(data);
    if (problem) throw new PosedQueueError('E_CLIENT_BAD_JOB_DATA', `job data ${problem}`, { data });
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

  /** waiting / active / delayed / completed / failed counts. */
  const counts = () => jobs.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');

  async function close() {
    await events.close();
    await jobs.close();
  }

  return { queue: jobs, events, enqueue, wait, counts, close };
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string', default: 'redis://127.0.0.1:6379/0' },
      queue: { type: 'string', default: 'posed' },
      'job-id': { type: 'string' },
      metadata: { type: 'string' },
      options: { type: 'string' },
      attempts: { type: 'string', default: String(DEFAULT_ATTEMPTS) },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
  const producer = createProducer({ url: values.url, queue: values.queue });
  let failed = 0;
  try {
    const finished = [];
    for (const input of positionals) {
      const job = await producer.enqueue(input, {
        jobId: positionals.length === 1 ? values['job-id'] : undefined,
        metadata: values.metadata ? JSON.parse(values.metadata) : undefined,
        options: values.options ? JSON.parse(values.options) : undefined,
        attempts: Number(values.attempts),
      });
      say({ event: 'added', id: job.id, input });
      if (values['no-wait']) continue;
      // Wait from the moment it is added: a short job may finish before the next one is added.
      finished.push(producer.wait(job, { onProgress: (progress) => say({ event: 'progress', id: job.id, progress }) }).then(
        (returnvalue) => say({ event: 'completed', id: job.id, returnvalue }),
        (err) => {
          failed += 1;
          say({ event: 'failed', id: job.id, code: err.code, reason: err.message, report: err.report ?? null });
        },
      ));
    }
    await Promise.all(finished);
  } finally {
    await producer.close();
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    process.stderr.write(`queue-producer: ${err.code ?? ''} ${err.message}\n`);
    process.exit(2);
  });
}
