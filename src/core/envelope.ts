/**
 * Envelopes (PROTOCOL.md §4): what a sender deposits at a relay for one receiver.
 * `plain` carries signed records under the sender's signature; `sealed` wraps a complete plain
 * envelope so the relay learns only receiver, size and time.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as sha256Hash } from '@noble/hashes/sha2.js';
import { bytesEqual, concatBytes, fromB64u, fromUtf8, randomBytes, toB64u, toHex, utf8 } from './bytes';
import { canonicalBytes, canonicalize, type JsonValue } from './canonical';
import { publicKeyFromDid, x25519PublicKeyFromDid, x25519SecretKeyFromEd25519 } from './did';
import { verify, type Signer } from './ed25519';
import { HEX_ID, sha256Hex } from './hash';
import { isObject, parseJsonBytes, parseJsonText } from './json';
import { verifySignedRecord, type RecordErrorCode, type SignedRecord } from './record';
import { x25519SharedSecret } from './x25519';
import { fail, ok, type Failure, type Result } from './result';

export const ENVELOPE_VERSION = 1 as const;
export const DEFAULT_TTL_SECONDS = 30 * 24 * 3600;
const SEAL_INFO = utf8('syncropel-seal-v1');
const DID_RE = /^did:[a-z0-9]+:[^\s]{1,2048}$/;

interface EnvelopeHeader {
  readonly v: 1;
  readonly id: string;
  readonly to_did: string;
  readonly ttl_seconds?: number;
}

export interface PlainEnvelope extends EnvelopeHeader {
  readonly encoding: 'plain';
  readonly from_did: string;
  /** Signed records as sent; each is verified on its own when the envelope is opened. */
  readonly records: readonly JsonValue[];
  readonly sig: string;
}

export interface SealedEnvelope extends EnvelopeHeader {
  readonly encoding: 'sealed';
  readonly epk: string;
  readonly nonce: string;
  readonly ciphertext: string;
}

export type Envelope = PlainEnvelope | SealedEnvelope;

export type EnvelopeErrorCode =
  | 'invalid_envelope'
  | 'wrong_recipient'
  | 'decryption_failed'
  | 'header_mismatch'
  | 'envelope_id_mismatch'
  | 'unverifiable_sender'
  | 'bad_envelope_signature'
  | 'unpaired_sender';

/** Envelope ID = sha256(JCS({from_did, record_ids: sorted, to_did})). Deterministic on purpose. */
export function envelopeId(fromDid: string, toDid: string, recordIds: readonly string[]): string {
  return sha256Hex(canonicalBytes({ from_did: fromDid, record_ids: [...recordIds].sort(), to_did: toDid }));
}

const invalid = (why: string) => fail('invalid_envelope' as const, `envelope ${why}`);

/**
 * Structural check of an envelope from the network: every field present and well typed.
 * No cryptography: this is what a relay can check. Never throws.
 */
export function parseEnvelope(input: unknown): Result<Envelope, 'invalid_envelope'> {
  if (!isObject(input)) return invalid('is not a JSON object');
  const { v, id, to_did, encoding, ttl_seconds } = input;
  if (v !== ENVELOPE_VERSION) return invalid(`field "v" must be ${ENVELOPE_VERSION}`);
  if (typeof id !== 'string' || !HEX_ID.test(id)) return invalid('field "id" must be 64 lowercase hex characters');
  if (typeof to_did !== 'string' || !DID_RE.test(to_did)) return invalid('field "to_did" must be a DID');
  if (ttl_seconds !== undefined && (typeof ttl_seconds !== 'number' || !Number.isSafeInteger(ttl_seconds) || ttl_seconds <= 0)) {
    return invalid('field "ttl_seconds" must be a positive integer');
  }
  if (encoding === 'plain') {
    const { from_did, records, sig } = input;
    if (typeof from_did !== 'string' || !DID_RE.test(from_did)) return invalid('field "from_did" must be a DID');
    if (!Array.isArray(records) || records.length === 0) return invalid('field "records" must be a non-empty array');
    if (!records.every(isObject)) return invalid('field "records" must hold signed record objects');
    if (typeof sig !== 'string' || fromB64u(sig)?.length !== 64) return invalid('field "sig" must be a base64url Ed25519 signature');
  } else if (encoding === 'sealed') {
    const { epk, nonce, ciphertext } = input;
    if (typeof epk !== 'string' || fromB64u(epk)?.length !== 32) return invalid('field "epk" must be a base64url 32-byte key');
    if (typeof nonce !== 'string' || fromB64u(nonce)?.length !== 24) return invalid('field "nonce" must be a base64url 24-byte nonce');
    const ct = typeof ciphertext === 'string' ? fromB64u(ciphertext) : undefined;
    if (!ct || ct.length < 16) return invalid('field "ciphertext" must be base64url and hold at least a 16-byte tag');
  } else {
    return invalid('field "encoding" must be "plain" or "sealed"');
  }
  return ok(input as unknown as Envelope);
}

