/** Small text helpers shared by the commands' human output. */

/** The guide prints relays by host: `relay.syncropel.com → /health 200 ok (12ms)`. */
export function relayLabel(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname.replace(/\/+$/, '');
    return `${u.host}${path}`;
  } catch {
    return url;
  }
}

/** `all` is shown as the guide's "catch-all". */
export const scopeLabel = (forPair: string): string => (forPair === 'all' ? 'catch-all' : forPair);

export function ago(ms: number): string {
  if (ms < 0) return `in ${duration(-ms)}`;
  return `${duration(ms)} ago`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

export const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
