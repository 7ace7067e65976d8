#!/usr/bin/env node
// Runs commands side by side and fails if any fails, printing the output of each that failed.
// Used by `npm run typecheck` (one tsc program per part) and `npm run check` (types, lint, format,
// Svelte): one after another those checks took 43 s on the 2-core CI machine.
// Usage: node scripts/run-parallel.js "<command>" "<command>" …  (each run by the shell)
import { spawn } from 'node:child_process';

const commands = process.argv.slice(2);
if (commands.length === 0) {
  process.stderr.write('usage: run-parallel.js "<command>" …\n');
  process.exit(2);
}

/** @type {{ command: string; code: number | null; out: string }[]} */
const results = await Promise.all(
  commands.map(
    (command) =>
      /** @type {Promise<{ command: string; code: number | null; out: string }>} */ (
        new Promise((resolve) => {
          const child = spawn(command, { shell: true, stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (out += d));
          child.on('close', (code) => resolve({ command, code, out }));
        })
      ),
  ),
);
let failed = false;
for (const r of results) {
  if (r.code === 0) {
    process.stdout.write(`ok: ${r.command}\n`);
    continue;
  }
  failed = true;
  process.stderr.write(`failed (${r.code}): ${r.command}\n${r.out}\n`);
}
process.exit(failed ? 1 : 0);
