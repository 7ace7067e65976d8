/** Parsing untrusted bytes into JSON values, once, at the edge. */
import { fromUtf8 } from './bytes';
import type { JsonValue } from './canonical';
import { fail, ok, type Result } from './result';

export function parseJsonBytes(bytes: Uint8Array): Result<JsonValue, 'invalid_utf8' | 'invalid_json'> {
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    return fail('invalid_utf8', 'the body is not valid UTF-8');
  }
  return parseJsonText(text);
}

export function parseJsonText(text: string): Result<JsonValue, 'invalid_json'> {
  try {
    return ok(JSON.parse(text) as JsonValue);
  } catch (e) {
    return fail('invalid_json', `the body is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export const isObject = (v: unknown): v is { [key: string]: unknown } => typeof v === 'object' && v !== null && !Array.isArray(v);
