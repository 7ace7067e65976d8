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

function str(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) {
    throw new CanonicalJsonError('lone_surrogate', path, 'string contains a lone UTF-16 surrogate');
  }
  // JSON.stringify already escapes exactly as RFC 8785 §3.2.2.2 asks once lone surrogates are gone.
  return JSON.stringify(s);
}

function serialize(v: unknown, path: string, out: string[], depth = 0): void {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('too_deep', path, `nesting deeper than ${MAX_DEPTH} levels`);
  if (v === null) out.push('null');
  else if (v === true) out.push('true');
  else if (v === false) out.push('false');
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new CanonicalJsonError('non_finite_number', path, `number ${v} is not finite`);
    // ECMAScript Number::toString is the RFC 8785 §3.2.2.3 form; -0 serialises as 0.
    out.push(Object.is(v, -0) ? '0' : String(v));
  } else if (typeof v === 'string') out.push(str(v, path));
  else if (Array.isArray(v)) {
    out.push('[');
    v.forEach((item, i) => {
      if (i > 0) out.push(',');
      serialize(item, `${path}[${i}]`, out, depth + 1);
    });
    out.push(']');
  } else if (typeof v === 'object' && isPlainObject(v)) {
    const keys = Object.keys(v).sort();
    out.push('{');
    let first = true;
    for (const k of keys) {
      const item = (v as Record<string, unknown>)[k];
      if (item === undefined) continue; // as JSON.stringify does: an absent value is no member
      if (!first) out.push(',');
      first = false;
      out.push(str(k, path), ':');
      serialize(item, `${path}.${k}`, out, depth + 1);
    }
    out.push('}');
  } else {
    throw new CanonicalJsonError('unsupported_value', path, `a ${typeof v} has no JSON form`);
  }
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The canonical JSON text of `value`; throws CanonicalJsonError for what JCS cannot represent. */
export function canonicalize(value: unknown): string {
  const out: string[] = [];
  serialize(value, '$', out);
  return out.join('');
}

/** The UTF-8 bytes that are hashed and signed. */
export const canonicalBytes = (value: unknown): Uint8Array => utf8(canonicalize(value));
