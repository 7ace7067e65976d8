/**
 * Runs once per `vitest run`: compiles the CLI and the relay (scripts/build-node.js, ~0.2 s), so
 * tests that spawn bin/spl.js or bin/spl-relay.js run today's source, never a stale dist/.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../support/paths';

export default function setup(): void {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-node.js'), '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build:node failed (exit ${r.status}):\n${r.stderr}`);
}
