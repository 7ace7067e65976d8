/**
 * The one shape of every contract suite in this folder: `runXContract(t, name, factory,
 * capabilities)`. A suite depends on no test framework: it hands its tests to a
 * `ContractRegistrar` (./vitest-registrar.ts in Node, ./mini-runner.ts bundled into a page) and
 * asserts with ./assert.ts, so the same suite can run under vitest and in real Chromium.
 */

export interface ContractRegistrar {
  test(name: string, fn: () => Promise<void>): void;
  /** A measurement worth reporting (e.g. a timing); never an assertion. */
  note(message: string): void;
}

/** A freshly opened, empty store of kind `S`. */
export interface OpenedStore<S> {
  readonly store: S;
  /** Opens the same storage again after close(); present exactly when the adapter is persistent. */
  readonly reopen?: () => Promise<S>;
}

/** Opens a fresh, empty store: every contract test gets its own. */
export type StoreFactory<S> = () => Promise<OpenedStore<S>>;

export interface StoreCapabilities {
  /** The storage outlives close(): the factory's `reopen` opens it again. */
  readonly persistent: boolean;
}

/** Every test name a suite registers, without running anything (for per-test reporting). */
export function collectTestNames(register: (t: ContractRegistrar) => void): string[] {
  const names: string[] = [];
  register({ test: (title) => void names.push(title), note: () => undefined });
  return names;
}

/** What a contract test gets: the fresh store, and `close` to end it mid-test (the final cleanup then closes nothing twice). */
export interface StoreUnderTest<S> extends OpenedStore<S> {
  readonly close: () => Promise<void>;
}

/**
 * Registers `title` under `suite`: opens a fresh store, runs `fn`, and closes the store whatever
 * happened (a close that fails after a failed test must not hide the test's own error).
 */
export function storeTest<S extends { close(): Promise<unknown> }>(
  t: ContractRegistrar,
  suite: string,
  factory: StoreFactory<S>,
): (title: string, fn: (opened: StoreUnderTest<S>) => Promise<void>) => void {
  return (title, fn) =>
    t.test(`${suite} › ${title}`, async () => {
      const opened = await factory();
      let closing: Promise<void> | undefined;
      const close = () => (closing ??= opened.store.close().then(() => undefined));
      let failed = true;
      try {
        await fn({ ...opened, close });
        failed = false;
      } finally {
        if (failed) await close().catch(() => undefined);
        else await close();
      }
    });
}
