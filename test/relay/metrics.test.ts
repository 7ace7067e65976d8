/**
 * Metrics privacy and bounds (PROTOCOL.md §5 metrics) against real relay processes: hashed DID
 * labels are keyed (HMAC-SHA256 under a secret kept beside the database, mode 0600), so hashing a
 * list of known DIDs does not reverse them; only the N largest queues get per-DID series; a
 * private listener can take /metrics off the public one.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import { deposit, junkSealed, startRelayProcess, waitFor } from '../../support/relay-process';

const dir = mkdtempSync(join(tmpdir(), 'relay-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const labels = (text: string, name: string): string[] =>
  [...text.matchAll(new RegExp(`^${name}\\{did="([^"]+)"\\}`, 'gm'))].map((m) => m[1]!);

describe('metrics (§5)', () => {
  it('hashed labels are an HMAC under a secret kept beside the database (0600), stable across restarts; a list of DIDs does not reverse them', async () => {
    const db = join(dir, 'hmac', 'relay.sqlite');
    const args = ['--db', db, '--metrics-did-labels', 'hash', '--no-rate-limit'];
    const peers = Array.from({ length: 3 }, () => newPeer());
    let first: string[];
    const relay = await startRelayProcess(args);
    try {
      for (const p of peers) expect((await deposit(relay.url, p.did, junkSealed(p.did))).status).toBe(202);
      const text = await (await fetch(`${relay.url}/metrics`)).text();
      first = labels(text, 'relay_queue_size').sort();
      expect(first).toHaveLength(3);
      for (const p of peers) expect(text).not.toContain(p.did);
      // The attack that reversed the old labels: hash every known DID and look for matches.
      const known = new Set(peers.map((p) => createHash('sha256').update(p.did).digest('hex').slice(0, 16)));
      expect(first.filter((l) => known.has(l))).toEqual([]);
      await waitFor(
        () => relay.logs.some((l) => l.route === '/v1/mailbox/:did' && typeof l.did === 'string' && first.includes(l.did)),
        10_000,
        'a log line with the keyed label',
      );
    } finally {
      expect(await relay.stop()).toBe(0);
    }
    const secretPath = `${db}.metrics-secret`;
    expect(statSync(secretPath).mode & 0o777).toBe(0o600);
    const secret = Buffer.from(readFileSync(secretPath, 'utf8').trim(), 'hex');
    expect(secret.length).toBeGreaterThanOrEqual(16);
    expect(peers.map((p) => createHmac('sha256', secret).update(p.did).digest('hex').slice(0, 16)).sort()).toEqual(first);
    // Restarted on the same database: the same labels.
    const again = await startRelayProcess(args);
    try {
      expect(labels(await (await fetch(`${again.url}/metrics`)).text(), 'relay_queue_size').sort()).toEqual(first);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });

  it('--metrics-secret-file names the key; a bad file is refused at start', async () => {
    const secretFile = join(dir, 'given.secret');
    writeFileSync(secretFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const bob = newPeer();
    const relay = await startRelayProcess(['--metrics-did-labels', 'hash', '--metrics-secret-file', secretFile]);
    try {
      expect((await deposit(relay.url, bob.did, junkSealed(bob.did))).status).toBe(202);
      const expected = createHmac('sha256', Buffer.from('ab'.repeat(32), 'hex'))
        .update(bob.did)
        .digest('hex')
        .slice(0, 16);
      expect(labels(await (await fetch(`${relay.url}/metrics`)).text(), 'relay_queue_size')).toEqual([expected]);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
    const bad = join(dir, 'bad.secret');
    writeFileSync(bad, 'not hex\n');
    await expect(startRelayProcess(['--metrics-did-labels', 'hash', '--metrics-secret-file', bad])).rejects.toThrow(
      /exited \(2\).*metrics secret/s,
    );
  });

  it('only the N largest queues get per-DID series (--metrics-top-queues)', async () => {
    const relay = await startRelayProcess(['--metrics-top-queues', '2', '--no-rate-limit']);
    try {
      const peers = Array.from({ length: 5 }, () => newPeer());
      for (const [i, p] of peers.entries()) {
        for (let k = 0; k <= i; k++) expect((await deposit(relay.url, p.did, junkSealed(p.did))).status).toBe(202);
      }
      const text = await (await fetch(`${relay.url}/metrics`)).text();
      expect(labels(text, 'relay_queue_size').sort()).toEqual([peers[3]!.did, peers[4]!.did].sort());
      expect(text).toContain(`relay_queue_size{did="${peers[4]!.did}"} 5`);
      expect(labels(text, 'relay_oldest_envelope_seconds')).toHaveLength(2);
      expect(text).toMatch(/^relay_unique_receivers 5$/m);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it('--metrics-listen serves /metrics on a private listener; the public one has none', async () => {
    const relay = await startRelayProcess(['--metrics-listen', '127.0.0.1:0']);
    try {
      const line = relay.logs.find((l) => l.msg === 'listening');
      const metricsUrl = line?.metrics_url;
      expect(typeof metricsUrl).toBe('string');
      expect(metricsUrl).not.toBe(relay.url);
      const pub = await fetch(`${relay.url}/metrics`);
      expect(pub.status).toBe(404);
      expect(((await pub.json()) as { error: { code: string } }).error.code).toBe('not_found');
      const priv = await fetch(`${metricsUrl as string}/metrics`);
      expect(priv.status).toBe(200);
      expect(await priv.text()).toContain('relay_deposits_total');
      expect((await fetch(`${metricsUrl as string}/health`)).status).toBe(404); // nothing else there
      expect((await fetch(`${relay.url}/health`)).status).toBe(200);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });
});
