/**
 * JSON parsing at the relay's edge that refuses duplicated object keys (PROTOCOL.md §5 "Origins":
 * a body with a duplicated key is 400). `JSON.parse` keeps the last of two equal keys, so two
 * readers of one body could disagree on what it says; we refuse such bodies instead.
 *
 * JSON.parse validates the text first; the scan below then only walks valid JSON, comparing keys
 * after unescaping (`"a"` and `"\u0061"` are the same key).
 */
import { fail, ok, type JsonValue, type Result } from '../core';

export type StrictJsonError = 'invalid_json' | 'duplicate_key';

export function parseJsonStrict(text: string): Result<JsonValue, StrictJsonError> {
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (e) {
    return fail('invalid_json', `the body is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) return fail('duplicate_key', `the body repeats the key ${JSON.stringify(dup.slice(0, 80))} in one object`);
  return ok(value);
}

/** The first key that appears twice in one object of `text` (valid JSON), or undefined. */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: a key set for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < text.length; j++) {
        const d = text.charCodeAt(j);
        if (escaped) escaped = false;
        else if (d === 0x5c /* \ */) escaped = true;
        else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = text.slice(i, j + 1);
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    }
  }
  return undefined;
}
