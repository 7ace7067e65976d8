/**
 * `spl-relay --app <dir> --app-path /syncropel/`: the built app from the relay's origin, beside
 * the relay routes, in a real relay process. Content types, caching, and no way out of the
 * directory (raw `..`, encoded, double-encoded, backslashes, symlinks).
 */
import { createServer, request } from 'node:http';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStaticApp, normalizeAppPath } from '../../src/relay/static-app';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';

const SECRET = 'do-not-serve-this-secret';
let base: string;
let relay: RelayProcess;

/** A GET with the request target sent byte for byte (fetch would normalise `..` away). */
function rawGet(
  url: string,
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: target, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'spl-static-'));
  const app = join(base, 'app');
  mkdirSync(join(app, 'assets'), { recursive: true });
  mkdirSync(join(app, 'icons'));
  writeFileSync(join(app, 'index.html'), '<!doctype html><title>Syncropel</title>');
  writeFileSync(join(app, 'sw.js'), 'self.addEventListener("fetch", () => {});');
  writeFileSync(join(app, 'manifest.webmanifest'), '{"name":"Syncropel"}');
  writeFileSync(join(app, 'assets', 'index-DkX1abcd.js'), 'console.log(1);');
  writeFileSync(join(app, 'assets', 'index-Bq2zabcd.css'), 'body{}');
  writeFileSync(join(app, 'icons', 'icon-192.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  writeFileSync(join(app, '.env'), SECRET);
  writeFileSync(join(base, 'secret.txt'), SECRET);
  symlinkSync(join(base, 'secret.txt'), join(app, 'linked.txt'));
  relay = await startRelayProcess(['--app', app, '--app-path', 'syncropel']);
});

afterAll(async () => {
  await relay?.stop();
  rmSync(base, { recursive: true, force: true });
});

describe('spl-relay --app', () => {
  it('serves the app under its path with the right types and caching, and the relay beside it', async () => {
    const index = await rawGet(relay.url, '/syncropel/');
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.body).toContain('<title>Syncropel</title>');
    expect((await rawGet(relay.url, '/syncropel/index.html?utm=1')).body).toBe(index.body);
    const sw = await rawGet(relay.url, '/syncropel/sw.js');
    expect([sw.status, sw.headers['content-type'], sw.headers['cache-control']]).toEqual([
      200,
      'text/javascript; charset=utf-8',
      'no-cache',
    ]);
    expect(sw.headers['service-worker-allowed']).toBeUndefined(); // same scope as the page: not needed
    const js = await rawGet(relay.url, '/syncropel/assets/index-DkX1abcd.js');
    expect([js.status, js.headers['content-type'], js.headers['cache-control']]).toEqual([
      200,
      'text/javascript; charset=utf-8',
      'public, max-age=31536000, immutable',
    ]);
    expect((await rawGet(relay.url, '/syncropel/assets/index-Bq2zabcd.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await rawGet(relay.url, '/syncropel/manifest.webmanifest')).headers['content-type']).toBe('application/manifest+json');
    expect((await rawGet(relay.url, '/syncropel/icons/icon-192.png')).headers['content-type']).toBe('image/png');

    // Revalidation: the ETag answers 304 without a body; HEAD has the headers only.
    const again = await rawGet(relay.url, '/syncropel/sw.js', { 'if-none-match': String(sw.headers.etag) });
    expect([again.status, again.body]).toEqual([304, '']);
    const head = await rawGet(relay.url, '/syncropel/sw.js', {}, 'HEAD');
    expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', String(sw.body.length)]);
    expect((await rawGet(relay.url, '/syncropel/sw.js', {}, 'POST')).status).toBe(405);

    // Without the slash, relative asset URLs would resolve one level up: redirect.
    const bare = await rawGet(relay.url, '/syncropel?x=1');
    expect([bare.status, bare.headers.location]).toEqual([301, '/syncropel/?x=1']);

    // The relay's own routes are untouched.
    expect((await rawGet(relay.url, '/health')).body).toBe('{"status":"ok"}');
    const outside = await rawGet(relay.url, '/index.html');
    expect(outside.status).toBe(404);
    expect(outside.body).toContain('not_found');
    expect((await rawGet(relay.url, '/syncropel/missing.js')).status).toBe(404);
  });

  it('never leaves the directory: .., encoded, double-encoded, backslash, symlink, dotfile', async () => {
    const attempts = [
      '/syncropel/../secret.txt',
      '/syncropel/assets/../../secret.txt',
      '/syncropel/%2e%2e/secret.txt',
      '/syncropel/%2E%2E%2Fsecret.txt',
      '/syncropel/..%2fsecret.txt',
      '/syncropel/..%5csecret.txt',
      '/syncropel/..\\secret.txt',
      '/syncropel/%252e%252e%252fsecret.txt',
      '/syncropel/%c0%ae%c0%ae/secret.txt',
      '/syncropel/%00index.html',
      '/syncropel/%zz',
      '/syncropel//etc/passwd',
      '/syncropel/linked.txt',
      '/syncropel/.env',
      '/syncropel/assets/',
    ];
    for (const target of attempts) {
      const r = await rawGet(relay.url, target);
      expect(r.body, target).not.toContain(SECRET);
      expect(r.body, target).not.toContain('root:');
      expect(r.status, target).not.toBe(200);
    }
  });

  it('validates --app and --app-path at startup', async () => {
    await expect(startRelayProcess(['--app', join(base, 'nope')])).rejects.toThrow(/--app .*nope/);
    await expect(startRelayProcess(['--app', base])).rejects.toThrow(/has no index.html: build the app first/);
    await expect(startRelayProcess(['--app', join(base, 'app'), '--app-path', '/a/../b/'])).rejects.toThrow(/--app-path must be/);
    expect(normalizeAppPath('/')).toBe('/');
    expect(normalizeAppPath('syncropel')).toBe('/syncropel/');
    expect(normalizeAppPath('/a/b')).toBe('/a/b/');
  });

  it('fuzz: any request target gets a file of the app verbatim, a redirect or an error; never anything else', async () => {
    const dir = join(base, 'app');
    const app = loadStaticApp(dir, '/syncropel/');
    const served = new Set(
      ['index.html', 'sw.js', 'manifest.webmanifest', 'assets/index-DkX1abcd.js', 'assets/index-Bq2zabcd.css', 'icons/icon-192.png'].map(
        (f) => readFileSync(join(dir, f), 'utf8'),
      ),
    ); // as rawGet decodes bodies
    const server = createServer((req, res) => {
      if (!app.handle(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const piece = fc.constantFrom(
      '..',
      '.',
      '/',
      '//',
      '\\',
      '%2e',
      '%2E',
      '%2f',
      '%5c',
      '%25',
      '%00',
      '%c0%ae',
      '%zz',
      'assets',
      'icons',
      'icon-192.png',
      'index.html',
      'sw.js',
      'secret.txt',
      '.env',
      'linked.txt',
      '?',
      '#',
      'a',
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(piece, { maxLength: 10 }), fc.boolean(), async (pieces, underApp) => {
          const target = `${underApp ? '/syncropel/' : '/'}${pieces.join('')}`;
          const r = await rawGet(url, target);
          expect([200, 301, 304, 404, 418]).toContain(r.status);
          if (r.status === 200) expect(served.has(r.body), target).toBe(true);
          expect(r.body).not.toContain(SECRET);
        }),
        { numRuns: 300 },
      );
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
