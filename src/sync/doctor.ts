/**
 * Doctor: the checks the guide's troubleshooting section walks through, as data.
 * Pure: every fact is handed in, so the browser and the headless peer share it.
 */
import type { DropCount, Identity, OutboxEntry } from '../store/types';
import type { CheckStatus, DoctorCheck, DoctorReport, Pair, PairRefusal, PlatformFacts, RelayHealth, SyncStatus } from './types';

const HOUR = 3600_000;
const STUCK_AFTER_MS = HOUR;
const STUCK_ATTEMPTS = 5;
const RECEIVE_STALE_MS = 24 * HOUR;

const rank: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

export interface DoctorInput {
  readonly identity: Identity | undefined;
  readonly status: SyncStatus | undefined;
  readonly outbox: readonly OutboxEntry[];
  readonly health: readonly RelayHealth[];
  readonly facts: PlatformFacts;
  readonly now: number;
  /** Per-sender drop counts (§8), and the pairs to name the senders by. */
  readonly drops?: readonly DropCount[];
  readonly pairs?: readonly Pair[];
  /** Pairing replies refused here (§9). */
  readonly refusals?: readonly PairRefusal[];
}

export function runDoctor(input: DoctorInput): DoctorReport {
  const checks: DoctorCheck[] = [];
  const add = (id: string, status: CheckStatus, message: string) => checks.push({ id, status, message });
  const { identity, status, health, facts, now } = input;

  if (!identity || !status) {
    add('identity', 'fail', 'no identity on this device: create one first');
    return { status: 'fail', checks };
  }
  add('identity', 'pass', `${identity.name} (${identity.did})`);

  if (health.length === 0) add('relay_configured', 'warn', 'no relay configured: nothing arrives while this device is offline');
  for (const h of health) {
    if (h.ok) add('relay_reachable', 'pass', `${h.url} → /health ${h.status ?? ''} ok (${h.latencyMs ?? '?'} ms)`);
    else add('relay_reachable', 'fail', `${h.url} is not reachable: ${h.error ?? 'no answer'}; you will not receive anything through it`);
  }

  const lastRun = Math.max(facts.receiveTaskLastRunAt ?? 0, ...status.relays.map((r) => r.lastReceiveAt ?? 0));
  if (status.relays.length > 0) {
    if (lastRun === 0) add('receive_task', 'warn', 'the receive task has not run yet');
    else if (now - lastRun > RECEIVE_STALE_MS) add('receive_task', 'warn', `the receive task last ran ${ago(now - lastRun)} ago`);
    else add('receive_task', 'pass', `the receive task last ran ${ago(now - lastRun)} ago`);
    const failing = status.relays.filter((r) => r.lastError);
    for (const r of failing) add('receive_errors', 'warn', `last receive from ${r.relayUrl} failed: ${r.lastError ?? ''}`);
  }

  // Push wake (§5.2): what wakes a closed app in browsers without periodic sync.
  if (facts.push && status.relays.length > 0) {
    const p = facts.push;
    if (!p.supported) add('push', 'warn', 'this browser has no Web Push: a closed app is not woken when mail arrives');
    else if (!p.wanted) add('push', 'warn', 'push wake is off: turn on notifications to be woken when mail arrives');
    else if (p.relays.length === 0) add('push', 'warn', 'push wake is not set up yet: open the app online once with notifications on');
    else
      for (const r of p.relays) {
        if (r.state === 'registered') add('push', 'pass', `${r.relayUrl} wakes this device when mail arrives (push set up)`);
        else if (r.state === 'off')
          add('push', 'warn', `${r.relayUrl} runs without push: mail there waits until the app opens or syncs in the background`);
        else if (r.state === 'other_key')
          add('push', 'warn', `${r.relayUrl} has another push key than the relay this browser subscribed with: it cannot wake this device`);
        else add('push', 'warn', `push is not set up at ${r.relayUrl}: ${r.detail ?? 'registration failed'}`);
      }
  }

  if (facts.periodicSync !== undefined) {
    if (facts.periodicSync === 'granted') add('periodic_sync', 'pass', 'periodic background sync is granted');
    else if (facts.periodicSync === 'unsupported')
      add('periodic_sync', 'warn', 'this browser has no periodic background sync: records arrive only while the app is open');
    else
      add(
        'periodic_sync',
        'warn',
        `periodic background sync is ${facts.periodicSync}: install the app to let it receive in the background`,
      );
  }

  const pending = input.outbox.filter((e) => e.path === 'pending');
  const stuck = pending.filter((e) => now - e.createdAt > STUCK_AFTER_MS || e.attempts >= STUCK_ATTEMPTS);
  const rejected = input.outbox.filter((e) => e.path === 'rejected');
  if (stuck.length) {
    const worst = stuck[0]!;
    add(
      'outbox_stuck',
      'warn',
      `${stuck.length} envelope(s) undelivered for a while (e.g. to ${worst.toDid}: ${worst.lastError ?? 'no error recorded'})`,
    );
  } else add('outbox_stuck', 'pass', pending.length ? `${pending.length} envelope(s) waiting, none stuck` : 'outbox is empty');
  if (rejected.length) add('outbox_rejected', 'warn', `${rejected.length} envelope(s) were refused: ${rejected[0]!.rejectedReason ?? ''}`);

  const c = status.counters;
  if (c.envelopes_redelivered > 0) {
    add(
      'redelivery',
      'warn',
      `${c.envelopes_redelivered} envelope(s) arrived again after they were stored (a crash before ack, or acks failing); nothing was stored twice`,
    );
  } else add('redelivery', 'pass', 'no envelope came twice');
  if (c.records_dropped_unpaired > 0)
    add('dropped_unpaired', 'warn', `${c.records_dropped_unpaired} record(s) from unpaired actors were dropped`);
  else add('dropped_unpaired', 'pass', 'no records from unpaired actors');
  const nameOf = (did: string) => input.pairs?.find((p) => p.peerDid === did)?.name ?? did;
  const drops = input.drops ?? [];
  const bySender = (reason: string) =>
    drops
      .filter((d) => d.reason === reason)
      .slice(0, 5)
      .map((d) => `${nameOf(d.sender)} (${d.count})`)
      .join(', ');
  if (c.records_dropped_ungranted > 0) {
    add(
      'dropped_ungranted',
      'warn',
      `${c.records_dropped_ungranted} record(s) on threads not shared with their sender were dropped: ${bySender('ungranted')}`,
    );
  }
  if (c.records_refused_clock_reused > 0) {
    // Records set aside by the schema-2 store upgrade are counted without a sender.
    const senders = bySender('clock_reused');
    add(
      'clock_reused',
      'warn',
      `${c.records_refused_clock_reused} record(s) reused a clock another record of the same author holds (equivocation) and were refused${senders ? `: ${senders}` : ''}`,
    );
  }
  const unpairedSenders = bySender('unpaired');
  if (unpairedSenders) add('dropped_unpaired_senders', 'warn', `unpaired senders: ${unpairedSenders}`);
  if (input.refusals?.length) {
    add(
      'pair_refusals',
      'warn',
      `pairing refused for ${input.refusals.map((r) => `${r.name} (${r.peerDid.slice(0, 24)}…, ${r.reason.replace('_', ' ')})`).join(', ')}: make a new invite for them`,
    );
  }
  if (c.envelopes_rejected + c.records_rejected_invalid > 0) {
    add(
      'rejected_content',
      'warn',
      `${c.envelopes_rejected} envelope(s) and ${c.records_rejected_invalid} record(s) failed verification and were dropped`,
    );
  }

  if (facts.storage && facts.storage.quota > 0) {
    const used = facts.storage.usage / facts.storage.quota;
    const msg = `storage ${(used * 100).toFixed(1)}% used (${mb(facts.storage.usage)} of ${mb(facts.storage.quota)})`;
    add('storage_quota', used > 0.9 ? 'fail' : used > 0.8 ? 'warn' : 'pass', msg);
  }

  const worst = checks.reduce<CheckStatus>((w, ch) => (rank[ch.status] > rank[w] ? ch.status : w), 'pass');
  return { status: worst, checks };
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

function ago(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < HOUR) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / HOUR).toFixed(1)} h`;
}
