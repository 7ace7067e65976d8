/**
 * `npm run bench`: every benchmark, one after the other (they would skew each other on a small
 * machine), printed as one JSON object keyed by benchmark.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCHES = ['cli-start', 'relay', 'ingest', 'convergence', 'scale'] as const;

function run(name: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['bin/run-ts.js', `bench/${name}.ts`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => (out += c));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/${name}.ts exited with ${code}`));
      const start = out.indexOf('{');
      try {
        resolve(JSON.parse(out.slice(start)));
      } catch {
        reject(new Error(`bench/${name}.ts printed no JSON object`));
      }
    });
  });
}

const results: Record<string, unknown> = {};
for (const name of BENCHES) results[name] = await run(name);
console.log(JSON.stringify(results, null, 2));
