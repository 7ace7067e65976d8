/**
 * The sync scheduler (src/sync/scheduler.ts): backoff bounds, single-flight flush, the retry timer
 * at the next due entry, loops following the config — on an injected clock with a scripted peer,
 * and the long-poll abort against a real relay process.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openIdbPeerStore } from '../../src/store/idb';
import { openPeerEngine } from '../../src/sync/engine';
import { backoffDelayMs, RECEIVE_BACKOFF, retryDelayMs, SENDER_RETRY } from '../../src/sync/retry';
import {
  MIN_CYCLE_MS,
  summarizeStates,
  SyncScheduler,
  type OnlineState,
  type RelayLoopState,
  type SchedulerClock,
  type SchedulerEvent,
  type SchedulerPeer,
} from '../../src/sync/scheduler';
import type { FlushReport, ReceiveOptions, ReceiveReport } from '../../src/sync/types';
import { deposit, junkSealed, startRelayProcess, waitFor, type RelayProcess } from '../../support/relay-process';

/** Timers on a clock that moves only when the test says so. */
class FakeClock implements SchedulerClock {
  t = 1_000_000;
  private seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.timers.delete(h as number);
  };
  /** Moves to `at`, firing the timers due by then in time order. */
  advanceTo(at: number): void {
    for (;;) {
      const next = [...this.timers].filter(([, t]) => t.at <= at).sort((x, y) => x[1].at - y[1].at)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = Math.max(this.t, at);
  }
}

/** Lets pending promise callbacks run until `cond` holds (bounded; no wall-clock waiting). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

const okRow = (url: string, envelopes = 0): ReceiveReport['relays'][number] => ({
  url,
  envelopes,
  ingested: envelopes,
  duplicates: 0,
  dropped: 0,
  acked: envelopes,
  remaining: 0,
});
const flushReport = (pending = 0): FlushReport => ({ attempted: pending, direct: 0, relay: 0, pending, rejected: 0 });

interface PendingReceive {
  readonly opts: ReceiveOptions;
  readonly answer: (r: ReceiveReport['relays'][number]) => void;
}

/** A scripted peer: receives wait (like a long-poll) until the test answers them or they are aborted. */
function scriptedPeer(relays: string[]) {
  const receives: PendingReceive[] = [];
  const flushes: { all: boolean }[] = [];
  let flushImpl: (all: boolean) => Promise<FlushReport> = () => Promise.resolve(flushReport());
  const peer: SchedulerPeer = {
    identity: () => ({ did: 'did:key:z6MkTest', name: 'test', secretKey: new Uint8Array(32), createdAt: 0 }),
    receiveRelays: () => Promise.resolve([...relays]),
    receive: (opts = {}) =>
      new Promise((resolve) => {
        const url = opts.relays?.[0] ?? '';
        if (opts.signal?.aborted) return resolve({ relays: [okRow(url)] });
        opts.signal?.addEventListener('abort', () => resolve({ relays: [okRow(url)] }), { once: true });
        receives.push({ opts, answer: (row) => resolve({ relays: [row] }) });
      }),
    flushOutbox: (opts = {}) => {
      flushes.push({ all: opts.all === true });
      return flushImpl(opts.all === true);
    },
  };
  return {
    peer,
    relays,
    receives,
    flushes,
    setFlush(fn: (all: boolean) => Promise<FlushReport>) {
      flushImpl = fn;
    },
    /** The newest receive still waiting for `url`. */
    waiting(url: string): PendingReceive | undefined {
      return receives.filter((r) => r.opts.relays?.[0] === url && !r.opts.signal?.aborted).at(-1);
    },
  };
}

function record(s: SyncScheduler): SchedulerEvent[] {
  const events: SchedulerEvent[] = [];
  s.on((e) => events.push(e));
  return events;
}

