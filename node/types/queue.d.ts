// Hand-written declarations for posed-client/queue (src/queue.mjs). Needs the peer dependencies
// bullmq 6.7.0 and ioredis 6.0.0, the versions tested.
import type { Job, Queue, QueueEvents } from 'bullmq';
import type { PosedQueueJobData } from './schemas/queue-job.js';
import type { PosedQueueResult } from './schemas/queue-result.js';
import { PosedError, type JobOptions } from './index.js';

export const JOB_NAME: 'pose';
export const DEFAULT_ATTEMPTS: number;
export const DEFAULT_BACKOFF: { type: 'exponential'; delay: number };

export class PosedQueueError extends PosedError {
  jobId?: string;
}

export function failureCode(reason: string | null | undefined): string | null;
export function loadJobValidator(schemasDir?: string): (data: unknown) => string | null;

export interface EnqueueOptions {
  jobId?: string;
  metadata?: Record<string, unknown>;
  options?: JobOptions;
  attempts?: number;
  backoff?: { type: 'exponential' | 'fixed'; delay: number };
  priority?: number;
  bullJobId?: string;
}

export interface Producer {
  queue: Queue<PosedQueueJobData, PosedQueueResult, 'pose'>;
  events: QueueEvents;
  enqueue(input: string, options?: EnqueueOptions): Promise<Job<PosedQueueJobData, PosedQueueResult, 'pose'>>;
  wait(job: Job<PosedQueueJobData, PosedQueueResult, 'pose'>, options?: { timeoutMs?: number; onProgress?: (progress: unknown) => void }): Promise<PosedQueueResult>;
  counts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export function createProducer(options?: { url?: string; queue?: string; schemasDir?: string }): Producer;
