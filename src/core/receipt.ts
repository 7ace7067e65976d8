/**
 * Receipts for direct delivery (PROTOCOL.md §7): the receiver signs what it answered, so a sender
 * counts an envelope delivered only when the DID it addressed says so. Whoever else answers at a
 * stale or wrong `peer_url` (another machine, the sender's own daemon) cannot forge one.
 *
 * `Syncropel-Receipt: ts=<unix ms>,sig=<b64u>`, Ed25519 by the receiver over the UTF-8 of
 * `"syncropel-receipt-v1\n" + envelope id + "\n" + ts + "\n" + sha256hex(response body bytes)`.
 */
import { fromB64u, toB64u, utf8 } from './bytes';
import { publicKeyFromDid } from './did';
import { verify, type Signer } from './ed25519';
import { sha256Hex } from './hash';

export const RECEIPT_HEADER = 'Syncropel-Receipt';

export function receiptMessage(envelopeId: string, ts: number, body: Uint8Array | string): Uint8Array {
  const bytes = typeof body === 'string' ? utf8(body) : body;
  return utf8(`syncropel-receipt-v1\n${envelopeId}\n${ts}\n${sha256Hex(bytes)}`);
}

/** The header value for an answer `body` to envelope `envelopeId`. */
export async function signReceipt(envelopeId: string, body: Uint8Array | string, signer: Signer, ts: number): Promise<string> {
  return `ts=${ts},sig=${toB64u(await signer.sign(receiptMessage(envelopeId, ts, body)))}`;
}

/**
 * True only when `header` is a receipt by `did` for `envelopeId` over exactly `body`. Never throws:
 * a missing, malformed or foreign receipt is simply not one.
 */
export async function verifyReceipt(
  header: string | null | undefined,
  envelopeId: string,
  body: Uint8Array | string,
  did: string,
): Promise<boolean> {
  if (!header) return false;
  const m = /^ts=(\d{1,16}),\s*sig=([A-Za-z0-9_-]{86})$/.exec(header.trim());
  if (!m) return false;
  const key = publicKeyFromDid(did);
  const sig = fromB64u(m[2]!);
  if (!key.ok || !sig) return false;
  return verify(sig, receiptMessage(envelopeId, Number(m[1]), body), key.value);
}
