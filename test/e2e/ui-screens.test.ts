/**
 * Every screen, at phone (390×844) and laptop (1280×800) size, light and dark: axe-core finds no
 * accessibility violation, no screen is wider than the window or shows protocol terms, and a screenshot of each is written
 * under test-results/screens/ (the manifest's screenshots come from this run: manifest-*.png).
 * One browser, one device: the sweep changes viewport and colour scheme in place.
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { createInvite, createSigner, didFromPublicKey, generateSecretKey, inviteLink } from '../../src/core';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { addNote, buildApp, Device, launchBrowser, SCREENSHOT_DIR, serveStatic, type StaticServer } from '../../support/browser-harness';

const SIZES = { phone: { width: 390, height: 844 }, laptop: { width: 1280, height: 800 } } as const;
const SCHEMES = ['light', 'dark'] as const;
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Violation {
  readonly where: string;
  readonly id: string;
  readonly help: string;
  readonly targets: string[];
}

let relay: RelayProcess;
let app: { dir: string; cleanup(): Promise<void> };
let server: StaticServer;
let browser: Browser;
let device: Device;
let page: Page;
let thread = '';

beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
  app = await buildApp(relay.url);
  server = await serveStatic(app.dir);
  browser = await launchBrowser();
  device = await Device.create(browser, 'sweep', server.url, SIZES.phone);
  page = await device.open('?e2e=1');
  await mkdir(SCREENSHOT_DIR, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await relay?.stop();
  await app?.cleanup();
});

async function stranger(name: string): Promise<string> {
  const signer = createSigner(generateSecretKey());
  const invite = await createInvite(
    { did: didFromPublicKey(signer.publicKey), name, relays: [relay.url], threads: [], exp: Date.now() + 7 * 86_400_000 },
    signer,
  );
  return inviteLink(`${server.url}?e2e=1`, invite);
}

/** Waits until the screen has loaded what it loads (no "Loading…" / "Checking…" left). */
async function settled(): Promise<void> {
  await page.locator('main h1').first().waitFor();
  await page.waitForFunction(() => {
    const text = document.querySelector('main')?.textContent ?? '';
    return !text.includes('Loading…') && !text.includes('Checking…') && !text.includes('Checking the invite…');
  });
}

async function sweep(name: string, where: string): Promise<Violation[]> {
  const found: Violation[] = [];
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport);
    for (const scheme of SCHEMES) {
      await page.emulateMedia({ colorScheme: scheme });
      if (where) await page.goto(`${server.url}?e2e=1${where}`);
      await settled();
      const label = `${name}-${size}-${scheme}`;
      const result = await page.evaluate(async () => {
        type AxeResult = { id: string; help: string; nodes: { target: string[] }[] };
        const axe = (
          window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeResult[]; passes: AxeResult[] }> } }
        ).axe;
        const run = await axe.run(document, { resultTypes: ['violations'] });
        return {
          passed: run.passes.length,
          violations: run.violations.map((v) => ({ id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) })),
        };
      });
      if (result.passed < 10) found.push({ where: label, id: 'axe-did-not-run', help: `only ${result.passed} rules passed`, targets: [] });
      found.push(...result.violations.map((v) => ({ where: label, ...v })));
      // Words a person knows: no protocol terms on screen (issue 15).
      const jargon = /\brecords?\b|\bLEARN\b|\bunpaired actors\b|dropped.unpaired|\benvelopes?\b|base64|payload/i.exec(
        await page.locator('body').innerText(),
      );
      if (jargon) found.push({ where: label, id: 'jargon', help: `shows “${jargon[0]}”`, targets: [] });
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      if (width > viewport.width)
        found.push({ where: label, id: 'page-too-wide', help: `${width}px wide in a ${viewport.width}px window`, targets: [] });
      // The whole page in a window as tall as it, so the phone's fixed tab bar sits at the bottom.
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) });
      await page.screenshot({ path: join(SCREENSHOT_DIR, `${label}.png`) });
      await page.setViewportSize(viewport);
    }
  }
  return found;
}

async function injectAxe(): Promise<void> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: AXE_SOURCE });
}

describe('every screen, phone and laptop, light and dark', () => {
  it('has no accessibility violation and fits the window', { timeout: 120_000 }, async () => {
    const violations: Violation[] = [];
    await injectAxe();
    violations.push(...(await sweep('onboarding', '')));

    // Some content for the screens: a thread with short, long and URL-ish notes, a paired peer
    // with a long hostile name, an archived thread, and an invite waiting on the Pair screen.
    await page.setViewportSize(SIZES.phone);
    await page.getByLabel('Your name, as your other devices will see it').fill("Ada's phone");
    await page.getByRole('button', { name: 'Create my identity' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    for (const title of ['Old plans', 'Groceries']) {
      await page.getByLabel('Title', { exact: true }).fill(title);
      await page.getByRole('button', { name: 'Create thread' }).click();
      await page.waitForURL(/#\/thread\/th_/);
      if (title === 'Old plans') {
        await page.getByRole('button', { name: 'Archive' }).click();
        await page.goto(`${server.url}?e2e=1#/threads`);
      }
    }
    thread = decodeURIComponent(new URL(page.url()).hash.replace('#/thread/', ''));
    const notes = [
      'Milk, eggs, and the good bread from the corner shop.',
      `A long note: ${'The quick brown fox jumps over the lazy dog. '.repeat(40)}`,
      'https://example.com/a/very/long/path/that/does/not/break/anywhere/naturally/and/keeps/going/on/and/on/and/on',
    ];
    for (const text of notes) await addNote(page, text);
    // The manifest's screenshots (public/screenshots, copied from here; vite.config.ts declares
    // these sizes): viewport-sized, light, before the hostile peer below is paired.
    for (const [size, viewport] of Object.entries(SIZES)) {
      await page.setViewportSize(viewport);
      await page.emulateMedia({ colorScheme: 'light' });
      await page.goto(`${server.url}?e2e=1#/threads`);
      await page.goto(`${server.url}?e2e=1#/thread/${encodeURIComponent(thread)}`);
      await settled();
      // A thread opens at its newest note: the note form's bottom edge is in the window.
      await page.waitForFunction(() => {
        const box = document.querySelector('form.compose')?.getBoundingClientRect();
        return box !== undefined && box.bottom <= window.innerHeight && box.bottom > 0;
      });
      await page.screenshot({ path: join(SCREENSHOT_DIR, `manifest-${size}.png`) });
    }

    await page.setViewportSize(SIZES.phone);
    await page.goto(await stranger(`Bank\u202Egnp.exe${'W'.repeat(120)}`));
    await page.getByTestId('invite-offer').getByRole('button', { name: 'Accept and pair' }).click();
    await page.getByTestId('pairs').locator('li').first().waitFor();
    await page.goto(await stranger('Ben’s laptop'));
    await page.getByTestId('invite-offer').getByText('Expires in').waitFor();

    const screens: [string, string][] = [
      ['threads', '#/threads'],
      ['thread', `#/thread/${encodeURIComponent(thread)}`],
      ['pair', '#/pair'],
      ['relays', '#/relays'],
      ['sync', '#/sync'],
      ['doctor', '#/doctor'],
      ['me', '#/me'],
    ];
    await injectAxe();
    for (const [name, hash] of screens) violations.push(...(await sweep(name, hash)));

    expect(violations, violations.map((v) => `${v.where}: ${v.id} (${v.help}) at ${v.targets.join(', ')}`).join('\n')).toEqual([]);
  });
});
