/**
 * Connection hygiene (PROTOCOL.md §5 "Connections"): no single client can hold the relay's file
 * descriptors. Measured before this: after a malformed or timed-out request the relay answered and
 * called `socket.end()` but never destroyed the socket, so a client that never read kept the fd;
 * two processes with ~10,000 half-sent requests took the relay to its fd limit and /health and
 * deposits failed for everyone for 100 s.
 */
// One address may still hold up to the per-client cap; many addresses (a botnet) are bounded only
// by the total cap, which then refuses newcomers: raise it with the fd limit.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  readonly maxConnections: number;
  /** 0: no per-address cap (behind a trusted proxy every connection comes from the proxy). */
  readonly maxConnectionsPerClient: number;
}

/** A client that does not read its error answer gets this long before its socket is destroyed anyway. */
const ERROR_LINGER_MS = 1000;

/**
 * The key a connection counts under: an IPv4 address, or an IPv6 /64 (one customer's subnet: a
 * single host can use any of its 2^64 addresses, so per-address caps would not hold it).
 */
export function connectionKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head, tail] = address.split('%', 1)[0]!.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

export interface ConnectionGuard {
  readonly open: () => number;
  readonly refused: () => number;
}

/** Caps connections in total and per remote address; destroys the socket after any client error. */
export function guardConnections(server: Server, limits: ConnectionLimits, onRefused: () => void): ConnectionGuard {
  const perAddress = new Map<string, number>();
  let open = 0;
  let refused = 0;
  server.on('connection', (socket: Socket) => {
    const address = connectionKey(socket.remoteAddress ?? 'unknown');
    const mine = perAddress.get(address) ?? 0;
    if (open >= limits.maxConnections || (limits.maxConnectionsPerClient > 0 && mine >= limits.maxConnectionsPerClient)) {
      refused++;
      onRefused();
      socket.destroy(); // before a byte is read: costs us one accept and one close
      return;
    }
    open++;
    perAddress.set(address, mine + 1);
    socket.once('close', () => {
      open--;
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
    });
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed HTTP or a header/body timeout: answer in the JSON error shape when we still can,
    // then destroy the socket whether or not the client reads the answer.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (socket.writable && err.code !== 'ECONNRESET') {
      const status = timedOut ? '408 Request Timeout' : '400 Bad Request';
      const body = JSON.stringify({
        error: timedOut
          ? { code: 'request_timeout', message: "the request did not arrive within the relay's time limits" }
          : { code: 'invalid_request', message: 'malformed HTTP request' },
      });
      const linger = setTimeout(() => socket.destroy(), ERROR_LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
    } else {
      socket.destroy();
    }
  });

  return { open: () => open, refused: () => refused };
}
