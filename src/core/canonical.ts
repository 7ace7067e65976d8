/**
 * RFC 8785 JSON Canonicalization Scheme (PROTOCOL.md §1).
 * Keys sorted by UTF-16 code units (§3.2.3), numbers in ECMAScript shortest form (§3.2.2.3),
 * strings with minimal escaping (§3.2.2.2). What JCS cannot represent is an error, not a guess.
 */
import { utf8 } from './bytes';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type CanonicalJsonErrorCode = 'non_finite_number' | 'lone_surrogate' | 'unsupported_value' | 'too_deep';

/** Deeper nesting than any record needs; bounds recursion on hostile input. */
export const MAX_DEPTH = 256;

export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
  constructor(
    readonly code: CanonicalJsonErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(`${message} at ${path}`);
  }
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// String.prototype.isWellFormed (ES2024) where the platform has it; the regex elsewhere.
const isWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
const hasLoneSurrogate = (s: string): boolean => (isWellFormed ? !isWellFormed.call(s) : LONE_SURROGATE.test(s));

/**
 * Keys and indexes from the root to the value being written. Kept as a stack and turned into a
 * path only for an error message: building a path string per value cost more than the output.
 */
const trail: (string | number)[] = [];

function failAt(code: CanonicalJsonErrorCode, message: string): never {
  const path = trail.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
  throw new CanonicalJsonError(code, `$${path}`, message);
}

function str(s: string): string {
  if (hasLoneSurrogate(s)) failAt('lone_surrogate', 'string contains a lone UTF-16 surrogate');
  // JSON.stringify already escapes exactly as RFC 8785 §3.2.2.2 asks once lone surrogates are gone.
  return JSON.stringify(s);
}

function serialize(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) failAt('too_deep', `nesting deeper than ${MAX_DEPTH} levels`);
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) failAt('non_finite_number', `number ${v} is not finite`);
    // ECMAScript Number::toString is the RFC 8785 §3.2.2.3 form; -0 serialises as 0.
    return Object.is(v, -0) ? '0' : String(v);
  }
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      trail.push(i);
      out += (i > 0 ? ',' : '') + serialize(v[i], depth + 1);
      trail.pop();
    }
    return out + ']';
  }
  if (typeof v === 'object' && isPlainObject(v)) {
    const keys = Object.keys(v).sort(); // default sort: by UTF-16 code units (§3.2.3)
    let out = '{';
    for (const k of keys) {
      const item = (v as Record<string, unknown>)[k];
      if (item === undefined) continue; // as JSON.stringify does: an absent value is no member
      trail.push(k);
      out += (out.length > 1 ? ',' : '') + str(k) + ':' + serialize(item, depth + 1);
      trail.pop();
    }
    return out + '}';
  }
  return failAt('unsupported_value', `a ${typeof v} has no JSON form`);
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The canonical JSON text of `value`; throws CanonicalJsonError for what JCS cannot represent. */
export function canonicalize(value: unknown): string {
  trail.length = 0; // a previous call may have thrown part-way down
  return serialize(value, 0);
}

/** The UTF-8 bytes that are hashed and signed. */
export const canonicalBytes = (value: unknown): Uint8Array => utf8(canonicalize(value));
