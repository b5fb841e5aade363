#!/usr/bin/env node
// CLI of the queue producer (prints one JSON line per event; exit 1 if any job failed):
//   node bin/queue-producer.mjs --url redis://127.0.0.1:6379/0 [--queue posed] [--job-id ID]
//        [--metadata JSON] [--options JSON] [--attempts 3] [--no-wait] FILE...
import { parseArgs } from 'node:util';
import { createProducer, DEFAULT_ATTEMPTS } from '../src/queue.mjs';

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

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`queue-producer: ${err.code ?? ''} ${err.message}\n`);
  process.exit(2);
});
