/**
 * Web Locks are shared by every page and worker of the origin; without them, run unlocked.
 * `acquireTimeoutMs` bounds the wait (the service worker must not spend its short event lifetime
 * queued behind a page that is already receiving).
 */
export function webLock(acquireTimeoutMs?: number): <T>(name: string, fn: () => Promise<T>) => Promise<T> {
  return <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return fn();
    const options: LockOptions = acquireTimeoutMs === undefined ? {} : { signal: AbortSignal.timeout(acquireTimeoutMs) };
    // request() resolves with the callback's result; the DOM typings wrap it once more.
    return locks.request(`spl:${name}`, options, () => fn()) as Promise<T>;
  };
}
