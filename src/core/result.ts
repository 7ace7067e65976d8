/** A value or a typed failure. Verification and parsing return these instead of throwing. */
export type Result<T, C extends string = string> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: Failure<C> };

export interface Failure<C extends string = string> {
  /** snake_case, stable: callers branch on it. */
  readonly code: C;
  /** A human sentence naming what was wrong. */
  readonly message: string;
}

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });

export const fail = <C extends string>(code: C, message: string): { ok: false; error: Failure<C> } => ({
  ok: false,
  error: { code, message },
});
