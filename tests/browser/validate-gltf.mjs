// Validate one .glb with the Khronos glTF validator; print its report's summary as one JSON line.
// Usage: node validate-gltf.mjs FILE.glb
import { readFile } from 'node:fs/promises';
import validator from 'gltf-validator';

const file = process.argv[2];
const bytes = new Uint8Array(await readFile(file));
const report = await validator.validateBytes(bytes, { maxIssues: 200 });
const { numErrors, numWarnings, numInfos, numHints, messages } = report.issues;
console.log(JSON.stringify({
  numErrors, numWarnings, numInfos, numHints,
  messages: messages.slice(0, 50).map((m) => ({ code: m.code, severity: m.severity, message: m.message, pointer: m.pointer })),
  info: report.info,
}));
