/** Request-target parsing for the §5 routes. The mailbox DID may be raw or percent-encoded. */

export type Route =
  | { readonly kind: 'health' }
  | { readonly kind: 'metrics' }
  | { readonly kind: 'deposit'; readonly did: string }
  | { readonly kind: 'receive'; readonly did: string; readonly query: string }
  | { readonly kind: 'ack'; readonly did: string }
  | { readonly kind: 'tokens'; readonly did: string }
  | { readonly kind: 'push_vapid' }
  | { readonly kind: 'push'; readonly did: string };

export type RouteMatch =
  | {
      readonly ok: true;
      readonly route: Route;
      readonly method: 'GET' | 'POST' | 'PUT';
      readonly template: string;
      /** A second method the route takes (push: DELETE). */ readonly alsoMethod?: 'DELETE';
    }
  | { readonly ok: false; readonly code: 'not_found' | 'invalid_request'; readonly message: string };

const MAX_DID_LENGTH = 2048;

export function matchRoute(target: string): RouteMatch {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (path === '/health') return { ok: true, route: { kind: 'health' }, method: 'GET', template: '/health' };
  if (path === '/metrics') return { ok: true, route: { kind: 'metrics' }, method: 'GET', template: '/metrics' };
  if (path === '/v1/push/vapid') return { ok: true, route: { kind: 'push_vapid' }, method: 'GET', template: '/v1/push/vapid' };
  const parts = path.split('/');
  // ['', 'v1', 'mailbox', did, action?]
  if (parts.length < 4 || parts.length > 5 || parts[0] !== '' || parts[1] !== 'v1' || parts[2] !== 'mailbox' || !parts[3]) {
    return { ok: false, code: 'not_found', message: `no such route: ${clip(path)}` };
  }
  let did: string;
  try {
    did = decodeURIComponent(parts[3]);
  } catch {
    return { ok: false, code: 'invalid_request', message: 'the mailbox DID in the path is not valid percent-encoding' };
  }
  if (did.length === 0 || did.length > MAX_DID_LENGTH) {
    return { ok: false, code: 'invalid_request', message: `the mailbox DID must be 1 to ${MAX_DID_LENGTH} characters` };
  }
  const action = parts[4];
  if (action === undefined) return { ok: true, route: { kind: 'deposit', did }, method: 'POST', template: '/v1/mailbox/:did' };
  if (action === 'receive')
    return { ok: true, route: { kind: 'receive', did, query }, method: 'GET', template: '/v1/mailbox/:did/receive' };
  if (action === 'ack') return { ok: true, route: { kind: 'ack', did }, method: 'POST', template: '/v1/mailbox/:did/ack' };
  if (action === 'push')
    return { ok: true, route: { kind: 'push', did }, method: 'PUT', alsoMethod: 'DELETE', template: '/v1/mailbox/:did/push' };
  if (action === 'tokens') return { ok: true, route: { kind: 'tokens', did }, method: 'PUT', template: '/v1/mailbox/:did/tokens' };
  return { ok: false, code: 'not_found', message: `no such route: ${clip(path)}` };
}

export interface ReceiveQuery {
  readonly limit: number;
  readonly waitSeconds: number;
}

export const DEFAULT_RECEIVE_LIMIT = 100;
export const MAX_RECEIVE_LIMIT = 500;
export const MAX_WAIT_SECONDS = 30;

/** `limit` 1–500 (default 100), `wait` 0–30 s (default 0; decimals allowed). Unknown parameters are ignored. */
export function parseReceiveQuery(query: string): { ok: true; value: ReceiveQuery } | { ok: false; message: string } {
  const params = new URLSearchParams(query);
  const limits = params.getAll('limit');
  const waits = params.getAll('wait');
  if (limits.length > 1 || waits.length > 1) return { ok: false, message: 'limit and wait may each appear once' };
  let limit = DEFAULT_RECEIVE_LIMIT;
  if (limits[0] !== undefined) {
    if (!/^\d{1,4}$/.test(limits[0]) || Number(limits[0]) < 1 || Number(limits[0]) > MAX_RECEIVE_LIMIT) {
      return { ok: false, message: `limit must be an integer from 1 to ${MAX_RECEIVE_LIMIT}` };
    }
    limit = Number(limits[0]);
  }
  let waitSeconds = 0;
  if (waits[0] !== undefined) {
    if (!/^\d{1,2}(\.\d{1,3})?$/.test(waits[0]) || Number(waits[0]) > MAX_WAIT_SECONDS) {
      return { ok: false, message: `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}` };
    }
    waitSeconds = Number(waits[0]);
  }
  return { ok: true, value: { limit, waitSeconds } };
}

const clip = (s: string): string => (s.length > 80 ? `${s.slice(0, 80)}…` : s);
