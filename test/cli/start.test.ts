/**
 * `npm start` (scripts/start.js): whatever fails, nothing it started is left running; and the
 * app build is reused only while its inputs (scripts/app-build-stamp.js) are unchanged.
 */
import { runToExit } from '../../support/process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appBuildStamp } from '../../scripts/app-build-stamp.js';
import { ROOT } from '../../support/paths';
import { cleanEnv } from './helpers';

const temps: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'spl-start-'));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Resolves whether something accepts TCP connections on 127.0.0.1:`port` now. */
const accepting = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('npm start', () => {
  it('exits non-zero when the app port is taken, and stops the relay it started', async () => {
    const occupier: Server = createServer();
    await new Promise<void>((r) => occupier.listen(0, '127.0.0.1', r));
    const appPort = (occupier.address() as { port: number }).port;
    try {
      const { code, stdout, stderr } = await runToExit({
        name: 'npm start',
        args: [join(ROOT, 'scripts', 'start.js')],
        env: cleanEnv({ SPL_RELAY_PORT: '0', SPL_APP_PORT: String(appPort), SPL_RELAY_DB: join(tempDir(), 'relay.sqlite') }),
      });
      expect(code, stderr).toBe(1);
      expect(stderr).toContain(`the app port ${appPort} is in use`);
      expect(stderr).toContain('--app-port');
      // The relay did start (it printed its URL) and is gone now: its port accepts nothing.
      const relayPort = Number(/Relay +http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
      expect(relayPort).toBeGreaterThan(0);
      expect(await accepting(relayPort)).toBe(false);
    } finally {
      await new Promise<void>((r) => occupier.close(() => r()));
    }
  });

  it('rejects a bad port with a usage line (exit 2), before starting anything', async () => {
    const { code, stderr } = await runToExit({
      name: 'npm start',
      args: [join(ROOT, 'scripts', 'start.js'), '--app-port', 'http'],
      env: cleanEnv(),
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^npm start: --app-port must be a port number \(0-65535\), not "http"\nusage: npm start -- \[--relay-port <port>\] \[--app-port <port>\]/,
    );
  });
});

describe('the app build npm start runs', () => {
  it('prints nothing at log level warn: no worker-build chatter, no Rolldown timing notes', async () => {
    const outDir = tempDir();
    // The build as scripts/start.js runs it, in its own process: everything it prints is captured.
    const script = `import { build } from 'vite'; await build({ root: ${JSON.stringify(ROOT)}, mode: 'production', logLevel: 'warn', build: { outDir: ${JSON.stringify(outDir)}, emptyOutDir: true, sourcemap: false } });`;
    const build = await runToExit(
      {
        name: 'vite build',
        args: ['--input-type=module', '-e', script],
        env: cleanEnv({ SPL_DEFAULT_RELAY: 'http://127.0.0.1:8787', NODE_ENV: 'production' }),
      },
      110_000,
    );
    const out = build.stdout + build.stderr;
    expect(build.code, out).toBe(0);
    expect(out).toBe('');
    expect(existsSync(join(outDir, 'sw.js')) && existsSync(join(outDir, 'index.html'))).toBe(true);
  }, 120_000);
});

describe('app build stamp', () => {
  it('changes with any input file or the built-in relay, and only then', () => {
    const root = tempDir();
    mkdirSync(join(root, 'src', 'ui'), { recursive: true });
    writeFileSync(join(root, 'src', 'ui', 'App.svelte'), '<p>one</p>');
    writeFileSync(join(root, 'index.html'), '<html></html>');
    const inputs = ['src/ui', 'index.html', 'public'];
    const first = appBuildStamp(root, { defaultRelay: 'http://127.0.0.1:8787', inputs });
    expect(appBuildStamp(root, { defaultRelay: 'http://127.0.0.1:8787', inputs })).toBe(first);
    expect(appBuildStamp(root, { defaultRelay: 'http://127.0.0.1:9999', inputs })).not.toBe(first);
    writeFileSync(join(root, 'src', 'ui', 'App.svelte'), '<p>two</p>');
    const edited = appBuildStamp(root, { defaultRelay: 'http://127.0.0.1:8787', inputs });
    expect(edited).not.toBe(first);
    mkdirSync(join(root, 'public'));
    writeFileSync(join(root, 'public', 'icon.png'), 'png');
    expect(appBuildStamp(root, { defaultRelay: 'http://127.0.0.1:8787', inputs })).not.toBe(edited);
  });
});