describe('delay formulas (one for sender retries and receive backoff)', () => {
  it('equal jitter: each delay lies in [base/2, base], base doubling from the first step to the cap', () => {
    for (const policy of [RECEIVE_BACKOFF, SENDER_RETRY]) {
      for (let failures = 1; failures <= 20; failures++) {
        const base = Math.min(policy.capMs, policy.firstMs * 2 ** (failures - 1));
        expect(backoffDelayMs(failures, policy, () => 0)).toBe(base / 2);
        expect(backoffDelayMs(failures, policy, () => 0.999999)).toBeLessThanOrEqual(base);
        expect(backoffDelayMs(failures, policy, () => 0.999999)).toBeGreaterThan(base * 0.99);
      }
    }
    // Sender retries are the same formula (§10), with Retry-After as a floor.
    expect(retryDelayMs(3, () => 0.25)).toBe(backoffDelayMs(3, SENDER_RETRY, () => 0.25));
    expect(backoffDelayMs(10_000, RECEIVE_BACKOFF, () => 0.999999)).toBeLessThanOrEqual(RECEIVE_BACKOFF.capMs);
  });

  it('summarises loops: offline wins, then failing relays by name with the earliest retry, else listening', () => {
    expect(summarizeStates(new Map())).toEqual({ kind: 'idle' });
    expect(summarizeStates(new Map([['a', { kind: 'listening' }]]))).toEqual({ kind: 'listening' });
    const failing = new Map<string, RelayLoopState>([
      ['a', { kind: 'backing-off', error: 'HTTP 503', retryAt: 9 }],
      ['b', { kind: 'listening' }],
      ['c', { kind: 'backing-off', error: 'refused', retryAt: 5 }],
    ]);
    expect(summarizeStates(failing)).toEqual({ kind: 'backing-off', error: 'a: HTTP 503; c: refused', retryAt: 5 });
    expect(summarizeStates(new Map([...failing, ['d', { kind: 'offline' }]]))).toEqual({ kind: 'offline' });
  });
});

