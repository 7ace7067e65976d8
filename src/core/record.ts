/** Syncropel records (PROTOCOL.md §3): the eight fields, the record ID, signing and verification. */
import { fromB64u, toB64u } from './bytes';
import { CanonicalJsonError, canonicalBytes, type JsonObject } from './canonical';
import { publicKeyFromDid } from './did';
import { verify, type Signer } from './ed25519';
import { HEX_ID, sha256Hex, sha256HexAsync } from './hash';
import { isObject } from './json';
import { THREAD_RE } from './thread-id';
import { fail, ok, type Failure, type Result } from './result';

export const ACTS = ['INTEND', 'DO', 'KNOW', 'LEARN', 'GET', 'PUT', 'CALL', 'MAP'] as const;
export const DATA_TYPES = ['SCALAR', 'FORMULA', 'DISTRIBUTION', 'REFERENCE', 'MORPHISM', 'VOID'] as const;
export type Act = (typeof ACTS)[number];
export type DataType = (typeof DATA_TYPES)[number];

export interface SyncRecord {
  readonly parents: readonly string[];
  readonly thread: string;
  readonly actor: string;
  readonly act: Act;
  readonly body: JsonObject;
  readonly clock: number;
  readonly data_type: DataType;
  readonly judged_by: string | null;
}

/** The unit that travels: `{id, record, sig}`. */
export interface SignedRecord {
  readonly id: string;
  readonly record: SyncRecord;
  readonly sig: string;
}

export type RecordErrorCode = 'invalid_record' | 'missing_signature' | 'id_mismatch' | 'unverifiable_actor' | 'bad_signature';

export { THREAD_RE };
const DID_RE = /^did:[a-z0-9]+:[^\s]{1,2048}$/;
const FIELDS = ['act', 'actor', 'body', 'clock', 'data_type', 'judged_by', 'parents', 'thread'];

const bad = (why: string) => fail('invalid_record' as const, `record ${why}`);

/** Validates untrusted input as a record: every field of §3, nothing more. */
export function parseRecord(input: unknown): Result<SyncRecord, 'invalid_record'> {
  const fields = parseRecordFields(input);
  if (!fields.ok) return fields;
  try {
    canonicalBytes(fields.value.body);
  } catch (e) {
    return notCanonical(e, 'body');
  }
  return fields;
}

/** A CanonicalJsonError as the record failure it is; `what` is what was being canonicalised. */
function notCanonical(e: unknown, what: 'body' | 'hashed fields'): { ok: false; error: Failure<'invalid_record'> } {
  if (e instanceof CanonicalJsonError) return bad(`${what} cannot be canonicalised: ${e.message}`);
  throw e;
}

/** parseRecord but for the body's canonical form, which the caller checks by computing it. */
function parseRecordFields(input: unknown): Result<SyncRecord, 'invalid_record'> {
  if (!isObject(input)) return bad('is not an object');
  for (const k of Object.keys(input)) if (!FIELDS.includes(k)) return bad(`has an unknown field "${k.slice(0, 40)}"`);
  const { parents, thread, actor, act, body, clock, data_type, judged_by } = input;
  if (!Array.isArray(parents)) return bad('field "parents" must be an array of record IDs');
  for (let i = 0; i < parents.length; i++) {
    const p: unknown = parents[i];
    if (typeof p !== 'string' || !HEX_ID.test(p)) return bad(`field "parents[${i}]" is not a record ID`);
    if (i > 0 && !((parents[i - 1] as string) < p)) return bad('field "parents" must be sorted ascending without duplicates');
  }
  if (typeof thread !== 'string' || !THREAD_RE.test(thread)) return bad('field "thread" must be th_ followed by 1-128 of [A-Za-z0-9_]');
  if (typeof actor !== 'string' || !DID_RE.test(actor)) return bad('field "actor" must be a DID');
  if (typeof act !== 'string' || !(ACTS as readonly string[]).includes(act)) return bad(`field "act" must be one of ${ACTS.join(' ')}`);
  if (!isObject(body)) return bad('field "body" must be a JSON object');
  if (typeof clock !== 'number' || !Number.isSafeInteger(clock) || clock < 0)
    return bad('field "clock" must be an integer from 0 to 2^53-1');
  if (typeof data_type !== 'string' || !(DATA_TYPES as readonly string[]).includes(data_type))
    return bad(`field "data_type" must be one of ${DATA_TYPES.join(' ')}`);
  if (judged_by !== null && (typeof judged_by !== 'string' || !HEX_ID.test(judged_by)))
    return bad('field "judged_by" must be a record ID or null');
  const unsafe = findUnsafeInteger(body, 0);
  if (unsafe !== undefined) return bad(`has an integer beyond ±(2^53-1) at $.body${unsafe}`);
  return ok(input as unknown as SyncRecord);
}

