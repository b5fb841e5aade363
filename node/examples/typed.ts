// A typed backend, checked by `tsc --noEmit -p examples` (npm run types:check). It imports the
// package by name, as an installed project does (the package resolves itself through `exports`).
import { createClient, PosedError, cleanInbox, cleanOutbox, type PosedResult, type NamedFrame, type JobProgress } from 'posed-client';
import { createProducer, type PosedQueueError } from 'posed-client/queue';

export async function run(file: string): Promise<number> {
  const posed = createClient({ inbox: 'C:\\posed\\inbox', outbox: 'C:\\posed\\outbox' });
  const id: string = await posed.submit(file, { jobId: 'upload-4711', metadata: { user: 12 }, options: { preview: true, motion: { max_gap_s: 0.3 } } });
  let people = 0;
  try {
    const result: PosedResult = await posed.wait(id, { onProgress: (p: JobProgress) => console.log(p.client_job_id, p.percent, p.liveness.verdict) });
    for await (const frame of posed.frames(result)) {
      const f: NamedFrame = frame;
      for (const person of f.people) people += person.named.keypoints?.nose ? 1 : 0;
    }
    console.log(result.client?.job_id, result.summary.frames, result.backend.keypoint_names.length);
  } catch (err) {
    if (err instanceof PosedError) console.error(err.code, err.report?.error.message, err.damage);
    else throw err;
  }
  for (const daemon of await posed.status()) console.log(daemon.daemon.name, daemon.liveness.verdict, daemon.counters.results);
  await cleanInbox(posed.inbox, { olderThanMs: 86_400_000 });
  const { removed } = await cleanOutbox(posed.outbox);
  return people + removed.length;
}

export async function enqueue(): Promise<string | undefined> {
  const producer = createProducer({ url: 'redis://127.0.0.1:6379/0' });
  try {
    const job = await producer.enqueue('C:\\posed\\uploads\\a.mov', { jobId: 'upload-4711', options: { start_frame: 0 } });
    const value = await producer.wait(job);
    return value.result.windows_path ?? value.result.path;
  } catch (err) {
    console.error((err as PosedQueueError).code);
    return undefined;
  } finally {
    await producer.close();
  }
}