describe('receive loops', () => {
  it('back off with growing, capped, jittered delays while the relay fails; a success resets the sequence and retries the outbox', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer(['https://r1.test']);
    const s = new SyncScheduler({ peer: p.peer, clock, random: () => 0 });
    const events = record(s);
    await s.start();
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      await until(() => p.waiting('https://r1.test') !== undefined, `receive ${i}`);
      const failedAt = clock.now();
      p.waiting('https://r1.test')!.answer({ ...okRow('https://r1.test'), error: 'HTTP 503' });
      await until(() => s.states().get('https://r1.test')?.kind === 'backing-off', `backing off ${i}`);
      const state = s.states().get('https://r1.test');
      if (state?.kind !== 'backing-off') throw new Error('not backing off');
      expect(state.error).toBe('HTTP 503');
      delays.push(state.retryAt - failedAt);
      p.receives.length = 0;
      clock.advanceTo(state.retryAt);
    }
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    await until(() => s.summary().kind === 'listening', 'listening after the last backoff');

    // The relay answers again: the outbox is retried at once, and the next failure starts over.
    const flushesBefore = p.flushes.length;
    await until(() => p.waiting('https://r1.test') !== undefined, 'receive after backoff');
    p.waiting('https://r1.test')!.answer(okRow('https://r1.test'));
    await until(() => events.some((e) => e.type === 'recovered'), 'recovered');
    await until(() => p.flushes.length > flushesBefore, 'flush after recovery');
    expect(p.flushes.at(-1)).toEqual({ all: true });
    // An empty answer that came at once (no long-poll held) waits a moment before asking again.
    expect([...clock.timers.values()].some((t) => t.at === clock.now() + MIN_CYCLE_MS)).toBe(true);
    clock.advanceTo(clock.now() + MIN_CYCLE_MS);
    await until(() => p.waiting('https://r1.test') !== undefined, 'receive after recovery');
    const failedAt = clock.now();
    p.waiting('https://r1.test')!.answer({ ...okRow('https://r1.test'), error: 'HTTP 502' });
    await until(() => s.states().get('https://r1.test')?.kind === 'backing-off', 'backing off again');
    expect(s.summary()).toEqual({ kind: 'backing-off', error: 'https://r1.test: HTTP 502', retryAt: failedAt + 500 });
    await s.stop();
  });

  it('follow the config: a removed relay’s long-poll is aborted at once, a new relay gets a loop, stop ends them all', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer(['https://r1.test', 'https://r2.test']);
    const s = new SyncScheduler({ peer: p.peer, clock });
    const events = record(s);
    await s.start();
    await until(() => p.waiting('https://r1.test') !== undefined && p.waiting('https://r2.test') !== undefined, 'two long-polls');
    const r1 = p.waiting('https://r1.test')!;
    const r2 = p.waiting('https://r2.test')!;
    expect(r2.opts.waitSeconds).toBe(25);

    p.relays.splice(1, 1, 'https://r3.test');
    await s.refresh();
    expect(r2.opts.signal?.aborted).toBe(true);
    expect(r1.opts.signal?.aborted).toBe(false);
    await until(() => events.some((e) => e.type === 'loop-stopped'), 'r2 loop ended');
    expect(events.filter((e) => e.type === 'loop-stopped')).toEqual([
      { type: 'loop-stopped', relay: 'https://r2.test', reason: 'removed' },
    ]);
    expect([...s.states().keys()].sort()).toEqual(['https://r1.test', 'https://r3.test']);
    await until(() => p.waiting('https://r3.test') !== undefined, 'r3 long-poll');

    await s.stop();
    expect(r1.opts.signal?.aborted).toBe(true);
    expect(p.waiting('https://r3.test')).toBeUndefined();
    expect(s.summary()).toEqual({ kind: 'idle' });
    expect(
      events
        .filter((e) => e.type === 'loop-stopped' && e.reason === 'stopped')
        .map((e) => (e as { relay: string }).relay)
        .sort(),
    ).toEqual(['https://r1.test', 'https://r3.test']);
    // Aborted receives are not reported as received (they are not the relay's answer).
    expect(events.filter((e) => e.type === 'received')).toEqual([]);
  });

  it('wait for the network while offline, and on `online` retry the outbox at once and listen again', async () => {
    const clock = new FakeClock();
    let up = false;
    let notify: (online: boolean) => void = () => undefined;
    const online: OnlineState = {
      isOnline: () => up,
      subscribe: (l) => {
        notify = l;
        return () => (notify = () => undefined);
      },
    };
    const p = scriptedPeer(['https://r1.test']);
    const s = new SyncScheduler({ peer: p.peer, clock, online });
    await s.start();
    await until(() => s.summary().kind === 'offline', 'offline');
    expect(p.receives).toHaveLength(0);
    up = true;
    notify(true);
    await until(() => p.waiting('https://r1.test') !== undefined, 'listening after online');
    expect(p.flushes).toContainEqual({ all: true });
    expect(s.summary()).toEqual({ kind: 'listening' });
    await s.stop();
  });

  it('sync now retries every pending entry and asks only the relays whose long-poll is not waiting', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer(['https://r1.test', 'https://r2.test']);
    const s = new SyncScheduler({ peer: p.peer, clock, random: () => 0 });
    await s.start();
    await until(() => p.waiting('https://r1.test') !== undefined && p.waiting('https://r2.test') !== undefined, 'two long-polls');
    p.waiting('https://r2.test')!.answer({ ...okRow('https://r2.test'), error: 'HTTP 503' });
    await until(() => s.states().get('https://r2.test')?.kind === 'backing-off', 'r2 backing off');
    p.receives.length = 0;
    const done = s.syncNow();
    await until(() => p.waiting('https://r2.test') !== undefined, 'an immediate receive from r2');
    expect(p.waiting('https://r2.test')!.opts.waitSeconds).toBe(0);
    expect(p.waiting('https://r1.test')).toBeUndefined(); // still waiting in its long-poll, not asked again
    p.waiting('https://r2.test')!.answer(okRow('https://r2.test', 2));
    await done;
    expect(p.flushes).toContainEqual({ all: true });
    // r2's loop was woken from its backoff and listens again.
    await until(() => p.waiting('https://r2.test')?.opts.waitSeconds === 25, 'r2 long-poll again');
    await s.stop();
  });
  it('re-read the config once a cycle: a relay another context added gets a loop when a long-poll ends empty', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer(['https://r1.test']);
    const s = new SyncScheduler({ peer: p.peer, clock });
    await s.start();
    await until(() => p.waiting('https://r1.test') !== undefined, 'r1 long-poll');
    p.relays.push('https://r2.test'); // written by another tab or process; nobody told the scheduler
    clock.t += 25_000;
    p.waiting('https://r1.test')!.answer(okRow('https://r1.test')); // the wait ran out, nothing came
    await until(() => p.waiting('https://r2.test') !== undefined, 'r2 long-poll');
    await s.stop();
  });

  it('sync now rejects with the reason when the flush fails (the owner asked and should know)', async () => {
    const p = scriptedPeer([]);
    p.setFlush(() => Promise.reject(new Error('storage is full')));
    const s = new SyncScheduler({ peer: p.peer, clock: new FakeClock() });
    await expect(s.syncNow()).rejects.toThrow('storage is full');
  });
});

