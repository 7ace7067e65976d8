/**
 * §5.1 deposit tokens for this device's mailbox: one token, the same at every relay, handed to
 * peers in invites and pairing replies, registered at each relay we receive from.
 */
import { randomBytes, toB64u } from '../core';
import type { PeerContext } from './context';
import { sendControl, writeConfig } from './emit';

/** §5.1: 16–32 random bytes; 16 is 128 bits, unguessable. */
const TOKEN_BYTES = 16;

/** This peer's deposit token, made on first use. */
export async function depositToken(ctx: PeerContext): Promise<string> {
  const existing = (await ctx.config()).depositToken;
  if (existing) return existing;
  const token = toB64u(randomBytes(TOKEN_BYTES));
  await writeConfig(ctx, { topic: 'deposit_token', token });
  return token;
}

/**
 * A new token when a pair ends, so the ended peer's deposits count as unsolicited again. The
 * relays get it on the next receive; the remaining pairs in a `pair.token` record (the protocol
 * names no message for this; until theirs arrives they deposit as unsolicited mail).
 */
export async function rotateDepositToken(ctx: PeerContext): Promise<void> {
  const token = toB64u(randomBytes(TOKEN_BYTES));
  await writeConfig(ctx, { topic: 'deposit_token', token });
  for (const p of (await ctx.config()).pairs.values()) {
    if (p.enabled) await sendControl(ctx, p.peerDid, { topic: 'pair.token', deposit_token: token });
  }
}

/** Registers our token at a relay we receive from (once per token and relay in the engine's life). */
export async function registerDepositToken(ctx: PeerContext, relayUrl: string): Promise<void> {
  await ctx.relay(relayUrl).registerToken(await depositToken(ctx));
}
