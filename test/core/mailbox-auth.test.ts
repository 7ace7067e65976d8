import { describe, expect, it } from 'vitest';
import { signMailboxRequest, verifyMailboxAuth, type MailboxRequest } from '../../src/core';
import { newPeer } from '../../support/fixtures';

const owner = newPeer();
const path = `/v1/mailbox/${encodeURIComponent(owner.did)}/receive?limit=10`;
const req: MailboxRequest = { method: 'GET', host: '127.0.0.1:8787', pathAndQuery: path, body: '' };
const now = 1_700_000_000_000;

describe('mailbox owner authentication (§6)', () => {
  it('verifies a header signed by the owner', async () => {
    const header = await signMailboxRequest(req, owner.signer, now);
    expect(header).toMatch(/^Syncropel-Mailbox ts=\d+,sig=[A-Za-z0-9_-]{86}$/);
    const r = await verifyMailboxAuth(header, owner.did, req, now + 1000);
    expect(r.ok).toBe(true);
  });

  it('rejects a missing header, another key, skew beyond 120 s and any changed part of the request', async () => {
    const header = await signMailboxRequest(req, owner.signer, now);
    const codes = async (h: string | undefined, did: string, r: MailboxRequest, at: number) => {
      const v = await verifyMailboxAuth(h, did, r, at);
      return v.ok ? 'ok' : v.error.code;
    };
    expect(await codes(undefined, owner.did, req, now)).toBe('unauthorized');
    expect(await codes('Bearer abc', owner.did, req, now)).toBe('unauthorized');
    expect(await codes(await signMailboxRequest(req, newPeer().signer, now), owner.did, req, now)).toBe('unauthorized');
    expect(await codes(header, owner.did, req, now + 120_001)).toBe('unauthorized');
    expect(await codes(header, owner.did, req, now - 120_001)).toBe('unauthorized');
    expect(await codes(header, owner.did, req, now + 120_000)).toBe('ok');
    expect(await codes(header, owner.did, { ...req, method: 'POST' }, now)).toBe('unauthorized');
    expect(await codes(header, owner.did, { ...req, host: 'evil.example' }, now)).toBe('unauthorized');
    expect(await codes(header, owner.did, { ...req, pathAndQuery: path + '0' }, now)).toBe('unauthorized');
    expect(await codes(header, owner.did, { ...req, body: '{}' }, now)).toBe('unauthorized');
    expect(await codes(header, 'did:sync:user:alice', req, now)).toBe('unverifiable_did');
  });
});
