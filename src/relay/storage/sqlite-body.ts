/**
 * How the SQLite store keeps an envelope's body (schema version 4): the relay must serve the exact
 * text that was deposited (PROTOCOL.md §5), but most of a sealed envelope is its base64url
 * ciphertext, a third larger than its bytes. A body whose `"ciphertext":"…"` value is canonical
 * base64url is kept as a BLOB: the text before it, the decoded bytes, the text after it. Anything
 * else (no such value, escapes, non-canonical base64url) stays text. `packBody` checks that
 * re-encoding gives back the very characters it replaced, so `unpackBody(packBody(t)) === t` for
 * every text (test/relay/sqlite-body.test.ts checks it with fast-check).
 *
 * Measured (`npm run bench:scale`, 1 KiB sealed envelopes): database bytes per queued envelope
 * fell from 1.45× to 1.12× the envelope's JSON size (1,485 → 1,143 bytes at 1,000,000 envelopes).
 *
 * BLOB layout: byte 0 = 1 (format), u32le head length, u32le bytes length, head (UTF-8), bytes,
 * tail (UTF-8). Version 3 rows hold text and are served as they are.
 */
const KEY = '"ciphertext":"';
const FORMAT = 1;
const HEADER_BYTES = 9;
/** Shorter values save too little to be worth a BLOB. */
const MIN_PACKED_CHARS = 64;
const LONE_SURROGATE = /\p{Cs}/u;

/** The body as stored: a packed BLOB when that round-trips exactly, else the text. */
export function packBody(text: string): string | Buffer {
  const at = text.indexOf(KEY);
  // A lone surrogate does not survive UTF-8 (the relay's texts come from strict UTF-8, so never).
  if (at < 0 || LONE_SURROGATE.test(text)) return text;
  const start = at + KEY.length;
  const end = text.indexOf('"', start);
  if (end < 0 || end - start < MIN_PACKED_CHARS) return text;
  const b64 = text.slice(start, end);
  const bytes = Buffer.from(b64, 'base64url');
  // Node's decoder skips what is not base64url and accepts padding and '+/': only an exact
  // re-encoding proves the span is recoverable.
  if (bytes.toString('base64url') !== b64) return text;
  const head = Buffer.from(text.slice(0, start), 'utf8');
  const tail = Buffer.from(text.slice(end), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + head.length + bytes.length + tail.length);
  out[0] = FORMAT;
  out.writeUInt32LE(head.length, 1);
  out.writeUInt32LE(bytes.length, 5);
  head.copy(out, HEADER_BYTES);
  bytes.copy(out, HEADER_BYTES + head.length);
  tail.copy(out, HEADER_BYTES + head.length + bytes.length);
  return out;
}

/** The deposited text of a stored body (text as is; a BLOB unpacked). */
export function unpackBody(stored: string | Uint8Array): string {
  if (typeof stored === 'string') return stored;
  const buf = Buffer.isBuffer(stored) ? stored : Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (buf.length < HEADER_BYTES || buf[0] !== FORMAT)
    throw new Error(`a stored envelope body has an unknown format (${buf[0] ?? 'empty'})`);
  const headEnd = HEADER_BYTES + buf.readUInt32LE(1);
  const bytesEnd = headEnd + buf.readUInt32LE(5);
  if (bytesEnd > buf.length) throw new Error('a stored envelope body is truncated');
  return buf.toString('utf8', HEADER_BYTES, headEnd) + buf.toString('base64url', headEnd, bytesEnd) + buf.toString('utf8', bytesEnd);
}
