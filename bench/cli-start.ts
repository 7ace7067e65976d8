/**
 * `npm run bench:cli-start`: wall time from spawn to exit of `spl --help` and `spl-relay --help`
 * (the compiled bins), beside `node -e 0` (the floor: starting Node itself) and, as the "before",
 * the CLI run from TypeScript through tsx. Runs are interleaved so load changes on a shared machine
 * hit every command alike; medians and p90 of N runs (`--runs N`, default 15; tsx: a third of N).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs must be a positive integer');

const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-node.js'), '--quiet'], { cwd: ROOT, encoding: 'utf8' });
if (build.status !== 0) throw new Error(`build:node failed: ${build.stderr}`);

const COMMANDS = {
  node_e0: ['-e', '0'],
  spl_help: [join(ROOT, 'bin', 'spl.js'), '--help'],
  spl_relay_help: [join(ROOT, 'bin', 'spl-relay.js'), '--help'],
  spl_help_tsx: [join(ROOT, 'bin', 'run-ts.js'), join(ROOT, 'src', 'cli', 'main.ts'), '--help'],
} as const;
type Name = keyof typeof COMMANDS;

function once(args: readonly string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return ms;
}

const samples: Record<Name, number[]> = { node_e0: [], spl_help: [], spl_relay_help: [], spl_help_tsx: [] };
const tsxEvery = 3;
for (let i = 0; i < RUNS; i++) {
  for (const name of ['node_e0', 'spl_help', 'spl_relay_help'] as const) samples[name].push(once(COMMANDS[name]));
  if (i % tsxEvery === 0) samples.spl_help_tsx.push(once(COMMANDS.spl_help_tsx));
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
};
const summary = (xs: readonly number[]) => ({ runs: xs.length, median_ms: quantile(xs, 0.5), p90_ms: quantile(xs, 0.9) });
const result = {
  baseline_node_e0: summary(samples.node_e0),
  spl_help: summary(samples.spl_help),
  spl_relay_help: summary(samples.spl_relay_help),
  spl_help_tsx_before: summary(samples.spl_help_tsx),
  spl_help_over_node_ms: Math.round((quantile(samples.spl_help, 0.5) - quantile(samples.node_e0, 0.5)) * 10) / 10,
  spl_relay_help_over_node_ms: Math.round((quantile(samples.spl_relay_help, 0.5) - quantile(samples.node_e0, 0.5)) * 10) / 10,
};
console.log(JSON.stringify(result, null, 2));
