/**
 * Storage pressure and integrity (PROTOCOL.md §5 "Storage pressure") against real relay processes
 * on real SQLite files: limits answered with 507 storage_full before the disk is full (on a small
 * tmpfs this test mounts), receive/ack/sweep working at the limit, /health 503 when the database
 * cannot commit, a damaged WAL refused at start, an idle WAL truncated, and limits that hold for
 * two relay processes on one file. We run as root: a failed mount fails the test (never skipped).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import { deposit, junkSealed, runRelayToExit, signedAck, signedReceive, startRelayProcess, waitFor } from '../../support/relay-process';

const dir = mkdtempSync(join(tmpdir(), 'relay-storage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Mounts a tmpfs of `mb` MiB at a fresh directory; the callback runs, then it is unmounted. */
async function withTmpfs(mb: number, fn: (path: string) => Promise<void>): Promise<void> {
  const path = mkdtempSync(join(dir, 'tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', path]); // throws (fails the test) if not permitted
  try {
    await fn(path);
  } finally {
    execFileSync('umount', ['-l', path]);
  }
}

interface ErrorBody {
  error: { code: string; message: string };
}

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe('storage pressure (§5)', () => {
  it('answers 507 storage_full before the disk is full; receive, ack and the sweep keep working; room returns after acks', async () => {
    await withTmpfs(8, async (mnt) => {
      const relay = await startRelayProcess([
        '--db',
        join(mnt, 'relay.sqlite'),
        '--no-rate-limit',
        '--max-db-bytes',
        '3000000',
        '--min-free-disk-bytes',
        '2000000',
        '--min-ttl',
        '1',
        '--sweep-interval',
        '0.3',
      ]);
      try {
        const bob = newPeer();
        const carol = newPeer();
        // Short-lived mail, for the sweep to delete once the relay is at its limit.
        for (let i = 0; i < 3; i++)
          expect((await deposit(relay.url, carol.did, { ...junkSealed(carol.did, 48_000), ttl_seconds: 1 })).status).toBe(202);
        const accepted: string[] = [];
        let refused: ErrorBody | undefined;
        for (let i = 0; i < 200 && !refused; i++) {
          const env = junkSealed(bob.did, 48_000); // ~64 KB each
          const res = await deposit(relay.url, bob.did, env);
          if (res.status === 202) accepted.push(env.id as string);
          else {
            expect(res.status).toBe(507);
            refused = (await res.json()) as ErrorBody;
          }
        }
        expect(refused?.error.code).toBe('storage_full');
        expect(accepted.length).toBeGreaterThan(5);
        // Limits, not the disk: there is still room on it, so owners can drain.
        expect((await fetch(`${relay.url}/health`)).status).toBe(200);
        // The sweep deletes expired mail at the limit.
        await waitFor(
          async () => (await metric(relay.url, 'relay_envelopes_expired_total')) >= 3,
          15_000,
          'the sweep at the storage limit',
        );
        // Receive and ack at the limit.
        const got = await signedReceive(relay.url, bob.did, bob.signer, { limit: 500 });
        expect(got.status).toBe(200);
        const ids = ((await got.json()) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id);
        expect(ids).toEqual(accepted);
        const ack = await signedAck(relay.url, bob.did, bob.signer, ids);
        expect(ack.status).toBe(200);
        expect(await ack.json()).toEqual({ removed: accepted.length });
        // Drained: deposits are taken again (freed pages count as room).
        await waitFor(
          async () => (await deposit(relay.url, bob.did, junkSealed(bob.did, 48_000))).status === 202,
          15_000,
          'room after the acks',
        );
        expect(await metric(relay.url, 'relay_rate_limit_hits_total{kind="storage_full"}')).toBeGreaterThanOrEqual(1);
      } finally {
        expect(await relay.stop()).toBe(0);
      }
    });
  });

  it('/health answers 503 when the database cannot commit (read-only), and deposits fail', async () => {
    await withTmpfs(8, async (mnt) => {
      const db = join(mnt, 'relay.sqlite');
      const first = await startRelayProcess(['--db', db, '--min-free-disk-bytes', '0']);
      const bob = newPeer();
      expect((await deposit(first.url, bob.did, junkSealed(bob.did))).status).toBe(202);
      await first.kill9(); // leaves the WAL and its index: SQLite can then open the file read-only
      const ro = mkdtempSync(join(dir, 'ro-'));
      execFileSync('mount', ['--bind', mnt, ro]);
      try {
        execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
        const relay = await startRelayProcess(['--db', join(ro, 'relay.sqlite'), '--min-free-disk-bytes', '0']);
        try {
          for (let i = 0; i < 3; i++) {
            const health = await fetch(`${relay.url}/health`);
            expect(health.status).toBe(503);
            const body = (await health.json()) as { status: string; error: { code: string; message: string } };
            expect(body.status).toBe('unavailable');
            expect(body.error.message).toMatch(/cannot commit.*readonly/);
          }
          const dep = await deposit(relay.url, bob.did, junkSealed(bob.did));
          expect(dep.status).toBeGreaterThanOrEqual(500);
          expect((await fetch(`${relay.url}/health`)).status).toBe(503);
        } finally {
          await relay.stop();
        }
      } finally {
        execFileSync('umount', ['-l', ro]);
      }
    });
  });
});

