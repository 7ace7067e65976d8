/**
 * A few assertions with no dependencies, so the store contract runs unchanged under vitest in Node
 * and bundled into a page in Chromium.
 */

export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Compact rendering for failure messages; bytes and sets shown by content. */
export function show(value: unknown): string {
  try {
    const text = JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Uint8Array) return `Uint8Array[${Array.from(v).join(',')}]`;
      if (v instanceof Set) return { Set: [...(v as Set<unknown>)] };
      if (v === undefined) return '<undefined>';
      return v;
    });
    return text.length > 600 ? `${text.slice(0, 600)}…` : text;
  } catch {
    return String(value);
  }
}

/** Structural equality: same prototype, same own enumerable keys (an absent key ≠ a key set to undefined). */
export function isDeepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (a instanceof Set && b instanceof Set) {
    return a.size === b.size && [...(a as Set<unknown>)].every((x) => (b as Set<unknown>).has(x));
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => isDeepEqual(x, b[i]));
  }
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (!isDeepEqual(ka, kb)) return false;
  return ka.every((k) => isDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const where = (message: string | undefined) => (message ? `${message}: ` : '');

export interface Assert {
  ok(condition: unknown, message: string): asserts condition;
  equal<T>(actual: T, expected: T, message?: string): void;
  deepEqual<T>(actual: T, expected: T, message?: string): void;
  rejects(promise: Promise<unknown>, pattern?: RegExp, message?: string): Promise<void>;
}

// Annotated with its interface: TypeScript only honours `asserts` through explicitly typed names.
export const assert: Assert = {
  ok(condition: unknown, message: string): asserts condition {
    if (!condition) throw new AssertionError(message);
  },

  equal<T>(actual: T, expected: T, message?: string): void {
    if (!Object.is(actual, expected)) throw new AssertionError(`${where(message)}expected ${show(expected)}, got ${show(actual)}`);
  },

  deepEqual<T>(actual: T, expected: T, message?: string): void {
    if (!isDeepEqual(actual, expected)) {
      throw new AssertionError(`${where(message)}expected ${show(expected)},\n     got ${show(actual)}`);
    }
  },

  /** Awaits `promise` and requires it to reject, optionally with a message matching `pattern`. */
  async rejects(promise: Promise<unknown>, pattern?: RegExp, message?: string): Promise<void> {
    let settled: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      settled = { ok: true, value: await promise };
    } catch (error) {
      settled = { ok: false, error };
    }
    if (settled.ok) throw new AssertionError(`${where(message)}expected a rejection, got ${show(settled.value)}`);
    const text = settled.error instanceof Error ? settled.error.message : String(settled.error);
    if (pattern && !pattern.test(text)) throw new AssertionError(`${where(message)}rejection "${text}" does not match ${String(pattern)}`);
  },
};
