/**
 * Doctor (src/sync/doctor.ts) as pure functions over facts: which checks appear, with which
 * status, for which situation; the report's status is the worst check. Messages are matched only
 * on the facts they must name (a URL, a count, a sender's name), not on their wording.
 */
import { describe, expect, it } from 'vitest';
import { runDoctor, type DoctorInput } from '../../src/sync/doctor';
import type { CheckStatus, DoctorCheck, SyncStatus } from '../../src/sync/types';
import { COUNTER_NAMES, type Counters, type Identity, type OutboxEntry, type ReceiveState } from '../../src/store/types';

const NOW = 1_700_000_000_000;
const MIN = 60_000;
const HOUR = 60 * MIN;
const RELAY = 'https://relay.example';
const PEER = 'did:key:z6MkpeerPEERpeerPEERpeerPEERpeerPEERpeerPEERpee';

const zero = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as unknown as Counters;
const identity: Identity = { did: 'did:key:z6Mkself', name: 'laptop', secretKey: new Uint8Array(32), createdAt: NOW - 100 * HOUR };

/** A receive relay's state: `over` replaces fields, `without` leaves optional ones out. */
function relayState(
  over: Partial<ReceiveState> = {},
  without: readonly ('lastReceiveAt' | 'lastSuccessAt')[] = [],
): ReceiveState & { forPairs: string[] } {
  const state: ReceiveState & { forPairs: string[] } = {
    relayUrl: RELAY,
    backlog: 0,
    lastReceiveAt: NOW - 5 * MIN,
    lastSuccessAt: NOW - 5 * MIN,
    ...over,
    forPairs: ['all'],
  };
  for (const key of without) delete state[key];
  return state;
}

function status(over: { relays?: SyncStatus['relays']; counters?: Partial<Counters> } = {}): SyncStatus {
  return { peers: [], relays: over.relays ?? [relayState()], counters: { ...zero, ...over.counters } };
}

function pending(over: Partial<OutboxEntry> = {}): OutboxEntry {
  return {
    id: 'env1',
    toDid: PEER,
    recordIds: ['r1'],
    records: [],
    envelope: '{}',
    createdAt: NOW - MIN,
    expiresAt: NOW + 7 * 24 * HOUR,
    path: 'pending',
    attempts: 0,
    nextAttemptAt: NOW,
    ...over,
  };
}

/** A healthy device: identity, one reachable relay received from five minutes ago, empty outbox. */
function input(over: Partial<DoctorInput> = {}): DoctorInput {
  return {
    identity,
    status: status(),
    outbox: [],
    health: [{ url: RELAY, ok: true, status: 200, latencyMs: 12 }],
    facts: {},
    now: NOW,
    ...over,
  };
}

const byId = (checks: readonly DoctorCheck[], id: string): DoctorCheck[] => checks.filter((c) => c.id === id);
function only(checks: readonly DoctorCheck[], id: string): DoctorCheck {
  const found = byId(checks, id);
  expect(found, `exactly one ${id} check in ${JSON.stringify(checks.map((c) => c.id))}`).toHaveLength(1);
  return found[0]!;
}
const statusOf = (checks: readonly DoctorCheck[], id: string): CheckStatus => only(checks, id).status;

