/**
 * The same PeerStore contract in real Chromium against its real IndexedDB: vite bundles
 * test/contracts/peer-store.browser-entry.ts in memory, a throwaway server on 127.0.0.1 (a secure
 * context, so WebCrypto signs) serves it, and each contract test is reported here as its own vitest test.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../../support/browser-harness';
import { build, type Rolldown } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../support/paths';
import { CHROMIUM_CAPABILITIES, CHROMIUM_SUITE_NAME, type StoreContractPage } from '../contracts/peer-store.browser-page';
import { idbUpgradeTestNames } from '../contracts/idb-upgrade';
import { peerStoreContractTestNames } from '../contracts/peer-store';
import type { ContractRunReport } from '../contracts/mini-runner';

const PAGE_HTML =
  '<!doctype html><meta charset="utf-8"><title>store contract</title><link rel="icon" href="data:,"><script type="module" src="/contract.js"></script>';

/** Bundles the in-page runner (contract + IdbPeerStore + core) into one ES module, in memory. */
async function bundleRunner(): Promise<string> {
  const output = await build({
    configFile: false, // not the app's config: no PWA or Svelte plugins
    root: ROOT,
    publicDir: false,
    logLevel: 'warn',
    build: {
      write: false,
      target: 'es2022',
      minify: false,
      sourcemap: 'inline', // readable stacks in failure reports
      lib: { entry: join(ROOT, 'test/contracts/peer-store.browser-entry.ts'), formats: ['es'], fileName: () => 'contract.js' },
    },
  });
  const outputs = (Array.isArray(output) ? output : [output]) as Rolldown.RolldownOutput[];
  const entry = outputs.flatMap((o) => o.output).find((chunk): chunk is Rolldown.OutputChunk => chunk.type === 'chunk' && chunk.isEntry);
  if (!entry) throw new Error('vite produced no entry chunk for the store contract');
  return entry.code;
}

function serve(script: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
    else if (req.url === '/contract.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const names = [...peerStoreContractTestNames(CHROMIUM_SUITE_NAME, CHROMIUM_CAPABILITIES), ...idbUpgradeTestNames(CHROMIUM_SUITE_NAME)];
let browser: Browser | undefined;
let server: Server | undefined;
let report: ContractRunReport | undefined;
let userAgent = '';
const pageErrors: string[] = [];

beforeAll(async () => {
  const [script, launched] = await Promise.all([bundleRunner(), launchBrowser()]);
  browser = launched;
  server = await serve(script);
  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${e.name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => typeof (globalThis as StoreContractPage).runStoreContract === 'function');
  userAgent = await page.evaluate(() => navigator.userAgent);
  report = await page.evaluate(() => {
    const run = (globalThis as StoreContractPage).runStoreContract;
    if (!run) throw new Error('the contract bundle did not load');
    return run();
  });
  for (const note of report.notes) console.info(note);
  console.info(`${CHROMIUM_SUITE_NAME}: ${names.length} contract tests ran in ${report.durationMs.toFixed(0)} ms`);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe('PeerStore contract in Chromium (real IndexedDB)', () => {
  it('ran every contract test in headless Chromium', () => {
    expect(userAgent).toMatch(/HeadlessChrome/);
    expect(names.length).toBeGreaterThan(0);
    const ran = [...(report?.passed ?? []), ...(report?.failed.map((f) => f.name) ?? [])];
    expect(ran.sort()).toEqual([...names].sort());
  });

  it('raised no uncaught errors or unhandled rejections in the page', () => {
    expect(pageErrors).toEqual([]);
  });

  for (const name of names) {
    it(name, () => {
      const failure = report?.failed.find((f) => f.name === name);
      if (failure) throw new Error(`failed in Chromium: ${failure.error}`);
      expect(report?.passed).toContain(name);
    });
  }
});