/** Parses raw bytes (e.g. a request body) as an envelope. Never throws. */
export function parseEnvelopeBytes(bytes: Uint8Array): Result<Envelope, 'invalid_envelope'> {
  const json = parseJsonBytes(bytes);
  return json.ok ? parseEnvelope(json.value) : invalid(`is not JSON (${json.error.message})`);
}

export interface PlainEnvelopeInput {
  readonly fromDid: string;
  readonly toDid: string;
  readonly records: readonly SignedRecord[];
  readonly ttlSeconds?: number;
}

export async function buildPlainEnvelope(input: PlainEnvelopeInput, signer: Signer): Promise<PlainEnvelope> {
  if (input.records.length === 0) throw new RangeError('an envelope carries at least one record');
  const unsigned = {
    v: ENVELOPE_VERSION,
    id: envelopeId(
      input.fromDid,
      input.toDid,
      input.records.map((r) => r.id),
    ),
    from_did: input.fromDid,
    to_did: input.toDid,
    encoding: 'plain' as const,
    ttl_seconds: input.ttlSeconds ?? DEFAULT_TTL_SECONDS,
    records: input.records as unknown as JsonValue[],
  };
  const sig = toB64u(await signer.sign(canonicalBytes(unsigned)));
  return { ...unsigned, sig };
}

const sealAad = (e: EnvelopeHeader): Uint8Array => canonicalBytes({ id: e.id, to_did: e.to_did, v: e.v });

function sealKey(shared: Uint8Array, epk: Uint8Array, recipientX: Uint8Array): Uint8Array {
  return hkdf(sha256Hash, shared, concatBytes(epk, recipientX), SEAL_INFO, 32);
}

/** Seals a plain envelope for its receiver (§4 sealed): X25519 + HKDF-SHA256 + XChaCha20-Poly1305. */
export function sealEnvelope(plain: PlainEnvelope): SealedEnvelope {
  const recipientX = x25519PublicKeyFromDid(plain.to_did);
  if (!recipientX.ok) throw new TypeError(`cannot seal for ${plain.to_did}: ${recipientX.error.message}`);
  const e = x25519.utils.randomSecretKey();
  const epk = x25519.getPublicKey(e);
  const key = sealKey(x25519.getSharedSecret(e, recipientX.value), epk, recipientX.value);
  const nonce = randomBytes(24);
  const header: EnvelopeHeader = { v: ENVELOPE_VERSION, id: plain.id, to_did: plain.to_did };
  const ciphertext = xchacha20poly1305(key, nonce, sealAad(header)).encrypt(canonicalBytes(plain));
  return {
    v: ENVELOPE_VERSION,
    id: plain.id,
    to_did: plain.to_did,
    encoding: 'sealed',
    ttl_seconds: plain.ttl_seconds ?? DEFAULT_TTL_SECONDS,
    epk: toB64u(epk),
    nonce: toB64u(nonce),
    ciphertext: toB64u(ciphertext),
  };
}

/** The receiving side: its DID and the Ed25519 seed behind it. */
export interface Recipient {
  readonly did: string;
  readonly secretKey: Uint8Array;
}

export type RecordOutcome =
  | { readonly ok: true; readonly value: SignedRecord }
  | { readonly ok: false; readonly index: number; readonly id: string | undefined; readonly error: Failure<RecordErrorCode> };

export interface OpenEnvelopeOptions {
  /** Asked with the sender's DID once the envelope is decrypted, before any signature is verified. */
  readonly admitSender?: (fromDid: string) => boolean;
}

export interface OpenedEnvelope {
  readonly id: string;
  readonly from_did: string;
  readonly to_did: string;
  readonly encoding: 'plain' | 'sealed';
  /** One outcome per record, in order: a bad record never hides the good ones. */
  readonly records: readonly RecordOutcome[];
}

/** A receiver's X25519 keys, derived once per receiver rather than once per envelope. */
let recipientKeys: { did: string; seed: string; keys: Result<{ xPublic: Uint8Array; xSecret: Uint8Array }, EnvelopeErrorCode> } | undefined;

function x25519KeysOf(me: Recipient) {
  const seed = toHex(me.secretKey);
  if (recipientKeys?.did !== me.did || recipientKeys.seed !== seed) {
    const myX = x25519PublicKeyFromDid(me.did);
    const keys = myX.ok
      ? ok({ xPublic: myX.value, xSecret: x25519SecretKeyFromEd25519(me.secretKey) })
      : fail('wrong_recipient' as const, myX.error.message);
    recipientKeys = { did: me.did, seed, keys };
  }
  return recipientKeys.keys;
}

