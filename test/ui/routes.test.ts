/** The UI's `#/…` addresses (src/ui/state/routes.ts): what a typed, pasted or stale hash opens. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseRoute, routeHref, screenKey, type Route } from '../../src/ui/state/routes';

const SCREENS = ['pair', 'relays', 'sync', 'doctor', 'me'] as const;

describe('parseRoute', () => {
  it('opens each named screen, with or without the slash after #', () => {
    for (const screen of SCREENS) {
      expect(parseRoute(`#/${screen}`)).toEqual({ screen });
      expect(parseRoute(`#${screen}`)).toEqual({ screen });
    }
  });

  it('an empty, unknown or mistyped hash opens the thread list', () => {
    for (const hash of ['', '#', '#/', '#/threads', '#/nowhere', '#/Pair', '#/pair-x', '#//pair', 'pair?']) {
      expect(parseRoute(hash), hash).toEqual({ screen: 'threads' });
    }
  });

  it('opens a thread by its (decoded) ID; a thread address without an ID is the list', () => {
    expect(parseRoute('#/thread/th_abc')).toEqual({ screen: 'thread', thread: 'th_abc' });
    expect(parseRoute('#/thread/th%20a%2Fb')).toEqual({ screen: 'thread', thread: 'th a/b' });
    expect(parseRoute('#/thread/')).toEqual({ screen: 'threads' });
    expect(parseRoute('#/thread')).toEqual({ screen: 'threads' });
  });

  it('ignores anything after the first argument', () => {
    expect(parseRoute('#/thread/th_1/extra/parts')).toEqual({ screen: 'thread', thread: 'th_1' });
    expect(parseRoute('#/doctor/whatever')).toEqual({ screen: 'doctor' });
  });

  it('a malformed percent-escape in a thread ID opens the list instead of throwing out of hashchange', () => {
    expect(parseRoute('#/thread/%E0%A4%A')).toEqual({ screen: 'threads' });
    expect(parseRoute('#/thread/%')).toEqual({ screen: 'threads' });
  });
});

describe('routeHref and parseRoute agree', () => {
  it('every screen round-trips', () => {
    for (const screen of [...SCREENS, 'threads'] as const) expect(parseRoute(routeHref({ screen }))).toEqual({ screen });
  });

  it('any thread ID round-trips, whatever characters it holds', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 80 }), (thread) => {
        const route: Route = { screen: 'thread', thread };
        const href = routeHref(route);
        expect(href.startsWith('#/thread/')).toBe(true);
        expect(href.slice('#/thread/'.length)).not.toContain('/'); // the ID stays one path segment
        expect(parseRoute(href)).toEqual(route);
      }),
      { numRuns: 500 },
    );
  });
});

describe('screenKey', () => {
  it('tells threads apart and screens apart, and a screen from a thread of the same name', () => {
    const keys = [
      screenKey({ screen: 'threads' }),
      screenKey({ screen: 'doctor' }),
      screenKey({ screen: 'thread', thread: 'th_1' }),
      screenKey({ screen: 'thread', thread: 'th_2' }),
      screenKey({ screen: 'thread', thread: 'doctor' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(screenKey(parseRoute('#/thread/th_1'))).toBe(screenKey({ screen: 'thread', thread: 'th_1' }));
  });
});
