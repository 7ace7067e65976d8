/**
 * The engine's shared context: the configuration view is reused, but never stale for another
 * context writing the same store (page and service worker), and failures carry typed codes.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { openIdbPeerStore } from '../../src/store/idb';
import type { PeerStore } from '../../src/store/types';
import { openPeerEngine } from '../../src/sync/engine';
import { isPeerError, PeerError, type PeerErrorCode } from '../../src/sync/errors';
import { newPeer } from '../../support/fixtures';

let seq = 0;
const freshStore = (): Promise<PeerStore> => openIdbPeerStore(`context-${seq++}`, new IDBFactory());

async function rejectsWith(p: Promise<unknown>, code: PeerErrorCode, text: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isPeerError(e, code), `expected PeerError ${code}, got ${String(e)}`).toBe(true);
  expect((e as PeerError).message).toMatch(text);
}

describe('engine context', () => {
  it('a config change written by another engine on the same store is seen at once', async () => {
    const store = await freshStore();
    const page = await openPeerEngine({ store, fetch });
    await page.createIdentity('laptop');
    const worker = await openPeerEngine({ store, fetch }); // the service worker: same store, own cache
    expect(await worker.receiveRelays()).toEqual([]); // folded and cached now
    await page.setRelay('https://relay.example/');
    expect(await worker.receiveRelays()).toEqual(['https://relay.example']);
    await worker.clearRelay('all');
    expect(await page.receiveRelays()).toEqual([]);
  });

  it('reuses the folded configuration while nothing was written, and reads it again after a write', async () => {
    const store = await freshStore();
    let configReads = 0;
    const counting: PeerStore = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (prop === 'recordsByThread' && typeof value === 'function') {
          return (thread: string) => {
            if (thread === 'th_engine_config') configReads++;
            return (value as PeerStore['recordsByThread']).call(target, thread);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const engine = await openPeerEngine({ store: counting, fetch });
    await engine.createIdentity('laptop');
    await engine.setRelay('https://relay.example');
    configReads = 0;
    for (let i = 0; i < 5; i++) await engine.relays();
    await engine.pairs();
    expect(configReads).toBe(1);
    await engine.setRelay('https://other.example', 'all');
    configReads = 0; // the write itself reads the thread for its parents
    expect((await engine.relays()).map((r) => r.url)).toEqual(['https://other.example']);
    await engine.receiveRelays();
    expect(configReads).toBe(1);
  });

  it('names what was wrong with a code, and no command-line words', async () => {
    const engine = await openPeerEngine({ store: await freshStore(), fetch });
    await rejectsWith(engine.emit({ thread: 'th_a', text: 'x' }), 'no_identity', /no identity yet/);
    await rejectsWith(engine.createIdentity('  '), 'invalid_input', /display name is required/);
    await engine.createIdentity('laptop');
    await rejectsWith(engine.createIdentity('again'), 'identity_exists', /already has an identity/);
    await rejectsWith(engine.emit({ thread: 'th_engine_config', text: 'x' }), 'reserved_thread', /reserved/);
    await rejectsWith(engine.emit({ thread: 'not a thread', text: 'x' }), 'invalid_input', /not a thread ID/);
    await rejectsWith(engine.setRelay('ftp://relay.example'), 'invalid_input', /not an http\(s\) URL/);
    const scope = await engine.setRelay('https://relay.example', 'alice').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isPeerError(scope, 'invalid_input')).toBe(true);
    expect((scope as Error).message).not.toMatch(/--/);
    await rejectsWith(engine.clearRelay('did:key:z6Mkno'), 'not_found', /no relay is configured/);
    await rejectsWith(engine.shareThread('th_a', newPeer().did), 'not_found', /not paired/);
    await rejectsWith(engine.acceptShare('th_a'), 'not_found', /no pending share/);
    await rejectsWith(engine.acceptInvite('not an invite'), 'invalid_invite', /.+/);
    const bare = await openPeerEngine({ store: await freshStore(), fetch });
    await bare.createIdentity('phone');
    await rejectsWith(bare.createInvite({ threads: ['th_a'] }), 'no_route', /set a relay first/);
  });
});
