/**
 * URL query flags used only by the browser end-to-end tests (test/e2e). They never change what a
 * person sees; they disable or hold the page's own sync so a test can prove *who* did the work.
 */
export interface TestFlags {
  /** `?e2e-no-foreground=1`: the page never receives or flushes by itself (the SW must). */
  readonly noForeground: boolean;
  /** `?e2e-hold-ack=1`: the page's engine waits forever between ingest commit and ack. */
  readonly holdAck: boolean;
  /** Any `e2e-*` flag: expose a read-only test probe on `window.__splProbe`. */
  readonly probe: boolean;
}

export function readTestFlags(search: string): TestFlags {
  const q = new URLSearchParams(search);
  const on = (name: string): boolean => q.get(name) === '1';
  const noForeground = on('e2e-no-foreground');
  const holdAck = on('e2e-hold-ack');
  return { noForeground, holdAck, probe: noForeground || holdAck || on('e2e') };
}
