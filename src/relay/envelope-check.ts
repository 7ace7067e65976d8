/**
 * Envelope validation at the deposit edge without decoding what the relay never reads.
 *
 * `parseEnvelope` (core) decodes a sealed envelope's ciphertext only to check it is strict
 * base64url of at least a 16-byte tag; the relay never opens it (§4–§5). Measured before issue 14,
 * that decode was ~3% of the relay's main thread. Here the same rule is checked on the text
 * (alphabet, length, canonical trailing bits) and core checks every other field, so the answer
 * and its error message are exactly core's (test/relay/envelope-check.test.ts compares them).
 */
import { isObject, ok, parseEnvelope, type Envelope, type Result } from '../core';

const B64U_TEXT = /^[A-Za-z0-9_-]*$/;
/** Values of base64url characters, for the canonical-trailing-bits check. */
const b64uValue = (c: number): number => {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  return c === 45 ? 62 : c === 95 ? 63 : -1;
};
/** 16 zero bytes: a ciphertext core accepts, standing in for one already checked here. */
const CHECKED_CIPHERTEXT = 'AAAAAAAAAAAAAAAAAAAAAA';

/** Whether `fromB64u(s)` (core: strict, no padding, canonical) would decode to at least `min` bytes. */
export function isStrictB64uOfAtLeast(s: string, min: number): boolean {
  const rest = s.length % 4;
  if (rest === 1) return false;
  const bytes = ((s.length - rest) / 4) * 3 + (rest === 0 ? 0 : rest - 1);
  if (bytes < min || !B64U_TEXT.test(s)) return false;
  if (rest === 0) return true;
  // The bits of the last character beyond the final byte must be zero (4 after 2 characters, 2 after 3).
  return (b64uValue(s.charCodeAt(s.length - 1)) & (rest === 2 ? 0x0f : 0x03)) === 0;
}

/** `parseEnvelope`, without decoding a sealed envelope's ciphertext. */
export function parseDepositedEnvelope(input: unknown): Result<Envelope, 'invalid_envelope'> {
  if (
    isObject(input) &&
    input.encoding === 'sealed' &&
    typeof input.ciphertext === 'string' &&
    isStrictB64uOfAtLeast(input.ciphertext, 16)
  ) {
    const checked = parseEnvelope({ ...input, ciphertext: CHECKED_CIPHERTEXT });
    return checked.ok ? ok(input as unknown as Envelope) : checked;
  }
  return parseEnvelope(input);
}