describe('runDoctor', () => {
  it('a healthy device passes every check it runs', () => {
    const report = runDoctor(input());
    expect(report.status).toBe('pass');
    expect(report.checks.map((c) => c.id)).toEqual([
      'identity',
      'relay_reachable',
      'receive_task',
      'outbox_stuck',
      'redelivery',
      'dropped_unpaired',
    ]);
    expect(report.checks.every((c) => c.status === 'pass')).toBe(true);
    expect(only(report.checks, 'identity').message).toContain(identity.did);
  });

  it('without an identity (or status) it fails at once and checks nothing else', () => {
    for (const missing of [{ identity: undefined }, { status: undefined }]) {
      const report = runDoctor(input(missing));
      expect(report.status).toBe('fail');
      expect(report.checks.map((c) => `${c.id}:${c.status}`)).toEqual(['identity:fail']);
    }
  });

  it('no relay configured is a warning; an unreachable relay is a failure naming it and its error', () => {
    const none = runDoctor(input({ health: [], status: status({ relays: [] }) }));
    expect(statusOf(none.checks, 'relay_configured')).toBe('warn');
    expect(byId(none.checks, 'receive_task')).toEqual([]); // nothing to receive from
    expect(none.status).toBe('warn');

    const down = runDoctor(
      input({
        health: [
          { url: RELAY, ok: true },
          { url: 'https://down.example', ok: false, error: 'ECONNREFUSED' },
        ],
      }),
    );
    const reach = byId(down.checks, 'relay_reachable');
    expect(reach.map((c) => c.status)).toEqual(['pass', 'fail']);
    expect(reach[1]!.message).toContain('https://down.example');
    expect(reach[1]!.message).toContain('ECONNREFUSED');
    expect(down.status).toBe('fail');
  });

  it('the receive task: never run and stale (over 24 h) warn; the freshest of task and relay counts', () => {
    expect(statusOf(runDoctor(input({ status: status({ relays: [relayState({}, ['lastReceiveAt'])] }) })).checks, 'receive_task')).toBe(
      'warn',
    );
    expect(
      statusOf(runDoctor(input({ status: status({ relays: [relayState({ lastReceiveAt: NOW - 25 * HOUR })] }) })).checks, 'receive_task'),
    ).toBe('warn');
    expect(
      statusOf(runDoctor(input({ status: status({ relays: [relayState({ lastReceiveAt: NOW - 23 * HOUR })] }) })).checks, 'receive_task'),
    ).toBe('pass');
    // The relay's own record is old, but the background task ran a minute ago.
    const fresh = runDoctor(
      input({ status: status({ relays: [relayState({ lastReceiveAt: NOW - 30 * HOUR })] }), facts: { receiveTaskLastRunAt: NOW - MIN } }),
    );
    expect(statusOf(fresh.checks, 'receive_task')).toBe('pass');
  });

  it('a relay whose last receive failed is a warning naming the relay and the error', () => {
    const report = runDoctor(
      input({ status: status({ relays: [relayState(), relayState({ relayUrl: 'https://two.example', lastError: 'HTTP 503' })] }) }),
    );
    const errors = byId(report.checks, 'receive_errors');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.status).toBe('warn');
    expect(errors[0]!.message).toContain('https://two.example');
    expect(errors[0]!.message).toContain('HTTP 503');
  });

  it('the outbox: stuck after an hour or five attempts (warn), waiting otherwise (pass), refused (warn)', () => {
    expect(statusOf(runDoctor(input({ outbox: [pending()] })).checks, 'outbox_stuck')).toBe('pass');
    expect(statusOf(runDoctor(input({ outbox: [pending({ attempts: 4, createdAt: NOW - 59 * MIN })] })).checks, 'outbox_stuck')).toBe(
      'pass',
    );
    const old = runDoctor(input({ outbox: [pending({ createdAt: NOW - 2 * HOUR, lastError: 'HTTP 507' })] }));
    expect(statusOf(old.checks, 'outbox_stuck')).toBe('warn');
    expect(only(old.checks, 'outbox_stuck').message).toContain('HTTP 507');
    expect(statusOf(runDoctor(input({ outbox: [pending({ attempts: 5 })] })).checks, 'outbox_stuck')).toBe('warn');
    // Delivered entries are not waiting, however old.
    expect(
      statusOf(runDoctor(input({ outbox: [pending({ path: 'relay', createdAt: NOW - 50 * HOUR, attempts: 9 })] })).checks, 'outbox_stuck'),
    ).toBe('pass');
    const refused = runDoctor(input({ outbox: [pending({ path: 'rejected', rejectedReason: 'too_large' })] }));
    expect(statusOf(refused.checks, 'outbox_rejected')).toBe('warn');
    expect(only(refused.checks, 'outbox_rejected').message).toContain('too_large');
  });

  it('counters: redelivery and unpaired drops warn with their counts; ungranted and reused clocks name the senders', () => {
    const report = runDoctor(
      input({
        status: status({
          counters: {
            envelopes_redelivered: 3,
            records_dropped_unpaired: 2,
            records_dropped_ungranted: 4,
            records_refused_clock_reused: 1,
            envelopes_rejected: 1,
            records_rejected_invalid: 2,
          },
        }),
        drops: [
          { reason: 'ungranted', sender: PEER, count: 4 },
          { reason: 'clock_reused', sender: 'did:key:z6Mkstranger', count: 1 },
          { reason: 'unpaired', sender: 'did:key:z6Mkunknown', count: 2 },
        ],
        pairs: [{ peerDid: PEER, name: 'Ada', threads: [], enabled: true }],
      }),
    );
    expect(statusOf(report.checks, 'redelivery')).toBe('warn');
    expect(only(report.checks, 'redelivery').message).toContain('3');
    expect(statusOf(report.checks, 'dropped_unpaired')).toBe('warn');
    expect(only(report.checks, 'dropped_ungranted').message).toContain('Ada (4)'); // named by the pair
    expect(only(report.checks, 'clock_reused').message).toContain('did:key:z6Mkstranger (1)'); // no pair: the DID
    expect(only(report.checks, 'dropped_unpaired_senders').message).toContain('did:key:z6Mkunknown (2)');
    expect(statusOf(report.checks, 'rejected_content')).toBe('warn');
    expect(report.status).toBe('warn');
  });

  it('reused clocks without a known sender (set aside by the schema-2 store upgrade) are reported without a dangling list', () => {
    const report = runDoctor(input({ status: status({ counters: { records_refused_clock_reused: 2 } }), drops: [] }));
    expect(statusOf(report.checks, 'clock_reused')).toBe('warn');
    expect(only(report.checks, 'clock_reused').message).toMatch(/^2 record\(s\) reused a clock .* and were refused$/);
  });

  it('names at most five senders per reason', () => {
    const drops = Array.from({ length: 8 }, (_, i) => ({ reason: 'ungranted', sender: `did:key:z6Mk${i}`, count: 1 }));
    const message = only(
      runDoctor(input({ status: status({ counters: { records_dropped_ungranted: 8 } }), drops })).checks,
      'dropped_ungranted',
    ).message;
    expect(message.match(/did:key:z6Mk\d/g)).toHaveLength(5);
  });

  it('refused pairing replies are a warning naming who was refused and why', () => {
    const report = runDoctor(input({ refusals: [{ peerDid: PEER, name: 'Bob', nonce: 'n1', reason: 'invite_used' }] }));
    const check = only(report.checks, 'pair_refusals');
    expect(check.status).toBe('warn');
    expect(check.message).toContain('Bob');
    expect(check.message).toContain('invite used');
    expect(byId(runDoctor(input({ refusals: [] })).checks, 'pair_refusals')).toEqual([]);
  });

  it('storage: over 80 % warns, over 90 % fails; an unknown quota is not checked', () => {
    const at = (usage: number) => statusOf(runDoctor(input({ facts: { storage: { usage, quota: 1000 } } })).checks, 'storage_quota');
    expect([at(800), at(801), at(900), at(901)]).toEqual(['pass', 'warn', 'warn', 'fail']);
    expect(runDoctor(input({ facts: { storage: { usage: 901, quota: 1000 } } })).status).toBe('fail');
    expect(byId(runDoctor(input({ facts: { storage: { usage: 5, quota: 0 } } })).checks, 'storage_quota')).toEqual([]);
  });

  it('periodic sync: granted passes; unsupported, denied and prompt warn; unknown is not checked', () => {
    const at = (periodicSync: 'granted' | 'denied' | 'prompt' | 'unsupported') =>
      statusOf(runDoctor(input({ facts: { periodicSync } })).checks, 'periodic_sync');
    expect([at('granted'), at('unsupported'), at('denied'), at('prompt')]).toEqual(['pass', 'warn', 'warn', 'warn']);
    expect(byId(runDoctor(input()).checks, 'periodic_sync')).toEqual([]);
  });

  it('push wake (§5.2): one check per relay once set up; a warning for each way it is missing', () => {
    const push = (p: NonNullable<DoctorInput['facts']['push']>) => byId(runDoctor(input({ facts: { push: p } })).checks, 'push');
    expect(push({ supported: false, wanted: true, relays: [] }).map((c) => c.status)).toEqual(['warn']);
    expect(push({ supported: true, wanted: false, relays: [] }).map((c) => c.status)).toEqual(['warn']);
    expect(push({ supported: true, wanted: true, relays: [] }).map((c) => c.status)).toEqual(['warn']);
    const perRelay = push({
      supported: true,
      wanted: true,
      relays: [
        { relayUrl: 'https://a.example', state: 'registered' },
        { relayUrl: 'https://b.example', state: 'off' },
        { relayUrl: 'https://c.example', state: 'other_key' },
        { relayUrl: 'https://d.example', state: 'failed', detail: 'HTTP 410' },
      ],
    });
    expect(perRelay.map((c) => c.status)).toEqual(['pass', 'warn', 'warn', 'warn']);
    perRelay.forEach((c, i) => expect(c.message).toContain(`https://${'abcd'[i]}.example`));
    expect(perRelay[3]!.message).toContain('HTTP 410');
    // Without relays there is nothing to be woken for.
    expect(
      byId(
        runDoctor(input({ status: status({ relays: [] }), facts: { push: { supported: false, wanted: true, relays: [] } } })).checks,
        'push',
      ),
    ).toEqual([]);
  });
});
