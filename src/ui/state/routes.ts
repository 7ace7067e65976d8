/** The screens and their `#/…` addresses (pure, so tests and the state layer share it). */
export type Route =
  | { readonly screen: 'threads' }
  | { readonly screen: 'thread'; readonly thread: string }
  | { readonly screen: 'pair' }
  | { readonly screen: 'relays' }
  | { readonly screen: 'sync' }
  | { readonly screen: 'doctor' }
  | { readonly screen: 'me' };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [screen, arg] = h.split('/');
  switch (screen) {
    case 'thread': {
      const thread = arg ? decodeSegment(arg) : undefined;
      return thread ? { screen: 'thread', thread } : { screen: 'threads' };
    }
    case 'pair':
    case 'relays':
    case 'sync':
    case 'doctor':
    case 'me':
      return { screen };
    default:
      return { screen: 'threads' };
  }
}

/** A hand-typed or truncated link (`%E0%A4%A`) must not throw out of hashchange: it opens the list. */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

export const routeHref = (r: Route): string => (r.screen === 'thread' ? `#/thread/${encodeURIComponent(r.thread)}` : `#/${r.screen}`);

/** Identifies one screen (each thread is its own screen): what a flash message belongs to. */
export const screenKey = (r: Route): string => (r.screen === 'thread' ? `thread:${r.thread}` : r.screen);
