/**
 * §7: `POST /v1/sync/records` on a reachable peer. The sealed-envelope form is opened, checked
 * for pairing before any signature is verified, admitted and stored exactly as from a relay, and
 * answered with a receipt over the answer's bytes. The guide's plain `{"records": […]}` form is
 * still taken, from authors who are themselves paired peers granted the thread; no receipt.
 */
import { isObject, openEnvelope, RECEIPT_HEADER, signReceipt, verifySignedRecord } from '../core';
import { admit, DROP_MESSAGE, type Candidate, type Dropped } from './admission';
import type { PeerContext } from './context';
import { commit } from './ingest';
import type { DirectResponse } from './types';

/** §7: at most this many plain records per request. */
const MAX_DIRECT_RECORDS = 1000;

type Rejection = { id: string | null; reason: string };

export async function handleDirectDelivery(ctx: PeerContext, body: unknown): Promise<DirectResponse> {
  ctx.requireIdentity();
  if (isObject(body) && body.envelope !== undefined) return directEnvelope(ctx, body.envelope);
  if (isObject(body) && Array.isArray(body.records)) return directRecords(ctx, body.records);
  return directError(400, 'invalid_request', 'body must be {"envelope": <sealed envelope>} or {"records": [signed records…]}');
}

async function directEnvelope(ctx: PeerContext, raw: unknown): Promise<DirectResponse> {
  const { me, signer } = ctx.requireIdentity();
  if (!isObject(raw) || typeof raw.id !== 'string' || typeof raw.to_did !== 'string') {
    return directError(400, 'invalid_envelope', 'envelope must be an object with "id" and "to_did"');
  }
  if (raw.to_did !== me.did)
    return directError(421, 'wrong_recipient', `this endpoint receives for ${me.did}, not ${raw.to_did.slice(0, 80)}`);
  const cfg = await ctx.config();
  const opened = await openEnvelope(
    raw,
    { did: me.did, secretKey: me.secretKey },
    { admitSender: (did) => cfg.pairs.get(did)?.enabled === true },
  );
  if (!opened.ok) {
    if (opened.error.code === 'unpaired_sender') return directError(403, 'unpaired', opened.error.message);
    if (opened.error.code === 'wrong_recipient') return directError(421, 'wrong_recipient', opened.error.message);
    await ctx.store.bumpCounters({ direct_received: 1, envelopes_rejected: 1 });
    return directError(400, opened.error.code, opened.error.message);
  }
  const rejected: Rejection[] = [];
  const candidates: Candidate[] = [];
  for (const r of opened.value.records) {
    if (r.ok) candidates.push({ from: opened.value.from_did, signed: r.value });
    else rejected.push({ id: r.id ?? null, reason: `${r.error.code}: ${r.error.message}` });
  }
  const { accepted, dropped } = await admit(ctx, candidates);
  const result = await commit(ctx, accepted, dropped, 'direct', undefined, {
    direct_received: 1,
    envelopes_received: 1,
    records_rejected_invalid: rejected.length,
  });
  const answer = { accepted: result.inserted, duplicates: result.duplicates, rejected: [...rejected, ...dropReasons(result.dropped)] };
  const text = JSON.stringify(answer);
  return { status: 200, body: answer, text, headers: { [RECEIPT_HEADER]: await signReceipt(opened.value.id, text, signer, ctx.now()) } };
}

async function directRecords(ctx: PeerContext, records: readonly unknown[]): Promise<DirectResponse> {
  if (records.length > MAX_DIRECT_RECORDS)
    return directError(413, 'payload_too_large', `at most ${MAX_DIRECT_RECORDS} records per request`);
  const unsigned = records.findIndex((r) => !isObject(r) || r.sig === undefined || r.sig === null || r.sig === '');
  if (unsigned >= 0) return directError(422, 'unsigned_record', `records[${unsigned}] carries no signature`);
  const verified = await Promise.all(records.map((r) => verifySignedRecord(r)));
  const rejected: Rejection[] = [];
  const candidates: Candidate[] = [];
  verified.forEach((v, i) => {
    const raw = records[i];
    const id = isObject(raw) && typeof raw.id === 'string' ? raw.id : null;
    // Without an envelope nobody vouches for a record but its author (§8).
    if (v.ok) candidates.push({ from: v.value.record.actor, signed: v.value });
    else rejected.push({ id, reason: `${v.error.code}: ${v.error.message}` });
  });
  const { accepted, dropped } = await admit(ctx, candidates);
  const result = await commit(ctx, accepted, dropped, 'direct', undefined, {
    direct_received: records.length,
    records_rejected_invalid: rejected.length,
  });
  const answer = { accepted: result.inserted, duplicates: result.duplicates, rejected: [...rejected, ...dropReasons(result.dropped)] };
  return { status: 200, body: answer, text: JSON.stringify(answer), headers: {} };
}

const dropReasons = (dropped: readonly Dropped[]): Rejection[] =>
  dropped.map((d) => ({ id: d.id, reason: `${d.reason}: ${DROP_MESSAGE[d.reason]}` }));

function directError(status: number, code: string, message: string): DirectResponse {
  const body = { error: { code, message } };
  return { status, body, text: JSON.stringify(body), headers: {} };
}
