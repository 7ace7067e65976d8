/**
 * Push endpoint checks (PROTOCOL.md §5.2): `https` only, and every address the host resolves to
 * public unicast — the relay must not become a way to POST at loopback, the operator's private
 * network, link-local metadata services (169.254.169.254) or CGNAT space. Checked at registration
 * and again before each send; the send then connects to exactly the address checked (no second
 * DNS answer in between: rebinding cannot swap in a private one).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

export type EndpointCheck =
  | {
      readonly ok: true;
      readonly url: URL;
      /** Address to connect to; undefined for the allowed test service (resolved normally). */ readonly address: string | undefined;
      readonly family: 4 | 6 | undefined;
    }
  | { readonly ok: false; readonly message: string };

export type Resolver = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * True only for a public unicast address. IPv4-mapped IPv6 is judged as the IPv4 it carries;
 * NAT64 (64:ff9b::/96), 6to4, Teredo and every other special range ipaddr.js knows are refused.
 */
export function isPublicUnicast(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  return parsed.range() === 'unicast';
}

const MAX_ENDPOINT_LENGTH = 2048;

/** Parses the URL form of an endpoint; `allowedOrigin` (the test service) skips the https rule. */
export function parseEndpointUrl(
  endpoint: string,
  allowedOrigin: string | undefined,
): { ok: true; url: URL; allowed: boolean } | { ok: false; message: string } {
  if (endpoint.length > MAX_ENDPOINT_LENGTH)
    return { ok: false, message: `the push endpoint must be at most ${MAX_ENDPOINT_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { ok: false, message: 'the push endpoint is not a URL' };
  }
  if (url.username || url.password) return { ok: false, message: 'the push endpoint must not carry credentials' };
  if (allowedOrigin !== undefined && url.origin === allowedOrigin) return { ok: true, url, allowed: true };
  if (url.protocol !== 'https:') return { ok: false, message: 'the push endpoint must be an https URL' };
  return { ok: true, url, allowed: false };
}

/** Resolves the endpoint's host and checks every address; the first one is the one to connect to. */
export async function checkEndpoint(endpoint: string, allowedOrigin: string | undefined, resolve: Resolver): Promise<EndpointCheck> {
  const parsed = parseEndpointUrl(endpoint, allowedOrigin);
  if (!parsed.ok) return parsed;
  if (parsed.allowed) return { ok: true, url: parsed.url, address: undefined, family: undefined };
  // URL keeps IPv6 literals bracketed.
  const host = parsed.url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: readonly { address: string; family: number }[];
  if (ipaddr.isValid(host)) {
    addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
  } else {
    try {
      addresses = await resolve(host);
    } catch {
      return { ok: false, message: "the push endpoint's host does not resolve" };
    }
  }
  if (addresses.length === 0) return { ok: false, message: "the push endpoint's host does not resolve" };
  // Every answer must be public: a name answering one public and one private address is refused.
  if (!addresses.every((a) => isPublicUnicast(a.address))) {
    return {
      ok: false,
      message: 'the push endpoint must resolve to public addresses only (not loopback, private, link-local, CGNAT, multicast or reserved)',
    };
  }
  const first = addresses[0]!;
  return { ok: true, url: parsed.url, address: first.address, family: first.family === 6 ? 6 : 4 };
}
