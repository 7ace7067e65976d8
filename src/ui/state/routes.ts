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
    case 'thread':
      return arg ? { screen: 'thread', thread: decodeURIComponent(arg) } : { screen: 'threads' };
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

export const routeHref = (r: Route): string => (r.screen === 'thread' ? `#/thread/${encodeURIComponent(r.thread)}` : `#/${r.screen}`);

/** Identifies one screen (each thread is its own screen): what a flash message belongs to. */
export const screenKey = (r: Route): string => (r.screen === 'thread' ? `thread:${r.thread}` : r.screen);
