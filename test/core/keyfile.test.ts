import { describe, expect, it } from 'vitest';
import { exportIdentity, importIdentity } from '../../src/core';
import { newPeer } from '../../support/fixtures';

const alice = newPeer();
const identity = { did: alice.did, name: 'Alice laptop', secretKey: alice.secretKey };
const passphrase = 'correct horse battery staple';

describe('passphrase-encrypted identity export', () => {
  it('round-trips, and the file holds no key in the clear', async () => {
    const file = await exportIdentity(identity, passphrase);
    if (!file.ok) throw new Error(file.error.message);
    expect(file.value).not.toContain(Buffer.from(alice.secretKey).toString('base64url'));
    expect(file.value).not.toContain(Buffer.from(alice.secretKey).toString('hex'));
    const back = await importIdentity(file.value, passphrase);
    if (!back.ok) throw new Error(back.error.message);
    expect(back.value.did).toBe(alice.did);
    expect(Buffer.from(back.value.secretKey).equals(Buffer.from(alice.secretKey))).toBe(true);
  });

  it('refuses a short passphrase, a wrong one, and any altered field', async () => {
    expect((await exportIdentity(identity, 'short')).ok).toBe(false);
    const file = await exportIdentity(identity, passphrase);
    if (!file.ok) throw new Error(file.error.message);
    const code = async (text: string, pass = passphrase) => {
      const r = await importIdentity(text, pass);
      return r.ok ? 'ok' : r.error.code;
    };
    expect(await code(file.value, 'wrong passphrase!')).toBe('wrong_passphrase');
    const parsed = JSON.parse(file.value) as Record<string, unknown>;
    expect(await code(JSON.stringify({ ...parsed, name: 'Mallory' }))).toBe('wrong_passphrase');
    expect(await code(JSON.stringify({ ...parsed, did: newPeer().did }))).toBe('wrong_passphrase');
    expect(await code(JSON.stringify({ ...parsed, kdf: { ...(parsed.kdf as object), N: 2 ** 30 } }))).toBe('invalid_keyfile');
    expect(await code('{"not":"a keyfile"}')).toBe('invalid_keyfile');
    expect(await code('garbage')).toBe('invalid_keyfile');
  });
});

describe('settings carried in the identity file', () => {
  const settings = { config: [{ any: 'json', n: [1, 2, 3] }] };

  it('round-trip encrypted with the key; files without them still import', async () => {
    const file = await exportIdentity({ ...identity, settings }, passphrase);
    if (!file.ok) throw new Error(file.error.message);
    expect(file.value).not.toContain('json'); // sealed, not in the clear
    const back = await importIdentity(file.value, passphrase);
    if (!back.ok) throw new Error(back.error.message);
    expect(back.value.settings).toEqual(settings);
    const bare = await exportIdentity(identity, passphrase);
    if (!bare.ok) throw new Error(bare.error.message);
    expect(JSON.parse(bare.value)).not.toHaveProperty('settings_ciphertext');
    const old = await importIdentity(bare.value, passphrase);
    expect(old.ok && old.value.settings).toBe(undefined);
  });

  it('refuses altered or malformed settings', async () => {
    const file = await exportIdentity({ ...identity, settings }, passphrase);
    if (!file.ok) throw new Error(file.error.message);
    const parsed = JSON.parse(file.value) as Record<string, string>;
    const code = async (over: Record<string, unknown>) => {
      const r = await importIdentity(JSON.stringify({ ...parsed, ...over }), passphrase);
      return r.ok ? 'ok' : r.error.code;
    };
    const ct = Buffer.from(parsed.settings_ciphertext!, 'base64url');
    ct[3]! ^= 1;
    expect(await code({ settings_ciphertext: ct.toString('base64url') })).toBe('wrong_passphrase');
    expect(await code({ settings_nonce: parsed.nonce })).toBe('wrong_passphrase'); // the key's nonce: wrong stream
    expect(await code({ settings_nonce: 'AAAA' })).toBe('invalid_keyfile');
    expect(await code({ settings_ciphertext: 42 })).toBe('invalid_keyfile');
    expect(await code({ settings_nonce: undefined })).toBe('invalid_keyfile');
  });
});
