#!/usr/bin/env node
// `npm start [-- --relay-port N --app-port N]`: a relay (embedded SQLite) and the built PWA on
// localhost, ready to pair two windows. The app is built with the relay's URL as its suggested
// catch-all relay, so pairing just works; an unchanged build is reused (scripts/app-build-stamp.js).
// Whatever fails, everything this script started is stopped before it exits.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { appBuildStamp, STAMP_FILE } from './app-build-stamp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';
const APP_DIR = join(ROOT, 'dist', 'app');
const USAGE =
  'usage: npm start -- [--relay-port <port>] [--app-port <port>] (or $SPL_RELAY_PORT, $SPL_APP_PORT; $SPL_RELAY_DB for the relay file)';

/** @param {string} name @param {string} value */
function port(name, value) {
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    console.error(`npm start: ${name} must be a port number (0-65535), not "${value}"\n${USAGE}`);
    process.exit(2);
  }
  return Number(value);
}

/** @returns {{ relayPort: number, appPort: number, relayDb: string }} */
function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: { 'relay-port': { type: 'string' }, 'app-port': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    console.error(`npm start: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  return {
    relayPort: port('--relay-port', values['relay-port'] ?? process.env.SPL_RELAY_PORT ?? '8787'),
    appPort: port('--app-port', values['app-port'] ?? process.env.SPL_APP_PORT ?? '5173'),
    relayDb: resolve(process.env.SPL_RELAY_DB ?? join(ROOT, 'data', 'relay.sqlite')),
  };
}

/**
 * Spawns bin/spl-relay.js and resolves its URL once it logs that it is listening.
 * @param {number} relayPort
 * @param {string} relayDb
 */
function startRelay(relayPort, relayDb) {
  mkdirSync(dirname(relayDb), { recursive: true });
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'spl-relay.js'), '--host', HOST, '--port', String(relayPort), '--db', relayDb], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  /** @type {Promise<string>} */
  const url = new Promise((resolve, reject) => {
    void exited.then((code) =>
      reject(
        new Error(`the relay exited (code ${code}) before listening${relayPort ? `: is port ${relayPort} taken? (--relay-port)` : ''}`),
      ),
    );
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const match = /"url":"(http:\/\/[^"]+)"/.exec(line);
      if (match?.[1]) resolve(match[1]);
      if (process.env.SPL_VERBOSE) console.log(`[relay] ${line}`);
    });
  });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  };
  return { proc, exited, url, stop };
}

/** Fails fast (before a build) when the app port is taken. @param {number} appPort */
function checkPortFree(appPort) {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (e) =>
      reject(
        new Error(
          `the app port ${appPort} is in use (${/** @type {NodeJS.ErrnoException} */ (e).code ?? e.message}): choose another with --app-port or $SPL_APP_PORT`,
        ),
      ),
    );
    probe.listen(appPort, HOST, () => probe.close(() => resolve(undefined)));
  });
}

/** Builds dist/app unless the last build had the same inputs. @param {string} relayUrl */
async function buildApp(relayUrl) {
  const stamp = appBuildStamp(ROOT, { defaultRelay: relayUrl });
  const stampFile = join(APP_DIR, STAMP_FILE);
  if (existsSync(join(APP_DIR, 'index.html')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp) {
    return 'inputs unchanged: reused';
  }
  const { build } = await import('vite');
  process.env.SPL_DEFAULT_RELAY = relayUrl; // read by vite.config.ts
  const started = Date.now();
  await build({ root: ROOT, mode: 'production', logLevel: 'warn' });
  writeFileSync(stampFile, `${stamp}\n`);
  return `built in ${((Date.now() - started) / 1000).toFixed(1)} s`;
}

async function main() {
  const { relayPort, appPort, relayDb } = readOptions();
  /** @type {ReturnType<typeof startRelay> | undefined} */
  let relay;
  /** @type {import('vite').PreviewServer | undefined} */
  let server;
  let stopping = false;
  /** Stops everything started so far, then exits with `code`. */
  const shutdown = async (/** @type {number} */ code) => {
    if (stopping) return;
    stopping = true;
    await server?.close().catch(() => undefined);
    await relay?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => {
    console.log('\nStopping…');
    void shutdown(0);
  });
  process.on('SIGTERM', () => void shutdown(0));

  try {
    relay = startRelay(relayPort, relayDb);
    const relayUrl = await relay.url;
    console.log(`  Relay           ${relayUrl}  (${relayDb}, metrics at ${relayUrl}/metrics)`);
    void relay.exited.then((code) => {
      if (stopping) return;
      console.error(`npm start: the relay stopped unexpectedly (code ${code}).`);
      void shutdown(1);
    });
    await checkPortFree(appPort);
    const how = await buildApp(relayUrl);
    const { preview } = await import('vite');
    server = await preview({ root: ROOT, logLevel: 'warn', preview: { host: HOST, port: appPort, strictPort: true, open: false } });
    console.log(`  Syncropel app   http://${HOST}:${appPort}/  (dist/app, ${how})`);
    console.log('');
    console.log('  Each browser profile is one device: open the app in a normal and a private window, then pair them under "Pair".');
    console.log('  Ctrl-C stops both.');
  } catch (e) {
    console.error(`npm start: ${e instanceof Error ? e.message : String(e)}`);
    await shutdown(1);
  }
}

await main();
