import { describe, expect, it } from 'vitest';
import { createInvite, encodeInvite, inviteLink, parseInvite, toB64u, utf8 } from '../../src/core';
import { newPeer } from '../../support/fixtures';

const alice = newPeer();
const now = 1_700_000_000_000;

async function invite(exp = now + 60_000) {
  return createInvite(
    { did: alice.did, name: 'Alice laptop', relays: ['https://relay.example'], threads: ['th_shared'], exp },
    alice.signer,
  );
}

describe('pairing invites (§9)', () => {
  it('round-trips through a link and verifies', async () => {
    const inv = await invite();
    const link = inviteLink('https://app.example/', inv);
    expect(link.startsWith('https://app.example/#pair=')).toBe(true);
    const r = await parseInvite(link, now);
    expect(r.ok && r.value.nonce === inv.nonce).toBe(true);
    expect((await parseInvite(encodeInvite(inv), now)).ok).toBe(true);
  });

  it('rejects expired, forged and malformed invites with a reason', async () => {
    const code = async (s: string) => {
      const r = await parseInvite(s, now);
      return r.ok ? 'ok' : r.error.code;
    };
    expect(await code(encodeInvite(await invite(now - 1)))).toBe('expired_invite');
    const inv = await invite();
    expect(await code(encodeInvite({ ...inv, name: 'Mallory' }))).toBe('bad_invite_signature');
    expect(await code(encodeInvite({ ...inv, relays: ['ftp://x'] }))).toBe('invalid_invite');
    expect(await code('not a link at all')).toBe('invalid_invite');
    expect(await code(toB64u(utf8('[1,2]')))).toBe('invalid_invite');
  });
});
