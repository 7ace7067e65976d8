/**
 * A minimal, dependency-free test runner for the contract outside vitest (bundled into a page):
 * runs registered tests one after another and reports every outcome instead of stopping at the first.
 */
import type { ContractRegistrar } from './registrar';

export interface ContractFailure {
  readonly name: string;
  readonly error: string;
}

export interface ContractRunReport {
  readonly passed: readonly string[];
  readonly failed: readonly ContractFailure[];
  readonly notes: readonly string[];
  readonly durationMs: number;
}

const describeError = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e));

/** Rejects if `work` has not settled after `ms`: a hung test is reported, not waited on forever. */
async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runRegistered(register: (t: ContractRegistrar) => void, perTestTimeoutMs = 15_000): Promise<ContractRunReport> {
  const tests: { name: string; fn: () => Promise<void> }[] = [];
  const notes: string[] = [];
  register({ test: (name, fn) => void tests.push({ name, fn }), note: (message) => void notes.push(message) });
  const passed: string[] = [];
  const failed: ContractFailure[] = [];
  const started = performance.now();
  for (const { name, fn } of tests) {
    try {
      await withDeadline(fn(), perTestTimeoutMs, name);
      passed.push(name);
    } catch (e) {
      failed.push({ name, error: describeError(e) });
    }
  }
  return { passed, failed, notes, durationMs: performance.now() - started };
}
