/**
 * PROTOCOL.md §2 in real Chromium, whose WebCrypto Ed25519 is BoringSSL rather than Node's
 * OpenSSL: the probes must find it on the rule (so it verifies), and both backends must give
 * the published answers (Wycheproof, speccheck) there too. vite bundles ./ed25519-browser-entry.ts
 * in memory and a throwaway server on 127.0.0.1 (a secure context) serves it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../../support/browser-harness';
import { build, type Rolldown } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, VECTORS } from '../../support/paths';
import type { Ed25519Page, HexCase, PageVerdict } from './ed25519-browser-page';

const PAGE_HTML =
  '<!doctype html><meta charset="utf-8"><title>ed25519</title><link rel="icon" href="data:,"><script type="module" src="/check.js"></script>';

async function bundle(): Promise<string> {
  const output = await build({
    configFile: false,
    root: ROOT,
    publicDir: false,
    logLevel: 'warn',
    build: {
      write: false,
      target: 'es2022',
      minify: false,
      lib: { entry: join(ROOT, 'test/core/ed25519-browser-entry.ts'), formats: ['es'], fileName: () => 'check.js' },
    },
  });
  const outputs = (Array.isArray(output) ? output : [output]) as Rolldown.RolldownOutput[];
  const entry = outputs.flatMap((o) => o.output).find((chunk): chunk is Rolldown.OutputChunk => chunk.type === 'chunk' && chunk.isEntry);
  if (!entry) throw new Error('vite produced no entry chunk for the Ed25519 check');
  return entry.code;
}

function serve(script: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
    else if (req.url === '/check.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

interface NamedCase extends HexCase {
  readonly name: string;
  readonly valid: boolean;
}

const wycheproof = JSON.parse(readFileSync(join(VECTORS, 'ed25519', 'wycheproof_ed25519_test.json'), 'utf8')) as {
  testGroups: { publicKey: { pk: string }; tests: { tcId: number; comment: string; msg: string; sig: string; result: string }[] }[];
};
const speccheck = JSON.parse(readFileSync(join(VECTORS, 'ed25519', 'speccheck_cases.json'), 'utf8')) as {
  message: string;
  pub_key: string;
  signature: string;
}[];
const CASES: NamedCase[] = [
  ...wycheproof.testGroups.flatMap((g) =>
    g.tests.map((t) => ({
      name: `Wycheproof tcId ${t.tcId} (${t.comment})`,
      pk: g.publicKey.pk,
      msg: t.msg,
      sig: t.sig,
      valid: t.result === 'valid',
    })),
  ),
  ...speccheck.map((c, i) => ({ name: `speccheck case ${i}`, pk: c.pub_key, msg: c.message, sig: c.signature, valid: false })),
];

let browser: Browser | undefined;
let server: Server | undefined;
let result: { backend: 'webcrypto' | 'noble'; verdicts: PageVerdict[] } | undefined;
let userAgent = '';
const pageErrors: string[] = [];

beforeAll(async () => {
  const [script, launched] = await Promise.all([bundle(), launchBrowser()]);
  browser = launched;
  server = await serve(script);
  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${e.name}: ${e.message}`));
  await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => typeof (globalThis as Ed25519Page).checkEd25519 === 'function');
  userAgent = await page.evaluate(() => navigator.userAgent);
  const cases: HexCase[] = CASES.map(({ pk, msg, sig }) => ({ pk, msg, sig }));
  result = await page.evaluate((input) => {
    const check = (globalThis as Ed25519Page).checkEd25519;
    if (!check) throw new Error('the Ed25519 bundle did not load');
    return check(input);
  }, cases);
  // What bare BoringSSL does where it differs from §2: the reason the wrapper exists.
  const differs = CASES.flatMap((c, i) =>
    result?.verdicts[i]?.bare !== c.valid ? [`${c.name}: bare ${String(result?.verdicts[i]?.bare)}`] : [],
  );
  console.info(`Chromium bare WebCrypto Ed25519 differs from §2 on: ${differs.join('; ') || 'nothing'}`);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe('Ed25519 §2 in Chromium', () => {
  it('runs in headless Chromium, whose WebCrypto passes the rule probes and so verifies', () => {
    expect(userAgent).toMatch(/HeadlessChrome/);
    expect(pageErrors).toEqual([]);
    expect(result?.backend).toBe('webcrypto');
  });

  for (const backend of ['webcrypto', 'noble'] as const) {
    it(`${backend}: every Wycheproof and speccheck case gets its published answer`, () => {
      expect(result?.verdicts.length).toBe(CASES.length);
      const wrong = CASES.flatMap((c, i) => (result?.verdicts[i]?.[backend] === c.valid ? [] : [`${c.name}: expected ${c.valid}`]));
      expect(wrong).toEqual([]);
    });
  }
});
