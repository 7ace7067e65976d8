/** Byte helpers shared by every module: UTF-8, hex, base64url (RFC 4648 §5, no padding). */
import { platformCrypto } from './platform';

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/** Our byte arrays are never backed by a SharedArrayBuffer; WebCrypto's typings want that said. */
export const bufferSource = (u: Uint8Array): Uint8Array<ArrayBuffer> => u as Uint8Array<ArrayBuffer>;

/** Decodes UTF-8, throwing a TypeError on malformed input (callers at the edge catch it). */
export const fromUtf8 = (b: Uint8Array): string => strictDecoder.decode(b);

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x];
  return s;
}

export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64U.length; i++) B64U_INDEX[B64U.charCodeAt(i)] = i;

export function toB64u(b: Uint8Array): string {
  let s = '';
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64U[n >> 18]! + B64U[(n >> 12) & 63]! + B64U[(n >> 6) & 63]! + B64U[n & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i]! << 16;
    s += B64U[n >> 18]! + B64U[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8);
    s += B64U[n >> 18]! + B64U[(n >> 12) & 63]! + B64U[(n >> 6) & 63]!;
  }
  return s;
}

const b64uValue = (c: number): number => (c < 128 ? B64U_INDEX[c]! : -1);

// Uint8Array.fromBase64 (ES2026; Chromium 140+, not Node 20): native, an order of magnitude
// faster on the long ciphertexts a receiver decodes. Its "loose" mode is laxer than ours
// (whitespace, padding, non-zero trailing bits), so those are refused before it is called.
type NativeBase64 = (text: string, options: { alphabet: 'base64url'; lastChunkHandling: 'loose' }) => Uint8Array;
const nativeFromBase64 = (Uint8Array as unknown as { fromBase64?: NativeBase64 }).fromBase64;
const B64U_TEXT = /^[A-Za-z0-9_-]*$/;
/** Below this, the JS decoder is as fast and there is nothing to gain. */
const NATIVE_B64_MIN = 512;

function fromB64uNative(decode: NativeBase64, s: string): Uint8Array | undefined {
  const rest = s.length % 4;
  if (rest === 1 || !B64U_TEXT.test(s)) return undefined;
  // Canonical: the bits of the last character beyond the final byte are zero (4 of them after
  // 2 characters, 2 after 3).
  if (rest !== 0 && (B64U_INDEX[s.charCodeAt(s.length - 1)]! & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  try {
    return decode.call(Uint8Array, s, { alphabet: 'base64url', lastChunkHandling: 'loose' });
  } catch {
    return undefined;
  }
}

/**
 * Strict base64url decode: no padding, no whitespace, canonical trailing bits.
 * Returns undefined for anything else, so one value has exactly one encoding.
 * Four characters at a time: a receiver decodes every envelope's ciphertext with this.
 */
export function fromB64u(s: string): Uint8Array | undefined {
  if (nativeFromBase64 && s.length >= NATIVE_B64_MIN) return fromB64uNative(nativeFromBase64, s);
  const rest = s.length % 4;
  if (rest === 1) return undefined;
  const full = s.length - rest;
  const out = new Uint8Array((full / 4) * 3 + (rest === 0 ? 0 : rest - 1));
  let o = 0;
  for (let i = 0; i < full; i += 4) {
    const a = b64uValue(s.charCodeAt(i));
    const b = b64uValue(s.charCodeAt(i + 1));
    const c = b64uValue(s.charCodeAt(i + 2));
    const d = b64uValue(s.charCodeAt(i + 3));
    if ((a | b | c | d) < 0) return undefined;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (rest === 2) {
    const a = b64uValue(s.charCodeAt(full));
    const b = b64uValue(s.charCodeAt(full + 1));
    if ((a | b) < 0 || (b & 0x0f) !== 0) return undefined; // 12 bits carry 8: 4 must be zero
    out[o] = (a << 2) | (b >> 4);
  } else if (rest === 3) {
    const a = b64uValue(s.charCodeAt(full));
    const b = b64uValue(s.charCodeAt(full + 1));
    const c = b64uValue(s.charCodeAt(full + 2));
    if ((a | b | c) < 0 || (c & 0x03) !== 0) return undefined; // 18 bits carry 16: 2 must be zero
    const n = (a << 12) | (b << 6) | c;
    out[o++] = n >> 10;
    out[o] = (n >> 2) & 0xff;
  }
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const crypto = platformCrypto();
  if (!crypto) throw new Error('no secure random source on this platform (globalThis.crypto)');
  crypto.getRandomValues(out);
  return out;
}
