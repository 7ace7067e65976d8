/**
 * Deposit tokens end to end (PROTOCOL.md §5.1) between real engines and a real relay process: a
 * stranger who knows a DID fills only its unsolicited quota; the peer's paired devices deposit
 * with its token, pairing replies carry the inviter's token, and a token ends with its pair.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlainEnvelope, sealEnvelope, serializeEnvelope, signRecord } from '../../src/core';
import { openIdbPeerStore } from '../../src/store/idb';
import { openPeerEngine, type PeerEngine } from '../../src/sync/engine';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { newPeer, note } from '../../support/fixtures';

const QUOTA = 20;
let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(['--db', ':memory:', '--no-rate-limit', '--unsolicited-envelopes', String(QUOTA)]);
});
afterAll(async () => {
  await relay.stop();
});

let seq = 0;
async function peer(name: string): Promise<PeerEngine> {
  const store = await openIdbPeerStore(`adm-${name}-${seq++}`, new IDBFactory());
  const engine = await openPeerEngine({ store, fetch });
  await engine.createIdentity(name);
  await engine.setRelay(relay.url);
  return engine;
}
const didOf = (e: PeerEngine) => e.identity()!.did;

/** Tokenless sealed junk for `did` until the relay says 429 unsolicited_quota; returns how many got in. */
async function flood(did: string): Promise<number> {
  const mallory = newPeer();
  let accepted = 0;
  for (let i = 0; i < QUOTA * 3; i++) {
    const rec = await signRecord(note(mallory.did, `junk ${i}`, i, 'th_junk'), mallory.signer);
    const env = sealEnvelope(await buildPlainEnvelope({ fromDid: mallory.did, toDid: did, records: [rec] }, mallory.signer));
    const res = await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(did)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: serializeEnvelope(env),
    });
    if (res.status === 202) accepted++;
    else {
      expect(res.status).toBe(429);
      expect(await res.json()).toMatchObject({ error: { code: 'unsolicited_quota' } });
    }
  }
  return accepted;
}

describe('§5.1 deposit tokens between peers', () => {
  it('a tokenless flood cannot stop a paired peer, and a pairing reply carries the inviter’s token', async () => {
    const home = await peer('home');
    const laptop = await peer('laptop');
    // Pairing registers home's token at its relay (on receive) and hands it out in the invite.
    await home.receive();
    const { link, payload } = await home.createInvite({ threads: ['th_home'] });
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))).toHaveProperty('deposit_token');
    expect(await flood(didOf(home))).toBe(QUOTA); // the stranger fills the unsolicited quota, no more
    await laptop.acceptInvite(link); // the reply is deposited with home's token: not unsolicited
    expect((await laptop.syncStatus()).peers[0]).toMatchObject({ outbox: { relay: 1, pending: 0 } });
    await laptop.receive(); // registers the laptop's own token
    await home.receive();
    expect((await home.pairs()).map((p) => p.name)).toEqual(['laptop']);
    await home.flushOutbox();
    await laptop.receive();
    // Later notes from the laptop get in although home's mailbox is full of junk again.
    expect(await flood(didOf(home))).toBe(QUOTA);
    await laptop.emit({ thread: 'th_home', text: 'through the flood' });
    expect(await laptop.flushOutbox()).toMatchObject({ relay: 1, pending: 0, rejected: 0 });
    await home.receive();
    expect((await home.records('th_home')).map((r) => r.signed.record.body.text)).toContain('through the flood');
  });

  it('ending a pair rotates the token: the ended peer is back to unsolicited mail, the others get the new one', async () => {
    const home = await peer('home');
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    await home.receive();
    for (const p of [laptop, phone]) {
      const { link } = await home.createInvite({ threads: ['th_home'] });
      await p.acceptInvite(link);
      await p.receive();
      await home.receive();
      await home.flushOutbox();
      await p.receive();
    }
    const tokenOf = async (e: PeerEngine) => (await e.pairs())[0]!.depositToken;
    const before = await tokenOf(phone);
    expect(before).toBe(await tokenOf(laptop));
    await home.endPair(didOf(laptop));
    await home.flushOutbox();
    await home.receive(); // registers the new token at the relay
    await phone.receive(); // pair.token
    await laptop.receive(); // pair.end
    const after = await tokenOf(phone);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect((await laptop.pairs())[0]).toMatchObject({ enabled: false, endReason: 'ended_by_peer' });
    // With the quota full, the phone (new token) still gets in.
    expect(await flood(didOf(home))).toBe(QUOTA);
    await phone.emit({ thread: 'th_home', text: 'still welcome' });
    expect(await phone.flushOutbox()).toMatchObject({ relay: 1, pending: 0 });
    // The old token is worthless now: a deposit with it counts as unsolicited and is refused.
    const mallory = newPeer();
    const rec = await signRecord(note(mallory.did, 'old token', 0, 'th_home'), mallory.signer);
    const env = sealEnvelope(await buildPlainEnvelope({ fromDid: mallory.did, toDid: didOf(home), records: [rec] }, mallory.signer));
    const res = await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(didOf(home))}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-syncropel-deposit-token': before! },
      body: serializeEnvelope(env),
    });
    expect(res.status).toBe(429);
  });
});
