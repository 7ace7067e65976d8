import { describe, expect, it } from 'vitest';
import { foldConfig, relayForPeer } from '../../src/sync/config';
import type { StoredRecord } from '../../src/store/types';

const me = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp';
const peer = 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG';

function learn(clock: number, body: Record<string, unknown>, actor = me): StoredRecord {
  const record = {
    parents: [],
    thread: 'th_engine_config',
    actor,
    act: 'LEARN' as const,
    body: body as never,
    clock,
    data_type: 'SCALAR' as const,
    judged_by: null,
  };
  return {
    id: String(clock).padStart(64, '0'),
    signed: { id: '', record, sig: '' },
    thread: record.thread,
    actor,
    clock,
    receivedAt: clock,
    path: 'local',
  };
}

describe('config as records (§8)', () => {
  it('the highest clock per key wins, whatever the order', () => {
    const recs = [
      learn(2, { topic: 'relay', for_pair: 'all', url: 'https://b.example', enabled: true }),
      learn(1, { topic: 'relay', for_pair: 'all', url: 'https://a.example', enabled: true }),
    ];
    expect(foldConfig(recs, me).relays.get('all')?.url).toBe('https://b.example');
  });

  it('a per-DID entry overrides the catch-all; clearing it falls back to the catch-all', () => {
    const base = [
      learn(1, { topic: 'relay', for_pair: 'all', url: 'https://all.example', enabled: true }),
      learn(2, { topic: 'relay', for_pair: peer, url: 'https://peer.example', enabled: true }),
    ];
    expect(relayForPeer(foldConfig(base, me), peer)).toBe('https://peer.example');
    expect(relayForPeer(foldConfig(base, me), 'did:key:other')).toBe('https://all.example');
    const cleared = [...base, learn(3, { topic: 'relay', for_pair: peer, url: 'https://peer.example', enabled: false })];
    expect(relayForPeer(foldConfig(cleared, me), peer)).toBe('https://all.example');
  });

  it("ignores other actors' records and malformed entries", () => {
    const recs = [
      learn(5, { topic: 'relay', for_pair: 'all', url: 'https://evil.example', enabled: true }, peer),
      learn(6, { topic: 'relay', for_pair: 'all', url: 'javascript:alert(1)', enabled: true }),
      learn(7, { topic: 'pair', peer_did: peer, name: 'P', threads: ['bad thread'], enabled: true }),
    ];
    const cfg = foldConfig(recs, me);
    expect(cfg.relays.size).toBe(0);
    expect(cfg.pairs.size).toBe(0);
  });
});
