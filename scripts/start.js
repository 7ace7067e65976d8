#!/usr/bin/env node
// `npm start`: a relay (embedded SQLite) and the built PWA on localhost, ready to pair two windows.
// The app is built with the relay's URL as its suggested catch-all relay, so pairing just works.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { build, preview } from 'vite';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';
const RELAY_PORT = Number(process.env.SPL_RELAY_PORT ?? 8787);
const APP_PORT = Number(process.env.SPL_APP_PORT ?? 5173);

/**
 * Spawns bin/spl-relay.js and resolves its URL once it logs that it is listening.
 * @returns {{ proc: import('node:child_process').ChildProcess, exited: Promise<number | null>, url: Promise<string> }}
 */
function startRelay() {
  mkdirSync(join(ROOT, 'data'), { recursive: true });
  const proc = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'spl-relay.js'), '--host', HOST, '--port', String(RELAY_PORT), '--db', join(ROOT, 'data', 'relay.sqlite')],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  /** @type {Promise<string>} */
  const url = new Promise((resolve, reject) => {
    void exited.then((code) => reject(new Error(`the relay exited (code ${code}) before listening`)));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const match = /"url":"(http:\/\/[^"]+)"/.exec(line);
      if (match?.[1]) resolve(match[1]);
      if (process.env.SPL_VERBOSE) console.log(`[relay] ${line}`);
    });
  });
  return { proc, exited, url };
}

async function main() {
  const relay = startRelay();
  const relayUrl = await relay.url;

  process.env.SPL_DEFAULT_RELAY = relayUrl; // read by vite.config.ts
  await build({ root: ROOT, mode: 'production', logLevel: 'warn' });
  const server = await preview({ root: ROOT, preview: { host: HOST, port: APP_PORT, strictPort: true, open: false } });
  const appUrl = `http://${HOST}:${APP_PORT}/`;

  console.log('');
  console.log(`  Syncropel app   ${appUrl}`);
  console.log(`  Relay           ${relayUrl}  (data/relay.sqlite, metrics at ${relayUrl}/metrics)`);
  console.log('');
  console.log('  Each browser profile is one device: open the app in a normal and a private window, then pair them under "Pair".');
  console.log('  Ctrl-C stops both.');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    await server.close();
    if (relay.proc.exitCode === null) relay.proc.kill('SIGTERM');
    await relay.exited;
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  void relay.exited.then((code) => {
    if (!stopping) {
      console.error(`The relay stopped unexpectedly (code ${code}).`);
      void server.close().then(() => process.exit(1));
    }
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
