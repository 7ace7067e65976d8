/**
 * Passphrase-encrypted identity export: the only way a secret key leaves a device.
 * scrypt (RFC 7914) derives the key; XChaCha20-Poly1305 seals the seed, with the file's header
 * (version, DID, name, KDF parameters) as associated data, so none of it can be altered either.
 * Optionally the file also carries `settings` (any JSON; the engine puts its signed pairs and
 * relays records there), sealed the same way under its own nonce: a restored device needs them
 * before it receives, or it would drop its peers' mail as unpaired.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { fromB64u, randomBytes, toB64u, utf8 } from './bytes';
import { canonicalBytes, type JsonValue } from './canonical';
import { didFromPublicKey } from './did';
import { publicKeyOf } from './ed25519';
import { isObject, parseJsonBytes, parseJsonText } from './json';
import { fail, ok, type Result } from './result';

export const KEYFILE_KIND = 'syncropel-identity';
export const MIN_PASSPHRASE_LENGTH = 10;
/** ~0.3–1 s and 32 MiB on a phone: slow enough against guessing, fast enough to use. */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;

export interface ExportableIdentity {
  readonly did: string;
  readonly name: string;
  readonly secretKey: Uint8Array;
  /** Travels encrypted with the key; absent in files written without it. */
  readonly settings?: JsonValue;
}

/** Bounds what a hostile file can make the importer decrypt and parse. */
const MAX_SETTINGS_BYTES = 16 * 1024 * 1024;

interface KeyfileHeader {
  v: 1;
  kind: typeof KEYFILE_KIND;
  did: string;
  name: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
}

export type KeyfileErrorCode = 'weak_passphrase' | 'invalid_keyfile' | 'wrong_passphrase';

const kdf = (passphrase: string, h: KeyfileHeader['kdf']): Promise<Uint8Array> =>
  scryptAsync(utf8(passphrase.normalize('NFC')), fromB64u(h.salt)!, { N: h.N, r: h.r, p: h.p, dkLen: 32 });

export async function exportIdentity(identity: ExportableIdentity, passphrase: string): Promise<Result<string, 'weak_passphrase'>> {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    return fail('weak_passphrase', `the passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  const header: KeyfileHeader = {
    v: 1,
    kind: KEYFILE_KIND,
    did: identity.did,
    name: identity.name,
    kdf: { name: 'scrypt', ...SCRYPT, salt: toB64u(randomBytes(16)) },
  };
  const key = await kdf(passphrase, header.kdf);
  const nonce = randomBytes(24);
  const ciphertext = xchacha20poly1305(key, nonce, canonicalBytes(header)).encrypt(identity.secretKey);
  const sealedSettings = (() => {
    if (identity.settings === undefined) return {};
    const settingsNonce = randomBytes(24);
    const sealed = xchacha20poly1305(key, settingsNonce, canonicalBytes(header)).encrypt(canonicalBytes(identity.settings));
    return { settings_nonce: toB64u(settingsNonce), settings_ciphertext: toB64u(sealed) };
  })();
  return ok(JSON.stringify({ ...header, nonce: toB64u(nonce), ciphertext: toB64u(ciphertext), ...sealedSettings }, null, 2));
}

const invalid = (why: string) => fail('invalid_keyfile' as const, `not a Syncropel identity file: ${why}`);

export async function importIdentity(text: string, passphrase: string): Promise<Result<ExportableIdentity, KeyfileErrorCode>> {
  const json = parseJsonText(text);
  if (!json.ok || !isObject(json.value)) return invalid('not a JSON object');
  const v = json.value;
  if (v.v !== 1 || v.kind !== KEYFILE_KIND) return invalid(`"kind" must be "${KEYFILE_KIND}" and "v" 1`);
  if (typeof v.did !== 'string' || typeof v.name !== 'string') return invalid('no DID or name');
  const k = v.kdf;
  if (!isObject(k) || k.name !== 'scrypt' || typeof k.salt !== 'string' || !fromB64u(k.salt)) return invalid('unknown key derivation');
  const { N, r, p } = k;
  // Bounds keep a hostile file from asking for gigabytes of memory.
  if (
    !Number.isSafeInteger(N) ||
    !Number.isSafeInteger(r) ||
    !Number.isSafeInteger(p) ||
    (N as number) > 2 ** 20 ||
    (N as number) < 2 ** 14 ||
    r !== 8 ||
    p !== 1
  ) {
    return invalid('scrypt parameters out of range');
  }
  const nonce = typeof v.nonce === 'string' ? fromB64u(v.nonce) : undefined;
  const ciphertext = typeof v.ciphertext === 'string' ? fromB64u(v.ciphertext) : undefined;
  if (nonce?.length !== 24 || ciphertext?.length !== 48) return invalid('bad nonce or ciphertext');
  const header: KeyfileHeader = {
    v: 1,
    kind: KEYFILE_KIND,
    did: v.did,
    name: v.name,
    kdf: { name: 'scrypt', N: N as number, r: 8, p: 1, salt: k.salt },
  };
  const hasSettings = v.settings_nonce !== undefined || v.settings_ciphertext !== undefined;
  const settingsNonce = typeof v.settings_nonce === 'string' ? fromB64u(v.settings_nonce) : undefined;
  const settingsCiphertext =
    typeof v.settings_ciphertext === 'string' && v.settings_ciphertext.length <= (MAX_SETTINGS_BYTES * 4) / 3 + 32
      ? fromB64u(v.settings_ciphertext)
      : undefined;
  if (hasSettings && (settingsNonce?.length !== 24 || !settingsCiphertext || settingsCiphertext.length < 16))
    return invalid('bad settings nonce or ciphertext');
  const key = await kdf(passphrase, header.kdf);
  let secretKey: Uint8Array;
  let settingsBytes: Uint8Array | undefined;
  try {
    secretKey = xchacha20poly1305(key, nonce, canonicalBytes(header)).decrypt(ciphertext);
    if (settingsNonce && settingsCiphertext)
      settingsBytes = xchacha20poly1305(key, settingsNonce, canonicalBytes(header)).decrypt(settingsCiphertext);
  } catch {
    return fail('wrong_passphrase', 'the passphrase is wrong, or the file was altered');
  }
  if (didFromPublicKey(publicKeyOf(secretKey)) !== v.did) return invalid('the key does not match the DID');
  if (!settingsBytes) return ok({ did: v.did, name: v.name, secretKey });
  const settings = parseJsonBytes(settingsBytes);
  if (!settings.ok) return invalid(`its settings are not JSON (${settings.error.message})`);
  return ok({ did: v.did, name: v.name, secretKey, settings: settings.value });
}
