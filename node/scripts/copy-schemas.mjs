// npm pack's prepack/postpack: the tarball carries a copy of ../daemon/schemas/*.schema.json in
// schemas/ (the package reads them from there once installed); postpack removes the copy so the
// repository keeps one source of truth.
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const source = fileURLToPath(new URL('../../daemon/schemas/', import.meta.url));
const target = fileURLToPath(new URL('../schemas/', import.meta.url));
await fs.rm(target, { recursive: true, force: true });
if (!process.argv.includes('--remove')) {
  await fs.mkdir(target);
  for (const name of (await fs.readdir(source)).filter((n) => n.endsWith('.schema.json'))) {
    await fs.copyFile(path.join(source, name), path.join(target, name));
  }
}
