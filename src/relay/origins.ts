/**
 * The origins a relay is reached at (PROTOCOL.md §5 "Origins", §6): a signed request names the
 * relay in its signed `Host`, so a signature made for one relay is worthless at another.
 */
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { RelayOptionError } from './options';

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
export const isUnspecifiedAddress = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:0';

/** `host:port` as a client writes it in `Host` (IPv6 in brackets), lowercased. */
export const hostPort = (host: string, port: number): string => `${isIP(host) === 6 ? `[${host}]` : host}:${port}`.toLowerCase();

/**
 * The origins to accept: the operator's list if given (it replaces the default), otherwise the
 * listen address and, for a loopback listener, `localhost` and `127.0.0.1`, each with the port.
 * A relay on an unspecified address cannot know its name: it needs `--origin`.
 */
export function resolveOrigins(given: readonly string[], listenHost: string, port: number): ReadonlySet<string> {
  if (given.length > 0) return new Set(given.map((o) => o.toLowerCase()));
  if (isUnspecifiedAddress(listenHost)) {
    throw new RelayOptionError(
      `--host ${listenHost} listens on every address, so the relay cannot tell which Host clients sign for: name each origin with --origin host[:port] (e.g. --origin relay.example.org)`,
    );
  }
  const origins = new Set([hostPort(listenHost, port)]);
  if (isLoopback(listenHost)) {
    origins.add(`localhost:${port}`);
    origins.add(`127.0.0.1:${port}`);
  }
  return origins;
}

/** Checks one `--origin` value: `host[:port]` as it appears in a Host header. */
export function parseOrigin(text: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535) || (m[1]!.startsWith('[') && isIP(m[1]!.slice(1, -1)) !== 6)) {
    throw new RelayOptionError(
      `--origin must be host[:port] as clients write it in the Host header (e.g. relay.example.org or 127.0.0.1:8787), got "${text}"`,
    );
  }
  return text.trim().toLowerCase();
}

/** How many `Host` header lines the request carried (Node keeps only the first in `headers`). */
export function hostHeaderCount(req: IncomingMessage): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}