/** The path (below the value) of the first integer beyond ±(2^53-1), built only when there is one. */
function findUnsafeInteger(v: unknown, depth: number): string | undefined {
  if (depth > 300) return undefined; // canonicalisation reports the depth itself
  if (typeof v === 'number') return Number.isInteger(v) && !Number.isSafeInteger(v) ? '' : undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const r = findUnsafeInteger(v[i], depth + 1);
      if (r !== undefined) return `[${i}]${r}`;
    }
  } else if (isObject(v)) {
    for (const k of Object.keys(v)) {
      const r = findUnsafeInteger(v[k], depth + 1);
      if (r !== undefined) return `.${k}${r}`;
    }
  }
  return undefined;
}

/** The seven hashed fields (judged_by is not hashed). */
export function hashedFields(r: SyncRecord): JsonObject {
  return {
    act: r.act,
    actor: r.actor,
    body: r.body,
    clock: r.clock,
    data_type: r.data_type,
    parents: [...r.parents],
    thread: r.thread,
  };
}

export const recordSigningBytes = (r: SyncRecord): Uint8Array => canonicalBytes(hashedFields(r));

/** Record ID = sha256(JCS(seven hashed fields)). */
export const recordId = (r: SyncRecord): string => sha256Hex(recordSigningBytes(r));

export async function signRecord(record: SyncRecord, signer: Signer): Promise<SignedRecord> {
  const bytes = recordSigningBytes(record);
  return { id: sha256Hex(bytes), record, sig: toB64u(await signer.sign(bytes)) };
}

/**
 * Checks one signed record from the network: shape, ID, actor key, signature.
 * The result names what failed; it never throws.
 */
export async function verifySignedRecord(input: unknown): Promise<Result<SignedRecord, RecordErrorCode>> {
  if (!isObject(input)) return fail('invalid_record', 'signed record is not an object');
  for (const k of Object.keys(input)) {
    if (k !== 'id' && k !== 'record' && k !== 'sig')
      return fail('invalid_record', `signed record has an unknown field "${k.slice(0, 40)}"`);
  }
  const { id, record, sig } = input;
  if (typeof id !== 'string' || !HEX_ID.test(id)) return fail('invalid_record', 'signed record "id" is not a record ID');
  const parsed = parseRecordFields(record);
  if (!parsed.ok) return parsed;
  let bytes: Uint8Array;
  try {
    bytes = recordSigningBytes(parsed.value); // also the body's canonical-form check of parseRecord
  } catch (e) {
    return notCanonical(e, 'hashed fields');
  }
  if (sig === undefined || sig === null || sig === '') return fail('missing_signature', `record ${id} carries no signature`);
  if (typeof sig !== 'string') return fail('invalid_record', `record ${id} "sig" is not a string`);
  const actual = await sha256HexAsync(bytes);
  if (actual !== id) return fail('id_mismatch', `record claims ID ${id} but its content hashes to ${actual}`);
  const key = publicKeyFromDid(parsed.value.actor);
  if (!key.ok) return fail('unverifiable_actor', `record ${id}: ${key.error.message}`);
  const sigBytes = fromB64u(sig);
  if (!sigBytes || !(await verify(sigBytes, bytes, key.value))) {
    return fail('bad_signature', `record ${id} signature does not verify against ${parsed.value.actor}`);
  }
  return ok({ id, record: parsed.value, sig });
}
