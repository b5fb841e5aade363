// types/schemas/*.d.ts from ../daemon/schemas/*.schema.json with json-schema-to-typescript.
// `--check` regenerates in memory and fails (exit 1) when a checked-in file differs: the test
// suite runs it, so a schema change without `npm run types` fails CI.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const SCHEMAS = fileURLToPath(new URL('../../daemon/schemas/', import.meta.url));
const OUT = fileURLToPath(new URL('../types/schemas/', import.meta.url));
const TYPE_NAMES = {
  'result.schema.json': 'PosedResult',
  'error.schema.json': 'PosedErrorReport',
  'frame.schema.json': 'PosedFrame',
  'status.schema.json': 'PosedStatus',
  'queue-job.schema.json': 'PosedQueueJobData',
  'queue-result.schema.json': 'PosedQueueResult',
};
const BANNER = '/* Generated from daemon/schemas/ by scripts/gen-types.mjs (json-schema-to-typescript). Do not edit: run `npm run types`. */';

export async function generate() {
  const files = {};
  for (const [file, name] of Object.entries(TYPE_NAMES)) {
    const schema = JSON.parse(await fs.readFile(path.join(SCHEMAS, file), 'utf8'));
    schema.title = name; // the exported type's name; the schema's own title is a sentence
    delete schema.$id; // no network lookups, ever
    files[file.replace('.schema.json', '.d.ts')] = await compile(schema, name, {
      bannerComment: BANNER,
      cwd: SCHEMAS,
      additionalProperties: false, // only where the schema says so: explicit `true` still wins
      strictIndexSignatures: false,
      style: { singleQuote: true, printWidth: 120 },
    });
  }
  return files;
}

const check = process.argv.includes('--check');
const files = await generate();
const stale = [];
if (!check) await fs.mkdir(OUT, { recursive: true });
for (const [name, text] of Object.entries(files)) {
  const target = path.join(OUT, name);
  if (check) {
    const current = await fs.readFile(target, 'utf8').catch(() => null);
    if (current !== text) stale.push(name);
  } else {
    await fs.writeFile(target, text);
  }
}
if (stale.length) {
  console.error(`types/schemas/ is out of date for ${stale.join(', ')}: run \`npm run types\` in node/`);
  process.exit(1);
}
