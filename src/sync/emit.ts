/**
 * Writing this device's own records (§3): the next clock on the thread, the thread's heads as
 * parents, signed, stored with the outbox entries that carry it to its peers in one transaction.
 */
import { signRecord, THREAD_RE, type SignedRecord, type SyncRecord } from '../core';
import type { StoredRecord } from '../store/types';
import { CONFIG_THREAD, PAIRS_THREAD } from './config';
import { arrivalFold } from './arrival-fold';
import type { PeerContext } from './context';
import { PeerError } from './errors';
import { outboxEntries } from './outbox';
import { MAX_NOTE_BYTES, type EmitInput } from './types';

/** Emit retries when other writers of the same store keep taking the next clock (see appendOwn). */
const MAX_EMIT_ATTEMPTS = 20;
/** Parents per record: the thread's heads, at most this many. */
const MAX_PARENTS = 16;

export interface OwnRecord {
  readonly thread: string;
  readonly act: SyncRecord['act'];
  readonly body: Record<string, unknown>;
}

/** Who an own record goes to: the peers granted its thread, one peer, or nobody (config). */
export type Audience = { readonly federate: true } | { readonly to: string } | 'local';

/** A note or other record on a user thread, sent to every peer granted the thread. */
export async function emitNote(ctx: PeerContext, input: EmitInput): Promise<StoredRecord> {
  if (input.thread === CONFIG_THREAD || input.thread === PAIRS_THREAD)
    throw new PeerError('reserved_thread', `${input.thread} is reserved`);
  const body = input.body ?? { kind: 'note', text: input.text ?? '' };
  if (input.body === undefined && !input.text?.trim()) throw new PeerError('invalid_input', 'a note needs text');
  const size = typeof body.text === 'string' ? new TextEncoder().encode(body.text).length : 0;
  if (size > MAX_NOTE_BYTES) throw new PeerError('invalid_input', `the note is ${size} bytes; a note is at most ${MAX_NOTE_BYTES} bytes`);
  return emitRecord(ctx, { thread: input.thread, act: input.act ?? 'KNOW', body }, { federate: true });
}

/** A configuration record (§8): kept here, sent nowhere. */
export async function writeConfig(ctx: PeerContext, body: Record<string, unknown>): Promise<void> {
  await emitRecord(ctx, { thread: CONFIG_THREAD, act: 'LEARN', body }, 'local');
}

/** A control record on th_federation_pairs (§9–11) for one peer. */
export function sendControl(ctx: PeerContext, to: string, body: Record<string, unknown>): Promise<StoredRecord> {
  return emitRecord(ctx, { thread: PAIRS_THREAD, act: 'LEARN', body }, { to });
}

/** A control record kept here and sent to nobody yet (a share offer travels with its history). */
export function keepControl(ctx: PeerContext, body: Record<string, unknown>): Promise<StoredRecord> {
  return emitRecord(ctx, { thread: PAIRS_THREAD, act: 'LEARN', body }, 'local');
}

export async function emitRecord(ctx: PeerContext, input: OwnRecord, audience: Audience): Promise<StoredRecord> {
  const { me, signer } = ctx.requireIdentity();
  if (!THREAD_RE.test(input.thread))
    throw new PeerError('invalid_input', `"${input.thread}" is not a thread ID (th_ + 1-128 of [A-Za-z0-9_])`);
  // The lock keeps this engine's own emits in line; appendOwn settles races with any other
  // writer of the same store (another process without our lock) by refusing a taken clock.
  return ctx.withLock(`spl-emit ${input.thread}`, async () => {
    for (let attempt = 1; ; attempt++) {
      // Every clock takes the time (ms) as a floor. §3 asks only that clocks strictly increase per
      // (actor, thread); a device restored from a backup has lost the clocks its notes took since
      // the backup (its peers hold them, and send them back only later, §11 history.request), and
      // a reused one would be refused by every peer as equivocation (§3 clock_reused), for good.
      // With the floor, a restored device writes above every clock it used before, unless its
      // wall clock is behind the old device's by more than the time between the two.
      const next = (await ctx.store.maxClock(me.did, input.thread)) + 1;
      const clock = Math.max(next, ctx.now());
      const record: SyncRecord = {
        parents: await heads(ctx, input.thread),
        thread: input.thread,
        actor: me.did,
        act: input.act,
        body: input.body as SyncRecord['body'],
        clock,
        data_type: 'SCALAR',
        judged_by: null,
      };
      const signed = await signRecord(record, signer);
      const stored = toStored(signed, ctx.now(), 'local');
      const peers = audience === 'local' ? [] : 'to' in audience ? [audience.to] : await grantedPeers(ctx, input.thread);
      const queued = (await Promise.all(peers.map((did) => outboxEntries(ctx, did, [signed])))).flat();
      if (await ctx.store.appendOwn(stored, queued)) return stored; // the record and its outbox entries: one transaction
      if (attempt >= MAX_EMIT_ATTEMPTS) {
        throw new PeerError(
          'contention',
          `could not write on ${input.thread}: other writers took clock ${clock} and the next ${MAX_EMIT_ATTEMPTS - 1}`,
        );
      }
    }
  });
}

async function grantedPeers(ctx: PeerContext, thread: string): Promise<string[]> {
  return [...(await ctx.config()).pairs.values()].filter((p) => p.enabled && p.threads.includes(thread)).map((p) => p.peerDid);
}

export function toStored(signed: SignedRecord, now: number, path: StoredRecord['path'], via?: string): StoredRecord {
  const r = signed.record;
  return { id: signed.id, signed, thread: r.thread, actor: r.actor, clock: r.clock, receivedAt: now, path, ...(via ? { via } : {}) };
}

/**
 * A thread's heads (records no other record names as a parent), folded per thread and caught up
 * (arrival-fold.ts) rather than read whole for every note: measured on a 5,000-record thread, an
 * emit read every record first.
 */
const foldHeads = arrivalFold(
  () => ({ heads: new Set<string>(), referenced: new Set<string>() }),
  (s, r) => {
    for (const p of r.signed.record.parents) {
      s.referenced.add(p);
      s.heads.delete(p);
    }
    if (!s.referenced.has(r.id)) s.heads.add(r.id);
  },
);

/** The thread's current heads, as a new record's parents. */
async function heads(ctx: PeerContext, thread: string): Promise<string[]> {
  return [...(await foldHeads(ctx, thread)).heads].sort().slice(0, MAX_PARENTS);
}