describe('read-only database without its WAL files', () => {
  it('refuses to start with a message naming the file (exit 1), rather than serve deposits that fail', async () => {
    await withTmpfs(8, async (mnt) => {
      const db = join(mnt, 'relay.sqlite');
      const first = await startRelayProcess(['--db', db, '--min-free-disk-bytes', '0']);
      const code = await first.stop(); // clean stop: no -wal or -shm left
      expect(code).toBe(0);
      const ro = mkdtempSync(join(dir, 'ro-'));
      execFileSync('mount', ['--bind', mnt, ro]);
      try {
        execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
        const run = await runRelayToExit(['--host', '127.0.0.1', '--port', '0', '--db', join(ro, 'relay.sqlite')]);
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`cannot open the database ${join(ro, 'relay.sqlite')}`);
        expect(run.stdout).not.toContain('listening');
      } finally {
        execFileSync('umount', ['-l', ro]);
      }
    });
  });
});

describe('integrity at start', () => {
  /** A database with 320 committed transactions still in its WAL (a crash image), for `did`. */
  function crashImage(did: string): { db: string; ids: string[] } {
    const src = join(mkdtempSync(join(dir, 'wal-src-')), 'relay.sqlite');
    const out = mkdtempSync(join(dir, 'wal-img-'));
    const conn = new Database(src);
    conn.pragma('journal_mode = WAL');
    conn.pragma('wal_autocheckpoint = 0');
    // The version 1 relay schema (the relay upgrades it when it opens the image).
    conn.exec(`CREATE TABLE envelopes (seq INTEGER PRIMARY KEY, to_did TEXT NOT NULL, id TEXT NOT NULL, from_did TEXT, body TEXT NOT NULL,
      size INTEGER NOT NULL, deposited_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, UNIQUE (to_did, id))`);
    const insert = conn.prepare(
      'INSERT INTO envelopes (to_did, id, from_did, body, size, deposited_at, expires_at) VALUES (?, ?, NULL, ?, ?, ?, ?)',
    );
    const ids: string[] = [];
    const now = Date.now();
    for (let i = 0; i < 320; i++) {
      const env = junkSealed(did, 600);
      const body = JSON.stringify(env);
      insert.run(did, env.id, body, body.length, now + i, now + 86_400_000); // one transaction each
      ids.push(env.id as string);
    }
    // Copy while the connection is open: what a crash leaves on disk.
    copyFileSync(src, join(out, 'relay.sqlite'));
    copyFileSync(`${src}-wal`, join(out, 'relay.sqlite-wal'));
    conn.close();
    return { db: join(out, 'relay.sqlite'), ids };
  }

  it('refuses a WAL whose early frame is damaged (SQLite would silently drop later commits): exit 3, clear message', async () => {
    const bob = newPeer();
    const { db } = crashImage(bob.did);
    const wal = `${db}-wal`;
    expect(statSync(wal).size).toBeGreaterThan(100_000);
    // Flip one byte in the page data of frame 20 (header 32 bytes; frame = 24 + 4096).
    const fd = openSync(wal, 'r+');
    const at = 32 + 19 * (24 + 4096) + 24 + 1000;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);
    const run = await runRelayToExit(['--host', '127.0.0.1', '--port', '0', '--db', db]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/refusing to serve .*write-ahead log.*frame 20 .*checksum/s);
    expect(run.stdout).not.toContain('listening');
  });

  it('serves every envelope of an undamaged crash image', async () => {
    const bob = newPeer();
    const { db, ids } = crashImage(bob.did);
    const relay = await startRelayProcess(['--db', db]);
    try {
      const got = await signedReceive(relay.url, bob.did, bob.signer, { limit: 500 });
      expect(((await got.json()) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id)).toEqual(ids);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it('refuses a database that fails PRAGMA quick_check (exit 3)', async () => {
    const bob = newPeer();
    const path = join(mkdtempSync(join(dir, 'qc-')), 'relay.sqlite');
    const first = await startRelayProcess(['--db', path]);
    for (let i = 0; i < 50; i++) expect((await deposit(first.url, bob.did, junkSealed(bob.did, 2000))).status).toBe(202);
    expect(await first.stop()).toBe(0); // checkpointed into the file, no WAL left
    // Scribble over a whole b-tree page in the middle of the file (the envelope pages fill most
    // of it; not the header page), so the damage does not depend on the schema's page layout.
    const middlePage = Math.floor(statSync(path).size / 2 / 4096);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * Math.max(1, middlePage));
    closeSync(fd);
    const run = await runRelayToExit(['--host', '127.0.0.1', '--port', '0', '--db', path]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/refusing to serve .*(quick_check|damaged|malformed)/s);
  });
});

describe('WAL housekeeping and several processes', () => {
  it('truncates the WAL once the relay is idle', async () => {
    const bob = newPeer();
    const path = join(mkdtempSync(join(dir, 'trunc-')), 'relay.sqlite');
    const relay = await startRelayProcess(['--db', path, '--no-rate-limit']);
    try {
      for (let i = 0; i < 300; i += 50) {
        const res = await Promise.all(Array.from({ length: 50 }, () => deposit(relay.url, bob.did, junkSealed(bob.did, 4000))));
        expect(res.every((r) => r.status === 202)).toBe(true);
      }
      const size = (): number => {
        try {
          return statSync(`${path}-wal`).size;
        } catch {
          return 0;
        }
      };
      await waitFor(() => size() === 0, 20_000, 'the idle WAL to be truncated');
      expect(statSync(path).size).toBeGreaterThan(300 * 4000); // the data moved into the database
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it('two relay processes on one SQLite file with --cap 5 queue exactly 5', async () => {
    const bob = newPeer();
    const path = join(mkdtempSync(join(dir, 'two-')), 'relay.sqlite');
    mkdirSync(join(path, '..'), { recursive: true });
    const a = await startRelayProcess(['--db', path, '--cap', '5', '--no-rate-limit']);
    const b = await startRelayProcess(['--db', path, '--cap', '5', '--no-rate-limit']);
    try {
      const res = await Promise.all(
        Array.from({ length: 40 }, (_, i) => deposit(i % 2 === 0 ? a.url : b.url, bob.did, junkSealed(bob.did))),
      );
      const statuses = res.map((r) => r.status);
      expect(statuses.filter((s) => s === 202)).toHaveLength(5);
      expect(statuses.filter((s) => s === 507)).toHaveLength(35);
      for (const relay of [a, b]) {
        const got = await signedReceive(relay.url, bob.did, bob.signer, { limit: 500 });
        expect(((await got.json()) as { envelopes: unknown[] }).envelopes).toHaveLength(5);
      }
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
    }
  });
});