describe('flush', () => {
  it('is single-flight: requests during a flush coalesce into one more run, and `all` wins', async () => {
    const p = scriptedPeer([]);
    const gates: (() => void)[] = [];
    p.setFlush(() => new Promise((resolve) => gates.push(() => resolve(flushReport(gates.length)))));
    const s = new SyncScheduler({ peer: p.peer, clock: new FakeClock() });
    const first = s.flush();
    const second = s.flush();
    const third = s.flush({ all: true });
    const fourth = s.flush();
    expect(p.flushes).toEqual([{ all: false }]);
    gates[0]!();
    await until(() => p.flushes.length === 2, 'the coalesced second run');
    expect(p.flushes[1]).toEqual({ all: true });
    gates[1]!();
    const reports = await Promise.all([first, second, third, fourth]);
    expect(p.flushes).toHaveLength(2);
    expect(new Set(reports.map((r) => r?.pending))).toEqual(new Set([2]));
    // Once done, a new request runs a new flush.
    const fifth = s.flush();
    expect(p.flushes).toHaveLength(3);
    gates[2]!();
    expect((await fifth)?.pending).toBe(3);
  });

  it('arms a timer at the next due entry instead of polling, and re-arms it after each flush', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer([]);
    let due: number | undefined = clock.now() + 30_000;
    let dueQueries = 0;
    const nextDueAt = () => {
      dueQueries++;
      return Promise.resolve(due);
    };
    // Each flush that finds entries due leaves them for later, as a failed delivery does (§10).
    p.setFlush(() => {
      if (due !== undefined && due <= clock.now()) due = clock.now() + 60_000;
      return Promise.resolve(flushReport(due === undefined ? 0 : 1));
    });
    const s = new SyncScheduler({ peer: p.peer, clock, nextDueAt, random: () => 0 });
    await s.start();
    await until(() => s.nextFlushAt() !== undefined, 'armed');
    expect(s.nextFlushAt()).toBe(due);
    const flushesAtStart = p.flushes.length;
    const queriesAtStart = dueQueries;

    // Nothing happens before the entry is due: no flush, no query.
    clock.advanceTo(due - 1);
    await until(() => true, 'settle');
    expect(p.flushes).toHaveLength(flushesAtStart);
    expect(dueQueries).toBe(queriesAtStart);

    clock.advanceTo(due);
    await until(() => p.flushes.length === flushesAtStart + 1, 'flush at the due time');
    await until(() => s.nextFlushAt() === due, 're-armed at the new due time');
    expect(due).toBe(clock.now() + 60_000);

    // Another context queued an earlier entry: a refresh re-arms without flushing.
    due = clock.now() + 5_000;
    await s.refresh();
    expect(s.nextFlushAt()).toBe(due);
    expect(p.flushes).toHaveLength(flushesAtStart + 1);

    // Nothing pending any more: no timer at all.
    due = undefined;
    await s.flush();
    await until(() => s.nextFlushAt() === undefined, 'disarmed');
    expect([...clock.timers.values()]).toEqual([]);
    await s.stop();
  });

  it('a failing flush is retried with backoff, not in a tight loop', async () => {
    const clock = new FakeClock();
    const p = scriptedPeer([]);
    const due = clock.now();
    p.setFlush(() => Promise.reject(new Error('the lock could not be taken')));
    const s = new SyncScheduler({ peer: p.peer, clock, nextDueAt: () => Promise.resolve(due), random: () => 0 });
    const events = record(s);
    await s.start();
    await until(() => s.nextFlushAt() !== undefined, 'armed after the failure');
    expect(events).toContainEqual({ type: 'flush-failed', error: 'the lock could not be taken' });
    expect(s.nextFlushAt()! - clock.now()).toBe(backoffDelayMs(1, RECEIVE_BACKOFF, () => 0));
    clock.advanceTo(s.nextFlushAt()!);
    await until(() => p.flushes.length === 2, 'second attempt');
    await until(() => s.nextFlushAt() !== undefined, 'armed after the second failure');
    expect(s.nextFlushAt()! - clock.now()).toBe(backoffDelayMs(2, RECEIVE_BACKOFF, () => 0));
    await s.stop();
    expect(s.nextFlushAt()).toBeUndefined();
  });
});

