/** Where bin/spl.js is, from source (src/cli/…) and from the compiled bundle (dist/node/…) alike. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function splBin(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const candidate = join(dir, 'bin', 'spl.js');
    if (existsSync(candidate) && existsSync(join(dir, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find bin/spl.js above ${from}`);
  }
}