async function decryptSealed(env: SealedEnvelope, me: Recipient): Promise<Result<unknown, EnvelopeErrorCode>> {
  const mine = x25519KeysOf(me);
  if (!mine.ok) return mine;
  const epk = fromB64u(env.epk)!;
  const nonce = fromB64u(env.nonce)!;
  let plaintext: Uint8Array;
  try {
    const shared = await x25519SharedSecret(mine.value.xSecret, epk);
    if (bytesEqual(shared, new Uint8Array(32))) return fail('decryption_failed', 'sealed envelope uses a low-order ephemeral key');
    const key = sealKey(shared, epk, mine.value.xPublic);
    plaintext = xchacha20poly1305(key, nonce, sealAad(env)).decrypt(fromB64u(env.ciphertext)!);
  } catch {
    return fail('decryption_failed', `sealed envelope ${env.id} does not decrypt: tampered, or not sealed for ${me.did}`);
  }
  let text: string;
  try {
    text = fromUtf8(plaintext);
  } catch {
    return fail('invalid_envelope', 'sealed envelope plaintext is not UTF-8');
  }
  const json = parseJsonText(text);
  return json.ok ? ok(json.value) : fail('invalid_envelope', `sealed envelope plaintext ${json.error.message}`);
}

/**
 * Opens an envelope addressed to `me`: decrypts (sealed), checks the header binding, the envelope
 * ID and the sender's signature, then verifies each record on its own. Every failure comes back as
 * a typed result naming what failed; nothing throws.
 */
export async function openEnvelope(
  input: unknown,
  me: Recipient,
  opts: OpenEnvelopeOptions = {},
): Promise<Result<OpenedEnvelope, EnvelopeErrorCode>> {
  let outer: Envelope;
  let plain: PlainEnvelope;
  try {
    const parsed = parseEnvelope(input);
    if (!parsed.ok) return parsed;
    outer = parsed.value;
    if (outer.to_did !== me.did) return fail('wrong_recipient', `envelope is for ${outer.to_did}, not ${me.did}`);
    if (outer.encoding === 'sealed') {
      const inner = await decryptSealed(outer, me);
      if (!inner.ok) return inner;
      const innerEnv = parseEnvelope(inner.value);
      if (!innerEnv.ok) return fail('invalid_envelope', `sealed envelope content: ${innerEnv.error.message}`);
      if (innerEnv.value.encoding !== 'plain') return fail('invalid_envelope', 'sealed envelope must wrap a plain envelope');
      const i = innerEnv.value;
      if (i.id !== outer.id || i.to_did !== outer.to_did || i.v !== outer.v) {
        return fail('header_mismatch', 'sealed envelope header (id, to_did, v) differs from the envelope inside');
      }
      plain = i;
    } else {
      plain = outer;
    }
    // Before any signature is checked: a direct endpoint refuses strangers at the cost of one
    // decryption, not of verifying whatever they sent (§7).
    if (opts.admitSender && !opts.admitSender(plain.from_did))
      return fail('unpaired_sender', `envelope sender ${plain.from_did.slice(0, 80)} is not paired`);
    const claimedIds = plain.records.map((r) => (isObject(r) && typeof r.id === 'string' ? r.id : ''));
    const expectedId = envelopeId(plain.from_did, plain.to_did, claimedIds);
    if (expectedId !== plain.id) return fail('envelope_id_mismatch', `envelope claims ID ${plain.id} but its content gives ${expectedId}`);
    const senderKey = publicKeyFromDid(plain.from_did);
    if (!senderKey.ok) return fail('unverifiable_sender', `envelope sender: ${senderKey.error.message}`);
    const { sig, ...unsigned } = plain;
    const sigOk = await verify(fromB64u(sig)!, canonicalBytes(unsigned), senderKey.value);
    if (!sigOk) return fail('bad_envelope_signature', `envelope ${plain.id} signature does not verify against ${plain.from_did}`);
  } catch (e) {
    // Canonicalisation of hostile content (lone surrogates, depth) lands here.
    return fail('invalid_envelope', `envelope cannot be checked: ${e instanceof Error ? e.message : String(e)}`);
  }
  const records = await Promise.all(
    plain.records.map(async (r, index): Promise<RecordOutcome> => {
      const v = await verifySignedRecord(r);
      if (v.ok) return v;
      return { ok: false, index, id: claimedId(r), error: v.error };
    }),
  );
  return ok({ id: plain.id, from_did: plain.from_did, to_did: plain.to_did, encoding: outer.encoding, records });
}

const claimedId = (r: unknown): string | undefined => (isObject(r) && typeof r.id === 'string' && HEX_ID.test(r.id) ? r.id : undefined);

/** The wire text of an envelope (canonical, so equal envelopes are equal bytes). */
export const serializeEnvelope = (e: Envelope): string => canonicalize(e);
