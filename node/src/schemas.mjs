// The daemon's JSON Schemas, compiled once per folder. An installed package reads the copy its
// tarball carries in schemas/ (npm pack's prepack step); in the repository they are read from
// daemon/schemas/, the one source (a schemas/ left by a pack in progress is never read there).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const PACKED = fileURLToPath(new URL('../schemas/', import.meta.url));
const REPOSITORY = fileURLToPath(new URL('../../daemon/schemas/', import.meta.url));
const INSTALLED = fileURLToPath(import.meta.url).split(path.sep).includes('node_modules');
export const DEFAULT_SCHEMAS_DIR = !INSTALLED && existsSync(path.join(REPOSITORY, 'result.schema.json')) ? REPOSITORY : PACKED;

const SCHEMA_FILES = {
  'posed.result': 'result.schema.json',
  'posed.error': 'error.schema.json',
  'posed.status': 'status.schema.json',
  'posed.frame': 'frame.schema.json',
};

function compiler() {
  const ajv = new Ajv2020({ allErrors: false, strict: false });
  addFormats(ajv);
  return ajv;
}

function describe(check) {
  return check.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

/** Returns a function doc -> null when valid, else a short description of what is wrong. */
export function loadValidator(schemasDir = DEFAULT_SCHEMAS_DIR) {
  const ajv = compiler();
  const validators = {};
  return (doc) => {
    const file = doc && typeof doc === 'object' ? SCHEMA_FILES[doc.schema] : undefined;
    if (!file) return `unknown document schema ${JSON.stringify(doc?.schema)}`;
    // Read at first use; synchronous so that loadValidator() and validate() stay synchronous.
    validators[file] ??= ajv.compile(JSON.parse(readFileSync(path.join(schemasDir, file), 'utf8')));
    const check = validators[file];
    return check(doc) ? null : describe(check);
  };
}

/** One schema file as a validator: data -> null | problem (queue job data has no `schema` key). */
export function loadSchemaValidator(file, schemasDir = DEFAULT_SCHEMAS_DIR) {
  const check = compiler().compile(JSON.parse(readFileSync(path.join(schemasDir, file), 'utf8')));
  return (data) => (check(data) ? null : describe(check));
}
