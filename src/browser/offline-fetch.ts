/**
 * `fetch` whose in-flight requests are aborted when the browser reports going offline. A
 * long-poll otherwise outlives the network change (browsers do not cut open connections), and
 * would still hold the receive lock, or even deliver, after the device said it was offline.
 */
const inFlight = new Set<AbortController>();
let abortsOnOffline = false;

export function offlineAwareFetch(): typeof fetch {
  if (!abortsOnOffline) {
    abortsOnOffline = true;
    globalThis.addEventListener?.('offline', () => {
      for (const c of inFlight) c.abort(new DOMException('the browser went offline', 'NetworkError'));
    });
  }
  return async (input, init) => {
    const controller = new AbortController();
    inFlight.add(controller);
    const signal = init?.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    try {
      return await globalThis.fetch(input, { ...init, signal });
    } finally {
      inFlight.delete(controller);
    }
  };
}
