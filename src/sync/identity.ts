/**
 * This device's identity: made once, exported as a passphrase-encrypted backup with the signed
 * records of its configuration (§8), restored on a device that has none.
 */
import {
  createSigner,
  didFromPublicKey,
  exportIdentity as encryptBackup,
  generateSecretKey,
  importIdentity as decryptBackup,
  isObject,
  verifySignedRecord,
  type JsonValue,
  type SignedRecord,
} from '../core';
import type { Identity } from '../store/types';
import { CONFIG_THREAD } from './config';
import type { PeerContext } from './context';
import { sendControl, toStored } from './emit';
import { PeerError } from './errors';

const MAX_NAME_LENGTH = 200;

export async function createIdentity(ctx: PeerContext, name: string): Promise<Identity> {
  const trimmed = name.trim();
  if (!trimmed) throw new PeerError('invalid_input', 'a display name is required');
  if (trimmed.length > MAX_NAME_LENGTH) throw new PeerError('invalid_input', `a display name has at most ${MAX_NAME_LENGTH} characters`);
  const existing = await ctx.load(); // another context may have created it meanwhile
  if (existing) throw new PeerError('identity_exists', `this device already has an identity (${existing.did})`);
  const secretKey = generateSecretKey();
  const identity: Identity = { did: didFromPublicKey(createSigner(secretKey).publicKey), name: trimmed, secretKey, createdAt: ctx.now() };
  await ctx.store.createIdentity(identity);
  ctx.adopt(identity);
  return identity;
}

/** The backup: the key, and this device's configuration records, so a restored device receives at once. */
export async function exportIdentity(ctx: PeerContext, passphrase: string): Promise<string> {
  const { me } = ctx.requireIdentity();
  const config = (await ctx.store.recordsByThread(CONFIG_THREAD)).filter((r) => r.actor === me.did).map((r) => r.signed);
  const file = await encryptBackup({ ...me, settings: { config: config as unknown as JsonValue[] } }, passphrase);
  if (!file.ok) throw new PeerError('invalid_input', file.error.message);
  return file.value;
}

/** Restores a backup on a device without an identity: its configuration records, then the key. */
export async function importIdentity(ctx: PeerContext, file: string, passphrase: string): Promise<Identity> {
  const existing = await ctx.load();
  if (existing) throw new PeerError('identity_exists', `this device already has an identity (${existing.did})`);
  const restored = await decryptBackup(file, passphrase);
  if (!restored.ok) throw new PeerError('invalid_backup', restored.error.message);
  const config = await restoredConfig(restored.value.settings, restored.value.did);
  // Settings first, identity last: if either write fails the device still has no identity,
  // and importing again simply repeats both (the records are idempotent).
  const now = ctx.now();
  await ctx.store.ingest(config.map((s) => toStored(s, now, 'local')));
  const identity: Identity = { did: restored.value.did, name: restored.value.name, secretKey: restored.value.secretKey, createdAt: now };
  await ctx.store.createIdentity(identity);
  ctx.adopt(identity);
  // §11: the restored device holds no records yet; each pair sends back the threads it granted us.
  for (const pair of (await ctx.config()).pairs.values()) {
    if (pair.enabled && pair.threads.length > 0)
      await sendControl(ctx, pair.peerDid, { topic: 'history.request', threads: [...pair.threads] });
  }
  return identity;
}

/**
 * The configuration records of a backup's settings: each must verify and be one of the owner's
 * own config records; anything else fails the restore before anything is written.
 */
async function restoredConfig(settings: JsonValue | undefined, did: string): Promise<SignedRecord[]> {
  if (settings === undefined) return []; // a backup written before settings travelled with the key
  const config = isObject(settings) && Array.isArray(settings.config) ? settings.config : undefined;
  if (!config) throw new PeerError('invalid_backup', "the backup's settings hold no list of configuration records");
  const out: SignedRecord[] = [];
  for (const [i, raw] of config.entries()) {
    const v = await verifySignedRecord(raw);
    if (!v.ok) throw new PeerError('invalid_backup', `the backup's configuration record ${i} does not verify: ${v.error.message}`);
    if (v.value.record.actor !== did || v.value.record.thread !== CONFIG_THREAD)
      throw new PeerError('invalid_backup', `the backup's configuration record ${i} is not this identity's configuration`);
    out.push(v.value);
  }
  return out;
}