describe('over a real relay', () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await startRelayProcess(['--no-rate-limit']);
  });
  afterAll(async () => {
    await relay?.stop();
  });

  const longPollsWaiting = async (): Promise<string | undefined> =>
    (await (await fetch(`${relay.url}/metrics`)).text()).match(/^relay_long_polls_waiting (\d+)/m)?.[1];

  it('receives over the long-poll, and removing the relay aborts the waiting long-poll at once without recording an error', async () => {
    const store = await openIdbPeerStore('scheduler-real', new IDBFactory());
    const peer = await openPeerEngine({ store, fetch });
    const me = await peer.createIdentity('solo');
    await peer.setRelay(relay.url);
    const s = new SyncScheduler({ peer, waitSeconds: 25 });
    const events = record(s);
    await s.start();
    await waitFor(async () => (await longPollsWaiting()) === '1', 10_000, 'the long-poll waits at the relay');

    // An envelope deposited now ends the long-poll with it (junk: dropped and acked, but received).
    expect((await deposit(relay.url, me.did, junkSealed(me.did))).status).toBe(202);
    await waitFor(() => events.find((e) => e.type === 'received' && e.result.envelopes === 1), 10_000, 'the envelope received');
    await waitFor(async () => (await longPollsWaiting()) === '1', 10_000, 'listening again');

    // The long-poll would hold 25 s; removal must end it long before that.
    await peer.clearRelay('all');
    await s.refresh();
    await waitFor(
      () => events.find((e) => e.type === 'loop-stopped' && e.relay === relay.url && e.reason === 'removed'),
      5_000,
      'the loop ended',
    );
    await waitFor(async () => (await longPollsWaiting()) === '0', 5_000, 'the relay saw the long-poll end');
    expect((await store.getReceiveState(relay.url))?.lastError).toBeUndefined();
    expect(events.filter((e) => e.type === 'received' && e.result.error !== undefined)).toEqual([]);
    await s.stop();
    await store.close();
  });
});
